//! What every backend books the same way: the admission of new jobs, the counter changes of a
//! transition, and a job as enqueued. Backends read and write; these decide.

use crate::{NewJobs, Rejection, Result, Stats, StoreError};
use chrono::{DateTime, Utc};
use genq_core::limits::{self, Limits};
use genq_core::{Job, JobState, User};
use serde_json::Value;
use std::collections::BTreeMap;

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

/// A batch of `n` jobs as enqueued: every job queued.
pub(crate) fn new_batch(req: &NewJobs, id: String, n: u32) -> genq_core::Batch {
    genq_core::Batch {
        id,
        user_id: req.user_id.clone(),
        kind: req.kind.clone(),
        idempotency_key: req.idempotency_key.clone(),
        total: n,
        queued: n,
        running: 0,
        retrying: 0,
        succeeded: 0,
        failed: 0,
        canceled: 0,
        created_at: req.now,
        finished_at: None,
    }
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
        attempt_started_at: None,
        history: Vec::new(),
    }
}

/// The attempt that succeeded, which the history does not store (the finish statements keep
/// the common path cheap): the job's own attempt and times tell it.
pub(crate) fn complete_history(job: &mut Job) {
    if let (JobState::Succeeded, Some(ended_at)) = (job.state, job.finished_at) {
        job.history.push(genq_core::job::AttemptRecord {
            attempt: job.attempt,
            started_at: job.attempt_started_at,
            ended_at,
            outcome: JobState::Succeeded,
            class: None,
            detail: None,
        });
    }
}

/// A job's attempt history as both backends keep it: a JSON array of objects with times in
/// microseconds (`migrations/*/…_attempt_history.sql`).
pub(crate) fn history(text: Option<&str>) -> Result<Vec<genq_core::job::AttemptRecord>, String> {
    #[derive(serde::Deserialize)]
    struct Stored {
        attempt: u32,
        started_at: Option<i64>,
        ended_at: i64,
        outcome: String,
        class: Option<String>,
        detail: Option<String>,
    }
    let Some(text) = text else {
        return Ok(Vec::new());
    };
    let stored: Vec<Stored> =
        serde_json::from_str(text).map_err(|e| format!("jobs.history: {e}"))?;
    let time = |t: i64| DateTime::<Utc>::from_timestamp_micros(t).unwrap_or_default();
    stored
        .into_iter()
        .map(|a| {
            Ok(genq_core::job::AttemptRecord {
                attempt: a.attempt,
                started_at: a.started_at.map(time),
                ended_at: time(a.ended_at),
                outcome: a
                    .outcome
                    .parse()
                    .map_err(|e| format!("jobs.history: {e}"))?,
                class: a
                    .class
                    .map(|c| c.parse())
                    .transpose()
                    .map_err(|e| format!("jobs.history: {e}"))?,
                detail: a.detail,
            })
        })
        .collect()
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

/// What a transition out of `running` writes, in the schema's terms (times in microseconds).
pub(crate) struct Written<'a> {
    pub state: &'static str,
    pub result: Option<&'a Value>,
    pub error: Option<&'a genq_core::JobError>,
    pub run_at: Option<i64>,
    /// A retry due at once: it goes to the head of the fair queue (it has waited its turn).
    pub due_now: bool,
    pub uses_retry: bool,
    pub rate_limit_wait: bool,
    pub finished_at: Option<i64>,
}

/// The columns `outcome` sets at `now`; `None` for `Parked`, which stays `running`.
pub(crate) fn written(outcome: &crate::Outcome, now: i64) -> Option<Written<'_>> {
    use crate::Outcome;
    let mut w = Written {
        state: outcome.state().as_str(),
        result: None,
        error: None,
        run_at: None,
        due_now: false,
        uses_retry: false,
        rate_limit_wait: false,
        finished_at: None,
    };
    match outcome {
        Outcome::Parked { .. } => return None,
        Outcome::Succeeded { result } => {
            w.result = Some(result);
            w.finished_at = Some(now);
        }
        Outcome::Retry {
            run_at,
            error,
            uses_retry,
            rate_limit_wait,
        } => {
            let at = run_at.timestamp_micros().max(now);
            w.run_at = Some(at);
            w.due_now = at <= now;
            w.error = error.as_ref();
            (w.uses_retry, w.rate_limit_wait) = (*uses_retry, *rate_limit_wait);
        }
        Outcome::Failed { error } | Outcome::Canceled { error } => {
            w.error = Some(error);
            w.finished_at = Some(now);
        }
    }
    Some(w)
}

