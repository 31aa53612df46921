//! Between banks: the network's configuration, the authenticated peer client, and the protocols
//! (token ring, two-phase commit of packages, the Pix key directory).
//!
//! The protocol rules live in pure modules ([`ring`], [`settle`]); [`participant`],
//! [`coordinator`], [`keys`] and [`worker`] only carry their inputs and outputs between the
//! bank's data server and its peers.

pub mod coordinator;
pub mod keys;
pub mod participant;
pub mod ring;
pub mod settle;
pub mod sim;
pub mod worker;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use dataserver_api::client::DataClient;
use reqwest::Method;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use shared::{BankId, BusinessId, ErrorBody, Ibk};

pub use shared::api::BANK_HEADER;

/// One bank of the network, as every bank's configuration lists it.
#[derive(Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct BankEntry {
    pub id: BankId,
    pub name: String,
    /// The secret this bank presents to its peers.
    pub secret: String,
    /// Base URLs of its business replicas.
    pub replicas: Vec<String>,
}

impl std::fmt::Debug for BankEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BankEntry").field("id", &self.id).field("replicas", &self.replicas).finish_non_exhaustive()
    }
}

/// The network file (TOML): `[[bank]]` tables with `id`, `name`, `secret`, `replicas`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Network {
    #[serde(rename = "bank")]
    pub banks: Vec<BankEntry>,
}

impl Network {
    pub fn load(path: &Path) -> Result<Network, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let mut n: Network = toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        n.banks.sort_by_key(|b| b.id);
        if n.banks.windows(2).any(|w| w[0].id == w[1].id) {
            return Err(format!("{}: a bank id appears twice", path.display()));
        }
        if let Some(b) = n.banks.iter().find(|b| b.secret.len() < 16 || b.replicas.is_empty()) {
            return Err(format!("bank {}: the secret needs 16+ characters and at least one replica", b.id));
        }
        Ok(n)
    }

    /// A network of one bank (no peers): cross-bank work is refused.
    pub fn alone(me: BankId) -> Network {
        Network {
            banks: vec![BankEntry { id: me, name: format!("Bank {me}"), secret: String::new(), replicas: vec![] }],
        }
    }

    pub fn bank(&self, id: BankId) -> Option<&BankEntry> {
        self.banks.iter().find(|b| b.id == id)
    }

    pub fn ids(&self) -> Vec<BankId> {
        self.banks.iter().map(|b| b.id).collect()
    }
}

/// Why a call to a peer bank failed.
#[derive(Debug, thiserror::Error)]
pub enum PeerError {
    /// No replica accepted a connection: the request certainly did not arrive.
    #[error("bank {0} is unreachable")]
    NotDelivered(BankId),
    /// Sent, but no answer (timeout, reset): it may or may not have been applied.
    #[error("bank {bank} did not answer: {why}")]
    NoAnswer { bank: BankId, why: String },
    #[error("bank {bank} refused: {body:?}")]
    Refused { bank: BankId, status: u16, body: ErrorBody },
    #[error("bank {0} is not in the network")]
    Unknown(BankId),
}

impl PeerError {
    pub fn code(&self) -> Option<shared::ErrorCode> {
        match self {
            PeerError::Refused { body, .. } => Some(body.error),
            _ => None,
        }
    }
}

/// A client of the peer banks: tries each bank's replicas in turn, starting from a rotating one.
#[derive(Clone)]
pub struct Peers {
    http: reqwest::Client,
    net: Arc<Network>,
    me: BankId,
    next: Arc<AtomicUsize>,
}

impl std::fmt::Debug for Peers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Peers").field("me", &self.me).finish_non_exhaustive()
    }
}

