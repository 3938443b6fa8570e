//! Error reporting: with `[sentry] dsn` set, the real binary sends an internal failure to a
//! Sentry endpoint (a stand-in on loopback that records envelopes), scrubbed of every token
//! and key the config holds. Without a DSN nothing is sent (the other tests).

mod common;

use axum::extract::State;
use common::*;
use reqwest::Method;
use serde_json::json;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const PROVIDER_KEY: &str = "sk-sentry-provider-key-0123";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn internal_failures_reach_sentry_without_a_secret() {
    // Sentry's ingestion endpoint: POST /api/<project>/envelope/, one envelope a request.
    let received: Arc<Mutex<Vec<String>>> = Arc::default();
    let app = axum::Router::new()
        .route(
            "/api/{project}/envelope/",
            axum::routing::post(
                |State(r): State<Arc<Mutex<Vec<String>>>>, body: axum::body::Bytes| async move {
                    r.lock()
                        .unwrap()
                        .push(String::from_utf8_lossy(&body).into_owned());
                    axum::Json(json!({"id": "0"}))
                },
            ),
        )
        .with_state(received.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let sentry = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("genq.toml"),
        format!(
            r#"
listen = "127.0.0.1:0"
database = "sqlite://genq.db"
[auth]
admin_tokens = ["{ADMIN}"]
worker_tokens = ["{WORKER}"]
[sentry]
dsn = "http://0123456789abcdef@{sentry}/42"
environment = "test"
[[providers]]
name = "fake"
type = "http"
base_url = "http://127.0.0.1:9/v1"
keys = ["{PROVIDER_KEY}"]
[[kinds]]
name = "report.weekly"
external = true
max_retries = 0
"#
        ),
    )
    .unwrap();
    let serve = Process::serve(dir.path());
    let (_, job) = client_call(
        &serve.url,
        Method::POST,
        "/v1/jobs",
        Some(json!({"kind": "report.weekly", "user_id": "u1", "payload": {}})),
    )
    .await;
    let id = job["id"].as_str().unwrap().to_string();
    let claimed: serde_json::Value = reqwest::Client::new()
        .post(format!("{}/v1/workers/claim", serve.url))
        .bearer_auth(WORKER)
        .json(&json!({"worker_id": "w1", "kinds": ["report.weekly"]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let lease = claimed["jobs"][0]["lease_token"].as_str().unwrap();
    // A worker that crashed and pasted secrets into its report.
    let failed = reqwest::Client::new()
        .post(format!("{}/v1/jobs/{id}/fail", serve.url))
        .bearer_auth(WORKER)
        .json(&json!({"lease_token": lease, "class": "internal",
            "detail": format!("worker crashed; env had GENQ_TOKEN={ADMIN} and OPENAI_KEY={PROVIDER_KEY}")}))
        .send()
        .await
        .unwrap();
    assert_eq!(failed.status(), 200);

    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let envelope = loop {
        if let Some(e) = received
            .lock()
            .unwrap()
            .iter()
            .find(|e| e.contains("job failed"))
        {
            break e.clone();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no event reached Sentry: {:?}",
            received.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(envelope.contains("\"environment\":\"test\""), "{envelope}");
    assert!(envelope.contains("genq@"), "the release: {envelope}");
    assert!(envelope.contains("worker crashed"), "{envelope}");
    assert!(envelope.contains("[redacted]"), "{envelope}");
    for secret in [ADMIN, PROVIDER_KEY, WORKER] {
        assert!(
            !envelope.contains(secret),
            "{secret} reached Sentry: {envelope}"
        );
    }
}

#[test]
fn a_malformed_dsn_stops_start_up_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("genq.toml"),
        "listen = \"127.0.0.1:0\"\n[sentry]\ndsn = \"not a dsn\"\n",
    )
    .unwrap();
    let out = std::process::Command::new(genq_bin())
        .args(["serve", "--config"])
        .arg(dir.path().join("genq.toml"))
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("sentry.dsn"), "{err}");
}
