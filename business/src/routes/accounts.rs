//! The customers' accounts API (seed 000's "Rotas da API").

use actix_web::{FromRequest, HttpRequest, HttpResponse, web};
use shared::api::{CreateAccount, Login};
use shared::{AccountId, ErrorCode, Ibk};

use super::resource;
use crate::AppState;
use crate::auth::{Customer, presented_key};
use crate::error::ApiError;
#[allow(unused_imports)]
use shared::ErrorBody;

pub fn parse_account(s: &str) -> Result<AccountId, ApiError> {
    s.parse().map_err(ApiError::from)
}

#[utoipa::path(
    post,
    path = "/api/accounts",
    tag = "accounts",
    request_body = shared::api::CreateAccount,
    responses((status = 201, body = shared::api::Account), (status = 400, description = "bad input", body = ErrorBody), (status = 401, description = "no or wrong credentials", body = ErrorBody), (status = 409, description = "document already has an account", body = ErrorBody))
)]
pub async fn create(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Json<CreateAccount>,
) -> Result<HttpResponse, ApiError> {
    // Opening an account costs an argon2 hash and a document lookup: bounded per address.
    let address = crate::client_address(&req);
    state.throttles.signup(&address).await?;
    // A joint account is opened by one of its holders, signed in; other kinds need no session.
    let session = match presented_key(req.headers()) {
        Some(_) => Some(Customer::extract(&req).await?.0),
        None => None,
    };
    let account = state.accounts.open(body.into_inner(), session.as_ref()).await?;
    Ok(HttpResponse::Created().json(account))
}

/// A holder of a joint account confirms it with their own session; the last one makes it active.
#[utoipa::path(
    post,
    path = "/api/accounts/{id}/consent",
    tag = "accounts",
    params(("id" = u64, Path, description = "the joint account's id at this bank")),
    responses((status = 200, body = shared::api::Account), (status = 400, description = "bad input", body = ErrorBody), (status = 401, description = "no or wrong credentials", body = ErrorBody), (status = 403, description = "not a holder of it", body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("customer" = []))
)]
pub async fn consent(
    state: web::Data<AppState>,
    me: Customer,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(state.accounts.consent(&me.0, parse_account(&path)?).await?))
}

#[utoipa::path(
    post,
    path = "/api/accounts/auth",
    tag = "accounts",
    request_body = shared::api::Login,
    responses((status = 200, body = shared::api::Session), (status = 400, description = "bad input", body = ErrorBody), (status = 401, description = "no or wrong credentials", body = ErrorBody), (status = 429, description = "too many failed logins", body = ErrorBody))
)]
pub async fn login(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Json<Login>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let (account, address) = (body.ibk.to_string(), crate::client_address(&req));
    // Every attempt is counted *before* its password is checked, and given back only when it
    // succeeds: a burst of concurrent guesses counts one each, so racing the check gains
    // nothing, and while locked out even the right password is refused without argon2 work.
    let guard = state.throttles.login(&account, &address).await?;
    match state.accounts.login(body).await {
        Err(ApiError::InvalidCredentials { .. }) => {
            tracing::info!(%account, %address, "login refused");
            Err(ApiError::InvalidCredentials { attempts_left: Some(guard.left) })
        }
        r => {
            if r.is_ok() {
                guard.forgive(&state.throttles.shared).await;
            }
            Ok(HttpResponse::Ok().json(r?))
        }
    }
}

/// Ends the session whose token is presented: it opens nothing any more, on any replica.
#[utoipa::path(
    delete,
    path = "/api/accounts/auth",
    tag = "accounts",
    responses((status = 204, description = "the session is revoked"), (status = 401, description = "no or wrong credentials", body = ErrorBody)),
    security(("customer" = []))
)]
pub async fn logout(state: web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    state.accounts.logout(presented_key(req.headers()).ok_or(ApiError::NoSession)?).await?;
    Ok(HttpResponse::NoContent().finish())
}

#[utoipa::path(
    get,
    path = "/api/accounts/{id}",
    tag = "accounts",
    params(("id" = u64, Path, description = "account id at this bank")),
    responses((status = 200, body = shared::api::Account), (status = 400, description = "bad input", body = ErrorBody), (status = 401, description = "no or wrong credentials", body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("customer" = []))
)]
pub async fn get(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let (_, target) = Customer::with_account(&state, &req, parse_account(&path)?).await?;
    Ok(HttpResponse::Ok().json(state.accounts.view(target).await?))
}

