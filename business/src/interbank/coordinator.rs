//! The author bank's side of two-phase commit: packages wait in `queue/`, and the replica
//! working the token settles them in rounds — prepare at every involved bank in parallel (one
//! batched request per bank), decide with the engine, record the round's decisions durably in
//! one commit, then deliver them (again one request per bank). The round is the unit of the
//! coordinator's records:
//!
//! * `queue/{created_ms:013}-{id}` — a package waiting. It is not rewritten per attempt.
//! * `ring/state` — carries the number of the last round started (`round`) and the round not
//!   yet decided (`open_round`). A round's number is its attempts' id: `{package}.{round}`.
//! * `rounds/{round:020}` — written when the round starts (its packages and their banks), in
//!   the same commit that moves `ring/state` to it, and again, once, when it is decided (the
//!   packages committed). A participant's inquiry about an attempt of a round still open adds
//!   the package to the round's presumed aborts; the decision's commit is conditioned on the
//!   record's version, so that package is then dropped from the round (presumed abort).
//! * `undelivered/{round:020}` — the round's decisions some bank has not acknowledged yet;
//!   redelivered at every round (its first page, to banks that answer) and by every replica's
//!   recovery until they are.
//!
//! A round left open (its replica failed, or lost its lease mid-round) is closed by whoever
//! works the token next, before anything else: all its attempts aborted, and the rollbacks
//! delivered to their banks, so a package's next attempt never finds the last one's holds.

use std::collections::{BTreeMap, BTreeSet};

use dataserver_api::client::DataClient;
use dataserver_api::{CommitRequest, ErrorCode as DsCode, RecordOp};
use futures::future::join_all;
use reqwest::Method;
use serde::{Deserialize, Serialize};
use shared::api::{Status, Transaction, TransactionType};
use shared::{BankId, Document, ErrorCode, Ibk};

use super::engine::{Answer, Inquiry, Round};
use super::participant::{
    self, Decisions, FinishRequest, FinishResponse, PrepareItem, PrepareRequest, PrepareResponse,
};
use super::settle::{Decision, WireOp};
use super::{Interbank, PeerError, now_ms};
use crate::error::{ApiError, Unavailable};
use crate::model::{PACKAGES, StoredPackage};
use crate::model::{json, parse_record as parse};

pub const QUEUE: &str = "queue";
pub const ROUNDS: &str = "rounds";
pub const UNDELIVERED: &str = "undelivered";
/// `counters/settled`: packages this bank settled as author, for the operator console.
const SETTLED_COUNTER: &str = "settled";

/// The bank's count of packages settled as author (0 before the first).
pub async fn settled_total(ib: &Interbank) -> Result<u64, ApiError> {
    Ok(match ib.ds.get_record(crate::model::COUNTERS, SETTLED_COUNTER).await? {
        Some(r) => r.value.parse::<u64>().unwrap_or(0),
        None => 0,
    })
}

/// A package waiting for settlement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Queued {
    pub id: String,
    pub author: Ibk,
    /// The person who submitted it (see [`super::participant::PrepareItem::person`]).
    #[serde(default)]
    pub person: Option<Document>,
    pub ops: Vec<WireOp>,
    pub created_at: String,
    pub created_ms: u64,
    pub deadline_ms: u64,
}

/// Stores a cross-bank package for settlement: its customer-facing record and its queue entry,
/// in one commit. Submitted again under the same id (an `Idempotency-Key` repeated), it answers
/// the package as it stands if the request is the same, and `IdempotencyKeyReused` if not.
pub async fn enqueue(ib: &Interbank, queued: &Queued) -> Result<Transaction, ApiError> {
    Ok(enqueue_on(ib, queued, &[]).await?.expect("a caller read now is answered in full"))
}

/// [`enqueue`] for a caller this replica has not read again ([`crate::accounts::Vouch`]): the
/// commit's first `conditions` are the caller's session and account at the versions read
/// before, so a session ended or an account changed since is refused by the data server,
/// atomically with the write. `None` — nothing stored, read the caller again — where the answer
/// would tell more than a busy bank before those conditions held: a condition failed (a stale
/// caller, or the package is already stored) or the author's own bound was met. Once the
/// commit passed the conditions (refused only for a bound), the caller is proven and answered
/// as [`enqueue`] answers.
pub async fn enqueue_vouched(
    ib: &Interbank,
    queued: &Queued,
    conditions: &[RecordOp],
) -> Result<Option<Transaction>, ApiError> {
    assert!(!conditions.is_empty(), "a vouched enqueue carries its caller's conditions");
    enqueue_on(ib, queued, conditions).await
}

async fn enqueue_on(ib: &Interbank, queued: &Queued, conditions: &[RecordOp]) -> Result<Option<Transaction>, ApiError> {
    let vouched = !conditions.is_empty();
    let author_prefix = crate::model::account_packages_prefix(queued.author.account);
    // Under pressure (a bound met lately), look at the bank's queue with one read before
    // committing: a refused commit still costs the writer a logged, fsynced entry, and under
    // overload most submissions are refused. The commit's own conditions below stay the guard
    // (the read can be stale), and without pressure they are all there is.
    let author = queued.author.account;
    let (known, pressed) = {
        let admission = ib.admission.lock();
        (admission.refused(author, now_ms(), &ib.limits), admission.pressed(now_ms()))
    };
    use crate::metrics::Refused;
    let full = match known {
        Some(full) => Err((full, Refused::Memory)),
        // No bound met lately: the commit below decides alone.
        None if !pressed => Ok(()),
        None => {
            // Learnt only from what the data server said: a refusal from memory must not
            // prolong itself (an author retrying would then be refused for ever).
            let waiting = queue_waiting_shared(ib).await?;
            if waiting >= ib.limits.settlement_queue_max {
                let full = ApiError::SettlementBusy(ib.limits.settlement_queue_max);
                ib.admission.lock().learn(author, &full, now_ms(), &ib.limits);
                Err((full, Refused::Look))
            } else {
                // A queue at most half full: the pressure is over (a round drained it), and
                // the next submissions commit at once instead of each paying this read.
                if waiting.saturating_mul(2) <= ib.limits.settlement_queue_max {
                    ib.admission.lock().relieve();
                }
                Ok(())
            }
        }
    };
    if let Err((full, at)) = full {
        // A busy bank is what the door tells anyone (`routes::payments::shed`); the author's
        // own queue, or its package stored, only a caller read now.
        let refused = |full| {
            ib.metrics.refused(at);
            Err(full)
        };
        if vouched {
            return match full {
                ApiError::SettlementBusy(_) => refused(full),
                _ => Ok(None),
            };
        }
        return match package(ib, &queued.id).await {
            Ok(stored) => same_package(queued, stored).map(Some),
            Err(ApiError::PackageNotFound) => refused(full),
            Err(e) => Err(e),
        };
    }
    let (c, pending) = enqueue_commit(ib, queued, &author_prefix, conditions);
    match ib.commits.commit(c).await {
        Ok(_) => Ok(Some(pending)),
        // Which bound, as the data server names it: the author's own (checked first), or the
        // bank's. It used to be found by reading both after the refusal, two more requests on
        // the path every refusal of an overloaded bank took. The conditions come first, so a
        // bound met means a vouched caller's held.
        Err(e) if e.code() == Some(DsCode::CountReached) => {
            let full = if e.count_reached_under() == Some(author_prefix.as_str()) {
                ApiError::PackagesPending(ib.limits.pending_per_account_max)
            } else {
                ApiError::SettlementBusy(ib.limits.settlement_queue_max)
            };
            ib.admission.lock().learn(author, &full, now_ms(), &ib.limits);
            // A vouched caller's `429` is answered only after the caller is read again, and
            // that second try is refused from memory: counted there, once.
            if !(vouched && matches!(full, ApiError::PackagesPending(_))) {
                ib.metrics.refused(Refused::Commit);
            }
            Err(full)
        }
        Err(e) if e.code() == Some(DsCode::ConditionFailed) && vouched => Ok(None),
        Err(e) if e.code() == Some(DsCode::ConditionFailed) => {
            same_package(queued, package(ib, &queued.id).await?).map(Some)
        }
        Err(e) => Err(e.into()),
    }
}

/// The commit that stores `queued`: its package record and queue entry, after `conditions` (a
/// vouched caller's, see [`enqueue_vouched`]) and before the queue's bounds (the author's under
/// `author_prefix`, then the bank's).
fn enqueue_commit(
    ib: &Interbank,
    queued: &Queued,
    author_prefix: &str,
    conditions: &[RecordOp],
) -> (CommitRequest, Transaction) {
    let pending = queued.transaction(Status::Pending, None);
    let submitted = StoredPackage {
        package: pending.clone(),
        round: None,
        entry: Some(crate::model::account_package_key(queued.author.account, queued.created_ms, &queued.id)),
    };
    let mut c = CommitRequest::fresh();
    c.records.extend_from_slice(conditions);
    c.records.push(RecordOp::Put {
        collection: PACKAGES.into(),
        key: queued.id.clone(),
        value: json(&submitted),
        if_version: Some(0),
    });
    // Its statement entry is written when it is decided: until then the queue is where the
    // statement finds it ([`waiting`]).
    c.records.push(RecordOp::Put {
        collection: QUEUE.into(),
        key: queued.queue_key(),
        value: json(queued),
        if_version: Some(0),
    });
    // Bounded, per account and per bank, by conditions of this very commit: concurrent
    // submissions through every replica cannot race past them, and a refused one stores nothing.
    // They come after the package's own `if_version: 0`, so a repeated submission is answered
    // as one even when the queue is full. The queue's keys start with the author's account, so
    // the queue itself is what is counted per author (a marker per package beside it cost two
    // more writes per package).
    c.records.push(RecordOp::Fewer {
        collection: QUEUE.into(),
        prefix: author_prefix.to_owned(),
        than: ib.limits.pending_per_account_max,
    });
    c.records.push(RecordOp::Fewer {
        collection: QUEUE.into(),
        prefix: String::new(),
        than: ib.limits.settlement_queue_max,
    });
    (c, pending)
}

