//! The customers' accounts API over a real data server and two replicas.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use reqwest::StatusCode;
use serde_json::{Value, json};
use shared::{Document, ErrorBody, ErrorCode};

fn cpf(n: u64) -> String {
    Document::with_check_digits(&format!("{:09}", 200_000_000 + n)).unwrap().formatted()
}

fn cnpj(n: u64) -> String {
    Document::with_check_digits(&format!("{:012}", 110_000_000_000 + n)).unwrap().formatted()
}

struct Api {
    http: reqwest::Client,
    base: String,
}

impl Api {
    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut rb = self.http.request(method, format!("{}{path}", self.base));
        if let Some(t) = token {
            rb = rb.bearer_auth(t);
        }
        if let Some(b) = body {
            rb = rb.json(&b);
        }
        let resp = rb.send().await.unwrap();
        let status = resp.status();
        (status, resp.json().await.unwrap())
    }

    async fn open(&self, name: &str, docs: &[String], kind: &str) -> (StatusCode, Value) {
        self.open_as(None, name, docs, kind).await
    }

    /// Opens an account with `token`'s session (a joint account needs one of its holders').
    async fn open_as(&self, token: Option<&str>, name: &str, docs: &[String], kind: &str) -> (StatusCode, Value) {
        let body = json!({ "name": name, "documents": docs, "type": kind, "password": "correct horse" });
        self.send(reqwest::Method::POST, "/api/accounts", token, Some(body)).await
    }

    async fn token(&self, ibk: &str) -> String {
        let (s, body) = self.login(ibk, "correct horse").await;
        assert_eq!(s, StatusCode::OK, "{body}");
        body["token"].as_str().unwrap().to_string()
    }

    async fn login(&self, ibk: &str, password: &str) -> (StatusCode, Value) {
        self.send(reqwest::Method::POST, "/api/accounts/auth", None, Some(json!({ "ibk": ibk, "password": password })))
            .await
    }

    async fn get(&self, id: u64, token: Option<&str>) -> (StatusCode, Value) {
        self.send(reqwest::Method::GET, &format!("/api/accounts/{id}"), token, None).await
    }
}

fn api(bank: &Bank, replica: usize) -> Api {
    Api { http: pki::http_client(), base: bank.url(replica) }
}

fn code(v: &Value) -> ErrorCode {
    serde_json::from_value::<ErrorBody>(v.clone()).unwrap_or_else(|_| panic!("not an error body: {v}")).error
}

#[tokio::test]
async fn open_login_and_see_only_your_accounts() {
    let bank = start_bank(2, &[]);
    let (a, b) = (api(&bank, 0), api(&bank, 1));

    let (s, joao) = a.open("João da Silva", &[cpf(1)], "individual").await;
    assert_eq!(s, StatusCode::CREATED, "{joao}");
    assert_eq!(
        (joao["ibk"].as_str(), joao["balance"].as_str(), joao["type"].as_str()),
        (Some("1-1"), Some("0"), Some("individual"))
    );
    assert!(joao.get("password").is_none() && joao.get("password_hash").is_none());
    let (s, maria) = b.open("Maria Souza", &[cpf(2)], "individual").await;
    assert_eq!((s, maria["ibk"].as_str()), (StatusCode::CREATED, Some("1-2")));
    let (s, acme) = a.open("ACME Ltda", &[cnpj(1)], "legal").await;
    assert_eq!((s, acme["id"].as_u64()), (StatusCode::CREATED, Some(3)));

    // Login through either replica; the session works on both.
    let (s, session) = b.login("1-1", "correct horse").await;
    assert_eq!(s, StatusCode::OK, "{session}");
    let token = session["token"].as_str().unwrap().to_string();
    assert_eq!(session["account"]["id"], 1);
    let (s, me) = a.get(1, Some(&token)).await;
    assert_eq!((s, me["name"].as_str()), (StatusCode::OK, Some("João da Silva")));
    // The token itself is stored nowhere: sessions are keyed by its digest.
    let sessions = bank.ds().client(0).scan_records("sessions", "", None, 100).await.unwrap().records;
    assert_eq!(sessions.len(), 1);
    assert!(sessions.iter().all(|r| r.key != token && !r.value.as_str().contains(&token)));

    // Deposits through the operator API land in a customer-opened account.
    bank.operator(0).op("/deposit/1/25.5", None).await.unwrap();
    assert_eq!(b.get(1, Some(&token)).await.1["balance"], "25.5");

    let checks: Vec<((StatusCode, Value), StatusCode, ErrorCode)> = vec![
        (a.get(2, Some(&token)).await, StatusCode::FORBIDDEN, ErrorCode::Forbidden),
        (a.get(1, None).await, StatusCode::UNAUTHORIZED, ErrorCode::Unauthorized),
        (a.get(1, Some(&"0".repeat(64))).await, StatusCode::UNAUTHORIZED, ErrorCode::Unauthorized),
        (a.get(1, Some("not-a-token")).await, StatusCode::UNAUTHORIZED, ErrorCode::Unauthorized),
        (a.get(99, Some(&token)).await, StatusCode::NOT_FOUND, ErrorCode::AccountNotFound),
        (a.login("1-1", "wrong password").await, StatusCode::UNAUTHORIZED, ErrorCode::InvalidCredentials),
        (a.login("1-99", "correct horse").await, StatusCode::UNAUTHORIZED, ErrorCode::InvalidCredentials),
        (a.login("2-1", "correct horse").await, StatusCode::UNPROCESSABLE_ENTITY, ErrorCode::WrongBank),
        (a.login("1-x", "correct horse").await, StatusCode::BAD_REQUEST, ErrorCode::InvalidBody),
    ];
    for ((status, body), want_status, want_code) in checks {
        assert_eq!((status, code(&body)), (want_status, want_code), "{body}");
    }

    // A token names its account (its first 16 hex digits, so that the session and the account
    // are read together), but only the session record says whose it is. Renaming the account
    // in a live token opens nothing.
    assert!(token.starts_with(&format!("{:016x}", 1)), "{token}");
    let renamed = format!("{:016x}{}", 2, &token[16..]);
    for id in [1, 2] {
        assert_eq!(code(&a.get(id, Some(&renamed)).await.1), ErrorCode::Unauthorized);
    }
    // A session whose token names another account than its own (as one opened before tokens
    // named theirs): it is its own account's session, not the named one's.
    let odd = format!("{:016x}{}", 2, "ab".repeat(24));
    let mut c = dataserver_api::CommitRequest::new("odd-session".to_string());
    c.records.push(dataserver_api::RecordOp::Put {
        collection: "sessions".into(),
        key: business::accounts::session_key(&odd),
        value: json!({ "account": 1, "expires_at_ms": dataserver_api::clock::now_ms() + 60_000 }).into(),
        if_version: Some(0),
    });
    bank.ds().client(0).commit(&c).await.unwrap();
    let (s, me) = a.get(1, Some(&odd)).await;
    assert_eq!((s, me["name"].as_str()), (StatusCode::OK, Some("João da Silva")));
    assert_eq!(code(&a.get(2, Some(&odd)).await.1), ErrorCode::Forbidden, "not Maria's session");
}

