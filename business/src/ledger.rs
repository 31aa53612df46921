//! The money operations of the operator API, over the bank's data server.
//!
//! Every operation is two data-server round trips: take the locks of every account it touches
//! in one call (sorted, all or nothing, waiting in FIFO order — no spinning, no deadlock), then
//! one atomic commit that checks the fencing tokens and that the accounts are open, sets the new
//! balances, appends the journal entry and releases the locks. A commit whose answer was lost is
//! retried with the same transaction id and tokens, so the data server applies it at most once.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use dataserver::api::{AcquireRequest, CommitRequest, LockRef, RecordOp, SetAmount};
use dataserver::client::{ClientError, DataClient};
use rand::Rng;
use serde::Serialize;
use shared::api::{AccountBalance, OperationKind, OperationReceipt};
use shared::{AccountId, Amount, Money};

use crate::config::limits::{IDEMPOTENCY_KEY_LEN_MAX, RETRY_BACKOFF_MS_MAX, RETRY_BACKOFF_MS_MIN};
use crate::error::ApiError;
use crate::model::{ACCOUNTS, IDEMPOTENCY, IdempotencyRecord, account_key};

/// Also the journal memo of every operation, from which statements are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Op {
    Deposit { account: AccountId, amount: Amount },
    Withdrawal { account: AccountId, amount: Amount },
    Transfer { from: AccountId, to: AccountId, amount: Amount },
}

impl Op {
    pub fn kind(self) -> OperationKind {
        match self {
            Op::Deposit { .. } => OperationKind::Deposit,
            Op::Withdrawal { .. } => OperationKind::Withdrawal,
            Op::Transfer { .. } => OperationKind::Transfer,
        }
    }

    pub fn amount(self) -> Money {
        match self {
            Op::Deposit { amount, .. } | Op::Withdrawal { amount, .. } | Op::Transfer { amount, .. } => amount.money(),
        }
    }

    /// Accounts touched, in receipt order (origin first).
    fn accounts(self) -> Vec<AccountId> {
        match self {
            Op::Deposit { account, .. } | Op::Withdrawal { account, .. } => vec![account],
            Op::Transfer { from, to, .. } => vec![from, to],
        }
    }

    /// New balances from the current ones, or the domain reason why not.
    fn apply(self, current: impl Fn(AccountId) -> Option<Money>) -> Result<Vec<(AccountId, Money)>, ApiError> {
        let balance = |a| current(a).ok_or(ApiError::AccountNotFound(a));
        let debit = |a, amount: Money| {
            let b = balance(a)?;
            b.checked_sub(amount).ok_or(ApiError::InsufficientFunds { account: a, balance: b, amount })
        };
        let credit = |a, amount: Money| balance(a)?.checked_add(amount).ok_or(ApiError::BalanceOverflow(a));
        Ok(match self {
            Op::Deposit { account, amount } => vec![(account, credit(account, amount.money())?)],
            Op::Withdrawal { account, amount } => vec![(account, debit(account, amount.money())?)],
            Op::Transfer { from, to, amount } => {
                // Both checked before either is used, so the error names the real cause.
                let (f, t) = (debit(from, amount.money())?, credit(to, amount.money())?);
                vec![(from, f), (to, t)]
            }
        })
    }
}

#[derive(Debug, Clone)]
pub struct Ledger {
    pub metrics: std::sync::Arc<crate::metrics::Metrics>,
    pub ds: DataClient,
    pub lock_wait_ms: u64,
    pub lease_ms: u64,
    pub attempts_max: u32,
}

/// Why an attempt did not complete: worth another attempt, final, or already done by a
/// concurrent repeat of the same request.
enum Outcome {
    Again(String),
    Final(ApiError),
    Replayed(Box<OperationReceipt>),
}

fn is_transport(e: &ClientError) -> bool {
    matches!(e, ClientError::Transport(_))
}

