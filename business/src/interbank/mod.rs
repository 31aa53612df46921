//! Between banks: the network's configuration, the authenticated peer client, and the protocols
//! (token ring, two-phase commit of packages, the Pix key directory).
//!
//! The protocol rules live in the `protocol` crate, which does no I/O ([`ring`], [`settle`],
//! [`engine`], [`retention`], re-exported here); [`participant`], [`coordinator`], [`keys`] and
//! [`worker`] only carry their inputs and outputs between the bank's data server and its peers,
//! and the simulation (`sim`, with the `sim` feature) drives the same rules over a seeded
//! network.

pub mod coordinator;
pub mod keys;
pub mod participant;
pub mod worker;

#[cfg(feature = "sim")]
pub use protocol::sim;
pub use protocol::{bugs, engine, retention, ring, settle};

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

/// One bank of the network, as every bank's configuration lists it: public facts only.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct BankEntry {
    pub id: BankId,
    pub name: String,
    /// Base URLs (`https://`) of its business replicas' interbank listeners.
    pub replicas: Vec<String>,
    /// Its certificate (PEM), issued by the consortium's CA: who it is.
    pub certificate: String,
    /// Where its customers reach it (the customer API's base URLs), shown to customers of other
    /// banks who link an account there.
    #[serde(default)]
    pub public: Vec<String>,
}

/// The network file (TOML): the consortium CA's certificate (`ca`, PEM) and `[[bank]]` tables
/// with `id`, `name`, `replicas`, `certificate`. It holds no secret: every bank's private key
/// stays in that bank's own data directory.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Network {
    pub ca: String,
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
        pki::roots(&n.ca).map_err(|e| format!("{}: the CA certificate: {e}", path.display()))?;
        for b in &n.banks {
            if b.replicas.is_empty() {
                return Err(format!("bank {}: at least one replica", b.id));
            }
            pki::certs_from_pem(&b.certificate).map_err(|e| format!("bank {}: its certificate: {e}", b.id))?;
        }
        if n.banks
            .iter()
            .enumerate()
            .any(|(i, b)| n.banks[..i].iter().any(|o| o.certificate.trim() == b.certificate.trim()))
        {
            return Err(format!("{}: two banks list the same certificate", path.display()));
        }
        Ok(n)
    }

    /// A network of one bank (no peers): cross-bank work is refused.
    pub fn alone(me: BankId) -> Network {
        Network {
            ca: String::new(),
            banks: vec![BankEntry {
                id: me,
                name: format!("Bank {me}"),
                replicas: vec![],
                certificate: String::new(),
                public: vec![],
            }],
        }
    }

    pub fn bank(&self, id: BankId) -> Option<&BankEntry> {
        self.banks.iter().find(|b| b.id == id)
    }

    pub fn ids(&self) -> Vec<BankId> {
        self.banks.iter().map(|b| b.id).collect()
    }

    /// Each peer's leaf certificate, to tell which bank a TLS client is.
    pub fn pins(&self, me: BankId) -> Result<pki::Pins<BankId>, String> {
        let mut pins = Vec::new();
        for b in self.banks.iter().filter(|b| b.id != me) {
            let leaf = pki::certs_from_pem(&b.certificate).map_err(|e| format!("bank {}: {e}", b.id))?.remove(0);
            pins.push((b.id, leaf));
        }
        Ok(pki::Pins::new(pins))
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

/// A client of the peer banks: one mutual-TLS connection pool per peer, presenting this bank's
/// certificate and accepting only that peer's; tries each bank's replicas in turn, starting from
/// a rotating one.
#[derive(Clone)]
pub struct Peers {
    http: Arc<std::collections::BTreeMap<BankId, reqwest::Client>>,
    net: Arc<Network>,
    me: BankId,
    next: Arc<AtomicUsize>,
    timeout_ms: u64,
}

impl std::fmt::Debug for Peers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Peers").field("me", &self.me).finish_non_exhaustive()
    }
}

/// The most of a peer's answer read: nothing a peer sends is unbounded (the largest is a prepare
/// vote list of `PREPARE_ITEMS_MAX` entries).
pub const PEER_ANSWER_BYTES_MAX: usize = 4 << 20;

