//! The scheduler of delayed jobs: makes jobs whose `run_at` has come (delayed enqueues and
//! retries after their backoff) claimable, then wakes the workers. It sleeps until the next due
//! time it knows of, or until woken because a sooner one may have appeared, and never longer
//! than the poll interval (other processes may add delayed jobs too).

use crate::Shared;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

const BATCH: u32 = 1000;

pub(crate) async fn run(shared: Arc<Shared>, stop: CancellationToken) {
    loop {
        let now = shared.clock.now();
        let poll = shared.settings.poll_interval;
        let sleep_for = match shared.store.stage_due(now, BATCH).await {
            Ok(staged) => {
                if staged.staged > 0 {
                    shared.wake.work();
                }
                if staged.staged == BATCH {
                    continue;
                }
                staged
                    .next_due
                    .map(|due| (due - now).to_std().unwrap_or_default().min(poll))
                    .unwrap_or(poll)
            }
            Err(e) => {
                tracing::warn!(error = %e, "staging due jobs failed");
                poll
            }
        };
        tokio::select! {
            _ = tokio::time::sleep(sleep_for) => {}
            _ = shared.wake.scheduler.notified() => {}
            _ = stop.cancelled() => return,
        }
    }
}
