//! What happens after an attempt fails: retry (when, and whether it uses up a retry), fail, or
//! cancel. Pure functions of the job's counters, the failure and the kind's policy; the worker
//! pool, the rescuer and the external-worker API all decide here.

use crate::error_class::ErrorClass;
use crate::retry::RetryPolicy;
use rand::Rng;
use std::time::Duration;

/// Most `rate_limited` waits that do not use up a retry; after that a 429 counts like any
/// retryable failure, so a job cannot wait forever on a provider that always refuses it.
pub const MAX_RATE_LIMIT_WAITS: u32 = 20;

/// How long a `rate_limited` failure waits when the provider gave no Retry-After (the key
/// cooldown default of SPEC §7).
pub const DEFAULT_RATE_LIMIT_WAIT: Duration = Duration::from_secs(60);

/// The counters of a job that decide its next retry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttemptCounters {
    /// Retries this job may use in its current series (admin retry starts a new series).
    pub max_retries: u32,
    /// Retries used so far in this series.
    pub retries_used: u32,
    /// `rate_limited` waits so far in this series.
    pub rate_limit_waits: u32,
}

/// A failed attempt, as the worker or provider reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct Failure {
    pub class: ErrorClass,
    /// Technical detail for admins (provider status, bounded body excerpt). Never a secret.
    pub detail: String,
    /// The provider's Retry-After, if it gave one.
    pub retry_after: Option<Duration>,
}

impl Failure {
    pub fn new(class: ErrorClass, detail: impl Into<String>) -> Self {
        Self {
            class,
            detail: detail.into(),
            retry_after: None,
        }
    }

    pub fn with_retry_after(mut self, retry_after: Option<Duration>) -> Self {
        self.retry_after = retry_after;
        self
    }
}

/// The decision for a job whose attempt did not succeed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Next {
    /// `running → retrying`, claimable again after `delay`.
    Retry {
        delay: Duration,
        /// Whether this retry counts against `max_retries`.
        uses_retry: bool,
        /// Whether this is one of the free `rate_limited` waits.
        rate_limit_wait: bool,
    },
    /// `running → failed`: refund.
    Fail,
    /// `running → canceled`: refund.
    Cancel,
}

/// Decide what follows a failed attempt.
pub fn after_failure(
    counters: AttemptCounters,
    failure: &Failure,
    policy: &RetryPolicy,
    rng: &mut impl Rng,
) -> Next {
    match failure.class {
        ErrorClass::Canceled => return Next::Cancel,
        ErrorClass::RateLimited if counters.rate_limit_waits < MAX_RATE_LIMIT_WAITS => {
            return Next::Retry {
                delay: failure.retry_after.unwrap_or(DEFAULT_RATE_LIMIT_WAIT),
                uses_retry: false,
                rate_limit_wait: true,
            };
        }
        class if !class.is_retried() => return Next::Fail,
        _ => {}
    }
    if counters.retries_used >= counters.max_retries {
        return Next::Fail;
    }
    let retry = counters.retries_used + 1;
    let delay = match failure.class {
        // The key that failed is disabled; another key can take the job at once.
        ErrorClass::Billing => Duration::ZERO,
        _ => policy.delay(retry, rng),
    };
    Next::Retry {
        delay: delay.max(failure.retry_after.unwrap_or(Duration::ZERO)),
        uses_retry: true,
        rate_limit_wait: false,
    }
}

