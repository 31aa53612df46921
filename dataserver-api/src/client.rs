//! A typed client of the data server's API, used by business servers, tests and benchmarks.

use reqwest::{Method, RequestBuilder, StatusCode, Url};
use serde::de::DeserializeOwned;
use shared::{AccountId, BusinessId, Money};

use crate::{
    AcquireRequest, AcquireResponse, AmountBody, AmountPage, CommitRequest, CommitResponse, CommitResult,
    CommitsResponse, ErrorBody, ErrorCode, Health, JournalPage, LockGrant, LockRef, Record, RecordKey, RecordPage,
    ReleaseRequest, ReleaseResponse, SetAmountBody,
};

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("{status}: {body}")]
    Api { status: StatusCode, body: ErrorBody },
    #[error("transport: {0}")]
    Transport(#[from] reqwest::Error),
    #[error("bad URL: {0}")]
    Url(String),
    /// The request that carried this commit among others failed as a whole (see
    /// [`DataClient::commit_many`]): each commit of it gets this, the failure said in words.
    #[error("{0}")]
    Shared(String),
}

impl ClientError {
    /// The stable error code, when the server answered with one.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            ClientError::Api { body, .. } => Some(body.error),
            _ => None,
        }
    }

    /// On `count_reached`: the prefix whose bound was met (empty: the whole collection's).
    pub fn count_reached_under(&self) -> Option<&str> {
        match self {
            ClientError::Api { body, .. } if body.error == ErrorCode::CountReached => body.prefix.as_deref(),
            _ => None,
        }
    }

    pub fn status(&self) -> Option<StatusCode> {
        match self {
            ClientError::Api { status, .. } => Some(*status),
            _ => None,
        }
    }
}

pub type Result<T> = std::result::Result<T, ClientError>;

/// Most threads of one [`DataClient::per_thread`] client with a connection pool of their own:
/// servers send from a handful (their HTTP workers and a runtime of background tasks).
pub const POOLS_PER_CLIENT_MAX: usize = 64;

/// The per-thread pools of a [`DataClient::per_thread`] client.
struct Pools {
    make: Box<dyn Fn() -> reqwest::Result<reqwest::Client> + Send + Sync>,
    by_thread: std::sync::Mutex<std::collections::HashMap<std::thread::ThreadId, reqwest::Client>>,
}

impl std::fmt::Debug for Pools {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pools").finish_non_exhaustive()
    }
}

/// A client of one bank's data server — or of its data servers, when the bank runs an active
/// one and standbys on a shared database: it follows the leader by itself. A request is sent
/// again to the next address only when the one it went to surely did not serve it (the
/// connection was refused, or a standby answered `503 not_leader`), so nothing is ever done
/// twice; every other failure is the caller's, as with one address.
#[derive(Debug, Clone)]
pub struct DataClient {
    http: reqwest::Client,
    /// A connection pool per sending thread, when built with [`DataClient::per_thread`].
    pools: Option<std::sync::Arc<Pools>>,
    bases: std::sync::Arc<[Url]>,
    /// The address that answered last (an index into `bases`).
    current: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    business: BusinessId,
    key: String,
    /// Longest a request waits for its whole answer beyond any lock wait it asks for (see
    /// [`ANSWER_MS_MAX_DEFAULT`]).
    answer_ms_max: u64,
}

/// Longest a request to a data server waits for its whole answer, beyond the lock wait it asks
/// for, unless [`DataClient::with_answer_ms_max`] says otherwise. Without a bound, a data server
/// that stopped answering without closing its connections (a hung process or disk, a silent
/// network partition) held every request sent to it — a replica's HTTP workers, the commits
/// waiting to share a request, the token holder's round — until the kernel gave up on the
/// connection, minutes later. A request that runs out is a transport failure, which every
/// caller already treats as "maybe applied": a commit is repeated under its same id (the data
/// server applies an id once) or answered as of unknown outcome, never as refused.
pub const ANSWER_MS_MAX_DEFAULT: u64 = 5_000;

impl DataClient {
    /// `base`: one address, or several separated by commas (the bank's data servers).
    pub fn new(base: &str, business: BusinessId, key: impl Into<String>) -> Result<DataClient> {
        let http = pki::http().pool_max_idle_per_host(1024).tcp_nodelay(true).build()?;
        DataClient::with_http(http, base, business, key)
    }

