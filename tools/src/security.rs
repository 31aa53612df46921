//! The security suite over a real network: an authorization matrix and a table of hostile
//! requests across every endpoint of the three APIs (data server, business — operator and
//! customer — and interbank), each of which must be refused with a 4xx and the JSON error body,
//! while a snapshot of every bank's durable state stays exactly as it was.
//!
//! Both tables are data: a [`Probe`] per request, built by [`authorization_matrix`] and
//! [`hostile_table`] from a prepared [`World`], sent by [`run`]. The integration test and
//! `interbank reliability` call the same functions.

use std::collections::BTreeMap;

use reqwest::Method;
use serde_json::{Value, json};
use shared::{Document, ErrorBody};

use harness::client::{Customer, Operator, sign_up};
use harness::cluster::{Cluster, dev_bank_secret};

/// Credentials a probe presents.
#[derive(Debug, Clone)]
pub enum Cred {
    None,
    /// `Authorization: Bearer …` with this value (a session, an operator key, a data-server key).
    Bearer(String),
    /// A peer bank's headers: `X-Interbank-Bank` and its secret.
    Peer {
        bank: u32,
        secret: String,
    },
}

/// What a probe must get back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// 401 or 403.
    Denied,
    /// Any 4xx.
    Refused,
    /// Exactly this status.
    Status(u16),
}

#[derive(Debug, Clone)]
pub struct Probe {
    /// Which API and what the probe tries, for the report.
    pub api: &'static str,
    pub what: String,
    pub method: Method,
    pub url: String,
    pub cred: Cred,
    pub headers: Vec<(&'static str, String)>,
    pub body: Option<Vec<u8>>,
    pub expect: Expect,
}

/// What a table run found.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    pub tried: usize,
    pub by_api: BTreeMap<&'static str, usize>,
    pub violations: Vec<String>,
}

/// The network the tables are built against: two banks, customers with money, a Pix key, an
/// idempotent deposit already made, and a session already revoked.
#[derive(Debug)]
pub struct World {
    pub business: [String; 2],
    pub dataserver: String,
    pub ds_business: [u32; 2],
    pub ds_keys: [String; 2],
    pub operator_key: String,
    pub secrets: [String; 2],
    pub a: Customer,
    pub b: Customer,
    pub c: Customer,
    pub revoked: String,
    pub key: String,
    pub package: String,
    pub idempotency_key: String,
}

pub const PASSWORD: &str = "senha-muito-segura-1";

fn cpf(n: u64) -> String {
    Document::with_check_digits(&format!("{:09}", 410_000_000 + n)).expect("nine digits").formatted()
}

/// Prepares the world on a started cluster of at least two banks.
pub async fn prepare(c: &Cluster) -> Result<World, String> {
    let http = reqwest::Client::new();
    let (b1, b2) = (c.banks[0].urls()[0].clone(), c.banks[1].urls()[0].clone());
    let a = sign_up(&http, &b1, "Ana Segura", &cpf(1), PASSWORD).await.map_err(|e| e.to_string())?;
    let b = sign_up(&http, &b1, "Bruno Segura", &cpf(2), PASSWORD).await.map_err(|e| e.to_string())?;
    let cu = sign_up(&http, &b2, "Carla Segura", &cpf(3), PASSWORD).await.map_err(|e| e.to_string())?;
    for (base, who) in [(&b1, &a), (&b1, &b), (&b2, &cu)] {
        let op = Operator { http: http.clone(), base: base.clone(), key: c.operator_key.clone() };
        op.deposit(who.ibk(), "100").await.map_err(|e| e.to_string())?;
    }
    let key = "ana.segura@example.com".to_string();
    let _: Value = a
        .call(Method::POST, "/api/keys", Some(&json!({ "account": a.ibk(), "type": "email", "key": key })))
        .await
        .map_err(|e| e.to_string())?;
    // A same-bank package, so that a package id exists to be asked about.
    let t = a.pay(&[(a.ibk().to_string(), b.ibk().to_string(), "1")]).await.map_err(|e| e.to_string())?;
    let idempotency_key = "security-suite-deposit-1".to_string();
    let r = http
        .post(format!("{b1}/api/payments/deposit"))
        .bearer_auth(&a.token)
        .header("idempotency-key", &idempotency_key)
        .json(&json!({ "acc_ibk": a.ibk(), "amount": "1.00" }))
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if !r.status().is_success() {
        return Err(format!("idempotent deposit: {}", r.status()));
    }
    // A second session of A's, then revoked: it must open nothing afterwards.
    let other = harness::client::sign_in(&http, &b1, a.ibk(), PASSWORD).await.map_err(|e| e.to_string())?;
    let r = http.delete(format!("{b1}/api/accounts/auth")).bearer_auth(&other.token).send().await;
    if r.map_err(|e| e.to_string())?.status() != 204 {
        return Err("logout did not answer 204".into());
    }
    let ids = &c.banks[0].ds_opts.keys;
    Ok(World {
        business: [b1, b2],
        dataserver: c.banks[0].ds_url(),
        ds_business: [ids[0].0.get(), ids.get(1).map_or(ids[0].0.get() + 1, |k| k.0.get())],
        ds_keys: [ids[0].1.clone(), format!("{}-wrong", ids[0].1)],
        operator_key: c.operator_key.clone(),
        secrets: [
            dev_bank_secret(harness::cluster::DEV_SECRET_PREFIX, 1),
            dev_bank_secret(harness::cluster::DEV_SECRET_PREFIX, 2),
        ],
        revoked: other.token,
        a,
        b,
        c: cu,
        key,
        package: t.id,
        idempotency_key,
    })
}

