//! The conformance suite against SQLite, each test on a fresh database file.

use genq_store::{SqliteStore, conformance_tests};
use std::sync::Arc;

fn fresh() -> Arc<SqliteStore> {
    let dir = tempfile::tempdir().unwrap().keep();
    Arc::new(SqliteStore::open(dir.join("genq.db")).unwrap())
}

conformance_tests!(fresh());

/// One process serves a SQLite database: there is nothing to coordinate with, and an engine
/// keeps its budgets and slots in memory.
#[test]
fn sqlite_offers_no_coordination() {
    use genq_store::Store;
    assert!(fresh().coordination().is_none());
}
