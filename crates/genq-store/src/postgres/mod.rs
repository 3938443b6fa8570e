//! The PostgreSQL backend: many genq processes on many machines, one database.
//!
//! Every operation is one transaction at READ COMMITTED. What makes that safe with concurrent
//! processes:
//! - claims lock their candidate rows with `FOR UPDATE SKIP LOCKED`, so two claimers never wait
//!   for each other and never take the same job; the fairness is the SQLite backend's
//!   start-time fair queueing (see `sqlite/mod.rs`), with the virtual clock in one row;
//! - every write is fenced by state and lease token, as on SQLite;
//! - a user's row is locked (`FOR UPDATE`) by every transaction that checks or moves its
//!   balance, counters or `user_max_running`, always in user-id order, after the job rows;
//! - a deadlock or serialization failure rolls the transaction back and runs it again.
//!
//! The SQL is in `sql/*.sql`, one statement per file; the schema in `migrations/postgres/`,
//! applied by sqlx's migrator under its advisory lock, so processes may start together.

mod accounts;
mod events;
mod rows;
mod webhooks;

use crate::Prune;
use crate::outbox::Outbox;
use crate::rules::Candidate;
use crate::{
    BatchSummary, BudgetOp, ClaimRequest, Coordination, Delivery, DeliveryFilter, DeliveryOutcome,
    Enqueued, EventFilter, Finish, JobFilter, JobQuery, LeaseRef, NewJobs, NodeLock, NodeSeen,
    Outcome, Page, Polls, Rejection, Result, ScheduleState, Signal, SlotRun, Staged, Stats, Store,
    StoreError, UserCtx, WebhookStatus,
};
use accounts::Counts;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use genq_core::{Batch, Job, JobState, LedgerEntry, LedgerKind, Limits, User, ids};
use rows::{PgError, db_error, from_micros, micros};
use sqlx::postgres::{PgConnectOptions, PgListener, PgPoolOptions};
use sqlx::{Connection, PgConnection, PgPool, Row};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

macro_rules! sql {
    ($name:literal) => {
        include_str!(concat!("sql/", $name, ".sql"))
    };
}
pub(crate) use sql;

/// Run `$body` (an expression using `$c: &mut PgConnection`, returning a future of
/// `Result<T, PgError>`) in a transaction; again, up to a few times, after a deadlock or a
/// serialization failure.
macro_rules! transaction {
    ($store:expr, |$c:ident| $body:expr) => {{
        let mut tries = 0u32;
        loop {
            let mut tx = $store.pool.begin().await.map_err(db_error)?;
            let out = {
                let $c: &mut PgConnection = &mut tx;
                $body.await
            };
            let out = match out {
                Ok(v) => tx.commit().await.map(|()| v).map_err(PgError::Db),
                Err(e) => Err(e),
            };
            match out {
                Ok(v) => break Ok(v),
                Err(e) if e.is_retryable() && tries < 8 => {
                    tries += 1;
                    tokio::time::sleep(Duration::from_millis(2 << tries)).await;
                }
                Err(e) => break Err(e.into_store()),
            }
        }
    }};
}

#[derive(Clone)]
pub struct PgStore {
    pool: PgPool,
    options: PgConnectOptions,
    /// Send and listen for LISTEN/NOTIFY hints.
    notify: bool,
    /// The newest event position `new_events` has reported.
    seen_events: Arc<crate::outbox::EventsSeen>,
}

/// The NOTIFY channel; payloads are `work`, `delayed`, `limits`, `cancel:<job id>`.
const CHANNEL: &str = "genq";

/// Tell other processes, when this transaction commits.
async fn hint(c: &mut PgConnection, on: bool, what: &str) -> Result<(), PgError> {
    if on {
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(CHANNEL)
            .bind(what)
            .execute(c)
            .await?;
    }
    Ok(())
}

impl PgStore {
    /// The jobs a query of whole rows finds.
    async fn jobs_of(
        &self,
        query: sqlx::query::Query<'_, sqlx::Postgres, sqlx::postgres::PgArguments>,
    ) -> Result<Vec<Job>> {
        let found = query.fetch_all(&self.pool).await.map_err(db_error)?;
        found
            .iter()
            .map(rows::job)
            .collect::<Result<_, _>>()
            .map_err(db_error)
    }

    /// Connect to `url` (`postgres://user@host/db`) and apply migrations.
    pub async fn connect(url: &str) -> Result<PgStore> {
        Self::connect_pooled(url, 16).await
    }

    /// The same, with at most `connections` connections.
    pub async fn connect_pooled(url: &str, connections: u32) -> Result<PgStore> {
        let options = PgConnectOptions::from_str(url)
            .map_err(|e| StoreError::Invalid(format!("database: {e}")))?;
        Self::connect_with(options, connections).await
    }

    pub async fn connect_with(options: PgConnectOptions, connections: u32) -> Result<PgStore> {
        // Notices ("already exists, skipping") are not worth a log line.
        let options = options.options([("client_min_messages", "warning")]);
        let pool = PgPoolOptions::new()
            .max_connections(connections)
            .acquire_timeout(Duration::from_secs(5))
            .connect_with(options.clone())
            .await
            .map_err(db_error)?;
        let store = PgStore {
            pool,
            options,
            notify: true,
            seen_events: Arc::default(),
        };
        store.migrate().await?;
        Ok(store)
    }

    /// Without LISTEN/NOTIFY hints: every service finds work by its fallback poll.
    pub fn without_notify(mut self) -> PgStore {
        self.notify = false;
        self
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }
}

const MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "genq",
        include_str!("../../migrations/postgres/0001_genq.sql"),
    ),
    (
        2,
        "rate_budgets",
        include_str!("../../migrations/postgres/0002_rate_budgets.sql"),
    ),
    (
        3,
        "concurrency_slots",
        include_str!("../../migrations/postgres/0003_concurrency_slots.sql"),
    ),
    (
        4,
        "events",
        include_str!("../../migrations/postgres/0004_events.sql"),
    ),
    (
        5,
        "webhooks",
        include_str!("../../migrations/postgres/0005_webhooks.sql"),
    ),
    (
        6,
        "schedules",
        include_str!("../../migrations/postgres/0006_schedules.sql"),
    ),
    (
        7,
        "claimable_run_at",
        include_str!("../../migrations/postgres/0007_claimable_run_at.sql"),
    ),
    (
        8,
        "user_count_moves",
        include_str!("../../migrations/postgres/0008_user_count_moves.sql"),
    ),
    (
        9,
        "attempt_history",
        include_str!("../../migrations/postgres/0009_attempt_history.sql"),
    ),
    (
        10,
        "nodes",
        include_str!("../../migrations/postgres/0010_nodes.sql"),
    ),
    (
        11,
        "event_positions",
        include_str!("../../migrations/postgres/0011_event_positions.sql"),
    ),
    (
        12,
        "job_counts",
        include_str!("../../migrations/postgres/0012_job_counts.sql"),
    ),
    (
        13,
        "jobs_fillfactor",
        include_str!("../../migrations/postgres/0013_jobs_fillfactor.sql"),
    ),
    (
        14,
        "event_position_key",
        include_str!("../../migrations/postgres/0014_event_position_key.sql"),
    ),
    (
        15,
        "job_owners",
        include_str!("../../migrations/postgres/0015_job_owners.sql"),
    ),
];

