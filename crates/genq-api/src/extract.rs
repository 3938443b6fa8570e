//! Extractors that turn every malformed request into the SPEC's error shape: bodies that are not
//! JSON, have wrong types or unknown fields, are too large; bad query strings; overlong ids.

use crate::AppState;
use crate::error::{ApiError, Code};
use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header::CONTENT_TYPE;
use axum::http::request::Parts;
use genq_core::ids::MAX_KEY_LEN;
use serde::de::DeserializeOwned;
use std::sync::Arc;

/// A JSON body. Unknown fields are rejected by the body types themselves
/// (`#[serde(deny_unknown_fields)]`); the error names the field that is wrong. Anything after
/// the JSON document but whitespace is refused, and the whole body must arrive within
/// `api.body_timeout`.
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned> FromRequest<Arc<AppState>> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &Arc<AppState>) -> Result<Self, Self::Rejection> {
        let json_type = req
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| {
                let v = v.to_ascii_lowercase();
                v.starts_with("application/json") || v.contains("+json")
            });
        let timeout = state.config.api.body_timeout;
        let bytes = tokio::time::timeout(timeout, Bytes::from_request(req, state))
            .await
            .map_err(|_| {
                ApiError::new(
                    Code::RequestTimeout,
                    format!(
                        "the request body did not arrive within api.body_timeout ({})",
                        humantime::format_duration(timeout)
                    ),
                )
            })?
            .map_err(|rejection| {
                if rejection.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                    too_large()
                } else {
                    ApiError::invalid(format!("cannot read the request body: {rejection}"))
                }
            })?;
        if !json_type {
            return Err(ApiError::invalid(
                "send the body as JSON with Content-Type: application/json",
            ));
        }
        parse_json(&bytes).map(JsonBody)
    }
}

/// One JSON document of type `T`, and nothing after it but whitespace.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut *de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let message = if path == "." || path.is_empty() {
            format!("invalid JSON body: {inner}")
        } else {
            format!("invalid JSON body at {path}: {inner}")
        };
        ApiError::invalid(message).with_details(serde_json::json!({"field": path}))
    })?;
    de.end().map_err(|e| {
        ApiError::invalid(format!(
            "invalid JSON body: more after the JSON document ({e})"
        ))
    })?;
    Ok(value)
}

pub fn too_large() -> ApiError {
    ApiError::new(
        Code::PayloadTooLarge,
        "the request body is larger than api.max_body_bytes allows",
    )
}

/// Query parameters, with unknown or malformed ones rejected as `invalid_request`, and so is
/// a percent-encoding that does not decode to UTF-8 (`%ff`), which serde_urlencoded would
/// decode lossily into U+FFFD.
pub struct QueryParams<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for QueryParams<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or("");
        for piece in query.split(['&', '=']) {
            let plus_decoded = piece.replace('+', " ");
            if percent_encoding::percent_decode_str(&plus_decoded)
                .decode_utf8()
                .is_err()
            {
                return Err(ApiError::invalid(
                    "invalid query: a percent-encoded value is not UTF-8",
                ));
            }
        }
        axum::extract::Query::<T>::try_from_uri(&parts.uri)
            .map(|q| QueryParams(q.0))
            .map_err(|e| ApiError::invalid(format!("invalid query: {}", e.body_text())))
    }
}

/// Integer fields of JSON bodies. JSON Schema's `integer` is any number with a zero fraction, so
/// `5.0` is as valid as `5` (and some clients, JavaScript's among them, send either): both are
/// accepted, anything fractional or outside the `int64` range the document states is refused.
/// Use as `#[serde(deserialize_with = "whole::number")]` (or `whole::optional`).
pub mod whole {
    use serde::Deserializer;
    use serde::de::{Error, Unexpected, Visitor};
    use std::fmt;

    struct Whole;

    impl Visitor<'_> for Whole {
        type Value = i64;

        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("an integer")
        }

        fn visit_i64<E: Error>(self, v: i64) -> Result<i64, E> {
            Ok(v)
        }

        fn visit_u64<E: Error>(self, v: u64) -> Result<i64, E> {
            i64::try_from(v).map_err(|_| E::invalid_value(Unexpected::Unsigned(v), &"an int64"))
        }

        fn visit_f64<E: Error>(self, v: f64) -> Result<i64, E> {
            // 2^63 is the first float past i64::MAX.
            if v.fract() == 0.0 && v >= -(2f64.powi(63)) && v < 2f64.powi(63) {
                Ok(v as i64)
            } else {
                Err(E::invalid_value(Unexpected::Float(v), &"an integer"))
            }
        }
    }

    pub fn number<'de, D, T>(d: D) -> Result<T, D::Error>
    where
        D: Deserializer<'de>,
        T: TryFrom<i64>,
    {
        let v = d.deserialize_any(Whole)?;
        T::try_from(v).map_err(|_| {
            D::Error::invalid_value(Unexpected::Signed(v), &"an integer in the documented range")
        })
    }

    pub fn optional<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
    where
        D: Deserializer<'de>,
        T: TryFrom<i64>,
    {
        #[derive(serde::Deserialize)]
        struct Wrap<T: TryFrom<i64>>(#[serde(deserialize_with = "number")] T);
        Ok(Option::<Wrap<T>>::deserialize(d)?.map(|w| w.0))
    }

    use serde::Deserialize;
}

