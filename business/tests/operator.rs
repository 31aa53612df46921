//! The operator API (seed 004) over a real data server and two real business replicas.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::*;
use reqwest::{Method, StatusCode};
use shared::api::{OperationKind, OperationReceipt};
use shared::{ErrorCode, Money};

#[tokio::test]
async fn receipts_and_precise_errors() {
    let bank = start_bank(2, &[]);
    bank.open_accounts([1, 2], "0").await;
    let (a, b) = (bank.operator(0), bank.operator(1));

    let r = a.op("/deposit/1/100.50", None).await.unwrap();
    assert_eq!((r.kind, r.amount, r.balances[0].balance), (OperationKind::Deposit, money("100.5"), money("100.5")));
    let r = b.op("/transfer/1/2/40", None).await.unwrap();
    assert_eq!(
        r.balances.iter().map(|x| (x.account.get(), x.balance)).collect::<Vec<_>>(),
        vec![(1, money("60.5")), (2, money("40"))]
    );
    let r = a.op("/withdrawal/2/0.5", None).await.unwrap();
    assert_eq!(r.balances[0].balance, money("39.5"));
    assert_eq!(b.balance(1).await, money("60.5"));

    let expect = |res: Result<OperationReceipt, CallError>, status: u16, code: ErrorCode| {
        let (s, body) = res.unwrap_err();
        assert_eq!((s, body.error), (Some(StatusCode::from_u16(status).unwrap()), code), "{}", body.message);
    };
    expect(a.op("/withdrawal/1/60.51", None).await, 422, ErrorCode::InsufficientFunds);
    expect(a.op("/transfer/1/2/1000", None).await, 422, ErrorCode::InsufficientFunds);
    expect(a.op("/transfer/1/1/1", None).await, 422, ErrorCode::SameAccount);
    expect(a.op("/deposit/99/1", None).await, 404, ErrorCode::AccountNotFound);
    expect(a.op("/transfer/1/99/1", None).await, 404, ErrorCode::AccountNotFound);
    expect(a.op("/deposit/1/0", None).await, 400, ErrorCode::AmountZero);
    expect(a.op("/deposit/1/-5", None).await, 400, ErrorCode::AmountNegative);
    expect(a.op("/deposit/1/1.001", None).await, 400, ErrorCode::AmountTooPrecise);
    expect(a.op("/deposit/1/1e30", None).await, 400, ErrorCode::AmountInvalid);
    expect(a.op("/deposit/1/NaN", None).await, 400, ErrorCode::AmountInvalid);
    expect(a.op("/deposit/1/99999999999999999999", None).await, 400, ErrorCode::AmountTooLarge);
    expect(a.op("/deposit/1/999999999999999.99", None).await, 422, ErrorCode::BalanceOverflow);
    expect(a.op("/deposit/abc/1", None).await, 400, ErrorCode::AccountIdInvalid);
    expect(a.op("/deposit/0/1", None).await, 400, ErrorCode::AccountIdInvalid);
    expect(a.op("/deposit/1/1", Some("")).await, 400, ErrorCode::IdempotencyKeyInvalid);
    let unauth = OperatorClient { key: "wrong-key-123".into(), ..a.clone() };
    expect(unauth.op("/deposit/1/1", None).await, 401, ErrorCode::Unauthorized);
    let (s, body) = unauth.call(Method::GET, "/balance/1", None).await.unwrap_err();
    assert_eq!((s, body.error), (Some(StatusCode::UNAUTHORIZED), shared::ErrorCode::Unauthorized));
    let (s, body) = a.call(Method::GET, "/deposit/1/1", None).await.unwrap_err();
    assert_eq!((s, body.error), (Some(StatusCode::METHOD_NOT_ALLOWED), shared::ErrorCode::MethodNotAllowed));

    // None of the refusals changed anything.
    assert_eq!((a.balance(1).await, a.balance(2).await), (money("60.5"), money("39.5")));
    assert_eq!(bank.ds().client(0).health().await.unwrap().journal_seq, 2 + 3, "two openings and three operations");

    // Metrics need the operator key, and count what happened on this replica.
    let (s, _) = unauth.call(Method::GET, "/metrics", None).await.unwrap_err();
    assert_eq!(s, Some(StatusCode::UNAUTHORIZED));
    let text =
        a.http.get(format!("{}/metrics", a.base)).header("auth", &a.key).send().await.unwrap().text().await.unwrap();
    assert!(text.contains("business_operations_total 2"), "{text}"); // deposit and withdrawal went to replica 0
    assert!(text.contains("business_responses_5xx_total 0"), "{text}");
}

