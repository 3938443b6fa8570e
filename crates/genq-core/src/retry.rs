//! The retry schedule: how long a failed attempt waits before the next one.

use rand::Rng;
use std::time::Duration;

/// SPEC §3 defaults, from the seeds: 5 retries after 1s, 5s, 15s, 1m, 5m, each ±10%.
pub const DEFAULT_MAX_RETRIES: u32 = 5;
pub const DEFAULT_DELAYS: [Duration; 5] = [
    Duration::from_secs(1),
    Duration::from_secs(5),
    Duration::from_secs(15),
    Duration::from_secs(60),
    Duration::from_secs(300),
];
pub const JITTER: f64 = 0.10;

#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    pub max_retries: u32,
    /// Delay before retry 1, 2, ...; the last one repeats when there are more retries than delays.
    pub delays: Vec<Duration>,
    /// Fraction of each delay added or removed at random, so that a burst of failures does not
    /// come back as a burst.
    pub jitter: f64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_retries: DEFAULT_MAX_RETRIES,
            delays: DEFAULT_DELAYS.to_vec(),
            jitter: JITTER,
        }
    }
}

impl RetryPolicy {
    /// The nominal delay before retry number `retry` (1-based), without jitter.
    pub fn base_delay(&self, retry: u32) -> Duration {
        let index = (retry.max(1) - 1) as usize;
        self.delays
            .get(index)
            .or(self.delays.last())
            .copied()
            .unwrap_or(Duration::ZERO)
    }

    /// The delay before retry number `retry`, with jitter drawn from `rng`.
    pub fn delay(&self, retry: u32, rng: &mut impl Rng) -> Duration {
        let base = self.base_delay(retry).as_secs_f64();
        let factor = if self.jitter > 0.0 {
            rng.random_range(1.0 - self.jitter..=1.0 + self.jitter)
        } else {
            1.0
        };
        Duration::from_secs_f64(base * factor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    #[test]
    fn default_schedule_is_the_seeds() {
        let p = RetryPolicy::default();
        let secs: Vec<u64> = (1..=6).map(|n| p.base_delay(n).as_secs()).collect();
        assert_eq!(secs, vec![1, 5, 15, 60, 300, 300]);
        assert_eq!(p.max_retries, 5);
    }

    #[test]
    fn empty_schedule_retries_at_once() {
        let p = RetryPolicy {
            max_retries: 3,
            delays: vec![],
            jitter: 0.1,
        };
        assert_eq!(p.delay(2, &mut StdRng::seed_from_u64(1)), Duration::ZERO);
    }

    proptest! {
        #[test]
        fn jitter_stays_within_ten_percent(retry in 1u32..12, seed in any::<u64>()) {
            let p = RetryPolicy::default();
            let base = p.base_delay(retry).as_secs_f64();
            let d = p.delay(retry, &mut StdRng::seed_from_u64(seed)).as_secs_f64();
            prop_assert!(d >= base * 0.9 - 1e-9 && d <= base * 1.1 + 1e-9, "{d} vs {base}");
        }

        #[test]
        fn delays_never_shrink_along_the_default_schedule(retry in 1u32..12) {
            let p = RetryPolicy::default();
            prop_assert!(p.base_delay(retry + 1) >= p.base_delay(retry));
        }
    }
}
