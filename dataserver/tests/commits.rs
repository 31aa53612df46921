//! Atomic commits, idempotency, the record store and the journal, over the real binary.
#![allow(clippy::unwrap_used, clippy::expect_used)]
// A client of the data server, as the business servers are: it reads the values it wrote.
#![allow(clippy::disallowed_types, clippy::disallowed_methods)]

mod common;

use common::*;
use dataserver_api::client::DataClient;
use dataserver_api::{AcquireRequest, CommitRequest, LockRef, RecordOp, SetAmount};
use serde_json::json;
use shared::AccountId;

async fn lock(c: &DataClient, accounts: &[u64]) -> Vec<LockRef> {
    let req = AcquireRequest {
        accounts: accounts.iter().map(|a| acc(*a)).collect(),
        wait_ms: Some(5_000),
        ..Default::default()
    };
    c.acquire(&req).await.unwrap().locks.iter().map(|g| LockRef { account: g.account, token: g.token }).collect()
}

fn put(collection: &str, key: &str, value: serde_json::Value, if_version: Option<u64>) -> RecordOp {
    RecordOp::Put { collection: collection.into(), key: key.into(), value: value.into(), if_version }
}

async fn amount(c: &DataClient, a: AccountId) -> Option<shared::Money> {
    c.get_amount(a).await.ok()
}

#[tokio::test]
async fn batch_commit_is_all_or_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let server = spawn_server(dir.path());
    let c = server.client(0);
    let locks = lock(&c, &[1, 2]).await;

    // A transfer whose record condition fails: neither amount may change.
    let mut tx = CommitRequest::new("transfer-1");
    tx.locks = locks.clone();
    tx.set =
        vec![SetAmount { account: acc(1), amount: money("70") }, SetAmount { account: acc(2), amount: money("30") }];
    tx.records = vec![put("transfers", "transfer-1", json!({"from": 1, "to": 2}), Some(5))];
    let e = c.commit(&tx).await.unwrap_err();
    assert_eq!(e.code(), Some(dataserver_api::ErrorCode::ConditionFailed));
    let health = c.health().await.unwrap();
    assert_eq!((health.accounts, health.journal_seq), (0, 0), "a refused commit wrote nothing");

    // The leases survived the refusal, so the holder can correct and commit.
    tx.records = vec![put("transfers", "transfer-1", json!({"from": 1, "to": 2}), Some(0))];
    // A memo is bounded as sent (it is stored as the text it arrived in): one byte past the
    // bound is refused and writes nothing.
    let bound = 256 << 10;
    let quoted = |n: usize| dataserver_api::Memo::of(&"m".repeat(n - 2));
    tx.memo = Some(quoted(bound + 1));
    let e = c.commit(&tx).await.unwrap_err();
    assert_eq!(e.code(), Some(dataserver_api::ErrorCode::MemoTooLarge));
    let health = c.health().await.unwrap();
    assert_eq!((health.accounts, health.journal_seq), (0, 0), "a refused memo wrote nothing");
    tx.memo = Some(dataserver_api::Memo::of(&json!({"kind": "transfer"})));
    let ok = c.commit(&tx).await.unwrap();
    assert_eq!(ok.journal_seq, Some(1));
    assert_eq!(ok.amounts.len(), 2);
    assert_eq!(amount(&c, acc(1)).await, Some(money("70")));
    assert_eq!(amount(&c, acc(2)).await, Some(money("30")));

    // Released by the commit: both accounts can be locked again at once.
    let again = lock(&c, &[1, 2]).await;
    assert!(again[0].token > locks[0].token);

    // One journal entry explains both changes, linked from both statements.
    let page = c.account_journal(acc(2), None, 10).await.unwrap();
    assert_eq!(page.entries.len(), 1);
    assert_eq!(page.entries[0].changes.len(), 2);
    assert_eq!(page.entries[0].memo.as_ref().map(|m| m.kind()), Some(Some("transfer".to_string())));
    assert_eq!(
        c.get_record("transfers", "transfer-1").await.unwrap().unwrap().value.to_value(),
        json!({"from": 1, "to": 2})
    );
}