/// The columns a delivery attempt's outcome writes: state, status, error, when due again.
pub(crate) fn delivery_written(
    outcome: &crate::DeliveryOutcome,
) -> (
    &'static str,
    Option<i64>,
    Option<&str>,
    Option<DateTime<Utc>>,
) {
    use crate::DeliveryOutcome::*;
    match outcome {
        Delivered { status } => ("delivered", Some(*status as i64), None, None),
        Failed {
            status,
            error,
            retry_at: Some(at),
        } => ("pending", status.map(i64::from), Some(error), Some(*at)),
        Failed {
            status,
            error,
            retry_at: None,
        } => ("dead", status.map(i64::from), Some(error), None),
    }
}

/// A job's bookkeeping facts, as its transitions need them.
pub(crate) fn owner(job: &Job) -> crate::Owner {
    crate::Owner {
        user_id: job.user_id.clone(),
        cost: job.cost,
        day: job.day.clone(),
        series: job.series,
        kind: job.kind.clone(),
        batch_id: job.batch_id.clone(),
        attempt: job.attempt,
    }
}

/// Which candidates of a listing make its page: `candidates` are ids with the bytes of their
/// payload and result, newest first, one more than `limit` when there are more. The page stops
/// at `limit` jobs, or before the job that would take it past `max_bytes` (but holds at least
/// one). With it, the id the next page starts before, if there are more.
pub(crate) fn page(
    candidates: &[(String, i64)],
    limit: u32,
    max_bytes: usize,
) -> (Vec<String>, Option<String>) {
    let mut ids: Vec<String> = Vec::new();
    let mut bytes: usize = 0;
    for (id, size) in candidates {
        let size = usize::try_from(*size).unwrap_or(0);
        let full = ids.len() >= limit as usize
            || (!ids.is_empty() && bytes.saturating_add(size) > max_bytes);
        if full {
            let next = ids.last().cloned();
            return (ids, next);
        }
        bytes = bytes.saturating_add(size);
        ids.push(id.clone());
    }
    (ids, None)
}

/// Jobs that reached `state` within one second (`second`, of the epoch), failed ones with
/// their error `class`: what both backends read to fill the finished part of [`crate::Stats`].
pub(crate) struct FinishedSecond {
    pub second: i64,
    pub state: JobState,
    pub class: String,
    pub n: u64,
}

/// The first second a stats read at `now` needs: an hour before it, and the start of the
/// oldest minute its chart shows.
pub(crate) fn finished_since(now: DateTime<Utc>) -> i64 {
    let now = now.timestamp();
    (now - 3600).min((now.div_euclid(60) - 59) * 60)
}

/// Jobs by state and kind from the tallies (`tally`, kind, n) and the running and retrying
/// jobs counted from the index (state, kind, n): waiting (queued or retrying) jobs are tallied
/// together, so the queued ones are the waiting less the retrying.
pub(crate) fn count_tallies(stats: &mut Stats, rows: Vec<(String, String, i64)>) -> Result<()> {
    let mut counts: BTreeMap<(JobState, String), i64> = BTreeMap::new();
    for (tally, kind, n) in rows {
        let state = if tally == crate::outbox::WAITING {
            JobState::Queued
        } else {
            tally
                .parse()
                .map_err(|e: genq_core::state::UnknownState| StoreError::Internal(e.to_string()))?
        };
        *counts.entry((state, kind.clone())).or_default() += n;
        if state == JobState::Retrying {
            *counts.entry((JobState::Queued, kind)).or_default() -= n;
        }
    }
    for ((state, kind), n) in counts {
        let n = n.max(0) as u64;
        if n == 0 {
            continue;
        }
        *stats.by_state.entry(state).or_default() += n;
        *stats
            .by_kind
            .entry(kind)
            .or_default()
            .entry(state)
            .or_default() += n;
    }
    Ok(())
}

