//! Lock leases and fencing over the real binary.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::*;
use dataserver_api::{AcquireRequest, CommitRequest, LockRef, SetAmount};

/// 32 clients race to increment one account through the seed's lock / read / write / unlock
/// cycle. Any overlap of two holders would lose an increment.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mutual_exclusion_under_32_racing_clients() {
    let dir = tempfile::tempdir().unwrap();
    let server = spawn_server(dir.path());
    const CLIENTS: usize = 32;
    const ROUNDS: usize = 15;
    let account = acc(7);
    let mut tasks = Vec::new();
    for i in 0..CLIENTS {
        let client = server.client(i % 2);
        tasks.push(tokio::spawn(async move {
            for _ in 0..ROUNDS {
                let grant = client.get_lock(account, Some(10_000), Some(10_000)).await.expect("lock within the wait");
                let current = match client.get_amount(account).await {
                    Ok(m) => m,
                    Err(e) if e.status() == Some(reqwest::StatusCode::NOT_FOUND) => money("0"),
                    Err(e) => panic!("getAmount: {e}"),
                };
                let next = current.checked_add(money("1")).unwrap();
                client.set_amount(account, next, grant.token).await.expect("holder may write");
                client.un_lock(account, grant.token).await.expect("holder may unlock");
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let total = server.client(0).get_amount(account).await.unwrap();
    assert_eq!(total, money(&(CLIENTS * ROUNDS).to_string()));
    let metrics = server.client(0).metrics().await.unwrap();
    assert!(metrics.contains("dataserver_lock_waits_total"), "waiting was exercised");
}

#[tokio::test]
async fn lease_expiry_frees_the_lock_for_a_waiter() {
    let dir = tempfile::tempdir().unwrap();
    let server = spawn_server(dir.path());
    let (a, b) = (server.client(0), server.client(1));
    a.get_lock(acc(1), Some(300), None).await.unwrap();
    let refused = b.get_lock(acc(1), None, None).await.unwrap_err();
    assert_eq!(refused.code(), Some(dataserver_api::ErrorCode::Locked));
    let started = Instant::now();
    // The holder never unlocks: only the lease's expiry can let this waiter in.
    b.get_lock(acc(1), None, Some(5_000)).await.expect("granted once the lease expires");
    assert!(started.elapsed() >= Duration::from_millis(200), "granted before the lease ran out");
}

#[tokio::test]
async fn stale_fencing_token_is_refused_after_expiry_and_reacquire() {
    let dir = tempfile::tempdir().unwrap();
    let server = spawn_server(dir.path());
    let (a, b) = (server.client(0), server.client(1));
    let old = a.get_lock(acc(5), Some(100), None).await.unwrap();
    let new = b.get_lock(acc(5), None, Some(5_000)).await.unwrap();
    assert!(new.token > old.token, "tokens strictly increase");
    b.set_amount(acc(5), money("10"), new.token).await.unwrap();

    let e = a.set_amount(acc(5), money("999"), old.token).await.unwrap_err();
    assert_eq!(e.code(), Some(dataserver_api::ErrorCode::NotHolder));
    b.un_lock(acc(5), new.token).await.unwrap();

    // The old holder locks again: its old token stays dead, the new one is higher still.
    let again = a.get_lock(acc(5), None, None).await.unwrap();
    assert!(again.token > new.token);
    assert_eq!(
        a.set_amount(acc(5), money("999"), old.token).await.unwrap_err().code(),
        Some(dataserver_api::ErrorCode::NotHolder)
    );
    assert_eq!(a.un_lock(acc(5), old.token).await.unwrap_err().code(), Some(dataserver_api::ErrorCode::NotHolder));
    a.un_lock(acc(5), again.token).await.unwrap();
    assert_eq!(a.get_amount(acc(5)).await.unwrap(), money("10"));

    // An expired lease is refused even when nobody took the lock since.
    let short = a.get_lock(acc(6), Some(50), None).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut last = None;
    while Instant::now() < deadline {
        // Poll the server's own verdict rather than guessing at its clock.
        match a.set_amount(acc(6), money("1"), short.token).await {
            Err(e) => {
                last = e.code();
                break;
            }
            Ok(_) => tokio::task::yield_now().await,
        }
    }
    assert_eq!(last, Some(dataserver_api::ErrorCode::LeaseExpired));
}

#[tokio::test]
async fn a_business_cannot_use_or_release_anothers_lock() {
    let dir = tempfile::tempdir().unwrap();
    let server = spawn_server(dir.path());
    let (a, b) = (server.client(0), server.client(1));
    let grant = a.acquire(&AcquireRequest { accounts: vec![acc(1), acc(2)], ..Default::default() }).await.unwrap();
    let locks: Vec<LockRef> = grant.locks.iter().map(|g| LockRef { account: g.account, token: g.token }).collect();
    assert_eq!(b.un_lock(acc(1), locks[0].token).await.unwrap_err().code(), Some(dataserver_api::ErrorCode::NotHolder));
    assert_eq!(b.release(&locks).await.unwrap(), 0);
    let mut c = CommitRequest::new("steal");
    c.locks = locks.clone();
    c.set = vec![SetAmount { account: acc(1), amount: money("1") }];
    assert_eq!(b.commit(&c).await.unwrap_err().code(), Some(dataserver_api::ErrorCode::NotHolder));
    assert_eq!(b.get_amount(acc(1)).await.unwrap_err().code(), Some(dataserver_api::ErrorCode::Locked));
    assert_eq!(a.release(&locks).await.unwrap(), 2);
}

/// Batches that cross (1,2), (2,3), (3,1) wait for each other without deadlock.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn crossing_batches_with_waiting_never_deadlock() {
    let dir = tempfile::tempdir().unwrap();
    let server = spawn_server(dir.path());
    let mut tasks = Vec::new();
    for i in 0..24u64 {
        let client = server.client((i % 2) as usize);
        tasks.push(tokio::spawn(async move {
            for r in 0..10u64 {
                let x = 1 + (i + r) % 3;
                let y = 1 + (i + r + 1) % 3;
                let req =
                    AcquireRequest { accounts: vec![acc(x), acc(y)], wait_ms: Some(10_000), ..Default::default() };
                let g = client.acquire(&req).await.expect("no deadlock within the wait");
                let locks: Vec<LockRef> =
                    g.locks.iter().map(|g| LockRef { account: g.account, token: g.token }).collect();
                assert_eq!(client.release(&locks).await.unwrap(), 2);
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
}

#[tokio::test]
async fn acquire_with_request_id_is_retry_safe() {
    let dir = tempfile::tempdir().unwrap();
    let server = spawn_server(dir.path());
    let a = server.client(0);
    let req = AcquireRequest { accounts: vec![acc(3), acc(4)], request_id: Some("req-1".into()), ..Default::default() };
    let first = a.acquire(&req).await.unwrap();
    let retry = a.acquire(&req).await.unwrap();
    assert_eq!(first.locks, retry.locks);
    let other = AcquireRequest { request_id: Some("req-2".into()), ..req };
    assert_eq!(a.acquire(&other).await.unwrap_err().code(), Some(dataserver_api::ErrorCode::Locked));
}
