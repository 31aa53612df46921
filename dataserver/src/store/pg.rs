//! The PostgreSQL backend: a bank's whole state in one database, so that the data server's
//! machine is no longer the bank's only copy, and two data servers can share it (one active, one
//! standby; see [`Lease`]).
//!
//! Every group-commit batch is one database transaction, answered only after `COMMIT` returned:
//! the database's own durability (`synchronous_commit`, never turned off here) is the write-ahead
//! log, so this backend needs none of ours. The first statement of every batch reads the leader
//! row `FOR SHARE` and compares its epoch with ours: a takeover (which updates that row) waits
//! for a batch in flight, and a deposed leader's next batch finds a newer epoch and writes
//! nothing ([`StoreError::Deposed`]).
//!
//! Portable SQL only (PostgreSQL, and the PG-wire engines CockroachDB and YugabyteDB): no
//! advisory locks, no `LOCK TABLE`, no PL/pgSQL; explicit row locking; serialization failures
//! (`40001`, which the serializable engines raise) are retried a bounded number of times.
//! Record keys compare as bytes (`COLLATE "C"`), as redb orders them.

use std::collections::{HashMap, HashSet};

use parking_lot::{Mutex, RwLock};
use postgres::error::SqlState;
use postgres::{Client, NoTls, Transaction};
use r2d2_postgres::PostgresConnectionManager;
use shared::AccountId;

use dataserver_api::clock::rfc3339_ms;
use dataserver_api::{
    AccountAmount, AmountPage, CommitResponse, JournalEntry, JournalPage, RawJson, Record, RecordPage,
};

use super::apply::{self, BatchTarget, Sequences};
use super::{
    IdemHeader, PreparedCommit, Reject, Stats, Store, StoreError, StoredOutcome, account, corrupt, money, scan_page,
    scan_start,
};

/// How often a batch is tried again after a serialization failure before the writer gives up
/// (and the process stops, to be recovered by the standby or a restart).
pub const SERIALIZATION_RETRIES_MAX: u32 = 8;
/// How often migrating the schema is tried again when another data server migrates at once.
const MIGRATE_ATTEMPTS_MAX: u32 = 5;

/// The versioned schema, applied in order at start, each version in its own transaction and
/// recorded in `ds_schema_migrations`. Never edit a shipped version: add the next one.
const MIGRATIONS: &[(i32, &str)] = &[(
    1,
    r#"
    CREATE TABLE ds_leader (
        id smallint PRIMARY KEY CHECK (id = 1),
        epoch bigint NOT NULL,
        holder text NOT NULL,
        address text NOT NULL,
        expires_at timestamptz NOT NULL
    );
    CREATE TABLE ds_meta (name text PRIMARY KEY, value bigint NOT NULL);
    INSERT INTO ds_meta (name, value) VALUES ('journal_seq', 0), ('record_seq', 0);
    CREATE TABLE ds_amounts (account bigint PRIMARY KEY, cents bigint NOT NULL);
    CREATE TABLE ds_records (
        collection text COLLATE "C" NOT NULL,
        key text COLLATE "C" NOT NULL,
        version bigint NOT NULL,
        value bytea NOT NULL,
        PRIMARY KEY (collection, key)
    );
    CREATE TABLE ds_journal (seq bigint PRIMARY KEY, entry bytea NOT NULL);
    CREATE TABLE ds_journal_accounts (account bigint NOT NULL, seq bigint NOT NULL, PRIMARY KEY (account, seq));
    CREATE TABLE ds_outcomes (tx_id text COLLATE "C" PRIMARY KEY, at_ms bigint NOT NULL, outcome bytea NOT NULL);
    "#,
)];

impl From<postgres::Error> for StoreError {
    fn from(e: postgres::Error) -> Self {
        // The server's own words ("db error" alone says nothing).
        let text = match e.as_db_error() {
            Some(db) => format!("{} ({}): {}", db.severity(), db.code().code(), db.message()),
            None => e.to_string(),
        };
        match e.code() {
            Some(c) if *c == SqlState::T_R_SERIALIZATION_FAILURE || *c == SqlState::T_R_DEADLOCK_DETECTED => {
                StoreError::Conflict(text)
            }
            _ => StoreError::Database(text),
        }
    }
}

impl From<r2d2::Error> for StoreError {
    fn from(e: r2d2::Error) -> Self {
        StoreError::Database(format!("no database connection: {e}"))
    }
}

/// A u64 of ours as the database's bigint; every value we store fits (ids, seqs, cents).
fn big(v: u64) -> Result<i64, StoreError> {
    i64::try_from(v).map_err(|_| corrupt("a value past bigint"))
}

