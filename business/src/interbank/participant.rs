//! A bank's side of two-phase commit, over its data server: prepare a batch of packages (one
//! lock call and one atomic commit for the whole batch), then commit or roll them back (again
//! one lock call and one commit). A prepare that carries its coordinator's decisions on earlier
//! rounds ends those attempts and votes on its own under the same locks, in the same commit
//! (`settle_chunk`): with decisions riding on the next round's prepare, a round costs a
//! participant one lock call and one commit. Holds are kept apart from posted balances
//! (`holds/{account}`) and every step is idempotent, so a coordinator may repeat any message
//! after any failure.
//!
//! * `prepared/{txn}` — the package's needs here, kept durably until the decision arrives.
//! * `outcomes/{txn}` — the decision applied here; a rollback of an unknown attempt also writes
//!   it, so a prepare that arrives after its own rollback is refused instead of holding money.
//! * `positions/{bank}` — this bank's net position towards another bank, in cents.

use std::collections::{BTreeMap, BTreeSet};

use dataserver_api::{
    AcquireRequest, CommitRequest, ErrorCode as DsCode, LockRef, Record, RecordKey, RecordOp, SetAmount,
};
use serde::{Deserialize, Serialize};
use shared::{AccountId, BankId, Document, Ibk, Money};

use super::engine::{self, Ending};
use super::settle::{self, AccountView, Need, Refusal, Reserved, Vote, WireOp};
use super::{Interbank, now_ms, ring};
use crate::consents::{ConsentSet, ConsentUse};
use crate::error::{ApiError, Unavailable};
use crate::model::{ACCOUNTS, AccountRecord, CONSENTS, HOLDS, HoldRecord, account_key};
use crate::model::{json, parse_record as parse};

pub const PREPARED: &str = "prepared";
pub const OUTCOMES: &str = "outcomes";
pub const POSITIONS: &str = "positions";
pub const RING: &str = "ring";
pub const RING_STATE: &str = "state";
/// `ring/epoch`: the highest epoch this bank accepted, rewritten only when it rises. A prepare's
/// commit is conditioned on its version, so a prepare of an epoch that was superseded while it
/// waited for its locks lands nothing (issue 13, defect 6). `ring/state` could not serve: its
/// version moves with every lease renewal.
pub const RING_EPOCH: &str = "epoch";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct EpochRecord {
    pub epoch: u64,
}

/// One package of `POST /interbank/prepare`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PrepareItem {
    /// This attempt's id: `{package}.{round}`, the coordinator's round it was prepared in.
    pub txn: String,
    pub package: String,
    pub author: Ibk,
    /// The person the coordinator signed in (`None`: a session of a joint account, which is
    /// nobody's). Debits here need that person's consent to the coordinator: the participant
    /// takes no bank's word for whose account it is.
    pub person: Option<Document>,
    pub ops: Vec<WireOp>,
    /// The package's deadline (ms since the epoch, the coordinator's clock): prepares later
    /// than it by more than the clock-skew bound are refused, which is what lets every bank
    /// forget the attempt's records some time after (see [`super::retention`]).
    pub deadline_ms: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PrepareRequest {
    pub epoch: u64,
    pub coordinator: BankId,
    pub items: Vec<PrepareItem>,
    /// Decisions of the coordinator's earlier rounds this bank has not acknowledged, carried
    /// by the next prepare (issue 13: they cost a request of their own per bank and decision
    /// kind, on the round's critical path). Applied before any item is voted on, exactly as
    /// `/interbank/commit` and `/interbank/rollback` would apply them: holds they release are
    /// there for the votes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub decisions: Vec<Decisions>,
}

/// One kind of decision on attempts of the prepare's coordinator's rounds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Decisions {
    pub commit: bool,
    pub txns: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PrepareResponse {
    /// One per item, in order.
    pub votes: Vec<Vote>,
    /// What became of the decisions carried ([`PrepareRequest::decisions`]), as a commit's or
    /// rollback's answer says it: an attempt in neither list was not ended here now.
    #[serde(default, skip_serializing_if = "FinishResponse::is_empty")]
    pub ended: FinishResponse,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FinishRequest {
    pub txns: Vec<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
pub struct FinishResponse {
    /// The attempts now final here (all of them, unless a commit arrived for an attempt this
    /// bank never prepared — a coordinator bug, reported rather than invented).
    pub done: Vec<String>,
    /// Attempts to commit that this bank knows nothing of: never prepared, or prepared, ended
    /// and forgotten long ago (the coordinator tells which by the attempt's deadline).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unknown: Vec<String>,
}

impl FinishResponse {
    pub fn is_empty(&self) -> bool {
        self.done.is_empty() && self.unknown.is_empty()
    }
}

/// `prepared/{coordinator}.{round}`: what this bank holds for one coordinator's round until its
/// decisions arrive, every package of the round in one record (issue 13: a record per attempt
/// cost a put and a delete per package at every bank). Keyed by the coordinator that sent the
/// prepare, as the caller's certificate names it: a bank's commit or rollback can only ever
/// reach its own rounds' records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PreparedRound {
    pub coordinator: BankId,
    pub round: u64,
    /// When the round's first package was prepared here (recovery asks after `in_doubt_ms`).
    pub at_ms: u64,
    /// By package id.
    pub items: BTreeMap<String, Prepared>,
}

impl PreparedRound {
    fn empty(coordinator: BankId, round: u64) -> PreparedRound {
        PreparedRound { coordinator, round, at_ms: 0, items: BTreeMap::new() }
    }
}

/// What a bank keeps of one prepared package until the decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Prepared {
    pub author: Ibk,
    /// The package's operations that touch this bank (what its journal entry and its net
    /// positions are made of).
    pub ops: Vec<WireOp>,
    /// The consents its debits here reserved on (settled with the decision).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub consents: Vec<ConsentUse>,
    /// The package's deadline, as its prepare said.
    pub deadline_ms: u64,
}

impl Prepared {
    /// What its prepare reserved here, per account (the hold and the credits promised): a
    /// function of its operations, recomputed rather than stored (stored, it took half of a
    /// round's record). `None` only for a record no prepare wrote: its vote computed them.
    pub fn needs(&self, me: BankId) -> Option<Vec<(AccountId, Need)>> {
        settle::needs(&self.ops, me)
    }

    /// The accounts here it touches.
    fn accounts(&self, me: BankId) -> Vec<AccountId> {
        local_accounts(&self.ops, me)
    }
}

/// `outcomes/{coordinator}.{round}`: the decisions applied here for the packages of one
/// coordinator's round; a rollback of a package never prepared here also lands in `aborted`, so
/// a prepare that arrives after its own rollback is refused instead of holding money.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutcomeRound {
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub committed: BTreeSet<String>,
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub aborted: BTreeSet<String>,
    /// When this record may be deleted ([`super::retention`]): the latest of its packages'.
    pub forget_after_ms: u64,
}

