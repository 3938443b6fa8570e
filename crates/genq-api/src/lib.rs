//! genq's HTTP API (SPEC §6), on axum: jobs, batches, external workers, stats, health, and the
//! OpenAPI document generated from the same code (utoipa).

pub mod auth;
pub mod cursor;
pub mod dashboard;
pub mod error;
pub mod extract;
pub mod openapi;
pub mod routes;
pub mod server;
pub mod views;

use auth::Tokens;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post, put};
use error::{ApiError, Code};
use genq_config::Config;
use genq_core::{Clock, Messages};
use genq_engine::Engine;
use genq_store::Store;
use std::sync::Arc;

pub struct AppState {
    pub store: Arc<dyn Store>,
    pub engine: Engine,
    pub config: Arc<Config>,
    pub tokens: Tokens,
    pub scrape_token: auth::ScrapeToken,
    pub messages: Messages,
    pub clock: Arc<dyn Clock>,
    /// `GET /openapi.json`, made once for this config.
    pub openapi: Arc<serde_json::Value>,
    /// Fires when the server shuts down: event streams end.
    pub closing: tokio_util::sync::CancellationToken,
}

impl AppState {
    pub fn new(engine: Engine, config: Arc<Config>, clock: Arc<dyn Clock>) -> AppState {
        engine.set_render(Arc::new(views::EventRender {
            mode: config.mode,
            messages: config.messages(),
        }));
        let a = &config.auth;
        AppState {
            store: engine.store().clone(),
            tokens: Tokens::new(a),
            scrape_token: auth::ScrapeToken::new(config.metrics.token.as_deref()),
            messages: config.messages(),
            openapi: Arc::new(openapi::document(&config)),
            closing: Default::default(),
            engine,
            config,
            clock,
        }
    }
}

/// The probes and the metrics alone (`[metrics] listen`).
pub fn metrics_router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/metrics", get(routes::system::metrics))
        .route("/healthz", get(routes::system::healthz))
        .route("/readyz", get(routes::system::readyz))
        .fallback(|| async { ApiError::new(Code::NotFound, "no such endpoint") })
        .with_state(state)
}

pub fn router(state: Arc<AppState>) -> Router {
    let body_limit = state.config.api.max_body_bytes;
    Router::new()
        .route(
            "/v1/jobs",
            post(routes::jobs::enqueue).get(routes::jobs::list),
        )
        .route("/v1/jobs/{id}", get(routes::jobs::get))
        .route("/v1/jobs/{id}/cancel", post(routes::jobs::cancel))
        .route("/v1/jobs/{id}/retry", post(routes::jobs::retry))
        .route("/v1/jobs/{id}/heartbeat", post(routes::workers::heartbeat))
        .route("/v1/jobs/{id}/complete", post(routes::workers::complete))
        .route("/v1/jobs/{id}/fail", post(routes::workers::fail))
        .route("/v1/batches", post(routes::batches::submit))
        .route("/v1/batches/{id}", get(routes::batches::get))
        .route("/v1/workers/claim", post(routes::workers::claim))
        .route(
            "/v1/users/{id}",
            get(routes::users::get).put(routes::users::put),
        )
        .route("/v1/users/{id}/credits", post(routes::users::credits))
        .route("/v1/users/{id}/ledger", get(routes::users::ledger))
        .route("/v1/admin/limits", get(routes::admin::limits))
        .route("/v1/admin/limits/{key}", put(routes::admin::set_limit))
        .route("/v1/admin/providers", get(routes::admin::providers))
        .route(
            "/v1/admin/providers/{name}/keys/{label}/enable",
            post(routes::admin::enable_key),
        )
        .route("/v1/admin/webhooks", get(routes::admin::webhooks))
        .route(
            "/v1/admin/webhooks/{id}/events/{event_id}/redeliver",
            post(routes::admin::redeliver),
        )
        .route("/v1/events", get(routes::events::stream))
        .route("/v1/schedules", get(routes::schedules::list))
        .route("/v1/schedules/{name}", put(routes::schedules::set))
        .route("/v1/stats", get(routes::system::stats))
        .route("/healthz", get(routes::system::healthz))
        .route("/readyz", get(routes::system::readyz))
        .route("/metrics", get(routes::system::metrics))
        .route("/openapi.json", get(routes::system::openapi))
        .merge(dashboard::routes())
        .fallback(|| async { ApiError::new(Code::NotFound, "no such endpoint") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(Code::MethodNotAllowed, "this method is not allowed here")
        })
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(axum::middleware::from_fn_with_state(
            (body_limit, state.config.api.body_timeout),
            refuse_oversized,
        ))
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(
            |_: Box<dyn std::any::Any + Send>| {
                use axum::response::IntoResponse;
                ApiError::new(Code::Internal, "internal error").into_response()
            },
        ))
        .with_state(state)
}

/// A body whose declared `Content-Length` is over `api.max_body_bytes` gets 413 without
/// being handled (up to four times the limit it is read and dropped first, so the client reads the
/// answer); a URI over [`server::MAX_URI_BYTES`] gets 414.
async fn refuse_oversized(
    axum::extract::State((limit, body_timeout)): axum::extract::State<(usize, std::time::Duration)>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let uri_len = request
        .uri()
        .path_and_query()
        .map_or(0, |p| p.as_str().len());
    if uri_len > server::MAX_URI_BYTES {
        return ApiError::new(
            Code::UriTooLong,
            format!(
                "the request URI is {uri_len} bytes; at most {} are read",
                server::MAX_URI_BYTES
            ),
        )
        .into_response();
    }
    let declared = request
        .headers()
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    match declared {
        Some(n) if n > limit as u64 => {
            // A client that asked `Expect: 100-continue` has not sent the body: reading it
            // would only ask for it.
            let waits = request
                .headers()
                .get(axum::http::header::EXPECT)
                .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
            if !waits && n <= (limit as u64).saturating_mul(4).max(DRAINED_MIN) {
                drain(request.into_body(), body_timeout).await;
            }
            extract::too_large().into_response()
        }
        _ => next.run(request).await,
    }
}

/// A refused body of up to four times the limit (at least this) is read to its end before the
/// 413 is sent, as nginx's lingering close does: a client still writing a body the server
/// stopped reading gets a broken pipe, not the answer. Larger ones are answered at once and
/// the connection closed.
const DRAINED_MIN: u64 = 1 << 20;

/// Read a refused body to its end (within `api.body_timeout`, as an accepted one), keeping none
/// of it.
async fn drain(body: axum::body::Body, timeout: std::time::Duration) {
    use tokio_stream::StreamExt;
    let mut data = body.into_data_stream();
    let _ = tokio::time::timeout(timeout, async {
        while let Some(Ok(_)) = data.next().await {}
    })
    .await;
}