#[tokio::test]
async fn idempotency_key_makes_retries_safe_across_replicas() {
    let bank = start_bank(2, &[]);
    bank.open_accounts([1, 2], "100").await;
    let (a, b) = (bank.operator(0), bank.operator(1));
    let first = a.op("/transfer/1/2/30", Some("pay-7")).await.unwrap();
    let again = b.op("/transfer/1/2/30", Some("pay-7")).await.unwrap();
    assert_eq!(first, again, "the retry returns the first receipt");
    assert_eq!((a.balance(1).await, a.balance(2).await), (money("70"), money("130")), "applied once");
    let (s, body) = b.op("/transfer/1/2/31", Some("pay-7")).await.unwrap_err();
    assert_eq!((s, body.error), (Some(StatusCode::UNPROCESSABLE_ENTITY), shared::ErrorCode::IdempotencyKeyReused));

    // Concurrent repeats of one keyed request through both replicas: one application.
    let mut tasks = Vec::new();
    for i in 0..8 {
        let c = bank.operator(i % 2);
        tasks.push(tokio::spawn(async move { c.op("/deposit/1/5", Some("dep-x")).await.unwrap() }));
    }
    let receipts: Vec<OperationReceipt> =
        futures::future::join_all(tasks).await.into_iter().map(Result::unwrap).collect();
    assert!(receipts.windows(2).all(|w| w[0] == w[1]));
    assert_eq!(a.balance(1).await, money("75"));
}

/// Expected balance of every account from the acknowledged receipts alone.
fn replay(opening: &BTreeMap<u64, Money>, acked: &[OperationReceipt]) -> BTreeMap<u64, i64> {
    let mut out: BTreeMap<u64, i64> = opening.iter().map(|(k, v)| (*k, v.cents())).collect();
    for r in acked {
        let c = r.amount.cents();
        let ids: Vec<u64> = r.balances.iter().map(|b| b.account.get()).collect();
        match r.kind {
            OperationKind::Deposit => *out.get_mut(&ids[0]).unwrap() += c,
            OperationKind::Withdrawal => *out.get_mut(&ids[0]).unwrap() -= c,
            OperationKind::Transfer => {
                *out.get_mut(&ids[0]).unwrap() -= c;
                *out.get_mut(&ids[1]).unwrap() += c;
            }
        }
    }
    out
}

const ACCOUNTS: u64 = 8;

fn random_op(i: u64, n: u64) -> String {
    let a = 1 + (i * 7 + n * 13) % ACCOUNTS;
    let b = 1 + (a + 1 + n % (ACCOUNTS - 1)) % ACCOUNTS;
    let b = if b == a { 1 + a % ACCOUNTS } else { b };
    let cents = 1 + (i * 31 + n * 17) % 2_000;
    let amount = format!("{}.{:02}", cents / 100, cents % 100);
    match n % 6 {
        0 => format!("/deposit/{a}/{amount}"),
        1 => format!("/withdrawal/{a}/{amount}"),
        _ => format!("/transfer/{a}/{b}/{amount}"),
    }
}

