//! Durable storage behind a trait, with two backends: redb (embedded, the default) and
//! PostgreSQL ([`pg`]). The rules of a batch are written once ([`apply`]).
//!
//! The default backend is redb: a crash-safe, copy-on-write B-tree in one file. A
//! `write_batch` goes to memory ([`Overlay`]), atomic for readers (they wait for it whole), and
//! durability comes from the write-ahead log ([`crate::wal`]), which holds the batch before it
//! is applied. [`Store::checkpoint`] writes everything since the last one into redb in one
//! durable transaction that records the last batch's log sequence number, so after a crash redb
//! is at a checkpoint and knows what to replay.

mod apply;
pub mod pg;

use std::collections::HashMap;
use std::path::Path;

use apply::{BatchTarget, Sequences};

use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};
use shared::{AccountId, BusinessId, Money};

use dataserver_api::clock::rfc3339_ms;
use dataserver_api::{
    AccountAmount, AmountPage, CommitRequest, CommitResponse, JournalEntry, JournalPage, RawJson, Record, RecordOp,
    RecordPage, RecordVersion,
};

const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const AMOUNTS: TableDefinition<u64, i64> = TableDefinition::new("amounts");
/// (collection, key) → version (u64 LE) ++ JSON value.
const RECORDS: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("records");
const JOURNAL: TableDefinition<u64, &[u8]> = TableDefinition::new("journal");
/// (account, journal seq): an account's statement without scanning the journal. It lives in a
/// database of its own (`account-index.redb`), derived from the journal by the indexer thread
/// ([`Store::index_step`]) and never written by the group commit: inserting two keys at random
/// places of a large B-tree per transfer, copy-on-write, was most of the writer thread's time.
const ACCOUNT_JOURNAL: TableDefinition<(u64, u64), ()> = TableDefinition::new("account_journal");
/// In the index database: the journal sequence number it holds every entry up to.
const INDEX_META: TableDefinition<&str, u64> = TableDefinition::new("index_meta");
const INDEX_META_INDEXED_SEQ: &str = "indexed_seq";
/// tx_id → `[fingerprint: 32][applied at, ms: u64 LE][journal seq or 0: u64 LE][JSON record versions]`.
/// Compact on purpose: it is written for every commit, and the full receipt can be rebuilt from
/// the journal on the rare retry.
const IDEMPOTENCY: TableDefinition<&str, &[u8]> = TableDefinition::new("idempotency");
const IDEM_HEADER_BYTES: usize = 48;

/// The fixed head of an idempotency record: `fingerprint (32) | at_ms (u64 LE) | journal seq
/// (u64 LE, 0 = none)`, then the record versions as JSON. One codec, so the offsets live in one
/// place.
struct IdemHeader {
    fingerprint: [u8; 32],
    at_ms: u64,
    seq: u64,
}

impl IdemHeader {
    fn encode(&self, versions: &[RecordVersion]) -> Result<Vec<u8>, StoreError> {
        let mut raw = Vec::with_capacity(IDEM_HEADER_BYTES + 2);
        raw.extend_from_slice(&self.fingerprint);
        raw.extend_from_slice(&self.at_ms.to_le_bytes());
        raw.extend_from_slice(&self.seq.to_le_bytes());
        serde_json::to_writer(&mut raw, versions)?;
        Ok(raw)
    }

    /// The header and the rest (the versions' JSON).
    fn decode(raw: &[u8]) -> Result<(IdemHeader, &[u8]), StoreError> {
        let (head, rest) = raw.split_at_checked(IDEM_HEADER_BYTES).ok_or_else(|| corrupt("idempotency record"))?;
        let word = |at: usize| -> Result<u64, StoreError> {
            let bytes: [u8; 8] = head[at..at + 8].try_into().map_err(|_| corrupt("idempotency header"))?;
            Ok(u64::from_le_bytes(bytes))
        };
        let mut fingerprint = [0u8; 32];
        fingerprint.copy_from_slice(&head[..32]);
        Ok((IdemHeader { fingerprint, at_ms: word(32)?, seq: word(40)? }, rest))
    }
}

const META_BOOT_EPOCH: &str = "boot_epoch";
const META_JOURNAL_SEQ: &str = "journal_seq";
const META_RECORD_SEQ: &str = "record_seq";
/// LSN of the last write-ahead-log batch applied to this store.
const META_APPLIED_LSN: &str = "applied_lsn";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("storage failure: {0}")]
    Redb(#[from] redb::Error),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    #[error("i/o: {0}")]
    Io(String),
    /// The account index fell so far behind the journal that its in-memory tail reached its
    /// bound: the indexer is failing. The writer stops; a restart rebuilds the index from the
    /// journal (nothing acknowledged is lost: the log holds it).
    #[error("the account index is {0} entries behind the journal")]
    IndexBehind(usize),
    /// The database refused or failed (PostgreSQL backend).
    #[error("database: {0}")]
    Database(String),
    /// A serialization failure or deadlock: the transaction was rolled back whole and may be
    /// tried again.
    #[error("database conflict: {0}")]
    Conflict(String),
    /// Another data server took the leader lease: this one may no longer write.
    #[error("deposed: this data server led at epoch {ours}, the database names epoch {found:?}")]
    Deposed { ours: u64, found: Option<u64> },
}

macro_rules! redb_from {
    ($($t:ty),*) => {$(
        impl From<$t> for StoreError {
            fn from(e: $t) -> Self { StoreError::Redb(e.into()) }
        }
    )*};
}
redb_from!(redb::DatabaseError, redb::TransactionError, redb::TableError, redb::StorageError, redb::CommitError);

impl From<serde_json::Error> for StoreError {
    fn from(e: serde_json::Error) -> Self {
        StoreError::Corrupt(e.to_string())
    }
}

/// A validated commit on its way to the disk.
#[derive(Debug)]
pub struct PreparedCommit {
    pub business: BusinessId,
    pub request: CommitRequest,
    /// SHA-256 of the business id and the canonical request: what "the same payload" means.
    pub fingerprint: [u8; 32],
}

impl PreparedCommit {
    /// The commit `business` asked for, fingerprinted.
    pub fn new(business: BusinessId, request: CommitRequest) -> PreparedCommit {
        // A request that arrived as JSON serialises again: a failure is a bug, not a client error.
        let json = serde_json::to_vec(&request).expect("a commit request serialises");
        PreparedCommit { business, fingerprint: fingerprint(business, &json), request }
    }

    /// Whether `stored`, the fingerprint of a commit applied under this one's `tx_id`, is this
    /// same payload. Before record values were kept as their text (5562567) a data server
    /// fingerprinted them as trees, written out again with their keys sorted: a retry whose
    /// answer was lost as the data server was upgraded must still be answered its outcome, not
    /// a conflict (its writer would take the payment for refused, and it was made). So on a
    /// mismatch, and only then, this payload is fingerprinted that older way too.
    pub fn same_payload(&self, stored: &[u8; 32]) -> bool {
        *stored == self.fingerprint || *stored == self.fingerprint_before_raw_values()
    }

    // The one place the data server builds trees of values: a retry's rare mismatch path.
    #[allow(clippy::disallowed_types, clippy::disallowed_methods)]
    fn fingerprint_before_raw_values(&self) -> [u8; 32] {
        let mut request = self.request.clone();
        for op in &mut request.records {
            if let RecordOp::Put { value, .. } = op
                && let Ok(tree) = value.parse::<serde_json::Value>()
            {
                *value = RawJson::of(&tree);
            }
        }
        fingerprint(self.business, &serde_json::to_vec(&request).expect("a commit request serialises"))
    }
}

/// SHA-256 of the business id and the request as JSON: what "the same payload" means.
fn fingerprint(business: BusinessId, request_json: &[u8]) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(business.get().to_le_bytes());
    h.update(request_json);
    h.finalize().into()
}

/// Why one commit of a batch was refused. Nothing of it was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reject {
    Condition {
        collection: String,
        key: String,
        expected: u64,
        actual: u64,
    },
    /// A `present` condition found no record.
    Absent {
        collection: String,
        key: String,
    },
    /// A `fewer` condition found `than` records or more.
    Count {
        collection: String,
        prefix: String,
        than: u64,
    },
}

