//! The `http` provider type: POST the job's payload as JSON to `base_url + path` (the kind's
//! `path`) and take the JSON answer as the result; OpenAI-compatible APIs work this way. Keys
//! are used round-robin and appear only in the `Authorization` header, never in a detail, a log
//! line or a label (`<provider>#<n>` names a key).

use super::classify::{class_of_status, excerpt, retry_after};
use crate::handler::{Attempt, Handler};
use async_trait::async_trait;
use genq_config::Provider;
use genq_core::{ErrorClass, Failure};
use serde_json::Value;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Most bytes of a provider's body kept in `error.detail`.
const DETAIL_BYTES: usize = 1000;

pub struct HttpProvider {
    name: String,
    base_url: String,
    client: reqwest::Client,
    keys: Vec<Key>,
    next_key: AtomicUsize,
    disable_for: Duration,
}

struct Key {
    label: String,
    secret: String,
    state: Mutex<KeyState>,
}

/// SPEC §7 key states. A 429 cools a key for its Retry-After; a `billing` failure disables it
/// for `key_disable_seconds`. Both end by themselves.
#[derive(Debug, Clone, Copy)]
enum KeyState {
    Ok,
    Cooling(Instant),
    Disabled(Instant),
}

/// How long a 429 without Retry-After cools a key.
const DEFAULT_COOLING: Duration = Duration::from_secs(60);

impl HttpProvider {
    pub fn from_config(p: &Provider) -> Result<HttpProvider, String> {
        let base_url = p
            .base_url
            .clone()
            .ok_or("an http provider needs base_url")?;
        let client = reqwest::Client::builder()
            .timeout(p.timeout.unwrap_or(Duration::from_secs(60)))
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        Ok(HttpProvider {
            name: p.name.clone(),
            base_url: base_url.trim_end_matches('/').to_string(),
            client,
            keys: p
                .keys
                .iter()
                .enumerate()
                .map(|(i, secret)| Key {
                    label: format!("{}#{}", p.name, i + 1),
                    secret: secret.clone(),
                    state: Mutex::new(KeyState::Ok),
                })
                .collect(),
            next_key: AtomicUsize::new(0),
            disable_for: Duration::from_secs(p.key_disable_seconds.unwrap_or(3600)),
        })
    }

    /// The next usable key, round-robin; or, when none is, how long until one may be and why.
    fn pick(&self) -> Result<&Key, (Duration, String)> {
        let now = Instant::now();
        let start = self.next_key.fetch_add(1, Ordering::Relaxed);
        let mut soonest = Duration::MAX;
        let mut why = Vec::new();
        for i in 0..self.keys.len() {
            let key = &self.keys[(start + i) % self.keys.len()];
            let mut state = key.state.lock().unwrap();
            let until = match *state {
                KeyState::Ok => return Ok(key),
                KeyState::Cooling(t) | KeyState::Disabled(t) if t <= now => {
                    *state = KeyState::Ok;
                    return Ok(key);
                }
                KeyState::Cooling(t) => {
                    why.push(format!("{} cooling", key.label));
                    t
                }
                KeyState::Disabled(t) => {
                    why.push(format!("{} disabled", key.label));
                    t
                }
            };
            soonest = soonest.min(until - now);
        }
        Err((soonest, why.join(", ")))
    }

    /// The handler of one kind: this provider at the kind's path.
    pub fn at(self: &Arc<Self>, path: &str) -> HttpKind {
        HttpKind {
            provider: self.clone(),
            url: format!("{}{}", self.base_url, path),
        }
    }
}

pub struct HttpKind {
    provider: Arc<HttpProvider>,
    url: String,
}

#[async_trait]
impl Handler for HttpKind {
    async fn run(&self, attempt: Attempt) -> Result<Value, Failure> {
        let p = &self.provider;
        // No usable key: wait like a 429 would (free, up to the cap) without calling anyone.
        let key = p.pick().map_err(|(wait, why)| {
            Failure::new(
                ErrorClass::RateLimited,
                format!("no usable key for {}: {why}", p.name),
            )
            .with_retry_after(Some(wait))
        })?;
        let sent = p
            .client
            .post(&self.url)
            .bearer_auth(&key.secret)
            .header("X-Genq-Job-Id", &attempt.job_id)
            .header("X-Genq-Attempt", attempt.attempt.to_string())
            .json(&attempt.payload)
            .send()
            .await;
        let response = match sent {
            Ok(r) => r,
            // reqwest's error text names the URL, never the Authorization header.
            Err(e) => {
                let what = if e.is_timeout() {
                    "timed out"
                } else {
                    "failed"
                };
                return Err(Failure::new(
                    ErrorClass::Temporary,
                    format!("request to {} ({}) {what}: {e}", p.name, key.label),
                ));
            }
        };
        let status = response.status().as_u16();
        let wait = retry_after(
            response
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok()),
        );
        let body = response.text().await.unwrap_or_default();
        if (200..300).contains(&status) {
            return serde_json::from_str(&body).map_err(|e| {
                Failure::new(
                    ErrorClass::Temporary,
                    format!(
                        "{} ({}) answered {status} with a body that is not JSON ({e}): {}",
                        p.name,
                        key.label,
                        excerpt(&body, DETAIL_BYTES)
                    ),
                )
            });
        }
        let class = class_of_status(status);
        let now = Instant::now();
        match class {
            ErrorClass::RateLimited => {
                *key.state.lock().unwrap() =
                    KeyState::Cooling(now + wait.unwrap_or(DEFAULT_COOLING));
            }
            ErrorClass::Billing => {
                *key.state.lock().unwrap() = KeyState::Disabled(now + p.disable_for);
                tracing::warn!(provider = %p.name, key = %key.label, "key disabled after a billing failure");
            }
            _ => {}
        }
        Err(Failure::new(
            class,
            format!(
                "HTTP {status} from {} ({}): {}",
                p.name,
                key.label,
                excerpt(&body, DETAIL_BYTES)
            ),
        )
        .with_retry_after(wait))
    }
}
