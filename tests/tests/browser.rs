//! End to end in a real headless Chromium (Debian's `chromium` and `chromedriver`) against a real
//! 2-bank network and the trunk-built app (`frontend/dist`, built by `scripts/test.sh`): two
//! customers sign up at different banks, one deposits and sends a cross-bank package, and both
//! see their balances and statements update. A screenshot of the dashboard is saved to
//! `target/browser-artifacts/dashboard.png`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use harness::cluster::{Cluster, Spec, free_port};

const WAIT: Duration = Duration::from_secs(30);

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// Serves the built app on a free port, from its own thread (actix runs its own runtime).
fn serve_app(dist: PathBuf) -> u16 {
    let port = free_port().unwrap();
    std::thread::spawn(move || {
        actix_web::rt::System::new().block_on(async move {
            actix_web::HttpServer::new(move || {
                actix_web::App::new().service(actix_files::Files::new("/", dist.clone()).index_file("index.html"))
            })
            .workers(1)
            .bind(("127.0.0.1", port))
            .unwrap()
            .run()
            .await
            .unwrap();
        });
    });
    port
}

struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn browser() -> (Client, Driver) {
    let port = free_port().unwrap();
    let child = Command::new("chromedriver")
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver (Debian's chromium-driver; scripts/setup.sh installs it)");
    let driver = Driver(child);
    let until = Instant::now() + WAIT;
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < until, "chromedriver did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let profile = tempfile::tempdir().unwrap().keep();
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        serde_json::json!({
            "binary": "/usr/bin/chromium",
            "args": ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                     "--disable-background-networking", "--disable-component-update", "--disable-sync",
                     "--window-size=420,1400", format!("--user-data-dir={}", profile.display())],
        }),
    );
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    let client = ClientBuilder::new(connector)
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{port}"))
        .await
        .expect("a browser session");
    (client, driver)
}

/// Marks now as the start of a count of the requests the page sends (Resource Timing). A
/// request started before the mark (the logout itself, a poll in flight) is not counted, even
/// if it ends after it.
async fn count_requests_from_now(c: &Client) {
    c.execute("performance.setResourceTimingBufferSize(10000); window.__countFrom = performance.now();", vec![])
        .await
        .unwrap();
}

/// The requests the page started with `fetch` since [`count_requests_from_now`].
async fn requests_sent(c: &Client) -> u64 {
    let script = "return performance.getEntriesByType('resource')
        .filter(e => e.initiatorType === 'fetch' && e.startTime >= window.__countFrom).length;";
    c.execute(script, vec![]).await.unwrap().as_u64().unwrap()
}

/// How often the dashboard polls (`frontend/src/routes/dashboard/mod.rs`, `REFRESH_MS`), and
/// how many requests one poll makes (account, accounts everywhere, keys, consents, statement).
const REFRESH: Duration = Duration::from_millis(2_000);
const REQUESTS_PER_POLL: u64 = 5;

