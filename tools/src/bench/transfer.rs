//! `interbank bench transfer`: seed 004's `POST /transfer/{origin}/{target}/{amount}` through a
//! bank's business replicas, from many connections, as `../shared/bench/transfer.lua` does with
//! wrk — one data server and two replicas started here unless `--url` names running replicas.

// Figures for people are floats; money in this module is never a float.
#![allow(clippy::float_arithmetic)]

use std::net::SocketAddr;
use std::process::{Child, Command};
use std::time::Duration;

use business::model::{AccountRecord, AccountType, open_account_commit};
use dataserver_api::{AcquireRequest, CommitRequest, LockRef, SetAmount};
use harness::process::{SpawnOptions, listening_addr, spawn, spawn_command};
use hyper::Method;
use shared::{AccountId, BusinessId, Document, Money};

use super::{CpuPer, cpu_now};
use crate::Error;
use crate::driver::{Load, Outcome, random_pair};
use crate::lean_http::Conn;

#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub shape: crate::driver::Shape,
    /// Business replicas to start (connections are spread over them).
    #[arg(long, default_value_t = 2)]
    pub replicas: u32,
    /// Passed to every replica, e.g. `--replica-arg=--ops-batch-max=0` to send each operation
    /// to the data server alone (repeatable).
    #[arg(long = "replica-arg", allow_hyphen_values = true)]
    pub replica_args: Vec<String>,
    /// Start the data server on this PostgreSQL database (it must be new: the bench opens its
    /// accounts) instead of a fresh embedded store. A URL with a password: pass it in the
    /// environment.
    #[arg(long, env = "INTERBANK_BENCH_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
    #[arg(long)]
    pub json: bool,
}

const OPERATOR_KEY: &str = "bench-operator-key";
/// Accounts opened per provisioning commit.
const OPEN_BATCH_MAX: u64 = 64;

#[derive(Debug, serde::Serialize)]
pub struct Report {
    pub connections: usize,
    pub replicas: u32,
    pub accounts: u64,
    pub duration_s: f64,
    pub transfers: u64,
    pub transfers_per_s: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub refused: u64,
    pub errors: u64,
    /// CPU time per transfer in the measured window, by process (Linux only): where the
    /// machine's cores go, the first thing a profile pass asks.
    pub cpu_us_per_transfer: Option<CpuPer>,
    /// `interbank check` on the bank afterwards: what it found wrong (nothing, or the run failed).
    pub check_violations: Vec<String>,
}

struct Guard(Vec<Child>);