#[tokio::test]
async fn seed_001_rules_for_opening_accounts() {
    let bank = start_bank(2, &[]);
    let a = api(&bank, 0);
    assert_eq!(a.open("Ana", &[cpf(1)], "individual").await.0, StatusCode::CREATED);
    assert_eq!(a.open("Bia", &[cpf(2)], "individual").await.0, StatusCode::CREATED);

    let cases: Vec<((StatusCode, Value), StatusCode, ErrorCode)> = vec![
        (
            a.open("Ana again", &[cpf(1)], "individual").await,
            StatusCode::CONFLICT,
            ErrorCode::DocumentAlreadyHasAccount,
        ),
        (a.open("Wrong kind", &[cnpj(1)], "individual").await, StatusCode::BAD_REQUEST, ErrorCode::DocumentsInvalid),
        (a.open("Wrong kind", &[cpf(3)], "legal").await, StatusCode::BAD_REQUEST, ErrorCode::DocumentsInvalid),
        (a.open("Two", &[cpf(3), cpf(4)], "individual").await, StatusCode::BAD_REQUEST, ErrorCode::DocumentsInvalid),
        (a.open("Alone", &[cpf(1)], "joint").await, StatusCode::BAD_REQUEST, ErrorCode::DocumentsInvalid),
        (a.open("Twice", &[cpf(1), cpf(1)], "joint").await, StatusCode::BAD_REQUEST, ErrorCode::DocumentsInvalid),
        (a.open("Nobody's", &[cpf(1), cpf(2)], "joint").await, StatusCode::UNAUTHORIZED, ErrorCode::SessionRequired),
        (
            a.open_as(Some(&a.token("1-1").await), "Stranger", &[cpf(1), cpf(9)], "joint").await,
            StatusCode::UNPROCESSABLE_ENTITY,
            ErrorCode::JointHolderMissing,
        ),
        (
            a.open_as(Some(&a.token("1-1").await), "Not mine", &[cpf(2), cpf(3)], "joint").await,
            StatusCode::FORBIDDEN,
            ErrorCode::Forbidden,
        ),
        (a.open("   ", &[cpf(5)], "individual").await, StatusCode::BAD_REQUEST, ErrorCode::NameInvalid),
        (a.open(&"n".repeat(101), &[cpf(5)], "individual").await, StatusCode::BAD_REQUEST, ErrorCode::NameInvalid),
        (
            a.open("Bad doc", &["529.982.247-24".into()], "individual").await,
            StatusCode::BAD_REQUEST,
            ErrorCode::InvalidBody,
        ),
        (a.open("Bad type", &[cpf(5)], "savings").await, StatusCode::BAD_REQUEST, ErrorCode::InvalidBody),
    ];
    for ((status, body), want_status, want_code) in cases {
        assert_eq!((status, code(&body)), (want_status, want_code), "{body}");
    }
    let short = json!({ "name": "Short", "documents": [cpf(6)], "type": "individual", "password": "short" });
    let (s, body) = a.send(reqwest::Method::POST, "/api/accounts", None, Some(short)).await;
    assert_eq!((s, code(&body)), (StatusCode::BAD_REQUEST, ErrorCode::PasswordInvalid));
    let extra =
        json!({ "name": "X", "documents": [cpf(6)], "type": "individual", "password": "long enough", "admin": true });
    assert_eq!(
        code(&a.send(reqwest::Method::POST, "/api/accounts", None, Some(extra)).await.1),
        ErrorCode::InvalidBody
    );

    // A joint account of two holders who each have an account, opened by one of them: the
    // other reaches it once they confirm it; nobody else ever does.
    let (s, joint) = a.open_as(Some(&a.token("1-1").await), "Ana e Bia", &[cpf(1), cpf(2)], "joint").await;
    assert_eq!(s, StatusCode::CREATED, "{joint}");
    assert_eq!(joint["status"], "pending_holders");
    let id = joint["id"].as_u64().unwrap();
    assert_eq!(a.open("Carla", &[cpf(3)], "individual").await.0, StatusCode::CREATED);
    for (ibk, want) in [("1-1", StatusCode::OK), ("1-2", StatusCode::FORBIDDEN), ("1-4", StatusCode::FORBIDDEN)] {
        assert_eq!(a.get(id, Some(&a.token(ibk).await)).await.0, want, "{ibk} before Bia confirms");
    }
    let consent = format!("/api/accounts/{id}/consent");
    let (s, body) = a.send(reqwest::Method::POST, &consent, Some(&a.token("1-4").await), None).await;
    assert_eq!((s, code(&body)), (StatusCode::FORBIDDEN, ErrorCode::Forbidden), "Carla holds no part of it");
    let (s, body) = a.send(reqwest::Method::POST, &consent, Some(&a.token("1-2").await), None).await;
    assert_eq!((s, body["status"].as_str()), (StatusCode::OK, Some("active")), "{body}");
    for (ibk, want) in [("1-1", StatusCode::OK), ("1-2", StatusCode::OK), ("1-4", StatusCode::FORBIDDEN)] {
        assert_eq!(a.get(id, Some(&a.token(ibk).await)).await.0, want, "{ibk}");
    }
    // Nothing refused above left a trace: ids are 1, 2, 3 (joint) and 4, in order.
    assert_eq!(bank.ds().client(0).health().await.unwrap().accounts, 4);
}

/// Openings race through both replicas: ids stay unique and gap-free, and a document opens at
/// most one individual account however many requests race for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_openings_get_distinct_ids_and_one_account_per_document() {
    let bank = start_bank(2, &[]);
    let mut tasks = Vec::new();
    for i in 0..12u64 {
        let a = api(&bank, (i % 2) as usize);
        tasks.push(tokio::spawn(async move { a.open(&format!("P{i}"), &[cpf(100 + i)], "individual").await }));
    }
    for i in 0..6u64 {
        let a = api(&bank, (i % 2) as usize);
        tasks.push(tokio::spawn(async move { a.open(&format!("Same{i}"), &[cpf(999)], "individual").await }));
    }
    let results: Vec<(StatusCode, Value)> =
        futures::future::join_all(tasks).await.into_iter().map(Result::unwrap).collect();
    let mut ids: Vec<u64> =
        results.iter().filter(|(s, _)| *s == StatusCode::CREATED).map(|(_, v)| v["id"].as_u64().unwrap()).collect();
    ids.sort_unstable();
    assert_eq!(ids, (1..=13).collect::<Vec<_>>(), "12 distinct documents and one of the 6 racing for the same");
    let taken = results
        .iter()
        .filter(|(s, v)| *s == StatusCode::CONFLICT && code(v) == ErrorCode::DocumentAlreadyHasAccount)
        .count();
    assert_eq!(taken, 5);
}

