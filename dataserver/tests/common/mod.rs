//! Shared helpers of the data server's integration tests: the real binary on a free port with a
//! fresh temporary data directory.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use harness::process::{DataServerProcess, SpawnOptions, spawn};
use shared::{AccountId, BusinessId, Money};

pub const KEY_A: &str = "test-key-business-11";
pub const KEY_B: &str = "test-key-business-12";

pub fn keys() -> Vec<(BusinessId, String)> {
    vec![(BusinessId::new(11).unwrap(), KEY_A.into()), (BusinessId::new(12).unwrap(), KEY_B.into())]
}

/// The data server on `dir`; with `INTERBANK_TEST_BACKEND=postgres` (the second pass of
/// `scripts/test.sh`), on a database of a private PostgreSQL cluster named after `dir` instead,
/// so every test runs against both backends and a restart on `dir` finds the same state.
pub fn options(dir: &std::path::Path) -> SpawnOptions {
    let mut o = SpawnOptions::new(env!("CARGO_BIN_EXE_dataserver"), dir, keys());
    if harness::postgres::tests_use_postgres() {
        o.database_url = Some(harness::postgres::database_for(dir).expect("a PostgreSQL database for the test"));
    }
    o
}

pub fn spawn_server(dir: &std::path::Path) -> DataServerProcess {
    spawn(&options(dir)).expect("dataserver starts")
}

pub fn acc(v: u64) -> AccountId {
    AccountId::new(v).unwrap()
}

pub fn money(s: &str) -> Money {
    s.parse().unwrap()
}

/// Every key of `collection`, page by page.
pub async fn record_keys(
    c: &dataserver_api::client::DataClient,
    collection: &str,
) -> std::collections::BTreeSet<String> {
    let mut keys = std::collections::BTreeSet::new();
    let mut after: Option<String> = None;
    loop {
        let page = c.scan_records(collection, "", after.as_deref(), 1000).await.unwrap();
        keys.extend(page.records.into_iter().map(|r| r.key));
        match page.next {
            Some(n) => after = Some(n),
            None => break,
        }
    }
    keys
}
