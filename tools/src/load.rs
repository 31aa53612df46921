//! `interbank load`: seed 004's client, seed 002's broker and consumer, seed 000's tests, against
//! any network — the local one by default.
//!
//! `load` runs C customers for a duration, each picking operations from a weighted mix, spread
//! over every replica of every bank (a customer's requests fail over to the other replicas of
//! its bank); every request carries an `Idempotency-Key`, so a request whose answer was lost is
//! repeated safely. A live progress bar shows operations, their rate and errors; the end prints
//! throughput and latency per kind and errors by code.

// Figures for people are floats; money in this module is never a float.
#![allow(clippy::float_arithmetic)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use rand::Rng;
use reqwest::StatusCode;
use serde_json::{Value, json};
use shared::ErrorCode;
use shared::api::Transaction;

use harness::client::{CallError, Customer, send_counted};
use harness::cluster::Target;

use crate::Error;
use crate::check::{print_check, settle_and_check};
use crate::seed::{TargetArgs, seed};

/// Unreadable answers shown whole (see the load loop), at most.
const UNREADABLE_SHOWN_MAX: u64 = 3;
static UNREADABLE_SHOWN: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

#[derive(Debug, Clone, clap::Args)]
pub struct LoadArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    #[arg(long, default_value_t = 32)]
    pub clients: usize,
    #[arg(long, default_value_t = 10)]
    pub duration: u64,
    /// Stop after this many operations in all (or at the end of the duration, if first).
    #[arg(long)]
    pub count: Option<u64>,
    /// Weights of the operation kinds.
    #[arg(long, default_value = "deposit=1,withdraw=1,transfer=4,package=4,pix=1")]
    pub mix: String,
    #[arg(long)]
    pub json: bool,
    /// Start a fresh 3-bank network (2 replicas each) for this run instead of using `--target`.
    #[arg(long)]
    pub launch: bool,
    /// With `--launch`: every this many milliseconds SIGKILL a random business replica (every
    /// third time a bank's data server) and restart it; `check` runs at the end.
    #[arg(long, requires = "launch")]
    pub chaos_every_ms: Option<u64>,
    /// Also write one self-contained HTML report of the run (throughput and latency over time
    /// per kind, the errors, the `check` verdict; `check` runs at the end).
    #[arg(long, value_name = "FILE.html")]
    pub report: Option<std::path::PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Deposit,
    Withdraw,
    Transfer,
    Package,
    Pix,
}

const KINDS: [Kind; 5] = [Kind::Deposit, Kind::Withdraw, Kind::Transfer, Kind::Package, Kind::Pix];

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Deposit => "deposit",
            Kind::Withdraw => "withdraw",
            Kind::Transfer => "transfer",
            Kind::Package => "package",
            Kind::Pix => "pix",
        }
    }
}

/// Parses `deposit=1,withdraw=1,...` into weights.
pub fn parse_mix(s: &str) -> crate::Result<Vec<(Kind, u32)>> {
    let mut out = Vec::new();
    for part in s.split(',').filter(|p| !p.is_empty()) {
        let (k, w) = part.split_once('=').ok_or_else(|| Error::usage(format!("{part:?}: expected kind=weight")))?;
        let kind = KINDS
            .iter()
            .copied()
            .find(|x| x.name() == k.trim())
            .ok_or_else(|| Error::usage(format!("unknown kind {k:?}")))?;
        let w: u32 = w.trim().parse().map_err(|_| Error::usage(format!("{part:?}: the weight is a whole number")))?;
        out.push((kind, w));
    }
    if out.iter().map(|(_, w)| w).sum::<u32>() == 0 {
        return Err(Error::usage("the mix needs a positive weight"));
    }
    Ok(out)
}

