//! Configuration of one business replica: flags with environment-variable fallbacks.

use std::net::SocketAddr;

use clap::Parser;
use shared::{BankId, BusinessId};

#[derive(Clone, Parser)]
#[command(name = "business", version, about = "An InterBank business server (one stateless replica of a bank)")]
pub struct Settings {
    /// Address to listen on; port 0 picks a free port (the bound address is printed).
    #[arg(long, env = "BUSINESS_LISTEN", default_value = "127.0.0.1:3001")]
    pub listen: SocketAddr,

    /// Address of the interbank listener (mutual TLS; only peer banks, by certificate). Port 0
    /// picks a free port. Required in a network of several banks.
    #[arg(long, env = "BUSINESS_INTERBANK_LISTEN")]
    pub interbank_listen: Option<SocketAddr>,

    /// This bank's certificate (PEM), issued by the consortium's CA: its identity to peers.
    #[arg(long, env = "BUSINESS_IDENTITY_CERT")]
    pub identity_cert: Option<std::path::PathBuf>,

    /// This bank's private key (PEM), mode 0600; never on a command line, never in the network file.
    #[arg(long, env = "BUSINESS_IDENTITY_KEY")]
    pub identity_key: Option<std::path::PathBuf>,

    /// Serve the customer API over HTTPS with this certificate (PEM) ...
    #[arg(long, env = "BUSINESS_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<std::path::PathBuf>,

    /// ... and this private key (PEM, mode 0600).
    #[arg(long, env = "BUSINESS_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<std::path::PathBuf>,

    /// The CA (PEM) that issued the data server's certificate, when it serves HTTPS.
    #[arg(long, env = "BUSINESS_DATASERVER_CA")]
    pub dataserver_ca: Option<std::path::PathBuf>,

    /// The bank this replica serves.
    #[arg(long, env = "BUSINESS_BANK_ID")]
    pub bank_id: BankId,

    /// This replica's id at the bank's data server (its key is bound to it).
    #[arg(long, env = "BUSINESS_BUSINESS_ID")]
    pub business_id: BusinessId,

    /// Base URL of the bank's data server; or, when the bank runs an active data server and
    /// standbys on one database, all their URLs separated by commas (the replica follows the
    /// leader by itself).
    #[arg(long, env = "BUSINESS_DATASERVER")]
    pub dataserver: String,

    /// This replica's key at the data server: from the environment only (a command line is
    /// visible to every user of the machine).
    #[arg(long, env = "BUSINESS_DATASERVER_KEY", hide_env_values = true, hide = true)]
    pub dataserver_key: String,

    /// Key of the operator/teller API (seed 004's routes): from the environment only.
    #[arg(long, env = "BUSINESS_OPERATOR_KEY", hide_env_values = true, hide = true)]
    pub operator_key: String,

    /// Longest an operation waits, in FIFO order, for its accounts' locks.
    #[arg(long, env = "BUSINESS_LOCK_WAIT_MS", default_value_t = 2_000)]
    pub lock_wait_ms: u64,

    /// Lease asked for each operation's locks; it bounds how long a crashed replica blocks them.
    #[arg(long, env = "BUSINESS_LEASE_MS", default_value_t = 5_000)]
    pub lease_ms: u64,

    /// Longest a data-server request waits for its answer beyond the lock wait it asks for: a
    /// data server that stopped answering holds no worker, commit or round for longer. A request
    /// that runs out counts as unanswered (maybe applied): repeated under its same id, then
    /// answered `503` with the outcome unknown.
    #[arg(long, env = "BUSINESS_DATASERVER_ANSWER_MS_MAX", default_value_t = dataserver_api::client::ANSWER_MS_MAX_DEFAULT)]
    pub dataserver_answer_ms_max: u64,

    /// Most attempts of one operation when its lease was lost or the data server did not answer.
    #[arg(long, env = "BUSINESS_ATTEMPTS_MAX", default_value_t = 4)]
    pub attempts_max: u32,

