//! The dashboard in a real browser: headless Chromium driven through chromedriver (Debian's
//! `chromium` and `chromium-driver`; `.ci/run` installs them). Sign in, watch a batch reach
//! 100% without a reload (on its page and in the list of batches), read a failed job's
//! attempts and refund, cancel and retry a filtered list of jobs, change a limit and see an
//! enqueue refused by it, pause and resume a schedule, see a webhook endpoint, disable and
//! enable a provider key, sign out. Forms without the session's CSRF value, and changes by a
//! viewer, are refused. Every page is saved as a screenshot (`GENQ_SCREENSHOTS`, default
//! `$CARGO_TARGET_TMPDIR/dashboard`).

mod common;

use common::{ADMIN, TestServer, config, fake, fake_provider_toml};
use fantoccini::{Client, ClientBuilder, Locator};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const VIEWER: &str = "viewer-token-0123456789abcdef";

/// chromedriver on a free port, killed with the test.
struct Driver {
    child: Child,
    url: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn driver() -> Driver {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new("chromedriver")
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver (Debian: apt-get install chromium chromium-driver)");
    let url = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(20);
    while reqwest::get(format!("{url}/status")).await.is_err() {
        assert!(Instant::now() < deadline, "chromedriver did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Driver { child, url }
}

async fn browser(driver: &Driver) -> Client {
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": "/usr/bin/chromium",
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1280,900"]
        }),
    );
    ClientBuilder::rustls()
        .expect("rustls")
        .capabilities(caps)
        .connect(&driver.url)
        .await
        .expect("a Chromium session")
}

fn screenshots() -> PathBuf {
    let dir = std::env::var_os("GENQ_SCREENSHOTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("dashboard"));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

async fn shoot(c: &Client, name: &str) {
    let png = c.screenshot().await.unwrap();
    std::fs::write(screenshots().join(format!("{name}.png")), png).unwrap();
}

/// The text of the element `css` matches, once there is one. htmx may swap the element out
/// between finding it and reading it: then it is found again.
async fn text(c: &Client, css: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let found = c
            .wait()
            .at_most(Duration::from_secs(10))
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no {css}: {e}"));
        match found.text().await {
            Ok(text) => return text,
            Err(e) if Instant::now() < deadline => {
                assert!(e.to_string().contains("stale"), "{css}: {e}");
            }
            Err(e) => panic!("{css}: {e}"),
        }
    }
}

/// Clicks the element `css` matches.
async fn click(c: &Client, css: &str) {
    c.find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("no {css}: {e}"))
        .click()
        .await
        .unwrap();
}

/// Waits until `css` matches an element (the page is not reloaded for it).
async fn wait_for(c: &Client, css: &str, within: Duration) {
    c.wait()
        .at_most(within)
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css} never appeared: {e}"));
}

