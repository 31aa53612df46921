//! The authorization matrix: every protected endpoint × every wrong credential → 401/403.

use reqwest::Method;

use super::world::cpf;
use super::{Cred, Expect, Probe, Table, World, body};

/// Every protected endpoint × every wrong credential → 401/403.
pub fn authorization_matrix(w: &World) -> Vec<Probe> {
    let mut t = Table { w, probes: vec![] };
    let a = w.a.ibk();
    let operator = Cred::Bearer(w.operator_key.clone());
    let customer = Cred::Bearer(w.a.token.clone());
    let other_customer = Cred::Bearer(w.b.token.clone());
    let peer = Cred::Peer { bank: 2, identity: 2 };
    let ds_key = Cred::Bearer(w.ds_keys[0].clone());
    let wrong = [
        ("no credentials", Cred::None),
        ("a made-up bearer", Cred::Bearer("0".repeat(64))),
        ("an empty bearer", Cred::Bearer(String::new())),
    ];

    // Operator routes: a customer's session, a peer's secret, the data-server key are no key.
    let key_path = shared::PixKey::parse_as(shared::pix::KeyType::Email, &w.key).expect("valid").path_segment();
    let operator_routes: Vec<(Method, String)> = vec![
        (Method::POST, format!("/deposit/{}/1", a.account)),
        (Method::POST, format!("/withdrawal/{}/1", a.account)),
        (Method::POST, format!("/transfer/{}/{}/1", a.account, w.b.ibk().account)),
        (Method::GET, format!("/balance/{}", a.account)),
        (Method::GET, "/metrics".into()),
        (Method::GET, "/interbank/positions".into()),
        (Method::GET, "/interbank/grants".into()),
        (Method::GET, "/interbank/pending".into()),
        (Method::GET, "/api/operator/overview".into()),
    ];
    for (m, p) in &operator_routes {
        for (what, cred) in wrong.iter().cloned().chain([
            ("a customer's session on an operator route", customer.clone()),
            ("a peer's secret on an operator route", peer.clone()),
            ("a data-server key on an operator route", ds_key.clone()),
            ("a wrong operator key", Cred::Bearer(format!("{}x", w.operator_key))),
        ]) {
            t.push("operator", what, m.clone(), t.bank1(p), cred, None, Expect::Denied);
        }
    }

    // Customer routes on A's resources: everything but A's live session is refused.
    let pay = format!(r#"{{"author":"{a}","operations":[{{"from":"{a}","to":"{}","amount":"1"}}]}}"#, w.b.ibk());
    let money = format!(r#"{{"acc_ibk":"{a}","amount":"1"}}"#);
    let register = format!(r#"{{"account":"{a}","type":"random"}}"#);
    let customer_routes: Vec<(Method, String, Option<String>)> = vec![
        (Method::GET, format!("/api/accounts/{}", a.account), None),
        (Method::GET, format!("/api/accounts/{}/all", a.account), None),
        (Method::GET, format!("/api/accounts/{}/transactions", a.account), None),
        (Method::POST, format!("/api/accounts/{}/events/ticket", a.account), None),
        (Method::GET, format!("/api/accounts/{}/events", a.account), None),
        (Method::GET, format!("/api/accounts/{}/keys", a.account), None),
        (Method::DELETE, format!("/api/accounts/{}", a.account), None),
        (Method::POST, "/api/keys".into(), Some(register)),
        (Method::DELETE, format!("/api/keys/{key_path}"), None),
        (Method::POST, "/api/payments/deposit".into(), Some(money.clone())),
        (Method::POST, "/api/payments/withdraw".into(), Some(money)),
        (Method::POST, "/api/payments/pay".into(), Some(pay)),
        (Method::GET, format!("/api/payments/{}", w.package), None),
        (
            Method::POST,
            "/api/consents".into(),
            Some(format!(r#"{{"account":"{a}","grantee_bank":2,"amount_max":"1"}}"#)),
        ),
        (Method::GET, format!("/api/consents?account={a}"), None),
        (Method::DELETE, format!("/api/consents/{}.{}", a.account, "0".repeat(32)), None),
        (Method::POST, format!("/api/accounts/{}/consent", a.account), None),
    ];
    for (m, p, b) in &customer_routes {
        for (what, cred) in wrong.iter().cloned().chain([
            ("the operator key on a customer route", operator.clone()),
            ("a peer's secret on a customer route", peer.clone()),
            ("a data-server key on a customer route", ds_key.clone()),
            ("a revoked session", Cred::Bearer(w.revoked.clone())),
            ("another customer's session", other_customer.clone()),
            ("a session of another bank", Cred::Bearer(w.c.token.clone())),
        ]) {
            t.push("customer", what, m.clone(), t.bank1(p), cred, b.as_deref().and_then(body), Expect::Denied);
        }
    }
    // Routes with no account in the path: a wrong credential is refused; the other customer
    // may use them for themselves, so only the non-customers are listed.
    for (m, p) in [
        (Method::GET, format!("/api/keys/{key_path}")),
        (Method::GET, format!("/api/recipients/{}", w.b.ibk())),
        (Method::DELETE, "/api/accounts/auth".into()),
    ] {
        for (what, cred) in wrong.iter().cloned().chain([
            ("the operator key on a customer route", operator.clone()),
            ("a peer's secret on a customer route", peer.clone()),
            ("a revoked session", Cred::Bearer(w.revoked.clone())),
        ]) {
            t.push("customer", what, m.clone(), t.bank1(&p), cred, None, Expect::Denied);
        }
    }

    // Interbank routes: only a listed peer with its own secret.
    let interbank_routes: Vec<(Method, String, Option<&str>)> = vec![
        (Method::GET, "/interbank/token".into(), None),
        (Method::PUT, "/interbank/token".into(), Some(r#"{"epoch":99999999,"seq":0,"from":2}"#)),
        (Method::GET, "/interbank/token/ok".into(), None),
        (Method::POST, "/interbank/prepare".into(), Some(r#"{"epoch":99999999,"coordinator":2,"items":[]}"#)),
        (Method::POST, "/interbank/commit".into(), Some(r#"{"txns":["x.1"]}"#)),
        (Method::POST, "/interbank/rollback".into(), Some(r#"{"txns":["x.1"]}"#)),
        (Method::GET, "/interbank/decision/x.1".into(), None),
        (Method::POST, format!("/interbank/account/ibk/{a}"), Some("{}")),
        (Method::GET, format!("/account/{}", cpf(1).chars().filter(char::is_ascii_digit).collect::<String>()), None),
        (Method::POST, "/interbank/keys".into(), Some(r#"{"key":"x@example.com","ibk":"2-1"}"#)),
        (Method::GET, format!("/interbank/keys/{key_path}"), None),
        (Method::DELETE, format!("/interbank/keys/{key_path}/{a}"), None),
    ];
    for (m, p, b) in &interbank_routes {
        // On the customer listener nobody is a peer: no certificate there, whatever is claimed.
        for (what, cred) in wrong.iter().cloned().chain([
            ("the operator key on an interbank route", operator.clone()),
            ("a customer's session on an interbank route", customer.clone()),
            ("a peer's headers without its certificate", peer.clone()),
        ]) {
            t.push("interbank", what, m.clone(), t.bank1(p), cred, b.and_then(body), Expect::Denied);
        }
        // On the interbank listener, a certificate speaks only for its own bank.
        for (what, cred) in wrong.iter().cloned().chain([
            ("bank 2's certificate claiming to be bank 1", Cred::Peer { bank: 1, identity: 2 }),
            ("bank 2's certificate claiming a bank not in the network", Cred::Peer { bank: 9, identity: 2 }),
            ("the bank's own certificate, posing as its own peer", Cred::Peer { bank: 1, identity: 1 }),
            ("the bank's own certificate, claiming to be bank 2", Cred::Peer { bank: 2, identity: 1 }),
        ]) {
            let cred = match cred {
                // A client with no certificate is refused by the handshake (tested apart); here
                // bank 2's certificate with no or a wrong claim.
                Cred::None | Cred::Bearer(_) => Cred::Peer { bank: 0, identity: 2 },
                other => other,
            };
            t.push("interbank", what, m.clone(), t.interbank1(p), cred, b.and_then(body), Expect::Denied);
        }
    }

    // Data-server routes: only a configured business key.
    let (me, other) = (w.ds_business[0], w.ds_business[1]);
    let ds_routes: Vec<(Method, String, Option<&str>)> = vec![
        (Method::POST, format!("/getLock/{me}/1"), None),
        (Method::POST, format!("/unLock/{me}/1"), Some(r#"{"token":1}"#)),
        (Method::POST, format!("/setAmount/{me}/1"), Some(r#"{"amount":"5","token":1}"#)),
        (Method::POST, format!("/setAmount/{me}/1/5"), None),
        (Method::GET, format!("/getAmount/{me}/1"), None),
        (Method::POST, format!("/v1/{me}/locks"), Some(r#"{"accounts":[1]}"#)),
        (Method::POST, format!("/v1/{me}/locks/release"), Some(r#"{"locks":[]}"#)),
        (Method::POST, format!("/v1/{me}/commit"), Some(r#"{"tx_id":"t","set":[],"records":[]}"#)),
        (Method::GET, format!("/v1/{me}/amounts"), None),
        (Method::GET, format!("/v1/{me}/amounts/1"), None),
        (Method::GET, format!("/v1/{me}/journal"), None),
        (Method::GET, format!("/v1/{me}/records/accounts"), None),
        (Method::GET, format!("/v1/{me}/records/accounts/1"), None),
        (Method::GET, format!("/v1/{other}/amounts"), None),
        (Method::GET, "/metrics".into(), None),
    ];
    for (m, p, b) in &ds_routes {
        for (what, cred) in wrong.iter().cloned().chain([
            ("a wrong data-server key", Cred::Bearer(w.ds_keys[1].clone())),
            ("the operator key on the data server", operator.clone()),
            ("a customer's session on the data server", customer.clone()),
            ("a peer bank's certificate and claim on the data server", peer.clone()),
        ]) {
            t.push("dataserver", what, m.clone(), t.ds(p), cred, b.and_then(body), Expect::Denied);
        }
    }
    // Another replica's key on this replica's paths.
    if other != me {
        t.push(
            "dataserver",
            "a business key on another business's path",
            Method::GET,
            t.ds(&format!("/v1/{other}/amounts")),
            ds_key,
            None,
            Expect::Denied,
        );
    }
    t.probes
}
