//! The endpoints. Every request is authenticated by key, counted, limited, then answered after
//! its latency, or failed the way `simulate` asks.

use crate::State;
use crate::limits::InFlight;
use axum::Json;
use axum::extract::{Path, State as AxumState};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use genq_core::ErrorClass;
use genq_core::simulate::Simulate;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

type Shared = Arc<State>;

// The helpers below return the refusal as the response to send; it is built once per refused
// request, so boxing it would only add an allocation.
type Refused = Response;

pub(crate) struct Task {
    job: Option<String>,
    created: Instant,
    latency: Duration,
    fails_with: Option<ErrorClass>,
}

fn error(status: StatusCode, kind: &str, message: &str) -> Response {
    (
        status,
        Json(json!({"error": {"message": message, "type": kind}})),
    )
        .into_response()
}

fn header_text<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// Who is calling and for which job and attempt.
struct Caller {
    key: String,
    job: Option<String>,
    attempt: u32,
}

#[allow(clippy::result_large_err)]
fn caller(state: &State, headers: &HeaderMap) -> Result<Caller, Refused> {
    let key = header_text(headers, "authorization")
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_string)
        .ok_or_else(|| {
            error(
                StatusCode::UNAUTHORIZED,
                "invalid_api_key",
                "missing API key",
            )
        })?;
    let known = state.config.keys.is_empty() || state.config.keys.contains(&key);
    let job = header_text(headers, "x-genq-job-id").map(str::to_string);
    if !known {
        state
            .stats
            .lock()
            .unwrap()
            .record("(unknown)", job.as_deref(), |s| {
                s.requests += 1;
                s.errors += 1;
            });
        return Err(error(
            StatusCode::UNAUTHORIZED,
            "invalid_api_key",
            "incorrect API key provided",
        ));
    }
    if state.config.out_of_credit.contains(&key) {
        state
            .stats
            .lock()
            .unwrap()
            .record(&key, job.as_deref(), |s| {
                s.requests += 1;
                s.errors += 1;
            });
        return Err(failure(ErrorClass::Billing));
    }
    let attempt = header_text(headers, "x-genq-attempt")
        .and_then(|a| a.parse().ok())
        .unwrap_or(1);
    Ok(Caller { key, job, attempt })
}

/// The failure a provider would answer for a class.
fn failure(class: ErrorClass) -> Response {
    match class {
        ErrorClass::UserError | ErrorClass::Canceled => error(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            "Your request was rejected as a result of our safety system (content_policy_violation).",
        ),
        ErrorClass::RateLimited => {
            let mut r = error(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limit_exceeded",
                "Rate limit reached",
            );
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            r
        }
        ErrorClass::Billing => error(
            StatusCode::PAYMENT_REQUIRED,
            "insufficient_quota",
            "You exceeded your current quota, please check your plan and billing details.",
        ),
        ErrorClass::Temporary | ErrorClass::Timeout | ErrorClass::LeaseExpired => error(
            StatusCode::SERVICE_UNAVAILABLE,
            "server_error",
            "The server is overloaded.",
        ),
        ErrorClass::Internal => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            "internal error",
        ),
    }
}

/// Count, authenticate, parse `simulate`, and admit one request using `tokens`.
#[allow(clippy::result_large_err)]
fn admit(
    state: &State,
    headers: &HeaderMap,
    body: &Value,
    tokens: u64,
) -> Result<(Caller, Simulate, InFlight), Refused> {
    let caller = caller(state, headers)?;
    let record = |f: &dyn Fn(&mut crate::KeyStats)| {
        state
            .stats
            .lock()
            .unwrap()
            .record(&caller.key, caller.job.as_deref(), f)
    };
    let at = state.started.elapsed().as_millis() as u64;
    state
        .stats
        .lock()
        .unwrap()
        .arrived(&caller.key, caller.job.as_deref(), at);
    let simulate = match Simulate::from_payload(body) {
        Ok(s) => s,
        Err(e) => {
            record(&|s| s.errors += 1);
            return Err(error(StatusCode::BAD_REQUEST, "invalid_request_error", &e));
        }
    };
    match state.limits.admit(&caller.key, tokens) {
        Ok(guard) => {
            record(&|s| s.tokens += tokens);
            Ok((caller, simulate, guard))
        }
        Err(refusal) => {
            record(&|s| s.rate_limited += 1);
            let mut r = error(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limit_exceeded",
                &format!("Rate limit reached: {refusal:?}"),
            );
            r.headers_mut().insert(
                header::RETRY_AFTER,
                HeaderValue::from(refusal.retry_after_secs()),
            );
            Err(r)
        }
    }
}

