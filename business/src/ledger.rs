//! Changes of balances over the bank's data server: single operations (deposit, withdrawal,
//! transfer) and same-bank packages of several operations applied in order, all or nothing.
//! Both are a [`Change`], run by one engine ([`Ledger::run`]).
//!
//! Every change is two data-server round trips: take the locks of every account it touches
//! in one call (sorted, all or nothing, waiting in FIFO order — no spinning, no deadlock), then
//! one atomic commit that checks the fencing tokens and that the accounts are open, sets the new
//! balances, appends the journal entry and releases the locks. A commit whose answer was lost is
//! retried with the same transaction id and tokens, so the data server applies it at most once.

use std::time::Duration;

use dataserver_api::client::{ClientError, DataClient};
use dataserver_api::{
    AcquireRequest, AcquireResponse, CommitRequest, ErrorCode as DsCode, LockRef, RawJson, RecordKey, RecordOp,
    SetAmount,
};
use rand::Rng;
use serde::Serialize;
use shared::api::{AccountBalance, OperationKind, OperationReceipt};
use shared::{AccountId, Amount, ErrorCode, Money};

use crate::config::limits::{IDEMPOTENCY_KEY_LEN_MAX, RETRY_BACKOFF_MS_MAX, RETRY_BACKOFF_MS_MIN};
use crate::error::{ApiError, Unavailable};
use crate::model::{
    ACCOUNTS, HOLDS, HoldRecord, IDEMPOTENCY, IdempotencyRecord, PACKAGES, PENDING_HOLDERS, account_key,
};

mod batch;
pub use batch::{BatchMemo, BatchedOp, Batcher};

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

    /// The receipt of this operation once applied.
    pub fn receipt(self, applied: &Applied) -> OperationReceipt {
        OperationReceipt {
            transaction_id: applied.transaction_id.clone(),
            kind: self.kind(),
            amount: self.amount(),
            balances: applied
                .balances
                .iter()
                .map(|(account, balance)| AccountBalance { account: *account, balance: *balance })
                .collect(),
            at: applied.at.clone(),
        }
    }
}

/// A change of balances the ledger can apply atomically.
pub trait Change: Serialize {
    /// Refusals that need no state (before any lock is taken).
    fn validate(&self) -> Result<(), ApiError> {
        Ok(())
    }
    /// Accounts touched, without repeats, in the order receipts list them.
    fn accounts(&self) -> Vec<AccountId>;
    /// Accounts any step debits, even one a later step credits back.
    fn debited(&self) -> Vec<AccountId>;
    /// New balances of the touched accounts from their current ones (`None`: no such account),
    /// or the domain reason why the change cannot be made.
    fn apply(&self, current: &dyn Fn(AccountId) -> Option<Money>) -> Result<Vec<(AccountId, Money)>, ApiError>;
    /// Records read with the locks, for [`Change::records`].
    fn reads(&self) -> Vec<RecordKey> {
        Vec::new()
    }
    /// Records written in the same commit as the balances, from those [`Change::reads`] named
    /// (read under the locks, so exact until the commit), or the reason it cannot be made.
    fn records(&self, _applied: &Applied, _read: &[Option<dataserver_api::Record>]) -> Result<Vec<RecordOp>, ApiError> {
        Ok(Vec::new())
    }
}

fn debit(current: &dyn Fn(AccountId) -> Option<Money>, a: AccountId, amount: Money) -> Result<Money, ApiError> {
    let b = current(a).ok_or(ApiError::AccountNotFound(a))?;
    b.checked_sub(amount).ok_or(ApiError::InsufficientFunds { account: a, balance: b, amount })
}

fn credit(current: &dyn Fn(AccountId) -> Option<Money>, a: AccountId, amount: Money) -> Result<Money, ApiError> {
    current(a).ok_or(ApiError::AccountNotFound(a))?.checked_add(amount).ok_or(ApiError::BalanceOverflow(a))
}

impl Change for Op {
    fn validate(&self) -> Result<(), ApiError> {
        match self {
            Op::Transfer { from, to, .. } if from == to => Err(ApiError::SameAccount),
            _ => Ok(()),
        }
    }

    fn accounts(&self) -> Vec<AccountId> {
        match *self {
            Op::Deposit { account, .. } | Op::Withdrawal { account, .. } => vec![account],
            Op::Transfer { from, to, .. } => vec![from, to],
        }
    }

