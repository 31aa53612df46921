//! The InterBank data server: one per bank, the only component that writes balances.
//!
//! Shape (after tokio's mini-redis and zero-to-production): a thin `main`, and here an
//! [`Application`] built from [`Settings`] and run until stopped; a cloneable [`AppState`]
//! whose locks are never held across an `.await`; a background task for lease expiry; a
//! dedicated writer thread for group commit ([`writer`]).

pub mod config;
pub mod http;
pub mod lease;
pub mod locks;
pub mod metrics;
pub mod store;
pub mod wal;
pub mod writer;

use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::{Server, Service};
use actix_web::{App, HttpServer, web};
use shared::BusinessId;
use tokio::sync::mpsc;

pub use config::Settings;
use config::limits::{IDEMPOTENCY_PURGE_BATCH_MAX, IDEMPOTENCY_PURGE_INTERVAL_S, SWEEP_INTERVAL_MS};
use locks::LockTable;
use metrics::Metrics;
use store::{RedbStore, Store, StoreError};
use wal::Wal;
use writer::{Amounts, Job, Writer};

/// Applies the write-ahead log's batches that the store's last checkpoint does not hold, then
/// checkpoints. Returns the LSN the store is durable at.
/// Follows the journal into the account index, one durable step per `INDEX_STEP_INTERVAL_MS`
/// (the longer the step, the more of the index's pages each write shares), until the writer is
/// gone; then indexes what is left.
fn index_loop(store: &dyn Store, writer_alive: &std::sync::mpsc::Receiver<()>) {
    use config::limits::{INDEX_STEP_ENTRIES_MAX, INDEX_STEP_INTERVAL_MS};
    use std::sync::mpsc::RecvTimeoutError;
    loop {
        match store.index_step(INDEX_STEP_ENTRIES_MAX) {
            // A backlog: straight on.
            Ok(n) if n == INDEX_STEP_ENTRIES_MAX => continue,
            Ok(_) => {}
            Err(e) => tracing::error!(error = %e, "indexing the journal failed; its tail stays in memory meanwhile"),
        }
        let next = std::time::Instant::now() + Duration::from_millis(INDEX_STEP_INTERVAL_MS);
        loop {
            let left = next.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                break;
            }
            match writer_alive.recv_timeout(left) {
                Ok(()) | Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => {
                    while let Ok(n) = store.index_step(INDEX_STEP_ENTRIES_MAX) {
                        if n == 0 {
                            return;
                        }
                    }
                    return;
                }
            }
        }
    }
}

fn recover(store: &dyn Store, wal_dir: &std::path::Path) -> Result<u64, StoreError> {
    let applied = store.applied_lsn()?;
    let batches = wal::Wal::recover(wal_dir, applied)?;
    let mut last = applied;
    for b in &batches {
        let mut prepared = Vec::with_capacity(b.commits.len());
        for c in &b.commits {
            let business = BusinessId::new(c.business).map_err(|e| StoreError::Corrupt(e.to_string()))?;
            let mut fingerprint = [0u8; 32];
            hex::decode_to_slice(&c.fingerprint, &mut fingerprint).map_err(|e| StoreError::Corrupt(e.to_string()))?;
            prepared.push(store::PreparedCommit { business, request: c.request.clone(), fingerprint });
        }
        match store.write_batch(&prepared, b.at_ms, &b.at, b.lsn) {
            // Applied; the index catches up before the replay goes on.
            Ok(_) | Err(StoreError::IndexBehind(_)) => {}
            Err(e) => return Err(e),
        }
        last = b.lsn;
        if b.lsn % 64 == 0 {
            while store.index_step(config::limits::INDEX_STEP_ENTRIES_MAX)? > 0 {}
        }
    }
    store.checkpoint()?;
    if !batches.is_empty() {
        tracing::info!(batches = batches.len(), from = applied + 1, to = last, "replayed the write-ahead log");
    }
    Ok(last)
}

/// Logs to stderr, filtered by `RUST_LOG` (default `info`): the setup every server binary shares.
pub fn init_tracing() {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .init();
}

/// Commits queued for the writer before senders wait (back-pressure instead of unbounded memory).
pub const COMMIT_QUEUE_MAX: usize = 65_536;

