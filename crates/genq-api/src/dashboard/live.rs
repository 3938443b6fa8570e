//! `GET /live`: what lets a page update when something happens instead of polling. A
//! Server-Sent Events stream that says `change` when events past `after` appear (a batch's,
//! with `batch_id`), at most once a second; htmx's sse extension then fetches the part of the
//! page that shows it. Only a signal: what changed is read through the page itself, with the
//! session's rights.

use super::session::Session;
use crate::AppState;
use axum::extract::{Query, State};
use axum::response::Response;
use axum::response::sse::Event;
use genq_store::EventFilter;
use serde::Deserialize;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// At most one `change` a second: a page re-fetched more often would show nothing more.
const THROTTLE: Duration = Duration::from_secs(1);
/// How often the stream looks without a wake-up (events of another process).
const POLL: Duration = Duration::from_secs(1);

#[derive(Deserialize, Default)]
pub struct LiveQuery {
    batch_id: Option<String>,
    /// The newest event the page already shows (`events_end` when it was rendered), so that
    /// nothing between rendering it and connecting is missed.
    after: Option<String>,
}

pub async fn live(
    State(state): State<Arc<AppState>>,
    _session: Session,
    Query(q): Query<LiveQuery>,
) -> Result<Response, super::DashError> {
    let start = match q.after.as_deref().and_then(|a| a.parse::<i64>().ok()) {
        Some(after) if after >= 0 => after,
        _ => state.store.events_end().await?,
    };
    let filter = EventFilter {
        batch_id: q.batch_id.filter(|b| !b.is_empty()),
        ..Default::default()
    };
    let (tx, rx) = mpsc::channel(1);
    tokio::spawn(follow(state, filter, start, tx));
    Ok(crate::routes::events::sse(rx))
}

async fn follow(
    state: Arc<AppState>,
    filter: EventFilter,
    mut position: i64,
    tx: mpsc::Sender<Result<Event, Infallible>>,
) {
    let shared = state.engine.shared().clone();
    loop {
        let woken = shared.wake.events();
        tokio::pin!(woken);
        woken.as_mut().enable();
        let end = match state.store.events_end().await {
            Ok(end) => end,
            Err(e) => {
                tracing::warn!(error = %e, "dashboard: reading the events' end failed");
                position
            }
        };
        if end > position {
            // Any one event of the filter in between is enough to say so.
            let changed = match state.store.events_after(position, &filter, 1).await {
                Ok(found) => found.first().is_some_and(|e| e.position <= end),
                Err(e) => {
                    tracing::warn!(error = %e, "dashboard: reading events failed");
                    false
                }
            };
            position = end;
            if changed {
                let change = Event::default().event("change").data(end.to_string());
                if tx.send(Ok(change)).await.is_err() {
                    return;
                }
                tokio::select! {
                    _ = tokio::time::sleep(THROTTLE) => {}
                    _ = tx.closed() => return,
                }
                continue;
            }
        }
        tokio::select! {
            _ = &mut woken => {}
            _ = tokio::time::sleep(POLL) => {}
            _ = tx.closed() => return,
            _ = state.closing.cancelled() => return,
        }
    }
}