#[tokio::test]
async fn retried_commit_returns_the_stored_outcome_once_applied() {
    let dir = tempfile::tempdir().unwrap();
    let server = spawn_server(dir.path());
    let c = server.client(0);
    let locks = lock(&c, &[9]).await;
    let mut tx = CommitRequest::new("dep-42");
    tx.locks = locks;
    tx.set = vec![SetAmount { account: acc(9), amount: money("100") }];
    let first = c.commit(&tx).await.unwrap();
    assert!(!first.replayed);
    // The same request again, after its locks were released: answered from storage.
    let second = c.commit(&tx).await.unwrap();
    assert!(second.replayed);
    assert_eq!(
        (second.tx_id.as_str(), second.journal_seq, &second.amounts),
        (first.tx_id.as_str(), first.journal_seq, &first.amounts)
    );
    assert_eq!(c.health().await.unwrap().journal_seq, 1, "applied exactly once");

    // The same id with another payload is a client bug, refused loudly.
    tx.set[0].amount = money("200");
    assert_eq!(c.commit(&tx).await.unwrap_err().code(), Some(dataserver_api::ErrorCode::IdempotencyConflict));
    // And another business reusing the id is a different payload too.
    let other = server.client(1);
    let mut tx2 = CommitRequest::new("dep-42");
    tx2.records = vec![put("x", "y", json!(1), None)];
    assert_eq!(other.commit(&tx2).await.unwrap_err().code(), Some(dataserver_api::ErrorCode::IdempotencyConflict));
    assert_eq!(amount(&c, acc(9)).await, Some(money("100")));
}

#[tokio::test]
async fn record_store_versions_conditions_and_prefix_scans() {
    let dir = tempfile::tempdir().unwrap();
    let server = spawn_server(dir.path());
    let c = server.client(0);
    for i in 0..25 {
        let mut tx = CommitRequest::new(format!("acc-{i}"));
        tx.records = vec![put("holders", &format!("doc/{i:03}"), json!({"n": i}), Some(0))];
        c.commit(&tx).await.unwrap();
    }
    let mut other = CommitRequest::new("other");
    other.records = vec![put("holders", "zzz", json!(0), None), put("keys", "doc/000", json!(0), None)];
    c.commit(&other).await.unwrap();

    // Paged prefix scan sees exactly the 25 records, in key order, across pages.
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = c.scan_records("holders", "doc/", after.as_deref(), 10).await.unwrap();
        seen.extend(page.records.iter().map(|r| r.key.clone()));
        match page.next {
            Some(n) => after = Some(n),
            None => break,
        }
    }
    assert_eq!(seen, (0..25).map(|i| format!("doc/{i:03}")).collect::<Vec<_>>());

    // put-if on a stale version fails; delete then re-create never reuses a version.
    let r = c.get_record("holders", "doc/001").await.unwrap().unwrap();
    let mut upd = CommitRequest::new("upd");
    upd.records = vec![put("holders", "doc/001", json!({"n": "new"}), Some(r.version))];
    let v2 = c.commit(&upd).await.unwrap().records[0].version;
    assert!(v2 > r.version);
    let mut stale = CommitRequest::new("stale");
    stale.records = vec![put("holders", "doc/001", json!({"n": "lost"}), Some(r.version))];
    assert_eq!(c.commit(&stale).await.unwrap_err().code(), Some(dataserver_api::ErrorCode::ConditionFailed));
    let mut del = CommitRequest::new("del");
    del.records = vec![RecordOp::Delete { collection: "holders".into(), key: "doc/001".into(), if_version: Some(v2) }];
    c.commit(&del).await.unwrap();
    assert!(c.get_record("holders", "doc/001").await.unwrap().is_none());
    let mut re = CommitRequest::new("re");
    re.records = vec![put("holders", "doc/001", json!({"n": "again"}), Some(0))];
    let v3 = c.commit(&re).await.unwrap().records[0].version;
    assert!(v3 > v2, "versions never repeat");

    // A check op makes a commit depend on a record it does not write.
    let mut chk = CommitRequest::new("chk");
    chk.records = vec![
        RecordOp::Check { collection: "holders".into(), key: "doc/002".into(), if_version: 999 },
        put("holders", "doc/900", json!(1), None),
    ];
    assert_eq!(c.commit(&chk).await.unwrap_err().code(), Some(dataserver_api::ErrorCode::ConditionFailed));
    assert!(c.get_record("holders", "doc/900").await.unwrap().is_none());
}

