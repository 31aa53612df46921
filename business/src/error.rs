//! Every way a request can fail, mapped to a status and a stable code in one place.

use actix_web::HttpRequest;
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use dataserver_api::client::ClientError;
use shared::{AccountId, ErrorBody, ErrorCode, Money};

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("missing or wrong key (send `Authorization: Bearer KEY` or `auth: KEY`)")]
    Unauthorized,
    #[error("{message}")]
    Invalid { code: ErrorCode, message: String },
    #[error("{message}")]
    Unprocessable { code: ErrorCode, message: String },
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
    #[error("account {0} waits for every holder to confirm it; until then it cannot be debited")]
    PendingHolders(AccountId),
    #[error("{0}")]
    NotPendingHolder(String),
    #[error("deposits by customers are not enabled at this bank")]
    DepositsDisabled,
    #[error("deposits into account {0} reached today's limit")]
    DepositLimit(AccountId),
    #[error("no such consent")]
    ConsentNotFound,
    #[error("opening a joint account needs the session of one of its holders")]
    SessionRequired,
    /// `attempts_left`: what the login throttle still allows (set by the route, which counted).
    #[error("wrong IBK or password")]
    InvalidCredentials { attempts_left: Option<u32> },
    #[error("missing, unknown or expired session token (send `Authorization: Bearer TOKEN`)")]
    NoSession,
    #[error("this account belongs to another customer")]
    Forbidden,
    /// A member bank acting on another bank's settlement.
    #[error("{0}")]
    PeerForbidden(String),
    #[error("IBK {0} belongs to another bank")]
    WrongBank(shared::Ibk),
    #[error("the account still holds {0}; withdraw or transfer it before closing")]
    BalanceNotZero(Money),
    #[error("an operation on this account is in progress; try again when it ends")]
    InFlight,
    #[error("unavailable: {0}")]
    Unavailable(Unavailable),
    #[error("epoch {epoch} is stale: this bank has seen epoch {current}")]
    StaleEpoch { epoch: u64, current: u64 },
    #[error("this token is older than one this bank already accepted")]
    StaleToken,
    #[error("{0}")]
    TokenOutOfTurn(String),
    #[error(
        "not a peer bank: connect with your bank's certificate to the interbank listener and name that bank in `X-Interbank-Bank`"
    )]
    PeerUnauthorized,
    #[error("bank {0} is not part of this network")]
    UnknownBank(shared::BankId),
    #[error("this Pix key is already registered")]
    KeyTaken,
    #[error("no such Pix key")]
    KeyNotFound,
    #[error("no such package")]
    PackageNotFound,
    #[error("this account already has {0} packages waiting for settlement; wait for one to finish")]
    PackagesPending(u64),
    #[error("the bank's settlement queue holds its most packages ({0}); nothing was stored, try again shortly")]
    SettlementBusy(u64),
    #[error("too many attempts; try again in {retry_after_s} s")]
    RateLimited { retry_after_s: u64 },
    #[error("{0}")]
    NoRoute(String),
    #[error("method not allowed on this path")]
    MethodNotAllowed,
    #[error("request body is larger than {0} bytes")]
    TooLarge(usize),
    #[error("request body must be JSON (Content-Type: application/json)")]
    MediaType,
}

/// Why a request cannot be served now (`503`): a closed set, each naming what failed. The
/// client may repeat the request later (with its `Idempotency-Key`, if it has one).
#[derive(Debug, thiserror::Error)]
pub enum Unavailable {
    /// The bank's data server did not answer, or answered what this replica does not expect.
    #[error("the bank's data server: {0}")]
    DataServer(String),
    /// Another bank did not answer.
    #[error("a peer bank: {0}")]
    Peer(String),
    /// Other work holds what this request needs.
    #[error("{0}; try again")]
    Contended(&'static str),
    /// The request may have been applied, but its answer was lost.
    #[error("the outcome is unknown ({0}); repeat the request with the same Idempotency-Key")]
    OutcomeUnknown(String),
    /// A stored record does not parse: the store's fault, never the client's.
    #[error("a stored record is unreadable: {0}")]
    Corrupt(String),
    /// A bank-wide counter or limit is used up.
    #[error("{0}")]
    Exhausted(&'static str),
    /// The replica's worker pool is gone (it is shutting down).
    #[error("the replica is shutting down: {0}")]
    Worker(String),
}

impl Unavailable {
    /// What the caller is told instead of the detail, for the reasons that carry one: the
    /// detail ([`Display`](std::fmt::Display)) names how the bank is built — its data server's
    /// address, the transport's words, record keys — or repeats what another bank said, which a
    /// hostile member could fill with text of its own for our customers to read; it goes to
    /// this replica's log instead ([`ApiError::error_response`]). `None`: the reason's own text
    /// is ours and static, and is told as it is.
    fn instead(&self) -> Option<&'static str> {
        match self {
            Unavailable::DataServer(_) => Some("the bank's records are out of reach; try again"),
            Unavailable::Peer(_) => Some("another bank did not answer; try again"),
            Unavailable::OutcomeUnknown(_) => {
                Some("the outcome is unknown; repeat the request with the same Idempotency-Key")
            }
            Unavailable::Corrupt(_) => Some("a record of this bank could not be read; try again later"),
            Unavailable::Worker(_) => Some("this server is shutting down; try again"),
            Unavailable::Contended(_) | Unavailable::Exhausted(_) => None,
        }
    }
}

impl ApiError {
    /// The message of the answer's body: [`Display`](std::fmt::Display), except where that
    /// holds detail only this bank's operators should see ([`Unavailable::instead`]).
    fn told(&self) -> String {
        if let ApiError::Unavailable(u) = self
            && let Some(said) = u.instead()
        {
            return format!("unavailable: {said}");
        }
        self.to_string()
    }

