//! The operator tool's library: the `interbank` binary (src/main.rs) is a thin command line
//! over these modules. Processes are started through the one harness (`harness`).

pub mod bench;
pub mod check;
pub mod driver;
pub mod error;
pub mod lean_http;
pub mod load;
pub mod reliability;
pub mod report;
pub mod security;
pub mod seed;
pub mod up;

pub use error::{Error, Result};
