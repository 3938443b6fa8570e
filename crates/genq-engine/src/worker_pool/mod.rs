//! The worker pool, a pipeline of three stages joined by a local queue and a channel:
//!
//! - the [`claimer`] claims jobs in batches into a short local queue, ahead of the free slots,
//!   so a slot that frees up finds its next job here instead of waiting for a claim's round
//!   trip;
//! - the [`runner`] takes a job from the queue whenever a slot (a semaphore permit) is free and
//!   runs its attempt in a task of its own; the slot is free again the moment the attempt
//!   returns;
//! - the [`completer`] decides each outcome's next state (`genq_core::machine`) and writes all
//!   the outcomes that arrived together in one store call. Until that write commits the lease
//!   still fences the job: a crash before it re-runs the attempt, after the lease.
//!
//! A queued job is leased like a running one: heartbeats renew it, a cancel drops it, and at
//! shutdown it is handed back at once.

mod claimer;
mod completer;
mod runner;

use crate::Shared;
use crate::handler::Reply;
use chrono::{DateTime, Utc};
use genq_core::machine::{self, Next};
use genq_core::{ErrorClass, Failure, Job, JobError};
use genq_store::{Finish, LeaseRef, Outcome};
use rand::SeedableRng;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{Notify, Semaphore, mpsc};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// The leases this process's pool holds, by job id, whether the job waits in the local queue
/// or runs: what heartbeats renew and what a cancel or a lost lease stops.
#[derive(Default)]
pub struct ActiveAttempts {
    leases: Mutex<HashMap<String, Active>>,
    /// Attempts running now (the rest wait in the local queue).
    running: AtomicUsize,
}

struct Active {
    token: String,
    /// Fires when the lease is lost (canceled elsewhere, rescued, or canceled here).
    lost: CancellationToken,
}

impl ActiveAttempts {
    fn insert(&self, job_id: &str, token: &str) -> CancellationToken {
        let lost = CancellationToken::new();
        self.leases.lock().unwrap().insert(
            job_id.to_string(),
            Active {
                token: token.to_string(),
                lost: lost.clone(),
            },
        );
        lost
    }

    fn remove(&self, job_id: &str) {
        self.leases.lock().unwrap().remove(job_id);
    }

    pub fn leases(&self) -> Vec<LeaseRef> {
        self.leases
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
        if let Some(a) = self.leases.lock().unwrap().get(job_id) {
            a.lost.cancel();
        }
    }

    /// Stop the attempt holding exactly this lease, if it still runs here.
    pub(crate) fn lose_lease(&self, lease: &LeaseRef) {
        if let Some(a) = self.leases.lock().unwrap().get(&lease.job_id)
            && a.token == lease.token
        {
            a.lost.cancel();
        }
    }

    /// Leases held: jobs queued here or running.
    pub fn len(&self) -> usize {
        self.leases.lock().unwrap().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Attempts running now: the worker slots in use.
    pub fn running(&self) -> usize {
        self.running.load(Relaxed)
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

/// A claimed job waiting in the local queue, with what fires when its lease is lost.
struct Queued {
    job: Job,
    lost: CancellationToken,
}

/// What the stages share: the slots, the local queue between the claimer and the runner, and
/// the count of jobs claimed and not yet ended that sizes the next claim.
struct Pool {
    shared: Arc<Shared>,
    slots: Arc<Semaphore>,
    queue: Mutex<VecDeque<Queued>>,
    /// Jobs were pushed onto the queue.
    queued: Notify,
    /// An attempt ended: the claimer may have room again.
    room: Notify,
    /// Jobs claimed by this pool whose attempt has not ended: queued or running.
    held: AtomicUsize,
    /// Attempts ended so far, for the claimer's rate.
    ended: AtomicU64,
}

impl Pool {
    /// An attempt of a job this pool held has ended (its outcome is not written yet).
    fn attempt_ended(&self) {
        self.held.fetch_sub(1, Relaxed);
        self.ended.fetch_add(1, Relaxed);
        self.room.notify_one();
    }
}

/// Run the pool until `shutdown`. Then: stop claiming, hand the queued jobs back, give the
/// running attempts `shutdown_grace` to end, hand back the ones still running, and write every
/// outcome before returning.
pub(crate) async fn run(shared: Arc<Shared>, shutdown: CancellationToken) {
    let pool = Arc::new(Pool {
        slots: Arc::new(Semaphore::new(shared.settings.concurrency as usize)),
        queue: Mutex::default(),
        queued: Notify::new(),
        room: Notify::new(),
        held: AtomicUsize::new(0),
        ended: AtomicU64::new(0),
        shared: shared.clone(),
    });
    let (reports, inbox) = mpsc::unbounded_channel();
    let completer = tokio::spawn(completer::run(shared.clone(), inbox));
    if !shared.local_kinds().is_empty() {
        let claimer = tokio::spawn(claimer::run(pool.clone(), shutdown.clone()));
        let attempts = TaskTracker::new();
        // Fires when the shutdown grace period is over: running attempts are handed back.
        let abort = CancellationToken::new();
        runner::run(&pool, &attempts, &reports, &abort, &shutdown).await;
        let _ = claimer.await;
        // Nothing more starts: what waits in the queue goes back at once; a provider poll is
        // parked again on its task, due now, so that its task is not started a second time.
        let queued: Vec<Queued> = pool.queue.lock().unwrap().drain(..).collect();
        if !queued.is_empty() {
            tracing::info!(
                queued = queued.len(),
                "shutting down; handing queued jobs back"
            );
        }
        for Queued { job, .. } in queued {
            shared.active.remove(&job.id);
            pool.attempt_ended();
            let ended = match &job.provider_task {
                Some(task) => Ended::Done(Ok(Reply::Wait {
                    task_id: task.id.clone(),
                    poll_in: Duration::ZERO,
                })),
                None => Ended::Released,
            };
            let _ = reports.send(Report { job, ended });
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
    }
    drop(reports);
    let _ = completer.await;
}

/// Before claiming anything, take back the leases this node held when it last stopped (a crash
/// or SIGKILL): their attempts are dead, so they are retried now, not when the lease runs out.
pub(crate) async fn take_back_own_leases(shared: &Arc<Shared>) {
    let node = shared.settings.node_id.clone();
    loop {
        let jobs = match shared.store.node_leases(&node, 500).await {
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
