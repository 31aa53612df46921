//! The rules of applying a batch of commits, written once for every backend.
//!
//! A backend opens its transaction and hands [`apply`] a [`BatchTarget`]: reads as the batch has
//! left them so far, and writes. The conditions, the version and journal sequences, the journal
//! entry, the answer and the stored outcome are decided here, so redb and PostgreSQL cannot come
//! to differ on what a commit means (the log replay and a takeover both rely on it).

use std::collections::HashMap;

use dataserver_api::{AmountChange, CommitResponse, JournalEntry, RawJson, RecordOp, RecordVersion};

use super::{IdemHeader, PreparedCommit, Reject, StoreError, money};

/// What applying a batch needs of a backend's open transaction.
pub(crate) trait BatchTarget {
    /// The record's version as the batch has left it so far; 0 when it does not exist.
    fn version(&mut self, collection: &str, key: &str) -> Result<u64, StoreError>;
    /// Whether fewer than `than` records of `collection` have keys under the non-empty
    /// `prefix`, as the batch has left it so far.
    fn fewer_under(&mut self, collection: &str, prefix: &str, than: u64) -> Result<bool, StoreError>;
    /// The account's amount as the batch has left it so far, in cents.
    fn amount(&mut self, account: u64) -> Result<Option<i64>, StoreError>;
    fn set_amount(&mut self, account: u64, cents: i64) -> Result<(), StoreError>;
    fn append_journal(&mut self, entry: &JournalEntry) -> Result<(), StoreError>;
    /// `existed`: whether the record existed as the batch had left it (a backend that holds
    /// writes in memory drops a record created and deleted before they reach its tables).
    fn put_record(
        &mut self,
        collection: &str,
        key: &str,
        version: u64,
        value: &RawJson,
        existed: bool,
    ) -> Result<(), StoreError>;
    fn delete_record(&mut self, collection: &str, key: &str, existed: bool) -> Result<(), StoreError>;
    /// The outcome of an applied commit, for idempotent retries ([`IdemHeader`]'s encoding).
    fn put_outcome(&mut self, tx_id: &str, at_ms: u64, raw: Vec<u8>) -> Result<(), StoreError>;
}

/// The two sequences a batch advances: journal entries and record versions (one global
/// sequence, so a deleted and re-created record never repeats a version).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Sequences {
    pub journal: u64,
    pub record: u64,
}

/// Each operation with the version it gives and whether its record existed before it.
type Planned<'r> = Vec<(&'r RecordOp, u64, bool)>;

/// Applies every commit of `batch` that passes its conditions, in order; one result per commit.
/// A refused commit writes nothing. `counts` (records per collection) and `seqs` are advanced
/// as the batch writes; the caller keeps them only once its transaction committed.
pub(crate) fn apply<T: BatchTarget>(
    t: &mut T,
    seqs: &mut Sequences,
    counts: &mut HashMap<String, u64>,
    batch: &[PreparedCommit],
    at_ms: u64,
    at: &str,
) -> Result<Vec<Result<CommitResponse, Reject>>, StoreError> {
    let mut results = Vec::with_capacity(batch.len());
    for c in batch {
        // Every condition first: a refused commit writes nothing.
        let planned = match plan_records(t, seqs, counts, &c.request.records)? {
            Ok(p) => p,
            Err(r) => {
                results.push(Err(r));
                continue;
            }
        };
        let (changes, seq) = set_amounts(t, seqs, c, at)?;
        let versions = write_records(t, counts, planned)?;
        let response = CommitResponse {
            tx_id: c.request.tx_id.clone(),
            at: at.to_string(),
            journal_seq: seq,
            amounts: changes,
            records: versions,
            replayed: false,
        };
        let header = IdemHeader { fingerprint: c.fingerprint, at_ms, seq: seq.unwrap_or(0) };
        t.put_outcome(&c.request.tx_id, at_ms, header.encode(&response.records)?)?;
        results.push(Ok(response));
    }
    Ok(results)
}

