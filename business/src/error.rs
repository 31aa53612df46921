//! Every way a request can fail, mapped to a status and a stable code in one place.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use dataserver::client::ClientError;
use shared::{AccountId, ErrorBody, Money};

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("missing or wrong key (send `Authorization: Bearer KEY` or `auth: KEY`)")]
    Unauthorized,
    #[error("{message}")]
    Invalid { code: &'static str, message: String },
    #[error("{message}")]
    Unprocessable { code: &'static str, message: String },
    #[error("origin and target are the same account")]
    SameAccount,
    #[error("account {0} does not exist or is closed")]
    AccountNotFound(AccountId),
    #[error("account {account} has {balance}, less than {amount}")]
    InsufficientFunds { account: AccountId, balance: Money, amount: Money },
    #[error("account {0} would exceed the largest balance")]
    BalanceOverflow(AccountId),
    #[error("account {0} is busy with other operations; try again")]
    Busy(AccountId),
    #[error("this Idempotency-Key was already used for a different request")]
    IdempotencyKeyReused,
    #[error("document {0} already holds an individual or legal account at this bank")]
    DocumentTaken(String),
    #[error("document {0} holds no account at this bank; every holder of a joint account needs one first")]
    JointHolderMissing(String),
    #[error("wrong IBK or password")]
    InvalidCredentials,
    #[error("missing, unknown or expired session token (send `Authorization: Bearer TOKEN`)")]
    NoSession,
    #[error("this account belongs to another customer")]
    Forbidden,
    #[error("IBK {0} belongs to another bank")]
    WrongBank(shared::Ibk),
    #[error("the account still holds {0}; withdraw or transfer it before closing")]
    BalanceNotZero(Money),
    #[error("an operation on this account is in progress; try again when it ends")]
    InFlight,
    #[error("the bank's data server is unavailable: {0}")]
    Unavailable(String),
    #[error("epoch {epoch} is stale: this bank has seen epoch {current}")]
    StaleEpoch { epoch: u64, current: u64 },
    #[error("this token is older than one this bank already accepted")]
    StaleToken,
    #[error("missing or wrong bank credentials (send `X-Interbank-Bank: ID` and `Authorization: Bearer SECRET`)")]
    PeerUnauthorized,
    #[error("bank {0} is not part of this network")]
    UnknownBank(shared::BankId),
    #[error("this Pix key is already registered")]
    KeyTaken,
    #[error("no such Pix key")]
    KeyNotFound,
    #[error("no such package")]
    PackageNotFound,
    #[error("too many attempts; try again in {retry_after_s} s")]
    RateLimited { retry_after_s: u64 },
}

impl ApiError {
    pub fn invalid(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::Invalid { code, message: message.into() }
    }

    /// Refused by a throttle that frees up in `wait_ms` (rounded up to whole seconds for
    /// `Retry-After`).
    pub fn rate_limited(wait_ms: u64) -> ApiError {
        ApiError::RateLimited { retry_after_s: wait_ms.div_ceil(1000) }
    }

    pub fn invalid_unprocessable(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::Unprocessable { code, message: message.into() }
    }

    pub fn code(&self) -> &'static str {
        match self {
            ApiError::Unauthorized => "unauthorized",
            ApiError::Invalid { code, .. } | ApiError::Unprocessable { code, .. } => code,
            ApiError::SameAccount => "same_account",
            ApiError::AccountNotFound(_) => "account_not_found",
            ApiError::InsufficientFunds { .. } => "insufficient_funds",
            ApiError::BalanceOverflow(_) => "balance_overflow",
            ApiError::Busy(_) => "account_busy",
            ApiError::IdempotencyKeyReused => "idempotency_key_reused",
            ApiError::DocumentTaken(_) => "document_already_has_account",
            ApiError::JointHolderMissing(_) => "joint_holder_missing",
            ApiError::InvalidCredentials => "invalid_credentials",
            ApiError::NoSession => "unauthorized",
            ApiError::Forbidden => "forbidden",
            ApiError::WrongBank(_) => "wrong_bank",
            ApiError::BalanceNotZero(_) => "balance_not_zero",
            ApiError::InFlight => "operation_in_flight",
            ApiError::Unavailable(_) => "unavailable",
            ApiError::StaleEpoch { .. } => "stale_epoch",
            ApiError::StaleToken => "stale_token",
            ApiError::PeerUnauthorized => "unauthorized",
            ApiError::UnknownBank(_) => "unknown_bank",
            ApiError::KeyTaken => "key_taken",
            ApiError::KeyNotFound => "key_not_found",
            ApiError::PackageNotFound => "package_not_found",
            ApiError::RateLimited { .. } => "rate_limited",
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::Unauthorized
            | ApiError::InvalidCredentials
            | ApiError::NoSession
            | ApiError::PeerUnauthorized => StatusCode::UNAUTHORIZED,
            ApiError::StaleEpoch { .. } | ApiError::StaleToken | ApiError::KeyTaken => StatusCode::CONFLICT,
            ApiError::UnknownBank(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::KeyNotFound | ApiError::PackageNotFound => StatusCode::NOT_FOUND,
            ApiError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Forbidden => StatusCode::FORBIDDEN,
            ApiError::DocumentTaken(_) | ApiError::BalanceNotZero(_) | ApiError::InFlight => StatusCode::CONFLICT,
            ApiError::JointHolderMissing(_) | ApiError::WrongBank(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Invalid { .. } => StatusCode::BAD_REQUEST,
            ApiError::SameAccount
            | ApiError::Unprocessable { .. }
            | ApiError::InsufficientFunds { .. }
            | ApiError::BalanceOverflow(_)
            | ApiError::IdempotencyKeyReused => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::AccountNotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Busy(_) => StatusCode::CONFLICT,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let mut r = HttpResponse::build(self.status_code());
        if let ApiError::RateLimited { retry_after_s } = self {
            r.insert_header(("retry-after", retry_after_s.to_string()));
        }
        r.json(ErrorBody::new(self.code(), self.to_string()))
    }
}

/// A data server failure the ledger did not turn into a domain error: the server is down, or
/// answered something this replica does not expect (a bug) — never the client's fault.
impl From<ClientError> for ApiError {
    fn from(e: ClientError) -> Self {
        ApiError::Unavailable(e.to_string())
    }
}

// Extractor failures, unknown routes and wrong methods answer exactly as the data server does.
pub use dataserver::http::{json_error, method_not_allowed, not_found, path_error, query_error};
