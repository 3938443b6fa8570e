//! Per-key limits the way providers enforce them: requests and tokens in a sliding minute, and
//! requests in flight.

use crate::FakeConfig;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const MINUTE: Duration = Duration::from_secs(60);

#[derive(Default)]
struct Window {
    requests: VecDeque<Instant>,
    tokens: VecDeque<(Instant, u64)>,
    token_sum: u64,
    in_flight: u32,
}

impl Window {
    fn expire(&mut self, now: Instant) {
        while self
            .requests
            .front()
            .is_some_and(|t| now.duration_since(*t) >= MINUTE)
        {
            self.requests.pop_front();
        }
        while let Some((t, n)) = self.tokens.front().copied() {
            if now.duration_since(t) < MINUTE {
                break;
            }
            self.token_sum -= n;
            self.tokens.pop_front();
        }
    }
}

/// Why a request was refused, and when to come back.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Refusal {
    Requests(Duration),
    Tokens(Duration),
    Concurrency,
}

impl Refusal {
    pub(crate) fn retry_after_secs(self) -> u64 {
        match self {
            Refusal::Requests(d) | Refusal::Tokens(d) => d.as_secs_f64().ceil().max(1.0) as u64,
            Refusal::Concurrency => 1,
        }
    }
}

pub(crate) struct KeyLimits {
    rpm: Option<u32>,
    tpm: Option<u32>,
    max_concurrent: Option<u32>,
    windows: Arc<Mutex<HashMap<String, Window>>>,
}

/// A request in flight; leaving frees its concurrency slot.
pub(crate) struct InFlight {
    key: String,
    windows: Arc<Mutex<HashMap<String, Window>>>,
    /// With a request limit: what is left of it in the window and when the oldest request
    /// leaves it, for the `x-ratelimit-*` headers.
    pub(crate) remaining: Option<(u32, Duration)>,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if let Some(w) = self.windows.lock().unwrap().get_mut(&self.key) {
            w.in_flight -= 1;
        }
    }
}

impl KeyLimits {
    pub(crate) fn new(config: &FakeConfig) -> KeyLimits {
        KeyLimits {
            rpm: config.requests_per_minute,
            tpm: config.tokens_per_minute,
            max_concurrent: config.max_concurrent,
            windows: Arc::default(),
        }
    }

    /// Admit one request that will use `tokens`, or refuse it.
    pub(crate) fn admit(&self, key: &str, tokens: u64) -> Result<InFlight, Refusal> {
        let now = Instant::now();
        let mut windows = self.windows.lock().unwrap();
        let w = windows.entry(key.to_string()).or_default();
        w.expire(now);
        if let Some(rpm) = self.rpm
            && w.requests.len() >= rpm as usize
        {
            let oldest = w.requests[0];
            return Err(Refusal::Requests(
                MINUTE.saturating_sub(now.duration_since(oldest)),
            ));
        }
        if let Some(tpm) = self.tpm
            && w.token_sum + tokens > tpm as u64
            && !w.tokens.is_empty()
        {
            let oldest = w.tokens[0].0;
            return Err(Refusal::Tokens(
                MINUTE.saturating_sub(now.duration_since(oldest)),
            ));
        }
        if let Some(max) = self.max_concurrent
            && w.in_flight >= max
        {
            return Err(Refusal::Concurrency);
        }
        w.requests.push_back(now);
        w.tokens.push_back((now, tokens));
        w.token_sum += tokens;
        w.in_flight += 1;
        let remaining = self.rpm.map(|rpm| {
            let left = rpm.saturating_sub(w.requests.len() as u32);
            (
                left,
                MINUTE.saturating_sub(now.duration_since(w.requests[0])),
            )
        });
        Ok(InFlight {
            key: key.to_string(),
            windows: self.windows.clone(),
            remaining,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_limit_refuses_beyond_it() {
        let config = FakeConfig {
            requests_per_minute: Some(2),
            tokens_per_minute: Some(100),
            max_concurrent: Some(1),
            ..FakeConfig::default()
        };
        let limits = KeyLimits::new(&config);
        let first = limits.admit("a", 10).unwrap();
        assert_eq!(limits.admit("a", 10).err(), Some(Refusal::Concurrency));
        drop(first);
        let _second = limits.admit("b", 10).unwrap();
        drop(_second);
        assert!(
            limits
                .admit("a", 95)
                .is_err_and(|r| matches!(r, Refusal::Tokens(_)))
        );
        let _ = limits.admit("a", 10).unwrap();
        let refused = limits.admit("a", 1).err().expect("over the rate");
        assert!(matches!(refused, Refusal::Requests(_)));
        assert!(refused.retry_after_secs() >= 59);
    }
}
