//! What an admin changes from the dashboard. Each form posts its CSRF value; each change is
//! logged with its actor (the token's scope and tag, never the token) and then shows the page
//! it changed (POST, redirect, GET).

use super::pages::{Bulk, JobsQuery, LoginPage, MAX_BULK, encode, safe_next};
use super::session::{Session, set_cookie};
use super::{DashError, render};
use crate::AppState;
use crate::error::Code;
use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use std::sync::Arc;

#[derive(Deserialize)]
pub struct LoginForm {
    token: String,
    next: Option<String>,
}

pub async fn login(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Response {
    let next = safe_next(form.next.as_deref());
    let Some(session) = Session::sign_in(&state, &form.token, state.clock.now()) else {
        tracing::warn!("dashboard: a sign-in with an unknown (or non-admin, non-viewer) token");
        let page = LoginPage {
            next,
            error: Some("This is not an admin or viewer token of this genq.".into()),
        };
        return (StatusCode::UNAUTHORIZED, render(&page)).into_response();
    };
    tracing::info!(actor = %session.actor, "dashboard: signed in");
    (
        [(header::SET_COOKIE, set_cookie(Some(&session), &headers))],
        Redirect::to(&next),
    )
        .into_response()
}

/// Just the CSRF value, for forms with nothing else.
#[derive(Deserialize)]
pub struct Plain {
    #[serde(default)]
    csrf: String,
}

pub async fn logout(session: Session, headers: HeaderMap, Form(form): Form<Plain>) -> Response {
    // A viewer may sign out too: only the CSRF value is checked.
    if let Err(e) = session.check_csrf(&form.csrf) {
        return e.into_response();
    }
    tracing::info!(actor = %session.actor, "dashboard: signed out");
    (
        [(header::SET_COOKIE, set_cookie(None, &headers))],
        Redirect::to("/login"),
    )
        .into_response()
}

pub async fn cancel(
    State(state): State<Arc<AppState>>,
    session: Session,
    Path(id): Path<String>,
    Form(form): Form<Plain>,
) -> Result<Redirect, DashError> {
    session.authorize(&form.csrf)?;
    crate::routes::jobs::cancel_job(&state, &id).await?;
    tracing::info!(actor = %session.actor, job = %id, "dashboard: job canceled");
    Ok(Redirect::to(&format!("/jobs/{}", encode(&id))))
}

pub async fn retry(
    State(state): State<Arc<AppState>>,
    session: Session,
    Path(id): Path<String>,
    Form(form): Form<Plain>,
) -> Result<Redirect, DashError> {
    session.authorize(&form.csrf)?;
    crate::routes::jobs::retry_job(&state, &id).await?;
    tracing::info!(actor = %session.actor, job = %id, "dashboard: job retried");
    Ok(Redirect::to(&format!("/jobs/{}", encode(&id))))
}

#[derive(Deserialize)]
pub struct BulkForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    bulk: String,
}

/// A confirmed bulk action: cancel or retry the newest `MAX_BULK` jobs of the filtered list
/// (the filter is the query string), one by one through the same path as a single job's.
/// A job in the wrong state is skipped; the notice says how many changed.
pub async fn bulk(
    State(state): State<Arc<AppState>>,
    session: Session,
    Query(q): Query<JobsQuery>,
    Form(form): Form<BulkForm>,
) -> Result<Redirect, DashError> {
    session.authorize(&form.csrf)?;
    let bulk = Bulk::parse(&form.bulk)?;
    let filter = q.bulk_filter()?;
    let ids = state.store.job_ids(&filter, MAX_BULK).await?;
    let mut acted = 0;
    for id in &ids {
        let done = match bulk {
            Bulk::Cancel => crate::routes::jobs::cancel_job(&state, id).await.map(drop),
            Bulk::Retry => crate::routes::jobs::retry_job(&state, id).await.map(drop),
        };
        match done {
            Ok(()) => acted += 1,
            Err(e) if e.code == Code::Conflict => {}
            Err(e) if e.code == Code::Internal => {
                tracing::error!(actor = %session.actor, bulk = bulk.name(), acted, "dashboard: a bulk action stopped");
                return Err(e.into());
            }
            Err(e) => {
                tracing::warn!(actor = %session.actor, job = %id, error = %e.message, "dashboard: a bulk {} skipped a job", bulk.name())
            }
        }
    }
    let query = q.query();
    tracing::info!(actor = %session.actor, bulk = bulk.name(), filter = %query, matched = ids.len(), acted, "dashboard: bulk action");
    Ok(Redirect::to(&format!(
        "/jobs?{query}&bulk={}&acted={acted}&matched={}",
        bulk.name(),
        ids.len()
    )))
}

