//! Typed HTTP clients of a bank's business API, as customers and operators use it: the tests,
//! the load tool and the checker all speak to the network through these.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use shared::api::{Account, Session, Statement, Transaction};
use shared::{ErrorBody, ErrorCode, Ibk, Money};

/// A failed call: the HTTP status (`None`: no answer) and the error body.
#[derive(Debug, Clone)]
pub struct CallError {
    pub status: Option<StatusCode>,
    pub body: ErrorBody,
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.status {
            Some(s) => write!(f, "{s} {}: {}", self.body.error, self.body.message),
            None => write!(f, "no answer: {}", self.body.message),
        }
    }
}

impl std::error::Error for CallError {}

pub type Result<T> = std::result::Result<T, CallError>;

/// How long a request refused for now (`503`, or `429` with `Retry-After`) is repeated before
/// its refusal is returned, when repeating is on ([`retry_refusals`]).
pub const RETRY_FOR_MS_MAX: u64 = 30_000;
/// Longest single wait between two tries; a longer `Retry-After` is not waited for.
pub const RETRY_WAIT_MS_MAX: u64 = 5_000;
/// First wait after a `503` without `Retry-After`; doubles up to [`RETRY_WAIT_MS_MAX`].
const RETRY_BACKOFF_MS_MIN: u64 = 100;

static RETRY_REFUSALS: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Makes every call of this process repeat refusals-for-now within [`RETRY_FOR_MS_MAX`]: the
/// operator tool turns it on (a bank still starting answers `503`), tests leave it off so that
/// they see each answer as it is.
pub fn retry_refusals(on: bool) {
    RETRY_REFUSALS.store(on, Relaxed);
}

/// How long to wait before trying again, if the answer (`status`, its `Retry-After` in seconds)
/// is a refusal for now: a `429` or `503` with a `Retry-After` up to [`RETRY_WAIT_MS_MAX`], or a
/// `503` without one (after `backoff_ms`). Anything else is the answer.
fn retry_wait(status: StatusCode, retry_after: Option<&str>, backoff_ms: u64) -> Option<std::time::Duration> {
    let after_s = retry_after.and_then(|v| v.trim().parse::<u64>().ok());
    let ms = match (status, after_s) {
        (StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE, Some(s)) => s.saturating_mul(1000),
        (StatusCode::SERVICE_UNAVAILABLE, None) => backoff_ms,
        _ => return None,
    };
    (ms <= RETRY_WAIT_MS_MAX).then(|| std::time::Duration::from_millis(ms.max(1)))
}

/// Sends a request (repeating refusals for now when [`retry_refusals`] is on) and decodes the
/// answer or the JSON error body.
pub async fn send<T: DeserializeOwned>(rb: reqwest::RequestBuilder) -> Result<T> {
    send_as(rb, RETRY_REFUSALS.load(Relaxed), None).await
}

/// [`send`], counting in `repeated` each refusal for now it waited out and repeated: a caller
/// that times the whole call (the load tool) can then tell how much of its latency was the
/// waits a busy bank asked for (`Retry-After`) rather than service.
pub async fn send_counted<T: DeserializeOwned>(rb: reqwest::RequestBuilder, repeated: &AtomicU64) -> Result<T> {
    send_as(rb, RETRY_REFUSALS.load(Relaxed), Some(repeated)).await
}

/// [`send`], repeating refusals for now whatever [`retry_refusals`] says: for a test that
/// expects to be told to come back, and comes back as a client does.
pub async fn send_retrying<T: DeserializeOwned>(rb: reqwest::RequestBuilder) -> Result<T> {
    send_as(rb, true, None).await
}

async fn send_as<T: DeserializeOwned>(
    rb: reqwest::RequestBuilder,
    retrying: bool,
    repeated: Option<&AtomicU64>,
) -> Result<T> {
    let until = std::time::Instant::now() + std::time::Duration::from_millis(RETRY_FOR_MS_MAX);
    let mut backoff_ms = RETRY_BACKOFF_MS_MIN;
    let mut rb = rb;
    loop {
        let again = if retrying { rb.try_clone() } else { None };
        let resp = rb.send().await.map_err(transport)?;
        if let Some(next) = again
            && let Some(wait) =
                retry_wait(resp.status(), resp.headers().get("retry-after").and_then(|v| v.to_str().ok()), backoff_ms)
            && std::time::Instant::now() + wait < until
        {
            if let Some(n) = repeated {
                n.fetch_add(1, Relaxed);
            }
            tokio::time::sleep(wait).await;
            backoff_ms = (backoff_ms * 2).min(RETRY_WAIT_MS_MAX);
            rb = next;
            continue;
        }
        return decode(resp).await;
    }
}

