//! The `task` provider type (create-then-poll, video APIs): POST the payload to `create_path`,
//! read the task id at `task_id_pointer`, then poll `status_path` every `poll_interval` until the
//! state at `state_pointer` is a success or failure value, or `max_wait` passes (`timeout`).
//!
//! Between polls the job is parked ([`Reply::Wait`]): it holds no worker slot, and its task id
//! is stored with it, so a poll after a crash or restart asks about the same task instead of
//! paying for a new one.

use super::http::tokens_of;
use super::upstream::{Call, Upstream};
use crate::handler::{Attempt, Handler, Reply};
use async_trait::async_trait;
use genq_config::{Provider, TomlValue, value_text};
use genq_core::{ErrorClass, Failure};
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;

const DETAIL_BYTES: usize = 1000;

pub struct TaskKind {
    pub upstream: Arc<Upstream>,
    pub api: TaskApi,
    pub estimated_tokens: u32,
}

/// Where a provider's task API keeps what genq needs.
#[derive(Debug, Clone)]
pub struct TaskApi {
    pub create_path: String,
    pub status_path: String,
    pub task_id_pointer: String,
    pub state_pointer: String,
    pub success_values: Vec<String>,
    pub failure_values: Vec<String>,
    pub result_pointer: Option<String>,
    pub poll_interval: Duration,
    pub max_wait: Duration,
}

impl TaskApi {
    pub fn from_config(p: &Provider) -> TaskApi {
        let texts = |values: &Option<Vec<TomlValue>>, default: &str| match values {
            Some(v) => v.iter().map(value_text).collect(),
            None => vec![default.to_string()],
        };
        TaskApi {
            create_path: p.create_path.clone().unwrap_or_default(),
            status_path: p.status_path.clone().unwrap_or_default(),
            task_id_pointer: p.task_id_pointer.clone().unwrap_or_else(|| "/id".into()),
            state_pointer: p.state_pointer.clone().unwrap_or_else(|| "/status".into()),
            success_values: texts(&p.success_values, "succeeded"),
            failure_values: texts(&p.failure_values, "failed"),
            result_pointer: p.result_pointer.clone(),
            poll_interval: p.poll_interval.unwrap_or(Duration::from_secs(5)),
            max_wait: p.max_wait.unwrap_or(Duration::from_secs(600)),
        }
    }
}

/// A JSON value as the text it is compared by: the number `1` matches `"1"`.
fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Where a task stands, from a create or status answer.
enum Progress {
    Pending,
    Succeeded(Value),
    Failed,
}

impl TaskKind {
    fn progress(&self, answer: &Value) -> Progress {
        let Some(state) = answer.pointer(&self.api.state_pointer).map(text) else {
            return Progress::Pending;
        };
        if self.api.success_values.contains(&state) {
            let result = match &self.api.result_pointer {
                Some(p) => answer.pointer(p).cloned().unwrap_or(Value::Null),
                None => answer.clone(),
            };
            Progress::Succeeded(result)
        } else if self.api.failure_values.contains(&state) {
            Progress::Failed
        } else {
            Progress::Pending
        }
    }

    /// Turn an answer into the attempt's next step.
    async fn step(&self, job_id: &str, task_id: String, answer: &Value) -> Result<Reply, Failure> {
        match self.progress(answer) {
            Progress::Pending => Ok(Reply::Wait {
                task_id,
                poll_in: self.api.poll_interval,
            }),
            Progress::Succeeded(result) => {
                self.upstream.task_ended(job_id).await;
                Ok(Reply::Done(result))
            }
            Progress::Failed => {
                self.upstream.task_ended(job_id).await;
                let body = answer.to_string();
                let class = self
                    .upstream
                    .rules()
                    .class(None, &body, ErrorClass::Temporary);
                Err(Failure::new(
                    class,
                    format!(
                        "task {task_id} of {} failed: {}",
                        self.upstream.name,
                        super::classify::excerpt(&body, DETAIL_BYTES)
                    ),
                ))
            }
        }
    }