#[derive(Deserialize)]
pub struct PlanForm {
    #[serde(default)]
    csrf: String,
    plan: String,
}

pub async fn set_plan(
    State(state): State<Arc<AppState>>,
    session: Session,
    Path(id): Path<String>,
    Form(form): Form<PlanForm>,
) -> Result<Redirect, DashError> {
    session.authorize(&form.csrf)?;
    crate::routes::users::check_plan(&form.plan)?;
    let ctx = crate::routes::users::user_ctx(&state);
    state.store.set_plan(&id, &form.plan, &ctx).await?;
    tracing::info!(actor = %session.actor, user = %id, plan = %form.plan, "dashboard: plan changed");
    Ok(Redirect::to(&format!("/users/{}", encode(&id))))
}

#[derive(Deserialize)]
pub struct CreditsForm {
    #[serde(default)]
    csrf: String,
    delta: String,
    reason: String,
}

pub async fn credits(
    State(state): State<Arc<AppState>>,
    session: Session,
    Path(id): Path<String>,
    Form(form): Form<CreditsForm>,
) -> Result<Redirect, DashError> {
    session.authorize(&form.csrf)?;
    let delta: i64 = form
        .delta
        .trim()
        .parse()
        .map_err(|_| DashError::new(StatusCode::BAD_REQUEST, "Credits: a whole number."))?;
    crate::routes::users::check_credits(delta, &form.reason)?;
    let ctx = crate::routes::users::user_ctx(&state);
    state
        .store
        .add_credits(&id, delta, &form.reason, &ctx)
        .await?;
    tracing::info!(actor = %session.actor, user = %id, delta, reason = %form.reason, "dashboard: credits changed");
    Ok(Redirect::to(&format!("/users/{}", encode(&id))))
}

#[derive(Deserialize)]
pub struct LimitForm {
    #[serde(default)]
    csrf: String,
    value: String,
}

pub async fn set_limit(
    State(state): State<Arc<AppState>>,
    session: Session,
    Path(key): Path<String>,
    Form(form): Form<LimitForm>,
) -> Result<Redirect, DashError> {
    session.authorize(&form.csrf)?;
    let value: i64 = form.value.trim().parse().map_err(|_| {
        DashError::new(
            StatusCode::BAD_REQUEST,
            format!("{key}: {:?} is not a whole number.", form.value),
        )
    })?;
    crate::routes::admin::change_limit(&state, &key, value).await?;
    tracing::info!(actor = %session.actor, key = %key, value, "dashboard: limit changed");
    Ok(Redirect::to("/limits"))
}

pub async fn key(
    State(state): State<Arc<AppState>>,
    session: Session,
    Path((name, label, change)): Path<(String, String, String)>,
    Form(form): Form<Plain>,
) -> Result<Redirect, DashError> {
    session.authorize(&form.csrf)?;
    let enable = match change.as_str() {
        "enable" => true,
        "disable" => false,
        _ => return Err(DashError::new(StatusCode::NOT_FOUND, "No such page.")),
    };
    crate::routes::admin::set_key(&state, &name, &label, enable).await?;
    tracing::info!(actor = %session.actor, provider = %name, key = %label, enable, "dashboard: key changed");
    Ok(Redirect::to("/providers"))
}

pub async fn schedule(
    State(state): State<Arc<AppState>>,
    session: Session,
    Path((name, change)): Path<(String, String)>,
    Form(form): Form<Plain>,
) -> Result<Redirect, DashError> {
    session.authorize(&form.csrf)?;
    let paused = match change.as_str() {
        "pause" => true,
        "resume" => false,
        _ => return Err(DashError::new(StatusCode::NOT_FOUND, "No such page.")),
    };
    crate::routes::schedules::pause(&state, &name, paused).await?;
    tracing::info!(actor = %session.actor, schedule = %name, paused, "dashboard: schedule changed");
    Ok(Redirect::to("/schedules"))
}

pub async fn redeliver(
    State(state): State<Arc<AppState>>,
    session: Session,
    Path((id, event_id)): Path<(String, String)>,
    Form(form): Form<Plain>,
) -> Result<Redirect, DashError> {
    session.authorize(&form.csrf)?;
    crate::routes::admin::redeliver_event(&state, &id, &event_id).await?;
    tracing::info!(actor = %session.actor, webhook = %id, event = %event_id, "dashboard: event redelivered");
    Ok(Redirect::to("/webhooks"))
}
