//! Seed 004's lock API: getLock / unLock / setAmount / getAmount, over the same lock table
//! and commits as the batch API.

use actix_web::{HttpRequest, HttpResponse, web};
use dataserver_api::ErrorCode;
use serde::Deserialize;
use shared::{AccountId, BusinessId, Money};

use super::auth::Caller;
use super::error::ApiError;
use crate::AppState;
use crate::locks::LockError;
use dataserver_api::{
    AcquireRequest, AmountBody, CommitRequest, LockGrant, LockRef, SetAmount, SetAmountBody, TokenBody,
};

use super::Result;
use super::batch::{acquire, commit};

// ---- seed 004 routes -------------------------------------------------------------------------

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LockQuery {
    lease_ms: Option<u64>,
    wait_ms: Option<u64>,
    request_id: Option<String>,
}

pub async fn get_lock(
    caller: Caller,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    q: web::Query<LockQuery>,
) -> Result<HttpResponse> {
    let business = caller.owns(&path.0)?;
    let account = path.1.parse::<AccountId>()?;
    let q = q.into_inner();
    let req = AcquireRequest {
        accounts: vec![account],
        lease_ms: q.lease_ms,
        wait_ms: q.wait_ms,
        request_id: q.request_id,
        read: vec![],
    };
    let resp = acquire(&state, business, req).await?;
    let token = resp.locks.first().map_or(0, |l| l.token);
    Ok(HttpResponse::Ok().json(LockGrant { token, lease_ms: resp.lease_ms }))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenQuery {
    token: Option<u64>,
    tx_id: Option<String>,
}

/// A token from `?token=` or from a JSON body `{ "token": N }`.
pub(crate) fn token_from(q: &TokenQuery, body: &[u8]) -> Result<u64> {
    if let Some(t) = q.token {
        return Ok(t);
    }
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::invalid(
            ErrorCode::TokenRequired,
            "send the lock's token as ?token=N or in the body as {\"token\": N}",
        ));
    }
    serde_json::from_slice::<TokenBody>(body)
        .map(|b| b.token)
        .map_err(|e| ApiError::invalid(ErrorCode::InvalidBody, e.to_string()))
}

pub async fn un_lock(
    caller: Caller,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    q: web::Query<TokenQuery>,
    body: web::Bytes,
) -> Result<HttpResponse> {
    let business = caller.owns(&path.0)?;
    let account = path.1.parse::<AccountId>()?;
    let token = token_from(&q, &body)?;
    state.locks.release(business, LockRef { account, token })?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "released": 1 })))
}

pub(crate) fn tx_id_for(req: &HttpRequest, explicit: Option<String>) -> String {
    explicit
        .or_else(|| req.headers().get("idempotency-key").and_then(|v| v.to_str().ok()).map(str::to_string))
        .unwrap_or_else(dataserver_api::fresh_tx_id)
}

pub(crate) async fn set_amount_common(
    state: &AppState,
    business: BusinessId,
    account: AccountId,
    amount: Money,
    token: u64,
    tx_id: String,
) -> Result<HttpResponse> {
    let mut req = CommitRequest::new(tx_id);
    req.locks.push(LockRef { account, token });
    req.set.push(SetAmount { account, amount });
    req.release = false; // seed semantics: setAmount, then unLock
    Ok(HttpResponse::Ok().json(commit(state, business, req).await?))
}

pub async fn set_amount(
    caller: Caller,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    http: HttpRequest,
    body: web::Json<SetAmountBody>,
) -> Result<HttpResponse> {
    let business = caller.owns(&path.0)?;
    let account = path.1.parse::<AccountId>()?;
    let body = body.into_inner();
    let tx_id = tx_id_for(&http, body.tx_id);
    set_amount_common(&state, business, account, body.amount, body.token, tx_id).await
}

pub async fn set_amount_path(
    caller: Caller,
    state: web::Data<AppState>,
    path: web::Path<(String, String, String)>,
    q: web::Query<TokenQuery>,
    http: HttpRequest,
) -> Result<HttpResponse> {
    let business = caller.owns(&path.0)?;
    let account = path.1.parse::<AccountId>()?;
    let amount: Money =
        path.2.parse().map_err(|e: shared::MoneyError| ApiError::invalid(ErrorCode::from(e), e.to_string()))?;
    let q = q.into_inner();
    let token =
        q.token.ok_or_else(|| ApiError::invalid(ErrorCode::TokenRequired, "send the lock's token as ?token=N"))?;
    let tx_id = tx_id_for(&http, q.tx_id);
    set_amount_common(&state, business, account, amount, token, tx_id).await
}

pub async fn get_amount(
    caller: Caller,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse> {
    let business = caller.owns(&path.0)?;
    let account = path.1.parse::<AccountId>()?;
    if state.locks.locked_by_other(business, account) {
        return Err(LockError::Locked(account).into());
    }
    posted(&state, account)
}

pub(crate) fn posted(state: &AppState, account: AccountId) -> Result<HttpResponse> {
    let amount = state.amounts.read().get(&account).copied();
    match amount {
        Some(amount) => Ok(HttpResponse::Ok().json(AmountBody { amount })),
        None => Err(ApiError::NotFound(format!("account {account} has never been written"))),
    }
}
