//! The InterBank data server: one per bank, the only component that writes balances.
//!
//! Shape (after tokio's mini-redis and zero-to-production): a thin `main`, and here an
//! [`Application`] built from [`Settings`] and run until stopped; a cloneable [`AppState`]
//! whose locks are never held across an `.await`; a background task for lease expiry; a
//! dedicated writer thread for group commit ([`writer`]).

pub mod config;
pub mod http;
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
    epoch: u64,
    server: Server,
    writer_tx: mpsc::Sender<Job>,
    writer: std::thread::JoinHandle<()>,
    indexer: std::thread::JoinHandle<()>,
}

impl std::fmt::Debug for Application {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Application").field("addr", &self.addr).field("epoch", &self.epoch).finish_non_exhaustive()
    }
}

impl Application {
    /// Opens the store, bumps the boot epoch durably, loads the amounts, starts the writer and
    /// binds the listener. Must run inside the actix system (it spawns the expiry tasks).
    pub async fn build(settings: Settings) -> Result<Application, StartError> {
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
        let store: Arc<dyn Store> = Arc::new(RedbStore::open(&settings.data_dir, settings.cache_bytes)?);
        let wal_dir = settings.data_dir.join("wal");
        let applied = recover(store.as_ref(), &wal_dir)?;
        // Statements read the index and the tail the writer fills: what was written before this
        // start is in neither until indexed, so index it before serving.
        while store.index_step(config::limits::INDEX_STEP_ENTRIES_MAX)? > 0 {}
        let wal = Wal::start(&wal_dir, applied)?;
        let epoch = store.boot()?;
        let amounts: Amounts = Arc::new(parking_lot::RwLock::new(store.load_amounts()?));
        let locks = Arc::new(LockTable::new(epoch, settings.locks_per_business_max));
        let metrics = Arc::new(Metrics::default());

        let (writer_tx, writer_rx) = mpsc::channel(COMMIT_QUEUE_MAX);
        // The writer holds the sending end: the indexer's last step follows the writer's last write.
        let (indexer_alive, writer_alive) = std::sync::mpsc::sync_channel::<()>(1);
        let indexed_store = store.clone();
        let indexer = std::thread::Builder::new().name("account-index".into()).spawn(move || {
            index_loop(indexed_store.as_ref(), &writer_alive);
        })?;
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
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_millis() as u64);
                let job =
                    Job::PurgeIdempotency { before_ms: now.saturating_sub(ttl_ms), max: IDEMPOTENCY_PURGE_BATCH_MAX };
                if tx.send(job).await.is_err() {
                    return;
                }
            }
        });

        let listener = TcpListener::bind(settings.listen)?;
        let addr = listener.local_addr()?;
        let tls = match (&settings.tls_cert, &settings.tls_key) {
            (Some(c), Some(k)) => Some(pki::https_server_from_files(c, k).map_err(|e| StartError::Tls(e.to_string()))?),
            _ => None,
        };
        let https = tls.is_some();
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

        Ok(Application { addr, https, epoch, server, writer_tx, writer, indexer })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Whether it serves HTTPS (`--tls-cert`, `--tls-key`).
    pub fn serves_https(&self) -> bool {
        self.https
    }

    pub fn boot_epoch(&self) -> u64 {
        self.epoch
    }

    /// Serves until SIGTERM/SIGINT (actix drains in-flight requests), then lets the writer
    /// finish every queued commit before returning.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let served = self.server.await;
        let _ = self.writer_tx.send(Job::Stop).await;
        let (writer, indexer) = (self.writer, self.indexer);
        // The indexer ends once the writer is gone, after indexing what it wrote.
        let _ = tokio::task::spawn_blocking(move || (writer.join(), indexer.join())).await;
        served
    }
}
