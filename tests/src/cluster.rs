//! A network of real processes on this machine: per bank, one data server and its business
//! replicas, joined by a network file. `interbank up` and the integration tests both start
//! networks through this one harness, and fault injection kills and restarts its processes.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};

use crate::process::{DataServerProcess, LogTo, SpawnOptions, listening_addr, spawn, spawn_command};
use shared::BusinessId;

use crate::Error;

/// The default prefix of every secret of a local network: marks them as DEVELOPMENT SECRETS.
pub const DEV_SECRET_PREFIX: &str = "dev-only-insecure-";

/// Business server `b`'s key at its data server (`b` = 10 n + r for replica r of bank n).
pub fn dev_key(prefix: &str, business: BusinessId) -> String {
    format!("{prefix}key-{business}")
}

/// A local network's PKI: the CA (made by the launcher, as a consortium's would be) and each
/// bank's identity, written under the network's folder: `ca.pem` (public), and per bank
/// `bank{n}/identity/cert.pem` (public) and `key.pem` (0600, in a 0700 folder).
#[derive(Debug, Clone)]
pub struct Pki {
    pub ca_pem: String,
    /// Per bank id: its certificate and key in PEM, and where they are written.
    pub banks: std::collections::BTreeMap<u32, BankIdentity>,
}

#[derive(Debug, Clone)]
pub struct BankIdentity {
    pub issued: pki::issue::Issued,
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
}

impl Pki {
    /// Makes the CA and one certificate per bank (valid for 127.0.0.1 and localhost).
    pub fn create(data: &Path, banks: u32) -> Result<Pki, Error> {
        let pki_err = |e: pki::Error| Error::Spec(format!("the local PKI: {e}"));
        let ca = pki::issue::Ca::new("InterBank local consortium CA").map_err(pki_err)?;
        pki::issue::set_mode(data, 0o700).map_err(|e| Error::file(data, e))?;
        let ca_file = data.join("ca.pem");
        std::fs::write(&ca_file, ca.cert_pem()).map_err(|e| Error::file(&ca_file, e))?;
        let mut out = std::collections::BTreeMap::new();
        for n in 1..=banks {
            let issued = ca.issue(&format!("bank {n}"), &["127.0.0.1", "localhost"]).map_err(pki_err)?;
            let bank_dir = data.join(format!("bank{n}"));
            std::fs::create_dir_all(&bank_dir).map_err(|e| Error::file(&bank_dir, e))?;
            pki::issue::set_mode(&bank_dir, 0o700).map_err(|e| Error::file(&bank_dir, e))?;
            let dir = bank_dir.join("identity");
            let (cert_file, key_file) = (dir.join("cert.pem"), dir.join("key.pem"));
            pki::issue::write_private(&key_file, &issued.key_pem).map_err(pki_err)?;
            std::fs::write(&cert_file, &issued.cert_pem).map_err(|e| Error::file(&cert_file, e))?;
            out.insert(n, BankIdentity { issued, cert_file, key_file });
        }
        Ok(Pki { ca_pem: ca.cert_pem().to_string(), banks: out })
    }

    /// An HTTP client that presents bank `n`'s certificate and trusts any server the CA issued
    /// for (tests and tools acting as that bank; the replicas themselves also pin the server).
    pub fn client_as(&self, n: u32) -> Result<reqwest::Client, Error> {
        let id = self.banks.get(&n).ok_or_else(|| Error::Spec(format!("no identity for bank {n}")))?;
        let identity = pki::Identity::from_pem(&id.issued.cert_pem, &id.issued.key_pem)
            .map_err(|e| Error::Spec(format!("bank {n}'s identity: {e}")))?;
        let tls = pki::client_config(&identity, &self.ca_pem, None)
            .map_err(|e| Error::Spec(format!("bank {n}'s TLS client: {e}")))?;
        pki::http()
            .tls_backend_preconfigured(tls)
            .timeout(std::time::Duration::from_secs(10))
            .build()
            .map_err(|e| Error::Unexpected(e.to_string()))
    }
}

/// Business ids of bank `n`'s replicas: 10 n + 1, 10 n + 2, ...
pub fn business_ids(bank: u32, replicas: u32) -> Result<Vec<BusinessId>, Error> {
    (1..=replicas)
        .map(|b| BusinessId::new(bank * 10 + b).map_err(|e| Error::Spec(format!("bank {bank}: {e}"))))
        .collect()
}

