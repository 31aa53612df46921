//! `interbank reliability`: the whole reliability and security suite, each scenario over real
//! processes (or, for the protocol, the deterministic simulator), printing one table: what load
//! was held, which faults were injected, how many requests were tried and how many violations
//! were found — which must be none.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use rand::Rng;

use crate::Error;
use crate::Result;
use crate::check::Report;
use crate::check::settle_and_check;
use crate::load::{Kind, LoadReport, load};
use crate::seed::seed;
use harness::cluster::{Cluster, Spec, TEST_TIMINGS};

#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Shorter loads and fewer seeds (a few minutes in all), for a quick look.
    #[arg(long)]
    pub quick: bool,
    /// Seeds of the protocol simulation (default: 10,000; 2,000 with --quick).
    #[arg(long)]
    pub seeds: Option<u64>,
    /// Run only the scenarios whose name contains this.
    #[arg(long)]
    pub only: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Row {
    pub scenario: &'static str,
    pub load: String,
    pub faults: String,
    pub requests: u64,
    pub violations: Vec<String>,
}

async fn start(banks: u32, extra: &[&str], proxies: bool) -> Result<(Cluster, tempfile::TempDir)> {
    let dir = tempfile::tempdir()?;
    let mut spec = Spec::ephemeral(banks, 2, dir.path());
    spec.business_args = TEST_TIMINGS.iter().chain(extra).map(|s| s.to_string()).collect();
    spec.peer_proxies = proxies;
    let c = Cluster::start(&spec)?;
    c.wait_ready(READY_WITHIN).await?;
    Ok((c, dir))
}

/// How long a started network may take until every bank answers every other.
const READY_WITHIN: std::time::Duration = std::time::Duration::from_secs(60);

fn requests(r: &LoadReport) -> u64 {
    r.ops + r.errors.values().sum::<u64>()
}

/// Every acknowledged transfer is in its bank's durable state (`packages/{id}`, written in the
/// same commit as the balances).
async fn acked_missing(c: &Cluster, r: &LoadReport) -> Result<Vec<String>> {
    let mut missing = Vec::new();
    for (bank, id) in &r.acked {
        let b = c.banks.iter().find(|b| b.id == *bank).ok_or_else(|| Error::run("unknown bank"))?;
        if b.ds_client().get_record("packages", id).await?.is_none() {
            missing.push(format!("acknowledged transfer {id} at bank {bank} is gone"));
        }
    }
    Ok(missing)
}

/// After the load: every package terminal within `within`, and the checker clean.
async fn settled(c: &Cluster, within: Duration) -> Result<Vec<String>> {
    let r: Report = settle_and_check(&c.target(), within).await?;
    Ok(r.violations.into_iter().map(|v| format!("{} s after the load: {v}", within.as_secs())).collect())
}

/// The load's report once it ends, and what is wrong then: acknowledged transfers gone, or the
/// network not settled and clean within `within`.
async fn after_load(
    c: &Cluster,
    l: tokio::task::JoinHandle<Result<LoadReport>>,
    within: Duration,
) -> Result<(LoadReport, Vec<String>)> {
    let report = l.await??;
    let mut v = acked_missing(c, &report).await?;
    v.extend(settled(c, within).await?);
    Ok((report, v))
}

/// A network of its own, seeded with `clients` customers, with the load already running.
async fn under_load(
    banks: u32,
    extra: &[&str],
    proxies: bool,
    clients: usize,
    secs: u64,
    kinds: &[(Kind, u32)],
) -> Result<(Cluster, tempfile::TempDir, tokio::task::JoinHandle<Result<LoadReport>>)> {
    let (c, dir) = start(banks, extra, proxies).await?;
    let t = c.target();
    let customers = seed(&t, clients, "1000").await?;
    let kinds = kinds.to_vec();
    let d = Duration::from_secs(secs);
    // Bounded: a load that hangs a minute past its end is a failure, not a wait.
    let l = tokio::spawn(async move {
        tokio::time::timeout(d + Duration::from_secs(60), load(&t, customers, &kinds, d, None, false))
            .await
            .map_err(|_| Error::run("the load hung a minute past its end"))?
    });
    Ok((c, dir, l))
}

