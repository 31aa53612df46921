//! Access control and hostile input over a real 2-bank network: every protected endpoint of the
//! three APIs refuses every wrong credential, every hostile request gets a 4xx with the JSON
//! error body, nothing in any bank's durable state changes, no process answers a 5xx, and no
//! secret reaches a log. Then the login and key-lookup limits, and logout.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use harness::client::sign_in;
use harness::cluster::{Cluster, DEV_SECRET_PREFIX, Spec, TEST_TIMINGS};
use reqwest::StatusCode;
use serde_json::json;
use tools::security::{self, PASSWORD};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_credentials_and_hostile_requests_change_nothing_and_leak_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let mut spec = Spec::ephemeral(2, 2, &dir.path().join("data"));
    spec.business_args = TEST_TIMINGS.iter().map(|s| s.to_string()).collect();
    // Everything the processes say, down to debug, goes to files we read at the end.
    spec.log = Some((logs.clone(), "debug".into()));
    let c = Cluster::start(&spec).unwrap();
    let security::Suite { world: w, matrix: m, hostile: h, changed } = security::suite(&c).await.unwrap();
    assert!(h.tried >= 200, "the hostile table has {} requests", h.tried);
    for api in ["dataserver", "operator", "customer", "interbank"] {
        assert!(m.by_api.contains_key(api) && h.by_api.contains_key(api), "{api} is covered");
    }
    assert!(m.violations.is_empty(), "authorization matrix: {:#?}", m.violations);
    assert!(h.violations.is_empty(), "hostile table: {:#?}", h.violations);
    assert_eq!(changed, Vec::<String>::new(), "state changed or a 5xx was answered");

    // A refused login is logged (who and from where), its password is not.
    let guess = "guessed-password-42";
    let r = pki::http_client()
        .post(format!("{}/api/accounts/auth", w.business[0]))
        .json(&json!({ "ibk": w.a.ibk(), "password": guess }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    eprintln!(
        "authorization matrix: {} requests {:?}; hostile table: {} requests {:?}",
        m.tried, m.by_api, h.tried, h.by_api
    );

    // Secrets never logged: not the passwords, the session tokens, the operator key, the banks'
    // private keys or the data-server keys — while the logs do show the work was logged.
    let mut text = String::new();
    for e in std::fs::read_dir(&logs).unwrap() {
        text.push_str(&std::fs::read_to_string(e.unwrap().path()).unwrap());
    }
    assert!(text.contains("login refused"), "the refused login was not logged: nothing was checked");
    let mut secrets = vec![
        PASSWORD.to_string(),
        guess.to_string(),
        w.a.token.clone(),
        w.b.token.clone(),
        w.c.token.clone(),
        w.revoked.clone(),
    ];
    secrets.push(c.operator_key.clone());
    // The banks' private keys (a line of base64 from the middle of each).
    secrets.extend(c.pki.banks.values().filter_map(|b| b.issued.key_pem.lines().nth(1).map(str::to_string)));
    secrets.extend(c.banks.iter().flat_map(|b| b.ds_opts.keys.iter().map(|(_, k)| k.clone())));
    assert!(secrets.iter().all(|s| s.len() >= 8));
    for s in &secrets {
        assert!(!text.contains(s.as_str()), "a secret reached the logs: {s:.6}…");
    }
    assert!(!text.contains(DEV_SECRET_PREFIX), "a key or secret reached the logs");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logins_and_key_lookups_are_limited_and_logout_revokes() {
    let dir = tempfile::tempdir().unwrap();
    let mut spec = Spec::ephemeral(2, 2, dir.path());
    spec.business_args = TEST_TIMINGS.iter().map(|s| s.to_string()).collect();
    spec.business_args.extend(
        [
            "--login-failures-per-account-max",
            "3",
            "--login-failures-per-address-max",
            "8",
            "--key-lookups-per-account-max",
            "5",
        ]
        .map(String::from),
    );
    let c = Cluster::start(&spec).unwrap();
    let w = security::prepare(&c).await.unwrap();
    let http = pki::http_client();
    let base = &w.business[0];
    let login = |ibk: String, pw: &str| {
        http.post(format!("{base}/api/accounts/auth")).json(&json!({ "ibk": ibk, "password": pw })).send()
    };

    // Per account: three wrong passwords, then even the right one waits, with Retry-After.
    let a = w.a.ibk().to_string();
    for _ in 0..3 {
        assert_eq!(login(a.clone(), "wrong-password").await.unwrap().status(), StatusCode::UNAUTHORIZED);
    }
    let r = login(a.clone(), PASSWORD).await.unwrap();
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(r.headers().get("retry-after").is_some());
    assert_eq!(r.json::<shared::ErrorBody>().await.unwrap().error, shared::ErrorCode::RateLimited);
    // Another account is not locked out by A's failures.
    let b = w.b.ibk().to_string();
    assert_eq!(login(b.clone(), PASSWORD).await.unwrap().status(), StatusCode::OK);
    // Per address: guessing across accounts (unknown ones too) stops at the address's limit.
    let mut statuses = Vec::new();
    for n in 0..8 {
        statuses.push(login(format!("1-{}", 1000 + n), "wrong-password").await.unwrap().status().as_u16());
    }
    assert_eq!(statuses.iter().filter(|s| **s == 429).count(), 3, "{statuses:?}");
    assert_eq!(login(b, PASSWORD).await.unwrap().status(), StatusCode::TOO_MANY_REQUESTS, "the address is limited");

    // Key lookups: five per customer per window, found or not.
    let segment = |k: &str| shared::PixKey::parse_as(shared::pix::KeyType::Email, k).unwrap().path_segment();
    let key = format!("/api/keys/{}", segment(&w.key));
    let mut statuses = Vec::new();
    for n in 0..6 {
        let path =
            if n % 2 == 0 { key.clone() } else { format!("/api/keys/{}", segment(&format!("ninguem{n}@example.com"))) };
        statuses
            .push(http.get(format!("{base}{path}")).bearer_auth(&w.b.token).send().await.unwrap().status().as_u16());
    }
    assert_eq!(statuses, [200, 404, 200, 404, 200, 429]);
    // Paying to a key and removing one tell whether the key exists too: the same budget, spent.
    let pay_to_key = |base: &str, token: &str, me: String, key: String| {
        let body = json!({ "author": me, "operations": [{ "from": me, "to": key, "amount": "1" }] });
        http.post(format!("{base}/api/payments/pay")).bearer_auth(token).json(&body).send()
    };
    let r = pay_to_key(base, &w.b.token, w.b.ibk().to_string(), w.key.clone()).await.unwrap();
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS, "B's lookups are spent");
    let r = http.delete(format!("{base}{key}")).bearer_auth(&w.b.token).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS, "a removal is a lookup");
    // A recipient check shows a name too: harvesting names by IBK spends the same budget.
    let r = http.get(format!("{base}/api/recipients/{}", w.a.ibk())).bearer_auth(&w.b.token).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS, "a recipient check is a lookup");
    // A payment to a key that is refused is charged: five to unknown keys spend A's budget.
    for n in 0..5 {
        let r = pay_to_key(base, &w.a.token, w.a.ibk().to_string(), format!("ninguem{n}@example.com")).await.unwrap();
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
    }
    let r = http.get(format!("{base}{key}")).bearer_auth(&w.a.token).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS, "refused payments to keys are charged");
    // A payment accepted is not charged (it moved money): C pays A's key six times, then looks.
    let base2 = &w.business[1];
    for _ in 0..6 {
        let r = pay_to_key(base2, &w.c.token, w.c.ibk().to_string(), w.key.clone()).await.unwrap();
        assert_eq!(r.status(), StatusCode::ACCEPTED);
    }
    let r = http.get(format!("{base2}{key}")).bearer_auth(&w.c.token).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK, "accepted payments to keys are not charged");

    // Logout revokes the session on every replica; other sessions live on.
    let me = format!("/api/accounts/{}", w.c.ibk().account);
    let cb = &w.business[1];
    let c2 = sign_in(&http, cb, w.c.ibk(), PASSWORD).await.unwrap();
    assert_eq!(http.get(format!("{cb}{me}")).bearer_auth(&c2.token).send().await.unwrap().status(), StatusCode::OK);
    let r = http.delete(format!("{cb}/api/accounts/auth")).bearer_auth(&c2.token).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let cb2 = &c.banks[1].urls()[1];
    for url in [cb, cb2] {
        let r = http.get(format!("{url}{me}")).bearer_auth(&c2.token).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "a revoked token opens nothing at {url}");
    }
    let r = http.get(format!("{cb2}{me}")).bearer_auth(&w.c.token).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK, "the customer's other session lives on");
    let r = http.delete(format!("{cb}/api/accounts/auth")).bearer_auth(&c2.token).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "a session is revoked once");

    // A replica stores a cross-bank package without reading the session again when it read it
    // before (the commit checks the session and the account are as it read them). The attack:
    // a token revoked through one replica, spent at another that still remembers it.
    let (c3, cb2) = (sign_in(&http, cb, w.c.ibk(), PASSWORD).await.unwrap(), cb2.clone());
    let to_a = |amount: &str| json!({ "author": w.c.ibk(), "operations": [{ "from": w.c.ibk(), "to": w.a.ibk(), "amount": amount }] });
    let pay = |token: &str, key: &str, body: serde_json::Value| {
        http.post(format!("{cb2}/api/payments/pay"))
            .bearer_auth(token)
            .header("Idempotency-Key", key)
            .json(&body)
            .send()
    };
    let vouched = || async { c.bank_metrics(1, &["business_payments_vouched_total"]).await[0] };
    let before = vouched().await;
    for n in 0..2 {
        let r = pay(&c3.token, &format!("vouch-{n}"), to_a("1")).await.unwrap();
        assert_eq!(r.status(), StatusCode::ACCEPTED);
    }
    assert!(vouched().await > before, "the second payment read the session again: nothing here was tried");
    let r = http.delete(format!("{cb}/api/accounts/auth")).bearer_auth(&c3.token).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let r = pay(&c3.token, "vouch-revoked", to_a("2")).await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "a revoked token paid at a replica that remembered it");
    assert_eq!(r.json::<shared::ErrorBody>().await.unwrap().error, shared::ErrorCode::Unauthorized);
    // Nothing was stored under that key: the customer's live session uses it for another amount
    // (a package stored under it would make that `422 idempotency_key_reused`).
    let r = pay(&w.c.token, "vouch-revoked", to_a("3")).await.unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED, "the revoked token's package was stored");
}

