//! An InterBank business server: one stateless replica of a bank, over the bank's data server.
//!
//! Any replica serves any request and keeps nothing of its own: state lives in the data server,
//! concurrency goes through its lock leases, and every change is one of its atomic commits, so
//! killing a replica at any instant loses nothing and leaves nothing half done.

pub mod accounts;
pub mod auth;
pub mod coalesce;
pub mod config;
pub mod consents;
pub mod error;
pub mod events;
pub mod interbank;
pub mod ledger;
pub mod metrics;
pub mod model;
pub mod openapi;
pub mod payments;
pub mod routes;
pub mod sweep;
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
    pub feed: Arc<events::Feed>,
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
    interbank_addr: Option<SocketAddr>,
    tls: bool,
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
        let ds = data_client(&settings)?;
        let metrics = Arc::new(metrics::Metrics::default());
        let accounts = accounts::Accounts {
            ds: ds.clone(),
            bank: settings.bank_id,
            session_ttl_ms: settings.session_ttl_s.saturating_mul(1000),
            lock_wait_ms: settings.lock_wait_ms,
            lease_ms: settings.lease_ms,
            hashing: Arc::new(accounts::Hashing::new(
                settings.hashing_concurrent_max,
                config::limits::HASHING_WAITERS_MAX,
            )),
            vouches: accounts::Vouches::default(),
        };
        let mut ledger = Ledger {
            metrics: metrics.clone(),
            ds,
            lock_wait_ms: settings.lock_wait_ms,
            lease_ms: settings.lease_ms,
            attempts_max: settings.attempts_max.max(1),
            batcher: None,
        };
        if settings.ops_batch_max > 0 {
            ledger.batcher = Some(ledger::Batcher::start(
                ledger.clone(),
                settings.ops_batch_max,
                settings.ops_batches_in_flight_max,
                config::limits::OPS_QUEUE_MAX,
            ));
        }
        let network = match &settings.network {
            Some(path) => interbank::Network::load(path).map_err(StartError::Config)?,
            None => interbank::Network::alone(settings.bank_id),
        };
        if network.bank(settings.bank_id).is_none() {
            return Err(StartError::Config(format!("bank {} is not in the network file", settings.bank_id)));
        }
        let identity = match (&settings.identity_cert, &settings.identity_key) {
            (Some(c), Some(k)) => Some(pki::Identity::load(c, k).map_err(|e| StartError::Config(e.to_string()))?),
            (None, None) => None,
            _ => return Err(StartError::Config("--identity-cert and --identity-key go together".into())),
        };
        let pins = network.pins(settings.bank_id).map_err(StartError::Config)?;
        // Between banks, mutual TLS only: the listener takes nobody without a certificate the
        // consortium's CA issued, and the Peer extractor takes only the bank it belongs to.
        let interbank_tls = match (network.banks.len() > 1, settings.interbank_listen, &identity) {
            (false, _, _) => None,
            (true, Some(addr), Some(id)) => Some((
                TcpListener::bind(addr)?,
                pki::server_config(id, &network.ca).map_err(|e| StartError::Config(e.to_string()))?,
            )),
            (true, _, _) => {
                return Err(StartError::Config(
                    "a network of several banks needs --interbank-listen, --identity-cert and --identity-key".into(),
                ));
            }
        };
        let customer_tls = match (&settings.tls_cert, &settings.tls_key) {
            (Some(c), Some(k)) => {
                Some(pki::https_server_from_files(c, k).map_err(|e| StartError::Config(e.to_string()))?)
            }
            _ => None,
        };
        let peers =
            interbank::Peers::new(Arc::new(network), settings.bank_id, settings.peer_timeout_ms, identity.as_ref())
                .map_err(StartError::Config)?;
        let interbank = interbank::Interbank {
            me: settings.bank_id,
            business: settings.business_id,
            ds: ledger.ds.clone(),
            commits: coalesce::Commits::new(
                ledger.ds.clone(),
                usize::try_from(settings.commit_requests_in_flight_max).expect("checked: at most 64"),
            ),
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
                round_linger_ms: settings.round_linger_ms,
                batch_accounts_max: settings.batch_accounts_max,
                settlement_queue_max: settings.settlement_queue_max,
                admission_memory_ms: settings.admission_memory_ms,
                pending_per_account_max: settings.pending_packages_per_account_max,
                retention: interbank::retention::Retention {
                    clock_skew_ms_max: settings.clock_skew_ms_max,
                    retain_ms: settings.records_retain_ms,
                },
            },
            lock_wait_ms: settings.lock_wait_ms,
            lease_ms: settings.lease_ms,
            metrics: metrics.clone(),
            admission: Default::default(),
            wake: Arc::new(tokio::sync::Notify::new()),
        };
        // Expired sessions, lapsed throttle windows and old idempotency records go.
        tokio::spawn(sweep::run(
            ledger.ds.clone(),
            sweep::Ttls {
                throttle_window_ms: settings
                    .login_window_ms
                    .max(settings.signup_window_ms)
                    .max(settings.key_lookup_window_ms),
                idempotency_ms: settings.idempotency_ttl_s.saturating_mul(1000),
            },
            std::time::Duration::from_millis(settings.sweep_interval_ms),
        ));
        // Server push: the journal's tail, read while any stream listens.
        let feed = Arc::new(events::Feed::new(metrics.event_streams.clone(), settings.events_heartbeat_ms));
        tokio::spawn(events::tail(ledger.ds.clone(), feed.clone()));
        if interbank.has_peers() {
            // The replica's share of the interbank work: the token, settlement, recovery.
            tokio::spawn(interbank::worker::run(interbank.clone()));
            tokio::spawn(interbank::coordinator::recover(interbank.clone()));
        }
        let listener = TcpListener::bind(settings.listen)?;
        let addr = listener.local_addr()?;
        let interbank_addr = match &interbank_tls {
            Some((l, _)) => Some(l.local_addr()?),
            None => None,
        };
        let workers = settings.workers.unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()));
        let body_max = settings.body_bytes_max;
        let state = web::Data::new(AppState {
            throttles: throttle::Throttles::new(&settings, ledger.ds.clone()),
            operator_key_digest: auth::digest(&settings.operator_key),
            settings,
            ledger,
            accounts,
            interbank,
            metrics: metrics.clone(),
            feed,
        });
        let origins = state.settings.cors_origins.clone();
        let state_tls = state.settings.tls_cert.is_some();
        let server = HttpServer::new(move || {
            let m = metrics.clone();
            // The browser app is served from another origin (trunk); only the configured
            // origins may call, and only with the methods and headers the API uses.
            let cors = origins
                .iter()
                .fold(actix_cors::Cors::default(), |c, o| c.allowed_origin(o))
                .allowed_methods(["GET", "POST", "PUT", "DELETE"])
                .allowed_headers(["authorization", "content-type", "idempotency-key", "last-event-id"])
                // The app tells a locked-out customer until when (a time, not "292 s").
                .expose_headers(["retry-after"])
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
        .on_connect(move |conn, ext| {
            // Which bank this connection is, by the certificate it presented (the CA verified the
            // chain during the handshake; the network file says whose certificate it is).
            type Tls = actix_tls::accept::rustls_0_23::TlsStream<actix_web::rt::net::TcpStream>;
            if let Some(tls) = conn.downcast_ref::<Tls>()
                && let Some(leaf) = tls.get_ref().1.peer_certificates().and_then(|c| c.first())
                && let Some(bank) = pins.bank_of(leaf.as_ref())
            {
                ext.insert(auth::PeerBank(bank));
            }
        })
        .workers(workers)
        .shutdown_timeout(10);
        let server = match customer_tls {
            Some(cfg) => server.listen_rustls_0_23(listener, cfg)?,
            None => server.listen(listener)?,
        };
        let server = match interbank_tls {
            Some((l, cfg)) => server.listen_rustls_0_23(l, cfg)?,
            None => server,
        }
        .run();
        Ok(Application { addr, interbank_addr, tls: state_tls, server })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The mutual-TLS listener for peer banks, when the network has any.
    pub fn interbank_addr(&self) -> Option<SocketAddr> {
        self.interbank_addr
    }

    /// Whether the customer API is served over HTTPS.
    pub fn serves_https(&self) -> bool {
        self.tls
    }

    /// Serves until SIGTERM/SIGINT; actix then drains in-flight requests before returning.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.server.await
    }
}

