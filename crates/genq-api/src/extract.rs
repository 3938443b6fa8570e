//! Extractors that turn every malformed request into the SPEC's error shape: bodies that are not
//! JSON, have wrong types or unknown fields, are too large; bad query strings; overlong ids.

use crate::error::{ApiError, Code};
use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header::CONTENT_TYPE;
use axum::http::request::Parts;
use genq_core::ids::MAX_KEY_LEN;
use serde::de::DeserializeOwned;

/// A JSON body. Unknown fields are rejected by the body types themselves
/// (`#[serde(deny_unknown_fields)]`); the error names the field that is wrong.
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let json_type = req
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| {
                let v = v.to_ascii_lowercase();
                v.starts_with("application/json") || v.contains("+json")
            });
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(
                    Code::PayloadTooLarge,
                    "the request body is larger than api.max_body_bytes allows",
                )
            } else {
                ApiError::invalid(format!("cannot read the request body: {rejection}"))
            }
        })?;
        if !json_type {
            return Err(ApiError::invalid(
                "send the body as JSON with Content-Type: application/json",
            ));
        }
        let de = &mut serde_json::Deserializer::from_slice(&bytes);
        let value = serde_path_to_error::deserialize(de).map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner();
            let message = if path == "." || path.is_empty() {
                format!("invalid JSON body: {inner}")
            } else {
                format!("invalid JSON body at {path}: {inner}")
            };
            ApiError::invalid(message).with_details(serde_json::json!({"field": path}))
        })?;
        Ok(JsonBody(value))
    }
}

/// Query parameters, with unknown or malformed ones rejected as `invalid_request`.
pub struct QueryParams<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for QueryParams<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::try_from_uri(&parts.uri)
            .map(|q| QueryParams(q.0))
            .map_err(|e| ApiError::invalid(format!("invalid query: {}", e.body_text())))
    }
}

/// An id from the path: opaque, but bounded, so a megabyte-long id is a 400, not a lookup.
pub struct PathId(pub String);

impl<S: Send + Sync> FromRequestParts<S> for PathId {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let axum::extract::Path(id) =
            axum::extract::Path::<String>::from_request_parts(parts, state)
                .await
                .map_err(|e| ApiError::invalid(format!("invalid path: {}", e.body_text())))?;
        check_key("id", &id)?;
        Ok(PathId(id))
    }
}

/// Ids, user ids, kinds and idempotency keys: 1 to 200 characters, no control characters.
pub fn check_key(field: &str, value: &str) -> Result<(), ApiError> {
    if value.is_empty() || value.len() > MAX_KEY_LEN {
        return Err(
            ApiError::invalid(format!("{field} must be 1 to {MAX_KEY_LEN} bytes long"))
                .with_details(serde_json::json!({"field": field})),
        );
    }
    if value.chars().any(char::is_control) {
        return Err(
            ApiError::invalid(format!("{field} must not contain control characters"))
                .with_details(serde_json::json!({"field": field})),
        );
    }
    Ok(())
}