/// 32 clients race over 8 accounts through both replicas: every balance ends exactly at what
/// the acknowledged operations say, and none is ever negative.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_replicas_keep_every_balance_exact() {
    let bank = start_bank(2, &[]);
    bank.open_accounts(1..=ACCOUNTS, "50").await;
    let opening: BTreeMap<u64, Money> = (1..=ACCOUNTS).map(|a| (a, money("50"))).collect();
    let mut tasks = Vec::new();
    for i in 0..32u64 {
        let c = bank.operator((i % 2) as usize);
        tasks.push(tokio::spawn(async move {
            let mut acked = Vec::new();
            for n in 0..15u64 {
                match c.op(&random_op(i, n), None).await {
                    Ok(r) => acked.push(r),
                    Err((Some(s), body)) if s.is_client_error() => {
                        assert!(
                            [shared::ErrorCode::InsufficientFunds, shared::ErrorCode::AccountBusy]
                                .contains(&body.error),
                            "{}",
                            body.message
                        )
                    }
                    Err((s, body)) => panic!("{s:?} {body}"),
                }
            }
            acked
        }));
    }
    let mut acked = Vec::new();
    for t in tasks {
        acked.extend(t.await.unwrap());
    }
    assert!(acked.len() > 100, "most operations went through: {}", acked.len());
    let expected = replay(&opening, &acked);
    for (a, cents) in expected {
        assert!(cents >= 0);
        assert_eq!(bank.operator(0).balance(a).await.cents(), cents, "account {a}");
    }
}

/// A replica is SIGKILLed while operations flow through both. Every operation carries an
/// Idempotency-Key; those whose answer died with the replica are repeated through the other
/// one. Nothing acknowledged is lost, nothing applies twice, and the dead replica's leases stop
/// blocking accounts once they expire.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigkill_of_a_replica_mid_load_loses_nothing() {
    let mut bank = start_bank(2, &["--lease-ms", "1000", "--lock-wait-ms", "4000"]);
    bank.open_accounts(1..=ACCOUNTS, "50").await;
    let opening: BTreeMap<u64, Money> = (1..=ACCOUNTS).map(|a| (a, money("50"))).collect();
    let survivor = bank.operator(1);
    let done = Arc::new(AtomicUsize::new(0));
    let repeated = Arc::new(AtomicUsize::new(0));
    let reached = Arc::new(tokio::sync::Notify::new());
    let mut tasks = Vec::new();
    for i in 0..16u64 {
        let (c, survivor, done, reached, repeated) =
            (bank.operator((i % 2) as usize), survivor.clone(), done.clone(), reached.clone(), repeated.clone());
        tasks.push(tokio::spawn(async move {
            let mut acked = Vec::new();
            for n in 0..20u64 {
                let (path, key) = (random_op(i, n), format!("k-{i}-{n}"));
                let mut result = c.op(&path, Some(&key)).await;
                if matches!(result, Err((None, _)) | Err((Some(StatusCode::SERVICE_UNAVAILABLE), _))) {
                    // The replica died with the request: repeat it elsewhere, same key.
                    repeated.fetch_add(1, Ordering::Relaxed);
                    result = survivor.op(&path, Some(&key)).await;
                }
                match result {
                    Ok(r) => acked.push(r),
                    Err((Some(s), body)) if s.is_client_error() => {
                        assert!(
                            [shared::ErrorCode::InsufficientFunds, shared::ErrorCode::AccountBusy]
                                .contains(&body.error),
                            "{}",
                            body.message
                        )
                    }
                    Err((s, body)) => panic!("{s:?} {body}"),
                }
                if done.fetch_add(1, Ordering::Relaxed) + 1 == 60 {
                    reached.notify_one();
                }
            }
            acked
        }));
    }
    reached.notified().await;
    bank.kill_replica(0);
    let mut acked = Vec::new();
    for t in tasks {
        acked.extend(t.await.unwrap());
    }
    assert!(repeated.load(Ordering::Relaxed) > 0, "the kill hit requests");
    let expected = replay(&opening, &acked);
    for (a, cents) in &expected {
        assert_eq!(survivor.balance(*a).await.cents(), *cents, "account {a}");
    }
    // No lock is stuck: every account takes a new operation through the survivor.
    for a in 1..=ACCOUNTS {
        survivor.op(&format!("/deposit/{a}/1"), None).await.expect("no lease outlives its length");
    }
}

