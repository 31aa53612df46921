//! Every way a request can fail, mapped to a status and a stable code in one place.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, ResponseError};
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
    #[error("{0}")]
    NotFound(String),
    #[error("request body is larger than {0} bytes")]
    TooLarge(usize),
    #[error("request body must be JSON (Content-Type: application/json)")]
    MediaType,
    #[error("method not allowed on this path")]
    MethodNotAllowed,
    #[error("the bank's data server is unavailable: {0}")]
    Unavailable(String),
}

impl ApiError {
    pub fn invalid(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::Invalid { code, message: message.into() }
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
            ApiError::NotFound(_) => "not_found",
            ApiError::TooLarge(_) => "body_too_large",
            ApiError::MediaType => "unsupported_media_type",
            ApiError::MethodNotAllowed => "method_not_allowed",
            ApiError::Unavailable(_) => "unavailable",
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::Unauthorized | ApiError::InvalidCredentials | ApiError::NoSession => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden => StatusCode::FORBIDDEN,
            ApiError::DocumentTaken(_) | ApiError::BalanceNotZero(_) | ApiError::InFlight => StatusCode::CONFLICT,
            ApiError::JointHolderMissing(_) | ApiError::WrongBank(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Invalid { .. } => StatusCode::BAD_REQUEST,
            ApiError::SameAccount
            | ApiError::Unprocessable { .. }
            | ApiError::InsufficientFunds { .. }
            | ApiError::BalanceOverflow(_)
            | ApiError::IdempotencyKeyReused => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::AccountNotFound(_) | ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Busy(_) => StatusCode::CONFLICT,
            ApiError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::MediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    fn error_response(&self) -> HttpResponse {
        HttpResponse::build(self.status_code()).json(ErrorBody::new(self.code(), self.to_string()))
    }
}

/// A data server failure the ledger did not turn into a domain error: the server is down, or
/// answered something this replica does not expect (a bug) — never the client's fault.
impl From<ClientError> for ApiError {
    fn from(e: ClientError) -> Self {
        ApiError::Unavailable(e.to_string())
    }
}

pub fn json_error(err: actix_web::error::JsonPayloadError, _: &HttpRequest) -> actix_web::Error {
    use actix_web::error::JsonPayloadError as E;
    match err {
        E::OverflowKnownLength { limit, .. } | E::Overflow { limit } => ApiError::TooLarge(limit),
        E::ContentType => ApiError::MediaType,
        E::Deserialize(e) => ApiError::invalid("invalid_body", e.to_string()),
        other => ApiError::invalid("invalid_body", other.to_string()),
    }
    .into()
}

pub fn query_error(err: actix_web::error::QueryPayloadError, _: &HttpRequest) -> actix_web::Error {
    ApiError::invalid("invalid_query", err.to_string()).into()
}

pub fn path_error(err: actix_web::error::PathError, _: &HttpRequest) -> actix_web::Error {
    ApiError::invalid("invalid_path", err.to_string()).into()
}

pub async fn not_found(req: HttpRequest) -> HttpResponse {
    ApiError::NotFound(format!("no route {} {}", req.method(), req.path().chars().take(128).collect::<String>()))
        .error_response()
}

pub async fn method_not_allowed() -> HttpResponse {
    ApiError::MethodNotAllowed.error_response()
}
