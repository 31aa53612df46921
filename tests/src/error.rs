//! Why the harness could not start or reach a network of processes.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// One of our binaries is not built beside the running program.
    #[error(
        "the `{0}` binary is not built next to this program; run `cargo build --workspace --bins` (or with --release) first"
    )]
    NoBinary(String),
    /// A process could not be started, or did not say where it listens.
    #[error("{what}: {source}")]
    Start { what: String, source: std::io::Error },
    /// A process started, but not as planned (another address, an unexpected first line).
    #[error("{0}")]
    Unexpected(String),
    /// No port is free for a process to bind.
    #[error("no free port in {low}..{high} after {tries} tries")]
    NoPort { low: u16, high: u16, tries: u32 },
    /// The network's settings cannot be used as given (ports, ids).
    #[error("{0}")]
    Spec(String),
    /// The network did not answer in time.
    #[error("the network is not ready after {within_ms} ms: {missing}")]
    NotReady { within_ms: u128, missing: String },
    /// A file of the network could not be read, written or parsed.
    #[error("{}: {why}", path.display())]
    File { path: PathBuf, why: String },
}

impl Error {
    pub(crate) fn file(path: &std::path::Path, why: impl std::fmt::Display) -> Error {
        Error::File { path: path.to_path_buf(), why: why.to_string() }
    }
}
