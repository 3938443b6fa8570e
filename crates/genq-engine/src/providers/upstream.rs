//! One external provider (`http` or `task`): its keys, its rate budgets and concurrency, its
//! error rules, and the one function that sends it a request. Both provider types call
//! [`Upstream::call`]; they differ only in what they ask and how they read the answer.

use super::classify::{Rules, class_of_status, excerpt, exhausted_for, retry_after};
use super::keys::{Key, KeyPool, KeyView, NoKey};
use super::pace::{Bucket, Budgets};
use super::redact::Redactor;
use super::slots::Slots;
use crate::handler::Attempt;
use genq_config::{Provider, ProviderType};
use genq_core::{ErrorClass, Failure};
use serde::Serialize;
use serde_json::Value;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

/// Most bytes of a provider's body kept in `error.detail`.
const DETAIL_BYTES: usize = 1000;

/// Longest a request waits in its slot for its turn in a rate budget (or for a slot under
/// `max_concurrent`); beyond that it gives its reservation back and returns to the queue as a
/// free `rate_limited` wait until its turn, so that an attempt never sits in a worker slot for
/// long: slots stay free for other providers' jobs, and a worker that dies loses no attempt
/// that was only waiting.
const MAX_PACE_WAIT: Duration = Duration::from_secs(2);

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
    /// `max_concurrent` as slots: of requests (`http`) or of tasks in flight (`task`).
    slots: Arc<dyn Slots>,
    /// How long a slot outlives a holder that never gives it back (a crash).
    slot_ttl: Duration,
    rules: Rules,
    redactor: Redactor,
    pub in_flight: AtomicU64,
    metrics: Arc<crate::metrics::Metrics>,
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
    /// Requests this process sent in the last minute, all keys.
    pub requests_last_minute: u64,
    pub tokens_per_minute: Option<u32>,
    pub max_concurrent: Option<u32>,
    pub keys: Vec<KeyView>,
}

