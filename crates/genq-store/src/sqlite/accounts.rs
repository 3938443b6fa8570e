//! Users, credits, daily usage and limits, kept in the same transactions as the job
//! transitions that change them: a debit with its enqueue, a refund with its failure.

use super::rows::{db_error, from_micros, micros};
use crate::outbox::Outbox;
use crate::{Owner, Result, StoreError};
use chrono::{DateTime, Utc};
use genq_core::limits::{self, Limits};
use genq_core::{JobState, LedgerEntry, LedgerKind, User, UserDefaults};
use rusqlite::{Connection, OptionalExtension, named_params};
use std::collections::HashMap;

macro_rules! sql {
    ($name:literal) => {
        include_str!(concat!("sql/", $name, ".sql"))
    };
}

pub(crate) fn limits(conn: &Connection) -> Result<Limits> {
    let mut stmt = conn.prepare_cached(sql!("limits_all")).map_err(db_error)?;
    let stored = stmt
        .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))
        .map_err(db_error)?
        .collect::<rusqlite::Result<Vec<_>>>()
        .map_err(db_error)?;
    Ok(Limits::from_stored(stored))
}

pub(crate) fn set_limit(
    conn: &Connection,
    key: &str,
    value: i64,
    now: DateTime<Utc>,
) -> Result<Limits> {
    limits::check(key, value).map_err(|e| StoreError::Invalid(e.to_string()))?;
    conn.prepare_cached(sql!("limit_set"))
        .and_then(|mut s| {
            s.execute(named_params! {":key": key, ":value": value, ":now": micros(now)})
        })
        .map_err(db_error)?;
    limits(conn)
}

/// The user's row, created with the defaults (and a grant of the initial credits) on first use.
pub(crate) fn ensure_user(
    conn: &Connection,
    id: &str,
    defaults: &UserDefaults,
    now: DateTime<Utc>,
) -> Result<User> {
    if let Some(user) = user_row(conn, id)? {
        return Ok(user);
    }
    conn.prepare_cached(sql!("user_insert"))
        .and_then(|mut s| {
            s.execute(named_params! {":id": id, ":plan": defaults.plan, ":credits": 0, ":now": micros(now)})
        })
        .map_err(db_error)?;
    if defaults.initial_credits > 0 {
        ledger_entry(
            conn,
            id,
            LedgerKind::Grant,
            defaults.initial_credits,
            None,
            "initial credits",
            now,
        )?;
    }
    user_row(conn, id)?.ok_or_else(|| StoreError::Internal(format!("user {id} vanished")))
}

/// A user from a row of `user_get.sql` or `users_page.sql`.
fn user_of(r: &rusqlite::Row<'_>) -> rusqlite::Result<User> {
    Ok(User {
        id: r.get(0)?,
        plan: r.get(1)?,
        credits: r.get(2)?,
        unfinished: r.get(3)?,
        running: r.get(4)?,
        used_today: 0,
        created_at: from_micros(r.get(5)?),
    })
}

pub(crate) fn user_row(conn: &Connection, id: &str) -> Result<Option<User>> {
    conn.prepare_cached(sql!("user_get"))
        .and_then(|mut s| s.query_row(named_params! {":id": id}, user_of).optional())
        .map_err(db_error)
}

pub(crate) fn users_page(conn: &Connection, after: &str, limit: u32) -> Result<Vec<User>> {
    conn.prepare_cached(sql!("users_page"))
        .and_then(|mut s| {
            s.query_map(named_params! {":after": after, ":limit": limit}, user_of)?
                .collect()
        })
        .map_err(db_error)
}

pub(crate) fn usage(conn: &Connection, user_id: &str, day: &str) -> Result<i64> {
    Ok(conn
        .prepare_cached(sql!("usage_get"))
        .and_then(|mut s| {
            s.query_row(named_params! {":user_id": user_id, ":day": day}, |r| {
                r.get(0)
            })
            .optional()
        })
        .map_err(db_error)?
        .unwrap_or(0))
}

