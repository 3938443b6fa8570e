//! Pacing: spend a provider's rate budget evenly, so that the whole allowed rate is used and no
//! request arrives early enough to be answered 429.
//!
//! Each budget (a provider's or a key's requests or tokens per minute) is a GCRA bucket whose
//! whole state is one instant, its *theoretical arrival time* (TAT): the moment the budget is
//! spent up to. Reserving `n` units moves the TAT forward by `n / rate`, and the caller waits
//! until the old TAT (its turn). No burst is allowed, so any 60 s window holds at most the
//! per-minute limit plus one request, and [`SAFETY`] keeps a margin for that one and for clock
//! jitter.
//!
//! The state is one value per bucket on purpose: a database can keep it in one row and move it
//! with one `UPDATE … SET tat = greatest(tat, now) + n / rate RETURNING`, which makes the same
//! budget hold across every process of a cluster. [`Budgets`] is that seam: [`StoreBudgets`]
//! keeps them in the database (PostgreSQL, `Store::budget`, on the database's clock);
//! [`LocalBudgets`] in this process (on SQLite the process is the cluster).
//!
//! Hand-written rather than `governor`: governor cannot give units back, which correcting a
//! token reservation from `usage.total_tokens` needs, nor push a bucket forward when a
//! provider's `x-ratelimit-reset-*` header says its budget is spent.

use async_trait::async_trait;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;

/// Share of a configured limit that is paced: the margin absorbs timing jitter between this
/// process and the provider's window.
pub const SAFETY: f64 = 0.985;

/// A per-minute limit on one bucket.
#[derive(Debug, Clone, PartialEq)]
pub struct Bucket {
    /// `openrouter/rpm`, `openrouter#2/tpm`: names a budget, never contains a key.
    pub name: String,
    pub per_minute: u32,
}

impl Bucket {
    pub fn new(name: String, per_minute: Option<u32>) -> Option<Bucket> {
        per_minute.map(|per_minute| Bucket { name, per_minute })
    }

    /// Seconds that one unit of this budget takes.
    fn unit(&self) -> f64 {
        60.0 / (self.per_minute.max(1) as f64 * SAFETY)
    }
}

/// Rate budgets; see the module docs.
#[async_trait]
pub trait Budgets: Send + Sync {
    /// Take `amount` units of `bucket` and say how long to wait before using them.
    async fn reserve(&self, bucket: &Bucket, amount: f64) -> Duration;

    /// Give back (`delta < 0`) or take more (`delta > 0`) of an earlier reservation.
    async fn adjust(&self, bucket: &Bucket, delta: f64);

    /// Nothing more of `bucket` for `wait` (the provider said its budget is spent).
    async fn hold(&self, bucket: &Bucket, wait: Duration);
}

/// Budgets in this process's memory.
#[derive(Default)]
pub struct LocalBudgets {
    tat: Mutex<HashMap<String, Instant>>,
}

#[async_trait]
impl Budgets for LocalBudgets {
    async fn reserve(&self, bucket: &Bucket, amount: f64) -> Duration {
        let now = Instant::now();
        let mut tat = self.tat.lock().unwrap();
        let entry = tat.entry(bucket.name.clone()).or_insert(now);
        let start = (*entry).max(now);
        *entry = start + Duration::from_secs_f64(amount.max(0.0) * bucket.unit());
        start - now
    }

    async fn adjust(&self, bucket: &Bucket, delta: f64) {
        let now = Instant::now();
        let mut tat = self.tat.lock().unwrap();
        let entry = tat.entry(bucket.name.clone()).or_insert(now);
        let shift = Duration::from_secs_f64(delta.abs() * bucket.unit());
        *entry = if delta >= 0.0 {
            *entry + shift
        } else {
            // Units given back make room from now on, not in the past.
            entry.checked_sub(shift).unwrap_or(now).max(now)
        };
    }