/// A running attempt handed back on graceful shutdown: claimable again at once by any process,
/// and it costs the job nothing.
pub fn after_release() -> Next {
    Next::Retry {
        delay: Duration::ZERO,
        uses_retry: false,
        rate_limit_wait: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    fn counters(retries_used: u32, rate_limit_waits: u32) -> AttemptCounters {
        AttemptCounters {
            max_retries: 5,
            retries_used,
            rate_limit_waits,
        }
    }

    fn decide(c: AttemptCounters, f: Failure) -> Next {
        after_failure(
            c,
            &f,
            &RetryPolicy::default(),
            &mut StdRng::seed_from_u64(7),
        )
    }

    #[test]
    fn user_error_fails_at_once() {
        assert_eq!(
            decide(counters(0, 0), Failure::new(ErrorClass::UserError, "")),
            Next::Fail
        );
    }

    #[test]
    fn canceled_cancels() {
        assert_eq!(
            decide(counters(0, 0), Failure::new(ErrorClass::Canceled, "")),
            Next::Cancel
        );
    }

    #[test]
    fn temporary_uses_the_schedule_then_fails() {
        for used in 0..5 {
            match decide(counters(used, 0), Failure::new(ErrorClass::Temporary, "")) {
                Next::Retry {
                    delay, uses_retry, ..
                } => {
                    assert!(uses_retry);
                    let base = RetryPolicy::default().base_delay(used + 1).as_secs_f64();
                    assert!((delay.as_secs_f64() - base).abs() <= base * 0.1 + 1e-9);
                }
                other => panic!("retry {used}: {other:?}"),
            }
        }
        assert_eq!(
            decide(counters(5, 0), Failure::new(ErrorClass::Temporary, "")),
            Next::Fail
        );
    }

    #[test]
    fn rate_limited_waits_retry_after_for_free_up_to_the_cap() {
        let f = Failure::new(ErrorClass::RateLimited, "")
            .with_retry_after(Some(Duration::from_secs(7)));
        assert_eq!(
            decide(counters(5, 0), f.clone()),
            Next::Retry {
                delay: Duration::from_secs(7),
                uses_retry: false,
                rate_limit_wait: true
            }
        );
        // Past the cap a 429 is an ordinary retryable failure, and the last retry is final.
        assert_eq!(
            decide(counters(5, MAX_RATE_LIMIT_WAITS), f.clone()),
            Next::Fail
        );
        match decide(counters(0, MAX_RATE_LIMIT_WAITS), f) {
            Next::Retry {
                delay, uses_retry, ..
            } => {
                assert!(uses_retry);
                assert!(
                    delay >= Duration::from_secs(7),
                    "waits at least Retry-After"
                );
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn billing_retries_at_once_on_another_key() {
        assert_eq!(
            decide(counters(1, 0), Failure::new(ErrorClass::Billing, "")),
            Next::Retry {
                delay: Duration::ZERO,
                uses_retry: true,
                rate_limit_wait: false
            }
        );
    }

    #[test]
    fn release_is_free_and_immediate() {
        assert_eq!(
            after_release(),
            Next::Retry {
                delay: Duration::ZERO,
                uses_retry: false,
                rate_limit_wait: false
            }
        );
    }

    fn any_class() -> impl Strategy<Value = ErrorClass> {
        proptest::sample::select(ErrorClass::ALL.to_vec())
    }

    proptest! {
        /// Whatever fails, a job ends within max_retries + MAX_RATE_LIMIT_WAITS + 1 attempts:
        /// no failure sequence retries forever.
        #[test]
        fn every_failure_sequence_terminates(
            classes in proptest::collection::vec(any_class(), 1..80),
            max_retries in 0u32..8,
            seed in any::<u64>(),
        ) {
            let policy = RetryPolicy { max_retries, ..RetryPolicy::default() };
            let mut rng = StdRng::seed_from_u64(seed);
            let mut c = AttemptCounters { max_retries, retries_used: 0, rate_limit_waits: 0 };
            let mut attempts = 0u32;
            let mut ended = false;
            for class in classes {
                attempts += 1;
                match after_failure(c, &Failure::new(class, ""), &policy, &mut rng) {
                    Next::Retry { uses_retry, rate_limit_wait, .. } => {
                        prop_assert!(class.is_retried());
                        prop_assert!(!(uses_retry && rate_limit_wait));
                        if uses_retry { c.retries_used += 1; }
                        if rate_limit_wait { c.rate_limit_waits += 1; }
                        prop_assert!(c.retries_used <= max_retries);
                        prop_assert!(c.rate_limit_waits <= MAX_RATE_LIMIT_WAITS);
                    }
                    Next::Fail => { prop_assert!(class != ErrorClass::Canceled); ended = true; break; }
                    Next::Cancel => { prop_assert_eq!(class, ErrorClass::Canceled); ended = true; break; }
                }
            }
            prop_assert!(ended || attempts <= max_retries + MAX_RATE_LIMIT_WAITS);
            prop_assert!(attempts <= max_retries + MAX_RATE_LIMIT_WAITS + 1);
        }

        /// A retry never comes sooner than the provider asked.
        #[test]
        fn retries_honour_retry_after(class in any_class(), after_ms in 0u64..600_000, used in 0u32..5) {
            let f = Failure::new(class, "").with_retry_after(Some(Duration::from_millis(after_ms)));
            if let Next::Retry { delay, .. } = after_failure(counters(used, 0), &f, &RetryPolicy::default(), &mut StdRng::seed_from_u64(1)) {
                prop_assert!(delay >= Duration::from_millis(after_ms));
            }
        }
    }
}