fn metric(text: &str, name: &str) -> f64 {
    text.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok()).unwrap_or(f64::NAN)
}

/// Operations that queue while a batch waits go to the data server as one batch, and each
/// caller still gets exactly the answer it would have had alone: the affordable debits apply,
/// the rest are refused for insufficient funds, an unknown account fails only its own request.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_batch_answers_every_caller_as_if_alone() {
    let bank = start_bank(1, &["--ops-batches-in-flight-max", "1"]);
    bank.open_accounts([1, 2, 3], "0").await;
    let a = bank.operator(0);
    a.op("/deposit/1/10", None).await.unwrap();
    let metrics = || async {
        let text = a.http.get(format!("{}/metrics", a.base)).header("auth", &a.key).send().await.unwrap();
        text.text().await.unwrap()
    };

    // Hold account 1 so the first batch waits for it and everything after it queues.
    let ds = bank.ds().client(0);
    let held = ds
        .acquire(&dataserver_api::AcquireRequest {
            accounts: vec![acc(1)],
            lease_ms: Some(30_000),
            ..Default::default()
        })
        .await
        .unwrap();
    let mut paths: Vec<String> = (0..6).map(|_| "/transfer/1/2/3".to_string()).collect();
    paths.push("/withdrawal/99/1".into());
    paths.push("/deposit/3/5".into());
    let n = paths.len();
    let tasks: Vec<_> = paths
        .into_iter()
        .map(|p| {
            let c = a.clone();
            tokio::spawn(async move { (p.clone(), c.op(&p, None).await) })
        })
        .collect();
    // Some are in the batch waiting for the lock, the others queue behind it.
    loop {
        let text = metrics().await;
        let (batched, queued) =
            (metric(&text, "business_batch_operations_sum"), metric(&text, "business_batch_queued"));
        if batched - 1.0 + queued == n as f64 {
            break;
        }
        tokio::task::yield_now().await;
    }
    ds.release(&[dataserver_api::LockRef { account: acc(1), token: held.locks[0].token }]).await.unwrap();

    let mut applied = 0;
    let mut refused = 0;
    for t in tasks {
        let (path, answer) = t.await.unwrap();
        match (path.as_str(), answer) {
            ("/transfer/1/2/3", Ok(_)) => applied += 1,
            ("/transfer/1/2/3", Err((s, body))) => {
                assert_eq!((s, body.error), (Some(StatusCode::UNPROCESSABLE_ENTITY), ErrorCode::InsufficientFunds));
                refused += 1;
            }
            ("/withdrawal/99/1", Err((s, body))) => {
                assert_eq!((s, body.error), (Some(StatusCode::NOT_FOUND), ErrorCode::AccountNotFound))
            }
            ("/deposit/3/5", Ok(r)) => assert_eq!(r.balances[0].balance, money("5")),
            (p, other) => panic!("{p}: {other:?}"),
        }
    }
    assert_eq!((applied, refused), (3, 3), "10.00 pays three transfers of 3.00, never a fourth");
    assert_eq!((a.balance(1).await, a.balance(2).await, a.balance(3).await), (money("1"), money("9"), money("5")));

    let text = metrics().await;
    // The deposit, the batch that waited, and (unless all arrived before it formed) the rest.
    let batches = metric(&text, "business_batch_operations_count");
    assert!((2.0..=3.0).contains(&batches), "{batches} batches");
    assert_eq!(metric(&text, "business_batch_operations_sum"), (1 + n) as f64);
    assert_eq!(metric(&text, "business_batch_alone_total"), 0.0, "nobody had to run again on their own");
    // Every applied operation is its own line in its batch's journal memo, with its own balance.
    let page = ds.account_journal(acc(2), None, 10).await.unwrap();
    let balances: Vec<Money> = page
        .entries
        .iter()
        .rev()
        .filter_map(|e| e.memo.as_ref()?.parse::<business::ledger::BatchMemo>().ok())
        .flat_map(|m| m.operations)
        .filter_map(|o| o.balances.iter().find(|b| b.account == acc(2)).map(|b| b.balance))
        .collect();
    assert_eq!(balances, vec![money("3"), money("6"), money("9")]);
}