/// The data server's client: over HTTPS trusting `--dataserver-ca` when it is given.
fn data_client(settings: &Settings) -> Result<DataClient, StartError> {
    let config = |e: String| StartError::Config(e);
    let tls = match &settings.dataserver_ca {
        Some(ca) => {
            let pem = std::fs::read_to_string(ca).map_err(|e| config(format!("{}: {e}", ca.display())))?;
            Some(pki::trusting_client_config(&pem).map_err(|e| config(e.to_string()))?)
        }
        None => None,
    };
    // A pool per thread: the HTTP workers' requests go out on connections their own runtime
    // drives, not the ring task's (see `DataClient::per_thread`).
    let make = move || {
        let http = pki::http().pool_max_idle_per_host(1024).tcp_nodelay(true);
        match &tls {
            Some(tls) => http.tls_backend_preconfigured(tls.clone()),
            None => http,
        }
        .build()
    };
    DataClient::per_thread(make, &settings.dataserver, settings.business_id, settings.dataserver_key.clone())
        .map(|client| client.with_answer_ms_max(settings.dataserver_answer_ms_max))
        .map_err(|e| config(e.to_string()))
}

/// Logs to stderr, filtered by `RUST_LOG` (default `info`).
pub fn init_tracing() {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .init();
}

#[cfg(test)]
mod tests {
    use super::address_key;

    #[test]
    fn ipv6_clients_are_counted_by_their_64_block() {
        let ip = |s: &str| s.parse::<std::net::IpAddr>().expect("an address");
        assert_eq!(address_key(ip("2001:db8:1:2:aaaa::1")), address_key(ip("2001:db8:1:2:ffff:1:2:3")));
        assert_ne!(address_key(ip("2001:db8:1:2::1")), address_key(ip("2001:db8:1:3::1")));
        assert_eq!(address_key(ip("::ffff:10.0.0.1")), "10.0.0.1", "a mapped IPv4 client is that IPv4 client");
        assert_eq!(address_key(ip("10.0.0.1")), "10.0.0.1");
    }
}