/// Waits until the browser is at `want` (a click's navigation may still be under way).
async fn at(c: &Client, want: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let path = c.current_url().await.unwrap().path().to_string();
        if path == want {
            return;
        }
        assert!(Instant::now() < deadline, "at {path}, not {want}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A batch of `n` jobs of 200 ms each for `user`; its id.
async fn slow_batch(server: &TestServer, user: &str, n: usize) -> String {
    let items: Vec<Value> = (0..n)
        .map(|i| json!({"n": i, "simulate": {"latency_ms": 200}}))
        .collect();
    let (status, body) = server
        .post(
            "/v1/batches",
            json!({"user_id": user, "kind": "card.generate", "items": items}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body["batch"]["id"].as_str().unwrap().to_string()
}

/// Marks the page the browser shows, so that [`same_page`] tells whether it was reloaded.
async fn mark_page(c: &Client) {
    c.execute("window.stillThisPage = true;", vec![])
        .await
        .unwrap();
}

async fn same_page(c: &Client) -> bool {
    c.execute("return window.stillThisPage === true;", vec![])
        .await
        .unwrap()
        == json!(true)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_watches_and_steers_genq_in_a_browser() {
    let fake_url = fake(genq_fake_provider::FakeConfig::default()).await;
    let mut cfg = config(&format!(
        "{}{}",
        fake_provider_toml(&fake_url, ""),
        r#"
[[schedules]]
name = "nightly-report"
cron = "0 3 * * *"
kind = "report.weekly"
user_id = "system"

[[webhooks]]
url = "http://127.0.0.1:9/genq-events"
secret = "whsec-dashboard-test"
events = ["batch.completed"]
"#
    ));
    cfg.auth.viewer_tokens.push(VIEWER.into());
    let server = TestServer::start(cfg).await;
    let driver = driver().await;
    let c = browser(&driver).await;

    // Nothing is reachable without signing in; a wrong token is refused.
    c.goto(&format!("{}/jobs", server.url)).await.unwrap();
    at(&c, "/login").await;
    shoot(&c, "login").await;
    c.find(Locator::Id("token"))
        .await
        .unwrap()
        .send_keys("not-a-token-of-this-genq")
        .await
        .unwrap();
    click(&c, "#sign-in").await;
    assert!(text(&c, "#login-error").await.contains("not an admin"));
    c.find(Locator::Id("token"))
        .await
        .unwrap()
        .send_keys(ADMIN)
        .await
        .unwrap();
    click(&c, "#sign-in").await;
    at(&c, "/jobs").await;

    // A batch's progress bar reaches 100% while the page stays loaded.
    let batch = slow_batch(&server, "ana", 40).await;
    c.goto(&format!("{}/batches/{batch}", server.url))
        .await
        .unwrap();
    let first: u32 = text(&c, "#percent")
        .await
        .trim_end_matches('%')
        .parse()
        .unwrap();
    assert!(first < 100, "the batch was done before its page loaded");
    mark_page(&c).await;
    wait_for(&c, "#batch-done", Duration::from_secs(30)).await;
    assert_eq!(text(&c, "#percent").await, "100%");
    assert!(same_page(&c).await, "the page was reloaded");
    assert_eq!(
        c.execute(
            // The extension keeps its EventSource in htmx's data of the element (1: open).
            "const source = document.querySelector('[sse-connect]')['htmx-internal-data'];
             return source.sseEventSource.url.includes('/live?batch_id=')
                 && source.sseEventSource.readyState === 1;",
            vec![]
        )
        .await
        .unwrap(),
        json!(true),
        "the page listened to /live rather than polling"
    );
    shoot(&c, "batch").await;

    // The list of batches moves too: a new batch's row reaches 20 / 20 without a reload.
    let listed = slow_batch(&server, "cy", 20).await;
    c.goto(&format!("{}/batches", server.url)).await.unwrap();
    let row = format!("tr[id='batch-{listed}']");
    let first = text(&c, &row).await;
    assert!(
        first.contains("cy") && !first.contains("20 / 20"),
        "the batch was done before the list loaded: {first}"
    );
    assert!(
        text(&c, &format!("tr[id='batch-{batch}']"))
            .await
            .contains("40 / 40")
    );
    mark_page(&c).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while !text(&c, &row).await.contains("20 / 20") {
        assert!(
            Instant::now() < deadline,
            "the batch list never showed 20 / 20"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(same_page(&c).await, "the page was reloaded");
    shoot(&c, "batches").await;

    // A failed job: its attempts, its failure, its debit and refund.
    let (status, body) = server
        .post(
            "/v1/jobs",
            json!({"user_id": "ana", "kind": "card.generate",
                   "payload": {"simulate": {"fail": "user_error"}}}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let job = body["id"].as_str().unwrap().to_string();
    server.until_state(&job, "failed").await;
    c.goto(&format!("{}/jobs/{job}", server.url)).await.unwrap();
    assert_eq!(text(&c, "#job-state").await, "failed");
    assert_eq!(text(&c, "#attempts").await, "1");
    assert!(text(&c, "#failure").await.contains("user_error"));
    let attempts = c
        .find_all(Locator::Css("#history tr.attempt"))
        .await
        .unwrap();
    assert_eq!(attempts.len(), 1);
    assert!(attempts[0].text().await.unwrap().contains("user_error"));
    let ledger = text(&c, "#ledger").await;
    assert!(
        c.find(Locator::Css("#ledger tr.ledger-debit"))
            .await
            .is_ok()
            && c.find(Locator::Css("#ledger tr.ledger-refund"))
                .await
                .is_ok(),
        "debit and refund: {ledger}"
    );
    shoot(&c, "job").await;

    // A job that failed three times: each attempt with its class and detail.
    let (status, body) = server
        .post(
            "/v1/jobs",
            json!({"user_id": "ana", "kind": "fast.retry",
                   "payload": {"simulate": {"fail": "temporary"}}}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let retried = body["id"].as_str().unwrap().to_string();
    server.until_state(&retried, "failed").await;
    c.goto(&format!("{}/jobs/{retried}", server.url))
        .await
        .unwrap();
    let rows = c
        .find_all(Locator::Css("#history tr.attempt"))
        .await
        .unwrap();
    let mut seen = Vec::new();
    for row in rows {
        seen.push(row.text().await.unwrap());
    }
    assert_eq!(seen.len(), 3, "{seen:?}");
    assert!(
        seen[..2]
            .iter()
            .all(|r| r.contains("retrying") && r.contains("temporary"))
    );
    assert!(seen[2].contains("failed") && seen[2].contains("simulated temporary"));
    shoot(&c, "job-retried").await;

    // The overview and the job list.
    c.goto(&server.url).await.unwrap();
    wait_for(&c, "#count-succeeded", Duration::from_secs(5)).await;
    assert_eq!(text(&c, "#count-failed").await, "2");
    let nodes = text(&c, "table.nodes").await;
    assert!(nodes.contains("alive"), "{nodes}");
    assert!(
        c.find(Locator::Css("#throughput rect.failed"))
            .await
            .is_ok()
    );
    let classes = text(&c, "table.classes").await;
    assert!(
        classes.contains("user_error") && classes.contains("temporary"),
        "{classes}"
    );
    shoot(&c, "overview").await;
    c.goto(&format!("{}/jobs?state=failed", server.url))
        .await
        .unwrap();
    assert!(text(&c, "table.jobs").await.contains(&job));
    shoot(&c, "jobs").await;
    c.goto(&format!("{}/users", server.url)).await.unwrap();
    let users = text(&c, "table.users").await;
    assert!(users.contains("ana") && users.contains("cy"), "{users}");
    shoot(&c, "users").await;
    c.find(Locator::Css("input[name=id]"))
        .await
        .unwrap()
        .send_keys("ana\n")
        .await
        .unwrap();
    at(&c, "/users/ana").await;
    assert!(text(&c, "#unfinished").await.ends_with("(0 running)"));
    shoot(&c, "user").await;

    // Every job of a filtered list canceled, then retried, each after a confirmation.
    for _ in 0..3 {
        let (status, body) = server
            .post(
                "/v1/jobs",
                json!({"user_id": "bo", "kind": "report.weekly", "payload": {}}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    for (button, done, state) in [
        ("bulk-cancel", "canceled", "canceled"),
        ("bulk-retry", "retried", "queued"),
    ] {
        c.goto(&format!("{}/jobs?user_id=bo", server.url))
            .await
            .unwrap();
        click(&c, &format!("#{button}")).await;
        assert_eq!(
            text(&c, "#matched").await.split('.').next().unwrap(),
            "3 jobs match"
        );
        shoot(&c, &format!("{button}-confirm")).await;
        click(&c, "#confirm").await;
        assert_eq!(
            text(&c, "#notice").await,
            format!("3 of 3 matching jobs {done}.")
        );
        let (_, page) = server.get("/v1/jobs?user_id=bo").await;
        let states: Vec<&str> = page["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|j| j["state"].as_str().unwrap())
            .collect();
        assert_eq!(states, [state; 3], "after {button}");
    }
    shoot(&c, "jobs-bulk").await;

    // A limit changed on the page refuses the next enqueue over it.
    c.goto(&format!("{}/limits", server.url)).await.unwrap();
    let input = c
        .find(Locator::Css(
            "#limit-batch_max_items_per_request input[name=value]",
        ))
        .await
        .unwrap();
    input.clear().await.unwrap();
    input.send_keys("2").await.unwrap();
    click(&c, "#save-batch_max_items_per_request").await;
    wait_for(
        &c,
        "#limit-batch_max_items_per_request.changed",
        Duration::from_secs(10),
    )
    .await;
    shoot(&c, "limits").await;
    let (status, body) = server
        .post(
            "/v1/batches",
            json!({"user_id": "ana", "kind": "card.generate", "items": [{}, {}, {}]}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"]["code"], "batch_too_large");

    // A schedule paused and resumed; a webhook endpoint that cannot be reached.
    c.goto(&format!("{}/schedules", server.url)).await.unwrap();
    let row = "tr[id='schedule-nightly-report']";
    assert!(text(&c, row).await.contains("active"));
    click(&c, &format!("{row} button")).await;
    wait_for(&c, &format!("{row} .badge.cooling"), Duration::from_secs(5)).await;
    let (_, schedules) = server.get("/v1/schedules").await;
    assert_eq!(schedules["schedules"][0]["paused"], true);
    shoot(&c, "schedules").await;
    click(&c, &format!("{row} button")).await;
    wait_for(&c, &format!("{row} .badge.ok"), Duration::from_secs(5)).await;
    let (_, schedules) = server.get("/v1/schedules").await;
    assert_eq!(schedules["schedules"][0]["paused"], false);
    c.goto(&format!("{}/webhooks", server.url)).await.unwrap();
    let hook = text(&c, "section.webhook").await;
    assert!(
        hook.contains("http://127.0.0.1/") && hook.contains("batch.completed"),
        "{hook}"
    );
    shoot(&c, "webhooks").await;

    // A key disabled and enabled again.
    let key_state = |c: &Client| {
        let c = c.clone();
        async move { text(&c, "tr[id='key-fake#1'] .badge").await }
    };
    c.goto(&format!("{}/providers", server.url)).await.unwrap();
    assert_eq!(key_state(&c).await, "ok");
    click(&c, "tr[id='key-fake#1'] button").await;
    c.accept_alert().await.unwrap();
    wait_for(
        &c,
        "tr[id='key-fake#1'] .badge.disabled",
        Duration::from_secs(5),
    )
    .await;
    let (_, providers) = server.get("/v1/admin/providers").await;
    assert_eq!(providers["providers"][0]["keys"][0]["state"], "disabled");
    shoot(&c, "providers").await;
    click(&c, "tr[id='key-fake#1'] button").await;
    wait_for(&c, "tr[id='key-fake#1'] .badge.ok", Duration::from_secs(5)).await;

    // Forms without this session's CSRF value are refused, and so is any change by a viewer.
    let cookie = c.get_named_cookie("genq_session").await.unwrap();
    let session = format!("genq_session={}", cookie.value());
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let post = |cookie: String, form: Vec<(&'static str, String)>| {
        let http = http.clone();
        let url = format!("{}/limits/batch_max_items_per_request", server.url);
        async move {
            http.post(url)
                .header("cookie", cookie)
                .form(&form)
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    assert_eq!(
        post(session.clone(), vec![("value", "5".into())]).await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        post(
            session.clone(),
            vec![("value", "5".into()), ("csrf", "forged".into())]
        )
        .await,
        StatusCode::FORBIDDEN
    );
    let signed_in = http
        .post(format!("{}/login", server.url))
        .form(&[("token", VIEWER)])
        .send()
        .await
        .unwrap();
    assert_eq!(signed_in.status(), StatusCode::SEE_OTHER);
    let viewer = signed_in.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let page = http
        .get(format!("{}/limits", server.url))
        .header("cookie", &viewer)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!page.contains("Save</button>"), "a viewer sees no forms");
    let csrf = regex::Regex::new(r#"name="csrf" value="([^"]+)""#)
        .unwrap()
        .captures(&page)
        .unwrap()[1]
        .to_string();
    assert_eq!(
        post(viewer, vec![("value", "5".into()), ("csrf", csrf)]).await,
        StatusCode::FORBIDDEN
    );
    let (_, limits) = server.get("/v1/admin/limits").await;
    assert_eq!(
        limits["limits"]["batch_max_items_per_request"]["value"], 2,
        "nothing changed"
    );

    // Signing out ends the session in this browser.
    click(&c, "#logout").await;
    at(&c, "/login").await;
    c.goto(&format!("{}/limits", server.url)).await.unwrap();
    at(&c, "/login").await;

    c.close().await.unwrap();
    server.shutdown().await;
}
