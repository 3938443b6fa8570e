//! The one writer. SQLite allows one writer at a time, so instead of many connections queueing
//! on its lock, one thread owns the write connection and runs every write. Writes that arrive
//! together share one `BEGIN IMMEDIATE … COMMIT` (group commit), each inside its own savepoint so
//! that one failing write rolls back alone. A caller hears back only after the commit, so an
//! acknowledged write is durable.

use crate::StoreError;
use rusqlite::Connection;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::mpsc;
use tokio::sync::oneshot;

/// Delivers a write's result once its transaction's fate is known.
type Deliver = Box<dyn FnOnce(Result<(), StoreError>) + Send>;
/// A write: runs inside a savepoint, says whether to keep its changes, and how to reply.
type WriteOp = Box<dyn FnOnce(&Connection) -> (bool, Deliver) + Send>;

/// Most writes merged into one transaction.
const MAX_GROUP: usize = 256;

#[derive(Clone)]
pub(crate) struct Writer {
    tx: mpsc::Sender<WriteOp>,
}

impl Writer {
    pub(crate) fn start(conn: Connection) -> Writer {
        let (tx, rx) = mpsc::channel::<WriteOp>();
        std::thread::Builder::new()
            .name("genq-sqlite-writer".into())
            .spawn(move || run(conn, rx))
            .expect("spawn the SQLite writer thread");
        Writer { tx }
    }

    /// Run `f` in a write transaction; `Err` rolls back `f`'s changes only.
    pub(crate) async fn write<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let op: WriteOp = Box::new(move |conn| {
            let result = catch_unwind(AssertUnwindSafe(|| f(conn))).unwrap_or_else(|panic| {
                let what = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_default();
                Err(StoreError::Internal(format!("write panicked: {what}")))
            });
            let keep = result.is_ok();
            let deliver: Deliver = Box::new(move |committed| {
                let _ = reply.send(committed.and(result));
            });
            (keep, deliver)
        });
        self.tx
            .send(op)
            .map_err(|_| StoreError::Unavailable("the SQLite writer has stopped".into()))?;
        answer
            .await
            .map_err(|_| StoreError::Unavailable("the SQLite writer has stopped".into()))?
    }
}

fn run(conn: Connection, rx: mpsc::Receiver<WriteOp>) {
    while let Ok(first) = rx.recv() {
        let mut group = Vec::with_capacity(8);
        group.push(first);
        while group.len() < MAX_GROUP {
            match rx.try_recv() {
                Ok(op) => group.push(op),
                Err(_) => break,
            }
        }
        let mut deliveries = Vec::with_capacity(group.len());
        let outcome = (|| -> rusqlite::Result<()> {
            run_cached(&conn, "BEGIN IMMEDIATE")?;
            for op in group.drain(..) {
                run_cached(&conn, "SAVEPOINT op")?;
                let (keep, deliver) = op(&conn);
                if !keep {
                    run_cached(&conn, "ROLLBACK TO op")?;
                }
                run_cached(&conn, "RELEASE op")?;
                deliveries.push(deliver);
            }
            run_cached(&conn, "COMMIT")
        })();
        let committed = match outcome {
            Ok(()) => Ok(()),
            Err(e) => {
                let _ = conn.execute_batch("ROLLBACK");
                tracing::error!(error = %e, "SQLite write transaction failed");
                Err(StoreError::Unavailable(e.to_string()))
            }
        };
        // Ops never reached (an error before them) are dropped: their callers hear "stopped"
        // through the closed reply channel, so nothing waits forever.
        drop(group);
        for deliver in deliveries {
            deliver(committed.as_ref().map(|_| ()).map_err(clone_error));
        }
    }
}

/// The transaction's own statements, prepared once (`execute_batch` would parse them again for
/// every write).
fn run_cached(conn: &Connection, sql: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(sql)?.execute([]).map(|_| ())
}

fn clone_error(e: &StoreError) -> StoreError {
    StoreError::Unavailable(e.to_string())
}
