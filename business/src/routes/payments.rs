//! The customers' payments API. Same-bank deposits and withdrawals are final before the answer.

use actix_web::{HttpRequest, HttpResponse, ResponseError, web};
use shared::api::{AccountPayment, Operation, OperationReceipt, Pay, Status, Transaction, TransactionType};
use shared::{BankId, Ibk};

use super::resource;
use crate::AppState;
use crate::auth::presented_key;
use crate::error::ApiError;
use crate::interbank::coordinator::{QUEUE, Queued};
use crate::interbank::settle::WireOp;
use crate::interbank::{PeerError, keys, now_ms};
use crate::ledger::{Op, Package, PackageOp, check_idempotency_key};
use crate::model::{AccountRecord, PACKAGES};
use crate::routes::accounts::session_and_account;
use crate::routes::interbank::AccountCard;
use dataserver::api::{CommitRequest, RecordOp};
#[allow(unused_imports)]
use shared::ErrorBody;
use shared::Target;

/// Seed 000's shape of a final transaction, from a ledger receipt.
pub fn final_transaction(bank: BankId, owner: Ibk, r: &OperationReceipt) -> Transaction {
    let ibk = |i: usize| Ibk::new(bank, r.balances[i.min(r.balances.len() - 1)].account);
    Transaction {
        id: r.transaction_id.clone(),
        owner,
        parent_id: None,
        kind: TransactionType::Final,
        operations: vec![Operation {
            id: r.transaction_id.clone(),
            from: ibk(0),
            to: ibk(1),
            kind: r.kind,
            amount: r.amount,
            status: Status::Success,
            created_at: r.at.clone(),
            updated_at: r.at.clone(),
        }],
        created_at: r.at.clone(),
        updated_at: r.at.clone(),
        status: Status::Success,
        reason: None,
    }
}

async fn pay_into(
    state: &AppState,
    req: &HttpRequest,
    body: AccountPayment,
    deposit: bool,
) -> Result<HttpResponse, ApiError> {
    let me = state.accounts.session(presented_key(req.headers()).ok_or(ApiError::NoSession)?).await?;
    if body.acc_ibk.bank != state.settings.bank_id {
        return Err(ApiError::WrongBank(body.acc_ibk));
    }
    let account = body.acc_ibk.account;
    state.accounts.accessible(&me, account).await?;
    let op = if deposit {
        Op::Deposit { account, amount: body.amount }
    } else {
        Op::Withdrawal { account, amount: body.amount }
    };
    let key = req.headers().get("idempotency-key").and_then(|v| v.to_str().ok());
    let receipt = state.ledger.apply(op, key).await?;
    Ok(HttpResponse::Ok().json(final_transaction(
        state.settings.bank_id,
        Ibk::new(state.settings.bank_id, me.id),
        &receipt,
    )))
}

#[utoipa::path(
    post,
    path = "/api/payments/deposit",
    tag = "payments",
    request_body = shared::api::AccountPayment,
    responses((status = 200, body = shared::api::Transaction), (status = 400, description = "bad input", body = ErrorBody), (status = 401, description = "no or wrong credentials", body = ErrorBody)),
    security(("customer" = []))
)]
pub async fn deposit(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Json<AccountPayment>,
) -> Result<HttpResponse, ApiError> {
    pay_into(&state, &req, body.into_inner(), true).await
}

#[utoipa::path(
    post,
    path = "/api/payments/withdraw",
    tag = "payments",
    request_body = shared::api::AccountPayment,
    responses((status = 200, body = shared::api::Transaction), (status = 400, description = "bad input", body = ErrorBody), (status = 401, description = "no or wrong credentials", body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("customer" = []))
)]
pub async fn withdraw(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Json<AccountPayment>,
) -> Result<HttpResponse, ApiError> {
    pay_into(&state, &req, body.into_inner(), false).await
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(resource("/api/payments/deposit").route(web::post().to(deposit)))
        .service(resource("/api/payments/withdraw").route(web::post().to(withdraw)));
}