/// A port nobody listens on right now, for a process that will bind it itself (and bind it
/// again when it is restarted).
///
/// Why not the OS's pick (`bind :0`, release): that port lies in the ephemeral range, which is
/// also where every outgoing connection takes its source port. Between the release and the
/// child's bind, any of the thousands of connections a test makes can take it, and the child
/// dies with "address in use" (a clean-clone CI run failed so). Ports below the ephemeral
/// range are never taken by outgoing connections; here they are handed out from a counter so
/// that threads never get the same one, starting at a per-process offset so that concurrent
/// processes rarely try the same ones, and each is checked by binding it.
pub fn free_port() -> Result<u16, Error> {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(u32::MAX);
    let (low, high) = own_port_range();
    let span = u32::from(high - low);
    let _ = NEXT.compare_exchange(
        u32::MAX,
        std::process::id().wrapping_mul(7919) % span,
        Ordering::SeqCst,
        Ordering::SeqCst,
    );
    for _ in 0..FREE_PORT_TRIES_MAX {
        let offset = NEXT.fetch_add(1, Ordering::SeqCst) % span;
        let port = low + u16::try_from(offset).map_err(|e| Error::Spec(e.to_string()))?;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return Ok(port);
        }
    }
    Err(Error::NoPort { low, high, tries: FREE_PORT_TRIES_MAX })
}

/// How many candidate ports [`free_port`] binds before it gives up.
const FREE_PORT_TRIES_MAX: u32 = 4_096;

/// The half of the ports just below the kernel's ephemeral range (Linux:
/// `/proc/sys/net/ipv4/ip_local_port_range`, 32768 by default), which `connect` never uses.
fn own_port_range() -> (u16, u16) {
    let ephemeral_low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|w| w.parse::<u16>().ok()))
        .filter(|low| *low >= 2_048)
        .unwrap_or(32_768);
    (ephemeral_low / 2, ephemeral_low)
}

/// A local network's sign-up budget per address: every customer comes from 127.0.0.1.
pub const LOCAL_SIGNUPS_PER_ADDRESS_MAX: u32 = 1_000_000;

/// The operator key of every network a test starts ([`Spec::ephemeral`]).
pub const TEST_OPERATOR_KEY: &str = "operator-key-for-tests";

/// Business-replica timings for tests: short enough that recovery paths (lost token, in-doubt
/// packages) run within a test's time, long enough for 2 busy cores.
pub const TEST_TIMINGS: &[&str] = &[
    "--token-lost-ms",
    "1500",
    "--tick-ms",
    "100",
    "--in-doubt-ms",
    "2000",
    "--ring-lease-ms",
    "2000",
    "--peer-timeout-ms",
    "3000",
];

#[derive(Debug, Clone)]
pub struct Spec {
    pub banks: u32,
    pub replicas: u32,
    /// One folder per bank under it.
    pub data: PathBuf,
    /// Bank n's data server port (`None`: free ports).
    pub dataserver_port: Option<Box<[u16]>>,
    /// Bank n's standby data server port, with `postgres` (`None`: free ports).
    pub standby_dataserver_port: Option<Box<[u16]>>,
    /// Bank n's replica r port (`None`: free ports).
    pub business_port: Option<Box<[Box<[u16]>]>>,
    /// Bank n's replica r interbank (mutual TLS) port (`None`: free ports).
    pub interbank_port: Option<Box<[Box<[u16]>]>>,
    pub operator_key: String,
    /// Passed to every business replica (timings in tests).
    pub business_args: Vec<String>,
    /// Every data-server key starts with it (see [`DEV_SECRET_PREFIX`]).
    pub secret_prefix: String,
    /// When set, every process logs into `{dir}/{process}.log` at this `RUST_LOG` filter.
    pub log: Option<(PathBuf, String)>,
    /// Put a [`crate::proxy::Proxy`] in front of every replica for its peers (needs a tokio
    /// runtime): the network file lists the proxies, customers reach replicas directly.
    pub peer_proxies: bool,
    /// Customers may deposit money from nowhere (a local network's convenience; off in a
    /// real bank).
    pub customer_deposits: bool,
    /// Accounts one address may open per hour: on a local network every customer is 127.0.0.1.
    pub signups_per_address_max: u32,
    /// Keep each bank's state in PostgreSQL (a cluster in `{data}/postgres`, one database per
    /// bank) with two data servers per bank, an active one and a standby, instead of one data
    /// server on its own folder.
    pub postgres: bool,
}

