//! Group commit: one writer thread folds every commit that arrived while the previous durable
//! write was in flight into the next one, so an fsync is paid per batch, not per commit.
//!
//! A batch is made durable by appending it to the write-ahead log ([`crate::wal`]) and syncing;
//! only then is it applied to the store (visible to readers) and answered. Periodically the
//! store is checkpointed (made durable itself) on a thread of its own, the log going on in a
//! new segment meanwhile; the older segments go once the checkpoint is durable.
//!
//! The writer is also the only place where fencing is decided for a commit: it pins the leases
//! (see [`crate::locks`]) in arrival order, writes, and only after the write is durable updates
//! the in-memory amounts, unpins the leases and answers. A client therefore never sees an
//! acknowledgement for anything that is not on disk, and a new lease holder never reads an
//! amount that a pending commit is about to replace.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Instant;

use parking_lot::RwLock;
use shared::{AccountId, Money};
use tokio::sync::{mpsc, oneshot};

use crate::locks::{AfterCommit, LockError, LockTable};
use crate::metrics::Metrics;
use crate::store::{PreparedCommit, Reject, Store, StoreError, StoredOutcome};
use crate::wal::{Wal, WalBatch, WalCommit};
use dataserver_api::clock::{now_ms, rfc3339_ms};
use dataserver_api::{CommitResponse, RecordOp};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommitError {
    #[error(transparent)]
    Lock(#[from] LockError),
    #[error("condition failed on {collection}/{key}: expected version {expected}, found {actual}")]
    Condition { collection: String, key: String, expected: u64, actual: u64 },
    #[error("condition failed: {collection}/{key} does not exist")]
    Absent { collection: String, key: String },
    #[error("condition failed: {collection} holds {than} or more records under {prefix:?}")]
    Count { collection: String, prefix: String, than: u64 },
    #[error("transaction id {0:?} was already used for a different request")]
    IdempotencyConflict(String),
    #[error("the durable write failed; nothing of this commit was applied: {0}")]
    Storage(String),
}

#[derive(Debug)]
pub enum Job {
    Commit {
        prepared: PreparedCommit,
        reply: oneshot::Sender<Result<CommitResponse, CommitError>>,
    },
    PurgeIdempotency {
        before_ms: u64,
        max: usize,
    },
    /// Everything queued before it is written, then the writer exits.
    Stop,
}

pub type Amounts = Arc<RwLock<HashMap<AccountId, Money>>>;

pub struct Writer {
    pub store: Arc<dyn Store>,
    pub locks: Arc<LockTable>,
    pub amounts: Amounts,
    pub metrics: Arc<Metrics>,
    pub batch_max: usize,
    /// The write-ahead log, for a store that is made durable only at checkpoints (redb); `None`
    /// for one whose every batch is durable when written (PostgreSQL).
    pub wal: Option<Wal>,
    /// LSN the next batch gets.
    pub next_lsn: u64,
    /// Checkpoint at least this often while commits flow...
    pub checkpoint_interval: std::time::Duration,
    /// ...and whenever the log's segment grows past this.
    pub wal_segment_bytes_max: u64,
    pub last_checkpoint: Instant,
    /// Where the next idempotency purge pass starts.
    pub purge_cursor: Option<String>,
    /// The checkpoint being written on a thread of its own, if one is.
    pub checkpointing: Option<Checkpointing>,
    /// A purge asked for while a checkpoint was written: `(before_ms, max)`.
    pub deferred_purge: Option<(u64, usize)>,
    /// Dropped with the writer, which tells the indexer thread to finish.
    pub _indexer_alive: std::sync::mpsc::SyncSender<()>,
}

impl std::fmt::Debug for Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Writer").field("batch_max", &self.batch_max).finish_non_exhaustive()
    }
}

type Pending = (PreparedCommit, oneshot::Sender<Result<CommitResponse, CommitError>>);

/// A checkpoint written beside the writer: its result, and when it began.
#[derive(Debug)]
pub struct Checkpointing {
    done: std::sync::mpsc::Receiver<Result<(), StoreError>>,
    started: Instant,
}

