//! HTTP routes. Handlers parse into domain types and call the ledger; nothing else.

pub mod accounts;
pub mod consents;
pub mod interbank;
pub mod keys;
pub mod operator;
pub mod payments;

use actix_web::web;

use crate::error::method_not_allowed;

pub fn resource(path: &str) -> actix_web::Resource {
    web::resource(path).default_service(web::to(method_not_allowed))
}

/// The customer's payments first (static paths: one string comparison each), then settlement's
/// bank-to-bank calls, then the teller's: actix tries each resource in order and matches a
/// dynamic one with a regex, so the hot calls come early and dynamic ones sit under scopes of
/// their static first segment (a call passes a scope that is not its own with one prefix
/// comparison). Behind nine dynamic routes, `POST /api/payments/pay` spent about 2 % of the
/// machine in regex matching under `bench packages`. The rest keep their order, which matters:
/// `/api/payments/pay` must come before `/api/payments/{id}`, `/api/accounts/auth` before
/// `/api/accounts/{id}`.
pub fn configure(cfg: &mut web::ServiceConfig) {
    payments::configure(cfg);
    interbank::configure(cfg);
    operator::configure(cfg);
    accounts::configure(cfg);
    consents::configure(cfg);
    payments::configure_package(cfg);
    keys::configure(cfg);
    cfg.service(resource("/health").route(web::get().to(crate::health)))
        .service(resource("/metrics").route(web::get().to(crate::metrics_route)))
        .service(resource("/openapi.json").route(web::get().to(crate::openapi::openapi_json)));
}
