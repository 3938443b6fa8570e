//! The web dashboard at `/` (SPEC §6): server-rendered pages (askama templates in
//! `templates/`), with htmx and the stylesheet served from the binary (`static/`). Every page
//! reads with JavaScript off; htmx only refreshes what a person waits for.
//!
//! - `session`: sign-in with an admin or viewer token, the session cookie, CSRF.
//! - `pages`: what the dashboard shows (GET).
//! - `actions`: what an admin changes (POST, each logged with its actor).
//! - `live`: the signal that makes a page fetch again when something happened (SSE).

mod actions;
mod live;
mod pages;
pub mod session;

use crate::AppState;
use crate::error::ApiError;
use askama::Template;
use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use std::sync::Arc;

pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/", get(pages::overview))
        .route("/login", get(pages::login).post(actions::login))
        .route("/logout", post(actions::logout))
        .route("/jobs", get(pages::jobs))
        .route("/jobs/bulk", get(pages::bulk).post(actions::bulk))
        .route("/jobs/{id}", get(pages::job))
        .route("/jobs/{id}/cancel", post(actions::cancel))
        .route("/jobs/{id}/retry", post(actions::retry))
        .route("/batches", get(pages::batches))
        .route("/batches/{id}", get(pages::batch))
        .route("/users", get(pages::users))
        .route("/users/{id}", get(pages::user))
        .route("/users/{id}/plan", post(actions::set_plan))
        .route("/users/{id}/credits", post(actions::credits))
        .route("/limits", get(pages::limits))
        .route("/limits/{key}", post(actions::set_limit))
        .route("/providers", get(pages::providers))
        .route(
            "/providers/{name}/keys/{label}/{change}",
            post(actions::key),
        )
        .route("/schedules", get(pages::schedules))
        .route("/schedules/{name}/{change}", post(actions::schedule))
        .route("/webhooks", get(pages::webhooks))
        .route(
            "/webhooks/{id}/events/{event}/redeliver",
            post(actions::redeliver),
        )
        .route("/live", get(live::live))
        .route("/static/htmx.min.js", get(htmx))
        .route("/static/htmx-ext-sse.min.js", get(htmx_sse))
        .route("/static/genq.css", get(css))
}

/// htmx 2 (zero-clause BSD), vendored: no CDN, no build step.
async fn htmx() -> impl IntoResponse {
    asset("text/javascript", include_str!("../../static/htmx.min.js"))
}

/// htmx's sse extension (zero-clause BSD), vendored beside it.
async fn htmx_sse() -> impl IntoResponse {
    asset(
        "text/javascript",
        include_str!("../../static/htmx-ext-sse.min.js"),
    )
}

async fn css() -> impl IntoResponse {
    asset("text/css", include_str!("../../static/genq.css"))
}

fn asset(content_type: &'static str, body: &'static str) -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        body,
    )
}

/// What a dashboard request ends in when it cannot show its page: a page that says why, or
/// the sign-in page.
#[derive(Debug)]
pub struct DashError {
    status: StatusCode,
    message: String,
    /// Send the browser to sign in, then back here.
    sign_in: Option<String>,
}

impl DashError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> DashError {
        DashError {
            status,
            message: message.into(),
            sign_in: None,
        }
    }

    fn sign_in(back_to: Option<&str>) -> DashError {
        DashError {
            status: StatusCode::SEE_OTHER,
            message: String::new(),
            sign_in: Some(back_to.unwrap_or("/").to_string()),
        }
    }
}

impl From<ApiError> for DashError {
    fn from(e: ApiError) -> Self {
        if e.code == crate::error::Code::Internal {
            tracing::error!(message = %e.message, "dashboard: internal error");
        }
        DashError::new(e.code.status(), e.message)
    }
}

impl From<genq_store::StoreError> for DashError {
    fn from(e: genq_store::StoreError) -> Self {
        ApiError::from(e).into()
    }
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    status: StatusCode,
    message: &'a str,
}

impl IntoResponse for DashError {
    fn into_response(self) -> Response {
        if let Some(back) = self.sign_in {
            let to = format!("/login?next={}", pages::encode(&back));
            return Redirect::to(&to).into_response();
        }
        let page = ErrorPage {
            status: self.status,
            message: &self.message,
        };
        (self.status, render(&page)).into_response()
    }
}

/// A rendered page. Templates only fail on a bug (a formatting trait that errs), and then the
/// request gets a 500 with the SPEC's JSON error rather than half a page.
fn render(page: &impl Template) -> Response {
    match page.render() {
        Ok(html) => Html(html).into_response(),
        Err(e) => {
            ApiError::new(crate::error::Code::Internal, format!("template: {e}")).into_response()
        }
    }
}