fn unbig(v: i64) -> Result<u64, StoreError> {
    u64::try_from(v).map_err(|_| corrupt("a negative sequence or id"))
}

/// Drops `v` on a thread of its own. postgres's synchronous client owns a tokio runtime, and a
/// runtime may not be dropped on an async executor's thread, where the last owner of the store
/// (an HTTP worker) or of a standby's lease may be.
pub fn drop_off_runtime<T: Send + 'static>(v: T) {
    let _ = std::thread::Builder::new().name("pg-close".into()).spawn(move || drop(v));
}

pub fn connect(url: &str) -> Result<Client, StoreError> {
    Ok(Client::connect(url, NoTls)?)
}

/// Creates or upgrades the schema, then checks that the database does not acknowledge commits it
/// could lose.
pub fn migrate(client: &mut Client) -> Result<(), StoreError> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        match migrate_once(client) {
            Ok(()) => break,
            // Two data servers starting together race to create the same tables: the loser's
            // next attempt finds the version recorded.
            Err(e) if attempt < MIGRATE_ATTEMPTS_MAX => {
                tracing::warn!(error = %e, attempt, "migrating the schema failed; trying again");
            }
            Err(e) => return Err(e),
        }
    }
    // PostgreSQL only (the distributed engines have no such switch and refuse the question).
    if let Ok(row) = client.query_one("SHOW synchronous_commit", &[]) {
        let v: String = row.get(0);
        if v == "off" {
            return Err(StoreError::Database(
                "the database has synchronous_commit = off: it would acknowledge commits a crash can lose".into(),
            ));
        }
    }
    Ok(())
}

fn migrate_once(client: &mut Client) -> Result<(), StoreError> {
    client.batch_execute(
        "CREATE TABLE IF NOT EXISTS ds_schema_migrations \
         (version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())",
    )?;
    for (version, sql) in MIGRATIONS {
        let mut tx = client.transaction()?;
        if tx.query_opt("SELECT 1 FROM ds_schema_migrations WHERE version = $1", &[version])?.is_some() {
            continue;
        }
        tx.batch_execute(sql)?;
        tx.execute("INSERT INTO ds_schema_migrations (version) VALUES ($1)", &[version])?;
        tx.commit()?;
        tracing::info!(version, "database schema migrated");
    }
    Ok(())
}

/// The leader lease of one bank's data servers: one row, taken by compare-and-set once it has
/// lapsed, each taking with a higher epoch. Times are the database's (`now()`), so the data
/// servers' clocks never meet. The epoch is the top of every fencing token the leader issues,
/// so tokens keep increasing across a takeover.
pub struct Lease {
    client: Client,
    holder: String,
    address: String,
    lease_ms: u64,
}

impl std::fmt::Debug for Lease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lease").field("holder", &self.holder).field("address", &self.address).finish_non_exhaustive()
    }
}

/// What asking for the lease gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeasePoll {
    /// Taken, at this epoch.
    Acquired(u64),
    /// Another holds it; its address when the row names one.
    Held { leader: Option<String> },
}

/// Who holds the lease, as the database says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseHolder {
    pub epoch: u64,
    pub address: String,
    pub live: bool,
}

impl Lease {
    /// `holder` names this process (unique per start); `address` is where business servers
    /// reach it, told to them by the standby.
    pub fn new(url: &str, holder: String, address: String, lease_ms: u64) -> Result<Lease, StoreError> {
        Ok(Lease { client: connect(url)?, holder, address, lease_ms })
    }

    pub fn lease_ms(&self) -> u64 {
        self.lease_ms
    }

    /// Takes the lease if nobody holds it or it has lapsed; the new epoch, or `None`.
    pub fn try_acquire(&mut self) -> Result<Option<u64>, StoreError> {
        let row = self.client.query_opt(
            "INSERT INTO ds_leader (id, epoch, holder, address, expires_at) \
             VALUES (1, 1, $1, $2, now() + $3::float8 * interval '1 millisecond') \
             ON CONFLICT (id) DO UPDATE SET epoch = ds_leader.epoch + 1, holder = excluded.holder, \
             address = excluded.address, expires_at = excluded.expires_at \
             WHERE ds_leader.expires_at < now() \
             RETURNING epoch",
            &[&self.holder, &self.address, &lease_f64(self.lease_ms)],
        )?;
        row.map(|r| unbig(r.get(0))).transpose()
    }

    /// Extends the lease of `epoch`; `false` once another took it (this process is deposed).
    pub fn renew(&mut self, epoch: u64) -> Result<bool, StoreError> {
        let n = self.client.execute(
            "UPDATE ds_leader SET expires_at = now() + $2::float8 * interval '1 millisecond' \
             WHERE id = 1 AND epoch = $1 AND holder = $3",
            &[&big(epoch)?, &lease_f64(self.lease_ms), &self.holder],
        )?;
        Ok(n == 1)
    }

