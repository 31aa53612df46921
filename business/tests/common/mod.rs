//! A real bank for the business server's integration tests: its data server and N business
//! replicas as processes on free ports, accounts opened through the data server's API.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use business::model::{AccountRecord, AccountType, open_account_commit};
use dataserver_api::{AcquireRequest, LockRef};
#[allow(unused_imports)] // not every test file uses it
pub use harness::cluster::TEST_OPERATOR_KEY as OPERATOR_KEY;
use harness::cluster::{Cluster, Spec};
use harness::process::DataServerProcess;
use reqwest::{Method, StatusCode};
use shared::api::OperationReceipt;
use shared::{AccountId, Document, ErrorBody, Money};

/// One bank of the one harness: its data server and `n` business replicas as real processes on
/// free ports, with the harness's operator key.
pub struct Bank {
    pub cluster: Cluster,
    _dir: tempfile::TempDir,
}

/// A data server and `n` replicas; `extra` is passed to every replica.
pub fn start_bank(n: u32, extra: &[&str]) -> Bank {
    start_bank_with(n, extra, |_| {})
}

/// [`start_bank`], with the harness's spec adjusted first.
pub fn start_bank_with(n: u32, extra: &[&str], adjust: impl FnOnce(&mut Spec)) -> Bank {
    let dir = tempfile::tempdir().unwrap();
    let mut spec = Spec::ephemeral(1, n, dir.path());
    spec.business_args = extra.iter().map(|s| s.to_string()).collect();
    adjust(&mut spec);
    Bank {
        cluster: Cluster::start(&spec).expect("build the binaries first: cargo build --workspace --bins"),
        _dir: dir,
    }
}

impl Bank {
    pub fn url(&self, replica: usize) -> String {
        self.cluster.banks[0].replicas[replica].url()
    }

    pub fn ds(&self) -> &DataServerProcess {
        self.cluster.banks[0].ds.as_ref().expect("the data server runs")
    }

    /// SIGKILL a replica.
    pub fn kill_replica(&mut self, replica: usize) {
        self.cluster.kill_replica(0, replica);
    }

    /// SIGTERM a replica and wait; whether it exited cleanly.
    pub fn terminate_replica(&mut self, replica: usize) -> bool {
        self.cluster.terminate_replica(0, replica)
    }
}

pub fn acc(v: u64) -> AccountId {
    AccountId::new(v).unwrap()
}

pub fn money(s: &str) -> Money {
    s.parse().unwrap()
}

impl Bank {
    /// Opens accounts `ids` (through the data server, as account creation will) and deposits
    /// `opening` into each through the operator API.
    pub async fn open_accounts(&self, ids: impl IntoIterator<Item = u64>, opening: &str) {
        let ds = self.ds().client(0);
        let op = self.operator(0);
        for id in ids {
            let grant = ds.acquire(&AcquireRequest { accounts: vec![acc(id)], ..Default::default() }).await.unwrap();
            let lock = LockRef { account: acc(id), token: grant.locks[0].token };
            let record = AccountRecord {
                id: acc(id),
                name: format!("Holder {id}"),
                documents: vec![Document::with_check_digits(&format!("{:09}", 100_000_000 + id)).unwrap()],
                kind: AccountType::Individual,
                created_at: "2026-11-22T00:00:00Z".into(),
                password_hash: None,
                pending: vec![],
            };
            ds.commit(&open_account_commit(format!("open-{id}"), lock, &record)).await.unwrap();
            if money(opening) != Money::ZERO {
                op.call(Method::POST, &format!("/deposit/{id}/{opening}"), None).await.unwrap();
            }
        }
    }

    pub fn operator(&self, replica: usize) -> OperatorClient {
        OperatorClient { http: pki::http_client(), base: self.url(replica), key: self.cluster.operator_key.clone() }
    }
}

#[derive(Debug, Clone)]
pub struct OperatorClient {
    pub http: reqwest::Client,
    pub base: String,
    pub key: String,
}

/// A failed call: the status and error body, or `None` status for a transport error.
pub type CallError = (Option<StatusCode>, ErrorBody);

impl OperatorClient {
    pub async fn call(&self, method: Method, path: &str, idem: Option<&str>) -> Result<serde_json::Value, CallError> {
        let mut rb = self.http.request(method, format!("{}{path}", self.base)).header("auth", &self.key);
        if let Some(k) = idem {
            rb = rb.header("Idempotency-Key", k);
        }
        let resp = rb.send().await.map_err(|e| (None, ErrorBody::new(shared::ErrorCode::Transport, e.to_string())))?;
        let status = resp.status();
        let text =
            resp.text().await.map_err(|e| (None, ErrorBody::new(shared::ErrorCode::Transport, e.to_string())))?;
        if status.is_success() {
            Ok(serde_json::from_str(&text).unwrap())
        } else {
            let body =
                serde_json::from_str(&text).unwrap_or_else(|_| panic!("not the JSON error body: {status} {text}"));
            Err((Some(status), body))
        }
    }

    pub async fn op(&self, path: &str, idem: Option<&str>) -> Result<OperationReceipt, CallError> {
        self.call(Method::POST, path, idem).await.map(|v| serde_json::from_value(v).unwrap())
    }

    pub async fn balance(&self, id: u64) -> Money {
        let v = self.call(Method::GET, &format!("/balance/{id}"), None).await.unwrap();
        serde_json::from_value(v["balance"].clone()).unwrap()
    }
}
