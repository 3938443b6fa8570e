//! Runtime limits (SPEC §5): read and changed by admins; a change applies to the next request
//! at once and to every worker process within a second.

use crate::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, Code, ErrorBody};
use crate::extract::{JsonBody, PathId, PathParams};
use crate::openapi::{Key, KeyLabel, ProviderName};
use crate::views::ts;
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
    responses((status = 200, body = LimitsView)))]
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
    #[serde(deserialize_with = "crate::extract::whole::number")]
    pub value: i64,
}

#[utoipa::path(put, path = "/v1/admin/limits/{key}", tag = "admin", request_body = SetLimit,
    params(("key" = String, Path, description = "A limit key, e.g. batch_max_items_per_request")),
    responses((status = 200, body = LimitsView),
        (status = 400, description = "`invalid_request` for a value of the wrong type or range; nothing changed", body = ErrorBody)))]
pub async fn set_limit(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    PathId(key): PathId,
    JsonBody(body): JsonBody<SetLimit>,
) -> ApiResult<Json<LimitsView>> {
    caller.require_admin()?;
    let limits = change_limit(&state, &key, body.value).await?;
    Ok(Json(view(&limits)))
}

/// Sets a limit (API and dashboard) and tells this process's engine at once.
pub(crate) async fn change_limit(state: &AppState, key: &str, value: i64) -> ApiResult<Limits> {
    match genq_core::limits::check(key, value) {
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
    let limits = state.store.set_limit(key, value, state.clock.now()).await?;
    state.engine.limits_changed(limits.clone());
    // A lower user_max_running or a higher queue limit may change what is claimable.
    state.engine.wake().work();
    Ok(limits)
}

/// Every external provider of this process and its keys (by label, never the secret).
#[derive(Serialize, ToSchema)]
pub struct ProvidersView {
    /// Per provider: `name`, `type`, `state` (`ok`, or `waiting` with `why` when no key is
    /// usable or `max_concurrent` is reached), `in_flight`, limits, and `keys`: each key's
    /// `label`, `state` (`ok`, `cooling`, `disabled`), `until`, `requests`, `rate_limited`,
    /// `errors`.
    #[schema(value_type = Vec<Object>)]
    pub providers: Vec<genq_engine::providers::upstream::ProviderView>,
}

#[utoipa::path(get, path = "/v1/admin/providers", tag = "admin",
    responses((status = 200, body = ProvidersView)))]
pub async fn providers(
    State(state): State<Arc<AppState>>,
    caller: Caller,
) -> ApiResult<Json<ProvidersView>> {
    caller.require_admin()?;
    Ok(Json(ProvidersView {
        providers: state.engine.providers().views().await,
    }))
}

#[utoipa::path(post, path = "/v1/admin/providers/{name}/keys/{label}/enable", tag = "admin",
    params(("name" = ProviderName, Path), ("label" = KeyLabel, Path)),
    responses((status = 200, description = "The provider with the key enabled", body = Object),
        (status = 404, description = "`not_found`: no such provider or key", body = ErrorBody)))]
pub async fn enable_key(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    PathParams((name, label)): PathParams<(String, String)>,
) -> ApiResult<Json<genq_engine::providers::upstream::ProviderView>> {
    caller.require_admin()?;
    Ok(Json(set_key(&state, &name, &label, true).await?))
}

/// An admin enables or disables a key (API and dashboard). A label of digits alone is the
/// key's position (`2` is `{name}#2`).
pub(crate) async fn set_key(
    state: &AppState,
    name: &str,
    label: &str,
    enabled: bool,
) -> ApiResult<genq_engine::providers::upstream::ProviderView> {
    let label = if label.chars().all(|c| c.is_ascii_digit()) {
        format!("{name}#{label}")
    } else {
        label.to_string()
    };
    let view = state
        .engine
        .providers()
        .set_key(name, &label, enabled)
        .await
        .map_err(|what| {
            ApiError::new(
                Code::NotFound,
                match what {
                    "provider" => format!("no external provider named {name:?}"),
                    _ => format!("provider {name:?} has no key labeled {label:?}"),
                },
            )
        })?;
    if enabled {
        // Jobs waiting for a usable key may go now.
        state.engine.wake().work();
    }
    Ok(view)
}

