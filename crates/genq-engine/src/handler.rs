//! What runs one attempt: a provider, or a Rust handler registered through the library.

use async_trait::async_trait;
use genq_core::Failure;
use genq_core::job::ProviderTask;
use serde_json::Value;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// One attempt of one job, as a handler sees it.
#[derive(Debug, Clone)]
pub struct Attempt {
    pub job_id: String,
    pub kind: String,
    pub user_id: String,
    /// 1 for the first attempt; sent to providers as `X-Genq-Attempt`.
    pub attempt: u32,
    pub payload: Value,
    /// The provider task this attempt already created (a poll), if any.
    pub task: Option<ProviderTask>,
    /// Fires when the attempt must stop (canceled, lease lost, shutdown). Handlers doing long
    /// work should watch it; the pool also stops waiting for them when it fires.
    pub stop: CancellationToken,
}

/// A handler's answer when the attempt did not fail.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// The job's result.
    Done(Value),
    /// The provider is still working on `task_id`: park the job, holding no slot, and run the
    /// handler again (with [`Attempt::task`] set) after `poll_in`.
    Wait { task_id: String, poll_in: Duration },
}

#[async_trait]
pub trait Handler: Send + Sync + 'static {
    /// Run the attempt: a result, a task to wait for, or a classified failure.
    async fn run(&self, attempt: Attempt) -> Result<Reply, Failure>;

    /// `Some(wait)` while the handler cannot take new attempts (no usable key): the pool
    /// leaves its jobs queued meanwhile.
    fn blocked_for(&self) -> Option<Duration> {
        None
    }

    /// Whether [`Handler::room`] can ever be bounded.
    fn bounded(&self) -> bool {
        false
    }

    /// How many more attempts may start now, if that is bounded (a `task` provider's
    /// `max_concurrent`); the pool claims no more than that.
    async fn room(&self) -> Option<usize> {
        None
    }

    /// The pool took `job_id` (a new attempt or a poll); called before the next claim, so that
    /// [`Handler::room`] already counts it.
    async fn claimed(&self, _job_id: &str) {}

    /// Whether this handler ever answers [`Reply::Wait`]; the pool claims polls for it.
    fn parks(&self) -> bool {
        false
    }
}

/// A handler that succeeds at once with `{}`: for benchmarks and tests of the engine itself.
pub struct NoopHandler;

#[async_trait]
impl Handler for NoopHandler {
    async fn run(&self, _attempt: Attempt) -> Result<Reply, Failure> {
        Ok(Reply::Done(Value::Object(Default::default())))
    }
}