/// Seed 001: an account closes only with a zero balance and nothing in flight; once closed,
/// operations find it gone and its document may open a new one.
#[tokio::test]
async fn closing_needs_a_zero_balance_and_nothing_in_flight() {
    let bank = start_bank(2, &["--lock-wait-ms", "200"]);
    let a = api(&bank, 0);
    assert_eq!(a.open("Ana", &[cpf(1)], "individual").await.0, StatusCode::CREATED);
    assert_eq!(a.open("Bia", &[cpf(2)], "individual").await.0, StatusCode::CREATED);
    let token = a.login("1-1", "correct horse").await.1["token"].as_str().unwrap().to_string();
    let del = |id: u64, t: Option<String>| {
        let a = Api { http: a.http.clone(), base: a.base.clone() };
        async move { a.send(reqwest::Method::DELETE, &format!("/api/accounts/{id}"), t.as_deref(), None).await }
    };
    let op = bank.operator(1);
    op.op("/deposit/1/10", None).await.unwrap();

    let (s, body) = del(1, Some(token.clone())).await;
    assert_eq!((s, code(&body)), (StatusCode::CONFLICT, ErrorCode::BalanceNotZero));
    assert_eq!(code(&del(2, Some(token.clone())).await.1), ErrorCode::Forbidden);
    assert_eq!(code(&del(1, None).await.1), ErrorCode::Unauthorized);

    // An operation holding the account's lease is "in flight".
    let ds = bank.ds().client(1);
    let held =
        ds.acquire(&dataserver_api::AcquireRequest { accounts: vec![acc(1)], ..Default::default() }).await.unwrap();
    let (s, body) = op.op("/withdrawal/1/10", None).await.unwrap_err();
    assert_eq!((s, body.error), (Some(StatusCode::CONFLICT), shared::ErrorCode::AccountBusy), "the lease is held");
    let (s, body) = del(1, Some(token.clone())).await;
    assert_eq!((s, code(&body)), (StatusCode::CONFLICT, ErrorCode::OperationInFlight));
    let locks: Vec<_> =
        held.locks.iter().map(|g| dataserver_api::LockRef { account: g.account, token: g.token }).collect();
    ds.release(&locks).await.unwrap();

    op.op("/withdrawal/1/10", None).await.unwrap();
    let (s, body) = del(1, Some(token.clone())).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let (s, body) = op.op("/deposit/1/5", None).await.unwrap_err();
    assert_eq!((s, body.error), (Some(StatusCode::NOT_FOUND), shared::ErrorCode::AccountNotFound));
    assert_eq!(code(&a.get(1, Some(&token)).await.1), ErrorCode::Unauthorized, "the session of a closed account ends");
    let (s, reopened) = a.open("Ana again", &[cpf(1)], "individual").await;
    assert_eq!((s, reopened["id"].as_u64()), (StatusCode::CREATED, Some(3)), "ids are never reused");
}

/// Customer deposits and withdrawals (seed 000's transaction shape), then the statement: newest
/// first, paginated, each line with the balance right after it.
#[tokio::test]
async fn customer_payments_and_the_statement() {
    let bank = start_bank(2, &[]);
    let (a, b) = (api(&bank, 0), api(&bank, 1));
    assert_eq!(a.open("Ana", &[cpf(1)], "individual").await.0, StatusCode::CREATED);
    assert_eq!(a.open("Bia Souza", &[cpf(2)], "individual").await.0, StatusCode::CREATED);
    let token = a.login("1-1", "correct horse").await.1["token"].as_str().unwrap().to_string();
    let pay = |api: &Api, path: &'static str, body: Value| {
        let (http, base, t) = (api.http.clone(), api.base.clone(), token.clone());
        async move { Api { http, base }.send(reqwest::Method::POST, path, Some(&t), Some(body)).await }
    };

    let (s, tx) = pay(&a, "/api/payments/deposit", json!({ "acc_ibk": "1-1", "amount": 100 })).await;
    assert_eq!(s, StatusCode::OK, "{tx}");
    assert_eq!(
        (tx["type"].as_str(), tx["status"].as_str(), tx["owner"].as_str()),
        (Some("final"), Some("success"), Some("1-1"))
    );
    let op = &tx["operations"][0];
    assert_eq!(
        (op["type"].as_str(), op["from"].as_str(), op["to"].as_str(), op["amount"].as_str()),
        (Some("deposit"), Some("1-1"), Some("1-1"), Some("100"))
    );
    let (s, tx) = pay(&b, "/api/payments/withdraw", json!({ "acc_ibk": "1-1", "amount": "30.5" })).await;
    assert_eq!((s, tx["operations"][0]["type"].as_str()), (StatusCode::OK, Some("withdrawal")));

    let refusals: Vec<((StatusCode, Value), StatusCode, ErrorCode)> = vec![
        (
            pay(&a, "/api/payments/withdraw", json!({ "acc_ibk": "1-1", "amount": "69.51" })).await,
            StatusCode::UNPROCESSABLE_ENTITY,
            ErrorCode::InsufficientFunds,
        ),
        (
            pay(&a, "/api/payments/deposit", json!({ "acc_ibk": "1-2", "amount": 1 })).await,
            StatusCode::FORBIDDEN,
            ErrorCode::Forbidden,
        ),
        (
            pay(&a, "/api/payments/deposit", json!({ "acc_ibk": "2-1", "amount": 1 })).await,
            StatusCode::UNPROCESSABLE_ENTITY,
            ErrorCode::WrongBank,
        ),
        (
            pay(&a, "/api/payments/deposit", json!({ "acc_ibk": "1-1", "amount": 0 })).await,
            StatusCode::BAD_REQUEST,
            ErrorCode::InvalidBody,
        ),
        (
            pay(&a, "/api/payments/deposit", json!({ "acc_ibk": "1-1", "amount": "1.001" })).await,
            StatusCode::BAD_REQUEST,
            ErrorCode::InvalidBody,
        ),
        (
            pay(&a, "/api/payments/deposit", json!({ "acc_ibk": "1-1" })).await,
            StatusCode::BAD_REQUEST,
            ErrorCode::InvalidBody,
        ),
        (
            a.send(
                reqwest::Method::POST,
                "/api/payments/deposit",
                None,
                Some(json!({ "acc_ibk": "1-1", "amount": 1 })),
            )
            .await,
            StatusCode::UNAUTHORIZED,
            ErrorCode::Unauthorized,
        ),
    ];
    for ((status, body), want_status, want_code) in refusals {
        assert_eq!((status, code(&body)), (want_status, want_code), "{body}");
    }
    // A refusal for want of money carries the figures, so an app words them in its own format.
    let (_, short) = pay(&a, "/api/payments/withdraw", json!({ "acc_ibk": "1-1", "amount": "69.51" })).await;
    assert_eq!((short["balance"].as_str(), short["amount"].as_str()), (Some("69.5"), Some("69.51")), "{short}");
    bank.operator(0).op("/transfer/1/2/10", None).await.unwrap();

    // Newest first, two per page, with the balance after each line.
    let get = |path: String| {
        let (http, base, t) = (a.http.clone(), a.base.clone(), token.clone());
        async move { Api { http, base }.send(reqwest::Method::GET, &path, Some(&t), None).await }
    };
    let (s, page) = get("/api/accounts/1/transactions?limit=2".into()).await;
    assert_eq!(s, StatusCode::OK, "{page}");
    let lines = |p: &Value| -> Vec<(String, String)> {
        p["transactions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| {
                (t["operations"][0]["type"].as_str().unwrap().to_string(), t["balance"].as_str().unwrap().to_string())
            })
            .collect()
    };
    assert_eq!(lines(&page), vec![("transfer".into(), "59.5".into()), ("withdrawal".into(), "69.5".into())]);
    let next = page["next"].as_u64().expect("an older page");
    let (_, older) = get(format!("/api/accounts/1/transactions?limit=2&before={next}")).await;
    assert_eq!(lines(&older), vec![("deposit".into(), "100".into())]);
    assert!(older["next"].is_null());
    // Each line as a person reads it: what it was, which way, how much, with whom.
    let line = |p: &Value, i: usize| {
        let l = &p["transactions"][i]["line"];
        [&l["kind"], &l["direction"], &l["amount"], &l["counterpart"], &l["counterpart_name"]].map(|v| v.to_string())
    };
    assert_eq!(line(&page, 0), ["\"transfer_sent\"", "\"debit\"", "\"10\"", "\"1-2\"", "\"Bia S****\""]);
    assert_eq!(line(&page, 1), ["\"withdrawal\"", "\"debit\"", "\"30.5\"", "null", "null"]);
    assert_eq!(line(&older, 0), ["\"deposit\"", "\"credit\"", "\"100\"", "null", "null"]);
    let bia = a.token("1-2").await;
    let (s, theirs) = a.send(reqwest::Method::GET, "/api/accounts/2/transactions", Some(&bia), None).await;
    assert_eq!(s, StatusCode::OK, "{theirs}");
    assert_eq!(line(&theirs, 0), ["\"transfer_received\"", "\"credit\"", "\"10\"", "\"1-1\"", "\"Ana\""]);
    assert!(page["transactions"][0]["line"]["at"].as_str().is_some_and(|t| t.ends_with('Z')));
    assert_eq!(code(&get("/api/accounts/2/transactions".into()).await.1), ErrorCode::Forbidden);
    assert_eq!(code(&get("/api/accounts/1/transactions?limit=0".into()).await.1), ErrorCode::LimitInvalid);
}

