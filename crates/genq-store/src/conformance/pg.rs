//! A clean PostgreSQL store for each test: a schema of its own in the `genq_test` database on
//! the server named by `GENQ_TEST_POSTGRES` (default `postgres://postgres@127.0.0.1:5432/postgres`,
//! the local server with trust auth). Schemas older than an hour are dropped as new ones are made.

use crate::PgStore;
use sqlx::postgres::PgConnectOptions;
// Names made here from digits and hex only: safe to format into SQL.
use sqlx::{AssertSqlSafe, ConnectOptions, Connection};
use std::str::FromStr;

const DATABASE: &str = "genq_test";

pub fn server_url() -> String {
    std::env::var("GENQ_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// Connect options for a fresh, empty schema of its own (created here).
pub async fn fresh_options() -> PgConnectOptions {
    let server = PgConnectOptions::from_str(&server_url()).expect("GENQ_TEST_POSTGRES");
    let mut admin = server
        .connect()
        .await
        .unwrap_or_else(|e| panic!("PostgreSQL at {} is not reachable: {e}", server_url()));
    // Several test processes may get here at once: one creates, the others see it exists.
    if let Err(e) = sqlx::query(AssertSqlSafe(format!("CREATE DATABASE {DATABASE}")))
        .execute(&mut admin)
        .await
        && !matches!(&e, sqlx::Error::Database(d) if matches!(d.code().as_deref(), Some("42P04" | "23505")))
    {
        panic!("cannot create the test database: {e}");
    }
    admin.close().await.ok();
    let db = server.clone().database(DATABASE);
    let mut conn = db.connect().await.expect("connect to the test database");
    let now = chrono::Utc::now().timestamp();
    let schema = format!("t_{now}_{}", uuid_like());
    let stale: Vec<String> = sqlx::query_scalar(
        "SELECT nspname::text FROM pg_namespace WHERE nspname ~ '^t_[0-9]+_' AND split_part(nspname, '_', 2)::bigint < $1",
    )
    .bind(now - 3600)
    .fetch_all(&mut conn)
    .await
    .expect("list old test schemas");
    for old in stale {
        let _ = sqlx::query(AssertSqlSafe(format!(
            "DROP SCHEMA IF EXISTS {old} CASCADE"
        )))
        .execute(&mut conn)
        .await;
    }
    sqlx::query(AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
        .execute(&mut conn)
        .await
        .expect("create the test schema");
    conn.close().await.ok();
    db.options([("search_path", schema.as_str())])
}

fn uuid_like() -> String {
    use rand::Rng;
    let n: u64 = rand::rng().random();
    format!("{n:016x}")
}

/// A migrated store in a fresh schema.
pub async fn fresh_store() -> PgStore {
    PgStore::connect_with(fresh_options().await, 6)
        .await
        .expect("open the test store")
}