    /// Shares one connection pool among several clients.
    pub fn with_http(
        http: reqwest::Client,
        base: &str,
        business: BusinessId,
        key: impl Into<String>,
    ) -> Result<DataClient> {
        let bases = base
            .split(',')
            .map(|b| Url::parse(b.trim()).map_err(|e| ClientError::Url(format!("{b}: {e}"))))
            .collect::<Result<Vec<_>>>()?;
        if bases.iter().any(|b| b.cannot_be_a_base()) {
            return Err(ClientError::Url("a data server address cannot have a path".into()));
        }
        Ok(DataClient {
            http,
            pools: None,
            bases: bases.into(),
            current: Default::default(),
            business,
            key: key.into(),
            answer_ms_max: ANSWER_MS_MAX_DEFAULT,
        })
    }

    /// The same client, each request waiting at most `ms` for its answer beyond the lock wait
    /// it asks for (see [`ANSWER_MS_MAX_DEFAULT`]).
    #[must_use]
    pub fn with_answer_ms_max(mut self, ms: u64) -> DataClient {
        self.answer_ms_max = ms;
        self
    }

    /// How long a request that asks to wait `wait_ms` for locks may take in all.
    fn answer_within(&self, wait_ms: Option<u64>) -> std::time::Duration {
        std::time::Duration::from_millis(self.answer_ms_max.saturating_add(wait_ms.unwrap_or(0)))
    }

    /// A client that keeps one connection pool per thread that sends through it, each built by
    /// `make`. A pooled connection is driven by a task on the runtime that opened it, so with
    /// one pool shared by several runtimes (an actix server's workers, a background task's),
    /// most requests went to a connection another thread drives: two cross-thread wake-ups per
    /// request, which `strace` counted at ~470 a second on one replica at 1,200 packages/s.
    /// At most [`POOLS_PER_CLIENT_MAX`] threads get their own; the rest share `make`'s first.
    pub fn per_thread(
        make: impl Fn() -> reqwest::Result<reqwest::Client> + Send + Sync + 'static,
        base: &str,
        business: BusinessId,
        key: impl Into<String>,
    ) -> Result<DataClient> {
        let mut client = DataClient::with_http(make()?, base, business, key)?;
        client.pools = Some(std::sync::Arc::new(Pools { make: Box::new(make), by_thread: Default::default() }));
        Ok(client)
    }

    /// The pool of the calling thread (see [`DataClient::per_thread`]).
    fn http(&self) -> reqwest::Client {
        let Some(pools) = &self.pools else { return self.http.clone() };
        let thread = std::thread::current().id();
        let mut by_thread = pools.by_thread.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(http) = by_thread.get(&thread) {
            return http.clone();
        }
        if by_thread.len() >= POOLS_PER_CLIENT_MAX {
            return self.http.clone();
        }
        match (pools.make)() {
            Ok(http) => {
                by_thread.insert(thread, http.clone());
                http
            }
            // Built once already with the same settings; should it fail now, the shared pool
            // serves this thread as it served every thread before.
            Err(_) => self.http.clone(),
        }
    }

    pub fn business(&self) -> BusinessId {
        self.business
    }

    /// A URL from path segments on `base`, each percent-encoded (record keys may hold any character).
    fn url(base: &Url, segments: &[&str]) -> Result<Url> {
        let mut url = base.clone();
        url.path_segments_mut()
            .map_err(|_| ClientError::Url("base URL cannot have a path".into()))?
            .pop_if_empty()
            .extend(segments);
        Ok(url)
    }

    fn request(&self, base: &Url, method: Method, segments: &[&str]) -> Result<RequestBuilder> {
        Ok(self
            .http()
            .request(method, Self::url(base, segments)?)
            .bearer_auth(&self.key)
            .timeout(self.answer_within(None)))
    }

    fn v1(&self, base: &Url, method: Method, rest: &[&str]) -> Result<RequestBuilder> {
        let b = self.business.to_string();
        let mut segs = vec!["v1", b.as_str()];
        segs.extend_from_slice(rest);
        self.request(base, method, &segs)
    }

    fn seed(&self, base: &Url, method: Method, route: &str, account: AccountId) -> Result<RequestBuilder> {
        self.request(base, method, &[route, &self.business.to_string(), &account.to_string()])
    }

    /// Sends the request `build` makes for an address, to the leader as far as this client
    /// knows, and to the next address when that one surely did not serve it.
    async fn call<T: DeserializeOwned>(&self, build: impl Fn(&Url) -> Result<RequestBuilder>) -> Result<T> {
        use std::sync::atomic::Ordering;
        let n = self.bases.len();
        let mut tried = 1;
        loop {
            let i = self.current.load(Ordering::Relaxed) % n;
            match Self::send(build(&self.bases[i])?).await {
                Err(e) if tried < n && not_served(&e) => {
                    let _ = self.current.compare_exchange(i, (i + 1) % n, Ordering::Relaxed, Ordering::Relaxed);
                    tried += 1;
                }
                answer => return answer,
            }
        }
    }