fn transport(e: reqwest::Error) -> CallError {
    CallError { status: None, body: ErrorBody::new(ErrorCode::Transport, e.to_string()) }
}

async fn decode<T: DeserializeOwned>(resp: reqwest::Response) -> Result<T> {
    let status = resp.status();
    let bytes = resp.bytes().await.map_err(transport)?;
    if status.is_success() {
        return serde_json::from_slice(&bytes).map_err(|e| CallError {
            status: Some(status),
            body: ErrorBody::new(ErrorCode::UnexpectedBody, format!("{e}: {}", String::from_utf8_lossy(&bytes))),
        });
    }
    let body = serde_json::from_slice(&bytes).unwrap_or_else(|_| {
        ErrorBody::new(ErrorCode::UnexpectedBody, String::from_utf8_lossy(&bytes).chars().take(300).collect::<String>())
    });
    Err(CallError { status: Some(status), body })
}

/// A customer signed in at one replica of their bank.
#[derive(Debug, Clone)]
pub struct Customer {
    pub http: reqwest::Client,
    pub base: String,
    pub token: String,
    pub account: Account,
}

/// Opens an individual account (`document`: a CPF) and signs in.
pub async fn sign_up(
    http: &reqwest::Client,
    base: &str,
    name: &str,
    document: &str,
    password: &str,
) -> Result<Customer> {
    let body = json!({ "name": name, "documents": [document], "type": "individual", "password": password });
    let account: Account = send(http.post(format!("{base}/api/accounts")).json(&body)).await?;
    sign_in(http, base, account.ibk, password).await
}

pub async fn sign_in(http: &reqwest::Client, base: &str, ibk: Ibk, password: &str) -> Result<Customer> {
    let s: Session =
        send(http.post(format!("{base}/api/accounts/auth")).json(&json!({ "ibk": ibk, "password": password }))).await?;
    Ok(Customer { http: http.clone(), base: base.to_string(), token: s.token, account: s.account })
}

impl Customer {
    pub fn ibk(&self) -> Ibk {
        self.account.ibk
    }

    pub fn at(&self, base: &str) -> Customer {
        Customer { base: base.to_string(), ..self.clone() }
    }

    pub async fn call<T: DeserializeOwned>(&self, method: Method, path: &str, body: Option<&Value>) -> Result<T> {
        let mut rb = self.http.request(method, format!("{}{path}", self.base)).bearer_auth(&self.token);
        if let Some(b) = body {
            rb = rb.json(b);
        }
        send(rb).await
    }

    /// Submits a package of `(from, to, amount)` operations authored by this account.
    pub async fn pay(&self, ops: &[(String, String, &str)]) -> Result<Transaction> {
        self.pay_with_key(ops, None).await
    }

    /// With an `Idempotency-Key`, the same call may be repeated after any failure.
    pub async fn pay_with_key(&self, ops: &[(String, String, &str)], key: Option<&str>) -> Result<Transaction> {
        send(self.pay_request(ops, key)).await
    }

    /// [`Customer::pay`], paying again after `Retry-After` while the bank says to come back
    /// ([`send_retrying`]).
    pub async fn pay_retrying(&self, ops: &[(String, String, &str)]) -> Result<Transaction> {
        send_retrying(self.pay_request(ops, None)).await
    }

    fn pay_request(&self, ops: &[(String, String, &str)], key: Option<&str>) -> reqwest::RequestBuilder {
        let operations: Vec<Value> = ops.iter().map(|(f, t, a)| json!({ "from": f, "to": t, "amount": a })).collect();
        let body = json!({ "author": self.ibk(), "operations": operations });
        let rb = self.http.post(format!("{}/api/payments/pay", self.base)).bearer_auth(&self.token).json(&body);
        match key {
            Some(k) => rb.header("Idempotency-Key", k),
            None => rb,
        }
    }

