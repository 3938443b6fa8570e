//! Enqueue, read, list, cancel and retry jobs.

use super::visibility;
use crate::AppState;
use crate::auth::Caller;
use crate::cursor;
use crate::error::{ApiError, ApiResult, Code, ErrorBody};
use crate::extract::{JsonBody, PathId, QueryParams, check_key};
use crate::openapi::{JobCursor, JobStateName, Key, KindName};
use crate::views::JobView;
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use chrono::{DateTime, Utc};
use genq_core::JobState;
use genq_store::{JobFilter, JobQuery, NewJobs};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::sync::Arc;
use utoipa::{IntoParams, ToSchema};

/// Longest `delay_ms`: ten years. (`run_at` may name any time RFC 3339 can.)
pub const MAX_DELAY_MS: u64 = 10 * 365 * 24 * 3600 * 1000;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EnqueueJob {
    #[schema(value_type = KindName)]
    pub kind: String,
    #[schema(value_type = Key)]
    pub user_id: String,
    #[schema(value_type = Object)]
    pub payload: Value,
    /// Higher runs first; default: the kind's priority.
    #[serde(default, deserialize_with = "crate::extract::whole::optional")]
    pub priority: Option<i32>,
    /// RFC 3339; not claimable before then. Exclusive with `delay_ms`.
    #[serde(default)]
    #[schema(format = DateTime)]
    pub run_at: Option<String>,
    /// Not claimable for this long. Exclusive with `run_at`.
    #[serde(default, deserialize_with = "crate::extract::whole::optional")]
    pub delay_ms: Option<u64>,
    /// A repeat with the same `(user_id, idempotency_key)` returns the original job. May be
    /// sent as the `Idempotency-Key` header instead; if both are sent they must be equal.
    #[serde(default)]
    #[schema(value_type = Option<Key>)]
    pub idempotency_key: Option<String>,
}

/// What single jobs and batches share on the way in.
pub(crate) struct Admission<'a> {
    pub kind: &'a str,
    pub user_id: &'a str,
    pub priority: Option<i32>,
    pub run_at: Option<&'a str>,
    pub delay_ms: Option<u64>,
    pub idempotency_key: Option<String>,
}

impl Admission<'_> {
    /// Validate and turn into the store's request.
    pub(crate) fn into_new_jobs(
        self,
        state: &AppState,
        payloads: Vec<Value>,
        as_batch: bool,
    ) -> ApiResult<NewJobs> {
        check_key("user_id", self.user_id)?;
        check_key("kind", self.kind)?;
        let kind = known_kind(state, self.kind)?;
        if let Some(key) = &self.idempotency_key {
            check_key("idempotency_key", key)?;
        }
        let now = state.clock.now();
        let run_at = match (self.run_at, self.delay_ms) {
            (Some(_), Some(_)) => {
                return Err(ApiError::invalid("give run_at or delay_ms, not both"));
            }
            (Some(text), None) => Some(
                DateTime::parse_from_rfc3339(text)
                    .map_err(|e| ApiError::invalid(format!("run_at is not RFC 3339: {e}")))?
                    .with_timezone(&Utc),
            ),
            (None, Some(ms)) if ms > MAX_DELAY_MS => {
                return Err(ApiError::invalid(format!(
                    "delay_ms may be at most {MAX_DELAY_MS} (ten years)"
                ))
                .with_details(serde_json::json!({"field": "delay_ms"})));
            }
            (None, Some(ms)) => Some(now + chrono::Duration::milliseconds(ms as i64)),
            (None, None) => None,
        };
        for (i, payload) in payloads.iter().enumerate() {
            if !payload.is_object() {
                let field = if as_batch {
                    format!("items[{i}]")
                } else {
                    "payload".into()
                };
                return Err(ApiError::invalid(format!("{field} must be a JSON object"))
                    .with_details(serde_json::json!({"field": field})));
            }
        }
        Ok(NewJobs {
            kind: kind.name.clone(),
            user_id: self.user_id.to_string(),
            payloads,
            priority: self.priority.unwrap_or(kind.priority),
            run_at,
            max_retries: kind.retry_policy().max_retries,
            cost: kind.cost,
            idempotency_key: self.idempotency_key,
            as_batch,
            now,
            day: state.config.quota.day(now),
            user_defaults: state.config.users.defaults(),
        })
    }
}

