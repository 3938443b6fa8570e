//! One external provider (`http` or `task`): its keys, its rate budgets and concurrency, its
//! error rules, and the one function that sends it a request. Both provider types call
//! [`Upstream::call`]; they differ only in what they ask and how they read the answer.

use super::classify::{Rules, class_of_status, excerpt, exhausted_for, retry_after};
use super::keys::{Key, KeyPool, KeyView};
use super::pace::{Bucket, Budgets};
use crate::handler::Attempt;
use genq_config::{Provider, ProviderType};
use genq_core::{ErrorClass, Failure};
use serde::Serialize;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Semaphore;
use tokio::time::Instant;

/// Most bytes of a provider's body kept in `error.detail`.
const DETAIL_BYTES: usize = 1000;

/// Longest a request waits in its slot for its turn in a rate budget; beyond that it goes back
/// to the queue as a free `rate_limited` wait, so a slot is never held for long.
const MAX_PACE_WAIT: Duration = Duration::from_secs(10);

pub struct Upstream {
    pub name: String,
    pub kind: ProviderType,
    base_url: String,
    client: reqwest::Client,
    pub keys: KeyPool,
    budgets: Arc<dyn Budgets>,
    rpm: Option<Bucket>,
    tpm: Option<Bucket>,
    /// Per key, in key order.
    key_rpm: Vec<Option<Bucket>>,
    key_tpm: Vec<Option<Bucket>>,
    max_concurrent: Option<u32>,
    /// `http`: requests in flight, bounded by `max_concurrent`.
    requests: Option<Arc<Semaphore>>,
    /// `task`: tasks in flight by job id (created, not yet ended), with when each was last
    /// seen; bounded by `max_concurrent`. Entries not seen for `stale_after` (a job canceled
    /// while parked) are dropped.
    tasks: Mutex<HashMap<String, Instant>>,
    stale_after: Duration,
    rules: Rules,
    pub in_flight: AtomicU64,
}

/// What a request asks for.
pub struct Call<'a> {
    pub method: reqwest::Method,
    pub path: &'a str,
    pub body: Option<&'a Value>,
    /// Tokens to reserve in the token budgets (corrected from `usage.total_tokens`).
    pub tokens: u32,
}

/// A provider as `GET /v1/admin/providers` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct ProviderView {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// `ok`, or `waiting` when no key is usable (jobs stay queued) or `max_concurrent` is
    /// reached.
    pub state: &'static str,
    pub why: Option<String>,
    pub in_flight: u64,
    pub tasks_in_flight: Option<u64>,
    pub requests_per_minute: Option<u32>,
    pub tokens_per_minute: Option<u32>,
    pub max_concurrent: Option<u32>,
    pub keys: Vec<KeyView>,
}

impl Upstream {
    pub fn from_config(
        p: &Provider,
        budgets: Arc<dyn Budgets>,
        stale_after: Duration,
    ) -> Result<Upstream, String> {
        let base_url = p.base_url.clone().ok_or("needs base_url")?;
        let client = reqwest::Client::builder()
            .timeout(p.timeout.unwrap_or(Duration::from_secs(60)))
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        let keys = KeyPool::new(
            &p.name,
            &p.keys,
            Duration::from_secs(p.key_disable_seconds.unwrap_or(3600)),
        );
        let per_key = |suffix: &str, limit: Option<u32>| -> Vec<Option<Bucket>> {
            keys.keys()
                .iter()
                .map(|k| Bucket::new(format!("{}/{suffix}", k.label), limit))
                .collect()
        };
        Ok(Upstream {
            rpm: Bucket::new(format!("{}/rpm", p.name), p.requests_per_minute),
            tpm: Bucket::new(format!("{}/tpm", p.name), p.tokens_per_minute),
            key_rpm: per_key("rpm", p.key_requests_per_minute),
            key_tpm: per_key("tpm", p.key_tokens_per_minute),
            requests: match (p.kind, p.max_concurrent) {
                (ProviderType::Http, Some(n)) => Some(Arc::new(Semaphore::new(n as usize))),
                _ => None,
            },
            max_concurrent: p.max_concurrent,
            tasks: Mutex::new(HashMap::new()),
            stale_after,
            rules: Rules::new(&p.error_rules)?,
            name: p.name.clone(),
            kind: p.kind,
            base_url: base_url.trim_end_matches('/').to_string(),
            client,
            keys,
            budgets,
            in_flight: AtomicU64::new(0),
        })
    }

    pub fn rules(&self) -> &Rules {
        &self.rules
    }

