//! The world the tables run against: two customers at bank 1, keys, secrets, addresses.

use harness::client::{Customer, Operator, sign_up};
use harness::cluster::Cluster;
use reqwest::Method;
use serde_json::{Value, json};
use shared::Document;

use crate::Error;

/// The network the tables are built against: two banks, customers with money, a Pix key, an
/// idempotent deposit already made, and a session already revoked.
#[derive(Debug)]
pub struct World {
    pub business: [String; 2],
    pub dataserver: String,
    pub ds_business: [u32; 2],
    pub ds_keys: [String; 2],
    pub operator_key: String,
    /// Banks 1 and 2's interbank (mutual TLS) listeners.
    pub interbank: [String; 2],
    /// Clients presenting bank n's certificate (banks 1 and 2), and one with a certificate of
    /// a CA the network does not know.
    pub as_bank: std::collections::BTreeMap<u32, reqwest::Client>,
    pub a: Customer,
    pub b: Customer,
    pub c: Customer,
    pub revoked: String,
    pub key: String,
    pub package: String,
    pub idempotency_key: String,
}

pub const PASSWORD: &str = "senha-muito-segura-1";

pub(crate) fn cpf(n: u64) -> String {
    Document::with_check_digits(&format!("{:09}", 410_000_000 + n)).expect("nine digits").formatted()
}

/// Prepares the world on a started cluster of at least two banks.
pub async fn prepare(c: &Cluster) -> crate::Result<World> {
    let http = pki::http_client();
    let (b1, b2) = (c.banks[0].urls()[0].clone(), c.banks[1].urls()[0].clone());
    let a = sign_up(&http, &b1, "Ana Segura", &cpf(1), PASSWORD).await?;
    let b = sign_up(&http, &b1, "Bruno Segura", &cpf(2), PASSWORD).await?;
    let cu = sign_up(&http, &b2, "Carla Segura", &cpf(3), PASSWORD).await?;
    for (base, who) in [(&b1, &a), (&b1, &b), (&b2, &cu)] {
        let op = Operator { http: http.clone(), base: base.clone(), key: c.operator_key.clone() };
        op.deposit(who.ibk(), "100").await?;
    }
    let key = "ana.segura@example.com".to_string();
    let _: Value =
        a.call(Method::POST, "/api/keys", Some(&json!({ "account": a.ibk(), "type": "email", "key": key }))).await?;
    // A same-bank package, so that a package id exists to be asked about.
    let t = a.pay(&[(a.ibk().to_string(), b.ibk().to_string(), "1")]).await?;
    let idempotency_key = "security-suite-deposit-1".to_string();
    let r = http
        .post(format!("{b1}/api/payments/deposit"))
        .bearer_auth(&a.token)
        .header("idempotency-key", &idempotency_key)
        .json(&json!({ "acc_ibk": a.ibk(), "amount": "1.00" }))
        .send()
        .await?;
    if !r.status().is_success() {
        return Err(Error::run(format!("idempotent deposit: {}", r.status())));
    }
    // A second session of A's, then revoked: it must open nothing afterwards.
    let other = harness::client::sign_in(&http, &b1, a.ibk(), PASSWORD).await?;
    let r = http.delete(format!("{b1}/api/accounts/auth")).bearer_auth(&other.token).send().await;
    if r?.status() != 204 {
        return Err(Error::run("logout did not answer 204"));
    }
    let ids = &c.banks[0].ds_opts.keys;
    Ok(World {
        business: [b1, b2],
        dataserver: c.banks[0].ds_url(),
        ds_business: [ids[0].0.get(), ids.get(1).map_or(ids[0].0.get() + 1, |k| k.0.get())],
        ds_keys: [ids[0].1.clone(), format!("{}-wrong", ids[0].1)],
        operator_key: c.operator_key.clone(),
        interbank: [c.banks[0].replicas[0].interbank_url(), c.banks[1].replicas[0].interbank_url()],
        as_bank: [1, 2].into_iter().map(|n| Ok((n, c.pki.client_as(n)?))).collect::<crate::Result<_>>()?,
        revoked: other.token,
        a,
        b,
        c: cu,
        key,
        package: t.id,
        idempotency_key,
    })
}