/// Same-bank packages: operations apply in order (a debit may spend what an earlier operation of
/// the package credited), all or nothing, only from accounts the customer holds.
#[tokio::test]
async fn packages_apply_in_order_all_or_nothing() {
    let bank = start_bank(2, &[]);
    let a = api(&bank, 0);
    assert_eq!(a.open("Ana", &[cpf(1)], "individual").await.0, StatusCode::CREATED); // 1-1
    assert_eq!(a.open("Bia", &[cpf(2)], "individual").await.0, StatusCode::CREATED); // 1-2
    let token = a.login("1-1", "correct horse").await.1["token"].as_str().unwrap().to_string();
    let joint = a.open_as(Some(&token), "Ana e Bia", &[cpf(1), cpf(2)], "joint").await;
    assert_eq!(joint.0, StatusCode::CREATED); // 1-3
    let bia = a.token("1-2").await;
    assert_eq!(a.send(reqwest::Method::POST, "/api/accounts/3/consent", Some(&bia), None).await.0, StatusCode::OK);
    bank.operator(0).op("/deposit/1/100", None).await.unwrap();
    let pay = |body: Value, key: Option<&'static str>| {
        let (http, base, t) = (a.http.clone(), a.base.clone(), token.clone());
        async move {
            let mut rb = http.post(format!("{base}/api/payments/pay")).bearer_auth(t).json(&body);
            if let Some(k) = key {
                rb = rb.header("Idempotency-Key", k);
            }
            let resp = rb.send().await.unwrap();
            (resp.status(), resp.json::<Value>().await.unwrap())
        }
    };
    let balances = || async {
        let op = bank.operator(1);
        (op.balance(1).await.to_string(), op.balance(2).await.to_string(), op.balance(3).await.to_string())
    };

    // 1 → 3 (50), then 3 → 2 (30) out of the 50 just received.
    let chained = json!({ "author": "1-1", "operations": [
        { "from": "1-1", "to": "1-3", "amount": 50 },
        { "from": "1-3", "to": "1-2", "amount": "30" } ] });
    let (s, tx) = pay(chained.clone(), Some("pkg-1")).await;
    assert_eq!(s, StatusCode::OK, "{tx}");
    assert_eq!(
        (tx["type"].as_str(), tx["status"].as_str(), tx["operations"].as_array().unwrap().len()),
        (Some("package"), Some("success"), 2)
    );
    assert_eq!(balances().await, ("50".into(), "30".into(), "20".into()));
    // The same key again: the same answer, applied once.
    let (s, again) = pay(chained, Some("pkg-1")).await;
    assert_eq!((s, &again), (StatusCode::OK, &tx));
    assert_eq!(balances().await, ("50".into(), "30".into(), "20".into()));

    // The second operation cannot be covered: nothing of the package happens.
    let short = json!({ "author": "1-1", "operations": [
        { "from": "1-1", "to": "1-3", "amount": 10 },
        { "from": "1-3", "to": "1-2", "amount": 31 } ] });
    let cases: Vec<((StatusCode, Value), StatusCode, ErrorCode)> = vec![
        (pay(short, None).await, StatusCode::UNPROCESSABLE_ENTITY, ErrorCode::InsufficientFunds),
        (
            pay(json!({ "author": "1-1", "operations": [{ "from": "1-2", "to": "1-1", "amount": 1 }] }), None).await,
            StatusCode::FORBIDDEN,
            ErrorCode::Forbidden,
        ),
        (
            pay(json!({ "author": "1-2", "operations": [{ "from": "1-1", "to": "1-2", "amount": 1 }] }), None).await,
            StatusCode::FORBIDDEN,
            ErrorCode::Forbidden,
        ),
        (
            pay(json!({ "author": "1-1", "operations": [{ "from": "1-1", "to": "2-5", "amount": 1 }] }), None).await,
            StatusCode::UNPROCESSABLE_ENTITY,
            ErrorCode::UnknownBank,
        ),
        (
            pay(json!({ "author": "1-1", "operations": [{ "from": "1-1", "to": "1-1", "amount": 1 }] }), None).await,
            StatusCode::UNPROCESSABLE_ENTITY,
            ErrorCode::SameAccount,
        ),
        (
            pay(json!({ "author": "1-1", "operations": [{ "from": "1-1", "to": "1-9", "amount": 1 }] }), None).await,
            StatusCode::NOT_FOUND,
            ErrorCode::AccountNotFound,
        ),
        (
            pay(json!({ "author": "1-1", "operations": [] }), None).await,
            StatusCode::BAD_REQUEST,
            ErrorCode::OperationsInvalid,
        ),
        (
            pay(
                json!({ "author": "1-1", "operations": vec![json!({ "from": "1-1", "to": "1-2", "amount": 1 }); 17] }),
                None,
            )
            .await,
            StatusCode::BAD_REQUEST,
            ErrorCode::OperationsInvalid,
        ),
        (
            pay(json!({ "author": "1-1", "operations": [{ "from": "1-1", "to": "1-2", "amount": -1 }] }), None).await,
            StatusCode::BAD_REQUEST,
            ErrorCode::InvalidBody,
        ),
    ];
    for ((status, body), want_status, want_code) in cases {
        assert_eq!((status, code(&body)), (want_status, want_code), "{body}");
    }
    assert_eq!(balances().await, ("50".into(), "30".into(), "20".into()), "refused packages changed nothing");

    // The package is one line of the statement of each account it touched, with every
    // operation and the account's net change; its author also finds it among its packages.
    let (s, page) = a.send(reqwest::Method::GET, "/api/accounts/3/transactions", Some(&token), None).await;
    assert_eq!(s, StatusCode::OK);
    let first = &page["transactions"][0];
    assert_eq!(
        (first["type"].as_str(), first["id"].as_str(), first["balance"].as_str()),
        (Some("package"), tx["id"].as_str(), Some("20"))
    );
    assert_eq!(first["operations"].as_array().map(Vec::len), Some(2));
    let l = &first["line"];
    assert_eq!(
        (l["kind"].as_str(), l["direction"].as_str(), l["amount"].as_str(), l["counterpart"].as_str()),
        (Some("package_received"), Some("credit"), Some("20"), None),
        "1-3 got 50 and paid 30, with two counterparts: {l}"
    );
    assert!(page["packages"].as_array().is_some_and(Vec::is_empty), "1-3 authored none: {page}");
    let (_, author) = a.send(reqwest::Method::GET, "/api/accounts/1/transactions", Some(&token), None).await;
    let l = &author["transactions"][0]["line"];
    assert_eq!(
        (l["kind"].as_str(), l["direction"].as_str(), l["amount"].as_str(), l["counterpart"].as_str()),
        (Some("package_sent"), Some("debit"), Some("50"), Some("1-3"))
    );
    let packages = author["packages"].as_array().expect("the author's packages");
    assert_eq!(packages.len(), 1, "the refused ones were never stored: {author}");
    assert_eq!((packages[0]["id"].as_str(), packages[0]["status"].as_str()), (tx["id"].as_str(), Some("success")));
    // A recipient is checked before paying: masked name, active or not; unknown ones refused.
    let (s, card) = a.send(reqwest::Method::GET, "/api/recipients/1-2", Some(&token), None).await;
    assert_eq!(s, StatusCode::OK, "{card}");
    assert_eq!(
        (card["ibk"].as_str(), card["name"].as_str(), card["active"].as_bool()),
        (Some("1-2"), Some("Bia"), Some(true))
    );
    let (s, card) = a.send(reqwest::Method::GET, "/api/recipients/1-9", Some(&token), None).await;
    assert_eq!((s, code(&card)), (StatusCode::NOT_FOUND, ErrorCode::AccountNotFound));
    let (s, card) = a.send(reqwest::Method::GET, "/api/recipients/7-1", Some(&token), None).await;
    assert_eq!((s, code(&card)), (StatusCode::UNPROCESSABLE_ENTITY, ErrorCode::UnknownBank));
    let (s, card) = a.send(reqwest::Method::GET, "/api/recipients/1-x", Some(&token), None).await;
    assert_eq!((s, code(&card)), (StatusCode::BAD_REQUEST, ErrorCode::IbkInvalid), "{card}");
    let (s, card) = a.send(reqwest::Method::GET, "/api/recipients/1-2", None, None).await;
    assert_eq!((s, code(&card)), (StatusCode::UNAUTHORIZED, ErrorCode::Unauthorized));

    // A made-up cursor cannot reach another account's packages: Bia starts her page just
    // before Ana's index entries and still sees only her own (none).
    let bia = a.token("1-2").await;
    for cursor in ["0000000000000001-", "0000000000000000-~", "", "~"] {
        let path = format!("/api/accounts/2/transactions?packages_before={cursor}");
        let (s, page) = a.send(reqwest::Method::GET, &path, Some(&bia), None).await;
        assert_eq!(s, StatusCode::OK, "{page}");
        assert_eq!(page["packages"], json!([]), "cursor {cursor:?}: {page}");
    }
    let long = format!("/api/accounts/2/transactions?packages_before={}", "9".repeat(300));
    assert_eq!(code(&a.send(reqwest::Method::GET, &long, Some(&bia), None).await.1), ErrorCode::AfterInvalid);

    // A repeat of a package that emptied its account is answered as it was, not refused for
    // the balance it left (the key is found in the locked read, before the balances are used).
    let (had, _, _) = balances().await;
    assert_ne!(had, "0");
    let all = json!({ "author": "1-1", "operations": [{ "from": "1-1", "to": "1-2", "amount": had }] });
    let (s, emptied) = pay(all.clone(), Some("pkg-all")).await;
    assert_eq!(s, StatusCode::OK, "{emptied}");
    let after = balances().await;
    assert_eq!(after.0, "0");
    let (s, again) = pay(all, Some("pkg-all")).await;
    assert_eq!((s, &again), (StatusCode::OK, &emptied));
    assert_eq!(balances().await, after, "applied once");
}

