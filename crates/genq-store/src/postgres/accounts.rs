//! Users, credits, daily usage and limits, in the same transactions as the job transitions
//! that change them (see `sqlite/accounts.rs` for the rules; this is their PostgreSQL form).

use super::rows::{PgError, from_micros, micros};
use super::sql;
use crate::outbox::Outbox;
use crate::{Owner, StoreError};
use chrono::{DateTime, Utc};
use genq_core::limits::Limits;
use genq_core::{JobState, LedgerEntry, LedgerKind, User, UserDefaults};
use sqlx::{PgConnection, Row};
use std::collections::BTreeMap;

pub(crate) async fn limits(c: &mut PgConnection) -> Result<Limits, PgError> {
    let stored = sqlx::query(sql!("limits_all"))
        .fetch_all(c)
        .await?
        .iter()
        .map(|r| Ok((r.try_get::<String, _>(0)?, r.try_get::<i64, _>(1)?)))
        .collect::<Result<Vec<_>, sqlx::Error>>()?;
    Ok(Limits::from_stored(stored))
}

pub(crate) async fn set_limit(
    c: &mut PgConnection,
    key: &str,
    value: i64,
    now: DateTime<Utc>,
) -> Result<Limits, PgError> {
    sqlx::query(sql!("limit_set"))
        .bind(key)
        .bind(value)
        .bind(micros(now))
        .execute(&mut *c)
        .await?;
    limits(c).await
}

fn user_of(r: &sqlx::postgres::PgRow) -> Result<User, sqlx::Error> {
    Ok(User {
        id: r.try_get("id")?,
        plan: r.try_get("plan")?,
        credits: r.try_get("credits")?,
        unfinished: r.try_get::<i64, _>("unfinished")? as u32,
        running: r.try_get::<i64, _>("running")? as u32,
        used_today: 0,
        created_at: from_micros(r.try_get("created_at")?),
    })
}

pub(crate) async fn user(c: &mut PgConnection, id: &str) -> Result<Option<User>, PgError> {
    let row = sqlx::query(sql!("user_get"))
        .bind(id)
        .fetch_optional(c)
        .await?;
    Ok(row.as_ref().map(user_of).transpose()?)
}

pub(crate) async fn users_page(
    c: &mut PgConnection,
    after: &str,
    limit: u32,
) -> Result<Vec<User>, PgError> {
    let rows = sqlx::query(sql!("users_page"))
        .bind(after)
        .bind(limit as i64)
        .fetch_all(c)
        .await?;
    Ok(rows.iter().map(user_of).collect::<Result<_, _>>()?)
}

/// Lock a user's row; whether it exists.
async fn lock(c: &mut PgConnection, id: &str) -> Result<bool, PgError> {
    Ok(sqlx::query(sql!("user_lock"))
        .bind(id)
        .fetch_optional(c)
        .await?
        .is_some())
}

pub(crate) async fn user_locked(c: &mut PgConnection, id: &str) -> Result<Option<User>, PgError> {
    if lock(c, id).await? {
        user(c, id).await
    } else {
        Ok(None)
    }
}

/// Lock the user's row, created with the defaults (and a grant of the initial credits) on
/// first use.
pub(crate) async fn lock_or_create(
    c: &mut PgConnection,
    id: &str,
    defaults: &UserDefaults,
    now: DateTime<Utc>,
) -> Result<(), PgError> {
    if lock(c, id).await? {
        return Ok(());
    }
    let created = sqlx::query(sql!("user_insert"))
        .bind(id)
        .bind(&defaults.plan)
        .bind(micros(now))
        .execute(&mut *c)
        .await?
        .rows_affected();
    if created == 1 && defaults.initial_credits > 0 {
        ledger_entry(
            c,
            id,
            LedgerKind::Grant,
            defaults.initial_credits,
            None,
            "initial credits",
            now,
        )
        .await?;
    }
    if lock(c, id).await? {
        Ok(())
    } else {
        Err(StoreError::Internal(format!("user {id} vanished")).into())
    }
}

/// The user's row, locked, created on first use (see `lock_or_create`).
pub(crate) async fn ensure_user_locked(
    c: &mut PgConnection,
    id: &str,
    defaults: &UserDefaults,
    now: DateTime<Utc>,
) -> Result<User, PgError> {
    lock_or_create(c, id, defaults, now).await?;
    user(c, id)
        .await?
        .ok_or_else(|| StoreError::Internal(format!("user {id} vanished")).into())
}

pub(crate) async fn usage(c: &mut PgConnection, user_id: &str, day: &str) -> Result<i64, PgError> {
    Ok(sqlx::query_scalar(sql!("usage_get"))
        .bind(user_id)
        .bind(day)
        .fetch_optional(c)
        .await?
        .unwrap_or(0))
}

pub(crate) async fn add_usage(
    c: &mut PgConnection,
    user_id: &str,
    day: &str,
    n: i64,
) -> Result<(), PgError> {
    sqlx::query(sql!("usage_add"))
        .bind(user_id)
        .bind(day)
        .bind(n)
        .execute(c)
        .await?;
    Ok(())
}

