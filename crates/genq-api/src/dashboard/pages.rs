//! What the dashboard shows. Every list is bounded: jobs and ledger entries come in cursor
//! pages, the rest is small by nature (limits, providers, one batch's counts).

use super::session::Session;
use super::{DashError, render};
use crate::AppState;
use crate::views::RETRYING_MESSAGE;
use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use chrono::{DateTime, Utc};
use genq_core::limits::{LIMITS, PLANS};
use genq_core::{Job, JobState, LedgerEntry};
use genq_engine::providers::upstream::ProviderView;
use genq_store::{JobFilter, JobQuery};
use serde::Deserialize;
use std::sync::Arc;

/// Jobs on one page of the list.
const JOBS_PER_PAGE: u32 = 50;
/// Batches on one page of the list.
const BATCHES_PER_PAGE: u32 = 50;
/// Users on one page of the list.
const USERS_PER_PAGE: u32 = 100;
/// Ledger entries on one page of a user's ledger.
const LEDGER_PER_PAGE: u32 = 50;
/// Payloads and results longer than this are folded on the job page.
const FOLD_BYTES: usize = 2048;

/// What every page's frame needs: who is signed in, whether they may change things, the
/// CSRF value for forms, and which section is open.
pub struct Nav {
    pub actor: String,
    pub can_change: bool,
    pub csrf: String,
    pub section: &'static str,
}

impl Nav {
    fn new(session: &Session, section: &'static str) -> Nav {
        Nav {
            actor: session.actor.clone(),
            can_change: session.can_change(),
            csrf: session.csrf(),
            section,
        }
    }
}

/// Percent-encodes a query value.
pub fn encode(value: &str) -> String {
    percent_encoding::utf8_percent_encode(value, percent_encoding::NON_ALPHANUMERIC).to_string()
}

fn when(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S").to_string()
}

fn when_opt(t: Option<DateTime<Utc>>) -> String {
    t.map(when).unwrap_or_default()
}

fn pretty(value: &serde_json::Value) -> String {
    serde_json::to_string_pretty(value).unwrap_or_default()
}

#[derive(Deserialize)]
pub struct LoginQuery {
    next: Option<String>,
}

#[derive(Template)]
#[template(path = "login.html")]
pub struct LoginPage {
    pub next: String,
    pub error: Option<String>,
}

/// Where to go after signing in: a path on this site only.
pub fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n) if n.starts_with('/') && !n.starts_with("//") && !n.contains('\\') => n.into(),
        _ => "/".into(),
    }
}

pub async fn login(Query(q): Query<LoginQuery>) -> Response {
    render(&LoginPage {
        next: safe_next(q.next.as_deref()),
        error: None,
    })
}

struct StateCount {
    state: &'static str,
    count: u64,
}

struct KindRow {
    kind: String,
    counts: Vec<u64>,
}

#[derive(Template)]
#[template(path = "overview.html")]
struct Overview {
    nav: Nav,
    states: Vec<StateCount>,
    kinds: Vec<KindRow>,
    finished_last_minute: u64,
    finished_last_hour: u64,
    oldest_claimable: String,
    past_lease: u64,
    providers: Vec<ProviderView>,
    chart: Chart,
    failed_by_class: Vec<(String, u64)>,
    after: i64,
    nodes: Vec<NodeRow>,
}

/// A process running an engine on this database, seen in the last hour.
struct NodeRow {
    node_id: String,
    pid: u32,
    version: String,
    concurrency: u32,
    started_at: String,
    /// How long ago it last said it was alive.
    seen: String,
    /// It said so within three heartbeats.
    alive: bool,
}

/// Whole seconds, as "1m 5s".
fn ago(d: chrono::Duration) -> String {
    humantime::format_duration(std::time::Duration::from_secs(d.num_seconds().max(0) as u64))
        .to_string()
}

/// The overview's chart: jobs finished per minute over the last hour, as stacked SVG bars.
struct Chart {
    bars: Vec<Bar>,
    /// The most jobs one minute finished (the top of the scale).
    peak: u64,
}

