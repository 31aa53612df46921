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

/// Settlement's bank-to-bank calls first: actix tries each resource in order and matches a
/// dynamic one with a regex, and these (mostly static paths, all under `/interbank` or
/// `/account/`, which no other pattern matches) are the hot calls of a package. The rest keep
/// their order, which matters: `/api/payments/deposit` must come before `/api/payments/{id}`.
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
