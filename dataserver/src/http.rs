//! The HTTP edge: authentication, parsing into domain types, and the one mapping from every
//! failure to a status and the JSON error body. After this module only valid types exist.

use std::collections::HashSet;
use std::future::{Ready, ready};
use std::time::Duration;

use actix_web::dev::Payload;
use actix_web::http::StatusCode;
use actix_web::http::header::HeaderMap;
use actix_web::{FromRequest, HttpRequest, HttpResponse, ResponseError, web};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use shared::{AccountId, BusinessId, ErrorBody, Money};
use tokio::sync::oneshot;

use crate::AppState;
use crate::api::{
    AcquireRequest, AcquireResponse, AmountBody, CommitRequest, Grant, Health, LockGrant, LockRef, RecordOp,
    ReleaseRequest, ReleaseResponse, SetAmount, SetAmountBody, TokenBody,
};
use crate::config::limits::*;
use crate::locks::LockError;
use crate::metrics::inc;
use crate::store::{PreparedCommit, StoreError};
use crate::writer::{CommitError, Job};

/// Every way a request can fail. The status and the stable code of each live in
/// [`ApiError::status`] and [`ApiError::code`], and nowhere else.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("missing or unknown API key (send `Authorization: Bearer KEY` or `auth: KEY`)")]
    Unauthorized,
    #[error("this API key belongs to business {key}, not to business {path}")]
    WrongBusiness { key: BusinessId, path: String },
    #[error("{message}")]
    Invalid { code: &'static str, message: String },
    #[error("{message}")]
    Unprocessable { code: &'static str, message: String },
    #[error("{0}")]
    NotFound(String),
    #[error(transparent)]
    Lock(#[from] LockError),
    #[error(transparent)]
    Commit(CommitError),
    #[error("request body is larger than {0} bytes")]
    TooLarge(usize),
    #[error("request body must be JSON (Content-Type: application/json)")]
    MediaType,
    #[error("method not allowed on this path")]
    MethodNotAllowed,
    #[error("the data server is shutting down or its storage failed: {0}")]
    Unavailable(String),
}

impl ApiError {
    fn invalid(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::Invalid { code, message: message.into() }
    }

    fn unprocessable(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::Unprocessable { code, message: message.into() }
    }

    pub fn code(&self) -> &'static str {
        match self {
            ApiError::Unauthorized => "unauthorized",
            ApiError::WrongBusiness { .. } => "forbidden",
            ApiError::Invalid { code, .. } | ApiError::Unprocessable { code, .. } => code,
            ApiError::NotFound(_) => "not_found",
            ApiError::Lock(LockError::Locked(_)) => "locked",
            ApiError::Lock(LockError::TooManyLocks { .. }) => "too_many_locks",
            ApiError::Lock(LockError::NotHolder(_)) => "not_holder",
            ApiError::Lock(LockError::LeaseExpired(_)) => "lease_expired",
            ApiError::Lock(LockError::TokensExhausted) => "tokens_exhausted",
            ApiError::Commit(CommitError::Lock(e)) => ApiError::Lock(e.clone()).code(),
            ApiError::Commit(CommitError::Condition { .. }) => "condition_failed",
            ApiError::Commit(CommitError::Absent { .. }) => "record_absent",
            ApiError::Commit(CommitError::IdempotencyConflict(_)) => "idempotency_conflict",
            ApiError::Commit(CommitError::Storage(_)) | ApiError::Unavailable(_) => "unavailable",
            ApiError::TooLarge(_) => "body_too_large",
            ApiError::MediaType => "unsupported_media_type",
            ApiError::MethodNotAllowed => "method_not_allowed",
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::WrongBusiness { .. } => StatusCode::FORBIDDEN,
            ApiError::Invalid { .. } => StatusCode::BAD_REQUEST,
            ApiError::Unprocessable { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Lock(LockError::TooManyLocks { .. }) => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Lock(LockError::TokensExhausted) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Lock(_) => StatusCode::CONFLICT,
            ApiError::Commit(CommitError::Lock(e)) => ApiError::Lock(e.clone()).status_code(),
            ApiError::Commit(
                CommitError::Condition { .. } | CommitError::Absent { .. } | CommitError::IdempotencyConflict(_),
            ) => StatusCode::CONFLICT,
            ApiError::Commit(CommitError::Storage(_)) | ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::MediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
        }
    }

    fn error_response(&self) -> HttpResponse {
        HttpResponse::build(self.status_code()).json(ErrorBody::new(self.code(), self.to_string()))
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        ApiError::Unavailable(e.to_string())
    }
}

type Result<T, E = ApiError> = std::result::Result<T, E>;

/// The business server a request comes from, proven by its API key.
#[derive(Debug, Clone, Copy)]
pub struct Caller(pub BusinessId);

pub fn key_digest(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

fn presented_key(headers: &HeaderMap) -> Option<&str> {
    if let Some(v) = headers.get("authorization").and_then(|v| v.to_str().ok()) {
        return v.strip_prefix("Bearer ");
    }
    headers.get("auth").and_then(|v| v.to_str().ok())
}

impl FromRequest for Caller {
    type Error = ApiError;
    type Future = Ready<Result<Caller>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        // Keys are compared by their SHA-256 in a hash map: the lookup's timing depends only on
        // the digest, which reveals nothing useful about the key.
        let found = req
            .app_data::<web::Data<AppState>>()
            .and_then(|state| presented_key(req.headers()).and_then(|k| state.keys.get(&key_digest(k)).copied()));
        ready(found.map(Caller).ok_or(ApiError::Unauthorized))
    }
}

impl Caller {
    /// The business id in the path must be the caller's own.
    fn owns(self, path_business: &str) -> Result<BusinessId> {
        match path_business.parse::<BusinessId>() {
            Ok(b) if b == self.0 => Ok(b),
            _ => Err(ApiError::WrongBusiness { key: self.0, path: path_business.chars().take(32).collect() }),
        }
    }
}

fn parse_account(s: &str) -> Result<AccountId> {
    s.parse().map_err(|e: shared::IdError| ApiError::invalid(e.code(), e.to_string()))
}

fn lease(state: &AppState, lease_ms: Option<u64>) -> Result<Duration> {
    let ms = lease_ms.unwrap_or(state.settings.lease_ms_default);
    if !(LEASE_MS_MIN..=state.settings.lease_ms_max).contains(&ms) {
        return Err(ApiError::invalid(
            "lease_invalid",
            format!("lease_ms must be from {LEASE_MS_MIN} to {}", state.settings.lease_ms_max),
        ));
    }
    Ok(Duration::from_millis(ms))
}

fn wait(state: &AppState, wait_ms: Option<u64>) -> Result<Duration> {
    let ms = wait_ms.unwrap_or(0);
    if ms > state.settings.wait_ms_max {
        return Err(ApiError::invalid(
            "wait_invalid",
            format!("wait_ms must be at most {}", state.settings.wait_ms_max),
        ));
    }
    Ok(Duration::from_millis(ms))
}

/// Ids that travel through logs and keys: bounded, printable, no spaces.
fn check_id(code: &'static str, what: &str, v: &str, max: usize) -> Result<()> {
    let ok = !v.is_empty() && v.len() <= max && v.bytes().all(|b| b.is_ascii_graphic());
    if ok {
        Ok(())
    } else {
        Err(ApiError::invalid(code, format!("{what} must be 1 to {max} printable ASCII characters")))
    }
}

fn check_collection(c: &str) -> Result<()> {
    let ok = !c.is_empty()
        && c.len() <= COLLECTION_LEN_MAX
        && c.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(ApiError::invalid(
            "collection_invalid",
            format!("collection must be 1 to {COLLECTION_LEN_MAX} characters of a-z, 0-9 and _"),
        ))
    }
}

fn check_key(k: &str) -> Result<()> {
    let ok = !k.is_empty() && k.len() <= RECORD_KEY_LEN_MAX && !k.chars().any(char::is_control);
    if ok {
        Ok(())
    } else {
        Err(ApiError::invalid(
            "key_invalid",
            format!("record key must be 1 to {RECORD_KEY_LEN_MAX} bytes without control characters"),
        ))
    }
}

fn json_len(v: &serde_json::Value) -> usize {
    serde_json::to_vec(v).map_or(usize::MAX, |b| b.len())
}

/// Everything about a commit that can be checked without the disk.
fn validate_commit(state: &AppState, req: &CommitRequest) -> Result<()> {
    let s = &state.settings;
    check_id("tx_id_invalid", "tx_id", &req.tx_id, TX_ID_LEN_MAX)?;
    if req.locks.len() > s.lock_batch_max || req.set.len() > s.lock_batch_max {
        return Err(ApiError::invalid(
            "batch_too_large",
            format!("at most {} locks and {} amounts per commit", s.lock_batch_max, s.lock_batch_max),
        ));
    }
    if req.records.len() > s.record_ops_max {
        return Err(ApiError::invalid(
            "batch_too_large",
            format!("at most {} record operations per commit", s.record_ops_max),
        ));
    }
    if req.locks.is_empty() && req.set.is_empty() && req.records.is_empty() {
        return Err(ApiError::unprocessable("empty_commit", "a commit must set an amount or write a record"));
    }
    let mut locked = HashSet::with_capacity(req.locks.len());
    for l in &req.locks {
        if !locked.insert(l.account) {
            return Err(ApiError::unprocessable(
                "duplicate_account",
                format!("account {} appears twice in locks", l.account),
            ));
        }
    }
    let mut set = HashSet::with_capacity(req.set.len());
    for a in &req.set {
        if !set.insert(a.account) {
            return Err(ApiError::unprocessable(
                "duplicate_account",
                format!("account {} appears twice in set", a.account),
            ));
        }
        if !locked.contains(&a.account) {
            return Err(ApiError::unprocessable(
                "lock_required",
                format!("account {} is set without presenting its lock", a.account),
            ));
        }
    }
    for op in &req.records {
        check_collection(op.collection())?;
        check_key(op.key())?;
        if let RecordOp::Put { value, .. } = op
            && json_len(value) > s.record_value_bytes_max
        {
            return Err(ApiError::invalid(
                "record_too_large",
                format!("a record value may be at most {} bytes", s.record_value_bytes_max),
            ));
        }
    }
    if let Some(memo) = &req.memo
        && json_len(memo) > MEMO_BYTES_MAX
    {
        return Err(ApiError::invalid("memo_too_large", format!("memo may be at most {MEMO_BYTES_MAX} bytes")));
    }
    Ok(())
}

/// Hands a validated commit to the group-commit writer and waits until it is durable.
async fn commit(state: &AppState, business: BusinessId, request: CommitRequest) -> Result<crate::api::CommitResponse> {
    validate_commit(state, &request)?;
    let mut h = Sha256::new();
    h.update(business.get().to_le_bytes());
    h.update(serde_json::to_vec(&request).map_err(|e| ApiError::Unavailable(e.to_string()))?);
    let prepared = PreparedCommit { business, request, fingerprint: h.finalize().into() };
    let (tx, rx) = oneshot::channel();
    state
        .writer
        .send(Job::Commit { prepared, reply: tx })
        .await
        .map_err(|_| ApiError::Unavailable("the writer has stopped".into()))?;
    rx.await.map_err(|_| ApiError::Unavailable("the writer has stopped".into()))?.map_err(ApiError::Commit)
}

async fn acquire(state: &AppState, business: BusinessId, req: AcquireRequest) -> Result<AcquireResponse> {
    let lease_d = lease(state, req.lease_ms)?;
    let wait_d = wait(state, req.wait_ms)?;
    if let Some(rid) = &req.request_id {
        check_id("request_id_invalid", "request_id", rid, REQUEST_ID_LEN_MAX)?;
    }
    let mut accounts = req.accounts;
    if req.read.len() > state.settings.lock_batch_max.saturating_mul(2) {
        return Err(ApiError::invalid(
            "batch_too_large",
            format!("read at most {} records per request", state.settings.lock_batch_max.saturating_mul(2)),
        ));
    }
    for r in &req.read {
        check_collection(&r.collection)?;
        check_key(&r.key)?;
    }
    if accounts.is_empty() || accounts.len() > state.settings.lock_batch_max {
        return Err(ApiError::invalid(
            "batch_too_large",
            format!("lock 1 to {} accounts per request", state.settings.lock_batch_max),
        ));
    }
    accounts.sort_unstable();
    if accounts.windows(2).any(|w| w[0] == w[1]) {
        return Err(ApiError::unprocessable("duplicate_account", "an account appears twice in the request"));
    }
    let started = std::time::Instant::now();
    let granted = state.locks.acquire(business, &accounts, lease_d, wait_d, req.request_id.as_deref()).await;
    let granted = granted.inspect_err(|_| inc(&state.metrics.lock_conflicts_total))?;
    state.metrics.lock_grants_total.fetch_add(granted.locks.len() as u64, std::sync::atomic::Ordering::Relaxed);
    if granted.waited {
        inc(&state.metrics.lock_waits_total);
        state.metrics.lock_wait_us.record(u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX));
    }
    let locks = {
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
        let read = req.read;
        blocking(move || read.iter().map(|r| store.get_record(&r.collection, &r.key)).collect()).await?
    };
    Ok(AcquireResponse { lease_ms: u64::try_from(lease_d.as_millis()).unwrap_or(u64::MAX), locks, records })
}

