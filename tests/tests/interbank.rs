//! Real 3-bank networks (each bank: a data server and 2 business replicas, as processes): packages
//! across banks, Pix keys, a bank killed mid-2PC, the token holder killed, a bank down past a
//! package's deadline. After each, the invariant checker must find nothing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use business::interbank::coordinator::{Owed, Undelivered};
use business::model::StoredPackage;
use harness::client::{Customer, Operator, sign_up};
use harness::cluster::{Cluster, Spec, TEST_TIMINGS};
use reqwest::{Method, StatusCode};
use shared::api::{Direction, EntryKind, Status, Transaction};
use shared::{Document, Ibk, Money};

fn start(deadline_ms: u64) -> (Cluster, tempfile::TempDir) {
    network(3, 2, &["--package-deadline-ms", &deadline_ms.to_string()])
}

/// `banks` banks of `replicas` replicas each, with the tests' timings and `extra` arguments.
fn network(banks: u32, replicas: u32, extra: &[&str]) -> (Cluster, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let mut spec = Spec::ephemeral(banks, replicas, dir.path());
    spec.business_args = TEST_TIMINGS.iter().chain(extra).map(|s| s.to_string()).collect();
    (Cluster::start(&spec).unwrap(), dir)
}

fn operator(c: &Cluster, bank: usize, replica: usize) -> Operator {
    Operator { http: pki::http_client(), base: c.banks[bank].urls()[replica].clone(), key: c.operator_key.clone() }
}

fn cpf(n: u64) -> String {
    Document::with_check_digits(&format!("{:09}", 200_000_000 + n)).unwrap().formatted()
}

/// A customer at bank `bank` (index) with `opening` deposited.
async fn customer(c: &Cluster, bank: usize, n: u64, opening: &str) -> Customer {
    let http = pki::http_client();
    let base = c.banks[bank].urls()[usize::try_from(n).unwrap() % 2].clone();
    let cu = sign_up(&http, &base, &format!("Cliente {n} da Silva"), &cpf(n), "senha-segura-123").await.unwrap();
    if opening != "0" {
        operator(c, bank, 0).deposit(cu.ibk(), opening).await.unwrap();
    }
    cu
}

