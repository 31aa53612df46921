//! Authentication and bad input: every failure is a 4xx with the JSON error body and changes
//! nothing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use dataserver_api::{ErrorBody, ErrorCode};
use reqwest::{Method, StatusCode};

struct Case {
    method: Method,
    path: String,
    body: Option<String>,
    key: Option<&'static str>,
    status: StatusCode,
    code: ErrorCode,
}

fn case(
    method: Method,
    path: &str,
    body: Option<&str>,
    key: Option<&'static str>,
    status: u16,
    code: ErrorCode,
) -> Case {
    Case {
        method,
        path: path.into(),
        body: body.map(str::to_string),
        key,
        status: StatusCode::from_u16(status).unwrap(),
        code,
    }
}

async fn run(url: &str, cases: &[Case]) {
    let http = pki::http_client();
    for c in cases {
        let mut rb = http.request(c.method.clone(), format!("{url}{}", c.path));
        if let Some(k) = c.key {
            rb = rb.header("auth", k);
        }
        if let Some(b) = &c.body {
            rb = rb.header("content-type", "application/json").body(b.clone());
        }
        let resp = rb.send().await.unwrap();
        let status = resp.status();
        let text = resp.text().await.unwrap();
        let body: ErrorBody = serde_json::from_str(&text)
            .unwrap_or_else(|_| panic!("{} {}: not the error body: {text}", c.method, c.path));
        assert_eq!((status, body.error), (c.status, c.code), "{} {} {:?} → {text}", c.method, c.path, c.body);
        assert!(!body.message.is_empty());
    }
}