#[tokio::test]
async fn sigterm_stops_cleanly_and_everything_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = spawn_server(dir.path());
    let c = server.client(0);
    let locks = lock(&c, &[1]).await;
    let mut tx = CommitRequest::new("t");
    tx.locks = locks.clone();
    tx.set = vec![SetAmount { account: acc(1), amount: money("12.34") }];
    c.commit(&tx).await.unwrap();
    let held = lock(&c, &[2]).await; // a lease alive at shutdown
    let epoch = server.boot_epoch;
    assert!(server.terminate().unwrap(), "clean exit status");

    let server = spawn_server(dir.path());
    assert!(server.boot_epoch > epoch);
    let c = server.client(0);
    assert_eq!(c.get_amount(acc(1)).await.unwrap(), money("12.34"));
    assert!(c.commit(&tx).await.unwrap().replayed, "idempotency records are durable");
    // The lease of the previous boot is gone, and its token is fenced off.
    let mut stale = CommitRequest::new("stale");
    stale.locks = held.clone();
    stale.set = vec![SetAmount { account: acc(2), amount: money("1") }];
    assert_eq!(c.commit(&stale).await.unwrap_err().code(), Some(dataserver_api::ErrorCode::NotHolder));
    let fresh = lock(&c, &[2]).await;
    assert!(fresh[0].token > held[0].token);
    assert_eq!(fresh[0].token >> dataserver::locks::TOKEN_SEQ_BITS, server.boot_epoch);
}

/// A retry racing its own original (same batch, or logged and not yet applied) must get the
/// original's outcome, not a fencing error, and the commit must apply once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_duplicates_apply_once_and_both_succeed() {
    let dir = tempfile::tempdir().unwrap();
    let server = spawn_server(dir.path());
    let c = server.client(0);
    const ROUNDS: u64 = 50;
    for i in 0..ROUNDS {
        let locks = lock(&c, &[1]).await;
        let mut tx = CommitRequest::new(format!("dup-{i}"));
        tx.locks = locks;
        tx.set = vec![SetAmount { account: acc(1), amount: money(&i.to_string()) }];
        let (a, b) = tokio::join!(c.commit(&tx), c.commit(&tx));
        let (a, b) = (a.expect("original or replay"), b.expect("original or replay"));
        assert_eq!(a.journal_seq, b.journal_seq);
        assert_eq!(u8::from(a.replayed) + u8::from(b.replayed), 1, "exactly one of the two applied it");
    }
    assert_eq!(c.health().await.unwrap().journal_seq, ROUNDS);
}

/// `present` makes a commit depend on a record existing (an account being open) without a read
/// round trip; the posted amount can be read while another business holds the lease.
#[tokio::test]
async fn present_condition_and_posted_amount() {
    let dir = tempfile::tempdir().unwrap();
    let server = spawn_server(dir.path());
    let (c, other) = (server.client(0), server.client(1));
    let locks = lock(&c, &[4]).await;
    let mut tx = CommitRequest::new("needs-open");
    tx.locks = locks.clone();
    tx.set = vec![SetAmount { account: acc(4), amount: money("5") }];
    tx.records = vec![RecordOp::Present { collection: "accounts".into(), key: "4".into() }];
    assert_eq!(c.commit(&tx).await.unwrap_err().code(), Some(dataserver_api::ErrorCode::RecordAbsent));
    assert_eq!(other.posted_amount(acc(4)).await.unwrap(), None);

    let mut open = CommitRequest::new("open-4");
    open.records = vec![put("accounts", "4", json!({"open": true}), Some(0))];
    c.commit(&open).await.unwrap();
    c.commit(&tx).await.unwrap(); // the leases survived the refusal
    // Locked by business 11 for nothing now, but say it still held a lease: reads go through.
    let held = lock(&c, &[4]).await;
    assert_eq!(other.get_amount(acc(4)).await.unwrap_err().code(), Some(dataserver_api::ErrorCode::Locked));
    assert_eq!(other.posted_amount(acc(4)).await.unwrap(), Some(money("5")));
    assert_eq!(c.release(&held).await.unwrap(), 1);
}

