//! Why an attempt failed, and what follows from it (SPEC §3 error classes).

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum ErrorClass {
    /// The provider rejected the input (content policy, 400/422). Not retried.
    UserError,
    /// 5xx or a connection error. Retried.
    Temporary,
    /// 429. Retried after Retry-After without using up a retry (up to a cap).
    RateLimited,
    /// 401/402/403: the key's quota or payment. Retried at once, on another key.
    Billing,
    /// The attempt ran past the kind's timeout. Retried.
    Timeout,
    /// The worker died or stopped heartbeating. Retried.
    LeaseExpired,
    /// A bug in a handler. Retried.
    Internal,
    /// A cancel request. Not retried.
    Canceled,
}

impl ErrorClass {
    pub const ALL: [ErrorClass; 8] = [
        ErrorClass::UserError,
        ErrorClass::Temporary,
        ErrorClass::RateLimited,
        ErrorClass::Billing,
        ErrorClass::Timeout,
        ErrorClass::LeaseExpired,
        ErrorClass::Internal,
        ErrorClass::Canceled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ErrorClass::UserError => "user_error",
            ErrorClass::Temporary => "temporary",
            ErrorClass::RateLimited => "rate_limited",
            ErrorClass::Billing => "billing",
            ErrorClass::Timeout => "timeout",
            ErrorClass::LeaseExpired => "lease_expired",
            ErrorClass::Internal => "internal",
            ErrorClass::Canceled => "canceled",
        }
    }

    pub fn is_retried(self) -> bool {
        !matches!(self, ErrorClass::UserError | ErrorClass::Canceled)
    }

    /// Every class refunds the cost when the job finally does not succeed (SPEC §3): a user
    /// never pays for a generation they did not get.
    pub fn refunds_on_final_failure(self) -> bool {
        true
    }

    pub fn default_message(self) -> &'static str {
        match self {
            ErrorClass::UserError => {
                "The request was rejected by the generation service. Your credits have been refunded."
            }
            ErrorClass::Temporary => {
                "The generation service is temporarily unavailable. Your credits have been refunded."
            }
            ErrorClass::RateLimited => {
                "The generation service is busy. Your credits have been refunded."
            }
            ErrorClass::Billing => {
                "The generation service could not be paid for. Your credits have been refunded."
            }
            ErrorClass::Timeout => "The generation took too long. Your credits have been refunded.",
            ErrorClass::LeaseExpired => {
                "The generation was interrupted. Your credits have been refunded."
            }
            ErrorClass::Internal => {
                "The generation failed because of an internal error. Your credits have been refunded."
            }
            ErrorClass::Canceled => "The generation was canceled. Your credits have been refunded.",
        }
    }
}

impl fmt::Display for ErrorClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, thiserror::Error)]
#[error(
    "unknown error class {0:?}; expected one of user_error, temporary, rate_limited, billing, timeout, lease_expired, internal, canceled"
)]
pub struct UnknownClass(pub String);

impl FromStr for ErrorClass {
    type Err = UnknownClass;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ErrorClass::ALL
            .into_iter()
            .find(|c| c.as_str() == s)
            .ok_or_else(|| UnknownClass(s.to_string()))
    }
}

/// User-facing messages per class: the `[messages]` config over English defaults.
#[derive(Debug, Clone, Default)]
pub struct Messages(BTreeMap<ErrorClass, String>);

impl Messages {
    pub fn new(overrides: BTreeMap<ErrorClass, String>) -> Self {
        Self(overrides)
    }

    pub fn get(&self, class: ErrorClass) -> &str {
        self.0
            .get(&class)
            .map(String::as_str)
            .unwrap_or_else(|| class.default_message())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_round_trip_and_only_user_error_and_canceled_are_final() {
        for class in ErrorClass::ALL {
            assert_eq!(class.as_str().parse::<ErrorClass>().unwrap(), class);
            assert_eq!(
                class.is_retried(),
                !matches!(class, ErrorClass::UserError | ErrorClass::Canceled)
            );
            assert!(class.refunds_on_final_failure());
        }
    }

    #[test]
    fn messages_fall_back_to_defaults() {
        let mut map = BTreeMap::new();
        map.insert(ErrorClass::Temporary, "Попробуйте позже".to_string());
        let messages = Messages::new(map);
        assert_eq!(messages.get(ErrorClass::Temporary), "Попробуйте позже");
        assert_eq!(
            messages.get(ErrorClass::Timeout),
            ErrorClass::Timeout.default_message()
        );
    }
}
