//! Users: plan, credits, daily usage; the credits ledger. Users are created on first use.

use crate::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{JsonBody, PathId, QueryParams};
use crate::openapi::{Key, LedgerCursor, Plan};
use crate::views::ts;
use axum::Json;
use axum::extract::State;
use genq_core::limits::PLANS;
use genq_core::{LedgerEntry, User};
use genq_store::UserCtx;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use utoipa::{IntoParams, ToSchema};

#[derive(Serialize, ToSchema)]
pub struct UserView {
    pub id: String,
    pub plan: String,
    pub credits: i64,
    /// The plan's daily limit now.
    pub daily_limit: i64,
    /// Jobs accepted today (in `quota.timezone`) that did not end failed or canceled.
    pub used_today: u32,
    /// Queued, running and retrying jobs.
    pub unfinished: u32,
    pub created_at: String,
}

/// Today in `quota.timezone`, and the `[users]` defaults.
pub(crate) fn user_ctx(state: &AppState) -> UserCtx {
    let now = state.clock.now();
    UserCtx {
        day: state.config.quota.day(now),
        defaults: state.config.users.defaults(),
        now,
    }
}

pub(crate) async fn view(state: &AppState, user: User) -> ApiResult<UserView> {
    let limits = state.store.limits().await?;
    Ok(UserView {
        daily_limit: limits.daily_limit(&user.plan),
        id: user.id,
        plan: user.plan,
        credits: user.credits,
        used_today: user.used_today,
        unfinished: user.unfinished,
        created_at: ts(user.created_at),
    })
}

#[utoipa::path(get, path = "/v1/users/{id}", tag = "users",
    params(("id" = Key, Path, description = "User id")),
    responses((status = 200, body = UserView),
        (status = 404, description = "`not_found`: no job, plan or credits ever named this user", body = ErrorBody)))]
pub async fn get(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    PathId(id): PathId,
) -> ApiResult<Json<UserView>> {
    caller.require_app()?;
    let day = state.config.quota.day(state.clock.now());
    let user = state.store.user(&id, &day).await.map_err(|e| match e {
        genq_store::StoreError::NotFound => ApiError::new(
            crate::error::Code::NotFound,
            format!("no user {id:?}: a user exists once a job, a plan or credits name it"),
        ),
        other => other.into(),
    })?;
    Ok(Json(view(&state, user).await?))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetPlan {
    #[schema(value_type = Plan)]
    pub plan: String,
}

#[utoipa::path(put, path = "/v1/users/{id}", tag = "users", request_body = SetPlan,
    params(("id" = Key, Path, description = "User id")),
    responses((status = 200, body = UserView)))]
pub async fn put(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    PathId(id): PathId,
    JsonBody(body): JsonBody<SetPlan>,
) -> ApiResult<Json<UserView>> {
    caller.require_admin()?;
    check_plan(&body.plan)?;
    let user = state
        .store
        .set_plan(&id, &body.plan, &user_ctx(&state))
        .await?;
    Ok(Json(view(&state, user).await?))
}

pub(crate) fn check_plan(plan: &str) -> ApiResult<()> {
    if !PLANS.contains(&plan) {
        return Err(ApiError::invalid(format!(
            "unknown plan {plan:?}; plans: {}",
            PLANS.join(", ")
        ))
        .with_details(serde_json::json!({"field": "plan"})));
    }
    Ok(())
}

/// A credits change an admin may make (API and dashboard).
pub(crate) fn check_credits(delta: i64, reason: &str) -> ApiResult<()> {
    if delta == 0 || delta.unsigned_abs() > 1_000_000_000_000 {
        return Err(
            ApiError::invalid("delta must be non-zero and at most 10^12 either way")
                .with_details(serde_json::json!({"field": "delta"})),
        );
    }
    crate::extract::check_text("reason", reason, MAX_REASON_CHARS)
}

/// Longest reason of a credits change, in characters.
pub const MAX_REASON_CHARS: usize = 200;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Credits {
    /// Added to the balance; negative takes away (409 if the balance would go below zero).
    /// Not 0; at most 10^12 either way.
    #[schema(minimum = -1_000_000_000_000i64, maximum = 1_000_000_000_000i64)]
    #[serde(deserialize_with = "crate::extract::whole::number")]
    pub delta: i64,
    /// 1 to 200 characters, no control characters.
    pub reason: String,
}

#[utoipa::path(post, path = "/v1/users/{id}/credits", tag = "users", request_body = Credits,
    params(("id" = Key, Path, description = "User id")),
    responses((status = 200, body = UserView),
        (status = 409, description = "`conflict`: the balance would go below zero; nothing changed", body = ErrorBody)))]
pub async fn credits(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    PathId(id): PathId,
    JsonBody(body): JsonBody<Credits>,
) -> ApiResult<Json<UserView>> {
    caller.require_admin()?;
    check_credits(body.delta, &body.reason)?;
    let user = state
        .store
        .add_credits(&id, body.delta, &body.reason, &user_ctx(&state))
        .await?;
    Ok(Json(view(&state, user).await?))
}

#[derive(Serialize, ToSchema)]
pub struct LedgerEntryView {
    pub id: i64,
    /// `grant`, `debit`, `refund` or `adjust`.
    pub kind: String,
    /// Signed: debits are negative.
    pub amount: i64,
    /// The balance after this entry.
    pub balance: i64,
    pub job_id: Option<String>,
    /// A batch is debited once, for all its jobs.
    pub batch_id: Option<String>,
    pub reason: String,
    pub created_at: String,
}

impl From<LedgerEntry> for LedgerEntryView {
    fn from(e: LedgerEntry) -> Self {
        LedgerEntryView {
            id: e.id,
            kind: e.kind.as_str().into(),
            amount: e.amount,
            balance: e.balance,
            job_id: e.job_id,
            batch_id: e.batch_id,
            reason: e.reason,
            created_at: ts(e.created_at),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct LedgerPage {
    pub items: Vec<LedgerEntryView>,
    pub next_cursor: Option<String>,
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct LedgerQuery {
    /// 1 to 200; default 50.
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    #[param(value_type = Option<LedgerCursor>)]
    pub cursor: Option<String>,
}

#[utoipa::path(get, path = "/v1/users/{id}/ledger", tag = "users", params(("id" = Key, Path, description = "User id"), LedgerQuery),
    responses((status = 200, description = "Newest first; empty for a user never seen", body = LedgerPage)))]
pub async fn ledger(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    PathId(id): PathId,
    QueryParams(q): QueryParams<LedgerQuery>,
) -> ApiResult<Json<LedgerPage>> {
    caller.require_app()?;
    let limit = q.limit.unwrap_or(50);
    if !(1..=200).contains(&limit) {
        return Err(ApiError::invalid("limit must be between 1 and 200"));
    }
    let before = q
        .cursor
        .as_deref()
        .map(crate::cursor::decode_ledger)
        .transpose()?;
    let (entries, next) = state.store.ledger(&id, before, limit).await?;
    Ok(Json(LedgerPage {
        items: entries.into_iter().map(Into::into).collect(),
        next_cursor: next.map(crate::cursor::encode_ledger),
    }))
}
