//! Prometheus metrics of a business replica, on `prometheus-client`.

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// Latency bucket bounds, in seconds.
const LATENCY_S_BOUNDS: [f64; 10] = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1, 1.0];

/// Batch size bucket bounds, in operations.
const BATCH_SIZE_BOUNDS: [f64; 8] = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0];

/// Round size bucket bounds, in packages.
const ROUND_SIZE_BOUNDS: [f64; 9] = [1.0, 4.0, 16.0, 32.0, 64.0, 128.0, 256.0, 1024.0, 4096.0];

/// Round latency bucket bounds, in seconds.
const ROUND_S_BOUNDS: [f64; 9] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 3.0];

#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    pub requests_total: Counter,
    pub responses_4xx_total: Counter,
    pub responses_5xx_total: Counter,
    pub operations_total: Counter,
    pub operation_retries_total: Counter,
    /// Seconds to answer a request (floating point for reporting only, never for money).
    pub request_seconds: Histogram,
    /// Operations per batch sent to the data server.
    pub batch_operations: Histogram,
    /// Operations a batch handed back to run on their own.
    pub batch_alone_total: Counter,
    /// Operations waiting for a batch.
    pub batch_queued: Gauge,
    /// Event streams open on this replica.
    pub event_streams: Gauge,
    /// Packages waiting for settlement at this bank, as this replica's last round saw them.
    pub settlement_queue: Gauge,
    /// Packages decided per settlement round this replica coordinated.
    pub round_packages: Histogram,
    /// Seconds from a round's scan to its decisions being durable, and its three steps in
    /// turn: the scan and the round's durable start, the prepares (every bank's answer), and
    /// the decisions' commit. Where a round's time goes, without a profiler.
    pub round_seconds: Histogram,
    pub round_start_seconds: Histogram,
    pub round_prepare_seconds: Histogram,
    pub round_decide_seconds: Histogram,
    /// Seconds a replica worked the token before passing it (its rounds, the waits between
    /// them, and an idle hold's wait), and seconds the pass took (recorded, then handed over).
    /// Rounds over holds plus passes is how busy the ring kept settling.
    pub hold_seconds: Histogram,
    pub token_pass_seconds: Histogram,
    /// Packages this replica's rounds decided to commit.
    pub settled_total: Counter,
    /// Decisions a bank acknowledged through a prepare that carried them.
    pub decisions_carried_total: Counter,
    /// Decisions a bank acknowledged through a commit or rollback request of their own.
    pub decisions_sent_total: Counter,
    /// Packages stored on a session this replica had read before, without reading it again.
    pub payments_vouched_total: Counter,
    /// Payments tried on such a session and then made on the session read again.
    pub payments_unverified_total: Counter,
    /// Cross-bank packages refused for a full queue, by where the refusal was decided: one
    /// counter per [`Refused`], in [`Refused::ALL`]'s order, taken from their family once so
    /// that a refusal (most answers under overload) costs an increment, not a lookup.
    settlement_refused_total: [Counter; Refused::ALL.len()],
}

/// Where a package was refused for a full queue (`business_settlement_refused_total{at}`): how
/// much of an overload each step of admission absorbs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(usize)]
pub enum Refused {
    /// Before its session was read: the replica believed the bank's queue full.
    Door,
    /// After its session: the replica believed the author's or the bank's bound met.
    Memory,
    /// After a look at the bank's queue (one read).
    Look,
    /// By a bound of the commit that would have stored it.
    Commit,
}

impl Refused {
    /// Every place, in the order of their discriminants.
    pub const ALL: [Refused; 4] = [Refused::Door, Refused::Memory, Refused::Look, Refused::Commit];

    /// The `at` label.
    pub fn label(self) -> &'static str {
        match self {
            Refused::Door => "door",
            Refused::Memory => "memory",
            Refused::Look => "look",
            Refused::Commit => "commit",
        }
    }
}

// `Metrics::refused` indexes its counters by discriminant: `ALL` must list them in that order.
const _: () = {
    let mut i = 0;
    while i < Refused::ALL.len() {
        assert!(Refused::ALL[i] as usize == i, "Refused::ALL is in discriminant order");
        i += 1;
    }
};