/// How many packages wait in the bank's queue, as one read sees it.
async fn queue_waiting(ib: &Interbank) -> Result<u64, ApiError> {
    Ok(ib.ds.scan_records(QUEUE, "", None, 1).await?.count.unwrap_or(0))
}

/// [`queue_waiting`], read once for every submission that looks while the read is out. Under
/// pressure each submission looks before committing, and at 1,200 submissions a second on a
/// replica several looks were out at once, each a data-server request for the same number.
/// A read that fails is made again alone, so that its caller is told why.
async fn queue_waiting_shared(ib: &Interbank) -> Result<u64, ApiError> {
    use futures::FutureExt;
    /// Ends this submission's share of the look however its future ends (an answer, or a
    /// caller gone), so that a look is never left out for later submissions to wait on.
    struct Share<'a>(&'a Interbank, u64);
    impl Drop for Share<'_> {
        fn drop(&mut self) {
            self.0.admission.lock().look_ended(self.1);
        }
    }
    let (id, answer) = ib.admission.lock().look(|| {
        let ib = ib.clone();
        async move { queue_waiting(&ib).await.ok() }.boxed()
    });
    let share = Share(ib, id);
    let answer = answer.await;
    drop(share);
    match answer {
        Some(waiting) => Ok(waiting),
        None => queue_waiting(ib).await,
    }
}

/// The stored package submitted again under its id: the same request gets it as it stands,
/// another gets `IdempotencyKeyReused`.
fn same_package(queued: &Queued, stored: Transaction) -> Result<Transaction, ApiError> {
    let same_ops = stored
        .operations
        .iter()
        .map(|o| (o.from, o.to, o.amount))
        .eq(queued.ops.iter().map(|o| (o.from, o.to, o.amount.money())));
    if stored.owner != queued.author || !same_ops {
        return Err(ApiError::IdempotencyKeyReused);
    }
    Ok(stored)
}

/// A package as its author sees it (`PackageNotFound` when there is none).
pub async fn package(ib: &Interbank, id: &str) -> Result<Transaction, ApiError> {
    let r = ib.ds.get_record(PACKAGES, id).await?.ok_or(ApiError::PackageNotFound)?;
    let mut shown = shown(&ib.ds, std::slice::from_ref(&r)).await?;
    Ok(shown.pop().expect("one package shown per record"))
}

/// Packages as their authors see them, in order, from their records: `packages/` records (as
/// submitted) or `account_packages/` entries (as decided). A package submitted for settlement
/// is read in its entry once it has one, and `pending` until then. `success` is read, not
/// written (issue 13: it was one more write per package, and a read and a commit per
/// delivery): a package confirmed is applied everywhere once its round's `undelivered/`
/// record no longer owes any bank its commit. That record only ever loses owed banks (each
/// delivery's write is conditioned on the version it read), so a package read as `success` is
/// never read `confirmed` again. Each kind of record is read for all the packages at once.
pub async fn shown(ds: &DataClient, records: &[dataserver_api::Record]) -> Result<Vec<Transaction>, ApiError> {
    use crate::model::{ACCOUNT_PACKAGES, AccountPackage};
    let read = |keys: Vec<dataserver_api::RecordKey>| read_records(ds, keys);
    // A `packages/` record or a decided entry is a stored package; an entry from before decided
    // states lived in entries only names its package, whose record is then its state.
    let mut stored: Vec<Option<StoredPackage>> = Vec::with_capacity(records.len());
    let mut pointed: Vec<dataserver_api::RecordKey> = Vec::new();
    for r in records {
        stored.push(if r.collection != ACCOUNT_PACKAGES {
            Some(parse(r)?)
        } else {
            match parse(r)? {
                AccountPackage::Decided(s) => Some(s),
                AccountPackage::Pointer { id } => {
                    pointed.push(dataserver_api::RecordKey::new(PACKAGES, id));
                    None
                }
            }
        });
    }
    let mut found = read(pointed).await?.into_iter();
    for (s, r) in stored.iter_mut().zip(records) {
        if s.is_none() && r.collection == ACCOUNT_PACKAGES {
            *s = found.next().flatten().map(|r| parse(&r)).transpose()?;
        }
    }
    // Submitted for settlement: decided once its entry holds its decided state (an entry of the
    // old layout, `{ "id" }`, is the index of a package still waiting).
    let keys: Vec<Option<String>> = stored.iter().map(|s| s.as_ref().and_then(StoredPackage::entry_key)).collect();
    let mut decided =
        read(keys.iter().flatten().map(|k| dataserver_api::RecordKey::new(ACCOUNT_PACKAGES, k.clone())).collect())
            .await?
            .into_iter();
    for (s, key) in stored.iter_mut().zip(&keys) {
        if let (Some(s), Some(_)) = (s, key)
            && let Some(r) = decided.next().flatten()
            && let AccountPackage::Decided(d) = parse(&r)?
        {
            *s = d;
        }
    }
    let rounds: Vec<String> = stored
        .iter()
        .flatten()
        .filter(|s| s.package.status == Status::Confirmed)
        .filter_map(|s| s.round.clone())
        .collect::<BTreeSet<String>>()
        .into_iter()
        .collect();
    let mut owed: BTreeMap<String, Undelivered> = BTreeMap::new();
    let undelivered = read(rounds.iter().map(|k| dataserver_api::RecordKey::new(UNDELIVERED, k.clone())).collect());
    for (k, r) in rounds.iter().zip(undelivered.await?) {
        if let Some(r) = r {
            owed.insert(k.clone(), parse(&r)?);
        }
    }
    Ok(stored.into_iter().flatten().map(|s| view(s, |round| owed.get(round))).collect())
}

/// The packages `author` submitted that wait for settlement, as it sees them, newest first:
/// they have no statement entry yet. There are at most `--pending-packages-per-account-max` of
/// them, which is at most [`dataserver_api::FEWER_PREFIX_THAN_MAX`] (one page).
pub async fn waiting(ds: &DataClient, author: shared::AccountId) -> Result<Vec<Transaction>, ApiError> {
    let max = usize::try_from(dataserver_api::FEWER_PREFIX_THAN_MAX).unwrap_or(usize::MAX);
    let page = ds.scan_records(QUEUE, &crate::model::account_packages_prefix(author), None, max).await?;
    let mut out: Vec<Transaction> = page
        .records
        .iter()
        .map(|r| Ok(parse::<Queued>(r)?.transaction(Status::Pending, None)))
        .collect::<Result<_, ApiError>>()?;
    out.reverse();
    Ok(out)
}

/// A page of the packages `author` authored, as it sees them, and the cursor of the next: with
/// no cursor, those still waiting first (newest first), then a page of at most `limit` decided
/// ones from after `before` (newest first). The queue is read before the entries: a package
/// decided in between is then found in both, and shown once, decided (read the other way round,
/// it would be in neither).
pub async fn authored(
    ds: &DataClient,
    author: shared::AccountId,
    before: Option<&str>,
    limit: usize,
) -> Result<(Vec<Transaction>, Option<String>), ApiError> {
    let mut waiting = if before.is_none() { waiting(ds, author).await? } else { Vec::new() };
    let prefix = crate::model::account_packages_prefix(author);
    let index = ds.scan_records(crate::model::ACCOUNT_PACKAGES, &prefix, before, limit).await?;
    let decided = shown(ds, &index.records).await?;
    waiting.retain(|w| !decided.iter().any(|d| d.id == w.id));
    waiting.extend(decided);
    Ok((waiting, index.next))
}

/// Records read in one request by [`read_records`], at most.
pub const SHOWN_READ_KEYS_MAX: usize = 256;

/// The records of `keys`, in order, read [`SHOWN_READ_KEYS_MAX`] to a request.
pub async fn read_records(
    ds: &DataClient,
    keys: Vec<dataserver_api::RecordKey>,
) -> Result<Vec<Option<dataserver_api::Record>>, ApiError> {
    let mut out = Vec::with_capacity(keys.len());
    for chunk in keys.chunks(SHOWN_READ_KEYS_MAX) {
        out.extend(ds.get_records(chunk.to_vec()).await?);
    }
    Ok(out)
}

/// A stored package as its author sees it, `owed` giving each round's undelivered decisions
/// (`None`: none left).
fn view<'a>(s: StoredPackage, owed: impl Fn(&str) -> Option<&'a Undelivered>) -> Transaction {
    let applied = match (&s.round, s.package.status) {
        (Some(round), Status::Confirmed) => {
            !owed(round).is_some_and(|u| u.owed.iter().any(|o| o.commit && o.package == s.package.id))
        }
        _ => false,
    };
    if applied { succeeded_everywhere(s.package) } else { s.package }
}

/// A page of the queue after `after` that reached its end, followed by the `head` of the queue
/// up to `after` (a page from its start): each entry once, in sweep order.
fn wrap_page(tail: &mut Vec<dataserver_api::Record>, head: Vec<dataserver_api::Record>, after: &str) {
    tail.extend(head.into_iter().take_while(|r| r.key.as_str() <= after));
}