impl Drop for Guard {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn id(v: u64) -> AccountId {
    AccountId::new(v).expect("account ids start at 1")
}

pub async fn run(args: Args) -> crate::Result<Report> {
    let dir = tempfile::tempdir()?;
    let keys: Vec<(BusinessId, String)> = (0..args.replicas)
        .map(|i| BusinessId::new(11 + i).map(|b| (b, format!("bench-dataserver-key-{b}"))))
        .collect::<Result<_, _>>()?;
    let mut opts = SpawnOptions::new(harness::process::binary("dataserver")?, dir.path(), keys.clone());
    opts.database_url.clone_from(&args.database_url);
    let ds = spawn(&opts)?;
    let mut guard = Guard(Vec::new());
    let mut addrs: Vec<SocketAddr> = Vec::new();
    for (b, k) in &keys {
        let mut cmd = Command::new(harness::process::binary("business")?);
        cmd.args(["--listen", "127.0.0.1:0", "--bank-id", "1", "--business-id", &b.to_string()])
            .args(["--dataserver", &ds.url()])
            .args(&args.replica_args)
            // Secrets in the environment: a replica refuses them on its command line.
            .env("BUSINESS_DATASERVER_KEY", k)
            .env("BUSINESS_OPERATOR_KEY", OPERATOR_KEY);
        let (child, line) = spawn_command(cmd, None)?;
        guard.0.push(child);
        addrs.push(listening_addr(&line).ok_or_else(|| Error::run("replica printed no address"))?);
    }

    // Provision the accounts through the data server, as account creation does, 64 per commit,
    // each with an opening balance of 1,000,000.00.
    let client = ds.client(0);
    let opening = Money::from_cents(100_000_000)?;
    let pb = indicatif::ProgressBar::new(args.shape.accounts);
    for chunk in 0..args.shape.accounts.div_ceil(OPEN_BATCH_MAX) {
        let ids: Vec<AccountId> =
            (1 + chunk * OPEN_BATCH_MAX..=((chunk + 1) * OPEN_BATCH_MAX).min(args.shape.accounts)).map(id).collect();
        let grant = client.acquire(&AcquireRequest { accounts: ids.clone(), ..Default::default() }).await?;
        let mut commit = CommitRequest::new(format!("provision-{chunk}"));
        for g in &grant.locks {
            let record = AccountRecord {
                id: g.account,
                name: format!("Bench {}", g.account),
                documents: vec![
                    Document::with_check_digits(&format!("{:09}", 100_000_000 + g.account.get()))
                        .ok_or_else(|| Error::run("cpf"))?,
                ],
                kind: AccountType::Individual,
                created_at: "2026-01-01T00:00:00Z".into(),
                password_hash: None,
                pending: vec![],
            };
            let one = open_account_commit(String::new(), LockRef { account: g.account, token: g.token }, &record);
            commit.locks.extend(one.locks);
            commit.records.extend(one.records);
            commit.set.push(SetAmount { account: g.account, amount: opening });
        }
        client.commit(&commit).await?;
        pb.inc(ids.len() as u64);
    }
    pb.finish_and_clear();

    let mut conns = Vec::with_capacity(args.shape.connections);
    for c in 0..args.shape.connections {
        conns.push(Conn::connect(addrs[c % addrs.len()], OPERATOR_KEY).await?);
    }
    let accounts = args.shape.accounts;
    let mut load = Load::start(conns, move |mut http, _, _| async move {
        let (a, b) = random_pair(accounts);
        let r: Result<serde_json::Value, _> =
            http.call(Method::POST, &format!("/transfer/{a}/{b}/1"), Vec::new()).await;
        let outcome = Outcome::of(&r);
        (http, outcome)
    });
    load.warm_up(Duration::from_secs(args.shape.warmup_s)).await;
    let replica_pids: Vec<u32> = guard.0.iter().map(Child::id).collect();
    let cpu_before = cpu_now(&[ds.pid()], &replica_pids);
    load.measure(args.shape.duration_s).await;
    let cpu_after = cpu_now(&[ds.pid()], &replica_pids);
    let totals = load.finish().await?;
    let cpu_us_per_transfer = cpu_before.zip(cpu_after).map(|(a, b)| CpuPer::between(a, b, totals.ok));
    // The figures count only if the books still balance: journal replay equals every amount,
    // and transfers created or destroyed no money.
    let access = crate::check::BankAccess {
        id: shared::BankId::new(1)?,
        operator: harness::client::Operator {
            http: pki::http_client(),
            base: format!("http://{}", addrs[0]),
            key: OPERATOR_KEY.into(),
        },
        ds: ds.client(0),
    };
    let check = crate::check::check(&[access], true).await?;
    drop(guard);
    Ok(Report {
        connections: args.shape.connections,
        replicas: args.replicas,
        accounts: args.shape.accounts,
        duration_s: totals.elapsed_s,
        transfers: totals.ok,
        transfers_per_s: totals.ok_per_s(),
        p50_ms: totals.ms(0.5),
        p99_ms: totals.ms(0.99),
        max_ms: totals.max_ms(),
        refused: totals.refused,
        errors: totals.errors,
        cpu_us_per_transfer,
        check_violations: check.violations,
    })
}

pub fn print(r: &Report, json: bool) {
    if json {
        println!("{}", serde_json::to_string(r).unwrap_or_default());
        return;
    }
    println!(
        "business POST /transfer: {} connections over {} replicas, {} accounts",
        r.connections, r.replicas, r.accounts
    );
    println!(
        "  transfers/s    {:>10.0}   ({} in {:.1} s; {} refused, {} errors)",
        r.transfers_per_s, r.transfers, r.duration_s, r.refused, r.errors
    );
    println!("  latency (ms)   p50 {:.2}  p99 {:.2}  max {:.2}", r.p50_ms, r.p99_ms, r.max_ms);
    if let Some(c) = &r.cpu_us_per_transfer {
        println!(
            "  CPU (µs/transfer) data server {:.0}  replicas {:.0}  load generator {:.0}",
            c.dataserver, c.replicas, c.load_generator
        );
    }
    if r.check_violations.is_empty() {
        println!("  check          clean (journal replay = amounts, money conserved)");
    } else {
        println!("  check          {} violations, e.g. {}", r.check_violations.len(), r.check_violations[0]);
    }
}

/// `interbank bench …`: runs and prints the figures.
pub async fn main(args: Args) -> crate::Result<()> {
    let json = args.json;
    let r = run(args).await?;
    print(&r, json);
    if r.check_violations.is_empty() { Ok(()) } else { Err(Error::run("the check after the benchmark failed")) }
}
