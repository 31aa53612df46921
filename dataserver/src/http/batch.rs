//! The batch API (`/v1/{business}/…`): locks, commits, records, journal, amounts.

use actix_web::{HttpResponse, web};
use dataserver_api::ErrorCode;
use serde::Deserialize;
use shared::{AccountId, BusinessId};
use tokio::sync::oneshot;

use super::auth::Caller;
use super::error::{ApiError, Unavailable};
use super::validate::{check_collection, check_id, check_key, lease, validate_commit, wait};
use crate::AppState;
use crate::config::limits::*;
use crate::store::{PreparedCommit, StoreError};
use crate::writer::Job;
use dataserver_api::{
    AcquireRequest, AcquireResponse, COMMITS_PER_REQUEST_MAX, CommitRequest, CommitResult, CommitsRequest,
    CommitsResponse, Grant, ReleaseRequest, ReleaseResponse,
};

use super::Result;
use super::seed::posted;

/// Hands a validated commit to the group-commit writer and waits until it is durable.
pub(crate) async fn commit(
    state: &AppState,
    business: BusinessId,
    request: CommitRequest,
) -> Result<dataserver_api::CommitResponse> {
    durable(hand_over(state, business, request).await?).await
}

type Durable = oneshot::Receiver<std::result::Result<dataserver_api::CommitResponse, crate::writer::CommitError>>;

/// Validates a commit and queues it for the writer: the writer's answer comes on what it returns.
async fn hand_over(state: &AppState, business: BusinessId, request: CommitRequest) -> Result<Durable> {
    validate_commit(state, &request)?;
    let prepared = PreparedCommit::new(business, request);
    let (tx, rx) = oneshot::channel();
    state
        .writer
        .send(Job::Commit { prepared, reply: tx })
        .await
        .map_err(|_| ApiError::Unavailable(Unavailable::ShuttingDown))?;
    Ok(rx)
}

/// The writer's answer to a commit [`hand_over`] queued, once it is durable.
async fn durable(rx: Durable) -> Result<dataserver_api::CommitResponse> {
    rx.await.map_err(|_| ApiError::Unavailable(Unavailable::ShuttingDown))?.map_err(ApiError::Commit)
}

pub(crate) async fn acquire(state: &AppState, business: BusinessId, req: AcquireRequest) -> Result<AcquireResponse> {
    let lease_d = lease(state, req.lease_ms)?;
    let wait_d = wait(state, req.wait_ms)?;
    if let Some(rid) = &req.request_id {
        check_id(ErrorCode::RequestIdInvalid, "request_id", rid, REQUEST_ID_LEN_MAX)?;
    }
    let mut accounts = req.accounts;
    if req.read.len() > state.settings.lock_batch_max.saturating_mul(2) {
        return Err(ApiError::invalid(
            ErrorCode::BatchTooLarge,
            format!("read at most {} records per request", state.settings.lock_batch_max.saturating_mul(2)),
        ));
    }
    for r in &req.read {
        check_collection(&r.collection)?;
        check_key(&r.key)?;
    }
    // No account: a read of several records in one request (nothing is locked), which a
    // participant of interbank settlement uses to learn which accounts to lock.
    if (accounts.is_empty() && req.read.is_empty()) || accounts.len() > state.settings.lock_batch_max {
        return Err(ApiError::invalid(
            ErrorCode::BatchTooLarge,
            format!("lock 1 to {} accounts per request (or none, to only read)", state.settings.lock_batch_max),
        ));
    }
    accounts.sort_unstable();
    if accounts.windows(2).any(|w| w[0] == w[1]) {
        return Err(ApiError::unprocessable(ErrorCode::DuplicateAccount, "an account appears twice in the request"));
    }
    let started = std::time::Instant::now();
    let locks = if accounts.is_empty() {
        Vec::new()
    } else {
        let granted = state.locks.acquire(business, &accounts, lease_d, wait_d, req.request_id.as_deref()).await;
        let granted = granted.inspect_err(|_| {
            state.metrics.lock_conflicts_total.inc();
        })?;
        state.metrics.lock_grants_total.inc_by(granted.locks.len() as u64);
        if granted.waited {
            state.metrics.lock_waits_total.inc();
            state.metrics.lock_wait.observe(crate::metrics::seconds(started.elapsed()));
        }
        let amounts = state.amounts.read();
        granted
            .locks
            .iter()
            .map(|l| Grant { account: l.account, token: l.token, amount: amounts.get(&l.account).copied() })
            .collect()
    };
    let records = if req.read.is_empty() {
        Vec::new()
    } else {
        let store = state.store.clone();
        let keys: Vec<(String, String)> = req.read.into_iter().map(|r| (r.collection, r.key)).collect();
        if store.reads_inline() {
            store.get_records(&keys)?
        } else {
            blocking(move || store.get_records(&keys)).await?
        }
    };
    Ok(AcquireResponse { lease_ms: u64::try_from(lease_d.as_millis()).unwrap_or(u64::MAX), locks, records })
}

