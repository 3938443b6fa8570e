//! `/metrics` after a known set of jobs: every family's values, exactly.

mod common;

use common::*;
use genq_config::Config;
use reqwest::Method;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::time::Duration;

/// `/metrics`, checked to be OpenMetrics, as `series -> value`.
async fn scrape(s: &TestServer, token: Option<&str>) -> BTreeMap<String, f64> {
    let mut req = s.http.get(format!("{}/metrics", s.url));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/openmetrics-text")
    );
    let text = resp.text().await.unwrap();
    assert!(text.ends_with("# EOF\n"), "{text}");
    exposition(&text)
}

fn value(m: &BTreeMap<String, f64>, series: &str) -> f64 {
    *m.get(series)
        .unwrap_or_else(|| panic!("no {series} in {m:#?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_family_counts_a_known_history_exactly() {
    let s = TestServer::start(config("")).await;
    // Three successes (one batch, cost 1 each).
    let (status, b) = s
        .post(
            "/v1/batches",
            json!({"kind": "card.generate", "user_id": "u1", "items": [{}, {}, {}]}),
        )
        .await;
    assert_eq!(status, 201, "{b}");
    // A refused job, then retried by an admin and refused again: debited and refunded twice.
    let (_, refused) = s
        .post(
            "/v1/jobs",
            json!({"kind": "card.generate", "user_id": "u1", "payload": {"simulate": {"fail": "user_error"}}}),
        )
        .await;
    let refused = refused["id"].as_str().unwrap().to_string();
    s.until_state(&refused, "failed").await;
    let (status, _) = s
        .post(&format!("/v1/jobs/{refused}/retry"), json!({}))
        .await;
    assert_eq!(status, 200);
    s.until(&refused, |j| j["state"] == "failed" && j["attempt"] == 2)
        .await;
    // Two retries then a final failure (temporary); one retry then a success.
    let (_, flaky) = s
        .post(
            "/v1/jobs",
            json!({"kind": "fast.retry", "user_id": "u1", "payload": {"simulate": {"fail": "temporary"}}}),
        )
        .await;
    s.until_state(flaky["id"].as_str().unwrap(), "failed").await;
    let (_, once) = s
        .post(
            "/v1/jobs",
            json!({"kind": "fast.retry", "user_id": "u1", "payload": {"simulate": {"fail": "temporary", "fail_attempts": 1}}}),
        )
        .await;
    s.until_state(once["id"].as_str().unwrap(), "succeeded")
        .await;
    // A delayed job, canceled before it runs: refunded.
    let (_, later) = s
        .post(
            "/v1/jobs",
            json!({"kind": "card.generate", "user_id": "u1", "payload": {}, "delay_ms": 600_000}),
        )
        .await;
    let later = later["id"]
        .as_str()
        .unwrap_or_else(|| panic!("{later}"))
        .to_string();
    let (status, canceled) = s.post(&format!("/v1/jobs/{later}/cancel"), json!({})).await;
    assert_eq!(status, 200, "{canceled}");
    // An external worker claims a job and disappears: the rescuer takes it back.
    let (_, ext) = s
        .post(
            "/v1/jobs",
            json!({"kind": "report.weekly", "user_id": "u1", "payload": {}}),
        )
        .await;
    let ext = ext["id"].as_str().unwrap().to_string();
    let (status, claimed) = s
        .call(
            Method::POST,
            "/v1/workers/claim",
            Some(WORKER),
            Some(json!({"worker_id": "w1", "kinds": ["report.weekly"]})),
        )
        .await;
    assert_eq!(status, 200, "{claimed}");
    assert_eq!(claimed["jobs"].as_array().unwrap().len(), 1);
    s.until(&ext, |j| j["state"] == "retrying" || j["state"] == "queued")
        .await;

    let m = scrape(&s, None).await;
    let card = "kind=\"card.generate\"";
    let fast = "kind=\"fast.retry\"";
    for (series, want) in [
        (format!("genq_jobs_enqueued_total{{{card}}}"), 5.0),
        (format!("genq_jobs_enqueued_total{{{fast}}}"), 2.0),
        (
            "genq_jobs_enqueued_total{kind=\"report.weekly\"}".into(),
            1.0,
        ),
        (
            format!("genq_jobs_finished_total{{{card},state=\"succeeded\",class=\"none\"}}"),
            3.0,
        ),
        (
            format!("genq_jobs_finished_total{{{card},state=\"failed\",class=\"user_error\"}}"),
            2.0,
        ),
        (
            format!("genq_jobs_finished_total{{{card},state=\"canceled\",class=\"canceled\"}}"),
            1.0,
        ),
        (
            format!("genq_jobs_finished_total{{{fast},state=\"failed\",class=\"temporary\"}}"),
            1.0,
        ),
        (
            format!("genq_jobs_finished_total{{{fast},state=\"succeeded\",class=\"none\"}}"),
            1.0,
        ),
        (
            format!("genq_job_retries_total{{{fast},class=\"temporary\"}}"),
            3.0,
        ),
        (
            "genq_job_retries_total{kind=\"report.weekly\",class=\"lease_expired\"}".into(),
            1.0,
        ),
        ("genq_lease_rescues_total".into(), 1.0),
        // 3 + 1 + 1 (the admin retry) + 1 (the canceled one).
        ("genq_credits_debited_total".into(), 6.0),
        // The refused job twice, the canceled one.
        ("genq_credits_refunded_total".into(), 3.0),
        // Claims: 3 + 2 card attempts, 3 + 2 fast.retry attempts, the external one.
        (format!("genq_queue_wait_seconds_count{{{card}}}"), 5.0),
        (format!("genq_queue_wait_seconds_count{{{fast}}}"), 5.0),
        (
            "genq_queue_wait_seconds_count{kind=\"report.weekly\"}".into(),
            1.0,
        ),
        (
            format!("genq_attempt_duration_seconds_count{{{card}}}"),
            5.0,
        ),
        (
            format!("genq_attempt_duration_seconds_count{{{fast}}}"),
            5.0,
        ),
        ("genq_jobs{state=\"succeeded\"}".into(), 4.0),
        ("genq_jobs{state=\"failed\"}".into(), 2.0),
        ("genq_jobs{state=\"canceled\"}".into(), 1.0),
        ("genq_jobs{state=\"running\"}".into(), 0.0),
        ("genq_backlog{kind=\"report.weekly\"}".into(), 1.0),
        (format!("genq_backlog{{{card}}}"), 0.0),
        ("genq_jobs_past_lease".into(), 0.0),
        ("genq_database_up".into(), 1.0),
        ("genq_worker_slots".into(), 8.0),
        ("genq_worker_slots_busy".into(), 0.0),
    ] {
        assert_eq!(value(&m, &series), want, "{series}");
    }
    // Every card.generate attempt took the demo provider's 20 ms latency.
    assert!(value(&m, &format!("genq_attempt_duration_seconds_sum{{{card}}}")) >= 5.0 * 0.02);
    assert!(value(&m, "genq_oldest_claimable_job_age_seconds") >= 0.0);
    assert!(value(&m, "genq_process_resident_memory_bytes") > 1e6);
    assert!(m.keys().any(|k| k.starts_with("genq_build_info{version=")));
    // Low cardinality: no user id and no job id in any label.
    for series in m.keys() {
        assert!(
            !series.contains("u1") && !series.contains(&refused),
            "{series}"
        );
    }
    s.shutdown().await;
}

fn with_fake(fake_url: &str, keys: &[&str], extra: &str) -> Config {
    let keys: Vec<String> = keys.iter().map(|k| format!("{k:?}")).collect();
    config(&format!(
        r#"
[[providers]]
name = "fake"
type = "http"
base_url = "{fake_url}/v1"
keys = [{}]
{extra}

[[kinds]]
name = "chat.generate"
provider = "fake"
path = "/chat/completions"
retry_delays = ["20ms"]
"#,
        keys.join(", ")
    ))
}

fn chat() -> Value {
    json!({"kind": "chat.generate", "user_id": "u1", "payload": {
        "model": "gpt-4o-mini", "messages": [{"role": "user", "content": "a mug"}]}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn providers_show_requests_by_status_key_states_and_budget_waits() {
    let fake_url = fake(genq_fake_provider::FakeConfig {
        keys: vec!["sk-good-one".into()],
        latency: Duration::from_millis(2),
        ..Default::default()
    })
    .await;
    // 600 requests a minute: three at once wait about 0, 100 and 200 ms for their turn.
    let s = TestServer::start(with_fake(
        &fake_url,
        &["sk-good-one"],
        "requests_per_minute = 600",
    ))
    .await;
    let payload = chat()["payload"].clone();
    let batch =
        json!({"kind": "chat.generate", "user_id": "u1", "items": [payload, payload, payload]});
    let (status, out) = s.post("/v1/batches", batch).await;
    assert_eq!(status, 201, "{out}");
    let batch_id = out["batch"]["id"].as_str().unwrap();
    for _ in 0..300 {
        let (_, b) = s.get(&format!("/v1/batches/{batch_id}")).await;
        if b["succeeded"] == 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let m = scrape(&s, None).await;
    let key = "provider=\"fake\",key=\"fake#1\"";
    assert_eq!(
        value(
            &m,
            &format!("genq_provider_requests_total{{{key},status=\"200\"}}")
        ),
        3.0
    );
    assert_eq!(
        value(
            &m,
            "genq_provider_budget_waits_total{provider=\"fake\",outcome=\"slept\"}"
        ),
        2.0
    );
    assert_eq!(
        value(
            &m,
            &format!("genq_provider_key_state{{{key},state=\"ok\"}}")
        ),
        1.0
    );
    assert_eq!(
        value(&m, "genq_provider_usable_keys{provider=\"fake\"}"),
        1.0
    );
    assert_eq!(value(&m, "genq_provider_in_flight{provider=\"fake\"}"), 0.0);
    s.shutdown().await;

    // A key the provider refuses: asked once, disabled; the job waits with no usable key.
    let s = TestServer::start(with_fake(&fake_url, &["sk-refused"], "")).await;
    let (_, j) = s.post("/v1/jobs", chat()).await;
    let id = j["id"].as_str().unwrap();
    s.until(id, |j| {
        j["state"] == "retrying" && j["error"]["class"] == "billing"
    })
    .await;
    let m = scrape(&s, None).await;
    assert_eq!(
        value(
            &m,
            &format!("genq_provider_requests_total{{{key},status=\"401\"}}")
        ),
        1.0
    );
    assert_eq!(
        value(&m, "genq_provider_usable_keys{provider=\"fake\"}"),
        0.0
    );
    assert_eq!(
        value(
            &m,
            &format!("genq_provider_key_state{{{key},state=\"disabled\"}}")
        ),
        1.0
    );
    assert_eq!(
        value(
            &m,
            &format!("genq_provider_key_state{{{key},state=\"ok\"}}")
        ),
        0.0
    );
    assert_eq!(value(&m, "genq_backlog{kind=\"chat.generate\"}"), 1.0);
    let text = reqwest::get(format!("{}/metrics", s.url))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!text.contains("sk-refused"), "keys never show");
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_metrics_token_is_required_when_set_and_metrics_can_be_off() {
    let token = "metrics-token-0123456789";
    let s = TestServer::start(config(&format!("[metrics]\ntoken = \"{token}\"\n"))).await;
    let (status, body) = s.call(Method::GET, "/metrics", None, None).await;
    assert_error(status, &body, 401, "unauthorized");
    // An admin token is not the metrics token.
    let (status, body) = s.call(Method::GET, "/metrics", Some(ADMIN), None).await;
    assert_error(status, &body, 401, "unauthorized");
    let m = scrape(&s, Some(token)).await;
    assert_eq!(value(&m, "genq_database_up"), 1.0);
    // Nor may the metrics token call the API.
    let (status, _) = s.call(Method::GET, "/v1/stats", Some(token), None).await;
    assert_eq!(status, 401);
    s.shutdown().await;

    let s = TestServer::start(config("[metrics]\nenabled = false\n")).await;
    let (status, body) = s.call(Method::GET, "/metrics", None, None).await;
    assert_error(status, &body, 404, "not_found");
    s.shutdown().await;
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One `genq serve` and two `genq worker` processes on one database: each exports its own
/// counters (workers on `[metrics] listen`), which add up to what happened, and the gauges read
/// from the store agree.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_process_counts_its_own_jobs_and_the_store_gauges_agree() {
    let root = tempfile::tempdir().unwrap();
    let db = root.path().join("genq.db");
    let write = |name: &str, metrics: &str| {
        let dir = root.path().join(name);
        std::fs::create_dir(&dir).unwrap();
        std::fs::write(
            dir.join("genq.toml"),
            format!(
                r#"
listen = "127.0.0.1:0"
database = "sqlite://{}"
[auth]
admin_tokens = ["{ADMIN}"]
[users]
default_plan = "enterprise"
[worker]
poll_interval = "20ms"
[metrics]
{metrics}
[[providers]]
name = "demo"
type = "demo"
latency = "30ms"
[[kinds]]
name = "card.generate"
provider = "demo"
"#,
                db.display()
            ),
        )
        .unwrap();
        dir
    };
    let serve = Process::serve(&write("serve", ""));
    let ports = [free_port(), free_port()];
    let _workers: Vec<_> = ports
        .iter()
        .enumerate()
        .map(|(i, port)| {
            Process::worker(&write(
                &format!("worker{i}"),
                &format!("listen = \"127.0.0.1:{port}\""),
            ))
            .0
        })
        .collect();
    let items: Vec<Value> = (0..60).map(|n| json!({"n": n})).collect();
    let (status, out) = client_call(
        &serve.url,
        Method::POST,
        "/v1/batches",
        Some(json!({"kind": "card.generate", "user_id": "u1", "items": items})),
    )
    .await;
    assert_eq!(status, 201, "{out}");
    let batch = out["batch"]["id"].as_str().unwrap().to_string();
    for _ in 0..500 {
        let (_, b) = client_call(
            &serve.url,
            Method::GET,
            &format!("/v1/batches/{batch}"),
            None,
        )
        .await;
        if b["succeeded"] == 60 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let urls = [
        serve.url.clone(),
        format!("http://127.0.0.1:{}", ports[0]),
        format!("http://127.0.0.1:{}", ports[1]),
    ];
    let mut succeeded = 0.0;
    let mut claimed_by = Vec::new();
    for url in &urls {
        let text = reqwest::get(format!("{url}/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let m = exposition(&text);
        let mine = m
            .get("genq_jobs_finished_total{kind=\"card.generate\",state=\"succeeded\",class=\"none\"}")
            .copied()
            .unwrap_or(0.0);
        succeeded += mine;
        claimed_by.push(mine);
        assert_eq!(value(&m, "genq_jobs{state=\"succeeded\"}"), 60.0, "{url}");
        assert_eq!(
            value(&m, "genq_backlog{kind=\"card.generate\"}"),
            0.0,
            "{url}"
        );
        // Only the API process accepted jobs.
        let enqueued = m
            .get("genq_jobs_enqueued_total{kind=\"card.generate\"}")
            .copied()
            .unwrap_or(0.0);
        assert_eq!(
            enqueued,
            if *url == serve.url { 60.0 } else { 0.0 },
            "{url}"
        );
    }
    assert_eq!(succeeded, 60.0, "per process: {claimed_by:?}");
    // A worker's listener serves the probes too, and nothing of the API.
    let probe = reqwest::get(format!("{}/readyz", urls[1])).await.unwrap();
    assert_eq!(probe.status(), 200);
    let api = reqwest::get(format!("{}/v1/stats", urls[1])).await.unwrap();
    assert_eq!(api.status(), 404);
}