    /// How long a customer session lasts.
    #[arg(long, env = "BUSINESS_SESSION_TTL_S", default_value_t = 12 * 3600)]
    pub session_ttl_s: u64,

    /// How long an operator's `Idempotency-Key` is remembered.
    #[arg(long, env = "BUSINESS_IDEMPOTENCY_TTL_S", default_value_t = 7 * 24 * 3600)]
    pub idempotency_ttl_s: u64,

    /// How often expired sessions, throttle windows and idempotency records are swept.
    #[arg(long, env = "BUSINESS_SWEEP_INTERVAL_MS", default_value_t = 60_000)]
    pub sweep_interval_ms: u64,

    /// Between two checks that an event stream's session lives (a logout elsewhere ends the
    /// session's streams within this long).
    #[arg(long, env = "BUSINESS_EVENTS_HEARTBEAT_MS", default_value_t = crate::events::EVENTS_HEARTBEAT_MS)]
    pub events_heartbeat_ms: u64,

    /// Largest request body.
    #[arg(long, env = "BUSINESS_BODY_BYTES_MAX", default_value_t = 64 << 10)]
    pub body_bytes_max: usize,

    /// Browser origins allowed to call this replica (the app served by trunk), comma-separated.
    #[arg(
        long,
        env = "BUSINESS_CORS_ORIGINS",
        value_delimiter = ',',
        default_value = "http://127.0.0.1:8080,http://localhost:8080"
    )]
    pub cors_origins: Vec<String>,

    /// HTTP worker threads (default: one per core).
    #[arg(long, env = "BUSINESS_WORKERS")]
    pub workers: Option<usize>,

    /// The network file (TOML: the CA's certificate, `[[bank]]` with id, name, replicas and
    /// certificate). Without it the bank is alone: packages across banks are refused.
    #[arg(long, env = "BUSINESS_NETWORK")]
    pub network: Option<std::path::PathBuf>,

    /// No token grant seen anywhere for this long → the token is lost and regenerated. A live
    /// holder is never declared lost, whatever this is (its view shows its lease), so this
    /// bounds only how long the ring stands still after the holder died: 1.5 s, three times the
    /// longest hold (`--hold-ms-max`), so a token in passing is not taken for lost.
    #[arg(long, env = "BUSINESS_TOKEN_LOST_MS", default_value_t = 1_500)]
    pub token_lost_ms: u64,

    /// Longest a bank keeps the token while it has packages to settle.
    #[arg(long, env = "BUSINESS_HOLD_MS_MAX", default_value_t = 500)]
    pub hold_ms_max: u64,

    /// How long an idle bank keeps the token before passing it.
    #[arg(long, env = "BUSINESS_IDLE_HOLD_MS", default_value_t = 20)]
    pub idle_hold_ms: u64,

    /// Lease of the replica working the token (another replica takes over when it runs out).
    #[arg(long, env = "BUSINESS_RING_LEASE_MS", default_value_t = 2_000)]
    pub ring_lease_ms: u64,

    /// How often each replica checks the ring and in-doubt packages.
    #[arg(long, env = "BUSINESS_TICK_MS", default_value_t = 100)]
    pub tick_ms: u64,

    /// A package prepared here for this long asks its coordinator for the decision.
    #[arg(long, env = "BUSINESS_IN_DOUBT_MS", default_value_t = 5_000)]
    pub in_doubt_ms: u64,

    /// A cross-bank package not settled within this long after submission fails.
    #[arg(long, env = "BUSINESS_PACKAGE_DEADLINE_MS", default_value_t = 30_000)]
    pub package_deadline_ms: u64,

    /// The most two banks' clocks may disagree: the same at every bank of the network. A prepare
    /// later than its package's deadline by more is refused.
    #[arg(long, env = "BUSINESS_CLOCK_SKEW_MS_MAX", default_value_t = 30_000)]
    pub clock_skew_ms_max: u64,

    /// How long decisions and outcomes of settled packages are kept after nothing can need them
    /// any more (the package's deadline plus the clock skew), for audits; then deleted.
    #[arg(long, env = "BUSINESS_RECORDS_RETAIN_MS", default_value_t = 600_000)]
    pub records_retain_ms: u64,

    /// Longest wait for a peer bank's answer.
    #[arg(long, env = "BUSINESS_PEER_TIMEOUT_MS", default_value_t = 3_000)]
    pub peer_timeout_ms: u64,

    /// Most deposits, withdrawals and transfers sent to the data server as one batch (one lock
    /// call, one commit); 0 sends each alone.
    #[arg(long, env = "BUSINESS_OPS_BATCH_MAX", default_value_t = 64)]
    pub ops_batch_max: usize,

    /// Batches of operations in flight to the data server at once; arrivals meanwhile gather
    /// into the next batch. Two, not more: fewer, larger batches cost the data server fewer
    /// requests (the transfer benchmark ran 9 % faster with 2 than with 4, medians of three),
    /// and a second slot keeps a batch waiting for a busy account from stalling the rest.
    #[arg(long, env = "BUSINESS_OPS_BATCHES_IN_FLIGHT_MAX", default_value_t = 2)]
    pub ops_batches_in_flight_max: usize,

    /// Packages per settlement round.
    #[arg(long, env = "BUSINESS_BATCH_PACKAGES_MAX", default_value_t = 128)]
    pub batch_packages_max: usize,

    /// When the token arrives and fewer packages wait than fill a round, how long the bank waits
    /// for more before its first round (a full queue never waits). Rounds then carry more
    /// packages each, and a round's holds, balances and per-round records are shared by more of
    /// them, for this much latency (`bench packages` at 500/s: 11.9 record writes and 4.3
    /// data-server requests per package at 20 ms, 6.5 and 2.0 at 100 ms, p99 140 → 400 ms, well
    /// inside the 1 s budget; past saturation rounds are full and nobody waits; 0 turns it
    /// off). Below `--ring-lease-ms`.
    #[arg(long, env = "BUSINESS_ROUND_LINGER_MS", default_value_t = 100)]
    pub round_linger_ms: u64,

    /// Cross-bank packages waiting for settlement at this bank, at most (all replicas: the
    /// bound is a condition of the data server's commit). Past it `POST /api/payments/pay`
    /// answers `503 settlement_busy` with `Retry-After` at once and stores nothing, so a burst
    /// beyond what the ring settles waits at its sender instead of growing everyone's latency.
    /// The bound is the latency budget of what it accepts (Little's law: waiting ≈ queue /
    /// settled rate): a bank settles ~400 packages/s on the reference machine, so 256 waiting
    /// is ~0.65 s. Measured (`bench packages`, 2,400/s offered, medians of 3): 512 settled
    /// 1,153/s at p99 2.3 s, 256 settled 1,151/s at p99 0.9 s — the same throughput, and
    /// packages accepted keep a p99 under a second at 2× and 4× what is sustained.
    #[arg(long, env = "BUSINESS_SETTLEMENT_QUEUE_MAX", default_value_t = 256)]
    pub settlement_queue_max: u64,

    /// How long a replica believes a settlement bound it just met (the bank's queue full, an
    /// author at its bound) and refuses without asking the data server. Longer makes refusals
    /// under overload cheaper; but the queue drains in one hold of the token (tens of ms), and
    /// while the belief lasts nothing refills it: at 200 ms the bank's turn came with its queue
    /// empty (`bench packages --rate 2400`, the two alternated, two pairs: 1,724 / 1,769
    /// settled/s at 200 ms against 1,943 / 1,917 at 20).
    #[arg(long, env = "BUSINESS_ADMISSION_MEMORY_MS", default_value_t = 20)]
    pub admission_memory_ms: u64,

    /// Requests carrying submissions' commits to the data server that may be out at once, per
    /// worker thread. While they are, that thread's next submissions' commits wait and leave
    /// together in one request ([`crate::coalesce`]); fewer makes bigger batches (less CPU per
    /// package) at the cost of waiting for a request in flight. At 1 the package benchmark
    /// settled 1,930/s against 1,571/s without coalescing (medians of 3, alternated).
    #[arg(long, env = "BUSINESS_COMMIT_REQUESTS_IN_FLIGHT_MAX", default_value_t = 1)]
    pub commit_requests_in_flight_max: u64,

    /// Cross-bank packages one account may have waiting for settlement; past it its author
    /// gets `429 packages_pending`, so one customer cannot fill the bank's queue alone. The
    /// default lets a payer keep a second's worth of packages in flight at 64 a second.
    #[arg(long, env = "BUSINESS_PENDING_PACKAGES_PER_ACCOUNT_MAX", default_value_t = 64)]
    pub pending_packages_per_account_max: u64,

    /// Accounts locked in one data-server call while settling (at most the data server's
    /// `lock_batch_max`).
    #[arg(long, env = "BUSINESS_BATCH_ACCOUNTS_MAX", default_value_t = 512)]
    pub batch_accounts_max: usize,

    /// Failed logins an account may take per window; then even the right password waits.
    #[arg(long, env = "BUSINESS_LOGIN_FAILURES_PER_ACCOUNT_MAX", default_value_t = 5)]
    pub login_failures_per_account_max: u32,

    /// Failed logins one client address may make per window (guessing across accounts).
    #[arg(long, env = "BUSINESS_LOGIN_FAILURES_PER_ADDRESS_MAX", default_value_t = 30)]
    pub login_failures_per_address_max: u32,

    /// Accounts one client address may open per window (each costs an argon2 hash).
    #[arg(long, env = "BUSINESS_SIGNUPS_PER_ADDRESS_MAX", default_value_t = 20)]
    pub signups_per_address_max: u32,

    /// The window of the sign-up limit.
    #[arg(long, env = "BUSINESS_SIGNUP_WINDOW_MS", default_value_t = 3_600_000)]
    pub signup_window_ms: u64,

    /// Password hashes (sign-ups, logins) computed at once; the rest wait their turn.
    #[arg(long, env = "BUSINESS_HASHING_CONCURRENT_MAX", default_value_t = 2)]
    pub hashing_concurrent_max: usize,

    /// Let customers deposit money from nowhere (`/api/payments/deposit`, a seed convenience
    /// for a local network); off by default, since no real bank can.
    #[arg(long, env = "BUSINESS_CUSTOMER_DEPOSITS", default_value_t = false)]
    pub customer_deposits: bool,

    /// With `--customer-deposits`: the most one account may receive so per day (UTC).
    #[arg(long, env = "BUSINESS_DEPOSIT_DAY_MAX", default_value = "10000.00")]
    pub deposit_day_max: shared::Amount,

    /// The window of the login limits.
    #[arg(long, env = "BUSINESS_LOGIN_WINDOW_MS", default_value_t = 300_000)]
    pub login_window_ms: u64,

    /// Pix key lookups one customer may make per window (key enumeration is a known attack).
    #[arg(long, env = "BUSINESS_KEY_LOOKUPS_PER_ACCOUNT_MAX", default_value_t = 60)]
    pub key_lookups_per_account_max: u32,

    /// Pix key lookups one client address may make per window, whatever the session.
    #[arg(long, env = "BUSINESS_KEY_LOOKUPS_PER_ADDRESS_MAX", default_value_t = 600)]
    pub key_lookups_per_address_max: u32,

    /// The window of the key-lookup limits.
    #[arg(long, env = "BUSINESS_KEY_LOOKUP_WINDOW_MS", default_value_t = 60_000)]
    pub key_lookup_window_ms: u64,
}