impl OutcomeRound {
    /// The decision applied here to `package` (`None`: none yet).
    pub fn of(&self, package: &str) -> Option<bool> {
        if self.committed.contains(package) {
            Some(true)
        } else if self.aborted.contains(package) {
            Some(false)
        } else {
            None
        }
    }

    fn record(&mut self, package: &str, committed: bool, forget_after_ms: u64) {
        if committed { &mut self.committed } else { &mut self.aborted }.insert(package.to_string());
        self.forget_after_ms = self.forget_after_ms.max(forget_after_ms);
    }
}

/// The key of `coordinator`'s round `round` in `prepared/` and `outcomes/`.
pub fn round_record_key(coordinator: BankId, round: u64) -> String {
    format!("{}{round:020}", round_records_prefix(coordinator))
}

/// The prefix every key of `coordinator`'s rounds begins with.
pub fn round_records_prefix(coordinator: BankId) -> String {
    format!("{:04}.", coordinator.get())
}

/// The coordinator and round a `prepared/` or `outcomes/` key names.
pub fn parse_round_record_key(key: &str) -> Option<(BankId, u64)> {
    let (bank, round) = key.split_once('.')?;
    Some((BankId::new(bank.parse().ok()?).ok()?, round.parse().ok()?))
}

/// One round's records as a chunk read them under its locks, and what it changed of them.
#[derive(Debug)]
struct RoundRecords {
    prepared: PreparedRound,
    prepared_version: u64,
    outcome: OutcomeRound,
    outcome_version: u64,
    prepared_changed: bool,
    outcome_changed: bool,
}

impl RoundRecords {
    fn read(coordinator: BankId, round: u64, p: &Option<Record>, o: &Option<Record>) -> Result<RoundRecords, ApiError> {
        Ok(RoundRecords {
            prepared: match p {
                Some(r) => parse(r)?,
                None => PreparedRound::empty(coordinator, round),
            },
            prepared_version: p.as_ref().map_or(0, |r| r.version),
            outcome: match o {
                Some(r) => parse(r)?,
                None => OutcomeRound::default(),
            },
            outcome_version: o.as_ref().map_or(0, |r| r.version),
            prepared_changed: false,
            outcome_changed: false,
        })
    }

