//! A real bank for the business server's integration tests: its data server and N business
//! replicas as processes on free ports, accounts opened through the data server's API.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::process::{Child, Command};

use business::model::{AccountRecord, AccountType, open_account_commit};
use dataserver::api::{AcquireRequest, LockRef};
use dataserver::testkit::{DataServerProcess, SpawnOptions, listening_addr, sibling_binary, spawn, spawn_command};
use reqwest::{Method, StatusCode};
use shared::api::OperationReceipt;
use shared::{AccountId, BusinessId, Document, ErrorBody, Money};

pub const OPERATOR_KEY: &str = "operator-key-for-tests";

pub struct Replica {
    child: Child,
    pub addr: SocketAddr,
    pub business: BusinessId,
}

impl Replica {
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn kill9(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// SIGTERM, then waits for the exit; whether it exited successfully.
    pub fn terminate(&mut self) -> bool {
        std::process::Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status().unwrap();
        self.child.wait().unwrap().success()
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub struct Bank {
    pub replicas: Vec<Replica>,
    pub ds: DataServerProcess,
    _dir: tempfile::TempDir,
}

pub fn business_key(b: BusinessId) -> String {
    format!("dataserver-key-for-business-{b}")
}

/// A data server and `n` replicas; `extra` is passed to every replica.
pub fn start_bank(n: u32, extra: &[&str]) -> Bank {
    let dir = tempfile::tempdir().unwrap();
    let ids: Vec<BusinessId> = (0..n).map(|i| BusinessId::new(11 + i).unwrap()).collect();
    let bin = sibling_binary("dataserver").expect("build the data server first: cargo build --workspace --bins");
    let ds = spawn(&SpawnOptions::new(bin, dir.path(), ids.iter().map(|b| (*b, business_key(*b))).collect())).unwrap();
    let replicas = ids
        .iter()
        .map(|b| {
            let mut cmd = Command::new(env!("CARGO_BIN_EXE_business"));
            cmd.args(["--listen", "127.0.0.1:0", "--bank-id", "1", "--business-id", &b.to_string()])
                .args([
                    "--dataserver",
                    &ds.url(),
                    "--dataserver-key",
                    &business_key(*b),
                    "--operator-key",
                    OPERATOR_KEY,
                ])
                .args(extra);
            let (child, line) = spawn_command(cmd, None).unwrap();
            Replica { child, addr: listening_addr(&line).unwrap(), business: *b }
        })
        .collect();
    Bank { replicas, ds, _dir: dir }
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
        let ds = self.ds.client(0);
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
            };
            ds.commit(&open_account_commit(format!("open-{id}"), lock, &record)).await.unwrap();
            if money(opening) != Money::ZERO {
                op.call(Method::POST, &format!("/deposit/{id}/{opening}"), None).await.unwrap();
            }
        }
    }

    pub fn operator(&self, replica: usize) -> OperatorClient {
        OperatorClient { http: reqwest::Client::new(), base: self.replicas[replica].url(), key: OPERATOR_KEY.into() }
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
        let resp = rb.send().await.map_err(|e| (None, ErrorBody::new("transport", e.to_string())))?;
        let status = resp.status();
        let text = resp.text().await.map_err(|e| (None, ErrorBody::new("transport", e.to_string())))?;
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
