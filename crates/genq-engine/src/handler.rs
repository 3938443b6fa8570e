//! What runs one attempt: a provider, or a Rust handler registered through the library.

use async_trait::async_trait;
use genq_core::Failure;
use serde_json::Value;
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
    /// Fires when the attempt must stop (canceled, lease lost, shutdown). Handlers doing long
    /// work should watch it; the pool also stops waiting for them when it fires.
    pub stop: CancellationToken,
}

#[async_trait]
pub trait Handler: Send + Sync + 'static {
    /// Run the attempt: a JSON result, or a classified failure.
    async fn run(&self, attempt: Attempt) -> Result<Value, Failure>;
}

/// A handler that succeeds at once with `{}`: for benchmarks and tests of the engine itself.
pub struct NoopHandler;

#[async_trait]
impl Handler for NoopHandler {
    async fn run(&self, _attempt: Attempt) -> Result<Value, Failure> {
        Ok(Value::Object(Default::default()))
    }
}
