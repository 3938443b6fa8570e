//! This process's copy of the runtime limits (SPEC §5): read from the database every
//! [`REFRESH`], so an admin's change reaches every worker process within a second. The API's
//! own checks read the database in the enqueue transaction and need no copy.

use crate::Shared;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

pub const REFRESH: Duration = Duration::from_millis(250);

pub(crate) async fn run(shared: Arc<Shared>, stop: CancellationToken) {
    let mut tick = tokio::time::interval(REFRESH);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => refresh(&shared).await,
            _ = stop.cancelled() => return,
        }
    }
}

pub(crate) async fn refresh(shared: &Shared) {
    match shared.store.limits().await {
        Ok(limits) => *shared.limits.write().unwrap() = limits,
        Err(e) => tracing::warn!(error = %e, "reading limits failed; keeping the last ones"),
    }
}
