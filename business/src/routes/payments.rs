//! The customers' payments API. Same-bank deposits and withdrawals are final before the answer.

use actix_web::{HttpRequest, HttpResponse, web};
use shared::api::{AccountPayment, Operation, OperationReceipt, Status, Transaction, TransactionType};
use shared::{BankId, Ibk};

use super::resource;
use crate::AppState;
use crate::accounts::may_access;
use crate::auth::presented_key;
use crate::error::ApiError;
use crate::ledger::Op;

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
