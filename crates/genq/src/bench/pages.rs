//! `genq bench --only pages`: how fast the dashboard answers with a big database. 1,000,000
//! jobs of 10,000 users (a few failed and refunded), processed by the engine, plus a
//! backlog of queued jobs; then every page is requested through HTTP with a signed-in session,
//! one request at a time, and its p50 and p99 printed against the 100 ms target.

use super::{BenchArgs, KIND, Running, batch_of, group, open, start};
use async_trait::async_trait;
use genq_api::AppState;
use genq_config::Config;
use genq_core::{ErrorClass, Failure, SystemClock};
use genq_engine::{Attempt, Handler, Reply};
use hdrhistogram::Histogram;
use serde_json::json;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

const USERS: usize = 10_000;
/// Jobs left queued (not processed) for the pages that show a backlog.
const BACKLOG: usize = 20_000;
/// Requests per page.
const SAMPLES: usize = 30;

/// Succeeds, or fails as the user's fault when the payload says so.
struct FailMarked;

#[async_trait]
impl Handler for FailMarked {
    async fn run(&self, attempt: Attempt) -> Result<Reply, Failure> {
        if attempt.payload["fail"] == true {
            return Err(Failure::new(ErrorClass::UserError, "marked to fail"));
        }
        Ok(Reply::Done(json!({"ok": true})))
    }
}

pub(super) async fn pages(dir: &Path, args: &BenchArgs) -> anyhow::Result<()> {
    let jobs = if args.deep > 0 { args.deep } else { 1_000_000 } as usize;
    let store = open(&dir.join("pages.db")).await?;
    let filled = Instant::now();
    let running: Running = start(store.clone(), Arc::new(FailMarked), args);
    let (mut enqueued, mut request) = (0, 0usize);
    let mut a_batch = None;
    // One request per user, each a batch of `jobs / USERS`; every thousandth request's last
    // job fails (and is refunded).
    let per_user = (jobs / USERS).max(1);
    while enqueued < jobs {
        let n = (jobs - enqueued).min(per_user);
        let mut payloads = vec![json!({"prompt": "a product card"}); n];
        if request % 1000 == 7 {
            payloads[n - 1] = json!({"prompt": "a product card", "fail": true});
        }
        let done = store
            .enqueue(batch_of(KIND, request % USERS, payloads, 1))
            .await?;
        a_batch = done.batch.map(|b| b.id).or(a_batch);
        enqueued += n;
        request += 1;
    }
    let processed = || running.engine.counters();
    while genq_engine::EngineCounters::get(&processed().succeeded)
        + genq_engine::EngineCounters::get(&processed().failed)
        < jobs as u64
    {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let engine = running.engine.clone();
    running.stop().await;
    for i in 0..BACKLOG / 200 {
        store
            .enqueue(batch_of(
                KIND,
                i % USERS,
                vec![json!({"later": true}); 200],
                1,
            ))
            .await?;
    }
    println!(
        "pages   {} jobs of {} users stored ({} queued) in {:.0} s",
        group((jobs + BACKLOG) as u64),
        group(USERS as u64),
        group(BACKLOG as u64),
        filled.elapsed().as_secs_f64()
    );

    let mut config = Config::default();
    let token = "bench-admin-token-0123456789".to_string();
    config.auth.admin_tokens = vec![token.clone()];
    let state = Arc::new(AppState::new(
        engine,
        Arc::new(config),
        Arc::new(SystemClock),
    ));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let server = tokio::spawn(async move {
        genq_api::server::serve(listener, state, std::future::pending()).await
    });
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let signed_in = http
        .post(format!("{base}/login"))
        .form(&[("token", token.as_str())])
        .send()
        .await?;
    let cookie = signed_in
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .ok_or_else(|| anyhow::anyhow!("signing in set no cookie"))?
        .to_string();

    let failed = store
        .jobs(&genq_store::JobQuery::newest(
            genq_store::JobFilter {
                state: Some(genq_core::JobState::Failed),
                ..Default::default()
            },
            1,
        ))
        .await?
        .jobs
        .remove(0)
        .id;
    let batch = a_batch.ok_or_else(|| anyhow::anyhow!("no batch was made"))?;
    let second_page = {
        let page = store
            .jobs(&genq_store::JobQuery::newest(Default::default(), 50))
            .await?;
        page.next_before.unwrap_or_default()
    };
    let paths = [
        "/".to_string(),
        "/jobs".into(),
        format!("/jobs?before={second_page}"),
        "/jobs?state=queued".into(),
        "/jobs?state=failed".into(),
        "/jobs?state=running".into(),
        "/jobs?state=canceled".into(),
        "/jobs?state=succeeded".into(),
        format!("/jobs?kind={KIND}"),
        format!("/jobs?kind={KIND}&state=succeeded"),
        "/jobs?user_id=user-4242".into(),
        format!("/jobs?batch_id={batch}"),
        format!("/jobs/{failed}"),
        "/jobs/bulk?bulk=cancel&user_id=user-4242".into(),
        "/jobs/bulk?bulk=retry&state=succeeded".into(),
        "/batches".into(),
        format!("/batches?before={batch}"),
        format!("/batches/{batch}"),
        "/users".into(),
        "/users?after=user-4242".into(),
        "/users/user-4242".into(),
        "/limits".into(),
        "/providers".into(),
        "/schedules".into(),
        "/webhooks".into(),
    ];
    for path in &paths {
        let mut hist = Histogram::<u64>::new(3)?;
        for _ in 0..SAMPLES {
            let t0 = Instant::now();
            let resp = http
                .get(format!("{base}{path}"))
                .header("cookie", &cookie)
                .send()
                .await?;
            anyhow::ensure!(resp.status() == 200, "GET {path}: {}", resp.status());
            resp.bytes().await?;
            hist.record(t0.elapsed().as_micros() as u64)?;
        }
        let (p50, p99) = (
            hist.value_at_quantile(0.5) as f64 / 1000.0,
            hist.value_at_quantile(0.99) as f64 / 1000.0,
        );
        println!(
            "pages   GET {path:<58} p50 {p50:>6.1} ms  p99 {p99:>6.1} ms  target <= 100 ms{}",
            if p99 <= 100.0 { "" } else { "  MISSED" }
        );
    }
    server.abort();
    Ok(())
}
