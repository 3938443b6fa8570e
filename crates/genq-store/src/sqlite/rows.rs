//! Rows to domain types, and times to and from the integer microseconds the schema stores.

use crate::StoreError;
use chrono::{DateTime, Utc};
use genq_core::job::{Lease, ProviderTask};
use genq_core::{Batch, Job, JobError};
use rusqlite::Row;

pub(crate) fn micros(t: DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

pub(crate) fn from_micros(us: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(us).unwrap_or_default()
}

fn opt_time(us: Option<i64>) -> Option<DateTime<Utc>> {
    us.map(from_micros)
}

fn json(text: &str) -> rusqlite::Result<serde_json::Value> {
    serde_json::from_str(text).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(e))
    })
}

fn parse<T: std::str::FromStr>(text: &str) -> rusqlite::Result<T>
where
    T::Err: std::error::Error + Send + Sync + 'static,
{
    text.parse().map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(e))
    })
}

/// The columns of `jobs`, in table order: what `SELECT *` and `RETURNING *` give. Read by
/// position, not name, because the claim path reads thousands of rows a second; the test below
/// keeps this list equal to the schema.
#[cfg(test)]
pub(crate) const JOB_COLUMNS: [&str; 32] = [
    "id",
    "kind",
    "user_id",
    "batch_id",
    "state",
    "priority",
    "attempt",
    "max_retries",
    "retries_used",
    "rate_limit_waits",
    "payload",
    "result",
    "error_class",
    "error_detail",
    "cost",
    "idempotency_key",
    "run_at",
    "created_at",
    "started_at",
    "finished_at",
    "updated_at",
    "fair_tag",
    "lease_token",
    "lease_node",
    "lease_worker",
    "lease_expires_at",
    "series",
    "day",
    "provider_task_id",
    "provider_task_at",
    "attempt_started_at",
    "history",
];

pub(crate) fn job(row: &Row<'_>) -> rusqlite::Result<Job> {
    let state: String = row.get(4)?;
    let payload: String = row.get(10)?;
    let result: Option<String> = row.get(11)?;
    let error_class: Option<String> = row.get(12)?;
    let lease_token: Option<String> = row.get(22)?;
    let lease = match lease_token {
        Some(token) => Some(Lease {
            token,
            node_id: row.get(23)?,
            worker_id: row.get::<_, Option<String>>(24)?.unwrap_or_default(),
            expires_at: from_micros(row.get(25)?),
        }),
        None => None,
    };
    let mut job = Job {
        id: row.get(0)?,
        kind: row.get(1)?,
        user_id: row.get(2)?,
        batch_id: row.get(3)?,
        state: parse(&state)?,
        priority: row.get(5)?,
        attempt: row.get(6)?,
        max_retries: row.get(7)?,
        retries_used: row.get(8)?,
        rate_limit_waits: row.get(9)?,
        payload: json(&payload)?,
        result: result.as_deref().map(json).transpose()?,
        error: match error_class {
            Some(class) => Some(JobError {
                class: parse(&class)?,
                detail: row.get::<_, Option<String>>(13)?.unwrap_or_default(),
            }),
            None => None,
        },
        cost: row.get(14)?,
        idempotency_key: row.get(15)?,
        run_at: from_micros(row.get(16)?),
        created_at: from_micros(row.get(17)?),
        started_at: opt_time(row.get(18)?),
        finished_at: opt_time(row.get(19)?),
        updated_at: from_micros(row.get(20)?),
        lease,
        series: row.get(26)?,
        day: row.get(27)?,
        provider_task: match row.get::<_, Option<String>>(28)? {
            Some(id) => Some(ProviderTask {
                id,
                created_at: from_micros(row.get(29)?),
            }),
            None => None,
        },
        attempt_started_at: opt_time(row.get(30)?),
        history: crate::rules::history(row.get::<_, Option<String>>(31)?.as_deref()).map_err(
            |e| {
                rusqlite::Error::FromSqlConversionFailure(31, rusqlite::types::Type::Text, e.into())
            },
        )?,
    };
    crate::rules::complete_history(&mut job);
    Ok(job)
}

/// A batch row; its progress counts are filled in from its jobs.
pub(crate) fn batch(row: &Row<'_>) -> rusqlite::Result<Batch> {
    Ok(Batch {
        id: row.get("id")?,
        user_id: row.get("user_id")?,
        kind: row.get("kind")?,
        idempotency_key: row.get("idempotency_key")?,
        total: row.get("total")?,
        queued: 0,
        running: 0,
        retrying: 0,
        succeeded: 0,
        failed: 0,
        canceled: 0,
        created_at: from_micros(row.get("created_at")?),
        finished_at: None,
    })
}

pub(crate) fn batch_summary(row: &Row<'_>) -> rusqlite::Result<crate::BatchSummary> {
    Ok(crate::BatchSummary {
        id: row.get("id")?,
        user_id: row.get("user_id")?,
        kind: row.get("kind")?,
        total: row.get("total")?,
        unfinished: row.get("unfinished")?,
        created_at: from_micros(row.get("created_at")?),
        completed_at: row.get::<_, Option<i64>>("completed_at")?.map(from_micros),
    })
}

pub(crate) fn db_error(e: rusqlite::Error) -> StoreError {
    match e {
        rusqlite::Error::QueryReturnedNoRows => StoreError::NotFound,
        rusqlite::Error::SqliteFailure(code, _)
            if code.code == rusqlite::ErrorCode::ConstraintViolation =>
        {
            StoreError::Internal(format!("constraint violated: {e}"))
        }
        other => StoreError::Unavailable(other.to_string()),
    }
}