fn migrator() -> sqlx::migrate::Migrator {
    use sqlx::migrate::{Migration, MigrationType, Migrator};
    let migrations = MIGRATIONS
        .iter()
        .map(|(version, name, sql)| {
            Migration::new(
                *version,
                (*name).into(),
                MigrationType::Simple,
                sqlx::SqlSafeStr::into_sql_str(*sql),
                false,
            )
        })
        .collect::<Vec<_>>();
    Migrator {
        migrations: migrations.into(),
        ..Migrator::DEFAULT
    }
}

async fn vtime(c: &mut PgConnection) -> Result<i64, PgError> {
    Ok(sqlx::query_scalar(sql!("fair_clock_get"))
        .fetch_one(c)
        .await?)
}

/// Reserve consecutive fair-queue tags, `n` for each user, in one statement; the first of each.
async fn reserve_tags(
    c: &mut PgConnection,
    counts: &std::collections::BTreeMap<&str, i64>,
) -> Result<std::collections::HashMap<String, i64>, PgError> {
    let mut first = std::collections::HashMap::new();
    if counts.is_empty() {
        return Ok(first);
    }
    let users: Vec<&str> = counts.keys().copied().collect();
    let ns: Vec<i64> = counts.values().copied().collect();
    for row in sqlx::query(sql!("fair_users_reserve_many"))
        .bind(&users)
        .bind(&ns)
        .fetch_all(c)
        .await?
    {
        let user_id: String = row.try_get("user_id")?;
        let next: i64 = row.try_get("next_tag")?;
        first.insert(user_id.clone(), next - counts[user_id.as_str()]);
    }
    Ok(first)
}

async fn job_by_id(c: &mut PgConnection, id: &str) -> Result<Job, PgError> {
    let row = sqlx::query(sql!("job_get"))
        .bind(id)
        .fetch_optional(c)
        .await?
        .ok_or(StoreError::NotFound)?;
    Ok(rows::job(&row)?)
}

async fn batch_by_id(c: &mut PgConnection, id: &str) -> Result<Batch, PgError> {
    let row = sqlx::query(sql!("batch_get"))
        .bind(id)
        .fetch_optional(&mut *c)
        .await?
        .ok_or(StoreError::NotFound)?;
    let mut batch = rows::batch(&row)?;
    let counts = sqlx::query(sql!("batch_counts"))
        .bind(id)
        .fetch_all(c)
        .await?;
    let mut last_finish: Option<i64> = None;
    for row in counts {
        let state: JobState = rows::parse(&row.try_get::<String, _>("state")?)?;
        let n = row.try_get::<i64, _>("n")? as u32;
        *match state {
            JobState::Queued => &mut batch.queued,
            JobState::Running => &mut batch.running,
            JobState::Retrying => &mut batch.retrying,
            JobState::Succeeded => &mut batch.succeeded,
            JobState::Failed => &mut batch.failed,
            JobState::Canceled => &mut batch.canceled,
        } = n;
        last_finish = last_finish.max(row.try_get("finished")?);
    }
    if batch.succeeded + batch.failed + batch.canceled == batch.total {
        batch.finished_at = last_finish.map(from_micros);
    }
    Ok(batch)
}

async fn batch_job_ids(c: &mut PgConnection, id: &str) -> Result<Vec<String>, PgError> {
    Ok(sqlx::query_scalar(sql!("batch_job_ids"))
        .bind(id)
        .fetch_all(c)
        .await?)
}

/// An idempotent replay: the jobs (and batch) an earlier request with the same key created.
async fn replay(c: &mut PgConnection, req: &NewJobs) -> Result<Option<Enqueued>, PgError> {
    let Some(key) = &req.idempotency_key else {
        return Ok(None);
    };
    if req.as_batch {
        let batch_id: Option<String> = sqlx::query_scalar(sql!("batch_by_idempotency_key"))
            .bind(&req.user_id)
            .bind(key)
            .fetch_optional(&mut *c)
            .await?;
        let Some(batch_id) = batch_id else {
            return Ok(None);
        };
        let mut jobs = Vec::new();
        for id in batch_job_ids(c, &batch_id).await? {
            jobs.push(job_by_id(c, &id).await?);
        }
        Ok(Some(Enqueued {
            batch: Some(batch_by_id(c, &batch_id).await?),
            jobs,
            replayed: true,
        }))
    } else {
        let row = sqlx::query(sql!("job_by_idempotency_key"))
            .bind(&req.user_id)
            .bind(key)
            .fetch_optional(c)
            .await?;
        Ok(match row {
            Some(row) => Some(Enqueued {
                batch: None,
                jobs: vec![rows::job(&row)?],
                replayed: true,
            }),
            None => None,
        })
    }
}

/// Enqueue in four statements (each a round trip under load): lock the user, read what
/// admission needs, write the jobs with everything they move and the NOTIFY hint when
/// `notify` (`job_insert_many.sql`), then the events.
async fn enqueue(c: &mut PgConnection, req: &NewJobs, notify: bool) -> Result<Enqueued, PgError> {
    // The user's row is locked first: the replay check, the admission and the insert then
    // see no concurrent request of the same user half-way.
    accounts::lock_or_create(c, &req.user_id, &req.user_defaults, req.now).await?;
    if let Some(replayed) = replay(c, req).await? {
        return Ok(replayed);
    }
    let now = micros(req.now);
    let run_at = req.run_at.map(micros).unwrap_or(now).max(now);
    let due = run_at <= now;
    let n = req.payloads.len() as i64;
    accounts::admit(c, &req.user_id, &req.day, n, req.cost, req.as_batch).await?;
    let batch_id = req.as_batch.then(ids::new_id);
    let (batch_key, job_key) = if req.as_batch {
        (req.idempotency_key.clone(), None)
    } else {
        (None, req.idempotency_key.clone())
    };
    let ids: Vec<String> = req.payloads.iter().map(|_| ids::new_id()).collect();
    let payloads: Vec<sqlx::types::Json<&serde_json::Value>> =
        req.payloads.iter().map(sqlx::types::Json).collect();
    let hint = notify.then_some(if due { "work" } else { "delayed" });
    sqlx::query(sql!("job_insert_many"))
        .bind(&ids)
        .bind(&payloads)
        .bind(&batch_key)
        .bind(&req.kind)
        .bind(&req.user_id)
        .bind(&batch_id)
        .bind(req.priority)
        .bind(req.max_retries as i32)
        .bind(req.cost)
        .bind(&job_key)
        .bind(run_at)
        .bind(now)
        .bind(&req.day)
        .bind(n)
        .bind(due)
        .bind(req.cost * n)
        .bind(CHANNEL)
        .bind(hint)
        .bind(format!("{} accepted", req.kind))
        .execute(&mut *c)
        .await?;
    let mut jobs = Vec::with_capacity(req.payloads.len());
    for (id, payload) in ids.into_iter().zip(&req.payloads) {
        jobs.push(crate::rules::new_job(
            req,
            id,
            payload.clone(),
            batch_id.clone(),
            job_key.clone(),
            from_micros(run_at),
        ));
    }
    let mut outbox = Outbox::default();
    outbox.accepted(&jobs);
    events::write(c, outbox, &Counts::default(), req.now).await?;
    Ok(Enqueued {
        batch: batch_id.map(|id| crate::rules::new_batch(req, id, n as u32)),
        jobs,
        replayed: false,
    })
}

