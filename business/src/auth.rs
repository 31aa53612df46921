//! Who is calling. The operator (teller) API takes the bank's operator key.

use std::future::{Ready, ready};

use actix_web::dev::Payload;
use actix_web::http::header::HeaderMap;
use actix_web::{FromRequest, HttpRequest, web};
use sha2::{Digest, Sha256};

use crate::AppState;
use crate::error::ApiError;
use crate::model::AccountRecord;

/// A credential from `Authorization: Bearer KEY` or the seed's `auth: KEY`.
pub fn presented_key(headers: &HeaderMap) -> Option<&str> {
    if let Some(v) = headers.get("authorization").and_then(|v| v.to_str().ok()) {
        return v.strip_prefix("Bearer ");
    }
    headers.get("auth").and_then(|v| v.to_str().ok())
}

pub fn digest(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

/// Proof that the caller holds the operator key.
#[derive(Debug, Clone, Copy)]
pub struct Operator;

impl FromRequest for Operator {
    type Error = ApiError;
    type Future = Ready<Result<Operator, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        // Compared as SHA-256 digests: equal-length inputs, so the comparison's timing says
        // nothing about how much of a guess was right.
        let ok = req
            .app_data::<web::Data<AppState>>()
            .zip(presented_key(req.headers()))
            .is_some_and(|(state, k)| digest(k) == state.operator_key_digest);
        ready(if ok { Ok(Operator) } else { Err(ApiError::Unauthorized) })
    }
}

/// A customer with a live session (`Authorization: Bearer TOKEN`): the account record the
/// session was opened on. Which accounts it may act on is the accounts service's rule.
#[derive(Debug, Clone)]
pub struct Customer(pub AccountRecord);

impl FromRequest for Customer {
    type Error = ApiError;
    type Future = futures::future::LocalBoxFuture<'static, Result<Customer, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let state = req.app_data::<web::Data<AppState>>().cloned();
        let token = presented_key(req.headers()).map(str::to_owned);
        Box::pin(async move {
            let (Some(state), Some(token)) = (state, token) else { return Err(ApiError::NoSession) };
            Ok(Customer(state.accounts.session(&token).await?))
        })
    }
}

impl Customer {
    /// The session's customer and account `id` of this bank, if the customer may act on it.
    pub async fn with_account(
        state: &AppState,
        req: &HttpRequest,
        id: shared::AccountId,
    ) -> Result<(AccountRecord, AccountRecord), ApiError> {
        let me = Customer::extract(req).await?.0;
        let target = state.accounts.accessible(&me, id).await?;
        Ok((me, target))
    }
}

/// The request's `Idempotency-Key`, if it has one.
pub fn idempotency_key(req: &HttpRequest) -> Option<&str> {
    req.headers().get("idempotency-key").and_then(|v| v.to_str().ok())
}

/// The bank a mutual-TLS connection belongs to, by its client certificate (set when the
/// connection is accepted; absent on the customer listener and for unknown certificates).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerBank(pub shared::BankId);

/// A peer bank, authenticated by the certificate of its TLS connection. The bank it names in
/// `X-Interbank-Bank` must be that certificate's: a member can only ever speak as itself.
/// Customers' and operators' credentials never pass here.
#[derive(Debug, Clone, Copy)]
pub struct Peer(pub shared::BankId);

impl FromRequest for Peer {
    type Error = ApiError;
    type Future = Ready<Result<Peer, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let found = (|| {
            let proven = req.conn_data::<PeerBank>()?.0;
            let claimed: shared::BankId =
                req.headers().get(crate::interbank::BANK_HEADER)?.to_str().ok()?.parse().ok()?;
            (claimed == proven).then_some(Peer(proven))
        })();
        ready(found.ok_or(ApiError::PeerUnauthorized))
    }
}