// ---- batch routes ----------------------------------------------------------------------------

pub async fn acquire_batch(
    caller: Caller,
    state: web::Data<AppState>,
    path: web::Path<String>,
    body: web::Json<AcquireRequest>,
) -> Result<HttpResponse> {
    let business = caller.owns(&path)?;
    Ok(HttpResponse::Ok().json(acquire(&state, business, body.into_inner()).await?))
}

pub async fn release_batch(
    caller: Caller,
    state: web::Data<AppState>,
    path: web::Path<String>,
    body: web::Json<ReleaseRequest>,
) -> Result<HttpResponse> {
    let business = caller.owns(&path)?;
    if body.locks.len() > state.settings.lock_batch_max {
        return Err(ApiError::invalid(
            ErrorCode::BatchTooLarge,
            format!("release at most {} locks per request", state.settings.lock_batch_max),
        ));
    }
    let released = state.locks.release_many(business, &body.locks);
    Ok(HttpResponse::Ok().json(ReleaseResponse { released }))
}

pub async fn commit_route(
    caller: Caller,
    state: web::Data<AppState>,
    path: web::Path<String>,
    body: web::Json<CommitRequest>,
) -> Result<HttpResponse> {
    let business = caller.owns(&path)?;
    Ok(HttpResponse::Ok().json(commit(&state, business, body.into_inner()).await?))
}

/// `POST /v1/{business}/commits`: each commit as `/commit` would do it, all handed to the
/// writer before any is awaited, so they usually share one durable write. One refused (invalid,
/// or failing its conditions) is answered as refused; the others go on.
pub async fn commits_route(
    caller: Caller,
    state: web::Data<AppState>,
    path: web::Path<String>,
    body: web::Json<CommitsRequest>,
) -> Result<HttpResponse> {
    let business = caller.owns(&path)?;
    let commits = body.into_inner().commits;
    if commits.is_empty() || commits.len() > COMMITS_PER_REQUEST_MAX {
        return Err(ApiError::invalid(
            ErrorCode::BatchTooLarge,
            format!("send 1 to {COMMITS_PER_REQUEST_MAX} commits per request"),
        ));
    }
    let mut queued = Vec::with_capacity(commits.len());
    for c in commits {
        queued.push(hand_over(&state, business, c).await);
    }
    let mut results = Vec::with_capacity(queued.len());
    for q in queued {
        let answer = match q {
            Ok(rx) => durable(rx).await,
            Err(e) => Err(e),
        };
        results.push(match answer {
            Ok(done) => CommitResult::Committed(done),
            Err(e) => {
                CommitResult::Refused { status: actix_web::ResponseError::status_code(&e).as_u16(), body: e.body() }
            }
        });
    }
    Ok(HttpResponse::Ok().json(CommitsResponse { results }))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PageQuery {
    prefix: Option<String>,
    after: Option<String>,
    before: Option<u64>,
    account: Option<String>,
    limit: Option<usize>,
}

pub(crate) fn limit(q: &PageQuery) -> Result<usize> {
    match q.limit {
        None => Ok(PAGE_LIMIT_DEFAULT),
        Some(n) if (1..=PAGE_LIMIT_MAX).contains(&n) => Ok(n),
        Some(_) => Err(ApiError::invalid(ErrorCode::LimitInvalid, format!("limit must be from 1 to {PAGE_LIMIT_MAX}"))),
    }
}

/// Store reads are blocking calls on redb; they run off the async workers.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T> {
    web::block(f).await.map_err(|_| ApiError::Unavailable(Unavailable::ShuttingDown))?.map_err(ApiError::from)
}

