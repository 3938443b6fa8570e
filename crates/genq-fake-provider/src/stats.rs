//! What the fake provider saw, for tests and benchmarks (`GET /stats`).

use serde::Serialize;
use std::collections::BTreeMap;

#[derive(Debug, Clone, Default, Serialize, serde::Deserialize, PartialEq)]
pub struct KeyStats {
    pub requests: u64,
    /// Requests answered 429.
    pub rate_limited: u64,
    /// Requests answered with another error (401, 4xx, 5xx).
    pub errors: u64,
    pub tokens: u64,
    pub tasks_created: u64,
    /// When each request arrived, in milliseconds since the fake started (per key only): for
    /// checking the pace of a rate limit over any window.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub arrivals_ms: Vec<u64>,
}

#[derive(Debug, Clone, Default, Serialize, serde::Deserialize, PartialEq)]
pub struct Stats {
    /// By key.
    pub keys: BTreeMap<String, KeyStats>,
    /// By `X-Genq-Job-Id`.
    pub jobs: BTreeMap<String, KeyStats>,
    /// Most tasks running at once (created, not yet at their latency).
    pub max_tasks_in_flight: u64,
}

impl Stats {
    pub(crate) fn record(&mut self, key: &str, job: Option<&str>, f: impl Fn(&mut KeyStats)) {
        f(self.keys.entry(key.to_string()).or_default());
        if let Some(job) = job {
            f(self.jobs.entry(job.to_string()).or_default());
        }
    }

    /// A request arrived `at_ms` after the fake started.
    pub(crate) fn arrived(&mut self, key: &str, job: Option<&str>, at_ms: u64) {
        self.record(key, job, |s| s.requests += 1);
        self.keys
            .entry(key.to_string())
            .or_default()
            .arrivals_ms
            .push(at_ms);
    }
}
