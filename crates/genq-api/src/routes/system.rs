//! Health, readiness, stats and the OpenAPI document.

use crate::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, Code, ErrorBody};
use crate::openapi::ApiDoc;
use crate::views::StatsView;
use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};
use std::sync::Arc;
use utoipa::OpenApi;

#[utoipa::path(get, path = "/healthz", tag = "system", security(()),
    responses((status = 200, description = "The process runs")))]
pub async fn healthz() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

#[utoipa::path(get, path = "/readyz", tag = "system", security(()),
    responses((status = 200, description = "The database answers"), (status = 503, body = ErrorBody)))]
pub async fn readyz(State(state): State<Arc<AppState>>) -> ApiResult<Json<Value>> {
    state.store.ping().await.map_err(|e| {
        ApiError::new(
            Code::Unavailable,
            format!("the database does not answer: {e}"),
        )
    })?;
    Ok(Json(json!({"status": "ready"})))
}

#[utoipa::path(get, path = "/v1/stats", tag = "system",
    responses((status = 200, body = StatsView), (status = 401, body = ErrorBody)))]
pub async fn stats(
    State(state): State<Arc<AppState>>,
    caller: Caller,
) -> ApiResult<Json<StatsView>> {
    caller.require_app()?;
    Ok(Json(state.store.stats(state.clock.now()).await?.into()))
}

#[utoipa::path(get, path = "/openapi.json", tag = "system", security(()),
    responses((status = 200, description = "This document")))]
pub async fn openapi() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}
