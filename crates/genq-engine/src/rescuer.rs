//! The rescuer: jobs whose lease expired (the worker died, hung, or lost the database) go back
//! to `retrying` with class `lease_expired`, or to `failed` when no retries remain. It runs
//! continuously, several times per lease period, so a dead worker's jobs are retried within one
//! lease. Each move is fenced by the lease token and by "still expired", so a worker whose
//! heartbeat got through in the meantime keeps its job.

use crate::Shared;
use crate::worker_pool::finish_failed;
use genq_core::{ErrorClass, Failure};
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

const BATCH: u32 = 500;

pub(crate) async fn run(shared: Arc<Shared>, stop: CancellationToken) {
    let period = (shared.settings.lease / 4).max(std::time::Duration::from_millis(100));
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.cancelled() => return,
        }
        while let Ok(n) = rescue(&shared).await
            && n == BATCH
        {}
    }
}

/// Rescue one batch of expired leases; returns how many were found.
pub async fn rescue(shared: &Shared) -> Result<u32, genq_store::StoreError> {
    let now = shared.clock.now();
    let expired = shared.store.expired_leases(now, BATCH).await?;
    if expired.is_empty() {
        return Ok(0);
    }
    let failure = Failure::new(
        ErrorClass::LeaseExpired,
        "the lease expired: the worker stopped heartbeating",
    );
    let finishes: Vec<_> = expired
        .iter()
        .map(|job| finish_failed(shared, job, &failure, now, Some(now)))
        .collect();
    let applied = shared.store.finish(finishes.clone()).await?;
    let rescued = shared.rescued(&finishes, &applied);
    if rescued > 0 {
        tracing::info!(rescued, "rescued jobs with expired leases");
    }
    Ok(expired.len() as u32)
}