impl Writer {
    /// Runs on its own thread until [`Job::Stop`] or until every sender is gone.
    pub fn run(mut self, mut rx: mpsc::Receiver<Job>) {
        let mut carry: VecDeque<Pending> = VecDeque::new();
        let mut stopping = false;
        loop {
            let mut batch: Vec<Pending> = carry.drain(..).collect();
            if batch.is_empty() && !stopping {
                match rx.blocking_recv() {
                    Some(job) => self.take(job, &mut batch, &mut stopping),
                    None => stopping = true,
                }
            }
            while batch.len() < self.batch_max && !stopping {
                match rx.try_recv() {
                    Ok(job) => self.take(job, &mut batch, &mut stopping),
                    Err(_) => break,
                }
            }
            if batch.is_empty() && stopping {
                self.reap_checkpoint(true);
                self.checkpoint();
                return;
            }
            self.write(batch, &mut carry);
            self.reap_checkpoint(false);
            // While a checkpoint is written the batches since its freeze are held in memory and
            // in the new segment. Past the segment's bound the writer waits for it rather than
            // let both grow: commits queue in the bounded channel, then their senders wait.
            if self.checkpointing.is_some() && self.segment_full() {
                self.metrics.checkpoint_waits_total.inc();
                self.reap_checkpoint(true);
            }
            if self.checkpointing.is_none()
                && (self.last_checkpoint.elapsed() >= self.checkpoint_interval || self.segment_full())
            {
                self.begin_checkpoint();
            }
        }
    }

    /// Whether the log's current segment has reached its bound: what a restart would replay,
    /// and (the batches since the last freeze) what the store holds in memory.
    fn segment_full(&self) -> bool {
        self.wal.as_ref().is_some_and(|w| w.segment_bytes() >= self.wal_segment_bytes_max)
    }

    /// Starts a checkpoint of everything applied so far on a thread of its own, and goes on in
    /// a new log segment meanwhile. Why not here: a checkpoint writes every batch since the
    /// last one into redb, and commits waited for it (the slowest commit of `bench dataserver`
    /// grew from ~110 to 260–385 ms with checkpoints 5 s apart).
    fn begin_checkpoint(&mut self) {
        let Some(wal) = self.wal.as_mut() else { return self.checkpoint() };
        if !self.store.freeze() {
            return self.checkpoint();
        }
        // The batches frozen stay in the older segments until the checkpoint is durable.
        if let Err(e) = wal.roll(self.next_lsn) {
            fatal("starting a log segment", &e);
        }
        let (tx, done) = std::sync::mpsc::sync_channel(1);
        let store = self.store.clone();
        let spawned = std::thread::Builder::new().name("checkpoint".into()).spawn(move || {
            let _ = tx.send(store.write_frozen());
        });
        if let Err(e) = spawned {
            fatal("starting the checkpoint's thread", &StoreError::Io(e.to_string()));
        }
        self.checkpointing = Some(Checkpointing { done, started: Instant::now() });
        self.last_checkpoint = Instant::now();
    }

    /// Once the checkpoint in flight is durable (`wait`: waiting for it), lets the log's older
    /// segments go.
    fn reap_checkpoint(&mut self, wait: bool) {
        let Some(c) = &self.checkpointing else { return };
        let result = if wait {
            c.done.recv().map_err(|_| std::sync::mpsc::TryRecvError::Disconnected)
        } else {
            c.done.try_recv()
        };
        let result = match result {
            Ok(r) => r,
            Err(std::sync::mpsc::TryRecvError::Empty) => return,
            // The thread ended without an answer: it panicked.
            Err(std::sync::mpsc::TryRecvError::Disconnected) => {
                Err(StoreError::Io("the checkpoint's thread died".into()))
            }
        };
        if let Err(e) = result.and_then(|()| self.wal.as_mut().map_or(Ok(()), Wal::release)) {
            fatal("checkpoint", &e);
        }
        self.metrics.checkpoint.observe(crate::metrics::seconds(c.started.elapsed()));
        self.checkpointing = None;
        if let Some((before_ms, max)) = self.deferred_purge.take() {
            self.purge(before_ms, max);
        }
    }

    /// Makes the store durable up to the last applied batch, then starts a fresh log segment.
    fn checkpoint(&mut self) {
        let started = Instant::now();
        let next_lsn = self.next_lsn;
        let result = self.store.checkpoint().and_then(|()| match self.wal.as_mut() {
            Some(wal) => wal.rotate(next_lsn - 1),
            None => Ok(()),
        });
        if let Err(e) = result {
            fatal("checkpoint", &e);
        }
        self.metrics.checkpoint.observe(crate::metrics::seconds(started.elapsed()));
        self.last_checkpoint = Instant::now();
    }

    fn purge(&mut self, before_ms: u64, max: usize) {
        match self.store.purge_idempotency(before_ms, self.purge_cursor.as_deref(), max) {
            Ok((n, next)) => {
                self.purge_cursor = next;
                if n > 0 {
                    tracing::info!(purged = n, "expired idempotency records purged");
                }
            }
            Err(e) => tracing::error!(error = %e, "idempotency purge failed"),
        }
    }