async fn claim(c: &mut PgConnection, req: &ClaimRequest) -> Result<Vec<Job>, PgError> {
    let mut kinds = req.kinds.clone();
    kinds.sort();
    kinds.dedup();
    let cap = accounts::limits(c)
        .await?
        .get(genq_core::limits::USER_MAX_RUNNING);
    let look_ahead = if cap > 0 { req.max * 4 } else { req.max };
    // The best of each kind (locked), merged: the best overall are among them. Rows locked
    // and not taken are released at commit.
    let mut candidates = Vec::new();
    for kind in &kinds {
        let found = sqlx::query(sql!("job_claimable_by_kind"))
            .bind(kind)
            .bind(look_ahead as i64)
            .fetch_all(&mut *c)
            .await?;
        for row in found {
            candidates.push(Candidate {
                id: row.try_get("id")?,
                priority: row.try_get("priority")?,
                tag: row.try_get("fair_tag")?,
                user_id: row.try_get("user_id")?,
            });
        }
    }
    let mut running = std::collections::HashMap::new();
    if cap > 0 {
        // `user_max_running` across every process: the candidates' users are locked, so no
        // other claim counts their running jobs until this one commits.
        let mut users: Vec<String> = candidates.iter().map(|c| c.user_id.clone()).collect();
        users.sort();
        users.dedup();
        sqlx::query(sql!("users_lock"))
            .bind(&users)
            .execute(&mut *c)
            .await?;
        let counts = sqlx::query(sql!("users_running"))
            .bind(&users)
            .fetch_all(&mut *c)
            .await?;
        for row in counts {
            running.insert(
                row.try_get::<String, _>("id")?,
                row.try_get::<i64, _>("running")?,
            );
        }
    }
    let candidates = crate::rules::choose(candidates, req.max as usize, cap, running);
    let Some(max_tag) = candidates.iter().map(|c| c.tag).max() else {
        return Ok(Vec::new());
    };
    let order: std::collections::HashMap<&str, usize> = candidates
        .iter()
        .enumerate()
        .map(|(i, c)| (c.id.as_str(), i))
        .collect();
    let ids: Vec<&str> = candidates.iter().map(|c| c.id.as_str()).collect();
    let taken = sqlx::query(sql!("job_claim"))
        .bind(&ids)
        .bind(ids::new_lease_token())
        .bind(&req.node_id)
        .bind(&req.worker_id)
        .bind(micros(req.lease_until))
        .bind(micros(req.now))
        .fetch_all(&mut *c)
        .await?;
    let mut claimed = taken.iter().map(rows::job).collect::<Result<Vec<_>, _>>()?;
    claimed.sort_by_key(|job| order.get(job.id.as_str()).copied());
    let mut counts = Counts::default();
    let mut outbox = Outbox::default();
    outbox.claimed(&claimed);
    for job in &claimed {
        counts.add(&job.user_id, 0, 1);
    }
    // Late, so that the clock's one row is held only while the claim commits.
    sqlx::query(sql!("fair_clock_advance"))
        .bind(max_tag)
        .execute(&mut *c)
        .await?;
    events::write(c, outbox, &counts, req.now).await?;
    Ok(claimed)
}

/// The columns of `job_finish_many.sql`, one element per transition.
#[derive(Default)]
struct Transitions<'a> {
    id: Vec<&'a str>,
    token: Vec<&'a str>,
    expired_before: Vec<Option<i64>>,
    state: Vec<&'static str>,
    result: Vec<Option<sqlx::types::Json<&'a serde_json::Value>>>,
    error_class: Vec<Option<&'static str>>,
    error_detail: Vec<Option<&'a str>>,
    run_at: Vec<Option<i64>>,
    fair_tag: Vec<Option<i64>>,
    uses_retry: Vec<i32>,
    rate_limit_wait: Vec<i32>,
    finished_at: Vec<Option<i64>>,
    now: Vec<i64>,
}

async fn finish(c: &mut PgConnection, finishes: &[Finish]) -> Result<Vec<bool>, PgError> {
    let mut applied = vec![false; finishes.len()];
    let mut t = Transitions::default();
    let mut front_tag = None;
    // Parking writes rows one by one: with parked entries in the batch, lock every row first,
    // in id order (job_finish_many alone locks its own rows in that order).
    if finishes
        .iter()
        .any(|f| matches!(f.outcome, Outcome::Parked { .. }))
    {
        let all: Vec<&str> = finishes.iter().map(|f| f.lease.job_id.as_str()).collect();
        sqlx::query(sql!("jobs_lock"))
            .bind(&all)
            .execute(&mut *c)
            .await?;
    }
    // Positions in `t` of each entry that goes to job_finish_many, by its position here.
    let mut entries = Vec::new();
    for (i, f) in finishes.iter().enumerate() {
        let now = micros(f.now);
        let Some(w) = crate::rules::written(&f.outcome, now) else {
            let Outcome::Parked { task_id, poll_at } = &f.outcome else {
                unreachable!("only a parked outcome writes no transition")
            };
            let changed = sqlx::query(sql!("job_park"))
                .bind(&f.lease.job_id)
                .bind(&f.lease.token)
                .bind(task_id)
                .bind(micros(*poll_at))
                .bind(now)
                .execute(&mut *c)
                .await?
                .rows_affected();
            applied[i] = changed == 1;
            continue;
        };
        let mut fair_tag = None;
        if w.due_now {
            if front_tag.is_none() {
                front_tag = Some(vtime(c).await?);
            }
            fair_tag = front_tag;
        }
        entries.push(i);
        t.id.push(&f.lease.job_id);
        t.token.push(&f.lease.token);
        t.expired_before.push(f.only_if_expired_before.map(micros));
        t.state.push(w.state);
        t.result.push(w.result.map(sqlx::types::Json));
        t.error_class.push(w.error.map(|e| e.class.as_str()));
        t.error_detail.push(w.error.map(|e| e.detail.as_str()));
        t.run_at.push(w.run_at);
        t.fair_tag.push(fair_tag);
        t.uses_retry.push(w.uses_retry as i32);
        t.rate_limit_wait.push(w.rate_limit_wait as i32);
        t.finished_at.push(w.finished_at);
        t.now.push(now);
    }
    if t.id.is_empty() {
        return Ok(applied);
    }
    let done: Vec<i64> = sqlx::query_scalar(sql!("job_finish_many"))
        .bind(&t.id)
        .bind(&t.token)
        .bind(&t.expired_before)
        .bind(&t.state)
        .bind(&t.result)
        .bind(&t.error_class)
        .bind(&t.error_detail)
        .bind(&t.run_at)
        .bind(&t.fair_tag)
        .bind(&t.uses_retry)
        .bind(&t.rate_limit_wait)
        .bind(&t.finished_at)
        .bind(&t.now)
        .fetch_all(&mut *c)
        .await?;
    let mut transitions = Vec::new();
    for ord in done {
        let i = entries[ord as usize - 1];
        applied[i] = true;
        transitions.push(&finishes[i]);
    }
    // The users that get usage back and a refund, locked at once in id order before any is
    // written, so that two finishes never take their locks out of order. The others' rows are
    // not touched: their counters move by appending (`Counts`).
    let mut users: Vec<&str> = transitions
        .iter()
        .filter(|f| crate::rules::gives_back(f.outcome.state()))
        .map(|f| f.owner.user_id.as_str())
        .collect();
    users.sort();
    users.dedup();
    if !users.is_empty() {
        sqlx::query(sql!("users_lock"))
            .bind(&users)
            .execute(&mut *c)
            .await?;
    }
    let mut counts = Counts::default();
    let mut outbox = Outbox::default();
    let now = transitions.last().map(|f| f.now);
    for f in transitions {
        accounts::after_transition(
            c,
            &mut counts,
            &mut outbox,
            &f.lease.job_id,
            &f.owner,
            (JobState::Running, f.outcome.state()),
            f.now,
        )
        .await?;
        let to = f.outcome.state();
        if to.is_terminal() {
            let class = match &f.outcome {
                Outcome::Failed { error } => Some(error.class),
                _ => None,
            };
            outbox.finished_at(f.now, to, class);
        }
    }
    if let Some(now) = now {
        events::write(c, outbox, &counts, now).await?;
    }
    Ok(applied)
}