fn latency(state: &State, simulate: &Simulate) -> Duration {
    simulate
        .latency_ms
        .map(Duration::from_millis)
        .unwrap_or(state.config.latency)
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Tokens of the fake's chat answer.
const ANSWER_TOKENS: u64 = 12;

/// Rough tokens of a request: its text over four, plus what it may generate.
fn tokens_of(body: &Value) -> (u64, u64) {
    let prompt = (body.get("messages").map_or(0, |m| m.to_string().len()) / 4) as u64 + 1;
    let completion = body.get("max_tokens").and_then(Value::as_u64).unwrap_or(16);
    (prompt, completion)
}

/// Run a synchronous request: wait out its latency, then fail as simulated or answer.
async fn respond(
    state: Shared,
    headers: HeaderMap,
    body: Value,
    tokens: u64,
    answer: impl FnOnce(&Caller) -> Value,
) -> Response {
    let (caller, simulate, guard) = match admit(&state, &headers, &body, tokens) {
        Ok(admitted) => admitted,
        Err(response) => return response,
    };
    tokio::time::sleep(latency(&state, &simulate)).await;
    let remaining = guard.remaining;
    drop(guard);
    if let Some(class) = simulate.failure_for(caller.attempt) {
        let record = |s: &mut crate::KeyStats| match class {
            ErrorClass::RateLimited => s.rate_limited += 1,
            _ => s.errors += 1,
        };
        state
            .stats
            .lock()
            .unwrap()
            .record(&caller.key, caller.job.as_deref(), record);
        return failure(class);
    }
    with_rate_headers(Json(answer(&caller)).into_response(), remaining)
}

/// OpenAI's `x-ratelimit-*` headers: what is left of the key's requests this minute.
fn with_rate_headers(mut r: Response, remaining: Option<(u32, Duration)>) -> Response {
    if let Some((left, reset)) = remaining {
        let h = r.headers_mut();
        h.insert("x-ratelimit-remaining-requests", HeaderValue::from(left));
        let reset = format!("{}ms", reset.as_millis().max(1));
        h.insert(
            "x-ratelimit-reset-requests",
            HeaderValue::from_str(&reset).expect("ascii"),
        );
    }
    r
}

pub(crate) async fn chat(
    AxumState(state): AxumState<Shared>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    let (prompt, max_completion) = tokens_of(&body);
    // Like a real model: the limit counts what the request may generate, the usage what it did.
    let completion = max_completion.min(ANSWER_TOKENS);
    let model = body.get("model").cloned().unwrap_or(json!("fake-chat"));
    respond(state, headers, body, prompt + max_completion, |caller| {
        json!({
            "id": format!("chatcmpl-{}", uuid::Uuid::new_v4().simple()),
            "object": "chat.completion",
            "created": now_secs(),
            "model": model,
            "choices": [{
                "index": 0,
                "message": {"role": "assistant", "content": format!("A generated answer (attempt {}).", caller.attempt)},
                "logprobs": null,
                "finish_reason": "stop"
            }],
            "usage": {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}
        })
    })
    .await
}

pub(crate) async fn images(
    AxumState(state): AxumState<Shared>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    let n = body
        .get("n")
        .and_then(Value::as_u64)
        .unwrap_or(1)
        .clamp(1, 10);
    let (prompt, _) = tokens_of(&body);
    respond(state, headers, body, prompt + 100 * n, move |_| {
        let data: Vec<Value> = (0..n)
            .map(|i| json!({"url": format!("https://images.fake-provider.invalid/{}-{i}.png", uuid::Uuid::new_v4().simple())}))
            .collect();
        json!({
            "created": now_secs(),
            "data": data,
            "usage": {"input_tokens": prompt, "output_tokens": 100 * n, "total_tokens": prompt + 100 * n}
        })
    })
    .await
}

pub(crate) async fn create_task(
    AxumState(state): AxumState<Shared>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    let (caller, simulate, guard) = match admit(&state, &headers, &body, 1) {
        Ok(admitted) => admitted,
        Err(response) => return response,
    };
    let remaining = guard.remaining;
    drop(guard);
    // A request sent again with the same Idempotency-Key gets the task it created.
    let idempotency_key = header_text(&headers, "idempotency-key").map(str::to_string);
    let mut tasks = state.tasks.lock().unwrap();
    if let Some(id) = idempotency_key
        .as_ref()
        .and_then(|k| state.idempotent.lock().unwrap().get(k).cloned())
    {
        return with_rate_headers(
            Json(json!({"id": id, "status": "queued"})).into_response(),
            remaining,
        );
    }
    let id = format!("task_{}", uuid::Uuid::new_v4().simple());
    let now = Instant::now();
    tasks.insert(
        id.clone(),
        Task {
            job: caller.job.clone(),
            created: now,
            latency: latency(&state, &simulate),
            fails_with: simulate.failure_for(caller.attempt),
        },
    );
    if let Some(k) = idempotency_key {
        state.idempotent.lock().unwrap().insert(k, id.clone());
    }
    let in_flight = tasks
        .values()
        .filter(|t| now.duration_since(t.created) < t.latency)
        .count() as u64;
    drop(tasks);
    let mut stats = state.stats.lock().unwrap();
    stats.record(&caller.key, caller.job.as_deref(), |s| s.tasks_created += 1);
    stats.max_tasks_in_flight = stats.max_tasks_in_flight.max(in_flight);
    drop(stats);
    with_rate_headers(
        (StatusCode::OK, Json(json!({"id": id, "status": "queued"}))).into_response(),
        remaining,
    )
}

pub(crate) async fn get_task(
    AxumState(state): AxumState<Shared>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let caller = match caller(&state, &headers) {
        Ok(c) => c,
        Err(response) => return response,
    };
    // Any key of the account may ask about any of its tasks.
    let tasks = state.tasks.lock().unwrap();
    let Some(task) = tasks.get(&id) else {
        return error(StatusCode::NOT_FOUND, "not_found", "no such task");
    };
    state
        .stats
        .lock()
        .unwrap()
        .record(&caller.key, task.job.as_deref(), |s| s.requests += 1);
    let elapsed = task.created.elapsed();
    let body = if elapsed < task.latency / 2 {
        json!({"id": id, "status": "queued"})
    } else if elapsed < task.latency {
        json!({"id": id, "status": "running", "progress": (elapsed.as_secs_f64() / task.latency.as_secs_f64() * 100.0) as u32})
    } else if let Some(class) = task.fails_with {
        json!({"id": id, "status": "failed", "error": {"class": class.as_str(), "message": "the generation failed"}})
    } else {
        json!({"id": id, "status": "succeeded", "result": {"video_url": format!("https://videos.fake-provider.invalid/{id}.mp4")}})
    };
    Json(body).into_response()
}

pub(crate) async fn models(AxumState(state): AxumState<Shared>, headers: HeaderMap) -> Response {
    if let Err(response) = caller(&state, &headers) {
        return response;
    }
    Json(json!({"object": "list", "data": [
        {"id": "fake-chat", "object": "model", "owned_by": "genq"},
        {"id": "fake-image", "object": "model", "owned_by": "genq"}
    ]}))
    .into_response()
}

pub(crate) async fn stats(AxumState(state): AxumState<Shared>) -> Json<crate::Stats> {
    Json(state.stats.lock().unwrap().clone())
}
