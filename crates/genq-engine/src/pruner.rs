//! The pruner: applies `[retention]`. Finished jobs go by age and by count per final state
//! (their emptied batches with them), events once every webhook endpoint has them and they are
//! old enough. Ledger entries are never pruned: money is history. Each step deletes at most
//! [`STEP`] rows in its own short transaction, and the pruner then rests twice as long as the
//! step took: it never holds the database for more than a third of the time, so claims and
//! enqueues never wait long behind it. When nothing is left it rests longer.

use crate::Shared;
use genq_config::RetentionRule;
use genq_core::JobState;
use genq_store::{Prune, StoreError};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Rows per step.
pub const STEP: u32 = 500;
/// How long the pruner rests when nothing is left to delete.
const REST: Duration = Duration::from_secs(10);

/// The rest after a step that took `took`, when there is more to delete: twice as long, so the
/// writes the pruner must not hold up get two thirds of the time.
pub fn breath(took: Duration) -> Duration {
    (took * 2).max(Duration::from_millis(2))
}

pub(crate) async fn run(shared: Arc<Shared>, stop: CancellationToken) {
    loop {
        let began = std::time::Instant::now();
        let more = match step(&shared).await {
            Ok(more) => more,
            Err(e) => {
                tracing::warn!(error = %e, "pruning failed; trying again later");
                false
            }
        };
        let rest = if more { breath(began.elapsed()) } else { REST };
        tokio::select! {
            _ = tokio::time::sleep(rest) => {}
            _ = stop.cancelled() => return,
        }
    }
}

/// One step for each rule; whether any of them found a full step to delete (so there may be
/// more).
pub async fn step(shared: &Shared) -> Result<bool, StoreError> {
    let now = shared.clock.now();
    let r = &shared.retention;
    let mut more = false;
    for (state, rule) in [
        (JobState::Succeeded, &r.succeeded),
        (JobState::Failed, &r.failed),
        (JobState::Canceled, &r.canceled),
    ] {
        let deleted = shared
            .store
            .prune_jobs(&Prune {
                state,
                finished_before: now - age(rule),
                keep_newest: rule.max_count,
                limit: STEP,
            })
            .await?;
        more |= deleted >= STEP as u64;
    }
    let deleted = shared
        .store
        .prune_events(now - age(&r.events), STEP)
        .await?;
    more |= deleted >= STEP as u64;
    Ok(more)
}

fn age(rule: &RetentionRule) -> chrono::Duration {
    chrono::Duration::from_std(rule.max_age).unwrap_or(chrono::Duration::MAX)
}