/// Checks every record condition of one commit, in order, and gives each operation its new
/// version; the first failed condition refuses the commit.
fn plan_records<'r, T: BatchTarget>(
    t: &mut T,
    seqs: &mut Sequences,
    counts: &HashMap<String, u64>,
    ops: &'r [RecordOp],
) -> Result<Result<Planned<'r>, Reject>, StoreError> {
    let mut overlay: HashMap<(&str, &str), u64> = HashMap::new();
    let mut planned = Vec::with_capacity(ops.len());
    for op in ops {
        if let RecordOp::Fewer { collection, prefix, than } = op {
            let fewer = if prefix.is_empty() {
                counts.get(collection.as_str()).copied().unwrap_or(0) < *than
            } else {
                t.fewer_under(collection, prefix, *than)?
            };
            if !fewer {
                let (collection, prefix, than) = (collection.clone(), prefix.clone(), *than);
                return Ok(Err(Reject::Count { collection, prefix, than }));
            }
            continue;
        }
        let k = (op.collection(), op.key());
        let current = match overlay.get(&k) {
            Some(v) => *v,
            None => t.version(k.0, k.1)?,
        };
        if matches!(op, RecordOp::Present { .. }) && current == 0 {
            return Ok(Err(Reject::Absent { collection: k.0.into(), key: k.1.into() }));
        }
        let expected = match op {
            RecordOp::Put { if_version, .. } | RecordOp::Delete { if_version, .. } => *if_version,
            RecordOp::Check { if_version, .. } => Some(*if_version),
            RecordOp::Present { .. } => None,
            RecordOp::Fewer { .. } => unreachable!("checked above"),
        };
        if let Some(expected) = expected
            && expected != current
        {
            let (collection, key) = (k.0.into(), k.1.into());
            return Ok(Err(Reject::Condition { collection, key, expected, actual: current }));
        }
        let next = match op {
            // Taken from the sequence as planned, also by a commit refused further on:
            // replaying the log must give every commit the versions it was answered with.
            RecordOp::Put { .. } => {
                seqs.record += 1;
                seqs.record
            }
            RecordOp::Delete { .. } => 0,
            RecordOp::Check { .. } | RecordOp::Present { .. } => current,
            RecordOp::Fewer { .. } => unreachable!("checked above"),
        };
        overlay.insert(k, next);
        planned.push((op, next, current != 0));
    }
    Ok(Ok(planned))
}

/// Sets the commit's amounts and appends the journal entry that explains them (none when no
/// amount changes).
fn set_amounts<T: BatchTarget>(
    t: &mut T,
    seqs: &mut Sequences,
    c: &PreparedCommit,
    at: &str,
) -> Result<(Vec<AmountChange>, Option<u64>), StoreError> {
    let req = &c.request;
    let mut changes = Vec::with_capacity(req.set.len());
    for s in &req.set {
        let before = t.amount(s.account.get())?.map(money).transpose()?;
        t.set_amount(s.account.get(), s.amount.cents())?;
        changes.push(AmountChange { account: s.account, before, after: s.amount });
    }
    if changes.is_empty() {
        return Ok((changes, None));
    }
    seqs.journal += 1;
    let entry = JournalEntry {
        seq: seqs.journal,
        tx_id: req.tx_id.clone(),
        at: at.to_string(),
        business: c.business.get(),
        changes: changes.clone(),
        memo: req.memo.clone(),
    };
    t.append_journal(&entry)?;
    Ok((changes, Some(seqs.journal)))
}

/// Writes the planned puts and deletes; returns the versions the commit answers with.
fn write_records<T: BatchTarget>(
    t: &mut T,
    counts: &mut HashMap<String, u64>,
    planned: Planned<'_>,
) -> Result<Vec<RecordVersion>, StoreError> {
    let mut versions = Vec::new();
    for (op, version, existed) in planned {
        match op {
            RecordOp::Put { collection, key, value, .. } => {
                t.put_record(collection, key, version, value, existed)?;
                if !existed {
                    *counts.entry(collection.clone()).or_default() += 1;
                }
            }
            RecordOp::Delete { collection, key, .. } => {
                t.delete_record(collection, key, existed)?;
                if existed && let Some(n) = counts.get_mut(collection.as_str()) {
                    *n = n.saturating_sub(1);
                }
            }
            RecordOp::Check { .. } | RecordOp::Present { .. } | RecordOp::Fewer { .. } => continue,
        }
        versions.push(RecordVersion { collection: op.collection().into(), key: op.key().into(), version });
    }
    Ok(versions)
}
