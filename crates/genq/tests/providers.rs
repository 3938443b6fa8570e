//! genq's `http` provider against `genq fake-provider` on loopback: success, every error class,
//! and keys that never leak.

mod common;

use common::*;
use genq_config::Config;
use serde_json::{Value, json};

fn with_http_provider(fake_url: &str) -> Config {
    let mut c = config(&fake_provider_toml(fake_url, r#"retry_delays = ["20ms"]"#));
    c.worker.poll_interval = std::time::Duration::from_millis(20);
    c
}

fn fake_provider(config: &mut Config) -> &mut genq_config::Provider {
    config
        .providers
        .iter_mut()
        .find(|p| p.name == "fake")
        .unwrap()
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
    // Two first: each new key carries one request until it has answered OK; then four.
    for n in [2, 4] {
        let mut wave = Vec::new();
        for _ in 0..n {
            let (status, j) = s.post("/v1/jobs", chat(json!({}))).await;
            assert_eq!(status, 201, "{j}");
            wave.push(j["id"].as_str().unwrap().to_string());
        }
        for id in &wave {
            let done = s.until_state(id, "succeeded").await;
            assert_eq!(done["result"]["object"], "chat.completion");
            assert!(done["result"]["usage"]["total_tokens"].as_u64().unwrap() > 0);
        }
        ids.extend(wave);
    }
    let stats = fake_stats(&fake_url).await;
    assert_eq!(
        stats.keys["sk-secret-one"].requests, 3,
        "keys are used round-robin"
    );
    assert_eq!(stats.keys["sk-secret-two"].requests, 3);
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
async fn when_every_key_is_spent_jobs_stay_queued_without_calling_the_provider() {
    let fake_url = fake(fake_config(&["sk-secret-one", "sk-secret-two"], Some(1))).await;
    let s = TestServer::start(with_http_provider(&fake_url)).await;
    for _ in 0..2 {
        let (_, j) = s.post("/v1/jobs", chat(json!({}))).await;
        s.until_state(j["id"].as_str().unwrap(), "succeeded").await;
    }
    // Each key has used its one request a minute, and its x-ratelimit headers said so: both
    // keys cool without a single 429, and the next job waits in the queue.
    let (_, j) = s.post("/v1/jobs", chat(json!({}))).await;
    let waiting = j["id"].as_str().unwrap().to_string();
    let (_, providers) = s.get("/v1/admin/providers").await;
    let fake = &providers["providers"][0];
    assert_eq!(
        providers["providers"].as_array().unwrap().len(),
        1,
        "only external providers"
    );
    assert_eq!(fake["name"], "fake");
    assert_eq!(fake["state"], "waiting", "{providers}");
    assert!(fake["why"].as_str().unwrap().starts_with("no usable key"));
    for key in fake["keys"].as_array().unwrap() {
        assert_eq!(key["state"], "cooling", "{providers}");
        assert_eq!(key["requests"], 1);
        assert!(key["until"].is_string());
    }
    assert!(!providers.to_string().contains("sk-secret"), "{providers}");
    // A job of another provider enqueued after it is claimed and done: the claims passed the
    // waiting job by, which is still queued, untouched.
    let (_, later) = s
        .post(
            "/v1/jobs",
            json!({"kind": "card.generate", "user_id": "u1", "payload": {}}),
        )
        .await;
    s.until_state(later["id"].as_str().unwrap(), "succeeded")
        .await;
    let job = s.store.job(&waiting).await.unwrap();
    assert_eq!(job.state.as_str(), "queued");
    assert_eq!(
        (job.attempt, job.retries_used, job.rate_limit_waits),
        (0, 0, 0)
    );
    let stats = fake_stats(&fake_url).await;
    let rate_limited: u64 = stats.keys.values().map(|k| k.rate_limited).sum();
    assert_eq!(
        rate_limited, 0,
        "the headers kept genq from provoking a 429"
    );
    assert!(!stats.jobs.contains_key(&waiting));
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_wait_while_the_only_key_cools_and_go_when_it_returns() {
    let fake_url = fake(fake_config(&["sk-secret-one"], None)).await;
    let mut config = with_http_provider(&fake_url);
    fake_provider(&mut config).keys = vec!["sk-secret-one".into()];
    let s = TestServer::start(config).await;
    // A 429 with Retry-After: 1 cools the key for a second.
    let (_, a) = s
        .post(
            "/v1/jobs",
            chat(json!({"fail": "rate_limited", "fail_attempts": 1})),
        )
        .await;
    let a = a["id"].as_str().unwrap().to_string();
    s.until(&a, |j| j["attempt"] == 1 && j["state"] == "retrying")
        .await;
    let (_, b) = s.post("/v1/jobs", chat(json!({}))).await;
    let b = b["id"].as_str().unwrap().to_string();
    let done_a = s.until_state(&a, "succeeded").await;
    let done_b = s.until_state(&b, "succeeded").await;
    assert_eq!(done_a["attempt"], 2);
    // B was never sent into the cooling key: one attempt, one request.
    assert_eq!(done_b["attempt"], 1, "{done_b}");
    let stats = fake_stats(&fake_url).await;
    assert_eq!(stats.jobs[&b].requests, 1);
    assert_eq!(stats.jobs[&b].rate_limited, 0);
    assert_eq!(stats.keys["sk-secret-one"].rate_limited, 1);
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disabled_key_holds_its_jobs_until_an_admin_enables_it() {
    let fake_url = fake(fake_config(&["sk-secret-one"], None)).await;
    let mut config = with_http_provider(&fake_url);
    fake_provider(&mut config).keys = vec!["sk-secret-one".into()];
    let s = TestServer::start(config).await;
    let (_, a) = s
        .post(
            "/v1/jobs",
            chat(json!({"fail": "billing", "fail_attempts": 1})),
        )
        .await;
    let a = a["id"].as_str().unwrap().to_string();
    let failed_once = s
        .until(&a, |j| j["attempt"] == 1 && j["state"] != "running")
        .await;
    assert_eq!(failed_once["error"]["class"], "billing", "{failed_once}");
    let (_, providers) = s.get("/v1/admin/providers").await;
    let key = &providers["providers"][0]["keys"][0];
    assert_eq!(key["label"], "fake#1");
    assert_eq!(key["state"], "disabled", "{providers}");
    assert_eq!(providers["providers"][0]["state"], "waiting");

    // Unknown names are 404 in the SPEC's error shape.
    let (status, body) = s
        .post("/v1/admin/providers/nope/keys/1/enable", json!({}))
        .await;
    assert_error(status, &body, 404, "not_found");
    let (status, body) = s
        .post("/v1/admin/providers/fake/keys/fake%239/enable", json!({}))
        .await;
    assert_error(status, &body, 404, "not_found");
    let (status, _) = s
        .call(
            reqwest::Method::POST,
            "/v1/admin/providers/fake/keys/1/enable",
            None,
            None,
        )
        .await;
    assert_eq!(status, 401);

    let job = s.store.job(&a).await.unwrap();
    assert_eq!(job.attempt, 1, "no attempt while the only key is disabled");
    let (status, view) = s
        .post("/v1/admin/providers/fake/keys/fake%231/enable", json!({}))
        .await;
    assert_eq!(status, 200, "{view}");
    assert_eq!(view["keys"][0]["state"], "ok");
    let done = s.until_state(&a, "succeeded").await;
    assert_eq!(done["attempt"], 2);
    s.shutdown().await;
}

fn with_task_provider(fake_url: &str, extra: &str) -> Config {
    let extra = if extra.contains("max_wait") {
        extra.to_string()
    } else {
        format!("max_wait = \"30s\"\n{extra}")
    };
    let mut c = config(&format!(
        r#"
[[providers]]
name = "video"
type = "task"
base_url = "{fake_url}"
keys = ["sk-video"]
create_path = "/v1/tasks"
status_path = "/v1/tasks/{{task_id}}"
state_pointer = "/status"
result_pointer = "/result"
poll_interval = "50ms"
error_rules = [{{ pattern = '"class":"user_error"', class = "user_error" }}]
{extra}

[[kinds]]
name = "video.make"
provider = "video"
retry_delays = ["20ms"]
"#
    ));
    c.worker.poll_interval = std::time::Duration::from_millis(20);
    c
}

fn video(simulate: Value) -> Value {
    json!({"kind": "video.make", "user_id": "u1", "payload": {
        "prompt": "a mug turning slowly", "simulate": simulate,
    }})
}

async fn post_all(s: &TestServer, bodies: impl IntoIterator<Item = Value>) -> Vec<String> {
    let mut ids = Vec::new();
    for body in bodies {
        let (status, j) = s.post("/v1/jobs", body).await;
        assert_eq!(status, 201, "{j}");
        ids.push(j["id"].as_str().unwrap().to_string());
    }
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn task_jobs_wait_for_their_provider_without_holding_a_slot() {
    let fake_url = fake(fake_config(&["sk-video"], None)).await;
    let mut config = with_task_provider(&fake_url, "");
    config.worker.concurrency = 1;
    let s = TestServer::start(config).await;
    // Six tasks of 1.5 s each on one slot: all six run at the provider at once.
    let ids = post_all(&s, (0..6).map(|_| video(json!({"latency_ms": 1500})))).await;
    let parked = s
        .until(&ids[5], |j| j["provider_task_id"].is_string())
        .await;
    assert_eq!(parked["state"], "running");
    for id in &ids {
        let done = s.until_state(id, "succeeded").await;
        assert_eq!(done["attempt"], 1);
        let url = done["result"]["video_url"].as_str().unwrap();
        assert!(
            url.ends_with(".mp4"),
            "the result comes from result_pointer: {done}"
        );
        assert!(done.get("provider_task_id").is_none());
    }
    let stats = fake_stats(&fake_url).await;
    assert_eq!(
        stats.max_tasks_in_flight, 6,
        "one slot kept six tasks going"
    );
    for id in &ids {
        assert_eq!(stats.jobs[id].tasks_created, 1, "one task per attempt");
        assert!(
            stats.jobs[id].requests >= 3,
            "created, then polled: {id} {:?}",
            stats.jobs[id]
        );
    }
    let (_, providers) = s.get("/v1/admin/providers").await;
    let video = &providers["providers"][0];
    assert_eq!(
        (video["type"].as_str(), video["tasks_in_flight"].as_u64()),
        (Some("task"), Some(0))
    );
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn task_failures_are_classified_and_a_retry_creates_a_new_task() {
    let fake_url = fake(fake_config(&["sk-video"], None)).await;
    let s = TestServer::start(with_task_provider(&fake_url, "")).await;
    let ids = post_all(
        &s,
        [
            video(json!({"fail": "user_error", "latency_ms": 100})),
            video(json!({"fail": "temporary", "fail_attempts": 1, "latency_ms": 100})),
        ],
    )
    .await;
    let rejected = s.until_state(&ids[0], "failed").await;
    assert_eq!(
        rejected["error"]["class"], "user_error",
        "the error rule applied: {rejected}"
    );
    assert!(
        rejected["error"]["detail"]
            .as_str()
            .unwrap()
            .starts_with("task task_")
    );
    assert_eq!(rejected["attempt"], 1);
    let retried = s.until_state(&ids[1], "succeeded").await;
    assert_eq!(retried["attempt"], 2);
    let stats = fake_stats(&fake_url).await;
    assert_eq!(stats.jobs[&ids[0]].tasks_created, 1);
    assert_eq!(
        stats.jobs[&ids[1]].tasks_created, 2,
        "the failed task's retry is a new task"
    );
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_past_max_wait_times_out() {
    let fake_url = fake(fake_config(&["sk-video"], None)).await;
    let mut config = with_task_provider(&fake_url, "max_wait = \"400ms\"");
    config.kinds.last_mut().unwrap().max_retries = Some(0);
    let s = TestServer::start(config).await;
    let slow = post_all(&s, [video(json!({"latency_ms": 60_000}))]).await;
    let timed_out = s.until_state(&slow[0], "failed").await;
    assert_eq!(timed_out["error"]["class"], "timeout", "{timed_out}");
    assert!(
        timed_out["error"]["detail"]
            .as_str()
            .unwrap()
            .contains("max_wait")
    );
    assert_eq!(fake_stats(&fake_url).await.jobs[&slow[0]].tasks_created, 1);
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_concurrent_bounds_the_tasks_in_flight() {
    let fake_url = fake(fake_config(&["sk-video"], None)).await;
    let s = TestServer::start(with_task_provider(&fake_url, "max_concurrent = 2")).await;
    let ids = post_all(&s, (0..5).map(|_| video(json!({"latency_ms": 150})))).await;
    for id in &ids {
        let done = s.until_state(id, "succeeded").await;
        assert_eq!(
            done["attempt"], 1,
            "waiting for room is not an attempt: {done}"
        );
    }
    let stats = fake_stats(&fake_url).await;
    assert_eq!(stats.max_tasks_in_flight, 2, "max_concurrent holds");
    for id in &ids {
        assert_eq!(stats.jobs[id].tasks_created, 1);
    }
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_are_reserved_before_a_request_and_corrected_from_usage() {
    let fake_url = fake(fake_config(&["sk-secret-one"], None)).await;
    let mut config = with_http_provider(&fake_url);
    let p = fake_provider(&mut config);
    p.keys = vec!["sk-secret-one".into()];
    // 10,000 tokens a second; a request that may use 120,000 takes 12 s of budget.
    p.tokens_per_minute = Some(600_000);
    let s = TestServer::start(config).await;
    let big = |n: u32| {
        json!({"kind": "chat.generate", "user_id": "u1", "payload": {
            "model": "gpt-4o-mini", "max_tokens": 120_000, "n": n,
            "messages": [{"role": "user", "content": "a card"}],
        }})
    };
    // One after another: each answer says it used a few dozen tokens, the rest of its
    // reservation comes back, and the next request goes at once.
    for n in 0..3 {
        let id = post_all(&s, [big(n)]).await.remove(0);
        let done = s.until_state(&id, "succeeded").await;
        let job = s.store.job(&id).await.unwrap();
        assert_eq!((job.attempt, job.rate_limit_waits), (1, 0), "{done}");
    }
    // Two at once (one batch, so one claim takes both): the first reserves 12 s of budget, so
    // the second is not sent but waits for it, free, without ever reaching the provider.
    let (status, out) = s
        .post(
            "/v1/batches",
            json!({"kind": "chat.generate", "user_id": "u1", "items": [big(10)["payload"], big(11)["payload"]]}),
        )
        .await;
    assert_eq!(status, 201, "{out}");
    let ids: Vec<String> = out["job_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    let mut waited = None;
    for id in &ids {
        let job = s
            .until(id, |j| {
                j["state"] == "succeeded" || j["state"] == "retrying"
            })
            .await;
        if job["state"] == "retrying" {
            waited = Some((id.clone(), job));
        }
    }
    let (id, job) = waited.expect("one of the two waited for the token budget");
    assert_eq!(job["error"]["class"], "rate_limited", "{job}");
    assert!(
        job["error"]["detail"]
            .as_str()
            .unwrap()
            .contains("rate budget")
    );
    let stored = s.store.job(&id).await.unwrap();
    assert_eq!((stored.retries_used, stored.rate_limit_waits), (0, 1));
    assert!(!fake_stats(&fake_url).await.jobs.contains_key(&id));
    s.shutdown().await;
}