/// The stored answer of an applied commit, for idempotent retries.
#[derive(Debug)]
pub struct StoredOutcome {
    pub fingerprint: [u8; 32],
    pub response: CommitResponse,
}

/// RFC 3339 text of a time in ms since the Unix epoch: the one place times are rendered, so a
/// rebuilt receipt says exactly what the original said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stats {
    pub accounts: u64,
    pub journal_seq: u64,
}

pub trait Store: Send + Sync + 'static {
    /// Increments the boot epoch durably and returns it; called once before serving.
    fn boot(&self) -> Result<u64, StoreError>;
    fn load_amounts(&self) -> Result<HashMap<AccountId, Money>, StoreError>;
    fn stored_outcome(&self, tx_id: &str) -> Result<Option<StoredOutcome>, StoreError>;
    /// The stored outcomes of several transaction ids, in order: the writer asks for a whole
    /// batch's at once (one round trip where the store is across a network).
    fn stored_outcomes(&self, tx_ids: &[&str]) -> Result<Vec<Option<StoredOutcome>>, StoreError> {
        tx_ids.iter().map(|t| self.stored_outcome(t)).collect()
    }
    /// Applies every commit of the batch that passes its conditions, in order, in one atomic
    /// transaction recording `lsn`; durable only at the next [`Store::checkpoint`]. Returns one
    /// result per commit. `at_ms`/`at` stamp every commit of the batch. Deterministic: applying
    /// the same batch to the same state gives the same results (the log replay relies on it).
    fn write_batch(
        &self,
        batch: &[PreparedCommit],
        at_ms: u64,
        at: &str,
        lsn: u64,
    ) -> Result<Vec<Result<CommitResponse, Reject>>, StoreError>;
    /// Makes everything written so far durable (one fsync).
    fn checkpoint(&self) -> Result<(), StoreError>;
    /// Sets aside what batches wrote since the last checkpoint, for [`Store::write_frozen`] to
    /// make durable on another thread while batches go on; `false` where nothing is kept aside
    /// (every batch durable when written). At most one is set aside at a time.
    fn freeze(&self) -> bool {
        false
    }
    /// Makes what [`Store::freeze`] set aside durable (one fsync); may run on any thread.
    fn write_frozen(&self) -> Result<(), StoreError> {
        Ok(())
    }
    /// Indexes up to `max` journal entries not yet in the account index, durably; how many.
    /// Statements are exact meanwhile: what the index does not hold yet is read from the journal.
    fn index_step(&self, max: usize) -> Result<usize, StoreError>;
    /// LSN of the last batch applied.
    fn applied_lsn(&self) -> Result<u64, StoreError>;
    /// Looks at up to `max` idempotency records after the cursor `after` and forgets those applied
    /// before `before_ms`. Returns how many it forgot and the cursor for the next pass (`None`
    /// once the end is reached; the next pass starts over).
    fn purge_idempotency(
        &self,
        before_ms: u64,
        after: Option<&str>,
        max: usize,
    ) -> Result<(usize, Option<String>), StoreError>;
    fn get_record(&self, collection: &str, key: &str) -> Result<Option<Record>, StoreError>;
    /// Several records, in order: a lock call reads a whole batch's at once (one round trip
    /// where the store is across a network).
    fn get_records(&self, keys: &[(String, String)]) -> Result<Vec<Option<Record>>, StoreError> {
        keys.iter().map(|(c, k)| self.get_record(c, k)).collect()
    }
    /// Whether point reads (a lock call's, [`Store::get_records`], and a single record's) may run on the async worker
    /// that serves it. True where they are lookups in a local B-tree's cache (tens of
    /// microseconds for a batch, less than handing them to the blocking pool and waking the
    /// worker again); false where each is a network round trip.
    fn reads_inline(&self) -> bool {
        false
    }
    fn scan_records(
        &self,
        collection: &str,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<RecordPage, StoreError>;
    fn account_journal(&self, account: AccountId, before: Option<u64>, limit: usize)
    -> Result<JournalPage, StoreError>;
    fn journal_after(&self, after: u64, limit: usize) -> Result<JournalPage, StoreError>;
    fn amounts_after(&self, after: Option<AccountId>, limit: usize) -> Result<AmountPage, StoreError>;
    fn stats(&self) -> Result<Stats, StoreError>;
}

#[derive(Debug)]
pub struct RedbStore {
    db: Database,
    index: Database,
    /// The account index's tail in memory: (account, seq) of every journal entry written but
    /// not yet in `index`. Filled by the writer, emptied by each index step once durable; after
    /// a restart the index catches up before anything is served.
    unindexed: parking_lot::RwLock<std::collections::BTreeSet<(u64, u64)>>,
    /// What batches wrote since the last checkpoint, newer than the tables (see [`Overlay`]).
    overlay: parking_lot::RwLock<Overlay>,
    /// Bound on `unindexed` (`UNINDEXED_KEYS_MAX`, lower in tests).
    unindexed_keys_max: usize,
    /// Records per collection, as the last applied batch left them: what a `fewer` condition
    /// without a prefix compares with, and a scan's `count`. Counted once at open (before the
    /// log's replay, which then keeps it exact like any batch), never stored.
    counts: parking_lot::RwLock<HashMap<String, u64>>,
}

/// Batches are written to memory, and redb's tables only at a checkpoint, in one sorted pass.
///
/// Why: a redb commit, durable or not, copies every B-tree page it touches, and a batch's keys
/// (transaction ids, accounts, records) are spread over most of each table's pages: that copying
/// was about a third of the data server's CPU under the package benchmark. Held here, a page is
/// copied once per checkpoint for all the batches that touched it, and the many records put and
/// deleted between two checkpoints (settlement queues, prepared rounds, holds) never reach the
/// tables at all. The write-ahead log holds every batch until the checkpoint that writes it, so
/// a crash loses nothing: the replay writes them here again.
///
/// Two generations: `live`, which batches write, and `frozen`, which a checkpoint is writing
/// to the tables. A reader looks at `live`, then `frozen`, then the tables, and opens its read
/// transaction while it holds the lock ([`RedbStore::view`]): a checkpoint drops `frozen` under
/// the lock only after its commit, so a reader that no longer sees `frozen` reads a snapshot
/// that holds it.
#[derive(Debug, Default)]
struct Overlay {
    live: Generation,
    frozen: Option<std::sync::Arc<Generation>>,
}

impl Overlay {
    /// Newest first.
    fn layers(&self) -> impl Iterator<Item = &Generation> {
        std::iter::once(&self.live).chain(self.frozen.as_deref())
    }

    /// The sequences and log position the last batch left, if any since the last checkpoint.
    fn meta(&self) -> Option<(Sequences, u64)> {
        self.layers().find_map(|g| g.meta)
    }
}

/// What batches wrote between two checkpoints.
#[derive(Debug, Default)]
struct Generation {
    amounts: HashMap<u64, i64>,
    /// collection → key → the record as stored.
    records: HashMap<String, std::collections::BTreeMap<String, Slot>>,
    journal: std::collections::BTreeMap<u64, Vec<u8>>,
    idem: HashMap<String, Vec<u8>>,
    /// The sequences and log position its last batch left.
    meta: Option<(Sequences, u64)>,
}

/// A record as a generation left it.
#[derive(Debug)]
struct Slot {
    /// `encode_record`'s bytes; `None`: deleted here, and present in an older layer.
    raw: Option<Vec<u8>>,
    /// No older layer holds the key: deleted again, the slot goes, and nothing is left to write.
    fresh: bool,
}

impl Generation {
    fn slot(&self, collection: &str, key: &str) -> Option<&Slot> {
        self.records.get(collection).and_then(|m| m.get(key))
    }

    /// Its records of `collection` from `start` on, in key order.
    fn records_from<'g>(&'g self, collection: &str, start: &str) -> impl Iterator<Item = Row<'g>> + 'g {
        let start = std::ops::Bound::Included(start.to_string());
        self.records
            .get(collection)
            .into_iter()
            .flat_map(move |m| m.range((start.clone(), std::ops::Bound::Unbounded)))
            .map(|(k, slot)| {
                Ok((std::borrow::Cow::Borrowed(k.as_str()), slot.raw.as_deref().map(std::borrow::Cow::Borrowed)))
            })
    }
}