/// `fewer` bounds a collection (or the keys under a prefix) atomically with the write that
/// grows it: a burst of concurrent writers gets exactly the room there is, a refused commit
/// writes nothing, a delete makes room again, and the count survives a kill -9 (the log's
/// replay keeps it exact).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fewer_bounds_a_queue_atomically_and_across_a_crash() {
    use dataserver_api::ErrorCode as Ds;
    let fewer = |prefix: &str, than| RecordOp::Fewer { collection: "queue".into(), prefix: prefix.into(), than };
    let enqueue = |i: u64, prefix: &'static str, than: u64| {
        let mut tx = CommitRequest::new(format!("enqueue-{prefix}-{i}"));
        tx.records = vec![fewer(prefix, than), put("queue", &format!("{prefix}{i:04}"), json!(i), Some(0))];
        tx
    };
    let dir = tempfile::tempdir().unwrap();
    let mut server = spawn_server(dir.path());
    let c = server.client(0);
    let burst = (0..20).map(|i| {
        let (c, tx) = (c.clone(), enqueue(i, "", 5));
        async move { c.commit(&tx).await }
    });
    let answers = futures::future::join_all(burst).await;
    // Each refusal names the bound it met: here the whole collection's.
    let refused = answers.iter().filter(|a| matches!(a, Err(e) if e.count_reached_under() == Some(""))).count();
    assert_eq!((answers.iter().filter(|a| a.is_ok()).count(), refused), (5, 15), "{answers:?}");
    let page = c.scan_records("queue", "", None, 100).await.unwrap();
    assert_eq!((page.records.len(), page.count), (5, Some(5)), "the refused wrote nothing");

    // Under a prefix the keys are counted (the prefix's own bound), beside the collection's.
    for i in 0..3 {
        c.commit(&enqueue(i, "a-", 3)).await.unwrap();
    }
    assert_eq!(c.commit(&enqueue(3, "a-", 3)).await.unwrap_err().count_reached_under(), Some("a-"));
    // With both bounds in one commit, the first met is named, alone or among other commits.
    let mut both = enqueue(3, "a-", 3);
    both.tx_id = "both".into();
    both.records.insert(0, fewer("", 5));
    let named = |r: &dataserver_api::client::Result<_>| {
        r.as_ref().err().and_then(|e: &dataserver_api::client::ClientError| e.count_reached_under()).map(str::to_owned)
    };
    assert_eq!(named(&c.commit(&both).await), Some(String::new()));
    both.records.swap(0, 1);
    both.tx_id = "both-swapped".into();
    let mut other = CommitRequest::new("other");
    other.records = vec![put("elsewhere", "x", json!(1), Some(0))];
    let many = c.commit_many(&[both, other]).await.unwrap();
    assert_eq!(named(&many[0]), Some("a-".to_owned()), "{many:?}");
    assert!(many[1].is_ok(), "{many:?}");
    let mut too_wide = enqueue(9, "a-", dataserver_api::FEWER_PREFIX_THAN_MAX + 1);
    too_wide.tx_id = "too-wide".into();
    assert_eq!(c.commit(&too_wide).await.unwrap_err().code(), Some(Ds::LimitInvalid));

    // A delete makes room; the count is the one the log replays after a kill -9.
    let mut take = CommitRequest::new("dequeue-0");
    let first = page.records[0].key.clone();
    take.records = vec![RecordOp::Delete { collection: "queue".into(), key: first, if_version: None }];
    c.commit(&take).await.unwrap();
    server.kill9().unwrap();
    let server = spawn_server(dir.path());
    let c = server.client(0);
    assert_eq!(c.scan_records("queue", "", None, 1).await.unwrap().count, Some(7));
    let mut room = enqueue(100, "", 8);
    room.tx_id = "room".into();
    c.commit(&room).await.unwrap();
    let mut full = enqueue(101, "", 8);
    full.tx_id = "full".into();
    assert_eq!(c.commit(&full).await.unwrap_err().code(), Some(Ds::CountReached));
}