/// What every request handler can reach. Cheap to share: everything inside is `Arc` or atomic.
pub struct AppState {
    pub settings: Settings,
    /// SHA-256 of each API key → the business it belongs to.
    pub keys: HashMap<[u8; 32], BusinessId>,
    pub store: Arc<dyn Store>,
    pub locks: Arc<LockTable>,
    pub amounts: Amounts,
    pub writer: mpsc::Sender<Job>,
    pub metrics: Arc<Metrics>,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState").field("epoch", &self.locks.epoch()).finish_non_exhaustive()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot open the store: {0}")]
    Store(#[from] StoreError),
    #[error("TLS: {0}")]
    Tls(String),
    #[error("cannot listen: {0}")]
    Io(#[from] std::io::Error),
    #[error("configuration: {0}")]
    Config(String),
}

pub struct Application {
    addr: SocketAddr,
    https: bool,
    role: Role,
}

/// A data server leads (serves the API) or stands by (answers `503 not_leader` while it waits
/// for the leader lease to lapse). Only the PostgreSQL backend has standbys: an embedded store
/// has one process by construction.
enum Role {
    Leader(Leader),
    Standby(Box<Standby>),
}

struct Leader {
    epoch: u64,
    server: Server,
    writer_tx: mpsc::Sender<Job>,
    writer: std::thread::JoinHandle<()>,
    indexer: Option<std::thread::JoinHandle<()>>,
    lease: Option<lease::Keeper>,
}

struct Standby {
    settings: Settings,
    keys: HashMap<[u8; 32], BusinessId>,
    listener: TcpListener,
    tls: Option<rustls::ServerConfig>,
    server: Server,
    lease: store::pg::Lease,
    leader: Arc<parking_lot::RwLock<Option<String>>>,
}

impl std::fmt::Debug for Application {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Application")
            .field("addr", &self.addr)
            .field("epoch", &self.boot_epoch())
            .finish_non_exhaustive()
    }
}

/// What every role needs: the keys, the listener (kept open across a takeover, so clients
/// never see the port closed) and its TLS configuration.
struct Edge {
    keys: HashMap<[u8; 32], BusinessId>,
    listener: TcpListener,
    addr: SocketAddr,
    tls: Option<rustls::ServerConfig>,
}

impl Edge {
    fn build(settings: &Settings) -> Result<Edge, StartError> {
        let mut keys = HashMap::new();
        for k in &settings.keys {
            if keys.insert(http::key_digest(&k.key), k.business).is_some() {
                return Err(StartError::Config("the same key is given twice".into()));
            }
        }
        if settings.lease_ms_default > settings.lease_ms_max
            || settings.lock_batch_max == 0
            || settings.commit_batch_max == 0
        {
            return Err(StartError::Config(
                "lease_ms_default must not exceed lease_ms_max; batch limits must be positive".into(),
            ));
        }
        let listener = TcpListener::bind(settings.listen)?;
        let addr = listener.local_addr()?;
        let tls = match (&settings.tls_cert, &settings.tls_key) {
            (Some(c), Some(k)) => Some(pki::https_server_from_files(c, k).map_err(|e| StartError::Tls(e.to_string()))?),
            _ => None,
        };
        Ok(Edge { keys, listener, addr, tls })
    }

    fn url(&self, settings: &Settings) -> String {
        settings.advertise_url.clone().unwrap_or_else(|| {
            let scheme = if self.tls.is_some() { "https" } else { "http" };
            format!("{scheme}://{}", self.addr)
        })
    }
}

impl Application {
    /// Opens the store and starts serving. With the embedded store: recovers, bumps the boot
    /// epoch durably, loads the amounts, starts the writer. With a database: migrates it, then
    /// leads if the leader lease is free (its epoch is the boot epoch) or else stands by. Must
    /// run inside the actix system (it spawns the expiry tasks).
    pub async fn build(settings: Settings) -> Result<Application, StartError> {
        let edge = Edge::build(&settings)?;
        let (addr, https) = (edge.addr, edge.tls.is_some());
        let role = match (&settings.database_url, &settings.data_dir) {
            (Some(_), _) => Self::build_on_database(settings, edge).await?,
            (None, Some(dir)) => {
                let store: Arc<dyn Store> = Arc::new(RedbStore::open(dir, settings.cache_bytes)?);
                let wal_dir = dir.join("wal");
                let applied = recover(store.as_ref(), &wal_dir)?;
                // Statements read the index and the tail the writer fills: what was written
                // before this start is in neither until indexed, so index it before serving.
                while store.index_step(config::limits::INDEX_STEP_ENTRIES_MAX)? > 0 {}
                let wal = Wal::start(&wal_dir, applied)?;
                let epoch = store.boot()?;
                let amounts = store.load_amounts()?;
                Role::Leader(serve(settings, edge, store, amounts, Some((wal, applied)), epoch, None)?)
            }
            (None, None) => return Err(StartError::Config("give --data-dir or --database-url".into())),
        };
        Ok(Application { addr, https, role })
    }

