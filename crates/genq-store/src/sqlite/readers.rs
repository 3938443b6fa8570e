//! A small pool of read-only connections, used from blocking threads. Hand-written because the
//! pool crates pin their own rusqlite versions; this is a handful of mutexes.

use crate::{Result, StoreError};
use rusqlite::Connection;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

pub(crate) struct Readers {
    conns: Vec<Mutex<Connection>>,
    next: AtomicUsize,
}

impl Readers {
    pub(crate) fn new(conns: Vec<Connection>) -> Readers {
        Readers {
            conns: conns.into_iter().map(Mutex::new).collect(),
            next: AtomicUsize::new(0),
        }
    }

    pub(crate) async fn read<T, F>(self: &Arc<Self>, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        let this = Arc::clone(self);
        tokio::task::spawn_blocking(move || {
            let start = this.next.fetch_add(1, Ordering::Relaxed);
            let n = this.conns.len();
            // Take a free connection if there is one, else wait for the next in turn.
            let guard = (0..n)
                .find_map(|i| this.conns[(start + i) % n].try_lock().ok())
                .unwrap_or_else(|| {
                    this.conns[start % n]
                        .lock()
                        .unwrap_or_else(|poisoned| poisoned.into_inner())
                });
            f(&guard)
        })
        .await
        .map_err(|e| StoreError::Internal(format!("read task failed: {e}")))?
    }
}
