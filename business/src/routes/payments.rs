//! The customers' payments API (the `payments` service does the work). Same-bank deposits,
//! withdrawals and packages are final before the answer.

use actix_web::{FromRequest, HttpRequest, HttpResponse, ResponseError, web};
use shared::api::{AccountPayment, Pay};
use shared::{ErrorCode, Target};

use super::resource;
use crate::AppState;
use crate::auth::{Customer, idempotency_key};
use crate::error::ApiError;
use crate::payments::{self, Paid};
#[allow(unused_imports)]
use shared::ErrorBody;

#[utoipa::path(
    post,
    path = "/api/payments/deposit",
    tag = "payments",
    request_body = shared::api::AccountPayment,
    responses((status = 200, body = shared::api::Transaction), (status = 400, description = "bad input", body = ErrorBody), (status = 401, description = "no or wrong credentials", body = ErrorBody)),
    security(("customer" = []))
)]
pub async fn deposit(
    state: web::Data<AppState>,
    me: Customer,
    req: HttpRequest,
    body: web::Json<AccountPayment>,
) -> Result<HttpResponse, ApiError> {
    let t = payments::move_money(&state, &me.0, body.into_inner(), true, idempotency_key(&req)).await?;
    Ok(HttpResponse::Ok().json(t))
}

#[utoipa::path(
    post,
    path = "/api/payments/withdraw",
    tag = "payments",
    request_body = shared::api::AccountPayment,
    responses((status = 200, body = shared::api::Transaction), (status = 400, description = "bad input", body = ErrorBody), (status = 401, description = "no or wrong credentials", body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("customer" = []))
)]
pub async fn withdraw(
    state: web::Data<AppState>,
    me: Customer,
    req: HttpRequest,
    body: web::Json<AccountPayment>,
) -> Result<HttpResponse, ApiError> {
    let t = payments::move_money(&state, &me.0, body.into_inner(), false, idempotency_key(&req)).await?;
    Ok(HttpResponse::Ok().json(t))
}

/// The payment routes, all static paths: registered before every other route (see
/// [`super::configure`]).
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(resource("/api/payments/pay").route(web::post().to(pay)))
        .service(resource("/api/payments/deposit").route(web::post().to(deposit)))
        .service(resource("/api/payments/withdraw").route(web::post().to(withdraw)));
}

