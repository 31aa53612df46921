//! `interbank bench dataserver`: 2-account lock → commit → release cycles against a data server,
//! from many concurrent connections, with latency percentiles from an HDR histogram.

// Figures for people are floats; money in this module is never a float.
#![allow(clippy::float_arithmetic)]

use std::sync::Arc;
use std::time::Duration;

use dataserver_api::{AcquireRequest, AcquireResponse, CommitRequest, CommitResponse, LockRef, SetAmount};
use hyper::Method;

use crate::Error;
use crate::driver::{Load, Outcome, random_pair};
use crate::lean_http::Conn;
use dataserver_api::client::DataClient;
use harness::process::{DataServerProcess, SpawnOptions, spawn};
use indicatif::{ProgressBar, ProgressStyle};
use shared::{AccountId, BusinessId, Money};

#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub shape: crate::driver::Shape,
    /// An existing data server; without it one is started on a fresh temporary directory.
    #[arg(long)]
    pub url: Option<String>,
    #[arg(long, default_value_t = 11)]
    pub business: u32,
    #[arg(long, default_value = "bench-key-business-11")]
    pub key: String,
    /// Only seed the accounts, restart the server on its directory and report its RSS.
    #[arg(long)]
    pub rss_only: bool,
    /// Transfers per lock call and commit, as a batching business replica sends them (1: the
    /// single-operation path). Each batch's accounts are distinct.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=256))]
    pub batch: u64,
    /// Start the data server on this PostgreSQL database (it must be new: the bench seeds it)
    /// instead of a fresh embedded store. A URL with a password: pass it in the environment.
    #[arg(long, env = "INTERBANK_BENCH_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// Print the result as one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// Accounts written per seeding commit (the data server's default batch limit).
const SEED_BATCH_MAX: u64 = 64;
/// Seeding commits in flight at once.
const SEED_PARALLELISM: usize = 32;
const OPENING_CENTS: i64 = 100_000_000;

fn id(v: u64) -> AccountId {
    AccountId::new(v).expect("account ids start at 1")
}

fn bar(len: u64, what: &str) -> ProgressBar {
    let pb = ProgressBar::new(len);
    pb.set_style(
        ProgressStyle::with_template("{msg:>10} [{bar:40}] {pos}/{len} ({per_sec}, eta {eta})")
            .expect("valid template")
            .progress_chars("=> "),
    );
    pb.set_message(what.to_string());
    pb
}

async fn seed(client: &DataClient, accounts: u64) -> crate::Result<()> {
    let pb = bar(accounts, "seeding");
    let chunks: Vec<u64> = (0..accounts.div_ceil(SEED_BATCH_MAX)).collect();
    let opening = Money::from_cents(OPENING_CENTS)?;
    let mut stream = futures::stream::iter(chunks.into_iter().map(|chunk| {
        let client = client.clone();
        let pb = pb.clone();
        async move {
            let first = 1 + chunk * SEED_BATCH_MAX;
            let last = (first + SEED_BATCH_MAX - 1).min(accounts);
            let ids: Vec<AccountId> = (first..=last).map(id).collect();
            let grant = client
                .acquire(&AcquireRequest { accounts: ids.clone(), wait_ms: Some(5_000), ..Default::default() })
                .await?;
            let mut tx = CommitRequest::new(format!("seed-{chunk}"));
            tx.locks = grant.locks.iter().map(|g| LockRef { account: g.account, token: g.token }).collect();
            tx.set = ids.iter().map(|a| SetAmount { account: *a, amount: opening }).collect();
            client.commit(&tx).await?;
            pb.inc(ids.len() as u64);
            Ok::<(), crate::Error>(())
        }
    }))
    .buffer_unordered(SEED_PARALLELISM);
    use futures::StreamExt;
    while let Some(r) = stream.next().await {
        r?;
    }
    pb.finish_and_clear();
    Ok(())
}