/// The joint-account takeover (issue 14, attack 1): Mallory, with an account of her own, lists
/// Ana's CPF beside hers on a joint account she opens with a password she picks. Before, a
/// session of that joint account carried Ana's document, so it read, paid from and withdrew
/// from Ana's own account, and moved Ana's CPF key onto the joint account. Now the joint account
/// waits for Ana's consent (no debit meanwhile), and its session reaches that account only.
#[tokio::test]
async fn a_joint_account_opened_in_a_victims_name_reaches_none_of_her_money() {
    let bank = start_bank(1, &[]);
    let a = api(&bank, 0);
    assert_eq!(a.open("Ana", &[cpf(1)], "individual").await.0, StatusCode::CREATED); // 1-1, the victim
    assert_eq!(a.open("Mallory", &[cpf(2)], "individual").await.0, StatusCode::CREATED); // 1-2
    bank.operator(0).op("/deposit/1/100", None).await.unwrap();
    let mallory = a.token("1-2").await;
    let (s, joint) = a.open_as(Some(&mallory), "Ana e Mallory", &[cpf(1), cpf(2)], "joint").await;
    assert_eq!(s, StatusCode::CREATED, "{joint}");
    assert_eq!(joint["status"], "pending_holders");
    assert_eq!(joint["pending_documents"], json!([cpf(1).replace(['.', '-'], "")]));
    let joint_session = a.token("1-3").await;

    for token in [&joint_session, &mallory] {
        assert_eq!(a.get(1, Some(token)).await.0, StatusCode::FORBIDDEN, "Ana's account is not reachable");
        let pay = json!({ "author": "1-1", "operations": [{ "from": "1-1", "to": "1-2", "amount": "70" }] });
        let (s, body) = a.send(reqwest::Method::POST, "/api/payments/pay", Some(token), Some(pay)).await;
        assert_eq!((s, code(&body)), (StatusCode::FORBIDDEN, ErrorCode::Forbidden), "{body}");
        let out = json!({ "acc_ibk": "1-1", "amount": "70" });
        let (s, body) = a.send(reqwest::Method::POST, "/api/payments/withdraw", Some(token), Some(out)).await;
        assert_eq!((s, code(&body)), (StatusCode::FORBIDDEN, ErrorCode::Forbidden), "{body}");
        let (s, body) = a.send(reqwest::Method::GET, "/api/accounts/1/all", Some(token), None).await;
        assert_eq!((s, code(&body)), (StatusCode::FORBIDDEN, ErrorCode::Forbidden), "{body}");
    }
    // Ana's CPF key cannot go onto an account somebody else also holds.
    let key = json!({ "account": "1-3", "type": "cpf", "key": cpf(1) });
    let (s, body) = a.send(reqwest::Method::POST, "/api/keys", Some(&joint_session), Some(key)).await;
    assert_eq!((s, code(&body)), (StatusCode::UNPROCESSABLE_ENTITY, ErrorCode::KeyDocumentMismatch), "{body}");
    // Money sent to the pending account arrives; none leaves it, by anyone, until Ana confirms.
    bank.operator(0).op("/deposit/3/10", None).await.unwrap();
    let out = json!({ "acc_ibk": "1-3", "amount": "5" });
    let (s, body) = a.send(reqwest::Method::POST, "/api/payments/withdraw", Some(&joint_session), Some(out)).await;
    assert_eq!((s, code(&body)), (StatusCode::CONFLICT, ErrorCode::AccountPendingHolders), "{body}");
    let err = bank.operator(0).op("/withdrawal/3/5", None).await.unwrap_err();
    assert_eq!((err.0, err.1.error), (Some(StatusCode::CONFLICT), ErrorCode::AccountPendingHolders), "{err:?}");
    let pay = json!({ "author": "1-3", "operations": [{ "from": "1-3", "to": "1-2", "amount": "5" }] });
    let (s, body) = a.send(reqwest::Method::POST, "/api/payments/pay", Some(&joint_session), Some(pay)).await;
    assert_eq!((s, code(&body)), (StatusCode::CONFLICT, ErrorCode::AccountPendingHolders), "{body}");
    assert_eq!(bank.operator(0).balance(1).await, money("100"), "Ana's money did not move");
    assert_eq!(bank.operator(0).balance(3).await, money("10"));

    // Ana's own key is hers; once she confirms the joint account it can be debited.
    let ana = a.token("1-1").await;
    let key = json!({ "account": "1-1", "type": "cpf", "key": cpf(1) });
    assert_eq!(a.send(reqwest::Method::POST, "/api/keys", Some(&ana), Some(key)).await.0, StatusCode::CREATED);
    let (s, body) = a.send(reqwest::Method::POST, "/api/accounts/3/consent", Some(&ana), None).await;
    assert_eq!((s, body["status"].as_str()), (StatusCode::OK, Some("active")), "{body}");
    bank.operator(0).op("/withdrawal/3/5", None).await.unwrap();
}