const MIXED: [(Kind, u32); 5] =
    [(Kind::Deposit, 1), (Kind::Withdraw, 1), (Kind::Transfer, 4), (Kind::Package, 4), (Kind::Pix, 1)];

/// Scenario 1: A random business replica SIGKILLed and restarted every 2 s under mixed load.
async fn replica_crash(secs: u64, clients: usize) -> Result<Row> {
    let (mut c, _dir, l) = under_load(3, &[], false, clients, secs, &MIXED).await?;
    let started = Instant::now();
    let mut kills = 0;
    while started.elapsed() + Duration::from_secs(2) < Duration::from_secs(secs) {
        tokio::time::sleep(Duration::from_secs(2)).await;
        let b = rand::rng().random_range(0..c.banks.len());
        let r = rand::rng().random_range(0..c.banks[b].replicas.len());
        c.kill_replica(b, r);
        c.start_replica(b, r)?;
        kills += 1;
    }
    let (report, v) = after_load(&c, l, Duration::from_secs(10)).await?;
    Ok(Row {
        scenario: "replica crash",
        load: format!("{clients} clients × {secs} s, {:.0} ops/s", report.ops_per_s),
        faults: format!("{kills} replicas SIGKILLed (every 2 s)"),
        requests: requests(&report),
        violations: v,
    })
}

/// Scenario 2: a bank's data server SIGKILLed under load and restarted on its folder; a lock of
/// the dead epoch must be refused.
async fn dataserver_crash(secs: u64, clients: usize) -> Result<Row> {
    let (mut c, _dir, l) = under_load(3, &[], false, clients, secs, &MIXED).await?;
    let mut v = Vec::new();
    let mut kills = 0;
    let rounds = (secs / 5).max(1);
    for _ in 0..rounds {
        tokio::time::sleep(Duration::from_secs(secs / (rounds + 1))).await;
        let b = rand::rng().random_range(0..c.banks.len());
        // A lease taken before the crash, on an account no customer uses.
        let ds = c.banks[b].ds_client();
        let account = shared::AccountId::new(999_999)?;
        let grant = ds.get_lock(account, Some(60_000), Some(1_000)).await?;
        c.kill_dataserver(b);
        c.start_dataserver(b)?;
        kills += 1;
        let money = shared::Money::from_cents(100)?;
        if ds.set_amount(account, money, grant.token).await.is_ok() {
            v.push(format!("bank {}: a lock of the dead epoch wrote after the restart", c.banks[b].id));
        }
    }
    let (report, after) = after_load(&c, l, Duration::from_secs(10)).await?;
    v.extend(after);
    Ok(Row {
        scenario: "data server crash",
        load: format!("{clients} clients × {secs} s, {:.0} ops/s", report.ops_per_s),
        faults: format!("{kills} data servers SIGKILLed; fencing checked each time"),
        requests: requests(&report),
        violations: v,
    })
}

/// How long each hung data server stays stopped.
const HUNG_MS: u64 = 3_000;
/// What the hung row's replicas wait for a data server's answer (beyond a lock wait): below
/// [`HUNG_MS`], so requests run out while it is stopped and are repeated or answered `503`.
const HUNG_ANSWER_MS_MAX: &str = "1000";

/// A random bank's data server stops answering under mixed load (SIGSTOP: its
/// connections stay open, as with a hung process or disk or a silent network) and runs again
/// [`HUNG_MS`] later (SIGCONT), the leases it granted aged by the pause. Requests that ran out
/// meanwhile may still be applied when it resumes: they are repeated under their own ids or
/// keys, never counted as refused.
async fn dataserver_hung(secs: u64, clients: usize) -> Result<Row> {
    let extra = ["--dataserver-answer-ms-max", HUNG_ANSWER_MS_MAX];
    let (c, _dir, l) = under_load(3, &extra, false, clients, secs, &MIXED).await?;
    let rounds = (secs / 10).max(1);
    let gap = Duration::from_secs(secs) / u32::try_from(rounds + 1).unwrap_or(u32::MAX);
    let mut pauses = 0;
    for _ in 0..rounds {
        tokio::time::sleep(gap).await;
        let b = rand::rng().random_range(0..c.banks.len());
        let ds = c.banks[b].ds.as_ref().ok_or_else(|| Error::run("a bank without its data server"))?;
        ds.pause()?;
        tokio::time::sleep(Duration::from_millis(HUNG_MS)).await;
        ds.resume()?;
        pauses += 1;
    }
    let (report, v) = after_load(&c, l, Duration::from_secs(20)).await?;
    Ok(Row {
        scenario: "data server hung",
        load: format!("{clients} clients × {secs} s, {:.0} ops/s", report.ops_per_s),
        faults: format!("{pauses} data servers stopped (SIGSTOP) for {} s each, then resumed", HUNG_MS / 1_000),
        requests: requests(&report),
        violations: v,
    })
}