#[derive(Debug, serde::Serialize)]
pub struct Report {
    pub connections: usize,
    pub batch: u64,
    /// Two-account transfers made durable per second (commits x batch).
    pub transfers_per_s: f64,
    pub accounts: u64,
    pub duration_s: f64,
    pub commits: u64,
    pub commits_per_s: f64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub errors: u64,
    pub server_batches: u64,
    pub server_mean_batch: f64,
    pub server_mean_fsync_ms: f64,
    pub rss_mb: Option<f64>,
}

/// One cycle: lock the accounts of `batch` transfers (two each, all distinct) in one call, then
/// commit every transfer and release in another.
async fn cycle(
    http: &mut Conn,
    paths: &(String, String),
    accounts: u64,
    batch: u64,
    n: u64,
    conn: usize,
) -> crate::Result<()> {
    let mut pairs: Vec<(u64, u64)> = Vec::with_capacity(batch as usize);
    while (pairs.len() as u64) < batch {
        let (a, b) = random_pair(accounts);
        if !pairs.iter().any(|(x, y)| [*x, *y].contains(&a) || [*x, *y].contains(&b)) {
            pairs.push((a, b));
        }
    }
    let mut ids: Vec<AccountId> = pairs.iter().flat_map(|(a, b)| [id(*a), id(*b)]).collect();
    ids.sort_unstable();
    let req = AcquireRequest { accounts: ids, wait_ms: Some(2_000), ..Default::default() };
    let body = serde_json::to_vec(&req)?;
    let grant: AcquireResponse = http.call(Method::POST, &paths.0, body).await?;
    let amount = |x: u64| grant.locks.iter().find(|g| g.account == id(x)).and_then(|g| g.amount).unwrap_or_default();
    let cent = Money::from_cents(1)?;
    let mut tx = CommitRequest::new(format!("b{conn}-{n}"));
    tx.locks = grant.locks.iter().map(|g| LockRef { account: g.account, token: g.token }).collect();
    for (a, b) in pairs {
        let (from, to) = (amount(a), amount(b));
        let (f, t) = match (from.checked_sub(cent), to.checked_add(cent)) {
            (Some(f), Some(t)) => (f, t),
            _ => (from, to),
        };
        tx.set.extend([SetAmount { account: id(a), amount: f }, SetAmount { account: id(b), amount: t }]);
    }
    let body = serde_json::to_vec(&tx)?;
    let _: CommitResponse = http.call(Method::POST, &paths.1, body).await?;
    Ok(())
}

use super::metric;

