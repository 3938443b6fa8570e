//! What every backend books the same way: the admission of new jobs, the counter changes of a
//! transition, and a job as enqueued. Backends read and write; these decide.

use crate::{NewJobs, Rejection};
use chrono::{DateTime, Utc};
use genq_core::limits::{self, Limits};
use genq_core::{Job, JobState, User};
use serde_json::Value;

/// Admission of `n` new jobs for `user`, who has `used` jobs on the request's day: every limit
/// and the balance, checked before anything is written.
pub(crate) fn admit(
    user: &User,
    limits: &Limits,
    used: i64,
    n: i64,
    cost: i64,
    as_batch: bool,
) -> Result<(), Rejection> {
    let max_items = limits.get(limits::BATCH_MAX_ITEMS_PER_REQUEST);
    if as_batch && n > max_items {
        return Err(Rejection::BatchTooLarge {
            limit: max_items,
            items: n,
        });
    }
    let max_queued = limits.get(limits::BATCH_MAX_QUEUED_PER_USER);
    if user.unfinished as i64 + n > max_queued {
        return Err(Rejection::QueueLimit {
            limit: max_queued,
            current: user.unfinished as i64,
        });
    }
    let daily = limits.daily_limit(&user.plan);
    if used + n > daily {
        return Err(Rejection::DailyLimit { limit: daily, used });
    }
    let needed = cost * n;
    if needed > user.credits {
        return Err(Rejection::InsufficientCredits {
            needed,
            balance: user.credits,
        });
    }
    Ok(())
}

/// How a transition moves its user's counters: `(unfinished, running)`.
pub(crate) fn counter_deltas(from: JobState, to: JobState) -> (i64, i64) {
    let delta = |was: bool, is: bool| match (was, is) {
        (true, false) => -1,
        (false, true) => 1,
        _ => 0,
    };
    (
        delta(from.is_unfinished(), to.is_unfinished()),
        delta(from == JobState::Running, to == JobState::Running),
    )
}

/// Whether a transition into `to` gives the job's day back and refunds its cost.
pub(crate) fn gives_back(to: JobState) -> bool {
    matches!(to, JobState::Failed | JobState::Canceled)
}

/// A job as an enqueue inserts it: built rather than read back, as every value is known.
pub(crate) fn new_job(
    req: &NewJobs,
    id: String,
    payload: Value,
    batch_id: Option<String>,
    idempotency_key: Option<String>,
    run_at: DateTime<Utc>,
) -> Job {
    Job {
        id,
        kind: req.kind.clone(),
        user_id: req.user_id.clone(),
        batch_id,
        state: JobState::Queued,
        priority: req.priority,
        attempt: 0,
        max_retries: req.max_retries,
        retries_used: 0,
        rate_limit_waits: 0,
        payload,
        result: None,
        error: None,
        cost: req.cost,
        idempotency_key,
        run_at,
        created_at: req.now,
        started_at: None,
        finished_at: None,
        updated_at: req.now,
        lease: None,
        day: req.day.clone(),
        series: 1,
        provider_task: None,
    }
}

/// A claimable job as a claim's candidate query shows it.
pub(crate) struct Candidate {
    pub id: String,
    pub priority: i32,
    pub tag: i64,
    pub user_id: String,
}

/// The jobs a claim takes from the best candidates of every kind (SPEC §4): highest priority,
/// then the fair-queue tag, then acceptance order; at most `max`; with `cap > 0`, no user
/// beyond `cap` running jobs, counting those in `running` (users absent have none).
pub(crate) fn choose(
    mut candidates: Vec<Candidate>,
    max: usize,
    cap: i64,
    mut running: std::collections::HashMap<String, i64>,
) -> Vec<Candidate> {
    candidates.sort_by(|a, b| {
        b.priority
            .cmp(&a.priority)
            .then(a.tag.cmp(&b.tag))
            .then(a.id.cmp(&b.id))
    });
    if cap <= 0 {
        candidates.truncate(max);
        return candidates;
    }
    let mut chosen = Vec::with_capacity(max);
    for c in candidates {
        if chosen.len() == max {
            break;
        }
        let n = running.entry(c.user_id.clone()).or_insert(0);
        if *n < cap {
            *n += 1;
            chosen.push(c);
        }
    }
    chosen
}