/// Closing an account releases its Pix keys in the same commit: the next holder may take them.
#[tokio::test]
async fn closing_an_account_releases_its_keys() {
    let bank = start_bank(1, &[]);
    let a = api(&bank, 0);
    assert_eq!(a.open("Ana", &[cpf(1)], "individual").await.0, StatusCode::CREATED);
    let ana = a.token("1-1").await;
    for key in [
        json!({ "account": "1-1", "type": "cpf", "key": cpf(1) }),
        json!({ "account": "1-1", "type": "email", "key": "ana@example.com" }),
    ] {
        assert_eq!(a.send(reqwest::Method::POST, "/api/keys", Some(&ana), Some(key)).await.0, StatusCode::CREATED);
    }
    assert_eq!(a.send(reqwest::Method::DELETE, "/api/accounts/1", Some(&ana), None).await.0, StatusCode::OK);
    assert_eq!(a.open("Ana again", &[cpf(1)], "individual").await.0, StatusCode::CREATED); // 1-2
    let ana = a.token("1-2").await;
    for key in [
        json!({ "account": "1-2", "type": "cpf", "key": cpf(1) }),
        json!({ "account": "1-2", "type": "email", "key": "ana@example.com" }),
    ] {
        let (s, body) = a.send(reqwest::Method::POST, "/api/keys", Some(&ana), Some(key)).await;
        assert_eq!(s, StatusCode::CREATED, "{body}");
    }
}

/// Login throttling cannot be raced (issue 14): every attempt is counted at the data server
/// before its password is checked, so a burst of concurrent wrong guesses through both replicas
/// counts one each. Before, each replica looked at its own counter, then checked the password:
/// all 20 guesses were checked.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_burst_of_guesses_through_every_replica_gets_one_budget() {
    let bank = start_bank(2, &["--login-failures-per-account-max", "5"]);
    let a = api(&bank, 0);
    assert_eq!(a.open("Ana", &[cpf(1)], "individual").await.0, StatusCode::CREATED);
    let guesses = (0..20).map(|i| {
        let a = api(&bank, i % 2);
        async move { a.login("1-1", &format!("wrong guess {i}")).await }
    });
    let answers = futures::future::join_all(guesses).await;
    let checked = answers.iter().filter(|(s, _)| *s == StatusCode::UNAUTHORIZED).count();
    let refused = answers
        .iter()
        .filter(|(s, b)| *s == StatusCode::TOO_MANY_REQUESTS && code(b) == ErrorCode::RateLimited)
        .count();
    assert_eq!((checked, refused), (5, 15), "{answers:?}");
    // Each checked guess says how many are left before the lockout: every count once, down to 0.
    let mut left: Vec<u64> = answers
        .iter()
        .filter(|(s, _)| *s == StatusCode::UNAUTHORIZED)
        .map(|(_, b)| b["attempts_left"].as_u64().expect("attempts_left on a refused login"))
        .collect();
    left.sort_unstable();
    assert_eq!(left, [0, 1, 2, 3, 4], "{answers:?}");
    // Locked out: even the right password waits, on either replica.
    for r in 0..2 {
        assert_eq!(api(&bank, r).login("1-1", "correct horse").await.0, StatusCode::TOO_MANY_REQUESTS);
    }
}