#[tokio::test]
async fn every_route_requires_the_right_key() {
    let dir = tempfile::tempdir().unwrap();
    let server = spawn_server(dir.path());
    let routes: &[(Method, &str, Option<&str>)] = &[
        (Method::POST, "/getLock/11/1", None),
        (Method::POST, "/unLock/11/1?token=1", None),
        (Method::POST, "/setAmount/11/1", Some(r#"{"amount":"1","token":1}"#)),
        (Method::POST, "/setAmount/11/1/5?token=1", None),
        (Method::GET, "/getAmount/11/1", None),
        (Method::POST, "/v1/11/locks", Some(r#"{"accounts":[1]}"#)),
        (Method::POST, "/v1/11/locks/release", Some(r#"{"locks":[]}"#)),
        (
            Method::POST,
            "/v1/11/commit",
            Some(r#"{"tx_id":"x","records":[{"op":"put","collection":"a","key":"b","value":1}]}"#),
        ),
        (
            Method::POST,
            "/v1/11/commits",
            Some(r#"{"commits":[{"tx_id":"x","records":[{"op":"put","collection":"a","key":"b","value":1}]}]}"#),
        ),
        (Method::GET, "/v1/11/amounts", None),
        (Method::GET, "/v1/11/amounts/1", None),
        (Method::GET, "/v1/11/journal", None),
        (Method::GET, "/v1/11/records/a", None),
        (Method::GET, "/v1/11/records/a/b", None),
        (Method::GET, "/metrics", None),
    ];
    let mut cases = Vec::new();
    for (m, p, b) in routes {
        cases.push(case(m.clone(), p, *b, None, 401, ErrorCode::Unauthorized));
        cases.push(case(m.clone(), p, *b, Some("not-a-known-key"), 401, ErrorCode::Unauthorized));
        if p.contains("/11") {
            // Business 12's key on business 11's path.
            cases.push(case(m.clone(), p, *b, Some(KEY_B), 403, ErrorCode::Forbidden));
        }
    }
    run(&server.url(), &cases).await;
    let health = server.client(0).health().await.unwrap();
    assert_eq!((health.accounts, health.journal_seq), (0, 0));
    assert!(server.client(0).get_record("a", "b").await.unwrap().is_none());
}

#[tokio::test]
async fn bad_input_is_a_clear_4xx_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let server = spawn_server(dir.path());
    let c = server.client(0);
    // A held lock and a written amount, so the bad requests below have something to damage.
    let grant = c.get_lock(acc(1), Some(60_000), None).await.unwrap();
    c.set_amount(acc(1), money("10"), grant.token).await.unwrap();
    let t = grant.token;
    let k = Some(KEY_A);
    let huge = format!(
        r#"{{"tx_id":"h","records":[{{"op":"put","collection":"a","key":"b","value":"{}"}}]}}"#,
        "x".repeat(5 << 20)
    );
    let one = r#"{"tx_id":"m","records":[{"op":"put","collection":"a","key":"b","value":1}]}"#;
    let too_many = format!(r#"{{"commits":[{}]}}"#, vec![one; 65].join(","));
    let huge_many = format!(r#"{{"commits":[{huge}]}}"#);
    let wide = format!(
        r#"{{"tx_id":"w","records":[{{"op":"put","collection":"a","key":"b","value":"{}"}}]}}"#,
        "x".repeat(70 << 10)
    );
    let long_key = format!(
        r#"{{"tx_id":"lk","records":[{{"op":"put","collection":"a","key":"{}","value":1}}]}}"#,
        "k".repeat(300)
    );
    let many = format!(r#"{{"accounts":[{}]}}"#, (1..=1025).map(|i| i.to_string()).collect::<Vec<_>>().join(","));
    let cases = vec![
        // ids
        case(Method::POST, "/getLock/11/abc", None, k, 400, ErrorCode::AccountIdInvalid),
        case(Method::POST, "/getLock/11/-1", None, k, 400, ErrorCode::AccountIdInvalid),
        case(Method::POST, "/getLock/11/0", None, k, 400, ErrorCode::AccountIdInvalid),
        case(Method::POST, "/getLock/11/99999999999999999999", None, k, 400, ErrorCode::AccountIdInvalid),
        case(Method::POST, "/getLock/11/1.5", None, k, 400, ErrorCode::AccountIdInvalid),
        case(Method::POST, "/getLock/abc/1", None, k, 403, ErrorCode::Forbidden),
        case(Method::GET, "/getAmount/11/%2e%2e", None, k, 404, ErrorCode::NotFound),
        case(Method::GET, "/getAmount/11/1%20", None, k, 400, ErrorCode::AccountIdInvalid),
        // amounts on the seed path
        case(Method::POST, &format!("/setAmount/11/1/-5?token={t}"), None, k, 400, ErrorCode::AmountNegative),
        case(Method::POST, &format!("/setAmount/11/1/NaN?token={t}"), None, k, 400, ErrorCode::AmountInvalid),
        case(Method::POST, &format!("/setAmount/11/1/1e30?token={t}"), None, k, 400, ErrorCode::AmountInvalid),
        case(
            Method::POST,
            &format!("/setAmount/11/1/1000000000000000000000000000000?token={t}"),
            None,
            k,
            400,
            ErrorCode::AmountTooLarge,
        ),
        case(Method::POST, &format!("/setAmount/11/1/1.234?token={t}"), None, k, 400, ErrorCode::AmountTooPrecise),
        case(Method::POST, "/setAmount/11/1/5", None, k, 400, ErrorCode::TokenRequired),
        case(Method::POST, "/setAmount/11/1/5?token=abc", None, k, 400, ErrorCode::InvalidQuery),
        // amounts in bodies
        case(
            Method::POST,
            "/setAmount/11/1",
            Some(&format!(r#"{{"amount":"-1","token":{t}}}"#)),
            k,
            400,
            ErrorCode::InvalidBody,
        ),
        case(
            Method::POST,
            "/setAmount/11/1",
            Some(&format!(r#"{{"amount":1e30,"token":{t}}}"#)),
            k,
            400,
            ErrorCode::InvalidBody,
        ),
        case(
            Method::POST,
            "/setAmount/11/1",
            Some(&format!(r#"{{"amount":"0.001","token":{t}}}"#)),
            k,
            400,
            ErrorCode::InvalidBody,
        ),
        case(
            Method::POST,
            "/setAmount/11/1",
            Some(&format!(r#"{{"amount":true,"token":{t}}}"#)),
            k,
            400,
            ErrorCode::InvalidBody,
        ),
        case(Method::POST, "/setAmount/11/1", Some(r#"{"amount":"5"}"#), k, 400, ErrorCode::InvalidBody),
        case(
            Method::POST,
            "/setAmount/11/1",
            Some(&format!(r#"{{"amount":"5","token":{t},"extra":1}}"#)),
            k,
            400,
            ErrorCode::InvalidBody,
        ),
        case(Method::POST, "/setAmount/11/1", Some("{not json"), k, 400, ErrorCode::InvalidBody),
        case(
            Method::POST,
            "/setAmount/11/1",
            Some(&format!(r#"{{"amount":"5","token":{}}}"#, t + 1)),
            k,
            409,
            ErrorCode::NotHolder,
        ),
        // locks
        case(Method::POST, "/getLock/11/2?lease_ms=0", None, k, 400, ErrorCode::LeaseInvalid),
        case(Method::POST, "/getLock/11/2?lease_ms=99999999", None, k, 400, ErrorCode::LeaseInvalid),
        case(Method::POST, "/getLock/11/2?wait_ms=99999999", None, k, 400, ErrorCode::WaitInvalid),
        case(Method::POST, "/getLock/11/2?lease_ms=-1", None, k, 400, ErrorCode::InvalidQuery),
        case(Method::POST, "/getLock/11/2?bogus=1", None, k, 400, ErrorCode::InvalidQuery),
        case(Method::POST, "/getLock/12/1", None, Some(KEY_B), 409, ErrorCode::Locked),
        case(Method::POST, "/unLock/11/1", None, k, 400, ErrorCode::TokenRequired),
        case(Method::POST, "/unLock/11/1", Some(r#"{"token":"x"}"#), k, 400, ErrorCode::InvalidBody),
        case(Method::POST, "/unLock/11/1?token=1", None, k, 409, ErrorCode::NotHolder),
        case(Method::POST, "/v1/11/locks", Some(r#"{"accounts":[]}"#), k, 400, ErrorCode::BatchTooLarge),
        case(Method::POST, "/v1/11/locks", Some(&many), k, 400, ErrorCode::BatchTooLarge),
        case(Method::POST, "/v1/11/locks", Some(r#"{"accounts":[3,3]}"#), k, 422, ErrorCode::DuplicateAccount),
        case(Method::POST, "/v1/11/locks", Some(r#"{"accounts":[0]}"#), k, 400, ErrorCode::InvalidBody),
        case(Method::POST, "/v1/11/locks", Some(r#"{"accounts":"1"}"#), k, 400, ErrorCode::InvalidBody),
        case(
            Method::POST,
            "/v1/11/locks",
            Some(r#"{"accounts":[3],"request_id":""}"#),
            k,
            400,
            ErrorCode::RequestIdInvalid,
        ),
        // commits
        case(Method::POST, "/v1/11/commit", Some(r#"{"tx_id":"e"}"#), k, 422, ErrorCode::EmptyCommit),
        case(
            Method::POST,
            "/v1/11/commit",
            Some(r#"{"tx_id":"","records":[{"op":"check","collection":"a","key":"b","if_version":0}]}"#),
            k,
            400,
            ErrorCode::TxIdInvalid,
        ),
        case(
            Method::POST,
            "/v1/11/commit",
            Some(r#"{"tx_id":"a b","records":[{"op":"check","collection":"a","key":"b","if_version":0}]}"#),
            k,
            400,
            ErrorCode::TxIdInvalid,
        ),
        case(
            Method::POST,
            "/v1/11/commit",
            Some(r#"{"tx_id":"s","set":[{"account":1,"amount":"1"}]}"#),
            k,
            422,
            ErrorCode::LockRequired,
        ),
        case(
            Method::POST,
            "/v1/11/commit",
            Some(&format!(r#"{{"tx_id":"d","locks":[{{"account":1,"token":{t}}},{{"account":1,"token":{t}}}]}}"#)),
            k,
            422,
            ErrorCode::DuplicateAccount,
        ),
        case(
            Method::POST,
            "/v1/11/commit",
            Some(&format!(
                r#"{{"tx_id":"n","locks":[{{"account":1,"token":{t}}}],"set":[{{"account":1,"amount":"-3"}}]}}"#
            )),
            k,
            400,
            ErrorCode::InvalidBody,
        ),
        case(
            Method::POST,
            "/v1/11/commit",
            Some(r#"{"tx_id":"c","records":[{"op":"put","collection":"Bad-Name","key":"b","value":1}]}"#),
            k,
            400,
            ErrorCode::CollectionInvalid,
        ),
        case(
            Method::POST,
            "/v1/11/commit",
            Some(r#"{"tx_id":"c","records":[{"op":"put","collection":"a","key":"","value":1}]}"#),
            k,
            400,
            ErrorCode::KeyInvalid,
        ),
        case(Method::POST, "/v1/11/commit", Some(&long_key), k, 400, ErrorCode::KeyInvalid),
        case(
            Method::POST,
            "/v1/11/commit",
            Some(r#"{"tx_id":"c","records":[{"op":"explode","collection":"a","key":"b"}]}"#),
            k,
            400,
            ErrorCode::InvalidBody,
        ),
        case(Method::POST, "/v1/11/commit", Some(&wide), k, 400, ErrorCode::RecordTooLarge),
        case(Method::POST, "/v1/11/commit", Some(&huge), k, 413, ErrorCode::BodyTooLarge),
        case(Method::POST, "/v1/11/commit", Some("[]"), k, 400, ErrorCode::InvalidBody),
        case(Method::POST, "/v1/11/commit", Some("null"), k, 400, ErrorCode::InvalidBody),
        case(Method::POST, "/v1/11/commits", Some(r#"{"commits":[]}"#), k, 400, ErrorCode::BatchTooLarge),
        case(Method::POST, "/v1/11/commits", Some(&too_many), k, 400, ErrorCode::BatchTooLarge),
        case(Method::POST, "/v1/11/commits", Some(&huge_many), k, 413, ErrorCode::BodyTooLarge),
        case(Method::POST, "/v1/11/commits", Some(r#"[{"tx_id":"c"}]"#), k, 400, ErrorCode::InvalidBody),
        case(Method::POST, "/v1/11/commits", Some(r#"{"commits":[],"x":1}"#), k, 400, ErrorCode::InvalidBody),
        // reads
        case(Method::GET, "/getAmount/11/2", None, k, 404, ErrorCode::NotFound),
        case(Method::GET, "/v1/11/records/a/missing", None, k, 404, ErrorCode::NotFound),
        case(Method::GET, "/v1/11/records/UPPER", None, k, 400, ErrorCode::CollectionInvalid),
        case(Method::GET, "/v1/11/journal?limit=0", None, k, 400, ErrorCode::LimitInvalid),
        case(Method::GET, "/v1/11/journal?limit=100000", None, k, 400, ErrorCode::LimitInvalid),
        case(Method::GET, "/v1/11/journal?account=x", None, k, 400, ErrorCode::AccountIdInvalid),
        case(Method::GET, "/v1/11/journal?after=x", None, k, 400, ErrorCode::AfterInvalid),
        case(Method::GET, "/v1/11/amounts?after=-1", None, k, 400, ErrorCode::AccountIdInvalid),
        case(Method::GET, "/v1/11/amounts/x", None, k, 400, ErrorCode::AccountIdInvalid),
        case(Method::GET, "/v1/11/amounts/2", None, k, 404, ErrorCode::NotFound),
        // routing
        case(Method::GET, "/getLock/11/1", None, k, 405, ErrorCode::MethodNotAllowed),
        case(Method::DELETE, "/v1/11/commit", None, k, 405, ErrorCode::MethodNotAllowed),
        case(Method::GET, "/../../etc/passwd", None, k, 404, ErrorCode::NotFound),
        case(Method::GET, "/nothing/here", None, None, 404, ErrorCode::NotFound),
    ];
    run(&server.url(), &cases).await;
    // Nothing changed: the only amount is the one written above, and the journal has one entry.
    assert_eq!(c.get_amount(acc(1)).await.unwrap(), money("10"));
    let health = c.health().await.unwrap();
    assert_eq!((health.accounts, health.journal_seq), (1, 1));
    assert!(c.scan_records("a", "", None, 10).await.unwrap().records.is_empty());
    let metrics = c.metrics().await.unwrap();
    assert!(metrics.contains("dataserver_responses_5xx_total 0"), "no 5xx: {metrics}");
}
