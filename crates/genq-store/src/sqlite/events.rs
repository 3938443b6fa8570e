//! The outbox on SQLite: a transaction's events are written before it commits, and read in id
//! order. SQLite has one writer, so ids are given in commit order: an event's position is its
//! id.

use super::rows::{db_error, from_micros, micros};
use crate::outbox::Outbox;
use crate::{EventFilter, Result, StoreError};
use chrono::{DateTime, Utc};
use genq_core::event::{Event, EventType};
use rusqlite::{Connection, named_params, params};
use std::collections::HashMap;

macro_rules! sql {
    ($name:literal) => {
        include_str!(concat!("sql/", $name, ".sql"))
    };
}

/// Write what a transaction collected: its batches' counts (a batch whose last job just
/// finished completes, once), then every event in order. This runs for every job change:
/// parameters are bound by position (by name costs a search each), several rows a statement.
/// The tallies the outbox gathered: a statement per tally and kind, and per second, however
/// many jobs the transaction moved.
fn write_tallies(conn: &Connection, outbox: &Outbox) -> Result<()> {
    for (kind, tallies) in &outbox.counts {
        for (tally, delta) in tallies {
            if *delta != 0 {
                conn.prepare_cached(sql!("job_counts_add"))
                    .and_then(|mut s| s.execute(params![tally, kind, delta]))
                    .map_err(db_error)?;
            }
        }
    }
    for ((second, state, class), n) in &outbox.finished_at {
        let added = conn
            .prepare_cached(sql!("finished_seconds_add"))
            .and_then(|mut s| s.execute(params![second, state.as_str(), class, n]))
            .map_err(db_error)?;
        debug_assert_eq!(added, 1);
    }
    if let Some(((last, _, _), _)) = outbox.finished_at.last_key_value() {
        conn.prepare_cached(sql!("finished_seconds_forget"))
            .and_then(|mut s| s.execute(params![last]))
            .map_err(db_error)?;
    }
    Ok(())
}

pub(crate) fn write(conn: &Connection, mut outbox: Outbox, now: DateTime<Utc>) -> Result<()> {
    let now = micros(now);
    for (batch_id, delta) in std::mem::take(&mut outbox.batches) {
        if delta == 0 {
            continue;
        }
        conn.prepare_cached(sql!("batch_unfinished_add"))
            .and_then(|mut s| s.execute(params![batch_id, delta]))
            .map_err(db_error)?;
        if delta < 0 {
            let completed = conn
                .prepare_cached(sql!("batch_complete"))
                .and_then(|mut s| s.execute(params![batch_id, now]))
                .map_err(db_error)?;
            if completed == 1 {
                outbox.batch_completed(&batch_id);
            }
        }
    }
    write_tallies(conn, &outbox)?;
    if outbox.events.is_empty() {
        return Ok(());
    }
    // Several rows per statement (16, 8, 4, 2, 1 at a time): one statement's overhead for
    // many events.
    let mut rest = outbox.events.as_slice();
    while !rest.is_empty() {
        let n = [16, 8, 4, 2, 1]
            .into_iter()
            .find(|n| *n <= rest.len())
            .expect("1 fits");
        let (chunk, tail) = rest.split_at(n);
        let mut insert = conn.prepare_cached(insert_sql(n)).map_err(db_error)?;
        let types: Vec<&'static str> = chunk.iter().map(|e| e.kind.as_str()).collect();
        let mut values: Vec<&dyn rusqlite::ToSql> = Vec::with_capacity(n * 5);
        for (e, kind) in chunk.iter().zip(&types) {
            // A job event names its job; its batch is the job's.
            let batch = if e.job_id.is_some() {
                &None
            } else {
                &e.batch_id
            };
            values.extend_from_slice(&[
                kind as &dyn rusqlite::ToSql,
                &e.job_id,
                batch,
                &e.attempt,
                &now,
            ]);
        }
        insert
            .execute(rusqlite::params_from_iter(values))
            .map_err(db_error)?;
        rest = tail;
    }
    Ok(())
}

/// `event_insert.sql` with `n` (1, 2, 4, 8 or 16) rows of values.
fn insert_sql(n: usize) -> &'static str {
    static SQL: std::sync::LazyLock<[String; 5]> = std::sync::LazyLock::new(|| {
        let row = sql!("event_insert").trim_end();
        let (head, values) = row.rsplit_once("VALUES").expect("an INSERT … VALUES");
        [1, 2, 4, 8, 16].map(|n| format!("{head}VALUES {}", vec![values.trim(); n].join(", ")))
    });
    &SQL[n.trailing_zeros() as usize]
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
        "SELECT id, type, job_id, batch_id, user_id, kind, attempt, created_at FROM events_full WHERE id > :after",
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
