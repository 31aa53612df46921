//! Two data servers of one bank on one PostgreSQL database: the active one is killed (kill -9)
//! during a stream of commits, the standby takes the leader lease, and every acknowledged
//! commit is there, none half there, with fencing tokens that kept increasing. And a leader
//! that was paused past its lease (a long GC pause, a frozen VM) stops once it runs again.
//! These run on PostgreSQL whatever `INTERBANK_TEST_BACKEND` says: standbys exist only there.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use dataserver_api::client::DataClient;
use dataserver_api::{AcquireRequest, CommitRequest, LockRef, RecordOp, SetAmount};
use harness::process::{DataServerProcess, SpawnOptions};
use serde_json::json;

const WRITERS: u64 = 16;
/// Acknowledged commits to see before the kill, and after it (by the standby).
const ACKED_BEFORE_KILL: usize = 300;
const ACKED_AFTER_KILL: usize = 300;
/// How long a test waits for a condition before it fails (never a fixed sleep).
const WAIT_MS_MAX: u64 = 30_000;

fn on_database(dir: &std::path::Path) -> SpawnOptions {
    let mut o = SpawnOptions::new(env!("CARGO_BIN_EXE_dataserver"), dir, keys());
    o.database_url = Some(harness::postgres::database_for(dir).expect("a PostgreSQL database"));
    o
}