/// HTTP workers per business replica: one when the network's replicas outnumber the machine's
/// cores, else the replica's own default (one per core); an explicit `--workers` in
/// `business_args` or `BUSINESS_WORKERS` in the environment decides instead. Each replica
/// otherwise starts a worker thread per core, and on two cores nine server processes' threads
/// spent a third of the samples in the kernel switching among them: with one worker per
/// replica, `bench packages --rate 3600` settled more in every one of eight alternated pairs
/// in two sittings (README, "Benchmarks").
fn replica_workers(spec: &Spec) -> Option<u32> {
    let chosen = std::env::var_os("BUSINESS_WORKERS").is_some()
        || spec.business_args.iter().any(|a| a == "--workers" || a.starts_with("--workers="));
    one_worker_when_crowded(spec.banks.saturating_mul(spec.replicas), chosen)
}

/// HTTP workers per data server: one when the network's server processes (a data server and
/// its replicas per bank) outnumber the machine's cores, else the data server's own default
/// (one per core); `DATASERVER_WORKERS` in the environment decides instead. The same crowding
/// as [`replica_workers`]: on two cores, `bench packages --rate 3600` settled more with one
/// worker per data server in six of eight alternated pairs, and the mixed load's intrabank p99
/// was lower in four of five (README, "Benchmarks").
fn dataserver_workers(spec: &Spec) -> Option<u32> {
    let servers = spec.banks.saturating_mul(spec.replicas.saturating_add(1));
    one_worker_when_crowded(servers, std::env::var_os("DATASERVER_WORKERS").is_some())
}

/// One worker each when `processes` outnumber the machine's cores and nobody `chosen` a count.
fn one_worker_when_crowded(processes: u32, chosen: bool) -> Option<u32> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let processes = usize::try_from(processes).unwrap_or(usize::MAX);
    (processes > cores && !chosen).then_some(1)
}

impl Spec {
    /// A network on free ports, as tests want it.
    pub fn ephemeral(banks: u32, replicas: u32, data: &Path) -> Spec {
        Spec {
            banks,
            replicas,
            data: data.to_path_buf(),
            dataserver_port: None,
            standby_dataserver_port: None,
            business_port: None,
            interbank_port: None,
            operator_key: TEST_OPERATOR_KEY.into(),
            business_args: vec![],
            secret_prefix: DEV_SECRET_PREFIX.into(),
            log: None,
            peer_proxies: false,
            customer_deposits: true,
            signups_per_address_max: LOCAL_SIGNUPS_PER_ADDRESS_MAX,
            postgres: false,
        }
    }
}

#[derive(Debug)]
pub struct Replica {
    pub business: BusinessId,
    pub addr: SocketAddr,
    /// Its mutual-TLS listener for peer banks.
    pub interbank_addr: SocketAddr,
    args: Vec<String>,
    /// Its secrets, passed in the environment.
    env: Vec<(String, String)>,
    log: Option<LogTo>,
    child: Option<Child>,
}

impl Replica {
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Where peer banks reach it (mutual TLS).
    pub fn interbank_url(&self) -> String {
        format!("https://{}", self.interbank_addr)
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn running(&self) -> bool {
        self.child.is_some()
    }
}

#[derive(Debug)]
pub struct Bank {
    pub id: u32,
    pub ds: Option<DataServerProcess>,
    pub ds_opts: SpawnOptions,
    pub ds_addr: SocketAddr,
    /// On PostgreSQL: the second data server on the bank's database (a standby until the first
    /// stops leading), its options and address.
    pub standby: Option<DataServerProcess>,
    pub standby_opts: Option<SpawnOptions>,
    pub standby_addr: Option<SocketAddr>,
    pub replicas: Vec<Replica>,
}

impl Bank {
    /// Every data server of the bank, comma-separated, as replicas and tools take them.
    pub fn ds_url(&self) -> String {
        match self.standby_addr {
            Some(s) => format!("http://{},http://{s}", self.ds_addr),
            None => format!("http://{}", self.ds_addr),
        }
    }

    pub fn urls(&self) -> Vec<String> {
        self.replicas.iter().map(Replica::url).collect()
    }

    pub fn interbank_urls(&self) -> Vec<String> {
        self.replicas.iter().map(Replica::interbank_url).collect()
    }