    /// Gives the lease up at once (a clean stop), so a standby need not wait for it to lapse.
    pub fn resign(&mut self, epoch: u64) -> Result<(), StoreError> {
        self.client.execute(
            "UPDATE ds_leader SET expires_at = now() WHERE id = 1 AND epoch = $1 AND holder = $2",
            &[&big(epoch)?, &self.holder],
        )?;
        Ok(())
    }

    /// Takes the lease if it is free, else says where the leader is: what a standby asks at
    /// start and at every poll.
    pub fn poll(&mut self) -> Result<LeasePoll, StoreError> {
        Ok(match self.try_acquire()? {
            Some(epoch) => LeasePoll::Acquired(epoch),
            None => LeasePoll::Held { leader: self.holder()?.map(|h| h.address) },
        })
    }

    pub fn holder(&mut self) -> Result<Option<LeaseHolder>, StoreError> {
        let row =
            self.client.query_opt("SELECT epoch, address, expires_at > now() FROM ds_leader WHERE id = 1", &[])?;
        row.map(|r| Ok(LeaseHolder { epoch: unbig(r.get(0))?, address: r.get(1), live: r.get(2) })).transpose()
    }
}

/// Lease lengths are small whole milliseconds: exact as a float.
#[allow(clippy::cast_precision_loss)]
fn lease_f64(ms: u64) -> f64 {
    ms as f64
}

type Pool = r2d2::Pool<PostgresConnectionManager<NoTls>>;
/// (collection, key).
type Key = (String, String);
/// A record the batch wrote: its new version and JSON value, or `None` for deleted.
type Written = Option<(u64, Vec<u8>)>;
/// What one attempt at a batch gives: the answers, and the sequences and counts it leaves.
type Attempt = (Vec<Result<CommitResponse, Reject>>, Sequences, HashMap<String, u64>);

/// The store of the leader of `epoch`. Built only once the lease is held.
pub struct PgStore {
    /// Readers' connections (the blocking pool's threads). `Some` until dropped.
    pool: Option<Pool>,
    /// The group-commit writer's own connection. `Some` until dropped.
    writer: Mutex<Option<Client>>,
    epoch: u64,
    /// The sequences as the last committed batch left them (only the leader writes).
    seqs: Mutex<Sequences>,
    /// Records per collection, as the last committed batch left them: what a `fewer` condition
    /// without a prefix compares with, and a scan's `count`. Counted once at takeover.
    counts: RwLock<HashMap<String, u64>>,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore").field("epoch", &self.epoch).finish_non_exhaustive()
    }
}

impl PgStore {
    /// Opens the store for the leader of `epoch`: reads the sequences and counts the records.
    pub fn open(url: &str, epoch: u64, pool_max: u32) -> Result<PgStore, StoreError> {
        let config: postgres::Config = url.parse().map_err(|e: postgres::Error| StoreError::Database(e.to_string()))?;
        let pool = r2d2::Pool::builder()
            .max_size(pool_max)
            .min_idle(Some(1))
            .connection_timeout(std::time::Duration::from_millis(
                crate::config::limits::DATABASE_CONNECTION_WAIT_MS_MAX,
            ))
            .build(PostgresConnectionManager::new(config, NoTls))?;
        let mut writer = connect(url)?;
        let mut seqs = Sequences::default();
        for row in writer.query("SELECT name, value FROM ds_meta", &[])? {
            let (name, value): (String, i64) = (row.get(0), row.get(1));
            match name.as_str() {
                "journal_seq" => seqs.journal = unbig(value)?,
                "record_seq" => seqs.record = unbig(value)?,
                _ => {}
            }
        }
        let mut counts = HashMap::new();
        for row in writer.query("SELECT collection, count(*) FROM ds_records GROUP BY collection", &[])? {
            counts.insert(row.get::<_, String>(0), unbig(row.get(1))?);
        }
        Ok(PgStore {
            pool: Some(pool),
            writer: Mutex::new(Some(writer)),
            epoch,
            seqs: Mutex::new(seqs),
            counts: RwLock::new(counts),
        })
    }

    fn read(&self) -> Result<r2d2::PooledConnection<PostgresConnectionManager<NoTls>>, StoreError> {
        Ok(self.pool.as_ref().ok_or_else(|| corrupt("the store is closed"))?.get()?)
    }

