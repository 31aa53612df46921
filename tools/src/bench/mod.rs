//! Benchmarks that print figures (never timed tests): the data server alone, transfers through
//! business replicas, and interbank packages.

pub mod dataserver;
pub mod flood;
pub mod packages;
pub mod transfer;
