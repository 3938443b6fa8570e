//! Webhook deliveries on SQLite: copied from the outbox per endpoint, leased, recorded. See
//! migrations/sqlite/0005_webhooks.sql.

use super::events;
use super::rows::{db_error, from_micros, micros};
use crate::{
    Delivery, DeliveryFilter, DeliveryOutcome, EventFilter, Result, StoreError, WebhookStatus,
};
use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, named_params};

macro_rules! sql {
    ($name:literal) => {
        include_str!(concat!("sql/", $name, ".sql"))
    };
}

pub(crate) fn fan_out(
    conn: &Connection,
    endpoint: &str,
    filter: &DeliveryFilter,
    limit: u32,
    now: DateTime<Utc>,
) -> Result<u64> {
    conn.prepare_cached(sql!("webhook_cursor_start"))
        .and_then(|mut s| s.execute(named_params! {":endpoint": endpoint}))
        .map_err(db_error)?;
    let cursor: i64 = conn
        .prepare_cached(sql!("webhook_cursor_get"))
        .and_then(|mut s| s.query_row(named_params! {":endpoint": endpoint}, |r| r.get(0)))
        .map_err(db_error)?;
    // Read past what the filter drops too: the cursor moves over every event read.
    let read = events::after(conn, cursor, &EventFilter::default(), limit)?;
    let Some(last) = read.last().map(|e| e.position) else {
        return Ok(0);
    };
    let mut insert = conn
        .prepare_cached(sql!("delivery_insert"))
        .map_err(db_error)?;
    let mut copied = 0;
    for e in read.iter().filter(|e| filter.wants(e)) {
        let (key, batch) = crate::delivery_order(e);
        copied += insert
            .execute(named_params! {
                ":endpoint": endpoint, ":event_id": e.id, ":position": e.position,
                ":order_key": key, ":batch_id": batch, ":now": micros(now),
            })
            .map_err(db_error)? as u64;
    }
    conn.prepare_cached(sql!("webhook_cursor_set"))
        .and_then(|mut s| s.execute(named_params! {":endpoint": endpoint, ":position": last}))
        .map_err(db_error)?;
    Ok(copied)
}

pub(crate) fn claim(
    conn: &Connection,
    endpoint: &str,
    max: u32,
    now: DateTime<Utc>,
    lease_until: DateTime<Utc>,
) -> Result<Vec<Delivery>> {
    let taken: Vec<(i64, i64, String, u32, i64)> = conn
        .prepare_cached(sql!("delivery_claim"))
        .and_then(|mut s| {
            s.query_map(
                named_params! {
                    ":endpoint": endpoint, ":limit": max, ":now": micros(now),
                    ":lease_until": micros(lease_until), ":token": genq_core::ids::new_lease_token(),
                },
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
            )?
            .collect()
        })
        .map_err(db_error)?;
    let ids: Vec<i64> = taken.iter().map(|t| t.1).collect();
    let mut found = events::by_ids(conn, &ids)?;
    let mut out = Vec::with_capacity(taken.len());
    for (id, event_id, token, attempt, first_due_at) in taken {
        let event = found.remove(&event_id).ok_or_else(|| {
            StoreError::Internal(format!("delivery {id}: event {event_id} is gone"))
        })?;
        out.push(Delivery {
            id,
            token,
            attempt,
            first_due_at: from_micros(first_due_at),
            event,
        });
    }
    out.sort_by_key(|d| d.event.position);
    Ok(out)
}

pub(crate) fn finish(
    conn: &Connection,
    d: &Delivery,
    outcome: &DeliveryOutcome,
    now: DateTime<Utc>,
) -> Result<bool> {
    let (state, status, error, next_at) = crate::rules::delivery_written(outcome);
    let changed = conn
        .prepare_cached(sql!("delivery_finish"))
        .and_then(|mut s| {
            s.execute(named_params! {
                ":id": d.id, ":token": d.token, ":state": state, ":status": status,
                ":error": error, ":next_at": next_at.map(micros), ":now": micros(now),
            })
        })
        .map_err(db_error)?;
    Ok(changed == 1)
}

pub(crate) fn status(conn: &Connection, endpoint: &str) -> Result<WebhookStatus> {
    let mut status = conn
        .prepare_cached(sql!("webhook_status"))
        .and_then(|mut s| {
            s.query_row(named_params! {":endpoint": endpoint}, |r| {
                Ok(WebhookStatus {
                    backlog: r.get::<_, i64>(0)? as u64,
                    dead: r.get::<_, i64>(1)? as u64,
                    last_success_at: r.get::<_, Option<i64>>(2)?.map(from_micros),
                    last_error: r.get(3)?,
                    last_error_at: r.get::<_, Option<i64>>(4)?.map(from_micros),
                    dead_events: Vec::new(),
                })
            })
        })
        .map_err(db_error)?;
    status.dead_events = conn
        .prepare_cached(sql!("delivery_dead_events"))
        .and_then(|mut s| {
            s.query_map(named_params! {":endpoint": endpoint}, |r| r.get(0))?
                .collect()
        })
        .map_err(db_error)?;
    Ok(status)
}

pub(crate) fn redeliver(
    conn: &Connection,
    endpoint: &str,
    event_id: i64,
    now: DateTime<Utc>,
) -> Result<()> {
    let changed = conn
        .prepare_cached(sql!("delivery_redeliver"))
        .and_then(|mut s| {
            s.execute(
                named_params! {":endpoint": endpoint, ":event_id": event_id, ":now": micros(now)},
            )
        })
        .optional()
        .map_err(db_error)?;
    match changed {
        Some(1) => Ok(()),
        _ => Err(StoreError::NotFound),
    }
}