    async fn create(&self, attempt: &Attempt) -> Result<Reply, Failure> {
        if !self.upstream.task_started(&attempt.job_id).await {
            return Err(Failure::new(
                ErrorClass::RateLimited,
                format!("{} has max_concurrent tasks in flight", self.upstream.name),
            )
            .with_retry_after(Some(self.api.poll_interval)));
        }
        let call = Call {
            method: reqwest::Method::POST,
            path: &self.api.create_path,
            body: Some(&attempt.payload),
            tokens: tokens_of(&attempt.payload, self.estimated_tokens),
        };
        let answer = match self.upstream.call(attempt, call).await {
            Ok(answer) => answer,
            Err(failure) => {
                self.upstream.task_ended(&attempt.job_id).await;
                return Err(failure);
            }
        };
        let Some(task_id) = answer
            .pointer(&self.api.task_id_pointer)
            .map(text)
            .filter(|id| !id.is_empty())
        else {
            self.upstream.task_ended(&attempt.job_id).await;
            return Err(Failure::new(
                ErrorClass::Temporary,
                format!(
                    "{} created no task id at {}: {}",
                    self.upstream.name,
                    self.api.task_id_pointer,
                    super::classify::excerpt(&answer.to_string(), DETAIL_BYTES)
                ),
            ));
        };
        tracing::debug!(job_id = %attempt.job_id, task_id = %task_id, "provider task created");
        self.step(&attempt.job_id, task_id, &answer).await
    }

    async fn poll(&self, attempt: &Attempt, task_id: String) -> Result<Reply, Failure> {
        // Renews the task's slot (or takes it again after a restart); a poll goes ahead either
        // way: the task exists.
        self.upstream.task_started(&attempt.job_id).await;
        let path = self.api.status_path.replace("{task_id}", &task_id);
        let call = Call {
            method: reqwest::Method::GET,
            path: &path,
            body: None,
            tokens: 0,
        };
        let waited = attempt.task.as_ref().map_or(Duration::ZERO, |t| {
            (chrono::Utc::now() - t.created_at)
                .to_std()
                .unwrap_or_default()
        });
        let reply = match self.upstream.call(attempt, call).await {
            Ok(answer) => self.step(&attempt.job_id, task_id.clone(), &answer).await?,
            // A poll that did not get through says nothing about the task: poll again, never
            // create a new one.
            Err(f)
                if matches!(
                    f.class,
                    ErrorClass::RateLimited
                        | ErrorClass::Temporary
                        | ErrorClass::Timeout
                        | ErrorClass::Billing
                ) =>
            {
                Reply::Wait {
                    task_id: task_id.clone(),
                    poll_in: f.retry_after.unwrap_or(self.api.poll_interval),
                }
            }
            Err(f) => {
                self.upstream.task_ended(&attempt.job_id).await;
                return Err(f);
            }
        };
        if matches!(reply, Reply::Wait { .. }) && waited >= self.api.max_wait {
            self.upstream.task_ended(&attempt.job_id).await;
            return Err(Failure::new(
                ErrorClass::Timeout,
                format!(
                    "task {task_id} of {} did not finish within max_wait ({})",
                    self.upstream.name,
                    humantime::format_duration(self.api.max_wait)
                ),
            ));
        }
        Ok(reply)
    }
}

#[async_trait]
impl Handler for TaskKind {
    async fn run(&self, attempt: Attempt) -> Result<Reply, Failure> {
        match attempt.task.as_ref().map(|t| t.id.clone()) {
            None => self.create(&attempt).await,
            Some(task_id) => self.poll(&attempt, task_id).await,
        }
    }

    fn blocked_for(&self) -> Option<Duration> {
        self.upstream.blocked_for().map(|(wait, _)| wait)
    }

    fn bounded(&self) -> bool {
        self.upstream.task_room_bounded()
    }

    async fn room(&self) -> Option<usize> {
        self.upstream.task_room().await
    }

    async fn claimed(&self, job_id: &str) {
        self.upstream.task_started(job_id).await;
    }

    fn parks(&self) -> bool {
        true
    }
}