/// Which bank holds the token now (by its data server's ring state).
async fn holder(c: &Cluster) -> Option<usize> {
    for (i, b) in c.banks.iter().enumerate() {
        if b.ds.is_none() {
            continue;
        }
        if let Ok(Some(r)) = b.ds_client().get_record("ring", "state").await
            && r.value.to_value().get("holding").and_then(serde_json::Value::as_bool) == Some(true)
        {
            return Some(i);
        }
    }
    None
}

async fn count(c: &Cluster, b: usize, collection: &str) -> usize {
    let ds = c.banks[b].ds_client();
    ds.scan_records(collection, "", None, 1_000).await.map_or(0, |p| p.records.len())
}

/// Where coordinator `b`'s two-phase commit stands, read with its data server up: prepares that
/// peers hold for it with no decision recorded at `b` (killed before the decision), and
/// decisions recorded at `b` but not delivered (killed after it).
async fn where_2pc_stands(c: &Cluster, b: usize) -> (usize, usize) {
    use business::interbank::coordinator::{ROUNDS, RoundRecord, UNDELIVERED, round_key};
    use business::interbank::participant::{PREPARED, PreparedRound, round_records_prefix};
    let Ok(coordinator) = shared::BankId::new(c.banks[b].id) else { return (0, 0) };
    let ds = c.banks[b].ds_client();
    let mut undecided = 0;
    for (o, peer) in c.banks.iter().enumerate() {
        if o == b || peer.ds.is_none() {
            continue;
        }
        // The peer's records of `b`'s rounds sort together, under `b`'s id.
        let prefix = round_records_prefix(coordinator);
        let Ok(page) = peer.ds_client().scan_records(PREPARED, &prefix, None, 1_000).await else { continue };
        let theirs = page.records.into_iter().filter_map(|r| r.value.parse::<PreparedRound>().ok());
        let ds = &ds;
        let decided = futures::future::join_all(theirs.map(|round| async move {
            // No decision: the round open, or no record of it (an unreadable answer is no
            // evidence either way).
            let record = ds.get_record(ROUNDS, &round_key(round.round)).await.ok()?;
            let record = record.and_then(|r| r.value.parse::<RoundRecord>().ok());
            Some(round.items.keys().filter(|p| record.as_ref().and_then(|r| r.decision(p)).is_none()).count())
        }))
        .await;
        undecided += decided.iter().flatten().sum::<usize>();
    }
    (undecided, count(c, b, UNDELIVERED).await)
}

/// How long the scenario waits for the window it aims a kill at before it kills anyway.
const AIM_MS_MAX: u64 = 5_000;

/// How often it looks at the records meanwhile (each look is a handful of data-server reads).
const AIM_POLL_MS: u64 = 10;

