//! The cron service: each `[[schedules]]` entry makes its job once per slot, across every
//! process and restart. Every process decides the same slots (`genq_core::schedule`) and
//! enqueues them with the same idempotency key, so one job is made whoever is first; the
//! database keeps how far each schedule is covered, so a restart neither repeats a slot nor
//! runs every slot it missed (only the latest).

use crate::Shared;
use chrono::{DateTime, Utc};
use genq_config::Config;
use genq_core::schedule::{Due, Plan, slot_key};
use genq_store::{NewJobs, SlotRun, StoreError};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How often schedules are looked at without a slot due (a pause from another process, a
/// database that was down).
const POLL: Duration = Duration::from_secs(1);

/// One configured schedule, ready to make jobs.
pub struct Scheduled {
    pub name: String,
    pub cron: String,
    pub timezone: String,
    pub kind: String,
    pub user_id: String,
    pub plan: Plan,
    payload: Value,
    priority: i32,
    max_retries: u32,
    cost: i64,
    user_defaults: genq_core::UserDefaults,
    quota: genq_config::Quota,
}

impl Scheduled {
    /// Every schedule of the config (validated at load).
    pub fn from_config(config: &Config) -> Result<Vec<Arc<Scheduled>>, crate::SetupError> {
        config
            .schedules
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let setup = |message: String| crate::SetupError {
                    key: format!("schedules[{i}]"),
                    message,
                };
                let kind = config
                    .kind(&s.kind)
                    .ok_or_else(|| setup(format!("no kind {:?}", s.kind)))?;
                Ok(Arc::new(Scheduled {
                    name: s.name.clone(),
                    cron: s.cron.clone(),
                    timezone: s.timezone.clone(),
                    kind: s.kind.clone(),
                    user_id: s.user_id.clone(),
                    plan: Plan::parse(&s.cron, &s.timezone).map_err(setup)?,
                    payload: s.payload_json(),
                    priority: s.priority.unwrap_or(kind.priority),
                    max_retries: kind.retry_policy().max_retries,
                    cost: kind.cost,
                    user_defaults: config.users.defaults(),
                    quota: config.quota.clone(),
                }))
            })
            .collect()
    }
}

pub(crate) async fn run(shared: Arc<Shared>, stop: CancellationToken) {
    if shared.schedules.is_empty() {
        return;
    }
    loop {
        let now = shared.clock.now();
        let mut wake_at = now + chrono::Duration::from_std(POLL).unwrap_or_default();
        match shared.store.schedules().await {
            Ok(states) => {
                let states: HashMap<&str, _> =
                    states.iter().map(|s| (s.name.as_str(), s)).collect();
                for s in &shared.schedules {
                    let state = states.get(s.name.as_str());
                    let paused = state.is_some_and(|st| st.paused);
                    let due = s.plan.due(state.map(|st| st.covered_until), now);
                    if let Err(e) = act(&shared, s, due, paused, now).await {
                        tracing::warn!(schedule = %s.name, error = %e, "a schedule's slot failed; trying again");
                    }
                    if let Some(next) = s.plan.next_slot(now) {
                        wake_at = wake_at.min(next);
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "reading schedules failed; trying again"),
        }
        let wait = (wake_at - shared.clock.now()).to_std().unwrap_or_default();
        tokio::select! {
            _ = tokio::time::sleep(wait.max(Duration::from_millis(1))) => {}
            _ = shared.wake.cron.notified() => {}
            _ = stop.cancelled() => return,
        }
    }
}

async fn act(
    shared: &Shared,
    s: &Scheduled,
    due: Due,
    paused: bool,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    match due {
        Due::Wait => Ok(()),
        Due::Start(at) => shared.store.cover_schedule(&s.name, at, None, now).await,
        // Paused: the slot passes without a job, and a resume does not catch it up.
        Due::Run(slot) if paused => shared.store.cover_schedule(&s.name, slot, None, now).await,
        Due::Run(slot) => {
            let run = make_job(shared, s, slot, now).await?;
            if run.job_id.is_some() {
                shared.wake.work();
            }
            shared
                .store
                .cover_schedule(&s.name, slot, Some(run), now)
                .await
        }
    }
}

/// The slot's job, made once: its idempotency key names the schedule and the slot. A job the
/// limits refuse (a daily quota, the balance) is recorded as the slot's error, not tried
/// again.
async fn make_job(
    shared: &Shared,
    s: &Scheduled,
    slot: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<SlotRun, StoreError> {
    let new = NewJobs {
        kind: s.kind.clone(),
        user_id: s.user_id.clone(),
        payloads: vec![s.payload.clone()],
        priority: s.priority,
        run_at: None,
        max_retries: s.max_retries,
        cost: s.cost,
        idempotency_key: Some(slot_key(&s.name, slot)),
        as_batch: false,
        now,
        day: s.quota.day(now),
        user_defaults: s.user_defaults.clone(),
    };
    match shared.store.enqueue(new).await {
        Ok(out) => {
            shared.metrics.enqueued(&out);
            Ok(SlotRun {
                slot,
                job_id: out.jobs.first().map(|j| j.id.clone()),
                error: None,
            })
        }
        Err(StoreError::Rejected(r)) => {
            tracing::warn!(schedule = %s.name, refused = ?r, "a schedule's job was refused");
            Ok(SlotRun {
                slot,
                job_id: None,
                error: Some(format!("{r:?}")),
            })
        }
        Err(e) => Err(e),
    }
}
