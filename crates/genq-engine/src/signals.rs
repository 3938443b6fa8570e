//! Hints from other processes sharing the database (PostgreSQL LISTEN/NOTIFY): new work, new
//! delayed work, changed limits, a cancel of a job running here. Hints only speed things up:
//! every service also polls, so a lost hint (or a backend without them) costs latency, never
//! a job.

use crate::{Shared, limits};
use genq_store::Signal;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

pub(crate) async fn run(shared: Arc<Shared>, stop: CancellationToken) {
    let Some(coordination) = shared.store.coordination() else {
        return;
    };
    loop {
        let mut hints = match coordination.listen().await {
            Ok(Some(rx)) => rx,
            Ok(None) => return,
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for hints; retrying");
                tokio::select! {
                    _ = tokio::time::sleep(shared.settings.poll_interval.max(std::time::Duration::from_secs(1))) => continue,
                    _ = stop.cancelled() => return,
                }
            }
        };
        loop {
            let signal = tokio::select! {
                s = hints.recv() => s,
                _ = stop.cancelled() => return,
            };
            match signal {
                Some(Signal::Work) => shared.wake.work(),
                Some(Signal::Delayed) => shared.wake.delayed(),
                Some(Signal::Limits) => {
                    limits::refresh(&shared).await;
                    shared.wake.work();
                }
                Some(Signal::Canceled(job_id)) => shared.active.lose(&job_id),
                Some(Signal::Resync) => {
                    limits::refresh(&shared).await;
                    shared.wake.work();
                    shared.wake.delayed();
                }
                // The channel ended: listen again.
                None => break,
            }
        }
    }
}
