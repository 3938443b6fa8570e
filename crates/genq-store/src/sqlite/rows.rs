//! Rows to domain types, and times to and from the integer microseconds the schema stores.

use crate::StoreError;
use chrono::{DateTime, Utc};
use genq_core::job::Lease;
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

pub(crate) fn job(row: &Row<'_>) -> rusqlite::Result<Job> {
    let state: String = row.get("state")?;
    let payload: String = row.get("payload")?;
    let result: Option<String> = row.get("result")?;
    let error_class: Option<String> = row.get("error_class")?;
    let lease_token: Option<String> = row.get("lease_token")?;
    let lease = match lease_token {
        Some(token) => Some(Lease {
            token,
            node_id: row.get("lease_node")?,
            worker_id: row
                .get::<_, Option<String>>("lease_worker")?
                .unwrap_or_default(),
            expires_at: from_micros(row.get("lease_expires_at")?),
        }),
        None => None,
    };
    Ok(Job {
        id: row.get("id")?,
        kind: row.get("kind")?,
        user_id: row.get("user_id")?,
        batch_id: row.get("batch_id")?,
        state: parse(&state)?,
        priority: row.get("priority")?,
        attempt: row.get("attempt")?,
        max_retries: row.get("max_retries")?,
        retries_used: row.get("retries_used")?,
        rate_limit_waits: row.get("rate_limit_waits")?,
        payload: json(&payload)?,
        result: result.as_deref().map(json).transpose()?,
        error: match error_class {
            Some(class) => Some(JobError {
                class: parse(&class)?,
                detail: row
                    .get::<_, Option<String>>("error_detail")?
                    .unwrap_or_default(),
            }),
            None => None,
        },
        cost: row.get("cost")?,
        idempotency_key: row.get("idempotency_key")?,
        run_at: from_micros(row.get("run_at")?),
        created_at: from_micros(row.get("created_at")?),
        started_at: opt_time(row.get("started_at")?),
        finished_at: opt_time(row.get("finished_at")?),
        updated_at: from_micros(row.get("updated_at")?),
        lease,
    })
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
