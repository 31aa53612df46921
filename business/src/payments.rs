//! Customers' payments, the service behind `/api/payments`: deposits and withdrawals on an
//! account at this bank, and packages — applied at once, all or nothing, when every account is
//! here; stored for settlement by two-phase commit when another bank is involved.

use shared::api::{AccountPayment, Operation, OperationReceipt, Pay, Status, Transaction, TransactionType};
use shared::{BankId, ErrorCode, Ibk, Target};

use crate::AppState;
use crate::accounts::Vouch;
use crate::config::limits::PACKAGE_OPERATIONS_MAX;
use crate::error::ApiError;
use crate::interbank::coordinator::{self, Queued};
use crate::interbank::settle::WireOp;
use crate::interbank::{keys, now_ms};
use crate::ledger::{Op, Package, PackageOp, check_idempotency_key};
use crate::model::AccountRecord;

/// What became of a package.
#[derive(Debug)]
pub enum Paid {
    /// Within this bank: applied before the answer.
    Applied(Transaction),
    /// Across banks: stored, settled when this bank holds the token.
    Pending(Transaction),
    /// Paid on a vouch alone ([`crate::accounts::Vouch`]), nothing was stored: the caller's
    /// session must be read again and the payment made on that.
    Unverified,
}

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
        reason_code: None,
    }
}

/// A deposit into, or a withdrawal from, an account of this bank the customer may act on.
pub async fn move_money(
    state: &AppState,
    me: &AccountRecord,
    body: AccountPayment,
    deposit: bool,
    key: Option<&str>,
) -> Result<Transaction, ApiError> {
    let bank = state.settings.bank_id;
    if body.acc_ibk.bank != bank {
        return Err(ApiError::WrongBank(body.acc_ibk));
    }
    let account = body.acc_ibk.account;
    if deposit && !state.settings.customer_deposits {
        return Err(ApiError::DepositsDisabled);
    }
    state.accounts.accessible(me, account).await?;
    let receipt = if deposit {
        let op = Op::Deposit { account, amount: body.amount };
        let change = crate::ledger::CustomerDeposit {
            op,
            account,
            day: now_ms() / 86_400_000,
            day_max: state.settings.deposit_day_max.money(),
        };
        state.ledger.run(&change, key, |applied| op.receipt(applied)).await?
    } else {
        state.ledger.apply(Op::Withdrawal { account, amount: body.amount }, key).await?
    };
    Ok(final_transaction(bank, Ibk::new(bank, me.id), &receipt))
}

/// A package of operations authored by `body.author`. Every `from` must be held by the customer
/// (at any bank); every `to` is an IBK or a Pix key, resolved now.
///
/// With `vouch`, `me` is what this replica read of the session before, not read again: only a
/// cross-bank package from the session's own account to IBKs is stored on it (in a commit that
/// checks the session and the account are as read); anything else is [`Paid::Unverified`] before
/// it reads or writes a thing, and so is a commit that would not simply store it.
pub async fn pay(
    state: &AppState,
    me: &AccountRecord,
    body: &Pay,
    key: Option<&str>,
    vouch: Option<&Vouch>,
) -> Result<Paid, ApiError> {
    let bank = state.settings.bank_id;
    if body.operations.is_empty() || body.operations.len() > PACKAGE_OPERATIONS_MAX {
        return Err(ApiError::invalid(
            ErrorCode::OperationsInvalid,
            format!("a package has 1 to {PACKAGE_OPERATIONS_MAX} operations"),
        ));
    }
    if body.author.bank != bank {
        return Err(ApiError::WrongBank(body.author));
    }
    if vouch.is_some() && !vouchable(bank, me, body) {
        return Ok(Paid::Unverified);
    }
    let ops = resolve_targets(state, body).await?;
    check_holder(state, me, body.author, &ops).await?;
    if let Some(k) = key {
        check_idempotency_key(k)?;
    }
    let id = package_id(body.author, key);
    if ops.iter().all(|o| o.from.bank == bank && o.to.bank == bank) {
        if vouch.is_some() {
            return Ok(Paid::Unverified);
        }
        let operations =
            ops.iter().map(|o| PackageOp { from: o.from.account, to: o.to.account, amount: o.amount }).collect();
        let package = Package { id, bank, author: body.author.account, operations };
        let applied = state.ledger.run(&package, key, |applied| package.transaction(&applied.at)).await?;
        return Ok(Paid::Applied(applied));
    }
    let now = now_ms();
    let queued = Queued {
        id,
        author: body.author,
        person: me.person().cloned(),
        ops,
        created_at: dataserver_api::clock::rfc3339_ms(now),
        created_ms: now,
        deadline_ms: now.saturating_add(state.interbank.limits.package_deadline_ms),
    };
    if let Some(v) = vouch {
        return Ok(match coordinator::enqueue_vouched(&state.interbank, &queued, &v.conditions()).await? {
            Some(t) => Paid::Pending(t),
            None => Paid::Unverified,
        });
    }
    Ok(Paid::Pending(coordinator::enqueue(&state.interbank, &queued).await?))
}

/// Whether a payment may be stored on a vouch: every debit from the session's own account and
/// every target an IBK. A key's lookup, or another account's holder, would be answered to a
/// caller not yet read again.
fn vouchable(bank: BankId, me: &AccountRecord, body: &Pay) -> bool {
    let own = Ibk::new(bank, me.id);
    body.author == own && body.operations.iter().all(|o| o.from == own && matches!(o.to, Target::Ibk(_)))
}

/// The operations with every target an IBK of a bank of the network, none to its own origin.
async fn resolve_targets(state: &AppState, body: &Pay) -> Result<Vec<WireOp>, ApiError> {
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
    Ok(ops)
}

/// The customer must hold the author account and every account debited here. An account at
/// another bank is that bank's to authorise: it debits only on its holder's consent to this
/// bank for this person (checked at prepare), so here it only has to exist.
async fn check_holder(state: &AppState, me: &AccountRecord, author: Ibk, ops: &[WireOp]) -> Result<(), ApiError> {
    let mut checked: Vec<Ibk> = Vec::new();
    for ibk in std::iter::once(author).chain(ops.iter().map(|o| o.from)) {
        if checked.contains(&ibk) {
            continue;
        }
        if ibk.bank == state.settings.bank_id {
            state.accounts.accessible(me, ibk.account).await?;
        } else if me.person().is_none() {
            // A joint account's session is nobody in particular: no consent can name it.
            return Err(ApiError::Forbidden);
        } else {
            state.interbank.card(ibk).await?;
        }
        checked.push(ibk);
    }
    Ok(())
}

/// With a key, the id derives from it: a repeat must be the same request, id included. Without
/// one it grows with time, as commit ids do and for the same reason (`packages/{id}` is written
/// for every package: see [`dataserver_api::fresh_tx_id`]).
fn package_id(author: Ibk, key: Option<&str>) -> String {
    match key {
        Some(k) => {
            use sha2::Digest;
            hex::encode(&sha2::Sha256::digest(format!("package:{author}:{k}").as_bytes())[..16])
        }
        None => uuid::Uuid::now_v7().simple().to_string(),
    }
}

/// A package, for a customer who may act on its author account.
pub async fn package(state: &AppState, me: &AccountRecord, id: &str) -> Result<Transaction, ApiError> {
    let t = coordinator::package(&state.interbank, id).await?;
    state.accounts.accessible(me, t.owner.account).await?;
    Ok(t)
}