/// The holder's accounts at every bank of the network, asked of each bank in parallel.
#[utoipa::path(
    get,
    path = "/api/accounts/{id}/all",
    tag = "accounts",
    params(("id" = u64, Path, description = "account id at this bank")),
    responses((status = 200, body = shared::api::AllAccounts), (status = 400, description = "bad input", body = ErrorBody), (status = 401, description = "no or wrong credentials", body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("customer" = []))
)]
pub async fn all(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let (me, target) = Customer::with_account(&state, &req, parse_account(&path)?).await?;
    Ok(HttpResponse::Ok().json(state.accounts.everywhere(&state.interbank, &me, target).await?))
}

#[utoipa::path(
    delete,
    path = "/api/accounts/{id}",
    tag = "accounts",
    params(("id" = u64, Path, description = "account id at this bank")),
    responses((status = 200, description = "closed"), (status = 400, description = "bad input", body = ErrorBody), (status = 401, description = "no or wrong credentials", body = ErrorBody), (status = 409, description = "balance not zero or operation in flight", body = ErrorBody)),
    security(("customer" = []))
)]
pub async fn close(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let me = Customer::extract(&req).await?.0;
    let id: AccountId = path.parse().map_err(ApiError::from)?;
    let target = state.accounts.accessible(&me, id).await?;
    state.accounts.close(&state.interbank, &target).await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "message": format!("account {id} closed") })))
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PageQuery {
    pub before: Option<u64>,
    pub packages_before: Option<String>,
    pub limit: Option<usize>,
}

#[utoipa::path(
    get,
    path = "/api/accounts/{id}/transactions",
    tag = "accounts",
    params(("id" = u64, Path, description = "account id at this bank"), ("before" = Option<u64>, Query, description = "`next` of the page before"), ("packages_before" = Option<String>, Query, description = "`packages_next` of the page before"), ("limit" = Option<usize>, Query)),
    responses((status = 200, body = shared::api::Statement), (status = 400, description = "bad input", body = ErrorBody), (status = 401, description = "no or wrong credentials", body = ErrorBody)),
    security(("customer" = []))
)]
pub async fn transactions(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    q: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    use crate::config::limits::{STATEMENT_PAGE_DEFAULT, STATEMENT_PAGE_MAX};
    let me = Customer::extract(&req).await?.0;
    let id: AccountId = path.parse().map_err(ApiError::from)?;
    let limit = q.limit.unwrap_or(STATEMENT_PAGE_DEFAULT);
    if !(1..=STATEMENT_PAGE_MAX).contains(&limit) {
        return Err(ApiError::invalid(
            ErrorCode::LimitInvalid,
            format!("limit must be from 1 to {STATEMENT_PAGE_MAX}"),
        ));
    }
    state.accounts.accessible(&me, id).await?;
    // A cursor only says where to start inside this account's own index entries (the scan is
    // bounded by the account's prefix), so a made-up one can skip lines but never show others'.
    if q.packages_before.as_ref().is_some_and(|c| c.len() > crate::config::limits::PACKAGES_CURSOR_LEN_MAX) {
        return Err(ApiError::invalid(ErrorCode::AfterInvalid, "packages_before is not a cursor this API gave"));
    }
    let page = crate::accounts::StatementPage { before: q.before, packages_before: q.packages_before.clone(), limit };
    Ok(HttpResponse::Ok().json(state.accounts.statement(id, page).await?))
}

/// The account a customer is about to pay, checked before it goes into a package: its masked
/// holder name and whether it can receive now, from this bank's records or from the bank that
/// holds it. Names are what a Pix key lookup shows, so the same per-customer and per-address
/// budget bounds how many a session may harvest.
#[utoipa::path(
    get,
    path = "/api/recipients/{ibk}",
    tag = "accounts",
    params(("ibk" = String, Path, description = "bank-account, e.g. 2-7")),
    responses((status = 200, body = shared::api::AccountCard), (status = 400, description = "bad input", body = ErrorBody), (status = 401, description = "no or wrong credentials", body = ErrorBody), (status = 404, description = "no such account", body = ErrorBody), (status = 422, description = "no such bank", body = ErrorBody), (status = 429, description = "too many lookups", body = ErrorBody), (status = 503, description = "the account's bank cannot be reached", body = ErrorBody)),
    security(("customer" = []))
)]
pub async fn recipient(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let me = Customer::extract(&req).await?.0;
    let ibk: Ibk = path.parse().map_err(ApiError::from)?;
    state.throttles.count_key_lookup(&crate::client_address(&req), me.id).await?;
    if state.interbank.peers.network().bank(ibk.bank).is_none() {
        return Err(ApiError::UnknownBank(ibk.bank));
    }
    let card = if ibk.bank == state.settings.bank_id {
        let r = state.accounts.record(ibk.account).await?.ok_or(ApiError::AccountNotFound(ibk.account))?;
        state.accounts.card(&r)
    } else {
        state.interbank.card(ibk).await?
    };
    Ok(HttpResponse::Ok().json(card))
}

