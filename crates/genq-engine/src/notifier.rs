//! The notifier: tells the world what happened (SPEC §8).
//!
//! - `watch_events`: notices committed events (of any process: events are readable as they
//!   commit, on both backends) and wakes this process's readers: SSE streams and the
//!   deliveries below.
//! - `deliver`, one per `[[webhooks]]` endpoint: copies its events into its deliveries, then
//!   POSTs each, signed (`Genq-Signature`), at least once, in order per job, retried with
//!   backoff for a day, then dead. Each endpoint has its own loop and its own HTTP client with a
//!   timeout and no redirects, so a slow or failing endpoint delays no other endpoint and no
//!   job. Deliveries are leased like jobs: a process that dies mid-delivery loses nothing.

use crate::Shared;
use chrono::{DateTime, Utc};
use genq_core::event::Event;
use genq_core::{Batch, Job};
use genq_store::{Delivery, DeliveryFilter, DeliveryOutcome, StoreError};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// How the API shows a job or a batch: an event's `data`. Given by the API crate, which owns
/// that shape (`genq_api::views`).
pub trait Render: Send + Sync {
    fn job(&self, job: Job) -> Value;
    fn batch(&self, batch: Batch) -> Value;
}

/// How often events are looked for without a wake-up.
const PUBLISH_POLL: Duration = Duration::from_millis(50);
/// How often an endpoint looks for due deliveries without a wake-up.
const DELIVERY_POLL: Duration = Duration::from_secs(1);
/// Deliveries in flight per endpoint and process.
const IN_FLIGHT: usize = 8;
/// Events copied into an endpoint's deliveries per transaction.
const FAN_OUT_BATCH: u32 = 1000;
/// How long an event is tried before it is given up (dead).
pub const GIVE_UP_AFTER: Duration = Duration::from_secs(24 * 3600);
/// Waits after each failed attempt (±10%); the last repeats until a day has passed.
const BACKOFF: [Duration; 8] = [
    Duration::from_secs(5),
    Duration::from_secs(30),
    Duration::from_secs(2 * 60),
    Duration::from_secs(10 * 60),
    Duration::from_secs(30 * 60),
    Duration::from_secs(3600),
    Duration::from_secs(2 * 3600),
    Duration::from_secs(4 * 3600),
];
/// Most bytes of an endpoint's answer kept as the delivery's error.
const ERROR_BYTES: usize = 300;

/// One configured endpoint.
pub struct Endpoint {
    /// What the database knows it by: a digest of its URL (which may hold a token).
    pub key: String,
    /// The URL as logs and the admin API show it: scheme and host only.
    pub shown: String,
    url: String,
    secret: Vec<u8>,
    pub filter: DeliveryFilter,
    timeout: Duration,
    client: reqwest::Client,
}

impl Endpoint {
    /// The endpoint's id in the admin API: its key without the prefix.
    pub fn id(&self) -> &str {
        self.key.trim_start_matches("webhook:")
    }

    pub fn from_config(hook: &genq_config::Webhook) -> Result<Endpoint, String> {
        use sha2::Digest;
        let digest = sha2::Sha256::digest(hook.url.as_bytes());
        let key: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
        let shown = match reqwest::Url::parse(&hook.url) {
            Ok(u) => format!("{}://{}/…", u.scheme(), u.host_str().unwrap_or("")),
            Err(e) => return Err(format!("url: {e}")),
        };
        let timeout = hook.timeout.unwrap_or(Duration::from_secs(10));
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("genq/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        Ok(Endpoint {
            key: format!("webhook:{key}"),
            shown,
            url: hook.url.clone(),
            secret: hook.secret.clone().into_bytes(),
            filter: DeliveryFilter {
                types: hook.events.iter().filter_map(|t| t.parse().ok()).collect(),
                kinds: hook.kinds.clone(),
            },
            timeout,
            client,
        })
    }
}