/// A row of a merged read: the key and the value, or `None` where a newer layer deleted it.
type Row<'a> = Result<(std::borrow::Cow<'a, str>, Option<std::borrow::Cow<'a, [u8]>>), StoreError>;

/// Rows of several layers, each in key order and given newest first, merged in key order: a
/// key several layers hold is the newest's, and its deletion there (`None`) hides the older.
struct Merged<'a, K> {
    layers: Vec<std::iter::Peekable<Box<dyn Iterator<Item = MergeRow<'a, K>> + 'a>>>,
}

type MergeRow<'a, K> = Result<(K, Option<std::borrow::Cow<'a, [u8]>>), StoreError>;

impl<'a, K: Ord + Clone> Merged<'a, K> {
    fn new(layers: Vec<Box<dyn Iterator<Item = MergeRow<'a, K>> + 'a>>) -> Merged<'a, K> {
        Merged { layers: layers.into_iter().map(Iterator::peekable).collect() }
    }
}

impl<'a, K: Ord + Clone> Iterator for Merged<'a, K> {
    type Item = Result<(K, std::borrow::Cow<'a, [u8]>), StoreError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            // The smallest key at the layers' heads; on a tie the newest layer's (found first).
            // Borrowed while comparing: one key is cloned per row returned, not per comparison.
            let mut best: Option<(usize, &K)> = None;
            for (i, layer) in self.layers.iter_mut().enumerate() {
                match layer.peek() {
                    Some(Err(_)) => return layer.next().map(|r| r.map(|_| unreachable!("peeked an error"))),
                    Some(Ok((k, _))) if best.is_none_or(|(_, b)| k < b) => best = Some((i, k)),
                    _ => {}
                }
            }
            let (i, key) = best.map(|(i, k)| (i, k.clone()))?;
            let Some(Ok((_, value))) = self.layers[i].next() else { unreachable!("peeked a row") };
            for older in &mut self.layers[i + 1..] {
                while older.next_if(|r| matches!(r, Ok((k, _)) if *k == key)).is_some() {}
            }
            if let Some(value) = value {
                return Some(Ok((key, value)));
            }
        }
    }
}

fn corrupt(what: &str) -> StoreError {
    StoreError::Corrupt(what.to_string())
}

/// A record as stored: its version (u64 LE), then its JSON value. Both backends store this.
fn encode_record(version: u64, value: &RawJson) -> Vec<u8> {
    let text = value.as_str().as_bytes();
    let mut raw = Vec::with_capacity(8 + text.len());
    raw.extend_from_slice(&version.to_le_bytes());
    raw.extend_from_slice(text);
    raw
}

/// A stored record's version and its JSON value, unparsed.
fn split_record(raw: &[u8]) -> Result<(u64, &[u8]), StoreError> {
    let (version, json) = raw.split_at_checked(8).ok_or_else(|| corrupt("record shorter than its version"))?;
    Ok((u64::from_le_bytes(version.try_into().map_err(|_| corrupt("record version"))?), json))
}

fn decode_record(collection: &str, key: &str, raw: &[u8]) -> Result<Record, StoreError> {
    let (version, json) = split_record(raw)?;
    Ok(Record {
        collection: collection.to_string(),
        key: key.to_string(),
        version,
        value: serde_json::from_slice(json)?,
    })
}

/// Where a scan of `prefix` after the cursor `after` starts.
fn scan_start<'a>(prefix: &'a str, after: Option<&'a str>) -> &'a str {
    match after {
        Some(a) if a >= prefix => a,
        _ => prefix,
    }
}

/// A page of a scan, from rows `(key, raw)` in key order from [`scan_start`]: ends at the first
/// key outside `prefix`, skips the cursor itself, and names the next cursor when more remain.
/// Both backends page through this one function.
fn scan_page<R>(
    rows: impl Iterator<Item = Result<(String, R), StoreError>>,
    prefix: &str,
    after: Option<&str>,
    limit: usize,
    count: u64,
    mut decode: impl FnMut(&str, R) -> Result<Record, StoreError>,
) -> Result<RecordPage, StoreError> {
    let mut out = Vec::new();
    let mut more = false;
    for row in rows {
        let (key, raw) = row?;
        if !key.starts_with(prefix) {
            break;
        }
        if after == Some(key.as_str()) {
            continue;
        }
        if out.len() == limit {
            more = true;
            break;
        }
        out.push(decode(&key, raw)?);
    }
    let next = if more { out.last().map(|r| r.key.clone()) } else { None };
    Ok(RecordPage { records: out, next, count: Some(count) })
}

fn money(cents: i64) -> Result<Money, StoreError> {
    Money::from_cents(cents).map_err(|_| corrupt("amount out of range"))
}

fn account(id: u64) -> Result<AccountId, StoreError> {
    AccountId::new(id).map_err(|_| corrupt("account id out of range"))
}

impl RedbStore {
    pub fn open(dir: &Path, cache_bytes: usize) -> Result<RedbStore, StoreError> {
        std::fs::create_dir_all(dir)
            .map_err(|e| StoreError::Corrupt(format!("cannot create {}: {e}", dir.display())))?;
        // A bank's state is its owner's only: nobody else on the machine may enter the folder.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
                .map_err(|e| StoreError::Corrupt(format!("cannot restrict {}: {e}", dir.display())))?;
        }
        let db = Database::builder().set_cache_size(cache_bytes).create(dir.join("bank.redb"))?;
        // Create every table once, so readers never meet a missing table.
        let txn = db.begin_write()?;
        {
            txn.open_table(META)?;
            txn.open_table(AMOUNTS)?;
            txn.open_table(RECORDS)?;
            txn.open_table(JOURNAL)?;
            txn.open_table(IDEMPOTENCY)?;
        }
        txn.commit()?;
        let index = Database::builder().set_cache_size(cache_bytes / 4).create(dir.join("account-index.redb"))?;
        let txn = index.begin_write()?;
        {
            txn.open_table(INDEX_META)?;
            txn.open_table(ACCOUNT_JOURNAL)?;
        }
        txn.commit()?;
        let mut counts: HashMap<String, u64> = HashMap::new();
        {
            let txn = db.begin_read()?;
            for row in txn.open_table(RECORDS)?.iter()? {
                let (k, _) = row?;
                *counts.entry(k.value().0.to_string()).or_default() += 1;
            }
        }
        Ok(RedbStore {
            db,
            index,
            unindexed: Default::default(),
            overlay: Default::default(),
            unindexed_keys_max: crate::config::limits::UNINDEXED_KEYS_MAX,
            counts: parking_lot::RwLock::new(counts),
        })
    }
}

impl Drop for RedbStore {
    /// The batches since the last checkpoint must reach the tables before they close, or a
    /// restart would replay the log onto tables that lack them... which it does: the log holds
    /// them. Writing them now only spares that replay.
    fn drop(&mut self) {
        // (After a failed checkpoint `frozen` is left: nothing more is tried; the log has it.)
        if !std::thread::panicking()
            && self.overlay.read().live.meta.is_some()
            && self.overlay.read().frozen.is_none()
            && let Err(e) = self.checkpoint()
        {
            tracing::error!(error = %e, "checkpoint at close failed; the next start replays the log");
        }
    }
}

/// A reader's look at the store: the overlay's generations and a read transaction begun while
/// it held their lock (see [`Overlay`]).
struct View<'s> {
    overlay: parking_lot::RwLockReadGuard<'s, Overlay>,
    txn: redb::ReadTransaction,
}