/// A configured kind; `unknown_kind` (400) naming the kinds there are otherwise.
pub(crate) fn known_kind<'a>(state: &'a AppState, kind: &str) -> ApiResult<&'a genq_config::Kind> {
    state.config.kind(kind).ok_or_else(|| {
        ApiError::new(Code::UnknownKind, format!("unknown kind {kind:?}")).with_details(
            serde_json::json!({
                "kinds": state.config.kinds.iter().map(|k| k.name.as_str()).collect::<Vec<_>>()
            }),
        )
    })
}

/// The body's key, or the `Idempotency-Key` header's; both must agree.
pub(crate) fn idempotency_key(
    headers: &HeaderMap,
    body: Option<String>,
) -> ApiResult<Option<String>> {
    let header = headers
        .get("idempotency-key")
        .map(|v| {
            v.to_str()
                .map(str::to_string)
                .map_err(|_| ApiError::invalid("the Idempotency-Key header must be text"))
        })
        .transpose()?;
    match (header, body) {
        (Some(h), Some(b)) if h != b => Err(ApiError::invalid(
            "the Idempotency-Key header and the idempotency_key field differ",
        )),
        (h, b) => Ok(b.or(h)),
    }
}

/// Enqueue, turning a refusal into its error: `daily_limit` says when the next quota day
/// starts.
pub(crate) async fn enqueue_jobs(
    state: &AppState,
    new: NewJobs,
) -> ApiResult<genq_store::Enqueued> {
    let now = new.now;
    let out = state.store.enqueue(new).await.map_err(|e| match e {
        genq_store::StoreError::Rejected(r) => {
            let next_day = state.config.quota.next_day_start(now);
            let seconds = (next_day - now).num_seconds().max(1) as u64;
            crate::error::rejection(r, Some(seconds))
        }
        other => ApiError::from(other),
    })?;
    state.engine.metrics().enqueued(&out);
    Ok(out)
}

pub(crate) fn is_delayed(new: &NewJobs) -> bool {
    new.run_at.is_some_and(|t| t > new.now)
}

/// Wake whoever runs new jobs: the workers now, or the scheduler for later.
pub(crate) fn wake_for(state: &AppState, delayed: bool) {
    if delayed {
        state.engine.wake().delayed();
    } else {
        state.engine.wake().work();
    }
}

#[utoipa::path(post, path = "/v1/jobs", tag = "jobs", request_body = EnqueueJob,
    responses(
        (status = 201, description = "Enqueued", body = JobView),
        (status = 200, description = "A repeat of an earlier request with the same idempotency key: the original job", body = JobView),
        (status = 400, description = "`invalid_request`, or `unknown_kind`; nothing enqueued", body = ErrorBody),
        (status = 402, description = "`insufficient_credits`: nothing enqueued", body = ErrorBody),
        (status = 429, description = "`queue_limit`, or `daily_limit` (with Retry-After): nothing enqueued", body = ErrorBody),
    ))]
pub async fn enqueue(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    headers: HeaderMap,
    JsonBody(body): JsonBody<EnqueueJob>,
) -> ApiResult<(StatusCode, Json<JobView>)> {
    caller.require_app()?;
    let key = idempotency_key(&headers, body.idempotency_key)?;
    let new = Admission {
        kind: &body.kind,
        user_id: &body.user_id,
        priority: body.priority,
        run_at: body.run_at.as_deref(),
        delay_ms: body.delay_ms,
        idempotency_key: key,
    }
    .into_new_jobs(&state, vec![body.payload], false)?;
    let delayed = is_delayed(&new);
    let mut out = enqueue_jobs(&state, new).await?;
    let status = if out.replayed {
        StatusCode::OK
    } else {
        wake_for(&state, delayed);
        StatusCode::CREATED
    };
    let job = out
        .jobs
        .pop()
        .ok_or_else(|| ApiError::new(Code::Internal, "enqueue returned no job"))?;
    Ok((status, Json(JobView::new(job, visibility(&state, &caller)))))
}

#[utoipa::path(get, path = "/v1/jobs/{id}", tag = "jobs",
    params(("id" = Key, Path, description = "Job id")),
    responses((status = 200, body = JobView), (status = 404, description = "`not_found`", body = ErrorBody)))]