    fn take(&mut self, job: Job, batch: &mut Vec<Pending>, stopping: &mut bool) {
        match job {
            Job::Commit { prepared, reply } => batch.push((prepared, reply)),
            // Not while a checkpoint is written: the purge's write would wait for it, and the
            // commits with it. It runs once the checkpoint is durable.
            Job::PurgeIdempotency { before_ms, max } if self.checkpointing.is_some() => {
                self.deferred_purge = Some((before_ms, max));
            }
            Job::PurgeIdempotency { before_ms, max } => self.purge(before_ms, max),
            Job::Stop => *stopping = true,
        }
    }

    fn write(&mut self, batch: Vec<Pending>, carry: &mut VecDeque<Pending>) {
        let mut ready: Vec<PreparedCommit> = Vec::with_capacity(batch.len());
        let mut replies = Vec::with_capacity(batch.len());
        let mut seen: HashSet<String> = HashSet::new();
        // Every commit's stored outcome in one look (a retry is answered from it).
        let outcomes = {
            let ids: Vec<&str> = batch.iter().map(|(p, _)| p.request.tx_id.as_str()).collect();
            self.store.stored_outcomes(&ids)
        };
        let mut outcomes = match outcomes {
            Ok(o) => o.into_iter().map(Ok).collect::<Vec<_>>(),
            Err(e) => batch.iter().map(|_| Err(e.to_string())).collect(),
        };
        for ((prepared, reply), outcome) in batch.into_iter().zip(outcomes.drain(..)) {
            // A retry racing its own original: let the original land first, then replay it.
            if seen.contains(&prepared.request.tx_id) {
                carry.push_back((prepared, reply));
                continue;
            }
            match outcome {
                Ok(Some(stored)) => {
                    let _ = reply.send(self.replay(&prepared, stored));
                    continue;
                }
                Ok(None) => {}
                Err(e) => {
                    let _ = reply.send(Err(CommitError::Storage(e)));
                    continue;
                }
            }
            if let Err(e) = self.locks.begin_commit(prepared.business, &prepared.request.locks) {
                self.metrics.commit_rejects_total.inc();
                let _ = reply.send(Err(e.into()));
                continue;
            }
            seen.insert(prepared.request.tx_id.clone());
            ready.push(prepared);
            replies.push(reply);
        }
        if ready.is_empty() {
            return;
        }

        let at_ms = now_ms();
        let at = rfc3339_ms(at_ms);
        let lsn = self.next_lsn;
        let logged = WalBatch {
            lsn,
            at_ms,
            at: at.clone(),
            commits: ready
                .iter()
                .map(|p| WalCommit {
                    business: p.business.get(),
                    fingerprint: hex::encode(p.fingerprint),
                    request: &p.request,
                })
                .collect(),
        };
        let started = Instant::now();
        if let Some(wal) = self.wal.as_mut()
            && let Err(e) = wal.append(&logged)
        {
            // The log's tail is now unknown; appending after it could hide later batches from
            // recovery. Stop: a restart recovers everything that was acknowledged.
            fatal("write-ahead log append", &e);
        }
        let logged_in = started.elapsed();
        self.next_lsn += 1;
        let results = match self.store.write_batch(&ready, at_ms, &at, lsn) {
            Ok(r) => r,
            // Logged but not applied: the store no longer matches the log. Restarting replays it.
            // Without a log (PostgreSQL) the transaction either committed or not: its callers
            // get no answer, retry their tx_ids at whichever data server leads, and are answered
            // from the stored outcome if it did. A deposed leader stops here too.
            Err(e) => fatal("applying a batch", &e),
        };
        // The durable write: the log's fsync, or (no log) the database's commit.
        let durable_in = if self.wal.is_some() { logged_in } else { started.elapsed() };
        self.metrics.fsync.observe(crate::metrics::seconds(durable_in));
        self.metrics.commit_batch_size.observe(crate::metrics::count(ready.len()));

        {
            // Durable now: publish the new amounts before anyone can take the leases.
            let mut amounts = self.amounts.write();
            for (p, r) in ready.iter().zip(&results) {
                if r.is_ok() {
                    for s in &p.request.set {
                        amounts.insert(s.account, s.amount);
                    }
                }
            }
        }
        // Counted once per group commit, not per commit: the counters by collection take a lock.
        let applied = ready.iter().zip(&results).filter(|(_, r)| r.is_ok()).map(|(p, _)| &p.request);
        self.metrics.count_writes(
            applied.clone().flat_map(|c| c.records.iter().filter(|r| r.writes()).map(RecordOp::collection)),
            applied.map(|c| c.set.len()).sum(),
        );
        for ((p, reply), result) in ready.iter().zip(replies).zip(results) {
            let answer = match result {
                Ok(resp) => {
                    self.metrics.commits_total.inc();
                    let after = if p.request.release { AfterCommit::Release } else { AfterCommit::Keep };
                    self.locks.end_commit(&p.request.locks, after);
                    Ok(resp)
                }
                Err(reject) => {
                    self.metrics.commit_rejects_total.inc();
                    self.locks.end_commit(&p.request.locks, AfterCommit::Keep);
                    Err(match reject {
                        Reject::Condition { collection, key, expected, actual } => {
                            CommitError::Condition { collection, key, expected, actual }
                        }
                        Reject::Absent { collection, key } => CommitError::Absent { collection, key },
                        Reject::Count { collection, prefix, than } => CommitError::Count { collection, prefix, than },
                    })
                }
            };
            let _ = reply.send(answer);
        }
    }