/// A lock call with no account reads several records in one request and locks nothing: the
/// accounts those records name stay free, and with neither accounts nor reads it is refused.
#[tokio::test]
async fn a_lock_call_without_accounts_only_reads() {
    let dir = tempfile::tempdir().unwrap();
    let server = spawn_server(dir.path());
    let c = server.client(0);
    let mut tx = CommitRequest::new("records-1");
    tx.records = vec![put("prepared", "a", json!({"n": 1}), Some(0)), put("prepared", "c", json!({"n": 3}), Some(0))];
    c.commit(&tx).await.unwrap();
    let key = |k: &str| dataserver_api::RecordKey::new("prepared", k);
    let read = c.get_records(vec![key("c"), key("b"), key("a")]).await.unwrap();
    let values: Vec<Option<serde_json::Value>> = read.into_iter().map(|r| r.map(|r| r.value.to_value())).collect();
    assert_eq!(values, vec![Some(json!({"n": 3})), None, Some(json!({"n": 1}))], "in the order asked");
    assert!(c.get_records(vec![]).await.unwrap().is_empty());
    // Nothing was locked: another caller takes account 1 at once.
    let other = server.client(1);
    let grant = other.acquire(&AcquireRequest { accounts: vec![acc(1)], ..Default::default() }).await.unwrap();
    assert_eq!(grant.locks.len(), 1);
    let e = c.acquire(&AcquireRequest::default()).await.unwrap_err();
    assert_eq!(e.code(), Some(dataserver_api::ErrorCode::BatchTooLarge));
}

/// `POST /v1/{business}/commits`: each commit is applied or refused exactly as it would be
/// alone, one refused leaves the others applied, and a retry among them is answered from its
/// stored outcome.
#[tokio::test]
async fn several_commits_in_one_request_are_each_answered_as_if_sent_alone() {
    let dir = tempfile::tempdir().unwrap();
    let server = spawn_server(dir.path());
    let c = server.client(0);
    let mut first = CommitRequest::new("many-1");
    first.records = vec![put("q", "a", json!(1), None)];
    c.commit(&first).await.unwrap();

    let retried = first.clone();
    let mut stale = CommitRequest::new("many-2");
    stale.records = vec![put("q", "b", json!(2), Some(5))];
    let mut fresh = CommitRequest::new("many-3");
    fresh.records = vec![put("q", "c", json!(3), None)];
    let mut unheld = CommitRequest::new("many-4");
    unheld.locks = vec![LockRef { account: acc(7), token: 1 }];
    unheld.set = vec![SetAmount { account: acc(7), amount: money("5") }];
    let empty = CommitRequest::new("many-5");
    let mut reused = CommitRequest::new("many-1");
    reused.records = vec![put("q", "z", json!(9), None)];
    let results = c.commit_many(&[retried, stale, fresh, unheld, empty, reused]).await.unwrap();
    let codes: Vec<_> = results.iter().map(|r| r.as_ref().err().and_then(|e| e.code())).collect();
    use dataserver_api::ErrorCode::*;
    assert_eq!(
        codes,
        [None, Some(ConditionFailed), None, Some(NotHolder), Some(EmptyCommit), Some(IdempotencyConflict)]
    );
    assert!(results[0].as_ref().unwrap().replayed, "the retry is answered from its stored outcome");
    assert!(!results[2].as_ref().unwrap().replayed);

    assert!(c.get_record("q", "b").await.unwrap().is_none(), "the refused commit wrote nothing");
    assert!(c.get_record("q", "c").await.unwrap().is_some(), "the commit beside it was applied");
    assert!(c.get_record("q", "z").await.unwrap().is_none());
    assert_eq!(amount(&c, acc(7)).await, None);
}