pub async fn get(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    PathId(id): PathId,
) -> ApiResult<Json<JobView>> {
    caller.require(&[
        crate::auth::Scope::Admin,
        crate::auth::Scope::App,
        crate::auth::Scope::Worker,
    ])?;
    let job = state.store.job(&id).await?;
    Ok(Json(JobView::new(job, visibility(&state, &caller))))
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    #[param(value_type = Option<Key>)]
    pub user_id: Option<String>,
    #[param(value_type = Option<JobStateName>)]
    pub state: Option<String>,
    #[param(value_type = Option<KindName>)]
    pub kind: Option<String>,
    #[param(value_type = Option<Key>)]
    pub batch_id: Option<String>,
    /// Most jobs on the page: 1 to 200, default 50. A page also ends early, with a
    /// `next_cursor`, once its payloads and results reach `api.list_page_bytes` (1 MiB).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    #[param(value_type = Option<JobCursor>)]
    pub cursor: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct JobPage {
    pub items: Vec<JobView>,
    /// Pass as `cursor` for the next page; null on the last page.
    pub next_cursor: Option<String>,
}

#[utoipa::path(get, path = "/v1/jobs", tag = "jobs", params(ListQuery),
    responses((status = 200, body = JobPage)))]
pub async fn list(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    QueryParams(q): QueryParams<ListQuery>,
) -> ApiResult<Json<JobPage>> {
    caller.require_app()?;
    let limit = q.limit.unwrap_or(50);
    if !(1..=200).contains(&limit) {
        return Err(ApiError::invalid("limit must be between 1 and 200"));
    }
    for (field, value) in [("user_id", &q.user_id), ("batch_id", &q.batch_id)] {
        if let Some(v) = value {
            check_key(field, v)?;
        }
    }
    if let Some(kind) = &q.kind {
        known_kind(&state, kind)?;
    }
    let filter = JobFilter {
        user_id: q.user_id,
        state: q
            .state
            .as_deref()
            .map(str::parse::<JobState>)
            .transpose()
            .map_err(|e| ApiError::invalid(e.to_string()))?,
        kind: q.kind,
        batch_id: q.batch_id,
    };
    let page = state
        .store
        .jobs(&JobQuery {
            filter,
            before: q.cursor.as_deref().map(cursor::decode_jobs).transpose()?,
            limit,
            max_bytes: state.config.api.list_page_bytes,
        })
        .await?;
    let v = visibility(&state, &caller);
    Ok(Json(JobPage {
        items: page.jobs.into_iter().map(|j| JobView::new(j, v)).collect(),
        next_cursor: page.next_before.as_deref().map(cursor::encode_jobs),
    }))
}

#[utoipa::path(post, path = "/v1/jobs/{id}/cancel", tag = "jobs",
    params(("id" = Key, Path, description = "Job id")),
    responses((status = 200, body = JobView), (status = 404, description = "`not_found`", body = ErrorBody),
        (status = 409, description = "`conflict`: already finished", body = ErrorBody)))]
pub async fn cancel(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    PathId(id): PathId,
) -> ApiResult<Json<JobView>> {
    caller.require_app()?;
    let job = cancel_job(&state, &id).await?;
    Ok(Json(JobView::new(job, visibility(&state, &caller))))
}

/// Cancels a job (API and dashboard): the store, the metrics, and an attempt running here.
pub(crate) async fn cancel_job(state: &AppState, id: &str) -> ApiResult<genq_core::Job> {
    let job = state.store.cancel(id, state.clock.now()).await?;
    state.engine.metrics().canceled(&job);
    state.engine.cancel_local(id);
    Ok(job)
}

#[utoipa::path(post, path = "/v1/jobs/{id}/retry", tag = "jobs",
    params(("id" = Key, Path, description = "Job id")),
    responses((status = 200, body = JobView), (status = 404, description = "`not_found`", body = ErrorBody),
        (status = 402, description = "`insufficient_credits` for the new debit", body = ErrorBody),
        (status = 409, description = "`conflict`: not failed or canceled", body = ErrorBody)))]
pub async fn retry(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    PathId(id): PathId,
) -> ApiResult<Json<JobView>> {
    caller.require_admin()?;
    let job = retry_job(&state, &id).await?;
    Ok(Json(JobView::new(job, visibility(&state, &caller))))
}

/// An admin's retry of a failed or canceled job (API and dashboard).
pub(crate) async fn retry_job(state: &AppState, id: &str) -> ApiResult<genq_core::Job> {
    let job = state.store.admin_retry(id, state.clock.now()).await?;
    state.engine.metrics().retried_by_admin(&job);
    state.engine.wake().work();
    Ok(job)
}
