//! genq's `http` provider against `genq fake-provider` on loopback: success, every error class,
//! and keys that never leak.

mod common;

use common::*;
use genq_config::Config;
use serde_json::{Value, json};

async fn fake(config: genq_fake_provider::FakeConfig) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        axum::serve(listener, genq_fake_provider::router(config))
            .await
            .unwrap()
    });
    url
}

async fn fake_stats(url: &str) -> genq_fake_provider::Stats {
    reqwest::get(format!("{url}/stats"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

fn with_http_provider(fake_url: &str) -> Config {
    let mut c = config(&format!(
        r#"
[[providers]]
name = "fake"
type = "http"
base_url = "{fake_url}/v1"
keys = ["sk-secret-one", "sk-secret-two"]
timeout = "5s"

[[kinds]]
name = "chat.generate"
provider = "fake"
path = "/chat/completions"
retry_delays = ["20ms"]
"#
    ));
    c.worker.poll_interval = std::time::Duration::from_millis(20);
    c
}

fn chat(simulate: Value) -> Value {
    json!({"kind": "chat.generate", "user_id": "u1", "payload": {
        "model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": "a card for a mug"}],
        "simulate": simulate,
    }})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_jobs_succeed_and_each_class_does_what_the_spec_says() {
    let fake_url = fake(fake_config(&["sk-secret-one", "sk-secret-two"], None)).await;
    let s = TestServer::start(with_http_provider(&fake_url)).await;
    let mut ids = Vec::new();
    for _ in 0..4 {
        let (status, j) = s.post("/v1/jobs", chat(json!({}))).await;
        assert_eq!(status, 201, "{j}");
        ids.push(j["id"].as_str().unwrap().to_string());
    }
    for id in &ids {
        let done = s.until_state(id, "succeeded").await;
        assert_eq!(done["result"]["object"], "chat.completion");
        assert!(done["result"]["usage"]["total_tokens"].as_u64().unwrap() > 0);
    }
    let stats = fake_stats(&fake_url).await;
    assert_eq!(
        stats.keys["sk-secret-one"].requests, 2,
        "keys are used round-robin"
    );
    assert_eq!(stats.keys["sk-secret-two"].requests, 2);
    for id in &ids {
        assert_eq!(
            stats.jobs[id].requests, 1,
            "X-Genq-Job-Id reaches the provider"
        );
    }

    // Every class, failing the first attempt only.
    let cases = [
        ("user_error", "failed", 1, 0),
        ("temporary", "succeeded", 2, 1),
        ("billing", "succeeded", 2, 1),
        ("rate_limited", "succeeded", 2, 0),
    ];
    for (class, end, attempts, retries_used) in cases {
        let (_, j) = s
            .post("/v1/jobs", chat(json!({"fail": class, "fail_attempts": 1})))
            .await;
        let id = j["id"].as_str().unwrap();
        let done = s.until(id, |j| j["state"] == end).await;
        assert_eq!(done["attempt"], attempts, "{class}: {done}");
        let job = s.store.job(id).await.unwrap();
        assert_eq!(
            job.retries_used, retries_used,
            "{class}: a 429 wait is free"
        );
        if class == "user_error" {
            let error = &done["error"];
            assert_eq!(error["class"], "user_error");
            let detail = error["detail"].as_str().unwrap();
            assert!(detail.starts_with("HTTP 400 from fake (fake#"), "{detail}");
            assert!(detail.contains("content_policy_violation"), "{detail}");
        }
        let text = done.to_string();
        assert!(
            !text.contains("sk-secret"),
            "a key leaked into a job: {text}"
        );
    }
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_provider_is_temporary() {
    // A port nothing listens on: bind, learn the port, close.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let s = TestServer::start(with_http_provider(&format!("http://127.0.0.1:{port}"))).await;
    let (_, j) = s.post("/v1/jobs", chat(json!({}))).await;
    let id = j["id"].as_str().unwrap();
    let retrying = s.until(id, |j| j["attempt"].as_u64() >= Some(2)).await;
    assert_eq!(retrying["error"]["class"], "temporary", "{retrying}");
    s.shutdown().await;
}

fn fake_config(keys: &[&str], rpm: Option<u32>) -> genq_fake_provider::FakeConfig {
    genq_fake_provider::FakeConfig {
        keys: keys.iter().map(|k| k.to_string()).collect(),
        requests_per_minute: rpm,
        latency: std::time::Duration::from_millis(2),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_that_fails_billing_is_disabled_and_another_key_takes_the_job_at_once() {
    // The provider no longer accepts the first key.
    let fake_url = fake(fake_config(&["sk-secret-two"], None)).await;
    let s = TestServer::start(with_http_provider(&fake_url)).await;
    for n in 0..5 {
        let (_, j) = s.post("/v1/jobs", chat(json!({}))).await;
        let done = s.until_state(j["id"].as_str().unwrap(), "succeeded").await;
        let want = if n == 0 { 2 } else { 1 };
        assert_eq!(done["attempt"], want, "job {n}: {done}");
    }
    let stats = fake_stats(&fake_url).await;
    assert_eq!(
        stats.keys["(unknown)"].requests, 1,
        "the refused key was tried once, then disabled"
    );
    assert_eq!(stats.keys["sk-secret-two"].requests, 5);
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_every_key_is_cooling_jobs_wait_without_calling_the_provider() {
    let fake_url = fake(fake_config(&["sk-secret-one", "sk-secret-two"], Some(1))).await;
    let s = TestServer::start(with_http_provider(&fake_url)).await;
    let mut jobs = Vec::new();
    for _ in 0..2 {
        let (_, j) = s.post("/v1/jobs", chat(json!({}))).await;
        let id = j["id"].as_str().unwrap().to_string();
        s.until_state(&id, "succeeded").await;
        jobs.push(id);
    }
    // Each key has used its one request a minute: the next two jobs meet a 429 each, and the
    // keys cool for the provider's Retry-After.
    for _ in 0..3 {
        let (_, j) = s.post("/v1/jobs", chat(json!({}))).await;
        let id = j["id"].as_str().unwrap().to_string();
        let waiting = s.until_state(&id, "retrying").await;
        assert_eq!(waiting["error"]["class"], "rate_limited", "{waiting}");
        jobs.push(id);
    }
    let last = s.store.job(&jobs[4]).await.unwrap();
    assert!(
        last.error
            .unwrap()
            .detail
            .starts_with("no usable key for fake: fake#")
    );
    assert_eq!(last.retries_used, 0, "waiting for a key uses no retry");
    let stats = fake_stats(&fake_url).await;
    let rate_limited: u64 = stats.keys.values().map(|k| k.rate_limited).sum();
    assert_eq!(rate_limited, 2, "one 429 per key, then no more requests");
    assert!(
        !stats.jobs.contains_key(&jobs[4]),
        "the job with no usable key never reached the provider"
    );
    s.shutdown().await;
}
