//! `interbank bench packages`: a 3-bank network (each bank a data server and 2 replicas, started
//! here) and C customers submitting packages of 2 cross-bank operations at an offered rate. The
//! figures that matter are measured by the banks themselves: every package's record holds when
//! it was accepted and when it became final, so settlement throughput and submit→terminal
//! latency cost the run no polling.

// Figures for people are floats; money in this module is never a float.
#![allow(clippy::float_arithmetic)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use dataserver_api::clock::parse_rfc3339_ms;
use hyper::Method;
use shared::api::{Status, Transaction};

use super::{CpuPer, cpu_now, metric};
use crate::Error;
use crate::driver::{Load, Outcome};
use crate::lean_http::Conn;
use business::metrics::Refused;
use harness::client::{Operator, sign_up};
use harness::cluster::{Cluster, Spec};

#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Concurrent customers (each with its own connection).
    #[arg(long, default_value_t = 64)]
    pub clients: usize,
    /// Packages per second offered by all clients together (0: as fast as they can).
    #[arg(long, default_value_t = 3_600)]
    pub rate: u64,
    #[arg(long, default_value_t = 20)]
    pub duration_s: u64,
    #[arg(long, default_value_t = 3)]
    pub warmup_s: u64,
    #[arg(long)]
    pub json: bool,
    /// Also write one self-contained HTML report: settlements per second and submit→final
    /// latency over time, the failures, and the `check` verdict (`check` runs at the end).
    #[arg(long, value_name = "FILE.html")]
    pub report: Option<std::path::PathBuf>,
}

#[derive(Debug, serde::Serialize)]
pub struct Report {
    pub clients: usize,
    pub offered_per_s: u64,
    pub duration_s: f64,
    pub submitted: u64,
    pub submit_p99_ms: f64,
    /// Packages that became final within the measured window, per second.
    pub settled_per_s: f64,
    pub succeeded: u64,
    pub failed: u64,
    pub terminal_p50_ms: f64,
    pub terminal_p99_ms: f64,
    pub terminal_max_ms: f64,
    pub refused: u64,
    /// Of `refused`: the bounds of the settlement queue (`429` the author's, `503` the bank's).
    pub refused_429: u64,
    pub refused_503: u64,
    /// How fast a refusal was answered (what a caller waits to learn it must wait).
    pub refused_p99_ms: f64,
    /// Refusals for a full queue by where each replica decided them (`business_settlement_refused_total`):
    /// at the door, from its memory of a bound met, after a look at the queue, by the commit.
    pub refused_at: [f64; Refused::ALL.len()],
    pub errors: u64,
    /// What `check` found once every package settled (it runs at the end of every run).
    pub violations: Vec<String>,
    /// Over the measured window, network-wide, per package settled in it: records put or
    /// deleted and amounts set (the data servers' `record_writes`), data-server requests, and
    /// durable writes (group commits, each one fsync).
    pub record_writes_per_package: f64,
    /// The same by collection, most first (`amounts`: balances set).
    pub record_writes_by_collection: Vec<(String, f64)>,
    pub ds_requests_per_package: f64,
    pub fsyncs_per_package: f64,
    /// Settlement rounds in the window, their mean size (packages) and mean time (scan to
    /// durable decisions), from the replicas' `/metrics`.
    pub rounds: f64,
    pub round_packages_mean: f64,
    pub round_ms_mean: f64,
    /// A round's mean time by step: the scan and durable start, the prepares, the decisions'
    /// commit.
    pub round_start_ms_mean: f64,
    pub round_prepare_ms_mean: f64,
    pub round_decide_ms_mean: f64,
    /// Holds of the token in the window, their mean time, and the passes' mean time.
    pub holds: f64,
    pub hold_ms_mean: f64,
    pub pass_ms_mean: f64,
    /// Rounds' time over the ring's (holds and passes): how much of it went to settling. The
    /// ring settles one round at a time, so the rest is time no bank settled.
    pub ring_settling_share: f64,
    /// CPU time per package settled in the measured window, by process (Linux only), and what
    /// share of the machine's cores these processes used in it (kernel threads not counted):
    /// what a package costs, comparable across hours where settled/s is not.
    pub cpu_us_per_package: Option<CpuPer>,
    pub cpu_busy_share: Option<f64>,
    pub cores: usize,
}

/// What the network's processes counted so far, summed over every bank.
#[derive(Debug, Default, Clone)]
struct Counted {
    record_writes: f64,
    /// The same by collection (`dataserver_collection_writes_total`).
    by_collection: std::collections::BTreeMap<String, f64>,
    ds_requests: f64,
    fsyncs: f64,
    ring: Ring,
}