    fn debited(&self) -> Vec<AccountId> {
        match *self {
            Op::Deposit { .. } => vec![],
            Op::Withdrawal { account, .. } => vec![account],
            Op::Transfer { from, .. } => vec![from],
        }
    }

    fn apply(&self, current: &dyn Fn(AccountId) -> Option<Money>) -> Result<Vec<(AccountId, Money)>, ApiError> {
        Ok(match *self {
            Op::Deposit { account, amount } => vec![(account, credit(current, account, amount.money())?)],
            Op::Withdrawal { account, amount } => vec![(account, debit(current, account, amount.money())?)],
            Op::Transfer { from, to, amount } => {
                // Both checked before either is used, so the error names the real cause.
                let (f, t) = (debit(current, from, amount.money())?, credit(current, to, amount.money())?);
                vec![(from, f), (to, t)]
            }
        })
    }
}

/// The operations of a package (or of its part at one bank) as customers see them: transfers
/// with ids `{id}.{i}`, all in one status. Same-bank packages, interbank packages and statement
/// lines of settlements are all shown through this.
pub fn package_operations(
    id: &str,
    ops: impl IntoIterator<Item = (shared::Ibk, shared::Ibk, Money)>,
    status: shared::api::Status,
    created_at: &str,
    updated_at: &str,
) -> Vec<shared::api::Operation> {
    ops.into_iter()
        .enumerate()
        .map(|(i, (from, to, amount))| shared::api::Operation {
            id: format!("{id}.{i}"),
            from,
            to,
            kind: OperationKind::Transfer,
            amount,
            status,
            created_at: created_at.to_string(),
            updated_at: updated_at.to_string(),
        })
        .collect()
}

/// One operation of a same-bank package.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct PackageOp {
    pub from: AccountId,
    pub to: AccountId,
    pub amount: Amount,
}

/// A package of operations applied in order, all or nothing: a later debit may spend what an
/// earlier operation of the same package credited. Its journal memo is `{"kind": "package", ..}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename = "package")]
pub struct Package {
    pub id: String,
    pub bank: shared::BankId,
    pub author: AccountId,
    pub operations: Vec<PackageOp>,
}

impl Package {
    /// The package as customers see it (seed 000's shape), applied at `at`. Stored in the same
    /// commit as the balances (`packages/{id}`) and returned to the author.
    pub fn transaction(&self, at: &str) -> shared::api::Transaction {
        use shared::api::{Status, Transaction, TransactionType};
        let ibk = |a| shared::Ibk::new(self.bank, a);
        Transaction {
            id: self.id.clone(),
            owner: ibk(self.author),
            parent_id: None,
            kind: TransactionType::Package,
            operations: package_operations(
                &self.id,
                self.operations.iter().map(|o| (ibk(o.from), ibk(o.to), o.amount.money())),
                Status::Success,
                at,
                at,
            ),
            created_at: at.to_string(),
            updated_at: at.to_string(),
            status: Status::Success,
            reason: None,
            reason_code: None,
        }
    }
}

impl Change for Package {
    fn validate(&self) -> Result<(), ApiError> {
        use crate::config::limits::PACKAGE_OPERATIONS_MAX;
        if self.operations.is_empty() || self.operations.len() > PACKAGE_OPERATIONS_MAX {
            return Err(ApiError::invalid(
                ErrorCode::OperationsInvalid,
                format!("a package has 1 to {PACKAGE_OPERATIONS_MAX} operations"),
            ));
        }
        if self.operations.iter().any(|o| o.from == o.to) {
            return Err(ApiError::SameAccount);
        }
        Ok(())
    }

    fn accounts(&self) -> Vec<AccountId> {
        let mut out: Vec<AccountId> = Vec::new();
        for a in self.operations.iter().flat_map(|o| [o.from, o.to]) {
            if !out.contains(&a) {
                out.push(a);
            }
        }
        out
    }

    fn debited(&self) -> Vec<AccountId> {
        let mut out: Vec<AccountId> = self.operations.iter().map(|o| o.from).collect();
        out.sort_unstable();
        out.dedup();
        out
    }