    async fn hold(&self, bucket: &Bucket, wait: Duration) {
        let until = Instant::now() + wait;
        let mut tat = self.tat.lock().unwrap();
        let entry = tat.entry(bucket.name.clone()).or_insert(until);
        *entry = (*entry).max(until);
    }
}

/// Budgets in the database, spent by every process that shares it (PostgreSQL), on the
/// database's clock.
pub struct StoreBudgets {
    shared: std::sync::Arc<dyn genq_store::Coordination>,
}

impl StoreBudgets {
    pub fn new(shared: std::sync::Arc<dyn genq_store::Coordination>) -> StoreBudgets {
        StoreBudgets { shared }
    }

    async fn run(&self, bucket: &Bucket, op: genq_store::BudgetOp) -> Duration {
        match self.shared.budget(&bucket.name, op).await {
            Ok(wait) => wait,
            Err(e) => {
                // Without the shared budget, holding back is safer than a burst of 429s.
                tracing::warn!(error = %e, bucket = %bucket.name, "rate budget unavailable");
                Duration::from_secs(1)
            }
        }
    }
}

fn micros(seconds: f64) -> i64 {
    (seconds * 1e6).round() as i64
}

#[async_trait]
impl Budgets for StoreBudgets {
    async fn reserve(&self, bucket: &Bucket, amount: f64) -> Duration {
        let cost = micros(amount.max(0.0) * bucket.unit());
        self.run(bucket, genq_store::BudgetOp::Reserve(cost)).await
    }

    async fn adjust(&self, bucket: &Bucket, delta: f64) {
        let shift = micros(delta * bucket.unit());
        self.run(bucket, genq_store::BudgetOp::Adjust(shift)).await;
    }

    async fn hold(&self, bucket: &Bucket, wait: Duration) {
        let us = wait.as_micros().min(i64::MAX as u128) as i64;
        self.run(bucket, genq_store::BudgetOp::Hold(us)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rpm(n: u32) -> Bucket {
        Bucket::new("p/rpm".into(), Some(n)).unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn reservations_are_spaced_evenly() {
        let budgets = LocalBudgets::default();
        let b = rpm(600);
        let waits: Vec<Duration> = {
            let mut v = Vec::new();
            for _ in 0..4 {
                v.push(budgets.reserve(&b, 1.0).await);
            }
            v
        };
        let step = 0.1 / SAFETY;
        for (i, w) in waits.iter().enumerate() {
            assert!(
                (w.as_secs_f64() - i as f64 * step).abs() < 1e-6,
                "{waits:?}"
            );
        }
        // Time passing spends the queue down; an idle bucket does not bank a burst.
        tokio::time::advance(Duration::from_secs(10)).await;
        assert_eq!(budgets.reserve(&b, 1.0).await, Duration::ZERO);
        assert!(budgets.reserve(&b, 1.0).await > Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn corrections_and_holds_move_the_budget() {
        let budgets = LocalBudgets::default();
        let tpm = Bucket::new("p/tpm".into(), Some(6000)).unwrap();
        // 1000 tokens reserved, 100 used: 900 come back.
        assert_eq!(budgets.reserve(&tpm, 1000.0).await, Duration::ZERO);
        budgets.adjust(&tpm, -900.0).await;
        let wait = budgets.reserve(&tpm, 1.0).await.as_secs_f64();
        assert!((wait - 1.0 / SAFETY).abs() < 1e-3, "{wait}");
        // Giving back more than is queued never banks credit.
        budgets.adjust(&tpm, -1e9).await;
        assert_eq!(budgets.reserve(&tpm, 1.0).await, Duration::ZERO);
        // A provider that says its budget is spent for 3 s holds everything for 3 s.
        let b = rpm(600);
        budgets.hold(&b, Duration::from_secs(3)).await;
        assert_eq!(budgets.reserve(&b, 1.0).await, Duration::from_secs(3));
    }
}