/// The active data server, then a standby on the same database.
fn pair(dir: &std::path::Path) -> (DataServerProcess, DataServerProcess) {
    let active = harness::process::spawn(&on_database(dir)).expect("the active data server starts");
    let (standby, _) = harness::process::start(&on_database(dir)).expect("the standby starts");
    assert_eq!(standby.boot_epoch, 0, "the second data server on a database stands by");
    (active, standby)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_of_the_active_data_server_loses_nothing_and_the_standby_takes_over() {
    let dir = tempfile::tempdir().unwrap();
    let (mut active, standby) = pair(dir.path());
    let both = format!("{},{}", active.url(), standby.url());
    let client = |i: usize| DataClient::new(&both, keys()[i].0, keys()[i].1.clone()).unwrap();

    // A standby serves nothing, and says who leads — to the bank's own business servers only.
    let alone = standby.client(0);
    let e = alone.posted_amount(acc(1)).await.unwrap_err();
    assert_eq!(e.code(), Some(dataserver_api::ErrorCode::NotLeader));
    assert!(e.to_string().contains(&active.url()), "{e}");
    let stranger = DataClient::new(&standby.url(), keys()[0].0, "not-a-key-of-this-bank").unwrap();
    let e = stranger.posted_amount(acc(1)).await.unwrap_err();
    assert_eq!(e.code(), Some(dataserver_api::ErrorCode::NotLeader));
    assert!(!e.to_string().contains(&active.addr.port().to_string()), "a stranger learnt the leader: {e}");

    // Each writer adds one cent at a time to its own account, each commit also writing a record
    // named after its transaction; it goes on through the failover, retrying what failed.
    let acked: Arc<Mutex<Vec<(String, u64)>>> = Arc::default();
    let acked_count = Arc::new(AtomicUsize::new(0));
    let old_epoch = active.boot_epoch;
    let first_after_kill: Arc<Mutex<Option<Instant>>> = Arc::default();
    let tokens: Arc<Mutex<Vec<u64>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for w in 0..WRITERS {
        let c = client(usize::try_from(w % 2).unwrap());
        let (acked, acked_count, first_after_kill, tokens, stop) =
            (acked.clone(), acked_count.clone(), first_after_kill.clone(), tokens.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            let account = acc(w + 1);
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let req = AcquireRequest { accounts: vec![account], wait_ms: Some(2_000), ..Default::default() };
                let Ok(grant) = c.acquire(&req).await else {
                    tokio::task::yield_now().await;
                    continue;
                };
                let g = &grant.locks[0];
                tokens.lock().unwrap().push(g.token);
                let now = g.amount.unwrap_or(shared::Money::ZERO);
                let after = now.checked_add(shared::Money::from_cents(1).unwrap()).unwrap();
                let tx_id = format!("w{w}-{n}");
                let mut tx = CommitRequest::new(tx_id.clone());
                tx.locks = vec![LockRef { account, token: g.token }];
                tx.set = vec![SetAmount { account, amount: after }];
                tx.records = vec![RecordOp::Put {
                    collection: "transfers".into(),
                    key: tx_id.clone(),
                    value: json!({ "account": w + 1 }).into(),
                    if_version: Some(0),
                }];
                if c.commit(&tx).await.is_ok() {
                    acked.lock().unwrap().push((tx_id, w + 1));
                    acked_count.fetch_add(1, Ordering::SeqCst);
                    // A token's top bits are the epoch of the leader that granted it.
                    if g.token >> 40 > old_epoch {
                        first_after_kill.lock().unwrap().get_or_insert_with(Instant::now);
                    }
                }
            }
        }));
    }
    let wait_for = |target: usize| {
        let acked_count = acked_count.clone();
        async move {
            let started = Instant::now();
            while acked_count.load(Ordering::SeqCst) < target {
                assert!(started.elapsed() < Duration::from_millis(WAIT_MS_MAX), "only {acked_count:?} acknowledged");
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    };
    wait_for(ACKED_BEFORE_KILL).await;
    let old_tokens_max = tokens.lock().unwrap().iter().copied().max().unwrap();
    let killed = Instant::now();
    active.kill9().unwrap();
    let before = acked_count.load(Ordering::SeqCst);
    wait_for(before + ACKED_AFTER_KILL).await;
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.unwrap();
    }
    let took = first_after_kill.lock().unwrap().expect("a commit acknowledged after the kill").duration_since(killed);
    // A figure, not an assertion (timing is for benchmarks): the README quotes it.
    println!("failover: kill -9 to the first commit acknowledged by the standby: {} ms", took.as_millis());

    let leader = standby.client(0);
    let health = leader.health().await.unwrap();
    assert!(health.boot_epoch > old_epoch, "the standby leads at a higher epoch");
    let new_tokens_min =
        leader.acquire(&AcquireRequest { accounts: vec![acc(1000)], ..Default::default() }).await.unwrap().locks[0]
            .token;
    assert!(new_tokens_min > old_tokens_max, "fencing tokens keep increasing across the takeover");

    // Every acknowledged commit is there, and every journal entry has its record: nothing half there.
    let records = record_keys(&leader, "transfers").await;
    let mut journal: BTreeMap<String, u64> = BTreeMap::new();
    let mut applied_per_account: BTreeMap<u64, i64> = BTreeMap::new();
    let mut seq = 0;
    loop {
        let page = leader.journal_after(seq, 1000).await.unwrap();
        for e in &page.entries {
            let a = e.changes[0].account.get();
            journal.insert(e.tx_id.clone(), a);
            *applied_per_account.entry(a).or_default() += 1;
            seq = e.seq;
        }
        if page.next.is_none() {
            break;
        }
    }
    let acked = acked.lock().unwrap().clone();
    assert!(acked.len() >= ACKED_BEFORE_KILL + ACKED_AFTER_KILL);
    for (tx, _) in &acked {
        assert!(records.contains(tx), "acknowledged {tx} has no record");
        assert!(journal.contains_key(tx), "acknowledged {tx} has no journal entry");
    }
    assert_eq!(records, journal.keys().cloned().collect::<BTreeSet<_>>(), "a commit is half there");
    // The journal replays to the amounts: each applied commit added exactly one cent.
    for w in 1..=WRITERS {
        let amount = leader.posted_amount(acc(w)).await.unwrap().unwrap_or(shared::Money::ZERO);
        assert_eq!(amount.cents(), applied_per_account.get(&w).copied().unwrap_or(0), "account {w}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_paused_past_its_lease_stops_and_the_standby_leads() {
    let dir = tempfile::tempdir().unwrap();
    let (mut active, standby) = pair(dir.path());
    let grant =
        active.client(0).acquire(&AcquireRequest { accounts: vec![acc(1)], ..Default::default() }).await.unwrap();
    let stale = LockRef { account: acc(1), token: grant.locks[0].token };

    // Frozen past its lease: the standby takes over meanwhile.
    let pid = active.pid().to_string();
    assert!(std::process::Command::new("kill").args(["-STOP", &pid]).status().unwrap().success());
    let started = Instant::now();
    while standby.client(0).health().await.is_err() {
        assert!(started.elapsed() < Duration::from_millis(WAIT_MS_MAX), "the standby never took over");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The new leader never heard of the old leader's lease.
    let mut tx = CommitRequest::new("from-the-past");
    tx.locks = vec![stale];
    tx.set = vec![SetAmount { account: acc(1), amount: money("5.00") }];
    assert!(standby.client(0).commit(&tx).await.is_err(), "a token of the deposed leader is refused");

    // Running again, the old leader finds its lease gone and stops; its commit is never acknowledged.
    assert!(std::process::Command::new("kill").args(["-CONT", &pid]).status().unwrap().success());
    let answer = active.client(0).commit(&tx).await;
    assert!(answer.is_err(), "a deposed leader acknowledged a commit: {answer:?}");
    let status = active.wait_exit(Duration::from_millis(WAIT_MS_MAX)).expect("the deposed leader stops");
    assert_eq!(status.code(), Some(3), "it says it stopped because it lost the lease");
    assert_eq!(standby.client(0).posted_amount(acc(1)).await.unwrap(), None, "nothing of it reached the database");
}