    async fn build_on_database(settings: Settings, edge: Edge) -> Result<Role, StartError> {
        use config::limits::{LEADER_LEASE_MS_MAX, LEADER_LEASE_MS_MIN};
        if !(LEADER_LEASE_MS_MIN..=LEADER_LEASE_MS_MAX).contains(&settings.leader_lease_ms) {
            return Err(StartError::Config(format!(
                "--leader-lease-ms must be within {LEADER_LEASE_MS_MIN}..={LEADER_LEASE_MS_MAX}"
            )));
        }
        if settings.database_pool_max == 0 {
            return Err(StartError::Config("--database-pool-max must be positive".into()));
        }
        let url = settings.database_url.as_ref().map(|u| u.expose().to_string()).unwrap_or_default();
        let (holder, address, lease_ms) =
            (format!("{}-{}", std::process::id(), uuid::Uuid::new_v4()), edge.url(&settings), settings.leader_lease_ms);
        // The database client blocks (and owns a runtime of its own): off the async threads.
        let (lease, poll) = blocking(move || {
            store::pg::migrate(&mut store::pg::connect(&url)?)?;
            let mut lease = store::pg::Lease::new(&url, holder, address, lease_ms)?;
            let poll = lease.poll()?;
            Ok((lease, poll))
        })
        .await?;
        let leader = match poll {
            store::pg::LeasePoll::Acquired(epoch) => {
                return Ok(Role::Leader(lead_on_database(settings, edge, lease, epoch).await?));
            }
            store::pg::LeasePoll::Held { leader } => leader,
        };
        let leader = Arc::new(parking_lot::RwLock::new(leader));
        let listener = edge.listener.try_clone()?;
        let server = standby_server(&edge, leader.clone())?;
        Ok(Role::Standby(Box::new(Standby {
            settings,
            keys: edge.keys,
            listener,
            tls: edge.tls,
            server,
            lease,
            leader,
        })))
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Whether it serves HTTPS (`--tls-cert`, `--tls-key`).
    pub fn serves_https(&self) -> bool {
        self.https
    }

    /// The epoch it leads at; `None` while it stands by.
    pub fn boot_epoch(&self) -> Option<u64> {
        match &self.role {
            Role::Leader(l) => Some(l.epoch),
            Role::Standby(_) => None,
        }
    }

    /// Serves until SIGTERM/SIGINT (actix drains in-flight requests), then lets the writer
    /// finish every queued commit before returning. A standby waits for the leader lease and,
    /// once it has it, leads on the same listener.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        match self.role {
            Role::Leader(l) => l.run().await,
            Role::Standby(s) => s.run().await,
        }
    }
}

impl Leader {
    async fn run(self) -> std::io::Result<()> {
        let served = self.server.await;
        let _ = self.writer_tx.send(Job::Stop).await;
        let (writer, indexer, lease, epoch) = (self.writer, self.indexer, self.lease, self.epoch);
        // The indexer ends once the writer is gone, after indexing what it wrote; the lease is
        // given up only after the last write, so a standby takes over at once and safely.
        let _ = tokio::task::spawn_blocking(move || {
            let _ = writer.join();
            if let Some(i) = indexer {
                let _ = i.join();
            }
            if let Some(k) = lease {
                k.resign(epoch);
            }
        })
        .await;
        served
    }
}

