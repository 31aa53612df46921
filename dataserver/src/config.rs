//! Configuration: one struct, from flags, environment variables, or a TOML-free `KEY=VALUE` file
//! loaded into the environment by `main`. Every limit has a name with its unit last.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;
use shared::BusinessId;

/// `--key BUSINESS_ID:KEY`: the API key one business server uses, bound to its id.
#[derive(Clone, PartialEq, Eq)]
pub struct BusinessKey {
    pub business: BusinessId,
    pub key: String,
}

impl std::fmt::Debug for BusinessKey {
    // Secrets never reach logs, not even through Debug.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "BusinessKey({}:***)", self.business)
    }
}

/// Shortest key accepted: a key is a bearer secret, so it must not be guessable.
pub const KEY_LEN_MIN: usize = 8;
pub const KEY_LEN_MAX: usize = 256;

impl std::str::FromStr for BusinessKey {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (id, key) = s.split_once(':').ok_or("expected BUSINESS_ID:KEY")?;
        let business = id.parse().map_err(|e| format!("{e}"))?;
        if key.len() < KEY_LEN_MIN || key.len() > KEY_LEN_MAX || !key.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(format!("key must be {KEY_LEN_MIN}..={KEY_LEN_MAX} printable ASCII characters"));
        }
        Ok(BusinessKey { business, key: key.to_string() })
    }
}

/// A database URL. It may hold a password, so `Debug` shows it with the password hidden: no
/// secret reaches a log, even through a printed `Settings`.
#[derive(Clone, PartialEq, Eq)]
pub struct DatabaseUrl(String);

impl DatabaseUrl {
    /// The URL itself, for the database client only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::str::FromStr for DatabaseUrl {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s.is_empty() {
            return Err("the database URL is empty".into());
        }
        Ok(DatabaseUrl(s.to_string()))
    }
}

impl std::fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // `scheme://user:password@rest` → `scheme://user:***@rest`; a `password=` parameter too.
        let (head, rest) = self.0.split_once("://").unwrap_or(("", self.0.as_str()));
        let shown = match rest.split_once('@') {
            Some((userinfo, host)) => match userinfo.split_once(':') {
                Some((user, _)) => format!("{head}://{user}:***@{host}"),
                None => self.0.clone(),
            },
            None => self.0.clone(),
        };
        let shown = match shown.split_once("password=") {
            Some((before, after)) => {
                let tail = after.split_once('&').map_or(String::new(), |(_, t)| format!("&{t}"));
                format!("{before}password=***{tail}")
            }
            None => shown,
        };
        write!(f, "DatabaseUrl({shown})")
    }
}

#[derive(Debug, Clone, Parser)]
#[command(
    name = "dataserver",
    version,
    about = "A bank's central data server (durable state, lock leases, atomic commits)"
)]
pub struct Settings {
    /// Address to listen on; port 0 picks a free port (the bound address is printed).
    #[arg(long, env = "DATASERVER_LISTEN", default_value = "127.0.0.1:4001")]
    pub listen: SocketAddr,

    /// Serve HTTPS with this certificate (PEM) ...
    #[arg(long, env = "DATASERVER_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,

    /// ... and this private key (PEM, mode 0600).
    #[arg(long, env = "DATASERVER_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,

