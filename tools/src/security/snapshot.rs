//! Every bank's durable state, for a before/after comparison, and the servers' 5xx counters.

use std::collections::BTreeMap;

use harness::cluster::Cluster;

/// Every bank's durable state that a request could change, as (collection, key) → version, plus
/// the posted amounts and the journal's length. Ring bookkeeping is left out: the token moves by
/// itself.
pub async fn snapshot(c: &Cluster) -> crate::Result<BTreeMap<String, String>> {
    const COLLECTIONS: [&str; 15] = [
        "accounts",
        "idempotency",
        "holders",
        "counters",
        "sessions",
        "packages",
        "account_packages",
        "holds",
        "queue",
        "rounds",
        "undelivered",
        "prepared",
        "outcomes",
        "positions",
        "pix",
    ];
    let mut out = BTreeMap::new();
    for bank in &c.banks {
        let ds = bank.ds_client();
        let h = ds.health().await?;
        out.insert(format!("{}/accounts", bank.id), h.accounts.to_string());
        out.insert(format!("{}/journal_seq", bank.id), h.journal_seq.to_string());
        let amounts = ds.amounts_after(None, 1_000).await?;
        for a in amounts.amounts {
            out.insert(format!("{}/amount/{}", bank.id, a.account), a.amount.to_string());
        }
        for col in COLLECTIONS {
            let page = ds.scan_records(col, "", None, 1_000).await?;
            for r in page.records {
                out.insert(format!("{}/{col}/{}", bank.id, r.key), r.version.to_string());
            }
        }
    }
    Ok(out)
}

/// The differences between two snapshots, for a readable failure.
pub fn diff(before: &BTreeMap<String, String>, after: &BTreeMap<String, String>) -> Vec<String> {
    let mut d = Vec::new();
    for (k, v) in before {
        match after.get(k) {
            None => d.push(format!("{k}: gone (was {v})")),
            Some(w) if w != v => d.push(format!("{k}: {v} → {w}")),
            Some(_) => {}
        }
    }
    d.extend(after.iter().filter(|(k, _)| !before.contains_key(*k)).map(|(k, v)| format!("{k}: new ({v})")));
    d
}

/// The 5xx counters of every process, which must stay at zero.
pub async fn server_errors(c: &Cluster) -> crate::Result<u64> {
    let http = pki::http_client();
    let mut total = 0;
    for bank in &c.banks {
        let m = bank.ds_client().metrics().await?;
        total += counter(&m, "dataserver_responses_5xx_total");
        for url in bank.urls() {
            let r = http.get(format!("{url}/metrics")).bearer_auth(&c.operator_key).send().await;
            let m = r?.text().await?;
            total += counter(&m, "business_responses_5xx_total");
        }
    }
    Ok(total)
}

fn counter(metrics: &str, name: &str) -> u64 {
    metrics.lines().find_map(|l| l.strip_prefix(name).and_then(|v| v.trim().parse().ok())).unwrap_or(0)
}