    fn with_writer<T>(&self, f: impl FnOnce(&mut Client) -> Result<T, StoreError>) -> Result<T, StoreError> {
        let mut w = self.writer.lock();
        f(w.as_mut().ok_or_else(|| corrupt("the store is closed"))?)
    }

    fn try_write(
        &self,
        client: &mut Client,
        batch: &[PreparedCommit],
        at_ms: u64,
        at: &str,
    ) -> Result<Attempt, StoreError> {
        let mut tx = client.transaction()?;
        // The fence: a takeover waits for this transaction, and after one this finds a newer epoch.
        let found: Option<i64> =
            tx.query_opt("SELECT epoch FROM ds_leader WHERE id = 1 FOR SHARE", &[])?.map(|r| r.get(0));
        if found != Some(big(self.epoch)?) {
            return Err(StoreError::Deposed { ours: self.epoch, found: found.and_then(|e| u64::try_from(e).ok()) });
        }
        let mut target = PgBatch::prefetch(&mut tx, batch)?;
        let mut seqs = *self.seqs.lock();
        let mut counts = self.counts.read().clone();
        let results = apply::apply(&mut target, &mut seqs, &mut counts, batch, at_ms, at)?;
        target.flush(seqs)?;
        tx.commit()?;
        Ok((results, seqs, counts))
    }
}

impl Drop for PgStore {
    fn drop(&mut self) {
        drop_off_runtime((self.pool.take(), self.writer.get_mut().take()));
    }
}

impl Store for PgStore {
    fn boot(&self) -> Result<u64, StoreError> {
        Ok(self.epoch)
    }

    fn load_amounts(&self) -> Result<HashMap<AccountId, shared::Money>, StoreError> {
        let mut out = HashMap::new();
        for row in self.with_writer(|w| Ok(w.query("SELECT account, cents FROM ds_amounts", &[])?))? {
            out.insert(account(unbig(row.get(0))?)?, money(row.get(1))?);
        }
        Ok(out)
    }

    fn stored_outcome(&self, tx_id: &str) -> Result<Option<StoredOutcome>, StoreError> {
        Ok(self.stored_outcomes(&[tx_id])?.pop().flatten())
    }

    /// One round trip for a whole batch's ids (the writer asks before every batch).
    fn stored_outcomes(&self, tx_ids: &[&str]) -> Result<Vec<Option<StoredOutcome>>, StoreError> {
        let mut client = self.read()?;
        let mut found: HashMap<String, Vec<u8>> = HashMap::new();
        for row in client.query("SELECT tx_id, outcome FROM ds_outcomes WHERE tx_id = ANY($1)", &[&tx_ids])? {
            found.insert(row.get(0), row.get(1));
        }
        let mut out = Vec::with_capacity(tx_ids.len());
        for id in tx_ids {
            let Some(raw) = found.get(*id) else {
                out.push(None);
                continue;
            };
            let (IdemHeader { fingerprint, at_ms, seq }, versions) = IdemHeader::decode(raw)?;
            let amounts = if seq == 0 {
                Vec::new()
            } else {
                let row = client
                    .query_opt("SELECT entry FROM ds_journal WHERE seq = $1", &[&big(seq)?])?
                    .ok_or_else(|| corrupt("an outcome points at no journal entry"))?;
                serde_json::from_slice::<JournalEntry>(row.get(0))?.changes
            };
            let response = CommitResponse {
                tx_id: (*id).to_string(),
                at: rfc3339_ms(at_ms),
                journal_seq: (seq != 0).then_some(seq),
                amounts,
                records: serde_json::from_slice(versions)?,
                replayed: false,
            };
            out.push(Some(StoredOutcome { fingerprint, response }));
        }
        Ok(out)
    }