/// Waits until the element's text satisfies `ok`; returns the text.
async fn text_until(c: &Client, css: &str, ok: impl Fn(&str) -> bool) -> String {
    let until = Instant::now() + WAIT;
    loop {
        if let Ok(e) = c.find(Locator::Css(css)).await
            && let Ok(t) = e.text().await
            && ok(&t)
        {
            return t;
        }
        assert!(Instant::now() < until, "{css} never satisfied the condition");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn fill(c: &Client, css: &str, value: &str) {
    let e = c.wait().at_most(WAIT).for_element(Locator::Css(css)).await.unwrap();
    e.clear().await.unwrap();
    e.send_keys(value).await.unwrap();
}

async fn click(c: &Client, css: &str) {
    c.wait().at_most(WAIT).for_element(Locator::Css(css)).await.unwrap().click().await.unwrap();
}

async fn choose_bank(c: &Client, url: &str) {
    fill(c, "#bank-custom", url).await;
    click(c, "#bank-continue").await;
}

async fn sign_up(c: &Client, name: &str, cpf: &str) -> String {
    // The result of the previous sign-up on this page is still shown: wait for a new one.
    let before = match c.find(Locator::Css("#signup-result")).await {
        Ok(e) => e.text().await.unwrap_or_default(),
        Err(_) => String::new(),
    };
    fill(c, "#signup-name", name).await;
    fill(c, "#signup-docs", cpf).await;
    fill(c, "#signup-password", "senha-segura-123").await;
    click(c, "#signup-submit").await;
    let t = text_until(c, "#signup-result", |t| t.contains('-') && t != before).await;
    t.rsplit(' ').next().unwrap().trim().to_string()
}

async fn log_in(c: &Client, ibk: &str) {
    fill(c, "#login-ibk", ibk).await;
    fill(c, "#login-password", "senha-segura-123").await;
    click(c, "#login-submit").await;
    c.wait().at_most(WAIT).for_element(Locator::Css("#balance")).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_customers_at_two_banks_pay_each_other_in_the_browser() {
    let dist = workspace().join("frontend/dist");
    assert!(dist.join("index.html").is_file(), "build the app first: trunk build --release (scripts/test.sh does)");
    let app_port = serve_app(dist);
    let dir = tempfile::tempdir().unwrap();
    let mut spec = Spec::ephemeral(2, 2, dir.path());
    spec.business_args = vec!["--cors-origins".into(), format!("http://127.0.0.1:{app_port}")];
    let cluster = Cluster::start(&spec).unwrap();
    let (bank1, bank2) = (cluster.banks[0].urls()[0].clone(), cluster.banks[1].urls()[1].clone());

    let (c, _driver) = browser().await;
    c.goto(&format!("http://127.0.0.1:{app_port}/")).await.unwrap();

    // The document is checked as it is typed, with the reason shown.
    choose_bank(&c, &bank2).await;
    fill(&c, "#signup-docs", "123.456.789-00").await;
    text_until(&c, ".error", |t| t.contains("123.456.789-00")).await;
    let bia = sign_up(&c, "Beatriz Souza", "111.444.777-35").await;
    let ana_at_2 = sign_up(&c, "Ana Lima", "529.982.247-25").await;
    click(&c, "#change-bank").await;
    choose_bank(&c, &bank1).await;
    let carla = sign_up(&c, "Carla Dias", "390.533.447-05").await;
    let ana = sign_up(&c, "Ana Lima", "529.982.247-25").await;
    // A refusal is told in the page's language, from its stable code (no English on a
    // Portuguese page).
    fill(&c, "#login-ibk", &ana).await;
    fill(&c, "#login-password", "not-her-password").await;
    click(&c, "#login-submit").await;
    text_until(&c, "#login-error", |t| t == "IBK ou senha incorretos").await;
    log_in(&c, &ana).await;

    // Deposit typed in Brazilian format.
    fill(&c, "#amount", "150,00").await;
    click(&c, "#deposit").await;
    text_until(&c, "#balance", |t| t == "R$ 150,00").await;

    // A package to the other bank, built with a slip: an operation added, seen in the total, and
    // removed again before sending.
    fill(&c, "#op-to", &bia).await;
    fill(&c, "#op-amount", "40,50").await;
    click(&c, "#op-add").await;
    fill(&c, "#op-to", &bia).await;
    fill(&c, "#op-amount", "9,50").await;
    click(&c, "#op-add").await;
    text_until(&c, "#ops-total", |t| t.ends_with("R$ 50,00")).await;
    let removes = c.find_all(Locator::Css(".op-remove")).await.unwrap();
    assert_eq!(removes.len(), 2);
    removes[1].click().await.unwrap();
    text_until(&c, "#ops-total", |t| t.ends_with("R$ 40,50")).await;
    assert_eq!(c.find_all(Locator::Css("#ops li")).await.unwrap().len(), 1);
    click(&c, "#package-send").await;
    text_until(&c, "#package-result", |t| !t.is_empty()).await;
    text_until(&c, "#balance", |t| t == "R$ 109,50").await;
    text_until(&c, "#statement", |t| t.contains(&bia) && t.contains("R$ 40,50")).await;

    let shot = c.screenshot().await.unwrap();
    let out = workspace().join("target/browser-artifacts");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("dashboard.png"), shot).unwrap();

    // Ana links her account at bank 2: signed in there with bank 2's credentials, she consents
    // to bank 1's debits up to R$ 100,00; the consent is bank 2's record, listed there.
    fill(&c, "#link-ibk", &ana_at_2).await;
    fill(&c, "#link-password", "senha-segura-123").await;
    fill(&c, "#link-limit", "100,00").await;
    click(&c, "#link-send").await;
    text_until(&c, "#link-result", |t| t.contains(&ana_at_2) && t.contains("R$ 100,00")).await;

    // A joint account with Carla waits for her; she confirms it from her own session.
    fill(&c, "#joint-name", "Ana e Carla").await;
    fill(&c, "#joint-others", "390.533.447-05").await;
    fill(&c, "#joint-password", "senha-conjunta-123").await;
    click(&c, "#joint-open").await;
    text_until(&c, "#joint-result", |t| t.contains('-')).await;
    text_until(&c, "#accounts", |t| t.contains("Aguardando") && t.contains("390.533.447-05")).await;
    click(&c, "#logout").await;
    log_in(&c, &carla).await;
    click(&c, ".confirm-joint").await;
    text_until(&c, "#accounts", |t| t.contains("Ana e Carla") && !t.contains("Aguardando")).await;

    // The payee sees it at her bank.
    click(&c, "#logout").await;
    click(&c, "#change-bank").await;
    choose_bank(&c, &bank2).await;
    log_in(&c, &bia).await;
    text_until(&c, "#balance", |t| t == "R$ 40,50").await;
    text_until(&c, "#statement", |t| t.contains(&ana)).await;

    // Logged out, the dashboard polls nothing. This is the absence of an event, so it is
    // watched for a fixed window (two polling periods and a half), not awaited.
    click(&c, "#logout").await;
    c.wait().at_most(WAIT).for_element(Locator::Css("#login-ibk")).await.unwrap();
    count_requests_from_now(&c).await;
    tokio::time::sleep(REFRESH * 2 + REFRESH / 4).await;
    assert_eq!(requests_sent(&c).await, 0, "requests after logout: the dashboard kept polling");

    // Logged in again, exactly one poller runs: three periods hold at most four polls.
    log_in(&c, &bia).await;
    count_requests_from_now(&c).await;
    tokio::time::sleep(REFRESH * 3).await;
    let polled = requests_sent(&c).await;
    assert!(polled <= 4 * REQUESTS_PER_POLL, "{polled} requests in three periods: more than one poller runs");
    assert!(polled >= 2 * REQUESTS_PER_POLL, "{polled} requests in three periods: the dashboard does not poll");
    c.close().await.unwrap();
}