impl View<'_> {
    /// A record as stored, newest layer first.
    fn record(
        &self,
        table: &impl ReadableTable<(&'static str, &'static str), &'static [u8]>,
        c: &str,
        k: &str,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        if let Some(slot) = self.overlay.layers().find_map(|g| g.slot(c, k)) {
            return Ok(slot.raw.clone());
        }
        Ok(table.get((c, k))?.map(|v| v.value().to_vec()))
    }

    fn journal_entry(
        &self,
        table: &impl ReadableTable<u64, &'static [u8]>,
        seq: u64,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        if let Some(raw) = self.overlay.layers().find_map(|g| g.journal.get(&seq)) {
            return Ok(Some(raw.clone()));
        }
        Ok(table.get(seq)?.map(|v| v.value().to_vec()))
    }

    /// Journal entries from `from` on, in order.
    fn journal_from<'v>(
        &'v self,
        table: &'v redb::ReadOnlyTable<u64, &'static [u8]>,
        from: u64,
    ) -> Result<Merged<'v, u64>, StoreError> {
        let mut layers: Vec<Box<dyn Iterator<Item = MergeRow<'v, u64>> + 'v>> = self
            .overlay
            .layers()
            .map(|g| {
                Box::new(g.journal.range(from..).map(|(k, v)| Ok((*k, Some(std::borrow::Cow::Borrowed(v.as_slice()))))))
                    as Box<dyn Iterator<Item = _>>
            })
            .collect();
        layers.push(Box::new(table.range(from..)?.map(|row| {
            let (k, v) = row?;
            Ok((k.value(), Some(std::borrow::Cow::Owned(v.value().to_vec()))))
        })));
        Ok(Merged::new(layers))
    }

    /// The records of `collection` from `start` on, in key order (past the prefix too: the
    /// caller stops where its prefix ends).
    fn records_from<'v>(
        &'v self,
        table: &'v impl ReadableTable<(&'static str, &'static str), &'static [u8]>,
        collection: &'v str,
        start: &str,
    ) -> Result<Merged<'v, std::borrow::Cow<'v, str>>, StoreError> {
        records_from(self.overlay.layers(), table, collection, start)
    }
}

/// The records of `collection` from `start` on, in key order, of the overlay's `layers` (newest
/// first) over `table`: what readers and a batch's `fewer` condition both count on.
fn records_from<'v>(
    layers: impl Iterator<Item = &'v Generation>,
    table: &'v impl ReadableTable<(&'static str, &'static str), &'static [u8]>,
    collection: &'v str,
    start: &str,
) -> Result<Merged<'v, std::borrow::Cow<'v, str>>, StoreError> {
    let mut rows: Vec<Box<dyn Iterator<Item = Row<'v>> + 'v>> =
        layers.map(|g| Box::new(g.records_from(collection, start)) as Box<dyn Iterator<Item = _>>).collect();
    let table_rows = table
        .range((collection, start)..)?
        .map(move |row| -> Result<_, StoreError> {
            let (k, v) = row?;
            let (c, key) = k.value();
            Ok((c == collection, key.to_string(), v.value().to_vec()))
        })
        // The collection's end ends the scan.
        .take_while(|r| !matches!(r, Ok((false, _, _))))
        .map(|r| r.map(|(_, key, v)| (std::borrow::Cow::Owned(key), Some(std::borrow::Cow::Owned(v)))));
    rows.push(Box::new(table_rows));
    Ok(Merged::new(rows))
}

impl RedbStore {
    fn non_durable_txn(&self) -> Result<redb::WriteTransaction, StoreError> {
        let mut txn = self.db.begin_write()?;
        txn.set_durability(redb::Durability::None).map_err(|e| StoreError::Redb(e.into()))?;
        Ok(txn)
    }

    /// The overlay, and a read transaction begun while its lock is held (see [`Overlay`]).
    fn view(&self) -> Result<View<'_>, StoreError> {
        let overlay = self.overlay.read();
        let txn = self.db.begin_read()?;
        Ok(View { overlay, txn })
    }
}

impl Store for RedbStore {
    fn boot(&self) -> Result<u64, StoreError> {
        let txn = self.db.begin_write()?;
        let epoch = {
            let mut meta = txn.open_table(META)?;
            let epoch = meta.get(META_BOOT_EPOCH)?.map(|v| v.value()).unwrap_or(0) + 1;
            meta.insert(META_BOOT_EPOCH, epoch)?;
            epoch
        };
        txn.commit()?;
        Ok(epoch)
    }

    fn load_amounts(&self) -> Result<HashMap<AccountId, Money>, StoreError> {
        let v = self.view()?;
        let table = v.txn.open_table(AMOUNTS)?;
        let mut out = HashMap::with_capacity(usize::try_from(table.len()?).unwrap_or(0));
        for row in table.iter()? {
            let (k, c) = row?;
            out.insert(account(k.value())?, money(c.value())?);
        }
        // Oldest first, so the newest amount stays.
        let layers: Vec<&Generation> = v.overlay.layers().collect();
        for g in layers.into_iter().rev() {
            for (k, c) in &g.amounts {
                out.insert(account(*k)?, money(*c)?);
            }
        }
        Ok(out)
    }

    fn stored_outcome(&self, tx_id: &str) -> Result<Option<StoredOutcome>, StoreError> {
        let v = self.view()?;
        let raw = match v.overlay.layers().find_map(|g| g.idem.get(tx_id)) {
            Some(raw) => raw.clone(),
            None => match v.txn.open_table(IDEMPOTENCY)?.get(tx_id)? {
                Some(raw) => raw.value().to_vec(),
                None => return Ok(None),
            },
        };
        let (IdemHeader { fingerprint, at_ms, seq }, versions) = IdemHeader::decode(&raw)?;
        let amounts = if seq == 0 {
            Vec::new()
        } else {
            let journal = v.txn.open_table(JOURNAL)?;
            let entry = v
                .journal_entry(&journal, seq)?
                .ok_or_else(|| corrupt("idempotency record points at no journal entry"))?;
            serde_json::from_slice::<JournalEntry>(&entry)?.changes
        };
        let response = CommitResponse {
            tx_id: tx_id.to_string(),
            at: rfc3339_ms(at_ms),
            journal_seq: (seq != 0).then_some(seq),
            amounts,
            records: serde_json::from_slice(versions)?,
            replayed: false,
        };
        Ok(Some(StoredOutcome { fingerprint, response }))
    }

    fn write_batch(
        &self,
        batch: &[PreparedCommit],
        at_ms: u64,
        at: &str,
        lsn: u64,
    ) -> Result<Vec<Result<CommitResponse, Reject>>, StoreError> {
        // Only this thread writes the overlay (the writer's; checkpoints run on it too), so the
        // tables read below cannot change under the batch. Readers wait for the batch's
        // in-memory work alone. A failure part-way leaves the overlay part-written: the writer
        // then stops the process, and the restart replays the log onto the last checkpoint.
        let mut overlay = self.overlay.write();
        let txn = self.db.begin_read()?;
        let mut counted = self.counts.read().clone();
        let results = {
            let Overlay { live, frozen } = &mut *overlay;
            let mut w = BatchWriter::open(&txn, live, frozen.as_deref())?;
            let mut seqs = w.seqs;
            let results = apply::apply(&mut w, &mut seqs, &mut counted, batch, at_ms, at)?;
            w.live.meta = Some((seqs, lsn));
            results
        };
        drop(overlay);
        *self.counts.write() = counted;
        let mut tail = self.unindexed.write();
        for r in results.iter().flatten() {
            if let Some(seq) = r.journal_seq {
                tail.extend(r.amounts.iter().map(|c| (c.account.get(), seq)));
            }
        }
        if tail.len() > self.unindexed_keys_max {
            return Err(StoreError::IndexBehind(tail.len()));
        }
        Ok(results)
    }

    fn checkpoint(&self) -> Result<(), StoreError> {
        self.freeze();
        self.write_frozen()
    }

    fn freeze(&self) -> bool {
        let mut o = self.overlay.write();
        assert!(o.frozen.is_none(), "one checkpoint at a time: the writer freezes only once the last is durable");
        let live = std::mem::take(&mut o.live);
        o.frozen = Some(std::sync::Arc::new(live));
        true
    }