/// A data server and a replica given certificates serve HTTPS (`--tls-cert`, `--tls-key`), the
/// replica trusting the data server's CA (`--dataserver-ca`); a private key others may read is
/// refused at start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn servers_serve_https_when_given_a_certificate() {
    use harness::process::{SpawnOptions, binary, listening_addr, spawn, spawn_command};
    let dir = tempfile::tempdir().unwrap();
    let ca = pki::issue::Ca::new("Test CA").unwrap();
    let issued = ca.issue("servers", &["127.0.0.1"]).unwrap();
    let (cert, key, ca_file) =
        (dir.path().join("cert.pem"), dir.path().join("tls").join("key.pem"), dir.path().join("ca.pem"));
    std::fs::write(&cert, &issued.cert_pem).unwrap();
    pki::issue::write_private(&key, &issued.key_pem).unwrap();
    std::fs::write(&ca_file, ca.cert_pem()).unwrap();
    let tls_args =
        vec!["--tls-cert".to_string(), cert.display().to_string(), "--tls-key".into(), key.display().to_string()];

    let keys = vec![(shared::BusinessId::new(11).unwrap(), "a-business-key-11".to_string())];
    let mut opts = SpawnOptions::new(binary("dataserver").unwrap(), dir.path().join("ds"), keys);
    opts.extra_args = tls_args.clone();
    let ds = spawn(&opts).unwrap();
    let ds_url = format!("https://{}", ds.addr);
    let trusting =
        || pki::http().tls_backend_preconfigured(pki::trusting_client_config(ca.cert_pem()).unwrap()).build().unwrap();
    let client = dataserver_api::client::DataClient::with_http(
        trusting(),
        &ds_url,
        shared::BusinessId::new(11).unwrap(),
        "a-business-key-11",
    )
    .unwrap();
    client.health().await.unwrap();
    assert!(
        pki::http_client()
            .get(format!("http://{}/v1/health", ds.addr))
            .send()
            .await
            .map_or(true, |r| !r.status().is_success()),
        "no plain HTTP"
    );

    let business = |extra: Vec<String>| {
        let mut cmd = std::process::Command::new(binary("business").unwrap());
        cmd.args(["--listen", "127.0.0.1:0", "--bank-id", "1", "--business-id", "11", "--dataserver", &ds_url])
            .args(["--dataserver-ca", &ca_file.display().to_string()])
            .args(extra)
            .env("BUSINESS_DATASERVER_KEY", "a-business-key-11")
            .env("BUSINESS_OPERATOR_KEY", "an-operator-key");
        spawn_command(cmd, None)
    };
    let (mut child, line) = business(tls_args.clone()).unwrap();
    assert!(line.contains("https://"), "{line}");
    let addr = listening_addr(&line).unwrap();
    let r =
        trusting().post(format!("https://{addr}/deposit/1/5")).header("auth", "an-operator-key").send().await.unwrap();
    // No account 1: the replica reached its data server over HTTPS to find that out.
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let body: shared::ErrorBody = r.json().await.unwrap();
    assert_eq!(body.error, shared::ErrorCode::AccountNotFound);
    let _ = child.kill();
    let _ = child.wait();

    // A private key others may read: refused, naming the file.
    pki::issue::set_mode(&key, 0o644).unwrap();
    let mut cmd = std::process::Command::new(binary("business").unwrap());
    cmd.args(["--listen", "127.0.0.1:0", "--bank-id", "1", "--business-id", "11", "--dataserver", &ds_url])
        .args(&tls_args)
        .env("BUSINESS_DATASERVER_KEY", "a-business-key-11")
        .env("BUSINESS_OPERATOR_KEY", "an-operator-key")
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null());
    let out = cmd.output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("0600"), "{}", String::from_utf8_lossy(&out.stderr));
}