    pub async fn send<T: DeserializeOwned>(rb: RequestBuilder) -> Result<T> {
        let resp = rb.send().await?;
        let status = resp.status();
        if status.is_success() {
            return Ok(resp.json().await?);
        }
        let bytes = resp.bytes().await?;
        let body = serde_json::from_slice(&bytes).unwrap_or_else(|_| {
            ErrorBody::new(
                ErrorCode::UnexpectedBody,
                String::from_utf8_lossy(&bytes).chars().take(200).collect::<String>(),
            )
        });
        Err(ClientError::Api { status, body })
    }

    // -- seed 004 --

    pub async fn get_lock(&self, account: AccountId, lease_ms: Option<u64>, wait_ms: Option<u64>) -> Result<LockGrant> {
        let mut q = Vec::new();
        if let Some(v) = lease_ms {
            q.push(("lease_ms", v));
        }
        if let Some(v) = wait_ms {
            q.push(("wait_ms", v));
        }
        self.call(|b| {
            Ok(self.seed(b, Method::POST, "getLock", account)?.query(&q).timeout(self.answer_within(wait_ms)))
        })
        .await
    }

    pub async fn un_lock(&self, account: AccountId, token: u64) -> Result<serde_json::Value> {
        self.call(|b| Ok(self.seed(b, Method::POST, "unLock", account)?.query(&[("token", token)]))).await
    }

    pub async fn set_amount(&self, account: AccountId, amount: Money, token: u64) -> Result<CommitResponse> {
        let body = SetAmountBody { amount, token, tx_id: None };
        self.call(|b| Ok(self.seed(b, Method::POST, "setAmount", account)?.json(&body))).await
    }

    pub async fn get_amount(&self, account: AccountId) -> Result<Money> {
        Ok(self.call::<AmountBody>(|b| self.seed(b, Method::GET, "getAmount", account)).await?.amount)
    }

    // -- batch API --

    pub async fn acquire(&self, req: &AcquireRequest) -> Result<AcquireResponse> {
        self.call(|b| Ok(self.v1(b, Method::POST, &["locks"])?.json(req).timeout(self.answer_within(req.wait_ms))))
            .await
    }

