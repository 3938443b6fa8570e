//! The `demo` provider (SPEC §7): answers after `latency` with a result that echoes the payload,
//! so genq runs with no API key. A payload can steer it:
//! `"simulate": {"fail": "<class>", "fail_attempts": N, "latency_ms": M}` fails the first N
//! attempts (all, without N) with that class, and takes M ms. Like a real provider it enforces
//! `requests_per_minute` per key, answering `rate_limited` with a Retry-After.

use crate::handler::{Attempt, Handler, Reply};
use async_trait::async_trait;
use genq_config::Provider;
use genq_core::simulate::Simulate;
use genq_core::{ErrorClass, Failure};
use serde_json::json;
use std::collections::VecDeque;
use std::io::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

const MINUTE: Duration = Duration::from_secs(60);

pub struct DemoProvider {
    name: String,
    latency: Duration,
    keys: Vec<Key>,
    next_key: AtomicUsize,
    completions: Option<Mutex<std::fs::File>>,
}

struct Key {
    label: String,
    per_minute: Option<u32>,
    /// Start times of the requests of the last minute (a sliding window).
    recent: Mutex<VecDeque<Instant>>,
}

impl DemoProvider {
    pub fn from_config(p: &Provider) -> Result<DemoProvider, String> {
        let per_minute = p.key_requests_per_minute.or(p.requests_per_minute);
        let count = p.keys.len().max(1);
        let keys = (1..=count)
            .map(|i| Key {
                label: format!("{}#{i}", p.name),
                per_minute,
                recent: Mutex::new(VecDeque::new()),
            })
            .collect();
        let completions = match &p.completions_log {
            Some(path) => Some(Mutex::new(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .map_err(|e| format!("completions_log {}: {e}", path.display()))?,
            )),
            None => None,
        };
        Ok(DemoProvider {
            name: p.name.clone(),
            latency: p.latency.unwrap_or(Duration::from_millis(200)),
            keys,
            next_key: AtomicUsize::new(0),
            completions,
        })
    }

    /// Admit one request on the next key, or say how long until that key has room.
    fn admit(&self) -> Result<&Key, Duration> {
        let key = &self.keys[self.next_key.fetch_add(1, Ordering::Relaxed) % self.keys.len()];
        let Some(limit) = key.per_minute else {
            return Ok(key);
        };
        let now = Instant::now();
        let mut recent = key.recent.lock().unwrap();
        while recent
            .front()
            .is_some_and(|t| now.duration_since(*t) >= MINUTE)
        {
            recent.pop_front();
        }
        if recent.len() >= limit as usize {
            let oldest = *recent.front().expect("a full window has a first request");
            return Err(MINUTE.saturating_sub(now.duration_since(oldest)));
        }
        recent.push_back(now);
        Ok(key)
    }

    fn record_completion(&self, attempt: &Attempt, started: chrono::DateTime<chrono::Utc>) {
        if let Some(file) = &self.completions {
            let line = format!(
                "{} {} {} {} {}\n",
                attempt.job_id,
                attempt.attempt,
                attempt.user_id,
                started.timestamp_micros(),
                chrono::Utc::now().timestamp_micros()
            );
            // One write per line on an O_APPEND file: lines from concurrent attempts never mix.
            if let Err(e) = file.lock().unwrap().write_all(line.as_bytes()) {
                tracing::warn!(error = %e, "demo provider: cannot append to completions_log");
            }
        }
    }
}

#[async_trait]
impl Handler for DemoProvider {
    async fn run(&self, attempt: Attempt) -> Result<Reply, Failure> {
        let simulate = Simulate::from_payload(&attempt.payload).map_err(|e| {
            Failure::new(
                ErrorClass::UserError,
                format!("400 from {}: {e}", self.name),
            )
        })?;
        let key = self.admit().map_err(|wait| {
            Failure::new(
                ErrorClass::RateLimited,
                format!("429 from {}: requests_per_minute reached", self.name),
            )
            .with_retry_after(Some(wait.max(Duration::from_millis(1))))
        })?;
        let started = chrono::Utc::now();
        let latency = simulate
            .latency_ms
            .map(Duration::from_millis)
            .unwrap_or(self.latency);
        // No timer for no latency: a zero sleep still waits for the timer's next tick (1 ms).
        if !latency.is_zero() {
            tokio::select! {
                _ = tokio::time::sleep(latency) => {}
                _ = attempt.stop.cancelled() => {
                    return Err(Failure::new(ErrorClass::Canceled, "stopped"));
                }
            }
        }
        if let Some(class) = simulate.failure_for(attempt.attempt) {
            return Err(Failure::new(
                class,
                format!(
                    "simulated {class} from {} on attempt {}",
                    self.name, attempt.attempt
                ),
            ));
        }
        self.record_completion(&attempt, started);
        Ok(Reply::Done(json!({
            "provider": self.name,
            "key": key.label,
            "attempt": attempt.attempt,
            "echo": attempt.payload,
        })))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_rotate_and_each_enforces_its_rate() {
        let mut p = genq_config::demo_provider();
        p.keys = vec!["a".into(), "b".into()];
        p.key_requests_per_minute = Some(2);
        let demo = DemoProvider::from_config(&p).unwrap();
        let labels: Vec<_> = (0..4)
            .map(|_| demo.admit().unwrap().label.clone())
            .collect();
        assert_eq!(labels, ["demo#1", "demo#2", "demo#1", "demo#2"]);
        let wait = demo
            .admit()
            .err()
            .expect("the fifth request in a minute is refused");
        assert!(wait <= MINUTE && wait > Duration::from_secs(59));
    }
}
