//! The one JSON error body every InterBank server returns for every failure, and the closed set
//! of codes of the business API.
//!
//! A code is a closed enum shared by the server that sends it and every client that reads it:
//! a misspelt code is a compile error, not a branch that silently falls into `_`. On the wire
//! it is its snake_case string; a string outside the set does not parse (a client turns that
//! answer into [`ErrorCode::UnexpectedBody`]).

use serde::{Deserialize, Serialize};

#[doc(hidden)]
pub use serde as __serde;

/// Defines a closed enum of error codes with its wire strings: `as_str`, `FromStr`, `Display`,
/// `ALL`, and serde as the string. Used for each API's codes (`shared::ErrorCode`,
/// `dataserver_api::ErrorCode`).
#[macro_export]
macro_rules! error_codes {
    ($(#[$m:meta])* $vis:vis enum $name:ident { $($(#[$vm:meta])* $variant:ident = $s:literal,)* }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        $vis enum $name { $($(#[$vm])* $variant,)* }

        impl $name {
            /// Every code, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant,)*];

            /// The code as it travels: stable snake_case.
            pub const fn as_str(self) -> &'static str {
                match self { $($name::$variant => $s,)* }
            }
        }

        impl ::core::str::FromStr for $name {
            type Err = $crate::error::UnknownCode;
            fn from_str(s: &str) -> ::core::result::Result<Self, Self::Err> {
                match s {
                    $($s => Ok($name::$variant),)*
                    _ => Err($crate::error::UnknownCode),
                }
            }
        }

        impl ::core::fmt::Display for $name {
            fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                f.pad(self.as_str())
            }
        }

        impl $crate::error::__serde::Serialize for $name {
            fn serialize<S: $crate::error::__serde::Serializer>(&self, s: S) -> ::core::result::Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> $crate::error::__serde::Deserialize<'de> for $name {
            fn deserialize<D: $crate::error::__serde::Deserializer<'de>>(d: D) -> ::core::result::Result<Self, D::Error> {
                let s = <::std::borrow::Cow<'de, str> as $crate::error::__serde::Deserialize>::deserialize(d)?;
                s.parse().map_err(|_| <D::Error as $crate::error::__serde::de::Error>::custom(format!("unknown error code {s:?}")))
            }
        }
    };
}

/// A string that is not one of the enum's codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("not a known error code")]
pub struct UnknownCode;

error_codes! {
    /// Every code the business API (customers, operators and peer banks) answers with.
    pub enum ErrorCode {
        Unauthorized = "unauthorized",
        Forbidden = "forbidden",
        InvalidCredentials = "invalid_credentials",
        RateLimited = "rate_limited",
        NotFound = "not_found",
        MethodNotAllowed = "method_not_allowed",
        BodyTooLarge = "body_too_large",
        UnsupportedMediaType = "unsupported_media_type",
        InvalidBody = "invalid_body",
        InvalidQuery = "invalid_query",
        InvalidPath = "invalid_path",
        // Parsed values (shared's parsers).
        AmountInvalid = "amount_invalid",
        AmountNegative = "amount_negative",
        AmountTooPrecise = "amount_too_precise",
        AmountTooLarge = "amount_too_large",
        AmountZero = "amount_zero",
        BankIdInvalid = "bank_id_invalid",
        AccountIdInvalid = "account_id_invalid",
        BusinessIdInvalid = "business_id_invalid",
        IbkInvalid = "ibk_invalid",
        DocumentInvalid = "document_invalid",
        DocumentCheckDigits = "document_check_digits",
        PixKeyInvalid = "pix_key_invalid",
        // Request fields.
        AfterInvalid = "after_invalid",
        BatchTooLarge = "batch_too_large",
        DocumentsInvalid = "documents_invalid",
        IdempotencyKeyInvalid = "idempotency_key_invalid",
        LimitInvalid = "limit_invalid",
        MemoTooLarge = "memo_too_large",
        NameInvalid = "name_invalid",
        PasswordInvalid = "password_invalid",
        OperationsInvalid = "operations_invalid",
        PackageIdInvalid = "package_id_invalid",
        TokenRequired = "token_required",
        TxnInvalid = "txn_invalid",
        // Accounts and money.
        AccountNotFound = "account_not_found",
        SameAccount = "same_account",
        InsufficientFunds = "insufficient_funds",
        BalanceOverflow = "balance_overflow",
        BalanceNotZero = "balance_not_zero",
        AccountBusy = "account_busy",
        OperationInFlight = "operation_in_flight",
        IdempotencyKeyReused = "idempotency_key_reused",
        DocumentAlreadyHasAccount = "document_already_has_account",
        JointHolderMissing = "joint_holder_missing",
        AccountPendingHolders = "account_pending_holders",
        JointAccountsLimit = "joint_accounts_limit",
        NotAPendingHolder = "not_a_pending_holder",
        DepositsDisabled = "deposits_disabled",
        DepositLimit = "deposit_limit",
        // Consents for debits coordinated by another bank.
        ConsentNotFound = "consent_not_found",
        ConsentInvalid = "consent_invalid",
        ConsentLimit = "consent_limit",
        ConsentMissing = "consent_missing",
        ConsentExpired = "consent_expired",
        ConsentExceeded = "consent_exceeded",
        /// A package that could not settle before its deadline (a bank did not answer).
        PackageDeadline = "package_deadline",
        /// A package attempt ended without a decision to commit (the token moved on, no vote).
        PackageAborted = "package_aborted",
        SessionRequired = "session_required",
        WrongBank = "wrong_bank",
        PackageNotFound = "package_not_found",
        /// The author has the most cross-bank packages waiting that one account may (`429`).
        PackagesPending = "packages_pending",
        /// The bank's settlement queue is full (`503`): try again after `Retry-After`.
        SettlementBusy = "settlement_busy",
        // Pix keys.
        KeyTaken = "key_taken",
        KeyNotFound = "key_not_found",
        KeyMissing = "key_missing",
        KeyNotAllowed = "key_not_allowed",
        KeyBankMismatch = "key_bank_mismatch",
        KeyDocumentMismatch = "key_document_mismatch",
        KeyLimit = "key_limit",
        // Between banks.
        UnknownBank = "unknown_bank",
        StaleEpoch = "stale_epoch",
        StaleToken = "stale_token",
        /// A token passed past a bank that holds one of its epoch or has seen it (`409`).
        TokenOutOfTurn = "token_out_of_turn",
        /// A token whose epoch no bank of the network could have made (`400`).
        TokenInvalid = "token_invalid",
        /// A prepared package's deadline further ahead than any bank may set (`400`).
        DeadlineInvalid = "deadline_invalid",
        CoordinatorMismatch = "coordinator_mismatch",
        Unavailable = "unavailable",
        /// Never sent by a server: a client's name for a request that got no answer.
        Transport = "transport",
        /// Never sent by a server: a client's name for an answer that was not the error body.
        UnexpectedBody = "unexpected_body",
    }
}

