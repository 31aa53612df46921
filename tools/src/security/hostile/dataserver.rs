//! Hostile requests to the data server, with a valid business key.

use reqwest::Method;

use crate::security::{Expect, Table};

/// The data server with a valid business key.
pub(super) fn table(t: &mut Table<'_>) {
    let _a = t.w.a.ibk();
    // The data server with a valid business key.
    let me = t.w.ds_business[0];
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
        t.push("dataserver", what, Method::POST, t.ds(&p), t.ds_key(), Some(b.into_bytes()), Expect::Refused);
    }
    for (what, p) in [
        ("records: a path trick", format!("/v1/{me}/records/..%2F..%2Fetc")),
        ("records: an over-long key", format!("/v1/{me}/records/accounts/{}", "k".repeat(1000))),
        ("journal: a bad query", format!("/v1/{me}/journal?after=x")),
        ("amounts: limit over the maximum", format!("/v1/{me}/amounts?limit=100000000")),
        ("amounts: account 0", format!("/v1/{me}/amounts/0")),
        ("an unknown route", "/v2/anything".into()),
    ] {
        t.push("dataserver", what, Method::GET, t.ds(&p), t.ds_key(), None, Expect::Refused);
    }
}
