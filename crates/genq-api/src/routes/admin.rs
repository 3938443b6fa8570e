//! Runtime limits (SPEC §5): read and changed by admins; a change applies to the next request
//! at once and to every worker process within a second.

use crate::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, Code, ErrorBody};
use crate::extract::{JsonBody, PathId};
use axum::Json;
use axum::extract::State;
use genq_core::Limits;
use genq_core::limits::{LIMITS, LimitError};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;
use utoipa::ToSchema;

#[derive(Serialize, ToSchema)]
pub struct LimitView {
    pub value: i64,
    pub default: i64,
}

#[derive(Serialize, ToSchema)]
pub struct LimitsView {
    pub limits: BTreeMap<String, LimitView>,
}

fn view(limits: &Limits) -> LimitsView {
    LimitsView {
        limits: LIMITS
            .iter()
            .map(|spec| {
                (
                    spec.key.to_string(),
                    LimitView {
                        value: limits.get(spec.key),
                        default: spec.default,
                    },
                )
            })
            .collect(),
    }
}

#[utoipa::path(get, path = "/v1/admin/limits", tag = "admin",
    responses((status = 200, body = LimitsView), (status = 403, body = ErrorBody)))]
pub async fn limits(
    State(state): State<Arc<AppState>>,
    caller: Caller,
) -> ApiResult<Json<LimitsView>> {
    caller.require_admin()?;
    Ok(Json(view(&state.store.limits().await?)))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetLimit {
    pub value: i64,
}

#[utoipa::path(put, path = "/v1/admin/limits/{key}", tag = "admin", request_body = SetLimit,
    params(("key" = String, Path, description = "A limit key, e.g. batch_max_items_per_request")),
    responses((status = 200, body = LimitsView),
        (status = 400, description = "`unknown_limit`, or `invalid_request` for a value of the wrong type or range; nothing changed", body = ErrorBody)))]
pub async fn set_limit(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    PathId(key): PathId,
    JsonBody(body): JsonBody<SetLimit>,
) -> ApiResult<Json<LimitsView>> {
    caller.require_admin()?;
    match genq_core::limits::check(&key, body.value) {
        Err(LimitError::Unknown(_)) => {
            let keys: Vec<&str> = LIMITS.iter().map(|l| l.key).collect();
            return Err(
                ApiError::new(Code::UnknownLimit, format!("unknown limit {key:?}"))
                    .with_details(serde_json::json!({"limits": keys})),
            );
        }
        Err(e @ LimitError::OutOfRange { .. }) => return Err(ApiError::invalid(e.to_string())),
        Ok(()) => {}
    }
    let limits = state
        .store
        .set_limit(&key, body.value, state.clock.now())
        .await?;
    state.engine.limits_changed(limits.clone());
    // A lower user_max_running or a higher queue limit may change what is claimable.
    state.engine.wake().work();
    Ok(Json(view(&limits)))
}