    /// Why new attempts cannot start now, and for how long at most.
    pub fn blocked_for(&self) -> Option<(Duration, String)> {
        if let Some(wait) = self.keys.blocked_for() {
            let why = self.keys.pick().err().map_or_else(String::new, |(_, w)| w);
            return Some((wait, format!("no usable key: {why}")));
        }
        if self.kind == ProviderType::Task
            && let Some(max) = self.max_concurrent
            && self.tasks_in_flight() >= max as usize
        {
            return Some((
                Duration::from_secs(1),
                format!("{max} tasks in flight (max_concurrent)"),
            ));
        }
        None
    }

    fn tasks_in_flight(&self) -> usize {
        let mut tasks = self.tasks.lock().unwrap();
        let now = Instant::now();
        tasks.retain(|_, seen| now.duration_since(*seen) < self.stale_after);
        tasks.len()
    }

    /// Count a task job in flight (at create, and at each poll, so that tasks parked before a
    /// restart count again once polled). `false` if `max_concurrent` is reached.
    pub fn task_started(&self, job_id: &str, new: bool) -> bool {
        let in_flight = self.tasks_in_flight();
        let mut tasks = self.tasks.lock().unwrap();
        if new
            && !tasks.contains_key(job_id)
            && self
                .max_concurrent
                .is_some_and(|max| in_flight >= max as usize)
        {
            return false;
        }
        tasks.insert(job_id.to_string(), Instant::now());
        true
    }

    /// How many more tasks may start under `max_concurrent`, if it is set.
    pub fn task_room(&self) -> Option<usize> {
        let max = self.max_concurrent? as usize;
        Some(max.saturating_sub(self.tasks_in_flight()))
    }

    pub fn task_ended(&self, job_id: &str) {
        self.tasks.lock().unwrap().remove(job_id);
    }

    pub fn view(&self) -> ProviderView {
        let why = self.blocked_for().map(|(_, why)| why);
        ProviderView {
            name: self.name.clone(),
            kind: match self.kind {
                ProviderType::Http => "http",
                ProviderType::Task => "task",
                ProviderType::Demo => "demo",
            },
            state: if why.is_some() { "waiting" } else { "ok" },
            why,
            in_flight: self.in_flight.load(Relaxed),
            tasks_in_flight: (self.kind == ProviderType::Task)
                .then(|| self.tasks_in_flight() as u64),
            requests_per_minute: self.rpm.as_ref().map(|b| b.per_minute),
            tokens_per_minute: self.tpm.as_ref().map(|b| b.per_minute),
            max_concurrent: self.max_concurrent,
            keys: self.keys.views(),
        }
    }

    /// The budgets one request of `key` spends: requests, then tokens.
    fn buckets(&self, key: usize, tokens: u32) -> Vec<(&Bucket, f64)> {
        let requests = [&self.rpm, &self.key_rpm[key]].into_iter().flatten();
        let tokens_ = [&self.tpm, &self.key_tpm[key]].into_iter().flatten();
        requests
            .map(|b| (b, 1.0))
            .chain(tokens_.map(|b| (b, tokens as f64)))
            .collect()
    }

    fn token_buckets(&self, key: usize) -> impl Iterator<Item = &Bucket> {
        [&self.tpm, &self.key_tpm[key]].into_iter().flatten()
    }

    async fn give_back_tokens(&self, key: usize, reserved: f64) {
        for bucket in self.token_buckets(key) {
            self.budgets.adjust(bucket, -reserved).await;
        }
    }