    /// Directory of the durable store (created if missing): the embedded backend. Either this
    /// or `--database-url`.
    #[arg(
        long,
        env = "DATASERVER_DATA_DIR",
        required_unless_present = "database_url",
        conflicts_with = "database_url"
    )]
    pub data_dir: Option<PathBuf>,

    /// Keep the bank's state in this PostgreSQL (or PG-wire) database instead:
    /// `postgres://USER@HOST:PORT/DB`. Several data servers on one database are one active and
    /// standbys (a leader lease in the database). A URL with a password goes in the environment
    /// only (`DATASERVER_DATABASE_URL`): a command line is visible to every user of the machine.
    #[arg(long, env = "DATASERVER_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<DatabaseUrl>,

    /// How long the active data server's leader lease lasts unrenewed (renewed every quarter of
    /// it); a standby takes over this long after the active one stopped renewing.
    #[arg(long, env = "DATASERVER_LEADER_LEASE_MS", default_value_t = 1_000)]
    pub leader_lease_ms: u64,

    /// Where business servers reach this data server, told by a standby to whoever asks it
    /// (default: the bound address).
    #[arg(long, env = "DATASERVER_ADVERTISE_URL")]
    pub advertise_url: Option<String>,

    /// Most database connections of the readers' pool (the writer has one of its own).
    #[arg(long, env = "DATASERVER_DATABASE_POOL_MAX", default_value_t = 16)]
    pub database_pool_max: u32,

    /// BUSINESS_ID:KEY, repeatable (env: comma-separated).
    // From the environment only (`DATASERVER_KEYS`); `main` refuses the flag.
    #[arg(
        long = "key",
        env = "DATASERVER_KEYS",
        value_delimiter = ',',
        required = true,
        hide = true,
        hide_env_values = true
    )]
    pub keys: Vec<BusinessKey>,

    /// Lease length when the client names none.
    #[arg(long, env = "DATASERVER_LEASE_MS_DEFAULT", default_value_t = 5_000)]
    pub lease_ms_default: u64,

    /// Longest lease a client may ask for.
    #[arg(long, env = "DATASERVER_LEASE_MS_MAX", default_value_t = 60_000)]
    pub lease_ms_max: u64,

    /// Longest a lock request may wait in the FIFO queue.
    #[arg(long, env = "DATASERVER_WAIT_MS_MAX", default_value_t = 10_000)]
    pub wait_ms_max: u64,

    /// Most accounts in one batch lock request or one commit.
    /// Interbank settlement locks every account of a batch of packages at once, so this is large.
    #[arg(long, env = "DATASERVER_LOCK_BATCH_MAX", default_value_t = 1024)]
    pub lock_batch_max: usize,

    /// Most leases one business server may hold at once.
    #[arg(long, env = "DATASERVER_LOCKS_PER_BUSINESS_MAX", default_value_t = 100_000)]
    pub locks_per_business_max: usize,

    /// Most commits folded into one durable write (group commit).
    #[arg(long, env = "DATASERVER_COMMIT_BATCH_MAX", default_value_t = 4_096)]
    pub commit_batch_max: usize,

    /// Most record operations in one commit (a settlement batch writes several per package).
    #[arg(long, env = "DATASERVER_RECORD_OPS_MAX", default_value_t = 4096)]
    pub record_ops_max: usize,

    /// Largest request body.
    #[arg(long, env = "DATASERVER_BODY_BYTES_MAX", default_value_t = 4 << 20)]
    pub body_bytes_max: usize,

    /// Largest record value (its JSON text, as sent).
    #[arg(long, env = "DATASERVER_RECORD_VALUE_BYTES_MAX", default_value_t = 64 << 10)]
    pub record_value_bytes_max: usize,

    /// Most open client connections.
    #[arg(long, env = "DATASERVER_CONNECTIONS_MAX", default_value_t = 4_096)]
    pub connections_max: usize,

    /// How long a committed transaction id is remembered for idempotent retries.
    #[arg(long, env = "DATASERVER_IDEMPOTENCY_TTL_S", default_value_t = 7 * 24 * 3600)]
    pub idempotency_ttl_s: u64,

    /// Make the store itself durable (and restart the write-ahead log) at least this often.
    /// A checkpoint writes every batch since the last one into redb, on a thread of its own
    /// beside the writer. Under `bench dataserver` the slowest commit was 38–40 ms with it
    /// every second and up to 606 ms at 5 s (the two cores shared with a longer write), and the
    /// CPU saved per commit was the same within the noise.
    #[arg(long, env = "DATASERVER_CHECKPOINT_INTERVAL_MS", default_value_t = 1_000)]
    pub checkpoint_interval_ms: u64,

    /// Checkpoint early when the write-ahead log segment grows past this; while a checkpoint is
    /// written, commits wait for it once the new segment grows past this (memory stays bounded).
    #[arg(long, env = "DATASERVER_WAL_SEGMENT_BYTES_MAX", default_value_t = 256 << 20)]
    pub wal_segment_bytes_max: u64,

    /// redb page cache.
    #[arg(long, env = "DATASERVER_CACHE_BYTES", default_value_t = 64 << 20)]
    pub cache_bytes: usize,

    /// HTTP worker threads (default: one per core).
    #[arg(long, env = "DATASERVER_WORKERS")]
    pub workers: Option<usize>,
}