/// The cursor a sweep of the queue starts after to begin with author `sweep_from`'s packages
/// (`None`: the queue's start).
pub fn sweep_cursor(sweep_from: u64) -> Option<String> {
    shared::AccountId::new(sweep_from).ok().map(crate::model::account_packages_prefix)
}

impl Queued {
    /// Its key in `queue/`: under its author's prefix ([`crate::model::account_packages_prefix`]),
    /// so that the data server counts an author's waiting packages by prefix, then in the order
    /// they came. Rounds take the queue a page at a time from where the last one stopped,
    /// wrapping at its end, so every author's packages are reached once per sweep.
    pub fn queue_key(&self) -> String {
        format!("{}{:013}-{}", crate::model::account_packages_prefix(self.author.account), self.created_ms, self.id)
    }

    /// The id of its attempt in round `round`.
    pub fn txn(&self, round: u64) -> String {
        txn(&self.id, round)
    }

    /// The package as its author sees it.
    pub fn transaction(&self, status: Status, reason: Option<String>) -> Transaction {
        let now = crate::ledger::now_rfc3339();
        let updated = if status == Status::Pending { self.created_at.clone() } else { now };
        Transaction {
            id: self.id.clone(),
            owner: self.author,
            parent_id: None,
            kind: TransactionType::Package,
            operations: crate::ledger::package_operations(
                &self.id,
                self.ops.iter().map(|o| (o.from, o.to, o.amount.money())),
                status,
                &self.created_at,
                &updated,
            ),
            created_at: self.created_at.clone(),
            updated_at: updated,
            status,
            reason,
            reason_code: None,
        }
    }
}

/// `GET /interbank/decision/{txn}`: the decision on an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DecisionAnswer {
    pub commit: bool,
}

/// The id of a package's attempt in round `round`.
pub fn txn(package: &str, round: u64) -> String {
    format!("{package}.{round}")
}

/// The package and round an attempt id names (`None`: not an attempt id).
pub fn split_txn(txn: &str) -> Option<(&str, u64)> {
    let (package, round) = txn.rsplit_once('.')?;
    Some((package, round.parse().ok()?))
}

/// The key of round `round`'s records.
pub fn round_key(round: u64) -> String {
    format!("{round:020}")
}

/// `rounds/{round}`: a settlement round, from its start; its decisions once decided.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoundRecord {
    pub at_ms: u64,
    pub packages: Vec<RoundEntry>,
    /// Whether it is decided: then `committed` are the packages whose attempt committed, and
    /// every other attempt of the round is aborted.
    pub decided: bool,
    #[serde(default)]
    pub committed: Vec<String>,
    /// Packages whose attempt an inquiry found undecided, presumed aborted: never committed.
    #[serde(default)]
    pub aborted: Vec<String>,
    /// When this record may be deleted ([`super::retention`]; 0: kept).
    #[serde(default)]
    pub forget_after_ms: u64,
}

/// One package of a round, and the banks its attempt may hold at.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoundEntry {
    pub id: String,
    pub banks: Vec<BankId>,
}

impl RoundRecord {
    /// The recorded decision on `package`'s attempt of this round: `None` while the round is
    /// open and the package not presumed aborted.
    pub fn decision(&self, package: &str) -> Option<bool> {
        if self.decided {
            return Some(self.committed.iter().any(|c| c == package));
        }
        if self.aborted.iter().any(|a| a == package) || !self.packages.iter().any(|e| e.id == package) {
            // Not part of this round: no attempt of it can commit here.
            return Some(false);
        }
        None
    }
}

/// `undelivered/{round}`: a round's decisions not yet acknowledged by every bank.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Undelivered {
    /// When the decisions were taken: recovery redelivers only what its round had time to.
    pub at_ms: u64,
    /// When the round's records may be forgotten anywhere (0: not known).
    pub forget_after_ms: u64,
    pub owed: Vec<Owed>,
}

/// One package's decision, and the banks that have not acknowledged it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Owed {
    pub package: String,
    pub commit: bool,
    pub banks: Vec<BankId>,
}

/// Why a round stopped early.
#[derive(Debug, thiserror::Error)]
pub enum RoundError {
    /// A bank refused our epoch: the token moved on without us; stop working it.
    #[error("our epoch {0} is stale")]
    Fenced(u64),
    /// Another replica of this bank took the token over (our lease ran out mid-round): it
    /// decides now, and nothing of this round was recorded.
    #[error("another replica took the token over")]
    Replaced,
    #[error(transparent)]
    Api(#[from] ApiError),
}

impl From<dataserver_api::client::ClientError> for RoundError {
    fn from(e: dataserver_api::client::ClientError) -> Self {
        RoundError::Api(e.into())
    }
}

/// Prepares `items` at `bank`: locally without HTTP, elsewhere through its peer route.
async fn prepare_at(ib: &Interbank, bank: BankId, req: PrepareRequest) -> Result<PrepareResponse, PeerError> {
    if bank == ib.me {
        return participant::prepare(ib, req).await.map_err(|e| local_error(bank, e));
    }
    ib.peers.call(bank, Method::POST, "/interbank/prepare", Some(&req)).await
}

async fn finish_at(ib: &Interbank, bank: BankId, txns: Vec<String>, commit: bool) -> Result<FinishResponse, PeerError> {
    if bank == ib.me {
        return participant::finish(ib, txns, commit, participant::FinishBy::Coordinator(ib.me))
            .await
            .map_err(|e| local_error(bank, e));
    }
    let path = if commit { "/interbank/commit" } else { "/interbank/rollback" };
    ib.peers.call(bank, Method::POST, path, Some(&FinishRequest { txns })).await
}

fn local_error(bank: BankId, e: ApiError) -> PeerError {
    match e {
        ApiError::StaleEpoch { .. } => {
            PeerError::Refused { bank, status: 409, body: shared::ErrorBody::new(e.code(), e.to_string()) }
        }
        other => PeerError::NoAnswer { bank, why: other.to_string() },
    }
}

/// What to do with each package of a round.
struct Planned {
    queued: Queued,
    /// Its queue entry as read: the decision deletes that very entry (an entry written under
    /// an earlier key layout is taken off the queue too, rather than decided again and again).
    queue_key: String,
    queue_version: u64,
}

/// The `ring/state` put that moves it on from `ring` (at `version`), renewing the lease: every
/// write of a round's records goes with one, so only the replica working the token writes them.
fn ring_put(ring: &super::ring::RingState, version: u64) -> RecordOp {
    RecordOp::Put {
        collection: participant::RING.into(),
        key: participant::RING_STATE.into(),
        value: json(ring),
        if_version: super::ring::round_fence(version),
    }
}

/// The new version of `collection/key` in a commit's answer.
fn version_of(r: &dataserver_api::CommitResponse, collection: &str, key: &str) -> Result<u64, ApiError> {
    r.records.iter().find(|v| v.collection == collection && v.key == key).map(|v| v.version).ok_or_else(|| {
        ApiError::Unavailable(Unavailable::Corrupt(format!("a round's commit left no {collection}/{key}")))
    })
}

/// The new version of `ring/state` in a commit's answer.
fn ring_version_of(r: &dataserver_api::CommitResponse) -> Result<u64, ApiError> {
    version_of(r, participant::RING, participant::RING_STATE)
}

/// A commit of a round's records was refused: another replica took the token over when the
/// ring state moved, otherwise `None` (an inquiry changed the round record meanwhile).
async fn replaced(ib: &Interbank, ring_version: u64) -> Result<Option<RoundError>, RoundError> {
    Ok((participant::ring_state(ib).await?.1 != ring_version).then_some(RoundError::Replaced))
}

/// Closes round `n`, left open by a replica that failed or lost its lease mid-round: every
/// attempt of it aborted (none was recorded committed: the decision commit closes the round
/// itself), the rollbacks owed to every bank of its packages, and delivered now, before any of
/// its packages is tried again.
async fn close(
    ib: &Interbank,
    ring: &mut super::ring::RingState,
    ring_version: &mut u64,
    n: u64,
    down: &mut BTreeSet<BankId>,
) -> Result<(), RoundError> {
    let key = round_key(n);
    let closed =
        super::ring::RingState { open_round: None, lease_until_ms: now_ms() + ib.limits.ring_lease_ms, ..*ring };
    let mut c = CommitRequest::fresh();
    c.records.push(ring_put(&closed, *ring_version));
    let mut owed = Vec::new();
    let mut forget_after_ms = 0;
    let now = now_ms();
    if let Some(r) = ib.ds.get_record(ROUNDS, &key).await?
        && let Ok(mut record) = parse::<RoundRecord>(&r)
        && !record.decided
    {
        owed = record
            .packages
            .iter()
            .map(|e| Owed { package: e.id.clone(), commit: false, banks: e.banks.clone() })
            .collect();
        forget_after_ms = record.forget_after_ms;
        record.decided = true;
        record.committed.clear();
        c.records.push(RecordOp::Put {
            collection: ROUNDS.into(),
            key: key.clone(),
            value: json(&record),
            if_version: Some(r.version),
        });
        c.records.push(RecordOp::Put {
            collection: UNDELIVERED.into(),
            key: key.clone(),
            value: json(&Undelivered { at_ms: now, forget_after_ms, owed: owed.clone() }),
            if_version: None,
        });
    }
    let mut undelivered_version = 0;
    match ib.ds.commit(&c).await {
        Ok(r) => {
            *ring_version = ring_version_of(&r)?;
            *ring = closed;
            if !owed.is_empty() {
                undelivered_version = version_of(&r, UNDELIVERED, &key)?;
            }
        }
        Err(e) if e.code() == Some(DsCode::ConditionFailed) => {
            // The ring moved (another replica), or an inquiry changed the round: either way
            // the next round looks again.
            return Err(replaced(ib, *ring_version).await?.unwrap_or(RoundError::Api(ApiError::Unavailable(
                Unavailable::Contended("the open round changed while it was closed"),
            ))));
        }
        Err(e) => return Err(ApiError::from(e).into()),
    }
    if !owed.is_empty() {
        tracing::info!(round = n, packages = owed.len(), "closed a round left open: its attempts are rolled back");
        let u = Undelivered { at_ms: now, forget_after_ms, owed };
        down.extend(deliver(ib, vec![(key, undelivered_version, u)], down).await?);
    }
    Ok(())
}

/// What one call of [`round`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Swept {
    /// No package waits from the cursor on.
    Empty,
    /// Packages wait, fewer in the whole queue than asked for: nothing started.
    Short,
    /// This many packages were looked at (decided, or left for a bank that is down).
    Seen(usize),
}