/// `POST /api/payments/pay`. Every `from` must be held by the customer (at any bank); `to` is an
/// IBK or a Pix key, resolved now. A package within this bank is applied at once, in order, all
/// or nothing (200, `success`); one that involves other banks is stored durably and settled by
/// two-phase commit when this bank holds the token (202, `pending`; follow it at
/// `GET /api/payments/{id}`).
#[utoipa::path(
    post,
    path = "/api/payments/pay",
    tag = "payments",
    params(("Idempotency-Key" = Option<String>, Header)),
    request_body = shared::api::Pay,
    responses((status = 200, description = "same-bank package, applied", body = shared::api::Transaction), (status = 202, description = "cross-bank package, pending", body = shared::api::Transaction), (status = 400, description = "bad input", body = ErrorBody), (status = 401, description = "no or wrong credentials", body = ErrorBody), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody), (status = 429, description = "too many key lookups", body = ErrorBody)),
    security(("customer" = []))
)]
pub async fn pay(state: web::Data<AppState>, req: HttpRequest, body: web::Json<Pay>) -> Result<HttpResponse, ApiError> {
    let me = state.accounts.session(presented_key(req.headers()).ok_or(ApiError::NoSession)?).await?;
    let body = body.into_inner();
    // A payment to a key tells whether the key exists, so it draws on the customer's key-lookup
    // budget as Pix's directory does: refused while the budget is spent, and charged for each key
    // when the payment is refused (a 4xx). A payment accepted is not charged: it moved money,
    // which makes enumeration dear, and honest customers pay to keys all day.
    let keys = body.operations.iter().filter(|o| matches!(o.to, Target::Key(_))).count();
    if keys > 0 {
        super::keys::key_lookups_left(&state, &req, &me)?;
    }
    let answer = pay_as(&state, &req, &me, body).await;
    if keys > 0 && answer.as_ref().is_err_and(|e| e.status_code().is_client_error()) {
        for _ in 0..keys {
            // Counted only; the next attempt is the one refused.
            let _ = super::keys::count_key_lookup(&state, &req, &me);
        }
    }
    answer
}