/// Deposits from nowhere are a per-bank setting, off by default, and bounded per account per day.
#[tokio::test]
async fn customer_deposits_are_a_setting_with_a_daily_limit() {
    let off = start_bank_with(1, &[], |spec| spec.customer_deposits = false);
    let a = api(&off, 0);
    assert_eq!(a.open("Ana", &[cpf(1)], "individual").await.0, StatusCode::CREATED);
    let ana = a.token("1-1").await;
    let deposit = |amount: &str| json!({ "acc_ibk": "1-1", "amount": amount });
    let (s, body) = a.send(reqwest::Method::POST, "/api/payments/deposit", Some(&ana), Some(deposit("1"))).await;
    assert_eq!((s, code(&body)), (StatusCode::FORBIDDEN, ErrorCode::DepositsDisabled), "{body}");
    drop(off);

    let on = start_bank(1, &["--deposit-day-max", "100.00"]);
    let a = api(&on, 0);
    assert_eq!(a.open("Ana", &[cpf(1)], "individual").await.0, StatusCode::CREATED);
    let ana = a.token("1-1").await;
    for amount in ["60", "40"] {
        let (s, body) = a.send(reqwest::Method::POST, "/api/payments/deposit", Some(&ana), Some(deposit(amount))).await;
        assert_eq!(s, StatusCode::OK, "{body}");
    }
    let (s, body) = a.send(reqwest::Method::POST, "/api/payments/deposit", Some(&ana), Some(deposit("0.01"))).await;
    assert_eq!((s, code(&body)), (StatusCode::UNPROCESSABLE_ENTITY, ErrorCode::DepositLimit), "{body}");
    assert_eq!(on.operator(0).balance(1).await, money("100"));
    // The operator's teller deposit is not a customer's and is not limited.
    on.operator(0).op("/deposit/1/500", None).await.unwrap();
}

