//! The customers' payments API. Same-bank deposits and withdrawals are final before the answer.

use actix_web::{HttpRequest, HttpResponse, web};
use shared::api::{AccountPayment, Operation, OperationReceipt, Pay, Status, Transaction, TransactionType};
use shared::{BankId, Ibk};

use super::resource;
use crate::AppState;
use crate::accounts::may_access;
use crate::auth::presented_key;
use crate::error::ApiError;
use crate::ledger::{Op, Package, PackageOp};

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
    let target = state.accounts.record(account).await?.ok_or(ApiError::AccountNotFound(account))?;
    if !may_access(&me, &target) {
        return Err(ApiError::Forbidden);
    }
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

async fn deposit(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Json<AccountPayment>,
) -> Result<HttpResponse, ApiError> {
    pay_into(&state, &req, body.into_inner(), true).await
}

async fn withdraw(
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

/// Same-bank packages: every operation's `from` held by the customer, applied in order, all or
/// nothing, final before the answer. Cross-bank packages arrive with the interbank protocols.
async fn pay(state: web::Data<AppState>, req: HttpRequest, body: web::Json<Pay>) -> Result<HttpResponse, ApiError> {
    let me = state.accounts.session(presented_key(req.headers()).ok_or(ApiError::NoSession)?).await?;
    let body = body.into_inner();
    let bank = state.settings.bank_id;
    for ibk in std::iter::once(&body.author).chain(body.operations.iter().flat_map(|o| [&o.from, &o.to])) {
        if ibk.bank != bank {
            return Err(ApiError::invalid_unprocessable(
                "cross_bank_unsupported",
                format!("{ibk} is at another bank; packages across banks arrive with the interbank protocols"),
            ));
        }
    }
    let mut checked: Vec<shared::AccountId> = Vec::new();
    for a in std::iter::once(body.author.account).chain(body.operations.iter().map(|o| o.from.account)) {
        if checked.contains(&a) {
            continue;
        }
        let record = state.accounts.record(a).await?.ok_or(ApiError::AccountNotFound(a))?;
        if !may_access(&me, &record) {
            return Err(ApiError::Forbidden);
        }
        checked.push(a);
    }
    let operations: Vec<PackageOp> = body
        .operations
        .iter()
        .map(|o| PackageOp { from: o.from.account, to: o.to.account, amount: o.amount })
        .collect();
    let key = req.headers().get("idempotency-key").and_then(|v| v.to_str().ok());
    // With a key, the id derives from it: a repeat must be the same request, id included.
    let id = match key {
        Some(k) => {
            use sha2::Digest;
            hex::encode(&sha2::Sha256::digest(format!("package:{}:{k}", body.author).as_bytes())[..16])
        }
        None => uuid::Uuid::new_v4().simple().to_string(),
    };
    let package = Package { id, bank, author: body.author.account, operations };
    let answer = state.ledger.run(&package, key, |applied| package.transaction(&applied.at)).await?;
    Ok(HttpResponse::Ok().json(answer))
}

pub fn configure_pay(cfg: &mut web::ServiceConfig) {
    cfg.service(resource("/api/payments/pay").route(web::post().to(pay)));
}
