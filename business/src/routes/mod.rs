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

/// Settlement's bank-to-bank calls first, then the teller's: actix tries each resource in order
/// and matches a dynamic one with a regex, so the hot calls come early and sit under scopes of
/// their static first segment (a call passes a scope that is not its own with one prefix
/// comparison). The rest keep their order, which matters: `/api/payments/deposit` must come
/// before `/api/payments/{id}`.
pub fn configure(cfg: &mut web::ServiceConfig) {
    interbank::configure(cfg);
    operator::configure(cfg);
    accounts::configure(cfg);
    consents::configure(cfg);
    payments::configure(cfg);
    payments::configure_pay(cfg);
    keys::configure(cfg);
    cfg.service(resource("/health").route(web::get().to(crate::health)))
        .service(resource("/metrics").route(web::get().to(crate::metrics_route)))
        .service(resource("/openapi.json").route(web::get().to(crate::openapi::openapi_json)));
}
