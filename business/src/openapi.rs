//! The OpenAPI 3 document of every route, served at `GET /openapi.json`. Each handler carries its
//! own `#[utoipa::path]` next to its code; this lists them and the credentials they take.

use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::routes;

struct Credentials;

impl Modify for Credentials {
    fn modify(&self, api: &mut utoipa::openapi::OpenApi) {
        let c = api.components.get_or_insert_with(Default::default);
        let bearer = |d: &str| {
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).description(Some(d)).build())
        };
        c.add_security_scheme("operator", bearer("The bank's operator key (seed 004 also accepts `auth: KEY`)"));
        c.add_security_scheme("customer", bearer("A session token from POST /api/accounts/auth"));
        c.add_security_scheme(
            "bank",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "x-interbank-bank",
                "The calling bank's id, with its secret as `Authorization: Bearer SECRET`",
            ))),
        );
    }
}

#[derive(Debug, OpenApi)]
#[openapi(
    info(title = "InterBank business server", description = "One bank's replica: the operator (teller) API, the customers' accounts, payments and Pix keys, and the routes between banks. Every error is `{ \"error\": code, \"message\": text }`."),
    paths(
        routes::operator::deposit, routes::operator::withdrawal, routes::operator::transfer, routes::operator::balance,
        routes::accounts::create, routes::accounts::login, routes::accounts::logout, routes::accounts::get, routes::accounts::all,
        routes::accounts::close, routes::accounts::transactions, routes::accounts::recipient, routes::accounts::events_ticket, routes::accounts::events, routes::accounts::consent,
        routes::accounts::banks, routes::consents::create, routes::consents::list, routes::consents::revoke,
        routes::payments::deposit, routes::payments::withdraw, routes::payments::pay, routes::payments::get_package,
        routes::keys::register, routes::keys::resolve, routes::keys::remove, routes::keys::list,
        routes::interbank::put_token, routes::interbank::get_token, routes::interbank::token_ok,
        routes::interbank::prepare, routes::interbank::commit, routes::interbank::rollback,
        routes::interbank::decision, routes::interbank::accounts_of_document, routes::interbank::account_by_ibk,
        routes::interbank::key_reserve, routes::interbank::key_get, routes::interbank::key_remove,
        routes::interbank::positions, routes::interbank::grants, routes::interbank::pending, routes::interbank::overview,
        crate::health, crate::metrics_route, openapi_json,
    ),
    modifiers(&Credentials)
)]
pub struct ApiDoc;

#[utoipa::path(get, path = "/openapi.json", tag = "meta", responses((status = 200, description = "this document")))]
pub async fn openapi_json() -> actix_web::HttpResponse {
    actix_web::HttpResponse::Ok().json(ApiDoc::openapi())
}
