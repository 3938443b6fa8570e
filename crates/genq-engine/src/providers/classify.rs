//! HTTP answers and network errors to error classes (SPEC §7), refined by a provider's
//! `error_rules`; and what rate-limit headers say about a key's budget.

use genq_config::ErrorRule;
use genq_core::ErrorClass;
use regex::{Regex, RegexBuilder};
use std::time::Duration;

/// A provider's `error_rules`, compiled (validated at config load).
#[derive(Debug, Default)]
pub struct Rules(Vec<(Regex, Option<u16>, ErrorClass)>);

impl Rules {
    pub fn new(rules: &[ErrorRule]) -> Result<Rules, String> {
        rules
            .iter()
            .map(|r| {
                let re = RegexBuilder::new(&r.pattern)
                    .case_insensitive(true)
                    .build()
                    .map_err(|e| e.to_string())?;
                let class = r.class.parse().map_err(|e| format!("{e}"))?;
                Ok((re, r.status, class))
            })
            .collect::<Result<_, String>>()
            .map(Rules)
    }

    /// The class of a provider's failure: the first rule matching the status and body, else
    /// `default`.
    pub fn class(&self, status: Option<u16>, body: &str, default: ErrorClass) -> ErrorClass {
        self.0
            .iter()
            .find(|(re, want, _)| want.is_none_or(|w| Some(w) == status) && re.is_match(body))
            .map_or(default, |(_, _, class)| *class)
    }
}

/// What `x-ratelimit-remaining-*` / `x-ratelimit-reset-*` say: when the remaining budget is
/// zero, how long until it resets (the longest of requests and tokens).
pub fn exhausted_for(header: impl Fn(&str) -> Option<String>) -> Option<Duration> {
    ["requests", "tokens"]
        .iter()
        .filter(|what| {
            header(&format!("x-ratelimit-remaining-{what}"))
                .and_then(|v| v.trim().parse::<f64>().ok())
                .is_some_and(|n| n <= 0.0)
        })
        .filter_map(|what| header(&format!("x-ratelimit-reset-{what}")).and_then(|v| reset(&v)))
        .max()
}

/// A reset time as OpenAI writes it (`1s`, `6m0s`, `20ms`) or plain seconds (`0.5`).
fn reset(value: &str) -> Option<Duration> {
    let v = value.trim();
    if let Ok(secs) = v.parse::<f64>() {
        return (secs.is_finite() && secs >= 0.0)
            .then(|| Duration::from_secs_f64(secs.min(3600.0)));
    }
    humantime::parse_duration(v)
        .ok()
        .map(|d| d.min(Duration::from_secs(3600)))
}

/// The class of a non-2xx status.
pub fn class_of_status(status: u16) -> ErrorClass {
    match status {
        400 | 404 | 409 | 413 | 415 | 422 => ErrorClass::UserError,
        401..=403 => ErrorClass::Billing,
        429 => ErrorClass::RateLimited,
        408 | 500..=599 => ErrorClass::Temporary,
        _ => ErrorClass::Temporary,
    }
}

/// `Retry-After` in seconds (the HTTP-date form is rare among AI APIs and is ignored).
pub fn retry_after(value: Option<&str>) -> Option<Duration> {
    let secs: f64 = value?.trim().parse().ok()?;
    (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs.min(86_400.0)))
}

/// At most `max` bytes of a provider's body for `error.detail`, cut at a character boundary.
pub fn excerpt(body: &str, max: usize) -> String {
    if body.len() <= max {
        return body.to_string();
    }
    let mut end = max;
    while !body.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &body[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_map_to_the_spec_classes() {
        assert_eq!(class_of_status(400), ErrorClass::UserError);
        assert_eq!(class_of_status(422), ErrorClass::UserError);
        for s in [401, 402, 403] {
            assert_eq!(class_of_status(s), ErrorClass::Billing);
        }
        assert_eq!(class_of_status(429), ErrorClass::RateLimited);
        for s in [500, 502, 503, 504] {
            assert_eq!(class_of_status(s), ErrorClass::Temporary);
        }
    }

    #[test]
    fn rules_refine_the_status_class() {
        let rules = Rules::new(&[
            ErrorRule {
                pattern: "content[_ ]policy".into(),
                class: "user_error".into(),
                status: None,
            },
            ErrorRule {
                pattern: "overloaded".into(),
                class: "rate_limited".into(),
                status: Some(529),
            },
        ])
        .unwrap();
        let body = r#"{"error":{"code":"Content_Policy_violation"}}"#;
        assert_eq!(
            rules.class(Some(500), body, ErrorClass::Temporary),
            ErrorClass::UserError
        );
        assert_eq!(
            rules.class(Some(529), "Overloaded", ErrorClass::Temporary),
            ErrorClass::RateLimited
        );
        assert_eq!(
            rules.class(Some(503), "overloaded", ErrorClass::Temporary),
            ErrorClass::Temporary
        );
        assert_eq!(
            rules.class(None, "fine", ErrorClass::Billing),
            ErrorClass::Billing
        );
    }

    #[test]
    fn exhausted_budgets_come_from_rate_limit_headers() {
        let headers = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == name)
                    .map(|(_, v)| v.to_string())
            }
        };
        let spent = headers(&[
            ("x-ratelimit-remaining-requests", "0"),
            ("x-ratelimit-reset-requests", "6m0s"),
            ("x-ratelimit-remaining-tokens", "0"),
            ("x-ratelimit-reset-tokens", "20ms"),
        ]);
        assert_eq!(exhausted_for(spent), Some(Duration::from_secs(360)));
        let left = headers(&[
            ("x-ratelimit-remaining-requests", "3"),
            ("x-ratelimit-reset-requests", "1s"),
        ]);
        assert_eq!(exhausted_for(left), None);
        let plain = headers(&[
            ("x-ratelimit-remaining-tokens", "0"),
            ("x-ratelimit-reset-tokens", "1.5"),
        ]);
        assert_eq!(exhausted_for(plain), Some(Duration::from_millis(1500)));
    }

    #[test]
    fn retry_after_and_excerpts_are_bounded() {
        assert_eq!(retry_after(Some("7")), Some(Duration::from_secs(7)));
        assert_eq!(retry_after(Some("1e9")), Some(Duration::from_secs(86_400)));
        assert_eq!(retry_after(Some("Wed, 21 Oct 2015 07:28:00 GMT")), None);
        assert_eq!(retry_after(Some("-1")), None);
        assert_eq!(excerpt("привет", 3), "п…");
        assert_eq!(excerpt("ok", 10), "ok");
    }
}