    /// Send one request with a usable key, paced by the rate budgets; the answer's JSON, or a
    /// classified failure. Key states and budgets learn from the answer.
    pub async fn call(&self, attempt: &Attempt, call: Call<'_>) -> Result<Value, Failure> {
        // No usable key: wait like a 429 would, without calling anyone.
        let key = self.keys.pick().map_err(|(wait, why)| {
            Failure::new(
                ErrorClass::RateLimited,
                format!("no usable key for {}: {why}", self.name),
            )
            .with_retry_after(Some(wait))
        })?;
        let index = self
            .keys
            .keys()
            .iter()
            .position(|k| std::ptr::eq(k, key))
            .expect("picked from the pool");
        let _permit = match &self.requests {
            Some(s) => Some(s.clone().acquire_owned().await.expect("never closed")),
            None => None,
        };
        let buckets = self.buckets(index, call.tokens);
        let mut wait = Duration::ZERO;
        for (bucket, amount) in &buckets {
            wait = wait.max(self.budgets.reserve(bucket, *amount).await);
        }
        if wait > MAX_PACE_WAIT {
            for (bucket, amount) in &buckets {
                self.budgets.adjust(bucket, -amount).await;
            }
            return Err(Failure::new(
                ErrorClass::RateLimited,
                format!(
                    "{}'s rate budget is spent for the next {:.1}s",
                    self.name,
                    wait.as_secs_f64()
                ),
            )
            .with_retry_after(Some(wait)));
        }
        tokio::time::sleep(wait).await;

        self.in_flight.fetch_add(1, Relaxed);
        let answer = self.send(key, attempt, &call).await;
        self.in_flight.fetch_sub(1, Relaxed);
        key.requests.fetch_add(1, Relaxed);
        let reserved = call.tokens as f64;
        let (status, headers, body) = match answer {
            Ok(answer) => answer,
            Err(failure) => {
                self.give_back_tokens(index, reserved).await;
                return Err(failure);
            }
        };

        if let Some(spent) = exhausted_for(|name| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        }) {
            // The provider says this key's budget is gone until the reset: stop using it
            // until then rather than learn it from a 429.
            self.keys.cool(key, Some(spent));
        }
        if (200..300).contains(&status) {
            let value: Value = serde_json::from_str(&body).map_err(|e| {
                Failure::new(
                    ErrorClass::Temporary,
                    format!(
                        "{} ({}) answered {status} with a body that is not JSON ({e}): {}",
                        self.name,
                        key.label,
                        excerpt(&body, DETAIL_BYTES)
                    ),
                )
            })?;
            if let Some(used) = value.pointer("/usage/total_tokens").and_then(Value::as_f64) {
                for bucket in self.token_buckets(index) {
                    self.budgets.adjust(bucket, used - reserved).await;
                }
            }
            return Ok(value);
        }
        // Refused or failed: the tokens were not spent.
        self.give_back_tokens(index, reserved).await;
        let retry_after = retry_after(
            headers
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok()),
        );
        let class = self
            .rules
            .class(Some(status), &body, class_of_status(status));
        match class {
            ErrorClass::RateLimited => {
                key.rate_limited.fetch_add(1, Relaxed);
                self.keys.cool(key, retry_after);
            }
            ErrorClass::Billing => {
                key.errors.fetch_add(1, Relaxed);
                self.keys.disable(key);
            }
            _ => {
                key.errors.fetch_add(1, Relaxed);
            }
        }
        Err(Failure::new(
            class,
            format!(
                "HTTP {status} from {} ({}): {}",
                self.name,
                key.label,
                excerpt(&body, DETAIL_BYTES)
            ),
        )
        .with_retry_after(retry_after))
    }

    /// `genq doctor`: GET `path`, with the key at `key` if given; the status, or why no
    /// answer came. Counts nothing and changes no key state.
    pub async fn probe(&self, key: Option<usize>, path: &str) -> Result<u16, String> {
        let mut request = self.client.get(format!("{}{path}", self.base_url));
        if let Some(k) = key.and_then(|i| self.keys.keys().get(i)) {
            request = request.bearer_auth(&k.secret);
        }
        match request.send().await {
            Ok(r) => Ok(r.status().as_u16()),
            Err(e) if e.is_timeout() => Err(format!("timed out: {e}")),
            Err(e) => Err(format!("no answer: {e}")),
        }
    }

    async fn send(
        &self,
        key: &Key,
        attempt: &Attempt,
        call: &Call<'_>,
    ) -> Result<(u16, reqwest::header::HeaderMap, String), Failure> {
        let mut request = self
            .client
            .request(
                call.method.clone(),
                format!("{}{}", self.base_url, call.path),
            )
            .bearer_auth(&key.secret)
            .header("X-Genq-Job-Id", &attempt.job_id)
            .header("X-Genq-Attempt", attempt.attempt.to_string());
        if let Some(body) = call.body {
            // One attempt never pays twice for one request, even if it is sent again.
            request = request
                .header(
                    "Idempotency-Key",
                    format!("{}:{}", attempt.job_id, attempt.attempt),
                )
                .json(body);
        }
        let network = |e: reqwest::Error| {
            key.errors.fetch_add(1, Relaxed);
            let what = if e.is_timeout() {
                "timed out"
            } else {
                "failed"
            };
            // reqwest's error text names the URL, never the Authorization header.
            Failure::new(
                ErrorClass::Temporary,
                format!("request to {} ({}) {what}: {e}", self.name, key.label),
            )
        };
        let response = request.send().await.map_err(network)?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response.text().await.map_err(network)?;
        Ok((status, headers, body))
    }
}