/// A ticket that opens the account's event stream (an `EventSource` sends no header): good
/// for a minute, for this account and this session only; a new one replaces it.
#[utoipa::path(
    post,
    path = "/api/accounts/{id}/events/ticket",
    tag = "accounts",
    params(("id" = u64, Path, description = "account id at this bank")),
    responses((status = 200, body = shared::api::EventsTicket), (status = 401, description = "no or wrong credentials", body = ErrorBody), (status = 403, description = "not the customer's account", body = ErrorBody)),
    security(("customer" = []))
)]
pub async fn events_ticket(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let (_, target) = Customer::with_account(&state, &req, parse_account(&path)?).await?;
    let token = presented_key(req.headers()).ok_or(ApiError::NoSession)?;
    Ok(HttpResponse::Ok().json(crate::events::issue(&state.accounts.ds, token, target.id).await?))
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventsQuery {
    /// Missing, it is a request without credentials (401), like any other.
    pub ticket: Option<String>,
    /// For a new `EventSource`, which cannot send `Last-Event-ID`.
    pub last_event_id: Option<u64>,
}

/// The account's changes as Server-Sent Events: `statement` (a line moved the balance; its
/// data has the balance after) and `package` (an authored package changed status); `id` is
/// the account's newest journal position, and a reconnection with an older `Last-Event-ID`
/// is told at once that it missed something. See `business/src/events.rs`.
#[utoipa::path(
    get,
    path = "/api/accounts/{id}/events",
    tag = "accounts",
    params(("id" = u64, Path, description = "account id at this bank"), ("ticket" = String, Query, description = "from POST /api/accounts/{id}/events/ticket"), ("last_event_id" = Option<u64>, Query)),
    responses((status = 200, description = "text/event-stream"), (status = 401, description = "no, wrong or expired ticket", body = ErrorBody), (status = 403, description = "a ticket of another account", body = ErrorBody), (status = 429, description = "too many streams of this account", body = ErrorBody), (status = 503, description = "too many streams on this replica", body = ErrorBody))
)]
pub async fn events(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    q: web::Query<EventsQuery>,
) -> Result<HttpResponse, ApiError> {
    let id = parse_account(&path)?;
    let ticket = q.ticket.as_deref().ok_or(ApiError::NoSession)?;
    let header = req.headers().get("last-event-id").and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok());
    let stream =
        crate::events::open(state.accounts.ds.clone(), state.feed.clone(), ticket, id, header.or(q.last_event_id))
            .await?;
    Ok(HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header(("cache-control", "no-cache"))
        // Proxies must pass each event on as it comes.
        .insert_header(("x-accel-buffering", "no"))
        .streaming(stream))
}

/// The banks of the network, for customers (public facts only).
#[utoipa::path(get, path = "/api/banks", tag = "accounts", responses((status = 200, body = Vec<shared::api::BankInfo>)))]
pub async fn banks(state: web::Data<AppState>) -> HttpResponse {
    let list: Vec<shared::api::BankInfo> = state
        .interbank
        .peers
        .network()
        .banks
        .iter()
        .map(|b| shared::api::BankInfo { id: b.id, name: b.name.clone(), urls: b.public.clone() })
        .collect();
    HttpResponse::Ok().json(list)
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(resource("/api/banks").route(web::get().to(banks)))
        .service(resource("/api/recipients/{ibk}").route(web::get().to(recipient)))
        .service(resource("/api/accounts").route(web::post().to(create)))
        .service(resource("/api/accounts/auth").route(web::post().to(login)).route(web::delete().to(logout)))
        .service(resource("/api/accounts/{id}").route(web::get().to(get)).route(web::delete().to(close)))
        .service(resource("/api/accounts/{id}/all").route(web::get().to(all)))
        .service(resource("/api/accounts/{id}/consent").route(web::post().to(consent)))
        .service(resource("/api/accounts/{id}/transactions").route(web::get().to(transactions)))
        .service(resource("/api/accounts/{id}/events/ticket").route(web::post().to(events_ticket)))
        .service(resource("/api/accounts/{id}/events").route(web::get().to(events)));
}
