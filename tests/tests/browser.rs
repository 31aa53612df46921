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
/// how many requests one poll makes on the Início tab (account, accounts everywhere, statement).
const REFRESH: Duration = Duration::from_millis(2_000);
const REQUESTS_PER_POLL: u64 = 3;

/// Waits until the element's text satisfies `ok`; returns the text.
async fn text_until(c: &Client, css: &str, ok: impl Fn(&str) -> bool) -> String {
    let until = Instant::now() + WAIT;
    loop {
        if let Ok(e) = c.find(Locator::Css(css)).await
            && let Ok(t) = e.text().await
            && ok(&t.replace('\u{a0}', " "))
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
    // A row redrawn between finding and clicking is found again.
    let until = Instant::now() + WAIT;
    loop {
        let e = c.wait().at_most(WAIT).for_element(Locator::Css(css)).await.unwrap();
        match e.click().await {
            Ok(()) => return,
            Err(err) if Instant::now() < until => {
                let _ = err;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(err) => panic!("clicking {css}: {err}"),
        }
    }
}

async fn choose_bank(c: &Client, url: &str) {
    // A replica's address is behind "Avançado".
    click(c, "#bank-advanced summary").await;
    fill(c, "#bank-custom", url).await;
    click(c, "#bank-continue").await;
}

async fn tab(c: &Client, name: &str) {
    click(c, &format!("#tab-{name}")).await;
    c.wait().at_most(WAIT).for_element(Locator::Css(&format!("#tab-{name}.active"))).await.unwrap();
}

/// Saves a screenshot as a test artifact (`target/browser-artifacts/NAME.png`).
async fn shot(c: &Client, name: &str) {
    let out = workspace().join("target/browser-artifacts");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join(format!("{name}.png")), c.screenshot().await.unwrap()).unwrap();
}

/// The statement rows (`li.entry`) of one transaction: its own row or its lines.
async fn rows_of(c: &Client, id: &str) -> Vec<fantoccini::elements::Element> {
    c.find_all(Locator::Css(&format!("#statement li.entry[data-id='{id}']"))).await.unwrap()
}

/// The `data-id` of the first element matching `css`, once there is one. Read in one script:
/// rows are redrawn as pushed changes arrive, so an element found may be gone a moment later.
async fn data_id_until(c: &Client, css: &str) -> String {
    let until = Instant::now() + WAIT;
    loop {
        let v = c
            .execute("return document.querySelector(arguments[0])?.dataset.id ?? null;", vec![css.into()])
            .await
            .unwrap();
        if let Some(id) = v.as_str() {
            return id.to_string();
        }
        assert!(Instant::now() < until, "no {css}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Whether the page is wider than the window (a horizontal scroll).
async fn scrolls_sideways(c: &Client) -> bool {
    let script = "return document.documentElement.scrollWidth > document.documentElement.clientWidth;";
    c.execute(script, vec![]).await.unwrap().as_bool().unwrap()
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
    spec.business_args = harness::cluster::TEST_TIMINGS.iter().map(|s| s.to_string()).collect();
    spec.business_args.extend(["--cors-origins".into(), format!("http://127.0.0.1:{app_port}")]);
    spec.business_args.extend(["--package-deadline-ms".into(), "120000".into()]);
    // A stream whose session ended closes at the replica's next heartbeat; at a minute, only the
    // page closing its own stream brings the count to zero within the test's wait.
    spec.business_args.extend(["--events-heartbeat-ms".into(), "60000".into()]);
    let mut cluster = Cluster::start(&spec).unwrap();
    let (bank1, bank2) = (cluster.banks[0].urls()[0].clone(), cluster.banks[1].urls()[1].clone());

    let (c, _driver) = browser().await;
    c.set_window_size(1280, 900).await.unwrap();
    c.goto(&format!("http://127.0.0.1:{app_port}/")).await.unwrap();
    c.wait().at_most(WAIT).for_element(Locator::Css("#bank-form")).await.unwrap();
    // The first render, as the browser timed it from the start of navigation (a figure to
    // report, not a timed assertion: this machine is shared).
    let first =
        c.execute("return performance.getEntriesByName('interbank-first-render')[0].startTime;", vec![]).await.unwrap();
    let first_ms = first.as_f64().expect("the app marks its first render");
    println!("first render: {first_ms:.0} ms after navigation start");
    std::fs::create_dir_all(workspace().join("target/browser-artifacts")).unwrap();
    std::fs::write(workspace().join("target/browser-artifacts/first-render-ms.txt"), format!("{first_ms:.0}\n"))
        .unwrap();
    shot(&c, "choose-bank").await;

    // The document is judged once the field is left, with the reason beside it.
    choose_bank(&c, &bank2).await;
    fill(&c, "#signup-docs", "123").await;
    assert_eq!(
        c.find(Locator::Css("#signup-docs-error")).await.unwrap().text().await.unwrap(),
        "",
        "not at the first keystrokes"
    );
    fill(&c, "#signup-docs", "123.456.789-00").await;
    click(&c, "#signup-name").await;
    text_until(&c, "#signup-docs-error", |t| t.contains("123.456.789-00")).await;
    let bia = sign_up(&c, "Beatriz Souza", "111.444.777-35").await;
    let ana_at_2 = sign_up(&c, "Ana Lima", "529.982.247-25").await;
    shot(&c, "sign-up").await;
    click(&c, "#change-bank").await;
    choose_bank(&c, &bank1).await;
    let carla = sign_up(&c, "Carla Dias", "390.533.447-05").await;
    let ana = sign_up(&c, "Ana Lima", "529.982.247-25").await;
    // What only the bank can know is said beside its field too: this CPF already has an account.
    fill(&c, "#signup-name", "Ana Lima").await;
    fill(&c, "#signup-docs", "529.982.247-25").await;
    fill(&c, "#signup-password", "senha-segura-123\u{e007}").await;
    text_until(&c, "#signup-docs-error", |t| t == "Este documento já tem conta neste banco").await;
    assert_eq!(c.find(Locator::Css("#signup-error")).await.unwrap().text().await.unwrap(), "", "beside the field only");
    // A refusal is told in the page's language, from its stable code (no English on a
    // Portuguese page), with the attempts left before a lockout; Enter submits the form.
    fill(&c, "#login-ibk", &ana).await;
    fill(&c, "#login-password", "not-her-password\u{e007}").await;
    text_until(&c, "#login-error", |t| t == "IBK ou senha incorretos. Restam 4 tentativas antes do bloqueio.").await;
    // Guessing further warns of the last attempt, then locks the account, and the page says
    // until when (a time of day).
    let davi = sign_up(&c, "Davi Rocha", &shared::Document::with_check_digits("123456780").unwrap().formatted()).await;
    let until = Instant::now() + WAIT;
    let (mut warned, mut previous) = (false, String::new());
    loop {
        fill(&c, "#login-ibk", &davi).await;
        fill(&c, "#login-password", "senha-errada-123\u{e007}").await;
        // Each answer reads differently (the count goes down), so a new one is awaited, not
        // the last one still shown.
        let t = text_until(&c, "#login-error", |t| !t.is_empty() && t != previous).await;
        previous.clone_from(&t);
        warned |= t == "IBK ou senha incorretos. Esta foi a última tentativa antes do bloqueio.";
        if let Some(at) = t.strip_prefix("Muitas tentativas. Tente de novo às ") {
            let at = at.trim_end_matches('.');
            assert!(at.len() == 5 && at.as_bytes()[2] == b':', "a time of day: {t:?}");
            break;
        }
        assert!(Instant::now() < until, "no lockout: {t:?}");
    }
    assert!(warned, "the last attempt before the lockout was not announced");
    log_in(&c, &ana).await;
    text_until(&c, "#greeting", |t| t == "Olá, Ana").await;
    text_until(&c, "#statement-empty", |t| t == "Nenhuma movimentação ainda.").await;

    // Deposit typed in Brazilian format; a withdrawal past the balance refused in Portuguese.
    fill(&c, "#amount", "150,00").await;
    click(&c, "#deposit").await;
    text_until(&c, "#balance", |t| t == "R$ 150,00").await;
    fill(&c, "#amount", "1.000,00").await;
    click(&c, "#withdraw").await;
    text_until(&c, "#money-error", |t| t == "Saldo insuficiente: disponível R$ 150,00, pedido R$ 1.000,00").await;
    text_until(&c, "#statement li.entry.credit .amount", |t| t == "+ R$ 150,00").await;
    shot(&c, "home").await;
    // "Minhas contas" shows the balance the summary shows.
    tab(&c, "contas").await;
    text_until(&c, "#accounts tr.me", |t| t.contains("R$ 150,00")).await;
    shot(&c, "accounts").await;

    // A package to the other bank, built with a slip: the recipient is named by its bank before
    // an operation is added; an account that does not exist is refused there; an operation added
    // by mistake is removed before review.
    tab(&c, "pix").await;
    fill(&c, "#op-to", &format!("{}-999", bia.split('-').next().unwrap())).await;
    fill(&c, "#op-amount", "1,00").await;
    click(&c, "#op-add").await;
    text_until(&c, "#op-to-error", |t| t == "Conta não encontrada ou encerrada").await;
    assert!(c.find_all(Locator::Css("#ops li")).await.unwrap().is_empty(), "an unknown account was added");
    for amount in ["40,50", "1,00", "9,50"] {
        fill(&c, "#op-to", &bia).await;
        fill(&c, "#op-amount", amount).await;
        click(&c, "#op-add").await;
        text_until(&c, "#op-to", |t| t.is_empty()).await;
    }
    text_until(&c, "#ops", |t| t.contains("Beatriz S**** (") && t.matches("Beatriz").count() == 3).await;
    text_until(&c, "#ops-total", |t| t.ends_with("R$ 51,00")).await;
    let removes = c.find_all(Locator::Css(".op-remove")).await.unwrap();
    assert_eq!(removes.len(), 3);
    removes[1].click().await.unwrap();
    text_until(&c, "#ops-total", |t| t.ends_with("R$ 50,00")).await;
    assert_eq!(c.find_all(Locator::Css("#ops li")).await.unwrap().len(), 2);
    click(&c, "#package-review").await;
    text_until(&c, "#review", |t| t.contains("tudo ou nada")).await;
    shot(&c, "pix-review").await;
    // Bank 2 is down: the package waits, pending, and is seen pending in the statement.
    cluster.kill_bank(1);
    click(&c, "#package-send").await;
    text_until(&c, "#package-result", |t| t.contains("R$ 50,00")).await;
    tab(&c, "extrato").await;
    let package = data_id_until(&c, "#statement li.entry.package.status-pending").await;
    text_until(&c, &format!("#statement li.entry[data-id='{package}'] .state"), |t| t == "pendente").await;
    shot(&c, "statement-pending").await;
    // Bank 2 is back: the row settles in place, never shown twice, without a reload.
    cluster.start_bank(1).unwrap();
    let until = Instant::now() + Duration::from_secs(60);
    loop {
        // Counted and read in one script, so a row redrawn meanwhile is not missed or doubled.
        let script = "return Array.from(document.querySelectorAll(`#statement li.entry[data-id='${arguments[0]}']`)).map(e => e.className);";
        let v = c.execute(script, vec![package.clone().into()]).await.unwrap();
        let classes: Vec<String> = serde_json::from_value(v).unwrap();
        assert!(classes.len() <= 1, "the package is shown {} times: {classes:?}", classes.len());
        if classes.first().is_some_and(|c| c.contains("status-success")) {
            break;
        }
        assert!(Instant::now() < until, "the package never settled on the page");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    text_until(&c, "#balance", |t| t == "R$ 100,00").await;
    // Its line: the total, signed, and both operations in its detail.
    let row = format!("#statement li.entry[data-id='{package}']");
    text_until(&c, &format!("{row} .amount"), |t| t == "− R$ 50,00").await;
    text_until(&c, &format!("{row} .what"), |t| t.starts_with("Pacote enviado")).await;
    click(&c, &format!("{row} .entry-summary")).await;
    text_until(&c, &format!("{row} .detail"), |t| {
        t.contains("R$ 40,50") && t.contains("R$ 9,50") && t.contains("Total do pacote: R$ 50,00")
    })
    .await;
    assert_eq!(c.find_all(Locator::Css(&format!("{row} .detail tr.op"))).await.unwrap().len(), 2);
    shot(&c, "statement-detail").await;

    // A package that fails (more than the balance) stays listed, failed, after a reload, which
    // keeps the session, the bank, the language and the tab.
    tab(&c, "pix").await;
    fill(&c, "#op-to", &bia).await;
    fill(&c, "#op-amount", "500,00").await;
    click(&c, "#op-add").await;
    text_until(&c, "#ops-total", |t| t.ends_with("R$ 500,00")).await;
    click(&c, "#package-review").await;
    click(&c, "#package-send").await;
    text_until(&c, "#package-result", |t| t.contains("R$ 500,00")).await;
    tab(&c, "extrato").await;
    let failed_id = data_id_until(&c, "#statement li.entry.package.status-failed").await;
    c.refresh().await.unwrap();
    c.wait().at_most(WAIT).for_element(Locator::Css("#tab-extrato.active")).await.unwrap();
    text_until(&c, &format!("#statement li.entry[data-id='{failed_id}'] .state"), |t| t == "falhou").await;
    // Why, in Portuguese, from the failure's code.
    click(&c, &format!("#statement li.entry[data-id='{failed_id}'] .entry-summary")).await;
    text_until(&c, &format!("#statement li.entry[data-id='{failed_id}'] .reason"), |t| t == "Saldo insuficiente").await;
    text_until(&c, "#greeting", |t| t == "Olá, Ana").await;
    assert_eq!(rows_of(&c, &package).await.len(), 1, "after the reload, the settled package once");
    shot(&c, "statement-failed-after-reload").await;

    // On a phone: no tab scrolls sideways.
    c.set_window_size(390, 844).await.unwrap();
    for (t, loaded) in [
        ("inicio", "#statement li.entry"),
        ("pix", "#op-form"),
        ("extrato", "#statement li.entry"),
        ("chaves", "#keys-form"),
        ("contas", "#accounts tr"),
    ] {
        tab(&c, t).await;
        c.wait().at_most(WAIT).for_element(Locator::Css(loaded)).await.unwrap();
        assert!(!scrolls_sideways(&c).await, "the {t} tab scrolls sideways at 390 px");
        shot(&c, &format!("phone-{t}")).await;
    }
    c.set_window_size(1280, 900).await.unwrap();

    // Ana links her account at bank 2: signed in there with bank 2's credentials, she consents
    // to bank 1's debits up to R$ 100,00; the consent is bank 2's record, listed there.
    tab(&c, "contas").await;
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
    tab(&c, "contas").await;
    click(&c, ".confirm-joint").await;
    text_until(&c, "#accounts", |t| t.contains("Ana e Carla") && !t.contains("Aguardando")).await;

    // The payee sees it at her bank: one line, received, with both operations.
    click(&c, "#logout").await;
    click(&c, "#change-bank").await;
    choose_bank(&c, &bank2).await;
    log_in(&c, &bia).await;
    text_until(&c, "#balance", |t| t == "R$ 50,00").await;
    tab(&c, "extrato").await;
    text_until(&c, &format!("{row} .what"), |t| t.starts_with("Pacote recebido")).await;
    text_until(&c, &format!("{row} .amount"), |t| t == "+ R$ 50,00").await;
    assert_eq!(rows_of(&c, &package).await.len(), 1);
    click(&c, &format!("{row} .entry-summary")).await;
    text_until(&c, &format!("{row} .detail"), |t| t.contains("R$ 40,50") && t.contains("R$ 9,50") && t.contains(&ana))
        .await;
    assert!(rows_of(&c, &failed_id).await.is_empty(), "a failed package moved nothing at the payee");
    shot(&c, "payee-statement").await;
    tab(&c, "inicio").await;

    // Logged out, the dashboard polls nothing and listens to nothing. This is the absence of
    // an event, so it is watched for a fixed window (two polling periods and a half), not
    // awaited; the replicas' count of open streams is awaited to reach zero.
    click(&c, "#logout").await;
    c.wait().at_most(WAIT).for_element(Locator::Css("#login-ibk")).await.unwrap();
    count_requests_from_now(&c).await;
    tokio::time::sleep(REFRESH * 2 + REFRESH / 4).await;
    assert_eq!(requests_sent(&c).await, 0, "requests after logout: the dashboard kept polling");
    let streams = |bank: usize| {
        let urls = cluster.banks[bank].urls();
        let key = cluster.operator_key.clone();
        async move {
            let mut n = 0;
            for u in urls {
                let m = pki::http_client().get(format!("{u}/metrics")).bearer_auth(&key).send().await.unwrap();
                let text = m.text().await.unwrap();
                n += text
                    .lines()
                    .find_map(|l| l.strip_prefix("business_event_streams "))
                    .map_or(0, |v| v.parse::<u64>().unwrap());
            }
            n
        }
    };
    let until = Instant::now() + WAIT;
    while streams(1).await != 0 {
        assert!(Instant::now() < until, "an event stream outlived its page");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // And a reload after logout does not bring the session back.
    c.refresh().await.unwrap();
    c.wait().at_most(WAIT).for_element(Locator::Css("#login-ibk")).await.unwrap();

    // Logged in again: one stream, and no polling while it is open. A deposit made elsewhere
    // (the operator, through the other replica) reaches the page by push.
    log_in(&c, &bia).await;
    c.wait().at_most(WAIT).for_element(Locator::Css("#live.on")).await.unwrap();
    assert_eq!(streams(1).await, 1, "one page, one stream");
    count_requests_from_now(&c).await;
    tokio::time::sleep(REFRESH * 3).await;
    let polled = requests_sent(&c).await;
    // At most one round of loads (the stream's first event may land just after the mark).
    assert!(polled < 2 * REQUESTS_PER_POLL, "{polled} requests in three periods: the page polls beside its stream");
    let op = harness::client::Operator {
        http: pki::http_client(),
        base: cluster.banks[1].urls()[0].clone(),
        key: cluster.operator_key.clone(),
    };
    op.deposit(bia.parse().unwrap(), "7.25").await.unwrap();
    text_until(&c, "#balance", |t| t == "R$ 57,25").await;

    // The operator console, with bank 1's operator key: the ring of two banks with the token
    // moving (its pass number grows and its holder changes), the queue and what is in doubt.
    click(&c, "#logout").await;
    click(&c, "#change-bank").await;
    click(&c, "#operator-console").await;
    fill(&c, "#console-base", &bank1).await;
    fill(&c, "#console-key", &cluster.operator_key).await;
    click(&c, "#console-enter").await;
    c.wait().at_most(WAIT).for_element(Locator::Css("#console-ring .ring-bank")).await.unwrap();
    assert_eq!(c.find_all(Locator::Css("#console-ring .ring-bank")).await.unwrap().len(), 2);
    text_until(&c, "#console-queued", |t| t.parse::<u64>().is_ok()).await;
    text_until(&c, "#console-in-doubt", |t| t.parse::<u64>().is_ok()).await;
    let first_seq = text_until(&c, "#console-seq", |t| t.parse::<u64>().is_ok()).await;
    let first_holder = text_until(&c, "#console-holder", |t| t.contains("Banco")).await;
    text_until(&c, "#console-seq", |t| t != first_seq).await;
    text_until(&c, "#console-holder", |t| t.contains("Banco") && t != first_holder).await;
    text_until(&c, "#console-positions", |t| t.contains("50")).await;
    shot(&c, "operator-console").await;
    c.close().await.unwrap();
}