impl std::fmt::Debug for Settings {
    // Keys never reach logs, not even through Debug.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("listen", &self.listen)
            .field("bank_id", &self.bank_id)
            .field("business_id", &self.business_id)
            .field("dataserver", &self.dataserver)
            .finish_non_exhaustive()
    }
}

/// Fixed limits of the API contract.
pub mod limits {
    /// Longest `Idempotency-Key` accepted.
    pub const IDEMPOTENCY_KEY_LEN_MAX: usize = 128;
    /// First back-off after a lost lease or an unanswered data server; doubles, with jitter.
    pub const RETRY_BACKOFF_MS_MIN: u64 = 5;
    pub const RETRY_BACKOFF_MS_MAX: u64 = 200;
    pub const NAME_LEN_MAX: usize = 100;
    /// Most operations in one package.
    pub const PACKAGE_OPERATIONS_MAX: usize = 16;
    /// Most packages in one prepare request between banks: a round's (a participant keeps a
    /// round's packages in one record).
    pub const PREPARE_ITEMS_MAX: usize = ROUND_PACKAGES_MAX;
    /// Most attempts one commit or rollback request names, and most decisions one prepare
    /// carries: a coordinator sends more in several.
    pub const FINISH_TXNS_MAX: usize = PREPARE_ITEMS_MAX * 4;
    /// Statement page size: default and most.
    pub const STATEMENT_PAGE_DEFAULT: usize = 20;
    pub const STATEMENT_PAGE_MAX: usize = 100;
    /// Authored packages on one statement page: each is one more read of `packages/`.
    pub const STATEMENT_PACKAGES_MAX: usize = 20;
    /// `packages_before`: an `account_packages/` key (account, time, package id).
    pub const PACKAGES_CURSOR_LEN_MAX: usize = 64 + IDEMPOTENCY_KEY_LEN_MAX;
    pub const PASSWORD_LEN_MIN: usize = 8;
    pub const PASSWORD_LEN_MAX: usize = 128;
    /// Most holders of one joint account.
    pub const JOINT_HOLDERS_MAX: usize = 8;
    /// Attempts to open an account when another opening took the same id first.
    pub const ACCOUNT_OPEN_ATTEMPTS_MAX: u32 = 16;
    /// Most packages in one settlement round: the round's records (`rounds/{n}`,
    /// `undelivered/{n}`) name each of its packages and their banks, and must fit in one data-server
    /// record (64 KiB by default) even with every package naming 32 banks
    /// (`coordinator::tests::a_full_round_fits_in_one_record`).
    /// The protocol's (a participant holds at most this many of a round's packages prepared,
    /// part of the bound on credits in flight without a hold).
    pub const ROUND_PACKAGES_MAX: usize = protocol::settle::ROUND_PACKAGES_MAX;
    /// Most operations in one round, over all its packages: each participant keeps what a
    /// round's packages ask of it in one `prepared/{coordinator}.{round}` record, which must fit
    /// the data server's record (unit test `a_full_round_fits_in_one_prepared_record`). A round
    /// of the largest packages is then smaller than `ROUND_PACKAGES_MAX`.
    pub const ROUND_OPERATIONS_MAX: usize = 256;
    /// Most rounds of one coordinator a participant holds prepared at once. An honest
    /// coordinator has one round open and its decisions delivered before long, so a handful at
    /// most; without a bound, a member that prepares round after round and never decides grows
    /// a participant's `prepared/` without end (and its recovery scans with it). Past it, a
    /// prepare that would start holding another round is answered `unreachable` for each of its
    /// packages, and nothing is stored. Above a page of recovery's scan (128 records), so
    /// that paging past a dead coordinator's rounds stays exercised.
    /// The protocol's: part of the bound on credits in flight without a hold.
    pub const PREPARED_ROUNDS_PER_COORDINATOR_MAX: u64 = protocol::settle::PREPARED_ROUNDS_PER_COORDINATOR_MAX;
    /// What `--batch-packages-max` may be: a round settles at least one package, and at most
    /// `ROUND_PACKAGES_MAX`.
    pub const BATCH_PACKAGES_RANGE: std::ops::RangeInclusive<usize> = 1..=ROUND_PACKAGES_MAX;
    /// What `--batch-accounts-max` may be: at least one package's accounts (two per operation),
    /// at most the data server's `lock_batch_max` default.
    pub const BATCH_ACCOUNTS_RANGE: std::ops::RangeInclusive<usize> = 2 * PACKAGE_OPERATIONS_MAX..=4096;
    /// What `--ops-batch-max` may be: two accounts per operation stay far inside the data
    /// server's `lock_batch_max` default (1,024).
    pub const OPS_BATCH_RANGE: std::ops::RangeInclusive<usize> = 0..=256;
    pub const OPS_BATCHES_IN_FLIGHT_RANGE: std::ops::RangeInclusive<usize> = 1..=64;
    /// What `--pending-packages-per-account-max` may be: the data server counts the keys
    /// under a prefix one by one, at most `dataserver_api::FEWER_PREFIX_THAN_MAX`.
    pub const PENDING_PACKAGES_PER_ACCOUNT_RANGE: std::ops::RangeInclusive<u64> =
        1..=dataserver_api::FEWER_PREFIX_THAN_MAX;
    /// What `--settlement-queue-max` may be.
    pub const SETTLEMENT_QUEUE_RANGE: std::ops::RangeInclusive<u64> = 1..=1_000_000;
    /// What `--admission-memory-ms` may be: within the time a bound met keeps submissions
    /// asking first (`interbank::ADMISSION_PRESSURE_MS`).
    pub const ADMISSION_MEMORY_RANGE: std::ops::RangeInclusive<u64> = 0..=crate::interbank::ADMISSION_PRESSURE_MS;
    /// What `--commit-requests-in-flight-max` may be.
    pub const COMMIT_REQUESTS_IN_FLIGHT_RANGE: std::ops::RangeInclusive<u64> = 1..=64;
    /// What `--package-deadline-ms` may be: up to the network-wide longest.
    pub const PACKAGE_DEADLINE_RANGE: std::ops::RangeInclusive<u64> =
        1..=crate::interbank::retention::PACKAGE_DEADLINE_MS_MAX;
    /// What `--clock-skew-ms-max` may be (a skew past 10 minutes is a broken clock).
    pub const CLOCK_SKEW_RANGE: std::ops::RangeInclusive<u64> = 0..=600_000;
    /// `--dataserver-answer-ms-max`: long enough for a group commit on a slow disk, short
    /// enough that a hung data server frees what waits on it within minutes at the most.
    pub const DATASERVER_ANSWER_MS_RANGE: std::ops::RangeInclusive<u64> = 100..=120_000;
    /// What `--records-retain-ms` may be: up to a week.
    pub const RECORDS_RETAIN_RANGE: std::ops::RangeInclusive<u64> = 0..=7 * 24 * 3_600_000;
    /// `Retry-After` of a package refused for a full queue: about one turn of the ring.
    pub const SETTLEMENT_RETRY_AFTER_S: u64 = 1;
    /// Operations waiting for a batch; past it a caller waits for room (backpressure).
    pub const OPS_QUEUE_MAX: usize = 4_096;
    /// The worker's tick: shorter would spin a core on the data server.
    pub const TICK_MS_MIN: u64 = 10;
    pub const OPERATOR_KEY_LEN_MIN: usize = 8;
    /// What `--hashing-concurrent-max` may be: at least one, at most a core count's worth.
    pub const HASHING_CONCURRENT_RANGE: std::ops::RangeInclusive<usize> = 1..=256;
    /// Joint accounts one document may be a holder of (confirmed or not) at one bank: nobody can
    /// grow another person's list without bound by naming them.
    pub const JOINT_ACCOUNTS_PER_DOCUMENT_MAX: usize = 16;
    /// Password hashes waiting for their turn, per replica; past that a caller gets `503`.
    pub const HASHING_WAITERS_MAX: usize = 256;
    /// Sessions one account may have open at once; the oldest is ended for a new one.
    pub const SESSIONS_PER_ACCOUNT_MAX: usize = 16;
    /// Sessions a replica remembers having read, for payments stored without reading theirs
    /// again (`accounts::Vouches`): about a kilobyte each.
    pub const SESSION_VOUCHES_MAX: usize = 16_384;
    /// Consents one account may have (any status; revoked and expired ones are pruned first).
    pub const CONSENTS_PER_ACCOUNT_MAX: usize = 16;
    /// The furthest ahead a consent may expire, and its default.
    pub const CONSENT_DAYS_MAX: u64 = 365;
}