async fn claim_polls(c: &mut PgConnection, req: &ClaimRequest) -> Result<Polls, PgError> {
    let taken = sqlx::query(sql!("job_poll_claim"))
        .bind(&req.kinds)
        .bind(req.max as i64)
        .bind(ids::new_lease_token())
        .bind(&req.node_id)
        .bind(&req.worker_id)
        .bind(micros(req.lease_until))
        .bind(micros(req.now))
        .fetch_all(&mut *c)
        .await?;
    let jobs = taken.iter().map(rows::job).collect::<Result<Vec<_>, _>>()?;
    let next: Option<i64> = sqlx::query_scalar(sql!("job_next_poll"))
        .bind(&req.kinds)
        .fetch_one(c)
        .await?;
    Ok(Polls {
        jobs,
        next_due: next.map(from_micros),
    })
}

/// Fold the jobs' count moves into their counts (see migration 0012; seconds more than two
/// hours before `now` forgotten), and users' count moves
/// into their rows (see migration 0008), for up to 1,000 users.
async fn fold_count_moves(c: &mut PgConnection, now: DateTime<Utc>) -> Result<(), PgError> {
    sqlx::query(sql!("job_count_moves_fold"))
        .bind(now.timestamp())
        .execute(&mut *c)
        .await?;
    let mut users: Vec<String> = sqlx::query_scalar(sql!("user_count_moves_users"))
        .bind(1000i64)
        .fetch_all(&mut *c)
        .await?;
    if users.is_empty() {
        return Ok(());
    }
    users.sort();
    sqlx::query(sql!("users_lock"))
        .bind(&users)
        .execute(&mut *c)
        .await?;
    sqlx::query(sql!("user_count_moves_fold"))
        .bind(&users)
        .execute(c)
        .await?;
    Ok(())
}

async fn stage_due(c: &mut PgConnection, now: i64, limit: u32) -> Result<Staged, PgError> {
    let found = sqlx::query(sql!("job_due"))
        .bind(now)
        .bind(limit as i64)
        .fetch_all(&mut *c)
        .await?;
    let mut due = Vec::with_capacity(found.len());
    for row in &found {
        let (id, user_id, state): (String, String, String) = (
            row.try_get("id")?,
            row.try_get("user_id")?,
            row.try_get("state")?,
        );
        due.push((user_id, id, state));
    }
    // Delayed new jobs join the back of their user's turn, in due order (tags reserved for
    // all of a user's at once, users in id order so that processes staging at once never
    // deadlock); retries go to the front.
    let front = vtime(c).await?;
    let mut delayed: std::collections::BTreeMap<&str, i64> = Default::default();
    for (user_id, _, state) in &due {
        if state != JobState::Retrying.as_str() {
            *delayed.entry(user_id.as_str()).or_default() += 1;
        }
    }
    let mut next_tags = reserve_tags(c, &delayed).await?;
    let mut ids = Vec::with_capacity(due.len());
    let mut tags = Vec::with_capacity(due.len());
    for (user_id, id, state) in &due {
        let tag = if state == JobState::Retrying.as_str() {
            front
        } else {
            let next = next_tags
                .get_mut(user_id)
                .expect("a tag was reserved for every user with delayed jobs");
            *next += 1;
            *next - 1
        };
        ids.push(id.as_str());
        tags.push(tag);
    }
    if !ids.is_empty() {
        sqlx::query(sql!("job_stage_many"))
            .bind(&ids)
            .bind(&tags)
            .execute(&mut *c)
            .await?;
    }
    let next: Option<i64> = sqlx::query_scalar(sql!("job_next_due"))
        .fetch_optional(c)
        .await?;
    Ok(Staged {
        staged: due.len() as u32,
        next_due: next.map(from_micros),
    })
}

/// A job's state and what its bookkeeping needs, locked; `NotFound` if there is no such job.
async fn job_accounting(
    c: &mut PgConnection,
    id: &str,
) -> Result<(JobState, crate::Owner), PgError> {
    let row = sqlx::query(sql!("job_accounting"))
        .bind(id)
        .fetch_optional(c)
        .await?
        .ok_or(StoreError::NotFound)?;
    Ok((
        rows::parse(&row.try_get::<String, _>("state")?)?,
        crate::Owner {
            user_id: row.try_get("user_id")?,
            cost: row.try_get("cost")?,
            day: row.try_get("day")?,
            series: row.try_get::<i32, _>("series")? as u32,
            kind: row.try_get("kind")?,
            batch_id: row.try_get("batch_id")?,
            attempt: row.try_get::<i32, _>("attempt")? as u32,
        },
    ))
}

