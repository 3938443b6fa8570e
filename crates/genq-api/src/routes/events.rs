//! `GET /v1/events`: the events as Server-Sent Events (SPEC §8), read from the outbox, so a
//! client that reconnects with `Last-Event-ID` misses nothing and sees nothing twice. Each
//! client has a bounded buffer: one that does not keep up is cut off (it reconnects and resumes
//! from its last id), and never slows genq down.

use super::visibility;
use crate::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{QueryParams, check_key};
use crate::openapi::Key;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use genq_core::event::EventType;
use genq_core::{Batch, Job};
use genq_store::EventFilter;
use serde::Deserialize;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use utoipa::IntoParams;

/// Events a client may be behind before it is cut off.
pub const CLIENT_BUFFER: usize = 1024;
/// Events read from the outbox at a time.
const READ_BATCH: u32 = 256;
/// How often a stream looks for events without a wake-up (events from another process on
/// SQLite, a missed hint on PostgreSQL).
const POLL: Duration = Duration::from_secs(1);

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct EventsQuery {
    /// Only this user's events.
    #[param(value_type = Option<Key>)]
    pub user_id: Option<String>,
    /// Only this batch's events (its jobs' and its `batch.completed`).
    #[param(value_type = Option<Key>)]
    pub batch_id: Option<String>,
    /// Comma-separated event types, e.g. `job.succeeded,job.failed`; all when absent.
    pub types: Option<String>,
    /// Start after this event id (as `Last-Event-ID` does); `0` replays every event still kept.
    /// Without either, the stream starts with what happens next.
    #[param(minimum = 0)]
    pub after: Option<i64>,
}

#[utoipa::path(get, path = "/v1/events", tag = "events", params(EventsQuery,
        ("Last-Event-ID" = Option<String>, Header, description = "Resume after this event (sent by EventSource on reconnect)")),
    responses(
        (status = 200, description = "`text/event-stream`: each event as `id`, `event` (its type) and `data` (`{\"id\", \"type\", \"created_at\", \"data\"}`, `data` the job or batch); `:` keep-alive comments every 15 s", content_type = "text/event-stream", body = String),
        (status = 400, description = "`invalid_request`: an unknown type, or a bad id", body = ErrorBody),
    ))]
pub async fn stream(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    headers: HeaderMap,
    QueryParams(q): QueryParams<EventsQuery>,
) -> ApiResult<axum::response::Response> {
    caller.require_app()?;
    for (field, value) in [("user_id", &q.user_id), ("batch_id", &q.batch_id)] {
        if let Some(v) = value {
            check_key(field, v)?;
        }
    }
    let mut types = Vec::new();
    for t in q
        .types
        .as_deref()
        .unwrap_or("")
        .split(',')
        .filter(|t| !t.is_empty())
    {
        types.push(t.parse::<EventType>().map_err(|e| {
            ApiError::invalid(e.to_string()).with_details(serde_json::json!({"field": "types"}))
        })?);
    }
    let resume = match headers.get("last-event-id") {
        Some(v) => Some(
            v.to_str()
                .ok()
                .and_then(|s| s.trim().parse::<i64>().ok())
                .filter(|n| *n >= 0)
                .ok_or_else(|| ApiError::invalid("Last-Event-ID must be an event id"))?,
        ),
        None => None,
    };
    if q.after.is_some_and(|n| n < 0) {
        return Err(ApiError::invalid("after must be 0 or more"));
    }
    let start = match resume.or(q.after) {
        Some(n) => n,
        None => state.store.events_end().await?,
    };
    let filter = EventFilter {
        user_id: q.user_id,
        batch_id: q.batch_id,
        types,
    };
    let render = CallerRender {
        show_detail: visibility(&state, &caller).show_detail,
        state: state.clone(),
    };
    let (tx, rx) = mpsc::channel(CLIENT_BUFFER);
    tokio::spawn(follow(state, render, filter, start, tx));
    Ok(sse(rx))
}

/// A stream of what `rx` receives, with a keep-alive comment every 15 s (API and dashboard).
pub(crate) fn sse(rx: mpsc::Receiver<Result<SseEvent, Infallible>>) -> axum::response::Response {
    use axum::response::IntoResponse;
    Sse::new(ReceiverStream::new(rx))
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response()
}

/// Send the stream's events until the client goes away or falls behind by a full buffer.
async fn follow(
    state: Arc<AppState>,
    render: CallerRender,
    filter: EventFilter,
    mut position: i64,
    tx: mpsc::Sender<Result<SseEvent, Infallible>>,
) {
    let shared = state.engine.shared().clone();
    loop {
        let woken = shared.wake.events();
        tokio::pin!(woken);
        woken.as_mut().enable();
        let events = match state
            .store
            .events_after(position, &filter, READ_BATCH)
            .await
        {
            Ok(events) => events,
            Err(e) => {
                tracing::warn!(error = %e, "reading events for a stream failed");
                Vec::new()
            }
        };
        let full = events.len() == READ_BATCH as usize;
        for event in events {
            position = event.position;
            let body =
                match genq_engine::notifier::body(state.store.as_ref(), &render, &event).await {
                    Ok(Some(body)) => body,
                    Ok(None) => continue,
                    Err(e) => {
                        tracing::warn!(error = %e, "rendering an event for a stream failed");
                        return;
                    }
                };
            let message = SseEvent::default()
                .id(event.position.to_string())
                .event(event.kind.as_str())
                .data(body.to_string());
            match tx.try_send(Ok(message)) {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Full(_)) => {
                    tracing::info!(
                        behind = CLIENT_BUFFER,
                        "an event stream's client fell behind; closing it"
                    );
                    return;
                }
                Err(mpsc::error::TrySendError::Closed(_)) => return,
            }
        }
        if full {
            continue;
        }
        tokio::select! {
            _ = &mut woken => {}
            _ = tokio::time::sleep(POLL) => {}
            _ = tx.closed() => return,
            _ = state.closing.cancelled() => return,
        }
    }
}

/// Jobs as this caller may see them (`error.detail` for admins).
struct CallerRender {
    show_detail: bool,
    state: Arc<AppState>,
}

impl genq_engine::notifier::Render for CallerRender {
    fn job(&self, job: Job) -> serde_json::Value {
        let v = crate::views::Visibility {
            show_detail: self.show_detail,
            messages: &self.state.messages,
        };
        serde_json::to_value(crate::views::JobView::new(job, v)).unwrap_or_default()
    }

    fn batch(&self, batch: Batch) -> serde_json::Value {
        serde_json::to_value(crate::views::BatchView::from(batch)).unwrap_or_default()
    }
}
