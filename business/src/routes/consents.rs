//! The holders' consents to other banks' debits (`/api/consents`): given, listed and revoked
//! at the bank that holds the account, with the holder's own session there.

use actix_web::{HttpResponse, web};
use shared::Ibk;
use shared::api::CreateConsent;

use super::resource;
use crate::AppState;
use crate::auth::Customer;
use crate::consents;
use crate::error::ApiError;
#[allow(unused_imports)]
use shared::ErrorBody;

#[utoipa::path(
    post,
    path = "/api/consents",
    tag = "consents",
    request_body = shared::api::CreateConsent,
    responses((status = 201, body = shared::api::Consent), (status = 400, description = "bad input", body = ErrorBody), (status = 401, description = "no or wrong credentials", body = ErrorBody), (status = 403, description = "not the holder", body = ErrorBody), (status = 422, description = "too many consents, or not this bank's account", body = ErrorBody)),
    security(("customer" = []))
)]
pub async fn create(
    state: web::Data<AppState>,
    me: Customer,
    body: web::Json<CreateConsent>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Created().json(consents::create(&state, &me.0, body.into_inner()).await?))
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    pub account: Ibk,
}

#[utoipa::path(
    get,
    path = "/api/consents",
    tag = "consents",
    params(("account" = String, Query, description = "the account's IBK")),
    responses((status = 200, body = shared::api::Consents), (status = 400, description = "bad input", body = ErrorBody), (status = 401, description = "no or wrong credentials", body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("customer" = []))
)]
pub async fn list(
    state: web::Data<AppState>,
    me: Customer,
    q: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(consents::list(&state, &me.0, q.account).await?))
}

#[utoipa::path(
    delete,
    path = "/api/consents/{id}",
    tag = "consents",
    params(("id" = String, Path)),
    responses((status = 204, description = "revoked"), (status = 400, description = "bad input", body = ErrorBody), (status = 401, description = "no or wrong credentials", body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("customer" = []))
)]
pub async fn revoke(
    state: web::Data<AppState>,
    me: Customer,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    consents::revoke(&state, &me.0, &path).await?;
    Ok(HttpResponse::NoContent().finish())
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(resource("/api/consents").route(web::post().to(create)).route(web::get().to(list)))
        .service(resource("/api/consents/{id}").route(web::delete().to(revoke)));
}
