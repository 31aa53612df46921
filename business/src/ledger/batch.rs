//! Replica-side batching of single operations (deposits, withdrawals, transfers), as
//! TigerBeetle's stateless gateways do: the operations that arrive while this replica's earlier
//! data-server calls are in flight go out together as one lock call and one atomic commit.
//!
//! There is no added delay: a batch leaves as soon as a slot is free (`batch_in_flight_max`),
//! with whatever has queued by then (at most `batch_ops_max`). Within a batch the operations are
//! applied in arrival order on running balances, so two touching one account see each other;
//! one that is refused (insufficient funds, unknown account, an `Idempotency-Key` reused) is
//! refused alone and the others commit. Every caller is answered only once the batch's commit is
//! durable. Whenever the batch as a whole cannot be committed for a reason that concerns only
//! some of its operations (a closed account, a joint account waiting for its holders, a repeat
//! of an idempotency key racing another replica, a lock wait timed out), each operation runs
//! again on its own through [`Ledger::run`], which tells its precise answer: batching never
//! changes an answer, it only shares round trips.

use std::collections::BTreeMap;
use std::sync::Arc;

use dataserver_api::{
    AcquireRequest, AcquireResponse, CommitRequest, ErrorCode as DsCode, LockRef, RawJson, RecordKey, RecordOp,
};
use serde::{Deserialize, Serialize};
use shared::api::{AccountBalance, OperationReceipt};
use shared::{AccountId, Money};
use tokio::sync::{Semaphore, mpsc, oneshot};

use super::{
    Applied, Change, Ledger, Op, backoff, check_idempotency_key, corrupt_answer, idempotency_put, is_transport,
    now_rfc3339, spendable,
};
use crate::error::{ApiError, Unavailable};
use crate::model::{ACCOUNTS, HOLDS, HoldRecord, IDEMPOTENCY, IdempotencyRecord, account_key, json};

/// The journal memo of a batch's commit: each operation with its receipt's id and the balances
/// right after it, in the order applied, so a statement lists every operation as its own line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename = "batch")]
pub struct BatchMemo {
    pub operations: Vec<BatchedOp>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchedOp {
    pub id: String,
    pub op: Op,
    pub balances: Vec<AccountBalance>,
}

/// One operation waiting for its batch.
#[derive(Debug)]
struct Item {
    op: Op,
    key: Option<String>,
    reply: oneshot::Sender<Result<OperationReceipt, ApiError>>,
}

/// What became of one operation of a batch.
#[derive(Debug)]
pub(crate) enum Fate {
    /// In the batch's commit; answered once it is durable.
    Applied(OperationReceipt),
    /// Refused on the balances it saw; answered once the rest is durable.
    Refused(ApiError),
    /// Its `Idempotency-Key` was used before: the stored answer.
    Replayed(RawJson),
    /// Runs on its own after the batch (its key appears earlier in the same batch).
    Alone,
}

/// The locked read of one account: its posted amount (`None`: no such account) and its holds.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Locked {
    pub posted: Option<Money>,
    pub hold: HoldRecord,
}

