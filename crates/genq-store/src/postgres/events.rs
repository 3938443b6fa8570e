//! The outbox on PostgreSQL: a transaction's events are written as its last statement, under
//! the events lock, with positions that follow commits (see
//! migrations/postgres/0011_event_positions.sql for why ids alone would not do).

use super::accounts::Counts;
use super::rows::{PgError, from_micros, micros};
use super::sql;
use crate::EventFilter;
use crate::outbox::Outbox;
use chrono::{DateTime, Utc};
use genq_core::event::{Event, EventType};
use sqlx::{PgConnection, Row};

/// Write what a transaction collected: its batches' counts (a batch whose last job just
/// finished completes, once; its rows locked after the users', in id order), then every event
/// in order. The last write of its transaction: the events lock it takes is held until the
/// commit, and a row lock wanted after it could deadlock with a writer waiting for it.
pub(crate) async fn write(
    c: &mut PgConnection,
    mut outbox: Outbox,
    users: &Counts,
    now: DateTime<Utc>,
) -> Result<(), PgError> {
    let now = micros(now);
    let batches: Vec<(String, i64)> = std::mem::take(&mut outbox.batches)
        .into_iter()
        .filter(|(_, d)| *d != 0)
        .collect();
    if !batches.is_empty() {
        let ids: Vec<&str> = batches.iter().map(|(id, _)| id.as_str()).collect();
        let deltas: Vec<i32> = batches.iter().map(|(_, d)| *d as i32).collect();
        for row in sqlx::query(sql!("batches_unfinished_add"))
            .bind(&ids)
            .bind(&deltas)
            .bind(now)
            .fetch_all(&mut *c)
            .await?
        {
            if row.try_get::<bool, _>("completing")? {
                outbox.batch_completed(row.try_get("id")?);
            }
        }
    }
    if outbox.events.is_empty() {
        return write_counts(c, &outbox, users).await;
    }
    let moves = CountMoves::of(&outbox, users);
    let e = &outbox.events;
    let insert = sqlx::query(sql!("event_insert_many"))
        .bind(e.iter().map(|e| e.kind.as_str()).collect::<Vec<_>>())
        .bind(e.iter().map(|e| e.job_id.as_deref()).collect::<Vec<_>>())
        // A job event names its job; its batch is the job's.
        .bind(
            e.iter()
                .map(|e| e.batch_id.as_deref().filter(|_| e.job_id.is_none()))
                .collect::<Vec<_>>(),
        )
        .bind(e.iter().map(|e| e.attempt as i32).collect::<Vec<_>>())
        .bind(now);
    moves.bind(insert).execute(c).await?;
    Ok(())
}

/// What a transaction moved, as the columns of `job_count_moves` and `finished_second_moves`
/// (migrations/postgres/0012_job_counts.sql) and of `user_count_moves` (0008).
#[derive(Default)]
struct CountMoves<'a> {
    tallies: Vec<&'static str>,
    kinds: Vec<&'a str>,
    deltas: Vec<i64>,
    seconds: Vec<i64>,
    states: Vec<&'static str>,
    classes: Vec<&'a str>,
    finished: Vec<i64>,
    users: Vec<&'a str>,
    unfinished: Vec<i64>,
    running: Vec<i64>,
}

type PgQuery<'q> = sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>;

impl<'a> CountMoves<'a> {
    fn of(outbox: &'a Outbox, users: &'a Counts) -> Self {
        let mut moves = CountMoves::default();
        for (kind, moved) in &outbox.counts {
            for (tally, delta) in moved.iter().filter(|(_, d)| **d != 0) {
                moves.tallies.push(tally);
                moves.kinds.push(kind);
                moves.deltas.push(*delta);
            }
        }
        for ((second, state, class), n) in &outbox.finished_at {
            moves.seconds.push(*second);
            moves.states.push(state.as_str());
            moves.classes.push(class);
            moves.finished.push(*n);
        }
        for (user, unfinished, running) in users.moved() {
            moves.users.push(user);
            moves.unfinished.push(unfinished);
            moves.running.push(running);
        }
        moves
    }

    fn is_empty(&self) -> bool {
        self.tallies.is_empty() && self.seconds.is_empty() && self.users.is_empty()
    }

    /// Bound as the query's last ten parameters (job_count_moves_add.sql's).
    fn bind<'q>(&'q self, query: PgQuery<'q>) -> PgQuery<'q> {
        query
            .bind(&self.tallies)
            .bind(&self.kinds)
            .bind(&self.deltas)
            .bind(&self.seconds)
            .bind(&self.states)
            .bind(&self.classes)
            .bind(&self.finished)
            .bind(&self.users)
            .bind(&self.unfinished)
            .bind(&self.running)
    }
}

/// Append what a transaction moved to the counts, for one that writes no event.
pub(crate) async fn write_counts(
    c: &mut PgConnection,
    outbox: &Outbox,
    users: &Counts,
) -> Result<(), PgError> {
    let moves = CountMoves::of(outbox, users);
    if !moves.is_empty() {
        moves
            .bind(sqlx::query(sql!("job_count_moves_add")))
            .execute(c)
            .await?;
    }
    Ok(())
}

/// Published events after `position` that pass `filter`, in order.
pub(crate) async fn after(
    c: &mut PgConnection,
    position: i64,
    filter: &EventFilter,
    limit: u32,
) -> Result<Vec<Event>, PgError> {
    let mut q = sqlx::QueryBuilder::new(
        "SELECT id, position, type, job_id, batch_id, user_id, kind, attempt, created_at FROM events_full WHERE position > ",
    );
    q.push_bind(position);
    if let Some(user) = &filter.user_id {
        q.push(" AND user_id = ").push_bind(user.clone());
    }
    if let Some(batch) = &filter.batch_id {
        q.push(" AND batch_id = ").push_bind(batch.clone());
    }
    if !filter.types.is_empty() {
        let types: Vec<&str> = filter.types.iter().map(|t| t.as_str()).collect();
        q.push(" AND type = ANY(").push_bind(types).push(")");
    }
    q.push(" ORDER BY position LIMIT ").push_bind(limit as i64);
    q.build().fetch_all(c).await?.iter().map(event_of).collect()
}

/// Events by position (their primary key).
pub(crate) async fn by_positions(
    c: &mut PgConnection,
    positions: &[i64],
) -> Result<std::collections::HashMap<i64, Event>, PgError> {
    sqlx::query(sql!("event_get_many"))
        .bind(positions)
        .fetch_all(c)
        .await?
        .iter()
        .map(|r| event_of(r).map(|e| (e.position, e)))
        .collect()
}

fn event_of(row: &sqlx::postgres::PgRow) -> Result<Event, PgError> {
    let kind: String = row.try_get("type")?;
    Ok(Event {
        id: row.try_get("id")?,
        position: row.try_get("position")?,
        kind: kind
            .parse::<EventType>()
            .map_err(|e| crate::StoreError::Internal(e.to_string()))?,
        job_id: row.try_get("job_id")?,
        batch_id: row.try_get("batch_id")?,
        user_id: row.try_get("user_id")?,
        job_kind: row.try_get("kind")?,
        attempt: row.try_get::<i32, _>("attempt")? as u32,
        created_at: from_micros(row.try_get("created_at")?),
    })
}