    fn write_batch(
        &self,
        batch: &[PreparedCommit],
        at_ms: u64,
        at: &str,
        _lsn: u64,
    ) -> Result<Vec<Result<CommitResponse, Reject>>, StoreError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.with_writer(|client| self.try_write(client, batch, at_ms, at)) {
                Ok((results, seqs, counts)) => {
                    *self.seqs.lock() = seqs;
                    *self.counts.write() = counts;
                    return Ok(results);
                }
                // Rolled back whole: the same batch is planned again on what is there now.
                Err(StoreError::Conflict(e)) if attempt < SERIALIZATION_RETRIES_MAX => {
                    tracing::warn!(error = %e, attempt, "serialization failure; the batch is tried again");
                }
                Err(e) => return Err(e),
            }
        }
    }

    fn checkpoint(&self) -> Result<(), StoreError> {
        // Every batch is durable when its transaction commits.
        Ok(())
    }

    fn index_step(&self, _max: usize) -> Result<usize, StoreError> {
        // The account index is written in each batch's own transaction.
        Ok(0)
    }

    fn applied_lsn(&self) -> Result<u64, StoreError> {
        Ok(0)
    }

    fn purge_idempotency(
        &self,
        before_ms: u64,
        after: Option<&str>,
        max: usize,
    ) -> Result<(usize, Option<String>), StoreError> {
        let mut client = self.read()?;
        let rows = client.query(
            "SELECT tx_id, at_ms FROM ds_outcomes WHERE tx_id > $1 ORDER BY tx_id LIMIT $2",
            &[&after.unwrap_or(""), &big(max as u64)?],
        )?;
        let before = big(before_ms)?;
        let victims: Vec<String> =
            rows.iter().filter(|r| r.get::<_, i64>(1) < before).map(|r| r.get::<_, String>(0)).collect();
        if !victims.is_empty() {
            client.execute("DELETE FROM ds_outcomes WHERE tx_id = ANY($1) AND at_ms < $2", &[&victims, &before])?;
        }
        let next = if rows.len() == max { rows.last().map(|r| r.get::<_, String>(0)) } else { None };
        Ok((victims.len(), next))
    }

    fn get_record(&self, collection: &str, key: &str) -> Result<Option<Record>, StoreError> {
        let row = self.read()?.query_opt(
            "SELECT version, value FROM ds_records WHERE collection = $1 AND key = $2",
            &[&collection, &key],
        )?;
        row.map(|r| record(collection, key, r.get(0), r.get(1))).transpose()
    }

    /// One round trip for all of them.
    fn get_records(&self, keys: &[(String, String)]) -> Result<Vec<Option<Record>>, StoreError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let (cs, ks): (Vec<&str>, Vec<&str>) = keys.iter().map(|(c, k)| (c.as_str(), k.as_str())).unzip();
        let mut found: HashMap<(String, String), Record> = HashMap::new();
        for r in self.read()?.query(
            "SELECT r.collection, r.key, r.version, r.value FROM ds_records r \
             JOIN unnest($1::text[], $2::text[]) AS k(c, k) ON r.collection = k.c AND r.key = k.k",
            &[&cs, &ks],
        )? {
            let (c, k): (String, String) = (r.get(0), r.get(1));
            let rec = record(&c, &k, r.get(2), r.get(3))?;
            found.insert((c, k), rec);
        }
        Ok(keys.iter().map(|k| found.get(k).cloned()).collect())
    }

    fn scan_records(
        &self,
        collection: &str,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<RecordPage, StoreError> {
        let rows = self.read()?.query(
            "SELECT key, version, value FROM ds_records WHERE collection = $1 AND key >= $2 \
             AND ($3::text IS NULL OR key < $3) ORDER BY key LIMIT $4",
            &[&collection, &scan_start(prefix, after), &prefix_end(prefix), &big(limit as u64 + 2)?],
        )?;
        let count = self.counts.read().get(collection).copied().unwrap_or(0);
        let rows = rows.into_iter().map(|r| Ok((r.get::<_, String>(0), r)));
        scan_page(rows, prefix, after, limit, count, |key, r| record(collection, key, r.get(1), r.get(2)))
    }

    fn account_journal(
        &self,
        account: AccountId,
        before: Option<u64>,
        limit: usize,
    ) -> Result<JournalPage, StoreError> {
        let before = before.map_or(Ok(i64::MAX), big)?;
        let rows = self.read()?.query(
            "SELECT j.entry FROM ds_journal_accounts a JOIN ds_journal j ON j.seq = a.seq \
             WHERE a.account = $1 AND a.seq < $2 ORDER BY a.seq DESC LIMIT $3",
            &[&big(account.get())?, &before, &big(limit as u64 + 1)?],
        )?;
        journal_page(&rows, limit)
    }

    fn journal_after(&self, after: u64, limit: usize) -> Result<JournalPage, StoreError> {
        let rows = self.read()?.query(
            "SELECT entry FROM ds_journal WHERE seq > $1 ORDER BY seq LIMIT $2",
            &[&big(after)?, &big(limit as u64 + 1)?],
        )?;
        journal_page(&rows, limit)
    }

    fn amounts_after(&self, after: Option<AccountId>, limit: usize) -> Result<AmountPage, StoreError> {
        let start = after.map_or(0, |a| a.get().saturating_add(1));
        let rows = self.read()?.query(
            "SELECT account, cents FROM ds_amounts WHERE account >= $1 ORDER BY account LIMIT $2",
            &[&big(start)?, &big(limit as u64 + 1)?],
        )?;
        let more = rows.len() > limit;
        let amounts = rows
            .iter()
            .take(limit)
            .map(|r| Ok(AccountAmount { account: account(unbig(r.get(0))?)?, amount: money(r.get(1))? }))
            .collect::<Result<Vec<_>, StoreError>>()?;
        let next = if more { amounts.last().map(|a| a.account) } else { None };
        Ok(AmountPage { amounts, next })
    }

    fn stats(&self) -> Result<Stats, StoreError> {
        let accounts: i64 = self.read()?.query_one("SELECT count(*) FROM ds_amounts", &[])?.get(0);
        Ok(Stats { accounts: unbig(accounts)?, journal_seq: self.seqs.lock().journal })
    }
}

