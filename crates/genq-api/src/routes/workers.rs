//! External workers (any language): claim with long-poll, heartbeat, complete, fail. Every call
//! after the claim is fenced by the `lease_token`: a worker that lost its lease gets 409 and
//! cannot change the job.

use super::visibility;
use crate::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, Code, ErrorBody};
use crate::extract::{JsonBody, PathId, check_key};
use crate::openapi::{ExternalKindName, FailClass, Key};
use crate::views::{ClaimedJobView, JobView, ts};
use axum::Json;
use axum::extract::State;
use genq_core::{ErrorClass, Failure};
use genq_engine::worker_pool::finish_failed;
use genq_store::{ClaimRequest, Finish, LeaseRef, Outcome};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;
use utoipa::ToSchema;

/// Most jobs in one claim.
const MAX_CLAIM: u32 = 100;
/// Longest Retry-After an external worker may ask for: a day.
const MAX_RETRY_AFTER_MS: u64 = 24 * 3600 * 1000;
/// Longest detail kept from an external worker.
const MAX_DETAIL: usize = 4096;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClaimBody {
    #[schema(value_type = Key)]
    pub worker_id: String,
    /// Kinds configured with `external = true`.
    #[schema(value_type = Vec<ExternalKindName>, min_items = 1, max_items = 100)]
    pub kinds: Vec<String>,
    /// 1 to 100; default 1.
    #[serde(default, deserialize_with = "crate::extract::whole::optional")]
    #[schema(minimum = 1, maximum = 100)]
    pub max: Option<u32>,
    /// Wait up to this long for a job when none is ready (capped by `api.max_claim_wait`).
    #[serde(default, deserialize_with = "crate::extract::whole::optional")]
    pub wait_ms: Option<u64>,
}

#[derive(Serialize, ToSchema)]
pub struct Claimed {
    pub jobs: Vec<ClaimedJobView>,
}

#[utoipa::path(post, path = "/v1/workers/claim", tag = "workers", request_body = ClaimBody,
    responses((status = 200, body = Claimed),
        (status = 400, description = "`invalid_request`, or `unknown_kind`; a kind that is not external is refused", body = ErrorBody)))]
pub async fn claim(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    JsonBody(body): JsonBody<ClaimBody>,
) -> ApiResult<Json<Claimed>> {
    caller.require_worker()?;
    check_key("worker_id", &body.worker_id)?;
    let max = body.max.unwrap_or(1);
    if !(1..=MAX_CLAIM).contains(&max) {
        return Err(ApiError::invalid(format!(
            "max must be between 1 and {MAX_CLAIM}"
        )));
    }
    if body.kinds.is_empty() || body.kinds.len() > 100 {
        return Err(ApiError::invalid("kinds must name 1 to 100 kinds"));
    }
    for kind in &body.kinds {
        external_kind(&state, kind)?;
    }
    let wait =
        Duration::from_millis(body.wait_ms.unwrap_or(0)).min(state.config.api.max_claim_wait);
    let deadline = tokio::time::Instant::now() + wait;
    let settings = &state.engine.shared().settings;
    loop {
        // Listen before looking, so an enqueue between the look and the wait still wakes us.
        let woken = state.engine.wake().claims();
        tokio::pin!(woken);
        woken.as_mut().enable();
        let now = state.clock.now();
        let jobs = state
            .store
            .claim(ClaimRequest {
                // External leases carry the worker's id, never this process's node id: a
                // restart of genq must not take back leases that external workers hold.
                node_id: format!("external:{}", body.worker_id),
                worker_id: body.worker_id.clone(),
                kinds: body.kinds.clone(),
                max,
                lease_until: now + chrono::Duration::from_std(settings.lease).unwrap_or_default(),
                now,
            })
            .await?;
        if !jobs.is_empty() || tokio::time::Instant::now() >= deadline {
            for job in &jobs {
                state.engine.metrics().claimed(job, now);
            }
            let v = visibility(&state, &caller);
            let jobs = jobs
                .into_iter()
                .map(|job| {
                    let lease = job.lease.clone().expect("claimed jobs hold a lease");
                    ClaimedJobView {
                        job: JobView::new(job, v),
                        lease_token: lease.token,
                        lease_expires_at: ts(lease.expires_at),
                    }
                })
                .collect();
            return Ok(Json(Claimed { jobs }));
        }
        tokio::select! {
            _ = woken => {}
            _ = tokio::time::sleep_until(deadline) => {}
            _ = tokio::time::sleep(settings.poll_interval) => {}
        }
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HeartbeatBody {
    #[schema(value_type = Key)]
    pub lease_token: String,
}

#[derive(Serialize, ToSchema)]
pub struct LeaseView {
    pub lease_expires_at: String,
}

fn lost() -> ApiError {
    ApiError::new(
        Code::Conflict,
        "the lease is lost: the job was canceled, finished, or rescued after the lease expired",
    )
}

#[utoipa::path(post, path = "/v1/jobs/{id}/heartbeat", tag = "workers", request_body = HeartbeatBody,
    params(("id" = Key, Path, description = "Job id")),
    responses((status = 200, body = LeaseView), (status = 404, description = "`not_found`", body = ErrorBody),
        (status = 409, description = "`conflict`: the lease is lost or the job was canceled; stop working on it", body = ErrorBody)))]