    /// Consents, as the holder signed in at this account's bank, to `grantee`'s debits of it in
    /// packages that bank coordinates for this person, up to `amount_max` in all.
    pub async fn consent(&self, grantee: u32, amount_max: &str) -> Result<shared::api::Consent> {
        let body = json!({ "account": self.ibk(), "grantee_bank": grantee, "amount_max": amount_max });
        self.call(Method::POST, "/api/consents", Some(&body)).await
    }

    pub async fn package(&self, id: &str) -> Result<Transaction> {
        self.call(Method::GET, &format!("/api/payments/{id}"), None).await
    }

    pub async fn me(&self) -> Result<Account> {
        self.call(Method::GET, &format!("/api/accounts/{}", self.ibk().account), None).await
    }

    pub async fn statement(&self) -> Result<Statement> {
        self.call(Method::GET, &format!("/api/accounts/{}/transactions?limit=100", self.ibk().account), None).await
    }
}

/// The operator (teller) API of one replica.
#[derive(Debug, Clone)]
pub struct Operator {
    pub http: reqwest::Client,
    pub base: String,
    pub key: String,
}

impl Operator {
    pub async fn call<T: DeserializeOwned>(&self, method: Method, path: &str) -> Result<T> {
        send(self.http.request(method, format!("{}{path}", self.base)).bearer_auth(&self.key)).await
    }

    pub async fn deposit(&self, ibk: Ibk, amount: &str) -> Result<Value> {
        self.call(Method::POST, &format!("/deposit/{}/{amount}", ibk.account)).await
    }

    pub async fn balance(&self, ibk: Ibk) -> Result<Money> {
        let v: Value = self.call(Method::GET, &format!("/balance/{}", ibk.account)).await?;
        serde_json::from_value(v["balance"].clone())
            .map_err(|e| CallError { status: None, body: ErrorBody::new(ErrorCode::UnexpectedBody, e.to_string()) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A server that refuses its first two requests `503` with `Retry-After: 0`, then answers
    /// `200` with a JSON number: the call comes back twice, counts both, and gets the answer.
    #[tokio::test]
    async fn each_refusal_repeated_is_counted() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let server = tokio::spawn(async move {
            for answer in 0..3 {
                let (mut s, _) = listener.accept().await.expect("accept");
                let mut buf = [0u8; 4096];
                let _ = s.read(&mut buf).await.expect("read");
                let reply = if answer < 2 {
                    "HTTP/1.1 503 Service Unavailable\r\nRetry-After: 0\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}"
                } else {
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n42"
                };
                s.write_all(reply.as_bytes()).await.expect("write");
            }
        });
        let http = pki::http_client();
        let repeated = AtomicU64::new(0);
        let answer: u64 = send_as(http.get(format!("http://{addr}/")), true, Some(&repeated))
            .await
            .expect("answered at the third try");
        assert_eq!(answer, 42);
        assert_eq!(repeated.load(Relaxed), 2, "both refusals counted");
        server.await.expect("server");
    }

    #[test]
    fn only_refusals_for_now_are_repeated_and_within_the_bound() {
        let s = std::time::Duration::from_secs;
        assert_eq!(retry_wait(StatusCode::TOO_MANY_REQUESTS, Some("2"), 100), Some(s(2)));
        assert_eq!(retry_wait(StatusCode::SERVICE_UNAVAILABLE, Some("1"), 100), Some(s(1)));
        assert_eq!(
            retry_wait(StatusCode::SERVICE_UNAVAILABLE, None, 100),
            Some(std::time::Duration::from_millis(100)),
            "a 503 without Retry-After backs off"
        );
        assert_eq!(retry_wait(StatusCode::TOO_MANY_REQUESTS, None, 100), None, "a 429 without Retry-After is final");
        assert_eq!(retry_wait(StatusCode::TOO_MANY_REQUESTS, Some("3600"), 100), None, "too long to wait");
        assert_eq!(retry_wait(StatusCode::TOO_MANY_REQUESTS, Some("soon"), 100), None);
        for final_ in [StatusCode::OK, StatusCode::BAD_REQUEST, StatusCode::CONFLICT, StatusCode::INTERNAL_SERVER_ERROR]
        {
            assert_eq!(retry_wait(final_, Some("1"), 100), None, "{final_} is an answer");
        }
    }
}
