//! Lease renewal: every `worker.heartbeat`, renew the leases of all attempts running in this
//! process in one store call. A lease that is not renewed was lost (the job was canceled, or a
//! rescuer took it): its attempt is stopped, and its outcome will be fenced out anyway. At the
//! same beat the process says it is alive (`Store::node_seen`), for the dashboard's overview.

use crate::Shared;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

pub(crate) async fn run(shared: Arc<Shared>, stop: CancellationToken) {
    let mut tick = tokio::time::interval(shared.settings.heartbeat);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let started_at = shared.clock.now();
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.cancelled() => return,
        }
        beat(&shared).await;
        alive(&shared, started_at).await;
    }
}

async fn alive(shared: &Shared, started_at: chrono::DateTime<chrono::Utc>) {
    let node = genq_store::NodeSeen {
        node_id: shared.settings.node_id.clone(),
        pid: std::process::id(),
        version: env!("CARGO_PKG_VERSION").to_string(),
        concurrency: shared.settings.concurrency,
        started_at,
        seen_at: shared.clock.now(),
    };
    if let Err(e) = shared.store.node_seen(&node).await {
        tracing::warn!(error = %e, "saying this process is alive failed");
    }
}

async fn beat(shared: &Shared) {
    let leases = shared.active.leases();
    if leases.is_empty() {
        return;
    }
    let now = shared.clock.now();
    let until = now + chrono::Duration::from_std(shared.settings.lease).unwrap();
    match shared.store.heartbeat(&leases, until, now).await {
        Ok(renewed) => {
            let renewed: std::collections::HashSet<_> = renewed.into_iter().collect();
            for lease in leases.iter().filter(|l| !renewed.contains(l)) {
                tracing::info!(job_id = %lease.job_id, "lease lost; stopping the attempt");
                shared.active.lose_lease(lease);
            }
        }
        // Keep running: the next beat may get through before the lease runs out.
        Err(e) => tracing::warn!(error = %e, leases = leases.len(), "heartbeat failed"),
    }
}