/// The operations of one batch decided on the locked read, and the one commit that applies the
/// applied ones (`None` when none was). No I/O, so the rules are tested without servers.
pub(crate) fn plan(
    ops: &[(Op, Option<&str>)],
    locked: &BTreeMap<AccountId, Locked>,
    grant: &AcquireResponse,
    stored: &[Option<dataserver_api::Record>],
) -> (Vec<Fate>, Option<CommitRequest>) {
    // What a debit may spend: posted minus held, exactly as a single operation sees it.
    let mut available: BTreeMap<AccountId, Option<Money>> =
        locked.iter().map(|(a, l)| (*a, l.posted.map(|p| spendable(*a, p, l.hold.held)))).collect();
    let hold = |a: AccountId| locked.get(&a).map_or(HoldRecord::default(), |l| l.hold);
    let at = now_rfc3339();
    let mut fates = Vec::with_capacity(ops.len());
    let mut memo = BatchMemo { operations: Vec::new() };
    let mut records: Vec<RecordOp> = Vec::new();
    let mut touched: Vec<AccountId> = Vec::new();
    let mut debited: Vec<AccountId> = Vec::new();
    let mut keys_seen: Vec<&str> = Vec::new();
    for (i, (op, key)) in ops.iter().enumerate() {
        // Only a keyed operation is compared with, and stored as, its request.
        let request = key.map(|_| json(op));
        if let Some(k) = key {
            if keys_seen.contains(k) {
                fates.push(Fate::Alone);
                continue;
            }
            keys_seen.push(k);
            if let Some(record) = stored.get(i).and_then(Option::as_ref) {
                fates.push(match record.value.parse::<IdempotencyRecord>() {
                    Ok(s) if Some(&s.request) == request.as_ref() => Fate::Replayed(s.response),
                    Ok(_) => Fate::Refused(ApiError::IdempotencyKeyReused),
                    Err(e) => Fate::Refused(corrupt_answer(e)),
                });
                continue;
            }
        }
        let now = |a: AccountId| available.get(&a).copied().flatten();
        let posted = op.apply(&now).and_then(|avail| {
            avail
                .into_iter()
                .map(|(a, m)| hold(a).posted_after(a, now(a).unwrap_or(Money::ZERO), m).map(|p| (a, m, p)))
                .collect::<Result<Vec<_>, _>>()
        });
        let changed = match posted {
            Ok(c) => c,
            Err(e) => {
                fates.push(Fate::Refused(e));
                continue;
            }
        };
        for (a, avail, _) in &changed {
            available.insert(*a, Some(*avail));
        }
        let applied = Applied {
            transaction_id: uuid::Uuid::new_v4().to_string(),
            balances: changed.iter().map(|(a, _, p)| (*a, *p)).collect(),
            at: at.clone(),
        };
        let receipt = op.receipt(&applied);
        for a in op.accounts() {
            if !touched.contains(&a) {
                touched.push(a);
            }
        }
        for a in op.debited() {
            if !debited.contains(&a) {
                debited.push(a);
            }
        }
        if let (Some(k), Some(request)) = (key, request) {
            records.push(idempotency_put(k, request, json(&receipt)));
        }
        memo.operations.push(BatchedOp {
            id: applied.transaction_id.clone(),
            op: *op,
            balances: receipt.balances.clone(),
        });
        fates.push(Fate::Applied(receipt));
    }
    if memo.operations.is_empty() {
        return (fates, None);
    }
    let mut commit = CommitRequest::fresh();
    commit.locks = grant.locks.iter().map(|g| LockRef { account: g.account, token: g.token }).collect();
    commit.set = touched
        .iter()
        .map(|a| {
            let avail = available.get(a).copied().flatten().expect("an applied operation's accounts exist");
            let posted = hold(*a).posted(avail).expect("checked when the operation was applied");
            dataserver_api::SetAmount { account: *a, amount: posted }
        })
        .collect();
    let mut conditions: Vec<RecordOp> =
        touched.iter().map(|a| RecordOp::Present { collection: ACCOUNTS.into(), key: account_key(*a) }).collect();
    conditions.extend(debited.into_iter().map(crate::model::not_pending));
    conditions.extend(records);
    commit.records = conditions;
    commit.memo = Some(dataserver_api::Memo::of(&memo));
    (fates, Some(commit))
}

/// The handle the routes submit operations through; the batching task ends when the last
/// handle is dropped.
#[derive(Debug, Clone)]
pub struct Batcher {
    tx: mpsc::Sender<Item>,
    queued: prometheus_client::metrics::gauge::Gauge,
}

impl Batcher {
    /// Starts the batching task over `ledger` (which must not batch itself).
    pub fn start(ledger: Ledger, ops_max: usize, in_flight_max: usize, queue_max: usize) -> Batcher {
        assert!(ledger.batcher.is_none(), "the batching task runs operations on an unbatched ledger");
        assert!(ops_max >= 1 && in_flight_max >= 1 && queue_max >= 1);
        // Bounded: past `queue_max` waiting operations a caller waits for room (backpressure),
        // the queue never grows without bound.
        let (tx, rx) = mpsc::channel(queue_max);
        let queued = ledger.metrics.batch_queued.clone();
        tokio::spawn(work(ledger, rx, ops_max, in_flight_max));
        Batcher { tx, queued }
    }

    pub async fn submit(&self, op: Op, key: Option<&str>) -> Result<OperationReceipt, ApiError> {
        op.validate()?;
        if let Some(k) = key {
            check_idempotency_key(k)?;
        }
        let (reply, answer) = oneshot::channel();
        let item = Item { op, key: key.map(str::to_string), reply };
        self.queued.inc();
        if self.tx.send(item).await.is_err() {
            self.queued.dec();
            return Err(ApiError::Unavailable(Unavailable::Worker("the batching task".into())));
        }
        answer.await.map_err(|_| ApiError::Unavailable(Unavailable::Worker("the batching task".into())))?
    }
}