impl Upstream {
    pub fn from_config(
        p: &Provider,
        budgets: Arc<dyn Budgets>,
        slots: Arc<dyn Slots>,
        redactor: Redactor,
        metrics: Arc<crate::metrics::Metrics>,
    ) -> Result<Upstream, String> {
        let base_url = p.base_url.clone().ok_or("needs base_url")?;
        let timeout = p.timeout.unwrap_or(Duration::from_secs(60));
        // A request's slot lasts as long as the request may; a task's from one poll to the
        // next, with room for a poll that is retried after its lease.
        let slot_ttl = match p.kind {
            ProviderType::Task => {
                p.poll_interval.unwrap_or(Duration::from_secs(5)) * 2 + Duration::from_secs(120)
            }
            _ => timeout + Duration::from_secs(30),
        };
        let client = reqwest::Client::builder()
            .timeout(timeout)
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
            max_concurrent: p.max_concurrent,
            slots,
            slot_ttl,
            rules: Rules::new(&p.error_rules)?,
            redactor,
            name: p.name.clone(),
            kind: p.kind,
            base_url: base_url.trim_end_matches('/').to_string(),
            client,
            keys,
            budgets,
            in_flight: AtomicU64::new(0),
            metrics,
        })
    }

    pub fn rules(&self) -> &Rules {
        &self.rules
    }

    /// Why new attempts cannot start now (no usable key), and for how long at most.
    pub fn blocked_for(&self) -> Option<(Duration, String)> {
        let (wait, why) = self.keys.blocked_for()?;
        Some((wait, format!("no usable key: {why}")))
    }

    fn tasks(&self) -> String {
        format!("{}/tasks", self.name)
    }

    /// Hold a slot for a task job (at create, and again at each poll, which renews it).
    /// `false` if `max_concurrent` tasks are in flight.
    pub async fn task_started(&self, job_id: &str) -> bool {
        match self.max_concurrent {
            Some(max) => {
                self.slots
                    .take(&self.tasks(), job_id, max, self.slot_ttl)
                    .await
            }
            None => true,
        }
    }

    pub fn task_room_bounded(&self) -> bool {
        self.max_concurrent.is_some()
    }

    /// How many more tasks may start under `max_concurrent`, if it is set.
    pub async fn task_room(&self) -> Option<usize> {
        let max = self.max_concurrent? as usize;
        Some(max.saturating_sub(self.slots.in_use(&self.tasks()).await))
    }

    pub async fn task_ended(&self, job_id: &str) {
        if self.max_concurrent.is_some() {
            self.slots.free(&self.tasks(), job_id).await;
        }
    }

    pub async fn view(&self) -> ProviderView {
        let mut why = self.blocked_for().map(|(_, why)| why);
        let tasks_in_flight = match self.kind {
            ProviderType::Task => Some(self.slots.in_use(&self.tasks()).await as u64),
            _ => None,
        };
        if let (Some(n), Some(max)) = (tasks_in_flight, self.max_concurrent)
            && why.is_none()
            && n >= max as u64
        {
            why = Some(format!("{max} tasks in flight (max_concurrent)"));
        }
        let keys = self.keys.views();
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
            tasks_in_flight,
            requests_per_minute: self.rpm.as_ref().map(|b| b.per_minute),
            tokens_per_minute: self.tpm.as_ref().map(|b| b.per_minute),
            max_concurrent: self.max_concurrent,
            requests_last_minute: keys.iter().map(|k| k.requests_last_minute).sum(),
            keys,
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

    /// Send one request with a usable key, within `max_concurrent` (`http`) and paced by the
    /// rate budgets; the answer's JSON, or a classified failure. Key states and budgets learn
    /// from the answer.
    pub async fn call(&self, attempt: &Attempt, call: Call<'_>) -> Result<Value, Failure> {
        let Some(max) = self
            .max_concurrent
            .filter(|_| self.kind == ProviderType::Http)
        else {
            return self.paced(attempt, call).await;
        };
        let name = format!("{}/requests", self.name);
        let holder = format!(
            "{}:{}:{}",
            attempt.job_id,
            attempt.attempt,
            genq_core::ids::new_id()
        );
        let taken = self
            .slots
            .take_within(&name, &holder, max, self.slot_ttl, MAX_PACE_WAIT)
            .await;
        if !taken {
            return Err(Failure::new(
                ErrorClass::RateLimited,
                format!(
                    "{} has max_concurrent = {max} requests in flight",
                    self.name
                ),
            )
            .with_retry_after(Some(Duration::from_secs(1))));
        }
        let answer = self.paced(attempt, call).await;
        self.slots.free(&name, &holder).await;
        answer
    }

    async fn paced(&self, attempt: &Attempt, call: Call<'_>) -> Result<Value, Failure> {
        let deadline = tokio::time::Instant::now() + MAX_PACE_WAIT;
        let picked = loop {
            let probe_ended = self.keys.probe_ended();
            match self.keys.pick() {
                Ok(picked) => break picked,
                // Every usable key is on probation with its one request in flight: its
                // answer decides, and it comes within a request's time.
                Err(NoKey::Probing) => {
                    if tokio::time::timeout_at(deadline, probe_ended)
                        .await
                        .is_err()
                    {
                        return Err(Failure::new(
                            ErrorClass::RateLimited,
                            format!("every usable key of {} is still on probation", self.name),
                        )
                        .with_retry_after(Some(Duration::from_secs(1))));
                    }
                }
                // No usable key: wait like a 429 would, without calling anyone.
                Err(NoKey::Unusable(wait, why)) => {
                    return Err(Failure::new(
                        ErrorClass::RateLimited,
                        format!("no usable key for {}: {why}", self.name),
                    )
                    .with_retry_after(Some(wait)));
                }
            }
        };
        let (key, index) = (picked.key, picked.index);
        let buckets = self.buckets(index, call.tokens);
        let mut wait = Duration::ZERO;
        for (bucket, amount) in &buckets {
            wait = wait.max(self.budgets.reserve(bucket, *amount).await);
        }
        if wait > Duration::ZERO {
            self.metrics.budget_wait(&self.name, wait > MAX_PACE_WAIT);
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
        key.recent.record(std::time::SystemTime::now());
        self.metrics.provider_request(
            &self.name,
            &key.label,
            answer.as_ref().ok().map(|(status, ..)| *status),
        );
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
            picked.answered_ok();
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
            // reqwest's error text names the URL, never the Authorization header; redacted
            // all the same, in case a key was written into base_url.
            Failure::new(
                ErrorClass::Temporary,
                self.redactor
                    .text(&format!(
                        "request to {} ({}) {what}: {e}",
                        self.name, key.label
                    ))
                    .into_owned(),
            )
        };
        let response = request.send().await.map_err(network)?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let mut body = response.text().await.map_err(network)?;
        // Some providers echo the request's Authorization header; nothing genq keeps from an
        // answer (result, error detail, logs) may hold a key.
        if let std::borrow::Cow::Owned(clean) = self.redactor.text(&body) {
            body = clean;
        }
        Ok((status, headers, body))
    }
}