impl Peers {
    /// `identity` is required when the network has other banks.
    pub fn new(
        net: Arc<Network>,
        me: BankId,
        timeout_ms: u64,
        identity: Option<&pki::Identity>,
    ) -> Result<Peers, String> {
        let mut http = std::collections::BTreeMap::new();
        for b in net.banks.iter().filter(|b| b.id != me) {
            let identity = identity
                .ok_or("a network of several banks needs this bank's identity (--identity-cert, --identity-key)")?;
            let leaf = pki::certs_from_pem(&b.certificate).map_err(|e| e.to_string())?.remove(0);
            let tls = pki::client_config(identity, &net.ca, Some(leaf)).map_err(|e| e.to_string())?;
            let client = pki::http()
                .tls_backend_preconfigured(tls)
                .timeout(Duration::from_millis(timeout_ms))
                .connect_timeout(Duration::from_millis(timeout_ms.min(1_000)))
                .pool_max_idle_per_host(64)
                .tcp_nodelay(true)
                .build()
                .map_err(|e| e.to_string())?;
            http.insert(b.id, client);
        }
        Ok(Peers { http: Arc::new(http), net, me, next: Arc::new(AtomicUsize::new(0)), timeout_ms })
    }

    /// The longest a call waits for a peer's answer.
    pub fn timeout_ms(&self) -> u64 {
        self.timeout_ms
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
        let http = self.http.get(&bank).ok_or(PeerError::Unknown(bank))?;
        let n = entry.replicas.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        for i in 0..n {
            let base = &entry.replicas[(start + i) % n];
            let mut rb = http
                .request(method.clone(), format!("{}{path}", base.trim_end_matches('/')))
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
            let bytes =
                read_bounded(resp, PEER_ANSWER_BYTES_MAX).await.map_err(|why| PeerError::NoAnswer { bank, why })?;
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

/// A response body, refused once it passes `max` bytes (a peer cannot make us buffer without
/// bound).
async fn read_bounded(mut resp: reqwest::Response, max: usize) -> Result<Vec<u8>, String> {
    if resp.content_length().is_some_and(|n| n > max as u64) {
        return Err(format!("the answer is larger than {max} bytes"));
    }
    let mut out = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| e.to_string())? {
        if out.len() + chunk.len() > max {
            return Err(format!("the answer is larger than {max} bytes"));
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
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
    /// How long a hold's first round waits for a fuller queue.
    pub round_linger_ms: u64,
    /// Packages waiting for settlement at this bank, at most (`--settlement-queue-max`).
    pub settlement_queue_max: u64,
    /// How long a bound met is believed without asking (`--admission-memory-ms`).
    pub admission_memory_ms: u64,
    /// ... and per author (`--pending-packages-per-account-max`).
    pub pending_per_account_max: u64,
    /// Accounts locked in one data-server call while settling.
    pub batch_accounts_max: usize,
    /// How long the records of two-phase commit are kept.
    pub retention: retention::Retention,
}

/// What this replica last learnt of the settlement queue's bounds, so that under overload a
/// refusal costs no data-server call: an author found at its bound, or the bank's queue found
/// full, is refused again for `--admission-memory-ms` ([`Limits::admission_memory_ms`]) without
/// asking. It only ever refuses (for at most that long after room appeared); the bounds
/// themselves are conditions of the data server's commit.
#[derive(Debug, Default)]
pub struct Admission {
    /// Author → until when it is taken as full.
    authors: std::collections::HashMap<shared::AccountId, u64>,
    bank_full_until_ms: u64,
    /// Until when a submission first looks at the bank's queue (one read), because a bound was
    /// met lately and no look since found it at most half full; otherwise it commits at once
    /// and the commit's conditions decide.
    pressed_until_ms: u64,
    /// The look at the bank's queue now out, which submissions arriving meanwhile share.
    look: Option<Look>,
    looks_started: u64,
}

/// The bank's queue depth as one read will tell it (`None`: the read failed), awaited by every
/// submission that looks while it is out.
pub type LookAnswer = futures::future::Shared<futures::future::BoxFuture<'static, Option<u64>>>;

struct Look {
    id: u64,
    answer: LookAnswer,
}

impl std::fmt::Debug for Look {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Look").field("id", &self.id).finish_non_exhaustive()
    }
}

/// How long after a bound was met submissions look for room before committing (unless a look
/// finds the queue at most half full first). Without pressure the look is a data-server request
/// spent on every accepted package for nothing; under it, a refusal costs that read instead of
/// a logged commit.
pub const ADMISSION_PRESSURE_MS: u64 = 2_000;
/// Authors remembered as full, at most (a flood of distinct authors forgets the oldest news).
pub const ADMISSION_AUTHORS_MAX: usize = 4_096;

impl Admission {
    /// The refusal to give `author` at `now_ms` without asking, if any.
    pub fn refused(&self, author: shared::AccountId, now_ms: u64, limits: &Limits) -> Option<crate::error::ApiError> {
        use crate::error::ApiError;
        if self.authors.get(&author).is_some_and(|until| *until > now_ms) {
            return Some(ApiError::PackagesPending(limits.pending_per_account_max));
        }
        self.bank_busy(now_ms, limits)
    }

    /// The refusal every cross-bank submission gets at `now_ms`, whoever sends it: the bank's
    /// queue was found full within [`Limits::admission_memory_ms`].
    pub fn bank_busy(&self, now_ms: u64, limits: &Limits) -> Option<crate::error::ApiError> {
        (self.bank_full_until_ms > now_ms)
            .then_some(crate::error::ApiError::SettlementBusy(limits.settlement_queue_max))
    }

    /// Whether a bound was met lately: a submission then looks for room before it commits.
    pub fn pressed(&self, now_ms: u64) -> bool {
        self.pressed_until_ms > now_ms
    }

    /// A look found plenty of room: submissions commit at once again (a bound met since puts
    /// the pressure back).
    pub fn relieve(&mut self) {
        self.pressed_until_ms = 0;
    }

    /// The look at the bank's queue out now, or a new one `start` makes: its id (for
    /// [`Admission::look_ended`]) and its answer to await.
    pub fn look(
        &mut self,
        start: impl FnOnce() -> futures::future::BoxFuture<'static, Option<u64>>,
    ) -> (u64, LookAnswer) {
        use futures::FutureExt;
        if let Some(look) = &self.look {
            return (look.id, look.answer.clone());
        }
        self.looks_started += 1;
        let look = Look { id: self.looks_started, answer: start().shared() };
        let out = (look.id, look.answer.clone());
        self.look = Some(look);
        out
    }

    /// A submission is done with look `id` (answered, or dropped): the next one asks anew.
    pub fn look_ended(&mut self, id: u64) {
        if self.look.as_ref().is_some_and(|l| l.id == id) {
            self.look = None;
        }
    }

    /// Remembers what a refusal said of the bounds.
    pub fn learn(&mut self, author: shared::AccountId, refusal: &crate::error::ApiError, now_ms: u64, limits: &Limits) {
        use crate::error::ApiError;
        let until = now_ms.saturating_add(limits.admission_memory_ms);
        if matches!(refusal, ApiError::PackagesPending(_) | ApiError::SettlementBusy(_)) {
            self.pressed_until_ms = now_ms.saturating_add(ADMISSION_PRESSURE_MS);
        }
        match refusal {
            ApiError::PackagesPending(_) => {
                if self.authors.len() >= ADMISSION_AUTHORS_MAX {
                    self.authors.retain(|_, u| *u > now_ms);
                }
                if self.authors.len() < ADMISSION_AUTHORS_MAX {
                    self.authors.insert(author, until);
                }
            }
            ApiError::SettlementBusy(_) => self.bank_full_until_ms = until,
            _ => {}
        }
    }
}

/// Everything the interbank layer needs, shared by handlers and background tasks.
#[derive(Debug, Clone)]
pub struct Interbank {
    pub me: BankId,
    pub business: BusinessId,
    pub ds: DataClient,
    /// Submissions' commits, sent to `ds` several per request under load.
    pub commits: crate::coalesce::Commits,
    pub peers: Peers,
    pub limits: Limits,
    pub lock_wait_ms: u64,
    pub lease_ms: u64,
    pub metrics: Arc<crate::metrics::Metrics>,
    pub admission: Arc<parking_lot::Mutex<Admission>>,
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

#[cfg(test)]
mod tests {
    use super::read_bounded;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A server that answers every request with `head` then `body_bytes` bytes of body.
    async fn answering(head: &'static str, body_bytes: usize) -> String {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("a port");
        let addr = l.local_addr().expect("its address");
        tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                let mut buf = [0u8; 1024];
                let _ = s.read(&mut buf).await;
                let _ = s.write_all(head.as_bytes()).await;
                let chunk = vec![b'x'; 64 << 10];
                let mut left = body_bytes;
                while left > 0 {
                    let n = left.min(chunk.len());
                    if s.write_all(&chunk[..n]).await.is_err() {
                        break;
                    }
                    left -= n;
                }
            }
        });
        format!("http://{addr}/")
    }

    #[tokio::test]
    async fn a_peer_cannot_make_us_buffer_without_bound() {
        let http = pki::http_client();
        // Announced too large: refused before reading.
        let url = answering("HTTP/1.1 200 OK\r\nContent-Length: 100000000\r\n\r\n", 1 << 20).await;
        assert!(read_bounded(http.get(&url).send().await.expect("sent"), 4096).await.is_err());
        // Not announced (read to the close): refused once past the limit.
        let url = answering("HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n", 1 << 20).await;
        let e = read_bounded(http.get(&url).send().await.expect("sent"), 4096).await.expect_err("too large");
        assert!(e.contains("4096"), "{e}");
        // Within the limit: read whole.
        let url = answering("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n", 100).await;
        assert_eq!(read_bounded(http.get(&url).send().await.expect("sent"), 4096).await.expect("read").len(), 100);
    }
}

#[cfg(test)]
mod admission_tests {
    use super::*;
    use crate::error::ApiError;