/// Path parameters, with a malformed one (not UTF-8, say) rejected as `invalid_request`.
pub struct PathParams<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for PathParams<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|p| PathParams(p.0))
            .map_err(|e| ApiError::invalid(format!("invalid path: {}", e.body_text())))
    }
}

/// An id from the path: opaque, but bounded, so a megabyte-long id is a 400, not a lookup.
pub struct PathId(pub String);

impl<S: Send + Sync> FromRequestParts<S> for PathId {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let PathParams(id) = PathParams::<String>::from_request_parts(parts, state).await?;
        check_key("id", &id)?;
        Ok(PathId(id))
    }
}

/// Ids, user ids, worker ids, lease tokens and idempotency keys ([`genq_core::ids::valid_key`],
/// [`KEY_PATTERN`]): a UUID, `tg:12345`, `user@example.com`. Refused: the invisible and
/// bidirectional characters (U+200B, U+202E, U+FEFF) that would make `alice` and
/// `alice\u{200b}` two users who look the same, and the `/ ? # %` that make an id in a path
/// mean something else when a client forgets to escape it.
pub fn check_key(field: &str, value: &str) -> Result<(), ApiError> {
    if !genq_core::ids::valid_key(value) {
        return Err(ApiError::invalid(format!(
            "{field} must be 1 to {MAX_KEY_LEN} letters, digits or -._~!$&'()*+,;=:@"
        ))
        .with_details(serde_json::json!({"field": field})));
    }
    Ok(())
}

/// The OpenAPI pattern of what [`check_key`] accepts.
pub const KEY_PATTERN: &str = "^[A-Za-z0-9._~!$&'()*+,;=:@-]{1,200}$";

/// Free text from a client (a ledger entry's reason, a worker's error message): 1 to `max`
/// characters, no control characters ([`text_pattern`]).
pub fn check_text(field: &str, value: &str, max: usize) -> Result<(), ApiError> {
    let n = value.chars().count();
    if !(1..=max).contains(&n) || value.chars().any(char::is_control) {
        return Err(ApiError::invalid(format!(
            "{field} must be 1 to {max} characters without control characters"
        ))
        .with_details(serde_json::json!({"field": field})));
    }
    Ok(())
}

/// The OpenAPI pattern of what [`check_text`] accepts.
pub fn text_pattern(max: usize) -> String {
    format!("^[^\\x00-\\x1f\\x7f-\\x9f]{{1,{max}}}$")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_refuse_invisible_characters() {
        for good in [
            "alice",
            "u-1",
            "user+tag@example.com",
            "a.b:c_d",
            "!~",
            &"x".repeat(200),
        ] {
            assert!(check_key("user_id", good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "alice\u{200b}",
            "\u{202e}alice",
            "\u{feff}bob",
            "a\nb",
            "a\u{7f}",
            " alice",
            "john smith",
            "Пётр",
            "a\u{2028}b",
            &"x".repeat(201),
            "a/b",
            "a%20",
            "a#1",
            "a?b",
            "\"q\"",
        ] {
            assert!(check_key("user_id", bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn text_allows_any_language_but_no_controls() {
        assert!(check_text("reason", "Бонус за регистрацию 🎉", 200).is_ok());
        assert!(check_text("reason", "a\u{200b}b", 200).is_ok());
        for bad in ["", "a\nb", "a\u{85}b", &"я".repeat(201)] {
            assert!(check_text("reason", bad, 200).is_err(), "{bad:?}");
        }
        assert!(check_text("reason", &"я".repeat(200), 200).is_ok());
    }

    #[test]
    fn integers_may_be_written_with_a_zero_fraction() {
        #[derive(serde::Deserialize, Debug)]
        struct B {
            #[serde(deserialize_with = "whole::number")]
            n: i32,
            #[serde(default, deserialize_with = "whole::optional")]
            m: Option<u64>,
        }
        let b: B = parse_json(b"{\"n\": 5.0, \"m\": 7}").unwrap();
        assert_eq!((b.n, b.m), (5, Some(7)));
        let b: B = parse_json(b"{\"n\": -3, \"m\": null}").unwrap();
        assert_eq!((b.n, b.m), (-3, None));
        assert!(parse_json::<B>(b"{\"n\": -3}").unwrap().m.is_none());
        for bad in [
            &b"{\"n\": 5.5}"[..],
            b"{\"n\": \"5\"}",
            b"{\"n\": 3000000000}",
            b"{\"n\": 1, \"m\": -1}",
            b"{\"n\": 1, \"m\": 9223372036854775808}",
            b"{\"n\": 1e300}",
        ] {
            assert!(
                parse_json::<B>(bad).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn json_bodies_refuse_trailing_bytes() {
        #[derive(serde::Deserialize, Debug)]
        struct B {
            #[allow(dead_code)]
            a: u32,
        }
        assert!(parse_json::<B>(b"{\"a\": 1}  \n").is_ok());
        for bad in [
            &b"{\"a\": 1} GARBAGE{{{"[..],
            b"{\"a\": 1}{\"a\": 2}",
            b"{\"a\": 1},",
        ] {
            let e = parse_json::<B>(bad).unwrap_err();
            assert_eq!(e.code, Code::InvalidRequest);
        }
    }
}