async fn work(ledger: Ledger, mut rx: mpsc::Receiver<Item>, ops_max: usize, in_flight_max: usize) {
    let slots = Arc::new(Semaphore::new(in_flight_max));
    loop {
        // A slot first, then the queue: while every slot is busy, arrivals gather into the
        // next batch instead of leaving one by one.
        let Ok(slot) = slots.clone().acquire_owned().await else { return };
        let Some(first) = rx.recv().await else { return };
        let mut items = vec![first];
        while items.len() < ops_max {
            match rx.try_recv() {
                Ok(item) => items.push(item),
                Err(_) => break,
            }
        }
        ledger.metrics.batch_queued.dec_by(items.len() as i64);
        let ledger = ledger.clone();
        tokio::spawn(async move {
            ledger.metrics.batch_operations.observe(items.len() as f64);
            run_batch(&ledger, items).await;
            drop(slot);
        });
    }
}

/// Why a batch attempt did not decide its operations.
enum Retry {
    /// Nothing applied and worth another attempt of the whole batch (a lost lease, no answer).
    Again(String),
    /// Each operation runs on its own, which tells its precise answer.
    Alone,
}

async fn run_batch(ledger: &Ledger, items: Vec<Item>) {
    let mut attempt = 0;
    let fates = loop {
        attempt += 1;
        match attempt_batch(ledger, &items).await {
            Ok(fates) => break fates,
            Err(Retry::Again(_)) if attempt < ledger.attempts_max => {
                ledger.metrics.operation_retries_total.inc();
                backoff(attempt).await;
            }
            Err(Retry::Again(why)) => {
                for item in items {
                    let _ = item.reply.send(Err(ApiError::Unavailable(Unavailable::DataServer(why.clone()))));
                }
                return;
            }
            Err(Retry::Alone) => break items.iter().map(|_| Fate::Alone).collect(),
        }
    };
    let mut alone = Vec::new();
    for (item, fate) in items.into_iter().zip(fates) {
        let answer = match fate {
            Fate::Applied(receipt) => {
                ledger.metrics.operations_total.inc();
                Ok(receipt)
            }
            Fate::Refused(e) => Err(e),
            Fate::Replayed(v) => v.parse().map_err(corrupt_answer),
            Fate::Alone => {
                alone.push(item);
                continue;
            }
        };
        let _ = item.reply.send(answer);
    }
    if !alone.is_empty() {
        ledger.metrics.batch_alone_total.inc_by(alone.len() as u64);
    }
    // One after another, in arrival order: each sees the ones before it.
    for item in alone {
        let op = item.op;
        let answer = ledger.run(&op, item.key.as_deref(), |applied| op.receipt(applied)).await;
        let _ = item.reply.send(answer);
    }
}

