//! An InterBank business server: one stateless replica of a bank, over the bank's data server.
//!
//! Any replica serves any request and keeps nothing of its own: state lives in the data server,
//! concurrency goes through its lock leases, and every change is one of its atomic commits, so
//! killing a replica at any instant loses nothing and leaves nothing half done.

pub mod accounts;
pub mod auth;
pub mod config;
pub mod consents;
pub mod error;
pub mod interbank;
pub mod ledger;
pub mod metrics;
pub mod model;
pub mod openapi;
pub mod payments;
pub mod routes;
pub mod throttle;

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;

use actix_web::dev::{Server, Service};
use actix_web::{App, HttpResponse, HttpServer, web};
use dataserver_api::client::DataClient;

pub use config::Settings;
use ledger::Ledger;

pub struct AppState {
    pub settings: Settings,
    pub operator_key_digest: [u8; 32],
    pub ledger: Ledger,
    pub accounts: accounts::Accounts,
    pub interbank: interbank::Interbank,
    pub metrics: Arc<metrics::Metrics>,
    pub throttles: throttle::Throttles,
}

/// The caller's address, for per-address limits: the TCP peer, never a header a client could
/// forge. An IPv6 client is counted by its /64, the smallest block one subscriber is given:
/// counted per address, one host could take 2^64 budgets.
pub fn client_address(req: &actix_web::HttpRequest) -> String {
    req.peer_addr().map_or_else(|| "unknown".into(), |a| address_key(a.ip()))
}

/// [`client_address`]'s key for an IP address.
pub fn address_key(ip: std::net::IpAddr) -> String {
    match ip {
        std::net::IpAddr::V4(v4) => v4.to_string(),
        std::net::IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = v6.segments();
                format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        },
    }
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState").field("settings", &self.settings).finish_non_exhaustive()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot listen: {0}")]
    Io(#[from] std::io::Error),
    #[error("configuration: {0}")]
    Config(String),
}

pub struct Application {
    addr: SocketAddr,
    server: Server,
}

impl std::fmt::Debug for Application {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Application").field("addr", &self.addr).finish_non_exhaustive()
    }
}

#[utoipa::path(get, path = "/health", tag = "meta", responses((status = 200, description = "this replica and its bank")))]
pub async fn health(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({
        "status": "ok",
        "bank_id": state.settings.bank_id,
        "business_id": state.settings.business_id,
    }))
}

#[utoipa::path(get, path = "/metrics", tag = "meta", security(("operator" = [])), responses((status = 200, description = "Prometheus text format")))]
pub async fn metrics_route(_: auth::Operator, state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok().content_type("text/plain; version=0.0.4").body(state.metrics.render())
}

impl Application {
    pub async fn build(settings: Settings) -> Result<Application, StartError> {
        settings.validate().map_err(StartError::Config)?;
        let ds = DataClient::new(&settings.dataserver, settings.business_id, settings.dataserver_key.clone())
            .map_err(|e| StartError::Config(e.to_string()))?;
        let metrics = Arc::new(metrics::Metrics::default());
        let accounts = accounts::Accounts {
            ds: ds.clone(),
            bank: settings.bank_id,
            session_ttl_ms: settings.session_ttl_s.saturating_mul(1000),
            lock_wait_ms: settings.lock_wait_ms,
            lease_ms: settings.lease_ms,
            hashing: Arc::new(tokio::sync::Semaphore::new(settings.hashing_concurrent_max)),
        };
        let ledger = Ledger {
            metrics: metrics.clone(),
            ds,
            lock_wait_ms: settings.lock_wait_ms,
            lease_ms: settings.lease_ms,
            attempts_max: settings.attempts_max.max(1),
        };
        let network = match &settings.network {
            Some(path) => interbank::Network::load(path).map_err(StartError::Config)?,
            None => interbank::Network::alone(settings.bank_id),
        };
        if network.bank(settings.bank_id).is_none() {
            return Err(StartError::Config(format!("bank {} is not in the network file", settings.bank_id)));
        }
        let peers = interbank::Peers::new(Arc::new(network), settings.bank_id, settings.peer_timeout_ms)
            .map_err(|e| StartError::Config(e.to_string()))?;
        let interbank = interbank::Interbank {
            me: settings.bank_id,
            business: settings.business_id,
            ds: ledger.ds.clone(),
            peers,
            limits: interbank::Limits {
                token_lost_ms: settings.token_lost_ms,
                hold_ms_max: settings.hold_ms_max,
                idle_hold_ms: settings.idle_hold_ms,
                ring_lease_ms: settings.ring_lease_ms,
                tick_ms: settings.tick_ms,
                in_doubt_ms: settings.in_doubt_ms,
                package_deadline_ms: settings.package_deadline_ms,
                batch_packages_max: settings.batch_packages_max,
                batch_accounts_max: settings.batch_accounts_max,
            },
            lock_wait_ms: settings.lock_wait_ms,
            lease_ms: settings.lease_ms,
            wake: Arc::new(tokio::sync::Notify::new()),
        };
        if interbank.has_peers() {
            // The replica's share of the interbank work: the token, settlement, recovery.
            tokio::spawn(interbank::worker::run(interbank.clone()));
        }
        let listener = TcpListener::bind(settings.listen)?;
        let addr = listener.local_addr()?;
        let workers = settings.workers.unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()));
        let body_max = settings.body_bytes_max;
        let state = web::Data::new(AppState {
            throttles: throttle::Throttles::new(&settings),
            operator_key_digest: auth::digest(&settings.operator_key),
            settings,
            ledger,
            accounts,
            interbank,
            metrics: metrics.clone(),
        });
        let origins = state.settings.cors_origins.clone();
        let server = HttpServer::new(move || {
            let m = metrics.clone();
            // The browser app is served from another origin (trunk); only the configured
            // origins may call, and only with the methods and headers the API uses.
            let cors = origins
                .iter()
                .fold(actix_cors::Cors::default(), |c, o| c.allowed_origin(o))
                .allowed_methods(["GET", "POST", "PUT", "DELETE"])
                .allowed_headers(["authorization", "content-type", "idempotency-key"])
                .max_age(600);
            App::new()
                .app_data(state.clone())
                .wrap_fn(move |req, srv| {
                    let started = std::time::Instant::now();
                    let fut = srv.call(req);
                    let m = m.clone();
                    async move {
                        let res = fut.await?;
                        m.requests_total.inc();
                        m.request_seconds.observe(started.elapsed().as_secs_f64());
                        match res.status().as_u16() {
                            400..=499 => m.responses_4xx_total.inc(),
                            500..=599 => m.responses_5xx_total.inc(),
                            _ => 0,
                        };
                        Ok(res)
                    }
                })
                .wrap(cors)
                .app_data(web::JsonConfig::default().limit(body_max).error_handler(error::json_error))
                .app_data(web::PayloadConfig::default().limit(body_max))
                .app_data(web::QueryConfig::default().error_handler(error::query_error))
                .app_data(web::PathConfig::default().error_handler(error::path_error))
                .configure(routes::configure)
                .default_service(web::to(error::not_found))
        })
        .workers(workers)
        .shutdown_timeout(10)
        .listen(listener)?
        .run();
        Ok(Application { addr, server })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Serves until SIGTERM/SIGINT; actix then drains in-flight requests before returning.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.server.await
    }
}

/// Logs to stderr, filtered by `RUST_LOG` (default `info`).
pub fn init_tracing() {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .init();
}
