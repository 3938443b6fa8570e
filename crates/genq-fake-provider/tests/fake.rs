//! The fake provider over real HTTP: OpenAI shapes, keys, per-key limits, simulate, tasks, stats.

use genq_fake_provider::{FakeConfig, Stats, router};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::time::Duration;

async fn start(config: FakeConfig) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router(config)).await.unwrap() });
    url
}

fn config() -> FakeConfig {
    FakeConfig {
        keys: vec!["k1".into(), "k2".into()],
        latency: Duration::from_millis(5),
        ..FakeConfig::default()
    }
}

async fn post(
    url: &str,
    path: &str,
    key: &str,
    attempt: u32,
    body: Value,
) -> (StatusCode, Option<String>, Value) {
    let resp = reqwest::Client::new()
        .post(format!("{url}{path}"))
        .bearer_auth(key)
        .header("X-Genq-Job-Id", "job-1")
        .header("X-Genq-Attempt", attempt.to_string())
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = resp.status();
    let retry_after = resp
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_string());
    (
        status,
        retry_after,
        resp.json().await.unwrap_or(Value::Null),
    )
}

async fn stats(url: &str) -> Stats {
    reqwest::get(format!("{url}/stats"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test]
async fn chat_completions_in_openai_shape() {
    let url = start(config()).await;
    let body = json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "a mug"}], "max_tokens": 20});
    let (status, _, out) = post(&url, "/v1/chat/completions", "k1", 1, body).await;
    assert_eq!(status, 200, "{out}");
    assert_eq!(out["object"], "chat.completion");
    assert_eq!(out["model"], "gpt-4o-mini");
    assert_eq!(out["choices"][0]["message"]["role"], "assistant");
    assert_eq!(out["choices"][0]["finish_reason"], "stop");
    let usage = &out["usage"];
    // The answer is shorter than max_tokens, as a real model's usually is.
    assert_eq!(usage["completion_tokens"], 12);
    assert_eq!(
        usage["total_tokens"].as_u64().unwrap(),
        usage["prompt_tokens"].as_u64().unwrap() + 12
    );
    let (status, _, out) = post(
        &url,
        "/v1/images/generations",
        "k2",
        1,
        json!({"prompt": "a mug", "n": 2}),
    )
    .await;
    assert_eq!(status, 200, "{out}");
    assert_eq!(out["data"].as_array().unwrap().len(), 2);
    let (status, _, out) = post(&url, "/v1/chat/completions", "stolen", 1, json!({})).await;
    assert_eq!(status, 401);
    assert_eq!(out["error"]["type"], "invalid_api_key");
    let s = stats(&url).await;
    assert_eq!(s.keys["k1"].requests, 1);
    assert_eq!(s.keys["k2"].requests, 1);
    assert_eq!(s.jobs["job-1"].requests, 3);
}

#[tokio::test]
async fn simulate_fails_the_first_attempts_with_a_providers_status() {
    let url = start(config()).await;
    let cases = [
        ("user_error", StatusCode::BAD_REQUEST),
        ("temporary", StatusCode::SERVICE_UNAVAILABLE),
        ("rate_limited", StatusCode::TOO_MANY_REQUESTS),
        ("billing", StatusCode::PAYMENT_REQUIRED),
        ("internal", StatusCode::INTERNAL_SERVER_ERROR),
    ];
    for (class, want) in cases {
        let body = json!({"messages": [], "simulate": {"fail": class, "fail_attempts": 1}});
        let (status, _, out) = post(&url, "/v1/chat/completions", "k1", 1, body.clone()).await;
        assert_eq!(status, want, "{class}: {out}");
        let (status, _, _) = post(&url, "/v1/chat/completions", "k1", 2, body).await;
        assert_eq!(status, 200, "{class} passes on attempt 2");
    }
    let (status, _, _) = post(
        &url,
        "/v1/chat/completions",
        "k1",
        1,
        json!({"simulate": {"fail": "sometimes"}}),
    )
    .await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn per_key_limits_answer_429_with_retry_after() {
    let url = start(FakeConfig {
        requests_per_minute: Some(3),
        ..config()
    })
    .await;
    for _ in 0..3 {
        assert_eq!(
            post(&url, "/v1/chat/completions", "k1", 1, json!({}))
                .await
                .0,
            200
        );
    }
    let (status, retry_after, _) = post(&url, "/v1/chat/completions", "k1", 1, json!({})).await;
    assert_eq!(status, 429);
    assert!(retry_after.unwrap().parse::<u64>().unwrap() >= 59);
    assert_eq!(
        post(&url, "/v1/chat/completions", "k2", 1, json!({}))
            .await
            .0,
        200,
        "limits are per key"
    );
    let s = stats(&url).await;
    assert_eq!((s.keys["k1"].requests, s.keys["k1"].rate_limited), (4, 1));

    // Concurrency: one slot per key, a slow request holds it.
    let url = start(FakeConfig {
        max_concurrent: Some(1),
        ..config()
    })
    .await;
    let slow = tokio::spawn({
        let url = url.clone();
        async move {
            post(
                &url,
                "/v1/chat/completions",
                "k1",
                1,
                json!({"simulate": {"latency_ms": 300}}),
            )
            .await
            .0
        }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        post(&url, "/v1/chat/completions", "k1", 1, json!({}))
            .await
            .0,
        429
    );
    assert_eq!(slow.await.unwrap(), 200);
    assert_eq!(
        post(&url, "/v1/chat/completions", "k1", 1, json!({}))
            .await
            .0,
        200
    );

    // Tokens per minute: max_tokens reserves.
    let url = start(FakeConfig {
        tokens_per_minute: Some(100),
        ..config()
    })
    .await;
    assert_eq!(
        post(
            &url,
            "/v1/chat/completions",
            "k1",
            1,
            json!({"max_tokens": 80})
        )
        .await
        .0,
        200
    );
    assert_eq!(
        post(
            &url,
            "/v1/chat/completions",
            "k1",
            1,
            json!({"max_tokens": 80})
        )
        .await
        .0,
        429
    );
}

#[tokio::test]
async fn tasks_run_then_succeed_or_fail() {
    let url = start(config()).await;
    let (status, _, task) = post(
        &url,
        "/v1/tasks",
        "k1",
        1,
        json!({"prompt": "a video", "simulate": {"latency_ms": 200}}),
    )
    .await;
    assert_eq!(status, 200, "{task}");
    let id = task["id"].as_str().unwrap().to_string();
    let poll = |id: String| {
        let url = url.clone();
        async move {
            reqwest::Client::new()
                .get(format!("{url}/v1/tasks/{id}"))
                .bearer_auth("k1")
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        }
    };
    assert!(matches!(
        poll(id.clone()).await["status"].as_str(),
        Some("queued" | "running")
    ));
    let mut last = Value::Null;
    for _ in 0..100 {
        last = poll(id.clone()).await;
        if last["status"] == "succeeded" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(last["status"], "succeeded", "{last}");
    assert!(last["result"]["video_url"].is_string());
    let (_, _, failing) = post(
        &url,
        "/v1/tasks",
        "k1",
        1,
        json!({"simulate": {"fail": "temporary", "latency_ms": 1}}),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    let failed = poll(failing["id"].as_str().unwrap().to_string()).await;
    assert_eq!(failed["status"], "failed", "{failed}");
    let s = stats(&url).await;
    assert_eq!(s.keys["k1"].tasks_created, 2);
    assert_eq!(s.jobs["job-1"].tasks_created, 2);
}