// ---- seed 004 routes -------------------------------------------------------------------------

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LockQuery {
    lease_ms: Option<u64>,
    wait_ms: Option<u64>,
    request_id: Option<String>,
}

pub async fn get_lock(
    caller: Caller,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    q: web::Query<LockQuery>,
) -> Result<HttpResponse> {
    let business = caller.owns(&path.0)?;
    let account = parse_account(&path.1)?;
    let q = q.into_inner();
    let req = AcquireRequest {
        accounts: vec![account],
        lease_ms: q.lease_ms,
        wait_ms: q.wait_ms,
        request_id: q.request_id,
        read: vec![],
    };
    let resp = acquire(&state, business, req).await?;
    let token = resp.locks.first().map_or(0, |l| l.token);
    Ok(HttpResponse::Ok().json(LockGrant { token, lease_ms: resp.lease_ms }))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenQuery {
    token: Option<u64>,
    tx_id: Option<String>,
}

/// A token from `?token=` or from a JSON body `{ "token": N }`.
fn token_from(q: &TokenQuery, body: &[u8]) -> Result<u64> {
    if let Some(t) = q.token {
        return Ok(t);
    }
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::invalid(
            "token_required",
            "send the lock's token as ?token=N or in the body as {\"token\": N}",
        ));
    }
    serde_json::from_slice::<TokenBody>(body)
        .map(|b| b.token)
        .map_err(|e| ApiError::invalid("invalid_body", e.to_string()))
}

