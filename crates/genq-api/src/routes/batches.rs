//! Batches: many jobs of one kind for one user, all or nothing, with progress counts.

use super::jobs::{Admission, enqueue_jobs, idempotency_key, is_delayed, wake_for};
use crate::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, Code, ErrorBody};
use crate::extract::{JsonBody, PathId};
use crate::openapi::{Key, KindName};
use crate::views::BatchView;
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::sync::Arc;
use utoipa::ToSchema;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SubmitBatch {
    #[schema(value_type = KindName)]
    pub kind: String,
    #[schema(value_type = Key)]
    pub user_id: String,
    /// One payload object per item; at most `batch_max_items_per_request` (a runtime limit)
    /// jobs in all.
    #[schema(value_type = Vec<Object>, min_items = 1)]
    pub items: Vec<Value>,
    /// 1 to 5: each item runs this many times.
    #[serde(default, deserialize_with = "crate::extract::whole::optional")]
    #[schema(minimum = 1, maximum = 5)]
    pub copies: Option<u32>,
    #[serde(default, deserialize_with = "crate::extract::whole::optional")]
    pub priority: Option<i32>,
    /// RFC 3339; not claimable before then. Exclusive with `delay_ms`.
    #[serde(default)]
    #[schema(format = DateTime)]
    pub run_at: Option<String>,
    /// Not claimable for this long. Exclusive with `run_at`.
    #[serde(default, deserialize_with = "crate::extract::whole::optional")]
    pub delay_ms: Option<u64>,
    /// As for a single job; or the `Idempotency-Key` header.
    #[serde(default)]
    #[schema(value_type = Option<Key>)]
    pub idempotency_key: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct Submitted {
    pub batch: BatchView,
    /// In item order, copies of an item together.
    pub job_ids: Vec<String>,
}

#[utoipa::path(post, path = "/v1/batches", tag = "batches", request_body = SubmitBatch,
    responses(
        (status = 201, description = "Enqueued, all of it", body = Submitted),
        (status = 200, description = "A repeat with the same idempotency key", body = Submitted),
        (status = 400, description = "`invalid_request`, `unknown_kind`, or more jobs than batch_max_items_per_request (`batch_too_large`); nothing enqueued", body = ErrorBody),
        (status = 402, description = "`insufficient_credits`: nothing enqueued", body = ErrorBody),
        (status = 429, description = "`queue_limit` or `daily_limit` (with Retry-After): nothing enqueued", body = ErrorBody),
    ))]
pub async fn submit(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    headers: HeaderMap,
    JsonBody(body): JsonBody<SubmitBatch>,
) -> ApiResult<(StatusCode, Json<Submitted>)> {
    caller.require_app()?;
    let copies = body.copies.unwrap_or(1);
    if !(1..=5).contains(&copies) {
        return Err(ApiError::invalid("copies must be between 1 and 5")
            .with_details(serde_json::json!({"field": "copies"})));
    }
    if body.items.is_empty() {
        return Err(ApiError::invalid("items must not be empty")
            .with_details(serde_json::json!({"field": "items"})));
    }
    let key = idempotency_key(&headers, body.idempotency_key)?;
    let payloads: Vec<Value> = body
        .items
        .iter()
        .flat_map(|item| std::iter::repeat_n(item, copies as usize).cloned())
        .collect();
    let new = Admission {
        kind: &body.kind,
        user_id: &body.user_id,
        priority: body.priority,
        run_at: body.run_at.as_deref(),
        delay_ms: body.delay_ms,
        idempotency_key: key,
    }
    .into_new_jobs(&state, payloads, true)?;
    let delayed = is_delayed(&new);
    let out = enqueue_jobs(&state, new).await?;
    let batch = out
        .batch
        .ok_or_else(|| ApiError::new(Code::Internal, "batch enqueue returned no batch"))?;
    let status = if out.replayed {
        StatusCode::OK
    } else {
        wake_for(&state, delayed);
        StatusCode::CREATED
    };
    Ok((
        status,
        Json(Submitted {
            batch: batch.into(),
            job_ids: out.jobs.into_iter().map(|j| j.id).collect(),
        }),
    ))
}

#[utoipa::path(get, path = "/v1/batches/{id}", tag = "batches",
    params(("id" = Key, Path, description = "Batch id")),
    responses((status = 200, body = BatchView), (status = 404, description = "`not_found`", body = ErrorBody)))]
pub async fn get(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    PathId(id): PathId,
) -> ApiResult<Json<BatchView>> {
    caller.require_app()?;
    Ok(Json(state.store.batch(&id).await?.into()))
}