fn now_rfc3339() -> String {
    let ms = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(0));
    dataserver::store::rfc3339_ms(ms)
}

async fn backoff(attempt: u32) {
    let cap = RETRY_BACKOFF_MS_MIN.saturating_mul(1 << attempt.min(8)).min(RETRY_BACKOFF_MS_MAX);
    let ms = rand::rng().random_range(cap / 2..=cap);
    tokio::time::sleep(Duration::from_millis(ms)).await;
}

pub fn check_idempotency_key(key: &str) -> Result<(), ApiError> {
    let ok = !key.is_empty() && key.len() <= IDEMPOTENCY_KEY_LEN_MAX && key.bytes().all(|b| b.is_ascii_graphic());
    if ok {
        Ok(())
    } else {
        Err(ApiError::invalid(
            "idempotency_key_invalid",
            format!("Idempotency-Key must be 1 to {IDEMPOTENCY_KEY_LEN_MAX} printable ASCII characters"),
        ))
    }
}

impl Ledger {
    /// Applies `op` once, durably; with an idempotency key, a repeat returns the first receipt.
    pub async fn apply(&self, op: Op, idempotency_key: Option<&str>) -> Result<OperationReceipt, ApiError> {
        if let Op::Transfer { from, to, .. } = op
            && from == to
        {
            return Err(ApiError::SameAccount);
        }
        let request = serde_json::to_value(op).map_err(|e| ApiError::Unavailable(e.to_string()))?;
        if let Some(key) = idempotency_key {
            check_idempotency_key(key)?;
            if let Some(stored) = self.stored(key, &request).await? {
                return Ok(stored);
            }
        }
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.attempt(op, idempotency_key, &request).await {
                Ok(receipt) => {
                    self.metrics.operations_total.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    return Ok(receipt);
                }
                Err(Outcome::Final(e)) => return Err(e),
                Err(Outcome::Replayed(receipt)) => return Ok(*receipt),
                Err(Outcome::Again(why)) if attempt >= self.attempts_max => return Err(ApiError::Unavailable(why)),
                Err(Outcome::Again(_)) => {
                    self.metrics.operation_retries_total.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    backoff(attempt).await
                }
            }
        }
    }

    /// The receipt stored under `key`, if the key was used, checked to be for the same request.
    async fn stored(&self, key: &str, request: &serde_json::Value) -> Result<Option<OperationReceipt>, ApiError> {
        let Some(record) = self.ds.get_record(IDEMPOTENCY, key).await? else { return Ok(None) };
        let stored: IdempotencyRecord =
            serde_json::from_value(record.value).map_err(|e| ApiError::Unavailable(format!("stored receipt: {e}")))?;
        if &stored.request != request {
            return Err(ApiError::IdempotencyKeyReused);
        }
        Ok(Some(stored.receipt))
    }

    async fn attempt(
        &self,
        op: Op,
        key: Option<&str>,
        request: &serde_json::Value,
    ) -> Result<OperationReceipt, Outcome> {
        let mut accounts = op.accounts();
        accounts.sort_unstable();
        let req = AcquireRequest {
            accounts,
            lease_ms: Some(self.lease_ms),
            wait_ms: Some(self.lock_wait_ms),
            request_id: None,
        };
        let grant = match self.ds.acquire(&req).await {
            Ok(g) => g,
            Err(e) if e.code() == Some("locked") => return Err(Outcome::Final(ApiError::Busy(op.accounts()[0]))),
            Err(e) if is_transport(&e) => return Err(Outcome::Again(e.to_string())),
            Err(e) => return Err(Outcome::Final(e.into())),
        };
        let locks: Vec<LockRef> = grant.locks.iter().map(|g| LockRef { account: g.account, token: g.token }).collect();
        let balances = match op.apply(|a| grant.locks.iter().find(|g| g.account == a).and_then(|g| g.amount)) {
            Ok(b) => b,
            Err(e) => {
                self.release(&locks).await;
                return Err(Outcome::Final(e));
            }
        };

        let receipt = OperationReceipt {
            transaction_id: uuid::Uuid::new_v4().to_string(),
            kind: op.kind(),
            amount: op.amount(),
            balances: balances
                .iter()
                .map(|(account, balance)| AccountBalance { account: *account, balance: *balance })
                .collect(),
            at: now_rfc3339(),
        };
        let mut commit = CommitRequest::new(receipt.transaction_id.clone());
        commit.locks = locks.clone();
        commit.set =
            balances.iter().map(|(account, amount)| SetAmount { account: *account, amount: *amount }).collect();
        commit.records = op
            .accounts()
            .into_iter()
            .map(|a| RecordOp::Present { collection: ACCOUNTS.into(), key: account_key(a) })
            .collect();
        if let Some(key) = key {
            let stored = IdempotencyRecord { request: request.clone(), receipt: receipt.clone() };
            commit.records.push(RecordOp::Put {
                collection: IDEMPOTENCY.into(),
                key: key.into(),
                value: serde_json::to_value(&stored)
                    .map_err(|e| Outcome::Final(ApiError::Unavailable(e.to_string())))?,
                if_version: Some(0),
            });
        }
        commit.memo = Some(request.clone());

        // The same commit (same id, same tokens) until it is answered: at most once, even when
        // an answer is lost on the way back.
        let mut tries = 0;
        loop {
            tries += 1;
            match self.ds.commit(&commit).await {
                Ok(_) => return Ok(receipt),
                Err(e) if is_transport(&e) && tries < self.attempts_max => backoff(tries).await,
                Err(e) if is_transport(&e) => {
                    return Err(Outcome::Final(ApiError::Unavailable(format!(
                        "the outcome is unknown ({e}); repeat the request with the same Idempotency-Key"
                    ))));
                }
                Err(e) => return Err(self.refused(e, op, key, request, &locks).await),
            }
        }
    }

    /// Turns a refused commit into the right answer. A refused commit changed nothing.
    async fn refused(
        &self,
        e: ClientError,
        op: Op,
        key: Option<&str>,
        request: &serde_json::Value,
        locks: &[LockRef],
    ) -> Outcome {
        match e.code() {
            // Our lease ran out before the commit: nothing applied, take the locks again.
            Some("lease_expired" | "not_holder") => Outcome::Again(e.to_string()),
            Some("record_absent") => {
                self.release(locks).await;
                // Which account was closed meanwhile? Ask; this path is rare.
                for a in op.accounts() {
                    if let Ok(None) = self.ds.get_record(ACCOUNTS, &account_key(a)).await {
                        return Outcome::Final(ApiError::AccountNotFound(a));
                    }
                }
                Outcome::Again(e.to_string())
            }
            // The idempotency record appeared since we looked: a concurrent repeat won.
            Some("condition_failed") if key.is_some() => {
                self.release(locks).await;
                match self.stored(key.unwrap_or_default(), request).await {
                    Ok(Some(receipt)) => Outcome::Replayed(Box::new(receipt)),
                    Ok(None) => Outcome::Again(e.to_string()),
                    Err(err) => Outcome::Final(err),
                }
            }
            _ => {
                self.release(locks).await;
                Outcome::Final(e.into())
            }
        }
    }

    /// Best effort: a lease we fail to release expires by itself.
    async fn release(&self, locks: &[LockRef]) {
        if let Err(e) = self.ds.release(locks).await {
            tracing::warn!(error = %e, "releasing locks failed; they will expire");
        }
    }

    /// The posted balance of an open account.
    pub async fn balance(&self, account: AccountId) -> Result<Money, ApiError> {
        if self.ds.get_record(ACCOUNTS, &account_key(account)).await?.is_none() {
            return Err(ApiError::AccountNotFound(account));
        }
        self.ds.posted_amount(account).await?.ok_or(ApiError::AccountNotFound(account))
    }
}