    /// The commit operations that write what changed. A round whose prepared record changed but
    /// whose outcomes did not is conditioned on them: a rollback may tombstone one of its
    /// packages at any moment (it takes no lock when nothing is prepared), and then a prepare of
    /// it must not hold anything.
    fn writes(&self, key: &str, out: &mut Vec<RecordOp>) {
        if self.prepared_changed && self.prepared_version == 0 && !self.prepared.items.is_empty() {
            // A round starts being held here: within its coordinator's bound.
            out.push(RecordOp::Fewer {
                collection: PREPARED.into(),
                prefix: round_records_prefix(self.prepared.coordinator),
                than: crate::config::limits::PREPARED_ROUNDS_PER_COORDINATOR_MAX,
            });
        }
        if self.prepared_changed {
            out.push(if self.prepared.items.is_empty() {
                RecordOp::Delete {
                    collection: PREPARED.into(),
                    key: key.into(),
                    if_version: Some(self.prepared_version),
                }
            } else {
                RecordOp::Put {
                    collection: PREPARED.into(),
                    key: key.into(),
                    value: json(&self.prepared),
                    if_version: Some(self.prepared_version),
                }
            });
        }
        if self.outcome_changed {
            out.push(RecordOp::Put {
                collection: OUTCOMES.into(),
                key: key.into(),
                value: json(&self.outcome),
                if_version: Some(self.outcome_version),
            });
        } else if self.prepared_changed {
            out.push(RecordOp::Check {
                collection: OUTCOMES.into(),
                key: key.into(),
                if_version: self.outcome_version,
            });
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PositionRecord {
    pub cents: i64,
}

/// The journal memo of a settlement: the packages whose entries this commit posted, in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename = "interbank")]
pub struct SettlementMemo {
    pub entries: Vec<SettledPackage>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SettledPackage {
    pub txn: String,
    pub package: String,
    pub author: Ibk,
    /// The package's operations that touch this bank.
    pub ops: Vec<WireOp>,
}

pub async fn ring_state(ib: &Interbank) -> Result<(ring::RingState, u64), ApiError> {
    Ok(match ib.ds.get_record(RING, RING_STATE).await? {
        Some(r) => (parse(&r)?, r.version),
        None => (ring::RingState::default(), 0),
    })
}

/// Prepared rounds read per page by [`credit_in_flight`].
const PREPARED_SCAN_PAGE: usize = 32;

/// Whether a package prepared here, by any coordinator, credits `account`. An unreserved credit
/// leaves no mark on the account's `holds/` record, so this is what tells that money is on its
/// way to it. Read under the account's lease, it is exact: a prepare that credits the account
/// takes that lease too. Closing an account is rare, and the rounds held prepared few (at most
/// `PREPARED_ROUNDS_PER_COORDINATOR_MAX` per coordinator): a scan, not an index kept on every
/// prepare.
pub async fn credit_in_flight(ib: &Interbank, account: AccountId) -> Result<bool, ApiError> {
    let me = Ibk::new(ib.me, account);
    let mut after: Option<String> = None;
    loop {
        let page = ib.ds.scan_records(PREPARED, "", after.as_deref(), PREPARED_SCAN_PAGE).await?;
        for r in &page.records {
            let round: PreparedRound = parse(r)?;
            if round.items.values().any(|p| p.ops.iter().any(|o| o.to == me)) {
                return Ok(true);
            }
        }
        match page.next {
            Some(n) => after = Some(n),
            None => return Ok(false),
        }
    }
}

/// Splits items into runs whose accounts here fit one lock call.
fn chunks<T>(items: Vec<T>, accounts_of: impl Fn(&T) -> Vec<AccountId>, max: usize) -> Vec<Vec<T>> {
    let mut out: Vec<Vec<T>> = Vec::new();
    let mut seen: BTreeSet<AccountId> = BTreeSet::new();
    for item in items {
        let mine = accounts_of(&item);
        let new = mine.iter().filter(|a| !seen.contains(a)).count();
        if out.is_empty() || seen.len() + new > max {
            out.push(Vec::new());
            seen.clear();
        }
        seen.extend(mine);
        if let Some(last) = out.last_mut() {
            last.push(item);
        }
    }
    out
}

fn local_accounts(ops: &[WireOp], bank: BankId) -> Vec<AccountId> {
    let mut a: Vec<AccountId> =
        ops.iter().flat_map(|o| [o.from, o.to]).filter(|i| i.bank == bank).map(|i| i.account).collect();
    a.sort_unstable();
    a.dedup();
    a
}

/// Locks `accounts` (sorted) and reads `read` with the grant. With no account, only reads.
async fn lock_and_read(
    ib: &Interbank,
    accounts: Vec<AccountId>,
    read: Vec<RecordKey>,
    wait_ms: u64,
) -> Result<(Vec<LockRef>, BTreeMap<AccountId, Option<Money>>, Vec<Option<Record>>), ApiError> {
    if accounts.is_empty() {
        return Ok((vec![], BTreeMap::new(), ib.ds.get_records(read).await?));
    }
    let req = AcquireRequest { accounts, lease_ms: Some(ib.lease_ms), wait_ms: Some(wait_ms), request_id: None, read };
    let grant = ib.ds.acquire(&req).await.map_err(|e| match e.code() {
        Some(DsCode::Locked) => ApiError::Unavailable(Unavailable::Contended("the accounts are busy")),
        _ => e.into(),
    })?;
    let locks = grant.locks.iter().map(|g| LockRef { account: g.account, token: g.token }).collect();
    let posted = grant.locks.iter().map(|g| (g.account, g.amount)).collect();
    Ok((locks, posted, grant.records))
}

async fn commit_or_release(ib: &Interbank, commit: CommitRequest) -> Result<(), ApiError> {
    if commit.records.is_empty() && commit.set.is_empty() {
        if !commit.locks.is_empty() {
            let _ = ib.ds.release(&commit.locks).await;
        }
        return Ok(());
    }
    match ib.ds.commit(&commit).await {
        Ok(_) => Ok(()),
        Err(e) => {
            if !commit.locks.is_empty() {
                let _ = ib.ds.release(&commit.locks).await;
            }
            Err(match e.code() {
                Some(DsCode::ConditionFailed | DsCode::RecordAbsent | DsCode::LeaseExpired | DsCode::NotHolder) => {
                    ApiError::Unavailable(Unavailable::Contended("a concurrent change"))
                }
                Some(DsCode::CountReached) => ApiError::Unavailable(Unavailable::Exhausted(
                    "the coordinator's rounds held prepared here are at their bound",
                )),
                _ => e.into(),
            })
        }
    }
}

/// Applies the decisions a prepare carries, then votes on its batch of packages. Refuses the
/// whole batch when its epoch is stale (the decisions applied stay applied: they are the
/// coordinator's whatever its epoch, and it delivers them again, finding them done).
pub async fn prepare(ib: &Interbank, req: PrepareRequest) -> Result<PrepareResponse, ApiError> {
    let me = ib.me;
    let at = Fence { coordinator: req.coordinator, epoch: req.epoch };
    let by = FinishBy::Coordinator(req.coordinator);
    let mut ended = FinishResponse::default();
    // The decisions carried: what their rounds hold of them is read first, as a finish does, so
    // that the first chunk's locks can cover their accounts too. A decision that cannot be
    // applied now is not acknowledged (the coordinator sends it again); it does not fail the
    // votes, which may only find less money free.
    let mut ending: Vec<ToEnd> = Vec::new();
    for d in req.decisions {
        let named = named_attempts(d.txns, d.commit, &mut ended);
        match with_prepared(ib, by, named).await {
            Ok(found) => ending.extend(found.into_iter().map(|(named, p)| (named, p, d.commit))),
            Err(e @ ApiError::PeerForbidden(_)) => return Err(e),
            Err(e) => tracing::warn!(error = %e, "decisions carried by a prepare could not be applied now"),
        }
    }
    let mut votes = Vec::with_capacity(req.items.len());
    // Too late: refused without a record (a late or repeated prepare; the attempt may already be
    // forgotten here, so its tombstone cannot be what refuses it).
    let now = now_ms();
    let mut indexed: Vec<(usize, PrepareItem)> = Vec::with_capacity(req.items.len());
    for (i, it) in req.items.into_iter().enumerate() {
        if ib.limits.retention.too_late(it.deadline_ms, now) {
            votes.push((i, Vote::No { refusal: Refusal::DeadlinePassed }));
        } else {
            indexed.push((i, it));
        }
    }
    for chunk in chunks(indexed, |(_, it)| local_accounts(&it.ops, me), ib.limits.batch_accounts_max) {
        // The decisions carried are ended under the first chunk's locks, in its commit, when
        // their accounts fit beside its own; otherwise on their own, first.
        let fits = {
            let all: BTreeSet<AccountId> = chunk
                .iter()
                .flat_map(|(_, it)| local_accounts(&it.ops, me))
                .chain(ending.iter().filter_map(|(_, p, _)| p.as_ref()).flat_map(|p| p.accounts(me)))
                .collect();
            all.len() <= ib.limits.batch_accounts_max
        };
        if !fits {
            end_apart(ib, by, std::mem::take(&mut ending), &mut ended).await;
        }
        let carried = std::mem::take(&mut ending);
        match settle_chunk(ib, by, at.epoch, carried.clone(), chunk.clone(), ib.lock_wait_ms).await {
            Ok((e, v)) => {
                votes.extend(v);
                ended.done.extend(e.done);
                ended.unknown.extend(e.unknown);
                // Prepared after they were read (a late repeat of their prepare): ended on
                // their own, whose next pass reads them again.
                let late: Vec<ToEnd> = carried
                    .into_iter()
                    .filter(|(named, _, _)| e.late.contains(named))
                    .map(|(n, _, c)| (n, None, c))
                    .collect();
                end_apart(ib, by, late, &mut ended).await;
            }
            Err(e @ ApiError::StaleEpoch { .. }) => return Err(e),
            Err(e) => {
                // The decisions carried first, on their own; then the packages.
                end_apart(ib, by, carried, &mut ended).await;
                if is_contention(&e) && chunk.len() > 1 {
                    // One busy account must not fail its neighbours (issue 13, defect 5): each
                    // package of a contended chunk is tried alone, under its own locks only.
                    for item in chunk {
                        let i = item.0;
                        match prepare_chunk(ib, at, vec![item], ALONE_LOCK_WAIT_MS).await {
                            Ok(v) => votes.extend(v),
                            Err(e @ ApiError::StaleEpoch { .. }) => return Err(e),
                            Err(e) => votes.push((i, unevaluated(&e))),
                        }
                    }
                } else {
                    votes.extend(chunk.iter().map(|(i, _)| (*i, unevaluated(&e))));
                }
            }
        }
    }
    // No package to vote on here (all too late): the decisions carried are ended all the same.
    end_apart(ib, by, ending, &mut ended).await;
    // A package not evaluated may have lost its commit to a new epoch: say so, so that the
    // coordinator stops working a token that moved on.
    if votes.iter().any(|(_, v)| *v == Vote::Unreachable) {
        let current = current_epoch(ib).await?;
        if current > at.epoch {
            return Err(ApiError::StaleEpoch { epoch: at.epoch, current });
        }
    }
    votes.sort_by_key(|(i, _)| *i);
    Ok(PrepareResponse { votes: votes.into_iter().map(|(_, v)| v).collect(), ended })
}

/// How long a package tried alone, after its chunk met a busy account, waits for its own locks.
/// The chunk already waited the whole `--lock-wait-ms`: waiting that long again for each busy
/// account would outlast the coordinator's patience (`--peer-timeout-ms`), and the bank would
/// look down after all.
pub const ALONE_LOCK_WAIT_MS: u64 = 50;

/// Whether an error may be one package's own (an account locked by other work, a record changed
/// under it, a sum that would overflow): worth trying each package alone, unlike an unanswering
/// data server, which would fail them all again.
fn is_contention(e: &ApiError) -> bool {
    matches!(e, ApiError::Unavailable(Unavailable::Contended(_) | Unavailable::Corrupt(_)))
}

/// The vote for a package this bank could not evaluate now: not a refusal of it, so its
/// coordinator rolls back only this attempt (whatever may have landed of it) and tries again.
fn unevaluated(e: &ApiError) -> Vote {
    tracing::warn!(error = %e, "a package could not be prepared here now");
    Vote::Unreachable
}

/// The highest epoch this bank accepted.
async fn current_epoch(ib: &Interbank) -> Result<u64, ApiError> {
    let (epoch, state) =
        futures::future::try_join(ib.ds.get_record(RING, RING_EPOCH), ib.ds.get_record(RING, RING_STATE)).await?;
    epoch_of(&epoch, &state)
}

/// The highest epoch accepted, from `ring/epoch` and `ring/state` as read: before the first
/// epoch record (a bank upgraded in place), the ring state's token.
fn epoch_of(epoch: &Option<Record>, state: &Option<Record>) -> Result<u64, ApiError> {
    Ok(match (epoch, state) {
        (Some(r), _) => parse::<EpochRecord>(r)?.epoch,
        (None, Some(r)) => parse::<ring::RingState>(r)?.token.epoch,
        (None, None) => 0,
    })
}

/// When the outcome of an attempt due by `deadline_ms` may be forgotten (0, kept, for an
/// attempt prepared before deadlines were sent).
fn retention_of(ib: &Interbank, deadline_ms: u64) -> u64 {
    if deadline_ms == 0 { 0 } else { ib.limits.retention.forget_after(deadline_ms) }
}

/// How many rounds before a prepare's a prepare looks for an attempt of the same package in (an
/// older one still prepared is left to recovery, which asks its coordinator; the coordinator's
/// closing of a round left open rolls them back first anyway).
pub const EARLIER_ATTEMPTS_MAX: u64 = 4;

/// The rounds just before `round` in which an earlier attempt of a package prepared in `round`
/// is looked for, most recent first.
fn earlier_rounds(round: u64) -> impl Iterator<Item = u64> {
    (round.saturating_sub(EARLIER_ATTEMPTS_MAX).max(1)..round).rev()
}

/// Who prepares, in which epoch.
#[derive(Debug, Clone, Copy)]
struct Fence {
    coordinator: BankId,
    epoch: u64,
}

/// The round records of `rounds` (keys, in order) to read: each round's prepared and outcome
/// records.
fn round_reads(coordinator: BankId, rounds: &BTreeSet<u64>) -> Vec<RecordKey> {
    rounds
        .iter()
        .flat_map(|n| {
            let key = round_record_key(coordinator, *n);
            [RecordKey::new(PREPARED, key.clone()), RecordKey::new(OUTCOMES, key)]
        })
        .collect()
}

/// The round records read by [`round_reads`], from `records` at `at`.
fn parse_rounds(
    coordinator: BankId,
    rounds: &BTreeSet<u64>,
    records: &[Option<Record>],
    at: usize,
) -> Result<BTreeMap<u64, RoundRecords>, ApiError> {
    rounds
        .iter()
        .enumerate()
        .map(|(k, n)| Ok((*n, RoundRecords::read(coordinator, *n, &records[at + 2 * k], &records[at + 2 * k + 1])?)))
        .collect()
}

async fn prepare_chunk(
    ib: &Interbank,
    at: Fence,
    items: Vec<(usize, PrepareItem)>,
    wait_ms: u64,
) -> Result<Vec<(usize, Vote)>, ApiError> {
    Ok(settle_chunk(ib, FinishBy::Coordinator(at.coordinator), at.epoch, vec![], items, wait_ms).await?.1)
}

/// On whose word a commit or rollback is applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FinishBy {
    /// A bank's request (or this bank as coordinator): it reaches only the rounds it
    /// coordinated, the records keyed by its own id.
    Coordinator(BankId),
    /// This bank's recovery, applying the decision `coordinator` answered for its round.
    Recovery(BankId),
}

impl FinishBy {
    fn coordinator(self) -> BankId {
        match self {
            FinishBy::Coordinator(b) | FinishBy::Recovery(b) => b,
        }
    }

    /// Whether the round record read may be ended on this word: one of the caller's own rounds.
    /// Always so, the records being keyed by coordinator; checked anyway, as the rule the
    /// simulation checks ([`engine::may_finish`]).
    fn may_finish(self, round: &PreparedRound) -> bool {
        engine::may_finish(round.coordinator, self.coordinator())
    }
}

/// An attempt a finish names: its id, package and round.
type Named = (String, String, u64);

/// Applies the coordinator's decision to the attempts `txns` of its rounds: `commit` posts their
/// entries and releases their holds; otherwise the holds are released and the attempts marked
/// aborted.
pub async fn finish(ib: &Interbank, txns: Vec<String>, commit: bool, by: FinishBy) -> Result<FinishResponse, ApiError> {
    let mut out = FinishResponse::default();
    let named = named_attempts(txns, commit, &mut out);
    // Which accounts each attempt touches comes from its round's prepared record; read first.
    let found = with_prepared(ib, by, named).await?;
    finish_found(ib, found, commit, by, ib.lock_wait_ms, &mut out).await?;
    Ok(out)
}

/// The attempts `txns` names, by package and round. An id that names no attempt was never
/// prepared (`check_items`): its rollback is done, its commit unknown, in `out`.
fn named_attempts(txns: Vec<String>, commit: bool, out: &mut FinishResponse) -> Vec<Named> {
    let mut named: Vec<Named> = Vec::with_capacity(txns.len());
    for t in txns {
        match super::coordinator::split_txn(&t) {
            Some((package, n)) => named.push((t.clone(), package.to_string(), n)),
            None if commit => out.unknown.push(t),
            None => out.done.push(t),
        }
    }
    named
}

/// Ends attempts (decisions carried by a prepare, with their prepared records as read before)
/// apart from its votes, each kind as a finish does; what cannot be ended now is left out of
/// `out`, for the coordinator to send again. It waits for locks only [`ALONE_LOCK_WAIT_MS`]:
/// the prepare around it may already have waited its `--lock-wait-ms`, and its coordinator's
/// patience is `--peer-timeout-ms`.
async fn end_apart(ib: &Interbank, by: FinishBy, ending: Vec<ToEnd>, out: &mut FinishResponse) {
    let (commits, rollbacks): (Vec<ToEnd>, Vec<ToEnd>) = ending.into_iter().partition(|(_, _, commit)| *commit);
    for (commit, kind) in [(true, commits), (false, rollbacks)] {
        if kind.is_empty() {
            continue;
        }
        let found = kind.into_iter().map(|(named, p, _)| (named, p)).collect();
        if let Err(e) = finish_found(ib, found, commit, by, ALONE_LOCK_WAIT_MS, out).await {
            tracing::warn!(error = %e, "decisions carried by a prepare could not be applied now");
        }
    }
}

/// Ends `found` (attempts, with what their rounds' prepared records held of them as read), in
/// chunks of their accounts, each waiting up to `wait_ms` for its locks, adding what ended to
/// `out`.
async fn finish_found(
    ib: &Interbank,
    mut found: Vec<(Named, Option<Prepared>)>,
    commit: bool,
    by: FinishBy,
    wait_ms: u64,
    out: &mut FinishResponse,
) -> Result<(), ApiError> {
    // An attempt prepared after the read above touches accounts this pass did not lock: it is
    // left for another pass, which reads its record first and so locks them (a prepared item is
    // written once, so one more pass suffices; a bound keeps a bug from looping).
    for _ in 0..FINISH_PASSES_MAX {
        let batches = chunks(
            found,
            |(_, p)| p.as_ref().map(|p| p.accounts(ib.me)).unwrap_or_default(),
            ib.limits.batch_accounts_max,
        );
        let mut late = Vec::new();
        for batch in batches {
            match finish_chunk(ib, batch.clone(), commit, by, wait_ms).await {
                Ok(ended) => {
                    out.done.extend(ended.done);
                    late.extend(ended.late);
                    out.unknown.extend(ended.unknown);
                }
                // As in prepare: one busy account delays only the attempts that touch it.
                Err(e) if is_contention(&e) && batch.len() > 1 => {
                    for one in batch {
                        match finish_chunk(ib, vec![one], commit, by, ALONE_LOCK_WAIT_MS).await {
                            Ok(ended) => {
                                out.done.extend(ended.done);
                                late.extend(ended.late);
                                out.unknown.extend(ended.unknown);
                            }
                            Err(e) => tracing::warn!(error = %e, "an attempt could not be ended here now"),
                        }
                    }
                }
                // Not in `done`: the coordinator sends it again.
                Err(e) => tracing::warn!(error = %e, attempts = batch.len(), "attempts could not be ended here now"),
            }
        }
        if late.is_empty() {
            break;
        }
        found = with_prepared(ib, by, late).await?;
    }
    // Whatever is still left is not in `done`: its coordinator asks again.
    Ok(())
}

/// `named` with what their rounds' prepared records hold of them, read in one data-server
/// request per `batch_accounts_max` rounds.
async fn with_prepared(
    ib: &Interbank,
    by: FinishBy,
    named: Vec<Named>,
) -> Result<Vec<(Named, Option<Prepared>)>, ApiError> {
    let coordinator = by.coordinator();
    let rounds: Vec<u64> = named.iter().map(|(_, _, n)| *n).collect::<BTreeSet<u64>>().into_iter().collect();
    let mut read: BTreeMap<u64, PreparedRound> = BTreeMap::new();
    for chunk in rounds.chunks(ib.limits.batch_accounts_max.max(1)) {
        let keys = chunk.iter().map(|n| RecordKey::new(PREPARED, round_record_key(coordinator, *n))).collect();
        for (n, r) in chunk.iter().zip(ib.ds.get_records(keys).await?) {
            if let Some(r) = r {
                let round: PreparedRound = parse(&r)?;
                if !by.may_finish(&round) {
                    return Err(ApiError::PeerForbidden(format!(
                        "bank {} did not coordinate round {n}",
                        round.coordinator
                    )));
                }
                read.insert(*n, round);
            }
        }
    }
    Ok(named
        .into_iter()
        .map(|(t, package, n)| {
            let p = read.get(&n).and_then(|r| r.items.get(&package)).cloned();
            ((t, package, n), p)
        })
        .collect())
}

/// Passes of one finish: the first, and one for attempts prepared while it ran.
const FINISH_PASSES_MAX: usize = 3;

/// What one chunk of a finish did.
#[derive(Debug, Default)]
struct Ended {
    done: Vec<String>,
    /// Prepared after the chunk chose its locks: for the next pass.
    late: Vec<Named>,
    /// Commits of attempts this bank knows nothing of.
    unknown: Vec<String>,
}

/// Ends the attempts of one chunk under one set of locks.
async fn finish_chunk(
    ib: &Interbank,
    batch: Vec<(Named, Option<Prepared>)>,
    commit: bool,
    by: FinishBy,
    wait_ms: u64,
) -> Result<Ended, ApiError> {
    let ending = batch.into_iter().map(|(named, p)| (named, p, commit)).collect();
    Ok(settle_chunk(ib, by, 0, ending, vec![], wait_ms).await?.0)
}

/// An attempt a chunk ends: its names, what its round's prepared record held of it as read
/// before the chunk's locks (`None`: nothing), and the decision (`true`: commit).
type ToEnd = (Named, Option<Prepared>, bool);

/// One chunk of this bank's side of settlement, under one set of locks and in one commit
/// (issue 13: a participant does one lock call and one commit per round): first it ends
/// `ending` (decisions on `by`'s attempts), then it votes on `items` (a prepare from the same
/// coordinator in `epoch`), with what the endings released there to count on. Either may be
/// empty. Returns what it ended and the votes.
#[expect(clippy::too_many_lines, reason = "one locked read, the endings, the votes, one commit, in order")]
async fn settle_chunk(
    ib: &Interbank,
    by: FinishBy,
    epoch: u64,
    ending: Vec<ToEnd>,
    items: Vec<(usize, PrepareItem)>,
    wait_ms: u64,
) -> Result<(Ended, Vec<(usize, Vote)>), ApiError> {
    let me = ib.me;
    let coordinator = by.coordinator();
    let sorted = |s: BTreeSet<AccountId>| -> Vec<AccountId> { s.into_iter().collect() };
    let ended_prepared = || ending.iter().filter_map(|(_, p, _)| p.as_ref());
    // The accounts voted on (their records are read), and every account locked.
    let voting: Vec<AccountId> = sorted(items.iter().flat_map(|(_, it)| local_accounts(&it.ops, me)).collect());
    let accounts: Vec<AccountId> =
        sorted(voting.iter().copied().chain(ended_prepared().flat_map(|p| p.accounts(me))).collect());
    let peers: Vec<BankId> = {
        let s: BTreeSet<BankId> = ended_prepared().flat_map(|p| settle::positions(&p.ops, me).into_keys()).collect();
        s.into_iter().collect()
    };
    // Checked at the edge (`check_items`): every id is `{package}.{round}`.
    let round_of = |it: &PrepareItem| super::coordinator::split_txn(&it.txn).map_or(0, |(_, n)| n);
    // Consents matter only for accounts debited here in another bank's packages: only theirs are
    // read (a bank's own packages, and credits, read none), and those the endings settle.
    let debited: BTreeSet<AccountId> = if coordinator == me {
        BTreeSet::new()
    } else {
        items.iter().flat_map(|(_, it)| it.ops.iter()).filter(|o| o.from.bank == me).map(|o| o.from.account).collect()
    };
    let consented: Vec<AccountId> = sorted(
        debited.iter().copied().chain(ended_prepared().flat_map(|p| p.consents.iter().map(|c| c.account))).collect(),
    );
    // The items' own rounds and the few before each, where an earlier attempt may still hold;
    // and the rounds of the attempts ended.
    let rounds: BTreeSet<u64> = items
        .iter()
        .flat_map(|(_, it)| std::iter::once(round_of(it)).chain(earlier_rounds(round_of(it))))
        .chain(ending.iter().map(|((_, _, n), _, _)| *n))
        .collect();
    let mut read: Vec<RecordKey> = accounts.iter().map(|a| RecordKey::new(HOLDS, account_key(*a))).collect();
    read.extend(voting.iter().map(|a| RecordKey::new(ACCOUNTS, account_key(*a))));
    read.extend(consented.iter().map(|a| RecordKey::new(CONSENTS, account_key(*a))));
    read.extend(peers.iter().map(|b| RecordKey::new(POSITIONS, format!("{:04}", b.get()))));
    let epoch_at = read.len();
    if !items.is_empty() {
        // The epoch, read with the locks and made a condition of the commit below.
        read.push(RecordKey::new(RING, RING_EPOCH));
        read.push(RecordKey::new(RING, RING_STATE));
    }
    let rounds_at = read.len();
    read.extend(round_reads(coordinator, &rounds));
    let (locks, posted, records) = lock_and_read(ib, accounts.clone(), read, wait_ms).await?;
    let epoch_version = if items.is_empty() {
        0
    } else {
        match epoch_of(&records[epoch_at], &records[epoch_at + 1]) {
            Ok(current) if current > epoch => {
                let _ = ib.ds.release(&locks).await;
                return Err(ApiError::StaleEpoch { epoch, current });
            }
            Ok(_) => records[epoch_at].as_ref().map_or(0, |r| r.version),
            Err(e) => {
                let _ = ib.ds.release(&locks).await;
                return Err(e);
            }
        }
    };
    type Parsed = (
        BTreeMap<AccountId, (HoldRecord, u64)>,
        BTreeMap<AccountId, bool>,
        BTreeMap<AccountId, (ConsentSet, u64)>,
        BTreeMap<BankId, (i128, u64)>,
        BTreeMap<u64, RoundRecords>,
    );
    let parsed = (|| -> Result<Parsed, ApiError> {
        let mut at = 0;
        let mut holds = BTreeMap::new();
        for a in &accounts {
            let h = match &records[at] {
                Some(r) => (parse::<HoldRecord>(r)?, r.version),
                None => (HoldRecord::default(), 0),
            };
            holds.insert(*a, h);
            at += 1;
        }
        // Per account voted on: whether it exists, and whether it is a joint account some
        // holder has not confirmed.
        let mut pending = BTreeMap::new();
        for a in &voting {
            if let Some(r) = &records[at] {
                pending.insert(*a, !parse::<AccountRecord>(r)?.pending.is_empty());
            }
            at += 1;
        }
        let mut consents = BTreeMap::new();
        for a in &consented {
            let c = match &records[at] {
                Some(r) => (parse::<ConsentSet>(r)?, r.version),
                None => (ConsentSet::default(), 0),
            };
            consents.insert(*a, c);
            at += 1;
        }
        let mut positions = BTreeMap::new();
        for b in &peers {
            let p = match &records[at] {
                Some(r) => (i128::from(parse::<PositionRecord>(r)?.cents), r.version),
                None => (0, 0),
            };
            positions.insert(*b, p);
            at += 1;
        }
        Ok((holds, pending, consents, positions, parse_rounds(coordinator, &rounds, &records, rounds_at)?))
    })();
    let (mut holds, pending, mut consents, mut positions, mut rounds) = match parsed {
        Ok(x) => x,
        Err(e) => {
            let _ = ib.ds.release(&locks).await;
            return Err(e);
        }
    };
    let mut balances: BTreeMap<AccountId, Money> = posted.iter().map(|(a, m)| (*a, m.unwrap_or(Money::ZERO))).collect();
    let mut c = CommitRequest::fresh();
    c.locks = locks;
    let mut ended = Ended::default();
    let mut memo = SettlementMemo { entries: vec![] };
    let mut moved: BTreeSet<AccountId> = BTreeSet::new();
    // The records changed: only these are written.
    let mut changed_holds: BTreeSet<AccountId> = BTreeSet::new();
    let mut changed_consents: BTreeSet<AccountId> = BTreeSet::new();
    let mut changed_positions: BTreeSet<BankId> = BTreeSet::new();

    // ---- the endings (`/interbank/commit` and `/rollback`, or the decisions a prepare carries)
    for ((txn, package, round), _, commit) in &ending {
        let commit = *commit;
        let r = rounds.get_mut(round).expect("every attempt's round was read");
        if !by.may_finish(&r.prepared) {
            tracing::warn!(txn, coordinator = %r.prepared.coordinator, "a finish from a bank that is not the coordinator");
            continue;
        }
        // Re-read under the locks: the record is authoritative now.
        let prepared = r.prepared.items.get(package).cloned();
        match engine::ending(prepared.is_some(), r.outcome.of(package), commit) {
            Ending::Apply => {}
            Ending::Repeat => {
                ended.done.push(txn.clone());
                continue;
            }
            Ending::Conflict => {
                tracing::error!(txn, commit, "decision differs from the outcome applied here");
                continue;
            }
            Ending::Tombstone => {
                // Its deadline is not known here: kept as long as any attempt's could need.
                r.outcome.record(package, false, ib.limits.retention.forget_after_unknown(now_ms()));
                r.outcome_changed = true;
                ended.done.push(txn.clone());
                continue;
            }
            Ending::Unknown => {
                ended.unknown.push(txn.clone());
                continue;
            }
        }
        let Some(p) = prepared else { continue };
        let needs = p.needs(me).ok_or_else(|| {
            ApiError::Unavailable(Unavailable::Corrupt(format!("{txn}: prepared operations whose sums overflow")))
        })?;
        // Prepared since this chunk chose what to lock and read: its accounts' holds, consents
        // or positions are not under these locks. Ending it here would delete its record and
        // leave its holds raised for ever (issue 13, defect 1); the next pass locks them.
        let outside = needs.iter().any(|(a, _)| !holds.contains_key(a))
            || p.consents.iter().any(|u| !consents.contains_key(&u.account))
            || settle::positions(&p.ops, me).keys().any(|b| !positions.contains_key(b));
        if outside {
            ended.late.push((txn.clone(), package.clone(), *round));
            continue;
        }
        for u in &p.consents {
            if let Some((set, _)) = consents.get_mut(&u.account) {
                set.settle(&u.consent, u.amount, commit);
                changed_consents.insert(u.account);
            }
        }
        for (a, need) in &needs {
            if let Some((h, _)) = holds.get_mut(a).filter(|_| !need.unreserved()) {
                h.release(*a, need.hold, need.promised());
                changed_holds.insert(*a);
            }
            if commit {
                let b = balances.entry(*a).or_insert(Money::ZERO);
                // held ≥ the dip, so the net change never takes the balance below zero.
                *b = b.checked_add(need.credits).and_then(|x| x.checked_sub(need.debits)).ok_or_else(|| {
                    ApiError::Unavailable(Unavailable::Corrupt(format!("settling {txn} would break account {a}")))
                })?;
                moved.insert(*a);
            }
        }
        if commit {
            for (bank, cents) in settle::positions(&p.ops, me) {
                if let Some((v, _)) = positions.get_mut(&bank) {
                    *v += cents;
                    changed_positions.insert(bank);
                }
            }
            memo.entries.push(SettledPackage {
                txn: txn.clone(),
                package: package.clone(),
                author: p.author,
                ops: p.ops,
            });
        }
        r.prepared.items.remove(package);
        r.prepared_changed = true;
        r.outcome.record(package, commit, retention_of(ib, p.deadline_ms));
        r.outcome_changed = true;
        ended.done.push(txn.clone());
    }

    // ---- the votes, on what the endings left
    let mut views: BTreeMap<AccountId, Option<AccountView>> = voting
        .iter()
        .map(|a| {
            let view = pending.get(a).map(|pending| {
                let hold = holds.get(a).map(|(h, _)| *h).unwrap_or_default();
                AccountView {
                    posted: balances.get(a).copied().unwrap_or(Money::ZERO),
                    held: hold.held,
                    incoming: hold.incoming,
                    pending: *pending,
                    consents: if debited.contains(a) {
                        consents.get(a).map(|(set, _)| set.clone()).unwrap_or_default()
                    } else {
                        ConsentSet::default()
                    },
                }
            });
            (*a, view)
        })
        .collect();
    let mut out = Vec::with_capacity(items.len());
    let mut fresh: Vec<(usize, &PrepareItem)> = Vec::new();
    for (i, it) in &items {
        let r = &rounds[&round_of(it)];
        match engine::known_vote(r.prepared.items.contains_key(&it.package), r.outcome.of(&it.package)) {
            Some(vote) => out.push((*i, vote)),
            None => fresh.push((*i, it)),
        }
    }
    // A round holds at most `ROUND_PACKAGES_MAX` packages here (an honest coordinator's rounds
    // never carry more): the bound on credits in flight without a hold counts on it, so a
    // coordinator that sends more to one round is answered `unreachable` for the rest, as for
    // a round too many, and nothing of them is stored.
    let mut room: BTreeMap<u64, usize> = rounds
        .iter()
        .map(|(n, r)| (*n, crate::config::limits::ROUND_PACKAGES_MAX.saturating_sub(r.prepared.items.len())))
        .collect();
    fresh.retain(|(i, it)| {
        let left = room.entry(round_of(it)).or_default();
        if *left == 0 {
            out.push((*i, Vote::Unreachable));
            return false;
        }
        *left -= 1;
        true
    });
    // The consents the votes reserved on (they live in the views meanwhile).
    let mut drawn: BTreeSet<AccountId> = BTreeSet::new();
    // Earlier attempts of these packages, prepared here by the same coordinator, are ended
    // before the new ones are voted on, so that their holds are not counted twice (issue 13,
    // defect 3: a replica that took the token over mid-round prepared the next attempt while the
    // first still held, and an affordable package failed for want of funds). A coordinator
    // starts round n only once each of its earlier rounds is decided (a round's decision commit,
    // or the closing of a round left open, is what clears `ring/state`'s open round), and a
    // package committed in one leaves the queue in that same commit: a package prepared in round
    // n has no earlier attempt that committed or ever can, so ending it is the decision its
    // coordinator took. Only the same coordinator's rounds are looked in: they are the only
    // ones a prepare from it can reach.
    for (_, it) in &fresh {
        for m in earlier_rounds(round_of(it)) {
            let Some(r) = rounds.get_mut(&m) else { continue };
            let Some(p) = r.prepared.items.get(&it.package) else { continue };
            let Some(needs) = p.needs(me) else { continue };
            // Only what this very call has locked and read may be changed: anything else is left
            // to the earlier attempt's own decision.
            let covered = needs.iter().all(|(a, _)| holds.contains_key(a))
                && p.consents.iter().all(|u| debited.contains(&u.account));
            if !covered {
                continue;
            }
            for (a, need) in needs.iter().filter(|(_, need)| !need.unreserved()) {
                if let Some((h, _)) = holds.get_mut(a) {
                    h.release(*a, need.hold, need.promised());
                    changed_holds.insert(*a);
                }
                if let Some(Some(view)) = views.get_mut(a) {
                    view.held = view.held.checked_sub(need.hold).unwrap_or(Money::ZERO);
                    view.incoming = view.incoming.checked_sub(need.promised()).unwrap_or(Money::ZERO);
                }
            }
            for u in &p.consents {
                if let Some(Some(view)) = views.get_mut(&u.account) {
                    view.consents.settle(&u.consent, u.amount, false);
                    drawn.insert(u.account);
                }
            }
            let forget_after_ms = retention_of(ib, p.deadline_ms);
            r.prepared.items.remove(&it.package);
            r.prepared_changed = true;
            r.outcome.record(&it.package, false, forget_after_ms);
            r.outcome_changed = true;
        }
    }
    let settle_items: Vec<settle::Item<'_>> =
        fresh.iter().map(|(_, it)| settle::Item { ops: &it.ops, person: it.person.as_ref() }).collect();
    let now = now_ms();
    let results = settle::vote(me, coordinator, &settle_items, &mut views, now);
    for ((i, it), result) in fresh.iter().zip(results) {
        let r = rounds.get_mut(&round_of(it)).expect("every item's round was read");
        match result {
            Ok(Reserved { needs, consents: used }) => {
                drawn.extend(used.iter().map(|c| c.account));
                // A small credit to an account asked nothing else keeps no hold: its `holds/`
                // record is left as it is (see `settle::BALANCE_CEILING` for why it cannot
                // overflow, and `Accounts::close` for why the account cannot close under it).
                for (a, need) in needs.iter().filter(|(_, need)| !need.unreserved()) {
                    if let Some((h, _)) = holds.get_mut(a) {
                        h.held = h.held.checked_add(need.hold).unwrap_or(Money::MAX);
                        h.incoming = h.incoming.checked_add(need.promised()).unwrap_or(Money::MAX);
                        h.inflight += 1;
                        changed_holds.insert(*a);
                    }
                }
                let ops = it.ops.iter().copied().filter(|o| o.from.bank == me || o.to.bank == me).collect();
                let p = Prepared { author: it.author, ops, consents: used, deadline_ms: it.deadline_ms };
                debug_assert_eq!(p.needs(me).as_ref(), Some(&needs), "what a finish recomputes is what was reserved");
                if r.prepared.items.is_empty() {
                    r.prepared.at_ms = now;
                }
                r.prepared.items.insert(it.package.clone(), p);
                r.prepared_changed = true;
                out.push((*i, Vote::Yes));
            }
            Err(refusal) => {
                r.outcome.record(&it.package, false, retention_of(ib, it.deadline_ms));
                r.outcome_changed = true;
                out.push((*i, Vote::No { refusal }));
            }
        }
    }
    for a in drawn {
        if let (Some(Some(view)), Some((set, _))) = (views.get(&a), consents.get_mut(&a)) {
            *set = view.consents.clone();
            changed_consents.insert(a);
        }
    }

    // ---- one commit
    for (n, r) in &rounds {
        r.writes(&round_record_key(coordinator, *n), &mut c.records);
    }
    for a in &changed_holds {
        let (h, v) = holds[a];
        if h.inflight == 0 && h.held.is_zero() && h.incoming.is_zero() {
            if v != 0 {
                c.records.push(RecordOp::Delete {
                    collection: HOLDS.into(),
                    key: account_key(*a),
                    if_version: Some(v),
                });
            }
        } else {
            c.records.push(RecordOp::Put {
                collection: HOLDS.into(),
                key: account_key(*a),
                value: json(&h),
                if_version: Some(v),
            });
        }
    }
    // The reservations on consents, in the same commit as the holds they go with.
    for a in &changed_consents {
        let (set, v) = &consents[a];
        c.records.push(RecordOp::Put {
            collection: CONSENTS.into(),
            key: account_key(*a),
            value: json(set),
            if_version: Some(*v),
        });
    }
    for bank in &changed_positions {
        let (cents, v) = positions[bank];
        let cents = i64::try_from(cents)
            .map_err(|_| ApiError::Unavailable(Unavailable::Exhausted("the net position overflows")))?;
        c.records.push(RecordOp::Put {
            collection: POSITIONS.into(),
            key: format!("{:04}", bank.get()),
            value: json(&PositionRecord { cents }),
            if_version: Some(v),
        });
    }
    c.set = moved.iter().map(|a| SetAmount { account: *a, amount: balances[a] }).collect();
    if !memo.entries.is_empty() {
        c.memo = Some(dataserver_api::Memo::of(&memo));
    }
    if !items.is_empty() && !c.records.is_empty() {
        c.records.push(RecordOp::Check { collection: RING.into(), key: RING_EPOCH.into(), if_version: epoch_version });
    }
    commit_or_release(ib, c).await?;
    Ok((ended, out))
}

/// This bank's net positions towards every other bank, in cents (positive: we owe them).
pub async fn positions(ib: &Interbank) -> Result<Vec<(BankId, i64)>, ApiError> {
    let page = ib.ds.scan_records(POSITIONS, "", None, 1_000).await?;
    page.records
        .iter()
        .map(|r| {
            let bank: BankId = r
                .key
                .trim_start_matches('0')
                .parse()
                .map_err(|_| ApiError::Unavailable(Unavailable::Corrupt(format!("positions key {:?}", r.key))))?;
            Ok((bank, parse::<PositionRecord>(r)?.cents))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The data server's default `--record-value-bytes-max`.
    const RECORD_VALUE_BYTES_DEFAULT: usize = 64 << 10;

    /// A round's prepared record at a participant holds every package of the round, so the
    /// round's size is bounded by what one record takes: at most `ROUND_OPERATIONS_MAX`
    /// operations, each with two accounts here (the worst case: every operation between two
    /// accounts of this bank, with its own need and consent), the longest ids and amounts.
    #[test]
    fn a_round_record_key_reads_back() {
        let b = BankId::new(7).unwrap();
        assert_eq!(parse_round_record_key(&round_record_key(b, 42)), Some((b, 42)));
        assert_eq!(parse_round_record_key("0007"), None);
    }

    #[test]
    fn a_full_round_fits_in_one_prepared_record() {
        use crate::config::limits::{PACKAGE_OPERATIONS_MAX, ROUND_OPERATIONS_MAX, ROUND_PACKAGES_MAX};
        let me = BankId::new(9_999).unwrap();
        let other = BankId::new(9_998).unwrap();
        let big = Money::MAX;
        let account = |i: usize| AccountId::new(shared::ids::ACCOUNT_ID_MAX - i as u64).unwrap();
        let packages = ROUND_OPERATIONS_MAX / PACKAGE_OPERATIONS_MAX;
        assert!(packages <= ROUND_PACKAGES_MAX);
        let mut round = PreparedRound::empty(me, u64::MAX);
        round.at_ms = u64::MAX;
        let mut outcome = OutcomeRound { forget_after_ms: u64::MAX, ..OutcomeRound::default() };
        for p in 0..ROUND_PACKAGES_MAX {
            let id = format!("{p:032x}");
            outcome.aborted.insert(id.clone());
            outcome.committed.insert(format!("{p:031x}z"));
            if p >= packages {
                continue;
            }
            let ops: Vec<WireOp> = (0..PACKAGE_OPERATIONS_MAX)
                .map(|k| WireOp {
                    from: Ibk::new(me, account(2 * k)),
                    to: Ibk::new(if k % 2 == 0 { me } else { other }, account(2 * k + 1)),
                    amount: shared::Amount::new(big).unwrap(),
                })
                .collect();
            let consents = (0..PACKAGE_OPERATIONS_MAX)
                .map(|k| ConsentUse { account: account(2 * k), consent: format!("{k:032x}"), amount: big })
                .collect();
            let author = Ibk::new(other, account(0));
            round.items.insert(id, Prepared { author, ops, consents, deadline_ms: u64::MAX });
        }
        for (what, len) in [("prepared/", json(&round).as_str().len()), ("outcomes/", json(&outcome).as_str().len())] {
            assert!(len <= RECORD_VALUE_BYTES_DEFAULT, "{what}: {len} bytes");
        }
    }
}
