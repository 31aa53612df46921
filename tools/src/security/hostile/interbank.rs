//! Hostile requests to the routes between banks, with a valid peer's credentials.

use reqwest::Method;

use crate::security::{Expect, Table, body};

/// Interbank routes with a valid peer.
pub(super) fn table(t: &mut Table<'_>) {
    let a = t.w.a.ibk();
    // Interbank routes with a valid peer.

    // Every item carries a deadline a minute ahead, so that each case is refused for what it
    // names.
    let deadline = dataserver_api::clock::now_ms() + 60_000;
    let ops = format!(r#"[{{"from":"2-1","to":"{a}","amount":"1"}}],"deadline_ms":{deadline}"#);
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
                r#"{{"epoch":0,"coordinator":2,"items":[{{"txn":"p.1","package":"p","author":"2-1","person":null,"ops":{ops}}}]}}"#
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
                r#"{{"epoch":99999999999,"coordinator":2,"items":[{{"txn":"p.1","package":"p","author":"2-1","person":null,"ops":[{{"from":"2-1","to":"{a}","amount":"0"}}],"deadline_ms":{deadline}}}]}}"#
            ),
        ),
        (
            "prepare: coordinator not the caller",
            Method::POST,
            "/interbank/prepare",
            format!(
                r#"{{"epoch":99999999999,"coordinator":1,"items":[{{"txn":"p.1","package":"p","author":"2-1","person":null,"ops":{ops}}}]}}"#
            ),
        ),
        (
            "prepare: a deadline a year ahead (its records would be kept for ever)",
            Method::POST,
            "/interbank/prepare",
            format!(
                r#"{{"epoch":99999999999,"coordinator":2,"items":[{{"txn":"p.1","package":"p","author":"2-1","person":null,"ops":[{{"from":"2-1","to":"{a}","amount":"1"}}],"deadline_ms":{}}}]}}"#,
                deadline + 365 * 24 * 3_600_000
            ),
        ),
        (
            "token pass: an epoch past the range (it would wrap the next regeneration)",
            Method::PUT,
            "/interbank/token",
            format!(r#"{{"epoch":{},"seq":0,"from":2}}"#, u64::MAX),
        ),
        (
            "prepare: a huge batch",
            Method::POST,
            "/interbank/prepare",
            format!(
                r#"{{"epoch":1,"coordinator":2,"items":[{}]}}"#,
                vec![format!(r#"{{"txn":"p.1","package":"p","author":"2-1","person":null,"ops":{ops}}}"#); 20_000]
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
        t.push("interbank", what, m, t.interbank1(p), t.peer(), body(&b), Expect::Refused);
    }
    for (what, p) in [
        ("decision: an over-long txn", format!("/interbank/decision/{}", "t".repeat(300))),
        ("accounts of a malformed document", "/account/123".into()),
        ("accounts of a document with wrong check digits", "/account/12345678900".into()),
        ("key lookup: invalid key", "/interbank/keys/not-a-key".into()),
        ("key removal: malformed IBK", "/interbank/keys/email:a@b.com/xyz".into()),
    ] {
        let m = if p.starts_with("/interbank/keys/email") { Method::DELETE } else { Method::GET };
        t.push("interbank", what, m, t.interbank1(&p), t.peer(), None, Expect::Refused);
    }
}