fn record(collection: &str, key: &str, version: i64, value: &[u8]) -> Result<Record, StoreError> {
    Ok(Record {
        collection: collection.to_string(),
        key: key.to_string(),
        version: unbig(version)?,
        value: serde_json::from_slice(value)?,
    })
}

fn journal_page(rows: &[postgres::Row], limit: usize) -> Result<JournalPage, StoreError> {
    let more = rows.len() > limit;
    let entries = rows
        .iter()
        .take(limit)
        .map(|r| Ok(serde_json::from_slice::<JournalEntry>(r.get(0))?))
        .collect::<Result<Vec<_>, StoreError>>()?;
    let next = if more { entries.last().map(|e| e.seq) } else { None };
    Ok(JournalPage { entries, next })
}

/// The least string greater than every string that starts with `prefix` (byte order), or `None`
/// when there is none (an empty prefix, or one of only `char::MAX`).
fn prefix_end(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    while let Some(last) = chars.pop() {
        let mut next = u32::from(last) + 1;
        if (0xD800..0xE000).contains(&next) {
            next = 0xE000;
        }
        if let Some(c) = char::from_u32(next) {
            chars.push(c);
            return Some(chars.into_iter().collect());
        }
    }
    None
}

/// One batch's view of the database: what the batch touches is read in two queries before it is
/// planned, the plan's writes are kept here, and [`PgBatch::flush`] sends them as a few array
/// statements — a handful of round trips per batch, whatever its size.
struct PgBatch<'a, 'c> {
    tx: &'a mut Transaction<'c>,
    /// Versions before the batch (absent: 0).
    before: HashMap<Key, u64>,
    /// What the batch has written so far.
    records: HashMap<Key, Written>,
    amounts: HashMap<u64, Option<i64>>,
    amounts_set: HashMap<u64, i64>,
    journal: Vec<(i64, Vec<u8>)>,
    journal_accounts: Vec<(i64, i64)>,
    outcomes: Vec<(String, i64, Vec<u8>)>,
}

impl<'a, 'c> PgBatch<'a, 'c> {
    fn prefetch(tx: &'a mut Transaction<'c>, batch: &[PreparedCommit]) -> Result<PgBatch<'a, 'c>, StoreError> {
        let mut keys: HashSet<(&str, &str)> = HashSet::new();
        let mut accounts: HashSet<i64> = HashSet::new();
        for c in batch {
            for op in &c.request.records {
                if !matches!(op, dataserver_api::RecordOp::Fewer { .. }) {
                    keys.insert((op.collection(), op.key()));
                }
            }
            for s in &c.request.set {
                accounts.insert(big(s.account.get())?);
            }
        }
        let (cs, ks): (Vec<&str>, Vec<&str>) = keys.into_iter().unzip();
        let mut before = HashMap::new();
        if !cs.is_empty() {
            for r in tx.query(
                "SELECT r.collection, r.key, r.version FROM ds_records r \
                 JOIN unnest($1::text[], $2::text[]) AS k(c, k) ON r.collection = k.c AND r.key = k.k",
                &[&cs, &ks],
            )? {
                before.insert((r.get::<_, String>(0), r.get::<_, String>(1)), unbig(r.get(2))?);
            }
        }
        let mut amounts: HashMap<u64, Option<i64>> = HashMap::new();
        let accounts: Vec<i64> = accounts.into_iter().collect();
        for a in &accounts {
            amounts.insert(unbig(*a)?, None);
        }
        if !accounts.is_empty() {
            for r in tx.query("SELECT account, cents FROM ds_amounts WHERE account = ANY($1)", &[&accounts])? {
                amounts.insert(unbig(r.get(0))?, Some(r.get(1)));
            }
        }
        Ok(PgBatch {
            tx,
            before,
            records: HashMap::new(),
            amounts,
            amounts_set: HashMap::new(),
            journal: Vec::new(),
            journal_accounts: Vec::new(),
            outcomes: Vec::new(),
        })
    }