pub async fn get_record(
    caller: Caller,
    state: web::Data<AppState>,
    path: web::Path<(String, String, String)>,
) -> Result<HttpResponse> {
    caller.owns(&path.0)?;
    let (_, collection, key) = path.into_inner();
    check_collection(&collection)?;
    check_key(&key)?;
    let store = state.store.clone();
    let what = format!("{collection}/{key}");
    // A point read, on the worker where the store allows it (see `Store::reads_inline`):
    // sessions are read this way on every customer request.
    let found = if store.reads_inline() {
        store.get_record(&collection, &key)?
    } else {
        blocking(move || store.get_record(&collection, &key)).await?
    };
    match found {
        Some(r) => Ok(HttpResponse::Ok().json(r)),
        None => Err(ApiError::NotFound(format!("no record {what}"))),
    }
}

pub async fn scan_records(
    caller: Caller,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    q: web::Query<PageQuery>,
) -> Result<HttpResponse> {
    caller.owns(&path.0)?;
    let collection = path.into_inner().1;
    check_collection(&collection)?;
    let n = limit(&q)?;
    let q = q.into_inner();
    let prefix = q.prefix.unwrap_or_default();
    if prefix.len() > RECORD_KEY_LEN_MAX || q.after.as_ref().is_some_and(|a| a.len() > RECORD_KEY_LEN_MAX) {
        return Err(ApiError::invalid(
            ErrorCode::KeyInvalid,
            format!("prefix and after may be at most {RECORD_KEY_LEN_MAX} bytes"),
        ));
    }
    let store = state.store.clone();
    let page = blocking(move || store.scan_records(&collection, &prefix, q.after.as_deref(), n)).await?;
    Ok(HttpResponse::Ok().json(page))
}

/// `?account=N[&before=SEQ]`: an account's entries, newest first. Otherwise `?after=SEQ`: the
/// whole journal in commit order (for replay and audit).
pub async fn journal(
    caller: Caller,
    state: web::Data<AppState>,
    path: web::Path<String>,
    q: web::Query<PageQuery>,
) -> Result<HttpResponse> {
    caller.owns(&path)?;
    let n = limit(&q)?;
    let q = q.into_inner();
    let store = state.store.clone();
    let page = match q.account {
        Some(a) => {
            let account = a.parse::<AccountId>()?;
            blocking(move || store.account_journal(account, q.before, n)).await?
        }
        None => {
            let after = match q.after.as_deref() {
                None => 0,
                Some(s) => s.parse().map_err(|_| {
                    ApiError::invalid(ErrorCode::AfterInvalid, "after must be a journal sequence number")
                })?,
            };
            blocking(move || store.journal_after(after, n)).await?
        }
    };
    Ok(HttpResponse::Ok().json(page))
}

/// One account's posted amount, whoever holds its lease: the balance a statement shows. Unlike
/// the seed's `getAmount`, never refused for a lock (a read of committed state needs none).
pub async fn posted_amount(
    caller: Caller,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse> {
    caller.owns(&path.0)?;
    posted(&state, path.1.parse::<AccountId>()?)
}

/// Every posted amount in account order, paginated: the snapshot an auditor replays against.
pub async fn amounts(
    caller: Caller,
    state: web::Data<AppState>,
    path: web::Path<String>,
    q: web::Query<PageQuery>,
) -> Result<HttpResponse> {
    caller.owns(&path)?;
    let n = limit(&q)?;
    let after = q.after.as_deref().map(str::parse::<AccountId>).transpose()?;
    let store = state.store.clone();
    Ok(HttpResponse::Ok().json(blocking(move || store.amounts_after(after, n)).await?))
}
