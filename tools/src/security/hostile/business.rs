//! Hostile requests to the business API (operator and customer routes), by theme.

use reqwest::Method;

use crate::security::world::cpf;
use crate::security::{Cred, Expect, PASSWORD, Probe, Table, body, huge};

/// Amounts, in every place an amount goes.
pub(super) fn amounts(t: &mut Table<'_>) {
    let a = t.w.a.ibk();
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
            t.operator(),
            None,
            Expect::Refused,
        );
        t.push(
            "operator",
            &format!("transfer amount {amt:?}"),
            Method::POST,
            t.bank1(&format!("/transfer/{}/{}/{seg}", a.account, t.w.b.ibk().account)),
            t.operator(),
            None,
            Expect::Refused,
        );
        let deposit = format!(r#"{{"acc_ibk":"{a}","amount":{amt:?}}}"#);
        t.push(
            "customer",
            &format!("deposit body amount {amt:?}"),
            Method::POST,
            t.bank1("/api/payments/deposit"),
            t.customer(),
            body(&deposit),
            Expect::Refused,
        );
        let pay =
            format!(r#"{{"author":"{a}","operations":[{{"from":"{a}","to":"{}","amount":"{amt}"}}]}}"#, t.w.b.ibk());
        t.push(
            "customer",
            &format!("pay amount {amt:?}"),
            Method::POST,
            t.bank1("/api/payments/pay"),
            t.customer(),
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
            t.customer(),
            body(&deposit),
            Expect::Refused,
        );
    }
}

/// Account ids out of range and path tricks.
pub(super) fn ids(t: &mut Table<'_>) {
    let a = t.w.a.ibk();
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
            t.operator(),
            None,
            Expect::Refused,
        );
        t.push(
            "customer",
            &format!("account {id}"),
            Method::GET,
            t.bank1(&format!("/api/accounts/{id}")),
            t.customer(),
            None,
            Expect::Refused,
        );
        t.push(
            "customer",
            &format!("statement of {id}"),
            Method::GET,
            t.bank1(&format!("/api/accounts/{id}/transactions")),
            t.customer(),
            None,
            Expect::Refused,
        );
        t.push(
            "dataserver",
            &format!("getAmount of {id}"),
            Method::GET,
            t.ds(&format!("/getAmount/{}/{id}", t.w.ds_business[0])),
            t.ds_key(),
            None,
            Expect::Refused,
        );
    }
    t.push(
        "operator",
        "transfer to the same account",
        Method::POST,
        t.bank1(&format!("/transfer/{0}/{0}/1", a.account)),
        t.operator(),
        None,
        Expect::Refused,
    );
    t.push(
        "operator",
        "withdraw more than the balance",
        Method::POST,
        t.bank1(&format!("/withdrawal/{}/1000000", a.account)),
        t.operator(),
        None,
        Expect::Refused,
    );
    t.push(
        "operator",
        "an unknown route",
        Method::GET,
        t.bank1("/../../etc/passwd"),
        t.operator(),
        None,
        Expect::Refused,
    );
    t.push(
        "operator",
        "a wrong method",
        Method::DELETE,
        t.bank1(&format!("/balance/{}", a.account)),
        t.operator(),
        None,
        Expect::Refused,
    );
}

/// Opening accounts: every field wrong in turn.
pub(super) fn openings(t: &mut Table<'_>) {
    let _a = t.w.a.ibk();
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
}

/// Logging in.
pub(super) fn login(t: &mut Table<'_>) {
    let a = t.w.a.ibk();
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
        t.customer(),
        None,
        Expect::Refused,
    );
    t.push(
        "customer",
        "statement query limit=-1",
        Method::GET,
        t.bank1(&format!("/api/accounts/{}/transactions?limit=-1", a.account)),
        t.customer(),
        None,
        Expect::Refused,
    );
    t.push(
        "customer",
        "statement unknown query",
        Method::GET,
        t.bank1(&format!("/api/accounts/{}/transactions?drop=1", a.account)),
        t.customer(),
        None,
        Expect::Refused,
    );
}

/// Payments.
pub(super) fn payments(t: &mut Table<'_>) {
    let a = t.w.a.ibk();
    // Payments.
    let b_ibk = t.w.b.ibk();
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
            t.customer(),
            body(&b),
            Expect::Refused,
        );
    }
    t.push(
        "customer",
        "pay: to an unregistered key",
        Method::POST,
        t.bank1("/api/payments/pay"),
        t.customer(),
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
        t.push("customer", what, Method::POST, t.bank1(path), t.customer(), body(&b), Expect::Refused);
    }
}