/// One minute's bar: where each stack starts (y) and how tall it is, in SVG units.
struct Bar {
    x: u32,
    succeeded: (u32, u32),
    failed: (u32, u32),
    canceled: (u32, u32),
    title: String,
}

/// The chart's drawing area in SVG units: a bar and its gap per minute.
const CHART_HEIGHT: u32 = 100;
const BAR_STEP: u32 = 10;

impl Chart {
    fn of(minutes: &[genq_store::FinishedMinute]) -> Chart {
        let peak = minutes
            .iter()
            .map(|m| m.succeeded + m.failed + m.canceled)
            .max()
            .unwrap_or(0);
        let height = |n: u64| (n * u64::from(CHART_HEIGHT)).div_ceil(peak.max(1)) as u32;
        let bars = minutes
            .iter()
            .enumerate()
            .map(|(i, m)| {
                // Stacked from the bottom: canceled, failed, succeeded. Heights of running
                // sums, so rounding never takes a bar past the top.
                let c = height(m.canceled);
                let cf = height(m.canceled + m.failed);
                let cfs = height(m.canceled + m.failed + m.succeeded);
                Bar {
                    x: i as u32 * BAR_STEP,
                    canceled: (CHART_HEIGHT - c, c),
                    failed: (CHART_HEIGHT - cf, cf - c),
                    succeeded: (CHART_HEIGHT - cfs, cfs - cf),
                    title: format!(
                        "{} UTC: {} succeeded, {} failed, {} canceled",
                        m.start.format("%H:%M"),
                        m.succeeded,
                        m.failed,
                        m.canceled
                    ),
                }
            })
            .collect();
        Chart { bars, peak }
    }
}

pub async fn overview(
    State(state): State<Arc<AppState>>,
    session: Session,
) -> Result<Response, DashError> {
    let after = state.store.events_end().await?;
    let now = state.clock.now();
    let stats = state.store.stats(now).await?;
    let heartbeat = chrono::Duration::from_std(state.config.worker.heartbeat * 3)
        .unwrap_or(chrono::Duration::MAX);
    let nodes = state
        .store
        .nodes(now - chrono::Duration::hours(1))
        .await?
        .into_iter()
        .map(|n| NodeRow {
            alive: now - n.seen_at <= heartbeat,
            seen: ago(now - n.seen_at),
            started_at: when(n.started_at),
            node_id: n.node_id,
            pid: n.pid,
            version: n.version,
            concurrency: n.concurrency,
        })
        .collect();
    let count = |s: JobState, m: &std::collections::BTreeMap<JobState, u64>| {
        m.get(&s).copied().unwrap_or(0)
    };
    let page = Overview {
        nav: Nav::new(&session, "overview"),
        states: JobState::ALL
            .iter()
            .map(|s| StateCount {
                state: s.as_str(),
                count: count(*s, &stats.by_state),
            })
            .collect(),
        kinds: stats
            .by_kind
            .iter()
            .map(|(kind, m)| KindRow {
                kind: kind.clone(),
                counts: JobState::ALL.iter().map(|s| count(*s, m)).collect(),
            })
            .collect(),
        finished_last_minute: stats.finished_last_minute,
        finished_last_hour: stats.finished_last_hour,
        oldest_claimable: stats
            .oldest_claimable_age_ms
            .map(|ms| ago(chrono::Duration::milliseconds(ms)))
            .unwrap_or_else(|| "none waiting".into()),
        past_lease: stats.past_lease,
        providers: state.engine.providers().views().await,
        chart: Chart::of(&stats.finished_per_minute),
        failed_by_class: stats.failed_last_hour_by_class.into_iter().collect(),
        after,
        nodes,
    };
    Ok(render(&page))
}

#[derive(Deserialize, Default)]
pub struct JobsQuery {
    state: Option<String>,
    kind: Option<String>,
    user_id: Option<String>,
    batch_id: Option<String>,
    before: Option<String>,
    /// A bulk action: the one to confirm (`/jobs/bulk`), or the one just done, with how many
    /// jobs it changed of how many matched (`/jobs`).
    bulk: Option<String>,
    acted: Option<String>,
    matched: Option<String>,
}

