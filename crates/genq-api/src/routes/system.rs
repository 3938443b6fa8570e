//! Health, readiness, stats and the OpenAPI document.

use crate::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, Code, ErrorBody};
use crate::views::StatsView;
use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};
use std::sync::Arc;

#[utoipa::path(get, path = "/healthz", tag = "system", security(()),
    responses((status = 200, description = "The process runs", body = Object)))]
pub async fn healthz() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

#[utoipa::path(get, path = "/readyz", tag = "system", security(()),
    responses((status = 200, description = "The database answers", body = Object),
        (status = 503, description = "`unavailable`: the database does not answer", body = ErrorBody)))]
pub async fn readyz(State(state): State<Arc<AppState>>) -> ApiResult<Json<Value>> {
    state.store.ping().await.map_err(|e| {
        // The detail names the database: for the log, not for an unauthenticated caller.
        tracing::warn!(error = %e, "readyz: the database does not answer");
        ApiError::new(Code::Unavailable, "the database does not answer")
    })?;
    Ok(Json(json!({"status": "ready"})))
}

/// The Prometheus (OpenMetrics) exposition format.
pub const METRICS_CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[utoipa::path(get, path = "/metrics", tag = "system", security(()),
    responses((status = 200, description = "This process's metrics (SPEC §11)",
            content_type = "application/openmetrics-text", body = String),
        (status = 401, description = "`unauthorized`: `[metrics] token` is set and was not sent", body = ErrorBody),
        (status = 404, description = "`not_found`: `[metrics] enabled = false`", body = ErrorBody)))]
pub async fn metrics(
    State(state): State<Arc<AppState>>,
    headers: axum::http::HeaderMap,
) -> ApiResult<impl axum::response::IntoResponse> {
    if !state.engine.metrics().enabled() {
        return Err(ApiError::new(
            Code::NotFound,
            "metrics are off ([metrics] enabled = false)",
        ));
    }
    if !state.scrape_token.allows(&headers) {
        return Err(ApiError::new(
            Code::Unauthorized,
            "send the [metrics] token as Authorization: Bearer <token>",
        ));
    }
    let text = state.engine.render_metrics().await;
    Ok((
        [(axum::http::header::CONTENT_TYPE, METRICS_CONTENT_TYPE)],
        text,
    ))
}

#[utoipa::path(get, path = "/v1/stats", tag = "system",
    responses((status = 200, body = StatsView)))]
pub async fn stats(
    State(state): State<Arc<AppState>>,
    caller: Caller,
) -> ApiResult<Json<StatsView>> {
    caller.require_app()?;
    Ok(Json(state.store.stats(state.clock.now()).await?.into()))
}

#[utoipa::path(get, path = "/openapi.json", tag = "system", security(()),
    responses((status = 200, description = "This document", body = Object)))]
pub async fn openapi(State(state): State<Arc<AppState>>) -> Json<Arc<Value>> {
    Json(state.openapi.clone())
}