async fn attempt_batch(ledger: &Ledger, items: &[Item]) -> Result<Vec<Fate>, Retry> {
    let mut accounts: Vec<AccountId> = items.iter().flat_map(|i| i.op.accounts()).collect();
    accounts.sort_unstable();
    accounts.dedup();
    let mut read: Vec<RecordKey> = accounts.iter().map(|a| RecordKey::new(HOLDS, account_key(*a))).collect();
    // Each keyed operation's stored answer, read in the same call (no round trip of its own).
    let keyed: Vec<usize> = (0..items.len()).filter(|i| items[*i].key.is_some()).collect();
    read.extend(keyed.iter().filter_map(|i| items[*i].key.as_ref()).map(|k| RecordKey::new(IDEMPOTENCY, k.clone())));
    let req = AcquireRequest {
        accounts: accounts.clone(),
        lease_ms: Some(ledger.lease_ms),
        wait_ms: Some(ledger.lock_wait_ms),
        request_id: None,
        read,
    };
    let grant = match ledger.ds.acquire(&req).await {
        Ok(g) => g,
        Err(e) if is_transport(&e) => return Err(Retry::Again(e.to_string())),
        // A lock wait that timed out, or anything else: each on its own says which and why.
        Err(_) => return Err(Retry::Alone),
    };
    let locks: Vec<LockRef> = grant.locks.iter().map(|g| LockRef { account: g.account, token: g.token }).collect();
    let mut locked = BTreeMap::new();
    for (i, a) in accounts.iter().enumerate() {
        let Ok(hold) = HoldRecord::from_record(&grant.records[i]) else {
            ledger.release(&locks).await;
            return Err(Retry::Alone);
        };
        let posted = grant.locks.iter().find(|g| g.account == *a).and_then(|g| g.amount);
        locked.insert(*a, Locked { posted, hold });
    }
    let mut stored = vec![None; items.len()];
    for (n, i) in keyed.iter().enumerate() {
        stored[*i] = grant.records[accounts.len() + n].clone();
    }
    let ops: Vec<(Op, Option<&str>)> = items.iter().map(|i| (i.op, i.key.as_deref())).collect();
    let (mut fates, commit) = plan(&ops, &locked, &grant, &stored);
    let Some(commit) = commit else {
        ledger.release(&locks).await;
        return Ok(fates);
    };
    let mut tries = 0;
    loop {
        tries += 1;
        match ledger.ds.commit(&commit).await {
            Ok(_) => return Ok(fates),
            Err(e) if is_transport(&e) && tries < ledger.attempts_max => backoff(tries).await,
            Err(e) if is_transport(&e) => {
                // Applied or not, nobody knows: the applied ones are told so, and the refused
                // ones, which saw balances that may never have been, run again on their own.
                for fate in &mut fates {
                    *fate = match std::mem::replace(fate, Fate::Alone) {
                        Fate::Applied(_) => {
                            Fate::Refused(ApiError::Unavailable(Unavailable::OutcomeUnknown(e.to_string())))
                        }
                        Fate::Refused(_) => Fate::Alone,
                        other => other,
                    };
                }
                return Ok(fates);
            }
            Err(e) if matches!(e.code(), Some(DsCode::LeaseExpired | DsCode::NotHolder)) => {
                return Err(Retry::Again(e.to_string()));
            }
            // A closed account, a pending joint account, a key another replica just stored:
            // a refused commit changed nothing, and each on its own tells which.
            Err(_) => {
                ledger.release(&locks).await;
                return Err(Retry::Alone);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use dataserver_api::Grant;

    use super::*;

    fn a(n: u64) -> AccountId {
        AccountId::new(n).unwrap()
    }
    fn m(cents: i64) -> Money {
        Money::from_cents(cents).unwrap()
    }
    fn amt(s: &str) -> shared::Amount {
        s.parse().unwrap()
    }

    /// The locked read of accounts `(id, posted cents or None, held cents)`.
    fn read(accounts: &[(u64, Option<i64>, i64)]) -> (BTreeMap<AccountId, Locked>, AcquireResponse) {
        let locked = accounts
            .iter()
            .map(|(id, p, h)| {
                (a(*id), Locked { posted: p.map(m), hold: HoldRecord { held: m(*h), ..HoldRecord::default() } })
            })
            .collect();
        let grant = AcquireResponse {
            lease_ms: 5_000,
            locks: accounts.iter().map(|(id, p, _)| Grant { account: a(*id), token: *id, amount: p.map(m) }).collect(),
            records: vec![],
        };
        (locked, grant)
    }

    fn set_of(c: &CommitRequest) -> Vec<(AccountId, Money)> {
        c.set.iter().map(|s| (s.account, s.amount)).collect()
    }

    #[test]
    fn operations_on_one_account_see_each_other_in_arrival_order() {
        let (locked, grant) = read(&[(1, Some(1_000), 0), (2, Some(0), 0)]);
        let ops = [
            (Op::Transfer { from: a(1), to: a(2), amount: amt("7.00") }, None),
            // Affordable only once the first is applied: 3.00 left, not 10.00.
            (Op::Transfer { from: a(1), to: a(2), amount: amt("7.00") }, None),
            (Op::Transfer { from: a(2), to: a(1), amount: amt("14.00") }, None),
            (Op::Withdrawal { account: a(2), amount: amt("0.01") }, None),
        ];
        let (fates, commit) = plan(&ops, &locked, &grant, &[None, None, None, None]);
        assert!(matches!(fates[0], Fate::Applied(_)));
        assert!(matches!(fates[1], Fate::Refused(ApiError::InsufficientFunds { .. })), "{:?}", fates[1]);
        // 7.00 received by account 2 is not enough for 14.00.
        assert!(matches!(fates[2], Fate::Refused(ApiError::InsufficientFunds { .. })));
        let Fate::Applied(r) = &fates[3] else { panic!("{:?}", fates[3]) };
        assert_eq!(r.balances, vec![AccountBalance { account: a(2), balance: m(699) }]);
        let commit = commit.unwrap();
        assert_eq!(set_of(&commit), vec![(a(1), m(300)), (a(2), m(699))]);
        let memo: BatchMemo = commit.memo.as_ref().unwrap().parse().unwrap();
        assert_eq!(memo.operations.len(), 2, "only applied operations are journaled");
        assert_eq!(commit.locks.len(), 2, "every lock is presented and released by the commit");
    }

    #[test]
    fn a_debit_never_spends_held_money_and_the_hold_stays_in_the_posted_balance() {
        let (locked, grant) = read(&[(1, Some(1_000), 600), (2, Some(0), 0)]);
        let ops = [
            (Op::Withdrawal { account: a(1), amount: amt("5.00") }, None),
            (Op::Withdrawal { account: a(1), amount: amt("4.00") }, None),
        ];
        let (fates, commit) = plan(&ops, &locked, &grant, &[None, None]);
        assert!(matches!(fates[0], Fate::Refused(ApiError::InsufficientFunds { .. })));
        let Fate::Applied(r) = &fates[1] else { panic!() };
        assert_eq!(r.balances[0].balance, m(600));
        assert_eq!(set_of(&commit.unwrap()), vec![(a(1), m(600))]);
    }

    #[test]
    fn one_refusal_fails_alone() {
        let (locked, grant) = read(&[(1, Some(1_000), 0), (2, Some(0), 0), (9, None, 0)]);
        let ops = [
            (Op::Transfer { from: a(1), to: a(9), amount: amt("1.00") }, None),
            (Op::Deposit { account: a(2), amount: amt("2.00") }, None),
        ];
        let (fates, commit) = plan(&ops, &locked, &grant, &[None, None]);
        assert!(matches!(fates[0], Fate::Refused(ApiError::AccountNotFound(x)) if x == a(9)));
        assert!(matches!(fates[1], Fate::Applied(_)));
        let commit = commit.unwrap();
        assert_eq!(set_of(&commit), vec![(a(2), m(200))], "the refused transfer left account 1 as it was");
        let present: Vec<_> = commit.records.iter().filter(|r| matches!(r, RecordOp::Present { .. })).collect();
        assert_eq!(present.len(), 1, "only accounts an applied operation touched are required open");
    }

    #[test]
    fn nothing_applied_means_no_commit() {
        let (locked, grant) = read(&[(1, Some(0), 0)]);
        let ops = [(Op::Withdrawal { account: a(1), amount: amt("1.00") }, None)];
        let (fates, commit) = plan(&ops, &locked, &grant, &[None]);
        assert!(matches!(fates[0], Fate::Refused(_)));
        assert!(commit.is_none());
    }

    #[test]
    fn idempotency_keys_replay_refuse_reuse_and_defer_repeats_within_a_batch() {
        let (locked, grant) = read(&[(1, Some(1_000), 0)]);
        let dep = Op::Deposit { account: a(1), amount: amt("1.00") };
        let other = Op::Deposit { account: a(1), amount: amt("2.00") };
        let stored = |op: &Op| {
            let rec = IdempotencyRecord {
                request: json(op),
                response: serde_json::json!({"replayed": true}).into(),
                at_ms: 0,
            };
            Some(dataserver_api::Record {
                collection: IDEMPOTENCY.into(),
                key: "k".into(),
                version: 1,
                value: json(&rec),
            })
        };
        let ops = [(dep, Some("k")), (other, Some("j")), (dep, Some("new")), (dep, Some("new"))];
        let (fates, commit) = plan(&ops, &locked, &grant, &[stored(&dep), stored(&dep), None, None]);
        assert!(matches!(&fates[0], Fate::Replayed(v) if v.parse::<serde_json::Value>().unwrap()["replayed"] == true));
        assert!(matches!(fates[1], Fate::Refused(ApiError::IdempotencyKeyReused)));
        assert!(matches!(fates[2], Fate::Applied(_)));
        assert!(matches!(fates[3], Fate::Alone), "a repeat of a key in the same batch waits for the first");
        let commit = commit.unwrap();
        let puts: Vec<_> = commit
            .records
            .iter()
            .filter_map(|r| match r {
                RecordOp::Put { key, if_version, .. } => Some((key.as_str(), *if_version)),
                _ => None,
            })
            .collect();
        assert_eq!(puts, vec![("new", Some(0))], "the new key is stored once, only if still absent");
        assert_eq!(set_of(&commit), vec![(a(1), m(1_100))]);
    }

    #[test]
    fn every_debited_account_must_not_be_waiting_for_its_holders() {
        let (locked, grant) = read(&[(1, Some(1_000), 0), (2, Some(0), 0)]);
        let ops = [(Op::Transfer { from: a(1), to: a(2), amount: amt("1.00") }, None)];
        let (_, commit) = plan(&ops, &locked, &grant, &[None]);
        let checks: Vec<_> =
            commit.unwrap().records.into_iter().filter(|r| matches!(r, RecordOp::Check { .. })).collect();
        assert_eq!(checks, vec![crate::model::not_pending(a(1))]);
    }
}