/// Scenario 3: The coordinating bank (the token holder) cut off mid-2PC, whole, and restarted.
/// Kills alternate between the two windows — peers holding its prepares undecided, and its
/// decisions recorded but not delivered — and are aimed: one of its peers (the one before it in
/// the ring, so that the token still moves on) is black-holed, which holds a round open in
/// whichever window it is (a prepare or a decision waiting on that peer, until the peer
/// timeout), and the records are watched until the aimed window shows.
async fn bank_mid_2pc(secs: u64, clients: usize) -> Result<Row> {
    use harness::proxy::Mode;
    let (mut c, _dir, l) =
        under_load(3, &["--package-deadline-ms", "20000"], true, clients, secs, &[(Kind::Package, 1)]).await?;
    let n = c.banks.len();
    let (mut before, mut after, mut kills) = (0, 0, 0);
    let started = Instant::now();
    while started.elapsed() + Duration::from_secs(5) < Duration::from_secs(secs) {
        tokio::time::sleep(Duration::from_millis(1_000)).await;
        let aim_before = kills % 2 == 0;
        let aiming = Instant::now();
        let mut target = None;
        while aiming.elapsed() < Duration::from_millis(AIM_MS_MAX) {
            tokio::time::sleep(Duration::from_millis(AIM_POLL_MS)).await;
            let Some(b) = holder(&c).await else { continue };
            let slow = (b + n - 1) % n;
            for (i, px) in c.proxies.iter().enumerate() {
                px.iter().for_each(|p| p.set(if i == slow { Mode::BlackHole } else { Mode::Pass }));
            }
            target = Some(b);
            let (undecided, undelivered) = where_2pc_stands(&c, b).await;
            if (aim_before && undecided > 0) || (!aim_before && undelivered > 0) {
                break;
            }
        }
        let Some(b) = target else { continue };
        for r in 0..c.banks[b].replicas.len() {
            c.kill_replica(b, r);
        }
        // With its data server still up, see where its 2PC stood when it died.
        let (undecided, undelivered) = where_2pc_stands(&c, b).await;
        before += usize::from(undecided > 0);
        after += usize::from(undelivered > 0);
        c.proxies.iter().flatten().for_each(|p| p.set(Mode::Pass));
        c.kill_dataserver(b);
        kills += 1;
        tokio::time::sleep(Duration::from_millis(500)).await;
        c.start_bank(b)?;
    }
    let report = l.await??;
    let mut v = settled(&c, Duration::from_secs(30)).await?;
    // The row is only worth its name if both windows were hit.
    if before == 0 || after == 0 {
        v.push(format!("the kills missed a window: {before} before the decision, {after} after it"));
    }
    Ok(Row {
        scenario: "bank killed mid-2PC",
        load: format!("{clients} clients × {secs} s of packages, {:.0}/s", report.ops_per_s),
        faults: format!(
            "{kills} coordinators killed, aimed by black-holing a peer ({before} with prepares in doubt, \
             {after} with decisions undelivered)"
        ),
        requests: requests(&report),
        violations: v,
    })
}

/// Every bank's grant log, as (at_ms, epoch, seq, bank).
async fn grants(c: &Cluster) -> Result<Vec<(u64, u64, u64, u32)>> {
    let mut out = Vec::new();
    for b in &c.banks {
        let mut after: Option<String> = None;
        loop {
            let page = b.ds_client().scan_records("grants", "", after.as_deref(), 1_000).await?;
            for r in &page.records {
                let g = |k: &str| r.value.to_value().get(k).and_then(serde_json::Value::as_u64).unwrap_or(0);
                out.push((g("at_ms"), g("epoch"), g("seq"), b.id));
            }
            match page.records.last() {
                Some(last) if page.records.len() == 1_000 => after = Some(last.key.clone()),
                _ => break,
            }
        }
    }
    out.sort_unstable();
    Ok(out)
}

/// The grant log never shows two epochs processing together: once a bank accepted a token of a
/// newer epoch, nobody accepts one of an older epoch afterwards, and no token twice.
fn grant_violations(log: &[(u64, u64, u64, u32)]) -> Vec<String> {
    let mut v = Vec::new();
    let mut newest = 0;
    let mut seen = BTreeSet::new();
    for (at, epoch, seq, bank) in log {
        if *epoch < newest {
            v.push(format!("bank {bank} accepted epoch {epoch} at {at} after epoch {newest} began"));
        }
        newest = newest.max(*epoch);
        if !seen.insert((*epoch, *seq)) {
            v.push(format!("token ({epoch}, {seq}) accepted twice"));
        }
    }
    v
}