/// Decisions owed, as one worker's hold carries them from a round to the next: each round's
/// key, the version of its `undelivered/` record, the record.
pub type Carried = Vec<(String, u64, Undelivered)>;

/// Delivers the decisions still owed at the end of a hold: those `carried` from its last round
/// and the first page of `undelivered/`, to the banks not in `down`.
pub async fn deliver_owed(ib: &Interbank, carried: &mut Carried, down: &mut BTreeSet<BankId>) -> Result<(), ApiError> {
    let owing = owed(ib, carried, down).await?;
    down.extend(owing.deliver(ib).await?);
    Ok(())
}

/// What is owed now: the first page of `undelivered/` and what `carried` adds (a round's own
/// record may sit behind a page of rounds owed to a bank that is down), read fresh.
async fn owed(ib: &Interbank, carried: &mut Carried, down: &BTreeSet<BankId>) -> Result<Owing, ApiError> {
    let page = ib.ds.scan_records(UNDELIVERED, "", None, ib.limits.batch_packages_max).await?;
    let mut pending = parse_undelivered(&page.records)?;
    let beyond: Vec<dataserver_api::RecordKey> = std::mem::take(carried)
        .into_iter()
        .filter(|(key, _, _)| !pending.iter().any(|(k, _, _)| k == key))
        .map(|(key, _, _)| dataserver_api::RecordKey::new(UNDELIVERED, key))
        .collect();
    if !beyond.is_empty() {
        let read = ib.ds.get_records(beyond).await?;
        pending.extend(parse_undelivered(&read.into_iter().flatten().collect::<Vec<_>>())?);
    }
    Owing::new(ib.limits.retention, pending, down)
}

/// One settlement round over the next page of the queue after `cursor`, by the replica that
/// works the token in `ring` (`ring/state` at version `ring_version`): the round's start and its
/// decisions' commit both move the ring state on (renewing that replica's lease), on the
/// condition that nobody changed it meanwhile, and `ring` and `ring_version` follow. Nothing
/// starts unless `packages_min` packages wait in the whole queue. Returns what it found.
///
/// Decisions owed (`carried` from the hold's previous round, and any left in `undelivered/`)
/// ride on this round's prepares to the banks it asks, and are sent on their own to the others;
/// this round's own are carried to the next ([`deliver_owed`] sends them when the hold ends).
pub async fn round(
    ib: &Interbank,
    ring: &mut super::ring::RingState,
    ring_version: &mut u64,
    cursor: &mut Option<String>,
    down: &mut BTreeSet<BankId>,
    carried: &mut Carried,
    packages_min: usize,
) -> Result<Swept, RoundError> {
    if let Some(n) = ring.open_round {
        close(ib, ring, ring_version, n, down).await?;
    }
    // Decisions still owed to banks that answer: their rollbacks free holds this round's
    // attempts may need (a prepare applies the decisions it carries before it votes). A bank
    // that does not answer is left to recovery ([`recover`]) for the rest of this hold: the
    // token does not wait on it again.
    let mut owing = owed(ib, carried, down).await?;
    let swept = prepare_round(ib, ring, ring_version, cursor, down, &mut owing, packages_min).await;
    // Whatever did not ride on a prepare goes on its own, now.
    let delivered = owing.deliver(ib).await;
    let (swept, decided) = swept?;
    carried.extend(decided);
    down.extend(delivered?);
    Ok(swept)
}