/// A configured webhook endpoint and how its deliveries go.
#[derive(Serialize, ToSchema)]
pub struct WebhookView {
    /// Names the endpoint in the redeliver path.
    pub id: String,
    /// Scheme and host only: a URL may carry a token.
    pub url: String,
    /// Event types sent (all when empty).
    pub events: Vec<String>,
    /// Kinds sent (all when empty).
    pub kinds: Vec<String>,
    /// Deliveries not yet made: waiting, retrying or in flight.
    pub backlog: u64,
    /// Deliveries given up after a day of retries.
    pub dead: u64,
    pub last_success_at: Option<String>,
    pub last_error: Option<String>,
    pub last_error_at: Option<String>,
    /// Ids of dead events (newest first, at most 100), for a redelivery.
    pub dead_events: Vec<String>,
}

#[derive(Serialize, ToSchema)]
pub struct WebhooksView {
    pub webhooks: Vec<WebhookView>,
}

pub(crate) async fn webhook_view(
    state: &AppState,
    endpoint: &genq_engine::notifier::Endpoint,
) -> ApiResult<WebhookView> {
    let status = state.store.webhook_status(&endpoint.key).await?;
    Ok(WebhookView {
        id: endpoint.id().to_string(),
        url: endpoint.shown.clone(),
        events: endpoint
            .filter
            .types
            .iter()
            .map(|t| t.as_str().to_string())
            .collect(),
        kinds: endpoint.filter.kinds.clone(),
        backlog: status.backlog,
        dead: status.dead,
        last_success_at: status.last_success_at.map(ts),
        last_error: status.last_error,
        last_error_at: status.last_error_at.map(ts),
        dead_events: status.dead_events.iter().map(|id| id.to_string()).collect(),
    })
}

#[utoipa::path(get, path = "/v1/admin/webhooks", tag = "admin",
    responses((status = 200, body = WebhooksView)))]
pub async fn webhooks(
    State(state): State<Arc<AppState>>,
    caller: Caller,
) -> ApiResult<Json<WebhooksView>> {
    caller.require_admin()?;
    let mut out = Vec::new();
    for endpoint in &state.engine.shared().webhooks {
        out.push(webhook_view(&state, endpoint).await?);
    }
    Ok(Json(WebhooksView { webhooks: out }))
}

#[utoipa::path(post, path = "/v1/admin/webhooks/{id}/events/{event_id}/redeliver", tag = "admin",
    params(("id" = Key, Path, description = "The endpoint's id, from GET /v1/admin/webhooks"),
        ("event_id" = Key, Path, description = "A dead event's id")),
    responses((status = 200, description = "The endpoint, the event due again at once", body = WebhookView),
        (status = 404, description = "`not_found`: no such endpoint, or no dead delivery of that event", body = ErrorBody)))]
pub async fn redeliver(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    PathParams((id, event_id)): PathParams<(String, String)>,
) -> ApiResult<Json<WebhookView>> {
    caller.require_admin()?;
    let endpoint = redeliver_event(&state, &id, &event_id).await?;
    Ok(Json(webhook_view(&state, endpoint).await?))
}

/// Makes a dead delivery of `event_id` to the endpoint `id` due again at once (API and
/// dashboard).
pub(crate) async fn redeliver_event<'a>(
    state: &'a AppState,
    id: &str,
    event_id: &str,
) -> ApiResult<&'a genq_engine::notifier::Endpoint> {
    let endpoint = state
        .engine
        .shared()
        .webhooks
        .iter()
        .find(|e| e.id() == id)
        .ok_or_else(|| ApiError::new(Code::NotFound, format!("no webhook endpoint {id:?}")))?;
    let event: i64 = event_id
        .parse()
        .map_err(|_| ApiError::new(Code::NotFound, format!("no event {event_id:?}")))?;
    state
        .store
        .redeliver(&endpoint.key, event, state.clock.now())
        .await
        .map_err(|e| match e {
            genq_store::StoreError::NotFound => ApiError::new(
                Code::NotFound,
                format!("endpoint {id} has no dead delivery of event {event_id}"),
            ),
            other => other.into(),
        })?;
    state.engine.wake().events_published();
    Ok(endpoint)
}