async fn cancel(c: &mut PgConnection, id: &str, now: DateTime<Utc>) -> Result<Job, PgError> {
    let (from, owner) = job_accounting(c, id).await?;
    // The user's row before anything of theirs is written (usage, ledger, counters).
    accounts::user_locked(c, &owner.user_id).await?;
    if !from.is_cancelable() {
        return Err(StoreError::Conflict(format!(
            "job {id} is {from}; only unfinished jobs can be canceled"
        ))
        .into());
    }
    let row = sqlx::query(sql!("job_cancel"))
        .bind(id)
        .bind(micros(now))
        .fetch_one(&mut *c)
        .await?;
    let job = rows::job(&row)?;
    let mut counts = Counts::default();
    let mut outbox = Outbox::default();
    accounts::after_transition(
        c,
        &mut counts,
        &mut outbox,
        id,
        &owner,
        (from, JobState::Canceled),
        now,
    )
    .await?;
    outbox.finished_at(now, JobState::Canceled, None);
    events::write(c, outbox, &counts, now).await?;
    Ok(job)
}

async fn admin_retry(c: &mut PgConnection, id: &str, now: DateTime<Utc>) -> Result<Job, PgError> {
    let (from, owner) = job_accounting(c, id).await?;
    if !from.is_admin_retryable() {
        return Err(StoreError::Conflict(format!(
            "job {id} is {from}; only failed or canceled jobs can be retried"
        ))
        .into());
    }
    let series = owner.series + 1;
    // The user's row before anything of theirs is written (fair queue, ledger, counters).
    let user = accounts::user_locked(c, &owner.user_id).await?;
    if owner.cost > 0 {
        let balance = user.map_or(0, |u| u.credits);
        if balance < owner.cost {
            return Err(StoreError::Rejected(Rejection::InsufficientCredits {
                needed: owner.cost,
                balance,
            })
            .into());
        }
        accounts::ledger_entry(
            c,
            &owner.user_id,
            LedgerKind::Debit,
            -owner.cost,
            Some((id, series as i64)),
            "admin retry",
            now,
        )
        .await?;
    }
    let tag = reserve_tags(c, &[(owner.user_id.as_str(), 1)].into()).await?[&owner.user_id];
    let row = sqlx::query(sql!("job_admin_retry"))
        .bind(id)
        .bind(micros(now))
        .bind(tag)
        .fetch_one(&mut *c)
        .await?;
    let job = rows::job(&row)?;
    let mut counts = Counts::default();
    counts.add(&owner.user_id, 1, 0);
    accounts::add_usage(c, &owner.user_id, &owner.day, 1).await?;
    let mut outbox = Outbox::default();
    outbox.transition(id, &owner, Some(from), JobState::Queued, false);
    events::write(c, outbox, &counts, now).await?;
    Ok(job)
}

/// The ids and payload-plus-result sizes of at most `limit` jobs matching `f`, newest first,
/// older than `before` when given.
async fn candidates(
    c: &mut PgConnection,
    f: &JobFilter,
    before: Option<&str>,
    limit: u32,
) -> Result<Vec<(String, i64)>, PgError> {
    // Only the filters given become conditions, so the planner sees the index that fits. A
    // user's or a batch's jobs are found through job_owners (migration 0015), by its indexes.
    let owned = f.user_id.is_some() || f.batch_id.is_some();
    let (from, key) = if owned {
        ("FROM job_owners AS o JOIN jobs AS j ON j.id = o.id", "o.id")
    } else {
        ("FROM jobs AS j", "j.id")
    };
    let mut query = sqlx::QueryBuilder::new(format!(
        "SELECT j.id, octet_length(j.payload::text) + coalesce(octet_length(j.result::text), 0) {from} WHERE true"
    ));
    let conditions = [
        ("o.user_id", f.user_id.clone()),
        ("j.kind", f.kind.clone()),
        ("o.batch_id", f.batch_id.clone()),
    ];
    for (column, value) in conditions {
        if let Some(value) = value {
            query.push(format!(" AND {column} = ")).push_bind(value);
        }
    }
    // The state as a literal (one of six names), so that a generic plan can still use the
    // partial index jobs_state_some for the states it holds.
    if let Some(state) = f.state {
        query.push(format!(" AND j.state = '{}'", state.as_str()));
    }
    if let Some(before) = before {
        query
            .push(format!(" AND {key} < "))
            .push_bind(before.to_string());
    }
    query
        .push(format!(" ORDER BY {key} DESC LIMIT "))
        .push_bind(limit as i64);
    Ok(query
        .build_query_as::<(String, i32)>()
        .fetch_all(&mut *c)
        .await?
        .into_iter()
        .map(|(id, bytes)| (id, bytes as i64))
        .collect())
}

async fn list_jobs(c: &mut PgConnection, q: &JobQuery) -> Result<Page, PgError> {
    // First the ids and sizes of the candidates, so that the byte budget is applied before
    // any payload is sent.
    let candidates = candidates(c, &q.filter, q.before.as_deref(), q.limit + 1).await?;
    let (ids, next_before) = crate::rules::page(&candidates, q.limit, q.max_bytes);
    let jobs = sqlx::query(sql!("job_get_many"))
        .bind(&ids)
        .fetch_all(&mut *c)
        .await?
        .iter()
        .map(rows::job)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Page { jobs, next_before })
}

async fn stats(c: &mut PgConnection, now: DateTime<Utc>) -> Result<Stats, PgError> {
    let mut stats = Stats::default();
    let rows = sqlx::query_as::<_, (String, String, i64)>(sql!("stats_by_state_kind"))
        .fetch_all(&mut *c)
        .await?;
    crate::rules::count_tallies(&mut stats, rows)?;
    let mut seconds = Vec::new();
    for row in sqlx::query(sql!("stats_finished_seconds"))
        .bind(crate::rules::finished_since(now))
        .fetch_all(&mut *c)
        .await?
    {
        seconds.push(crate::rules::FinishedSecond {
            second: row.try_get("second")?,
            state: rows::parse(&row.try_get::<String, _>("state")?)?,
            class: row.try_get("class")?,
            n: row.try_get::<i64, _>("n")? as u64,
        });
    }
    crate::rules::tally_finished(&mut stats, seconds, now);
    let past_lease: i64 = sqlx::query_scalar(sql!("stats_past_lease"))
        .bind(micros(now))
        .fetch_one(&mut *c)
        .await?;
    stats.past_lease = past_lease as u64;
    let oldest: Option<i64> = sqlx::query_scalar(sql!("stats_oldest_claimable"))
        .fetch_one(c)
        .await?;
    stats.oldest_claimable_age_ms = oldest.map(|t| ((micros(now) - t) / 1000).max(0));
    Ok(stats)
}

/// A user with its usage on `day`.
async fn user_on(c: &mut PgConnection, id: &str, day: &str) -> Result<User, PgError> {
    let mut user = accounts::user(c, id).await?.ok_or(StoreError::NotFound)?;
    user.used_today = accounts::usage(c, id, day).await? as u32;
    Ok(user)
}

