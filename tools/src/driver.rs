//! The load driver the benchmarks share: one task per connection running an operation back to
//! back; a warm-up, then a measured window with a live progress bar; per-connection HDR
//! histograms merged at the end.

// Figures for people are floats; no money is handled here.
#![allow(clippy::float_arithmetic)]

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use rand::Rng;

use crate::lean_http::Conn;

/// The shape of a closed-loop load, shared by the benchmarks that drive accounts in pairs.
#[derive(Debug, Clone, clap::Args)]
pub struct Shape {
    /// Concurrent connections (each runs requests back to back).
    #[arg(long, default_value_t = 64)]
    pub connections: usize,
    /// Seconds of measured load (after a warm-up of `warmup_s`).
    #[arg(long, default_value_t = 20)]
    pub duration_s: u64,
    #[arg(long, default_value_t = 3)]
    pub warmup_s: u64,
    /// Accounts to seed and pick pairs from.
    #[arg(long, default_value_t = 10_000)]
    pub accounts: u64,
}

/// How one operation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    /// The server answered with a refusal (a 4xx/5xx error body), with this status.
    Refused(u16),
    /// No answer (transport failure).
    Error,
}

impl Outcome {
    /// How a call over [`crate::lean_http`] ended.
    pub fn of<T>(r: &Result<T, crate::lean_http::CallError>) -> Outcome {
        use crate::lean_http::CallError;
        match r {
            Ok(_) => Outcome::Ok,
            Err(CallError::Transport(_)) => Outcome::Error,
            Err(CallError::Refused { status, .. }) => Outcome::Refused(*status),
            // A success whose body is not what the API promises: refused, with no status of its own.
            Err(_) => Outcome::Refused(0),
        }
    }
}

#[derive(Debug, Default)]
struct Counters {
    measuring: AtomicBool,
    stop: AtomicBool,
    ok: AtomicU64,
    refused: AtomicU64,
    /// Of `refused`: `429` and `503`, the answers of backpressure.
    refused_429: AtomicU64,
    refused_503: AtomicU64,
    errors: AtomicU64,
}

/// What the measured window saw.
#[derive(Debug)]
pub struct Totals {
    pub elapsed_s: f64,
    pub ok: u64,
    pub refused: u64,
    pub refused_429: u64,
    pub refused_503: u64,
    pub errors: u64,
    /// Latency of successful operations, in µs.
    pub hist: Histogram<u64>,
    /// Latency of refused ones, in µs: how fast a caller learns it must wait.
    pub refused_hist: Histogram<u64>,
}

impl Totals {
    pub fn ms(&self, q: f64) -> f64 {
        self.hist.value_at_quantile(q) as f64 / 1000.0
    }

    pub fn refused_ms(&self, q: f64) -> f64 {
        self.refused_hist.value_at_quantile(q) as f64 / 1000.0
    }

    pub fn max_ms(&self) -> f64 {
        self.hist.max() as f64 / 1000.0
    }

    pub fn ok_per_s(&self) -> f64 {
        self.ok as f64 / self.elapsed_s
    }
}

#[derive(Debug)]
pub struct Load {
    counters: Arc<Counters>,
    /// Each connection's (successful, refused) latencies.
    tasks: Vec<tokio::task::JoinHandle<(Histogram<u64>, Histogram<u64>)>>,
    elapsed_s: f64,
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid bounds")
}

/// Two distinct accounts in `1..=accounts`, uniformly.
pub fn random_pair(accounts: u64) -> (u64, u64) {
    let mut rng = rand::rng();
    let a = rng.random_range(1..=accounts);
    let mut b = rng.random_range(1..accounts);
    if b >= a {
        b += 1;
    }
    (a, b)
}

impl Load {
    /// Starts one task per connection; `op(connection, connection index, sequence number)` runs
    /// one operation and hands the connection back with its outcome.
    pub fn start<F, Fut>(conns: Vec<Conn>, op: F) -> Load
    where
        F: Fn(Conn, usize, u64) -> Fut + Clone + Send + 'static,
        Fut: Future<Output = (Conn, Outcome)> + Send,
    {
        let counters = Arc::new(Counters::default());
        let tasks = conns
            .into_iter()
            .enumerate()
            .map(|(i, conn)| {
                let (counters, op) = (counters.clone(), op.clone());
                tokio::spawn(async move {
                    let (mut hist, mut refused_hist) = (histogram(), histogram());
                    let mut conn = conn;
                    let mut n = 0u64;
                    while !counters.stop.load(Relaxed) {
                        n += 1;
                        let t0 = Instant::now();
                        let (back, outcome) = op(conn, i, n).await;
                        conn = back;
                        if !counters.measuring.load(Relaxed) {
                            continue;
                        }
                        match outcome {
                            Outcome::Ok => {
                                let _ = hist.record(t0.elapsed().as_micros().max(1) as u64);
                                counters.ok.fetch_add(1, Relaxed);
                            }
                            Outcome::Refused(status) => {
                                let _ = refused_hist.record(t0.elapsed().as_micros().max(1) as u64);
                                counters.refused.fetch_add(1, Relaxed);
                                match status {
                                    429 => counters.refused_429.fetch_add(1, Relaxed),
                                    503 => counters.refused_503.fetch_add(1, Relaxed),
                                    _ => 0,
                                };
                            }
                            Outcome::Error => {
                                counters.errors.fetch_add(1, Relaxed);
                            }
                        }
                    }
                    (hist, refused_hist)
                })
            })
            .collect();
        Load { counters, tasks, elapsed_s: 0.0 }
    }

    /// Runs unmeasured, so connections and caches settle.
    pub async fn warm_up(&self, d: Duration) {
        tokio::time::sleep(d).await;
    }

    /// The measured window, with a progress bar showing the rate so far.
    pub async fn measure(&mut self, seconds: u64) {
        let pb = indicatif::ProgressBar::new(seconds);
        pb.set_style(
            indicatif::ProgressStyle::with_template("{msg:>10} [{bar:40}] {pos}/{len} s")
                .expect("valid template")
                .progress_chars("=> "),
        );
        self.counters.measuring.store(true, Relaxed);
        let started = Instant::now();
        for _ in 0..seconds {
            tokio::time::sleep(Duration::from_secs(1)).await;
            pb.inc(1);
            pb.set_message(format!("{:.0}/s", self.counters.ok.load(Relaxed) as f64 / started.elapsed().as_secs_f64()));
        }
        self.counters.measuring.store(false, Relaxed);
        self.elapsed_s = started.elapsed().as_secs_f64();
        pb.finish_and_clear();
    }

    /// Stops every connection and merges what they measured.
    pub async fn finish(self) -> crate::Result<Totals> {
        self.counters.stop.store(true, Relaxed);
        let (mut hist, mut refused_hist) = (histogram(), histogram());
        for t in self.tasks {
            let (ok, refused) = t.await?;
            hist.add(ok)?;
            refused_hist.add(refused)?;
        }
        Ok(Totals {
            elapsed_s: self.elapsed_s,
            ok: self.counters.ok.load(Relaxed),
            refused: self.counters.refused.load(Relaxed),
            refused_429: self.counters.refused_429.load(Relaxed),
            refused_503: self.counters.refused_503.load(Relaxed),
            errors: self.counters.errors.load(Relaxed),
            hist,
            refused_hist,
        })
    }
}
