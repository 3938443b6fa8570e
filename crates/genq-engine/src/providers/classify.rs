//! HTTP answers and network errors to error classes (SPEC §7).

use genq_core::ErrorClass;
use std::time::Duration;

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
    fn retry_after_and_excerpts_are_bounded() {
        assert_eq!(retry_after(Some("7")), Some(Duration::from_secs(7)));
        assert_eq!(retry_after(Some("1e9")), Some(Duration::from_secs(86_400)));
        assert_eq!(retry_after(Some("Wed, 21 Oct 2015 07:28:00 GMT")), None);
        assert_eq!(retry_after(Some("-1")), None);
        assert_eq!(excerpt("привет", 3), "п…");
        assert_eq!(excerpt("ok", 10), "ok");
    }
}