impl Standby {
    async fn run(self: Box<Self>) -> std::io::Result<()> {
        use config::limits::STANDBY_POLL_MS;
        let Standby { settings, keys, listener, tls, mut server, lease, leader } = *self;
        let handle = server.handle();
        let mut lease = Some(lease);
        loop {
            tokio::select! {
                served = &mut server => {
                    if let Some(l) = lease.take() {
                        store::pg::drop_off_runtime(l);
                    }
                    return served;
                }
                () = tokio::time::sleep(Duration::from_millis(STANDBY_POLL_MS)) => {}
            }
            let Some(mut l) = lease.take() else { return Ok(()) };
            let (l, poll) = tokio::task::spawn_blocking(move || {
                let poll = l.poll();
                (l, poll)
            })
            .await
            .map_err(std::io::Error::other)?;
            match poll {
                Ok(store::pg::LeasePoll::Acquired(epoch)) => {
                    // Stop answering as a standby, then lead on the same listening socket. At
                    // once, not gracefully: a graceful stop waits out every client's idle
                    // keep-alive connection (up to the shutdown timeout, which cost the failover
                    // most of a second), and all a standby has in flight is refusals that served
                    // nothing. (The server future must be polled for its stop to complete.)
                    let _ = tokio::join!(handle.stop(false), &mut server);
                    let addr = listener.local_addr()?;
                    let edge = Edge { keys, listener, addr, tls };
                    let leader = lead_on_database(settings, edge, l, epoch).await.map_err(std::io::Error::other)?;
                    println!("dataserver leader boot_epoch={epoch}");
                    use std::io::Write;
                    let _ = std::io::stdout().flush();
                    tracing::info!(epoch, "took the leader lease");
                    return leader.run().await;
                }
                Ok(store::pg::LeasePoll::Held { leader: at }) => {
                    if at.is_some() {
                        *leader.write() = at;
                    }
                    lease = Some(l);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot reach the database to ask for the leader lease");
                    lease = Some(l);
                }
            }
        }
    }
}

/// Leads on the database with the lease of `epoch`, just taken: the lease is kept from this
/// moment (loading the state must not let it lapse), then the store opens and serving starts.
async fn lead_on_database(
    settings: Settings,
    edge: Edge,
    lease: store::pg::Lease,
    epoch: u64,
) -> Result<Leader, StartError> {
    let url = settings.database_url.as_ref().map(|u| u.expose().to_string()).unwrap_or_default();
    let pool_max = settings.database_pool_max;
    let (keeper, store, amounts) = blocking(move || {
        let keeper = lease::Keeper::start(lease, epoch)?;
        let store = store::pg::PgStore::open(&url, epoch, pool_max)?;
        let amounts = store.load_amounts()?;
        Ok((keeper, store, amounts))
    })
    .await?;
    serve(settings, edge, Arc::new(store), amounts, None, epoch, Some(keeper))
}

/// Runs `f` on the blocking pool.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StartError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| StartError::Config(format!("start-up task failed: {e}")))?
        .map_err(Into::into)
}

/// A standby's whole API: every request is answered `503 not_leader`; the leader's address is
/// named only to a caller presenting one of the bank's keys (a stranger learns nothing of the
/// bank's inside).
fn standby_server(edge: &Edge, leader: Arc<parking_lot::RwLock<Option<String>>>) -> Result<Server, StartError> {
    let keys = Arc::new(edge.keys.clone());
    let server = HttpServer::new(move || {
        let (leader, keys) = (leader.clone(), keys.clone());
        App::new().default_service(web::to(move |req: actix_web::HttpRequest| {
            let at = http::known_caller(req.headers(), &keys).and_then(|_| leader.read().clone());
            async move { http::not_leader(at) }
        }))
    })
    .workers(1)
    .shutdown_timeout(1);
    let listener = edge.listener.try_clone()?;
    Ok(match &edge.tls {
        Some(cfg) => server.listen_rustls_0_23(listener, cfg.clone())?,
        None => server.listen(listener)?,
    }
    .run())
}

