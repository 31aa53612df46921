//! The one JSON error body every InterBank server returns for every failure.

use serde::{Deserialize, Serialize};

/// `{ "error": "<stable_code>", "message": "..." }`.
///
/// `error` is a stable, machine-readable snake_case code (clients branch on it);
/// `message` is for people and may change wording at any time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorBody {
    pub error: String,
    pub message: String,
}

impl ErrorBody {
    pub fn new(error: impl Into<String>, message: impl Into<String>) -> Self {
        Self { error: error.into(), message: message.into() }
    }
}

impl std::fmt::Display for ErrorBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.error, self.message)
    }
}