/// Fills the finished counts of `stats` at `now` from tallies per second.
pub(crate) fn tally_finished(
    stats: &mut crate::Stats,
    seconds: impl IntoIterator<Item = FinishedSecond>,
    now: DateTime<Utc>,
) {
    let now_s = now.timestamp();
    let first_minute = now_s.div_euclid(60) - 59;
    stats.finished_per_minute = (0..60)
        .map(|i| crate::FinishedMinute {
            start: DateTime::from_timestamp((first_minute + i) * 60, 0).unwrap_or_default(),
            ..Default::default()
        })
        .collect();
    for s in seconds {
        if s.second > now_s {
            continue;
        }
        if s.second >= now_s - 60 {
            stats.finished_last_minute += s.n;
        }
        if s.second >= now_s - 3600 {
            stats.finished_last_hour += s.n;
            if s.state == JobState::Failed {
                *stats
                    .failed_last_hour_by_class
                    .entry(s.class.clone())
                    .or_default() += s.n;
            }
        }
        let minute = s.second.div_euclid(60) - first_minute;
        if let Some(m) = usize::try_from(minute)
            .ok()
            .and_then(|i| stats.finished_per_minute.get_mut(i))
        {
            match s.state {
                JobState::Succeeded => m.succeeded += s.n,
                JobState::Failed => m.failed += s.n,
                JobState::Canceled => m.canceled += s.n,
                _ => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{FinishedSecond, finished_since, page, tally_finished};
    use chrono::{DateTime, Utc};
    use genq_core::JobState;

    #[test]
    fn finished_tallies_fall_into_their_minute_and_windows() {
        // 12:30:15 UTC; the chart's minutes run from 11:31 to 12:30.
        let now = DateTime::parse_from_rfc3339("2026-03-01T12:30:15Z")
            .unwrap()
            .with_timezone(&Utc);
        let t = now.timestamp();
        let at = |ago: i64, state, class: &str, n| FinishedSecond {
            second: t - ago,
            state,
            class: class.into(),
            n,
        };
        let mut stats = crate::Stats::default();
        tally_finished(
            &mut stats,
            [
                at(0, JobState::Succeeded, "", 2),
                at(60, JobState::Failed, "temporary", 1),
                at(61, JobState::Failed, "user_error", 1),
                at(3600, JobState::Canceled, "", 1),
                at(3601, JobState::Succeeded, "", 5),
                at(-5, JobState::Succeeded, "", 7),
            ],
            now,
        );
        assert!(finished_since(now) <= t - 3601 + 1);
        assert_eq!(stats.finished_last_minute, 3);
        assert_eq!(stats.finished_last_hour, 5);
        assert_eq!(stats.failed_last_hour_by_class.len(), 2);
        let m = &stats.finished_per_minute;
        assert_eq!(m.len(), 60);
        assert_eq!(m[0].start.to_rfc3339(), "2026-03-01T11:31:00+00:00");
        assert_eq!((m[59].succeeded, m[58].failed), (2, 2));
        let charted: u64 = m.iter().map(|m| m.succeeded + m.failed + m.canceled).sum();
        assert_eq!(
            charted, 4,
            "11:30:14 and 11:30:15 are before the chart's first minute"
        );
    }

    fn c(sizes: &[i64]) -> Vec<(String, i64)> {
        sizes
            .iter()
            .enumerate()
            .map(|(i, s)| (format!("j{}", 9 - i), *s))
            .collect()
    }

    #[test]
    fn pages_stop_at_the_limit_or_the_byte_budget() {
        assert_eq!(
            page(&c(&[1, 1, 1]), 2, 100),
            (vec!["j9".into(), "j8".into()], Some("j8".into()))
        );
        assert_eq!(
            page(&c(&[1, 1]), 2, 100),
            (vec!["j9".into(), "j8".into()], None)
        );
        // The budget: the third job would take the page to 150 bytes.
        assert_eq!(
            page(&c(&[50, 50, 50, 1]), 10, 120),
            (vec!["j9".into(), "j8".into()], Some("j8".into()))
        );
        // One job larger than the budget still makes a page of its own.
        assert_eq!(
            page(&c(&[500, 1]), 10, 100),
            (vec!["j9".into()], Some("j9".into()))
        );
        assert_eq!(page(&c(&[]), 10, 100), (vec![], None));
    }
}