impl Peers {
    pub fn new(net: Arc<Network>, me: BankId, timeout_ms: u64) -> Result<Peers, reqwest::Error> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_millis(timeout_ms))
            .connect_timeout(Duration::from_millis(timeout_ms.min(1_000)))
            .pool_max_idle_per_host(64)
            .tcp_nodelay(true)
            .build()?;
        Ok(Peers { http, net, me, next: Arc::new(AtomicUsize::new(0)) })
    }

    pub fn network(&self) -> &Network {
        &self.net
    }

    pub fn me(&self) -> BankId {
        self.me
    }

    /// Calls `path` at bank `bank`; `body` is sent as JSON when given.
    pub async fn call<T: DeserializeOwned>(
        &self,
        bank: BankId,
        method: Method,
        path: &str,
        body: Option<&(impl Serialize + Sync)>,
    ) -> Result<T, PeerError> {
        let entry = self.net.bank(bank).ok_or(PeerError::Unknown(bank))?;
        let secret = &self.net.bank(self.me).ok_or(PeerError::Unknown(self.me))?.secret;
        let n = entry.replicas.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        for i in 0..n {
            let base = &entry.replicas[(start + i) % n];
            let mut rb = self
                .http
                .request(method.clone(), format!("{}{path}", base.trim_end_matches('/')))
                .bearer_auth(secret)
                .header(BANK_HEADER, self.me.to_string());
            if let Some(b) = body {
                rb = rb.json(b);
            }
            let resp = match rb.send().await {
                Ok(r) => r,
                Err(e) if e.is_connect() => continue,
                Err(e) => return Err(PeerError::NoAnswer { bank, why: e.to_string() }),
            };
            let status = resp.status();
            let bytes = resp.bytes().await.map_err(|e| PeerError::NoAnswer { bank, why: e.to_string() })?;
            if status.is_success() {
                return serde_json::from_slice(&bytes)
                    .map_err(|e| PeerError::NoAnswer { bank, why: format!("unexpected answer: {e}") });
            }
            // A replica that cannot reach its own data server: another replica will not either,
            // but the answer is not a refusal of the request's content.
            let body: ErrorBody = serde_json::from_slice(&bytes).unwrap_or_else(|_| {
                ErrorBody::new(shared::ErrorCode::UnexpectedBody, String::from_utf8_lossy(&bytes).to_string())
            });
            if status.as_u16() == 503 {
                return Err(PeerError::NoAnswer { bank, why: body.message });
            }
            return Err(PeerError::Refused { bank, status: status.as_u16(), body });
        }
        Err(PeerError::NotDelivered(bank))
    }
}

/// Timing and size limits of the interbank protocols.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// No grant seen anywhere for this long → the token is lost and is regenerated.
    pub token_lost_ms: u64,
    /// Longest a bank keeps the token while it has work.
    pub hold_ms_max: u64,
    /// How long an idle bank keeps the token before passing it (bounds an idle ring's churn).
    pub idle_hold_ms: u64,
    /// Lease of the replica working the token; renewed every round.
    pub ring_lease_ms: u64,
    /// How often each replica checks the ring and in-doubt packages.
    pub tick_ms: u64,
    /// A prepared package older than this asks its coordinator for the decision.
    pub in_doubt_ms: u64,
    /// A package that cannot complete within this long after submission fails.
    pub package_deadline_ms: u64,
    /// Packages per settlement round.
    pub batch_packages_max: usize,
    /// Accounts locked in one data-server call while settling.
    pub batch_accounts_max: usize,
}

/// Everything the interbank layer needs, shared by handlers and background tasks.
#[derive(Debug, Clone)]
pub struct Interbank {
    pub me: BankId,
    pub business: BusinessId,
    pub ds: DataClient,
    pub peers: Peers,
    pub limits: Limits,
    pub lock_wait_ms: u64,
    pub lease_ms: u64,
    /// Wakes this replica's worker when it was handed the token.
    pub wake: Arc<tokio::sync::Notify>,
}

impl Interbank {
    /// The card of an account at another bank (seed 000's `POST /interbank/account/ibk/{ibk}`).
    pub async fn card(&self, ibk: Ibk) -> Result<shared::api::AccountCard, crate::error::ApiError> {
        use crate::error::ApiError;
        let path = format!("/interbank/account/ibk/{ibk}");
        self.peers.call(ibk.bank, reqwest::Method::POST, &path, None::<&()>).await.map_err(|e| match e {
            PeerError::Refused { status: 404, .. } => ApiError::AccountNotFound(ibk.account),
            other => ApiError::Unavailable(crate::error::Unavailable::Peer(other.to_string())),
        })
    }

    /// Whether the network has other banks.
    pub fn has_peers(&self) -> bool {
        self.peers.network().banks.len() > 1
    }
}

pub use dataserver_api::clock::now_ms;
