//! Prometheus text metrics of a business replica (the data server's counters and histograms).

use std::sync::atomic::AtomicU64;

use dataserver::metrics::{Histogram, LATENCY_US_BOUNDS, render_counters};

#[derive(Debug)]
pub struct Metrics {
    pub requests_total: AtomicU64,
    pub responses_4xx_total: AtomicU64,
    pub responses_5xx_total: AtomicU64,
    pub operations_total: AtomicU64,
    pub operation_retries_total: AtomicU64,
    pub request_us: Histogram,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            requests_total: AtomicU64::new(0),
            responses_4xx_total: AtomicU64::new(0),
            responses_5xx_total: AtomicU64::new(0),
            operations_total: AtomicU64::new(0),
            operation_retries_total: AtomicU64::new(0),
            request_us: Histogram::new(LATENCY_US_BOUNDS),
        }
    }
}

impl Metrics {
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(2048);
        let counters: [(&str, &str, &AtomicU64); 5] = [
            ("business_requests_total", "HTTP requests served", &self.requests_total),
            ("business_responses_4xx_total", "HTTP responses with a 4xx status", &self.responses_4xx_total),
            ("business_responses_5xx_total", "HTTP responses with a 5xx status", &self.responses_5xx_total),
            ("business_operations_total", "deposits, withdrawals and transfers applied", &self.operations_total),
            (
                "business_operation_retries_total",
                "attempts repeated after a lost lease or no answer",
                &self.operation_retries_total,
            ),
        ];
        render_counters(&mut out, &counters);
        self.request_us.render(&mut out, "business_request_seconds", "time to answer a request", 1_000_000);
        out
    }
}