/// A node id held by a session-level advisory lock on a connection of its own: PostgreSQL
/// releases it when that connection ends, so a process that dies frees its node id at once.
struct NodeSession(#[allow(dead_code)] PgConnection);

/// Every process sharing the database coordinates through it: hints by LISTEN/NOTIFY, rate
/// budgets and concurrency slots in tables every process moves.
#[async_trait]
impl Coordination for PgStore {
    /// LISTEN on a connection of its own. sqlx's listener reconnects by itself after the
    /// connection drops; hints sent meanwhile are lost, so a reconnect is reported as `Resync`.
    async fn listen(&self) -> Result<Option<tokio::sync::mpsc::UnboundedReceiver<Signal>>> {
        if !self.notify {
            return Ok(None);
        }
        let mut listener = PgListener::connect_with(&self.pool)
            .await
            .map_err(db_error)?;
        listener.listen(CHANNEL).await.map_err(db_error)?;
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            loop {
                let signal = match listener.try_recv().await {
                    Ok(Some(n)) => match n.payload() {
                        "work" => Signal::Work,
                        "delayed" => Signal::Delayed,
                        "limits" => Signal::Limits,
                        other => match other.strip_prefix("cancel:") {
                            Some(id) => Signal::Canceled(id.to_string()),
                            None => continue,
                        },
                    },
                    Ok(None) => Signal::Resync,
                    Err(e) => {
                        tracing::warn!(error = %e, "LISTEN connection lost; reconnecting");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        Signal::Resync
                    }
                };
                if tx.send(signal).is_err() {
                    return;
                }
            }
        });
        Ok(Some(rx))
    }

    async fn budget(&self, name: &str, op: BudgetOp) -> Result<Duration> {
        let (what, us) = match op {
            BudgetOp::Reserve(us) => ("reserve", us),
            BudgetOp::Adjust(us) => ("adjust", us),
            BudgetOp::Hold(us) => ("hold", us),
        };
        let wait: i64 = sqlx::query_scalar(sql!("budget_move"))
            .bind(name)
            .bind(what)
            .bind(us)
            .fetch_one(&self.pool)
            .await
            .map_err(db_error)?;
        Ok(match op {
            BudgetOp::Reserve(_) => Duration::from_micros(wait.max(0) as u64),
            _ => Duration::ZERO,
        })
    }

    async fn take_slot(&self, name: &str, holder: &str, max: u32, ttl: Duration) -> Result<bool> {
        let ttl_us = ttl.as_micros().min(i64::MAX as u128) as i64;
        let taken = transaction!(self, |c| async {
            sqlx::query(sql!("slot_lock"))
                .bind(name)
                .execute(&mut *c)
                .await?;
            let taken: Option<bool> = sqlx::query_scalar(sql!("slot_take"))
                .bind(name)
                .bind(holder)
                .bind(max as i64)
                .bind(ttl_us)
                .fetch_optional(&mut *c)
                .await?;
            Ok::<_, PgError>(taken.is_some())
        })?;
        Ok(taken)
    }

    async fn free_slot(&self, name: &str, holder: &str) -> Result<()> {
        sqlx::query(sql!("slot_free"))
            .bind(name)
            .bind(holder)
            .execute(&self.pool)
            .await
            .map(|_| ())
            .map_err(db_error)
    }

    async fn slots_in_use(&self, name: &str) -> Result<u32> {
        let n: i64 = sqlx::query_scalar(sql!("slots_in_use"))
            .bind(name)
            .fetch_one(&self.pool)
            .await
            .map_err(db_error)?;
        Ok(n as u32)
    }
}

#[async_trait]
impl Store for PgStore {
    async fn migrate(&self) -> Result<()> {
        // sqlx's migrator takes an advisory lock: processes starting together apply each
        // migration once.
        migrator()
            .run(&self.pool)
            .await
            .map_err(|e| StoreError::Unavailable(format!("migrations: {e}")))
    }

    async fn schema(&self) -> Result<crate::SchemaStatus> {
        let (applied, micros): (i64, i64) = sqlx::query_as(sql!("schema_status"))
            .fetch_one(&self.pool)
            .await
            .map_err(db_error)?;
        Ok(crate::SchemaStatus {
            applied: applied as u32,
            known: MIGRATIONS.len() as u32,
            server_time: Some(rows::from_micros(micros)),
        })
    }

    async fn ping(&self) -> Result<()> {
        // Readiness answers fast: a database that does not answer within a second is down.
        let probe = sqlx::query("SELECT 1").execute(&self.pool);
        match tokio::time::timeout(Duration::from_secs(1), probe).await {
            Ok(done) => done.map(|_| ()).map_err(db_error),
            Err(_) => Err(StoreError::Unavailable("no answer within 1s".into())),
        }
    }

    async fn lock_node(&self, node_id: &str) -> Result<Option<NodeLock>> {
        let mut conn = PgConnection::connect_with(&self.options)
            .await
            .map_err(db_error)?;
        // The schema is part of the key: deployments sharing one database stay apart.
        let held: bool = sqlx::query_scalar(
            "SELECT pg_try_advisory_lock(hashtextextended('genq node ' || current_schema() || ' ' || $1, 0))",
        )
            .bind(node_id)
            .fetch_one(&mut conn)
            .await
            .map_err(db_error)?;
        Ok(held.then(|| NodeLock::new(tokio::sync::Mutex::new(NodeSession(conn)))))
    }

    fn coordination(&self) -> Option<Arc<dyn Coordination>> {
        Some(Arc::new(self.clone()))
    }

    async fn enqueue(&self, jobs: NewJobs) -> Result<Enqueued> {
        transaction!(self, |c| enqueue(c, &jobs, self.notify))
    }

    async fn claim(&self, request: ClaimRequest) -> Result<Vec<Job>> {
        if request.max == 0 || request.kinds.is_empty() {
            return Ok(Vec::new());
        }
        transaction!(self, |c| claim(c, &request))
    }

