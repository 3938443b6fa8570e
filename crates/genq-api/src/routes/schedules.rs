//! `[[schedules]]`: each one's next and last run, and pausing it.

use crate::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, Code, ErrorBody};
use crate::extract::{JsonBody, PathId};
use crate::openapi::Key;
use crate::views::ts;
use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use utoipa::ToSchema;

#[derive(Serialize, ToSchema)]
pub struct ScheduleView {
    pub name: String,
    pub cron: String,
    pub timezone: String,
    pub kind: String,
    pub user_id: String,
    pub paused: bool,
    /// When the next slot falls (null if the pattern has no more).
    pub next_run_at: Option<String>,
    /// The last slot that made (or tried to make) a job.
    pub last_run_at: Option<String>,
    pub last_job_id: Option<String>,
    /// Why the last slot's job was refused (a limit, the balance).
    pub last_error: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct SchedulesView {
    pub schedules: Vec<ScheduleView>,
}

pub(crate) async fn views(state: &AppState) -> ApiResult<Vec<ScheduleView>> {
    let now = state.clock.now();
    let stored = state.store.schedules().await?;
    Ok(state
        .engine
        .shared()
        .schedules
        .iter()
        .map(|s| {
            let st = stored.iter().find(|st| st.name == s.name);
            ScheduleView {
                name: s.name.clone(),
                cron: s.cron.clone(),
                timezone: s.timezone.clone(),
                kind: s.kind.clone(),
                user_id: s.user_id.clone(),
                paused: st.is_some_and(|st| st.paused),
                next_run_at: s.plan.next_slot(now).map(ts),
                last_run_at: st.and_then(|st| st.last_slot).map(ts),
                last_job_id: st.and_then(|st| st.last_job_id.clone()),
                last_error: st.and_then(|st| st.last_error.clone()),
            }
        })
        .collect())
}

#[utoipa::path(get, path = "/v1/schedules", tag = "schedules",
    responses((status = 200, body = SchedulesView)))]
pub async fn list(
    State(state): State<Arc<AppState>>,
    caller: Caller,
) -> ApiResult<Json<SchedulesView>> {
    caller.require_app()?;
    Ok(Json(SchedulesView {
        schedules: views(&state).await?,
    }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetSchedule {
    /// A paused schedule's slots pass without jobs; resumed, it goes on from the next slot.
    pub paused: bool,
}

#[utoipa::path(put, path = "/v1/schedules/{name}", tag = "schedules", request_body = SetSchedule,
    params(("name" = Key, Path, description = "A configured schedule")),
    responses((status = 200, body = ScheduleView),
        (status = 404, description = "`not_found`: no schedule of that name", body = ErrorBody)))]
pub async fn set(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    PathId(name): PathId,
    JsonBody(body): JsonBody<SetSchedule>,
) -> ApiResult<Json<ScheduleView>> {
    caller.require_admin()?;
    pause(&state, &name, body.paused).await?;
    let view = views(&state)
        .await?
        .into_iter()
        .find(|v| v.name == name)
        .ok_or_else(|| ApiError::new(Code::NotFound, "the schedule vanished"))?;
    Ok(Json(view))
}

/// Pauses or resumes a configured schedule (API and dashboard).
pub(crate) async fn pause(state: &AppState, name: &str, paused: bool) -> ApiResult<()> {
    if !state
        .engine
        .shared()
        .schedules
        .iter()
        .any(|s| s.name == name)
    {
        return Err(ApiError::new(
            Code::NotFound,
            format!("no schedule named {name:?}"),
        ));
    }
    state
        .store
        .pause_schedule(name, paused, state.clock.now())
        .await?;
    tracing::info!(schedule = %name, paused, "schedule changed by an admin");
    state.engine.wake().schedules();
    Ok(())
}