/// A data server that stops answering without closing its connections (SIGSTOP: a hung process
/// or disk, or a network dropping packets silently) holds an operation only within the
/// replica's bound (`--dataserver-answer-ms-max` beyond the lock wait, per attempt): the caller
/// is answered `503` in JSON instead of waiting for ever. Once the data server runs again, the
/// same request under the same Idempotency-Key applies exactly once, whatever the stopped one
/// left behind (a lock granted to nobody, a commit received but never answered).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_data_server_that_stops_answering_holds_an_operation_only_within_its_bound() {
    let logs = tempfile::tempdir().unwrap();
    let bank = start_bank_with(
        1,
        &["--dataserver-answer-ms-max", "300", "--lock-wait-ms", "300", "--lease-ms", "1000", "--attempts-max", "2"],
        |spec| spec.log = Some((logs.path().to_path_buf(), "warn".into())),
    );
    bank.open_accounts([1], "50").await;
    let c = bank.operator(0);
    c.op("/deposit/1/1", None).await.expect("the bank works before the data server stops");

    bank.ds().pause().unwrap();
    // Without a bound the replica would wait for the stopped server as long as it stays stopped:
    // this wait is the test's, tens of times what the bound allows (two attempts of 600 ms).
    let stopped = std::time::Duration::from_secs(30);
    let answer = tokio::time::timeout(stopped, c.op("/deposit/1/7", Some("hung-1"))).await;
    bank.ds().resume().unwrap();
    let (status, body) = answer.expect("answered while the data server was stopped").expect_err("not applied");
    assert_eq!((status, body.error), (Some(StatusCode::SERVICE_UNAVAILABLE), ErrorCode::Unavailable), "{body}");
    // The caller learns what to do, not how the bank is built: the data server's address and
    // the transport's own words stay in the replica's log (they named the server's URL).
    let ds_url = bank.ds().url();
    let ds_port = ds_url.rsplit(':').next().unwrap().trim_end_matches('/');
    for internal in ["127.0.0.1", ds_port, "sending request", "/v1/"] {
        assert!(!body.message.contains(internal), "the 503 tells the caller {internal:?}: {body}");
    }
    let logged: String =
        std::fs::read_dir(logs.path()).unwrap().map(|f| std::fs::read_to_string(f.unwrap().path()).unwrap()).collect();
    assert!(
        logged.lines().any(|l| l.contains("answered 503") && l.contains(ds_port)),
        "the replica's log names what failed"
    );

    // The same request again, as the caller was told to: the lock the stopped server granted to
    // nobody lasts its lease, so `409 account_busy` or another `503` may come first.
    let mut repeats = 0;
    let receipt = loop {
        match c.op("/deposit/1/7", Some("hung-1")).await {
            Ok(r) => break r,
            Err((Some(s), body)) if s == StatusCode::SERVICE_UNAVAILABLE || body.error == ErrorCode::AccountBusy => {
                repeats += 1;
                assert!(repeats < 50, "still refused after {repeats} repeats: {body}");
            }
            Err(e) => panic!("{e:?}"),
        }
    };
    assert_eq!(receipt.kind, OperationKind::Deposit);
    assert_eq!(c.balance(1).await, money("58"), "the deposit applied once");
}