    fn write_frozen(&self) -> Result<(), StoreError> {
        let frozen = self.overlay.read().frozen.clone().expect("write_frozen follows a freeze");
        // One durable commit, every table's keys in order: each page is copied once.
        let txn = self.db.begin_write()?;
        {
            let mut amounts = txn.open_table(AMOUNTS)?;
            let mut sorted: Vec<(u64, i64)> = frozen.amounts.iter().map(|(k, v)| (*k, *v)).collect();
            sorted.sort_unstable();
            for (k, v) in sorted {
                amounts.insert(k, v)?;
            }
            let mut records = txn.open_table(RECORDS)?;
            let mut collections: Vec<&String> = frozen.records.keys().collect();
            collections.sort_unstable();
            for c in collections {
                for (k, slot) in &frozen.records[c] {
                    match &slot.raw {
                        Some(raw) => records.insert((c.as_str(), k.as_str()), raw.as_slice())?,
                        None => records.remove((c.as_str(), k.as_str()))?,
                    };
                }
            }
            let mut journal = txn.open_table(JOURNAL)?;
            for (seq, raw) in &frozen.journal {
                journal.insert(*seq, raw.as_slice())?;
            }
            let mut idem = txn.open_table(IDEMPOTENCY)?;
            let mut sorted: Vec<(&String, &Vec<u8>)> = frozen.idem.iter().collect();
            sorted.sort_unstable();
            for (k, raw) in sorted {
                idem.insert(k.as_str(), raw.as_slice())?;
            }
            if let Some((seqs, lsn)) = frozen.meta {
                let mut meta = txn.open_table(META)?;
                meta.insert(META_JOURNAL_SEQ, seqs.journal)?;
                meta.insert(META_RECORD_SEQ, seqs.record)?;
                meta.insert(META_APPLIED_LSN, lsn)?;
            }
        }
        txn.commit()?;
        // Committed: a reader that no longer finds the generation reads a snapshot that has it.
        self.overlay.write().frozen = None;
        Ok(())
    }

    fn index_step(&self, max: usize) -> Result<usize, StoreError> {
        /// Only the accounts of an entry: the memo is skipped, not built.
        #[derive(serde::Deserialize)]
        struct Touched {
            seq: u64,
            changes: Vec<TouchedAccount>,
        }
        #[derive(serde::Deserialize)]
        struct TouchedAccount {
            account: u64,
        }
        let wtxn = self.index.begin_write()?;
        let mut keys: Vec<(u64, u64)> = Vec::new();
        let n = {
            let mut meta = wtxn.open_table(INDEX_META)?;
            let indexed = meta.get(INDEX_META_INDEXED_SEQ)?.map(|v| v.value()).unwrap_or(0);
            let mut last = indexed;
            {
                let v = self.view()?;
                let journal = v.txn.open_table(JOURNAL)?;
                for row in v.journal_from(&journal, indexed.saturating_add(1))?.take(max) {
                    let (_, raw) = row?;
                    let t: Touched = serde_json::from_slice(&raw)?;
                    keys.extend(t.changes.iter().map(|c| (c.account, t.seq)));
                    last = t.seq;
                }
            }
            if last == indexed {
                0
            } else {
                // Sorted, so each page of the index is written once per step.
                keys.sort_unstable();
                let mut index = wtxn.open_table(ACCOUNT_JOURNAL)?;
                for k in &keys {
                    index.insert(*k, ())?;
                }
                meta.insert(INDEX_META_INDEXED_SEQ, last)?;
                usize::try_from(last - indexed).unwrap_or(usize::MAX)
            }
        };
        if n == 0 {
            wtxn.abort()?;
            return Ok(0);
        }
        wtxn.commit()?;
        // Durable in the index: out of the tail (only now, so a reader always finds it in one).
        let mut tail = self.unindexed.write();
        for k in &keys {
            tail.remove(k);
        }
        Ok(n)
    }

    fn applied_lsn(&self) -> Result<u64, StoreError> {
        let v = self.view()?;
        if let Some((_, lsn)) = v.overlay.meta() {
            return Ok(lsn);
        }
        let meta = v.txn.open_table(META)?;
        Ok(meta.get(META_APPLIED_LSN)?.map(|v| v.value()).unwrap_or(0))
    }

    fn purge_idempotency(
        &self,
        before_ms: u64,
        after: Option<&str>,
        max: usize,
    ) -> Result<(usize, Option<String>), StoreError> {
        // Not logged: a purge lost in a crash is simply done again later. Each sweep (a pass
        // without a cursor) starts with what the overlay holds: the writer's thread runs both
        // purges and checkpoints, so only `live` is there.
        let mut forgotten = 0;
        if after.is_none() {
            let mut o = self.overlay.write();
            let mut old = Vec::new();
            for (k, raw) in &o.live.idem {
                if IdemHeader::decode(raw)?.0.at_ms < before_ms {
                    old.push(k.clone());
                }
            }
            for k in old {
                o.live.idem.remove(&k);
                forgotten += 1;
            }
        }
        let txn = self.non_durable_txn()?;
        let (n, next) = {
            let mut idem = txn.open_table(IDEMPOTENCY)?;
            let mut victims: Vec<String> = Vec::new();
            let mut last: Option<String> = None;
            let mut seen = 0;
            let range = match after {
                Some(a) => idem.range::<&str>((std::ops::Bound::Excluded(a), std::ops::Bound::Unbounded))?,
                None => idem.range::<&str>(..)?,
            };
            for row in range {
                let (k, v) = row?;
                seen += 1;
                let at_ms = IdemHeader::decode(v.value())?.0.at_ms;
                if at_ms < before_ms {
                    victims.push(k.value().to_string());
                }
                last = Some(k.value().to_string());
                if seen == max {
                    break;
                }
            }
            for id in &victims {
                idem.remove(id.as_str())?;
            }
            (victims.len(), if seen == max { last } else { None })
        };
        txn.commit()?;
        Ok((n + forgotten, next))
    }

    fn get_record(&self, collection: &str, key: &str) -> Result<Option<Record>, StoreError> {
        let v = self.view()?;
        let table = v.txn.open_table(RECORDS)?;
        v.record(&table, collection, key)?.map(|raw| decode_record(collection, key, &raw)).transpose()
    }

    /// One read transaction for the whole list: a lock call reads a batch's holds and stored
    /// answers (dozens of keys), and opening a transaction and the table per key cost more than
    /// the lookups.
    fn get_records(&self, keys: &[(String, String)]) -> Result<Vec<Option<Record>>, StoreError> {
        let v = self.view()?;
        let table = v.txn.open_table(RECORDS)?;
        keys.iter().map(|(c, k)| v.record(&table, c, k)?.map(|raw| decode_record(c, k, &raw)).transpose()).collect()
    }

    fn reads_inline(&self) -> bool {
        true
    }

