//! Prometheus metrics of the data server, on `prometheus-client` (the exposition format is the
//! crate's job; recording is one atomic add on the hot path).

use prometheus_client::encoding::text::encode;
use std::collections::BTreeSet;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// Latency bucket bounds, in seconds.
pub const LATENCY_S_BOUNDS: [f64; 10] = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1, 1.0];
const BATCH_SIZE_BOUNDS: [f64; 12] = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0, 4096.0];

/// A duration in seconds, for a histogram. Floating point here is for reporting only: no amount
/// of money ever passes through it.
#[allow(clippy::float_arithmetic, clippy::cast_precision_loss)]
pub fn seconds(d: std::time::Duration) -> f64 {
    d.as_secs_f64()
}

/// A count, for a histogram of sizes (exact below 2^53, far above any batch).
#[allow(clippy::cast_precision_loss)]
pub fn count(n: usize) -> f64 {
    n as f64
}

#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    pub requests_total: Counter,
    pub responses_4xx_total: Counter,
    pub responses_5xx_total: Counter,
    pub lock_grants_total: Counter,
    pub lock_conflicts_total: Counter,
    pub lock_waits_total: Counter,
    pub lock_wait: Histogram,
    pub leases_expired_total: Counter,
    pub commits_total: Counter,
    pub commit_rejects_total: Counter,
    pub commit_replays_total: Counter,
    /// Records put or deleted and amounts set by applied commits: what the durable state
    /// changed, the measure of a protocol's write cost (`bench packages` divides it by what
    /// settled).
    pub record_writes_total: Counter,
    /// The same, by collection (amounts set count under `amounts`): where a protocol's writes
    /// go. Collection names come from the business servers' code, a small fixed set; past
    /// [`COLLECTION_LABELS_MAX`] distinct names the rest count under `other`, so a client
    /// inventing names cannot grow the exposition without bound.
    collection_writes_total: Family<Vec<(String, String)>, Counter>,
    collection_labels: parking_lot::Mutex<BTreeSet<String>>,
    pub commit_batch_size: Histogram,
    pub fsync: Histogram,
    pub checkpoint: Histogram,
    /// Times the writer stopped taking commits until the checkpoint in flight was durable: the
    /// log's new segment reached its bound meanwhile.
    pub checkpoint_waits_total: Counter,
    pub storage_errors_total: Counter,
    leases_held: Gauge,
    lock_waiters: Gauge,
    boot_epoch: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("dataserver");
        let mut counter = |name: &str, help: &str| {
            let c = Counter::default();
            registry.register(name, help, c.clone());
            c
        };
        let requests_total = counter("requests", "HTTP requests served");
        let responses_4xx_total = counter("responses_4xx", "HTTP responses with a 4xx status");
        let responses_5xx_total = counter("responses_5xx", "HTTP responses with a 5xx status");
        let lock_grants_total = counter("lock_grants", "leases granted");
        let lock_conflicts_total = counter("lock_conflicts", "lock requests refused or timed out: held by another");
        let lock_waits_total = counter("lock_waits", "lock requests that waited in a queue before their grant");
        let leases_expired_total = counter("leases_expired", "leases that expired without release");
        let commits_total = counter("commits", "commits applied durably");
        let commit_rejects_total = counter("commit_rejects", "commits refused (fencing, condition, idempotency)");
        let commit_replays_total = counter("commit_replays", "retried commits answered from the stored outcome");
        let record_writes_total = counter("record_writes", "records put or deleted and amounts set by applied commits");
        let storage_errors_total = counter("storage_errors", "durable writes that failed");
        let checkpoint_waits_total = counter(
            "checkpoint_waits",
            "times commits waited for a checkpoint: the log grew past its segment bound while one was written",
        );
        let collection_writes_total = Family::<Vec<(String, String)>, Counter>::default();
        registry.register(
            "collection_writes",
            "records put or deleted by applied commits, by collection (amounts set: `amounts`)",
            collection_writes_total.clone(),
        );
        let mut histogram = |name: &str, help: &str, bounds: &[f64]| {
            let h = Histogram::new(bounds.iter().copied());
            registry.register(name, help, h.clone());
            h
        };
        let lock_wait = histogram("lock_wait_seconds", "time granted lock requests spent queued", &LATENCY_S_BOUNDS);
        let commit_batch_size =
            histogram("commit_batch_size", "commits per durable write (group commit)", &BATCH_SIZE_BOUNDS);
        let fsync = histogram("fsync_seconds", "duration of one durable write of a batch", &LATENCY_S_BOUNDS);
        let checkpoint = histogram("checkpoint_seconds", "duration of one checkpoint", &LATENCY_S_BOUNDS);
        let leases_held = Gauge::default();
        registry.register("leases_held", "leases live or being committed", leases_held.clone());
        let lock_waiters = Gauge::default();
        registry.register("lock_waiters", "lock requests waiting in the accounts' queues", lock_waiters.clone());
        let boot_epoch = Gauge::default();
        registry.register("boot_epoch", "durable boot counter", boot_epoch.clone());
        Metrics {
            registry,
            requests_total,
            responses_4xx_total,
            responses_5xx_total,
            lock_grants_total,
            lock_conflicts_total,
            lock_waits_total,
            lock_wait,
            leases_expired_total,
            commits_total,
            commit_rejects_total,
            commit_replays_total,
            record_writes_total,
            collection_writes_total,
            collection_labels: parking_lot::Mutex::new(BTreeSet::new()),
            commit_batch_size,
            fsync,
            checkpoint,
            checkpoint_waits_total,
            storage_errors_total,
            leases_held,
            lock_waiters,
            boot_epoch,
        }
    }
}