pub async fn un_lock(
    caller: Caller,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    q: web::Query<TokenQuery>,
    body: web::Bytes,
) -> Result<HttpResponse> {
    let business = caller.owns(&path.0)?;
    let account = parse_account(&path.1)?;
    let token = token_from(&q, &body)?;
    state.locks.release(business, LockRef { account, token })?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "released": 1 })))
}

fn tx_id_for(req: &HttpRequest, explicit: Option<String>) -> String {
    explicit
        .or_else(|| req.headers().get("idempotency-key").and_then(|v| v.to_str().ok()).map(str::to_string))
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string())
}

async fn set_amount_common(
    state: &AppState,
    business: BusinessId,
    account: AccountId,
    amount: Money,
    token: u64,
    tx_id: String,
) -> Result<HttpResponse> {
    let mut req = CommitRequest::new(tx_id);
    req.locks.push(LockRef { account, token });
    req.set.push(SetAmount { account, amount });
    req.release = false; // seed semantics: setAmount, then unLock
    Ok(HttpResponse::Ok().json(commit(state, business, req).await?))
}

pub async fn set_amount(
    caller: Caller,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    http: HttpRequest,
    body: web::Json<SetAmountBody>,
) -> Result<HttpResponse> {
    let business = caller.owns(&path.0)?;
    let account = parse_account(&path.1)?;
    let body = body.into_inner();
    let tx_id = tx_id_for(&http, body.tx_id);
    set_amount_common(&state, business, account, body.amount, body.token, tx_id).await
}