    fn scan_records(
        &self,
        collection: &str,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<RecordPage, StoreError> {
        let v = self.view()?;
        let table = v.txn.open_table(RECORDS)?;
        let rows = v
            .records_from(&table, collection, scan_start(prefix, after))?
            .map(|r| r.map(|(k, raw)| (k.into_owned(), raw)));
        let count = self.counts.read().get(collection).copied().unwrap_or(0);
        scan_page(rows, prefix, after, limit, count, |key, raw| decode_record(collection, key, &raw))
    }

    fn account_journal(
        &self,
        account: AccountId,
        before: Option<u64>,
        limit: usize,
    ) -> Result<JournalPage, StoreError> {
        let id = account.get();
        let before = before.unwrap_or(u64::MAX);
        // The tail first, then the index: an entry missing from the tail was either written
        // after this read began or moved to the index before it, so the index's snapshot,
        // taken after, holds it. One in both is counted once.
        let mut seqs: Vec<u64> = self.unindexed.read().range((id, 0)..(id, before)).map(|k| k.1).collect();
        let itxn = self.index.begin_read()?;
        let index = itxn.open_table(ACCOUNT_JOURNAL)?;
        for row in index.range((id, 0)..(id, before))?.rev().take(limit.saturating_add(1)) {
            seqs.push(row?.0.value().1);
        }
        seqs.sort_unstable_by(|a, b| b.cmp(a));
        seqs.dedup();
        let more = seqs.len() > limit;
        let v = self.view()?;
        let journal = v.txn.open_table(JOURNAL)?;
        let mut entries = Vec::with_capacity(limit.min(seqs.len()));
        for seq in seqs.into_iter().take(limit) {
            let raw = v.journal_entry(&journal, seq)?.ok_or_else(|| corrupt("journal index points at nothing"))?;
            entries.push(serde_json::from_slice::<JournalEntry>(&raw)?);
        }
        let next = if more { entries.last().map(|e| e.seq) } else { None };
        Ok(JournalPage { entries, next })
    }

    fn journal_after(&self, after: u64, limit: usize) -> Result<JournalPage, StoreError> {
        let v = self.view()?;
        let journal = v.txn.open_table(JOURNAL)?;
        let mut entries = Vec::new();
        let mut more = false;
        for row in v.journal_from(&journal, after.saturating_add(1))? {
            let (_, raw) = row?;
            if entries.len() == limit {
                more = true;
                break;
            }
            entries.push(serde_json::from_slice::<JournalEntry>(&raw)?);
        }
        let next = if more { entries.last().map(|e| e.seq) } else { None };
        Ok(JournalPage { entries, next })
    }

    fn amounts_after(&self, after: Option<AccountId>, limit: usize) -> Result<AmountPage, StoreError> {
        let start = after.map_or(0, |a| a.get().saturating_add(1));
        // The overlay newest first, then the table: an account's newest amount is kept.
        let v = self.view()?;
        let mut page: std::collections::BTreeMap<u64, i64> = std::collections::BTreeMap::new();
        for g in v.overlay.layers() {
            for (k, c) in g.amounts.iter().filter(|(k, _)| **k >= start) {
                page.entry(*k).or_insert(*c);
            }
        }
        let table = v.txn.open_table(AMOUNTS)?;
        for row in table.range(start..)?.take(limit.saturating_add(1)) {
            let (k, c) = row?;
            page.entry(k.value()).or_insert(c.value());
        }
        let more = page.len() > limit;
        let amounts = page
            .into_iter()
            .take(limit)
            .map(|(k, v)| Ok(AccountAmount { account: account(k)?, amount: money(v)? }))
            .collect::<Result<Vec<_>, StoreError>>()?;
        let next = if more { amounts.last().map(|a| a.account) } else { None };
        Ok(AmountPage { amounts, next })
    }

    fn stats(&self) -> Result<Stats, StoreError> {
        let v = self.view()?;
        let amounts = v.txn.open_table(AMOUNTS)?;
        let mut accounts = amounts.len()?;
        let mut fresh: std::collections::HashSet<u64> = std::collections::HashSet::new();
        for g in v.overlay.layers() {
            for k in g.amounts.keys() {
                if !fresh.contains(k) && amounts.get(*k)?.is_none() {
                    fresh.insert(*k);
                    accounts += 1;
                }
            }
        }
        let journal_seq = match v.overlay.meta() {
            Some((seqs, _)) => seqs.journal,
            None => v.txn.open_table(META)?.get(META_JOURNAL_SEQ)?.map(|v| v.value()).unwrap_or(0),
        };
        Ok(Stats { accounts, journal_seq })
    }
}

/// What one batch reads and writes: the overlay's generations over the tables as the last
/// checkpoint left them, and the sequences it starts from.
struct BatchWriter<'t> {
    live: &'t mut Generation,
    frozen: Option<&'t Generation>,
    amounts: redb::ReadOnlyTable<u64, i64>,
    records: redb::ReadOnlyTable<(&'static str, &'static str), &'static [u8]>,
    seqs: Sequences,
}

impl<'t> BatchWriter<'t> {
    fn open(
        txn: &redb::ReadTransaction,
        live: &'t mut Generation,
        frozen: Option<&'t Generation>,
    ) -> Result<BatchWriter<'t>, StoreError> {
        let seqs = match live.meta.or(frozen.and_then(|g| g.meta)) {
            Some((seqs, _)) => seqs,
            None => {
                let meta = txn.open_table(META)?;
                Sequences {
                    journal: meta.get(META_JOURNAL_SEQ)?.map(|v| v.value()).unwrap_or(0),
                    record: meta.get(META_RECORD_SEQ)?.map(|v| v.value()).unwrap_or(0),
                }
            }
        };
        Ok(BatchWriter { live, frozen, amounts: txn.open_table(AMOUNTS)?, records: txn.open_table(RECORDS)?, seqs })
    }

    fn layers(&self) -> impl Iterator<Item = &Generation> {
        std::iter::once(&*self.live).chain(self.frozen)
    }

    /// The live generation's keys of `collection`, the collection's name allocated only the
    /// first time it is written in this generation.
    fn live_keys(&mut self, collection: &str) -> &mut std::collections::BTreeMap<String, Slot> {
        if !self.live.records.contains_key(collection) {
            self.live.records.insert(collection.to_string(), std::collections::BTreeMap::new());
        }
        self.live.records.get_mut(collection).expect("inserted above")
    }
}

