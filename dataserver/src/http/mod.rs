//! The HTTP edge: authentication, parsing into domain types, and the one mapping from every
//! failure to a status and the JSON error body. After this module only valid types exist.

use actix_web::{HttpResponse, web};

use crate::AppState;
use batch::{
    acquire_batch, amounts, blocking, commit_route, commits_route, get_record, journal, posted_amount, release_batch,
    scan_records,
};
use dataserver_api::Health;
use seed::{get_amount, get_lock, set_amount, set_amount_path, un_lock};

mod auth;
mod batch;
mod error;
mod seed;
mod validate;

pub(crate) use auth::known_caller;
pub use auth::{Caller, key_digest};
pub use error::{
    ApiError, json_error, method_not_allowed, not_found, not_leader, path_error, payload_error, query_error,
};

type Result<T, E = ApiError> = std::result::Result<T, E>;

pub async fn health(state: web::Data<AppState>) -> Result<HttpResponse> {
    let store = state.store.clone();
    let stats = blocking(move || store.stats()).await?;
    Ok(HttpResponse::Ok().json(Health {
        status: "ok".into(),
        boot_epoch: state.locks.epoch(),
        accounts: stats.accounts,
        journal_seq: stats.journal_seq,
    }))
}

pub async fn metrics(_caller: Caller, state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok().content_type("text/plain; version=0.0.4").body(state.metrics.render(
        state.locks.held_total(),
        state.locks.waiting(),
        state.locks.epoch(),
    ))
}

/// Every route of the API; shared by the server and the tests.
///
/// The batch API comes first and under one scope: actix matches a dynamic path with a regex per
/// resource, in order, and the hot calls (commit, locks, records) were behind a dozen of them —
/// 7 % of the data server's time under the package benchmark went to failed matches.
pub fn routes(cfg: &mut web::ServiceConfig) {
    fn res(path: &str) -> actix_web::Resource {
        web::resource(path).default_service(web::to(method_not_allowed))
    }
    cfg.service(
        web::scope("/v1/{business}")
            .service(res("/commit").route(web::post().to(commit_route)))
            .service(res("/commits").route(web::post().to(commits_route)))
            .service(res("/locks").route(web::post().to(acquire_batch)))
            .service(res("/records/{collection}/{key}").route(web::get().to(get_record)))
            .service(res("/records/{collection}").route(web::get().to(scan_records)))
            .service(res("/locks/release").route(web::post().to(release_batch)))
            .service(res("/amounts/{account}").route(web::get().to(posted_amount)))
            .service(res("/amounts").route(web::get().to(amounts)))
            .service(res("/journal").route(web::get().to(journal)))
            .default_service(web::to(error::not_found)),
    )
    .service(res("/health").route(web::get().to(health)))
    .service(res("/metrics").route(web::get().to(metrics)))
    .service(res("/getLock/{business}/{account}").route(web::post().to(get_lock)))
    .service(res("/unLock/{business}/{account}").route(web::post().to(un_lock)))
    .service(res("/setAmount/{business}/{account}").route(web::post().to(set_amount)))
    .service(res("/setAmount/{business}/{account}/{amount}").route(web::post().to(set_amount_path)))
    .service(res("/getAmount/{business}/{account}").route(web::get().to(get_amount)));
}