    pub fn invalid(code: ErrorCode, message: impl Into<String>) -> ApiError {
        ApiError::Invalid { code, message: message.into() }
    }

    /// Refused by a throttle that frees up in `wait_ms` (rounded up to whole seconds for
    /// `Retry-After`).
    pub fn rate_limited(wait_ms: u64) -> ApiError {
        ApiError::RateLimited { retry_after_s: wait_ms.div_ceil(1000) }
    }

    pub fn invalid_unprocessable(code: ErrorCode, message: impl Into<String>) -> ApiError {
        ApiError::Unprocessable { code, message: message.into() }
    }

    pub fn code(&self) -> ErrorCode {
        match self {
            ApiError::Unauthorized => ErrorCode::Unauthorized,
            ApiError::Invalid { code, .. } | ApiError::Unprocessable { code, .. } => *code,
            ApiError::SameAccount => ErrorCode::SameAccount,
            ApiError::AccountNotFound(_) => ErrorCode::AccountNotFound,
            ApiError::InsufficientFunds { .. } => ErrorCode::InsufficientFunds,
            ApiError::BalanceOverflow(_) => ErrorCode::BalanceOverflow,
            ApiError::Busy(_) => ErrorCode::AccountBusy,
            ApiError::IdempotencyKeyReused => ErrorCode::IdempotencyKeyReused,
            ApiError::DocumentTaken(_) => ErrorCode::DocumentAlreadyHasAccount,
            ApiError::JointHolderMissing(_) => ErrorCode::JointHolderMissing,
            ApiError::InvalidCredentials { .. } => ErrorCode::InvalidCredentials,
            ApiError::PendingHolders(_) => ErrorCode::AccountPendingHolders,
            ApiError::NotPendingHolder(_) => ErrorCode::NotAPendingHolder,
            ApiError::DepositsDisabled => ErrorCode::DepositsDisabled,
            ApiError::DepositLimit(_) => ErrorCode::DepositLimit,
            ApiError::ConsentNotFound => ErrorCode::ConsentNotFound,
            ApiError::SessionRequired => ErrorCode::SessionRequired,
            ApiError::NoSession => ErrorCode::Unauthorized,
            ApiError::Forbidden | ApiError::PeerForbidden(_) => ErrorCode::Forbidden,
            ApiError::WrongBank(_) => ErrorCode::WrongBank,
            ApiError::BalanceNotZero(_) => ErrorCode::BalanceNotZero,
            ApiError::InFlight => ErrorCode::OperationInFlight,
            ApiError::Unavailable(_) => ErrorCode::Unavailable,
            ApiError::StaleEpoch { .. } => ErrorCode::StaleEpoch,
            ApiError::StaleToken => ErrorCode::StaleToken,
            ApiError::TokenOutOfTurn(_) => ErrorCode::TokenOutOfTurn,
            ApiError::PeerUnauthorized => ErrorCode::Unauthorized,
            ApiError::UnknownBank(_) => ErrorCode::UnknownBank,
            ApiError::KeyTaken => ErrorCode::KeyTaken,
            ApiError::KeyNotFound => ErrorCode::KeyNotFound,
            ApiError::PackageNotFound => ErrorCode::PackageNotFound,
            ApiError::PackagesPending(_) => ErrorCode::PackagesPending,
            ApiError::SettlementBusy(_) => ErrorCode::SettlementBusy,
            ApiError::RateLimited { .. } => ErrorCode::RateLimited,
            ApiError::NoRoute(_) => ErrorCode::NotFound,
            ApiError::MethodNotAllowed => ErrorCode::MethodNotAllowed,
            ApiError::TooLarge(_) => ErrorCode::BodyTooLarge,
            ApiError::MediaType => ErrorCode::UnsupportedMediaType,
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::Unauthorized
            | ApiError::InvalidCredentials { .. }
            | ApiError::NoSession
            | ApiError::SessionRequired
            | ApiError::PeerUnauthorized => StatusCode::UNAUTHORIZED,
            ApiError::PendingHolders(_) | ApiError::NotPendingHolder(_) => StatusCode::CONFLICT,
            ApiError::DepositsDisabled => StatusCode::FORBIDDEN,
            ApiError::DepositLimit(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::ConsentNotFound => StatusCode::NOT_FOUND,
            ApiError::StaleEpoch { .. } | ApiError::StaleToken | ApiError::TokenOutOfTurn(_) | ApiError::KeyTaken => {
                StatusCode::CONFLICT
            }
            ApiError::UnknownBank(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::KeyNotFound | ApiError::PackageNotFound => StatusCode::NOT_FOUND,
            ApiError::RateLimited { .. } | ApiError::PackagesPending(_) => StatusCode::TOO_MANY_REQUESTS,
            ApiError::SettlementBusy(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Forbidden | ApiError::PeerForbidden(_) => StatusCode::FORBIDDEN,
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
            ApiError::NoRoute(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::MediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let mut r = HttpResponse::build(self.status_code());
        match self {
            ApiError::RateLimited { retry_after_s } => {
                r.insert_header(("retry-after", retry_after_s.to_string()));
            }
            ApiError::PackagesPending(_) | ApiError::SettlementBusy(_) => {
                r.insert_header(("retry-after", crate::config::limits::SETTLEMENT_RETRY_AFTER_S.to_string()));
            }
            _ => {}
        }
        match self {
            ApiError::Unavailable(u @ Unavailable::Corrupt(_)) => tracing::error!(detail = %u, "answered 503"),
            ApiError::Unavailable(u) if u.instead().is_some() => tracing::warn!(detail = %u, "answered 503"),
            _ => {}
        }
        let mut body = ErrorBody::new(self.code(), self.told());
        match *self {
            ApiError::InvalidCredentials { attempts_left } => body.attempts_left = attempts_left,
            ApiError::InsufficientFunds { balance, amount, .. } => {
                (body.balance, body.amount) = (Some(balance), Some(amount))
            }
            ApiError::BalanceNotZero(balance) => body.balance = Some(balance),
            _ => {}
        }
        r.json(body)
    }
}

/// A value that did not parse at the edge: the parser's own code and message.
macro_rules! parse_errors {
    ($($t:ty),*) => {$(
        impl From<$t> for ApiError {
            fn from(e: $t) -> Self {
                ApiError::invalid(e.code(), e.to_string())
            }
        }
    )*};
}
parse_errors!(shared::IdError, shared::MoneyError, shared::DocumentError, shared::pix::KeyError);

/// A data server failure the ledger did not turn into a domain error: the server is down, or
/// answered something this replica does not expect (a bug) — never the client's fault.
impl From<ClientError> for ApiError {
    fn from(e: ClientError) -> Self {
        ApiError::Unavailable(Unavailable::DataServer(e.to_string()))
    }
}

// Extractor failures, unknown routes and wrong methods: the same JSON body and codes as every
// other failure.

pub fn json_error(err: actix_web::error::JsonPayloadError, _: &HttpRequest) -> actix_web::Error {
    use actix_web::error::JsonPayloadError as E;
    match err {
        E::OverflowKnownLength { limit, .. } | E::Overflow { limit } => ApiError::TooLarge(limit),
        E::ContentType => ApiError::MediaType,
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

pub async fn not_found(req: HttpRequest) -> HttpResponse {
    ApiError::NoRoute(format!("no route {} {}", req.method(), req.path().chars().take(128).collect::<String>()))
        .error_response()
}

pub async fn method_not_allowed() -> HttpResponse {
    ApiError::MethodNotAllowed.error_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn body_of(e: ApiError) -> ErrorBody {
        let bytes = actix_web::body::to_bytes(e.error_response().into_body()).await.unwrap();
        serde_json::from_slice(&bytes).unwrap()
    }

    /// A member bank's 503 carries any text it likes; repeated to our customer, it would read
    /// as this bank's own words (a phone number to call, a link to follow).
    #[actix_web::test]
    async fn a_peers_words_do_not_reach_the_customer() {
        let said = "PeerError: bank 2 answered: URGENT call +55 11 0000-0000 to unblock your account";
        for e in [
            ApiError::Unavailable(Unavailable::Peer(said.into())),
            ApiError::Unavailable(Unavailable::OutcomeUnknown(said.into())),
        ] {
            let body = body_of(e).await;
            assert_eq!(body.error, ErrorCode::Unavailable);
            assert!(!body.message.contains("URGENT"), "{}", body.message);
        }
    }

    #[actix_web::test]
    async fn how_the_bank_is_built_stays_in_its_log() {
        let detail = "transport: error sending request for url (http://10.0.0.7:27180/v1/11/locks)";
        for e in [
            ApiError::from(ClientError::Shared(detail.into())),
            ApiError::Unavailable(Unavailable::Corrupt(format!("settling x.1 would break account 7: {detail}"))),
            ApiError::Unavailable(Unavailable::Worker(detail.into())),
        ] {
            let body = body_of(e).await;
            assert!(!body.message.contains("10.0.0.7") && !body.message.contains("/v1/"), "{}", body.message);
        }
        // What the caller can act on stays.
        let body = body_of(ApiError::Unavailable(Unavailable::Contended("the ring state keeps changing"))).await;
        assert_eq!(body.message, "unavailable: the ring state keeps changing; try again");
    }
}