#[expect(clippy::too_many_lines, reason = "one round's steps, in order, each commented")]
async fn prepare_round(
    ib: &Interbank,
    ring: &mut super::ring::RingState,
    ring_version: &mut u64,
    cursor: &mut Option<String>,
    down: &mut BTreeSet<BankId>,
    owing: &mut Owing,
    packages_min: usize,
) -> Result<(Swept, Option<(String, u64, Undelivered)>), RoundError> {
    let epoch = ring.token.epoch;
    let started = std::time::Instant::now();
    let page_max = ib.limits.batch_packages_max;
    let mut page = ib.ds.scan_records(QUEUE, "", cursor.as_deref(), page_max).await?;
    // A page that reached the queue's end short of a round goes on from the queue's start, up
    // to where it began: the sweep wraps inside the round rather than starting another. Rounds
    // cost the same few requests and commits whatever they carry, and a hold's first round,
    // starting after the author the last hold ended with, found only a handful otherwise.
    if let Some(after) = cursor.as_deref()
        && page.records.len() < page_max
    {
        let head = ib.ds.scan_records(QUEUE, "", None, page_max - page.records.len()).await?;
        wrap_page(&mut page.records, head.records, after);
    }
    if let Some(n) = page.count {
        ib.metrics.settlement_queue.set(i64::try_from(n).unwrap_or(i64::MAX));
    }
    // The whole queue counts (the page runs from the cursor only), so a full queue never waits.
    let waiting = page.count.map_or(0, |n| usize::try_from(n).unwrap_or(usize::MAX)).max(page.records.len());
    if page.records.is_empty() {
        return Ok((Swept::Empty, None));
    }
    if waiting < packages_min {
        return Ok((Swept::Short, None));
    }
    let now = now_ms();
    let mut page_queued: Vec<(Queued, (String, u64))> = Vec::with_capacity(page.records.len());
    for r in &page.records {
        page_queued.push((parse(r)?, (r.key.clone(), r.version)));
    }
    // A round's packages must fit each participant's one record of it: the rest of the page
    // waits for the next round, which the cursor starts from.
    let fit = Round::fitting(page_queued.iter().map(|(q, _)| q.ops.len()), crate::config::limits::ROUND_OPERATIONS_MAX);
    page_queued.truncate(fit);
    *cursor = page.records.get(fit - 1).map(|r| r.key.clone());
    // The next round (this replica's or, after a pass or a takeover, another's) goes on with
    // the author this one ended with: its packages after those taken here come first.
    let sweep_from = page_queued.last().map_or(0, |(q, _)| q.author.account.get());
    let seen = page_queued.len();
    // Indices into the page, ascending.
    let picked = Round::select(page_queued.iter().map(|(q, _)| (&q.ops[..], q.deadline_ms)), down, now);
    let mut planned: Vec<Planned> = page_queued
        .into_iter()
        .enumerate()
        .filter(|(i, _)| picked.binary_search(i).is_ok())
        .map(|(_, (queued, (queue_key, queue_version)))| Planned { queued, queue_key, queue_version })
        .collect();
    if planned.is_empty() {
        return Ok((Swept::Seen(seen), None));
    }
    // The round starts durably before anything is prepared under its number: `ring/state`
    // moves to it and `rounds/{n}` names its packages, in one commit.
    let n = ring.round.checked_add(1).ok_or(ApiError::Unavailable(Unavailable::Exhausted("round numbers")))?;
    let key = round_key(n);
    let forget_after_ms =
        planned.iter().map(|p| ib.limits.retention.forget_after(p.queued.deadline_ms)).max().unwrap_or(0);
    let mut record = RoundRecord {
        at_ms: now,
        packages: planned
            .iter()
            .map(|p| RoundEntry { id: p.queued.id.clone(), banks: super::settle::banks(&p.queued.ops) })
            .collect(),
        decided: false,
        committed: vec![],
        aborted: vec![],
        forget_after_ms,
    };
    let opened = super::ring::RingState {
        round: n,
        open_round: Some(n),
        lease_until_ms: now + ib.limits.ring_lease_ms,
        sweep_from,
        ..*ring
    };
    let mut start = CommitRequest::fresh();
    start.records.push(ring_put(&opened, *ring_version));
    start.records.push(RecordOp::Put {
        collection: ROUNDS.into(),
        key: key.clone(),
        value: json(&record),
        if_version: Some(0),
    });
    // The settled count, a statistic for the console written with the decisions, is read beside
    // the start rather than on the round's way: only the token's worker writes it, so it cannot
    // change before this round's decisions do.
    let (start_answer, settled_before) = futures::join!(ib.ds.commit(&start), settled_total(ib));
    // The start's answer first: once the round is started the ring's version has moved, and a
    // failed read of the count must not leave this worker holding the old one.
    let mut round_version = match start_answer {
        Ok(r) => {
            *ring_version = ring_version_of(&r)?;
            *ring = opened;
            version_of(&r, ROUNDS, &key)?
        }
        Err(e) if e.code() == Some(DsCode::ConditionFailed) => {
            return Err(replaced(ib, *ring_version).await?.unwrap_or(RoundError::Api(ApiError::Unavailable(
                Unavailable::Corrupt(format!("round {n} was started before")),
            ))));
        }
        Err(e) => return Err(ApiError::Unavailable(Unavailable::DataServer(format!("starting a round: {e}"))).into()),
    };
    let settled_before = settled_before?;
    let prepared_from = std::time::Instant::now();
    ib.metrics.round_start_seconds.observe(prepared_from.duration_since(started).as_secs_f64());

    // Prepare: one request per bank, all banks at once.
    let (mut engine, prepares) = Round::start(planned.iter().map(|p| (&p.queued.ops[..], p.queued.deadline_ms)), now);
    let calls = prepares.iter().map(|pr| {
        let items = pr
            .items
            .iter()
            .map(|i| {
                let q = &planned[*i].queued;
                PrepareItem {
                    txn: q.txn(n),
                    package: q.id.clone(),
                    author: q.author,
                    person: q.person.clone(),
                    ops: q.ops.clone(),
                    deadline_ms: q.deadline_ms,
                }
            })
            .collect();
        let decisions = owing.take(pr.bank);
        prepare_at(ib, pr.bank, PrepareRequest { epoch, coordinator: ib.me, items, decisions })
    });
    let answers = join_all(calls).await;
    for (pr, answer) in prepares.iter().zip(answers) {
        let answer = match answer {
            Ok(r) => {
                owing.answered(ib, pr.bank, r.ended, true);
                Answer::Votes(r.votes)
            }
            Err(e) if e.code() == Some(ErrorCode::StaleEpoch) => Answer::Fenced,
            Err(e) => {
                if !matches!(e, PeerError::NotDelivered(_)) {
                    tracing::warn!(bank = %pr.bank, error = %e, "prepare failed");
                }
                Answer::Silent
            }
        };
        engine.on(pr.bank, answer);
    }
    let decided_from = std::time::Instant::now();
    ib.metrics.round_prepare_seconds.observe(decided_from.duration_since(prepared_from).as_secs_f64());
    let decided = engine.decide(now_ms(), &ib.limits.retention);
    down.extend(decided.silent.iter().copied());
    let fenced = decided.fenced;
    let mut outcomes = decided.outcomes;

    // Record every decision in one durable write.
    let mut undelivered = Undelivered { at_ms: now, forget_after_ms, owed: vec![] };
    let mut recorded = false;
    let mut undelivered_version = 0;
    // The settled count goes with them: only the token's worker runs a round, and a count off
    // by a round after a lost lease is harmless, so no condition is put on it that could fail
    // the decisions' commit.
    for _ in 0..3 {
        undelivered.owed.clear();
        let mut c = CommitRequest::fresh();
        // Only the replica working the token decides (issue 13, defect 3): a replica whose lease
        // ran out mid-round and was taken over records nothing. The same write renews the lease
        // and closes the round.
        let closed =
            super::ring::RingState { open_round: None, lease_until_ms: now_ms() + ib.limits.ring_lease_ms, ..*ring };
        c.records.push(ring_put(&closed, *ring_version));
        let committing = outcomes.iter().filter(|o| o.commit()).count() as u64;
        c.records.push(RecordOp::Put {
            collection: crate::model::COUNTERS.into(),
            key: SETTLED_COUNTER.into(),
            value: serde_json::json!(settled_before.saturating_add(committing)).into(),
            if_version: None,
        });
        record.decided = true;
        record.committed =
            planned.iter().zip(&outcomes).filter(|(_, o)| o.commit()).map(|(p, _)| p.queued.id.clone()).collect();
        // Written once: on the version the start wrote (or an inquiry's since, re-read below).
        c.records.push(RecordOp::Put {
            collection: ROUNDS.into(),
            key: key.clone(),
            value: json(&record),
            if_version: Some(round_version),
        });
        for (p, o) in planned.iter().zip(&outcomes) {
            let commit = o.commit();
            if o.final_() {
                c.records.push(RecordOp::Delete {
                    collection: QUEUE.into(),
                    key: p.queue_key.clone(),
                    if_version: Some(p.queue_version),
                });
                // A package committed with banks to tell is `confirmed`, with its round: it is
                // shown `success` once they all applied it ([`shown`]), nothing more written.
                let stored = match &o.decision {
                    Decision::Commit if o.tell.is_empty() => {
                        StoredPackage { package: p.queued.transaction(Status::Success, None), round: None, entry: None }
                    }
                    Decision::Commit => StoredPackage {
                        package: p.queued.transaction(Status::Confirmed, None),
                        round: Some(key.clone()),
                        entry: None,
                    },
                    Decision::Abort { reason, .. } => {
                        let mut t = p.queued.transaction(Status::Failed, Some(reason.to_string()));
                        t.reason_code = Some(reason.code());
                        StoredPackage { package: t, round: None, entry: None }
                    }
                };
                c.records.push(crate::model::account_package(p.queued.author.account, p.queued.created_ms, &stored));
            }
            if !o.tell.is_empty() {
                undelivered.owed.push(Owed { package: p.queued.id.clone(), commit, banks: o.tell.clone() });
            }
        }
        if !undelivered.owed.is_empty() {
            c.records.push(RecordOp::Put {
                collection: UNDELIVERED.into(),
                key: key.clone(),
                value: json(&undelivered),
                if_version: Some(0),
            });
        }
        match ib.ds.commit(&c).await {
            Ok(r) => {
                *ring_version = ring_version_of(&r)?;
                *ring = closed;
                if !undelivered.owed.is_empty() {
                    undelivered_version = version_of(&r, UNDELIVERED, &key)?;
                }
                recorded = true;
                break;
            }
            Err(e) if e.code() == Some(DsCode::ConditionFailed) => {
                if let Some(replaced) = replaced(ib, *ring_version).await? {
                    return Err(replaced);
                }
                // A participant asked about an attempt and had it aborted meanwhile: that
                // decision stands (the package keeps its place in the queue for another
                // attempt); record the others.
                let Some(r) = ib.ds.get_record(ROUNDS, &key).await? else {
                    return Err(ApiError::Unavailable(Unavailable::Corrupt(format!("round {n} vanished"))).into());
                };
                let now_recorded: RoundRecord = parse(&r)?;
                round_version = r.version;
                record.aborted = now_recorded.aborted;
                let keep: Vec<bool> = planned.iter().map(|p| !record.aborted.contains(&p.queued.id)).collect();
                let mut flags = keep.iter();
                planned.retain(|_| flags.next().copied().unwrap_or(false));
                let mut flags = keep.iter();
                outcomes.retain(|_| flags.next().copied().unwrap_or(false));
            }
            Err(e) => return Err(ApiError::from(e).into()),
        }
    }
    if !recorded {
        // Nothing of this round's decisions is durable: deliver none. The round stays open in
        // the ring state, and the next round closes it first.
        return Err(ApiError::Unavailable(Unavailable::Contended("the decisions could not be recorded")).into());
    }
    let committed = outcomes.iter().filter(|o| o.commit()).count() as u64;
    ib.metrics.settled_total.inc_by(committed);
    #[expect(clippy::cast_precision_loss, reason = "a histogram sample, for reporting only")]
    ib.metrics.round_packages.observe(outcomes.len() as f64);
    ib.metrics.round_decide_seconds.observe(decided_from.elapsed().as_secs_f64());
    ib.metrics.round_seconds.observe(started.elapsed().as_secs_f64());
    // This round's decisions ride on the next round's prepares (or go when the hold ends).
    let decided = (!undelivered.owed.is_empty()).then_some((key, undelivered_version, undelivered));
    if fenced {
        // No next round in this hold: they go now.
        if let Some(d) = decided {
            down.extend(deliver(ib, vec![d], down).await?);
        }
        return Err(RoundError::Fenced(epoch));
    }
    Ok((Swept::Seen(seen), decided))
}

/// Sends rounds' decisions (`pending`: each round's key, the version of its `undelivered/`
/// record, and the record) to the banks that have not acknowledged them, one request per bank
/// and decision kind, and records who acknowledged: a package committed and acknowledged by
/// every bank is then shown `success` ([`shown`]). Banks in `skip` are not sent anything.
/// Returns the banks that did not answer.
async fn deliver(
    ib: &Interbank,
    pending: Vec<(String, u64, Undelivered)>,
    skip: &BTreeSet<BankId>,
) -> Result<BTreeSet<BankId>, ApiError> {
    Owing::new(ib.limits.retention, pending, skip)?.deliver(ib).await
}

/// Rounds' decisions owed to banks, on their way: grouped per bank and decision kind, sent in
/// requests of their own ([`Owing::send`]) or carried by a bank's next prepare
/// ([`Owing::take`]), and the acknowledgements recorded in one commit ([`Owing::record`]).
struct Owing {
    /// Each round's key, the version of its `undelivered/` record as read, its number, the
    /// record.
    pending: Vec<(String, u64, u64, Undelivered)>,
    /// The attempts to tell each bank, per decision kind, not yet sent.
    groups: BTreeMap<(BankId, bool), Vec<String>>,
    /// Each attempt's horizon, for a bank that answers it knows nothing of it.
    forget: BTreeMap<String, u64>,
    acked: BTreeSet<(BankId, String)>,
    retention: super::retention::Retention,
}

