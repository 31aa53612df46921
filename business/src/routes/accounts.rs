//! The customers' accounts API (seed 000's "Rotas da API").

use actix_web::{HttpRequest, HttpResponse, web};
use shared::AccountId;
use shared::api::{CreateAccount, Login};

use super::resource;
use crate::AppState;
use crate::accounts::may_access;
use crate::auth::presented_key;
use crate::error::ApiError;

async fn create(state: web::Data<AppState>, body: web::Json<CreateAccount>) -> Result<HttpResponse, ApiError> {
    let account = state.accounts.open(body.into_inner()).await?;
    Ok(HttpResponse::Created().json(account))
}

async fn login(state: web::Data<AppState>, body: web::Json<Login>) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(state.accounts.login(body.into_inner()).await?))
}

async fn get(state: web::Data<AppState>, req: HttpRequest, path: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let me = state.accounts.session(presented_key(req.headers()).ok_or(ApiError::NoSession)?).await?;
    let id: AccountId = path.parse().map_err(|e: shared::IdError| ApiError::invalid(e.code(), e.to_string()))?;
    let target = state.accounts.record(id).await?.ok_or(ApiError::AccountNotFound(id))?;
    if !may_access(&me, &target) {
        return Err(ApiError::Forbidden);
    }
    Ok(HttpResponse::Ok().json(state.accounts.view(target).await?))
}

async fn close(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let me = state.accounts.session(presented_key(req.headers()).ok_or(ApiError::NoSession)?).await?;
    let id: AccountId = path.parse().map_err(|e: shared::IdError| ApiError::invalid(e.code(), e.to_string()))?;
    let target = state.accounts.record(id).await?.ok_or(ApiError::AccountNotFound(id))?;
    if !may_access(&me, &target) {
        return Err(ApiError::Forbidden);
    }
    state.accounts.close(&target).await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "message": format!("account {id} closed") })))
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct PageQuery {
    before: Option<u64>,
    limit: Option<usize>,
}

async fn transactions(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    q: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    use crate::config::limits::{STATEMENT_PAGE_DEFAULT, STATEMENT_PAGE_MAX};
    let me = state.accounts.session(presented_key(req.headers()).ok_or(ApiError::NoSession)?).await?;
    let id: AccountId = path.parse().map_err(|e: shared::IdError| ApiError::invalid(e.code(), e.to_string()))?;
    let limit = q.limit.unwrap_or(STATEMENT_PAGE_DEFAULT);
    if !(1..=STATEMENT_PAGE_MAX).contains(&limit) {
        return Err(ApiError::invalid("limit_invalid", format!("limit must be from 1 to {STATEMENT_PAGE_MAX}")));
    }
    let target = state.accounts.record(id).await?.ok_or(ApiError::AccountNotFound(id))?;
    if !may_access(&me, &target) {
        return Err(ApiError::Forbidden);
    }
    Ok(HttpResponse::Ok().json(state.accounts.statement(id, q.before, limit).await?))
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(resource("/api/accounts").route(web::post().to(create)))
        .service(resource("/api/accounts/auth").route(web::post().to(login)))
        .service(resource("/api/accounts/{id}").route(web::get().to(get)).route(web::delete().to(close)))
        .service(resource("/api/accounts/{id}/transactions").route(web::get().to(transactions)));
}