impl BatchTarget for BatchWriter<'_> {
    fn version(&mut self, collection: &str, key: &str) -> Result<u64, StoreError> {
        if let Some(slot) = self.layers().find_map(|g| g.slot(collection, key)) {
            return Ok(match &slot.raw {
                Some(raw) => split_record(raw)?.0,
                None => 0,
            });
        }
        Ok(match self.records.get((collection, key))? {
            // Only the version: a commit's conditions (an account `Present`, say) must not pay
            // for parsing the whole record, which took a tenth of the data server's time.
            Some(raw) => split_record(raw.value())?.0,
            None => 0,
        })
    }

    fn fewer_under(&mut self, collection: &str, prefix: &str, than: u64) -> Result<bool, StoreError> {
        let mut n = 0u64;
        for row in records_from(self.layers(), &self.records, collection, prefix)? {
            let (key, _) = row?;
            if !key.starts_with(prefix) {
                break;
            }
            n += 1;
            if n >= than {
                return Ok(false);
            }
        }
        Ok(n < than)
    }

    fn amount(&mut self, account: u64) -> Result<Option<i64>, StoreError> {
        if let Some(c) = self.layers().find_map(|g| g.amounts.get(&account)) {
            return Ok(Some(*c));
        }
        Ok(self.amounts.get(account)?.map(|v| v.value()))
    }

    fn set_amount(&mut self, account: u64, cents: i64) -> Result<(), StoreError> {
        self.live.amounts.insert(account, cents);
        Ok(())
    }

    fn append_journal(&mut self, entry: &JournalEntry) -> Result<(), StoreError> {
        self.live.journal.insert(entry.seq, serde_json::to_vec(entry)?);
        Ok(())
    }

    fn put_record(
        &mut self,
        collection: &str,
        key: &str,
        version: u64,
        value: &RawJson,
        existed: bool,
    ) -> Result<(), StoreError> {
        let raw = Some(encode_record(version, value));
        let keys = self.live_keys(collection);
        match keys.get_mut(key) {
            Some(slot) => slot.raw = raw,
            // Not in this generation: fresh when it exists in no layer at all.
            None => {
                keys.insert(key.to_string(), Slot { raw, fresh: !existed });
            }
        }
        Ok(())
    }

    fn delete_record(&mut self, collection: &str, key: &str, existed: bool) -> Result<(), StoreError> {
        let slot = self.live.records.get_mut(collection).and_then(|keys| keys.get_mut(key));
        match slot {
            // Created since the last checkpoint: nothing of it is left to write.
            Some(slot) if slot.fresh => {
                if let Some(keys) = self.live.records.get_mut(collection) {
                    keys.remove(key);
                }
            }
            Some(slot) => slot.raw = None,
            // In an older layer: hidden here, removed from the table at the checkpoint.
            None if existed => {
                self.live_keys(collection).insert(key.to_string(), Slot { raw: None, fresh: false });
            }
            None => {}
        }
        Ok(())
    }

    fn put_outcome(&mut self, tx_id: &str, _at_ms: u64, raw: Vec<u8>) -> Result<(), StoreError> {
        self.live.idem.insert(tx_id.to_string(), raw);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dataserver_api::RecordOp;
    use dataserver_api::SetAmount;

    /// A commit setting `account` to `cents` and putting record `c/{tx}` (both backends' tests).
    pub(super) fn commit(tx: &str, account: u64, cents: i64) -> PreparedCommit {
        let mut request = CommitRequest::new(tx);
        request.set =
            vec![SetAmount { account: AccountId::new(account).unwrap(), amount: Money::from_cents(cents).unwrap() }];
        request.records = vec![RecordOp::Put {
            collection: "c".into(),
            key: tx.into(),
            value: serde_json::json!(1).into(),
            if_version: None,
        }];
        PreparedCommit { business: BusinessId::new(1).unwrap(), request, fingerprint: [7; 32] }
    }

    #[test]
    fn a_retry_is_the_same_payload_as_fingerprinted_now_or_before_values_were_kept_as_text() {
        let business = BusinessId::new(3).unwrap();
        let body = r#"{"tx_id":"t1","records":[{"op":"put","collection":"c","key":"k","value":{"z":1,"a":[2,{"y":true,"b":null}]}}],"memo":{"n":2,"kind":"x"}}"#;
        let request: CommitRequest = serde_json::from_str(body).unwrap();
        let now = PreparedCommit::new(business, request.clone());
        // What a data server before 5562567 stored: the value's keys sorted, the memo as sent.
        let before = concat!(
            r#"{"tx_id":"t1","locks":[],"set":[],"records":[{"op":"put","collection":"c","key":"k","#,
            r#""value":{"a":[2,{"b":null,"y":true}],"z":1}}],"memo":{"n":2,"kind":"x"},"release":true}"#
        );
        let stored_before = fingerprint(business, before.as_bytes());
        assert_ne!(stored_before, now.fingerprint, "the two ways differ for a value with unsorted keys");
        assert!(now.same_payload(&now.fingerprint));
        assert!(now.same_payload(&stored_before), "a retry across the upgrade is replayed, not refused");
        let mut other = request;
        other.records = vec![RecordOp::Put {
            collection: "c".into(),
            key: "k".into(),
            value: serde_json::json!({"z": 2}).into(),
            if_version: None,
        }];
        let other = PreparedCommit::new(business, other);
        assert!(!other.same_payload(&now.fingerprint) && !other.same_payload(&stored_before), "another payload");
        assert!(
            !PreparedCommit::new(BusinessId::new(4).unwrap(), other.request.clone()).same_payload(&other.fingerprint)
        );
    }

    #[test]
    fn stored_outcome_rebuilds_the_receipt_and_purge_pages_by_cursor() {
        let dir = tempfile::tempdir().unwrap();
        let store = RedbStore::open(dir.path(), 1 << 20).unwrap();
        let old: Vec<_> = (0..5).map(|i| commit(&format!("old-{i}"), 1 + i, 100)).collect();
        let new: Vec<_> = (0..3).map(|i| commit(&format!("new-{i}"), 10 + i, 200)).collect();
        let r_old = store.write_batch(&old, 1_000, &rfc3339_ms(1_000), 1).unwrap();
        store.write_batch(&new, 9_000, &rfc3339_ms(9_000), 2).unwrap();
        store.checkpoint().unwrap();
        // Read and purged as well while its batch waits for the next checkpoint.
        let early = store.write_batch(&[commit("early-0", 20, 1)], 500, &rfc3339_ms(500), 3).unwrap();
        assert_eq!(Ok(&store.stored_outcome("early-0").unwrap().unwrap().response), early[0].as_ref());
        assert_eq!(store.purge_idempotency(800, Some("~"), 3).unwrap(), (0, None), "only a sweep's start");
        assert_eq!(store.purge_idempotency(800, None, 100).unwrap(), (1, None));
        assert!(store.stored_outcome("early-0").unwrap().is_none());

        let stored = store.stored_outcome("old-2").unwrap().unwrap();
        assert_eq!(stored.fingerprint, [7; 32]);
        assert_eq!(Ok(&stored.response), r_old[2].as_ref());

        // Pages of 3: the cursor walks the whole table, removing only what is old enough.
        let (mut purged, mut cursor, mut passes) = (0, None, 0);
        loop {
            let (n, next) = store.purge_idempotency(5_000, cursor.as_deref(), 3).unwrap();
            purged += n;
            passes += 1;
            cursor = next;
            if cursor.is_none() {
                break;
            }
        }
        assert_eq!((purged, passes), (5, 3));
        assert!(store.stored_outcome("old-0").unwrap().is_none());
        assert!(store.stored_outcome("new-2").unwrap().is_some());
        assert_eq!(store.applied_lsn().unwrap(), 3);
    }

    /// An account's statement is whole whatever the indexer has done: from the tail alone,
    /// from both (a step that took only part of it), from the index alone, and after a restart,
    /// with `before` paging across the seam.
    #[test]
    fn statements_read_the_tail_and_the_index_as_one() {
        let dir = tempfile::tempdir().unwrap();
        let seqs = |store: &RedbStore, before: Option<u64>, limit: usize| {
            let page = store.account_journal(AccountId::new(1).unwrap(), before, limit).unwrap();
            (page.entries.iter().map(|e| e.seq).collect::<Vec<_>>(), page.next)
        };
        {
            let store = RedbStore::open(dir.path(), 1 << 20).unwrap();
            // Account 1 in entries 1, 3, 5, 7, 9 (account 2 in the others).
            for i in 0..10u64 {
                let c = commit(&format!("t{i}"), 1 + i % 2, 100 + i as i64);
                store.write_batch(&[c], 1_000, &rfc3339_ms(1_000), 1 + i).unwrap();
            }
            let all = vec![9, 7, 5, 3, 1];
            assert_eq!(seqs(&store, None, 10), (all.clone(), None), "tail only");
            assert_eq!(store.index_step(4).unwrap(), 4);
            assert_eq!(seqs(&store, None, 10), (all.clone(), None), "index 1..=4, tail 5..");
            assert_eq!(seqs(&store, None, 2), (vec![9, 7], Some(7)));
            assert_eq!(seqs(&store, Some(7), 2), (vec![5, 3], Some(3)), "across the seam");
            assert_eq!(seqs(&store, Some(3), 2), (vec![1], None));
            assert_eq!(store.index_step(100).unwrap(), 6);
            assert_eq!(store.index_step(100).unwrap(), 0, "nothing left");
            assert!(store.unindexed.read().is_empty(), "the tail empties once indexed");
            assert_eq!(seqs(&store, None, 10), (all, None), "index only");
            let c = commit("t10", 1, 500);
            store.write_batch(&[c], 1_000, &rfc3339_ms(1_000), 11).unwrap();
        }
        // Reopened: entry 11 is in neither the index nor the (new, empty) tail until indexed.
        let store = RedbStore::open(dir.path(), 1 << 20).unwrap();
        assert_eq!(store.index_step(100).unwrap(), 1);
        assert_eq!(seqs(&store, None, 10).0, vec![11, 9, 7, 5, 3, 1]);
    }

    /// Amounts set since the last checkpoint are read as set (statement, audit, restart), and
    /// a checkpoint or a clean close writes them to the table.
    #[test]
    fn dirty_amounts_are_read_as_set_and_kept_by_a_checkpoint_or_a_close() {
        let dir = tempfile::tempdir().unwrap();
        let m = |c| Money::from_cents(c).unwrap();
        {
            let store = RedbStore::open(dir.path(), 1 << 20).unwrap();
            store.write_batch(&[commit("a", 1, 100), commit("b", 3, 300)], 1, &rfc3339_ms(1), 1).unwrap();
            store.checkpoint().unwrap();
            assert!(store.overlay.read().live.amounts.is_empty() && store.overlay.read().frozen.is_none());
            let r = store.write_batch(&[commit("c", 2, 200), commit("d", 1, 150)], 1, &rfc3339_ms(1), 2).unwrap();
            let changes = &r[1].as_ref().unwrap().amounts;
            assert_eq!(changes[0].before, Some(m(100)), "the before comes from the table");
            let again = store.write_batch(&[commit("e", 1, 175)], 1, &rfc3339_ms(1), 3).unwrap();
            assert_eq!(again[0].as_ref().unwrap().amounts[0].before, Some(m(150)), "...or from what is dirty");
            let page = store.amounts_after(None, 2).unwrap();
            let got: Vec<_> = page.amounts.iter().map(|a| (a.account.get(), a.amount)).collect();
            assert_eq!(got, vec![(1, m(175)), (2, m(200))]);
            let rest = store.amounts_after(page.next, 2).unwrap();
            assert_eq!(rest.amounts.len(), 1);
            assert_eq!(rest.next, None);
            assert_eq!(store.stats().unwrap().accounts, 3);
            assert_eq!(store.load_amounts().unwrap()[&AccountId::new(1).unwrap()], m(175));
        }
        let store = RedbStore::open(dir.path(), 1 << 20).unwrap();
        let amounts = store.load_amounts().unwrap();
        assert_eq!(amounts.len(), 3);
        assert_eq!(amounts[&AccountId::new(1).unwrap()], m(175), "the close wrote what was dirty");
        assert_eq!(store.applied_lsn().unwrap(), 3);
    }

    /// The account count (`/health`) is read whole while checkpoints move amounts from memory
    /// into the table: accounts are only ever added here, so the count never falls. Read the
    /// table first and what is dirty after, and a count taken during a checkpoint misses what
    /// it moved (the security suite's before/after snapshot once saw `accounts: 2 → 0`).
    #[test]
    fn accounts_are_counted_whole_while_checkpoints_run() {
        const ACCOUNTS: u64 = 300;
        let dir = tempfile::tempdir().unwrap();
        let store = RedbStore::open(dir.path(), 1 << 20).unwrap();
        let done = std::sync::atomic::AtomicBool::new(false);
        std::thread::scope(|s| {
            s.spawn(|| {
                for a in 1..=ACCOUNTS {
                    store.write_batch(&[commit(&format!("t{a}"), a, 1)], 1, &rfc3339_ms(1), a).unwrap();
                    store.checkpoint().unwrap();
                }
                done.store(true, std::sync::atomic::Ordering::Release);
            });
            let mut last = 0;
            while !done.load(std::sync::atomic::Ordering::Acquire) {
                let n = store.stats().unwrap().accounts;
                assert!(n >= last, "the count fell from {last} to {n}");
                last = n;
            }
        });
        assert_eq!(store.stats().unwrap().accounts, ACCOUNTS);
    }

    /// A batch of one commit of record operations: `("put", key)` or `("delete", key)` in
    /// collection `q`, and a `fewer` condition when `fewer_than` is given.
    fn records_commit(tx: &str, ops: &[(&str, &str)], fewer_than: Option<u64>) -> PreparedCommit {
        let mut request = CommitRequest::new(tx);
        request.records = ops
            .iter()
            .map(|(op, key)| match *op {
                "put" => RecordOp::Put {
                    collection: "q".into(),
                    key: (*key).into(),
                    value: serde_json::json!(tx).into(),
                    if_version: None,
                },
                _ => RecordOp::Delete { collection: "q".into(), key: (*key).into(), if_version: None },
            })
            .collect();
        if let Some(than) = fewer_than {
            request.records.push(RecordOp::Fewer { collection: "q".into(), prefix: "a".into(), than });
        }
        PreparedCommit { business: BusinessId::new(1).unwrap(), request, fingerprint: [7; 32] }
    }

    /// Records written since the last checkpoint are read with those in the tables as one:
    /// a deletion hides the table's record, a newer put its older version, scans page across
    /// the layers in key order, and `fewer` counts them all. A record put and deleted between
    /// two checkpoints leaves nothing behind, and a checkpoint changes nothing a reader sees.
    #[test]
    fn records_in_memory_and_in_the_tables_read_as_one() {
        let dir = tempfile::tempdir().unwrap();
        let store = RedbStore::open(dir.path(), 1 << 20).unwrap();
        let keys = |store: &RedbStore, limit: usize| {
            let (mut out, mut after) = (Vec::new(), None);
            loop {
                let page = store.scan_records("q", "a", after.as_deref(), limit).unwrap();
                out.extend(page.records.iter().map(|r| (r.key.clone(), r.value.as_str().to_string())));
                after = page.next;
                if after.is_none() {
                    return out;
                }
            }
        };
        let ops = [("put", "a1"), ("put", "a3"), ("put", "a5"), ("put", "b1")];
        store.write_batch(&[records_commit("t1", &ops, None)], 1, &rfc3339_ms(1), 1).unwrap();
        store.checkpoint().unwrap();
        // Since the checkpoint: a1 deleted, a3 replaced, a2 and a4 new, a9 new and gone again.
        let ops = [("delete", "a1"), ("put", "a3"), ("put", "a2"), ("put", "a4"), ("put", "a9")];
        store.write_batch(&[records_commit("t2", &ops, None)], 1, &rfc3339_ms(1), 2).unwrap();
        store.write_batch(&[records_commit("t3", &[("delete", "a9")], None)], 1, &rfc3339_ms(1), 3).unwrap();
        let want: Vec<(String, String)> = [("a2", "t2"), ("a3", "t2"), ("a4", "t2"), ("a5", "t1")]
            .iter()
            .map(|(k, v)| (k.to_string(), format!("\"{v}\"")))
            .collect();
        for limit in [1, 2, 3, 10] {
            assert_eq!(keys(&store, limit), want, "pages of {limit}");
        }
        assert!(store.get_record("q", "a1").unwrap().is_none(), "the deletion hides the table's record");
        assert!(store.get_record("q", "a9").unwrap().is_none());
        {
            let o = store.overlay.read();
            let q = &o.live.records["q"];
            assert!(q["a1"].raw.is_none() && !q["a1"].fresh, "a deletion of a record in the table is kept");
            assert!(!q.contains_key("a9"), "a record created and deleted since the checkpoint leaves nothing");
        }
        // `fewer` counts across the layers: four under "a" now.
        let r = store.write_batch(&[records_commit("t4", &[], Some(4))], 1, &rfc3339_ms(1), 4).unwrap();
        assert!(matches!(r[0], Err(Reject::Count { .. })), "{r:?}");
        let r = store.write_batch(&[records_commit("t5", &[], Some(5))], 1, &rfc3339_ms(1), 5).unwrap();
        assert!(r[0].is_ok(), "{r:?}");
        store.checkpoint().unwrap();
        for limit in [1, 3, 10] {
            assert_eq!(keys(&store, limit), want, "after the checkpoint, pages of {limit}");
        }
        assert_eq!(store.applied_lsn().unwrap(), 5);
        drop(store);
        let store = RedbStore::open(dir.path(), 1 << 20).unwrap();
        assert_eq!(keys(&store, 10), want, "reopened");
        assert_eq!(store.counts.read()["q"], 5, "a2..a5 and b1");
    }

    /// A reader never misses what a checkpoint is moving into the tables: records written one
    /// batch at a time, with a checkpoint after each, are all found by a reader scanning and
    /// reading meanwhile (a reader that looked at memory and at the tables at two different
    /// moments would miss the records moved in between).
    #[test]
    fn records_are_read_whole_while_checkpoints_run() {
        const RECORDS: u64 = 300;
        let dir = tempfile::tempdir().unwrap();
        let store = RedbStore::open(dir.path(), 1 << 20).unwrap();
        let done = std::sync::atomic::AtomicU64::new(0);
        std::thread::scope(|s| {
            s.spawn(|| {
                for n in 1..=RECORDS {
                    let key = format!("a{n:04}");
                    store.write_batch(&[records_commit(&key, &[("put", &key)], None)], 1, &rfc3339_ms(1), n).unwrap();
                    done.store(n, std::sync::atomic::Ordering::Release);
                    store.checkpoint().unwrap();
                }
            });
            loop {
                let written = done.load(std::sync::atomic::Ordering::Acquire);
                let found = store.scan_records("q", "a", None, 1_000).unwrap().records.len() as u64;
                assert!(found >= written, "{written} written, {found} found");
                let last = format!("a{written:04}");
                assert!(written == 0 || store.get_record("q", &last).unwrap().is_some(), "{last} not found");
                if written == RECORDS {
                    break;
                }
            }
        });
    }

    /// A failing indexer cannot grow the tail without bound: past it the store refuses to go on
    /// (the writer then stops the process, and a restart rebuilds the index).
    #[test]
    fn the_unindexed_tail_is_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = RedbStore::open(dir.path(), 1 << 20).unwrap();
        store.unindexed_keys_max = 2;
        store.write_batch(&[commit("a", 1, 1), commit("b", 2, 1)], 1, &rfc3339_ms(1), 1).unwrap();
        let e = store.write_batch(&[commit("c", 3, 1)], 1, &rfc3339_ms(1), 2).unwrap_err();
        assert!(matches!(e, StoreError::IndexBehind(3)), "{e}");
        assert_eq!(store.index_step(100).unwrap(), 3);
        store.write_batch(&[commit("d", 4, 1)], 1, &rfc3339_ms(1), 3).unwrap();
    }
}