#[derive(Debug, serde::Serialize)]
pub struct KindFigures {
    pub kind: Kind,
    pub ok: u64,
    pub per_s: f64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

#[derive(Debug, serde::Serialize)]
pub struct LoadReport {
    pub clients: usize,
    pub duration_s: f64,
    pub ops: u64,
    pub ops_per_s: f64,
    pub kinds: Vec<KindFigures>,
    /// Refusals and failures by error code (`insufficient_funds` is the mix at work, not a fault).
    pub errors: BTreeMap<ErrorCode, u64>,
    /// Refusals for now (`503`, or `429` with `Retry-After`) waited out and repeated within a
    /// call, as a bank's app does: each wait is inside that call's latency above.
    pub refusals_repeated: u64,
    /// Cross-bank packages accepted (settled asynchronously).
    pub packages: Vec<String>,
    /// Same-bank transfers acknowledged as applied: (bank, package id). Each must be found
    /// afterwards, whatever crashed in between.
    #[serde(skip)]
    pub acked: Vec<(u32, String)>,
    /// Every answered operation, for the HTML report.
    #[serde(skip)]
    pub samples: Vec<crate::report::Sample>,
}

/// A customer of the load, with the replicas of its bank to fail over to.
#[derive(Debug, Clone)]
struct Actor {
    customer: Customer,
    /// Refusals for now this run's calls waited out and repeated (shared by every actor).
    repeated: Arc<AtomicU64>,
    replicas: Vec<String>,
    key: String,
}

/// How long a customer keeps repeating a keyed request that no replica answered (or answered
/// `503`): longer than a data server's failover (its leader lease, 1 s by default), as a bank's
/// app would. Repeating is safe: the `Idempotency-Key` makes it one operation.
const UNANSWERED_FOR_MS_MAX: u64 = 5_000;

fn bank_index(t: &Target, ibk: shared::Ibk) -> usize {
    t.banks.iter().position(|b| b.id == ibk.bank.get()).unwrap_or(0)
}

impl Actor {
    /// One keyed request, failed over to the bank's other replicas while unanswered, for up to
    /// [`UNANSWERED_FOR_MS_MAX`] (a data server's failover takes about its lease).
    async fn call(&self, path: &str, body: &Value, key: &str) -> Result<Transaction, CallError> {
        let mut last = None;
        let until = Instant::now() + Duration::from_millis(UNANSWERED_FOR_MS_MAX);
        for attempt in 0.. {
            if attempt >= self.replicas.len() && Instant::now() > until {
                break;
            }
            let base = &self.replicas[attempt % self.replicas.len()];
            let rb = self
                .customer
                .http
                .post(format!("{base}{path}"))
                .bearer_auth(&self.customer.token)
                .header("Idempotency-Key", key)
                .timeout(Duration::from_secs(10))
                .json(body);
            match send_counted::<Transaction>(rb, &self.repeated).await {
                Err(e) if e.status.is_none() || e.status == Some(StatusCode::SERVICE_UNAVAILABLE) => {
                    last = Some(e);
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                other => return other,
            }
        }
        Err(last.unwrap_or_else(|| CallError {
            status: None,
            body: shared::ErrorBody::new(shared::ErrorCode::Transport, "no replica"),
        }))
    }
}

fn pick(mix: &[(Kind, u32)]) -> Kind {
    let total: u32 = mix.iter().map(|(_, w)| w).sum();
    let mut r = rand::rng().random_range(0..total);
    for (k, w) in mix {
        if r < *w {
            return *k;
        }
        r -= w;
    }
    mix[0].0
}

/// Runs the load; `customers` from [`seed`].
pub async fn load(
    t: &Target,
    customers: Vec<Customer>,
    mix: &[(Kind, u32)],
    duration: Duration,
    count: Option<u64>,
    progress: bool,
) -> crate::Result<LoadReport> {
    let ibks: Vec<shared::Ibk> = customers.iter().map(Customer::ibk).collect();
    let done = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let repeated = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let pb = progress.then(|| {
        let pb = indicatif::ProgressBar::new(duration.as_secs());
        pb.set_style(
            indicatif::ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} s")
                .expect("valid template")
                .progress_chars("=> "),
        );
        pb
    });
    let run = rand::rng().random_range(0..u32::MAX);
    let mut tasks = Vec::new();
    for (i, c) in customers.into_iter().enumerate() {
        let bank = bank_index(t, c.ibk());
        let actor = Actor {
            replicas: t.banks[bank].replicas.clone(),
            key: format!("l{run}-{i}"),
            customer: c,
            repeated: repeated.clone(),
        };
        let (ibks, mix, done, failed) = (ibks.clone(), mix.to_vec(), done.clone(), failed.clone());
        tasks.push(tokio::spawn(async move {
            let mut hists: BTreeMap<Kind, Histogram<u64>> = BTreeMap::new();
            let mut errors: BTreeMap<ErrorCode, u64> = BTreeMap::new();
            let mut packages = Vec::new();
            let mut acked = Vec::new();
            let mut samples = Vec::new();
            let me = actor.customer.ibk();
            let same_bank: Vec<shared::Ibk> = ibks.iter().copied().filter(|x| x.bank == me.bank && *x != me).collect();
            let other_banks: Vec<shared::Ibk> = ibks.iter().copied().filter(|x| x.bank != me.bank).collect();
            let mut n = 0u64;
            while started.elapsed() < duration && count.is_none_or(|c| done.load(Relaxed) + failed.load(Relaxed) < c) {
                n += 1;
                let kind = pick(&mix);
                let key = format!("{}-{n}", actor.key);
                let (other, amount) = {
                    let mut rng = rand::rng();
                    (
                        ibks[rng.random_range(0..ibks.len())],
                        format!("{}.{:02}", rng.random_range(0..20), rng.random_range(1..100)),
                    )
                };
                let t0 = Instant::now();
                let r = match kind {
                    Kind::Deposit => {
                        actor.call("/api/payments/deposit", &json!({ "acc_ibk": me, "amount": amount }), &key).await
                    }
                    Kind::Withdraw => {
                        actor.call("/api/payments/withdraw", &json!({ "acc_ibk": me, "amount": amount }), &key).await
                    }
                    Kind::Transfer => {
                        let to = same_bank.get(n as usize % same_bank.len().max(1)).copied().unwrap_or(other);
                        if to == me {
                            continue;
                        }
                        let ops = json!([{ "from": me, "to": to, "amount": amount }]);
                        actor.call("/api/payments/pay", &json!({ "author": me, "operations": ops }), &key).await
                    }
                    Kind::Package => {
                        let (Some(a), Some(b)) = (
                            other_banks.get(n as usize % other_banks.len().max(1)),
                            other_banks.get((n as usize + 1) % other_banks.len().max(1)),
                        ) else {
                            continue;
                        };
                        let ops = json!([
                            { "from": me, "to": a, "amount": amount },
                            { "from": me, "to": b, "amount": "0.01" },
                        ]);
                        actor.call("/api/payments/pay", &json!({ "author": me, "operations": ops }), &key).await
                    }
                    Kind::Pix => {
                        let to = other_banks.get(n as usize % other_banks.len().max(1)).copied().unwrap_or(other);
                        if to == me {
                            continue;
                        }
                        // Every seeded customer has the key load{run}.{index}@example.com; the
                        // index is the position in the seed, which the IBK list follows.
                        let idx = ibks.iter().position(|x| *x == to).unwrap_or(0);
                        let target = format!("{}@example.com", actor_key_prefix(&actor.customer, idx));
                        let ops = json!([{ "from": me, "to": target, "amount": amount }]);
                        actor.call("/api/payments/pay", &json!({ "author": me, "operations": ops }), &key).await
                    }
                };
                match r {
                    Ok(tx) => {
                        let h = hists
                            .entry(kind)
                            .or_insert_with(|| Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid bounds"));
                        let micros = t0.elapsed().as_micros().max(1) as u64;
                        let _ = h.record(micros);
                        let at_ms = u64::try_from(t0.duration_since(started).as_millis()).unwrap_or(u64::MAX);
                        samples.push(crate::report::Sample { at_ms, kind: kind.name(), micros });
                        if tx.status == shared::api::Status::Pending {
                            packages.push((actor.customer.clone(), tx.id));
                        } else if kind == Kind::Transfer && tx.status == shared::api::Status::Success {
                            acked.push((me.bank.get(), tx.id));
                        }
                        done.fetch_add(1, Relaxed);
                    }
                    Err(e) => {
                        // An answer the tool could not read says nothing by its code alone: the
                        // first few are shown whole.
                        if e.body.error == shared::ErrorCode::UnexpectedBody
                            && UNREADABLE_SHOWN.fetch_add(1, Relaxed) < UNREADABLE_SHOWN_MAX
                        {
                            eprintln!("an unreadable answer to {}: {:?} {}", kind.name(), e.status, e.body.message);
                        }
                        *errors.entry(e.body.error).or_insert(0) += 1;
                        failed.fetch_add(1, Relaxed);
                    }
                }
            }
            (hists, errors, packages, acked, samples)
        }));
    }
    if let Some(pb) = &pb {
        while started.elapsed() < duration && count.is_none_or(|c| done.load(Relaxed) + failed.load(Relaxed) < c) {
            tokio::time::sleep(Duration::from_millis(250)).await;
            pb.set_position(started.elapsed().as_secs().min(duration.as_secs()));
            let ops = done.load(Relaxed);
            pb.set_message(format!(
                "{ops} ops, {:.0}/s, {} errors",
                ops as f64 / started.elapsed().as_secs_f64(),
                failed.load(Relaxed)
            ));
        }
    }
    let mut hists: BTreeMap<Kind, Histogram<u64>> = BTreeMap::new();
    let mut errors: BTreeMap<ErrorCode, u64> = BTreeMap::new();
    let mut packages = Vec::new();
    let mut acked = Vec::new();
    let mut samples = Vec::new();
    for task in tasks {
        let (h, e, p, a, s) = task.await?;
        acked.extend(a);
        samples.extend(s);
        for (k, v) in h {
            hists
                .entry(k)
                .or_insert_with(|| Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid bounds"))
                .add(v)?;
        }
        for (k, v) in e {
            *errors.entry(k).or_insert(0) += v;
        }
        packages.extend(p);
    }
    if let Some(pb) = pb {
        pb.finish_and_clear();
    }
    let elapsed = started.elapsed().as_secs_f64();
    let ms = |h: &Histogram<u64>, q: f64| h.value_at_quantile(q) as f64 / 1000.0;
    let kinds: Vec<KindFigures> = hists
        .iter()
        .map(|(k, h)| KindFigures {
            kind: *k,
            ok: h.len(),
            per_s: h.len() as f64 / elapsed,
            p50_ms: ms(h, 0.5),
            p90_ms: ms(h, 0.9),
            p99_ms: ms(h, 0.99),
            max_ms: h.max() as f64 / 1000.0,
        })
        .collect();
    let ops: u64 = kinds.iter().map(|k| k.ok).sum();
    Ok(LoadReport {
        clients: ibks.len(),
        duration_s: elapsed,
        ops,
        ops_per_s: ops as f64 / elapsed,
        kinds,
        errors,
        refusals_repeated: repeated.load(Relaxed),
        packages: packages.into_iter().map(|(_, id)| id).collect(),
        acked,
        samples,
    })
}

/// The e-mail key's local part of the seeded customer at `idx` (see [`seed`]): the seed run is
/// the first three digits of every document it opened.
fn actor_key_prefix(c: &Customer, idx: usize) -> String {
    let run = c.account.documents.first().map(|d| d.digits()[..3].to_string()).unwrap_or_default();
    format!("load{run}.{idx}")
}

pub fn print(r: &LoadReport, json: bool) {
    if json {
        println!("{}", serde_json::to_string_pretty(r).unwrap_or_default());
        return;
    }
    println!("{} clients, {:.1} s: {} operations, {:.0}/s", r.clients, r.duration_s, r.ops, r.ops_per_s);
    println!(
        "  {:<9} {:>8} {:>8} {:>9} {:>9} {:>9} {:>9}",
        "kind", "ok", "ok/s", "p50 ms", "p90 ms", "p99 ms", "max ms"
    );
    for k in &r.kinds {
        println!(
            "  {:<9} {:>8} {:>8.0} {:>9.1} {:>9.1} {:>9.1} {:>9.1}",
            k.kind.name(),
            k.ok,
            k.per_s,
            k.p50_ms,
            k.p90_ms,
            k.p99_ms,
            k.max_ms
        );
    }
    if r.refusals_repeated > 0 {
        println!(
            "  refused for now and repeated after the wait asked (Retry-After): {} (the waits are in the latencies above)",
            r.refusals_repeated
        );
    }
    if !r.errors.is_empty() {
        println!("  errors by code:");
        for (code, n) in &r.errors {
            println!("    {code:<28} {n}");
        }
    }
}

/// `load --launch [--chaos-every-ms N]`: a network of its own, optionally faults on a schedule
/// while the load runs, then the checker. Returns the load's figures, the faults injected and the
/// checker's report.
pub async fn launch_and_load(
    a: &LoadArgs,
    mix: &[(Kind, u32)],
) -> crate::Result<(LoadReport, u32, crate::check::Report)> {
    let dir = tempfile::tempdir()?;
    let mut cluster = harness::cluster::Cluster::start(&harness::cluster::Spec::ephemeral(3, 2, dir.path()))?;
    cluster.wait_ready(Duration::from_secs(60)).await?;
    let t = cluster.target();
    eprintln!("seeding {} customers...", a.clients);
    let customers = seed(&t, a.clients, "1000").await?;
    let duration = Duration::from_secs(a.duration);
    let load = {
        let (t, mix, progress) = (t.clone(), mix.to_vec(), !a.json);
        let count = a.count;
        tokio::spawn(async move { load(&t, customers, &mix, duration, count, progress).await })
    };
    let mut faults = 0u32;
    if let Some(every) = a.chaos_every_ms {
        let started = Instant::now();
        while started.elapsed() + Duration::from_millis(every) < duration {
            tokio::time::sleep(Duration::from_millis(every)).await;
            faults += 1;
            let b = rand::rng().random_range(0..cluster.banks.len());
            if faults.is_multiple_of(3) {
                cluster.kill_dataserver(b);
                cluster.start_dataserver(b)?;
            } else {
                let r = rand::rng().random_range(0..cluster.banks[b].replicas.len());
                cluster.kill_replica(b, r);
                cluster.start_replica(b, r)?;
            }
        }
    }
    let report = load.await??;
    let checked = settle_and_check(&t, Duration::from_secs(60)).await?;
    Ok((report, faults, checked))
}

/// `interbank load`.
pub async fn run(a: &LoadArgs) -> crate::Result<()> {
    let mix = parse_mix(&a.mix)?;
    if a.launch {
        let (r, faults, checked) = launch_and_load(a, &mix).await?;
        print(&r, a.json);
        println!("faults injected: {faults}");
        print_check(&checked);
        if let Some(path) = &a.report {
            write_report(
                path,
                &a.mix,
                &r,
                Some(&checked),
                &format!("a fresh 3-bank network, {faults} faults injected"),
            )?;
        }
        return if checked.violations.is_empty() { Ok(()) } else { Err(Error::Violations(checked.violations.len())) };
    }
    let t = Target::load(&a.target.target)?;
    eprintln!("seeding {} customers...", a.clients);
    let customers = seed(&t, a.clients, "1000").await?;
    let r = load(&t, customers, &mix, Duration::from_secs(a.duration), a.count, !a.json).await?;
    print(&r, a.json);
    if let Some(path) = &a.report {
        let checked = settle_and_check(&t, Duration::from_secs(60)).await?;
        print_check(&checked);
        write_report(path, &a.mix, &r, Some(&checked), &format!("the network of {}", a.target.target.display()))?;
    }
    Ok(())
}

/// `--report FILE.html`: the run of `mix` against `network` as one HTML file.
pub fn write_report(
    path: &std::path::Path,
    mix: &str,
    r: &LoadReport,
    checked: Option<&crate::check::Report>,
    network: &str,
) -> crate::Result<()> {
    let run = crate::report::Run {
        title: format!("interbank load: {} clients, {:.0} s", r.clients, r.duration_s),
        about: vec![
            format!("mix {mix}, against {network}"),
            format!(
                "{} operations answered, {:.0}/s; {} refused or failed",
                r.ops,
                r.ops_per_s,
                r.errors.values().sum::<u64>()
            ),
        ],
        samples: &r.samples,
        errors: r.errors.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
        check: checked.map(|c| c.violations.clone()),
    };
    crate::report::write(path, &run)?;
    eprintln!("report written to {}", path.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mix_is_parsed_with_its_errors() {
        assert_eq!(parse_mix("deposit=2,pix=1").unwrap_or_default(), vec![(Kind::Deposit, 2), (Kind::Pix, 1)]);
        assert!(matches!(parse_mix("deposit=0"), Err(Error::Usage(_))));
        assert!(matches!(parse_mix("teleport=1"), Err(Error::Usage(_))));
        assert!(matches!(parse_mix("deposit"), Err(Error::Usage(_))));
    }
}