struct Table<'w> {
    w: &'w World,
    probes: Vec<Probe>,
}

impl Table<'_> {
    #[allow(clippy::too_many_arguments)]
    fn push(
        &mut self,
        api: &'static str,
        what: &str,
        method: Method,
        url: String,
        cred: Cred,
        body: Option<Vec<u8>>,
        expect: Expect,
    ) {
        self.probes.push(Probe { api, what: what.into(), method, url, cred, headers: vec![], body, expect });
    }

    fn bank1(&self, path: &str) -> String {
        format!("{}{path}", self.w.business[0])
    }

    fn ds(&self, path: &str) -> String {
        format!("{}{path}", self.w.dataserver)
    }
}

fn body(v: &str) -> Option<Vec<u8>> {
    Some(v.as_bytes().to_vec())
}

/// Every protected endpoint × every wrong credential → 401/403.
pub fn authorization_matrix(w: &World) -> Vec<Probe> {
    let mut t = Table { w, probes: vec![] };
    let a = w.a.ibk();
    let operator = Cred::Bearer(w.operator_key.clone());
    let customer = Cred::Bearer(w.a.token.clone());
    let other_customer = Cred::Bearer(w.b.token.clone());
    let peer = Cred::Peer { bank: 2, secret: w.secrets[1].clone() };
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
        (Method::GET, format!("/api/accounts/{}/keys", a.account), None),
        (Method::DELETE, format!("/api/accounts/{}", a.account), None),
        (Method::POST, "/api/keys".into(), Some(register)),
        (Method::DELETE, format!("/api/keys/{key_path}"), None),
        (Method::POST, "/api/payments/deposit".into(), Some(money.clone())),
        (Method::POST, "/api/payments/withdraw".into(), Some(money)),
        (Method::POST, "/api/payments/pay".into(), Some(pay)),
        (Method::GET, format!("/api/payments/{}", w.package), None),
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
    for (m, p) in [(Method::GET, format!("/api/keys/{key_path}")), (Method::DELETE, "/api/accounts/auth".into())] {
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
        for (what, cred) in wrong.iter().cloned().chain([
            ("the operator key on an interbank route", operator.clone()),
            ("a customer's session on an interbank route", customer.clone()),
            ("a peer with another peer's secret", Cred::Peer { bank: 2, secret: w.secrets[0].clone() }),
            ("the bank posing as its own peer", Cred::Peer { bank: 1, secret: w.secrets[0].clone() }),
            ("a bank not in the network", Cred::Peer { bank: 9, secret: w.secrets[1].clone() }),
        ]) {
            t.push("interbank", what, m.clone(), t.bank1(p), cred, b.and_then(body), Expect::Denied);
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
            ("a bank secret on the data server", Cred::Bearer(w.secrets[0].clone())),
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

/// Malformed and hostile requests with valid credentials → a 4xx JSON error, nothing changed.
pub fn hostile_table(w: &World) -> Vec<Probe> {
    let mut t = Table { w, probes: vec![] };
    let a = w.a.ibk();
    let operator = || Cred::Bearer(w.operator_key.clone());
    let customer = || Cred::Bearer(w.a.token.clone());
    let peer = || Cred::Peer { bank: 2, secret: w.secrets[1].clone() };
    let ds = || Cred::Bearer(w.ds_keys[0].clone());
    let huge = |n: usize| Some(format!(r#"{{"x":"{}"}}"#, "a".repeat(n)).into_bytes());

    // Amounts, in every place an amount goes.
    let bad_amounts = [
        "-1",
        "0",
        "0.00",
        "NaN",
        "nan",
        "inf",
        "1e30",
        "1E3",
        "1.234",
        "0.001",
        "abc",
        "",
        " 1",
        "1,00",
        "0x10",
        "99999999999999999999999999",
        "-0.01",
        "１",
    ];
    for amt in bad_amounts {
        let enc = amt.replace(' ', "%20").replace('１', "%EF%BC%91");
        let seg = if enc.is_empty() { "%20".to_string() } else { enc };
        t.push(
            "operator",
            &format!("deposit amount {amt:?}"),
            Method::POST,
            t.bank1(&format!("/deposit/{}/{seg}", a.account)),
            operator(),
            None,
            Expect::Refused,
        );
        t.push(
            "operator",
            &format!("transfer amount {amt:?}"),
            Method::POST,
            t.bank1(&format!("/transfer/{}/{}/{seg}", a.account, w.b.ibk().account)),
            operator(),
            None,
            Expect::Refused,
        );
        let deposit = format!(r#"{{"acc_ibk":"{a}","amount":{amt:?}}}"#);
        t.push(
            "customer",
            &format!("deposit body amount {amt:?}"),
            Method::POST,
            t.bank1("/api/payments/deposit"),
            customer(),
            body(&deposit),
            Expect::Refused,
        );
        let pay =
            format!(r#"{{"author":"{a}","operations":[{{"from":"{a}","to":"{}","amount":"{amt}"}}]}}"#, w.b.ibk());
        t.push(
            "customer",
            &format!("pay amount {amt:?}"),
            Method::POST,
            t.bank1("/api/payments/pay"),
            customer(),
            Some(pay.into_bytes()),
            Expect::Refused,
        );
    }
    for raw in ["-1", "0", "1e30", "1.234", "NaN", "true", "[]", "{}", "null"] {
        let deposit = format!(r#"{{"acc_ibk":"{a}","amount":{raw}}}"#);
        t.push(
            "customer",
            &format!("deposit body amount bare {raw}"),
            Method::POST,
            t.bank1("/api/payments/deposit"),
            customer(),
            body(&deposit),
            Expect::Refused,
        );
    }
    // Account ids out of range and path tricks.
    for id in [
        "0",
        "-1",
        "abc",
        "1.5",
        "18446744073709551616",
        "99999999999999999999",
        "%2e%2e",
        "..%2f..%2fetc%2fpasswd",
        "1%00",
        "%20",
        "1;2",
    ] {
        t.push(
            "operator",
            &format!("balance of {id}"),
            Method::GET,
            t.bank1(&format!("/balance/{id}")),
            operator(),
            None,
            Expect::Refused,
        );
        t.push(
            "customer",
            &format!("account {id}"),
            Method::GET,
            t.bank1(&format!("/api/accounts/{id}")),
            customer(),
            None,
            Expect::Refused,
        );
        t.push(
            "customer",
            &format!("statement of {id}"),
            Method::GET,
            t.bank1(&format!("/api/accounts/{id}/transactions")),
            customer(),
            None,
            Expect::Refused,
        );
        t.push(
            "dataserver",
            &format!("getAmount of {id}"),
            Method::GET,
            t.ds(&format!("/getAmount/{}/{id}", w.ds_business[0])),
            ds(),
            None,
            Expect::Refused,
        );
    }
    t.push(
        "operator",
        "transfer to the same account",
        Method::POST,
        t.bank1(&format!("/transfer/{0}/{0}/1", a.account)),
        operator(),
        None,
        Expect::Refused,
    );
    t.push(
        "operator",
        "withdraw more than the balance",
        Method::POST,
        t.bank1(&format!("/withdrawal/{}/1000000", a.account)),
        operator(),
        None,
        Expect::Refused,
    );
    t.push(
        "operator",
        "an unknown route",
        Method::GET,
        t.bank1("/../../etc/passwd"),
        operator(),
        None,
        Expect::Refused,
    );
    t.push(
        "operator",
        "a wrong method",
        Method::DELETE,
        t.bank1(&format!("/balance/{}", a.account)),
        operator(),
        None,
        Expect::Refused,
    );

    // Opening accounts: every field wrong in turn.
    let open = |name: &str, docs: &str, kind: &str, pw: &str| {
        Some(format!(r#"{{"name":{name},"documents":{docs},"type":{kind},"password":{pw}}}"#).into_bytes())
    };
    let good_doc = format!("[{:?}]", cpf(50));
    for (what, b) in [
        ("malformed JSON", body("{")),
        ("JSON array", body("[]")),
        ("JSON null", body("null")),
        ("empty body", body("")),
        ("name a number", open("1", &good_doc, r#""individual""#, r#""senha-segura-123""#)),
        ("name empty", open(r#""""#, &good_doc, r#""individual""#, r#""senha-segura-123""#)),
        (
            "name over-long",
            open(&format!("{:?}", "n".repeat(500)), &good_doc, r#""individual""#, r#""senha-segura-123""#),
        ),
        (
            "CPF with wrong check digits",
            open(r#""X""#, r#"["123.456.789-00"]"#, r#""individual""#, r#""senha-segura-123""#),
        ),
        ("CPF all the same digit", open(r#""X""#, r#"["111.111.111-11"]"#, r#""individual""#, r#""senha-segura-123""#)),
        ("CPF too short", open(r#""X""#, r#"["123"]"#, r#""individual""#, r#""senha-segura-123""#)),
        (
            "CNPJ with wrong check digits",
            open(r#""X""#, r#"["11.222.333/0001-00"]"#, r#""legal""#, r#""senha-segura-123""#),
        ),
        (
            "a CNPJ for an individual",
            open(r#""X""#, r#"["11.222.333/0001-81"]"#, r#""individual""#, r#""senha-segura-123""#),
        ),
        ("no documents", open(r#""X""#, "[]", r#""individual""#, r#""senha-segura-123""#)),
        ("documents not a list", open(r#""X""#, r#""123""#, r#""individual""#, r#""senha-segura-123""#)),
        (
            "ten thousand documents",
            open(
                r#""X""#,
                &format!("[{}]", vec![format!("{:?}", cpf(51)); 10_000].join(",")),
                r#""joint""#,
                r#""senha-segura-123""#,
            ),
        ),
        ("unknown account type", open(r#""X""#, &good_doc, r#""savings""#, r#""senha-segura-123""#)),
        ("password too short", open(r#""X""#, &good_doc, r#""individual""#, r#""short""#)),
        ("password over-long", open(r#""X""#, &good_doc, r#""individual""#, &format!("{:?}", "p".repeat(1000)))),
        (
            "an extra field",
            body(&format!(
                r#"{{"name":"X","documents":{good_doc},"type":"individual","password":"senha-segura-123","balance":"1000000"}}"#
            )),
        ),
        ("a missing field", body(&format!(r#"{{"name":"X","documents":{good_doc},"type":"individual"}}"#))),
        (
            "a document already holding an account",
            open(r#""X""#, &format!("[{:?}]", cpf(1)), r#""individual""#, r#""senha-segura-123""#),
        ),
        ("a huge body", huge(5 << 20)),
        ("a deeply nested body", body(&format!("{}{}", "[".repeat(10_000), "]".repeat(10_000)))),
        ("invalid UTF-8", Some(vec![b'{', b'"', 0xff, 0xfe, b'"', b'}'])),
    ] {
        t.push(
            "customer",
            &format!("open account: {what}"),
            Method::POST,
            t.bank1("/api/accounts"),
            Cred::None,
            b,
            Expect::Refused,
        );
    }
    // Logging in.
    for (what, b) in [
        ("IBK malformed", format!(r#"{{"ibk":"1-","password":"{PASSWORD}"}}"#)),
        ("IBK of another bank", format!(r#"{{"ibk":"2-1","password":"{PASSWORD}"}}"#)),
        ("IBK a number", format!(r#"{{"ibk":11,"password":"{PASSWORD}"}}"#)),
        ("no password", format!(r#"{{"ibk":"{a}"}}"#)),
        ("password a list", format!(r#"{{"ibk":"{a}","password":["x"]}}"#)),
        ("an extra field", format!(r#"{{"ibk":"{a}","password":"x","admin":true}}"#)),
        ("bank 0", format!(r#"{{"ibk":"0-1","password":"{PASSWORD}"}}"#)),
    ] {
        t.push(
            "customer",
            &format!("login: {what}"),
            Method::POST,
            t.bank1("/api/accounts/auth"),
            Cred::None,
            body(&b),
            Expect::Refused,
        );
    }
    t.push(
        "customer",
        "statement query limit=x",
        Method::GET,
        t.bank1(&format!("/api/accounts/{}/transactions?limit=x", a.account)),
        customer(),
        None,
        Expect::Refused,
    );
    t.push(
        "customer",
        "statement query limit=-1",
        Method::GET,
        t.bank1(&format!("/api/accounts/{}/transactions?limit=-1", a.account)),
        customer(),
        None,
        Expect::Refused,
    );
    t.push(
        "customer",
        "statement unknown query",
        Method::GET,
        t.bank1(&format!("/api/accounts/{}/transactions?drop=1", a.account)),
        customer(),
        None,
        Expect::Refused,
    );

    // Payments.
    let b_ibk = w.b.ibk();
    for (what, b) in [
        ("operations not a list", format!(r#"{{"author":"{a}","operations":"all"}}"#)),
        ("no operations", format!(r#"{{"author":"{a}","operations":[]}}"#)),
        (
            "seventeen operations",
            format!(
                r#"{{"author":"{a}","operations":[{}]}}"#,
                vec![format!(r#"{{"from":"{a}","to":"{b_ibk}","amount":"1"}}"#); 17].join(",")
            ),
        ),
        (
            "from another customer's account",
            format!(r#"{{"author":"{a}","operations":[{{"from":"{b_ibk}","to":"{a}","amount":"1"}}]}}"#),
        ),
        (
            "an author that is not the caller",
            format!(r#"{{"author":"{b_ibk}","operations":[{{"from":"{b_ibk}","to":"{a}","amount":"1"}}]}}"#),
        ),
        ("to itself", format!(r#"{{"author":"{a}","operations":[{{"from":"{a}","to":"{a}","amount":"1"}}]}}"#)),
        (
            "to an unknown account",
            format!(r#"{{"author":"{a}","operations":[{{"from":"{a}","to":"1-999999","amount":"1"}}]}}"#),
        ),
        (
            "to an unknown bank",
            format!(r#"{{"author":"{a}","operations":[{{"from":"{a}","to":"77-1","amount":"1"}}]}}"#),
        ),
        (
            "a key as an object, not a string",
            format!(
                r#"{{"author":"{a}","operations":[{{"from":"{a}","to":{{"key":"ninguem@example.com"}},"amount":"1"}}]}}"#
            ),
        ),
        (
            "more than the balance",
            format!(r#"{{"author":"{a}","operations":[{{"from":"{a}","to":"{b_ibk}","amount":"1000000"}}]}}"#),
        ),
        (
            "the balance spent twice",
            format!(
                r#"{{"author":"{a}","operations":[{{"from":"{a}","to":"{b_ibk}","amount":"99"}},{{"from":"{a}","to":"{b_ibk}","amount":"99"}}]}}"#
            ),
        ),
        (
            "an extra field",
            format!(r#"{{"author":"{a}","operations":[{{"from":"{a}","to":"{b_ibk}","amount":"1","fee":"0"}}]}}"#),
        ),
        (
            "the IBK as a number",
            format!(r#"{{"author":"{a}","operations":[{{"from":11,"to":"{b_ibk}","amount":"1"}}]}}"#),
        ),
    ] {
        t.push(
            "customer",
            &format!("pay: {what}"),
            Method::POST,
            t.bank1("/api/payments/pay"),
            customer(),
            body(&b),
            Expect::Refused,
        );
    }
    t.push(
        "customer",
        "pay: to an unregistered key",
        Method::POST,
        t.bank1("/api/payments/pay"),
        customer(),
        body(&format!(r#"{{"author":"{a}","operations":[{{"from":"{a}","to":"ninguem@example.com","amount":"1"}}]}}"#)),
        Expect::Status(404),
    );
    for (what, b) in [
        ("withdraw more than the balance", format!(r#"{{"acc_ibk":"{a}","amount":"1000000"}}"#)),
        ("deposit to an account of another bank", r#"{"acc_ibk":"2-1","amount":"1"}"#.to_string()),
        ("deposit to an unknown account", r#"{"acc_ibk":"1-999999","amount":"1"}"#.to_string()),
        ("deposit with a missing amount", format!(r#"{{"acc_ibk":"{a}"}}"#)),
    ] {
        let path = if what.starts_with("withdraw") { "/api/payments/withdraw" } else { "/api/payments/deposit" };
        t.push("customer", what, Method::POST, t.bank1(path), customer(), body(&b), Expect::Refused);
    }
    // The same Idempotency-Key with another payload; over-long keys.
    let deposit = |amount: &str| body(&format!(r#"{{"acc_ibk":"{a}","amount":"{amount}"}}"#));
    let operator_deposit = t.bank1(&format!("/deposit/{}/1", a.account));
    for (what, url, cred, key, b) in [
        (
            "a used Idempotency-Key with another amount",
            t.bank1("/api/payments/deposit"),
            customer(),
            w.idempotency_key.clone(),
            deposit("2.00"),
        ),
        (
            "an over-long Idempotency-Key",
            t.bank1("/api/payments/deposit"),
            customer(),
            "k".repeat(500),
            deposit("1.00"),
        ),
        (
            "an operator deposit with an over-long Idempotency-Key",
            operator_deposit,
            operator(),
            "x".repeat(129),
            deposit("1.00"),
        ),
    ] {
        let headers = vec![("idempotency-key", key)];
        t.probes.push(Probe {
            api: "customer",
            what: what.into(),
            method: Method::POST,
            url,
            cred,
            headers,
            body: b,
            expect: Expect::Refused,
        });
    }
    for id in ["", "..", "a-b", "%00", &"x".repeat(65), "Robert');DROP TABLE"] {
        let enc = id.replace(' ', "%20").replace('\'', "%27").replace(';', "%3B");
        t.push(
            "customer",
            &format!("package id {id:?}"),
            Method::GET,
            t.bank1(&format!("/api/payments/{enc}")),
            customer(),
            None,
            Expect::Refused,
        );
    }
    t.push(
        "customer",
        "an unknown package",
        Method::GET,
        t.bank1("/api/payments/doesnotexist"),
        customer(),
        None,
        Expect::Refused,
    );

    // Pix keys: invalid CPF / e-mail / phone keys, over-long keys, wrong owners.
    for (kind, key) in [
        ("cpf", "123.456.789-00"),
        ("cpf", "111.111.111-11"),
        ("cpf", "1234"),
        ("cnpj", "11.222.333/0001-00"),
        ("email", "no-at-sign"),
        ("email", "a@"),
        ("email", "@b.com"),
        ("email", "a b@c.com"),
        ("phone", "12345"),
        ("phone", "+55 11 9"),
        ("phone", "+1-555-0100-0000-0000"),
        ("phone", "abc"),
        ("random", "not-a-uuid"),
        ("email", &format!("{}@example.com", "a".repeat(300))),
        ("unknown", "x"),
    ] {
        let b = format!(r#"{{"account":"{a}","type":"{kind}","key":{key:?}}}"#);
        t.push(
            "customer",
            &format!("register {kind} key {key:.24}"),
            Method::POST,
            t.bank1("/api/keys"),
            customer(),
            body(&b),
            Expect::Refused,
        );
    }
    t.push(
        "customer",
        "register a key already taken",
        Method::POST,
        t.bank1("/api/keys"),
        customer(),
        body(&format!(r#"{{"account":"{a}","type":"email","key":"{}"}}"#, w.key)),
        Expect::Refused,
    );
    t.push(
        "customer",
        "register a key for another's account",
        Method::POST,
        t.bank1("/api/keys"),
        customer(),
        body(&format!(r#"{{"account":"{b_ibk}","type":"email","key":"b@example.com"}}"#)),
        Expect::Refused,
    );
    t.push(
        "customer",
        "register for an account of another bank",
        Method::POST,
        t.bank1("/api/keys"),
        customer(),
        body(r#"{"account":"2-1","type":"email","key":"b@example.com"}"#),
        Expect::Refused,
    );
    for key in ["not-a-key", "email:", "phone:+55", "cpf:000", "%2e%2e", &"z".repeat(400)] {
        t.push(
            "customer",
            &format!("look up key {key:.24}"),
            Method::GET,
            t.bank1(&format!("/api/keys/{key}")),
            customer(),
            None,
            Expect::Refused,
        );
        t.push(
            "customer",
            &format!("delete key {key:.24}"),
            Method::DELETE,
            t.bank1(&format!("/api/keys/{key}")),
            customer(),
            None,
            Expect::Refused,
        );
    }

    // Interbank routes with a valid peer.

    let ops = format!(r#"[{{"from":"2-1","to":"{a}","amount":"1"}}]"#);
    for (what, m, p, b) in [
        ("token pass: malformed", Method::PUT, "/interbank/token", "{".to_string()),
        ("token pass: epoch a string", Method::PUT, "/interbank/token", r#"{"epoch":"1","seq":0,"from":2}"#.into()),
        ("token pass: negative seq", Method::PUT, "/interbank/token", r#"{"epoch":1,"seq":-1,"from":2}"#.into()),
        ("token pass: a stale token", Method::PUT, "/interbank/token", r#"{"epoch":0,"seq":0,"from":2}"#.into()),
        (
            "token pass: from another bank than the caller",
            Method::PUT,
            "/interbank/token",
            r#"{"epoch":1,"seq":0,"from":1}"#.into(),
        ),
        ("token pass: an extra field", Method::PUT, "/interbank/token", r#"{"epoch":1,"seq":0,"from":2,"x":1}"#.into()),
        ("prepare: malformed", Method::POST, "/interbank/prepare", "[".into()),
        (
            "prepare: a stale epoch",
            Method::POST,
            "/interbank/prepare",
            format!(
                r#"{{"epoch":0,"coordinator":2,"items":[{{"txn":"p.1","package":"p","author":"2-1","author_documents":[],"ops":{ops}}}]}}"#
            ),
        ),
        (
            "prepare: items not a list",
            Method::POST,
            "/interbank/prepare",
            r#"{"epoch":1,"coordinator":2,"items":{}}"#.into(),
        ),
        (
            "prepare: a zero amount",
            Method::POST,
            "/interbank/prepare",
            format!(
                r#"{{"epoch":99999999999,"coordinator":2,"items":[{{"txn":"p.1","package":"p","author":"2-1","author_documents":[],"ops":[{{"from":"2-1","to":"{a}","amount":"0"}}]}}]}}"#
            ),
        ),
        (
            "prepare: coordinator not the caller",
            Method::POST,
            "/interbank/prepare",
            format!(
                r#"{{"epoch":99999999999,"coordinator":1,"items":[{{"txn":"p.1","package":"p","author":"2-1","author_documents":[],"ops":{ops}}}]}}"#
            ),
        ),
        (
            "prepare: a huge batch",
            Method::POST,
            "/interbank/prepare",
            format!(
                r#"{{"epoch":1,"coordinator":2,"items":[{}]}}"#,
                vec![
                    format!(r#"{{"txn":"p.1","package":"p","author":"2-1","author_documents":[],"ops":{ops}}}"#);
                    20_000
                ]
                .join(",")
            ),
        ),
        ("commit: txns not a list", Method::POST, "/interbank/commit", r#"{"txns":"x"}"#.into()),
        (
            "commit: a txn over-long",
            Method::POST,
            "/interbank/commit",
            format!(r#"{{"txns":["{}"]}}"#, "t".repeat(500)),
        ),
        ("rollback: malformed", Method::POST, "/interbank/rollback", "{{".into()),
        ("rollback: an extra field", Method::POST, "/interbank/rollback", r#"{"txns":[],"all":true}"#.into()),
        ("account by IBK: malformed IBK", Method::POST, "/interbank/account/ibk/1-x", "{}".into()),
        ("account by IBK: another bank's IBK", Method::POST, "/interbank/account/ibk/2-1", "{}".into()),
        ("key reservation: invalid key", Method::POST, "/interbank/keys", r#"{"key":"no-at","ibk":"2-1"}"#.into()),
        ("key reservation: malformed", Method::POST, "/interbank/keys", "{".into()),
    ] {
        t.push("interbank", what, m, t.bank1(p), peer(), body(&b), Expect::Refused);
    }
    for (what, p) in [
        ("decision: an over-long txn", format!("/interbank/decision/{}", "t".repeat(300))),
        ("accounts of a malformed document", "/account/123".into()),
        ("accounts of a document with wrong check digits", "/account/12345678900".into()),
        ("key lookup: invalid key", "/interbank/keys/not-a-key".into()),
        ("key removal: malformed IBK", "/interbank/keys/email:a@b.com/xyz".into()),
    ] {
        let m = if p.starts_with("/interbank/keys/email") { Method::DELETE } else { Method::GET };
        t.push("interbank", what, m, t.bank1(&p), peer(), None, Expect::Refused);
    }

    // The data server with a valid business key.
    let me = w.ds_business[0];
    let commit = |records: &str, set: &str| format!(r#"{{"tx_id":"h","set":{set},"records":{records}}}"#);
    let c = format!("/v1/{me}/commit");
    // Every one a POST.
    for (what, p, b) in [
        ("commit: malformed", c.clone(), "{".to_string()),
        ("commit: a negative amount", c.clone(), commit("[]", r#"[{"account":1,"amount":"-1","token":1}]"#)),
        ("commit: an amount of 1e30", c.clone(), commit("[]", r#"[{"account":1,"amount":"1e30","token":1}]"#)),
        ("commit: three decimals", c.clone(), commit("[]", r#"[{"account":1,"amount":"1.001","token":1}]"#)),
        ("commit: a made-up fencing token", c.clone(), commit("[]", r#"[{"account":1,"amount":"5","token":12345}]"#)),
        ("commit: account 0", c.clone(), commit("[]", r#"[{"account":0,"amount":"5","token":1}]"#)),
        (
            "commit: an over-long collection",
            c.clone(),
            commit(&format!(r#"[{{"op":"put","collection":"{}","key":"k","value":{{}}}}]"#, "c".repeat(300)), "[]"),
        ),
        (
            "commit: a wrong record condition",
            c.clone(),
            commit(
                r#"[{"op":"put","collection":"accounts","key":"no-such-record","value":{},"if_version":999999}]"#,
                "[]",
            ),
        ),
        (
            "commit: an over-long tx id",
            c.clone(),
            format!(r#"{{"tx_id":"{}","set":[],"records":[]}}"#, "t".repeat(1000)),
        ),
        ("commit: a huge body", c.clone(), format!(r#"{{"tx_id":"{}"}}"#, "t".repeat(5 << 20))),
        ("locks: not a list", format!("/v1/{me}/locks"), r#"{"accounts":1}"#.into()),
        (
            "locks: too many",
            format!("/v1/{me}/locks"),
            format!(r#"{{"accounts":[{}]}}"#, (1..=5000).map(|i| i.to_string()).collect::<Vec<_>>().join(",")),
        ),
        (
            "locks: a lease of 10^12 ms",
            format!("/v1/{me}/locks"),
            r#"{"accounts":[1],"lease_ms":1000000000000}"#.into(),
        ),
        (
            "release: a made-up token",
            format!("/v1/{me}/locks/release"),
            r#"{"locks":[{"account":1,"token":"x"}]}"#.into(),
        ),
        ("unLock: a made-up token", format!("/unLock/{me}/1"), r#"{"token":"abc"}"#.into()),
        ("setAmount: a made-up token", format!("/setAmount/{me}/1"), r#"{"amount":"5","token":42}"#.into()),
        ("setAmount: NaN", format!("/setAmount/{me}/1/NaN"), String::new()),
        ("setAmount: negative", format!("/setAmount/{me}/1/-5"), String::new()),
    ] {
        t.push("dataserver", what, Method::POST, t.ds(&p), ds(), Some(b.into_bytes()), Expect::Refused);
    }
    for (what, p) in [
        ("records: a path trick", format!("/v1/{me}/records/..%2F..%2Fetc")),
        ("records: an over-long key", format!("/v1/{me}/records/accounts/{}", "k".repeat(1000))),
        ("journal: a bad query", format!("/v1/{me}/journal?after=x")),
        ("amounts: limit over the maximum", format!("/v1/{me}/amounts?limit=100000000")),
        ("amounts: account 0", format!("/v1/{me}/amounts/0")),
        ("an unknown route", "/v2/anything".into()),
    ] {
        t.push("dataserver", what, Method::GET, t.ds(&p), ds(), None, Expect::Refused);
    }
    t.probes
}

/// Whether `text` is the JSON error body with one of that API's codes.
fn error_body_of(api: &str, text: &str) -> bool {
    if api == "dataserver" {
        serde_json::from_str::<dataserver_api::ErrorBody>(text).is_ok()
    } else {
        serde_json::from_str::<ErrorBody>(text).is_ok()
    }
}

/// Sends every probe and checks its answer.
pub async fn run(probes: &[Probe]) -> Outcome {
    let http = reqwest::Client::builder().timeout(std::time::Duration::from_secs(30)).build().expect("client");
    let mut out = Outcome::default();
    for p in probes {
        out.tried += 1;
        *out.by_api.entry(p.api).or_insert(0) += 1;
        let mut rb = http.request(p.method.clone(), &p.url);
        rb = match &p.cred {
            Cred::None => rb,
            Cred::Bearer(v) => rb.header("authorization", format!("Bearer {v}")),
            Cred::Peer { bank, secret } => rb
                .header(shared::api::BANK_HEADER, bank.to_string())
                .header("authorization", format!("Bearer {secret}")),
        };
        for (k, v) in &p.headers {
            rb = rb.header(*k, v.as_bytes());
        }
        if let Some(b) = &p.body {
            rb = rb.header("content-type", "application/json").body(b.clone());
        }
        let label = format!("[{}] {} {} ({})", p.api, p.method, p.url, p.what);
        let resp = match rb.send().await {
            Ok(r) => r,
            Err(e) => {
                out.violations.push(format!("{label}: no answer: {e}"));
                continue;
            }
        };
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        let ok_status = match p.expect {
            Expect::Denied => status == 401 || status == 403,
            Expect::Refused => (400..500).contains(&status),
            Expect::Status(s) => status == s,
        };
        if !ok_status {
            out.violations.push(format!("{label}: expected {:?}, got {status}: {text:.200}", p.expect));
        } else if !error_body_of(p.api, &text) {
            out.violations.push(format!("{label}: {status} without the JSON error body: {text:.200}"));
        }
    }
    out
}

/// What [`suite`] found.
#[derive(Debug)]
pub struct Suite {
    pub world: World,
    pub matrix: Outcome,
    pub hostile: Outcome,
    /// Changes of durable state between before and after, and any 5xx answered.
    pub changed: Vec<String>,
}

/// Prepares the world, then runs both tables between two snapshots.
pub async fn suite(c: &Cluster) -> Result<Suite, String> {
    let world = prepare(c).await?;
    let before = snapshot(c).await?;
    let matrix = run(&authorization_matrix(&world)).await;
    let hostile = run(&hostile_table(&world)).await;
    let after = snapshot(c).await?;
    let mut changed = diff(&before, &after);
    let errors = server_errors(c).await?;
    if errors > 0 {
        changed.push(format!("{errors} responses were 5xx"));
    }
    Ok(Suite { world, matrix, hostile, changed })
}

/// Every bank's durable state that a request could change, as (collection, key) → version, plus
/// the posted amounts and the journal's length. Ring bookkeeping is left out: the token moves by
/// itself.
pub async fn snapshot(c: &Cluster) -> Result<BTreeMap<String, String>, String> {
    const COLLECTIONS: [&str; 14] = [
        "accounts",
        "idempotency",
        "holders",
        "counters",
        "sessions",
        "packages",
        "holds",
        "queue",
        "decisions",
        "undelivered",
        "prepared",
        "outcomes",
        "positions",
        "pix",
    ];
    let mut out = BTreeMap::new();
    for bank in &c.banks {
        let ds = bank.ds_client();
        let h = ds.health().await.map_err(|e| e.to_string())?;
        out.insert(format!("{}/accounts", bank.id), h.accounts.to_string());
        out.insert(format!("{}/journal_seq", bank.id), h.journal_seq.to_string());
        let amounts = ds.amounts_after(None, 1_000).await.map_err(|e| e.to_string())?;
        for a in amounts.amounts {
            out.insert(format!("{}/amount/{}", bank.id, a.account), a.amount.to_string());
        }
        for col in COLLECTIONS {
            let page = ds.scan_records(col, "", None, 1_000).await.map_err(|e| e.to_string())?;
            for r in page.records {
                out.insert(format!("{}/{col}/{}", bank.id, r.key), r.version.to_string());
            }
        }
    }
    Ok(out)
}

/// The differences between two snapshots, for a readable failure.
pub fn diff(before: &BTreeMap<String, String>, after: &BTreeMap<String, String>) -> Vec<String> {
    let mut d = Vec::new();
    for (k, v) in before {
        match after.get(k) {
            None => d.push(format!("{k}: gone (was {v})")),
            Some(w) if w != v => d.push(format!("{k}: {v} → {w}")),
            Some(_) => {}
        }
    }
    d.extend(after.iter().filter(|(k, _)| !before.contains_key(*k)).map(|(k, v)| format!("{k}: new ({v})")));
    d
}

/// The 5xx counters of every process, which must stay at zero.
pub async fn server_errors(c: &Cluster) -> Result<u64, String> {
    let http = reqwest::Client::new();
    let mut total = 0;
    for bank in &c.banks {
        let m = bank.ds_client().metrics().await.map_err(|e| e.to_string())?;
        total += counter(&m, "dataserver_responses_5xx_total");
        for url in bank.urls() {
            let r = http.get(format!("{url}/metrics")).bearer_auth(&c.operator_key).send().await;
            let m = r.map_err(|e| e.to_string())?.text().await.map_err(|e| e.to_string())?;
            total += counter(&m, "business_responses_5xx_total");
        }
    }
    Ok(total)
}

fn counter(metrics: &str, name: &str) -> u64 {
    metrics.lines().find_map(|l| l.strip_prefix(name).and_then(|v| v.trim().parse().ok())).unwrap_or(0)
}
