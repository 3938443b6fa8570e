//! The completer: turns each ended attempt into its transition and writes the transitions that
//! arrived together in one store call, retrying while the lease still protects them.

use super::{Ended, Report, delay_until, finish_failed, outcome_of};
use crate::Shared;
use crate::handler::Reply;
use genq_core::machine;
use genq_store::{Finish, Outcome};
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;
use tokio::sync::mpsc;

/// Record outcomes: everything that arrived together goes to the store in one call.
pub(super) async fn run(shared: Arc<Shared>, mut inbox: mpsc::UnboundedReceiver<Report>) {
    let mut reports = Vec::with_capacity(64);
    while inbox.recv_many(&mut reports, 512).await > 0 {
        let now = shared.clock.now();
        let mut finishes = Vec::with_capacity(reports.len());
        let (mut claimable_soon, mut retry_later) = (false, false);
        for report in reports.drain(..) {
            let finish = match report.ended {
                Ended::Lost => {
                    shared.counters.fenced.fetch_add(1, Relaxed);
                    continue;
                }
                // Retried at once, keeping the last error and the retry budget.
                Ended::Released => Finish::new(
                    &report.job,
                    outcome_of(machine::after_release(), None, now),
                    now,
                ),
                Ended::Done(Ok(Reply::Done(result))) => {
                    Finish::new(&report.job, Outcome::Succeeded { result }, now)
                }
                Ended::Done(Ok(Reply::Wait { task_id, poll_in })) => {
                    let poll_at = now + delay_until(poll_in);
                    let mut next = shared.next_poll.lock().unwrap();
                    *next = Some(next.map_or(poll_at, |t| t.min(poll_at)));
                    Finish::new(&report.job, Outcome::Parked { task_id, poll_at }, now)
                }
                Ended::Done(Err(failure)) => {
                    finish_failed(&shared, &report.job, &failure, now, None)
                }
            };
            match &finish.outcome {
                Outcome::Retry { run_at, .. } => {
                    claimable_soon |= *run_at <= now;
                    retry_later |= *run_at > now;
                }
                // Its poll may fall due before the claimer's next look.
                Outcome::Parked { .. } => claimable_soon = true,
                _ => {}
            }
            finishes.push(finish);
        }
        if finishes.is_empty() {
            continue;
        }
        write_finishes(&shared, finishes).await;
        // A retry due now is already claimable; a later one needs the scheduler.
        if claimable_soon {
            shared.wake.work();
        }
        if retry_later {
            shared.wake.delayed();
        }
    }
}

async fn write_finishes(shared: &Shared, finishes: Vec<Finish>) {
    let mut delay = Duration::from_millis(50);
    let give_up = tokio::time::Instant::now() + shared.settings.lease;
    loop {
        match shared.store.finish(finishes.clone()).await {
            Ok(applied) => {
                shared.record_outcomes(&finishes, &applied);
                let c = &shared.counters;
                for (finish, applied) in finishes.iter().zip(applied) {
                    let counter = match (&finish.outcome, applied) {
                        (_, false) => &c.fenced,
                        (Outcome::Succeeded { .. }, _) => &c.succeeded,
                        (Outcome::Retry { error: None, .. }, _) => &c.released,
                        (Outcome::Retry { .. }, _) => &c.retried,
                        (Outcome::Failed { .. }, _) => &c.failed,
                        (Outcome::Canceled { .. }, _) => &c.canceled,
                        (Outcome::Parked { .. }, _) => &c.parked,
                    };
                    counter.fetch_add(1, Relaxed);
                }
                return;
            }
            // The lease keeps the jobs safe meanwhile: if the store stays away past it, the
            // rescuer retries them and these writes are fenced out.
            Err(e) if tokio::time::Instant::now() < give_up => {
                tracing::warn!(error = %e, n = finishes.len(), "recording outcomes failed; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
            Err(e) => {
                tracing::error!(error = %e, n = finishes.len(), "recording outcomes failed past the lease; the rescuer will retry these jobs");
                return;
            }
        }
    }
}
