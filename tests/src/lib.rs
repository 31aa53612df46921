//! The one harness of every test and of the operator tool: real processes on 127.0.0.1.
//!
//! - [`process`]: start one of our binaries, wait for its "listening on" line, kill it.
//! - [`cluster`]: a network of banks (data server + replicas each) joined by a network file.
//! - [`proxy`]: a TCP proxy that passes, delays, drops or black-holes a bank's peer traffic.
//! - [`postgres`]: a private PostgreSQL cluster (the data server's database backend).
//! - [`client`]: typed customer and operator clients of the business API.

pub mod client;
pub mod cluster;
mod error;
pub mod postgres;
pub mod process;
pub mod proxy;

pub use error::Error;

/// Every `.rs` file under `dir`, for tests that check the sources themselves (tidy tests).
pub fn rust_files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(d) = dirs.pop() {
        for entry in std::fs::read_dir(&d).unwrap_or_else(|e| panic!("{}: {e}", d.display())) {
            let path = entry.unwrap_or_else(|e| panic!("{}: {e}", d.display())).path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}