impl Owing {
    fn new(
        retention: super::retention::Retention,
        pending: Vec<(String, u64, Undelivered)>,
        skip: &BTreeSet<BankId>,
    ) -> Result<Self, ApiError> {
        // Each round's number, read once from its key.
        let pending: Vec<(String, u64, u64, Undelivered)> = pending
            .into_iter()
            .map(|(key, version, u)| match key.parse() {
                Ok(n) => Ok((key, version, n, u)),
                Err(_) => Err(ApiError::Unavailable(Unavailable::Corrupt(format!("round {key:?}")))),
            })
            .collect::<Result<_, _>>()?;
        let mut groups: BTreeMap<(BankId, bool), Vec<String>> = BTreeMap::new();
        let mut forget: BTreeMap<String, u64> = BTreeMap::new();
        for (_, _, n, u) in &pending {
            for o in &u.owed {
                let t = txn(&o.package, *n);
                forget.insert(t.clone(), u.forget_after_ms);
                for b in o.banks.iter().filter(|b| !skip.contains(b)) {
                    groups.entry((*b, o.commit)).or_default().push(t.clone());
                }
            }
        }
        Ok(Owing { pending, groups, forget, acked: BTreeSet::new(), retention })
    }

    /// The decisions owed to `bank`, to carry on its next prepare (at most
    /// `FINISH_TXNS_MAX`, as a participant takes them): they are no longer sent on their own.
    fn take(&mut self, bank: BankId) -> Vec<Decisions> {
        let mut room = crate::config::limits::FINISH_TXNS_MAX;
        let mut out = Vec::new();
        for commit in [true, false] {
            let Some(txns) = self.groups.get_mut(&(bank, commit)) else { continue };
            let n = txns.len().min(room);
            if n == 0 {
                continue;
            }
            out.push(Decisions { commit, txns: txns.drain(..n).collect() });
            room -= n;
            if txns.is_empty() {
                self.groups.remove(&(bank, commit));
            }
        }
        out
    }

    /// What `bank` answered to decisions sent to it (`carried`: on a prepare).
    fn answered(&mut self, ib: &Interbank, bank: BankId, r: FinishResponse, carried: bool) {
        let now = now_ms();
        let counter = if carried { &ib.metrics.decisions_carried_total } else { &ib.metrics.decisions_sent_total };
        counter.inc_by(r.done.len() as u64);
        self.acked.extend(r.done.into_iter().map(|t| (bank, t)));
        for t in r.unknown {
            // A bank that acknowledged a commit long ago, but whose answer was lost, has since
            // forgotten the attempt; before that, not knowing it is a bug to keep asking about.
            let forget_after = self.forget.get(t.as_str()).copied().unwrap_or(0);
            if self.retention.may_have_forgotten(forget_after, now) {
                self.acked.insert((bank, t));
            } else {
                tracing::error!(bank = %bank, txn = t, "a commit for an attempt the bank never prepared");
            }
        }
    }

    /// The requests that send what is left, per bank and decision kind, at most
    /// `FINISH_TXNS_MAX` attempts each (as a participant takes them).
    fn requests(&mut self) -> Vec<((BankId, bool), Vec<String>)> {
        std::mem::take(&mut self.groups)
            .into_iter()
            .flat_map(|(to, txns)| {
                txns.chunks(crate::config::limits::FINISH_TXNS_MAX).map(|c| (to, c.to_vec())).collect::<Vec<_>>()
            })
            .collect()
    }

    /// Sends the decisions not carried by a prepare, one request per bank and decision kind.
    /// Returns the banks that did not answer.
    async fn send(&mut self, ib: &Interbank) -> BTreeSet<BankId> {
        let mut silent = BTreeSet::new();
        let groups = self.requests();
        let calls = groups.iter().map(|((bank, commit), txns)| finish_at(ib, *bank, txns.clone(), *commit));
        let answers = join_all(calls).await;
        for (((bank, _), _), answer) in groups.iter().zip(answers) {
            match answer {
                Ok(r) => self.answered(ib, *bank, r, false),
                Err(PeerError::NotDelivered(_)) => {
                    tracing::debug!(bank = %bank, "bank down; decisions wait for it");
                    silent.insert(*bank);
                }
                Err(e) => {
                    tracing::warn!(bank = %bank, error = %e, "delivering decisions failed; will retry");
                    if !matches!(e, PeerError::Refused { .. }) {
                        silent.insert(*bank);
                    }
                }
            }
        }
        silent
    }

    /// Sends what is left, then records who acknowledged what. Returns the banks that did not
    /// answer.
    async fn deliver(mut self, ib: &Interbank) -> Result<BTreeSet<BankId>, ApiError> {
        let silent = self.send(ib).await;
        self.record(ib).await?;
        Ok(silent)
    }

