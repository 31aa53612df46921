//! Submissions' commits sharing data-server requests ([`business::coalesce`]), against the real
//! data server binary.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use business::coalesce::Commits;
use dataserver_api::client::DataClient;
use dataserver_api::{CommitRequest, ErrorCode, RecordOp};
use harness::process::{DataServerProcess, SpawnOptions, binary, spawn};
use shared::BusinessId;

fn data_server(dir: &std::path::Path) -> DataServerProcess {
    let keys = vec![(BusinessId::new(1).unwrap(), "coalesce-test-key".to_string())];
    let bin = binary("dataserver").expect("build the binaries first: cargo build --workspace --bins");
    spawn(&SpawnOptions::new(bin, dir, keys)).expect("the data server starts")
}

fn put(tx: &str, key: &str, if_version: Option<u64>) -> CommitRequest {
    let mut c = CommitRequest::new(tx);
    c.records =
        vec![RecordOp::Put { collection: "q".into(), key: key.into(), value: serde_json::json!(1).into(), if_version }];
    c
}

async fn requests_served(ds: &DataClient) -> u64 {
    let text = ds.metrics().await.unwrap();
    let line = text.lines().find(|l| l.starts_with("dataserver_requests_total ")).expect("the requests counter");
    line.rsplit(' ').next().unwrap().parse().unwrap()
}

/// Commits that arrive on one thread while its request is out leave together, and each is
/// answered as it would be alone: the refused one refused, the others applied.
#[tokio::test(flavor = "current_thread")]
async fn commits_waiting_on_a_thread_share_a_request_and_are_each_answered() {
    let dir = tempfile::tempdir().unwrap();
    let server = data_server(dir.path());
    let ds = server.client(0);
    let commits = Commits::new(ds.clone(), 1);
    let before = requests_served(&ds).await;

    const N: usize = 50;
    let stale = 25;
    let all = (0..N).map(|i| {
        let c = put(&format!("t{i}"), &format!("k{i}"), (i == stale).then_some(5));
        let commits = commits.clone();
        async move { commits.commit(c).await }
    });
    let results = futures::future::join_all(all).await;
    // The first went alone; the 49 that waited for it shared one request (and the metrics
    // read its own).
    let used = requests_served(&ds).await - before - 1;
    assert!(used <= 3, "{N} commits took {used} requests");
    for (i, r) in results.iter().enumerate() {
        if i == stale {
            assert_eq!(r.as_ref().unwrap_err().code(), Some(ErrorCode::ConditionFailed), "commit {i}");
        } else {
            assert!(!r.as_ref().unwrap().replayed, "commit {i}: {r:?}");
            assert!(ds.get_record("q", &format!("k{i}")).await.unwrap().is_some(), "commit {i} applied");
        }
    }
    assert!(ds.get_record("q", &format!("k{stale}")).await.unwrap().is_none());
}

/// A caller that goes away while its request is out (a customer hanging up) does not strand
/// the commits that were waiting for that request: they leave when it is dropped.
#[tokio::test(flavor = "current_thread")]
async fn commits_waiting_behind_a_dropped_caller_still_leave() {
    let dir = tempfile::tempdir().unwrap();
    let server = data_server(dir.path());
    let ds = server.client(0);
    let commits = Commits::new(ds.clone(), 1);

    let mut first = Box::pin(commits.commit(put("a", "a", None)));
    assert!(futures::poll!(&mut first).is_pending(), "the first commit's request is out");
    let mut waiting =
        Box::pin(futures::future::join(commits.commit(put("b", "b", None)), commits.commit(put("c", "c", None))));
    assert!(futures::poll!(&mut waiting).is_pending(), "the next two wait for it");
    drop(first);
    let (b, c) = tokio::time::timeout(std::time::Duration::from_secs(10), waiting).await.expect("they were sent");
    assert!(b.is_ok() && c.is_ok(), "{b:?} {c:?}");
    assert!(ds.get_record("q", "b").await.unwrap().is_some());
    assert!(ds.get_record("q", "c").await.unwrap().is_some());
}
