//! `genq fake-provider`: a provider on loopback that behaves like a real one, so genq's `http` and
//! `task` providers can be tested and benchmarked end to end with no network and no key.
//!
//! - OpenAI-compatible `POST /v1/chat/completions` and `POST /v1/images/generations`, answered
//!   in OpenAI's shapes with `usage`; `GET /v1/models` as the cheap key check.
//! - A task API: `POST /v1/tasks` creates a task that finishes after its latency,
//!   `GET /v1/tasks/{id}` reports `queued`, `running`, `succeeded` or `failed`.
//! - Keys given on the command line; per key, requests per minute, tokens per minute and
//!   concurrent requests, each answered beyond its limit with 429 and `Retry-After`.
//! - The SPEC's `simulate` field (`fail`, `fail_attempts`, `latency_ms`), counted per attempt
//!   from `X-Genq-Attempt`.
//! - `GET /stats`: per key and per job (`X-Genq-Job-Id`) counts of requests, 429s and tasks,
//!   and the most tasks that ran at once.
//! - Like OpenAI: `x-ratelimit-remaining-requests` / `x-ratelimit-reset-requests` on answers
//!   when a request limit is set; a task create sent again with the same `Idempotency-Key`
//!   returns the task it created.

mod limits;
mod routes;
mod stats;

use axum::Router;
use axum::routing::{get, post};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub use stats::{KeyStats, Stats};

/// How the fake provider behaves.
#[derive(Debug, Clone)]
pub struct FakeConfig {
    /// Accepted API keys; an empty list accepts any bearer token.
    pub keys: Vec<String>,
    /// Keys whose account is out of credit: every request with one is answered 402.
    pub out_of_credit: Vec<String>,
    pub requests_per_minute: Option<u32>,
    pub tokens_per_minute: Option<u32>,
    pub max_concurrent: Option<u32>,
    /// How long a request (or a task) takes without `simulate.latency_ms`.
    pub latency: Duration,
}

impl Default for FakeConfig {
    fn default() -> Self {
        FakeConfig {
            keys: Vec::new(),
            out_of_credit: Vec::new(),
            requests_per_minute: None,
            tokens_per_minute: None,
            max_concurrent: None,
            latency: Duration::from_millis(50),
        }
    }
}

pub(crate) struct State {
    config: FakeConfig,
    limits: limits::KeyLimits,
    stats: Mutex<Stats>,
    tasks: Mutex<HashMap<String, routes::Task>>,
    /// `Idempotency-Key` of each create, to the task it created.
    idempotent: Mutex<HashMap<String, String>>,
    started: std::time::Instant,
}

/// The fake provider's HTTP routes.
pub fn router(config: FakeConfig) -> Router {
    let state = Arc::new(State {
        limits: limits::KeyLimits::new(&config),
        config,
        stats: Mutex::new(Stats::default()),
        tasks: Mutex::new(HashMap::new()),
        idempotent: Mutex::new(HashMap::new()),
        started: std::time::Instant::now(),
    });
    Router::new()
        .route("/v1/chat/completions", post(routes::chat))
        .route("/v1/images/generations", post(routes::images))
        .route("/v1/tasks", post(routes::create_task))
        .route("/v1/tasks/{id}", get(routes::get_task))
        .route("/v1/models", get(routes::models))
        .route("/stats", get(routes::stats))
        .with_state(state)
}
