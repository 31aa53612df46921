//! Every way a request can fail, mapped to a status and the JSON error body in one place,
//! and the extractors' failures (bad JSON, query or path; unknown route; wrong method) as the same body.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, ResponseError};
use dataserver_api::{ErrorBody, ErrorCode};
use shared::BusinessId;

use crate::locks::LockError;
use crate::store::StoreError;
use crate::writer::CommitError;

/// Every way a request can fail. The status and the stable code of each live in
/// [`ApiError::status`] and [`ApiError::code`], and nowhere else.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("missing or unknown API key (send `Authorization: Bearer KEY` or `auth: KEY`)")]
    Unauthorized,
    #[error("this API key belongs to business {key}, not to business {path}")]
    WrongBusiness { key: BusinessId, path: String },
    #[error("{message}")]
    Invalid { code: ErrorCode, message: String },
    #[error("{message}")]
    Unprocessable { code: ErrorCode, message: String },
    #[error("{0}")]
    NotFound(String),
    #[error(transparent)]
    Lock(#[from] LockError),
    #[error(transparent)]
    Commit(CommitError),
    #[error("request body is larger than {0} bytes")]
    TooLarge(usize),
    #[error("request body must be JSON (Content-Type: application/json)")]
    MediaType,
    #[error("method not allowed on this path")]
    MethodNotAllowed,
    #[error("unavailable: {0}")]
    Unavailable(Unavailable),
    /// A standby: it serves nothing until it holds the leader lease.
    #[error("this data server is a standby; the leader is {}", .0.as_deref().unwrap_or("not known yet"))]
    NotLeader(Option<String>),
}

/// Why the data server cannot serve a request now (`503`).
#[derive(Debug, thiserror::Error)]
pub enum Unavailable {
    /// The store failed to read or write.
    #[error("the store failed: {0}")]
    Storage(String),
    /// The writer thread or the blocking pool is gone: the server is shutting down.
    #[error("the data server is shutting down")]
    ShuttingDown,
}

impl ApiError {
    pub(crate) fn invalid(code: ErrorCode, message: impl Into<String>) -> ApiError {
        ApiError::Invalid { code, message: message.into() }
    }

    pub(crate) fn unprocessable(code: ErrorCode, message: impl Into<String>) -> ApiError {
        ApiError::Unprocessable { code, message: message.into() }
    }

    pub fn code(&self) -> ErrorCode {
        match self {
            ApiError::Unauthorized => ErrorCode::Unauthorized,
            ApiError::WrongBusiness { .. } => ErrorCode::Forbidden,
            ApiError::Invalid { code, .. } | ApiError::Unprocessable { code, .. } => *code,
            ApiError::NotFound(_) => ErrorCode::NotFound,
            ApiError::Lock(LockError::Locked(_)) => ErrorCode::Locked,
            ApiError::Lock(LockError::TooManyLocks { .. }) => ErrorCode::TooManyLocks,
            ApiError::Lock(LockError::NotHolder(_)) => ErrorCode::NotHolder,
            ApiError::Lock(LockError::LeaseExpired(_)) => ErrorCode::LeaseExpired,
            ApiError::Lock(LockError::TokensExhausted) => ErrorCode::TokensExhausted,
            ApiError::Commit(CommitError::Lock(e)) => ApiError::Lock(e.clone()).code(),
            ApiError::Commit(CommitError::Condition { .. }) => ErrorCode::ConditionFailed,
            ApiError::Commit(CommitError::Absent { .. }) => ErrorCode::RecordAbsent,
            ApiError::Commit(CommitError::Count { .. }) => ErrorCode::CountReached,
            ApiError::Commit(CommitError::IdempotencyConflict(_)) => ErrorCode::IdempotencyConflict,
            ApiError::Commit(CommitError::Storage(_)) | ApiError::Unavailable(_) => ErrorCode::Unavailable,
            ApiError::TooLarge(_) => ErrorCode::BodyTooLarge,
            ApiError::MediaType => ErrorCode::UnsupportedMediaType,
            ApiError::MethodNotAllowed => ErrorCode::MethodNotAllowed,
            ApiError::NotLeader(_) => ErrorCode::NotLeader,
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::WrongBusiness { .. } => StatusCode::FORBIDDEN,
            ApiError::Invalid { .. } => StatusCode::BAD_REQUEST,
            ApiError::Unprocessable { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Lock(LockError::TooManyLocks { .. }) => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Lock(LockError::TokensExhausted) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Lock(_) => StatusCode::CONFLICT,
            ApiError::Commit(CommitError::Lock(e)) => ApiError::Lock(e.clone()).status_code(),
            ApiError::Commit(
                CommitError::Condition { .. }
                | CommitError::Absent { .. }
                | CommitError::Count { .. }
                | CommitError::IdempotencyConflict(_),
            ) => StatusCode::CONFLICT,
            ApiError::Commit(CommitError::Storage(_)) | ApiError::Unavailable(_) | ApiError::NotLeader(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ApiError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::MediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
        }
    }

    fn error_response(&self) -> HttpResponse {
        HttpResponse::build(self.status_code()).json(self.body())
    }
}

impl ApiError {
    /// The JSON error body, alone or as one commit's refusal among several: a bound met names
    /// its prefix (see [`ErrorBody::prefix`]).
    pub fn body(&self) -> ErrorBody {
        let mut body = ErrorBody::new(self.code(), self.to_string());
        if let ApiError::Commit(CommitError::Count { prefix, .. }) = self {
            body.prefix = Some(prefix.clone());
        }
        body
    }
}

impl From<shared::IdError> for ApiError {
    fn from(e: shared::IdError) -> Self {
        ApiError::invalid(ErrorCode::from(e), e.to_string())
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        ApiError::Unavailable(Unavailable::Storage(e.to_string()))
    }
}

pub async fn not_found(req: HttpRequest) -> HttpResponse {
    ApiError::NotFound(format!("no route {} {}", req.method(), req.path().chars().take(128).collect::<String>()))
        .error_response()
}

/// A standby's answer to everything, naming the leader's address when it knows it.
pub fn not_leader(leader: Option<String>) -> HttpResponse {
    ApiError::NotLeader(leader).error_response()
}

pub async fn method_not_allowed() -> HttpResponse {
    ApiError::MethodNotAllowed.error_response()
}

// ---- extractor errors as JSON (also used by the business servers: one body, one set of codes) --

pub fn json_error(err: actix_web::error::JsonPayloadError, _: &HttpRequest) -> actix_web::Error {
    use actix_web::error::JsonPayloadError as E;
    match err {
        E::OverflowKnownLength { limit, .. } | E::Overflow { limit } => ApiError::TooLarge(limit),
        E::ContentType => ApiError::MediaType,
        E::Deserialize(e) => ApiError::invalid(ErrorCode::InvalidBody, e.to_string()),
        other => ApiError::invalid(ErrorCode::InvalidBody, other.to_string()),
    }
    .into()
}

pub fn query_error(err: actix_web::error::QueryPayloadError, _: &HttpRequest) -> actix_web::Error {
    ApiError::invalid(ErrorCode::InvalidQuery, err.to_string()).into()
}

pub fn path_error(err: actix_web::error::PathError, _: &HttpRequest) -> actix_web::Error {
    ApiError::invalid(ErrorCode::InvalidPath, err.to_string()).into()
}

pub fn payload_error(err: actix_web::error::PayloadError, _: &HttpRequest) -> actix_web::Error {
    match err {
        actix_web::error::PayloadError::Overflow => ApiError::TooLarge(0),
        other => ApiError::invalid(ErrorCode::InvalidBody, other.to_string()),
    }
    .into()
}
