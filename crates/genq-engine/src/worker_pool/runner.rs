//! The runner: starts the next queued job whenever a slot is free, each attempt in a task of
//! its own, and reports how it ended to the completer.

use super::{Ended, Pool, Queued, Report};
use crate::Shared;
use crate::handler::Attempt;
use futures::FutureExt;
use genq_core::{ErrorClass, Failure, Job};
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

/// Start queued jobs until `shutdown`.
pub(super) async fn run(
    pool: &Arc<Pool>,
    attempts: &TaskTracker,
    reports: &mpsc::UnboundedSender<Report>,
    abort: &CancellationToken,
    shutdown: &CancellationToken,
) {
    loop {
        let permit = tokio::select! {
            permit = pool.slots.clone().acquire_owned() => permit.expect("the slot semaphore is never closed"),
            _ = shutdown.cancelled() => return,
        };
        let Queued { job, lost } = loop {
            if let Some(next) = pool.queue.lock().unwrap().pop_front() {
                break next;
            }
            tokio::select! {
                _ = pool.queued.notified() => {}
                _ = shutdown.cancelled() => return,
            }
        };
        let pool = pool.clone();
        let reports = reports.clone();
        let abort = abort.clone();
        // Every line logged while the attempt runs names its job.
        let span = crate::job_span(&job.id, &job.kind, &job.user_id, job.attempt);
        attempts.spawn(
            async move {
                let report = attempt(&pool.shared, job, lost, abort).await;
                drop(permit);
                pool.attempt_ended();
                let _ = reports.send(report);
            }
            .instrument(span),
        );
    }
}

async fn attempt(
    shared: &Shared,
    job: Job,
    lost: CancellationToken,
    abort: CancellationToken,
) -> Report {
    // Canceled (or rescued) while it waited in the queue.
    if lost.is_cancelled() {
        shared.active.remove(&job.id);
        return Report {
            job,
            ended: Ended::Lost,
        };
    }
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
    shared.active.running.fetch_add(1, Relaxed);
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
    shared.active.running.fetch_sub(1, Relaxed);
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
