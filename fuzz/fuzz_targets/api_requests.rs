//! Request bodies, queries and paths through genq's real router (on a SQLite store of its
//! own): every answer is below 500, and every refusal has the SPEC's error shape. The first
//! byte picks the endpoint, the rest is its body (or query, or path id).
#![no_main]

use axum::body::Body;
use axum::http::{Method, Request};
use std::sync::{Arc, OnceLock};
use tower::ServiceExt;

const ADMIN: &str = "fuzz-admin-token-0123456789";

struct Harness {
    runtime: tokio::runtime::Runtime,
    router: axum::Router,
}

fn harness() -> &'static Harness {
    static HARNESS: OnceLock<Harness> = OnceLock::new();
    HARNESS.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let dir = std::env::temp_dir().join(format!("genq-fuzz-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let config = genq_config::Config::from_toml(
            "fuzz.toml",
            &format!(
                r#"
[auth]
admin_tokens = ["{ADMIN}"]
[users]
default_plan = "enterprise"
initial_credits = 1000000
[api]
max_claim_wait = "0s"
[[providers]]
name = "demo"
type = "demo"
[[kinds]]
name = "card.generate"
provider = "demo"
cost = 1
[[kinds]]
name = "report.weekly"
external = true
"#
            ),
            &Default::default(),
        )
        .unwrap();
        let router = runtime.block_on(async {
            let store = Arc::new(
                genq_store::SqliteStore::open_with(
                    dir.join("genq.db"),
                    genq_store::Synchronous::Normal,
                )
                .unwrap(),
            );
            let engine = genq_engine::Engine::from_config(
                store,
                &config,
                genq_engine::EngineSettings::from_config(&config),
            )
            .await
            .unwrap();
            let state = Arc::new(genq_api::AppState::new(
                engine,
                Arc::new(config),
                Arc::new(genq_core::SystemClock),
            ));
            genq_api::router(state)
        });
        Harness { runtime, router }
    })
}

/// Bytes as a path segment or query, escaped only where a URI could not hold them.
fn uri_text(data: &[u8]) -> String {
    data.iter()
        .map(|&b| {
            if b.is_ascii_graphic() && !b"#".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let job = "01a23176-aa08-71bd-a1b1-85cc9347cce0";
    let (method, uri, body) = match pick % 12 {
        0 => (Method::POST, "/v1/jobs".to_string(), rest),
        1 => (Method::POST, "/v1/batches".to_string(), rest),
        2 => (Method::POST, "/v1/workers/claim".to_string(), rest),
        3 => (Method::POST, format!("/v1/jobs/{job}/heartbeat"), rest),
        4 => (Method::POST, format!("/v1/jobs/{job}/complete"), rest),
        5 => (Method::POST, format!("/v1/jobs/{job}/fail"), rest),
        6 => (Method::PUT, "/v1/users/u1".to_string(), rest),
        7 => (Method::POST, "/v1/users/u1/credits".to_string(), rest),
        8 => (
            Method::PUT,
            "/v1/admin/limits/batch_max_items_per_request".to_string(),
            rest,
        ),
        9 => (Method::GET, format!("/v1/jobs?{}", uri_text(rest)), &[][..]),
        10 => (
            Method::GET,
            format!("/v1/users/u1/ledger?{}", uri_text(rest)),
            &[][..],
        ),
        _ => (Method::GET, format!("/v1/jobs/{}", uri_text(rest)), &[][..]),
    };
    let Ok(request) = Request::builder()
        .method(method)
        .uri(&uri)
        .header("authorization", format!("Bearer {ADMIN}"))
        .header("content-type", "application/json")
        .body(Body::from(body.to_vec()))
    else {
        return;
    };
    let h = harness();
    let (status, answer) = h.runtime.block_on(async {
        let response = h.router.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        (status, bytes)
    });
    assert!(
        status.as_u16() < 500,
        "{uri}: {status} {}",
        String::from_utf8_lossy(&answer)
    );
    if status.as_u16() >= 400 {
        let shape: serde_json::Value = serde_json::from_slice(&answer).unwrap();
        assert!(shape["error"]["code"].is_string(), "{uri}: {shape}");
        assert!(shape["error"]["message"].is_string(), "{uri}: {shape}");
    }
});
