//! The worker pool: claim in batches, run each attempt in a slot, record outcomes in batches.
//!
//! A slot is a semaphore permit. The claim loop waits for at least one free slot, takes every
//! free slot it can (up to `claim_batch`), and claims that many jobs in one store call. Each
//! attempt runs in its own task; its outcome goes to the completer, which decides the next state
//! (`genq_core::machine`) and writes all pending outcomes in one store call.

use crate::Shared;
use crate::handler::{Attempt, Reply};
use chrono::{DateTime, Utc};
use futures::FutureExt;
use genq_core::machine::{self, Next};
use genq_core::{ErrorClass, Failure, Job, JobError};
use genq_store::{ClaimRequest, Finish, LeaseRef, Outcome};
use rand::SeedableRng;
use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{Semaphore, mpsc};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

/// The attempts running in this process, by job id: what heartbeats renew and what a cancel or
/// a lost lease stops.
#[derive(Default)]
pub struct ActiveAttempts(Mutex<HashMap<String, Active>>);

struct Active {
    token: String,
    /// Fires when the lease is lost (canceled elsewhere, rescued, or canceled here).
    lost: CancellationToken,
}

impl ActiveAttempts {
    fn insert(&self, job_id: &str, token: &str) -> CancellationToken {
        let lost = CancellationToken::new();
        self.0.lock().unwrap().insert(
            job_id.to_string(),
            Active {
                token: token.to_string(),
                lost: lost.clone(),
            },
        );
        lost
    }

    fn remove(&self, job_id: &str) {
        self.0.lock().unwrap().remove(job_id);
    }