/// Waits until the package is `success` or `failed` (or the time is up).
async fn terminal(cu: &Customer, id: &str, within: Duration) -> Transaction {
    let until = Instant::now() + within;
    loop {
        let t = cu.package(id).await.unwrap();
        if matches!(t.status, Status::Success | Status::Failed) {
            return t;
        }
        assert!(Instant::now() < until, "package {id} still {:?} after {within:?}", t.status);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn balance(c: &Cluster, ibk: Ibk) -> Money {
    operator(c, usize::try_from(ibk.bank.get() - 1).unwrap(), 1).balance(ibk).await.unwrap()
}

/// The checker, retried while settlement finishes (decisions are delivered asynchronously).
async fn settled_and_clean(c: &Cluster) -> tools::check::Report {
    let r = tools::check::settle_and_check(&c.target(), Duration::from_secs(30)).await.unwrap();
    assert!(r.violations.is_empty(), "invariants violated: {:#?}", r.violations);
    r
}

fn cents(m: Money) -> i128 {
    i128::from(m.cents())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chained_package_across_three_banks_settles_all_or_nothing() {
    let (c, _dir) = start(20_000);
    // One holder with accounts at banks 1 and 2 (same CPF), a payee at bank 3.
    let a1 = customer(&c, 0, 1, "500").await;
    let http = pki::http_client();
    let a2 = sign_up(&http, &c.banks[1].urls()[0], "Cliente 1 da Silva", &cpf(1), "senha-segura-123").await.unwrap();
    let payee = customer(&c, 2, 3, "0").await;
    // Bank 2 debits A2 in bank 1's packages only with its holder's consent, given at bank 2.
    a2.consent(1, "200").await.unwrap();

    // A1→A2, then A2→payee with the money just received: A2 has nothing of its own.
    let ops = [
        (a1.ibk().to_string(), a2.ibk().to_string(), "100.50"),
        (a2.ibk().to_string(), payee.ibk().to_string(), "100.50"),
    ];
    let t = a1.pay(&ops).await.unwrap();
    assert_eq!(t.status, Status::Pending);
    let done = terminal(&a1, &t.id, Duration::from_secs(20)).await;
    assert_eq!(done.status, Status::Success, "{done:?}");
    assert!(done.operations.iter().all(|o| o.status == Status::Success));
    assert_eq!(balance(&c, a1.ibk()).await, "399.50".parse().unwrap());
    assert_eq!(balance(&c, a2.ibk()).await, Money::ZERO);
    assert_eq!(balance(&c, payee.ibk()).await, "100.50".parse().unwrap());
    // Each bank's statement shows its entries, linked to the package, as each side reads them.
    for (who, kind, direction) in
        [(&payee, EntryKind::PackageReceived, Direction::Credit), (&a1, EntryKind::PackageSent, Direction::Debit)]
    {
        let st = who.statement().await.unwrap();
        let found = st.transactions.iter().find(|e| e.transaction.parent_id.as_deref() == Some(t.id.as_str()));
        let line = &found.unwrap_or_else(|| panic!("no line of {}: {st:?}", t.id)).line;
        assert_eq!(
            (line.kind, line.direction, line.amount, line.counterpart),
            (kind, direction, "100.50".parse().unwrap(), Some(a2.ibk()))
        );
    }
    let first = t.id.clone();

    // The reverse order needs A2's own money, which it does not have: nothing moves anywhere.
    let ops =
        [(a2.ibk().to_string(), payee.ibk().to_string(), "10"), (a1.ibk().to_string(), a2.ibk().to_string(), "10")];
    let t = a1.pay(&ops).await.unwrap();
    let done = terminal(&a1, &t.id, Duration::from_secs(20)).await;
    assert_eq!(done.status, Status::Failed);
    assert!(done.reason.as_deref().unwrap_or("").contains("insufficient") || done.reason.is_some());
    assert_eq!(balance(&c, a1.ibk()).await, "399.50".parse().unwrap());
    assert_eq!(balance(&c, payee.ibk()).await, "100.50".parse().unwrap());

    // Debiting someone else's account at another bank: that bank refuses (no consent of its
    // holder to bank 3), nothing moves.
    let t = payee.pay(&[(a1.ibk().to_string(), payee.ibk().to_string(), "1")]).await.unwrap();
    let done = terminal(&payee, &t.id, Duration::from_secs(20)).await;
    assert_eq!(done.status, Status::Failed);
    assert!(done.reason.as_deref().unwrap_or("").contains("not consented"), "{done:?}");
    assert_eq!(done.reason_code, Some(shared::ErrorCode::ConsentMissing), "a code to word it by: {done:?}");
    assert_eq!(balance(&c, a1.ibk()).await, "399.50".parse().unwrap());

    // The holder's accounts across the network.
    let all: shared::api::AllAccounts =
        a1.call(Method::GET, &format!("/api/accounts/{}/all", a1.ibk().account), None).await.unwrap();
    let here: Vec<Ibk> = all.accounts.iter().map(|a| a.ibk).collect();
    let elsewhere: Vec<Ibk> = all.elsewhere.iter().map(|a| a.ibk).collect();
    assert_eq!((here, elsewhere), (vec![a1.ibk()], vec![a2.ibk()]), "{all:?}");

    // Each author's statement lists its packages, newest first, in their final state: the
    // failed one too, with every operation failed and nothing of it among the lines.
    let st = a1.statement().await.unwrap();
    let mine: Vec<(Status, usize)> = st.packages.iter().map(|p| (p.status, p.operations.len())).collect();
    assert_eq!(mine, vec![(Status::Failed, 2), (Status::Success, 2)], "{st:?}");
    assert_eq!(st.packages[1].id, first);
    assert!(st.packages[0].operations.iter().all(|o| o.status == Status::Failed), "{st:?}");
    assert!(st.transactions.iter().all(|e| e.transaction.parent_id.as_deref() != Some(st.packages[0].id.as_str())));
    let theirs = payee.statement().await.unwrap();
    assert_eq!(theirs.packages.iter().map(|p| p.status).collect::<Vec<_>>(), vec![Status::Failed], "{theirs:?}");

    let r = settled_and_clean(&c).await;
    assert_eq!(r.total_cents(), 50_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pix_keys_are_unique_across_the_network_and_payable_from_any_bank() {
    let (c, _dir) = start(20_000);
    let ana = customer(&c, 0, 11, "0").await;
    let bia = customer(&c, 1, 12, "300").await;
    let body = serde_json::json!({ "account": ana.ibk(), "type": "email", "key": "Ana.Silva@Example.com" });
    let info: shared::api::KeyInfo = ana.call(Method::POST, "/api/keys", Some(&body)).await.unwrap();
    assert_eq!(info.key.as_str(), "ana.silva@example.com");
    // Resolved from every bank, with the holder's name masked.
    for bank in 0..3 {
        let k: Result<shared::api::KeyInfo, _> =
            bia.at(&c.banks[bank].urls()[1]).call(Method::GET, "/api/keys/ana.silva@example.com", None).await;
        let k = match bank {
            1 => k.unwrap(),
            // Another bank's replica does not know bia's session: 401, not a leak.
            _ => {
                assert_eq!(k.unwrap_err().status, Some(StatusCode::UNAUTHORIZED));
                continue;
            }
        };
        assert_eq!(k.ibk, ana.ibk());
        assert_eq!(k.name, "Cliente 1* d* S****");
    }
    // The same key from another bank's customer: taken.
    let again = serde_json::json!({ "account": bia.ibk(), "type": "email", "key": "ana.silva@example.com" });
    let err = bia.call::<serde_json::Value>(Method::POST, "/api/keys", Some(&again)).await.unwrap_err();
    assert_eq!(err.status, Some(StatusCode::CONFLICT), "{err}");
    // Paying the key from bank 2 reaches ana at bank 1.
    let t = bia.pay(&[(bia.ibk().to_string(), "ana.silva@example.com".into(), "42")]).await.unwrap();
    assert_eq!(t.operations[0].to, ana.ibk());
    assert_eq!(terminal(&bia, &t.id, Duration::from_secs(20)).await.status, Status::Success);
    assert_eq!(balance(&c, ana.ibk()).await, "42".parse().unwrap());
    // A random key, then removal: the key no longer resolves.
    let rnd = serde_json::json!({ "account": ana.ibk(), "type": "random" });
    let r: shared::api::KeyInfo = ana.call(Method::POST, "/api/keys", Some(&rnd)).await.unwrap();
    let _: serde_json::Value = ana.call(Method::DELETE, &format!("/api/keys/{}", r.key), None).await.unwrap();
    let gone = bia.call::<serde_json::Value>(Method::GET, &format!("/api/keys/{}", r.key), None).await.unwrap_err();
    assert_eq!(gone.status, Some(StatusCode::NOT_FOUND));
    // Bad keys are refused with the reason.
    let bad = serde_json::json!({ "account": ana.ibk(), "type": "phone", "key": "5561999998888" });
    let err = ana.call::<serde_json::Value>(Method::POST, "/api/keys", Some(&bad)).await.unwrap_err();
    assert_eq!(err.status, Some(StatusCode::BAD_REQUEST));
    assert_eq!(err.body.error, shared::ErrorCode::PixKeyInvalid);
    settled_and_clean(&c).await;
}

/// Many customers at every bank send packages to each other concurrently, some for more than
/// they have; `kill` SIGKILLs a whole bank mid-run and restarts it.
async fn concurrent_packages(kill: bool) {
    let (mut c, _dir) = start(60_000);
    let per_bank = 4u64;
    let mut customers = Vec::new();
    for bank in 0..3 {
        for i in 0..per_bank {
            customers.push(customer(&c, bank, 100 + 10 * u64::try_from(bank).unwrap() + i, "1000").await);
        }
    }
    let opening = 1000 * 100 * i128::from(u8::try_from(customers.len()).unwrap());
    let mut tasks = Vec::new();
    for (i, cu) in customers.iter().enumerate() {
        let cu = cu.clone();
        let targets: Vec<Ibk> = customers.iter().map(Customer::ibk).collect();
        tasks.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            for k in 0..6 {
                let to = targets[(i + 1 + k * 5) % targets.len()];
                let to2 = targets[(i + 7 + k) % targets.len()];
                // Every 3rd package asks for more than anyone has: it must fail everywhere.
                let amount = if k % 3 == 2 { "5000" } else { "37.25" };
                let mut ops = vec![(cu.ibk().to_string(), to.to_string(), amount)];
                if to2 != cu.ibk() && to2 != to {
                    ops.push((cu.ibk().to_string(), to2.to_string(), "12.10"));
                }
                // Whether a submission whose answer was lost was stored cannot be known; the
                // same key again tells (the bank may be down meanwhile: keep asking).
                let key = format!("pkg-{i}-{k}");
                let until = Instant::now() + Duration::from_secs(30);
                let t = loop {
                    match cu.pay_with_key(&ops, Some(&key)).await {
                        Ok(t) => break Some(t),
                        // Within one bank a package is applied (or refused) at once.
                        Err(e) if e.body.error == shared::ErrorCode::InsufficientFunds => break None,
                        // `account_busy` says to try again too: a replica killed while it held
                        // an account's lock blocks that account for the lock's lease (5 s), longer
                        // than a lock wait (2 s), by design.
                        Err(e)
                            if e.status.is_none()
                                || e.status == Some(StatusCode::SERVICE_UNAVAILABLE)
                                || e.body.error == shared::ErrorCode::AccountBusy =>
                        {
                            assert!(Instant::now() < until, "submission never answered: {e}");
                            tokio::time::sleep(Duration::from_millis(100)).await;
                        }
                        Err(e) => panic!("submission refused: {e}"),
                    }
                };
                ids.extend(t.map(|t| t.id));
            }
            (cu, ids)
        }));
    }
    if kill {
        tokio::time::sleep(Duration::from_millis(400)).await;
        c.kill_bank(1);
        tokio::time::sleep(Duration::from_millis(800)).await;
        c.start_bank(1).unwrap();
    }
    let mut results: BTreeMap<String, Transaction> = BTreeMap::new();
    for t in tasks {
        let (cu, ids) = t.await.unwrap();
        for id in ids {
            let done = terminal(&cu, &id, Duration::from_secs(60)).await;
            assert!(done.operations.iter().all(|o| o.status == done.status), "per-operation status: {done:?}");
            results.insert(id, done);
        }
    }
    assert!(results.values().any(|t| t.status == Status::Success));
    assert!(results.values().any(|t| t.status == Status::Failed));
    let report = settled_and_clean(&c).await;
    assert_eq!(report.total_cents(), opening, "money created or destroyed");
    // All or nothing: the balances are exactly the openings plus the successful packages.
    let mut expected: BTreeMap<Ibk, i128> = customers.iter().map(|cu| (cu.ibk(), 100_000)).collect();
    for t in results.values().filter(|t| t.status == Status::Success) {
        for o in &t.operations {
            *expected.get_mut(&o.from).unwrap() -= cents(o.amount);
            *expected.get_mut(&o.to).unwrap() += cents(o.amount);
        }
    }
    for (ibk, want) in expected {
        assert_eq!(cents(balance(&c, ibk).await), want, "balance of {ibk}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_packages_from_every_bank_keep_the_invariants() {
    concurrent_packages(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bank_killed_mid_settlement_recovers_every_package() {
    concurrent_packages(true).await;
}

#[derive(Debug, serde::Deserialize)]
struct GrantLine {
    grant: business::interbank::worker::GrantEntry,
}

#[derive(Debug, serde::Deserialize)]
struct Grants {
    grants: Vec<GrantLine>,
}

async fn all_grants(c: &Cluster) -> Vec<business::interbank::worker::GrantEntry> {
    let mut out = Vec::new();
    for (i, b) in c.banks.iter().enumerate() {
        if !b.replicas[0].running() && !b.replicas[1].running() {
            continue;
        }
        let r = if b.replicas[0].running() { 0 } else { 1 };
        let g: Grants = operator(c, i, r).call(Method::GET, "/interbank/grants").await.unwrap();
        out.extend(g.grants.into_iter().map(|l| l.grant));
    }
    out.sort_by_key(|g| (g.at_ms, g.epoch, g.seq));
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_token_holder_is_replaced_by_a_new_epoch() {
    let (mut c, _dir) = start(20_000);
    // Wait until bank 1 holds the token, then kill its replicas: the token dies with them.
    let ds = c.banks[0].ds_client();
    let until = Instant::now() + Duration::from_secs(20);
    let old_epoch = loop {
        if let Some(r) = ds.get_record("ring", "state").await.unwrap()
            && r.value.to_value()["holding"] == true
        {
            c.kill_replica(0, 0);
            c.kill_replica(0, 1);
            break r.value.to_value()["token"]["epoch"].as_u64().unwrap();
        }
        assert!(Instant::now() < until, "bank 1 never held the token");
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    let killed_at = Instant::now();
    let until = killed_at + Duration::from_secs(15);
    let new_epoch = loop {
        let g = all_grants(&c).await;
        if let Some(n) = g.iter().map(|g| g.epoch).find(|e| *e > old_epoch) {
            break n;
        }
        assert!(Instant::now() < until, "no new token within 15 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    println!("new epoch {new_epoch} after {:?}", killed_at.elapsed());
    // Bank 1 comes back (its ring state still says it holds the old token) and must rejoin
    // under the new epoch without ever working the old one again.
    c.start_replica(0, 0).unwrap();
    c.start_replica(0, 1).unwrap();
    let a = customer(&c, 0, 51, "100").await;
    let b = customer(&c, 2, 52, "0").await;
    let t = a.pay(&[(a.ibk().to_string(), b.ibk().to_string(), "60")]).await.unwrap();
    assert_eq!(terminal(&a, &t.id, Duration::from_secs(20)).await.status, Status::Success);
    // The grant log: in time order, epochs never go back (never two epochs at work together),
    // and within an epoch each grant follows the previous one.
    let grants = all_grants(&c).await;
    for w in grants.windows(2) {
        assert!(w[1].epoch >= w[0].epoch, "epoch went back: {:?} then {:?}", w[0], w[1]);
        if w[1].epoch == w[0].epoch {
            assert!(w[1].seq > w[0].seq, "a token granted twice: {:?} then {:?}", w[0], w[1]);
        }
    }
    settled_and_clean(&c).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_down_bank_makes_packages_wait_then_fail_at_the_deadline() {
    let (mut c, _dir) = start(6_000);
    let a = customer(&c, 0, 61, "100").await;
    let b = customer(&c, 2, 62, "0").await;
    c.kill_bank(2);
    // Bank 3 comes back within the deadline: the package waited and completes.
    let t1 = a.pay(&[(a.ibk().to_string(), b.ibk().to_string(), "10")]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(a.package(&t1.id).await.unwrap().status, Status::Pending);
    c.start_bank(2).unwrap();
    assert_eq!(terminal(&a, &t1.id, Duration::from_secs(20)).await.status, Status::Success);
    // Down past the deadline: the package fails and nothing moved.
    c.kill_bank(2);
    // `success` is read, not stored: t1's record still says `confirmed`, with its round, and
    // t1 reads `confirmed` again as soon as its round owes bank 3 its commit (as if bank 3 had
    // not acknowledged it), in the statement too — until bank 3 is back and has it again.
    let ds = c.banks[0].ds_client();
    let read = async |collection: &str, key: &str| -> StoredPackage {
        ds.get_record(collection, key).await.unwrap().unwrap().value.parse().unwrap()
    };
    let submitted = read("packages", &t1.id).await;
    assert_eq!(submitted.package.status, Status::Pending, "written once, as submitted");
    let stored = read("account_packages", &submitted.entry.expect("the key of its entry")).await;
    assert_eq!(stored.package.status, Status::Confirmed);
    let round = stored.round.expect("a confirmed package names its round");
    let owed = Undelivered {
        at_ms: 0,
        forget_after_ms: 0,
        owed: vec![Owed { package: t1.id.clone(), commit: true, banks: vec![b.ibk().bank] }],
    };
    let mut put = dataserver_api::CommitRequest::new("owe-t1-again");
    put.records.push(dataserver_api::RecordOp::Put {
        collection: "undelivered".into(),
        key: round,
        value: serde_json::to_value(&owed).unwrap().into(),
        if_version: Some(0),
    });
    ds.commit(&put).await.unwrap();
    assert_eq!(a.package(&t1.id).await.unwrap().status, Status::Confirmed);
    let t2 = a.pay(&[(a.ibk().to_string(), b.ibk().to_string(), "20")]).await.unwrap();
    // Waiting, it has no statement entry yet: the statement's first page finds it in the queue,
    // newest first, before the decided ones.
    let st = a.statement().await.unwrap();
    let listed: Vec<(&str, Status)> = st.packages.iter().map(|p| (p.id.as_str(), p.status)).collect();
    assert_eq!(listed, vec![(t2.id.as_str(), Status::Pending), (t1.id.as_str(), Status::Confirmed)], "{st:?}");
    let done = terminal(&a, &t2.id, Duration::from_secs(30)).await;
    assert_eq!(done.status, Status::Failed);
    assert!(done.reason.as_deref().unwrap_or("").contains("deadline"), "{done:?}");
    assert_eq!(balance(&c, a.ibk()).await, "90".parse().unwrap());
    assert_eq!(a.package(&t1.id).await.unwrap().status, Status::Confirmed, "bank 3 is still down");
    c.start_bank(2).unwrap();
    assert_eq!(terminal(&a, &t1.id, Duration::from_secs(20)).await.status, Status::Success);
    assert_eq!(balance(&c, b.ibk()).await, "10".parse().unwrap());
    settled_and_clean(&c).await;
}

/// Backpressure instead of an unbounded queue (issue 13): the settlement queue is bounded per
/// author and per bank by conditions of the enqueue's own commit. With the payee's bank down
/// nothing settles, so the queue fills: of a burst of one customer's packages through both
/// replicas exactly `--pending-packages-per-account-max` are taken and the rest get `429
/// packages_pending`; once the bank's queue holds `--settlement-queue-max`, anyone gets `503
/// settlement_busy` — both at once, with `Retry-After`, storing nothing. When the bank is back
/// the queue drains and there is room again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_settlement_queue_is_bounded_per_account_and_per_bank() {
    use shared::ErrorCode;
    const QUEUE_MAX: usize = 20;
    let per_account = 16;
    let (mut c, _dir) = network(
        2,
        2,
        &[
            "--package-deadline-ms",
            "120000",
            "--settlement-queue-max",
            "20",
            "--pending-packages-per-account-max",
            "16",
            // Longer than the default's 20 ms: the shedding below follows a refusal, in a
            // debug build on two busy cores.
            "--admission-memory-ms",
            "500",
        ],
    );
    let (ana, bia) = (customer(&c, 0, 81, "1000").await, customer(&c, 0, 82, "1000").await);
    let payee = customer(&c, 1, 83, "0").await;
    c.kill_bank(1);
    let one = |cu: &Customer| [(cu.ibk().to_string(), payee.ibk().to_string(), "1")];
    let burst = |cu: &Customer, n: usize| {
        let tries = (0..n).map(|i| {
            // Alternate the bank's two replicas: each must see the other's submissions.
            let cu = Customer { base: c.banks[0].urls()[i % 2].clone(), ..cu.clone() };
            async move { cu.pay(&one(&cu)).await }
        });
        futures::future::join_all(tries)
    };
    let counted = |answers: Vec<harness::client::Result<Transaction>>, code| {
        let said: Vec<_> = answers.into_iter().map(|a| a.map(|t| t.status).map_err(|e| e.body.error)).collect();
        let taken = said.iter().filter(|a| **a == Ok(Status::Pending)).count();
        let refused = said.iter().filter(|a| **a == Err(code)).count();
        ((taken, refused), said)
    };
    // Refused at once with Retry-After (each checked while only its own bound is met: once
    // both are, either answer is true).
    let refused_with_retry_after = |cu: &Customer, status| {
        let rb =
            cu.http.post(format!("{}/api/payments/pay", cu.base)).bearer_auth(&cu.token).json(&serde_json::json!({
                "author": cu.ibk(), "operations": [{ "from": cu.ibk(), "to": payee.ibk(), "amount": "1" }] }));
        async move {
            let resp = rb.send().await.unwrap();
            assert_eq!(resp.status(), status);
            assert_eq!(resp.headers().get("retry-after").and_then(|v| v.to_str().ok()), Some("1"));
        }
    };
    let (n, said) = counted(burst(&ana, per_account + 14).await, ErrorCode::PackagesPending);
    assert_eq!(n, (per_account, 14), "{said:?}");
    refused_with_retry_after(&ana, StatusCode::TOO_MANY_REQUESTS).await;
    let room = QUEUE_MAX - per_account;
    let (n, said) = counted(burst(&bia, room + 6).await, ErrorCode::SettlementBusy);
    assert_eq!(n, (room, 6), "{said:?}");
    refused_with_retry_after(&bia, StatusCode::SERVICE_UNAVAILABLE).await;
    // Shed at the door while the replica knows the bank is busy: a cross-bank package is refused
    // with that 503 before its session is read, so a made-up token gets it too (and nothing is
    // stored, counted below); no credentials at all is still 401, and a package within the bank
    // still runs. The replica believes the bound for 500 ms after meeting it, so the made-up
    // token follows a refusal at once (a few tries, for a machine that stalls that long).
    let stranger = Customer { token: "ab".repeat(32), ..bia.clone() };
    let mut shed = false;
    // Every refusal for a full queue so far, to be found in the replicas' metrics below.
    let mut refusals = 14 + 1 + 6 + 1;
    for _ in 0..5 {
        refused_with_retry_after(&bia, StatusCode::SERVICE_UNAVAILABLE).await;
        refusals += 1;
        match stranger.pay(&one(&bia)).await {
            Err(e) if e.body.error == ErrorCode::SettlementBusy => {
                shed = true;
                refusals += 1;
                break;
            }
            Err(e) => assert_eq!(e.status, Some(StatusCode::UNAUTHORIZED), "{e}"),
            Ok(t) => panic!("a made-up session was admitted: {t:?}"),
        }
    }
    assert!(shed, "a cross-bank package was not shed while the bank was known busy");
    let at = ["door", "memory", "look", "commit"].map(|at| format!("business_settlement_refused_total{{at=\"{at}\"}}"));
    let counted = c.bank_metrics(0, &at.each_ref().map(String::as_str)).await;
    assert_eq!(counted.iter().sum::<f64>(), f64::from(refusals), "{at:?}: {counted:?}");
    assert!(counted[0] >= 1.0, "the made-up session's refusal was at the door: {counted:?}");
    let anonymous = stranger.http.post(format!("{}/api/payments/pay", stranger.base)).json(&serde_json::json!({
        "author": bia.ibk(), "operations": [{ "from": bia.ibk(), "to": payee.ibk(), "amount": "1" }] }));
    assert_eq!(anonymous.send().await.unwrap().status(), StatusCode::UNAUTHORIZED);
    let within = bia.pay(&[(bia.ibk().to_string(), ana.ibk().to_string(), "1")]).await.unwrap();
    assert_eq!(within.status, Status::Success, "a package within the bank is not shed");
    // Nothing stored: the queue holds exactly its bound, and each author's statement lists
    // only what was taken (and bia's package within the bank).
    let pending: serde_json::Value = operator(&c, 0, 1).call(Method::GET, "/interbank/pending").await.unwrap();
    assert_eq!(pending["queued"], QUEUE_MAX, "{pending}");
    for (cu, taken) in [(&ana, per_account), (&bia, room + 1)] {
        assert_eq!(cu.statement().await.unwrap().packages.len(), taken);
    }
    // The payee's bank is back: everything waiting settles, and there is room again.
    c.start_bank(1).unwrap();
    for cu in [&ana, &bia] {
        for p in cu.statement().await.unwrap().packages {
            assert_eq!(terminal(cu, &p.id, Duration::from_secs(60)).await.status, Status::Success);
        }
    }
    // A replica may still believe the queue full (for `--admission-memory-ms` after it last met
    // the bound): the caller is told to come back after `Retry-After`, and does, as a client does.
    let again = ana.pay_retrying(&one(&ana)).await.unwrap();
    assert_eq!(terminal(&ana, &again.id, Duration::from_secs(30)).await.status, Status::Success);
    assert_eq!(balance(&c, payee.ibk()).await, Money::from_cents(100 * i64::try_from(QUEUE_MAX + 1).unwrap()).unwrap());
    settled_and_clean(&c).await;
}

/// The network must work with 10 banks: a package touching the first and the last bank settles
/// while the token goes round all ten.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_banks_settle_a_package_across_the_ring() {
    let (c, _dir) = network(10, 1, &[]);
    let http = pki::http_client();
    let a = sign_up(&http, &c.banks[0].urls()[0], "Cliente 71 da Silva", &cpf(71), "senha-segura-123").await.unwrap();
    Operator { http: http.clone(), base: c.banks[0].urls()[0].clone(), key: c.operator_key.clone() }
        .deposit(a.ibk(), "100")
        .await
        .unwrap();
    let b = sign_up(&http, &c.banks[9].urls()[0], "Cliente 72 da Silva", &cpf(72), "senha-segura-123").await.unwrap();
    let m = sign_up(&http, &c.banks[4].urls()[0], "Cliente 73 da Silva", &cpf(73), "senha-segura-123").await.unwrap();
    let t = a
        .pay(&[(a.ibk().to_string(), b.ibk().to_string(), "30"), (a.ibk().to_string(), m.ibk().to_string(), "20")])
        .await
        .unwrap();
    assert_eq!(terminal(&a, &t.id, Duration::from_secs(30)).await.status, Status::Success);
    for (i, ibk, want) in [(0, a.ibk(), "50"), (9, b.ibk(), "30"), (4, m.ibk(), "20")] {
        let op = Operator { http: http.clone(), base: c.banks[i].urls()[0].clone(), key: c.operator_key.clone() };
        assert_eq!(op.balance(ibk).await.unwrap(), want.parse().unwrap());
    }
    settled_and_clean(&c).await;
}

/// A prepare of one attempt `{package}.0` from `coordinator`: `from` (whose document is the
/// person asking) pays `to` the `amount`, in the epoch of the token `view`.
fn prepare_one(
    view: &serde_json::Value,
    coordinator: u32,
    package: &str,
    from: &Customer,
    to: &Customer,
    amount: &str,
) -> serde_json::Value {
    serde_json::json!({
        "epoch": view["token"]["epoch"],
        "coordinator": coordinator,
        "items": [{
            "txn": format!("{package}.0"), "package": package, "author": to.ibk(),
            "person": from.account.documents[0],
            "ops": [{ "from": from.ibk(), "to": to.ibk(), "amount": amount }],
            "deadline_ms": dataserver_api::clock::now_ms() + 60_000,
        }],
    })
}

/// Whether bank `coordinator`'s attempt `txn` is prepared at the bank of `ds` (its round's
/// record there holds the package).
async fn is_prepared(ds: &dataserver_api::client::DataClient, coordinator: u32, txn: &str) -> bool {
    use business::interbank::coordinator::split_txn;
    use business::interbank::participant::{PreparedRound, round_record_key};
    let (package, n) = split_txn(txn).unwrap();
    let key = round_record_key(shared::BankId::new(coordinator).unwrap(), n);
    match ds.get_record("prepared", &key).await.unwrap() {
        Some(r) => r.value.parse::<PreparedRound>().unwrap().items.contains_key(package),
        None => false,
    }
}

/// The decision the bank of `ds` applied to bank `coordinator`'s attempt `txn` (`None`: none,
/// or forgotten).
async fn outcome(ds: &dataserver_api::client::DataClient, coordinator: u32, txn: &str) -> Option<bool> {
    use business::interbank::coordinator::split_txn;
    use business::interbank::participant::{OutcomeRound, round_record_key};
    let (package, n) = split_txn(txn).unwrap();
    let key = round_record_key(shared::BankId::new(coordinator).unwrap(), n);
    let r = ds.get_record("outcomes", &key).await.unwrap()?;
    r.value.parse::<OutcomeRound>().unwrap().of(package)
}

/// A request between banks, sent as bank `as_bank` with its own certificate.
fn as_peer(c: &Cluster, as_bank: u32, method: Method, url: String) -> reqwest::RequestBuilder {
    c.pki.client_as(as_bank).unwrap().request(method, url).header(shared::api::BANK_HEADER, as_bank.to_string())
}

/// The ring state `base` (a bank's interbank listener) shows bank `as_bank`.
async fn token_view(c: &Cluster, as_bank: u32, base: &str) -> serde_json::Value {
    as_peer(c, as_bank, Method::GET, format!("{base}/interbank/token")).send().await.unwrap().json().await.unwrap()
}

/// Only an attempt's coordinator ends it: a member bank that commits or rolls back another
/// bank's prepared attempt would half-apply its package (before, bank 2 applied bank 3's commit
/// of bank 1's attempt). And only a bank of a package may ask for its decision: from any other
/// bank, a presumed abort would fail a package it has no part in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_bank_cannot_end_or_abort_another_banks_settlement() {
    let (c, _dir) = start(30_000);
    c.wait_ready(Duration::from_secs(60)).await.unwrap();
    let victim = customer(&c, 1, 71, "100").await;
    let payee = customer(&c, 0, 72, "0").await;
    let bank2 = c.banks[1].interbank_urls()[0].clone();
    victim.consent(1, "100").await.unwrap();

    // Bank 1, as a coordinator may (its customer consented at bank 2), prepares a debit there.
    let view = token_view(&c, 1, &bank2).await;
    let txn = "hostile0peer0test.0";
    let prepare = prepare_one(&view, 1, "hostile0peer0test", &victim, &payee, "60");
    let r = as_peer(&c, 1, Method::POST, format!("{bank2}/interbank/prepare")).json(&prepare).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let votes: serde_json::Value = r.json().await.unwrap();
    assert_eq!(votes["votes"][0]["vote"], "yes", "{votes}");

    // Bank 3 commits it, then rolls it back. A participant keeps an attempt under its
    // coordinator's id, and a bank's commit or rollback reaches only its own rounds' records:
    // bank 3's commit names an attempt of its own it knows nothing of, its rollback one it
    // never prepared (a tombstone in bank 3's own records). Nothing of bank 1's is touched.
    let by3 = |path: &str| {
        as_peer(&c, 3, Method::POST, format!("{bank2}{path}")).json(&serde_json::json!({ "txns": [txn] })).send()
    };
    let r = by3("/interbank/commit").await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.json::<serde_json::Value>().await.unwrap()["unknown"], serde_json::json!([txn]));
    assert_eq!(by3("/interbank/rollback").await.unwrap().status(), StatusCode::OK);
    assert_eq!(outcome(&c.banks[1].ds_client(), 1, txn).await, None, "bank 1's attempt has no outcome");
    assert_eq!(balance(&c, victim.ibk()).await, "100".parse::<Money>().unwrap(), "bank 3 moved nobody's money");
    let ds2 = c.banks[1].ds_client();
    assert!(is_prepared(&ds2, 1, txn).await, "the attempt is still prepared");
    // The same decisions carried by a prepare (issue 13: a round's decisions ride on the next
    // round's prepares) reach no further: bank 3's own prepare ends only bank 3's attempts, and
    // a prepare in bank 1's name from bank 3 is refused before anything is applied.
    let view3 = token_view(&c, 3, &bank2).await;
    let mut carrier = prepare_one(&view3, 3, "carrier0package", &victim, &payee, "1");
    carrier["decisions"] = serde_json::json!([{ "commit": true, "txns": [txn] }]);
    let r = as_peer(&c, 3, Method::POST, format!("{bank2}/interbank/prepare")).json(&carrier).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let answer: serde_json::Value = r.json().await.unwrap();
    // Bank 3's only attempt of that id is the tombstone its own rollback left: a commit of it
    // conflicts, and nothing is ended.
    assert!(answer.get("ended").is_none(), "nothing of bank 1's ended: {answer}");
    carrier["coordinator"] = serde_json::json!(1);
    let r = as_peer(&c, 3, Method::POST, format!("{bank2}/interbank/prepare")).json(&carrier).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST, "bank 3 speaking as bank 1");
    assert_eq!(outcome(&ds2, 1, txn).await, None, "bank 1's attempt has no outcome");
    assert!(is_prepared(&ds2, 1, txn).await, "the attempt is still prepared");
    assert_eq!(balance(&c, victim.ibk()).await, "100".parse::<Money>().unwrap(), "bank 3 moved nobody's money");

    // Its coordinator ends it.
    let r = as_peer(&c, 1, Method::POST, format!("{bank2}/interbank/rollback"))
        .json(&serde_json::json!({ "txns": [txn] }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(!is_prepared(&ds2, 1, txn).await, "rolled back by its coordinator");

    // A package of banks 1 and 2: bank 3 may not ask for (and so presume-abort) its decision.
    let t = payee_pays(&c, &victim, &payee).await;
    let bank1 = c.banks[0].interbank_urls()[0].clone();
    let ask = |as_bank| as_peer(&c, as_bank, Method::GET, format!("{bank1}/interbank/decision/{}.9", t.id));
    assert_eq!(ask(3).send().await.unwrap().status(), StatusCode::FORBIDDEN, "bank 3 has no part in it");
    assert_eq!(ask(2).send().await.unwrap().status(), StatusCode::OK, "bank 2 is a participant");
    // An id bank 1 never coordinated is an abort, and bank 3 asking for made-up ids writes
    // nothing there (before, a presumed abort per id: `decisions/` grew without bound).
    let ds1 = c.banks[0].ds_client();
    let rounds = || async { ds1.scan_records("rounds", "", None, 1_000).await.unwrap().records };
    // The package settles first: its own round records are no part of what is compared.
    terminal(&payee, &t.id, Duration::from_secs(30)).await;
    let before = rounds().await;
    for made_up in ["made0up0package.0", "made0up0package.77777", "no-round-at-all"] {
        let r = as_peer(&c, 3, Method::GET, format!("{bank1}/interbank/decision/{made_up}")).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.json::<serde_json::Value>().await.unwrap()["commit"], false);
    }
    assert_eq!(before, rounds().await, "nothing written for made-up ids");

    // A rogue member (issue 14, attack 2): bank 3 reads the victim's card, claims the victim as
    // the person behind a package of its own and prepares a debit at bank 2. Before, bank 2
    // trusted the documents bank 3 sent and voted yes; now it asks its own consents, finds
    // none to bank 3 (the victim's consent names bank 1), votes no and holds nothing.
    let card: serde_json::Value =
        as_peer(&c, 3, Method::POST, format!("{bank2}/interbank/account/ibk/{}", victim.ibk()))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
    assert!(card.get("documents").is_none() && card.get("balance").is_none(), "a card tells no more: {card}");
    assert_ne!(card["name"], victim.account.name, "the name is masked: {card}");
    let thief = customer(&c, 2, 73, "0").await;
    let before = balance(&c, victim.ibk()).await;
    let view = token_view(&c, 3, &bank2).await;
    let rogue = prepare_one(&view, 3, "rogue0member", &victim, &thief, "60");
    let r = as_peer(&c, 3, Method::POST, format!("{bank2}/interbank/prepare")).json(&rogue).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let votes: serde_json::Value = r.json().await.unwrap();
    assert_eq!(votes["votes"][0]["vote"], "no", "{votes}");
    // The refusal's tag is the code a client words it by.
    assert_eq!(votes["votes"][0]["refusal"]["reason"], serde_json::json!(shared::ErrorCode::ConsentMissing), "{votes}");
    assert!(!is_prepared(&ds2, 3, "rogue0member.0").await, "nothing held");
    let r = as_peer(&c, 3, Method::POST, format!("{bank2}/interbank/commit"))
        .json(&serde_json::json!({ "txns": ["rogue0member.0"] }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(balance(&c, victim.ibk()).await, before, "bank 3 moved none of the victim's money");

    // A later attempt ends the earlier ones of its package (issue 13, defect 3), but only its own
    // coordinator's: bank 3 naming attempt 2 of bank 1's package ends nothing of bank 1's.
    let view = token_view(&c, 1, &bank2).await;
    let mut first = prepare_one(&view, 1, "superseded0guard", &victim, &payee, "10");
    first["items"][0]["txn"] = serde_json::json!("superseded0guard.1");
    let r = as_peer(&c, 1, Method::POST, format!("{bank2}/interbank/prepare")).json(&first).send().await.unwrap();
    assert_eq!(r.json::<serde_json::Value>().await.unwrap()["votes"][0]["vote"], "yes");
    let mut forged = prepare_one(&view, 3, "superseded0guard", &victim, &thief, "10");
    forged["items"][0]["txn"] = serde_json::json!("superseded0guard.2");
    let r = as_peer(&c, 3, Method::POST, format!("{bank2}/interbank/prepare")).json(&forged).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(is_prepared(&ds2, 1, "superseded0guard.1").await, "bank 1's attempt is still prepared");
}

/// Two customers of bank 2 with 100 each, both consenting to debits by bank 1, and a payee at
/// bank 1 (numbered from `n`).
async fn two_payers_and_a_payee(c: &Cluster, n: u64) -> (Customer, Customer, Customer) {
    let first = customer(c, 1, n, "100").await;
    let second = customer(c, 1, n + 1, "100").await;
    let payee = customer(c, 0, n + 2, "0").await;
    first.consent(1, "100").await.unwrap();
    second.consent(1, "100").await.unwrap();
    (first, second, payee)
}

/// Locks `who`'s account at its bank's data server as other work would, for a minute.
async fn hold(ds: &dataserver_api::client::DataClient, who: &Customer) -> dataserver_api::LockRef {
    let req = dataserver_api::AcquireRequest {
        accounts: vec![who.ibk().account],
        lease_ms: Some(60_000),
        ..Default::default()
    };
    let grant = ds.acquire(&req).await.unwrap();
    dataserver_api::LockRef { account: who.ibk().account, token: grant.locks[0].token }
}

/// Returns once some request waits at the data server for a lock.
async fn someone_waits_for_a_lock(ds: &dataserver_api::client::DataClient) {
    waiting_for_locks(ds, 1).await;
}

/// Returns once `n` requests wait at the data server for locks (fails after 30 s).
async fn waiting_for_locks(ds: &dataserver_api::client::DataClient, n: u64) {
    let until = Instant::now() + Duration::from_secs(30);
    loop {
        let text = ds.metrics().await.unwrap();
        let waiting = text.lines().find_map(|l| l.strip_prefix("dataserver_lock_waiters ")?.parse::<u64>().ok());
        if waiting.unwrap_or(0) >= n {
            return;
        }
        assert!(Instant::now() < until, "{n} requests never waited for locks together");
        tokio::task::yield_now().await;
    }
}

/// A prepare that lands while its coordinator's rollback is under way (issue 13, defect 1). The
/// rollback reads which accounts to lock before taking the locks; an attempt prepared in between
/// is found under locks that do not cover its account. Before, the rollback deleted it anyway and
/// its hold stayed raised for ever (the money never spendable, the account never closable); now
/// a second pass ends it under its own locks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prepare_landing_during_its_rollback_leaves_no_hold() {
    let (c, _dir) = start(30_000);
    c.wait_ready(Duration::from_secs(60)).await.unwrap();
    let (first, second, payee) = two_payers_and_a_payee(&c, 91).await;
    let bank2 = c.banks[1].interbank_urls()[0].clone();
    let ds2 = c.banks[1].ds_client();
    let view = token_view(&c, 1, &bank2).await;
    let prepare = |txn: &str, from: &Customer| {
        let body = prepare_one(&view, 1, txn.trim_end_matches(".0"), from, &payee, "10");
        as_peer(&c, 1, Method::POST, format!("{bank2}/interbank/prepare")).json(&body).send()
    };
    let vote = |r: reqwest::Response| async move {
        assert_eq!(r.status(), StatusCode::OK);
        let v: serde_json::Value = r.json().await.unwrap();
        assert_eq!(v["votes"][0]["vote"], "yes", "{v}");
    };
    vote(prepare("late0prepare0a.0", &first).await.unwrap()).await;

    // The first account is held elsewhere: the rollback of both attempts reads their records
    // (only the first is prepared), then waits for that account's lock.
    let held = hold(&ds2, &first).await;
    let rollback = as_peer(&c, 1, Method::POST, format!("{bank2}/interbank/rollback"))
        .json(&serde_json::json!({ "txns": ["late0prepare0a.0", "late0prepare0b.0"] }))
        .send();
    let rollback = tokio::spawn(rollback);
    someone_waits_for_a_lock(&ds2).await;
    // Now the second attempt lands, on the other account.
    vote(prepare("late0prepare0b.0", &second).await.unwrap()).await;
    ds2.release(&[held]).await.unwrap();

    let r = rollback.await.unwrap().unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let done: serde_json::Value = r.json().await.unwrap();
    assert_eq!(done["done"].as_array().map(Vec::len), Some(2), "both ended: {done}");
    for (txn, who) in [("late0prepare0a.0", &first), ("late0prepare0b.0", &second)] {
        assert!(!is_prepared(&ds2, 1, txn).await, "{txn} rolled back");
        let hold = ds2.get_record("holds", &business::model::account_key(who.ibk().account)).await.unwrap();
        assert!(hold.is_none(), "no hold left on {}: {hold:?}", who.ibk());
    }
    // And the money is spendable: the whole balance can leave.
    operator(&c, 1, 0)
        .call::<serde_json::Value>(Method::POST, &format!("/withdrawal/{}/100", second.ibk().account))
        .await
        .unwrap();
}

/// One busy account delays only the packages that touch it (issue 13, defect 5). Before, a
/// prepare or a finish failed whole when one lock call of it did (`503`): the coordinator then
/// marked the bank down for its turn, and every package with that bank waited.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_busy_account_holds_up_only_its_own_packages() {
    let (c, _dir) = start(30_000);
    c.wait_ready(Duration::from_secs(60)).await.unwrap();
    let (busy, free, payee) = two_payers_and_a_payee(&c, 111).await;
    let bank2 = c.banks[1].interbank_urls()[0].clone();
    let ds2 = c.banks[1].ds_client();
    // Two packages in one prepare, one per account (the two fit one lock call), in the epoch
    // bank 2 is in now.
    let prepare = |a: &'static str, b: &'static str| {
        let (c, busy, free, payee, bank2) = (&c, &busy, &free, &payee, &bank2);
        async move {
            let view = token_view(c, 1, bank2).await;
            let mut body = prepare_one(&view, 1, a, busy, payee, "10");
            let other = prepare_one(&view, 1, b, free, payee, "10");
            body["items"].as_array_mut().unwrap().push(other["items"][0].clone());
            as_peer(c, 1, Method::POST, format!("{bank2}/interbank/prepare")).json(&body).send().await
        }
    };
    let finish = |path: &str, txns: &[&str]| {
        as_peer(&c, 1, Method::POST, format!("{bank2}{path}")).json(&serde_json::json!({ "txns": txns })).send()
    };
    let r = prepare("busy0first", "free0first").await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let votes: serde_json::Value = r.json().await.unwrap();
    assert_eq!((votes["votes"][0]["vote"].as_str(), votes["votes"][1]["vote"].as_str()), (Some("yes"), Some("yes")));

    // Other work holds one account for longer than a lock call waits.
    let held = hold(&ds2, &busy).await;
    // Ending both: the free one ends, the busy one is left for its coordinator to send again.
    let r = finish("/interbank/rollback", &["busy0first.0", "free0first.0"]).await.unwrap();
    assert_eq!(r.status(), StatusCode::OK, "one busy account does not refuse the whole rollback");
    let done: serde_json::Value = r.json().await.unwrap();
    assert_eq!(done["done"], serde_json::json!(["free0first.0"]), "{done}");
    assert!(is_prepared(&ds2, 1, "busy0first.0").await, "still prepared, still held");
    // Preparing two more: the free one is voted on, the busy one is not evaluated (its
    // coordinator tries again), and nothing of it is held.
    let r = prepare("busy0second", "free0second").await.unwrap();
    assert_eq!(r.status(), StatusCode::OK, "one busy account does not refuse the whole prepare");
    let votes: serde_json::Value = r.json().await.unwrap();
    assert_eq!(
        (votes["votes"][0]["vote"].as_str(), votes["votes"][1]["vote"].as_str()),
        (Some("unreachable"), Some("yes")),
        "{votes}"
    );
    assert!(!is_prepared(&ds2, 1, "busy0second.0").await);

    ds2.release(&[held]).await.unwrap();
    let r = finish("/interbank/rollback", &["busy0first.0", "busy0second.0", "free0second.0"]).await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let done: serde_json::Value = r.json().await.unwrap();
    assert_eq!(done["done"].as_array().map(Vec::len), Some(3), "{done}");
    for who in [&busy, &free] {
        let hold = ds2.get_record("holds", &business::model::account_key(who.ibk().account)).await.unwrap();
        assert!(hold.is_none(), "no hold left on {}: {hold:?}", who.ibk());
    }
}

/// A prepare whose epoch is superseded while it waits for its locks lands nothing (issue 13,
/// defect 6). Before, the epoch was read before the locks and was not a condition of the
/// commit: a coordinator whose token had moved on could still raise holds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prepare_overtaken_by_a_new_epoch_holds_nothing() {
    let (c, _dir) = start(30_000);
    c.wait_ready(Duration::from_secs(60)).await.unwrap();
    let payer = customer(&c, 1, 121, "100").await;
    let payee = customer(&c, 0, 122, "0").await;
    payer.consent(1, "100").await.unwrap();
    let bank2 = c.banks[1].interbank_urls()[0].clone();
    let ds2 = c.banks[1].ds_client();
    let view = token_view(&c, 1, &bank2).await;
    let held = hold(&ds2, &payer).await;
    let body = prepare_one(&view, 1, "overtaken0prepare", &payer, &payee, "10");
    let prepare = tokio::spawn(as_peer(&c, 1, Method::POST, format!("{bank2}/interbank/prepare")).json(&body).send());
    someone_waits_for_a_lock(&ds2).await;
    // Tokens no bank could rightly pass are refused: one passed in another bank's name, an
    // epoch past the range (it would wrap the next regeneration below every bank's and stop the
    // ring), an epoch no member regenerated.
    let epoch = view["token"]["epoch"].as_u64().unwrap();
    let pass = |as_bank: u32, epoch: u64, from: u32| {
        as_peer(&c, as_bank, Method::PUT, format!("{bank2}/interbank/token"))
            .json(&serde_json::json!({ "epoch": epoch, "seq": 0, "from": from }))
            .send()
    };
    assert_eq!(pass(3, epoch + 20_000, 1).await.unwrap().status(), StatusCode::FORBIDDEN, "in bank 1's name");
    for bad in [u64::MAX, epoch + 29_999] {
        let r = pass(1, bad, 1).await.unwrap();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "epoch {bad}");
        assert_eq!(r.json::<shared::ErrorBody>().await.unwrap().error, shared::ErrorCode::TokenInvalid);
    }
    // While it waits, bank 2 accepts a regenerated token: a newer epoch.
    let newer = business::interbank::ring::Token::regenerated(epoch, shared::BankId::new(1).unwrap());
    let r = as_peer(&c, 1, Method::PUT, format!("{bank2}/interbank/token"))
        .json(&serde_json::json!({ "epoch": newer.epoch, "seq": newer.seq, "from": 1 }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    ds2.release(&[held]).await.unwrap();

    let r = prepare.await.unwrap().unwrap();
    let status = r.status();
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["error"], serde_json::json!(shared::ErrorCode::StaleEpoch), "{body}");
    assert!(!is_prepared(&ds2, 1, "overtaken0prepare.0").await, "nothing prepared");
    let hold = ds2.get_record("holds", &business::model::account_key(payer.ibk().account)).await.unwrap();
    assert!(hold.is_none(), "nothing held: {hold:?}");
}

/// Sets bank `ds`'s ring state to token `(epoch, seq)`, held (by a worker that is no replica,
/// with a lease that runs for minutes) or not: a holder the test controls.
async fn set_ring(ds: &dataserver_api::client::DataClient, epoch: u64, seq: u64, holding: bool) {
    use business::interbank::ring::{RingState, Token};
    for attempt in 0.. {
        let r = ds.get_record("ring", "state").await.unwrap().unwrap();
        let mut state: RingState = r.value.parse().unwrap();
        state.token = Token { epoch, seq };
        state.holding = holding;
        state.worker = holding.then_some(999);
        state.lease_until_ms = if holding { u64::MAX / 2 } else { 0 };
        let mut c = dataserver_api::CommitRequest::new(format!("set-ring-{epoch}-{seq}-{holding}-{attempt}"));
        c.records.push(dataserver_api::RecordOp::Put {
            collection: "ring".into(),
            key: "state".into(),
            value: serde_json::to_value(state).unwrap().into(),
            if_version: Some(r.version),
        });
        if ds.commit(&c).await.is_ok() {
            return;
        }
    }
}

/// A token is taken from a bank's predecessor on its word; passed past other banks, only if
/// none of them holds a token of its epoch or has seen it (issue 13). Before, a member that did
/// not hold the token could hand one with a higher seq to any bank and start a second turn of
/// the epoch beside the real one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_passed_past_its_holder_is_refused() {
    use business::interbank::ring::{EPOCH_BANK_SPAN, Token};
    let (c, _dir) = start(30_000);
    c.wait_ready(Duration::from_secs(60)).await.unwrap();
    let bank3 = c.banks[2].interbank_urls()[0].clone();
    let ds2 = c.banks[1].ds_client();
    let live = token_view(&c, 1, &bank3).await["token"]["epoch"].as_u64().unwrap();
    let epoch = Token::regenerated(live + 10 * EPOCH_BANK_SPAN, shared::BankId::new(1).unwrap()).epoch;
    let pass = |as_bank: u32, seq: u64| {
        as_peer(&c, as_bank, Method::PUT, format!("{bank3}/interbank/token"))
            .json(&serde_json::json!({ "epoch": epoch, "seq": seq, "from": as_bank }))
            .send()
    };

    // Bank 2 holds the token of the epoch. Bank 1, past it, hands bank 3 a later one: refused.
    set_ring(&ds2, epoch, 5, true).await;
    let r = pass(1, 9).await.unwrap();
    assert_eq!(r.status(), StatusCode::CONFLICT);
    assert_eq!(r.json::<shared::ErrorBody>().await.unwrap().error, shared::ErrorCode::TokenOutOfTurn);
    let seen = token_view(&c, 2, &bank3).await;
    assert!(seen["token"]["epoch"].as_u64().unwrap() < epoch, "bank 3 took nothing of the epoch: {seen}");

    // Bank 2 passed it on and cannot be reached by bank 1 (it skips it): a later token of the
    // epoch from bank 1 is in turn.
    set_ring(&ds2, epoch, 5, false).await;
    let r = pass(1, 7).await.unwrap();
    assert_eq!(r.status(), StatusCode::OK, "{}", r.text().await.unwrap());
    let seen = token_view(&c, 2, &bank3).await;
    assert!(seen["token"]["epoch"].as_u64().unwrap() >= epoch, "bank 3 took the skipping pass: {seen}");
}

/// Attempts in doubt behind a dead coordinator's do not wait for it (issue 13, defect 4). Before,
/// recovery looked only at the first page of `prepared/` (128 attempts), in the loop that works
/// the token: with a page of a dead bank's attempts first, nobody else's was ever resolved.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attempts_behind_a_dead_coordinators_are_still_resolved() {
    let (mut c, _dir) = start(30_000);
    c.wait_ready(Duration::from_secs(60)).await.unwrap();
    let payee = customer(&c, 1, 131, "0").await;
    let from1 = customer(&c, 0, 132, "0").await;
    let from3 = customer(&c, 2, 133, "0").await;
    let bank2 = c.banks[1].interbank_urls()[0].clone();
    let ds2 = c.banks[1].ds_client();
    // Bank 1 is dead, and its attempts at bank 2 in doubt: sent in its name (its certificate)
    // after its death, so that no answer from it can end them first. They are credits in more
    // rounds than one page of records (bank 2 keeps them by coordinator and round, and bank 1's
    // sort first).
    for r in 0..c.banks[0].replicas.len() {
        c.kill_replica(0, r);
    }
    // The ring regenerates the token bank 1 died with; a prepare sent in an epoch that rose
    // meanwhile is refused (`stale_epoch`) and is sent again in the current one.
    let mut left: Vec<u32> = (1..=130).collect();
    for _ in 0..10 {
        let view = token_view(&c, 1, &bank2).await;
        let body = prepare_one(&view, 1, "a0dead0000", &from1, &payee, "1");
        let item = body["items"][0].clone();
        let prepares = left.iter().map(|i| {
            let mut body = body.clone();
            let mut it = item.clone();
            it["txn"] = serde_json::json!(format!("a0dead{i:04}.{i}"));
            it["package"] = serde_json::json!(format!("a0dead{i:04}"));
            body["items"] = serde_json::json!([it]);
            as_peer(&c, 1, Method::POST, format!("{bank2}/interbank/prepare")).json(&body).send()
        });
        let mut again = Vec::new();
        for (i, r) in left.iter().zip(futures::future::join_all(prepares).await) {
            let r = r.unwrap();
            if r.status() != StatusCode::OK {
                let e = r.json::<shared::ErrorBody>().await.unwrap();
                assert_eq!(e.error, shared::ErrorCode::StaleEpoch, "{e:?}");
                again.push(*i);
            }
        }
        left = again;
        if left.is_empty() {
            break;
        }
    }
    assert!(left.is_empty(), "{} prepares never met a current epoch", left.len());
    // And a record nobody can read sorts first: it is reported, and resolves nothing, but
    // stops no other attempt's resolution.
    let mut odd = dataserver_api::CommitRequest::new("unreadable-prepared".to_string());
    odd.records.push(dataserver_api::RecordOp::Put {
        collection: "prepared".into(),
        key: "0000.unreadable".into(),
        value: serde_json::json!({ "not": "a round" }).into(),
        if_version: Some(0),
    });
    ds2.commit(&odd).await.unwrap();
    // Bank 3 prepares one; it never decides it, so it is an abort.
    let mut sent = false;
    for _ in 0..10 {
        let view = token_view(&c, 3, &bank2).await;
        let live = prepare_one(&view, 3, "z0live", &from3, &payee, "1");
        let r = as_peer(&c, 3, Method::POST, format!("{bank2}/interbank/prepare")).json(&live).send().await.unwrap();
        if r.status() == StatusCode::OK {
            sent = true;
            break;
        }
        assert_eq!(r.json::<shared::ErrorBody>().await.unwrap().error, shared::ErrorCode::StaleEpoch);
    }
    assert!(sent, "bank 3's prepare never met a current epoch");
    let until = Instant::now() + Duration::from_secs(30);
    while is_prepared(&ds2, 3, "z0live.0").await {
        assert!(Instant::now() < until, "bank 3's attempt is still in doubt behind bank 1's");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(outcome(&ds2, 3, "z0live.0").await, Some(false), "presumed abort");
    // The dead coordinator's attempts wait for it: 2PC cannot decide them without it.
    assert!(is_prepared(&ds2, 1, "a0dead0001.1").await);
}

/// A replica whose lease runs out mid-round is taken over, and the package it was settling is
/// still settled, once (issue 13, defect 3). The takeover prepares the package's next attempt
/// while the first still holds at the payer's bank; before, the two holds were counted together
/// and an affordable package failed for want of funds. Now the later attempt ends the earlier
/// one there (it can never commit), and only the replica working the token records decisions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_round_taken_over_mid_way_still_settles_its_package_once() {
    let dir = tempfile::tempdir().unwrap();
    let mut spec = Spec::ephemeral(3, 2, dir.path());
    // A prepare may wait for locks (6 s) and a peer for it (8 s) longer than the ring lease
    // (2 s): the round outlives its lease.
    let args = ["--token-lost-ms", "10000", "--tick-ms", "100", "--in-doubt-ms", "20000", "--ring-lease-ms", "2000"];
    let more = ["--peer-timeout-ms", "8000", "--lock-wait-ms", "6000", "--package-deadline-ms", "60000"];
    spec.business_args = args.iter().chain(&more).map(|s| s.to_string()).collect();
    let c = Cluster::start(&spec).unwrap();
    c.wait_ready(Duration::from_secs(60)).await.unwrap();
    // One person with accounts at banks 2 (100) and 1 (nothing); bank 1 debits the account at
    // bank 2 with the holder's consent.
    let at2 = customer(&c, 1, 141, "100").await;
    let at1 =
        sign_up(&pki::http_client(), &c.banks[0].urls()[0], "Cliente 141 da Silva", &cpf(141), "senha-segura-123")
            .await
            .unwrap();
    at2.consent(1, "100").await.unwrap();
    let ds2 = c.banks[1].ds_client();
    let held = hold(&ds2, &at2).await;
    let t = at1.pay(&[(at2.ibk().to_string(), at1.ibk().to_string(), "60")]).await.unwrap();
    // The first attempt's prepare waits at bank 2; its replica's lease runs out, the other
    // replica takes the token over and prepares the next attempt, which waits too.
    waiting_for_locks(&ds2, 2).await;
    ds2.release(&[held]).await.unwrap();

    let done = terminal(&at1, &t.id, Duration::from_secs(30)).await;
    assert_eq!(done.status, Status::Success, "{done:?}");
    assert_eq!(balance(&c, at2.ibk()).await, "40".parse::<Money>().unwrap());
    assert_eq!(balance(&c, at1.ibk()).await, "60".parse::<Money>().unwrap());
    // Two attempts reached bank 2, in two rounds: the first ended there, the second committed.
    let ended = attempts(&ds2, &t.id).await;
    assert_eq!(ended.iter().map(|(_, c)| *c).collect::<Vec<_>>(), [false, true], "{ended:?}");
    settled_and_clean(&c).await;
}

/// The attempts of `package` a bank ended, as its `outcomes/` tell (id, committed), in the order
/// of their rounds.
async fn attempts(ds: &dataserver_api::client::DataClient, package: &str) -> Vec<(String, bool)> {
    use business::interbank::participant::{OutcomeRound, parse_round_record_key};
    let page = ds.scan_records("outcomes", "", None, 1_000).await.unwrap();
    let mut out: Vec<(u64, String, bool)> = page
        .records
        .into_iter()
        .filter_map(|r| {
            let (_, n) = parse_round_record_key(&r.key).unwrap();
            let o: OutcomeRound = r.value.parse().unwrap();
            o.of(package).map(|c| (n, business::interbank::coordinator::txn(package, n), c))
        })
        .collect();
    out.sort();
    out.into_iter().map(|(_, k, c)| (k, c)).collect()
}

/// The records of two-phase commit are forgotten some time after nothing can need them (issue
/// 13, defect 7: a decision and an outcome per attempt per bank, kept for ever). A prepare
/// carries its package's deadline; once the deadline plus the clock-skew bound has passed, a
/// prepare of that attempt is refused, and after a retention margin the outcomes and the
/// decision are deleted. A replayed prepare then finds a refusal, not an empty slot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settled_attempts_are_forgotten_after_their_horizon() {
    let short = ["--package-deadline-ms", "4000", "--clock-skew-ms-max", "200", "--records-retain-ms", "500"];
    let (c, _dir) = network(3, 2, &short);
    c.wait_ready(Duration::from_secs(60)).await.unwrap();
    let payer = customer(&c, 0, 151, "50").await;
    let payee = customer(&c, 1, 152, "0").await;
    let t = payer.pay(&[(payer.ibk().to_string(), payee.ibk().to_string(), "10")]).await.unwrap();
    assert_eq!(terminal(&payer, &t.id, Duration::from_secs(20)).await.status, Status::Success);
    let (ds1, ds2) = (c.banks[0].ds_client(), c.banks[1].ds_client());
    let txn = attempts(&ds2, &t.id).await.first().expect("an attempt at bank 2").0.clone();
    let (_, round) = business::interbank::coordinator::split_txn(&txn).unwrap();
    let round = business::interbank::coordinator::round_key(round);
    let kept = || async {
        [
            ds1.get_record("rounds", &round).await.unwrap().is_some(),
            outcome(&ds1, 1, &txn).await.is_some(),
            outcome(&ds2, 1, &txn).await.is_some(),
        ]
    };
    assert_eq!(kept().await, [true; 3], "kept while a prepare of it could still land");
    let until = Instant::now() + Duration::from_secs(30);
    while kept().await != [false; 3] {
        assert!(Instant::now() < until, "still kept past the horizon: {:?}", kept().await);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // The attempt's prepare replayed now: refused for its deadline, nothing prepared or held.
    let bank2 = c.banks[1].interbank_urls()[0].clone();
    let view = token_view(&c, 1, &bank2).await;
    let mut replay = prepare_one(&view, 1, &t.id, &payer, &payee, "10");
    replay["items"][0]["txn"] = serde_json::json!(txn);
    replay["items"][0]["deadline_ms"] = serde_json::json!(dataserver_api::clock::now_ms() - 5_000);
    let r = as_peer(&c, 1, Method::POST, format!("{bank2}/interbank/prepare")).json(&replay).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let votes: serde_json::Value = r.json().await.unwrap();
    assert_eq!(votes["votes"][0]["vote"], "no", "{votes}");
    assert_eq!(votes["votes"][0]["refusal"]["reason"], "deadline_passed", "{votes}");
    assert!(!is_prepared(&ds2, 1, &txn).await, "nothing prepared");
    // A deadline further ahead than any bank may set is refused whole: its records would be
    // kept for ever.
    replay["items"][0]["deadline_ms"] = serde_json::json!(dataserver_api::clock::now_ms() + 400 * 86_400_000);
    let r = as_peer(&c, 1, Method::POST, format!("{bank2}/interbank/prepare")).json(&replay).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(r.json::<shared::ErrorBody>().await.unwrap().error, shared::ErrorCode::DeadlineInvalid);
    settled_and_clean(&c).await;
}

/// Credits are reserved when voted for (issue 13, defect 5) — the large ones. Before, each
/// prepare checked its credit alone against the largest balance: two that fit alone were both
/// voted for, and the second commit, once the package's other banks had committed, could not be
/// applied. Now every credit must fit below the balance ceiling with the credits promised to the
/// account, and a large one is promised (from other packages and from the bank's own deposits).
/// A small credit to an account asked nothing else is not promised and writes no `holds/`
/// record: its commit may pass the ceiling, into the room kept above it for such credits in
/// flight (`settle::BALANCE_CEILING`). Such an account cannot be closed while the credit is on
/// its way (it would land on a closed account): nothing on the account says so, the prepared
/// rounds do.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credits_voted_for_always_fit() {
    use business::interbank::settle::{BALANCE_CEILING, UNRESERVED_CREDIT_CENTS_MAX};
    let (c, _dir) = start(30_000);
    c.wait_ready(Duration::from_secs(60)).await.unwrap();
    let reais = |cents: i64| Money::from_cents(cents).unwrap().to_string();
    let ceiling = BALANCE_CEILING.cents();
    let large = UNRESERVED_CREDIT_CENTS_MAX + 60;
    let rich = customer(&c, 1, 161, &reais(ceiling - large - 99)).await; // 0.99 of room past one
    let payer = customer(&c, 0, 162, &reais(3 * large)).await;
    let bank2 = c.banks[1].interbank_urls()[0].clone();
    let hold_of = |ibk: Ibk| {
        let ds = c.banks[1].ds_client();
        async move { ds.get_record("holds", &business::model::account_key(ibk.account)).await.unwrap() }
    };
    let prepare = |body: serde_json::Value| {
        let r = as_peer(&c, 1, Method::POST, format!("{bank2}/interbank/prepare")).json(&body);
        async move { r.send().await.unwrap().json::<serde_json::Value>().await.unwrap() }
    };
    let end = |what: &'static str, txns: serde_json::Value| {
        let r = as_peer(&c, 1, Method::POST, format!("{bank2}/interbank/{what}"))
            .json(&serde_json::json!({ "txns": txns }));
        async move { r.send().await.unwrap().json::<serde_json::Value>().await.unwrap() }
    };
    let view = token_view(&c, 1, &bank2).await;
    let mut body = prepare_one(&view, 1, "credit0one", &payer, &rich, &reais(large));
    let second = prepare_one(&view, 1, "credit0two", &payer, &rich, &reais(large));
    body["items"].as_array_mut().unwrap().push(second["items"][0].clone());
    let votes = prepare(body).await;
    assert_eq!(votes["votes"][0]["vote"], "yes", "{votes}");
    assert_eq!(votes["votes"][1]["refusal"]["reason"], "overflow", "{votes}");
    assert!(hold_of(rich.ibk()).await.is_some(), "a large credit is promised");
    // The bank's own deposit cannot take the room promised either.
    let e = operator(&c, 1, 0).deposit(rich.ibk(), "1.00").await.expect_err("the room is promised");
    assert_eq!(e.body.error, shared::ErrorCode::BalanceOverflow, "{e:?}");
    operator(&c, 1, 1).deposit(rich.ibk(), "0.99").await.unwrap();
    // The credit voted for commits.
    let done = end("commit", serde_json::json!(["credit0one.0"])).await;
    assert_eq!(done["done"], serde_json::json!(["credit0one.0"]));
    assert_eq!(balance(&c, rich.ibk()).await, BALANCE_CEILING);
    assert!(hold_of(rich.ibk()).await.is_none(), "nothing promised any more");

    // Small credits, each fitting below the ceiling alone, are voted for together and promise
    // nothing; committed, they take the account past the ceiling, never past the largest
    // balance. Past it, the account takes no more credit, and still pays.
    let modest = customer(&c, 1, 163, &reais(ceiling - 100)).await;
    let mut body = prepare_one(&view, 1, "small0one", &payer, &modest, "0.60");
    let second = prepare_one(&view, 1, "small0two", &payer, &modest, "0.60");
    body["items"].as_array_mut().unwrap().push(second["items"][0].clone());
    let votes = prepare(body).await;
    assert_eq!((&votes["votes"][0]["vote"], &votes["votes"][1]["vote"]), (&"yes".into(), &"yes".into()), "{votes}");
    assert!(hold_of(modest.ibk()).await.is_none(), "no hold kept for a small credit");
    let done = end("commit", serde_json::json!(["small0one.0", "small0two.0"])).await;
    assert_eq!(done["done"].as_array().map(Vec::len), Some(2), "{done}");
    assert_eq!(balance(&c, modest.ibk()).await.cents(), ceiling + 20);
    let e = operator(&c, 1, 0).deposit(modest.ibk(), "0.01").await.expect_err("past the ceiling");
    assert_eq!(e.body.error, shared::ErrorCode::BalanceOverflow, "{e:?}");
    let _: serde_json::Value =
        operator(&c, 1, 0).call(Method::POST, &format!("/withdrawal/{}/0.10", modest.ibk().account)).await.unwrap();
    assert_eq!(balance(&c, modest.ibk()).await.cents(), ceiling + 10);

    // An account with a small credit on its way cannot close, though its balance is zero and
    // its `holds/` record says nothing.
    let closing = customer(&c, 1, 164, "0").await;
    let votes = prepare(prepare_one(&view, 1, "small0close", &payer, &closing, "0.60")).await;
    assert_eq!(votes["votes"][0]["vote"], "yes", "{votes}");
    assert!(hold_of(closing.ibk()).await.is_none());
    let path = format!("/api/accounts/{}", closing.ibk().account);
    let e = closing.call::<serde_json::Value>(Method::DELETE, &path, None).await.expect_err("a credit is on its way");
    assert_eq!(e.body.error, shared::ErrorCode::OperationInFlight, "{e:?}");
    let done = end("rollback", serde_json::json!(["small0close.0"])).await;
    assert_eq!(done["done"], serde_json::json!(["small0close.0"]));
    closing.call::<serde_json::Value>(Method::DELETE, &path, None).await.unwrap();
    // (No checker at the end: bank 1's attempts here were forged by the test, with no decision
    // of bank 1 behind the commits.)
}

/// A member cannot pile up rounds held prepared at another bank (each a record there, kept
/// until decided, and scanned by its recovery): a participant holds at most
/// `PREPARED_ROUNDS_PER_COORDINATOR_MAX` of one coordinator's rounds. Bank 1, acting alone,
/// prepares that many rounds at bank 2 and never decides them; the next round's package is
/// answered `unreachable` and nothing of it is stored, while bank 3's rounds are still taken.
/// Bank 2 asks about rounds held past `--in-doubt-ms` and would end them (presumed abort) while
/// the test still counts on them held: on a loaded machine 256 prepares can take longer than
/// the suite's 2 s, so this cluster waits a minute, and the coordinators end their rounds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_cannot_pile_up_rounds_held_prepared() {
    use business::config::limits::{PREPARE_ITEMS_MAX, PREPARED_ROUNDS_PER_COORDINATOR_MAX as MAX, ROUND_PACKAGES_MAX};
    let dir = tempfile::tempdir().unwrap();
    let mut spec = Spec::ephemeral(3, 2, dir.path());
    spec.business_args = TEST_TIMINGS.iter().map(|s| s.to_string()).collect();
    let at = spec.business_args.iter().position(|a| a == "--in-doubt-ms").unwrap();
    spec.business_args[at + 1] = "60000".to_string();
    let c = Cluster::start(&spec).unwrap();
    c.wait_ready(Duration::from_secs(60)).await.unwrap();
    let payee = customer(&c, 1, 171, "0").await;
    let payer = customer(&c, 0, 172, "0").await;
    let other = customer(&c, 2, 173, "0").await;
    let bank2 = c.banks[1].interbank_urls()[0].clone();
    let ds2 = c.banks[1].ds_client();
    let in_round = |view: &serde_json::Value, coordinator: u32, from: &Customer, n: u64| {
        let package = format!("pile{coordinator}{n:04}");
        let mut body = prepare_one(view, coordinator, &package, from, &payee, "1");
        body["items"][0]["txn"] = serde_json::json!(format!("{package}.{n}"));
        (body, format!("{package}.{n}"))
    };
    // All at once, on the payee's one lock: a prepare that waited too long for it is voted
    // `unreachable` (nothing stored) and is sent again. The ring runs meanwhile, and on a loaded
    // machine may regenerate its token: a prepare sent in an epoch that rose is refused
    // (`stale_epoch`, nothing stored) and is sent again in the current one.
    let mut left: Vec<u64> = (1..=MAX).collect();
    let mut view = token_view(&c, 1, &bank2).await;
    for _ in 0..10 {
        let prepares = left.iter().map(|n| {
            let (body, _) = in_round(&view, 1, &payer, *n);
            as_peer(&c, 1, Method::POST, format!("{bank2}/interbank/prepare")).json(&body).send()
        });
        let mut again = Vec::new();
        for (n, r) in left.iter().zip(futures::future::join_all(prepares).await) {
            let r = r.unwrap();
            if r.status() != StatusCode::OK {
                let e = r.json::<shared::ErrorBody>().await.unwrap();
                assert_eq!(e.error, shared::ErrorCode::StaleEpoch, "round {n}: {e:?}");
                again.push(*n);
                continue;
            }
            let votes: serde_json::Value = r.json().await.unwrap();
            match votes["votes"][0]["vote"].as_str() {
                Some("yes") => {}
                Some("unreachable") => again.push(*n),
                _ => panic!("round {n}: {votes}"),
            }
        }
        left = again;
        if left.is_empty() {
            break;
        }
        view = token_view(&c, 1, &bank2).await;
    }
    assert!(left.is_empty(), "{} rounds never prepared", left.len());
    assert!(is_prepared(&ds2, 1, &in_round(&view, 1, &payer, MAX).1).await);
    // One prepare's votes, sent again in the current epoch if the token was regenerated.
    let prepare_now = |coordinator: u32, mut body: serde_json::Value| {
        let (c, bank2) = (&c, &bank2);
        async move {
            for _ in 0..10 {
                let r = as_peer(c, coordinator, Method::POST, format!("{bank2}/interbank/prepare")).json(&body);
                let r = r.send().await.unwrap();
                if r.status() == StatusCode::OK {
                    return r.json::<serde_json::Value>().await.unwrap();
                }
                let e = r.json::<shared::ErrorBody>().await.unwrap();
                assert_eq!(e.error, shared::ErrorCode::StaleEpoch, "{e:?}");
                body["epoch"] = token_view(c, coordinator, bank2).await["token"]["epoch"].clone();
            }
            panic!("no current epoch met in 10 tries");
        }
    };
    let (body, txn) = in_round(&view, 1, &payer, MAX + 1);
    assert_eq!(prepare_now(1, body).await["votes"][0]["vote"], "unreachable");
    assert!(!is_prepared(&ds2, 1, &txn).await, "nothing stored past the bound");
    let (body, txn) = in_round(&view, 3, &other, 1);
    assert_eq!(prepare_now(3, body).await["votes"][0]["vote"], "yes", "another coordinator's round");
    assert!(is_prepared(&ds2, 3, &txn).await);
    let rollback = |coordinator: u32, txns: Vec<String>| {
        let r = as_peer(&c, coordinator, Method::POST, format!("{bank2}/interbank/rollback"))
            .json(&serde_json::json!({ "txns": txns }))
            .send();
        async move { assert_eq!(r.await.unwrap().status(), StatusCode::OK) }
    };
    rollback(3, vec![txn]).await;
    // Nor can it pile packages into one round: a round holds at most `ROUND_PACKAGES_MAX` here
    // (part of the bound on credits on their way to an account without a hold).
    let in_round_7 = |k: String| {
        let mut body = prepare_one(&view, 3, &format!("full3{k}"), &other, &payee, "1");
        body["items"][0]["txn"] = serde_json::json!(format!("full3{k}.7"));
        body
    };
    let full: Vec<serde_json::Value> = (0..ROUND_PACKAGES_MAX).map(|k| in_round_7(format!("{k:04}"))).collect();
    let mut body = full[0].clone();
    body["items"] = serde_json::json!(full.iter().map(|b| b["items"][0].clone()).collect::<Vec<_>>());
    let votes = prepare_now(3, body).await;
    assert!(votes["votes"].as_array().unwrap().iter().all(|v| v["vote"] == "yes"), "{votes}");
    assert_eq!(prepare_now(3, in_round_7("over".into())).await["votes"][0]["vote"], "unreachable");
    assert!(!is_prepared(&ds2, 3, "full3over.7").await, "nothing stored past the bound");
    rollback(3, full.iter().map(|b| b["items"][0]["txn"].as_str().unwrap().to_string()).collect()).await;
    let held: Vec<String> = (1..=MAX).map(|n| in_round(&view, 1, &payer, n).1).collect();
    for txns in held.chunks(PREPARE_ITEMS_MAX) {
        rollback(1, txns.to_vec()).await;
    }
    settled_and_clean(&c).await;
}

/// A cross-bank package from `payee` (bank 1) to `victim` (bank 2), left to settle.
async fn payee_pays(c: &Cluster, victim: &Customer, payee: &Customer) -> Transaction {
    operator(c, 0, 0).deposit(payee.ibk(), "10").await.unwrap();
    let t = payee.pay(&[(payee.ibk().to_string(), victim.ibk().to_string(), "5")]).await.unwrap();
    assert_eq!(t.status, Status::Pending);
    t
}

/// Consents bound what another bank may debit (issue 14): concurrent packages cannot overspend
/// one (each vote reserves its debit with the hold), a revoked or expired consent covers
/// nothing, and the holder sees what was used.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consents_bound_what_another_bank_may_debit() {
    let (c, _dir) = start(20_000);
    let author = customer(&c, 0, 81, "0").await;
    let http = pki::http_client();
    let holder =
        sign_up(&http, &c.banks[1].urls()[0], "Cliente 81 da Silva", &cpf(81), "senha-segura-123").await.unwrap();
    operator(&c, 1, 0).deposit(holder.ibk(), "100").await.unwrap();
    let payee = customer(&c, 2, 82, "0").await;
    let consent = holder.consent(1, "50").await.unwrap();
    assert_eq!((consent.used, consent.status), (Money::ZERO, shared::api::ConsentStatus::Active));

    // Four packages of 20 at once against a consent of 50: two settle, two are refused.
    let op = [(holder.ibk().to_string(), payee.ibk().to_string(), "20")];
    let sent = futures::future::join_all((0..4).map(|_| author.pay(&op))).await;
    let mut outcomes = Vec::new();
    for t in sent {
        outcomes.push(terminal(&author, &t.unwrap().id, Duration::from_secs(30)).await);
    }
    let ok = outcomes.iter().filter(|t| t.status == Status::Success).count();
    assert_eq!(ok, 2, "{outcomes:#?}");
    assert!(
        outcomes.iter().filter(|t| t.status == Status::Failed).all(|t| t
            .reason
            .as_deref()
            .unwrap_or("")
            .contains("left")),
        "{outcomes:#?}"
    );
    assert_eq!(balance(&c, holder.ibk()).await, "60".parse().unwrap());
    let list: shared::api::Consents =
        holder.call(Method::GET, &format!("/api/consents?account={}", holder.ibk()), None).await.unwrap();
    assert_eq!((list.consents[0].used, list.consents[0].reserved), ("40".parse().unwrap(), Money::ZERO));

    // Revoked: covers nothing at once.
    let r = http
        .delete(format!("{}/api/consents/{}", holder.base, consent.id))
        .bearer_auth(&holder.token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let t = author.pay(&[(holder.ibk().to_string(), payee.ibk().to_string(), "1")]).await.unwrap();
    let done = terminal(&author, &t.id, Duration::from_secs(20)).await;
    assert_eq!(done.status, Status::Failed);
    assert!(done.reason.as_deref().unwrap_or("").contains("revoked"), "{done:?}");

    // Bad consents are refused whole.
    for (body, code) in [
        (
            serde_json::json!({ "account": holder.ibk(), "grantee_bank": 2, "amount_max": "1" }),
            shared::ErrorCode::ConsentInvalid,
        ),
        (
            serde_json::json!({ "account": holder.ibk(), "grantee_bank": 1, "amount_max": "1", "expires_at": "2999-01-01T00:00:00Z" }),
            shared::ErrorCode::ConsentInvalid,
        ),
        (
            serde_json::json!({ "account": holder.ibk(), "grantee_bank": 9, "amount_max": "1" }),
            shared::ErrorCode::UnknownBank,
        ),
        (
            serde_json::json!({ "account": author.ibk(), "grantee_bank": 3, "amount_max": "1" }),
            shared::ErrorCode::WrongBank,
        ),
    ] {
        let e = holder.call::<serde_json::Value>(Method::POST, "/api/consents", Some(&body)).await.unwrap_err();
        assert_eq!(e.body.error, code, "{body}");
    }
    // Somebody else's session cannot consent for the holder, nor see or revoke the consents.
    let stranger = customer(&c, 1, 83, "0").await;
    let body = serde_json::json!({ "account": holder.ibk(), "grantee_bank": 1, "amount_max": "1000" });
    let e = stranger.call::<serde_json::Value>(Method::POST, "/api/consents", Some(&body)).await.unwrap_err();
    assert_eq!(e.status, Some(StatusCode::FORBIDDEN));
    let e = stranger
        .call::<serde_json::Value>(Method::GET, &format!("/api/consents?account={}", holder.ibk()), None)
        .await
        .unwrap_err();
    assert_eq!(e.status, Some(StatusCode::FORBIDDEN));

    // Expired: a consent of a moment covers nothing once its moment passed.
    let soon = dataserver_api::clock::rfc3339_ms(dataserver_api::clock::now_ms() + 1_500);
    let body =
        serde_json::json!({ "account": holder.ibk(), "grantee_bank": 1, "amount_max": "10", "expires_at": soon });
    let short: shared::api::Consent = holder.call(Method::POST, "/api/consents", Some(&body)).await.unwrap();
    let until = u64::try_from(dataserver_api::clock::parse_rfc3339_ms(&short.expires_at).unwrap()).unwrap();
    tokio::time::sleep(Duration::from_millis(until.saturating_sub(dataserver_api::clock::now_ms()) + 50)).await;
    let t = author.pay(&[(holder.ibk().to_string(), payee.ibk().to_string(), "1")]).await.unwrap();
    let done = terminal(&author, &t.id, Duration::from_secs(20)).await;
    assert_eq!(done.status, Status::Failed);
    assert!(done.reason.as_deref().unwrap_or("").contains("expired"), "{done:?}");
    assert_eq!(balance(&c, holder.ibk()).await, "60".parse().unwrap());
    settled_and_clean(&c).await;
}

/// Banks prove who they are (issue 14, attack 3). Before, every bank's network file held every
/// bank's secret, so bank 3 authenticated to bank 2 as bank 1. Now the network file holds
/// certificates only, each bank's private key is its own (0600), and the interbank listener
/// takes a connection only with a certificate of the consortium's CA, speaking only as the bank
/// that certificate is listed for; a client calling a bank accepts only that bank's certificate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn banks_prove_who_they_are_by_certificate() {
    use std::os::unix::fs::PermissionsExt;
    let (c, _dir) = start(20_000);
    c.wait_ready(Duration::from_secs(60)).await.unwrap();
    let network = std::fs::read_to_string(&c.network_file).unwrap();
    assert!(!network.contains("PRIVATE KEY") && !network.contains("secret ="), "the network file holds no secret");
    for b in c.pki.banks.values() {
        let mode = std::fs::metadata(&b.key_file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{}", b.key_file.display());
        let dir = std::fs::metadata(b.key_file.parent().unwrap()).unwrap().permissions().mode() & 0o777;
        assert_eq!(dir, 0o700);
    }
    let bank2 = c.banks[1].interbank_urls()[0].clone();
    let ok = format!("{bank2}/interbank/token/ok");

    // Bank 1 as itself: in.
    let r = as_peer(&c, 1, Method::GET, ok.clone()).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    // Bank 3's certificate claiming to be bank 1: refused.
    let r = c.pki.client_as(3).unwrap().get(&ok).header(shared::api::BANK_HEADER, "1").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let body: shared::ErrorBody = r.json().await.unwrap();
    assert_eq!(body.error, shared::ErrorCode::Unauthorized);
    // No certificate at all: the handshake refuses the connection.
    let ca = pki::trusting_client_config(&c.pki.ca_pem).unwrap();
    let bare = pki::http().tls_backend_preconfigured(ca).build().unwrap();
    assert!(bare.get(&ok).header(shared::api::BANK_HEADER, "1").send().await.is_err(), "no certificate, no connection");
    // A certificate for "bank 1" from a CA of the attacker's own: refused by the handshake.
    let rogue_ca = pki::issue::Ca::new("Rogue CA").unwrap();
    let forged = rogue_ca.issue("bank 1", &["127.0.0.1"]).unwrap();
    let forged = pki::Identity::from_pem(&forged.cert_pem, &forged.key_pem).unwrap();
    let tls = pki::client_config(&forged, &c.pki.ca_pem, None).unwrap();
    let client = pki::http().tls_backend_preconfigured(tls).build().unwrap();
    assert!(client.get(&ok).header(shared::api::BANK_HEADER, "1").send().await.is_err(), "a forged certificate");
    // The plain customer listener serves no interbank route, whatever is claimed.
    let plain = format!("{}/interbank/token/ok", c.banks[1].urls()[0]);
    let r = pki::http_client().get(&plain).header(shared::api::BANK_HEADER, "1").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    // A bank calling bank 2 accepts only bank 2's certificate: bank 3 answering at an address
    // listed for bank 2 is refused by the handshake.
    let id1 = &c.pki.banks[&1].issued;
    let me = pki::Identity::from_pem(&id1.cert_pem, &id1.key_pem).unwrap();
    let bank2_cert = pki::certs_from_pem(&c.pki.banks[&2].issued.cert_pem).unwrap().remove(0);
    let pinned = pki::client_config(&me, &c.pki.ca_pem, Some(bank2_cert)).unwrap();
    let client = pki::http().tls_backend_preconfigured(pinned).build().unwrap();
    assert_eq!(client.get(&ok).header(shared::api::BANK_HEADER, "1").send().await.unwrap().status(), StatusCode::OK);
    let bank3_ok = format!("{}/interbank/token/ok", c.banks[2].interbank_urls()[0]);
    assert!(client.get(&bank3_ok).header(shared::api::BANK_HEADER, "1").send().await.is_err(), "not bank 2");
}

/// A bank that gets the token with packages waiting, but not a round's worth, waits
/// `--round-linger-ms` before its first round, so packages submitted meanwhile share the round
/// (and its holds, balances and per-round records). With a linger longer than the submissions
/// take, four packages submitted 100 ms apart are decided in one round at their bank; without
/// it, the idle ring (turning every few tens of milliseconds) takes them in several.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn packages_submitted_while_the_token_lingers_share_one_round() {
    let dir = tempfile::tempdir().unwrap();
    let mut spec = Spec::ephemeral(3, 2, dir.path());
    spec.business_args = TEST_TIMINGS.iter().map(|s| s.to_string()).collect();
    spec.business_args.extend(["--round-linger-ms".to_string(), "1500".to_string()]);
    let c = Cluster::start(&spec).unwrap();
    c.wait_ready(Duration::from_secs(60)).await.unwrap();
    let payer = customer(&c, 0, 181, "100").await;
    let payee = customer(&c, 1, 182, "0").await;
    // Rounds bank 1's replicas coordinated, and the packages they decided.
    let rounds = || async {
        let m = c.bank_metrics(0, &["business_round_packages_count", "business_round_packages_sum"]).await;
        (m[0], m[1])
    };
    // The round's steps and the token's holds and passes, beside (`bench packages` reads them).
    const STEPS: [&str; 8] = [
        "business_round_seconds_sum",
        "business_round_start_seconds_count",
        "business_round_prepare_seconds_count",
        "business_round_decide_seconds_count",
        "business_round_start_seconds_sum",
        "business_round_prepare_seconds_sum",
        "business_round_decide_seconds_sum",
        "business_hold_seconds_count",
    ];
    let steps_before = c.bank_metrics(0, &STEPS).await;
    let passes_before = c.bank_metrics(0, &["business_token_pass_seconds_count"]).await[0];
    let before = rounds().await;
    let mut ids = Vec::new();
    for n in 0..4 {
        if n > 0 {
            // The spacing is the scenario: each package arrives after the ring has turned.
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let t = payer.pay(&[(payer.ibk().to_string(), payee.ibk().to_string(), "1")]).await.unwrap();
        assert_eq!(t.status, Status::Pending);
        ids.push(t.id);
    }
    for id in &ids {
        assert_eq!(terminal(&payer, id, Duration::from_secs(30)).await.status, Status::Success);
    }
    let after = rounds().await;
    assert_eq!((after.0 - before.0, after.1 - before.1), (1.0, 4.0), "one round of the four");
    let steps: Vec<f64> = c.bank_metrics(0, &STEPS).await.iter().zip(&steps_before).map(|(a, b)| a - b).collect();
    assert_eq!(&steps[1..4], &[1.0, 1.0, 1.0], "each step of the one round timed once: {steps:?}");
    let (round, parts) = (steps[0], steps[4] + steps[5] + steps[6]);
    assert!(parts > 0.0 && parts <= round + 1e-6, "the steps are the round's time, in turn: {steps:?}");
    // The round was worked in a hold (bank 1's replicas pass the token as the ring turns).
    assert!(steps[7] >= 1.0, "holds timed: {steps:?}");
    let passes = c.bank_metrics(0, &["business_token_pass_seconds_count"]).await[0];
    assert!(passes > passes_before, "passes timed: {passes_before} → {passes}");
    settled_and_clean(&c).await;
}

/// A round's decisions ride on the next round's prepares (issue 13): a participant applies them
/// before it votes, and they cost no request of their own. With rounds of at most two packages
/// and a linger long enough for twelve submissions to wait together, bank 1's hold runs six
/// rounds back to back, and the decisions of all but the last reach banks 1 and 2 on a prepare
/// (the last go on their own, before the token moves on). Every package settles, every hold is
/// released, and the books balance.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decisions_ride_on_the_next_rounds_prepare() {
    let dir = tempfile::tempdir().unwrap();
    let mut spec = Spec::ephemeral(3, 2, dir.path());
    spec.business_args = TEST_TIMINGS.iter().map(|s| s.to_string()).collect();
    spec.business_args.extend(["--round-linger-ms", "1500", "--batch-packages-max", "2"].map(String::from));
    let c = Cluster::start(&spec).unwrap();
    c.wait_ready(Duration::from_secs(60)).await.unwrap();
    let payers = [customer(&c, 0, 191, "100").await, customer(&c, 0, 192, "100").await];
    let payee = customer(&c, 1, 193, "0").await;
    // Decisions acknowledged through prepares and through requests of their own, by bank 1's
    // replicas (the coordinator of every package here).
    let carried = || async {
        let m = c.bank_metrics(0, &["business_decisions_carried_total", "business_decisions_sent_total"]).await;
        (m[0], m[1])
    };
    // Lock calls at bank 2, whose only work here is the payee's side of each round.
    let ds2 = c.banks[1].ds_client();
    let grants = || async {
        let text = ds2.metrics().await.unwrap();
        text.lines().find_map(|l| l.strip_prefix("dataserver_lock_grants_total ")?.parse::<u64>().ok()).unwrap_or(0)
    };
    let rounds = || async { c.bank_metrics(0, &["business_round_packages_count"]).await[0] };
    let before = carried().await;
    let (grants_before, rounds_before) = (grants().await, rounds().await);
    let to = payee.ibk().to_string();
    let pays = (0..12).map(|n| {
        let (payer, to) = (&payers[n % 2], to.clone());
        async move { payer.pay(&[(payer.ibk().to_string(), to, "1")]).await.unwrap() }
    });
    let submitted = futures::future::join_all(pays).await;
    for (n, t) in submitted.iter().enumerate() {
        assert_eq!(terminal(&payers[n % 2], &t.id, Duration::from_secs(60)).await.status, Status::Success);
    }
    let (grants, rounds) = (grants().await - grants_before, rounds().await - rounds_before);
    settled_and_clean(&c).await;
    let after = carried().await;
    let (carried, sent) = (after.0 - before.0, after.1 - before.1);
    // Twelve packages, each acknowledged by banks 1 and 2 (a decision redelivered by recovery
    // meanwhile may be acknowledged twice).
    assert!(carried + sent >= 24.0, "every decision acknowledged: {after:?} after {before:?}");
    eprintln!("decisions acknowledged: {carried} carried by prepares, {sent} sent on their own");
    eprintln!("{rounds} rounds, {grants} lock grants at the payee's bank");
    // And the decisions a prepare carries are applied under its own locks, in its commit: at
    // the payee's bank one lock call per round, and one for the decisions sent on their own at
    // the end of a hold (there were two per round, a prepare's and a commit's).
    #[expect(clippy::cast_precision_loss, reason = "a few lock grants")]
    let grants = grants as f64;
    assert!(grants <= rounds + 2.0, "{grants} lock calls for {rounds} rounds");
    assert!(carried >= 12.0, "most decisions rode on a prepare: {carried} carried, {sent} sent");
    assert_eq!(balance(&c, payee.ibk()).await, "12".parse::<Money>().unwrap());
}

/// Another bank's trouble reaches our customers as "another bank did not answer", never in its
/// words or ours about it: bank 2, its data server stopped, does not answer bank 1 within the
/// peer timeout, whose error names bank 2's interbank address; and had it answered, its `503`
/// would have named its data server's (a hostile member could write anything there). The
/// customer at bank 1 looking up a recipient at bank 2 learns neither.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_banks_failure_reaches_a_customer_without_its_details() {
    // The tests' peer timeout (3 s) is shorter than the replicas' wait for their data server (5 s).
    let (c, _dir) = network(2, 1, &[]);
    c.wait_ready(Duration::from_secs(60)).await.unwrap();
    // Even numbers: `customer` signs up at replica n % 2, and each bank has one.
    let looker = customer(&c, 0, 80, "0").await;
    let payee = customer(&c, 1, 82, "0").await;
    let path = format!("/api/recipients/{}", payee.ibk());
    looker.call::<serde_json::Value>(Method::GET, &path, None).await.expect("bank 2 answers while it is well");

    let ds = c.banks[1].ds.as_ref().unwrap();
    ds.pause().unwrap();
    let answer = looker.call::<serde_json::Value>(Method::GET, &path, None).await;
    ds.resume().unwrap();
    let e = answer.expect_err("bank 2 could not answer");
    assert_eq!(
        (e.status, e.body.error),
        (Some(StatusCode::SERVICE_UNAVAILABLE), shared::ErrorCode::Unavailable),
        "{e}"
    );
    let port = |url: String| url.rsplit(':').next().unwrap().trim_end_matches('/').to_string();
    let mut internal = vec!["127.0.0.1".to_string(), "sending request".to_string(), port(ds.url())];
    internal.extend(c.banks[1].interbank_urls().into_iter().map(port));
    for what in &internal {
        assert!(!e.body.message.contains(what.as_str()), "the customer is told {what:?}: {e}");
    }
}
