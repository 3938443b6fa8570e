//! Rows to domain types, errors to `StoreError`, and times to and from the bigint
//! microseconds the schema stores.

use crate::StoreError;
use chrono::{DateTime, Utc};
use genq_core::job::{Lease, ProviderTask};
use genq_core::{Batch, Job, JobError};
use sqlx::Row;
use sqlx::postgres::PgRow;

pub(crate) fn micros(t: DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

pub(crate) fn from_micros(us: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(us).unwrap_or_default()
}

pub(crate) fn parse<T: std::str::FromStr>(text: &str) -> Result<T, StoreError>
where
    T::Err: std::fmt::Display,
{
    text.parse()
        .map_err(|e: T::Err| StoreError::Internal(format!("unreadable value {text:?}: {e}")))
}

/// An error inside a transaction: the database's (which may call for a retry), or the store's
/// own verdict (not found, conflict, rejected).
#[derive(Debug)]
pub(crate) enum PgError {
    Db(sqlx::Error),
    Store(StoreError),
}

impl From<sqlx::Error> for PgError {
    fn from(e: sqlx::Error) -> Self {
        PgError::Db(e)
    }
}

impl From<StoreError> for PgError {
    fn from(e: StoreError) -> Self {
        PgError::Store(e)
    }
}

impl PgError {
    /// A deadlock or a serialization failure: the transaction may simply run again.
    pub(crate) fn is_retryable(&self) -> bool {
        matches!(self, PgError::Db(sqlx::Error::Database(e))
            if matches!(e.code().as_deref(), Some("40001" | "40P01")))
    }

    pub(crate) fn into_store(self) -> StoreError {
        match self {
            PgError::Db(e) => db_error(e),
            PgError::Store(e) => e,
        }
    }
}

pub(crate) fn db_error(e: sqlx::Error) -> StoreError {
    match &e {
        sqlx::Error::RowNotFound => StoreError::NotFound,
        sqlx::Error::Database(d) if d.code().is_some_and(|c| c.starts_with("23")) => {
            StoreError::Internal(format!("constraint violated: {d}"))
        }
        sqlx::Error::ColumnDecode { .. }
        | sqlx::Error::ColumnNotFound(_)
        | sqlx::Error::Decode(_)
        | sqlx::Error::TypeNotFound { .. } => StoreError::Internal(e.to_string()),
        _ => StoreError::Unavailable(e.to_string()),
    }
}

pub(crate) fn job(row: &PgRow) -> Result<Job, sqlx::Error> {
    let decode = |e: StoreError| sqlx::Error::Decode(e.to_string().into());
    let state: String = row.try_get("state")?;
    let error_class: Option<String> = row.try_get("error_class")?;
    let lease = match row.try_get::<Option<String>, _>("lease_token")? {
        Some(token) => Some(Lease {
            token,
            node_id: row.try_get("lease_node")?,
            worker_id: row
                .try_get::<Option<String>, _>("lease_worker")?
                .unwrap_or_default(),
            expires_at: from_micros(row.try_get("lease_expires_at")?),
        }),
        None => None,
    };
    let provider_task = match row.try_get::<Option<String>, _>("provider_task_id")? {
        Some(id) => Some(ProviderTask {
            id,
            created_at: from_micros(row.try_get("provider_task_at")?),
        }),
        None => None,
    };
    let opt_time = |col: &str| -> Result<_, sqlx::Error> {
        Ok(row.try_get::<Option<i64>, _>(col)?.map(from_micros))
    };
    let mut job = Job {
        id: row.try_get("id")?,
        kind: row.try_get("kind")?,
        user_id: row.try_get("user_id")?,
        batch_id: row.try_get("batch_id")?,
        state: parse(&state).map_err(decode)?,
        priority: row.try_get("priority")?,
        attempt: row.try_get::<i32, _>("attempt")? as u32,
        max_retries: row.try_get::<i32, _>("max_retries")? as u32,
        retries_used: row.try_get::<i32, _>("retries_used")? as u32,
        rate_limit_waits: row.try_get::<i32, _>("rate_limit_waits")? as u32,
        payload: row
            .try_get::<sqlx::types::Json<serde_json::Value>, _>("payload")?
            .0,
        result: row
            .try_get::<Option<sqlx::types::Json<serde_json::Value>>, _>("result")?
            .map(|j| j.0),
        error: match error_class {
            Some(class) => Some(JobError {
                class: parse(&class).map_err(decode)?,
                detail: row
                    .try_get::<Option<String>, _>("error_detail")?
                    .unwrap_or_default(),
            }),
            None => None,
        },
        cost: row.try_get("cost")?,
        idempotency_key: row.try_get("idempotency_key")?,
        run_at: from_micros(row.try_get("run_at")?),
        created_at: from_micros(row.try_get("created_at")?),
        started_at: opt_time("started_at")?,
        finished_at: opt_time("finished_at")?,
        updated_at: from_micros(row.try_get("updated_at")?),
        lease,
        series: row.try_get::<i32, _>("series")? as u32,
        day: row.try_get("day")?,
        provider_task,
        attempt_started_at: opt_time("attempt_started_at")?,
        history: match row.try_get::<Option<sqlx::types::Json<serde_json::Value>>, _>("history")? {
            Some(h) => crate::rules::history(Some(&h.0.to_string()))
                .map_err(|e| sqlx::Error::Decode(e.into()))?,
            None => Vec::new(),
        },
    };
    crate::rules::complete_history(&mut job);
    Ok(job)
}

/// A batch row; its progress counts are filled in from its jobs.
pub(crate) fn batch_summary(row: &PgRow) -> Result<crate::BatchSummary, sqlx::Error> {
    Ok(crate::BatchSummary {
        id: row.try_get("id")?,
        user_id: row.try_get("user_id")?,
        kind: row.try_get("kind")?,
        total: row.try_get::<i32, _>("total")? as u32,
        unfinished: row.try_get::<i32, _>("unfinished")? as u32,
        created_at: from_micros(row.try_get("created_at")?),
        completed_at: row
            .try_get::<Option<i64>, _>("completed_at")?
            .map(from_micros),
    })
}

pub(crate) fn batch(row: &PgRow) -> Result<Batch, sqlx::Error> {
    Ok(Batch {
        id: row.try_get("id")?,
        user_id: row.try_get("user_id")?,
        kind: row.try_get("kind")?,
        idempotency_key: row.try_get("idempotency_key")?,
        total: row.try_get::<i32, _>("total")? as u32,
        queued: 0,
        running: 0,
        retrying: 0,
        succeeded: 0,
        failed: 0,
        canceled: 0,
        created_at: from_micros(row.try_get("created_at")?),
        finished_at: None,
    })
}