#[cfg(test)]
mod tests {
    use super::DatabaseUrl;

    #[test]
    fn a_database_urls_password_never_shows() {
        let url: DatabaseUrl = "postgres://bank:s3cret@db:5432/bank1?sslmode=disable&password=s3cret".parse().unwrap();
        let shown = format!("{url:?}");
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(shown.contains("bank:***@db:5432/bank1") && shown.contains("sslmode=disable"), "{shown}");
        assert_eq!(url.expose(), "postgres://bank:s3cret@db:5432/bank1?sslmode=disable&password=s3cret");
    }
}

/// Fixed limits that are part of the API contract rather than deployment tuning.
pub mod limits {
    pub const TX_ID_LEN_MAX: usize = 128;
    pub const REQUEST_ID_LEN_MAX: usize = 128;
    pub const COLLECTION_LEN_MAX: usize = 64;
    pub const RECORD_KEY_LEN_MAX: usize = 256;
    pub const MEMO_BYTES_MAX: usize = 256 << 10;
    pub const PAGE_LIMIT_MAX: usize = 1_000;
    pub const PAGE_LIMIT_DEFAULT: usize = 100;
    /// Leases below this would expire before a commit could reach the server.
    pub const LEASE_MS_MIN: u64 = 10;
    /// How often expired leases are swept from memory.
    pub const SWEEP_INTERVAL_MS: u64 = 250;
    /// How long an expired lease nobody waits for stays in the table, so its holder hears
    /// `lease_expired` (take the lock again) rather than `not_holder`.
    pub const EXPIRED_LEASE_KEPT_MS: u64 = 5_000;
    /// (account, journal seq) keys written but not yet indexed that the data server keeps in
    /// memory; past it the indexer is failing and the writer stops (about 20 s of the batch
    /// path's peak, a few tens of MB).
    pub const UNINDEXED_KEYS_MAX: usize = 2_000_000;
    /// Journal entries the account index takes in one durable step.
    pub const INDEX_STEP_ENTRIES_MAX: usize = 500_000;
    /// Fewest milliseconds between two steps of the account index while the journal grows: a
    /// step is an fsync, and the write-ahead log's fsyncs come first.
    pub const INDEX_STEP_INTERVAL_MS: u64 = 1000;
    /// Shortest and longest leader lease (`--leader-lease-ms`): shorter would be lost to one slow
    /// database round trip; longer would leave the bank without a writer for that long.
    pub const LEADER_LEASE_MS_MIN: u64 = 200;
    pub const LEADER_LEASE_MS_MAX: u64 = 60_000;
    /// Longest a reader waits for a database connection of the pool before it is answered
    /// `503 unavailable` (r2d2's own default is 30 s).
    pub const DATABASE_CONNECTION_WAIT_MS_MAX: u64 = 5_000;
    /// How often a standby asks whether the leader lease lapsed.
    pub const STANDBY_POLL_MS: u64 = 100;
    /// How often expired idempotency records are purged.
    pub const IDEMPOTENCY_PURGE_INTERVAL_S: u64 = 60;
    /// Most idempotency records purged in one pass, so a purge never stalls commits for long.
    pub const IDEMPOTENCY_PURGE_BATCH_MAX: usize = 10_000;
}