/// The same Idempotency-Key with another payload; over-long keys.
pub(super) fn idempotency(t: &mut Table<'_>) {
    let a = t.w.a.ibk();
    // The same Idempotency-Key with another payload; over-long keys.
    let deposit = |amount: &str| body(&format!(r#"{{"acc_ibk":"{a}","amount":"{amount}"}}"#));
    let operator_deposit = t.bank1(&format!("/deposit/{}/1", a.account));
    for (what, url, cred, key, b) in [
        (
            "a used Idempotency-Key with another amount",
            t.bank1("/api/payments/deposit"),
            t.customer(),
            t.w.idempotency_key.clone(),
            deposit("2.00"),
        ),
        (
            "an over-long Idempotency-Key",
            t.bank1("/api/payments/deposit"),
            t.customer(),
            "k".repeat(500),
            deposit("1.00"),
        ),
        (
            "an operator deposit with an over-long Idempotency-Key",
            operator_deposit,
            t.operator(),
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
            t.customer(),
            None,
            Expect::Refused,
        );
    }
    t.push(
        "customer",
        "an unknown package",
        Method::GET,
        t.bank1("/api/payments/doesnotexist"),
        t.customer(),
        None,
        Expect::Refused,
    );
}

/// Pix keys: invalid CPF / e-mail / phone keys, over-long keys, wrong owners.
pub(super) fn keys(t: &mut Table<'_>) {
    let b_ibk = t.w.b.ibk();
    let a = t.w.a.ibk();
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
            t.customer(),
            body(&b),
            Expect::Refused,
        );
    }
    t.push(
        "customer",
        "register a key already taken",
        Method::POST,
        t.bank1("/api/keys"),
        t.customer(),
        body(&format!(r#"{{"account":"{a}","type":"email","key":"{}"}}"#, t.w.key)),
        Expect::Refused,
    );
    t.push(
        "customer",
        "register a key for another's account",
        Method::POST,
        t.bank1("/api/keys"),
        t.customer(),
        body(&format!(r#"{{"account":"{b_ibk}","type":"email","key":"b@example.com"}}"#)),
        Expect::Refused,
    );
    t.push(
        "customer",
        "register for an account of another bank",
        Method::POST,
        t.bank1("/api/keys"),
        t.customer(),
        body(r#"{"account":"2-1","type":"email","key":"b@example.com"}"#),
        Expect::Refused,
    );
    // Consents: every malformed or out-of-bounds one refused whole, nothing stored.
    let b_acc = t.w.b.ibk();
    for (what, b) in [
        ("consent: malformed", "{".to_string()),
        ("consent: a negative amount", format!(r#"{{"account":"{a}","grantee_bank":2,"amount_max":"-1"}}"#)),
        ("consent: a zero amount", format!(r#"{{"account":"{a}","grantee_bank":2,"amount_max":"0"}}"#)),
        ("consent: to its own bank", format!(r#"{{"account":"{a}","grantee_bank":1,"amount_max":"1"}}"#)),
        ("consent: to a bank not in the network", format!(r#"{{"account":"{a}","grantee_bank":9,"amount_max":"1"}}"#)),
        (
            "consent: expiring in the past",
            format!(r#"{{"account":"{a}","grantee_bank":2,"amount_max":"1","expires_at":"2001-01-01T00:00:00Z"}}"#),
        ),
        (
            "consent: expiring beyond the limit",
            format!(r#"{{"account":"{a}","grantee_bank":2,"amount_max":"1","expires_at":"2999-01-01T00:00:00Z"}}"#),
        ),
        (
            "consent: an expiry that is no time",
            format!(r#"{{"account":"{a}","grantee_bank":2,"amount_max":"1","expires_at":"tomorrow"}}"#),
        ),
        ("consent: another's account", format!(r#"{{"account":"{b_acc}","grantee_bank":2,"amount_max":"1"}}"#)),
        ("consent: another bank's account", r#"{"account":"2-1","grantee_bank":1,"amount_max":"1"}"#.to_string()),
        ("consent: an extra field", format!(r#"{{"account":"{a}","grantee_bank":2,"amount_max":"1","used":"0"}}"#)),
    ] {
        t.push("customer", what, Method::POST, t.bank1("/api/consents"), t.customer(), body(&b), Expect::Refused);
    }
    for id in ["x", "1.zz", &format!("{}.{}", a.account, "0".repeat(31)), &"9".repeat(300)] {
        let what = format!("revoke consent {id:.24}");
        t.push(
            "customer",
            &what,
            Method::DELETE,
            t.bank1(&format!("/api/consents/{id}")),
            t.customer(),
            None,
            Expect::Refused,
        );
    }
    for q in ["", "?account=x", "?account=2-1", "?account=1-1&x=1"] {
        let what = format!("list consents {q}");
        t.push(
            "customer",
            &what,
            Method::GET,
            t.bank1(&format!("/api/consents{q}")),
            t.customer(),
            None,
            Expect::Refused,
        );
    }
    for key in ["not-a-key", "email:", "phone:+55", "cpf:000", "%2e%2e", &"z".repeat(400)] {
        t.push(
            "customer",
            &format!("look up key {key:.24}"),
            Method::GET,
            t.bank1(&format!("/api/keys/{key}")),
            t.customer(),
            None,
            Expect::Refused,
        );
        t.push(
            "customer",
            &format!("delete key {key:.24}"),
            Method::DELETE,
            t.bank1(&format!("/api/keys/{key}")),
            t.customer(),
            None,
            Expect::Refused,
        );
    }
}