/// Wake the readers when new events are readable, until `stop`.
pub(crate) async fn watch_events(shared: Arc<Shared>, stop: CancellationToken) {
    loop {
        match shared.store.new_events().await {
            Ok(0) => {}
            Ok(_) => shared.wake.events_published(),
            Err(e) => tracing::warn!(error = %e, "reading the newest event failed; retrying"),
        }
        tokio::select! {
            _ = tokio::time::sleep(PUBLISH_POLL) => {}
            _ = stop.cancelled() => return,
        }
    }
}

/// An event as webhooks and SSE send it: `{"id", "type", "created_at", "data"}`, `data` being
/// the job (or batch) as the API shows it now, with the state and attempt the event reports.
/// `None` if the job or batch is gone (pruned).
pub async fn body(
    store: &dyn genq_store::Store,
    render: &dyn Render,
    event: &Event,
) -> Result<Option<Value>, StoreError> {
    let data = match (&event.job_id, &event.batch_id) {
        (Some(job_id), _) => match store.job(job_id).await {
            Ok(mut job) => {
                if let Some(state) = event.kind.state() {
                    job.state = state;
                }
                job.attempt = event.attempt;
                render.job(job)
            }
            Err(StoreError::NotFound) => return Ok(None),
            Err(e) => return Err(e),
        },
        (None, Some(batch_id)) => match store.batch(batch_id).await {
            Ok(batch) => render.batch(batch),
            Err(StoreError::NotFound) => return Ok(None),
            Err(e) => return Err(e),
        },
        (None, None) => return Ok(None),
    };
    Ok(Some(json!({
        "id": event.id.to_string(),
        "type": event.kind.as_str(),
        "created_at": event.created_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "data": data,
    })))
}

/// Deliver `endpoint`'s events until `stop`; deliveries in flight then finish (each bounded by
/// the endpoint's timeout).
pub(crate) async fn deliver(shared: Arc<Shared>, endpoint: Arc<Endpoint>, stop: CancellationToken) {
    let mut in_flight = JoinSet::new();
    loop {
        let woken = shared.wake.events();
        tokio::pin!(woken);
        woken.as_mut().enable();
        let now = shared.clock.now();
        if let Err(e) = copy_all(&shared, &endpoint, now).await {
            tracing::warn!(endpoint = %endpoint.shown, error = %e, "copying events for a webhook failed");
        }
        let room = IN_FLIGHT - in_flight.len();
        if room > 0 {
            // Long enough for the request and its record; a process that dies mid-delivery
            // holds it no longer than this.
            let lease_until = now
                + chrono::Duration::from_std(endpoint.timeout + Duration::from_secs(5))
                    .unwrap_or_default();
            match shared
                .store
                .claim_deliveries(&endpoint.key, room as u32, now, lease_until)
                .await
            {
                Ok(taken) => {
                    for d in taken {
                        let (shared, endpoint) = (shared.clone(), endpoint.clone());
                        in_flight.spawn(async move { attempt(&shared, &endpoint, d).await });
                    }
                }
                Err(e) => {
                    tracing::warn!(endpoint = %endpoint.shown, error = %e, "claiming webhook deliveries failed")
                }
            }
        }
        tokio::select! {
            _ = &mut woken => {}
            Some(_) = in_flight.join_next(), if !in_flight.is_empty() => {}
            _ = tokio::time::sleep(DELIVERY_POLL) => {}
            _ = stop.cancelled() => break,
        }
    }
    while in_flight.join_next().await.is_some() {}
}

async fn copy_all(
    shared: &Shared,
    endpoint: &Endpoint,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    loop {
        let copied = shared
            .store
            .fan_out(&endpoint.key, &endpoint.filter, FAN_OUT_BATCH, now)
            .await?;
        if copied < FAN_OUT_BATCH as u64 {
            return Ok(());
        }
    }
}