pub(crate) fn add_usage(conn: &Connection, user_id: &str, day: &str, n: i64) -> Result<()> {
    conn.prepare_cached(sql!("usage_add"))
        .and_then(|mut s| s.execute(named_params! {":user_id": user_id, ":day": day, ":n": n}))
        .map_err(db_error)?;
    Ok(())
}

pub(crate) fn add_counts(
    conn: &Connection,
    user_id: &str,
    unfinished: i64,
    running: i64,
) -> Result<()> {
    if unfinished == 0 && running == 0 {
        return Ok(());
    }
    conn.prepare_cached(sql!("user_add_counts"))
        .and_then(|mut s| {
            s.execute(
                named_params! {":id": user_id, ":unfinished": unfinished, ":running": running},
            )
        })
        .map_err(db_error)?;
    Ok(())
}

/// Append a ledger entry and move the balance with it; `Conflict` if the balance would go
/// below zero. Returns the balance after.
pub(crate) fn ledger_entry(
    conn: &Connection,
    user_id: &str,
    kind: LedgerKind,
    amount: i64,
    job: Option<(&str, i64)>,
    reason: &str,
    now: DateTime<Utc>,
) -> Result<i64> {
    let balance: i64 = conn
        .prepare_cached(sql!("user_add_credits"))
        .and_then(|mut s| {
            s.query_row(named_params! {":id": user_id, ":delta": amount}, |r| {
                r.get(0)
            })
        })
        .map_err(|e| match db_error(e) {
            StoreError::Internal(_) => {
                StoreError::Conflict(format!("user {user_id}'s balance cannot go below zero"))
            }
            other => other,
        })?;
    conn.prepare_cached(sql!("ledger_insert"))
        .and_then(|mut s| {
            s.execute(named_params! {
                ":user_id": user_id, ":kind": kind.as_str(), ":amount": amount, ":balance": balance,
                ":job_id": job.map(|j| j.0), ":series": job.map(|j| j.1), ":batch_id": None::<String>,
                ":reason": reason,
                ":now": micros(now),
            })
        })
        .map_err(db_error)?;
    Ok(balance)
}

/// Book `n` newly accepted jobs: the unfinished count, and their cost `total` with one debit
/// entry (for the single job, or for the whole batch).
pub(crate) fn accept_new(
    conn: &Connection,
    user_id: &str,
    n: i64,
    total: i64,
    job_or_batch: Result<&str, &str>,
    reason: &str,
    now: DateTime<Utc>,
) -> Result<()> {
    let balance: i64 = conn
        .prepare_cached(sql!("user_accept"))
        .and_then(|mut s| {
            s.query_row(
                named_params! {":id": user_id, ":n": n, ":total": total},
                |r| r.get(0),
            )
        })
        .map_err(db_error)?;
    if total == 0 {
        return Ok(());
    }
    let (job_id, series, batch_id) = match job_or_batch {
        Ok(job) => (Some(job), Some(1), None),
        Err(batch) => (None, None, Some(batch)),
    };
    conn.prepare_cached(sql!("ledger_insert"))
        .and_then(|mut s| {
            s.execute(named_params! {
                ":user_id": user_id, ":kind": LedgerKind::Debit.as_str(), ":amount": -total,
                ":balance": balance, ":job_id": job_id, ":series": series, ":batch_id": batch_id,
                ":reason": reason, ":now": micros(now),
            })
        })
        .map_err(db_error)?;
    Ok(())
}

/// Admission of `n` new jobs for a user, inside the enqueue transaction: every limit and the
/// balance are checked before anything is written, so a rejected request changes nothing.
pub(crate) fn admit(
    conn: &Connection,
    user: &User,
    limits: &Limits,
    day: &str,
    n: i64,
    cost: i64,
    as_batch: bool,
) -> Result<()> {
    let used = usage(conn, &user.id, day)?;
    crate::rules::admit(user, limits, used, n, cost, as_batch).map_err(StoreError::Rejected)
}