/// How many collections [`Metrics::count_writes`] names before counting the rest as `other`.
pub const COLLECTION_LABELS_MAX: usize = 64;

impl Metrics {
    /// Counts the writes of applied commits (a group commit's at once): `records` names the
    /// collection of each record put or deleted, `amounts` the amounts set.
    pub fn count_writes<'a>(&self, records: impl Iterator<Item = &'a str>, amounts: usize) {
        let mut by: std::collections::BTreeMap<&str, u64> = std::collections::BTreeMap::new();
        let mut total = 0_u64;
        for c in records {
            *by.entry(c).or_default() += 1;
            total += 1;
        }
        if amounts > 0 {
            *by.entry("amounts").or_default() += amounts as u64;
            total += amounts as u64;
        }
        self.record_writes_total.inc_by(total);
        let mut known = self.collection_labels.lock();
        for (c, n) in by {
            let name = if known.contains(c) {
                c
            } else if known.len() < COLLECTION_LABELS_MAX {
                known.insert(c.to_owned());
                c
            } else {
                "other"
            };
            self.collection_writes_total.get_or_create(&vec![("collection".to_owned(), name.to_owned())]).inc_by(n);
        }
    }

    /// The Prometheus text exposition, with the gauges read now.
    pub fn render(&self, leases_held: usize, lock_waiters: usize, boot_epoch: u64) -> String {
        self.leases_held.set(i64::try_from(leases_held).unwrap_or(i64::MAX));
        self.lock_waiters.set(i64::try_from(lock_waiters).unwrap_or(i64::MAX));
        self.boot_epoch.set(i64::try_from(boot_epoch).unwrap_or(i64::MAX));
        let mut out = String::with_capacity(4096);
        encode(&mut out, &self.registry).expect("writing to a String cannot fail");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prometheus_text() {
        let m = Metrics::default();
        m.fsync.observe(0.0003);
        m.fsync.observe(2.0);
        m.commits_total.inc();
        m.count_writes(["queue", "packages", "queue"].into_iter(), 2);
        let text = m.render(3, 1, 2);
        assert!(text.contains("dataserver_record_writes_total 5"), "{text}");
        assert!(text.contains("dataserver_collection_writes_total{collection=\"queue\"} 2"), "{text}");
        assert!(text.contains("dataserver_collection_writes_total{collection=\"amounts\"} 2"), "{text}");
        assert!(text.contains("dataserver_commits_total 1"), "{text}");
        assert!(text.contains("dataserver_fsync_seconds_bucket{le=\"0.0005\"} 1"), "{text}");
        assert!(text.contains("dataserver_fsync_seconds_bucket{le=\"+Inf\"} 2"), "{text}");
        assert!(text.contains("dataserver_fsync_seconds_count 2"), "{text}");
        assert!(text.contains("dataserver_leases_held 3"), "{text}");
        assert!(text.contains("dataserver_lock_waiters 1"), "{text}");
        assert!(text.contains("dataserver_responses_5xx_total 0"), "{text}");
    }
}