/// The replicas' ring metrics, summed (`business_…` in their `/metrics`).
#[derive(Debug, Default, Clone, Copy)]
struct Ring {
    rounds: f64,
    round_packages: f64,
    round_s: f64,
    start_s: f64,
    prepare_s: f64,
    decide_s: f64,
    holds: f64,
    hold_s: f64,
    pass_s: f64,
    refused_at: [f64; Refused::ALL.len()],
}

impl Ring {
    fn add(&mut self, text: &str) {
        for (sum, name) in [
            (&mut self.rounds, "business_round_packages_count"),
            (&mut self.round_packages, "business_round_packages_sum"),
            (&mut self.round_s, "business_round_seconds_sum"),
            (&mut self.start_s, "business_round_start_seconds_sum"),
            (&mut self.prepare_s, "business_round_prepare_seconds_sum"),
            (&mut self.decide_s, "business_round_decide_seconds_sum"),
            (&mut self.holds, "business_hold_seconds_count"),
            (&mut self.hold_s, "business_hold_seconds_sum"),
            (&mut self.pass_s, "business_token_pass_seconds_sum"),
        ] {
            *sum += metric(text, name);
        }
        for (sum, at) in self.refused_at.iter_mut().zip(Refused::ALL) {
            *sum += metric(text, &format!("business_settlement_refused_total{{at=\"{}\"}}", at.label()));
        }
    }

    fn since(self, b: Ring) -> Ring {
        Ring {
            rounds: self.rounds - b.rounds,
            round_packages: self.round_packages - b.round_packages,
            round_s: self.round_s - b.round_s,
            start_s: self.start_s - b.start_s,
            prepare_s: self.prepare_s - b.prepare_s,
            decide_s: self.decide_s - b.decide_s,
            holds: self.holds - b.holds,
            hold_s: self.hold_s - b.hold_s,
            pass_s: self.pass_s - b.pass_s,
            refused_at: std::array::from_fn(|i| self.refused_at[i] - b.refused_at[i]),
        }
    }
}

impl Counted {
    async fn read(cluster: &Cluster, http: &reqwest::Client) -> crate::Result<Counted> {
        let mut c = Counted::default();
        for bank in &cluster.banks {
            let text = bank.ds_client().metrics().await?;
            c.record_writes += metric(&text, "dataserver_record_writes_total");
            for (collection, n) in by_collection(&text) {
                *c.by_collection.entry(collection).or_default() += n;
            }
            c.ds_requests += metric(&text, "dataserver_requests_total");
            c.fsyncs += metric(&text, "dataserver_fsync_seconds_count");
            for url in bank.urls() {
                let text = http
                    .get(format!("{url}/metrics"))
                    .bearer_auth(&cluster.operator_key)
                    .send()
                    .await
                    .and_then(reqwest::Response::error_for_status)
                    .map_err(|e| Error::run(format!("{url}/metrics: {e}")))?
                    .text()
                    .await
                    .map_err(|e| Error::run(format!("{url}/metrics: {e}")))?;
                c.ring.add(&text);
            }
        }
        Ok(c)
    }

    fn since(self, before: Counted) -> Counted {
        Counted {
            record_writes: self.record_writes - before.record_writes,
            by_collection: self
                .by_collection
                .iter()
                .map(|(c, n)| (c.clone(), n - before.by_collection.get(c).copied().unwrap_or(0.0)))
                .collect(),
            ds_requests: self.ds_requests - before.ds_requests,
            fsyncs: self.fsyncs - before.fsyncs,
            ring: self.ring.since(before.ring),
        }
    }
}

/// `dataserver_collection_writes_total{collection="…"} n` lines, as (collection, n).
fn by_collection(text: &str) -> Vec<(String, f64)> {
    text.lines()
        .filter_map(|l| {
            let rest = l.strip_prefix("dataserver_collection_writes_total{collection=\"")?;
            let (name, rest) = rest.split_once("\"}")?;
            Some((name.to_owned(), rest.trim().parse().ok()?))
        })
        .collect()
}

fn now_ms() -> i64 {
    i64::try_from(dataserver_api::clock::now_ms()).expect("milliseconds since 1970 fit in i64")
}