pub async fn run(args: Args) -> crate::Result<Report> {
    let business = BusinessId::new(args.business)?;
    let dir = tempfile::tempdir()?;
    let mut server: Option<DataServerProcess> = None;
    let url = match &args.url {
        Some(u) => u.clone(),
        None => {
            let bin = harness::process::binary("dataserver")?;
            let mut opts = SpawnOptions::new(bin, dir.path(), vec![(business, args.key.clone())]);
            opts.database_url.clone_from(&args.database_url);
            let p = spawn(&opts)?;
            let url = p.url();
            server = Some(p);
            url
        }
    };
    let http =
        pki::http().pool_max_idle_per_host(args.shape.connections.max(SEED_PARALLELISM)).tcp_nodelay(true).build()?;
    let client = DataClient::with_http(http, &url, business, args.key.clone())?;
    seed(&client, args.shape.accounts).await?;

    if args.rss_only {
        let Some(mut p) = server.take() else {
            return Err(Error::run("--rss-only needs a data server started by this tool"));
        };
        // Measure what a restarted server holds: the amounts loaded from disk.
        p.terminate()?;
        let mut opts =
            SpawnOptions::new(harness::process::binary("dataserver")?, dir.path(), vec![(business, args.key.clone())]);
        opts.database_url.clone_from(&args.database_url);
        let p = spawn(&opts)?;
        let health = p.client(0).health().await?;
        let rss = harness::process::rss_bytes(p.pid()).map(|b| b as f64 / (1024.0 * 1024.0));
        eprintln!("accounts loaded after restart: {}", health.accounts);
        return Ok(Report {
            connections: 0,
            batch: args.batch,
            transfers_per_s: 0.0,
            accounts: health.accounts,
            duration_s: 0.0,
            commits: 0,
            commits_per_s: 0.0,
            p50_ms: 0.0,
            p90_ms: 0.0,
            p99_ms: 0.0,
            max_ms: 0.0,
            errors: 0,
            server_batches: 0,
            server_mean_batch: 0.0,
            server_mean_fsync_ms: 0.0,
            rss_mb: rss,
        });
    }

    let addr: std::net::SocketAddr = url
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .parse()
        .map_err(|e| Error::run(format!("--url must be http://IP:PORT: {e}")))?;
    let paths = Arc::new((format!("/v1/{business}/locks"), format!("/v1/{business}/commit")));
    let mut conns = Vec::with_capacity(args.shape.connections);
    for _ in 0..args.shape.connections {
        conns.push(Conn::connect(addr, &args.key).await?);
    }
    let accounts = args.shape.accounts;
    let batch = args.batch;
    if accounts < 2 * batch * args.shape.connections as u64 {
        return Err(Error::run("--accounts must be at least 2 x --batch x --connections"));
    }
    let mut load = Load::start(conns, move |mut http, conn, n| {
        let paths = paths.clone();
        async move {
            let outcome = if cycle(&mut http, &paths, accounts, batch, n, conn).await.is_ok() {
                Outcome::Ok
            } else {
                Outcome::Error
            };
            (http, outcome)
        }
    });
    load.warm_up(Duration::from_secs(args.shape.warmup_s)).await;
    let before = client.metrics().await?;
    load.measure(args.shape.duration_s).await;
    let after = client.metrics().await?;
    let totals = load.finish().await?;
    let delta = |name: &str| metric(&after, name) - metric(&before, name);
    let batches = delta("dataserver_commit_batch_size_count");
    let rss_mb =
        server.as_ref().and_then(|p| harness::process::rss_bytes(p.pid())).map(|b| b as f64 / (1024.0 * 1024.0));
    Ok(Report {
        connections: args.shape.connections,
        batch: args.batch,
        transfers_per_s: totals.ok_per_s() * args.batch as f64,
        accounts: args.shape.accounts,
        duration_s: totals.elapsed_s,
        commits: totals.ok,
        commits_per_s: totals.ok_per_s(),
        p50_ms: totals.ms(0.50),
        p90_ms: totals.ms(0.90),
        p99_ms: totals.ms(0.99),
        max_ms: totals.max_ms(),
        errors: totals.errors + totals.refused,
        server_batches: batches as u64,
        server_mean_batch: if batches > 0.0 { delta("dataserver_commit_batch_size_sum") / batches } else { 0.0 },
        server_mean_fsync_ms: if batches > 0.0 {
            delta("dataserver_fsync_seconds_sum") * 1000.0 / batches
        } else {
            0.0
        },
        rss_mb,
    })
}

pub fn print(r: &Report, json: bool) {
    if json {
        println!("{}", serde_json::to_string(r).unwrap_or_default());
        return;
    }
    if r.connections == 0 {
        println!("data server RSS with {} accounts loaded: {:.1} MB", r.accounts, r.rss_mb.unwrap_or(0.0));
        return;
    }
    println!(
        "data server: lock -> commit -> release of {} two-account transfer(s) per commit, {} connections, {} accounts",
        r.batch, r.connections, r.accounts
    );
    println!(
        "  commits/s      {:>10.0}   ({} commits in {:.1} s, {} errors)",
        r.commits_per_s, r.commits, r.duration_s, r.errors
    );
    println!("  transfers/s    {:>10.0}", r.transfers_per_s);
    println!("  latency (ms)   p50 {:.2}  p90 {:.2}  p99 {:.2}  max {:.2}", r.p50_ms, r.p90_ms, r.p99_ms, r.max_ms);
    println!(
        "  group commit   {} durable writes, {:.1} commits each, {:.3} ms per write",
        r.server_batches, r.server_mean_batch, r.server_mean_fsync_ms
    );
    if let Some(rss) = r.rss_mb {
        println!("  server RSS     {rss:.1} MB");
    }
}

/// `interbank bench …`: runs and prints the figures.
pub async fn main(args: Args) -> crate::Result<()> {
    let json = args.json;
    run(args).await.map(|r| print(&r, json))
}
