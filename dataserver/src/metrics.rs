//! Prometheus text metrics: a handful of counters and fixed-bucket histograms on atomics, so
//! recording costs one relaxed add on the hot path.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

#[derive(Debug)]
pub struct Histogram {
    bounds: &'static [u64],
    buckets: Vec<AtomicU64>,
    sum: AtomicU64,
    count: AtomicU64,
}

impl Histogram {
    pub fn new(bounds: &'static [u64]) -> Histogram {
        Histogram {
            bounds,
            buckets: bounds.iter().map(|_| AtomicU64::new(0)).collect(),
            sum: AtomicU64::new(0),
            count: AtomicU64::new(0),
        }
    }

    pub fn record(&self, v: u64) {
        if let Some(i) = self.bounds.iter().position(|b| v <= *b) {
            self.buckets[i].fetch_add(1, Relaxed);
        }
        self.sum.fetch_add(v, Relaxed);
        self.count.fetch_add(1, Relaxed);
    }

    /// Renders with bucket bounds divided by `scale` (e.g. µs recorded, seconds shown).
    pub fn render(&self, out: &mut String, name: &str, help: &str, scale: u64) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        let mut acc = 0;
        for (b, c) in self.bounds.iter().zip(&self.buckets) {
            acc += c.load(Relaxed);
            let _ = writeln!(out, "{name}_bucket{{le=\"{}\"}} {acc}", fmt_scaled(*b, scale));
        }
        let count = self.count.load(Relaxed);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {count}");
        let _ = writeln!(out, "{name}_sum {}", fmt_scaled(self.sum.load(Relaxed), scale));
        let _ = writeln!(out, "{name}_count {count}");
    }
}

/// `v / scale` as a decimal without floating point.
fn fmt_scaled(v: u64, scale: u64) -> String {
    if scale == 1 {
        return v.to_string();
    }
    let digits = scale.ilog10() as usize;
    format!("{}.{:0digits$}", v / scale, v % scale)
}

/// Appends counters `(name, help, value)` in Prometheus text format.
pub fn render_counters(out: &mut String, counters: &[(&str, &str, &AtomicU64)]) {
    for (name, help, c) in counters {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}", c.load(Relaxed));
    }
}

pub const LATENCY_US_BOUNDS: &[u64] = &[100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 100_000, 1_000_000];
const BATCH_SIZE_BOUNDS: &[u64] = &[1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096];

#[derive(Debug)]
pub struct Metrics {
    pub requests_total: AtomicU64,
    pub responses_4xx_total: AtomicU64,
    pub responses_5xx_total: AtomicU64,
    pub lock_grants_total: AtomicU64,
    pub lock_conflicts_total: AtomicU64,
    pub lock_waits_total: AtomicU64,
    pub lock_wait_us: Histogram,
    pub leases_expired_total: AtomicU64,
    pub commits_total: AtomicU64,
    pub commit_rejects_total: AtomicU64,
    pub commit_replays_total: AtomicU64,
    pub commit_batch_size: Histogram,
    pub fsync_us: Histogram,
    pub checkpoint_us: Histogram,
    pub storage_errors_total: AtomicU64,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            requests_total: AtomicU64::new(0),
            responses_4xx_total: AtomicU64::new(0),
            responses_5xx_total: AtomicU64::new(0),
            lock_grants_total: AtomicU64::new(0),
            lock_conflicts_total: AtomicU64::new(0),
            lock_waits_total: AtomicU64::new(0),
            lock_wait_us: Histogram::new(LATENCY_US_BOUNDS),
            leases_expired_total: AtomicU64::new(0),
            commits_total: AtomicU64::new(0),
            commit_rejects_total: AtomicU64::new(0),
            commit_replays_total: AtomicU64::new(0),
            commit_batch_size: Histogram::new(BATCH_SIZE_BOUNDS),
            fsync_us: Histogram::new(LATENCY_US_BOUNDS),
            checkpoint_us: Histogram::new(LATENCY_US_BOUNDS),
            storage_errors_total: AtomicU64::new(0),
        }
    }
}

pub fn inc(c: &AtomicU64) {
    c.fetch_add(1, Relaxed);
}

impl Metrics {
    pub fn render(&self, leases_held: usize, boot_epoch: u64) -> String {
        let mut out = String::with_capacity(4096);
        let counters: [(&str, &str, &AtomicU64); 11] = [
            ("dataserver_requests_total", "HTTP requests served", &self.requests_total),
            ("dataserver_responses_4xx_total", "HTTP responses with a 4xx status", &self.responses_4xx_total),
            ("dataserver_responses_5xx_total", "HTTP responses with a 5xx status", &self.responses_5xx_total),
            ("dataserver_lock_grants_total", "leases granted", &self.lock_grants_total),
            (
                "dataserver_lock_conflicts_total",
                "lock requests refused or timed out: held by another",
                &self.lock_conflicts_total,
            ),
            (
                "dataserver_lock_waits_total",
                "lock requests that waited in a queue before their grant",
                &self.lock_waits_total,
            ),
            ("dataserver_leases_expired_total", "leases that expired without release", &self.leases_expired_total),
            ("dataserver_commits_total", "commits applied durably", &self.commits_total),
            (
                "dataserver_commit_rejects_total",
                "commits refused (fencing, condition, idempotency)",
                &self.commit_rejects_total,
            ),
            (
                "dataserver_commit_replays_total",
                "retried commits answered from the stored outcome",
                &self.commit_replays_total,
            ),
            ("dataserver_storage_errors_total", "durable writes that failed", &self.storage_errors_total),
        ];
        render_counters(&mut out, &counters);
        let _ = writeln!(
            out,
            "# HELP dataserver_leases_held leases live or being committed\n# TYPE dataserver_leases_held gauge\ndataserver_leases_held {leases_held}"
        );
        let _ = writeln!(
            out,
            "# HELP dataserver_boot_epoch durable boot counter\n# TYPE dataserver_boot_epoch gauge\ndataserver_boot_epoch {boot_epoch}"
        );
        self.lock_wait_us.render(
            &mut out,
            "dataserver_lock_wait_seconds",
            "time granted lock requests spent queued",
            1_000_000,
        );
        self.commit_batch_size.render(
            &mut out,
            "dataserver_commit_batch_size",
            "commits per durable write (group commit)",
            1,
        );
        self.fsync_us.render(
            &mut out,
            "dataserver_fsync_seconds",
            "duration of one durable write of a batch",
            1_000_000,
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prometheus_text() {
        let m = Metrics::default();
        m.fsync_us.record(300);
        m.fsync_us.record(2_000_000);
        inc(&m.commits_total);
        let text = m.render(3, 2);
        assert!(text.contains("dataserver_commits_total 1"));
        assert!(text.contains("dataserver_fsync_seconds_bucket{le=\"0.000500\"} 1"));
        assert!(text.contains("dataserver_fsync_seconds_bucket{le=\"+Inf\"} 2"));
        assert!(text.contains("dataserver_fsync_seconds_sum 2.000300"));
        assert!(text.contains("dataserver_leases_held 3"));
    }
}