    async fn heartbeat(
        &self,
        leases: &[LeaseRef],
        lease_until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<Vec<LeaseRef>> {
        if leases.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<&str> = leases.iter().map(|l| l.job_id.as_str()).collect();
        let tokens: Vec<&str> = leases.iter().map(|l| l.token.as_str()).collect();
        transaction!(self, |c| async {
            let renewed = sqlx::query(sql!("job_heartbeat"))
                .bind(&ids)
                .bind(&tokens)
                .bind(micros(lease_until))
                .bind(micros(now))
                .fetch_all(c)
                .await?;
            Ok::<_, PgError>(
                renewed
                    .iter()
                    .map(|r| {
                        Ok(LeaseRef {
                            job_id: r.try_get(0)?,
                            token: r.try_get(1)?,
                        })
                    })
                    .collect::<Result<Vec<_>, sqlx::Error>>()?,
            )
        })
    }

    async fn finish(&self, finishes: Vec<Finish>) -> Result<Vec<bool>> {
        if finishes.is_empty() {
            return Ok(Vec::new());
        }
        transaction!(self, |c| async {
            let applied = finish(c, &finishes).await?;
            for (what, due) in [("work", true), ("delayed", false)] {
                let any = finishes.iter().zip(&applied).any(|(f, ok)| {
                    *ok && matches!(&f.outcome, Outcome::Retry { run_at, .. } if (*run_at <= f.now) == due)
                });
                if any {
                    hint(c, self.notify, what).await?;
                }
            }
            Ok(applied)
        })
    }

    async fn claim_polls(&self, request: ClaimRequest) -> Result<Polls> {
        if request.kinds.is_empty() {
            return Ok(Polls::default());
        }
        transaction!(self, |c| claim_polls(c, &request))
    }

    async fn expired_leases(&self, before: DateTime<Utc>, limit: u32) -> Result<Vec<Job>> {
        let query = sqlx::query(sql!("job_leases_expired")).bind(micros(before));
        self.jobs_of(query.bind(limit as i64)).await
    }

    async fn node_leases(&self, node_id: &str, limit: u32) -> Result<Vec<Job>> {
        let query = sqlx::query(sql!("job_leases_of_node")).bind(node_id.to_string());
        self.jobs_of(query.bind(limit as i64)).await
    }

    async fn stage_due(&self, now: DateTime<Utc>, limit: u32) -> Result<Staged> {
        let staged = transaction!(self, |c| async {
            let staged = stage_due(c, micros(now), limit).await?;
            if staged.staged > 0 {
                hint(c, self.notify, "work").await?;
            }
            Ok(staged)
        })?;
        // The scheduler calls this at least every poll interval: the upkeep of the counters.
        // Counts stay right without it (row plus moves); only the moves pile up meanwhile.
        if let Err(e) = transaction!(self, |c| fold_count_moves(c, now)) {
            tracing::warn!(error = %e, "could not fold the count moves; the next call will");
        }
        Ok(staged)
    }

    async fn cancel(&self, job_id: &str, now: DateTime<Utc>) -> Result<Job> {
        transaction!(self, |c| async {
            let job = cancel(c, job_id, now).await?;
            hint(c, self.notify, &format!("cancel:{job_id}")).await?;
            Ok(job)
        })
    }

    async fn admin_retry(&self, job_id: &str, now: DateTime<Utc>) -> Result<Job> {
        transaction!(self, |c| async {
            let job = admin_retry(c, job_id, now).await?;
            hint(c, self.notify, "work").await?;
            Ok(job)
        })
    }

    async fn job(&self, job_id: &str) -> Result<Job> {
        let mut c = self.pool.acquire().await.map_err(db_error)?;
        job_by_id(&mut c, job_id).await.map_err(PgError::into_store)
    }

    async fn jobs(&self, query: &JobQuery) -> Result<Page> {
        let mut c = self.pool.acquire().await.map_err(db_error)?;
        list_jobs(&mut c, query).await.map_err(PgError::into_store)
    }

    async fn job_ids(&self, filter: &JobFilter, at_most: u32) -> Result<Vec<String>> {
        let mut c = self.pool.acquire().await.map_err(db_error)?;
        let found = candidates(&mut c, filter, None, at_most)
            .await
            .map_err(PgError::into_store)?;
        Ok(found.into_iter().map(|(id, _)| id).collect())
    }

    async fn batch(&self, batch_id: &str) -> Result<Batch> {
        let mut c = self.pool.acquire().await.map_err(db_error)?;
        batch_by_id(&mut c, batch_id)
            .await
            .map_err(PgError::into_store)
    }

    async fn node_seen(&self, node: &NodeSeen) -> Result<()> {
        sqlx::query(sql!("node_seen"))
            .bind(&node.node_id)
            .bind(node.pid as i64)
            .bind(&node.version)
            .bind(node.concurrency as i32)
            .bind(micros(node.started_at))
            .bind(micros(node.seen_at))
            .execute(&self.pool)
            .await
            .map_err(db_error)?;
        sqlx::query(sql!("nodes_forget"))
            .bind(micros(node.seen_at - crate::NODE_FORGOTTEN_AFTER))
            .execute(&self.pool)
            .await
            .map_err(db_error)?;
        Ok(())
    }

    async fn nodes(&self, since: DateTime<Utc>) -> Result<Vec<NodeSeen>> {
        sqlx::query(sql!("nodes_seen"))
            .bind(micros(since))
            .fetch_all(&self.pool)
            .await
            .map_err(db_error)?
            .iter()
            .map(|r| {
                Ok(NodeSeen {
                    node_id: r.try_get("node_id")?,
                    pid: r.try_get::<i64, _>("pid")? as u32,
                    version: r.try_get("version")?,
                    concurrency: r.try_get::<i32, _>("concurrency")? as u32,
                    started_at: from_micros(r.try_get("started_at")?),
                    seen_at: from_micros(r.try_get("seen_at")?),
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(db_error)
    }

    async fn batches(&self, before: Option<&str>, limit: u32) -> Result<Vec<BatchSummary>> {
        let query = match before {
            Some(before) => sqlx::query(sql!("batches_older"))
                .bind(limit as i64)
                .bind(before),
            None => sqlx::query(sql!("batches_newest")).bind(limit as i64),
        };
        query
            .fetch_all(&self.pool)
            .await
            .map_err(db_error)?
            .iter()
            .map(rows::batch_summary)
            .collect::<Result<_, _>>()
            .map_err(db_error)
    }

    async fn batch_job_ids(&self, batch_id: &str) -> Result<Vec<String>> {
        let mut c = self.pool.acquire().await.map_err(db_error)?;
        batch_job_ids(&mut c, batch_id)
            .await
            .map_err(PgError::into_store)
    }

    async fn stats(&self, now: DateTime<Utc>) -> Result<Stats> {
        let mut c = self.pool.acquire().await.map_err(db_error)?;
        stats(&mut c, now).await.map_err(PgError::into_store)
    }

    async fn limits(&self) -> Result<Limits> {
        let mut c = self.pool.acquire().await.map_err(db_error)?;
        accounts::limits(&mut c).await.map_err(PgError::into_store)
    }

    async fn set_limit(&self, key: &str, value: i64, now: DateTime<Utc>) -> Result<Limits> {
        genq_core::limits::check(key, value).map_err(|e| StoreError::Invalid(e.to_string()))?;
        transaction!(self, |c| async {
            let limits = accounts::set_limit(c, key, value, now).await?;
            hint(c, self.notify, "limits").await?;
            Ok(limits)
        })
    }

    async fn user(&self, user_id: &str, day: &str) -> Result<User> {
        let mut c = self.pool.acquire().await.map_err(db_error)?;
        user_on(&mut c, user_id, day)
            .await
            .map_err(PgError::into_store)
    }

    async fn users(&self, after: &str, limit: u32) -> Result<Vec<User>> {
        let mut c = self.pool.acquire().await.map_err(db_error)?;
        accounts::users_page(&mut c, after, limit)
            .await
            .map_err(PgError::into_store)
    }

    async fn set_plan(&self, user_id: &str, plan: &str, ctx: &UserCtx) -> Result<User> {
        transaction!(self, |c| async {
            accounts::ensure_user_locked(c, user_id, &ctx.defaults, ctx.now).await?;
            sqlx::query(sql!("user_set_plan"))
                .bind(user_id)
                .bind(plan)
                .execute(&mut *c)
                .await?;
            user_on(c, user_id, &ctx.day).await
        })
    }

    async fn add_credits(
        &self,
        user_id: &str,
        delta: i64,
        reason: &str,
        ctx: &UserCtx,
    ) -> Result<User> {
        transaction!(self, |c| async {
            accounts::ensure_user_locked(c, user_id, &ctx.defaults, ctx.now).await?;
            let kind = if delta > 0 {
                LedgerKind::Grant
            } else {
                LedgerKind::Adjust
            };
            accounts::ledger_entry(c, user_id, kind, delta, None, reason, ctx.now).await?;
            user_on(c, user_id, &ctx.day).await
        })
    }

    async fn ledger(
        &self,
        user_id: &str,
        before: Option<i64>,
        limit: u32,
    ) -> Result<(Vec<LedgerEntry>, Option<i64>)> {
        let mut c = self.pool.acquire().await.map_err(db_error)?;
        accounts::ledger_page(&mut c, user_id, before, limit)
            .await
            .map_err(PgError::into_store)
    }

    async fn job_ledger(&self, job_id: &str) -> Result<Vec<LedgerEntry>> {
        let mut c = self.pool.acquire().await.map_err(db_error)?;
        accounts::ledger_of_job(&mut c, job_id)
            .await
            .map_err(PgError::into_store)
    }

    async fn events_after(
        &self,
        position: i64,
        filter: &EventFilter,
        limit: u32,
    ) -> Result<Vec<genq_core::event::Event>> {
        let mut c = self.pool.acquire().await.map_err(db_error)?;
        events::after(&mut c, position, filter, limit)
            .await
            .map_err(PgError::into_store)
    }

    async fn fan_out(
        &self,
        endpoint: &str,
        filter: &DeliveryFilter,
        limit: u32,
        now: DateTime<Utc>,
    ) -> Result<u64> {
        transaction!(self, |c| async {
            webhooks::fan_out(c, endpoint, filter, limit, now).await
        })
    }

    async fn claim_deliveries(
        &self,
        endpoint: &str,
        max: u32,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
    ) -> Result<Vec<Delivery>> {
        transaction!(self, |c| async {
            webhooks::claim(c, endpoint, max, now, lease_until).await
        })
    }

    async fn finish_delivery(
        &self,
        delivery: &Delivery,
        outcome: DeliveryOutcome,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let mut c = self.pool.acquire().await.map_err(db_error)?;
        webhooks::finish(&mut c, delivery, &outcome, now)
            .await
            .map_err(PgError::into_store)
    }

    async fn webhook_status(&self, endpoint: &str) -> Result<WebhookStatus> {
        let mut c = self.pool.acquire().await.map_err(db_error)?;
        webhooks::status(&mut c, endpoint)
            .await
            .map_err(PgError::into_store)
    }

    async fn redeliver(&self, endpoint: &str, event_id: i64, now: DateTime<Utc>) -> Result<()> {
        let mut c = self.pool.acquire().await.map_err(db_error)?;
        webhooks::redeliver(&mut c, endpoint, event_id, now)
            .await
            .map_err(PgError::into_store)
    }

    async fn prune_jobs(&self, prune: &Prune) -> Result<u64> {
        transaction!(self, |c| async {
            let state = prune.state.as_str();
            let mut kinds: Vec<String> = sqlx::query_scalar(sql!("job_prune"))
                .bind(state)
                .bind(micros(prune.finished_before))
                .bind(prune.limit as i64)
                .fetch_all(&mut *c)
                .await?;
            if let Some(keep) = prune.keep_newest {
                kinds.extend(
                    sqlx::query_scalar::<_, String>(sql!("job_prune_beyond"))
                        .bind(state)
                        .bind(keep as i64)
                        .bind(prune.limit as i64)
                        .fetch_all(&mut *c)
                        .await?,
                );
            }
            let n = kinds.len() as u64;
            let mut outbox = Outbox::default();
            for kind in kinds {
                outbox.pruned(prune.state, kind);
            }
            events::write_counts(c, &outbox, &Counts::default()).await?;
            sqlx::query(sql!("batches_prune"))
                .bind(prune.limit as i64)
                .execute(&mut *c)
                .await?;
            Ok(n)
        })
    }

    async fn prune_events(&self, before: DateTime<Utc>, limit: u32) -> Result<u64> {
        transaction!(self, |c| async {
            let n = sqlx::query(sql!("event_prune"))
                .bind(micros(before))
                .bind(limit as i64)
                .execute(&mut *c)
                .await?
                .rows_affected();
            sqlx::query(sql!("delivery_prune"))
                .bind(micros(before))
                .bind(limit as i64)
                .execute(&mut *c)
                .await?;
            Ok(n)
        })
    }

    async fn schedules(&self) -> Result<Vec<ScheduleState>> {
        let mut c = self.pool.acquire().await.map_err(db_error)?;
        let found = sqlx::query(sql!("schedules_all"))
            .fetch_all(&mut *c)
            .await
            .map_err(db_error)?;
        found
            .iter()
            .map(|r| {
                Ok(ScheduleState {
                    name: r.try_get("name")?,
                    paused: r.try_get("paused")?,
                    covered_until: from_micros(r.try_get("covered_until")?),
                    last_slot: r.try_get::<Option<i64>, _>("last_slot")?.map(from_micros),
                    last_job_id: r.try_get("last_job_id")?,
                    last_error: r.try_get("last_error")?,
                })
            })
            .collect::<std::result::Result<_, sqlx::Error>>()
            .map_err(db_error)
    }

    async fn cover_schedule(
        &self,
        name: &str,
        until: DateTime<Utc>,
        run: Option<SlotRun>,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let mut c = self.pool.acquire().await.map_err(db_error)?;
        let ran = run.is_some();
        let (slot, job, error) = match run {
            Some(r) => (Some(micros(r.slot)), r.job_id, r.error),
            None => (None, None, None),
        };
        sqlx::query(sql!("schedule_cover"))
            .bind(name)
            .bind(micros(until))
            .bind(ran)
            .bind(slot)
            .bind(job)
            .bind(error)
            .bind(micros(now))
            .execute(&mut *c)
            .await
            .map_err(db_error)?;
        Ok(())
    }

    async fn pause_schedule(&self, name: &str, paused: bool, now: DateTime<Utc>) -> Result<()> {
        let mut c = self.pool.acquire().await.map_err(db_error)?;
        sqlx::query(sql!("schedule_pause"))
            .bind(name)
            .bind(paused)
            .bind(micros(now))
            .execute(&mut *c)
            .await
            .map_err(db_error)?;
        Ok(())
    }

    async fn events_end(&self) -> Result<i64> {
        let mut c = self.pool.acquire().await.map_err(db_error)?;
        Ok(sqlx::query_scalar(sql!("event_last_position"))
            .fetch_one(&mut *c)
            .await
            .map_err(db_error)?)
    }

    /// Events are readable as they commit (positions follow commits); this reports how many
    /// are new since the last call, whichever process wrote them.
    async fn new_events(&self) -> Result<u64> {
        Ok(self.seen_events.up_to(self.events_end().await?))
    }
}