/// One attempt at one delivery, recorded.
async fn attempt(shared: &Shared, endpoint: &Endpoint, d: Delivery) {
    let Some(render) = shared.render.get() else {
        tracing::warn!("no event renderer is set; webhook deliveries wait");
        return;
    };
    let outcome = match body(shared.store.as_ref(), render.as_ref(), &d.event).await {
        Ok(Some(body)) => post(endpoint, &body, shared.clock.now()).await,
        // The job was pruned before its event went out: nothing left to tell.
        Ok(None) => Ok(200),
        Err(e) => Err((None, format!("cannot read the event's job: {e}"))),
    };
    let now = shared.clock.now();
    let outcome = match outcome {
        Ok(status) => DeliveryOutcome::Delivered { status },
        Err((status, error)) => {
            tracing::info!(endpoint = %endpoint.shown, event = d.event.id, attempt = d.attempt, %error, "webhook delivery failed");
            DeliveryOutcome::Failed {
                status,
                error,
                retry_at: retry_at(d.attempt, d.first_due_at, now),
            }
        }
    };
    let result = match &outcome {
        DeliveryOutcome::Delivered { .. } => "delivered",
        DeliveryOutcome::Failed { retry_at: None, .. } => "dead",
        DeliveryOutcome::Failed { .. } => "failed",
    };
    match shared.store.finish_delivery(&d, outcome, now).await {
        Ok(true) => shared.metrics.delivery(endpoint.id(), result),
        // Fenced out: the lease ran out and another attempt owns the delivery now.
        Ok(false) => {}
        // Its lease runs out and it is delivered again: at least once.
        Err(e) => {
            tracing::warn!(endpoint = %endpoint.shown, error = %e, "recording a webhook delivery failed")
        }
    }
}

/// When to try again after failed attempt `attempt`, or `None` to give up: a day after the
/// event was first due.
pub fn retry_at(
    attempt: u32,
    first_due_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    use rand::Rng;
    let base = BACKOFF[(attempt.max(1) as usize - 1).min(BACKOFF.len() - 1)];
    let jitter = rand::rng().random_range(0.9..1.1);
    let at = now + chrono::Duration::from_std(base.mul_f64(jitter)).ok()?;
    let give_up = first_due_at + chrono::Duration::from_std(GIVE_UP_AFTER).ok()?;
    (at <= give_up).then_some(at)
}

/// POST one body, signed; the status of a 2xx answer, or the status (if any) and why not.
async fn post(
    endpoint: &Endpoint,
    body: &Value,
    now: DateTime<Utc>,
) -> Result<u16, (Option<u16>, String)> {
    let bytes = serde_json::to_vec(body).map_err(|e| (None, e.to_string()))?;
    let signature = genq_core::signature::sign(&endpoint.secret, now.timestamp(), &bytes);
    let response = endpoint
        .client
        .post(&endpoint.url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header(genq_core::signature::HEADER, signature)
        .body(bytes)
        .send()
        .await
        .map_err(|e| {
            let what = if e.is_timeout() {
                format!("no answer within {:?}", endpoint.timeout)
            } else if e.is_connect() {
                "cannot connect".to_string()
            } else {
                "the request failed".to_string()
            };
            (None, what)
        })?;
    let status = response.status().as_u16();
    if response.status().is_success() {
        return Ok(status);
    }
    if response.status().is_redirection() {
        return Err((
            Some(status),
            format!("HTTP {status}: redirects are not followed"),
        ));
    }
    let mut text = Vec::new();
    let mut response = response;
    while text.len() < ERROR_BYTES {
        match response.chunk().await {
            Ok(Some(chunk)) => text.extend_from_slice(&chunk),
            _ => break,
        }
    }
    text.truncate(ERROR_BYTES);
    Err((
        Some(status),
        format!("HTTP {status}: {}", String::from_utf8_lossy(&text).trim()),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn retries_back_off_and_stop_after_a_day() {
        let first = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        let next = retry_at(1, first, first).unwrap();
        let wait = (next - first).num_milliseconds();
        assert!((4_500..=5_500).contains(&wait), "{wait}");
        let later = retry_at(20, first, first + chrono::Duration::hours(3)).unwrap();
        assert!(later > first + chrono::Duration::hours(6));
        assert!(retry_at(20, first, first + chrono::Duration::hours(21)).is_none());
    }
}
