//! Why an `interbank` command failed: one enum for the tool, printed by `main` as one line.

use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// What the operator asked for cannot be done as asked (flags, config, CSV, mix).
    #[error("{0}")]
    Usage(String),
    /// A file could not be read or written.
    #[error("{}: {why}", path.display())]
    File { path: PathBuf, why: String },
    /// The network's processes could not be started or reached.
    #[error(transparent)]
    Network(#[from] harness::Error),
    /// A business server refused a request or did not answer.
    #[error(transparent)]
    Call(#[from] harness::client::CallError),
    /// A data server refused a request or did not answer.
    #[error("data server: {0}")]
    DataServer(#[from] dataserver_api::client::ClientError),
    /// A load connection failed.
    #[error("load: {0}")]
    Load(#[from] crate::lean_http::CallError),
    /// A measurement or scenario could not be carried out as planned.
    #[error("{0}")]
    Run(String),
    /// A file, socket or process of this machine failed.
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    /// A request got no usable answer.
    #[error("http: {0}")]
    Http(#[from] reqwest::Error),
    /// An answer or a file did not parse.
    #[error("json: {0}")]
    Json(#[from] serde_json::Error),
    /// The checker or a scenario found violations (each printed before).
    #[error("{0} violations")]
    Violations(usize),
}

impl Error {
    pub fn file(path: &Path, why: impl std::fmt::Display) -> Error {
        Error::File { path: path.to_path_buf(), why: why.to_string() }
    }

    pub fn usage(why: impl Into<String>) -> Error {
        Error::Usage(why.into())
    }

    pub fn run(why: impl Into<String>) -> Error {
        Error::Run(why.into())
    }
}

/// Errors of other crates that fall into one variant by their message.
macro_rules! from_as {
    ($variant:ident: $($t:ty),*) => {$(
        impl From<$t> for Error {
            fn from(e: $t) -> Self {
                Error::$variant(e.to_string())
            }
        }
    )*};
}
// A value the operator gave that does not parse (an amount, an id).
from_as!(Usage: shared::MoneyError, shared::IdError);
// The figures' histograms: bounds fixed in the code, values from the run.
from_as!(Run: hdrhistogram::CreationError, hdrhistogram::AdditionError, hdrhistogram::RecordError);

impl From<tokio::task::JoinError> for Error {
    fn from(e: tokio::task::JoinError) -> Self {
        Error::Run(format!("a task of the run failed: {e}"))
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
