//! kill -9 the data server during a stream of commits, restart it on the same directory, and
//! check that every acknowledged commit is there and no commit is half there.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use common::*;
use dataserver_api::{AcquireRequest, CommitRequest, LockRef, RecordOp, SetAmount};
use serde_json::json;
use std::sync::Mutex;

const ACCOUNTS: u64 = 16;
const OPENING: i64 = 100_000; // cents: 1,000.00 each
const WRITERS: usize = 24;
/// Acknowledged commits to see before pulling the plug.
const ACKED_BEFORE_KILL: usize = 400;

/// No checkpoint during the run: recovery replays the whole write-ahead log.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_during_a_commit_stream_loses_nothing_acknowledged() {
    scenario(&[]).await;
}

/// Checkpoints every few milliseconds: the kill lands among checkpoints, log rotations and
/// appends, and recovery combines the durable store with the log's tail.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_amid_frequent_checkpoints_loses_nothing_acknowledged() {
    scenario(&["--checkpoint-interval-ms", "20"]).await;
}

fn start(dir: &std::path::Path, extra: &[&str]) -> harness::process::DataServerProcess {
    let mut opts = options(dir);
    opts.extra_args = extra.iter().map(|s| s.to_string()).collect();
    harness::process::spawn(&opts).expect("dataserver starts")
}

async fn scenario(extra: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let mut server = start(dir.path(), extra);
    let c = server.client(0);

    // Opening balances, one atomic commit.
    let accounts: Vec<_> = (1..=ACCOUNTS).map(acc).collect();
    let grant = c.acquire(&AcquireRequest { accounts: accounts.clone(), ..Default::default() }).await.unwrap();
    let mut open = CommitRequest::new("open");
    open.locks = grant.locks.iter().map(|g| LockRef { account: g.account, token: g.token }).collect();
    open.set = accounts
        .iter()
        .map(|a| SetAmount { account: *a, amount: shared::Money::from_cents(OPENING).unwrap() })
        .collect();
    c.commit(&open).await.unwrap();

    // Writers move one cent at a time between random pairs, each commit also writing a record
    // named after its transaction: the amounts and the record must land together or not at all.
    let acked: Arc<Mutex<Vec<String>>> = Arc::default();
    let acked_count = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let reached = Arc::new(tokio::sync::Notify::new());
    let mut tasks = Vec::new();
    for w in 0..WRITERS {
        let client = server.client(w % 2);
        let (acked, acked_count, stop, reached) = (acked.clone(), acked_count.clone(), stop.clone(), reached.clone());
        tasks.push(tokio::spawn(async move {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let a = 1 + (w as u64 * 7 + n * 3) % ACCOUNTS;
                let b = 1 + (a + n % (ACCOUNTS - 1)) % ACCOUNTS;
                let req = AcquireRequest { accounts: vec![acc(a), acc(b)], wait_ms: Some(2_000), ..Default::default() };
                let Ok(grant) = client.acquire(&req).await else {
                    continue;
                };
                let amount = |id| grant.locks.iter().find(|g| g.account == acc(id)).and_then(|g| g.amount).unwrap();
                let (from, to) = (amount(a), amount(b));
                let cent = shared::Money::from_cents(1).unwrap();
                let Some(from_after) = from.checked_sub(cent) else {
                    let _ = client
                        .release(
                            &grant
                                .locks
                                .iter()
                                .map(|g| LockRef { account: g.account, token: g.token })
                                .collect::<Vec<_>>(),
                        )
                        .await;
                    continue;
                };
                let tx_id = format!("w{w}-{n}");
                let mut tx = CommitRequest::new(tx_id.clone());
                tx.locks = grant.locks.iter().map(|g| LockRef { account: g.account, token: g.token }).collect();
                tx.set = vec![
                    SetAmount { account: acc(a), amount: from_after },
                    SetAmount { account: acc(b), amount: to.checked_add(cent).unwrap() },
                ];
                tx.records = vec![RecordOp::Put {
                    collection: "transfers".into(),
                    key: tx_id.clone(),
                    value: json!({"from": a, "to": b}).into(),
                    if_version: Some(0),
                }];
                match client.commit(&tx).await {
                    Ok(_) => {
                        acked.lock().unwrap().push(tx_id);
                        if acked_count.fetch_add(1, Ordering::Relaxed) + 1 == ACKED_BEFORE_KILL {
                            reached.notify_one();
                        }
                    }
                    // Transport errors once the server is gone: the writer stops.
                    Err(e) if e.status().is_none() => return,
                    Err(_) => {}
                }
            }
        }));
    }
    // Wait for the condition (enough acknowledged commits), not for a time.
    reached.notified().await;
    let old_epoch = server.boot_epoch;
    server.kill9().unwrap();
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.unwrap();
    }
    let acked: BTreeSet<String> = acked.lock().unwrap().iter().cloned().collect();
    assert!(acked.len() >= ACKED_BEFORE_KILL);

    // Restart on the same directory.
    let server = start(dir.path(), extra);
    assert!(server.boot_epoch > old_epoch);
    let c = server.client(0);

    // Every acknowledged commit is there.
    let records = record_keys(&c, "transfers").await;
    let missing: Vec<_> = acked.difference(&records).collect();
    assert!(missing.is_empty(), "{} acknowledged but lost, e.g. {:?}", missing.len(), &missing[..missing.len().min(5)]);

    // No commit is half there: the journal (amount changes) and the records agree exactly, and
    // replaying the journal from the opening balances gives the stored amounts.
    let mut journal_tx = BTreeSet::new();
    let mut replay: BTreeMap<u64, i64> = BTreeMap::new();
    let mut after_seq = 0;
    loop {
        let page = c.journal_after(after_seq, 1000).await.unwrap();
        for e in &page.entries {
            if e.tx_id != "open" {
                journal_tx.insert(e.tx_id.clone());
                assert_eq!(e.changes.len(), 2, "a transfer touches two accounts");
            }
            for ch in &e.changes {
                let before = ch.before.map_or(0, |m| m.cents());
                let expected = replay.get(&ch.account.get()).copied().unwrap_or(0);
                assert_eq!(before, expected, "journal replay diverges at seq {}", e.seq);
                replay.insert(ch.account.get(), ch.after.cents());
            }
        }
        match page.next {
            Some(n) => after_seq = n,
            None => break,
        }
    }
    assert_eq!(journal_tx, records, "amount changes and records were written together");
    let mut total = 0;
    for a in 1..=ACCOUNTS {
        let stored = c.get_amount(acc(a)).await.unwrap().cents();
        assert_eq!(Some(stored), replay.get(&a).copied(), "account {a}: stored amount equals the journal replay");
        total += stored;
    }
    assert_eq!(total, OPENING * ACCOUNTS as i64, "money is neither created nor destroyed");
}