async fn pay_as(state: &AppState, req: &HttpRequest, me: &AccountRecord, body: Pay) -> Result<HttpResponse, ApiError> {
    use crate::config::limits::PACKAGE_OPERATIONS_MAX;
    let bank = state.settings.bank_id;
    if body.operations.is_empty() || body.operations.len() > PACKAGE_OPERATIONS_MAX {
        return Err(ApiError::invalid(
            "operations_invalid",
            format!("a package has 1 to {PACKAGE_OPERATIONS_MAX} operations"),
        ));
    }
    if body.author.bank != bank {
        return Err(ApiError::WrongBank(body.author));
    }
    let mut ops: Vec<WireOp> = Vec::with_capacity(body.operations.len());
    for o in &body.operations {
        let to = match &o.to {
            Target::Ibk(i) => *i,
            Target::Key(k) => keys::resolve(&state.interbank, k).await?.ibk,
        };
        ops.push(WireOp { from: o.from, to, amount: o.amount });
    }
    if ops.iter().any(|o| o.from == o.to) {
        return Err(ApiError::SameAccount);
    }
    let network = state.interbank.peers.network();
    if let Some(unknown) = ops.iter().flat_map(|o| [o.from.bank, o.to.bank]).find(|b| network.bank(*b).is_none()) {
        return Err(ApiError::UnknownBank(unknown));
    }
    // The customer must hold the author account and every account debited.
    let mut checked: Vec<Ibk> = Vec::new();
    for ibk in std::iter::once(body.author).chain(ops.iter().map(|o| o.from)) {
        if checked.contains(&ibk) {
            continue;
        }
        if ibk.bank == bank {
            state.accounts.accessible(me, ibk.account).await?;
        } else {
            let path = format!("/interbank/account/ibk/{ibk}");
            let card: AccountCard =
                state.interbank.peers.call(ibk.bank, reqwest::Method::POST, &path, None::<&()>).await.map_err(|e| {
                    match e {
                        PeerError::Refused { status: 404, .. } => ApiError::AccountNotFound(ibk.account),
                        other => ApiError::Unavailable(other.to_string()),
                    }
                })?;
            if !card.documents.iter().any(|d| me.documents.contains(d)) {
                return Err(ApiError::Forbidden);
            }
        }
        checked.push(ibk);
    }
    let key = req.headers().get("idempotency-key").and_then(|v| v.to_str().ok());
    if let Some(k) = key {
        check_idempotency_key(k)?;
    }
    // With a key, the id derives from it: a repeat must be the same request, id included.
    let id = match key {
        Some(k) => {
            use sha2::Digest;
            hex::encode(&sha2::Sha256::digest(format!("package:{}:{k}", body.author).as_bytes())[..16])
        }
        None => uuid::Uuid::new_v4().simple().to_string(),
    };
    if ops.iter().all(|o| o.from.bank == bank && o.to.bank == bank) {
        let operations =
            ops.iter().map(|o| PackageOp { from: o.from.account, to: o.to.account, amount: o.amount }).collect();
        let package = Package { id, bank, author: body.author.account, operations };
        let answer = state.ledger.run(&package, key, |applied| package.transaction(&applied.at)).await?;
        return Ok(HttpResponse::Ok().json(answer));
    }
    let now = now_ms();
    let queued = Queued {
        id: id.clone(),
        author: body.author,
        author_documents: me.documents.clone(),
        ops,
        created_at: dataserver::store::rfc3339_ms(now),
        created_ms: now,
        deadline_ms: now.saturating_add(state.interbank.limits.package_deadline_ms),
        attempt: 0,
    };
    let pending = queued.transaction(Status::Pending, None);
    let mut c = CommitRequest::new(uuid::Uuid::new_v4().to_string());
    c.records.push(RecordOp::Put {
        collection: PACKAGES.into(),
        key: id.clone(),
        value: serde_json::to_value(&pending).unwrap_or_default(),
        if_version: Some(0),
    });
    c.records.push(RecordOp::Put {
        collection: QUEUE.into(),
        key: queued.queue_key(),
        value: serde_json::to_value(&queued).unwrap_or_default(),
        if_version: Some(0),
    });
    match state.ledger.ds.commit(&c).await {
        Ok(_) => Ok(HttpResponse::Accepted().json(pending)),
        // The same Idempotency-Key again: answer with the package as it stands now.
        Err(e) if e.code() == Some("condition_failed") => {
            let stored = package_record(state, &id).await?;
            if stored.owner != body.author
                || stored
                    .operations
                    .iter()
                    .map(|o| (o.from, o.to, o.amount))
                    .ne(queued.ops.iter().map(|o| (o.from, o.to, o.amount.money())))
            {
                return Err(ApiError::IdempotencyKeyReused);
            }
            Ok(HttpResponse::Accepted().json(stored))
        }
        Err(e) => Err(e.into()),
    }
}

async fn package_record(state: &AppState, id: &str) -> Result<Transaction, ApiError> {
    let r = state.ledger.ds.get_record(PACKAGES, id).await?.ok_or(ApiError::PackageNotFound)?;
    crate::model::parse_record(&r)
}

/// `GET /api/payments/{id}`: a package's status, for whoever holds its author account.
#[utoipa::path(
    get,
    path = "/api/payments/{id}",
    tag = "payments",
    params(("id" = String, Path, description = "package id")),
    responses((status = 200, body = shared::api::Transaction), (status = 400, description = "bad input", body = ErrorBody), (status = 401, description = "no or wrong credentials", body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("customer" = []))
)]
pub async fn get_package(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = path.into_inner();
    if id.is_empty() || id.len() > 64 || !id.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(ApiError::invalid("package_id_invalid", "a package id is 1 to 64 letters and digits"));
    }
    // The session first: without one, nobody learns whether a package id exists.
    state.accounts.session(presented_key(req.headers()).ok_or(ApiError::NoSession)?).await?;
    let t = package_record(&state, &id).await?;
    session_and_account(&state, &req, t.owner.account).await?;
    Ok(HttpResponse::Ok().json(t))
}

pub fn configure_pay(cfg: &mut web::ServiceConfig) {
    cfg.service(resource("/api/payments/pay").route(web::post().to(pay)))
        .service(resource("/api/payments/{id}").route(web::get().to(get_package)));
}
