//! Sends the probes and checks each answer: the expected status and the JSON error body.

use shared::ErrorBody;

use super::{Cred, Expect, Outcome, Probe, World};

/// Whether `text` is the JSON error body with one of that API's codes.
fn error_body_of(api: &str, text: &str) -> bool {
    if api == "dataserver" {
        serde_json::from_str::<dataserver_api::ErrorBody>(text).is_ok()
    } else {
        serde_json::from_str::<ErrorBody>(text).is_ok()
    }
}

/// Sends every probe and checks its answer; a peer's probe goes with that bank's certificate.
pub async fn run(w: &World, probes: &[Probe]) -> Outcome {
    let http = pki::http().timeout(std::time::Duration::from_secs(30)).build().expect("client");
    let mut out = Outcome::default();
    for p in probes {
        out.tried += 1;
        *out.by_api.entry(p.api).or_insert(0) += 1;
        let client = match &p.cred {
            Cred::Peer { identity, .. } => w.as_bank.get(identity).unwrap_or(&http),
            _ => &http,
        };
        let mut rb = client.request(p.method.clone(), &p.url);
        rb = match &p.cred {
            Cred::None => rb,
            Cred::Bearer(v) => rb.header("authorization", format!("Bearer {v}")),
            // Bank 0 is no bank: the certificate alone, naming nobody.
            Cred::Peer { bank: 0, .. } => rb,
            Cred::Peer { bank, .. } => rb.header(shared::api::BANK_HEADER, bank.to_string()),
        };
        for (k, v) in &p.headers {
            rb = rb.header(*k, v.as_bytes());
        }
        if let Some(b) = &p.body {
            rb = rb.header("content-type", "application/json").body(b.clone());
        }
        let label = format!("[{}] {} {} ({})", p.api, p.method, p.url, p.what);
        let resp = match rb.send().await {
            Ok(r) => r,
            Err(e) => {
                out.violations.push(format!("{label}: no answer: {e}"));
                continue;
            }
        };
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        let ok_status = match p.expect {
            Expect::Denied => status == 401 || status == 403,
            Expect::Refused => (400..500).contains(&status),
            Expect::Status(s) => status == s,
        };
        if !ok_status {
            out.violations.push(format!("{label}: expected {:?}, got {status}: {text:.200}", p.expect));
        } else if !error_body_of(p.api, &text) {
            out.violations.push(format!("{label}: {status} without the JSON error body: {text:.200}"));
        }
    }
    out
}
