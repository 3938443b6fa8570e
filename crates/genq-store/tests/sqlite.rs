//! The conformance suite against SQLite, each test on a fresh database file.

use genq_store::{SqliteStore, conformance_tests};
use std::sync::Arc;

fn fresh() -> Arc<SqliteStore> {
    let dir = tempfile::tempdir().unwrap().keep();
    Arc::new(SqliteStore::open(dir.join("genq.db")).unwrap())
}

conformance_tests!(fresh());