    fn flush(self, seqs: Sequences) -> Result<(), StoreError> {
        let tx = self.tx;
        if !self.amounts_set.is_empty() {
            let (a, c): (Vec<i64>, Vec<i64>) = self
                .amounts_set
                .iter()
                .map(|(a, c)| Ok((big(*a)?, *c)))
                .collect::<Result<Vec<_>, StoreError>>()?
                .into_iter()
                .unzip();
            tx.execute(
                "INSERT INTO ds_amounts (account, cents) SELECT * FROM unnest($1::bigint[], $2::bigint[]) \
                 ON CONFLICT (account) DO UPDATE SET cents = excluded.cents",
                &[&a, &c],
            )?;
        }
        let (mut put_c, mut put_k, mut put_v, mut put_val) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let (mut del_c, mut del_k) = (Vec::new(), Vec::new());
        for ((c, k), w) in self.records {
            match w {
                Some((v, val)) => {
                    put_c.push(c);
                    put_k.push(k);
                    put_v.push(big(v)?);
                    put_val.push(val);
                }
                None => {
                    del_c.push(c);
                    del_k.push(k);
                }
            }
        }
        if !del_c.is_empty() {
            tx.execute(
                "DELETE FROM ds_records r USING unnest($1::text[], $2::text[]) AS d(c, k) \
                 WHERE r.collection = d.c AND r.key = d.k",
                &[&del_c, &del_k],
            )?;
        }
        if !put_c.is_empty() {
            tx.execute(
                "INSERT INTO ds_records (collection, key, version, value) \
                 SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::bytea[]) \
                 ON CONFLICT (collection, key) DO UPDATE SET version = excluded.version, value = excluded.value",
                &[&put_c, &put_k, &put_v, &put_val],
            )?;
        }
        if !self.journal.is_empty() {
            let (s, e): (Vec<i64>, Vec<Vec<u8>>) = self.journal.into_iter().unzip();
            tx.execute(
                "INSERT INTO ds_journal (seq, entry) SELECT * FROM unnest($1::bigint[], $2::bytea[])",
                &[&s, &e],
            )?;
            let (a, s): (Vec<i64>, Vec<i64>) = self.journal_accounts.into_iter().unzip();
            tx.execute(
                "INSERT INTO ds_journal_accounts (account, seq) SELECT * FROM unnest($1::bigint[], $2::bigint[]) \
                 ON CONFLICT DO NOTHING",
                &[&a, &s],
            )?;
        }
        if !self.outcomes.is_empty() {
            let mut ids = Vec::with_capacity(self.outcomes.len());
            let mut ats = Vec::with_capacity(self.outcomes.len());
            let mut raws = Vec::with_capacity(self.outcomes.len());
            for (id, at, raw) in self.outcomes {
                ids.push(id);
                ats.push(at);
                raws.push(raw);
            }
            tx.execute(
                "INSERT INTO ds_outcomes (tx_id, at_ms, outcome) \
                 SELECT * FROM unnest($1::text[], $2::bigint[], $3::bytea[])",
                &[&ids, &ats, &raws],
            )?;
        }
        tx.execute(
            "UPDATE ds_meta SET value = CASE name WHEN 'journal_seq' THEN $1::bigint ELSE $2::bigint END \
             WHERE name IN ('journal_seq', 'record_seq')",
            &[&big(seqs.journal)?, &big(seqs.record)?],
        )?;
        Ok(())
    }
}

impl BatchTarget for PgBatch<'_, '_> {
    fn version(&mut self, collection: &str, key: &str) -> Result<u64, StoreError> {
        let k = (collection.to_string(), key.to_string());
        Ok(match self.records.get(&k) {
            Some(Some((v, _))) => *v,
            Some(None) => 0,
            None => self.before.get(&k).copied().unwrap_or(0),
        })
    }

    fn fewer_under(&mut self, collection: &str, prefix: &str, than: u64) -> Result<bool, StoreError> {
        // What the database held before the batch (the batch's writes are not sent yet), read
        // far enough that the batch's own deletes cannot hide the bound...
        let touched: Vec<(&Key, &Written)> =
            self.records.iter().filter(|((c, k), _)| c == collection && k.starts_with(prefix)).collect();
        let cap = than.saturating_add(touched.len() as u64);
        let n: i64 = self
            .tx
            .query_one(
                "SELECT count(*) FROM (SELECT 1 FROM ds_records WHERE collection = $1 AND key >= $2 \
                 AND ($3::text IS NULL OR key < $3) LIMIT $4) AS under",
                &[&collection, &prefix, &prefix_end(prefix), &big(cap)?],
            )?
            .get(0);
        // ...then what the batch created or deleted under the prefix.
        let mut now = unbig(n)?;
        for (k, w) in touched {
            let existed = self.before.get(k).copied().unwrap_or(0) != 0;
            match (existed, w.is_some()) {
                (false, true) => now += 1,
                (true, false) => now = now.saturating_sub(1),
                _ => {}
            }
        }
        Ok(now < than)
    }