pub async fn set_amount_path(
    caller: Caller,
    state: web::Data<AppState>,
    path: web::Path<(String, String, String)>,
    q: web::Query<TokenQuery>,
    http: HttpRequest,
) -> Result<HttpResponse> {
    let business = caller.owns(&path.0)?;
    let account = parse_account(&path.1)?;
    let amount: Money = path.2.parse().map_err(|e: shared::MoneyError| ApiError::invalid(e.code(), e.to_string()))?;
    let q = q.into_inner();
    let token = q.token.ok_or_else(|| ApiError::invalid("token_required", "send the lock's token as ?token=N"))?;
    let tx_id = tx_id_for(&http, q.tx_id);
    set_amount_common(&state, business, account, amount, token, tx_id).await
}

pub async fn get_amount(
    caller: Caller,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse> {
    let business = caller.owns(&path.0)?;
    let account = parse_account(&path.1)?;
    if state.locks.locked_by_other(business, account) {
        return Err(LockError::Locked(account).into());
    }
    posted(&state, account)
}

fn posted(state: &AppState, account: AccountId) -> Result<HttpResponse> {
    let amount = state.amounts.read().get(&account).copied();
    match amount {
        Some(amount) => Ok(HttpResponse::Ok().json(AmountBody { amount })),
        None => Err(ApiError::NotFound(format!("account {account} has never been written"))),
    }
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
            "batch_too_large",
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

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PageQuery {
    prefix: Option<String>,
    after: Option<String>,
    before: Option<u64>,
    account: Option<String>,
    limit: Option<usize>,
}

fn limit(q: &PageQuery) -> Result<usize> {
    match q.limit {
        None => Ok(PAGE_LIMIT_DEFAULT),
        Some(n) if (1..=PAGE_LIMIT_MAX).contains(&n) => Ok(n),
        Some(_) => Err(ApiError::invalid("limit_invalid", format!("limit must be from 1 to {PAGE_LIMIT_MAX}"))),
    }
}

/// Store reads are blocking calls on redb; they run off the async workers.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T, StoreError> + Send + 'static) -> Result<T> {
    web::block(f).await.map_err(|e| ApiError::Unavailable(e.to_string()))?.map_err(ApiError::from)
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
    match blocking(move || store.get_record(&collection, &key)).await? {
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
            "key_invalid",
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
            let account = parse_account(&a)?;
            blocking(move || store.account_journal(account, q.before, n)).await?
        }
        None => {
            let after = match q.after.as_deref() {
                None => 0,
                Some(s) => s
                    .parse()
                    .map_err(|_| ApiError::invalid("after_invalid", "after must be a journal sequence number"))?,
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
    posted(&state, parse_account(&path.1)?)
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
    let after = q.after.as_deref().map(parse_account).transpose()?;
    let store = state.store.clone();
    Ok(HttpResponse::Ok().json(blocking(move || store.amounts_after(after, n)).await?))
}

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
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(state.metrics.render(state.locks.held_total(), state.locks.epoch()))
}

pub async fn not_found(req: HttpRequest) -> HttpResponse {
    ApiError::NotFound(format!("no route {} {}", req.method(), req.path().chars().take(128).collect::<String>()))
        .error_response()
}

pub async fn method_not_allowed() -> HttpResponse {
    ApiError::MethodNotAllowed.error_response()
}

// ---- extractor errors as JSON (also used by the business servers: one body, one set of codes) --

pub fn json_error(err: actix_web::error::JsonPayloadError, _: &HttpRequest) -> actix_web::Error {
    use actix_web::error::JsonPayloadError as E;
    match err {
        E::OverflowKnownLength { limit, .. } | E::Overflow { limit } => ApiError::TooLarge(limit),
        E::ContentType => ApiError::MediaType,
        E::Deserialize(e) => ApiError::invalid("invalid_body", e.to_string()),
        other => ApiError::invalid("invalid_body", other.to_string()),
    }
    .into()
}

pub fn query_error(err: actix_web::error::QueryPayloadError, _: &HttpRequest) -> actix_web::Error {
    ApiError::invalid("invalid_query", err.to_string()).into()
}

pub fn path_error(err: actix_web::error::PathError, _: &HttpRequest) -> actix_web::Error {
    ApiError::invalid("invalid_path", err.to_string()).into()
}

pub fn payload_error(err: actix_web::error::PayloadError, _: &HttpRequest) -> actix_web::Error {
    match err {
        actix_web::error::PayloadError::Overflow => ApiError::TooLarge(0),
        other => ApiError::invalid("invalid_body", other.to_string()),
    }
    .into()
}

/// Every route of the API; shared by the server and the tests.
pub fn routes(cfg: &mut web::ServiceConfig) {
    fn res(path: &str) -> actix_web::Resource {
        web::resource(path).default_service(web::to(method_not_allowed))
    }
    cfg.service(res("/health").route(web::get().to(health)))
        .service(res("/metrics").route(web::get().to(metrics)))
        .service(res("/getLock/{business}/{account}").route(web::post().to(get_lock)))
        .service(res("/unLock/{business}/{account}").route(web::post().to(un_lock)))
        .service(res("/setAmount/{business}/{account}").route(web::post().to(set_amount)))
        .service(res("/setAmount/{business}/{account}/{amount}").route(web::post().to(set_amount_path)))
        .service(res("/getAmount/{business}/{account}").route(web::get().to(get_amount)))
        .service(res("/v1/{business}/locks").route(web::post().to(acquire_batch)))
        .service(res("/v1/{business}/locks/release").route(web::post().to(release_batch)))
        .service(res("/v1/{business}/commit").route(web::post().to(commit_route)))
        .service(res("/v1/{business}/amounts").route(web::get().to(amounts)))
        .service(res("/v1/{business}/amounts/{account}").route(web::get().to(posted_amount)))
        .service(res("/v1/{business}/journal").route(web::get().to(journal)))
        .service(res("/v1/{business}/records/{collection}").route(web::get().to(scan_records)))
        .service(res("/v1/{business}/records/{collection}/{key}").route(web::get().to(get_record)));
}