    pub fn leases(&self) -> Vec<LeaseRef> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .map(|(id, a)| LeaseRef {
                job_id: id.clone(),
                token: a.token.clone(),
            })
            .collect()
    }

    /// Stop the attempt holding `job_id`, if it runs here.
    pub fn lose(&self, job_id: &str) {
        if let Some(a) = self.0.lock().unwrap().get(job_id) {
            a.lost.cancel();
        }
    }

    /// Stop the attempt holding exactly this lease, if it still runs here.
    pub(crate) fn lose_lease(&self, lease: &LeaseRef) {
        if let Some(a) = self.0.lock().unwrap().get(&lease.job_id)
            && a.token == lease.token
        {
            a.lost.cancel();
        }
    }

    pub fn len(&self) -> usize {
        self.0.lock().unwrap().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// How an attempt ended, before the state machine decides what that means.
enum Ended {
    Done(Result<Reply, Failure>),
    /// Handed back at shutdown: claimable again at once, costs the job nothing.
    Released,
    /// The lease was lost; whoever took it decides. Nothing to write.
    Lost,
}

struct Report {
    job: Job,
    ended: Ended,
}

/// Before claiming anything, take back the leases this node held when it last stopped (a crash
/// or SIGKILL): their attempts are dead, so they are retried now, not when the lease runs out.
pub(crate) async fn take_back_own_leases(shared: &Arc<Shared>) {
    let node = shared.settings.node_id.clone();
    loop {
        let jobs = match shared.store.running_jobs(None, Some(&node), 500).await {
            Ok(jobs) => jobs,
            Err(e) => {
                tracing::warn!(error = %e, "could not read this node's old leases");
                return;
            }
        };
        if jobs.is_empty() {
            return;
        }
        let now = shared.clock.now();
        let failure = Failure::new(
            ErrorClass::LeaseExpired,
            "the process holding the lease restarted",
        );
        let finishes: Vec<Finish> = jobs
            .iter()
            .map(|job| finish_failed(shared, job, &failure, now, None))
            .collect();
        let n = finishes.len();
        match shared.store.finish(finishes.clone()).await {
            Ok(applied) => {
                let taken = shared.rescued(&finishes, &applied);
                tracing::info!(taken, "took back leases from this node's previous run");
                if n < 500 {
                    return;
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "could not take back this node's old leases");
                return;
            }
        }
    }
}

/// The transition for a failed attempt of `job`, fenced by its lease: the one place that turns
/// a failure into a store write, for in-process workers, the rescuer and external workers.
pub fn finish_failed(
    shared: &Shared,
    job: &Job,
    failure: &Failure,
    now: DateTime<Utc>,
    only_if_expired_before: Option<DateTime<Utc>>,
) -> Finish {
    let next = machine::after_failure(
        job.counters(),
        failure,
        &shared.policy(&job.kind),
        &mut rand::rngs::StdRng::from_os_rng(),
    );
    let error = JobError {
        class: failure.class,
        detail: shared.providers.redactor.text(&failure.detail).into_owned(),
    };
    let finish = Finish::new(job, outcome_of(next, Some(error), now), now);
    match only_if_expired_before {
        Some(t) => finish.if_expired_before(t),
        None => finish,
    }
}

/// The store's transition for a decision; `error: None` keeps the job's last error.
fn outcome_of(next: Next, error: Option<JobError>, now: DateTime<Utc>) -> Outcome {
    match (next, error) {
        (
            Next::Retry {
                delay,
                uses_retry,
                rate_limit_wait,
            },
            error,
        ) => Outcome::Retry {
            run_at: now + delay_until(delay),
            error,
            uses_retry,
            rate_limit_wait,
        },
        (Next::Fail, Some(error)) => Outcome::Failed { error },
        (Next::Cancel, Some(error)) => Outcome::Canceled { error },
        (Next::Fail | Next::Cancel, None) => unreachable!("a final failure always says why"),
    }
}

/// Longest wait before a retry, whatever a provider's Retry-After or a kind's schedule says.
const MAX_RETRY_DELAY: chrono::Duration = chrono::Duration::days(30);

fn delay_until(delay: Duration) -> chrono::Duration {
    chrono::Duration::from_std(delay)
        .unwrap_or(MAX_RETRY_DELAY)
        .min(MAX_RETRY_DELAY)
}

/// Run the pool until `shutdown`; then drain as described in `Engine::run`.
pub(crate) async fn run(shared: Arc<Shared>, shutdown: CancellationToken) {
    let local = shared.local_kinds();
    let polled = shared.polled_kinds();
    let slots = Arc::new(Semaphore::new(shared.settings.concurrency as usize));
    let attempts = TaskTracker::new();
    // Fires when the shutdown grace period is over: running attempts are handed back.
    let abort = CancellationToken::new();
    let (reports, inbox) = mpsc::unbounded_channel();
    let completer = tokio::spawn(complete(shared.clone(), inbox));
    let worker_id = format!("{}/pool", shared.settings.node_id);

    while !local.is_empty() && !shutdown.is_cancelled() {
        let first = tokio::select! {
            permit = slots.clone().acquire_owned() => permit.expect("the slot semaphore is never closed"),
            _ = shutdown.cancelled() => break,
        };
        let mut permits = vec![first];
        while permits.len() < shared.settings.claim_batch as usize {
            match slots.clone().try_acquire_owned() {
                Ok(p) => permits.push(p),
                Err(_) => break,
            }
        }
        let now = shared.clock.now();
        let claimable = shared.claimable_kinds();
        let request = |kinds: Vec<String>, max: usize| ClaimRequest {
            node_id: shared.settings.node_id.clone(),
            worker_id: worker_id.clone(),
            kinds,
            max: max as u32,
            lease_until: now + chrono::Duration::from_std(shared.settings.lease).unwrap(),
            now,
        };
        // Due polls first: their tasks are already paid for.
        let mut jobs = Vec::new();
        if !polled.is_empty() && shared.next_poll.lock().unwrap().is_none_or(|t| t <= now) {
            match shared
                .store
                .claim_polls(request(polled.clone(), permits.len()))
                .await
            {
                Ok(polls) => {
                    let recheck =
                        now + chrono::Duration::from_std(shared.settings.poll_interval).unwrap();
                    *shared.next_poll.lock().unwrap() =
                        Some(polls.next_due.map_or(recheck, |t| t.min(recheck)));
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
            let free = permits.len() - jobs.len();
            let room = shared.room(kind).await.min(free);
            if room == 0 {
                continue;
            }
            match shared.store.claim(request(vec![kind.clone()], room)).await {
                Ok(claimed) => {
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
        if jobs.len() < permits.len() && !claimable.unbounded.is_empty() {
            match shared
                .store
                .claim(request(claimable.unbounded, permits.len() - jobs.len()))
                .await
            {
                Ok(claimed) => {
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
        if jobs.is_empty() {
            drop(permits);
            idle(&shared, &shutdown, claimable.blocked_for).await;
            continue;
        }
        shared
            .counters
            .claimed
            .fetch_add(jobs.len() as u64, std::sync::atomic::Ordering::Relaxed);
        permits.truncate(jobs.len());
        for (job, permit) in jobs.into_iter().zip(permits) {
            let shared = shared.clone();
            let reports = reports.clone();
            let abort = abort.clone();
            // Every line logged while the attempt runs names its job.
            let span = crate::job_span(&job.id, &job.kind, &job.user_id, job.attempt);
            attempts.spawn(
                async move {
                    let report = run_attempt(&shared, job, abort).await;
                    drop(permit);
                    let _ = reports.send(report);
                }
                .instrument(span),
            );
        }
    }

    attempts.close();
    let grace = shared.settings.shutdown_grace;
    if tokio::time::timeout(grace, attempts.wait()).await.is_err() {
        tracing::info!(
            running = attempts.len(),
            "shutdown grace period over; handing running attempts back"
        );
        abort.cancel();
        attempts.wait().await;
    }
    drop(reports);
    let _ = completer.await;
}

/// Wait for a wake-up, the fallback poll, the next due poll, a blocked provider's key coming
/// back, or shutdown.
async fn idle(shared: &Shared, shutdown: &CancellationToken, blocked: Option<Duration>) {
    let mut wait = shared.settings.poll_interval;
    if let Some(b) = blocked {
        wait = wait.min(b.max(Duration::from_millis(10)));
    }
    if let Some(t) = *shared.next_poll.lock().unwrap() {
        let until = (t - shared.clock.now()).to_std().unwrap_or_default();
        wait = wait.min(until.max(Duration::from_millis(1)));
    }
    tokio::select! {
        _ = shared.wake.pool.notified() => {}
        _ = tokio::time::sleep(wait) => {}
        _ = shutdown.cancelled() => {}
    }
}

async fn run_attempt(shared: &Shared, job: Job, abort: CancellationToken) -> Report {
    let lease = LeaseRef::of(&job);
    let lost = shared.active.insert(&job.id, &lease.token);
    let runtime = shared.kinds.get(&job.kind);
    let Some(handler) = runtime.and_then(|k| k.handler.clone()) else {
        shared.active.remove(&job.id);
        let failure = Failure::new(
            ErrorClass::Internal,
            format!("no handler for kind {:?} in this process", job.kind),
        );
        return Report {
            job,
            ended: Ended::Done(Err(failure)),
        };
    };
    let limit = shared
        .limits
        .read()
        .unwrap()
        .get(genq_core::limits::JOB_PROCESSING_TIMEOUT_SECONDS);
    let max = Duration::from_secs(limit.max(1) as u64);
    let timeout = runtime.map_or(max, |k| k.timeout.min(max));
    let stop = CancellationToken::new();
    let attempt = Attempt {
        job_id: job.id.clone(),
        kind: job.kind.clone(),
        user_id: job.user_id.clone(),
        attempt: job.attempt,
        payload: job.payload.clone(),
        task: job.provider_task.clone(),
        stop: stop.clone(),
    };
    let work = AssertUnwindSafe(handler.run(attempt)).catch_unwind();
    let began = std::time::Instant::now();
    let ended = tokio::select! {
        result = tokio::time::timeout(timeout, work) => Ended::Done(match result {
            Ok(Ok(outcome)) => outcome,
            Ok(Err(panic)) => Err(Failure::new(ErrorClass::Internal, format!("the handler panicked: {}", panic_text(&panic)))),
            Err(_) => Err(Failure::new(ErrorClass::Timeout, format!("the attempt ran past its timeout of {}s", timeout.as_secs_f64()))),
        }),
        _ = lost.cancelled() => Ended::Lost,
        _ = abort.cancelled() => Ended::Released,
    };
    stop.cancel();
    shared.active.remove(&job.id);
    if let Ended::Done(_) = ended {
        shared.metrics.attempt_ran(&job.kind, began.elapsed());
    }
    Report { job, ended }
}

fn panic_text(panic: &Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".into())
}

/// Record outcomes: everything that arrived together goes to the store in one call.
async fn complete(shared: Arc<Shared>, mut inbox: mpsc::UnboundedReceiver<Report>) {
    let mut reports = Vec::with_capacity(64);
    while inbox.recv_many(&mut reports, 512).await > 0 {
        let now = shared.clock.now();
        let mut finishes = Vec::with_capacity(reports.len());
        let mut retry_later = false;
        for report in reports.drain(..) {
            let finish = match report.ended {
                Ended::Lost => {
                    shared
                        .counters
                        .fenced
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
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
            if let Outcome::Retry { run_at, .. } = &finish.outcome {
                retry_later |= *run_at > now;
            }
            finishes.push(finish);
        }
        if finishes.is_empty() {
            continue;
        }
        write_finishes(&shared, finishes).await;
        // A retry due now is already claimable; a later one needs the scheduler.
        shared.wake.work();
        if retry_later {
            shared.wake.delayed();
        }
    }
}

async fn write_finishes(shared: &Shared, finishes: Vec<Finish>) {
    use std::sync::atomic::Ordering::Relaxed;
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
