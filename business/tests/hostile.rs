//! Every business endpoint refuses missing or wrong credentials and malformed input with a JSON
//! 4xx, never a 5xx, and changes nothing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use reqwest::{Method, StatusCode};
use serde_json::json;
use shared::{Document, ErrorBody, ErrorCode};

/// method, path, body, credentials, expected status, expected code
type Case = (Method, &'static str, Option<String>, Cred, u16, ErrorCode);

enum Cred {
    None,
    Operator,
    Bearer(String),
    Auth(&'static str),
}

#[tokio::test]
async fn auth_and_bad_input_on_every_endpoint() {
    let bank = start_bank(1, &[]);
    let base = bank.url(0);
    let http = pki::http_client();
    let cpf = |n: u64| Document::with_check_digits(&format!("{:09}", 300_000_000 + n)).unwrap().formatted();
    // Two customers with money, so that a wrongly accepted request would have something to move.
    for n in 1..=2 {
        let body = json!({ "name": format!("C{n}"), "documents": [cpf(n)], "type": "individual", "password": "correct horse" });
        assert_eq!(
            http.post(format!("{base}/api/accounts")).json(&body).send().await.unwrap().status(),
            StatusCode::CREATED
        );
        bank.operator(0).op(&format!("/deposit/{n}/100"), None).await.unwrap();
    }
    let login =
        http.post(format!("{base}/api/accounts/auth")).json(&json!({ "ibk": "1-1", "password": "correct horse" }));
    let token: String =
        login.send().await.unwrap().json::<serde_json::Value>().await.unwrap()["token"].as_str().unwrap().into();
    let before = bank.ds().client(0).health().await.unwrap();

    let customer = || Cred::Bearer(token.clone());
    let huge = format!(r#"{{"name":"{}","documents":[],"type":"individual","password":"x"}}"#, "n".repeat(70 << 10));
    let deposit = r#"{"acc_ibk":"1-1","amount":1}"#;
    let pay = r#"{"author":"1-1","operations":[{"from":"1-1","to":"1-2","amount":1}]}"#;
    let cases: Vec<Case> = vec![
        // operator routes: no key, wrong key, a customer's session token
        (Method::POST, "/deposit/1/1", None, Cred::None, 401, ErrorCode::Unauthorized),
        (Method::POST, "/withdrawal/1/1", None, Cred::Auth("wrong-operator-key"), 401, ErrorCode::Unauthorized),
        (Method::POST, "/transfer/1/2/1", None, customer(), 401, ErrorCode::Unauthorized),
        (Method::GET, "/balance/1", None, customer(), 401, ErrorCode::Unauthorized),
        (Method::GET, "/metrics", None, Cred::None, 401, ErrorCode::Unauthorized),
        // customer routes: no session, the operator key instead of a session, a made-up token
        (Method::GET, "/api/accounts/1", None, Cred::None, 401, ErrorCode::Unauthorized),
        (Method::GET, "/api/accounts/1", None, Cred::Operator, 401, ErrorCode::Unauthorized),
        (Method::GET, "/api/accounts/1/transactions", None, Cred::Bearer("f".repeat(64)), 401, ErrorCode::Unauthorized),
        (Method::DELETE, "/api/accounts/1", None, Cred::Operator, 401, ErrorCode::Unauthorized),
        (Method::POST, "/api/payments/deposit", Some(deposit.into()), Cred::None, 401, ErrorCode::Unauthorized),
        (Method::POST, "/api/payments/withdraw", Some(deposit.into()), Cred::Operator, 401, ErrorCode::Unauthorized),
        (Method::POST, "/api/payments/pay", Some(pay.into()), Cred::Auth("x"), 401, ErrorCode::Unauthorized),
        // another customer's account
        (Method::GET, "/api/accounts/2", None, customer(), 403, ErrorCode::Forbidden),
        (Method::GET, "/api/accounts/2/transactions", None, customer(), 403, ErrorCode::Forbidden),
        (Method::DELETE, "/api/accounts/2", None, customer(), 403, ErrorCode::Forbidden),
        (
            Method::POST,
            "/api/payments/withdraw",
            Some(r#"{"acc_ibk":"1-2","amount":1}"#.into()),
            customer(),
            403,
            ErrorCode::Forbidden,
        ),
        // malformed bodies
        (Method::POST, "/api/accounts", Some("{".into()), Cred::None, 400, ErrorCode::InvalidBody),
        (Method::POST, "/api/accounts", Some("[]".into()), Cred::None, 400, ErrorCode::InvalidBody),
        (Method::POST, "/api/accounts", Some(r#"{"name":1}"#.into()), Cred::None, 400, ErrorCode::InvalidBody),
        (Method::POST, "/api/accounts", Some(huge), Cred::None, 413, ErrorCode::BodyTooLarge),
        (Method::POST, "/api/accounts/auth", Some(r#"{"ibk":"1-1"}"#.into()), Cred::None, 400, ErrorCode::InvalidBody),
        (
            Method::POST,
            "/api/accounts/auth",
            Some(r#"{"ibk":"1-1","password":"p","x":1}"#.into()),
            Cred::None,
            400,
            ErrorCode::InvalidBody,
        ),
        (
            Method::POST,
            "/api/payments/deposit",
            Some(r#"{"acc_ibk":"1-1","amount":"1e30"}"#.into()),
            customer(),
            400,
            ErrorCode::InvalidBody,
        ),
        (
            Method::POST,
            "/api/payments/deposit",
            Some(r#"{"acc_ibk":"1-1","amount":"NaN"}"#.into()),
            customer(),
            400,
            ErrorCode::InvalidBody,
        ),
        (
            Method::POST,
            "/api/payments/deposit",
            Some(r#"{"acc_ibk":"x","amount":1}"#.into()),
            customer(),
            400,
            ErrorCode::InvalidBody,
        ),
        (
            Method::POST,
            "/api/payments/pay",
            Some(r#"{"author":"1-1","operations":"all"}"#.into()),
            customer(),
            400,
            ErrorCode::InvalidBody,
        ),
        (
            Method::POST,
            "/api/payments/pay",
            Some(r#"{"author":"1-1","operations":[{"from":"1-1","to":"1-2","amount":0}]}"#.into()),
            customer(),
            400,
            ErrorCode::InvalidBody,
        ),
        // ids, paths, methods
        (Method::GET, "/api/accounts/abc", None, customer(), 400, ErrorCode::AccountIdInvalid),
        (Method::GET, "/api/accounts/0/transactions", None, customer(), 400, ErrorCode::AccountIdInvalid),
        (Method::GET, "/api/accounts/1/transactions?limit=x", None, customer(), 400, ErrorCode::InvalidQuery),
        (Method::GET, "/api/accounts/1/transactions?bogus=1", None, customer(), 400, ErrorCode::InvalidQuery),
        (Method::POST, "/balance/1", None, Cred::Operator, 405, ErrorCode::MethodNotAllowed),
        (Method::PUT, "/api/accounts", None, Cred::None, 405, ErrorCode::MethodNotAllowed),
        // The payment routes come first (`routes::configure`): `pay`, `deposit` and `withdraw`
        // are not package ids, and a package id is only read.
        (Method::GET, "/api/payments/pay", None, customer(), 405, ErrorCode::MethodNotAllowed),
        (Method::GET, "/api/payments/deposit", None, customer(), 405, ErrorCode::MethodNotAllowed),
        (Method::POST, "/api/payments/abc", Some(pay.into()), customer(), 405, ErrorCode::MethodNotAllowed),
        (Method::GET, "/api/payments/abc", None, customer(), 404, ErrorCode::PackageNotFound),
        (Method::GET, "/nowhere", None, Cred::None, 404, ErrorCode::NotFound),
        // Under a route scope (`/interbank`, `/transfer`, ...), a path none of its routes takes
        // is the same JSON 404, not actix's bare one.
        (Method::GET, "/interbank/nowhere", None, Cred::None, 404, ErrorCode::NotFound),
        (Method::POST, "/transfer/1/2", None, Cred::Operator, 404, ErrorCode::NotFound),
        (Method::GET, "/transfer/1/2/3", None, Cred::Operator, 405, ErrorCode::MethodNotAllowed),
        (Method::POST, "/deposit/1/1.234", None, Cred::Operator, 400, ErrorCode::AmountTooPrecise),
        (Method::POST, "/transfer/1/-2/1", None, Cred::Operator, 400, ErrorCode::AccountIdInvalid),
    ];
    for (method, path, body, cred, status, code) in cases {
        let mut rb = http.request(method.clone(), format!("{base}{path}"));
        rb = match cred {
            Cred::None => rb,
            Cred::Operator => rb.header("auth", OPERATOR_KEY),
            Cred::Bearer(t) => rb.bearer_auth(t),
            Cred::Auth(k) => rb.header("auth", k),
        };
        if let Some(b) = body {
            rb = rb.header("content-type", "application/json").body(b);
        }
        let resp = rb.send().await.unwrap();
        let got = resp.status();
        let text = resp.text().await.unwrap();
        let err: ErrorBody =
            serde_json::from_str(&text).unwrap_or_else(|_| panic!("{method} {path}: not the error body: {text}"));
        assert_eq!((got.as_u16(), err.error), (status, code), "{method} {path}: {text}");
    }

    let after = bank.ds().client(0).health().await.unwrap();
    assert_eq!((after.accounts, after.journal_seq), (before.accounts, before.journal_seq), "nothing changed");
    let op = bank.operator(0);
    assert_eq!((op.balance(1).await, op.balance(2).await), (money("100"), money("100")));
    let metrics =
        op.http.get(format!("{base}/metrics")).header("auth", OPERATOR_KEY).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("business_responses_5xx_total 0"), "{metrics}");
}
