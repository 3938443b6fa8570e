//! Migrations embedded in the binary, applied in order at open. Hand-written because it is a
//! dozen lines: each file runs once, in a `BEGIN IMMEDIATE` transaction with its version row, so
//! two processes opening the same file at once apply it once.

use super::rows::db_error;
use crate::{Result, StoreError};
use rusqlite::Connection;

const MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "jobs",
        include_str!("../../migrations/sqlite/0001_jobs.sql"),
    ),
    (
        2,
        "accounts",
        include_str!("../../migrations/sqlite/0002_accounts.sql"),
    ),
    (
        3,
        "provider_tasks",
        include_str!("../../migrations/sqlite/0003_provider_tasks.sql"),
    ),
    (
        4,
        "events",
        include_str!("../../migrations/sqlite/0004_events.sql"),
    ),
    (
        5,
        "webhooks",
        include_str!("../../migrations/sqlite/0005_webhooks.sql"),
    ),
    (
        6,
        "schedules",
        include_str!("../../migrations/sqlite/0006_schedules.sql"),
    ),
    (
        7,
        "claimable_run_at",
        include_str!("../../migrations/sqlite/0007_claimable_run_at.sql"),
    ),
    (
        8,
        "attempt_history",
        include_str!("../../migrations/sqlite/0008_attempt_history.sql"),
    ),
    (
        9,
        "tallies",
        include_str!("../../migrations/sqlite/0009_tallies.sql"),
    ),
    (
        10,
        "nodes",
        include_str!("../../migrations/sqlite/0010_nodes.sql"),
    ),
    (
        11,
        "running_tally",
        include_str!("../../migrations/sqlite/0011_running_tally.sql"),
    ),
];

/// Migrations applied, and migrations this build knows.
pub(crate) fn status(conn: &Connection) -> Result<(u32, u32)> {
    let applied: u32 = conn
        .query_row("SELECT count(*) FROM schema_migrations", [], |r| r.get(0))
        .map_err(db_error)?;
    Ok((applied, MIGRATIONS.len() as u32))
}

pub(crate) fn apply(conn: &mut Connection) -> Result<()> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
             version    INTEGER PRIMARY KEY,
             name       TEXT NOT NULL,
             applied_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
         )",
    )
    .map_err(db_error)?;
    for (version, name, sql) in MIGRATIONS {
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(db_error)?;
        let done: bool = tx
            .query_row(
                "SELECT EXISTS (SELECT 1 FROM schema_migrations WHERE version = ?1)",
                [version],
                |r| r.get(0),
            )
            .map_err(db_error)?;
        if !done {
            tx.execute_batch(sql).map_err(|e| {
                StoreError::Internal(format!("migration {version} ({name}) failed: {e}"))
            })?;
            tx.execute(
                "INSERT INTO schema_migrations (version, name) VALUES (?1, ?2)",
                rusqlite::params![version, name],
            )
            .map_err(db_error)?;
        }
        tx.commit().map_err(db_error)?;
    }
    let newest: Option<i64> = conn
        .query_row("SELECT max(version) FROM schema_migrations", [], |r| {
            r.get(0)
        })
        .map_err(db_error)?;
    let known = MIGRATIONS.last().map(|m| m.0);
    if newest > known {
        return Err(StoreError::Internal(format!(
            "the database has schema version {newest:?}, newer than this genq knows ({known:?}); upgrade genq"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::rows::JOB_COLUMNS;

    #[test]
    fn job_columns_match_the_schema() {
        let mut conn = rusqlite::Connection::open_in_memory().unwrap();
        super::apply(&mut conn).unwrap();
        let mut stmt = conn
            .prepare("SELECT name FROM pragma_table_info('jobs') ORDER BY cid")
            .unwrap();
        let names: Vec<String> = stmt
            .query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(names, JOB_COLUMNS);
    }
}
