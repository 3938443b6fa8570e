//! The outbox on SQLite: a transaction's events are written before it commits, and read in id
//! order. SQLite has one writer, so ids are given in commit order: an event's position is its
//! id.

use super::rows::{db_error, from_micros, micros};
use crate::outbox::Outbox;
use crate::{EventFilter, Result, StoreError};
use chrono::{DateTime, Utc};
use genq_core::event::{Event, EventType};
use rusqlite::{Connection, named_params};
use std::collections::HashMap;

macro_rules! sql {
    ($name:literal) => {
        include_str!(concat!("sql/", $name, ".sql"))
    };
}

/// Write what a transaction collected: its batches' counts (a batch whose last job just
/// finished completes, once), then every event in order.
pub(crate) fn write(conn: &Connection, mut outbox: Outbox, now: DateTime<Utc>) -> Result<()> {
    let now = micros(now);
    for (batch_id, delta) in std::mem::take(&mut outbox.batches) {
        let (done, user_id, kind): (bool, String, String) = conn
            .prepare_cached(sql!("batch_unfinished_add"))
            .and_then(|mut s| {
                s.query_row(named_params! {":id": batch_id, ":delta": delta}, |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                })
            })
            .map_err(db_error)?;
        if done {
            conn.prepare_cached(sql!("batch_complete"))
                .and_then(|mut s| s.execute(named_params! {":id": batch_id, ":now": now}))
                .map_err(db_error)?;
            outbox.batch_completed(&batch_id, &user_id, &kind);
        }
    }
    if outbox.events.is_empty() {
        return Ok(());
    }
    let mut insert = conn
        .prepare_cached(sql!("event_insert"))
        .map_err(db_error)?;
    for e in &outbox.events {
        insert
            .execute(named_params! {
                ":type": e.kind.as_str(), ":job_id": e.job_id, ":batch_id": e.batch_id,
                ":user_id": e.user_id, ":kind": e.job_kind, ":attempt": e.attempt, ":now": now,
            })
            .map_err(db_error)?;
    }
    Ok(())
}

/// Events after `position` that pass `filter`, in order.
pub(crate) fn after(
    conn: &Connection,
    position: i64,
    filter: &EventFilter,
    limit: u32,
) -> Result<Vec<Event>> {
    // Only the filters given become conditions.
    let mut sql = String::from(
        "SELECT id, type, job_id, batch_id, user_id, kind, attempt, created_at FROM events WHERE id > :after",
    );
    let mut params: Vec<(&str, Box<dyn rusqlite::ToSql>)> = vec![
        (":after", Box::new(position)),
        (":limit", Box::new(limit as i64)),
    ];
    if let Some(user) = &filter.user_id {
        sql.push_str(" AND user_id = :user_id");
        params.push((":user_id", Box::new(user.clone())));
    }
    if let Some(batch) = &filter.batch_id {
        sql.push_str(" AND batch_id = :batch_id");
        params.push((":batch_id", Box::new(batch.clone())));
    }
    if !filter.types.is_empty() {
        let types: Vec<&str> = filter.types.iter().map(|t| t.as_str()).collect();
        sql.push_str(" AND type IN (SELECT value FROM json_each(:types))");
        params.push((
            ":types",
            Box::new(
                serde_json::to_string(&types).map_err(|e| StoreError::Internal(e.to_string()))?,
            ),
        ));
    }
    sql.push_str(" ORDER BY id LIMIT :limit");
    let bound: Vec<(&str, &dyn rusqlite::ToSql)> =
        params.iter().map(|(n, v)| (*n, v.as_ref())).collect();
    let mut stmt = conn.prepare_cached(&sql).map_err(db_error)?;
    let rows = stmt
        .query_map(bound.as_slice(), event_of)
        .map_err(db_error)?
        .collect::<rusqlite::Result<Vec<_>>>()
        .map_err(db_error)?;
    Ok(rows)
}

/// The newest event's id (0 with none).
pub(crate) fn last_id(conn: &Connection) -> Result<i64> {
    conn.prepare_cached(sql!("event_last_id"))
        .and_then(|mut s| s.query_row([], |r| r.get(0)))
        .map_err(db_error)
}

/// Events by id.
pub(crate) fn by_ids(conn: &Connection, ids: &[i64]) -> Result<HashMap<i64, Event>> {
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    let ids = serde_json::to_string(ids).map_err(|e| StoreError::Internal(e.to_string()))?;
    conn.prepare_cached(sql!("event_get_many"))
        .and_then(|mut s| {
            s.query_map(named_params! {":ids": ids}, event_of)?
                .map(|e| e.map(|e| (e.id, e)))
                .collect()
        })
        .map_err(db_error)
}

/// An event from `id, type, job_id, batch_id, user_id, kind, attempt, created_at`.
fn event_of(r: &rusqlite::Row) -> rusqlite::Result<Event> {
    let id: i64 = r.get(0)?;
    let kind: String = r.get(1)?;
    Ok(Event {
        id,
        position: id,
        kind: kind.parse::<EventType>().map_err(|e| {
            rusqlite::Error::FromSqlConversionFailure(1, rusqlite::types::Type::Text, Box::new(e))
        })?,
        job_id: r.get(2)?,
        batch_id: r.get(3)?,
        user_id: r.get(4)?,
        job_kind: r.get(5)?,
        attempt: r.get(6)?,
        created_at: from_micros(r.get(7)?),
    })
}
