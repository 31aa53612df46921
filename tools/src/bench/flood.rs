//! `interbank bench flood`: does a flood of sign-ups (each an argon2 hash) starve the other
//! customers? One bank with one replica (started here); a customer reads their account in a loop,
//! first alone, then while `--signups` accounts are opened by `--flood-connections` connections
//! at once. Printed: p50 and p99 of the customer's reads in both phases, and how long the flood
//! took. `--hashing-concurrent-max` is passed to the replica, so the semaphore can be compared
//! with a replica that hashes as many passwords at once as it is asked to.

// Figures for people are floats; money in this module is never a float.
#![allow(clippy::float_arithmetic)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use harness::client::sign_up;
use harness::cluster::{Cluster, Spec};
use hdrhistogram::Histogram;

use crate::Error;

#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Accounts opened by the flood.
    #[arg(long, default_value_t = 1_000)]
    pub signups: usize,
    /// Connections the flood uses at once.
    #[arg(long, default_value_t = 64)]
    pub flood_connections: usize,
    /// Concurrent readers of the customer's account.
    #[arg(long, default_value_t = 4)]
    pub readers: usize,
    /// How long the baseline runs.
    #[arg(long, default_value_t = 5)]
    pub baseline_s: u64,
    /// The replica's `--hashing-concurrent-max`.
    #[arg(long, default_value_t = 2)]
    pub hashing_concurrent_max: usize,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, serde::Serialize)]
pub struct Report {
    pub signups: usize,
    pub hashing_concurrent_max: usize,
    pub baseline_p50_ms: f64,
    pub baseline_p99_ms: f64,
    pub flood_p50_ms: f64,
    pub flood_p99_ms: f64,
    pub flood_s: f64,
    pub signups_ok: usize,
    pub read_errors: u64,
}

fn ms(h: &Histogram<u64>, q: f64) -> f64 {
    h.value_at_quantile(q) as f64 / 1_000.0
}

/// Reads the account until `stop`; latencies in microseconds.
async fn read_until(customer: harness::client::Customer, stop: Arc<AtomicBool>) -> (Histogram<u64>, u64) {
    let mut h = Histogram::<u64>::new(3).expect("3 significant digits is valid");
    let mut errors = 0;
    while !stop.load(Ordering::Relaxed) {
        let t = Instant::now();
        match customer.me().await {
            Ok(_) => {
                let _ = h.record(u64::try_from(t.elapsed().as_micros()).unwrap_or(u64::MAX));
            }
            Err(_) => errors += 1,
        }
    }
    (h, errors)
}

async fn phase(
    customer: &harness::client::Customer,
    readers: usize,
    stop: Arc<AtomicBool>,
) -> Vec<tokio::task::JoinHandle<(Histogram<u64>, u64)>> {
    (0..readers).map(|_| tokio::spawn(read_until(customer.clone(), stop.clone()))).collect()
}

async fn gather(tasks: Vec<tokio::task::JoinHandle<(Histogram<u64>, u64)>>) -> crate::Result<(Histogram<u64>, u64)> {
    let mut all = Histogram::<u64>::new(3).map_err(|e| Error::run(e.to_string()))?;
    let mut errors = 0;
    for t in tasks {
        let (h, e) = t.await.map_err(|e| Error::run(e.to_string()))?;
        all.add(&h).map_err(|e| Error::run(e.to_string()))?;
        errors += e;
    }
    Ok((all, errors))
}

pub async fn run(args: Args) -> crate::Result<Report> {
    let dir = tempfile::tempdir()?;
    let mut spec = Spec::ephemeral(1, 1, dir.path());
    spec.business_args = vec!["--hashing-concurrent-max".into(), args.hashing_concurrent_max.to_string()];
    let cluster = Cluster::start(&spec)?;
    cluster.wait_ready(Duration::from_secs(60)).await?;
    let base = cluster.banks[0].urls()[0].clone();
    let http = pki::http_client();
    let customer = sign_up(&http, &base, "Cliente Fiel", "529.982.247-25", "senha-muito-segura").await?;

    let stop = Arc::new(AtomicBool::new(false));
    let readers = phase(&customer, args.readers, stop.clone()).await;
    tokio::time::sleep(Duration::from_secs(args.baseline_s)).await;
    stop.store(true, Ordering::Relaxed);
    let (baseline, mut read_errors) = gather(readers).await?;

    let stop = Arc::new(AtomicBool::new(false));
    let readers = phase(&customer, args.readers, stop.clone()).await;
    let started = Instant::now();
    let gate = Arc::new(tokio::sync::Semaphore::new(args.flood_connections.max(1)));
    let mut flood = Vec::with_capacity(args.signups);
    for i in 0..args.signups {
        let (gate, http, base) = (gate.clone(), http.clone(), base.clone());
        flood.push(tokio::spawn(async move {
            let _permit = gate.acquire().await.ok()?;
            let doc = shared::Document::with_check_digits(&format!("{:09}", 600_000_000 + i))?.formatted();
            let body = serde_json::json!({ "name": format!("Flood {i}"), "documents": [doc], "type": "individual", "password": "flood-password-1" });
            let r = http.post(format!("{base}/api/accounts")).json(&body).send().await.ok()?;
            r.status().is_success().then_some(())
        }));
    }
    let mut signups_ok = 0;
    for f in flood {
        if let Ok(Some(())) = f.await {
            signups_ok += 1;
        }
    }
    let flood_s = started.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    let (during, e) = gather(readers).await?;
    read_errors += e;
    Ok(Report {
        signups: args.signups,
        hashing_concurrent_max: args.hashing_concurrent_max,
        baseline_p50_ms: ms(&baseline, 0.5),
        baseline_p99_ms: ms(&baseline, 0.99),
        flood_p50_ms: ms(&during, 0.5),
        flood_p99_ms: ms(&during, 0.99),
        flood_s,
        signups_ok,
        read_errors,
    })
}

pub async fn main(args: Args) -> crate::Result<()> {
    let json = args.json;
    let r = run(args).await?;
    if json {
        println!("{}", serde_json::to_string(&r).map_err(|e| Error::run(e.to_string()))?);
    } else {
        println!(
            "sign-up flood: {} of {} opened in {:.1} s (hashing at most {} at once)",
            r.signups_ok, r.signups, r.flood_s, r.hashing_concurrent_max
        );
        println!("  a customer's reads alone:       p50 {:.2} ms  p99 {:.2} ms", r.baseline_p50_ms, r.baseline_p99_ms);
        println!("  the same during the flood:      p50 {:.2} ms  p99 {:.2} ms", r.flood_p50_ms, r.flood_p99_ms);
        println!("  read errors: {}", r.read_errors);
    }
    Ok(())
}