    fn apply(&self, current: &dyn Fn(AccountId) -> Option<Money>) -> Result<Vec<(AccountId, Money)>, ApiError> {
        let mut running: Vec<(AccountId, Money)> = Vec::new();
        for a in self.accounts() {
            running.push((a, current(a).ok_or(ApiError::AccountNotFound(a))?));
        }
        for o in &self.operations {
            let now = |a: AccountId| running.iter().find(|(x, _)| *x == a).map(|(_, m)| *m);
            let (f, t) = (debit(&now, o.from, o.amount.money())?, credit(&now, o.to, o.amount.money())?);
            for (a, m) in running.iter_mut() {
                if *a == o.from {
                    *m = f;
                } else if *a == o.to {
                    *m = t;
                }
            }
        }
        Ok(running)
    }

    fn records(&self, applied: &Applied, _: &[Option<dataserver_api::Record>]) -> Result<Vec<RecordOp>, ApiError> {
        let stored = crate::model::StoredPackage { package: self.transaction(&applied.at), round: None, entry: None };
        let value = crate::model::json(&stored);
        Ok(vec![
            RecordOp::Put { collection: PACKAGES.into(), key: self.id.clone(), value, if_version: Some(0) },
            crate::model::account_package(self.author, crate::interbank::now_ms(), &stored),
        ])
    }
}

/// A customer's deposit (money from nowhere, enabled per bank): an [`Op::Deposit`] that also
/// counts against the account's daily allowance, `deposits/{account}` read under its lock.
#[derive(Debug, Clone)]
pub struct CustomerDeposit {
    pub op: Op,
    pub account: AccountId,
    /// Days since the Unix epoch (UTC).
    pub day: u64,
    pub day_max: Money,
}

pub const DEPOSITS: &str = "deposits";

/// How much an account received by customer deposit on `day`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct DepositDay {
    pub day: u64,
    pub total: Money,
}

impl Serialize for CustomerDeposit {
    // Journaled as the deposit it is, so statements read it as one.
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.op.serialize(s)
    }
}

impl Change for CustomerDeposit {
    fn accounts(&self) -> Vec<AccountId> {
        self.op.accounts()
    }
    fn debited(&self) -> Vec<AccountId> {
        vec![]
    }
    fn apply(&self, current: &dyn Fn(AccountId) -> Option<Money>) -> Result<Vec<(AccountId, Money)>, ApiError> {
        self.op.apply(current)
    }
    fn reads(&self) -> Vec<RecordKey> {
        vec![RecordKey::new(DEPOSITS, account_key(self.account))]
    }
    fn records(&self, _: &Applied, read: &[Option<dataserver_api::Record>]) -> Result<Vec<RecordOp>, ApiError> {
        let (prior, version) = match read.first().cloned().flatten() {
            Some(r) => (crate::model::parse_record::<DepositDay>(&r)?, r.version),
            None => (DepositDay { day: self.day, total: Money::ZERO }, 0),
        };
        let before = if prior.day == self.day { prior.total } else { Money::ZERO };
        let total = before
            .checked_add(self.op.amount())
            .filter(|t| *t <= self.day_max)
            .ok_or(ApiError::DepositLimit(self.account))?;
        Ok(vec![RecordOp::Put {
            collection: DEPOSITS.into(),
            key: account_key(self.account),
            value: crate::model::json(&DepositDay { day: self.day, total }),
            if_version: Some(version),
        }])
    }
}

/// What a change did, once durable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    pub transaction_id: String,
    /// New balance of every touched account, in [`Change::accounts`] order.
    pub balances: Vec<(AccountId, Money)>,
    pub at: String,
}

#[derive(Debug, Clone)]
pub struct Ledger {
    pub metrics: std::sync::Arc<crate::metrics::Metrics>,
    pub ds: DataClient,
    pub lock_wait_ms: u64,
    pub lease_ms: u64,
    pub attempts_max: u32,
    /// Single operations go through this replica's batching task when set ([`Batcher`]).
    pub batcher: Option<Batcher>,
}

/// Why an attempt did not complete: worth another attempt, final, or already done by a
/// concurrent repeat of the same request.
enum Outcome {
    Again(String),
    Final(ApiError),
    Replayed(Box<serde_json::Value>),
}

fn is_transport(e: &ClientError) -> bool {
    matches!(e, ClientError::Transport(_))
}

pub fn now_rfc3339() -> String {
    dataserver_api::clock::rfc3339_ms(dataserver_api::clock::now_ms())
}