/// `{ "error": "<stable_code>", "message": "..." }`.
///
/// `error` is a stable, machine-readable snake_case code from the API's closed set `C` (clients
/// branch on it); `message` is for people and may change wording at any time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(bound(serialize = "C: Serialize", deserialize = "C: Deserialize<'de>"))]
pub struct ErrorBody<C = ErrorCode> {
    pub error: C,
    pub message: String,
    /// On `invalid_credentials`: the failed logins still allowed before a lockout (`0`: the
    /// next attempt is refused with `rate_limited`), so an app can warn before it happens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempts_left: Option<u32>,
    /// On `insufficient_funds` and `balance_not_zero`: what the account holds, so an app can
    /// say it in its own words and number format rather than quote `message`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub balance: Option<crate::Money>,
    /// On `insufficient_funds`: the amount that was asked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amount: Option<crate::Money>,
    /// On the data server's `count_reached`: the key prefix whose records met the bound (empty:
    /// the whole collection), so a writer with several bounds in one commit knows which was met
    /// without reading them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
}

impl<C> ErrorBody<C> {
    pub fn new(error: C, message: impl Into<String>) -> Self {
        Self { error, message: message.into(), attempts_left: None, balance: None, amount: None, prefix: None }
    }
}

impl<C: std::fmt::Display> std::fmt::Display for ErrorBody<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.error, self.message)
    }
}

#[cfg(feature = "openapi")]
mod openapi {
    use utoipa::openapi::RefOr;
    use utoipa::openapi::schema::{ObjectBuilder, Schema, SchemaType, Type};
    use utoipa::{PartialSchema, ToSchema};

    impl PartialSchema for super::ErrorBody {
        fn schema() -> RefOr<Schema> {
            let code = ObjectBuilder::new()
                .schema_type(SchemaType::Type(Type::String))
                .enum_values(Some(super::ErrorCode::ALL.iter().map(|c| c.as_str())))
                .description(Some("stable machine-readable code"));
            let message = ObjectBuilder::new().schema_type(SchemaType::Type(Type::String));
            let attempts = ObjectBuilder::new()
                .schema_type(SchemaType::Type(Type::Integer))
                .description(Some("invalid_credentials: failed logins left before a lockout"));
            let money =
                |d: &'static str| ObjectBuilder::new().schema_type(SchemaType::Type(Type::String)).description(Some(d));
            RefOr::T(Schema::Object(
                ObjectBuilder::new()
                    .property("error", code)
                    .property("message", message)
                    .property("attempts_left", attempts)
                    .property("balance", money("insufficient_funds, balance_not_zero: what the account holds"))
                    .property("amount", money("insufficient_funds: the amount asked"))
                    .required("error")
                    .required("message")
                    .build(),
            ))
        }
    }
    impl ToSchema for super::ErrorBody {
        fn name() -> std::borrow::Cow<'static, str> {
            std::borrow::Cow::Borrowed("ErrorBody")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_snake_case_and_round_trip() {
        let mut seen = std::collections::HashSet::new();
        for c in ErrorCode::ALL {
            let s = c.as_str();
            assert!(s.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'), "{s}");
            assert!(seen.insert(s), "{s} twice");
            assert_eq!(s.parse::<ErrorCode>(), Ok(*c));
            let json = serde_json::to_string(c).expect("serialises");
            assert_eq!(serde_json::from_str::<ErrorCode>(&json).expect("parses"), *c);
        }
        assert!(serde_json::from_str::<ErrorCode>("\"no_such_code\"").is_err());
        let body: ErrorBody = serde_json::from_str(r#"{"error":"insufficient_funds","message":"m"}"#).expect("body");
        assert_eq!(body.error, ErrorCode::InsufficientFunds);
        assert_eq!((body.attempts_left, body.balance, body.amount, body.prefix), (None, None, None, None));
        let plain = serde_json::to_string(&ErrorBody::new(ErrorCode::NotFound, "m")).expect("serialises");
        assert_eq!(plain, r#"{"error":"not_found","message":"m"}"#, "details only when they apply");
    }
}