/// A flag's value inside its range, or the refusal naming it.
fn in_range<T: PartialOrd + std::fmt::Display>(
    flag: &str,
    value: T,
    range: &std::ops::RangeInclusive<T>,
) -> Result<(), String> {
    if range.contains(&value) {
        Ok(())
    } else {
        Err(format!("{flag} {value} is outside {}..={}", range.start(), range.end()))
    }
}

impl Settings {
    /// Refuses settings outside their limits, naming the flag: a value silently clamped would
    /// run a replica other than the one its operator configured.
    pub fn validate(&self) -> Result<(), String> {
        use limits::*;
        if self.operator_key.len() < OPERATOR_KEY_LEN_MIN {
            return Err(format!("the operator key must have at least {OPERATOR_KEY_LEN_MIN} characters"));
        }
        in_range("--batch-packages-max", self.batch_packages_max, &BATCH_PACKAGES_RANGE)?;
        in_range("--settlement-queue-max", self.settlement_queue_max, &SETTLEMENT_QUEUE_RANGE)?;
        in_range("--admission-memory-ms", self.admission_memory_ms, &ADMISSION_MEMORY_RANGE)?;
        in_range(
            "--commit-requests-in-flight-max",
            self.commit_requests_in_flight_max,
            &COMMIT_REQUESTS_IN_FLIGHT_RANGE,
        )?;
        in_range(
            "--pending-packages-per-account-max",
            self.pending_packages_per_account_max,
            &PENDING_PACKAGES_PER_ACCOUNT_RANGE,
        )?;
        in_range("--batch-accounts-max", self.batch_accounts_max, &BATCH_ACCOUNTS_RANGE)?;
        in_range("--package-deadline-ms", self.package_deadline_ms, &PACKAGE_DEADLINE_RANGE)?;
        in_range("--clock-skew-ms-max", self.clock_skew_ms_max, &CLOCK_SKEW_RANGE)?;
        in_range("--dataserver-answer-ms-max", self.dataserver_answer_ms_max, &DATASERVER_ANSWER_MS_RANGE)?;
        in_range("--records-retain-ms", self.records_retain_ms, &RECORDS_RETAIN_RANGE)?;
        in_range("--ops-batch-max", self.ops_batch_max, &OPS_BATCH_RANGE)?;
        in_range("--ops-batches-in-flight-max", self.ops_batches_in_flight_max, &OPS_BATCHES_IN_FLIGHT_RANGE)?;
        in_range("--hashing-concurrent-max", self.hashing_concurrent_max, &HASHING_CONCURRENT_RANGE)?;
        // The linger is spent holding the token under the ring lease: past it, the other
        // replica would take the token over from a replica that is only waiting.
        if self.round_linger_ms >= self.ring_lease_ms {
            return Err(format!(
                "--round-linger-ms {} must be below --ring-lease-ms {}",
                self.round_linger_ms, self.ring_lease_ms
            ));
        }
        if self.events_heartbeat_ms < TICK_MS_MIN {
            return Err(format!("--events-heartbeat-ms {} is below {TICK_MS_MIN}", self.events_heartbeat_ms));
        }
        if self.sweep_interval_ms < TICK_MS_MIN {
            return Err(format!("--sweep-interval-ms {} is below {TICK_MS_MIN}", self.sweep_interval_ms));
        }
        if self.tick_ms < TICK_MS_MIN {
            return Err(format!("--tick-ms {} is below {TICK_MS_MIN}", self.tick_ms));
        }
        Ok(())
    }
}
