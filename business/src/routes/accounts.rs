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

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(resource("/api/accounts").route(web::post().to(create)))
        .service(resource("/api/accounts/auth").route(web::post().to(login)))
        .service(resource("/api/accounts/{id}").route(web::get().to(get)).route(web::delete().to(close)));
}