    /// The answer to a transaction id that was already applied: its stored outcome, or a
    /// conflict when the payload differs.
    fn replay(&self, p: &PreparedCommit, stored: StoredOutcome) -> Result<CommitResponse, CommitError> {
        if !p.same_payload(&stored.fingerprint) {
            self.metrics.commit_rejects_total.inc();
            return Err(CommitError::IdempotencyConflict(p.request.tx_id.clone()));
        }
        self.metrics.commit_replays_total.inc();
        let mut response = stored.response;
        response.replayed = true;
        Ok(response)
    }
}

/// A storage fault the writer cannot answer around without risking acknowledged data: log it and
/// stop the process (TigerBeetle's rule). The restart recovers from the log.
fn fatal(what: &str, e: &StoreError) -> ! {
    tracing::error!(error = %e, "{what} failed; stopping so that recovery can run");
    eprintln!("dataserver: fatal storage error during {what}: {e}");
    std::process::abort()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{RedbStore, Stats};
    use dataserver_api::{AmountPage, CommitRequest, JournalPage, Record, RecordPage};
    use shared::BusinessId;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::mpsc::{Receiver, SyncSender, sync_channel};

    /// The real store, whose background checkpoint waits for the test's word before it writes.
    struct HeldCheckpoint {
        inner: Arc<RedbStore>,
        entered: SyncSender<()>,
        /// Dropping the sending end lets every checkpoint through.
        release: parking_lot::Mutex<Receiver<()>>,
    }

    impl Store for HeldCheckpoint {
        fn write_frozen(&self) -> Result<(), StoreError> {
            let _ = self.entered.try_send(());
            let _ = self.release.lock().recv();
            self.inner.write_frozen()
        }
        fn freeze(&self) -> bool {
            self.inner.freeze()
        }
        fn boot(&self) -> Result<u64, StoreError> {
            self.inner.boot()
        }
        fn load_amounts(&self) -> Result<HashMap<AccountId, Money>, StoreError> {
            self.inner.load_amounts()
        }
        fn stored_outcome(&self, tx_id: &str) -> Result<Option<StoredOutcome>, StoreError> {
            self.inner.stored_outcome(tx_id)
        }
        fn write_batch(
            &self,
            batch: &[PreparedCommit],
            at_ms: u64,
            at: &str,
            lsn: u64,
        ) -> Result<Vec<Result<CommitResponse, Reject>>, StoreError> {
            self.inner.write_batch(batch, at_ms, at, lsn)
        }
        fn checkpoint(&self) -> Result<(), StoreError> {
            self.inner.checkpoint()
        }
        fn index_step(&self, max: usize) -> Result<usize, StoreError> {
            self.inner.index_step(max)
        }
        fn applied_lsn(&self) -> Result<u64, StoreError> {
            self.inner.applied_lsn()
        }
        fn purge_idempotency(
            &self,
            before_ms: u64,
            after: Option<&str>,
            max: usize,
        ) -> Result<(usize, Option<String>), StoreError> {
            self.inner.purge_idempotency(before_ms, after, max)
        }
        fn get_record(&self, collection: &str, key: &str) -> Result<Option<Record>, StoreError> {
            self.inner.get_record(collection, key)
        }
        fn scan_records(
            &self,
            collection: &str,
            prefix: &str,
            after: Option<&str>,
            limit: usize,
        ) -> Result<RecordPage, StoreError> {
            self.inner.scan_records(collection, prefix, after, limit)
        }
        fn account_journal(
            &self,
            account: AccountId,
            before: Option<u64>,
            limit: usize,
        ) -> Result<JournalPage, StoreError> {
            self.inner.account_journal(account, before, limit)
        }
        fn journal_after(&self, after: u64, limit: usize) -> Result<JournalPage, StoreError> {
            self.inner.journal_after(after, limit)
        }
        fn amounts_after(&self, after: Option<AccountId>, limit: usize) -> Result<AmountPage, StoreError> {
            self.inner.amounts_after(after, limit)
        }
        fn stats(&self) -> Result<Stats, StoreError> {
            self.inner.stats()
        }
    }

    const SEGMENT_BYTES_MAX: u64 = 4096;
    const COMMITS: usize = 200;

    fn put(i: usize) -> PreparedCommit {
        let mut request = CommitRequest::new(format!("t{i}"));
        request.records = vec![RecordOp::Put {
            collection: "c".into(),
            key: format!("k{i:04}"),
            value: serde_json::json!({ "padding": "x".repeat(64) }).into(),
            if_version: None,
        }];
        PreparedCommit::new(BusinessId::new(1).unwrap(), request)
    }

    /// While a checkpoint is written, batches go on in memory and in a new log segment; once
    /// that segment reaches its bound the writer must wait for the checkpoint, or memory and
    /// the log would grow without bound behind a slow checkpoint.
    #[test]
    fn commits_wait_for_a_slow_checkpoint_once_the_new_segment_is_full() {
        let dir = tempfile::tempdir().unwrap();
        let inner = Arc::new(RedbStore::open(&dir.path().join("db"), 1 << 20).unwrap());
        let wal_dir = dir.path().join("wal");
        let wal = Wal::start(&wal_dir, 0).unwrap();
        let (entered_tx, entered) = sync_channel(1);
        let (release, release_rx) = sync_channel::<()>(0);
        let store = Arc::new(HeldCheckpoint { inner: inner.clone(), entered: entered_tx, release: release_rx.into() });
        let metrics = Arc::new(Metrics::default());
        let (_indexer_alive, _indexer) = sync_channel(1);
        let writer = Writer {
            store,
            locks: Arc::new(LockTable::new(1, 64)),
            amounts: Amounts::default(),
            metrics: metrics.clone(),
            batch_max: 1,
            wal: Some(wal),
            next_lsn: 1,
            // Only the segment's bound starts a checkpoint here.
            checkpoint_interval: std::time::Duration::from_secs(3600),
            wal_segment_bytes_max: SEGMENT_BYTES_MAX,
            last_checkpoint: Instant::now(),
            purge_cursor: None,
            checkpointing: None,
            deferred_purge: None,
            _indexer_alive,
        };
        let (tx, rx) = mpsc::channel(4);
        let writer = std::thread::spawn(move || writer.run(rx));
        let answered = Arc::new(AtomicUsize::new(0));
        let client = {
            let (tx, answered) = (tx.clone(), answered.clone());
            std::thread::spawn(move || {
                for i in 0..COMMITS {
                    let (reply, answer) = oneshot::channel();
                    tx.blocking_send(Job::Commit { prepared: put(i), reply }).unwrap();
                    answer.blocking_recv().unwrap().unwrap();
                    answered.fetch_add(1, Ordering::SeqCst);
                }
            })
        };

        // The first segment filled and its checkpoint began (and is held).
        entered.recv().unwrap();
        let deadline = Instant::now() + std::time::Duration::from_secs(30);
        while metrics.checkpoint_waits_total.get() == 0 && answered.load(Ordering::SeqCst) < COMMITS {
            assert!(Instant::now() < deadline, "the writer neither waited nor finished");
            std::thread::yield_now();
        }
        let frame_bytes_max = 1024;
        for entry in std::fs::read_dir(&wal_dir).unwrap() {
            let len = entry.unwrap().metadata().unwrap().len();
            assert!(len <= SEGMENT_BYTES_MAX + frame_bytes_max, "a log segment grew to {len} bytes");
        }
        let before_release = answered.load(Ordering::SeqCst);
        assert!(before_release < COMMITS / 4, "{before_release} commits answered behind a held checkpoint");
        assert!(metrics.checkpoint_waits_total.get() >= 1);

        // Let the checkpoints through: everything is answered and every record is there.
        drop(release);
        client.join().unwrap();
        tx.blocking_send(Job::Stop).unwrap();
        writer.join().unwrap();
        for i in 0..COMMITS {
            assert!(inner.get_record("c", &format!("k{i:04}")).unwrap().is_some(), "record {i} lost");
        }
    }
}
