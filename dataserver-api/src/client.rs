//! A typed client of the data server's API, used by business servers, tests and benchmarks.

use reqwest::{Method, RequestBuilder, StatusCode, Url};
use serde::Serialize;
use serde::de::DeserializeOwned;
use shared::{AccountId, BusinessId, Money};

use crate::{
    AcquireRequest, AcquireResponse, AmountBody, AmountPage, CommitRequest, CommitResponse, ErrorBody, ErrorCode,
    Health, JournalPage, LockGrant, LockRef, Record, RecordPage, ReleaseRequest, ReleaseResponse, SetAmountBody,
};

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("{status}: {body}")]
    Api { status: StatusCode, body: ErrorBody },
    #[error("transport: {0}")]
    Transport(#[from] reqwest::Error),
    #[error("bad URL: {0}")]
    Url(String),
}

impl ClientError {
    /// The stable error code, when the server answered with one.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            ClientError::Api { body, .. } => Some(body.error),
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

#[derive(Debug, Clone)]
pub struct DataClient {
    http: reqwest::Client,
    base: Url,
    business: BusinessId,
    key: String,
}

impl DataClient {
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
        let base = Url::parse(base).map_err(|e| ClientError::Url(e.to_string()))?;
        Ok(DataClient { http, base, business, key: key.into() })
    }

    pub fn business(&self) -> BusinessId {
        self.business
    }

    /// A URL from path segments, each percent-encoded (record keys may hold any character).
    fn url(&self, segments: &[&str]) -> Result<Url> {
        let mut url = self.base.clone();
        url.path_segments_mut()
            .map_err(|_| ClientError::Url("base URL cannot have a path".into()))?
            .pop_if_empty()
            .extend(segments);
        Ok(url)
    }

    fn request(&self, method: Method, segments: &[&str]) -> Result<RequestBuilder> {
        Ok(self.http.request(method, self.url(segments)?).bearer_auth(&self.key))
    }

    fn v1(&self, method: Method, rest: &[&str]) -> Result<RequestBuilder> {
        let b = self.business.to_string();
        let mut segs = vec!["v1", b.as_str()];
        segs.extend_from_slice(rest);
        self.request(method, &segs)
    }

    fn seed(&self, method: Method, route: &str, account: AccountId) -> Result<RequestBuilder> {
        self.request(method, &[route, &self.business.to_string(), &account.to_string()])
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

    async fn post_json<B: Serialize, T: DeserializeOwned>(&self, rb: RequestBuilder, body: &B) -> Result<T> {
        let _ = self;
        Self::send(rb.json(body)).await
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
        Self::send(self.seed(Method::POST, "getLock", account)?.query(&q)).await
    }

    pub async fn un_lock(&self, account: AccountId, token: u64) -> Result<serde_json::Value> {
        Self::send(self.seed(Method::POST, "unLock", account)?.query(&[("token", token)])).await
    }

    pub async fn set_amount(&self, account: AccountId, amount: Money, token: u64) -> Result<CommitResponse> {
        let body = SetAmountBody { amount, token, tx_id: None };
        self.post_json(self.seed(Method::POST, "setAmount", account)?, &body).await
    }

    pub async fn get_amount(&self, account: AccountId) -> Result<Money> {
        Ok(Self::send::<AmountBody>(self.seed(Method::GET, "getAmount", account)?).await?.amount)
    }

    // -- batch API --

    pub async fn acquire(&self, req: &AcquireRequest) -> Result<AcquireResponse> {
        self.post_json(self.v1(Method::POST, &["locks"])?, req).await
    }

    pub async fn release(&self, locks: &[LockRef]) -> Result<usize> {
        let body = ReleaseRequest { locks: locks.to_vec() };
        Ok(self.post_json::<_, ReleaseResponse>(self.v1(Method::POST, &["locks", "release"])?, &body).await?.released)
    }

    pub async fn commit(&self, req: &CommitRequest) -> Result<CommitResponse> {
        self.post_json(self.v1(Method::POST, &["commit"])?, req).await
    }

    pub async fn get_record(&self, collection: &str, key: &str) -> Result<Option<Record>> {
        match Self::send(self.v1(Method::GET, &["records", collection, key])?).await {
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
        Self::send(self.v1(Method::GET, &["records", collection])?.query(&q)).await
    }

    pub async fn account_journal(&self, account: AccountId, before: Option<u64>, limit: usize) -> Result<JournalPage> {
        let mut q = vec![("account", account.to_string()), ("limit", limit.to_string())];
        if let Some(b) = before {
            q.push(("before", b.to_string()));
        }
        Self::send(self.v1(Method::GET, &["journal"])?.query(&q)).await
    }

    pub async fn journal_after(&self, after: u64, limit: usize) -> Result<JournalPage> {
        Self::send(
            self.v1(Method::GET, &["journal"])?.query(&[("after", after.to_string()), ("limit", limit.to_string())]),
        )
        .await
    }

    pub async fn amounts_after(&self, after: Option<AccountId>, limit: usize) -> Result<AmountPage> {
        let mut q = vec![("limit", limit.to_string())];
        if let Some(a) = after {
            q.push(("after", a.to_string()));
        }
        Self::send(self.v1(Method::GET, &["amounts"])?.query(&q)).await
    }

    /// The posted amount, regardless of who holds the account's lease; `None` if never written.
    pub async fn posted_amount(&self, account: AccountId) -> Result<Option<Money>> {
        let a = account.to_string();
        match Self::send::<AmountBody>(self.v1(Method::GET, &["amounts", &a])?).await {
            Ok(b) => Ok(Some(b.amount)),
            Err(ClientError::Api { status: StatusCode::NOT_FOUND, .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    pub async fn health(&self) -> Result<Health> {
        Self::send(self.http.get(self.url(&["health"])?)).await
    }

    pub async fn metrics(&self) -> Result<String> {
        let resp = self.request(Method::GET, &["metrics"])?.send().await?;
        Ok(resp.error_for_status()?.text().await?)
    }
}