/// Per-user counter changes, applied once per user at the end of a transaction.
#[derive(Default)]
pub(crate) struct Counts(HashMap<String, (i64, i64)>);

impl Counts {
    pub(crate) fn add(&mut self, user_id: &str, unfinished: i64, running: i64) {
        let entry = self.0.entry(user_id.to_string()).or_default();
        entry.0 += unfinished;
        entry.1 += running;
    }

    pub(crate) fn apply(self, conn: &Connection) -> Result<()> {
        for (user_id, (unfinished, running)) in self.0 {
            add_counts(conn, &user_id, unfinished, running)?;
        }
        Ok(())
    }
}

/// The bookkeeping of a transition out of `from` into `to`: counters, its event and its batch's
/// count (collected in `outbox`), and for a job that ends failed or canceled, its day's usage
/// back and its cost refunded (once: the ledger's unique
/// index would refuse a second refund of the same series).
pub(crate) fn after_transition(
    conn: &Connection,
    counts: &mut Counts,
    outbox: &mut Outbox,
    job_id: &str,
    job: &Owner,
    (from, to): (JobState, JobState),
    now: DateTime<Utc>,
) -> Result<()> {
    outbox.transition(job_id, job, Some(from), to, false);
    let (unfinished, running) = crate::rules::counter_deltas(from, to);
    counts.add(&job.user_id, unfinished, running);
    if crate::rules::gives_back(to) {
        add_usage(conn, &job.user_id, &job.day, -1)?;
        if job.cost > 0 {
            ledger_entry(
                conn,
                &job.user_id,
                LedgerKind::Refund,
                job.cost,
                Some((job_id, job.series as i64)),
                &format!("job {to}"),
                now,
            )?;
        }
    }
    Ok(())
}

pub(crate) fn ledger_page(
    conn: &Connection,
    user_id: &str,
    before: Option<i64>,
    limit: u32,
) -> Result<(Vec<LedgerEntry>, Option<i64>)> {
    let mut stmt = conn.prepare_cached(sql!("ledger_page")).map_err(db_error)?;
    let mut entries = stmt
        .query_map(
            named_params! {":user_id": user_id, ":before": before.unwrap_or(i64::MAX), ":limit": limit as i64 + 1},
            ledger_entry_of,
        )
        .map_err(db_error)?
        .collect::<rusqlite::Result<Vec<_>>>()
        .map_err(db_error)?;
    let next = if entries.len() > limit as usize {
        entries.truncate(limit as usize);
        entries.last().map(|e| e.id)
    } else {
        None
    };
    Ok((entries, next))
}

pub(crate) fn ledger_of_job(conn: &Connection, job_id: &str) -> Result<Vec<LedgerEntry>> {
    let mut stmt = conn
        .prepare_cached(sql!("ledger_of_job"))
        .map_err(db_error)?;
    stmt.query_map(named_params! {":job_id": job_id}, ledger_entry_of)
        .map_err(db_error)?
        .collect::<rusqlite::Result<Vec<_>>>()
        .map_err(db_error)
}

fn ledger_entry_of(r: &rusqlite::Row<'_>) -> rusqlite::Result<LedgerEntry> {
    let kind: String = r.get(2)?;
    Ok(LedgerEntry {
        id: r.get(0)?,
        user_id: r.get(1)?,
        kind: kind.parse().map_err(|e| {
            rusqlite::Error::FromSqlConversionFailure(2, rusqlite::types::Type::Text, Box::new(e))
        })?,
        amount: r.get(3)?,
        balance: r.get(4)?,
        job_id: r.get(5)?,
        reason: r.get(6)?,
        created_at: from_micros(r.get(7)?),
        batch_id: r.get(8)?,
    })
}
