//! Webhook deliveries on PostgreSQL: copied from the outbox per endpoint (its cursor row
//! locked), leased with SKIP LOCKED, recorded. See migrations/postgres/0005_webhooks.sql.

use super::events;
use super::rows::{PgError, from_micros, micros};
use super::sql;
use crate::{Delivery, DeliveryFilter, DeliveryOutcome, EventFilter, StoreError, WebhookStatus};
use chrono::{DateTime, Utc};
use sqlx::{PgConnection, Row};

pub(crate) async fn fan_out(
    c: &mut PgConnection,
    endpoint: &str,
    filter: &DeliveryFilter,
    limit: u32,
    now: DateTime<Utc>,
) -> Result<u64, PgError> {
    sqlx::query(sql!("webhook_cursor_start"))
        .bind(endpoint)
        .execute(&mut *c)
        .await?;
    let cursor: i64 = sqlx::query_scalar(sql!("webhook_cursor_lock"))
        .bind(endpoint)
        .fetch_one(&mut *c)
        .await?;
    // Read past what the filter drops too: the cursor moves over every event read.
    let read = events::after(c, cursor, &EventFilter::default(), limit).await?;
    let Some(last) = read.last().map(|e| e.position) else {
        return Ok(0);
    };
    let wanted: Vec<_> = read.iter().filter(|e| filter.wants(e)).collect();
    let copied = sqlx::query(sql!("delivery_insert_many"))
        .bind(endpoint)
        .bind(wanted.iter().map(|e| e.id).collect::<Vec<_>>())
        .bind(wanted.iter().map(|e| e.position).collect::<Vec<_>>())
        .bind(
            wanted
                .iter()
                .map(|e| crate::delivery_order(e).0)
                .collect::<Vec<_>>(),
        )
        .bind(
            wanted
                .iter()
                .map(|e| crate::delivery_order(e).1)
                .collect::<Vec<_>>(),
        )
        .bind(micros(now))
        .execute(&mut *c)
        .await?
        .rows_affected();
    sqlx::query(sql!("webhook_cursor_set"))
        .bind(endpoint)
        .bind(last)
        .execute(c)
        .await?;
    Ok(copied)
}

pub(crate) async fn claim(
    c: &mut PgConnection,
    endpoint: &str,
    max: u32,
    now: DateTime<Utc>,
    lease_until: DateTime<Utc>,
) -> Result<Vec<Delivery>, PgError> {
    let taken = sqlx::query(sql!("delivery_claim"))
        .bind(endpoint)
        .bind(max as i64)
        .bind(micros(now))
        .bind(micros(lease_until))
        .bind(genq_core::ids::new_lease_token())
        .fetch_all(&mut *c)
        .await?;
    let positions: Vec<i64> = taken
        .iter()
        .map(|r| r.try_get("position"))
        .collect::<Result<_, _>>()?;
    let mut found = events::by_positions(c, &positions).await?;
    let mut out = Vec::with_capacity(taken.len());
    for r in &taken {
        let (id, position): (i64, i64) = (r.try_get("id")?, r.try_get("position")?);
        let event = found.remove(&position).ok_or_else(|| {
            StoreError::Internal(format!("delivery {id}: the event at {position} is gone"))
        })?;
        out.push(Delivery {
            id,
            token: r.try_get("lease_token")?,
            attempt: r.try_get::<i32, _>("attempts")? as u32,
            first_due_at: from_micros(r.try_get("first_due_at")?),
            event,
        });
    }
    out.sort_by_key(|d| d.event.position);
    Ok(out)
}

pub(crate) async fn finish(
    c: &mut PgConnection,
    d: &Delivery,
    outcome: &DeliveryOutcome,
    now: DateTime<Utc>,
) -> Result<bool, PgError> {
    let (state, status, error, next_at) = crate::rules::delivery_written(outcome);
    let changed = sqlx::query(sql!("delivery_finish"))
        .bind(d.id)
        .bind(&d.token)
        .bind(state)
        .bind(status.map(|s| s as i32))
        .bind(error)
        .bind(next_at.map(micros))
        .bind(micros(now))
        .execute(c)
        .await?
        .rows_affected();
    Ok(changed == 1)
}

pub(crate) async fn status(c: &mut PgConnection, endpoint: &str) -> Result<WebhookStatus, PgError> {
    let r = sqlx::query(sql!("webhook_status"))
        .bind(endpoint)
        .fetch_one(&mut *c)
        .await?;
    let dead_events: Vec<i64> = sqlx::query_scalar(sql!("delivery_dead_events"))
        .bind(endpoint)
        .fetch_all(c)
        .await?;
    Ok(WebhookStatus {
        backlog: r.try_get::<i64, _>("backlog")? as u64,
        dead: r.try_get::<i64, _>("dead")? as u64,
        last_success_at: r
            .try_get::<Option<i64>, _>("last_success_at")?
            .map(from_micros),
        last_error: r.try_get("last_error")?,
        last_error_at: r
            .try_get::<Option<i64>, _>("last_error_at")?
            .map(from_micros),
        dead_events,
    })
}

pub(crate) async fn redeliver(
    c: &mut PgConnection,
    endpoint: &str,
    event_id: i64,
    now: DateTime<Utc>,
) -> Result<(), PgError> {
    let changed = sqlx::query(sql!("delivery_redeliver"))
        .bind(endpoint)
        .bind(event_id)
        .bind(micros(now))
        .execute(c)
        .await?
        .rows_affected();
    if changed == 1 {
        Ok(())
    } else {
        Err(StoreError::NotFound.into())
    }
}
