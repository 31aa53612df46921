//! SIGTERM drains: requests a replica accepted are answered (and durable) before it exits.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{money, start_bank};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_answers_every_accepted_request_then_exits_cleanly() {
    let mut bank = start_bank(1, &[]);
    bank.open_accounts([1], "0").await;
    let url = bank.url(0);
    let http = pki::http_client();
    let (first_tx, first_rx) = tokio::sync::oneshot::channel::<()>();
    let first_tx = std::sync::Arc::new(std::sync::Mutex::new(Some(first_tx)));
    let mut tasks = Vec::new();
    for i in 0..200 {
        let (http, url, first_tx) = (http.clone(), url.clone(), first_tx.clone());
        tasks.push(tokio::spawn(async move {
            let r = http
                .post(format!("{url}/deposit/1/1.00"))
                .header("auth", common::OPERATOR_KEY)
                .header("Idempotency-Key", format!("drain-{i}"))
                .send()
                .await;
            if let Some(tx) = first_tx.lock().unwrap().take() {
                let _ = tx.send(());
            }
            r.map(|resp| resp.status()).map_err(|_| ())
        }));
    }
    // Stop while the burst is in flight.
    first_rx.await.unwrap();
    let clean = bank.terminate_replica(0);
    let mut ok = 0u32;
    for t in tasks {
        // Refused or reset before the server took it (the listener or an idle keep-alive
        // connection closing) is fine, as long as nothing was applied for it (checked below).
        // An accepted request is answered: applied (2xx), or refused with nothing applied (a
        // 409 account_busy when the burst outwaits the lock wait) — never a 5xx.
        if let Ok(status) = t.await.unwrap() {
            assert!(status.is_success() || status.as_u16() == 409, "an accepted request failed: {status}");
            ok += u32::from(status.is_success());
        }
    }
    assert!(clean, "the replica did not exit cleanly on SIGTERM");
    assert!(ok > 0);
    // Applied ⇔ answered: every answered deposit is durable, and no deposit was applied whose
    // answer was lost on the way out (read through the data server itself).
    let posted = bank.ds().client(0).posted_amount(common::acc(1)).await.unwrap().unwrap();
    assert_eq!(posted, money(&format!("{ok}")), "answered deposits and the balance disagree");
}