/// Scenario 4: The bank holding the token killed (all its replicas) → a new token within seconds.
async fn token_holder(rounds: u32) -> Result<Row> {
    let (mut c, _dir) = start(3, &[], false).await?;
    let mut v = Vec::new();
    let mut waits = Vec::new();
    let mut took_token = 0;
    for _ in 0..rounds {
        let until = Instant::now() + Duration::from_secs(10);
        // Let the ring run a moment, so that the holder may be one that has work in hand.
        tokio::time::sleep(Duration::from_millis(rand::rng().random_range(200..1_500))).await;
        let b = loop {
            if let Some(b) = holder(&c).await {
                break b;
            }
            if Instant::now() > until {
                return Err(Error::run("no bank holds the token"));
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        };
        let killed = Instant::now();
        let killed_ms = business::interbank::now_ms();
        for r in 0..c.banks[b].replicas.len() {
            c.kill_replica(b, r);
        }
        // Whether the token died with it (still held in its ring state): then the ring must
        // declare it lost and regenerate it.
        let st = c.banks[b].ds_client().get_record("ring", "state").await?;
        if st.is_some_and(|r| r.value.to_value().get("holding").and_then(serde_json::Value::as_bool) == Some(true)) {
            took_token += 1;
        }
        let deadline = killed + Duration::from_secs(15);
        loop {
            // The ring goes on: another bank accepts a token (passed before the kill, or
            // regenerated once the token is declared lost).
            if grants(&c).await?.iter().any(|g| g.0 > killed_ms && g.3 != c.banks[b].id) {
                waits.push(killed.elapsed().as_millis());
                break;
            }
            if Instant::now() > deadline {
                v.push(format!("no token granted 15 s after bank {} died", c.banks[b].id));
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        c.start_bank(b)?;
    }
    let log = grants(&c).await?;
    v.extend(grant_violations(&log));
    waits.sort_unstable();
    let median = waits.get(waits.len() / 2).copied().unwrap_or(0);
    Ok(Row {
        scenario: "token holder killed",
        load: format!("ring only; {} grants audited", log.len()),
        faults: format!(
            "{rounds} holders killed ({took_token} with the token in hand); next grant after median {median} ms, max {} ms",
            waits.last().copied().unwrap_or(0)
        ),
        requests: log.len() as u64,
        violations: v,
    })
}

/// Scenario 5: A bank's peer traffic black-holed, slowed and dropped through its proxies under packages.
async fn partitioned_peer(secs: u64, clients: usize) -> Result<Row> {
    let (c, _dir, l) =
        under_load(3, &["--package-deadline-ms", "8000"], true, clients, secs, &[(Kind::Package, 1)]).await?;
    let phase = Duration::from_secs(secs / 4);
    let px = &c.proxies[2];
    let set = |m| px.iter().for_each(|p| p.set(m));
    tokio::time::sleep(phase / 2).await;
    set(harness::proxy::Mode::BlackHole);
    tokio::time::sleep(phase).await;
    set(harness::proxy::Mode::Delay(800));
    tokio::time::sleep(phase).await;
    set(harness::proxy::Mode::Drop);
    tokio::time::sleep(phase).await;
    set(harness::proxy::Mode::Pass);
    let mut v = Vec::new();
    let report = l.await??;
    // Packages caught by the partition roll back or wait, then settle or fail by their deadline.
    v.extend(settled(&c, Duration::from_secs(20)).await?);
    let through: u64 = px.iter().map(|p| p.connections.load(std::sync::atomic::Ordering::Relaxed)).sum();
    Ok(Row {
        scenario: "partitioned / slow peer",
        load: format!("{clients} clients × {secs} s of packages, {:.0}/s", report.ops_per_s),
        faults: format!(
            "bank 3 black-holed, then +800 ms, then dropped, {} s each ({through} peer connections)",
            phase.as_secs()
        ),
        requests: requests(&report),
        violations: v,
    })
}

/// Leases live at bank `b`'s data server: lock calls granted whose commit or release has not
/// come (0 when the metrics cannot be read).
async fn leases_held(c: &Cluster, b: usize) -> u64 {
    let text = c.banks[b].ds_client().metrics().await.unwrap_or_default();
    crate::bench::metric(&text, "dataserver_leases_held") as u64
}

/// Scenario: a participant killed between a locked read and its commit. Under packages only,
/// every lock at a bank's data server is a two-phase-commit step's (a prepare or a finish:
/// accounts locked and their holds and prepared records read, the commit still to come), so a
/// bank other than the token holder has both its replicas killed the moment its data server
/// shows a lease live, and the kill counts as aimed when the lease is still there after the
/// replicas are gone (they died holding it). The replicas come back at once; every package must
/// still end all or nothing, with no hold left anywhere.
async fn participant_mid_step(secs: u64, clients: usize) -> Result<Row> {
    let (mut c, _dir, l) =
        under_load(3, &["--package-deadline-ms", "20000"], false, clients, secs, &[(Kind::Package, 1)]).await?;
    let n = c.banks.len();
    let (mut kills, mut aimed) = (0usize, 0usize);
    let started = Instant::now();
    while started.elapsed() + Duration::from_secs(5) < Duration::from_secs(secs) {
        tokio::time::sleep(Duration::from_millis(700)).await;
        let b = match holder(&c).await {
            Some(h) => (h + 1 + kills % (n - 1)) % n,
            None => kills % n,
        };
        let aiming = Instant::now();
        while aiming.elapsed() < Duration::from_millis(AIM_MS_MAX) && leases_held(&c, b).await == 0 {}
        for r in 0..c.banks[b].replicas.len() {
            c.kill_replica(b, r);
        }
        aimed += usize::from(leases_held(&c, b).await > 0);
        kills += 1;
        for r in 0..c.banks[b].replicas.len() {
            c.start_replica(b, r)?;
        }
    }
    let report = l.await??;
    let mut v = settled(&c, Duration::from_secs(30)).await?;
    if aimed == 0 {
        v.push(format!("none of {kills} kills landed between a locked read and its commit"));
    }
    Ok(Row {
        scenario: "participant killed mid-step",
        load: format!("{clients} clients × {secs} s of packages, {:.0}/s", report.ops_per_s),
        faults: format!("{kills} participants' replicas killed, {aimed} holding a lock between a read and its commit"),
        requests: requests(&report),
        violations: v,
    })
}

/// Scenario: overload. Packages offered at a fixed rate far past what settlement sustains (an
/// open loop, as customers arrive whatever the bank's state): the excess is refused at once with
/// `429` / `503` and nothing stored, and every package taken settles with the invariants kept.
async fn overload(secs: u64, clients: usize) -> Result<Row> {
    let rate = 2_400;
    let args = crate::bench::packages::Args { clients, rate, duration_s: secs, warmup_s: 1, json: false, report: None };
    let r = crate::bench::packages::run(args).await?;
    let mut v = r.violations.clone();
    if r.refused == 0 {
        v.push("nothing was refused: the load did not overload the queues".into());
    }
    if r.errors > 0 {
        v.push(format!("{} submissions got no answer", r.errors));
    }
    if r.refused > r.refused_429 + r.refused_503 {
        v.push(format!("{} refusals were not backpressure", r.refused - r.refused_429 - r.refused_503));
    }
    Ok(Row {
        scenario: "overload",
        load: format!(
            "{clients} clients offering {rate} packages/s × {secs} s; {:.0} settled/s, p99 {:.0} ms",
            r.settled_per_s, r.terminal_p99_ms
        ),
        faults: format!("{} refused at once (p99 {:.0} ms)", r.refused, r.refused_p99_ms),
        requests: r.submitted + r.refused + r.errors,
        violations: v,
    })
}

/// Scenario 6: The protocol simulation over many seeds: as configured by default, with a
/// member bank forging decisions on other banks' attempts (a fifth of the seeds), with every
/// account just below the balance ceiling (a fifth), and with participants asking about
/// attempts while their coordinator's replica may still decide them (a fifth).
fn simulation(seeds: u64) -> Vec<Row> {
    use business::interbank::sim::{self, Config};
    let runs = [
        ("ring + 2PC simulation", Config::default(), seeds, ""),
        ("simulation, a hostile member", Config::with_a_hostile_member(), seeds / 5, ", bank 3 forging decisions"),
        (
            "simulation, near the balance ceiling",
            Config::near_the_ceiling(),
            seeds / 5,
            ", accounts near the ceiling, credits promised and not",
        ),
        ("simulation, inquiries during rounds", Config::asking_early(), seeds / 5, ", in doubt after 120 ms"),
    ];
    runs.into_iter()
        .map(|(scenario, cfg, seeds, what)| {
            let (mut lost, mut dup, mut crashes, mut msgs, mut regen, mut committed) = (0, 0, 0, 0, 0, 0);
            let (mut stalls, mut takeovers, mut closed, mut fenced) = (0, 0, 0, 0);
            let mut v = Vec::new();
            for seed in 0..seeds {
                let r = sim::run(seed, &cfg);
                lost += r.lost;
                dup += r.duplicated;
                crashes += r.crashes;
                msgs += r.messages;
                regen += r.regenerations;
                committed += r.committed;
                stalls += r.stalls;
                takeovers += r.takeovers;
                closed += r.closed;
                fenced += r.fenced_out;
                v.extend(r.violations.into_iter().map(|x| format!("seed {seed}: {x}")));
            }
            Row {
                scenario,
                load: format!(
                    "{seeds} seeds × {} packages, 3 banks × {} replicas{what} ({committed} committed)",
                    cfg.packages, cfg.replicas
                ),
                faults: format!(
                    "{lost} lost, {dup} duplicated, {crashes} crashes, {stalls} stalls, {takeovers} takeovers, \
                     {closed} open rounds closed, {fenced} stale decisions fenced, {regen} tokens regenerated"
                ),
                requests: msgs,
                violations: v,
            }
        })
        .collect()
}

/// Scenario 7: The authorization matrix and the hostile table.
async fn security() -> Result<Vec<Row>> {
    let (c, _dir) = start(2, &[], false).await?;
    let crate::security::Suite { matrix: m, hostile: h, changed, .. } = crate::security::suite(&c).await?;
    let apis =
        |o: &crate::security::Outcome| o.by_api.iter().map(|(k, n)| format!("{k} {n}")).collect::<Vec<_>>().join(", ");
    Ok(vec![
        Row {
            scenario: "authorization matrix",
            load: apis(&m),
            faults: "no / wrong / revoked / another's credentials".into(),
            requests: m.tried as u64,
            violations: m.violations,
        },
        Row {
            scenario: "hostile input",
            load: apis(&h),
            faults: "malformed, out of range, huge, path tricks".into(),
            requests: h.tried as u64,
            violations: h.violations.into_iter().chain(changed).collect(),
        },
    ])
}

pub async fn run(a: &Args) -> Result<Vec<Row>> {
    let (secs, clients, seeds) = if a.quick { (20, 32, 2_000) } else { (60, 64, 10_000) };
    let seeds = a.seeds.unwrap_or(seeds);
    let wanted = |name: &str| a.only.as_deref().is_none_or(|o| name.contains(o));
    let mut rows = Vec::new();
    let step = |name: &str| {
        if wanted(name) {
            eprintln!("== {name}...");
            true
        } else {
            false
        }
    };
    if step("simulation") {
        rows.extend(simulation(seeds));
    }
    if step("security") {
        rows.extend(security().await?);
    }
    if step("replica crash") {
        rows.push(replica_crash(secs, clients).await?);
    }
    if step("data server crash") {
        rows.push(dataserver_crash(secs / 2, clients / 2).await?);
    }
    if step("data server hung") {
        rows.push(dataserver_hung(secs / 2, clients / 2).await?);
    }
    if step("bank mid-2PC") {
        rows.push(bank_mid_2pc(secs, clients / 2).await?);
    }
    if step("token holder") {
        rows.push(token_holder(if a.quick { 3 } else { 5 }).await?);
    }
    if step("partition") {
        rows.push(partitioned_peer(secs / 2, clients / 2).await?);
    }
    if step("participant mid-step") {
        rows.push(participant_mid_step(secs / 2, clients / 2).await?);
    }
    if step("overload") {
        rows.push(overload(secs / 2, clients).await?);
    }
    Ok(rows)
}

pub fn print(rows: &[Row]) {
    println!("| scenario | load held | faults injected | requests | violations |");
    println!("|---|---|---|---:|---:|");
    for r in rows {
        println!("| {} | {} | {} | {} | {} |", r.scenario, r.load, r.faults, r.requests, r.violations.len());
    }
    for r in rows {
        for v in r.violations.iter().take(20) {
            println!("VIOLATION [{}]: {v}", r.scenario);
        }
    }
}

/// `interbank reliability`: runs every scenario, prints the table, fails on any violation.
pub async fn main(a: &Args) -> Result<()> {
    let rows = run(a).await?;
    print(&rows);
    let n: usize = rows.iter().map(|r| r.violations.len()).sum();
    if n == 0 { Ok(()) } else { Err(Error::Violations(n)) }
}