/// `POST /api/payments/pay`. Every `from` must be held by the customer (at any bank); `to` is an
/// IBK or a Pix key, resolved now. A package within this bank is applied at once, in order, all
/// or nothing (200, `success`); one that involves other banks is stored durably and settled by
/// two-phase commit when this bank holds the token (202, `pending`; follow it at
/// `GET /api/payments/{id}`).
#[utoipa::path(
    post,
    path = "/api/payments/pay",
    tag = "payments",
    params(("Idempotency-Key" = Option<String>, Header)),
    request_body = shared::api::Pay,
    responses((status = 200, description = "same-bank package, applied", body = shared::api::Transaction), (status = 202, description = "cross-bank package, pending", body = shared::api::Transaction), (status = 400, description = "bad input", body = ErrorBody), (status = 401, description = "no or wrong credentials", body = ErrorBody), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody), (status = 429, description = "too many key lookups, or packages_pending: the author has the most cross-bank packages waiting (Retry-After)", body = ErrorBody), (status = 503, description = "settlement_busy: the bank's settlement queue is full, nothing stored (Retry-After)", body = ErrorBody)),
    security(("customer" = []))
)]
pub async fn pay(state: web::Data<AppState>, req: HttpRequest, body: web::Json<Pay>) -> Result<HttpResponse, ApiError> {
    // No credentials at all: refused before anything else, as the extractor did.
    if crate::auth::presented_key(req.headers()).is_none() {
        return Err(ApiError::NoSession);
    }
    let body = body.into_inner();
    if let Some(busy) = shed(&state, &body) {
        state.metrics.refused(crate::metrics::Refused::Door);
        return Err(busy);
    }
    // A session this replica read before is not read again for a package it can store in a
    // commit that checks the session still stands (`payments::pay`); anything else about the
    // payment reads it first, as every other route does.
    if let Some(v) = crate::auth::presented_key(req.headers()).and_then(|t| state.accounts.vouched(t)) {
        match payments::pay(&state, &v.me, &body, idempotency_key(&req), Some(&v)).await {
            Ok(Paid::Pending(t)) => {
                state.metrics.payments_vouched_total.inc();
                return Ok(HttpResponse::Accepted().json(t));
            }
            // A refusal of the payment is answered only to a caller read again (a session
            // ended since is told `401` first, as on every route).
            Ok(Paid::Applied(_) | Paid::Unverified) => {}
            Err(e) if e.status_code().is_client_error() => {}
            // The store's own failure (the package may be stored: doing it again under a new
            // id could pay twice), told as it is, as a caller read now would be told it.
            Err(e) => return Err(e),
        }
        state.metrics.payments_unverified_total.inc();
    }
    let me = Customer::extract(&req).await?;
    // A payment to a key tells whether the key exists, so it draws on the customer's key-lookup
    // budget as Pix's directory does: refused while the budget is spent, and charged for each key
    // when the payment is refused (a 4xx). A payment accepted is not charged: it moved money,
    // which makes enumeration dear, and honest customers pay to keys all day.
    let keys = body.operations.iter().filter(|o| matches!(o.to, Target::Key(_))).count();
    let address = crate::client_address(&req);
    if keys > 0 {
        state.throttles.key_lookups_left(&address, me.0.id).await?;
    }
    let answer = payments::pay(&state, &me.0, &body, idempotency_key(&req), None).await;
    if keys > 0 && answer.as_ref().is_err_and(|e| e.status_code().is_client_error()) {
        for _ in 0..keys {
            // Counted only; the next attempt is the one refused.
            let _ = state.throttles.count_key_lookup(&address, me.0.id).await;
        }
    }
    Ok(match answer? {
        Paid::Applied(t) => HttpResponse::Ok().json(t),
        Paid::Pending(t) => HttpResponse::Accepted().json(t),
        Paid::Unverified => unreachable!("a payment made on a session read now is never unverified"),
    })
}

/// Load shedding at the door (issue 13): while this replica knows the bank's settlement queue
/// is full (it met the bound within `--admission-memory-ms`), a package that names another bank
/// is refused with the `503 settlement_busy` its enqueue would get, before its session is read.
/// Under overload most submissions are such refusals, and the session's two data-server reads
/// were most of what each cost, taken from the settlement the cores could do instead. It tells
/// a caller only that the bank is busy (what a load balancer at the door would say) and never
/// admits anything: every package that passes is authenticated and bounded as before. A package
/// to a Pix key is not shed here (its bank is known only after the lookup).
fn shed(state: &AppState, body: &Pay) -> Option<ApiError> {
    let me = state.settings.bank_id;
    let crosses = body.operations.iter().any(|o| o.from.bank != me || matches!(o.to, Target::Ibk(to) if to.bank != me));
    if !crosses {
        return None;
    }
    state.interbank.admission.lock().bank_busy(crate::interbank::now_ms(), &state.interbank.limits)
}

/// `GET /api/payments/{id}`: a package's status, for whoever holds its author account.
#[utoipa::path(
    get,
    path = "/api/payments/{id}",
    tag = "payments",
    params(("id" = String, Path, description = "package id")),
    responses((status = 200, body = shared::api::Transaction), (status = 400, description = "bad input", body = ErrorBody), (status = 401, description = "no or wrong credentials", body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("customer" = []))
)]
pub async fn get_package(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = path.into_inner();
    if id.is_empty() || id.len() > 64 || !id.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(ApiError::invalid(ErrorCode::PackageIdInvalid, "a package id is 1 to 64 letters and digits"));
    }
    // The session first: without one, nobody learns whether a package id exists.
    let me = Customer::extract(&req).await?;
    Ok(HttpResponse::Ok().json(payments::package(&state, &me.0, &id).await?))
}

/// `GET /api/payments/{id}`, registered after [`configure`]'s static paths it would match.
pub fn configure_package(cfg: &mut web::ServiceConfig) {
    cfg.service(resource("/api/payments/{id}").route(web::get().to(get_package)));
}
