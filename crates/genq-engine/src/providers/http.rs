//! The `http` provider type: POST the job's payload as JSON to `base_url + path` (the kind's
//! `path`) and take the JSON answer as the result; OpenAI-compatible APIs work this way.

use super::upstream::{Call, Upstream};
use crate::handler::{Attempt, Handler, Reply};
use async_trait::async_trait;
use genq_core::Failure;
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;

/// The handler of one kind: a provider at the kind's path.
pub struct HttpKind {
    pub upstream: Arc<Upstream>,
    pub path: String,
    /// Tokens reserved when the payload has no `max_tokens` (the kind's `estimated_tokens`).
    pub estimated_tokens: u32,
}

/// Tokens to reserve for a request: its `max_tokens` (or `max_completion_tokens`), else the
/// kind's estimate.
pub fn tokens_of(payload: &Value, estimated: u32) -> u32 {
    ["max_tokens", "max_completion_tokens"]
        .iter()
        .find_map(|k| payload.get(*k).and_then(Value::as_u64))
        .map_or(estimated, |n| n.min(u32::MAX as u64) as u32)
}

#[async_trait]
impl Handler for HttpKind {
    async fn run(&self, attempt: Attempt) -> Result<Reply, Failure> {
        let call = Call {
            method: reqwest::Method::POST,
            path: &self.path,
            body: Some(&attempt.payload),
            tokens: tokens_of(&attempt.payload, self.estimated_tokens),
        };
        self.upstream.call(&attempt, call).await.map(Reply::Done)
    }

    fn blocked_for(&self) -> Option<Duration> {
        self.upstream.blocked_for().map(|(wait, _)| wait)
    }
}