/// Append a ledger entry and move the balance with it; `Conflict` if the balance would go
/// below zero. Returns the balance after.
pub(crate) async fn ledger_entry(
    c: &mut PgConnection,
    user_id: &str,
    kind: LedgerKind,
    amount: i64,
    job: Option<(&str, i64)>,
    reason: &str,
    now: DateTime<Utc>,
) -> Result<i64, PgError> {
    let balance: i64 = match sqlx::query_scalar(sql!("user_add_credits"))
        .bind(user_id)
        .bind(amount)
        .fetch_one(&mut *c)
        .await
    {
        Ok(b) => b,
        Err(sqlx::Error::Database(d)) if d.code().as_deref() == Some("23514") => {
            return Err(StoreError::Conflict(format!(
                "user {user_id}'s balance cannot go below zero"
            ))
            .into());
        }
        Err(e) => return Err(e.into()),
    };
    sqlx::query(sql!("ledger_insert"))
        .bind(user_id)
        .bind(kind.as_str())
        .bind(amount)
        .bind(balance)
        .bind(job.map(|j| j.0))
        .bind(job.map(|j| j.1 as i32))
        .bind(None::<String>)
        .bind(reason)
        .bind(micros(now))
        .execute(c)
        .await?;
    Ok(balance)
}

/// Admission of `n` new jobs for a user whose row the caller holds locked: every limit and
/// the balance are checked before anything is written. The user, the day's usage and the
/// limits are read in one statement.
pub(crate) async fn admit(
    c: &mut PgConnection,
    user_id: &str,
    day: &str,
    n: i64,
    cost: i64,
    as_batch: bool,
) -> Result<(), PgError> {
    let row = sqlx::query(sql!("user_admission"))
        .bind(user_id)
        .bind(day)
        .fetch_optional(c)
        .await?
        .ok_or_else(|| StoreError::Internal(format!("user {user_id} vanished")))?;
    let user = user_of(&row)?;
    let used: Option<i64> = row.try_get("used")?;
    let keys: Vec<String> = row.try_get("keys")?;
    let values: Vec<i64> = row.try_get("vals")?;
    let limits = Limits::from_stored(keys.into_iter().zip(values));
    crate::rules::admit(&user, &limits, used.unwrap_or(0), n, cost, as_batch)
        .map_err(|r| StoreError::Rejected(r).into())
}

/// Per-user counter changes, applied once per user, in user-id order, at the end of a
/// transaction.
#[derive(Default)]
pub(crate) struct Counts(BTreeMap<String, (i64, i64)>);

impl Counts {
    pub(crate) fn add(&mut self, user_id: &str, unfinished: i64, running: i64) {
        let entry = self.0.entry(user_id.to_string()).or_default();
        entry.0 += unfinished;
        entry.1 += running;
    }

    /// Each user's moves (unfinished, running), in user-id order; appended to
    /// `user_count_moves` with the transaction's events (see migration 0008): no user's row is
    /// locked.
    pub(crate) fn moved(&self) -> impl Iterator<Item = (&str, i64, i64)> {
        self.0
            .iter()
            .filter(|(_, d)| **d != (0, 0))
            .map(|(id, d)| (id.as_str(), d.0, d.1))
    }
}

/// The bookkeeping of a transition out of `from` into `to`: counters, its event and its batch's
/// count (collected in `outbox`), and for a job that ends failed or canceled, its day's usage
/// back and its cost refunded (once).
pub(crate) async fn after_transition(
    c: &mut PgConnection,
    counts: &mut Counts,
    outbox: &mut Outbox,
    job_id: &str,
    job: &Owner,
    (from, to): (JobState, JobState),
    now: DateTime<Utc>,
) -> Result<(), PgError> {
    outbox.transition(job_id, job, Some(from), to, false);
    let (unfinished, running) = crate::rules::counter_deltas(from, to);
    counts.add(&job.user_id, unfinished, running);
    if crate::rules::gives_back(to) {
        add_usage(c, &job.user_id, &job.day, -1).await?;
        if job.cost > 0 {
            ledger_entry(
                c,
                &job.user_id,
                LedgerKind::Refund,
                job.cost,
                Some((job_id, job.series as i64)),
                &format!("job {to}"),
                now,
            )
            .await?;
        }
    }
    Ok(())
}

pub(crate) async fn ledger_page(
    c: &mut PgConnection,
    user_id: &str,
    before: Option<i64>,
    limit: u32,
) -> Result<(Vec<LedgerEntry>, Option<i64>), PgError> {
    let found = sqlx::query(sql!("ledger_page"))
        .bind(user_id)
        .bind(before.unwrap_or(i64::MAX))
        .bind(limit as i64 + 1)
        .fetch_all(c)
        .await?;
    let mut entries = found
        .iter()
        .map(ledger_entry_of)
        .collect::<Result<Vec<_>, _>>()?;
    let next = if entries.len() > limit as usize {
        entries.truncate(limit as usize);
        entries.last().map(|e| e.id)
    } else {
        None
    };
    Ok((entries, next))
}

pub(crate) async fn ledger_of_job(
    c: &mut PgConnection,
    job_id: &str,
) -> Result<Vec<LedgerEntry>, PgError> {
    sqlx::query(sql!("ledger_of_job"))
        .bind(job_id)
        .fetch_all(c)
        .await?
        .iter()
        .map(ledger_entry_of)
        .collect()
}

fn ledger_entry_of(r: &sqlx::postgres::PgRow) -> Result<LedgerEntry, PgError> {
    let kind: String = r.try_get("kind")?;
    Ok(LedgerEntry {
        id: r.try_get("id")?,
        user_id: r.try_get("user_id")?,
        kind: super::rows::parse(&kind)?,
        amount: r.try_get("amount")?,
        balance: r.try_get("balance")?,
        job_id: r.try_get("job_id")?,
        reason: r.try_get("reason")?,
        created_at: from_micros(r.try_get("created_at")?),
        batch_id: r.try_get("batch_id")?,
    })
}