/// Sessions are bounded per account (the oldest ends when one more would pass the limit), and
/// the sweeper deletes expired ones: nobody can grow a bank's state by logging in.
#[tokio::test]
async fn sessions_are_bounded_and_expired_ones_are_swept() {
    use business::config::limits::SESSIONS_PER_ACCOUNT_MAX;
    let bank = start_bank(1, &[]);
    let a = api(&bank, 0);
    assert_eq!(a.open("Ana", &[cpf(1)], "individual").await.0, StatusCode::CREATED);
    let mut tokens = Vec::new();
    for _ in 0..=SESSIONS_PER_ACCOUNT_MAX {
        tokens.push(a.token("1-1").await);
    }
    assert_eq!(a.get(1, Some(&tokens[0])).await.0, StatusCode::UNAUTHORIZED, "the oldest session ended");
    assert_eq!(a.get(1, Some(&tokens[1])).await.0, StatusCode::OK);
    assert_eq!(a.get(1, Some(tokens.last().unwrap())).await.0, StatusCode::OK);
    let ds = bank.ds().client(0);
    let stored = ds.scan_records(business::model::SESSIONS, "", None, 1_000).await.unwrap().records.len();
    assert_eq!(stored, SESSIONS_PER_ACCOUNT_MAX);
    drop(bank);

    let bank = start_bank(
        1,
        &[
            "--session-ttl-s",
            "1",
            "--sweep-interval-ms",
            "100",
            "--login-window-ms",
            "2000",
            "--idempotency-ttl-s",
            "1",
        ],
    );
    let a = api(&bank, 0);
    assert_eq!(a.open("Ana", &[cpf(1)], "individual").await.0, StatusCode::CREATED);
    let token = a.token("1-1").await;
    let _ = a.login("1-1", "a wrong guess").await; // a throttle window at the data server
    let ds = bank.ds().client(0);
    assert_eq!(ds.scan_records(business::throttle::THROTTLE, "login-", None, 10).await.unwrap().records.len(), 2);
    assert_eq!(ds.scan_records(business::model::SESSIONS, "", None, 10).await.unwrap().records.len(), 1);
    let until = std::time::Instant::now() + std::time::Duration::from_secs(15);
    while !ds.scan_records(business::model::SESSIONS, "", None, 10).await.unwrap().records.is_empty() {
        assert!(std::time::Instant::now() < until, "the expired session was never swept");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(a.get(1, Some(&token)).await.0, StatusCode::UNAUTHORIZED);
    // Lapsed throttle windows and idempotency records past their time to live go too.
    bank.operator(0).op("/deposit/1/5", Some("a-key-to-forget")).await.unwrap();
    assert_eq!(ds.scan_records(business::model::IDEMPOTENCY, "", None, 10).await.unwrap().records.len(), 1);
    // (The sign-up's window is an hour long: it stays.)
    for (collection, prefix) in [(business::throttle::THROTTLE, "login-"), (business::model::IDEMPOTENCY, "")] {
        while !ds.scan_records(collection, prefix, None, 10).await.unwrap().records.is_empty() {
            assert!(std::time::Instant::now() < until, "{collection} was never swept");
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }
}

/// Opening accounts is limited per address with one budget for all the bank's replicas (kept at
/// the data server): alternating replicas gains nothing.
#[tokio::test]
async fn sign_ups_per_address_share_one_budget_across_replicas() {
    let bank = start_bank_with(2, &[], |spec| spec.signups_per_address_max = 3);
    for i in 0..3u64 {
        let (s, body) =
            api(&bank, usize::try_from(i % 2).unwrap()).open(&format!("P{i}"), &[cpf(10 + i)], "individual").await;
        assert_eq!(s, StatusCode::CREATED, "{body}");
    }
    for r in 0..2 {
        let (s, body) = api(&bank, r).open("One too many", &[cpf(20)], "individual").await;
        assert_eq!((s, code(&body)), (StatusCode::TOO_MANY_REQUESTS, ErrorCode::RateLimited), "replica {r}: {body}");
    }
}

/// Nobody grows another person's list of joint accounts without bound by naming them: a document
/// is a holder of at most `JOINT_ACCOUNTS_PER_DOCUMENT_MAX` joint accounts at a bank.
#[tokio::test]
async fn a_document_is_named_in_a_bounded_number_of_joint_accounts() {
    use business::config::limits::JOINT_ACCOUNTS_PER_DOCUMENT_MAX;
    let bank = start_bank(1, &[]);
    let a = api(&bank, 0);
    assert_eq!(a.open("Ana", &[cpf(1)], "individual").await.0, StatusCode::CREATED);
    assert_eq!(a.open("Mallory", &[cpf(2)], "individual").await.0, StatusCode::CREATED);
    let mallory = a.token("1-2").await;
    for i in 0..JOINT_ACCOUNTS_PER_DOCUMENT_MAX {
        let (s, body) = a.open_as(Some(&mallory), &format!("Spam {i}"), &[cpf(1), cpf(2)], "joint").await;
        assert_eq!(s, StatusCode::CREATED, "{body}");
    }
    let (s, body) = a.open_as(Some(&mallory), "One too many", &[cpf(1), cpf(2)], "joint").await;
    assert_eq!((s, code(&body)), (StatusCode::UNPROCESSABLE_ENTITY, ErrorCode::JointAccountsLimit), "{body}");
}

/// One Server-Sent Event read off a stream: (event, id, data); comments are skipped; `None`
/// once the stream ended.
async fn next_event(resp: &mut reqwest::Response, buf: &mut String) -> Option<(String, u64, Value)> {
    // Pings keep the stream busy, so the wait is bounded for the event, not for each chunk.
    let until = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        if let Some(end) = buf.find("\n\n") {
            let block: String = buf.drain(..end + 2).collect();
            let field = |name: &str| {
                block.lines().find_map(|l| l.strip_prefix(name).map(|v| v.trim().to_string())).unwrap_or_default()
            };
            if block.lines().all(|l| l.starts_with(':') || l.is_empty()) {
                continue;
            }
            let data = serde_json::from_str(&field("data:")).unwrap_or(Value::Null);
            return Some((field("event:"), field("id:").parse().unwrap_or(0), data));
        }
        let chunk = tokio::time::timeout_at(until, resp.chunk()).await.expect("an event within 20 s");
        buf.push_str(std::str::from_utf8(&chunk.unwrap()?).unwrap());
    }
}

/// Server push (issue 17): a ticket opens one account's stream; a commit through one replica
/// reaches a stream on the other; a reconnection says at once whether it missed something;
/// nobody opens another's stream; streams per account are bounded; logout ends the stream.
#[tokio::test]
async fn account_events_are_pushed_across_replicas_and_end_with_the_session() {
    let bank = start_bank(2, &["--events-heartbeat-ms", "200"]);
    let (a, b) = (api(&bank, 0), api(&bank, 1));
    assert_eq!(a.open("Ana", &[cpf(1)], "individual").await.0, StatusCode::CREATED);
    assert_eq!(a.open("Bia", &[cpf(2)], "individual").await.0, StatusCode::CREATED);
    let (ana, bia) = (a.token("1-1").await, a.token("1-2").await);
    let ticket = |token: String, id: u64| {
        let a = Api { http: a.http.clone(), base: a.base.clone() };
        async move { a.send(reqwest::Method::POST, &format!("/api/accounts/{id}/events/ticket"), Some(&token), None).await }
    };
    let (s, t) = ticket(ana.clone(), 1).await;
    assert_eq!(s, StatusCode::OK, "{t}");
    let t = t["ticket"].as_str().unwrap().to_string();
    let open = |ticket: String, last: Option<u64>| {
        let (http, base) = (b.http.clone(), b.base.clone());
        async move {
            let mut rb = http.get(format!("{base}/api/accounts/1/events")).query(&[("ticket", ticket)]);
            if let Some(l) = last {
                rb = rb.header("last-event-id", l.to_string());
            }
            rb.send().await.unwrap()
        }
    };

    // Nobody else's: Bia gets no ticket for Ana's account, and hers opens only her stream.
    let (s, body) = ticket(bia.clone(), 1).await;
    assert_eq!((s, code(&body)), (StatusCode::FORBIDDEN, ErrorCode::Forbidden));
    let (_, theirs) = ticket(bia.clone(), 2).await;
    let r = open(theirs["ticket"].as_str().unwrap().to_string(), None).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let made_up = format!("{}.{}", "a".repeat(64), "b".repeat(64));
    for bad in [made_up, ana.clone(), format!("{t}x"), String::new()] {
        let r = open(bad.clone(), None).await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "ticket {bad:?}");
    }

    // Opened on replica 1; a deposit through replica 0 is pushed, with the balance after.
    let mut stream = open(t.clone(), None).await;
    assert_eq!(stream.status(), StatusCode::OK);
    assert!(stream.headers()["content-type"].to_str().unwrap().starts_with("text/event-stream"));
    let mut buf = String::new();
    let (kind, first, _) = next_event(&mut stream, &mut buf).await.unwrap();
    assert_eq!(kind, "statement", "a first connection is told where the account stands at once");
    bank.operator(0).op("/deposit/1/25", None).await.unwrap();
    let (kind, id, data) = next_event(&mut stream, &mut buf).await.unwrap();
    assert_eq!((kind.as_str(), data["balance"].as_str()), ("statement", Some("25")), "{data}");
    assert!(id > first);

    // A reconnection with the newest id missed nothing and hears nothing; one with an older id
    // is told at once.
    let mut again = open(t.clone(), Some(id)).await;
    let mut buf2 = String::new();
    bank.operator(0).op("/deposit/1/5", None).await.unwrap();
    let (kind, newer, data) = next_event(&mut again, &mut buf2).await.unwrap();
    assert_eq!((kind.as_str(), data["balance"].as_str()), ("statement", Some("30")), "the next change, not a replay");
    assert!(newer > id);
    drop(again);
    let mut late = open(t.clone(), Some(id)).await;
    let (kind, at, data) = next_event(&mut late, &mut String::new()).await.unwrap();
    assert_eq!((kind.as_str(), at, data["balance"].as_str()), ("statement", newer, Some("30")));
    drop(late);
    // A closed stream is counted until the replica notices (its next write fails).
    let streams_open = || async {
        let text = pki::http_client()
            .get(format!("{}/metrics", b.base))
            .bearer_auth(&bank.cluster.operator_key)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        text.lines().find_map(|l| l.strip_prefix("business_event_streams ")).and_then(|v| v.parse::<u64>().ok())
    };
    let until = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while streams_open().await != Some(1) {
        assert!(std::time::Instant::now() < until, "closed streams are still counted");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }

    // At most four streams of one account per replica.
    let mut held = Vec::new();
    for _ in 0..3 {
        let r = open(t.clone(), None).await;
        assert_eq!(r.status(), StatusCode::OK);
        held.push(r);
    }
    let fifth = open(t.clone(), None).await;
    assert_eq!(fifth.status(), StatusCode::TOO_MANY_REQUESTS);
    drop(held);

    // Logout ends the stream at its next heartbeat, and the ticket opens nothing more.
    let r = a.http.delete(format!("{}/api/accounts/auth", a.base)).bearer_auth(&ana).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let mut ended = false;
    while let Some((kind, _, _)) = next_event(&mut stream, &mut buf).await {
        if kind == "end" {
            ended = true;
        }
    }
    assert!(ended, "the stream ended without saying so");
    assert_eq!(open(t, None).await.status(), StatusCode::UNAUTHORIZED);
}