impl JobsQuery {
    /// The filter given, each field trimmed; a blank field filters nothing.
    pub(super) fn params(&self) -> Vec<(&'static str, String)> {
        [
            ("state", &self.state),
            ("kind", &self.kind),
            ("user_id", &self.user_id),
            ("batch_id", &self.batch_id),
        ]
        .into_iter()
        .filter_map(|(name, value)| filled(value).map(|v| (name, v)))
        .collect()
    }

    /// The filter as a query string, for links and forms.
    pub(super) fn query(&self) -> String {
        self.params()
            .iter()
            .map(|(name, value)| format!("{name}={}", encode(value)))
            .collect::<Vec<_>>()
            .join("&")
    }

    pub(super) fn filter(&self) -> Result<JobFilter, DashError> {
        let state = filled(&self.state)
            .map(|s| {
                s.parse::<JobState>().map_err(|_| {
                    DashError::new(StatusCode::BAD_REQUEST, format!("unknown state {s:?}"))
                })
            })
            .transpose()?;
        Ok(JobFilter {
            user_id: filled(&self.user_id),
            state,
            kind: filled(&self.kind),
            batch_id: filled(&self.batch_id),
        })
    }

    /// The filter a bulk action acts on. A bulk action needs one: no button on the dashboard
    /// cancels every job there is.
    pub(super) fn bulk_filter(&self) -> Result<JobFilter, DashError> {
        if self.params().is_empty() {
            return Err(DashError::new(
                StatusCode::BAD_REQUEST,
                "A bulk action acts on a filtered list: choose a state, kind, user or batch first.",
            ));
        }
        self.filter()
    }

    /// What the bulk action just done changed, from the redirect after it.
    fn notice(&self) -> Option<String> {
        let bulk = Bulk::parse(self.bulk.as_deref()?).ok()?;
        let acted: u32 = self.acted.as_deref()?.parse().ok()?;
        let matched: u32 = self.matched.as_deref()?.parse().ok()?;
        let mut notice = format!("{acted} of {matched} matching jobs {}.", bulk.done());
        if acted < matched {
            notice.push_str(&format!(" {}", bulk.why_not()));
        }
        Some(notice)
    }
}

/// The most jobs one bulk action changes: the newest this many of the filtered list.
pub const MAX_BULK: u32 = 10_000;

/// What the dashboard does to every job of a filtered list at once.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Bulk {
    Cancel,
    Retry,
}

impl Bulk {
    pub fn parse(name: &str) -> Result<Bulk, DashError> {
        match name {
            "cancel" => Ok(Bulk::Cancel),
            "retry" => Ok(Bulk::Retry),
            _ => Err(DashError::new(
                StatusCode::BAD_REQUEST,
                "A bulk action is cancel or retry.",
            )),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Bulk::Cancel => "cancel",
            Bulk::Retry => "retry",
        }
    }

    fn done(self) -> &'static str {
        match self {
            Bulk::Cancel => "canceled",
            Bulk::Retry => "retried",
        }
    }

    fn why_not(self) -> &'static str {
        match self {
            Bulk::Cancel => "A finished job is not canceled.",
            Bulk::Retry => {
                "Only failed and canceled jobs are retried (and each needs its credits)."
            }
        }
    }
}

struct JobRow {
    id: String,
    kind: String,
    user_id: String,
    batch_id: String,
    state: &'static str,
    attempt: u32,
    created_at: String,
    finished_at: String,
}

impl From<&Job> for JobRow {
    fn from(j: &Job) -> Self {
        JobRow {
            id: j.id.clone(),
            kind: j.kind.clone(),
            user_id: j.user_id.clone(),
            batch_id: j.batch_id.clone().unwrap_or_default(),
            state: j.state.as_str(),
            attempt: j.attempt,
            created_at: when(j.created_at),
            finished_at: when_opt(j.finished_at),
        }
    }
}