pub async fn heartbeat(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    PathId(id): PathId,
    JsonBody(body): JsonBody<HeartbeatBody>,
) -> ApiResult<Json<LeaseView>> {
    caller.require_worker()?;
    check_key("lease_token", &body.lease_token)?;
    let now = state.clock.now();
    let until =
        now + chrono::Duration::from_std(state.engine.shared().settings.lease).unwrap_or_default();
    let lease = LeaseRef {
        job_id: id,
        token: body.lease_token,
    };
    let renewed = state
        .store
        .heartbeat(std::slice::from_ref(&lease), until, now)
        .await?;
    if renewed.is_empty() {
        return Err(lost());
    }
    Ok(Json(LeaseView {
        lease_expires_at: ts(until),
    }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CompleteBody {
    #[schema(value_type = Key)]
    pub lease_token: String,
    #[schema(value_type = Object)]
    pub result: Value,
}

#[utoipa::path(post, path = "/v1/jobs/{id}/complete", tag = "workers", request_body = CompleteBody,
    params(("id" = Key, Path, description = "Job id")),
    responses((status = 200, body = JobView), (status = 404, description = "`not_found`", body = ErrorBody),
        (status = 409, description = "`conflict`: the lease is lost", body = ErrorBody)))]
pub async fn complete(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    PathId(id): PathId,
    JsonBody(body): JsonBody<CompleteBody>,
) -> ApiResult<Json<JobView>> {
    caller.require_worker()?;
    check_key("lease_token", &body.lease_token)?;
    if !body.result.is_object() {
        return Err(ApiError::invalid("result must be a JSON object")
            .with_details(serde_json::json!({"field": "result"})));
    }
    let job = leased_job(&state, &id, &body.lease_token).await?;
    let mut result = body.result;
    state.engine.shared().providers.redactor.value(&mut result);
    let outcome = Outcome::Succeeded { result };
    apply(
        &state,
        &caller,
        Finish::new(&job, outcome, state.clock.now()),
    )
    .await
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FailBody {
    #[schema(value_type = Key)]
    pub lease_token: String,
    #[schema(value_type = FailClass)]
    pub class: String,
    #[serde(default)]
    pub message: Option<String>,
    #[serde(default)]
    pub detail: Option<String>,
    /// For `rate_limited`: the provider's Retry-After.
    #[serde(default, deserialize_with = "crate::extract::whole::optional")]
    pub retry_after_ms: Option<u64>,
}

#[utoipa::path(post, path = "/v1/jobs/{id}/fail", tag = "workers", request_body = FailBody,
    params(("id" = Key, Path, description = "Job id")),
    responses((status = 200, description = "The job after the failure: retrying, failed or canceled", body = JobView),
        (status = 404, description = "`not_found`", body = ErrorBody),
        (status = 409, description = "`conflict`: the lease is lost", body = ErrorBody)))]
pub async fn fail(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    PathId(id): PathId,
    JsonBody(body): JsonBody<FailBody>,
) -> ApiResult<Json<JobView>> {
    caller.require_worker()?;
    check_key("lease_token", &body.lease_token)?;
    let class: ErrorClass = body
        .class
        .parse()
        .map_err(|e: genq_core::error_class::UnknownClass| ApiError::invalid(e.to_string()))?;
    if class == ErrorClass::LeaseExpired {
        return Err(ApiError::invalid(
            "lease_expired is decided by genq, not reported by workers",
        ));
    }
    let job = leased_job(&state, &id, &body.lease_token).await?;
    let mut detail = [body.message, body.detail]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(": ");
    truncate(&mut detail, MAX_DETAIL);
    let failure = Failure::new(class, detail).with_retry_after(
        body.retry_after_ms
            .map(|ms| Duration::from_millis(ms.min(MAX_RETRY_AFTER_MS))),
    );
    let finish = finish_failed(
        state.engine.shared(),
        &job,
        &failure,
        state.clock.now(),
        None,
    );
    apply(&state, &caller, finish).await
}

/// Apply a fenced transition; 409 if the lease no longer holds.
async fn apply(state: &AppState, caller: &Caller, finish: Finish) -> ApiResult<Json<JobView>> {
    let id = finish.lease.job_id.clone();
    let retry_later =
        matches!(&finish.outcome, Outcome::Retry { run_at, .. } if *run_at > finish.now);
    let applied = state.store.finish(vec![finish.clone()]).await?;
    state.engine.shared().record_outcomes(&[finish], &applied);
    if applied != [true] {
        // Tell a missing job apart from a lost lease.
        state.store.job(&id).await?;
        return Err(lost());
    }
    state.engine.wake().work();
    if retry_later {
        state.engine.wake().delayed();
    }
    let job = state.store.job(&id).await?;
    Ok(Json(JobView::new(job, visibility(state, caller))))
}

/// A kind external workers may run: configured, and `external = true`. The others are run by
/// genq's own workers; a worker token that could claim them could complete a paid job with a
/// forged result.
fn external_kind(state: &AppState, kind: &str) -> ApiResult<()> {
    if super::jobs::known_kind(state, kind)?.external {
        Ok(())
    } else {
        Err(ApiError::invalid(format!(
            "kind {kind:?} is run by genq's own workers; external workers may claim only kinds configured with external = true"
        ))
        .with_details(serde_json::json!({"kind": kind})))
    }
}

/// The job, if `token` is its current lease; 409 otherwise. The write that follows is fenced
/// by the same token, so a lease lost in between still changes nothing.
async fn leased_job(state: &AppState, id: &str, token: &str) -> ApiResult<genq_core::Job> {
    let job = state.store.job(id).await?;
    if job.lease.as_ref().map(|l| l.token.as_str()) != Some(token) {
        return Err(lost());
    }
    external_kind(state, &job.kind)?;
    Ok(job)
}

fn truncate(text: &mut String, max: usize) {
    if text.len() > max {
        let mut end = max;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
}