async fn backoff(attempt: u32) {
    let cap = RETRY_BACKOFF_MS_MIN.saturating_mul(1 << attempt.min(8)).min(RETRY_BACKOFF_MS_MAX);
    let ms = rand::rng().random_range(cap / 2..=cap);
    tokio::time::sleep(Duration::from_millis(ms)).await;
}

/// What a debit may spend: the posted balance minus what interbank holds reserve.
fn spendable(account: AccountId, posted: Money, held: Money) -> Money {
    // Architecture Invariant: holds never exceed the posted balance (a hold is raised only on
    // available money, and every debit sees posted minus held).
    posted.checked_sub(held).unwrap_or_else(|| panic!("account {account}: held {held} exceeds posted {posted}"))
}

/// Stores a keyed operation's answer in the operation's own commit, only if the key is unused.
fn idempotency_put(key: &str, request: RawJson, response: RawJson) -> RecordOp {
    let stored = IdempotencyRecord { request, response, at_ms: dataserver_api::clock::now_ms() };
    RecordOp::Put {
        collection: IDEMPOTENCY.into(),
        key: key.into(),
        value: crate::model::json(&stored),
        if_version: Some(0),
    }
}

/// What a look for a keyed change's stored answer means: its answer, the refusal of a key reused
/// for another request, or `otherwise` when the key is unused.
fn replay(stored: Result<Option<serde_json::Value>, ApiError>, otherwise: Outcome) -> Outcome {
    match stored {
        Ok(Some(answer)) => Outcome::Replayed(Box::new(answer)),
        Ok(None) => otherwise,
        Err(e) => Outcome::Final(e),
    }
}

/// The answer stored in an idempotency record, if it was stored for this same request.
fn stored_answer<R: serde::de::DeserializeOwned>(
    record: &dataserver_api::Record,
    request: &RawJson,
) -> Result<R, ApiError> {
    let stored: IdempotencyRecord = record.value.parse().map_err(corrupt_answer)?;
    if &stored.request != request {
        return Err(ApiError::IdempotencyKeyReused);
    }
    stored.response.parse().map_err(corrupt_answer)
}

/// A stored answer that does not parse: the store's fault, never the client's.
fn corrupt_answer(e: serde_json::Error) -> ApiError {
    ApiError::Unavailable(Unavailable::Corrupt(format!("stored answer: {e}")))
}

pub fn check_idempotency_key(key: &str) -> Result<(), ApiError> {
    let ok = !key.is_empty() && key.len() <= IDEMPOTENCY_KEY_LEN_MAX && key.bytes().all(|b| b.is_ascii_graphic());
    if ok {
        Ok(())
    } else {
        Err(ApiError::invalid(
            ErrorCode::IdempotencyKeyInvalid,
            format!("Idempotency-Key must be 1 to {IDEMPOTENCY_KEY_LEN_MAX} printable ASCII characters"),
        ))
    }
}

impl Ledger {
    /// Applies `op` once, durably; with an idempotency key, a repeat returns the first receipt.
    /// Batched with the operations arriving meanwhile when this replica batches.
    pub async fn apply(&self, op: Op, idempotency_key: Option<&str>) -> Result<OperationReceipt, ApiError> {
        match &self.batcher {
            Some(b) => b.submit(op, idempotency_key).await,
            None => self.run(&op, idempotency_key, |applied| op.receipt(applied)).await,
        }
    }

