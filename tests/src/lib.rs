//! The InterBank operator tool's library: benchmarks and the harness that starts real processes.
//! The `interbank` binary (src/main.rs) is a thin command line over it.

pub mod bench_dataserver;
pub mod bench_packages;
pub mod bench_transfer;
pub mod check;
pub mod client;
pub mod cluster;
pub mod lean_http;
pub mod load;
pub mod procs;
pub mod proxy;
pub mod reliability;
pub mod security;
pub mod tool;
pub mod up;