    /// Records who acknowledged what, in one commit.
    async fn record(mut self, ib: &Interbank) -> Result<(), ApiError> {
        let mut c = CommitRequest::fresh();
        for (key, version, n, u) in &mut self.pending {
            let n = *n;
            let before: usize = u.owed.iter().map(|o| o.banks.len()).sum();
            for o in &mut u.owed {
                let t = txn(&o.package, n);
                o.banks.retain(|b| !self.acked.contains(&(*b, t.clone())));
            }
            u.owed.retain(|o| !o.banks.is_empty());
            let after: usize = u.owed.iter().map(|o| o.banks.len()).sum();
            // On the version read: a record another replica's delivery shrank or deleted
            // meanwhile is never written back larger (a package shown `success` would be
            // `confirmed` again).
            let if_version = Some(*version);
            if u.owed.is_empty() {
                c.records.push(RecordOp::Delete { collection: UNDELIVERED.into(), key: key.clone(), if_version });
            } else if after < before {
                c.records.push(RecordOp::Put {
                    collection: UNDELIVERED.into(),
                    key: key.clone(),
                    value: json(u),
                    if_version,
                });
            }
        }
        if !c.records.is_empty() {
            match ib.ds.commit(&c).await {
                Ok(_) => {}
                // Another replica's delivery wrote one of these records meanwhile: what is left
                // is redelivered, and acknowledged again.
                Err(e) if e.code() == Some(DsCode::ConditionFailed) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }
}

/// A package confirmed, once every bank applied it: `success`, each operation too. Its time
/// stays the decision's: the moment it became irrevocable (when the last bank applied it is
/// not recorded — that was the write this saves).
fn succeeded_everywhere(t: Transaction) -> Transaction {
    let operations = crate::ledger::package_operations(
        &t.id,
        t.operations.iter().map(|o| (o.from, o.to, o.amount)),
        Status::Success,
        &t.created_at,
        &t.updated_at,
    );
    Transaction { status: Status::Success, operations, ..t }
}

/// Rounds' undelivered decisions as read: key, version, record.
fn parse_undelivered(records: &[dataserver_api::Record]) -> Result<Vec<(String, u64, Undelivered)>, ApiError> {
    records.iter().map(|r| Ok((r.key.clone(), r.version, parse::<Undelivered>(r)?))).collect()
}

/// Records looked at in one recovery pass, at most (of `undelivered/`, and of `prepared/`):
/// a pass goes through every page up to this, then starts again from the first.
pub const RECOVERY_PASS_RECORDS_MAX: usize = 16_384;
/// Records of a collection looked at in one garbage-collection pass, at most: a whole
/// retention's worth of attempts at thousands a second (passes come a quarter retention apart).
pub const FORGET_PASS_RECORDS_MAX: usize = 4_000_000;
/// Records per page of a garbage-collection scan (the data server's largest page): also the
/// most deletes in one of its commits.
pub const FORGET_PAGE_RECORDS: usize = 1_000;
/// Decision inquiries to one coordinator in flight at once.
pub const INQUIRIES_IN_FLIGHT_MAX: usize = 16;

/// Each replica's recovery, off the loop that works the token (issue 13, defect 4: a
/// coordinator that did not answer cost that loop a peer timeout per in-doubt attempt, and the
/// scans saw only their first page, so attempts behind a dead coordinator's were never
/// resolved). Every tick: redeliver owed decisions, then resolve attempts in doubt.
pub async fn recover(ib: Interbank) {
    // Half the time an attempt waits before it is in doubt: often enough, and the scans of
    // every page are not repeated at the ring's pace.
    let every_ms = (ib.limits.in_doubt_ms / 2).max(ib.limits.tick_ms);
    let mut tick = tokio::time::interval(std::time::Duration::from_millis(every_ms));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut sweep = Sweep::default();
    // Garbage is looked for a quarter of the retention at a time, not every pass: a pass scans
    // the collections, which hold the last retention's worth of attempts, and nothing forgotten
    // a little late costs anything.
    let forget_every = std::time::Duration::from_millis((ib.limits.retention.retain_ms / 4).max(every_ms));
    let mut forgot_at: Option<std::time::Instant> = None;
    loop {
        tick.tick().await;
        if let Err(e) = redeliver(&ib).await {
            tracing::warn!(error = %e, "redelivering decisions failed");
        }
        if let Err(e) = resolve_in_doubt(&ib).await {
            tracing::warn!(error = %e, "resolving in-doubt packages failed");
        }
        if forgot_at.is_some_and(|at| at.elapsed() < forget_every) {
            continue;
        }
        forgot_at = Some(std::time::Instant::now());
        if let Err(e) = collect_garbage(&ib, &mut sweep).await {
            tracing::warn!(error = %e, "forgetting old decisions and outcomes failed");
        }
    }
}

/// Where the garbage collection of each collection stands between passes: a pass goes on from
/// there, so that every record is looked at in turn however many there are.
#[derive(Debug, Default)]
pub struct Sweep {
    outcomes: Option<String>,
    rounds: Option<String>,
}

/// Deletes the outcomes and decisions past their horizon ([`super::retention`]), up to
/// [`FORGET_PASS_RECORDS_MAX`] looked at in each collection per pass. A decision some bank has
/// not acknowledged stays whatever its age: that bank may still ask for it. Returns how many
/// records went.
pub async fn collect_garbage(ib: &Interbank, sweep: &mut Sweep) -> Result<usize, ApiError> {
    let outcomes = forget(ib, participant::OUTCOMES, &mut sweep.outcomes, None).await?;
    // The decisions still owed, read once for the pass (few: those waiting for a bank). One
    // that becomes owed meanwhile, or that a longer list left out, is kept by the commit's own
    // condition.
    let mut owed = BTreeSet::new();
    let mut cursor: Option<String> = None;
    while owed.len() < RECOVERY_PASS_RECORDS_MAX {
        let page = ib.ds.scan_records(UNDELIVERED, "", cursor.as_deref(), FORGET_PAGE_RECORDS).await?;
        let Some(last) = page.records.last() else { break };
        cursor = Some(last.key.clone());
        owed.extend(page.records.into_iter().map(|r| r.key));
    }
    Ok(outcomes + forget(ib, ROUNDS, &mut sweep.rounds, Some(&owed)).await?)
}

/// Forgets the records of `collection` past their horizon, except those named in `owed` (and
/// then only on the condition that no `undelivered/` record names them).
async fn forget(
    ib: &Interbank,
    collection: &str,
    cursor: &mut Option<String>,
    owed: Option<&BTreeSet<String>>,
) -> Result<usize, ApiError> {
    let now = now_ms();
    let (mut seen, mut deleted) = (0, 0);
    while seen < FORGET_PASS_RECORDS_MAX {
        let page = ib.ds.scan_records(collection, "", cursor.as_deref(), FORGET_PAGE_RECORDS).await?;
        let Some(last) = page.records.last() else {
            *cursor = None;
            break;
        };
        *cursor = Some(last.key.clone());
        seen += page.records.len();
        #[derive(serde::Deserialize)]
        struct ForgetAfter {
            #[serde(default)]
            forget_after_ms: u64,
        }
        let forget_after =
            |r: &&dataserver_api::Record| r.value.parse::<ForgetAfter>().map_or(0, |f| f.forget_after_ms);
        let gone: Vec<&dataserver_api::Record> = page
            .records
            .iter()
            .filter(|r| super::retention::Retention::forgotten(forget_after(r), now))
            .filter(|r| owed.is_none_or(|o| !o.contains(&r.key)))
            .collect();
        if gone.is_empty() {
            continue;
        }
        let mut c = CommitRequest::fresh();
        for r in &gone {
            c.records.push(RecordOp::Delete {
                collection: collection.into(),
                key: r.key.clone(),
                if_version: Some(r.version),
            });
            if owed.is_some() {
                c.records.push(RecordOp::Check { collection: UNDELIVERED.into(), key: r.key.clone(), if_version: 0 });
            }
        }
        match ib.ds.commit(&c).await {
            Ok(_) => deleted += gone.len(),
            // Another replica forgot them first, or one changed: the next pass sees.
            Err(e) if e.code() == Some(DsCode::ConditionFailed) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(deleted)
}

/// Redelivers every decision some bank has not acknowledged yet, a page at a time; a bank that
/// does not answer is not asked again in this pass.
pub async fn redeliver(ib: &Interbank) -> Result<(), ApiError> {
    let mut cursor: Option<String> = None;
    let mut silent = BTreeSet::new();
    let mut seen = 0;
    while seen < RECOVERY_PASS_RECORDS_MAX {
        let page = ib.ds.scan_records(UNDELIVERED, "", cursor.as_deref(), ib.limits.batch_packages_max).await?;
        let Some(last) = page.records.last() else { break };
        cursor = Some(last.key.clone());
        seen += page.records.len();
        // Decisions their round is still delivering are left to it.
        let now = now_ms();
        let mut owed = parse_undelivered(&page.records)?;
        owed.retain(|(_, _, u)| now.saturating_sub(u.at_ms) >= ib.limits.in_doubt_ms);
        silent.extend(deliver(ib, owed, &silent).await?);
    }
    Ok(())
}

/// A participant asks for an attempt's decision. With none recorded (its round still open),
/// the package is recorded in the round's presumed aborts and abort returned: the round can
/// then never commit it (presumed abort). Only a bank of the package may ask: from any other,
/// a presumed abort would fail a package it has no part in.
pub async fn decision(ib: &Interbank, txn: &str, asker: BankId) -> Result<bool, ApiError> {
    // Not an attempt of this bank's rounds: none will ever be decided here.
    let Some((package_id, n)) = split_txn(txn) else { return Ok(false) };
    if asker != ib.me {
        match ib.ds.get_record(PACKAGES, package_id).await? {
            Some(r) => {
                let t: Transaction = parse(&r)?;
                if !t.operations.iter().any(|o| o.from.bank == asker || o.to.bank == asker) {
                    return Err(ApiError::PeerForbidden(format!("bank {asker} has no part in {txn}")));
                }
            }
            // Not a package of this bank, so no attempt of it will ever be decided here: the
            // answer is abort, and nothing is written (a peer naming made-up ids would otherwise
            // grow the records without bound). Packages are stored before any prepare is sent.
            None => return Ok(false),
        }
    }
    for _ in 0..3 {
        // No record: a round not started (nobody could have been asked to prepare in it: a
        // round starts durably first, and never again under the same number), or one forgotten
        // past its horizon. Either way, abort, with nothing to write.
        let Some(r) = ib.ds.get_record(ROUNDS, &round_key(n)).await? else { return Ok(false) };
        let mut record: RoundRecord = parse(&r)?;
        match super::engine::inquiry(record.decision(package_id)) {
            Inquiry::Decided(commit) => return Ok(commit),
            Inquiry::PresumeAbort { record: false } => return Ok(false),
            Inquiry::PresumeAbort { record: true } => {}
        }
        record.aborted.push(package_id.to_string());
        let mut c = CommitRequest::fresh();
        c.records.push(RecordOp::Put {
            collection: ROUNDS.into(),
            key: round_key(n),
            value: json(&record),
            if_version: Some(r.version),
        });
        match ib.ds.commit(&c).await {
            Ok(_) => return Ok(false),
            Err(e) if e.code() == Some(DsCode::ConditionFailed) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(ApiError::Unavailable(Unavailable::Contended("the decision keeps changing")))
}

/// Participant side of recovery: attempts prepared here for longer than `in_doubt_ms` ask their
/// coordinator for the decision and apply it. Every page of `prepared/` is looked at; each
/// coordinator is asked in parallel with the others, a few inquiries at a time, and one that
/// does not answer is not asked again in this pass.
pub async fn resolve_in_doubt(ib: &Interbank) -> Result<usize, ApiError> {
    let now = now_ms();
    let mut asks: BTreeMap<BankId, Vec<String>> = BTreeMap::new();
    let mut cursor: Option<String> = None;
    let mut seen = 0;
    while seen < RECOVERY_PASS_RECORDS_MAX {
        let page =
            ib.ds.scan_records(participant::PREPARED, "", cursor.as_deref(), ib.limits.batch_packages_max).await?;
        let Some(last) = page.records.last() else { break };
        cursor = Some(last.key.clone());
        seen += page.records.len();
        for r in &page.records {
            // One unreadable record must not stop every other attempt's resolution.
            let round: participant::PreparedRound = match parse(r) {
                Ok(round) => round,
                Err(e) => {
                    tracing::error!(key = r.key, error = %e, "a prepared record this replica cannot read");
                    continue;
                }
            };
            if now.saturating_sub(round.at_ms) >= ib.limits.in_doubt_ms {
                let txns = round.items.keys().map(|package| txn(package, round.round));
                asks.entry(round.coordinator).or_default().extend(txns);
            }
        }
    }
    let answers = join_all(
        asks.into_iter()
            .map(|(coordinator, txns)| async move { (coordinator, ask_coordinator(ib, coordinator, txns).await) }),
    )
    .await;
    let mut by_decision: BTreeMap<(BankId, bool), Vec<String>> = BTreeMap::new();
    for (coordinator, answered) in answers {
        for (txn, commit) in answered {
            by_decision.entry((coordinator, commit)).or_default().push(txn);
        }
    }
    let mut n = 0;
    for ((coordinator, commit), txns) in by_decision {
        let by = participant::FinishBy::Recovery(coordinator);
        n += participant::finish(ib, txns, commit, by).await?.done.len();
    }
    Ok(n)
}

/// The decisions `coordinator` gives for `txns`, asked [`INQUIRIES_IN_FLIGHT_MAX`] at a time;
/// after a wave with an unanswered inquiry, the rest wait for the next pass (2PC must wait for
/// its coordinator; the holds stay).
async fn ask_coordinator(ib: &Interbank, coordinator: BankId, txns: Vec<String>) -> Vec<(String, bool)> {
    let mut out = Vec::with_capacity(txns.len());
    for wave in txns.chunks(INQUIRIES_IN_FLIGHT_MAX) {
        let answers = join_all(wave.iter().map(|txn| async move {
            if coordinator == ib.me {
                return decision(ib, txn, ib.me).await.ok();
            }
            let path = format!("/interbank/decision/{txn}");
            ib.peers.call::<DecisionAnswer>(coordinator, Method::GET, &path, None::<&()>).await.map(|d| d.commit).ok()
        }))
        .await;
        let mut silent = false;
        for (txn, answer) in wave.iter().zip(answers) {
            match answer {
                Some(commit) => out.push((txn.clone(), commit)),
                None => silent = true,
            }
        }
        if silent {
            break;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The data server's default `--record-value-bytes-max`.
    const RECORD_VALUE_BYTES_DEFAULT: usize = 64 << 10;

    #[test]
    fn a_page_wrapped_to_the_queues_start_takes_each_entry_once() {
        let record = |k: &str| dataserver_api::Record {
            collection: QUEUE.into(),
            key: k.into(),
            value: serde_json::json!(null).into(),
            version: 1,
        };
        let keys = |rs: &[dataserver_api::Record]| rs.iter().map(|r| r.key.clone()).collect::<Vec<_>>();
        // After "b": the tail is "c", "d"; the head read from the start may run past the cursor
        // into the tail (a short queue), and stops there.
        let mut page = vec![record("c"), record("d")];
        wrap_page(&mut page, vec![record("a"), record("b"), record("c"), record("d")], "b");
        assert_eq!(keys(&page), ["c", "d", "a", "b"]);
        // The cursor itself gone meanwhile: what sorts before it is the head.
        let mut page = vec![record("c")];
        wrap_page(&mut page, vec![record("a"), record("c")], "b");
        assert_eq!(keys(&page), ["c", "a"]);
    }

    /// A sweep that resumes with an author takes that author's waiting packages first, and
    /// none of the authors before it until it wraps.
    #[test]
    fn a_sweep_resumes_with_the_author_it_stopped_at() {
        let queued = |author: u64, created_ms: u64| Queued {
            id: format!("p{author}x{created_ms}"),
            author: shared::Ibk::new(BankId::new(1).unwrap(), shared::AccountId::new(author).unwrap()),
            person: None,
            ops: vec![],
            created_at: String::new(),
            created_ms,
            deadline_ms: 0,
        };
        assert_eq!(sweep_cursor(0), None, "from the start");
        let after = sweep_cursor(5).unwrap();
        assert!(queued(5, 1).queue_key() > after && queued(5, 9_999_999_999_999).queue_key() > after);
        assert!(queued(4, 9_999_999_999_999).queue_key() < after, "an earlier author waits for the wrap");
        assert!(queued(6, 1).queue_key() > queued(5, 9_999_999_999_999).queue_key(), "authors in turn");
    }

    #[test]
    fn decisions_owed_go_in_requests_a_participant_takes() {
        use crate::config::limits::FINISH_TXNS_MAX;
        let bank = |n| BankId::new(n).unwrap();
        // 600 commits and 5 rollbacks owed to bank 2 (bank 3 is down: skipped), over two rounds.
        let round = |n: u64, commit: bool, count: usize| {
            let owed = (0..count)
                .map(|i| Owed { package: format!("p{n}x{i}"), commit, banks: vec![bank(2), bank(3)] })
                .collect();
            (round_key(n), 1, Undelivered { at_ms: 0, forget_after_ms: 0, owed })
        };
        let retention = super::super::retention::Retention { clock_skew_ms_max: 0, retain_ms: 0 };
        let down = BTreeSet::from([bank(3)]);
        let fresh = || Owing::new(retention, vec![round(7, true, 600), round(8, false, 5)], &down).unwrap();
        let mut owing = fresh();
        // A prepare carries at most what a participant takes, commits first.
        let carried = owing.take(bank(2));
        assert_eq!(carried.len(), 1);
        assert_eq!((carried[0].commit, carried[0].txns.len()), (true, FINISH_TXNS_MAX));
        let next = owing.take(bank(2));
        let sizes: Vec<(bool, usize)> = next.iter().map(|d| (d.commit, d.txns.len())).collect();
        assert_eq!(sizes, vec![(true, 600 - FINISH_TXNS_MAX), (false, 5)]);
        assert!(owing.take(bank(2)).is_empty() && owing.take(bank(3)).is_empty(), "nothing to a bank down");
        // Sent on their own: in requests of at most as many.
        let requests = fresh().requests();
        let sizes: Vec<(BankId, bool, usize)> = requests.iter().map(|((b, c), t)| (*b, *c, t.len())).collect();
        assert_eq!(
            sizes,
            vec![(bank(2), false, 5), (bank(2), true, FINISH_TXNS_MAX), (bank(2), true, 600 - FINISH_TXNS_MAX)]
        );
    }

    #[test]
    fn a_full_round_fits_in_one_record() {
        use crate::config::limits::{PACKAGE_OPERATIONS_MAX, ROUND_PACKAGES_MAX};
        // The longest package id (32 hex digits) naming the most banks a package can: two per
        // operation, each with the longest id.
        let banks: Vec<BankId> =
            (0..2 * PACKAGE_OPERATIONS_MAX as u32).map(|i| BankId::new(9_999 - i).unwrap()).collect();
        let ids: Vec<String> = (0..ROUND_PACKAGES_MAX).map(|i| format!("{i:032x}")).collect();
        let record = RoundRecord {
            at_ms: u64::MAX,
            packages: ids.iter().map(|id| RoundEntry { id: id.clone(), banks: banks.clone() }).collect(),
            decided: true,
            committed: ids.clone(),
            aborted: ids.clone(),
            forget_after_ms: u64::MAX,
        };
        let owed = ids.iter().map(|id| Owed { package: id.clone(), commit: false, banks: banks.clone() }).collect();
        let undelivered = Undelivered { at_ms: u64::MAX, forget_after_ms: u64::MAX, owed };
        for (what, len) in
            [("rounds/", json(&record).as_str().len()), ("undelivered/", json(&undelivered).as_str().len())]
        {
            assert!(len <= RECORD_VALUE_BYTES_DEFAULT, "{what}: {len} bytes");
        }
    }

    /// `success` is read from the round's undelivered decisions: a package confirmed stays
    /// `confirmed` while any bank is owed its commit, and is `success` (at its decision's time)
    /// once none is; a record kept from before rounds were stored with packages stays as it is.
    #[test]
    fn a_confirmed_package_reads_as_success_once_no_bank_is_owed_its_commit() {
        let bank = |n| BankId::new(n).unwrap();
        let queued = Queued {
            id: "p1".into(),
            author: Ibk::new(bank(1), shared::AccountId::new(7).unwrap()),
            person: None,
            ops: vec![WireOp {
                from: Ibk::new(bank(1), shared::AccountId::new(7).unwrap()),
                to: Ibk::new(bank(2), shared::AccountId::new(8).unwrap()),
                amount: "1.00".parse().unwrap(),
            }],
            created_at: "2026-12-05T00:00:00.000Z".into(),
            created_ms: 0,
            deadline_ms: 0,
        };
        let confirmed = queued.transaction(Status::Confirmed, None);
        let stored = StoredPackage { package: confirmed.clone(), round: Some(round_key(3)), entry: None };
        // Stored and read back, as an entry too, and through the customer-facing type (the
        // round is extra); an entry from before decided states were kept there names the id.
        let value = json(&stored);
        assert_eq!(value.parse::<StoredPackage>().unwrap(), stored);
        assert!(matches!(
            value.parse::<crate::model::AccountPackage>().unwrap(),
            crate::model::AccountPackage::Decided(s) if s == stored
        ));
        assert!(matches!(
            serde_json::from_value::<crate::model::AccountPackage>(serde_json::json!({ "id": "p1" })).unwrap(),
            crate::model::AccountPackage::Pointer { id } if id == "p1"
        ));
        assert_eq!(value.parse::<Transaction>().unwrap(), confirmed);
        let owing = |package: &str, commit| Undelivered {
            at_ms: 0,
            forget_after_ms: 0,
            owed: vec![Owed { package: package.into(), commit, banks: vec![bank(2)] }],
        };
        let still = owing("p1", true);
        assert_eq!(view(stored.clone(), |_| Some(&still)).status, Status::Confirmed);
        let others = owing("p2", true);
        let rollback = owing("p1", false);
        for left in [None, Some(&others), Some(&rollback)] {
            let shown = view(stored.clone(), |_| left);
            assert_eq!(shown.status, Status::Success, "{left:?}");
            assert!(shown.operations.iter().all(|o| o.status == Status::Success));
            assert_eq!(shown.updated_at, confirmed.updated_at, "the decision's time");
        }
        let unrounded = StoredPackage { round: None, ..stored };
        assert_eq!(view(unrounded, |_| None).status, Status::Confirmed);
    }

    /// Where a package submitted for settlement is decided: the entry its record names, or, for
    /// a record of the old layout still `pending`, the key its author and time give — the key
    /// the old index entry had, which the decision overwrites.
    #[test]
    fn a_waiting_package_knows_its_entry_in_either_layout() {
        let author = Ibk::new(BankId::new(1).unwrap(), shared::AccountId::new(7).unwrap());
        let created_ms = 1_764_000_000_123;
        let queued = Queued {
            id: "0123abcd".into(),
            author,
            person: None,
            ops: vec![],
            created_at: dataserver_api::clock::rfc3339_ms(created_ms),
            created_ms,
            deadline_ms: 0,
        };
        let key = crate::model::account_package_key(author.account, created_ms, &queued.id);
        let pending = queued.transaction(Status::Pending, None);
        let named = StoredPackage { package: pending.clone(), round: None, entry: Some(key.clone()) };
        let old = StoredPackage { entry: None, ..named.clone() };
        assert_eq!(named.entry_key().as_ref(), Some(&key));
        assert_eq!(old.entry_key().as_ref(), Some(&key), "the old layout's index key");
        let failed = StoredPackage { package: queued.transaction(Status::Failed, None), ..old };
        assert_eq!(failed.entry_key(), None, "decided where it is read");
    }
}
