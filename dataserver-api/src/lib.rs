//! All that another process needs of the data server: its wire types ([`wire`], re-exported
//! here), its typed client ([`client::DataClient`]), its closed set of error codes
//! ([`ErrorCode`]) and the clock format its records carry ([`clock`]).
//!
//! Architecture Invariant: business servers and tools depend on this crate, never on
//! `dataserver` itself, so only the data server can touch storage. Guarded by the crate graph
//! (`business/tests/tidy.rs` checks that no manifest but the data server's names it).

pub mod client;
pub mod clock;
mod wire;

pub use wire::*;

shared::error_codes! {
    /// Every code the data server answers with.
    pub enum ErrorCode {
        Unauthorized = "unauthorized",
        Forbidden = "forbidden",
        NotFound = "not_found",
        MethodNotAllowed = "method_not_allowed",
        BodyTooLarge = "body_too_large",
        UnsupportedMediaType = "unsupported_media_type",
        InvalidBody = "invalid_body",
        InvalidQuery = "invalid_query",
        InvalidPath = "invalid_path",
        AccountIdInvalid = "account_id_invalid",
        BusinessIdInvalid = "business_id_invalid",
        AmountInvalid = "amount_invalid",
        AmountNegative = "amount_negative",
        AmountTooPrecise = "amount_too_precise",
        AmountTooLarge = "amount_too_large",
        AmountZero = "amount_zero",
        AfterInvalid = "after_invalid",
        BatchTooLarge = "batch_too_large",
        CollectionInvalid = "collection_invalid",
        DuplicateAccount = "duplicate_account",
        EmptyCommit = "empty_commit",
        KeyInvalid = "key_invalid",
        LeaseInvalid = "lease_invalid",
        LimitInvalid = "limit_invalid",
        LockRequired = "lock_required",
        MemoTooLarge = "memo_too_large",
        RecordTooLarge = "record_too_large",
        RequestIdInvalid = "request_id_invalid",
        TokenRequired = "token_required",
        TxIdInvalid = "tx_id_invalid",
        WaitInvalid = "wait_invalid",
        // Leases.
        Locked = "locked",
        TooManyLocks = "too_many_locks",
        NotHolder = "not_holder",
        LeaseExpired = "lease_expired",
        TokensExhausted = "tokens_exhausted",
        // Commits.
        ConditionFailed = "condition_failed",
        RecordAbsent = "record_absent",
        /// A `fewer` condition found its bound reached.
        CountReached = "count_reached",
        IdempotencyConflict = "idempotency_conflict",
        Unavailable = "unavailable",
        /// A standby data server: it serves nothing until it holds the leader lease. The
        /// message names the leader's address; clients go there.
        NotLeader = "not_leader",
        /// Never sent by the server: the client's name for an answer that was not the error body.
        UnexpectedBody = "unexpected_body",
    }
}

/// The data server's error body: the shared shape with this API's codes.
pub type ErrorBody = shared::ErrorBody<ErrorCode>;

impl From<shared::IdError> for ErrorCode {
    fn from(e: shared::IdError) -> Self {
        match e {
            shared::IdError::Business => ErrorCode::BusinessIdInvalid,
            shared::IdError::Account => ErrorCode::AccountIdInvalid,
            // The data server's paths name businesses and accounts only.
            shared::IdError::Bank | shared::IdError::Ibk => ErrorCode::InvalidPath,
        }
    }
}

impl From<shared::MoneyError> for ErrorCode {
    fn from(e: shared::MoneyError) -> Self {
        match e {
            shared::MoneyError::Invalid => ErrorCode::AmountInvalid,
            shared::MoneyError::Negative => ErrorCode::AmountNegative,
            shared::MoneyError::TooPrecise => ErrorCode::AmountTooPrecise,
            shared::MoneyError::TooLarge => ErrorCode::AmountTooLarge,
            shared::MoneyError::Zero => ErrorCode::AmountZero,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The data server answers a parse failure with the same code as the business API does, so
    /// a code means one thing across the network.
    #[test]
    fn parse_failures_keep_their_shared_code() {
        for e in [shared::IdError::Business, shared::IdError::Account] {
            assert_eq!(ErrorCode::from(e).as_str(), e.code().as_str());
        }
        use shared::MoneyError as M;
        for e in [M::Invalid, M::Negative, M::TooPrecise, M::TooLarge, M::Zero] {
            assert_eq!(ErrorCode::from(e).as_str(), e.code().as_str());
        }
    }
}
