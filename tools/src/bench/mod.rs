//! Benchmarks that print figures (never timed tests): the data server alone, transfers through
//! business replicas, and interbank packages.

pub mod dataserver;
pub mod flood;
pub mod packages;
pub mod transfer;

/// A value of a Prometheus text exposition (0 when absent).
pub(crate) fn metric(text: &str, name: &str) -> f64 {
    text.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok()).unwrap_or(0.0)
}
