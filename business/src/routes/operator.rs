//! Seed 004's operator (teller) API, answering only once the operation is durable.

use actix_web::{HttpRequest, HttpResponse, web};
use shared::api::AccountBalance;
use shared::{Amount, ErrorCode};

use super::resource;
use crate::AppState;
use crate::auth::Operator;
use crate::error::ApiError;
use crate::ledger::Op;
use crate::routes::accounts::parse_account;
#[allow(unused_imports)]
use shared::ErrorBody;

fn amount(s: &str) -> Result<Amount, ApiError> {
    Ok(s.parse()?)
}

fn idempotency_key(req: &HttpRequest) -> Result<Option<&str>, ApiError> {
    match req.headers().get("idempotency-key") {
        None => Ok(None),
        Some(v) => v
            .to_str()
            .map(Some)
            .map_err(|_| ApiError::invalid(ErrorCode::IdempotencyKeyInvalid, "Idempotency-Key must be ASCII")),
    }
}

async fn run(state: &AppState, req: &HttpRequest, op: Op) -> Result<HttpResponse, ApiError> {
    let receipt = state.ledger.apply(op, idempotency_key(req)?).await?;
    Ok(HttpResponse::Ok().json(receipt))
}

#[utoipa::path(
    post,
    path = "/deposit/{account}/{amount}",
    tag = "operator",
    params(("account" = u64, Path), ("amount" = String, Path, description = "e.g. 10.50"), ("Idempotency-Key" = Option<String>, Header)),
    responses((status = 200, description = "durable receipt", body = shared::api::OperationReceipt), (status = 400, description = "bad input", body = ErrorBody), (status = 401, description = "no or wrong credentials", body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, description = "account busy", body = ErrorBody)),
    security(("operator" = []))
)]
pub async fn deposit(
    _: Operator,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let op = Op::Deposit { account: parse_account(&path.0)?, amount: amount(&path.1)? };
    run(&state, &req, op).await
}

#[utoipa::path(
    post,
    path = "/withdrawal/{account}/{amount}",
    tag = "operator",
    params(("account" = u64, Path), ("amount" = String, Path), ("Idempotency-Key" = Option<String>, Header)),
    responses((status = 200, body = shared::api::OperationReceipt), (status = 400, description = "bad input", body = ErrorBody), (status = 401, description = "no or wrong credentials", body = ErrorBody), (status = 422, description = "insufficient funds", body = ErrorBody)),
    security(("operator" = []))
)]
pub async fn withdrawal(
    _: Operator,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let op = Op::Withdrawal { account: parse_account(&path.0)?, amount: amount(&path.1)? };
    run(&state, &req, op).await
}

#[utoipa::path(
    post,
    path = "/transfer/{origin}/{target}/{amount}",
    tag = "operator",
    params(("origin" = u64, Path), ("target" = u64, Path), ("amount" = String, Path), ("Idempotency-Key" = Option<String>, Header)),
    responses((status = 200, body = shared::api::OperationReceipt), (status = 400, description = "bad input", body = ErrorBody), (status = 401, description = "no or wrong credentials", body = ErrorBody), (status = 422, description = "insufficient funds or same account", body = ErrorBody)),
    security(("operator" = []))
)]
pub async fn transfer(
    _: Operator,
    state: web::Data<AppState>,
    path: web::Path<(String, String, String)>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let op = Op::Transfer { from: parse_account(&path.0)?, to: parse_account(&path.1)?, amount: amount(&path.2)? };
    run(&state, &req, op).await
}

#[utoipa::path(
    get,
    path = "/balance/{account}",
    tag = "operator",
    params(("account" = u64, Path)),
    responses((status = 200, body = shared::api::AccountBalance), (status = 400, description = "bad input", body = ErrorBody), (status = 401, description = "no or wrong credentials", body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("operator" = []))
)]
pub async fn balance(
    _: Operator,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let account = parse_account(&path)?;
    let balance = state.ledger.balance(account).await?;
    Ok(HttpResponse::Ok().json(AccountBalance { account, balance }))
}

/// Each route under a scope of its static first segment: a call passes the others with a
/// prefix comparison and meets one regex, its own (actix matches dynamic paths by regex, in
/// the order registered).
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::scope("/deposit").service(resource("/{account}/{amount}").route(web::post().to(deposit))))
        .service(web::scope("/withdrawal").service(resource("/{account}/{amount}").route(web::post().to(withdrawal))))
        .service(
            web::scope("/transfer").service(resource("/{origin}/{target}/{amount}").route(web::post().to(transfer))),
        )
        .service(web::scope("/balance").service(resource("/{account}").route(web::get().to(balance))));
}