    /// Several records in one request, in the order of `keys` (`None`: absent): a lock call
    /// that locks nothing. At most twice the data server's `lock_batch_max` keys.
    pub async fn get_records(&self, keys: Vec<RecordKey>) -> Result<Vec<Option<Record>>> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let req = AcquireRequest { read: keys, ..AcquireRequest::default() };
        Ok(self.acquire(&req).await?.records)
    }

    pub async fn release(&self, locks: &[LockRef]) -> Result<usize> {
        let body = ReleaseRequest { locks: locks.to_vec() };
        let r: ReleaseResponse =
            self.call(|b| Ok(self.v1(b, Method::POST, &["locks", "release"])?.json(&body))).await?;
        Ok(r.released)
    }

    pub async fn commit(&self, req: &CommitRequest) -> Result<CommitResponse> {
        self.call(|b| Ok(self.v1(b, Method::POST, &["commit"])?.json(req))).await
    }

    /// Several independent commits in one request ([`crate::CommitsRequest`]): one result per
    /// commit, in order, each what [`DataClient::commit`] would have returned for it alone. The
    /// outer error is the request's own (transport, or a refusal of the whole request).
    pub async fn commit_many(&self, commits: &[CommitRequest]) -> Result<Vec<Result<CommitResponse>>> {
        #[derive(serde::Serialize)]
        struct Body<'a> {
            commits: &'a [CommitRequest],
        }
        let body = Body { commits };
        let answer: CommitsResponse = self.call(|b| Ok(self.v1(b, Method::POST, &["commits"])?.json(&body))).await?;
        if answer.results.len() != commits.len() {
            return Err(ClientError::Shared(format!(
                "the data server answered {} results for {} commits",
                answer.results.len(),
                commits.len()
            )));
        }
        Ok(answer
            .results
            .into_iter()
            .map(|r| match r {
                CommitResult::Committed(c) => Ok(c),
                CommitResult::Refused { status, body } => Err(ClientError::Api {
                    status: StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
                    body,
                }),
            })
            .collect())
    }

    pub async fn get_record(&self, collection: &str, key: &str) -> Result<Option<Record>> {
        match self.call(|b| self.v1(b, Method::GET, &["records", collection, key])).await {
            Ok(r) => Ok(Some(r)),
            Err(ClientError::Api { status: StatusCode::NOT_FOUND, .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    pub async fn scan_records(
        &self,
        collection: &str,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<RecordPage> {
        let mut q = vec![("prefix", prefix.to_string()), ("limit", limit.to_string())];
        if let Some(a) = after {
            q.push(("after", a.to_string()));
        }
        self.call(|b| Ok(self.v1(b, Method::GET, &["records", collection])?.query(&q))).await
    }

    pub async fn account_journal(&self, account: AccountId, before: Option<u64>, limit: usize) -> Result<JournalPage> {
        let mut q = vec![("account", account.to_string()), ("limit", limit.to_string())];
        if let Some(b) = before {
            q.push(("before", b.to_string()));
        }
        self.call(|b| Ok(self.v1(b, Method::GET, &["journal"])?.query(&q))).await
    }

    pub async fn journal_after(&self, after: u64, limit: usize) -> Result<JournalPage> {
        let q = [("after", after.to_string()), ("limit", limit.to_string())];
        self.call(|b| Ok(self.v1(b, Method::GET, &["journal"])?.query(&q))).await
    }

    pub async fn amounts_after(&self, after: Option<AccountId>, limit: usize) -> Result<AmountPage> {
        let mut q = vec![("limit", limit.to_string())];
        if let Some(a) = after {
            q.push(("after", a.to_string()));
        }
        self.call(|b| Ok(self.v1(b, Method::GET, &["amounts"])?.query(&q))).await
    }

    /// The posted amount, regardless of who holds the account's lease; `None` if never written.
    pub async fn posted_amount(&self, account: AccountId) -> Result<Option<Money>> {
        let a = account.to_string();
        match self.call::<AmountBody>(|b| self.v1(b, Method::GET, &["amounts", &a])).await {
            Ok(b) => Ok(Some(b.amount)),
            Err(ClientError::Api { status: StatusCode::NOT_FOUND, .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    pub async fn health(&self) -> Result<Health> {
        self.call(|b| Ok(self.http().get(Self::url(b, &["health"])?).timeout(self.answer_within(None)))).await
    }

    /// The metrics of the data server this client reaches now (the leader, when there are several).
    pub async fn metrics(&self) -> Result<String> {
        use std::sync::atomic::Ordering;
        let i = self.current.load(Ordering::Relaxed) % self.bases.len();
        let resp = self.request(&self.bases[i], Method::GET, &["metrics"])?.send().await?;
        Ok(resp.error_for_status()?.text().await?)
    }
}

/// Whether a failure says that the data server did not serve the request at all, so sending it
/// to another address cannot do it twice: the connection was refused, or a standby said so.
fn not_served(e: &ClientError) -> bool {
    match e {
        ClientError::Transport(t) => t.is_connect(),
        ClientError::Api { status, body } => {
            *status == StatusCode::SERVICE_UNAVAILABLE && body.error == ErrorCode::NotLeader
        }
        ClientError::Url(_) | ClientError::Shared(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Each sending thread gets a pool of its own, built once and kept; past
    /// `POOLS_PER_CLIENT_MAX` threads, the rest share the first.
    #[test]
    fn a_per_thread_client_builds_one_pool_per_thread_up_to_its_bound() {
        let built = Arc::new(AtomicUsize::new(0));
        let counted = built.clone();
        let make = move || {
            counted.fetch_add(1, Ordering::SeqCst);
            pki::http().build()
        };
        let business = BusinessId::new(1).unwrap();
        let client = DataClient::per_thread(make, "http://127.0.0.1:1", business, "key").unwrap();
        assert_eq!(built.load(Ordering::SeqCst), 1, "the shared pool, built at once");
        client.http();
        client.http();
        assert_eq!(built.load(Ordering::SeqCst), 2, "this thread's pool, built once");
        std::thread::scope(|s| {
            for _ in 0..POOLS_PER_CLIENT_MAX + 6 {
                s.spawn(|| client.http());
            }
        });
        assert_eq!(built.load(Ordering::SeqCst), 1 + POOLS_PER_CLIENT_MAX, "no more pools than the bound");
        let shared =
            DataClient::with_http(pki::http().build().unwrap(), "http://127.0.0.1:1", business, "key").unwrap();
        assert!(shared.pools.is_none(), "with_http shares one pool, as before");
    }
}
