//! Runtime-editable limits (SPEC §5): their keys, defaults and allowed ranges. The values live
//! in the database; this is the one list of what may be stored there.

use std::collections::BTreeMap;

pub struct LimitSpec {
    pub key: &'static str,
    pub default: i64,
    pub min: i64,
    pub max: i64,
    pub meaning: &'static str,
}

pub const BATCH_MAX_ITEMS_PER_REQUEST: &str = "batch_max_items_per_request";
pub const BATCH_MAX_QUEUED_PER_USER: &str = "batch_max_queued_per_user";
pub const JOB_PROCESSING_TIMEOUT_SECONDS: &str = "job_processing_timeout_seconds";
pub const USER_MAX_RUNNING: &str = "user_max_running";

pub const LIMITS: [LimitSpec; 8] = [
    LimitSpec {
        key: BATCH_MAX_ITEMS_PER_REQUEST,
        default: 200,
        min: 1,
        max: 10_000,
        meaning: "most items in one batch request",
    },
    LimitSpec {
        key: BATCH_MAX_QUEUED_PER_USER,
        default: 300,
        min: 1,
        max: 10_000_000,
        meaning: "most unfinished (queued, running, retrying) jobs one user may have",
    },
    LimitSpec {
        key: JOB_PROCESSING_TIMEOUT_SECONDS,
        default: 1800,
        min: 1,
        max: 86_400,
        meaning: "upper bound on one attempt's run time",
    },
    LimitSpec {
        key: USER_MAX_RUNNING,
        default: 0,
        min: 0,
        max: 1_000_000,
        meaning: "most running jobs per user across the cluster; 0 = no cap",
    },
    LimitSpec {
        key: "daily_limit_free",
        default: 5,
        min: 0,
        max: 100_000_000,
        meaning: "jobs a free user may have accepted per day",
    },
    LimitSpec {
        key: "daily_limit_basic",
        default: 20,
        min: 0,
        max: 100_000_000,
        meaning: "jobs a basic user may have accepted per day",
    },
    LimitSpec {
        key: "daily_limit_professional",
        default: 100,
        min: 0,
        max: 100_000_000,
        meaning: "jobs a professional user may have accepted per day",
    },
    LimitSpec {
        key: "daily_limit_enterprise",
        default: 1000,
        min: 0,
        max: 100_000_000,
        meaning: "jobs an enterprise user may have accepted per day",
    },
];

/// The plans, each with its `daily_limit_<plan>` limit.
pub const PLANS: [&str; 4] = ["free", "basic", "professional", "enterprise"];

pub fn spec(key: &str) -> Option<&'static LimitSpec> {
    LIMITS.iter().find(|l| l.key == key)
}

pub fn daily_limit_key(plan: &str) -> String {
    format!("daily_limit_{plan}")
}

/// Why a value cannot be stored under a key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LimitError {
    #[error("unknown limit {0:?}")]
    Unknown(String),
    #[error("{key} must be between {min} and {max}, got {value}")]
    OutOfRange {
        key: String,
        min: i64,
        max: i64,
        value: i64,
    },
}

pub fn check(key: &str, value: i64) -> Result<(), LimitError> {
    let spec = spec(key).ok_or_else(|| LimitError::Unknown(key.to_string()))?;
    if !(spec.min..=spec.max).contains(&value) {
        return Err(LimitError::OutOfRange {
            key: key.into(),
            min: spec.min,
            max: spec.max,
            value,
        });
    }
    Ok(())
}

/// The limits in force: stored values over defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits(BTreeMap<&'static str, i64>);

impl Default for Limits {
    fn default() -> Self {
        Limits(LIMITS.iter().map(|l| (l.key, l.default)).collect())
    }
}

impl Limits {
    /// Defaults, overridden by stored `(key, value)` pairs; unknown stored keys are ignored.
    pub fn from_stored(stored: impl IntoIterator<Item = (String, i64)>) -> Limits {
        let mut limits = Limits::default();
        for (key, value) in stored {
            if let Some(spec) = spec(&key) {
                limits.0.insert(spec.key, value);
            }
        }
        limits
    }

    pub fn get(&self, key: &str) -> i64 {
        self.0
            .get(key)
            .copied()
            .or_else(|| spec(key).map(|s| s.default))
            .unwrap_or(0)
    }

    /// The plan's daily limit; a plan without its own limit gets the free one.
    pub fn daily_limit(&self, plan: &str) -> i64 {
        self.0
            .get(daily_limit_key(plan).as_str())
            .copied()
            .unwrap_or_else(|| self.get("daily_limit_free"))
    }

    pub fn iter(&self) -> impl Iterator<Item = (&'static str, i64)> + '_ {
        self.0.iter().map(|(k, v)| (*k, *v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_spec_table() {
        let l = Limits::default();
        assert_eq!(l.get(BATCH_MAX_ITEMS_PER_REQUEST), 200);
        assert_eq!(l.get(BATCH_MAX_QUEUED_PER_USER), 300);
        assert_eq!(l.get(JOB_PROCESSING_TIMEOUT_SECONDS), 1800);
        assert_eq!(l.get(USER_MAX_RUNNING), 0);
        let daily: Vec<i64> = PLANS.iter().map(|p| l.daily_limit(p)).collect();
        assert_eq!(daily, vec![5, 20, 100, 1000]);
        for plan in PLANS {
            assert!(spec(&daily_limit_key(plan)).is_some(), "{plan}");
        }
    }

    #[test]
    fn values_are_checked() {
        assert_eq!(check("nope", 1), Err(LimitError::Unknown("nope".into())));
        assert!(check(BATCH_MAX_ITEMS_PER_REQUEST, 0).is_err());
        assert!(check(USER_MAX_RUNNING, 0).is_ok());
        let stored = Limits::from_stored([
            ("batch_max_items_per_request".to_string(), 10),
            ("gone".to_string(), 3),
        ]);
        assert_eq!(stored.get(BATCH_MAX_ITEMS_PER_REQUEST), 10);
    }
}