#[derive(Template)]
#[template(path = "jobs.html")]
struct JobsPage {
    nav: Nav,
    states: Vec<&'static str>,
    kinds: Vec<String>,
    filter: JobsQuery,
    /// The filter given, for the bulk action's form.
    params: Vec<(&'static str, String)>,
    /// What a bulk action just did.
    notice: Option<String>,
    rows: Vec<JobRow>,
    /// The link to the next (older) page, if there may be one.
    older: Option<String>,
}

fn filled(v: &Option<String>) -> Option<String> {
    v.as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

pub async fn jobs(
    State(state): State<Arc<AppState>>,
    session: Session,
    Query(q): Query<JobsQuery>,
) -> Result<Response, DashError> {
    let page = state
        .store
        .jobs(&JobQuery {
            filter: q.filter()?,
            before: filled(&q.before),
            limit: JOBS_PER_PAGE,
            max_bytes: state.config.api.list_page_bytes,
        })
        .await?;
    let older = page.next_before.map(|before| {
        let mut query = q.query();
        if !query.is_empty() {
            query.push('&');
        }
        format!("/jobs?{query}before={}", encode(&before))
    });
    let page = JobsPage {
        nav: Nav::new(&session, "jobs"),
        states: JobState::ALL.iter().map(|s| s.as_str()).collect(),
        kinds: state.config.kinds.iter().map(|k| k.name.clone()).collect(),
        rows: page.jobs.iter().map(JobRow::from).collect(),
        params: q.params(),
        notice: q.notice(),
        filter: q,
        older,
    };
    Ok(render(&page))
}

#[derive(Template)]
#[template(path = "bulk.html")]
struct BulkPage {
    nav: Nav,
    bulk: &'static str,
    params: Vec<(&'static str, String)>,
    /// The filter as a query string: where the confirmation posts, and the way back.
    query: String,
    matched: u32,
    /// More than `MAX_BULK` jobs match.
    more: bool,
    max: u32,
}

/// The confirmation of a bulk action: what it will act on, and how many jobs.
pub async fn bulk(
    State(state): State<Arc<AppState>>,
    session: Session,
    Query(q): Query<JobsQuery>,
) -> Result<Response, DashError> {
    let bulk = Bulk::parse(q.bulk.as_deref().unwrap_or_default())?;
    let filter = q.bulk_filter()?;
    let found = state.store.job_ids(&filter, MAX_BULK + 1).await?.len() as u32;
    let page = BulkPage {
        nav: Nav::new(&session, "jobs"),
        bulk: bulk.name(),
        params: q.params(),
        query: q.query(),
        matched: found.min(MAX_BULK),
        more: found > MAX_BULK,
        max: MAX_BULK,
    };
    Ok(render(&page))
}

/// A JSON value as the job page shows it: pretty, and folded when large.
struct Shown {
    text: String,
    folded: bool,
    bytes: usize,
}

impl Shown {
    fn of(value: &serde_json::Value) -> Shown {
        let text = pretty(value);
        Shown {
            folded: text.len() > FOLD_BYTES,
            bytes: text.len(),
            text,
        }
    }
}

struct LedgerRow {
    id: i64,
    kind: &'static str,
    amount: i64,
    balance: i64,
    job_id: String,
    batch_id: String,
    reason: String,
    created_at: String,
}

impl From<LedgerEntry> for LedgerRow {
    fn from(e: LedgerEntry) -> Self {
        LedgerRow {
            id: e.id,
            kind: e.kind.as_str(),
            amount: e.amount,
            balance: e.balance,
            job_id: e.job_id.unwrap_or_default(),
            batch_id: e.batch_id.unwrap_or_default(),
            reason: e.reason,
            created_at: when(e.created_at),
        }
    }
}

/// One attempt on the job page: ended, or (the last) still running.
struct AttemptRow {
    attempt: u32,
    started_at: String,
    ended_at: String,
    took: String,
    outcome: &'static str,
    class: String,
    message: String,
    detail: Option<String>,
}

fn attempt_rows(job: &Job, state: &AppState, admin: bool) -> Vec<AttemptRow> {
    let took = |from: Option<DateTime<Utc>>, to: DateTime<Utc>| {
        from.and_then(|f| (to - f).to_std().ok())
            .map(|d| {
                humantime::format_duration(std::time::Duration::from_millis(d.as_millis() as u64))
                    .to_string()
            })
            .unwrap_or_default()
    };
    let mut rows: Vec<AttemptRow> = job
        .history
        .iter()
        .map(|a| AttemptRow {
            attempt: a.attempt,
            started_at: when_opt(a.started_at),
            ended_at: when(a.ended_at),
            took: took(a.started_at, a.ended_at),
            outcome: a.outcome.as_str(),
            class: a.class.map(|c| c.as_str().to_string()).unwrap_or_default(),
            // What the user was told: a failure that is retried is not refunded (yet).
            message: match a.class {
                Some(_) if a.outcome.is_unfinished() => RETRYING_MESSAGE.to_string(),
                Some(c) => state.messages.get(c).to_string(),
                None => String::new(),
            },
            detail: a.detail.clone().filter(|_| admin),
        })
        .collect();
    if job.state == JobState::Running {
        rows.push(AttemptRow {
            attempt: job.attempt,
            started_at: when_opt(job.attempt_started_at),
            ended_at: String::new(),
            took: took(job.attempt_started_at, state.clock.now()),
            outcome: "running",
            class: String::new(),
            message: String::new(),
            detail: None,
        });
    }
    rows
}

#[derive(Template)]
#[template(path = "job.html")]
struct JobPage {
    nav: Nav,
    job: JobRow,
    attempts: Vec<AttemptRow>,
    priority: i32,
    max_retries: u32,
    retries_used: u32,
    rate_limit_waits: u32,
    cost: i64,
    idempotency_key: String,
    run_at: String,
    started_at: String,
    updated_at: String,
    error_class: String,
    error_message: String,
    error_detail: Option<String>,
    payload: Shown,
    result: Option<Shown>,
    ledger: Vec<LedgerRow>,
    can_cancel: bool,
    can_retry: bool,
}

pub async fn job(
    State(state): State<Arc<AppState>>,
    session: Session,
    Path(id): Path<String>,
) -> Result<Response, DashError> {
    let job = state.store.job(&id).await?;
    let ledger = state.store.job_ledger(&id).await?;
    let (error_class, error_message, error_detail) = match &job.error {
        Some(e) => (
            e.class.as_str().to_string(),
            if job.state.is_unfinished() {
                RETRYING_MESSAGE.to_string()
            } else {
                state.messages.get(e.class).to_string()
            },
            Some(e.detail.clone()).filter(|_| session.can_change()),
        ),
        None => Default::default(),
    };
    let page = JobPage {
        nav: Nav::new(&session, "jobs"),
        job: JobRow::from(&job),
        attempts: attempt_rows(&job, &state, session.can_change()),
        priority: job.priority,
        max_retries: job.max_retries,
        retries_used: job.retries_used,
        rate_limit_waits: job.rate_limit_waits,
        cost: job.cost,
        idempotency_key: job.idempotency_key.clone().unwrap_or_default(),
        run_at: when(job.run_at),
        started_at: when_opt(job.started_at),
        updated_at: when(job.updated_at),
        error_class,
        error_message,
        error_detail,
        payload: Shown::of(&job.payload),
        result: job.result.as_ref().map(Shown::of),
        ledger: ledger.into_iter().map(LedgerRow::from).collect(),
        can_cancel: job.state.is_unfinished(),
        can_retry: matches!(job.state, JobState::Failed | JobState::Canceled),
    };
    Ok(render(&page))
}

#[derive(Template)]
#[template(path = "batch.html")]
struct BatchPage {
    nav: Nav,
    batch: crate::views::BatchView,
    done: u32,
    percent: u32,
    finished: bool,
    rows: Vec<JobRow>,
    more: bool,
    /// The newest event when the page was read: `/live` signals what comes after it.
    after: i64,
}

#[derive(Deserialize, Default)]
pub struct BatchesQuery {
    before: Option<String>,
}

struct BatchRow {
    id: String,
    user_id: String,
    kind: String,
    total: u32,
    done: u32,
    percent: u32,
    created_at: String,
    completed_at: String,
}

#[derive(Template)]
#[template(path = "batches.html")]
struct BatchesPage {
    nav: Nav,
    rows: Vec<BatchRow>,
    /// A batch on the page is still running: the page refreshes its bars.
    live: bool,
    after: i64,
    /// This page's own address, for the refresh.
    here: String,
    older: Option<String>,
}

/// Batches newest first, each with its progress bar; bars of running batches move.
pub async fn batches(
    State(state): State<Arc<AppState>>,
    session: Session,
    Query(q): Query<BatchesQuery>,
) -> Result<Response, DashError> {
    let before = filled(&q.before);
    let after = state.store.events_end().await?;
    let batches = state
        .store
        .batches(before.as_deref(), BATCHES_PER_PAGE)
        .await?;
    let older = (batches.len() == BATCHES_PER_PAGE as usize)
        .then(|| {
            batches
                .last()
                .map(|b| format!("/batches?before={}", encode(&b.id)))
        })
        .flatten();
    let rows: Vec<BatchRow> = batches
        .into_iter()
        .map(|b| {
            let done = b.total.saturating_sub(b.unfinished);
            BatchRow {
                percent: (u64::from(done) * 100 / u64::from(b.total.max(1))) as u32,
                done,
                total: b.total,
                created_at: when(b.created_at),
                completed_at: when_opt(b.completed_at),
                id: b.id,
                user_id: b.user_id,
                kind: b.kind,
            }
        })
        .collect();
    let page = BatchesPage {
        nav: Nav::new(&session, "batches"),
        live: rows.iter().any(|r| r.done < r.total),
        after,
        here: match &before {
            Some(b) => format!("/batches?before={}", encode(b)),
            None => "/batches".into(),
        },
        rows,
        older,
    };
    Ok(render(&page))
}

pub async fn batch(
    State(state): State<Arc<AppState>>,
    session: Session,
    Path(id): Path<String>,
) -> Result<Response, DashError> {
    let after = state.store.events_end().await?;
    let batch = state.store.batch(&id).await?;
    let page = state
        .store
        .jobs(&JobQuery {
            filter: JobFilter {
                batch_id: Some(id),
                ..Default::default()
            },
            before: None,
            limit: JOBS_PER_PAGE,
            max_bytes: state.config.api.list_page_bytes,
        })
        .await?;
    let done = batch.succeeded + batch.failed + batch.canceled;
    let page = BatchPage {
        nav: Nav::new(&session, "batches"),
        done,
        percent: (u64::from(done) * 100 / u64::from(batch.total.max(1))) as u32,
        finished: done == batch.total,
        rows: page.jobs.iter().map(JobRow::from).collect(),
        more: page.next_before.is_some(),
        after,
        batch: batch.into(),
    };
    Ok(render(&page))
}

#[derive(Deserialize, Default)]
pub struct UsersQuery {
    /// The header's "find user" box: straight to that user's page.
    id: Option<String>,
    /// The last user of the previous page.
    after: Option<String>,
}

struct UserRow {
    id: String,
    plan: String,
    credits: i64,
    unfinished: u32,
    running: u32,
    created_at: String,
}

#[derive(Template)]
#[template(path = "users.html")]
struct UsersPage {
    nav: Nav,
    rows: Vec<UserRow>,
    next: Option<String>,
}

/// Users in id order, a page at a time; or, from the header's box, one user.
pub async fn users(
    State(state): State<Arc<AppState>>,
    session: Session,
    Query(q): Query<UsersQuery>,
) -> Result<Response, DashError> {
    if let Some(id) = filled(&q.id) {
        return Ok(Redirect::to(&format!("/users/{}", encode(&id))).into_response());
    }
    let after = filled(&q.after).unwrap_or_default();
    let users = state.store.users(&after, USERS_PER_PAGE).await?;
    let next = (users.len() == USERS_PER_PAGE as usize)
        .then(|| {
            users
                .last()
                .map(|u| format!("/users?after={}", encode(&u.id)))
        })
        .flatten();
    let page = UsersPage {
        nav: Nav::new(&session, "users"),
        rows: users
            .into_iter()
            .map(|u| UserRow {
                created_at: when(u.created_at),
                id: u.id,
                plan: u.plan,
                credits: u.credits,
                unfinished: u.unfinished,
                running: u.running,
            })
            .collect(),
        next,
    };
    Ok(render(&page))
}

#[derive(Deserialize, Default)]
pub struct LedgerQuery {
    before: Option<i64>,
}

#[derive(Template)]
#[template(path = "user.html")]
struct UserPage {
    nav: Nav,
    user: crate::routes::users::UserView,
    running: u32,
    plans: Vec<&'static str>,
    ledger: Vec<LedgerRow>,
    older: Option<String>,
}

pub async fn user(
    State(state): State<Arc<AppState>>,
    session: Session,
    Path(id): Path<String>,
    Query(q): Query<LedgerQuery>,
) -> Result<Response, DashError> {
    let day = state.config.quota.day(state.clock.now());
    let user = state.store.user(&id, &day).await.map_err(|e| match e {
        genq_store::StoreError::NotFound => DashError::new(
            StatusCode::NOT_FOUND,
            format!("No user {id:?}: a user exists once a job, a plan or credits name it."),
        ),
        other => other.into(),
    })?;
    let (entries, next) = state.store.ledger(&id, q.before, LEDGER_PER_PAGE).await?;
    let page = UserPage {
        nav: Nav::new(&session, "users"),
        running: user.running,
        user: crate::routes::users::view(&state, user).await?,
        plans: PLANS.to_vec(),
        ledger: entries.into_iter().map(LedgerRow::from).collect(),
        older: next.map(|before| format!("/users/{}?before={before}", encode(&id))),
    };
    Ok(render(&page))
}

struct LimitRow {
    key: &'static str,
    value: i64,
    default: i64,
    min: i64,
    max: i64,
    changed: bool,
}

#[derive(Template)]
#[template(path = "limits.html")]
struct LimitsPage {
    nav: Nav,
    rows: Vec<LimitRow>,
}

pub async fn limits(
    State(state): State<Arc<AppState>>,
    session: Session,
) -> Result<Response, DashError> {
    let limits = state.store.limits().await?;
    let rows = LIMITS
        .iter()
        .map(|spec| {
            let value = limits.get(spec.key);
            LimitRow {
                key: spec.key,
                value,
                default: spec.default,
                min: spec.min,
                max: spec.max,
                changed: value != spec.default,
            }
        })
        .collect();
    Ok(render(&LimitsPage {
        nav: Nav::new(&session, "limits"),
        rows,
    }))
}

#[derive(Template)]
#[template(path = "providers.html")]
struct ProvidersPage {
    nav: Nav,
    providers: Vec<ProviderView>,
}

pub async fn providers(
    State(state): State<Arc<AppState>>,
    session: Session,
) -> Result<impl IntoResponse, DashError> {
    Ok(render(&ProvidersPage {
        nav: Nav::new(&session, "providers"),
        providers: state.engine.providers().views().await,
    }))
}

#[derive(Template)]
#[template(path = "schedules.html")]
struct SchedulesPage {
    nav: Nav,
    schedules: Vec<crate::routes::schedules::ScheduleView>,
}

/// Every `[[schedules]]` entry: its next and last slot, its last job or why it was refused.
pub async fn schedules(
    State(state): State<Arc<AppState>>,
    session: Session,
) -> Result<Response, DashError> {
    let page = SchedulesPage {
        nav: Nav::new(&session, "schedules"),
        schedules: crate::routes::schedules::views(&state).await?,
    };
    Ok(render(&page))
}

#[derive(Template)]
#[template(path = "webhooks.html")]
struct WebhooksPage {
    nav: Nav,
    webhooks: Vec<crate::routes::admin::WebhookView>,
}

/// Every `[[webhooks]]` endpoint: its backlog, its dead deliveries, its last success and error.
pub async fn webhooks(
    State(state): State<Arc<AppState>>,
    session: Session,
) -> Result<Response, DashError> {
    let mut webhooks = Vec::new();
    for endpoint in &state.engine.shared().webhooks {
        webhooks.push(crate::routes::admin::webhook_view(&state, endpoint).await?);
    }
    let page = WebhooksPage {
        nav: Nav::new(&session, "webhooks"),
        webhooks,
    };
    Ok(render(&page))
}
