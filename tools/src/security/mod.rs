//! The security suite over a real network: an authorization matrix and a table of hostile
//! requests across every endpoint of the three APIs (data server, business — operator and
//! customer — and interbank), each of which must be refused with a 4xx and the JSON error body,
//! while a snapshot of every bank's durable state stays exactly as it was.
//!
//! Both tables are data: a [`Probe`] per request, built by [`authorization_matrix`] and
//! [`hostile_table`] from a prepared [`World`], sent by [`run`]. The integration test and
//! `interbank reliability` call the same functions.

mod hostile;
mod matrix;
mod runner;
mod snapshot;
mod world;

use std::collections::BTreeMap;

use reqwest::Method;

use harness::cluster::Cluster;

pub use hostile::hostile_table;
pub use matrix::authorization_matrix;
pub use runner::run;
pub use snapshot::{diff, server_errors, snapshot};
pub use world::{PASSWORD, World, prepare};

/// Credentials a probe presents.
#[derive(Debug, Clone)]
pub enum Cred {
    None,
    /// `Authorization: Bearer …` with this value (a session, an operator key, a data-server key).
    Bearer(String),
    /// A bank over mutual TLS: the certificate of bank `identity`, claiming to be `bank` in
    /// `X-Interbank-Bank`.
    Peer {
        bank: u32,
        identity: u32,
    },
}

/// What a probe must get back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// 401 or 403.
    Denied,
    /// Any 4xx.
    Refused,
    /// Exactly this status.
    Status(u16),
}

#[derive(Debug, Clone)]
pub struct Probe {
    /// Which API and what the probe tries, for the report.
    pub api: &'static str,
    pub what: String,
    pub method: Method,
    pub url: String,
    pub cred: Cred,
    pub headers: Vec<(&'static str, String)>,
    pub body: Option<Vec<u8>>,
    pub expect: Expect,
}

/// What a table run found.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    pub tried: usize,
    pub by_api: BTreeMap<&'static str, usize>,
    pub violations: Vec<String>,
}

struct Table<'w> {
    w: &'w World,
    probes: Vec<Probe>,
}

impl Table<'_> {
    #[allow(clippy::too_many_arguments)]
    fn push(
        &mut self,
        api: &'static str,
        what: &str,
        method: Method,
        url: String,
        cred: Cred,
        body: Option<Vec<u8>>,
        expect: Expect,
    ) {
        self.probes.push(Probe { api, what: what.into(), method, url, cred, headers: vec![], body, expect });
    }

    fn bank1(&self, path: &str) -> String {
        format!("{}{path}", self.w.business[0])
    }

    fn ds(&self, path: &str) -> String {
        format!("{}{path}", self.w.dataserver)
    }

    fn operator(&self) -> Cred {
        Cred::Bearer(self.w.operator_key.clone())
    }

    /// Customer A's session.
    fn customer(&self) -> Cred {
        Cred::Bearer(self.w.a.token.clone())
    }

    /// Bank 2, with its own certificate.
    fn peer(&self) -> Cred {
        Cred::Peer { bank: 2, identity: 2 }
    }

    /// Bank 1's interbank (mutual TLS) listener.
    fn interbank1(&self, path: &str) -> String {
        format!("{}{path}", self.w.interbank[0])
    }

    /// Bank 1's first business key at its data server.
    fn ds_key(&self) -> Cred {
        Cred::Bearer(self.w.ds_keys[0].clone())
    }
}

/// A JSON body of about `n` bytes.
fn huge(n: usize) -> Option<Vec<u8>> {
    Some(format!(r#"{{"x":"{}"}}"#, "a".repeat(n)).into_bytes())
}

fn body(v: &str) -> Option<Vec<u8>> {
    Some(v.as_bytes().to_vec())
}

/// What [`suite`] found.
#[derive(Debug)]
pub struct Suite {
    pub world: World,
    pub matrix: Outcome,
    pub hostile: Outcome,
    /// Changes of durable state between before and after, and any 5xx answered.
    pub changed: Vec<String>,
}

/// Prepares the world, then runs both tables between two snapshots.
pub async fn suite(c: &Cluster) -> crate::Result<Suite> {
    let world = prepare(c).await?;
    let before = snapshot(c).await?;
    let matrix = run(&world, &authorization_matrix(&world)).await;
    let hostile = run(&world, &hostile_table(&world)).await;
    let after = snapshot(c).await?;
    let mut changed = diff(&before, &after);
    let errors = server_errors(c).await?;
    if errors > 0 {
        changed.push(format!("{errors} responses were 5xx"));
    }
    Ok(Suite { world, matrix, hostile, changed })
}