    fn amount(&mut self, account: u64) -> Result<Option<i64>, StoreError> {
        if let Some(c) = self.amounts_set.get(&account) {
            return Ok(Some(*c));
        }
        match self.amounts.get(&account) {
            Some(a) => Ok(*a),
            None => Err(corrupt("an amount the batch did not read")),
        }
    }

    fn set_amount(&mut self, account: u64, cents: i64) -> Result<(), StoreError> {
        self.amounts_set.insert(account, cents);
        Ok(())
    }

    fn append_journal(&mut self, entry: &JournalEntry) -> Result<(), StoreError> {
        let seq = big(entry.seq)?;
        self.journal.push((seq, serde_json::to_vec(entry)?));
        for c in &entry.changes {
            self.journal_accounts.push((big(c.account.get())?, seq));
        }
        Ok(())
    }

    fn put_record(
        &mut self,
        collection: &str,
        key: &str,
        version: u64,
        value: &RawJson,
        _existed: bool,
    ) -> Result<(), StoreError> {
        self.records
            .insert((collection.to_string(), key.to_string()), Some((version, value.as_str().as_bytes().to_vec())));
        Ok(())
    }

    fn delete_record(&mut self, collection: &str, key: &str, _existed: bool) -> Result<(), StoreError> {
        self.records.insert((collection.to_string(), key.to_string()), None);
        Ok(())
    }

    fn put_outcome(&mut self, tx_id: &str, at_ms: u64, raw: Vec<u8>) -> Result<(), StoreError> {
        self.outcomes.push((tx_id.to_string(), big(at_ms)?, raw));
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn put(tx: &str) -> PreparedCommit {
        super::super::tests::commit(tx, 1, 100)
    }

    /// The fence: once another data server took the lease, a batch of the old leader's store
    /// writes nothing, however late it comes (fails with the epoch check removed: the write lands).
    #[test]
    fn a_deposed_leaders_batch_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let url = harness::postgres::database_for(dir.path()).unwrap();
        migrate(&mut connect(&url).unwrap()).unwrap();
        let lease_ms = crate::config::limits::LEADER_LEASE_MS_MIN;
        let mut first = Lease::new(&url, "first".into(), "http://first".into(), lease_ms).unwrap();
        let epoch = first.try_acquire().unwrap().expect("a free lease is taken");
        let old = PgStore::open(&url, epoch, 2).unwrap();
        assert!(old.write_batch(&[put("before")], 1, "t", 0).unwrap()[0].is_ok());

        // The lease is not renewed: the second takes it once it lapsed (a bounded wait for that).
        let mut second = Lease::new(&url, "second".into(), "http://second".into(), lease_ms).unwrap();
        let started = std::time::Instant::now();
        let newer = loop {
            if let Some(e) = second.try_acquire().unwrap() {
                break e;
            }
            assert!(started.elapsed().as_millis() < 10 * u128::from(lease_ms), "the lease never lapsed");
            std::thread::sleep(std::time::Duration::from_millis(10));
        };
        assert!(newer > epoch);
        assert!(!first.renew(epoch).unwrap(), "the old leader learns it was deposed");

        match old.write_batch(&[put("after")], 2, "t", 0) {
            Err(StoreError::Deposed { ours, found }) => assert_eq!((ours, found), (epoch, Some(newer))),
            other => panic!("a deposed leader's batch was not refused: {other:?}"),
        }
        let new = PgStore::open(&url, newer, 2).unwrap();
        assert!(new.get_record("c", "before").unwrap().is_some());
        assert!(new.get_record("c", "after").unwrap().is_none(), "the deposed leader's write landed");
        assert!(new.write_batch(&[put("by-the-new-leader")], 3, "t", 0).unwrap()[0].is_ok());
    }

    #[test]
    fn prefix_end_bounds_exactly_the_strings_under_the_prefix() {
        assert_eq!(prefix_end(""), None);
        assert_eq!(prefix_end("ab").as_deref(), Some("ac"));
        assert_eq!(prefix_end("a\u{10FFFF}").as_deref(), Some("b"));
        assert_eq!(prefix_end("\u{D7FF}").as_deref(), Some("\u{E000}"));
        for s in ["ab", "ab\u{10FFFF}\u{10FFFF}", "abzzzz"] {
            assert!(s < prefix_end("ab").unwrap().as_str());
        }
        assert!("ac" >= prefix_end("ab").unwrap().as_str());
    }
}