    /// A data-server client authenticated as the bank's first replica.
    pub fn ds_client(&self) -> dataserver_api::client::DataClient {
        let (b, k) = &self.ds_opts.keys[0];
        dataserver_api::client::DataClient::new(&self.ds_url(), *b, k.clone()).expect("valid URL")
    }
}

#[derive(Debug)]
pub struct Cluster {
    pub banks: Vec<Bank>,
    pub network_file: PathBuf,
    pub operator_key: String,
    business_bin: PathBuf,
    /// Per bank, the proxies its peers go through (empty unless `Spec::peer_proxies`).
    pub proxies: Vec<Vec<crate::proxy::Proxy>>,
    /// The network's CA and every bank's identity.
    pub pki: Pki,
    /// The PostgreSQL cluster of `Spec::postgres`, stopped with the network.
    pub pg: Option<crate::postgres::Cluster>,
}

fn network_toml(banks: &[(u32, Vec<String>, Vec<String>)], pki: &Pki) -> String {
    #[derive(serde::Serialize)]
    struct Entry<'a> {
        id: u32,
        name: String,
        replicas: &'a [String],
        certificate: &'a str,
        public: &'a [String],
    }
    #[derive(serde::Serialize)]
    struct File<'a> {
        ca: &'a str,
        bank: Vec<Entry<'a>>,
    }
    let bank = banks
        .iter()
        .map(|(id, urls, public)| Entry {
            id: *id,
            name: format!("Banco {id}"),
            replicas: urls,
            certificate: pki.banks.get(id).map_or("", |b| b.issued.cert_pem.as_str()),
            public,
        })
        .collect();
    let body = toml::to_string(&File { ca: &pki.ca_pem, bank }).unwrap_or_default();
    format!("# The local network: public facts only (addresses and certificates); no secret.\n{body}")
}

/// What the operator tools need to reach a network: every bank's replicas and data server.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Target {
    /// DEVELOPMENT SECRET on a local network.
    pub operator_key: String,
    #[serde(rename = "bank")]
    pub banks: Vec<BankTarget>,
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct BankTarget {
    pub id: u32,
    pub replicas: Vec<String>,
    pub dataserver: String,
    pub business_id: u32,
    /// DEVELOPMENT SECRET on a local network.
    pub dataserver_key: String,
}

impl Target {
    /// Reads `local.toml`, which `interbank up` writes into its data folder.
    pub fn load(path: &Path) -> Result<Target, Error> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::file(path, format!("{e} (is the local network up? `interbank up` writes it)")))?;
        toml::from_str(&text).map_err(|e| Error::file(path, e))
    }
}

fn local_toml(banks: &[Bank], operator_key: &str) -> String {
    let t = Target {
        operator_key: operator_key.to_string(),
        banks: banks
            .iter()
            .map(|b| BankTarget {
                id: b.id,
                replicas: b.urls(),
                dataserver: b.ds_url(),
                business_id: b.ds_opts.keys[0].0.get(),
                dataserver_key: b.ds_opts.keys[0].1.clone(),
            })
            .collect(),
    };
    format!(
        "# How operator tools reach this local network. DEVELOPMENT SECRETS: for this machine only.\n{}",
        toml::to_string(&t).unwrap_or_default()
    )
}

impl Cluster {
    /// The operator tools' view of this network.
    pub fn target(&self) -> Target {
        toml::from_str(&local_toml(&self.banks, &self.operator_key)).expect("round trip")
    }

