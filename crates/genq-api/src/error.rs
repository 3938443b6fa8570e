//! The one error shape of every failed request (SPEC §6):
//! `{"error": {"code", "message", "details"}}`, with a stable `code` per status.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use genq_store::{Rejection, StoreError};
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    InvalidRequest,
    UnknownKind,
    BatchTooLarge,
    UnknownLimit,
    Unauthorized,
    InsufficientCredits,
    Forbidden,
    NotFound,
    MethodNotAllowed,
    RequestTimeout,
    Conflict,
    PayloadTooLarge,
    UriTooLong,
    HeadersTooLarge,
    QueueLimit,
    DailyLimit,
    RateLimited,
    Unavailable,
    Internal,
}

impl Code {
    pub fn status(self) -> StatusCode {
        match self {
            Code::InvalidRequest | Code::UnknownKind | Code::BatchTooLarge | Code::UnknownLimit => {
                StatusCode::BAD_REQUEST
            }
            Code::Unauthorized => StatusCode::UNAUTHORIZED,
            Code::InsufficientCredits => StatusCode::PAYMENT_REQUIRED,
            Code::Forbidden => StatusCode::FORBIDDEN,
            Code::NotFound => StatusCode::NOT_FOUND,
            Code::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Code::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            Code::Conflict => StatusCode::CONFLICT,
            Code::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Code::UriTooLong => StatusCode::URI_TOO_LONG,
            Code::HeadersTooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            Code::QueueLimit | Code::DailyLimit | Code::RateLimited => {
                StatusCode::TOO_MANY_REQUESTS
            }
            Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            Code::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Code::InvalidRequest => "invalid_request",
            Code::UnknownKind => "unknown_kind",
            Code::BatchTooLarge => "batch_too_large",
            Code::UnknownLimit => "unknown_limit",
            Code::Unauthorized => "unauthorized",
            Code::InsufficientCredits => "insufficient_credits",
            Code::Forbidden => "forbidden",
            Code::NotFound => "not_found",
            Code::MethodNotAllowed => "method_not_allowed",
            Code::RequestTimeout => "request_timeout",
            Code::Conflict => "conflict",
            Code::PayloadTooLarge => "payload_too_large",
            Code::UriTooLong => "uri_too_long",
            Code::HeadersTooLarge => "headers_too_large",
            Code::QueueLimit => "queue_limit",
            Code::DailyLimit => "daily_limit",
            Code::RateLimited => "rate_limited",
            Code::Unavailable => "unavailable",
            Code::Internal => "internal",
        }
    }
}

#[derive(Debug)]
pub struct ApiError {
    pub code: Code,
    pub message: String,
    pub details: Option<Value>,
    /// Seconds, sent as `Retry-After`.
    pub retry_after: Option<u64>,
}

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        ApiError {
            code,
            message: message.into(),
            details: None,
            retry_after: None,
        }
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(Code::InvalidRequest, message)
    }

    pub fn with_details(mut self, details: Value) -> Self {
        self.details = Some(details);
        self
    }
}

/// The error body, as documented in the OpenAPI document.
#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorInner,
}

#[derive(Serialize, ToSchema)]
pub struct ErrorInner {
    /// Stable, machine-readable: `invalid_request`, `unknown_kind`, `batch_too_large`,
    /// `unknown_limit` (400), `unauthorized` (401), `insufficient_credits` (402), `forbidden`
    /// (403), `not_found` (404), `method_not_allowed` (405), `request_timeout` (408),
    /// `conflict` (409), `payload_too_large` (413), `uri_too_long` (414), `headers_too_large`
    /// (431), `queue_limit`, `daily_limit`, `rate_limited` (429), `internal` (500),
    /// `unavailable` (503).
    pub code: String,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub details: Option<Value>,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.code == Code::Internal {
            tracing::error!(message = %self.message, "internal error");
        }
        let body = ErrorBody {
            error: ErrorInner {
                code: self.code.as_str().into(),
                message: self.message,
                details: self.details,
            },
        };
        let retry_after = self.retry_after;
        let mut response = (self.code.status(), axum::Json(body)).into_response();
        if let Some(seconds) = retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        if self.code == Code::Unauthorized {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => ApiError::new(Code::NotFound, "not found"),
            StoreError::Conflict(m) => ApiError::new(Code::Conflict, m),
            StoreError::Unavailable(m) => {
                tracing::warn!(error = %m, "database unavailable");
                ApiError::new(Code::Unavailable, "the database is unavailable; try again")
            }
            StoreError::Internal(m) => ApiError::new(Code::Internal, m),
            StoreError::Invalid(m) => ApiError::invalid(m),
            StoreError::Rejected(r) => rejection(r, None),
        }
    }
}

/// A refused enqueue as the client sees it. `retry_after`: seconds until the next quota day,
/// for `daily_limit`.
pub fn rejection(r: Rejection, retry_after: Option<u64>) -> ApiError {
    use serde_json::json;
    match r {
        Rejection::BatchTooLarge { limit, items } => ApiError::new(
            Code::BatchTooLarge,
            format!("{items} items; batch_max_items_per_request is {limit}"),
        )
        .with_details(json!({"limit": limit, "items": items})),
        Rejection::QueueLimit { limit, current } => ApiError::new(
            Code::QueueLimit,
            format!("the user has {current} unfinished jobs; the limit is {limit}"),
        )
        .with_details(json!({"limit": limit, "current": current})),
        Rejection::DailyLimit { limit, used } => {
            let mut e = ApiError::new(
                Code::DailyLimit,
                format!("the user's plan allows {limit} jobs a day; {used} are used"),
            )
            .with_details(json!({"limit": limit, "used": used}));
            e.retry_after = retry_after;
            e
        }
        Rejection::InsufficientCredits { needed, balance } => ApiError::new(
            Code::InsufficientCredits,
            format!("this needs {needed} credits; the balance is {balance}"),
        )
        .with_details(json!({"needed": needed, "balance": balance})),
    }
}