/// Starts the writer, the background tasks and the HTTP server of a leader at `epoch`.
/// `wal`: the write-ahead log and the LSN the store is durable at (embedded store only).
fn serve(
    settings: Settings,
    edge: Edge,
    store: Arc<dyn Store>,
    amounts: HashMap<shared::AccountId, shared::Money>,
    wal: Option<(Wal, u64)>,
    epoch: u64,
    lease: Option<lease::Keeper>,
) -> Result<Leader, StartError> {
    let Edge { keys, listener, tls, .. } = edge;
    let amounts: Amounts = Arc::new(parking_lot::RwLock::new(amounts));
    let locks = Arc::new(LockTable::new(epoch, settings.locks_per_business_max));
    let metrics = Arc::new(Metrics::default());

    let (writer_tx, writer_rx) = mpsc::channel(COMMIT_QUEUE_MAX);
    // The writer holds the sending end: the indexer's last step follows the writer's last write.
    let (indexer_alive, writer_alive) = std::sync::mpsc::sync_channel::<()>(1);
    let (wal, applied) = match wal {
        Some((w, applied)) => (Some(w), applied),
        None => (None, 0),
    };
    // Only a store with an index of its own to follow needs the indexer (not the database).
    let indexer = if wal.is_some() {
        let indexed_store = store.clone();
        Some(std::thread::Builder::new().name("account-index".into()).spawn(move || {
            index_loop(indexed_store.as_ref(), &writer_alive);
        })?)
    } else {
        None
    };
    let w = Writer {
        store: store.clone(),
        locks: locks.clone(),
        amounts: amounts.clone(),
        metrics: metrics.clone(),
        batch_max: settings.commit_batch_max,
        wal,
        next_lsn: applied + 1,
        checkpoint_interval: Duration::from_millis(settings.checkpoint_interval_ms),
        wal_segment_bytes_max: settings.wal_segment_bytes_max,
        last_checkpoint: std::time::Instant::now(),
        purge_cursor: None,
        checkpointing: None,
        deferred_purge: None,
        _indexer_alive: indexer_alive,
    };
    let writer = std::thread::Builder::new().name("group-commit".into()).spawn(move || w.run(writer_rx))?;

    // Lease expiry: frees what dead holders left and wakes their waiters.
    let (l, m) = (locks.clone(), metrics.clone());
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(SWEEP_INTERVAL_MS));
        loop {
            tick.tick().await;
            let n = l.sweep();
            m.leases_expired_total.inc_by(n as u64);
        }
    });
    // Idempotency records are kept for a bounded time, purged in bounded passes.
    let (tx, ttl_ms) = (writer_tx.clone(), settings.idempotency_ttl_s.saturating_mul(1000));
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(IDEMPOTENCY_PURGE_INTERVAL_S));
        loop {
            tick.tick().await;
            let now =
                std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
            let job = Job::PurgeIdempotency { before_ms: now.saturating_sub(ttl_ms), max: IDEMPOTENCY_PURGE_BATCH_MAX };
            if tx.send(job).await.is_err() {
                return;
            }
        }
    });

    let workers = settings.workers.unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()));
    let connections_per_worker = settings.connections_max.div_ceil(workers).max(1);
    let body_max = settings.body_bytes_max;
    let state = web::Data::new(AppState {
        settings,
        keys,
        store,
        locks,
        amounts,
        writer: writer_tx.clone(),
        metrics: metrics.clone(),
    });

    let server = HttpServer::new(move || {
        let m = metrics.clone();
        App::new()
            .app_data(state.clone())
            .app_data(web::JsonConfig::default().limit(body_max).error_handler(http::json_error))
            .app_data(web::PayloadConfig::default().limit(body_max))
            .app_data(web::QueryConfig::default().error_handler(http::query_error))
            .app_data(web::PathConfig::default().error_handler(http::path_error))
            .wrap_fn(move |req, srv| {
                let fut = srv.call(req);
                let m = m.clone();
                async move {
                    let res = fut.await?;
                    m.requests_total.inc();
                    match res.status().as_u16() {
                        400..=499 => {
                            m.responses_4xx_total.inc();
                        }
                        500..=599 => {
                            m.responses_5xx_total.inc();
                        }
                        _ => {}
                    }
                    Ok(res)
                }
            })
            .configure(http::routes)
            .default_service(web::to(http::not_found))
    })
    .workers(workers)
    .max_connections(connections_per_worker)
    .shutdown_timeout(5);
    let server = match tls {
        Some(cfg) => server.listen_rustls_0_23(listener, cfg)?,
        None => server.listen(listener)?,
    }
    .run();

    Ok(Leader { epoch, server, writer_tx, writer, indexer, lease })
}