    #[test]
    fn a_learnt_bound_refuses_for_a_while_then_asks_again() {
        let (ana, bia) = (shared::AccountId::new(1).unwrap(), shared::AccountId::new(2).unwrap());
        let mut a = Admission::default();
        let limits = Limits {
            token_lost_ms: 0,
            hold_ms_max: 0,
            idle_hold_ms: 0,
            ring_lease_ms: 0,
            tick_ms: 0,
            in_doubt_ms: 0,
            package_deadline_ms: 0,
            batch_packages_max: 0,
            round_linger_ms: 0,
            batch_accounts_max: 0,
            settlement_queue_max: 10,
            admission_memory_ms: 20,
            pending_per_account_max: 16,
            retention: retention::Retention { clock_skew_ms_max: 0, retain_ms: 0 },
        };
        assert!(a.refused(ana, 1_000, &limits).is_none(), "nothing learnt: ask the data server");
        assert!(!a.pressed(1_000), "no bound met: commit at once");
        a.learn(ana, &ApiError::PackagesPending(16), 1_000, &limits);
        assert!(a.pressed(1_000 + ADMISSION_PRESSURE_MS - 1) && !a.pressed(1_000 + ADMISSION_PRESSURE_MS));
        assert!(matches!(
            a.refused(ana, 1_000 + limits.admission_memory_ms - 1, &limits),
            Some(ApiError::PackagesPending(_))
        ));
        assert!(a.refused(bia, 1_001, &limits).is_none(), "one author's bound is not another's");
        assert!(a.refused(ana, 1_000 + limits.admission_memory_ms, &limits).is_none(), "forgotten: ask again");
        a.learn(bia, &ApiError::SettlementBusy(10), 2_000, &limits);
        assert!(
            matches!(a.refused(ana, 2_001, &limits), Some(ApiError::SettlementBusy(10))),
            "the bank's bound is everyone's"
        );
        a.learn(ana, &ApiError::KeyNotFound, 3_000, &limits); // not a bound: learns nothing
        assert!(a.refused(ana, 3_001, &limits).is_none());
        for i in 1..=ADMISSION_AUTHORS_MAX as u64 + 10 {
            a.learn(shared::AccountId::new(i).unwrap(), &ApiError::PackagesPending(16), 4_000, &limits);
        }
        assert!(a.authors.len() <= ADMISSION_AUTHORS_MAX, "bounded");
    }

    #[test]
    fn submissions_looking_at_once_share_one_read() {
        use futures::FutureExt;
        let mut a = Admission::default();
        let reads = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
        let start = || {
            let reads = reads.clone();
            move || {
                reads.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                async { Some(7) }.boxed()
            }
        };
        let (first, answer) = a.look(start());
        let (second, shared) = a.look(start());
        assert_eq!((first, reads.load(std::sync::atomic::Ordering::Relaxed)), (second, 1), "one read for both");
        assert_eq!((answer.now_or_never(), shared.now_or_never()), (Some(Some(7)), Some(Some(7))));
        a.look_ended(first);
        a.look_ended(second); // a later end of the same look changes nothing
        let (third, _) = a.look(start());
        assert_ne!(third, first, "ended: the next submission reads anew");
        a.look_ended(first); // a stale id does not end the new look
        assert_eq!(a.look(start()).0, third);
        assert_eq!(reads.load(std::sync::atomic::Ordering::Relaxed), 2);
    }
}