impl Metrics {
    pub fn refused(&self, at: Refused) {
        self.settlement_refused_total[at as usize].inc();
    }
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("business");
        let mut counter = |name: &str, help: &str| {
            let c = Counter::default();
            registry.register(name, help, c.clone());
            c
        };
        let requests_total = counter("requests", "HTTP requests served");
        let responses_4xx_total = counter("responses_4xx", "HTTP responses with a 4xx status");
        let responses_5xx_total = counter("responses_5xx", "HTTP responses with a 5xx status");
        let operations_total = counter("operations", "deposits, withdrawals and transfers applied");
        let operation_retries_total = counter("operation_retries", "attempts repeated after a lost lease or no answer");
        let settled_total = counter("settled", "cross-bank packages this replica's rounds decided to commit");
        let decisions_carried_total =
            counter("decisions_carried", "decisions acknowledged by a bank through the prepare that carried them");
        let decisions_sent_total =
            counter("decisions_sent", "decisions acknowledged by a bank through a commit or rollback of their own");
        let payments_vouched_total =
            counter("payments_vouched", "packages stored on a session read before, checked by their commit");
        let payments_unverified_total =
            counter("payments_unverified", "payments tried on a session read before, then on the session read again");
        let batch_alone_total =
            counter("batch_alone", "operations of a batch run again on their own (the batch could not commit whole)");
        let refused = Family::<[(&'static str, &'static str); 1], Counter>::default();
        let settlement_refused_total = Refused::ALL.map(|at| refused.get_or_create(&[("at", at.label())]).clone());
        registry.register(
            "settlement_refused",
            "cross-bank packages refused for a full queue, by where it was decided",
            refused,
        );
        let request_seconds = Histogram::new(LATENCY_S_BOUNDS);
        registry.register("request_seconds", "time to answer a request", request_seconds.clone());
        let batch_queued = Gauge::default();
        registry.register("batch_queued", "operations waiting for a batch", batch_queued.clone());
        let event_streams = Gauge::default();
        registry.register("event_streams", "Server-Sent Event streams open", event_streams.clone());
        let settlement_queue = Gauge::default();
        registry.register("settlement_queue", "packages waiting for settlement at this bank", settlement_queue.clone());
        let round_packages = Histogram::new(ROUND_SIZE_BOUNDS);
        registry.register("round_packages", "packages decided per settlement round", round_packages.clone());
        let mut histogram = |name: &str, help: &str| {
            let h = Histogram::new(ROUND_S_BOUNDS);
            registry.register(name, help, h.clone());
            h
        };
        let round_seconds = histogram("round_seconds", "time from a round's scan to its durable decisions");
        let round_start_seconds = histogram("round_start_seconds", "time to scan the queue and start a round durably");
        let round_prepare_seconds =
            histogram("round_prepare_seconds", "time from a round's start to every bank's votes");
        let round_decide_seconds = histogram("round_decide_seconds", "time to make a round's decisions durable");
        let hold_seconds = histogram("hold_seconds", "time a replica worked the token before passing it");
        let token_pass_seconds = histogram("token_pass_seconds", "time to pass the token on");
        let batch_operations = Histogram::new(BATCH_SIZE_BOUNDS);
        registry.register("batch_operations", "operations per batch sent to the data server", batch_operations.clone());
        Metrics {
            registry,
            requests_total,
            responses_4xx_total,
            responses_5xx_total,
            operations_total,
            operation_retries_total,
            request_seconds,
            batch_operations,
            batch_alone_total,
            batch_queued,
            event_streams,
            settlement_queue,
            round_packages,
            round_seconds,
            round_start_seconds,
            round_prepare_seconds,
            round_decide_seconds,
            hold_seconds,
            token_pass_seconds,
            settled_total,
            decisions_carried_total,
            decisions_sent_total,
            payments_vouched_total,
            payments_unverified_total,
            settlement_refused_total,
        }
    }
}

impl Metrics {
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(2048);
        encode(&mut out, &self.registry).expect("writing to a String cannot fail");
        out
    }
}