    /// Applies `change` once, durably, and answers `respond(what it did)`. With an idempotency
    /// key, the answer is stored in the same commit and a repeat returns it.
    pub async fn run<C, R>(
        &self,
        change: &C,
        idempotency_key: Option<&str>,
        respond: impl Fn(&Applied) -> R,
    ) -> Result<R, ApiError>
    where
        C: Change,
        R: Serialize + serde::de::DeserializeOwned,
    {
        change.validate()?;
        let request = crate::model::json(change);
        if let Some(key) = idempotency_key {
            check_idempotency_key(key)?;
        }
        // A repeat is found by the attempt's locked read (its key is read with the locks), not
        // by a read of its own before it: one data-server request fewer for every keyed change.
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.attempt(change, idempotency_key, &request, &respond).await {
                Ok(answer) => {
                    self.metrics.operations_total.inc();
                    return Ok(answer);
                }
                Err(Outcome::Final(e)) => return Err(e),
                Err(Outcome::Replayed(stored)) => {
                    return serde_json::from_value(*stored).map_err(corrupt_answer);
                }
                Err(Outcome::Again(why)) if attempt >= self.attempts_max => {
                    return Err(ApiError::Unavailable(Unavailable::DataServer(why)));
                }
                Err(Outcome::Again(_)) => {
                    self.metrics.operation_retries_total.inc();
                    backoff(attempt).await
                }
            }
        }
    }

    /// The answer stored under `key`, if the key was used, checked to be for the same request.
    async fn stored<R: serde::de::DeserializeOwned>(
        &self,
        key: &str,
        request: &RawJson,
    ) -> Result<Option<R>, ApiError> {
        match self.ds.get_record(IDEMPOTENCY, key).await? {
            Some(record) => stored_answer(&record, request).map(Some),
            None => Ok(None),
        }
    }

    async fn attempt<C: Change, R: Serialize>(
        &self,
        change: &C,
        key: Option<&str>,
        request: &RawJson,
        respond: &impl Fn(&Applied) -> R,
    ) -> Result<R, Outcome> {
        let touched = change.accounts();
        let mut reads = change.reads();
        let read_by_change = reads.len();
        reads.extend(key.map(|k| RecordKey::new(IDEMPOTENCY, k)));
        let (grant, held) = match (self.lock(&touched, reads).await, key) {
            // Accounts held up elsewhere: a repeat of an applied change still gets its answer.
            (Err(Outcome::Final(busy @ ApiError::Busy(_))), Some(key)) => {
                return Err(replay(self.stored(key, request).await, Outcome::Final(busy)));
            }
            (locked, _) => locked?,
        };
        let locks: Vec<LockRef> = grant.locks.iter().map(|g| LockRef { account: g.account, token: g.token }).collect();
        let read = touched.len()..touched.len() + read_by_change;
        if let Some(record) = grant.records.get(read.end).and_then(Option::as_ref) {
            // The key was used: the stored answer, whatever the balances say now.
            self.release(&locks).await;
            return Err(match stored_answer(record, request) {
                Ok(answer) => Outcome::Replayed(Box::new(answer)),
                Err(e) => Outcome::Final(e),
            });
        }
        let planned = Self::plan(change, &touched, &grant, &held, &grant.records[read], key, request, respond);
        let (answer, commit) = match planned {
            Ok(planned) => planned,
            Err(e) => {
                self.release(&locks).await;
                return Err(Outcome::Final(e));
            }
        };
        self.commit_once(&commit, &touched, &change.debited(), key, request).await?;
        Ok(answer)
    }

    /// The leases on every touched account, with the posted amounts and the interbank holds on
    /// them. Holds are written only under the account's lease, so read with the grant they stay
    /// exact until our commit.
    async fn lock(
        &self,
        touched: &[AccountId],
        extra: Vec<RecordKey>,
    ) -> Result<(AcquireResponse, Vec<HoldRecord>), Outcome> {
        let mut accounts = touched.to_vec();
        accounts.sort_unstable();
        let mut read: Vec<RecordKey> = touched.iter().map(|a| RecordKey::new(HOLDS, account_key(*a))).collect();
        read.extend(extra);
        let req = AcquireRequest {
            accounts,
            lease_ms: Some(self.lease_ms),
            wait_ms: Some(self.lock_wait_ms),
            request_id: None,
            read,
        };
        let grant = match self.ds.acquire(&req).await {
            Ok(g) => g,
            Err(e) if e.code() == Some(DsCode::Locked) => return Err(Outcome::Final(ApiError::Busy(touched[0]))),
            Err(e) if is_transport(&e) => return Err(Outcome::Again(e.to_string())),
            Err(e) => return Err(Outcome::Final(e.into())),
        };
        match grant.records[..touched.len()].iter().map(HoldRecord::from_record).collect::<Result<Vec<_>, _>>() {
            Ok(held) => Ok((grant, held)),
            Err(e) => {
                let locks: Vec<LockRef> =
                    grant.locks.iter().map(|g| LockRef { account: g.account, token: g.token }).collect();
                self.release(&locks).await;
                Err(Outcome::Final(e))
            }
        }
    }

    /// The new balances and the one commit that makes them so, or the domain's refusal. No I/O:
    /// the change sees what is available (posted minus held) and the held part is added back,
    /// so a debit can never spend money reserved for a package in two-phase commit.
    #[allow(clippy::too_many_arguments)]
    fn plan<C: Change, R: Serialize>(
        change: &C,
        touched: &[AccountId],
        grant: &AcquireResponse,
        held: &[HoldRecord],
        read: &[Option<dataserver_api::Record>],
        key: Option<&str>,
        request: &RawJson,
        respond: &impl Fn(&Applied) -> R,
    ) -> Result<(R, CommitRequest), ApiError> {
        let hold_of = |a: AccountId| touched.iter().position(|t| *t == a).map_or(HoldRecord::default(), |i| held[i]);
        let available = |a: AccountId| {
            let posted = grant.locks.iter().find(|g| g.account == a).and_then(|g| g.amount)?;
            Some(spendable(a, posted, hold_of(a).held))
        };
        let balances = change
            .apply(&available)?
            .into_iter()
            .map(|(a, m)| hold_of(a).posted_after(a, available(a).unwrap_or(Money::ZERO), m).map(|p| (a, p)))
            .collect::<Result<Vec<_>, _>>()?;
        let applied = Applied { transaction_id: dataserver_api::fresh_tx_id(), balances, at: now_rfc3339() };
        let answer = respond(&applied);

        let mut commit = CommitRequest::new(applied.transaction_id.clone());
        commit.locks = grant.locks.iter().map(|g| LockRef { account: g.account, token: g.token }).collect();
        commit.set =
            applied.balances.iter().map(|(account, amount)| SetAmount { account: *account, amount: *amount }).collect();
        commit.records =
            touched.iter().map(|a| RecordOp::Present { collection: ACCOUNTS.into(), key: account_key(*a) }).collect();
        // A joint account still waiting for a holder's consent is never debited: the commit is
        // conditioned on its marker's absence, so no opening or consent can race it.
        commit.records.extend(change.debited().into_iter().map(crate::model::not_pending));
        commit.records.extend(change.records(&applied, read)?);
        if let Some(key) = key {
            commit.records.push(idempotency_put(key, request.clone(), crate::model::json(&answer)));
        }
        commit.memo = Some(dataserver_api::Memo::of(&request));
        Ok((answer, commit))
    }

    /// The same commit (same id, same tokens) until it is answered: at most once, even when an
    /// answer is lost on the way back.
    async fn commit_once(
        &self,
        commit: &CommitRequest,
        touched: &[AccountId],
        debited: &[AccountId],
        key: Option<&str>,
        request: &RawJson,
    ) -> Result<(), Outcome> {
        let mut tries = 0;
        loop {
            tries += 1;
            match self.ds.commit(commit).await {
                Ok(_) => return Ok(()),
                Err(e) if is_transport(&e) && tries < self.attempts_max => backoff(tries).await,
                Err(e) if is_transport(&e) => {
                    return Err(Outcome::Final(ApiError::Unavailable(Unavailable::OutcomeUnknown(e.to_string()))));
                }
                Err(e) => return Err(self.refused(e, touched, debited, key, request, &commit.locks).await),
            }
        }
    }

    /// Turns a refused commit into the right answer. A refused commit changed nothing.
    async fn refused(
        &self,
        e: ClientError,
        touched: &[AccountId],
        debited: &[AccountId],
        key: Option<&str>,
        request: &RawJson,
        locks: &[LockRef],
    ) -> Outcome {
        match e.code() {
            // Our lease ran out before the commit: nothing applied, take the locks again.
            Some(DsCode::LeaseExpired | DsCode::NotHolder) => Outcome::Again(e.to_string()),
            Some(DsCode::RecordAbsent) => {
                self.release(locks).await;
                // Which account was closed meanwhile? Ask; this path is rare.
                for a in touched {
                    if let Ok(None) = self.ds.get_record(ACCOUNTS, &account_key(*a)).await {
                        return Outcome::Final(ApiError::AccountNotFound(*a));
                    }
                }
                Outcome::Again(e.to_string())
            }
            // A debited joint account is waiting for its holders, or the idempotency record
            // appeared since we looked (a concurrent repeat won).
            Some(DsCode::ConditionFailed) => {
                self.release(locks).await;
                for a in debited {
                    if let Ok(Some(_)) = self.ds.get_record(PENDING_HOLDERS, &account_key(*a)).await {
                        return Outcome::Final(ApiError::PendingHolders(*a));
                    }
                }
                let Some(key) = key else { return Outcome::Final(e.into()) };
                replay(self.stored(key, request).await, Outcome::Again(e.to_string()))
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