pub async fn run(args: Args) -> crate::Result<Report> {
    let dir = tempfile::tempdir()?;
    let spec = Spec::ephemeral(3, 2, dir.path());
    let cluster = Cluster::start(&spec)?;
    cluster.wait_ready(Duration::from_secs(60)).await?;
    let http = pki::http_client();
    eprintln!("opening {} customer accounts...", args.clients);
    let mut customers = Vec::new();
    for i in 0..args.clients {
        let bank = i % 3;
        let base = cluster.banks[bank].urls()[(i / 3) % 2].clone();
        let doc = shared::Document::with_check_digits(&format!("{:09}", 300_000_000 + i))
            .ok_or_else(|| Error::run("document"))?
            .formatted();
        let c = sign_up(&http, &base, &format!("Bench {i}"), &doc, "bench-password-123").await?;
        let op = Operator { http: http.clone(), base: base.clone(), key: cluster.operator_key.clone() };
        op.deposit(c.ibk(), "1000000").await?;
        customers.push(c);
    }
    // Client i pays the next customers at the two other banks.
    let ibks: Vec<shared::Ibk> = customers.iter().map(|c| c.ibk()).collect();
    let mut bodies = Vec::new();
    let mut conns = Vec::new();
    for (i, c) in customers.iter().enumerate() {
        let next_at = |bank: u32| (1..ibks.len()).map(|k| ibks[(i + k) % ibks.len()]).find(|t| t.bank.get() == bank);
        let me = c.ibk().bank.get() - 1;
        let others: Vec<shared::Ibk> = [(me + 1) % 3 + 1, (me + 2) % 3 + 1].into_iter().filter_map(next_at).collect();
        if others.len() < 2 {
            return Err(Error::run("need customers at three banks (at least 3 clients)"));
        }
        let body = serde_json::json!({
            "author": c.ibk(),
            "operations": [
                { "from": c.ibk(), "to": others[0], "amount": "0.01" },
                { "from": c.ibk(), "to": others[1], "amount": "0.01" },
            ],
        });
        bodies.push(serde_json::to_vec(&body)?);
        let addr = c.base.trim_start_matches("http://").parse().map_err(|e| Error::run(format!("{e}")))?;
        conns.push(Conn::connect(addr, &c.token).await?);
    }
    let bodies = Arc::new(bodies);
    let interval =
        if args.rate == 0 { Duration::ZERO } else { Duration::from_secs_f64(args.clients as f64 / args.rate as f64) };
    let started = Instant::now();
    let mut load = Load::start(conns, move |mut conn: Conn, i, n| {
        let bodies = bodies.clone();
        async move {
            // Paced: client i's n-th package is due at n × interval (offset per client).
            let due = started + interval.mul_f64(n as f64 + i as f64 / bodies.len() as f64);
            tokio::time::sleep_until(due.into()).await;
            let r = conn.call::<Transaction>(Method::POST, "/api/payments/pay", bodies[i].clone()).await;
            let outcome = Outcome::of(&r);
            (conn, outcome)
        }
    });
    load.warm_up(Duration::from_secs(args.warmup_s)).await;
    let dataservers: Vec<u32> = cluster.banks.iter().filter_map(|b| b.ds.as_ref().map(|d| d.pid())).collect();
    let replicas: Vec<u32> = cluster.banks.iter().flat_map(|b| &b.replicas).filter_map(|r| r.pid()).collect();
    let counted_before = Counted::read(&cluster, &http).await?;
    let cpu_before = cpu_now(&dataservers, &replicas);
    let window_start = now_ms();
    load.measure(args.duration_s).await;
    let window_end = now_ms();
    let cpu_after = cpu_now(&dataservers, &replicas);
    let counted = Counted::read(&cluster, &http).await?.since(counted_before);
    let totals = load.finish().await?;

    // Let the queue drain, then read every package's record from each bank's data server.
    eprintln!("waiting for the queues to drain...");
    let until = Instant::now() + Duration::from_secs(120);
    let mut packages: Vec<Transaction> = Vec::new();
    for bank in &cluster.banks {
        let ds = bank.ds_client();
        loop {
            let q = ds.scan_records("queue", "", None, 1).await?;
            if q.records.is_empty() || Instant::now() > until {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let mut after: Option<String> = None;
        loop {
            // Decided packages have their state in their authors' statement entries (the queue
            // is drained); as their authors see them: `success` is read from the rounds'
            // undelivered decisions, not stored.
            let page = ds.scan_records(business::model::ACCOUNT_PACKAGES, "", after.as_deref(), 1000).await?;
            packages.extend(
                business::interbank::coordinator::shown(&ds, &page.records)
                    .await
                    .map_err(|e| Error::run(format!("reading packages: {e}")))?,
            );
            match page.next {
                Some(n) => after = Some(n),
                None => break,
            }
        }
    }
    let checked = crate::check::settle_and_check(&cluster.target(), Duration::from_secs(60)).await?;
    if let Some(path) = &args.report {
        let started_ms = window_start - i64::try_from(args.warmup_s * 1000).unwrap_or(0);
        let samples: Vec<crate::report::Sample> = packages
            .iter()
            .filter_map(|t| {
                let (c, u) = (parse_rfc3339_ms(&t.created_at)?, parse_rfc3339_ms(&t.updated_at)?);
                let kind = match t.status {
                    Status::Success => "settled",
                    Status::Failed => "failed",
                    _ => return None,
                };
                let at_ms = u64::try_from(u - started_ms).ok()?;
                Some(crate::report::Sample { at_ms, kind, micros: u64::try_from((u - c).max(0)).ok()? * 1000 })
            })
            .collect();
        let mut errors = std::collections::BTreeMap::new();
        let other = totals.refused.saturating_sub(totals.refused_429 + totals.refused_503);
        for (what, n) in [
            ("refused at submission: 429 (the author's bound)", totals.refused_429),
            ("refused at submission: 503 (the bank's queue full)", totals.refused_503),
            ("refused at submission: other", other),
            ("no answer at submission", totals.errors),
        ] {
            if n > 0 {
                errors.insert(what.to_string(), n);
            }
        }
        for t in packages.iter().filter(|t| t.status == Status::Failed) {
            *errors.entry(format!("failed: {}", t.reason.clone().unwrap_or_default())).or_insert(0) += 1;
        }
        let run = crate::report::Run {
            title: format!("interbank bench packages: {} clients, {} offered/s", args.clients, args.rate),
            about: vec![
                "a fresh 3-bank network (a data server and 2 replicas each); packages of 2 cross-bank operations"
                    .into(),
                "latency: from acceptance to final state, as each package's record tells".into(),
            ],
            samples: &samples,
            errors,
            check: Some(checked.violations.clone()),
        };
        crate::report::write(path, &run)?;
        eprintln!("report written to {}", path.display());
    }
    let mut hist = hdrhistogram::Histogram::<u64>::new_with_bounds(1, 3_600_000, 3)?;
    let (mut settled_in_window, mut succeeded, mut failed) = (0u64, 0u64, 0u64);
    for t in &packages {
        let (Some(c), Some(u)) = (parse_rfc3339_ms(&t.created_at), parse_rfc3339_ms(&t.updated_at)) else { continue };
        let terminal = matches!(t.status, Status::Success | Status::Failed);
        if terminal && (window_start..window_end).contains(&u) {
            settled_in_window += 1;
        }
        if (window_start..window_end).contains(&c) && terminal {
            let _ = hist.record(u64::try_from((u - c).max(1)).unwrap_or(1));
            match t.status {
                Status::Success => succeeded += 1,
                _ => failed += 1,
            }
        }
    }
    let window_s = (window_end - window_start) as f64 / 1000.0;
    let per_package = |n: f64| if settled_in_window > 0 { n / settled_in_window as f64 } else { 0.0 };
    let ring = counted.ring;
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    let cpu = cpu_before.zip(cpu_after);
    let cpu_busy_share = cpu.map(|(a, b)| CpuPer::between(a, b, 1).total() / 1e6 / (window_s * cores as f64));
    let cpu_us_per_package = cpu.map(|(a, b)| CpuPer::between(a, b, settled_in_window));
    let per_round = |n: f64| if ring.rounds > 0.0 { n / ring.rounds } else { 0.0 };
    let per_hold = |n: f64| if ring.holds > 0.0 { n / ring.holds } else { 0.0 };
    Ok(Report {
        clients: args.clients,
        offered_per_s: args.rate,
        duration_s: totals.elapsed_s,
        submitted: totals.ok,
        submit_p99_ms: totals.ms(0.99),
        settled_per_s: settled_in_window as f64 / window_s,
        succeeded,
        failed,
        terminal_p50_ms: hist.value_at_quantile(0.50) as f64,
        terminal_p99_ms: hist.value_at_quantile(0.99) as f64,
        terminal_max_ms: hist.max() as f64,
        refused: totals.refused,
        refused_429: totals.refused_429,
        refused_503: totals.refused_503,
        refused_p99_ms: totals.refused_ms(0.99),
        refused_at: ring.refused_at,
        errors: totals.errors,
        violations: checked.violations,
        record_writes_per_package: per_package(counted.record_writes),
        record_writes_by_collection: {
            let mut v: Vec<(String, f64)> = counted
                .by_collection
                .iter()
                .map(|(c, n)| (c.clone(), per_package(*n)))
                .filter(|(_, n)| *n >= 0.05)
                .collect();
            v.sort_by(|a, b| b.1.total_cmp(&a.1));
            v
        },
        ds_requests_per_package: per_package(counted.ds_requests),
        fsyncs_per_package: per_package(counted.fsyncs),
        rounds: ring.rounds,
        round_packages_mean: per_round(ring.round_packages),
        round_ms_mean: per_round(ring.round_s * 1000.0),
        round_start_ms_mean: per_round(ring.start_s * 1000.0),
        round_prepare_ms_mean: per_round(ring.prepare_s * 1000.0),
        round_decide_ms_mean: per_round(ring.decide_s * 1000.0),
        holds: ring.holds,
        hold_ms_mean: per_hold(ring.hold_s * 1000.0),
        pass_ms_mean: per_hold(ring.pass_s * 1000.0),
        ring_settling_share: if ring.hold_s + ring.pass_s > 0.0 {
            ring.round_s / (ring.hold_s + ring.pass_s)
        } else {
            0.0
        },
        cpu_us_per_package,
        cpu_busy_share,
        cores,
    })
}

pub fn print(r: &Report, json: bool) {
    if json {
        println!("{}", serde_json::to_string_pretty(r).unwrap_or_default());
        return;
    }
    println!(
        "packages of 2 cross-bank operations, 3 banks x 2 replicas, {} clients, offered {}/s, {:.1} s",
        r.clients, r.offered_per_s, r.duration_s
    );
    println!("  submitted   {:>9}   (submit p99 {:.1} ms)", r.submitted, r.submit_p99_ms);
    println!("  settled/s   {:>9.0}", r.settled_per_s);
    println!("  final       {:>9} success, {} failed", r.succeeded, r.failed);
    println!(
        "  submit→terminal  p50 {:.0} ms   p99 {:.0} ms   max {:.0} ms",
        r.terminal_p50_ms, r.terminal_p99_ms, r.terminal_max_ms
    );
    println!(
        "  refused {} (429 {}, 503 {}; answered in p99 {:.1} ms)   errors {}",
        r.refused, r.refused_429, r.refused_503, r.refused_p99_ms, r.errors
    );
    let at: Vec<String> =
        Refused::ALL.iter().zip(r.refused_at).map(|(at, n)| format!("{} {n:.0}", at.label())).collect();
    println!("  refused where    {}", at.join(", "));
    println!(
        "  per package      {:.1} record writes, {:.1} data-server requests, {:.2} durable writes (network-wide)",
        r.record_writes_per_package, r.ds_requests_per_package, r.fsyncs_per_package
    );
    let by: Vec<String> = r.record_writes_by_collection.iter().map(|(c, n)| format!("{c} {n:.1}")).collect();
    println!("  writes by kind   {}", by.join(", "));
    println!(
        "  rounds           {:.0}, {:.1} packages and {:.1} ms each on average (start {:.1}, prepare {:.1}, decide {:.1} ms)",
        r.rounds,
        r.round_packages_mean,
        r.round_ms_mean,
        r.round_start_ms_mean,
        r.round_prepare_ms_mean,
        r.round_decide_ms_mean
    );
    println!(
        "  token            {:.0} holds of {:.1} ms and passes of {:.1} ms on average; rounds {:.0} % of the ring's time",
        r.holds,
        r.hold_ms_mean,
        r.pass_ms_mean,
        r.ring_settling_share * 100.0
    );
    if let (Some(c), Some(busy)) = (&r.cpu_us_per_package, r.cpu_busy_share) {
        println!(
            "  CPU per package  data servers {:.0} µs, replicas {:.0} µs, load generator {:.0} µs; {:.0} % of {} cores busy",
            c.dataserver,
            c.replicas,
            c.load_generator,
            busy * 100.0,
            r.cores
        );
    }
    match r.violations.len() {
        0 => println!("  check            clean"),
        n => println!("  check            {n} violations, first: {}", r.violations[0]),
    }
}

/// `interbank bench …`: runs and prints the figures.
pub async fn main(args: Args) -> crate::Result<()> {
    let json = args.json;
    run(args).await.map(|r| print(&r, json))
}
