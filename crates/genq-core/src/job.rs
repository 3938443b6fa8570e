//! A job and a batch as genq stores them.

use crate::error_class::ErrorClass;
use crate::machine::AttemptCounters;
use crate::state::JobState;
use chrono::{DateTime, Utc};
use serde_json::Value;

#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    pub id: String,
    pub kind: String,
    pub user_id: String,
    pub batch_id: Option<String>,
    pub state: JobState,
    pub priority: i32,
    /// Attempts started so far, over the job's whole life (sent as `X-Genq-Attempt`).
    pub attempt: u32,
    pub max_retries: u32,
    pub retries_used: u32,
    pub rate_limit_waits: u32,
    pub payload: Value,
    pub result: Option<Value>,
    pub error: Option<JobError>,
    pub cost: i64,
    pub idempotency_key: Option<String>,
    pub run_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub updated_at: DateTime<Utc>,
    /// Present while `running`.
    pub lease: Option<Lease>,
    /// The quota day the job counts toward (the day it was accepted, in `quota.timezone`).
    pub day: String,
    /// 1, then one more per admin retry: each series is debited once and refunded at most once.
    pub series: u32,
    /// The provider task the current attempt created and is polling (`task` providers).
    pub provider_task: Option<ProviderTask>,
    /// When the current (or last) attempt started.
    pub attempt_started_at: Option<DateTime<Utc>>,
    /// The attempts that ended, oldest first; the newest [`HISTORY_KEPT`] of them.
    pub history: Vec<AttemptRecord>,
}

/// How many ended attempts a job keeps in its history.
pub const HISTORY_KEPT: usize = 50;

/// One ended attempt: when it ran, and what it led to.
#[derive(Debug, Clone, PartialEq)]
pub struct AttemptRecord {
    pub attempt: u32,
    pub started_at: Option<DateTime<Utc>>,
    pub ended_at: DateTime<Utc>,
    /// The state the attempt left the job in: `succeeded`, `failed` or `canceled`; `retrying`
    /// (or `queued`, when handed back) for one that runs again.
    pub outcome: JobState,
    /// Why it did not succeed, if it failed.
    pub class: Option<ErrorClass>,
    pub detail: Option<String>,
}

impl Job {
    pub fn counters(&self) -> AttemptCounters {
        AttemptCounters {
            max_retries: self.max_retries,
            retries_used: self.retries_used,
            rate_limit_waits: self.rate_limit_waits,
        }
    }
}

/// The last failure of a job. The user-facing message is not stored: it is rendered from
/// `[messages]` when the job is shown, so a changed message applies to old jobs too.
#[derive(Debug, Clone, PartialEq)]
pub struct JobError {
    pub class: ErrorClass,
    pub detail: String,
}

/// A task a `task` provider created for the running attempt: polled until it ends, and never
/// created again for that attempt, whatever restarts in between.
#[derive(Debug, Clone, PartialEq)]
pub struct ProviderTask {
    pub id: String,
    pub created_at: DateTime<Utc>,
}

/// A running attempt's claim on a job.
#[derive(Debug, Clone, PartialEq)]
pub struct Lease {
    pub token: String,
    pub node_id: String,
    pub worker_id: String,
    pub expires_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    pub id: String,
    pub user_id: String,
    pub kind: String,
    pub idempotency_key: Option<String>,
    pub total: u32,
    pub queued: u32,
    pub running: u32,
    pub retrying: u32,
    pub succeeded: u32,
    pub failed: u32,
    pub canceled: u32,
    pub created_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}
