//! What the API sends: jobs, batches and stats as SPEC §6 shows them.

use crate::auth::Caller;
use chrono::{DateTime, SecondsFormat, Utc};
use genq_config::Mode;
use genq_core::{Batch, Job, Messages};
use genq_store::Stats;
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;
use utoipa::ToSchema;

/// RFC 3339 UTC with milliseconds.
pub fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

#[derive(Serialize, ToSchema)]
pub struct JobView {
    pub id: String,
    pub kind: String,
    pub user_id: String,
    pub batch_id: Option<String>,
    /// `queued`, `running`, `retrying`, `succeeded`, `failed` or `canceled`.
    pub state: String,
    pub priority: i32,
    pub attempt: u32,
    pub max_retries: u32,
    #[schema(value_type = Object)]
    pub payload: Value,
    /// The provider's answer (any JSON), once the job succeeded.
    #[schema(value_type = Option<Value>)]
    pub result: Option<Value>,
    pub error: Option<ErrorView>,
    pub cost: i64,
    pub idempotency_key: Option<String>,
    pub run_at: String,
    pub created_at: String,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    pub updated_at: String,
    /// A `task` provider's task the running attempt waits for (operators only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider_task_id: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct ErrorView {
    /// The error class: `user_error`, `temporary`, `rate_limited`, `billing`, `timeout`,
    /// `lease_expired`, `internal`, `canceled`.
    pub class: String,
    /// For the end user; from `[messages]`.
    pub message: String,
    /// For operators: shown to admins, and to everyone in development mode.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// How much of a job a caller may see.
#[derive(Clone, Copy)]
pub struct Visibility<'a> {
    pub show_detail: bool,
    pub messages: &'a Messages,
}

impl<'a> Visibility<'a> {
    pub fn for_caller(caller: &Caller, mode: Mode, messages: &'a Messages) -> Self {
        Visibility {
            show_detail: caller.is_admin() || mode == Mode::Development,
            messages,
        }
    }
}

/// What a user sees while a failed attempt waits for its retry: the class messages speak of
/// the final outcome ("your credits have been refunded"), which has not happened yet.
pub const RETRYING_MESSAGE: &str =
    "The generation hit a problem and will be retried automatically.";

impl JobView {
    pub fn new(job: Job, v: Visibility<'_>) -> JobView {
        let retrying = job.state.is_unfinished();
        JobView {
            error: job.error.map(|e| ErrorView {
                class: e.class.as_str().into(),
                message: if retrying {
                    RETRYING_MESSAGE.into()
                } else {
                    v.messages.get(e.class).into()
                },
                detail: v.show_detail.then_some(e.detail),
            }),
            id: job.id,
            kind: job.kind,
            user_id: job.user_id,
            batch_id: job.batch_id,
            state: job.state.as_str().into(),
            priority: job.priority,
            attempt: job.attempt,
            max_retries: job.max_retries,
            payload: job.payload,
            result: job.result,
            cost: job.cost,
            idempotency_key: job.idempotency_key,
            run_at: ts(job.run_at),
            created_at: ts(job.created_at),
            started_at: job.started_at.map(ts),
            finished_at: job.finished_at.map(ts),
            updated_at: ts(job.updated_at),
            provider_task_id: job
                .provider_task
                .filter(|_| v.show_detail && job.state == genq_core::JobState::Running)
                .map(|t| t.id),
        }
    }
}

/// A claimed job for an external worker: the job plus its lease.
#[derive(Serialize, ToSchema)]
pub struct ClaimedJobView {
    #[serde(flatten)]
    pub job: JobView,
    /// Pass back with heartbeat, complete and fail.
    pub lease_token: String,
    pub lease_expires_at: String,
}

#[derive(Serialize, ToSchema)]
pub struct BatchView {
    pub id: String,
    pub user_id: String,
    pub kind: String,
    pub total: u32,
    pub queued: u32,
    pub running: u32,
    pub retrying: u32,
    pub succeeded: u32,
    pub failed: u32,
    pub canceled: u32,
    pub created_at: String,
    pub finished_at: Option<String>,
}

impl From<Batch> for BatchView {
    fn from(b: Batch) -> Self {
        BatchView {
            id: b.id,
            user_id: b.user_id,
            kind: b.kind,
            total: b.total,
            queued: b.queued,
            running: b.running,
            retrying: b.retrying,
            succeeded: b.succeeded,
            failed: b.failed,
            canceled: b.canceled,
            created_at: ts(b.created_at),
            finished_at: b.finished_at.map(ts),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct StatsView {
    /// Jobs per state.
    pub jobs: BTreeMap<String, u64>,
    /// Jobs per kind and state.
    pub kinds: BTreeMap<String, BTreeMap<String, u64>>,
    pub finished_last_minute: u64,
    pub finished_last_hour: u64,
    /// How long the oldest claimable job has waited since it became due; null when none waits.
    pub oldest_claimable_age_ms: Option<i64>,
}

impl From<Stats> for StatsView {
    fn from(s: Stats) -> Self {
        let states = |m: BTreeMap<genq_core::JobState, u64>| {
            let mut out: BTreeMap<String, u64> = genq_core::JobState::ALL
                .iter()
                .map(|s| (s.as_str().to_string(), 0))
                .collect();
            for (state, n) in m {
                out.insert(state.as_str().into(), n);
            }
            out
        };
        StatsView {
            jobs: states(s.by_state),
            kinds: s.by_kind.into_iter().map(|(k, m)| (k, states(m))).collect(),
            finished_last_minute: s.finished_last_minute,
            finished_last_hour: s.finished_last_hour,
            oldest_claimable_age_ms: s.oldest_claimable_age_ms,
        }
    }
}

/// How events show jobs and batches (webhook bodies, SSE data): as the API shows them to an
/// `app` token, so `error.detail` only in development mode.
pub struct EventRender {
    pub mode: Mode,
    pub messages: Messages,
}

impl genq_engine::notifier::Render for EventRender {
    fn job(&self, job: Job) -> serde_json::Value {
        let v = Visibility {
            show_detail: self.mode == Mode::Development,
            messages: &self.messages,
        };
        serde_json::to_value(JobView::new(job, v)).unwrap_or_default()
    }

    fn batch(&self, batch: Batch) -> serde_json::Value {
        serde_json::to_value(BatchView::from(batch)).unwrap_or_default()
    }
}