    pub fn start(spec: &Spec) -> Result<Cluster, Error> {
        let ds_bin = crate::process::binary("dataserver")?;
        let business_bin = crate::process::binary("business")?;
        std::fs::create_dir_all(&spec.data).map_err(|e| Error::file(&spec.data, e))?;
        let pki = Pki::create(&spec.data, spec.banks)?;
        let mut plan: Vec<(u32, u16, Vec<u16>, Vec<u16>)> = Vec::new();
        for n in 1..=spec.banks {
            let i = usize::try_from(n - 1).map_err(|e| Error::Spec(e.to_string()))?;
            let ds_port = match &spec.dataserver_port {
                Some(p) => *p.get(i).ok_or_else(|| Error::Spec(format!("no data server port for bank {n}")))?,
                None => free_port()?,
            };
            let ports = match &spec.business_port {
                Some(p) => p.get(i).ok_or_else(|| Error::Spec(format!("no replica ports for bank {n}")))?.to_vec(),
                None => (0..spec.replicas).map(|_| free_port()).collect::<Result<_, _>>()?,
            };
            let ib_ports = match &spec.interbank_port {
                Some(p) => p.get(i).ok_or_else(|| Error::Spec(format!("no interbank ports for bank {n}")))?.to_vec(),
                None => (0..spec.replicas).map(|_| free_port()).collect::<Result<_, _>>()?,
            };
            plan.push((n, ds_port, ports, ib_ports));
        }
        let mut proxies: Vec<Vec<crate::proxy::Proxy>> = Vec::new();
        if spec.peer_proxies {
            for (_, _, _, ports) in &plan {
                let mut of_bank = Vec::new();
                for p in ports {
                    let start = |source| Error::Start { what: format!("the proxy for port {p}"), source };
                    let l = TcpListener::bind("127.0.0.1:0").map_err(start)?;
                    let upstream = std::net::SocketAddr::from(([127, 0, 0, 1], *p));
                    of_bank.push(crate::proxy::Proxy::start(l, upstream).map_err(start)?);
                }
                proxies.push(of_bank);
            }
        }
        let network: Vec<(u32, Vec<String>, Vec<String>)> = plan
            .iter()
            .enumerate()
            .map(|(i, (n, _, ports, ib_ports))| {
                let urls = match proxies.get(i) {
                    Some(px) => px.iter().map(|p| format!("https://{}", p.addr)).collect(),
                    None => ib_ports.iter().map(|p| format!("https://127.0.0.1:{p}")).collect(),
                };
                (*n, urls, ports.iter().map(|p| format!("http://127.0.0.1:{p}")).collect())
            })
            .collect();
        let network_file = spec.data.join("network.toml");
        std::fs::write(&network_file, network_toml(&network, &pki)).map_err(|e| Error::file(&network_file, e))?;
        let pg = if spec.postgres {
            Some(crate::postgres::Cluster::start(&spec.data.join("postgres"), false)?)
        } else {
            None
        };
        let workers = replica_workers(spec);
        let mut banks = Vec::new();
        for (n, ds_port, ports, ib_ports) in plan {
            let ids = business_ids(n, spec.replicas)?;
            let keys: Vec<(BusinessId, String)> = ids.iter().map(|b| (*b, dev_key(&spec.secret_prefix, *b))).collect();
            let mut opts = SpawnOptions::new(&ds_bin, spec.data.join(format!("bank{n}")), keys.clone());
            opts.listen = format!("127.0.0.1:{ds_port}");
            if let Some(w) = dataserver_workers(spec) {
                opts.extra_args.extend(["--workers".into(), w.to_string()]);
            }
            let log_to = |name: String| {
                spec.log.as_ref().map(|(dir, filter)| LogTo { file: dir.join(name), filter: filter.clone() })
            };
            opts.log = log_to(format!("dataserver-{n}.log"));
            if let Some(pg) = &pg {
                opts.database_url = Some(pg.database(&format!("bank{n}"))?);
            }
            let ds = spawn(&opts).map_err(|source| Error::Start { what: format!("bank {n}'s data server"), source })?;
            let ds_addr = ds.addr;
            let (standby, standby_opts, standby_addr) = if pg.is_some() {
                let mut o = opts.clone();
                let i = usize::try_from(n - 1).map_err(|e| Error::Spec(e.to_string()))?;
                let port = match &spec.standby_dataserver_port {
                    Some(p) => *p.get(i).ok_or_else(|| Error::Spec(format!("no standby port for bank {n}")))?,
                    None => free_port()?,
                };
                o.listen = format!("127.0.0.1:{port}");
                o.log = log_to(format!("dataserver-{n}-standby.log"));
                let what = format!("bank {n}'s standby data server");
                let (p, _) = crate::process::start(&o).map_err(|source| Error::Start { what, source })?;
                let addr = p.addr;
                o.listen = addr.to_string();
                (Some(p), Some(o), Some(addr))
            } else {
                (None, None, None)
            };
            let ds_urls = match standby_addr {
                Some(s) => format!("http://{ds_addr},http://{s}"),
                None => format!("http://{ds_addr}"),
            };
            let mut replicas = Vec::new();
            let identity = pki.banks.get(&n).ok_or_else(|| Error::Spec(format!("no identity for bank {n}")))?;
            for (((b, k), port), ib_port) in keys.iter().zip(ports).zip(ib_ports) {
                let mut args: Vec<String> = vec![
                    "--listen".into(),
                    format!("127.0.0.1:{port}"),
                    "--interbank-listen".into(),
                    format!("127.0.0.1:{ib_port}"),
                    "--identity-cert".into(),
                    identity.cert_file.display().to_string(),
                    "--identity-key".into(),
                    identity.key_file.display().to_string(),
                    "--bank-id".into(),
                    n.to_string(),
                    "--business-id".into(),
                    b.to_string(),
                    "--dataserver".into(),
                    ds_urls.clone(),
                    "--network".into(),
                    network_file.display().to_string(),
                    "--signups-per-address-max".into(),
                    spec.signups_per_address_max.to_string(),
                ];
                if spec.customer_deposits {
                    args.push("--customer-deposits".into());
                }
                if let Some(w) = workers {
                    args.extend(["--workers".into(), w.to_string()]);
                }
                args.extend(spec.business_args.iter().cloned());
                let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
                replicas.push(Replica {
                    business: *b,
                    addr,
                    interbank_addr: std::net::SocketAddr::from(([127, 0, 0, 1], ib_port)),
                    args,
                    env: vec![
                        ("BUSINESS_DATASERVER_KEY".into(), k.clone()),
                        ("BUSINESS_OPERATOR_KEY".into(), spec.operator_key.clone()),
                    ],
                    log: log_to(format!("business-{b}.log")),
                    child: None,
                });
            }
            banks.push(Bank {
                id: n,
                ds: Some(ds),
                ds_opts: opts,
                ds_addr,
                standby,
                standby_opts,
                standby_addr,
                replicas,
            });
        }
        let local = local_toml(&banks, &spec.operator_key);
        let local_file = spec.data.join("local.toml");
        // It holds the operator and data-server keys: its owner's only.
        pki::issue::write_private(&local_file, &local).map_err(|e| Error::Spec(e.to_string()))?;
        let mut c =
            Cluster { banks, network_file, operator_key: spec.operator_key.clone(), business_bin, proxies, pki, pg };
        for b in 0..c.banks.len() {
            for r in 0..c.banks[b].replicas.len() {
                c.start_replica(b, r)?;
            }
        }
        Ok(c)
    }

