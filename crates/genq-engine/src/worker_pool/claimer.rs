//! The claimer: keeps the local queue filled ahead of the free slots.
//!
//! How far ahead follows the pool's recent rate: enough jobs for [`AHEAD`] of work, never more
//! than [`MAX_AHEAD`]. A user who arrives behind another's backlog is in the next claim (SPEC
//! §4) and then waits behind at most that much work already claimed here. Slow jobs (a low
//! rate) are claimed only for free slots, as are provider polls and kinds whose provider bounds
//! how many may start: those must not wait in a queue holding what they took. Each claim takes
//! at most `worker.claim_batch` jobs.

use super::{Pool, Queued};
use crate::Claimable;
use genq_core::limits::USER_MAX_RUNNING;
use genq_store::ClaimRequest;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// The work the local queue holds, at the recent rate.
const AHEAD: Duration = Duration::from_millis(100);
/// Most jobs the local queue holds.
const MAX_AHEAD: usize = 1000;

/// Attempts ended per second, smoothed over the last few samples.
struct Rate {
    at: Instant,
    ended: u64,
    per_second: f64,
}

impl Rate {
    fn update(&mut self, ended: u64) -> f64 {
        let elapsed = self.at.elapsed().as_secs_f64();
        if elapsed >= 0.02 {
            let recent = (ended - self.ended) as f64 / elapsed;
            self.per_second = (self.per_second + recent) / 2.0;
            self.at = Instant::now();
            self.ended = ended;
        }
        self.per_second
    }
}

pub(super) async fn run(pool: Arc<Pool>, shutdown: CancellationToken) {
    let shared = &pool.shared;
    let concurrency = shared.settings.concurrency as usize;
    let polled = shared.polled_kinds();
    let worker_id = format!("{}/pool", shared.settings.node_id);
    let mut rate = Rate {
        at: Instant::now(),
        ended: 0,
        per_second: 0.0,
    };
    while !shutdown.is_cancelled() {
        // With a per-user cap, a queued job would count against its user without running.
        let capped = shared.limits.read().unwrap().get(USER_MAX_RUNNING) > 0;
        let ahead = if capped {
            0
        } else {
            ((rate.update(pool.ended.load(Relaxed)) * AHEAD.as_secs_f64()) as usize).min(MAX_AHEAD)
        };
        let claimable = shared.claimable_kinds();
        let held = pool.held.load(Relaxed);
        let free = concurrency.saturating_sub(held);
        let want = if claimable.unbounded.is_empty() {
            free
        } else {
            (concurrency + ahead).saturating_sub(held)
        };
        if want == 0 {
            tokio::select! {
                _ = pool.room.notified() => {}
                _ = shutdown.cancelled() => {}
            }
            continue;
        }
        let now = shared.clock.now();
        let request = |kinds: Vec<String>, max: usize| ClaimRequest {
            node_id: shared.settings.node_id.clone(),
            worker_id: worker_id.clone(),
            kinds,
            max: max as u32,
            lease_until: now + chrono::Duration::from_std(shared.settings.lease).unwrap(),
            now,
        };
        // Whether a claim came back with all it asked for: there may be more at once.
        let mut full = false;
        let mut jobs = Vec::new();
        // Due polls first: their tasks are already paid for.
        if free > 0
            && !polled.is_empty()
            && shared.next_poll.lock().unwrap().is_none_or(|t| t <= now)
        {
            match shared
                .store
                .claim_polls(request(polled.clone(), free))
                .await
            {
                Ok(polls) => {
                    let recheck =
                        now + chrono::Duration::from_std(shared.settings.poll_interval).unwrap();
                    *shared.next_poll.lock().unwrap() =
                        Some(polls.next_due.map_or(recheck, |t| t.min(recheck)));
                    full |= polls.jobs.len() == free;
                    jobs = polls.jobs;
                }
                Err(e) => tracing::warn!(error = %e, "claiming due polls failed"),
            }
        }
        for job in &jobs {
            shared.claimed(job).await;
        }
        // Kinds whose provider has room for only so many more: one claim each, no bigger than
        // that room, so that a claim never takes a job it would have to hand back.
        for kind in &claimable.bounded {
            let room = shared.room(kind).await.min(free.saturating_sub(jobs.len()));
            if room == 0 {
                continue;
            }
            match shared.store.claim(request(vec![kind.clone()], room)).await {
                Ok(claimed) => {
                    full |= claimed.len() == room;
                    for job in &claimed {
                        shared.claimed(job).await;
                        shared.metrics.claimed(job, now);
                    }
                    jobs.extend(claimed);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "claim failed; retrying after the poll interval")
                }
            }
        }
        // The rest, ahead of the slots.
        let asked = want
            .saturating_sub(jobs.len())
            .min(shared.settings.claim_batch as usize);
        if asked > 0 && !claimable.unbounded.is_empty() {
            match shared
                .store
                .claim(request(claimable.unbounded.clone(), asked))
                .await
            {
                Ok(claimed) => {
                    full |= claimed.len() == asked;
                    for job in &claimed {
                        shared.metrics.claimed(job, now);
                    }
                    jobs.extend(claimed)
                }
                Err(e) => {
                    tracing::warn!(error = %e, "claim failed; retrying after the poll interval");
                }
            }
        }
        if !jobs.is_empty() {
            shared
                .counters
                .claimed
                .fetch_add(jobs.len() as u64, Relaxed);
            pool.held.fetch_add(jobs.len(), Relaxed);
            let mut queue = pool.queue.lock().unwrap();
            for job in jobs {
                let lost = shared
                    .active
                    .insert(&job.id, &genq_store::LeaseRef::of(&job).token);
                queue.push_back(Queued { job, lost });
            }
            drop(queue);
            pool.queued.notify_one();
        }
        if !full {
            idle(&pool, &shutdown, &claimable).await;
        }
    }
}

/// Wait for a wake-up, the fallback poll, the next due poll, a blocked provider's key coming
/// back, an attempt's end when a provider bounds its kind, or shutdown.
async fn idle(pool: &Pool, shutdown: &CancellationToken, claimable: &Claimable) {
    let shared = &pool.shared;
    let mut wait = shared.settings.poll_interval;
    if let Some(b) = claimable.blocked_for {
        wait = wait.min(b.max(Duration::from_millis(10)));
    }
    if let Some(t) = *shared.next_poll.lock().unwrap() {
        let until = (t - shared.clock.now()).to_std().unwrap_or_default();
        wait = wait.min(until.max(Duration::from_millis(1)));
    }
    tokio::select! {
        _ = shared.wake.pool.notified() => {}
        _ = tokio::time::sleep(wait) => {}
        _ = pool.room.notified(), if !claimable.bounded.is_empty() => {}
        _ = shutdown.cancelled() => {}
    }
}