    /// Waits until the network can settle: every replica answers `/health`, and every bank's
    /// replicas answer every other bank's liveness probe (`/interbank/token/ok`, over mutual
    /// TLS with the calling bank's certificate, as the token ring sends it). Fails after
    /// `within`, naming what did not answer.
    pub async fn wait_ready(&self, within: std::time::Duration) -> Result<(), Error> {
        let http = pki::http()
            .timeout(std::time::Duration::from_secs(2))
            .build()
            .map_err(|e| Error::Unexpected(e.to_string()))?;
        let callers: Vec<(u32, reqwest::Client)> =
            self.banks.iter().map(|b| Ok((b.id, self.pki.client_as(b.id)?))).collect::<Result<_, Error>>()?;
        let until = std::time::Instant::now() + within;
        loop {
            let missing = self.not_ready(&http, &callers).await;
            if missing.is_empty() {
                return Ok(());
            }
            if std::time::Instant::now() > until {
                return Err(Error::NotReady { within_ms: within.as_millis(), missing: missing.join("; ") });
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }

    /// What does not answer yet (see [`Cluster::wait_ready`]).
    async fn not_ready(&self, http: &reqwest::Client, callers: &[(u32, reqwest::Client)]) -> Vec<String> {
        let ok = |r: Result<reqwest::Response, reqwest::Error>| r.is_ok_and(|r| r.status().is_success());
        let mut missing = Vec::new();
        for bank in &self.banks {
            for rep in &bank.replicas {
                let url = rep.url();
                if !ok(http.get(format!("{url}/health")).send().await) {
                    missing.push(format!("{url} (bank {})", bank.id));
                    continue;
                }
                for (caller, client) in callers.iter().filter(|(c, _)| *c != bank.id) {
                    let probe = client
                        .get(format!("{}/interbank/token/ok", rep.interbank_url()))
                        .header(shared::api::BANK_HEADER, caller.to_string());
                    if !ok(probe.send().await) {
                        missing.push(format!("{} (bank {}) for bank {caller}", rep.interbank_url(), bank.id));
                    }
                }
            }
        }
        missing
    }

    /// Starts (or restarts) replica `r` of the bank at index `b`, on its port.
    pub fn start_replica(&mut self, b: usize, r: usize) -> Result<(), Error> {
        let rep = &mut self.banks[b].replicas[r];
        if rep.child.is_some() {
            return Ok(());
        }
        let mut cmd = Command::new(&self.business_bin);
        cmd.args(&rep.args).envs(rep.env.iter().map(|(k, v)| (k, v)));
        let (child, line) = spawn_command(cmd, rep.log.as_ref())
            .map_err(|source| Error::Start { what: format!("replica {}", rep.business), source })?;
        let addr = listening_addr(&line)
            .ok_or_else(|| Error::Unexpected(format!("replica {} printed {line:?}", rep.business)))?;
        if addr != rep.addr {
            return Err(Error::Unexpected(format!("replica {} listens on {addr}, not {}", rep.business, rep.addr)));
        }
        rep.child = Some(child);
        Ok(())
    }

    /// SIGKILL: no shutdown code runs.
    pub fn kill_replica(&mut self, b: usize, r: usize) {
        if let Some(mut c) = self.banks[b].replicas[r].child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM to replica `r` of bank `b`, then waits for its exit; whether it exited cleanly.
    pub fn terminate_replica(&mut self, b: usize, r: usize) -> bool {
        let Some(mut c) = self.banks[b].replicas[r].child.take() else { return false };
        let _ = crate::process::signal(c.id(), "-TERM");
        c.wait().is_ok_and(|s| s.success())
    }

    /// SIGKILL to every data server of bank `b`.
    pub fn kill_dataserver(&mut self, b: usize) {
        if let Some(mut ds) = self.banks[b].ds.take() {
            let _ = ds.kill9();
        }
        if let Some(mut ds) = self.banks[b].standby.take() {
            let _ = ds.kill9();
        }
    }

    /// SIGKILL to whichever of bank `b`'s data servers leads now (PostgreSQL: the standby then
    /// takes over); whether it was the first (`true`) or the second.
    pub async fn kill_leading_dataserver(&mut self, b: usize) -> Result<bool, Error> {
        let bank = &mut self.banks[b];
        let first_leads = match &bank.ds {
            Some(ds) => ds.client(0).health().await.is_ok_and(|h| h.status == "ok"),
            None => false,
        };
        // A standby answers `not_leader` to everything, so `health` succeeds only on the leader,
        // and a client of one address does not move on.
        let slot = if first_leads { &mut bank.ds } else { &mut bank.standby };
        let mut ds =
            slot.take().ok_or_else(|| Error::Unexpected(format!("bank {} has no leading data server", bank.id)))?;
        ds.kill9().map_err(|source| Error::Start { what: "kill -9".into(), source })?;
        Ok(first_leads)
    }

    /// Restarts the data servers of bank `b` that are not running, on their folder (or
    /// database) and port: the first waits until it leads, the second may stand by.
    pub fn start_dataserver(&mut self, b: usize) -> Result<(), Error> {
        let bank = &mut self.banks[b];
        if bank.ds.is_none() {
            let what = format!("bank {}'s data server", bank.id);
            if bank.standby.is_some() {
                // The other one may lead: this one may only stand by.
                let (p, _) = crate::process::start(&bank.ds_opts).map_err(|source| Error::Start { what, source })?;
                bank.ds = Some(p);
            } else {
                bank.ds = Some(spawn(&bank.ds_opts).map_err(|source| Error::Start { what, source })?);
            }
        }
        if bank.standby.is_none()
            && let Some(o) = &bank.standby_opts
        {
            let what = format!("bank {}'s second data server", bank.id);
            let (p, _) = crate::process::start(o).map_err(|source| Error::Start { what, source })?;
            bank.standby = Some(p);
        }
        Ok(())
    }

    /// Kills every process of bank `b` (SIGKILL), as a power cut of the whole bank.
    pub fn kill_bank(&mut self, b: usize) {
        for r in 0..self.banks[b].replicas.len() {
            self.kill_replica(b, r);
        }
        self.kill_dataserver(b);
    }

    pub fn start_bank(&mut self, b: usize) -> Result<(), Error> {
        self.start_dataserver(b)?;
        for r in 0..self.banks[b].replicas.len() {
            self.start_replica(b, r)?;
        }
        Ok(())
    }

    /// The sums over bank `bank`'s replicas of the `/metrics` values `names` (0 for one a
    /// replica does not report).
    #[expect(clippy::float_arithmetic, reason = "metrics as Prometheus prints them, summed for a test to compare")]
    pub async fn bank_metrics(&self, bank: usize, names: &[&str]) -> Vec<f64> {
        let http = pki::http_client();
        let mut sums = vec![0.0; names.len()];
        for url in self.banks[bank].urls() {
            let r = http.get(format!("{url}/metrics")).bearer_auth(&self.operator_key).send().await;
            let text = r.expect("a replica's metrics").text().await.expect("a replica's metrics");
            for (sum, name) in sums.iter_mut().zip(names) {
                *sum += text
                    .lines()
                    .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse::<f64>().ok())
                    .unwrap_or(0.0);
            }
        }
        sums
    }

    /// SIGTERM to every replica, then every data server, waiting for each; returns the lines
    /// describing how each stopped.
    pub fn stop(&mut self) -> Vec<String> {
        let mut out = Vec::new();
        for b in 0..self.banks.len() {
            for r in 0..self.banks[b].replicas.len() {
                if self.banks[b].replicas[r].running() {
                    let ok = self.terminate_replica(b, r);
                    let (bank, url) = (self.banks[b].id, self.banks[b].replicas[r].url());
                    out.push(format!(
                        "bank {bank}: replica {url} {}",
                        if ok { "stopped" } else { "exited with an error" }
                    ));
                }
            }
        }
        for bank in &mut self.banks {
            for mut ds in [bank.standby.take(), bank.ds.take()].into_iter().flatten() {
                let line = match ds.terminate() {
                    Ok(true) => "stopped".to_string(),
                    Ok(false) => "exited with an error".to_string(),
                    Err(e) => format!("could not be stopped: {e}"),
                };
                out.push(format!("bank {}: data server {line}", bank.id));
            }
        }
        out
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for bank in &mut self.banks {
            for rep in &mut bank.replicas {
                if let Some(mut c) = rep.child.take() {
                    let _ = c.kill();
                    let _ = c.wait();
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_ports_are_distinct_across_threads_and_never_ephemeral() {
        let (low, high) = own_port_range();
        let threads: Vec<_> = (0..8)
            .map(|_| std::thread::spawn(|| (0..32).map(|_| free_port()).collect::<Result<Vec<_>, _>>()))
            .collect();
        let mut all = Vec::new();
        for t in threads {
            all.extend(t.join().expect("thread").expect("a free port"));
        }
        let n = all.len();
        assert!(all.iter().all(|p| (low..high).contains(p)), "{all:?} outside {low}..{high}");
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), n, "a port was handed out twice");
    }

    #[test]
    fn data_servers_of_a_crowded_network_get_one_worker_each_unless_told() {
        let cores = u32::try_from(std::thread::available_parallelism().map_or(1, |n| n.get())).expect("few cores");
        let told = std::env::var_os("DATASERVER_WORKERS").is_some();
        let data = Path::new("unused");
        // A bank's data server and its one replica are two servers: more than the cores once
        // the banks are more than half of them.
        assert_eq!(dataserver_workers(&Spec::ephemeral(cores / 2 + 1, 1, data)), if told { None } else { Some(1) });
        assert_eq!(
            dataserver_workers(&Spec::ephemeral(1, cores.saturating_sub(1), data)),
            None,
            "no more than the cores"
        );
    }

    #[test]
    fn replicas_outnumbering_the_cores_get_one_worker_each_unless_told() {
        let cores = u32::try_from(std::thread::available_parallelism().map_or(1, |n| n.get())).expect("few cores");
        let told = std::env::var_os("BUSINESS_WORKERS").is_some();
        let data = Path::new("unused");
        let crowded = Spec::ephemeral(cores + 1, 1, data);
        assert_eq!(replica_workers(&crowded), if told { None } else { Some(1) });
        assert_eq!(replica_workers(&Spec::ephemeral(1, cores, data)), None, "no more replicas than cores");
        for given in [vec!["--workers".to_string(), "3".into()], vec!["--workers=3".to_string()]] {
            let mut spec = crowded.clone();
            spec.business_args = given;
            assert_eq!(replica_workers(&spec), None, "an explicit --workers decides");
        }
    }
}
