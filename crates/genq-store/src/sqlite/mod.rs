//! The embedded SQLite backend: WAL mode, one writer thread with group commit (see `writer`),
//! a few read-only connections for queries, migrations embedded in the binary.
//!
//! Fair claiming uses start-time fair queueing: a job gets a *tag* when it becomes claimable,
//! `max(virtual time, the user's previous tag + 1)`, and claims take the lowest tags within the
//! highest priority. The virtual time is the largest tag claimed so far. A user who submits 300
//! jobs gets 300 consecutive tags; a user who arrives later starts at the current virtual time
//! and is therefore served next, so users take turns. Claiming stays an index range scan however
//! long the queue is.

mod accounts;
mod events;
mod migrate;
mod readers;
mod rows;
mod webhooks;
mod writer;

use crate::Prune;
use crate::outbox::Outbox;
use crate::rules::Candidate;
use crate::{
    BatchSummary, ClaimRequest, Delivery, DeliveryFilter, DeliveryOutcome, Enqueued, EventFilter,
    Finish, JobFilter, JobQuery, LeaseRef, NewJobs, NodeLock, NodeSeen, Outcome, Page, Polls,
    Rejection, Result, ScheduleState, SlotRun, Staged, Stats, Store, StoreError, UserCtx,
    WebhookStatus,
};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use genq_core::{Batch, Job, JobState, LedgerEntry, LedgerKind, Limits, User, ids};
use readers::Readers;
use rows::{db_error, from_micros, micros};
use rusqlite::{Connection, OptionalExtension, named_params};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use writer::Writer;

macro_rules! sql {
    ($name:literal) => {
        include_str!(concat!("sql/", $name, ".sql"))
    };
}

/// Read-only connections; WAL lets them read while the writer writes.
const READERS: usize = 4;

pub struct SqliteStore {
    path: PathBuf,
    writer: Writer,
    readers: Arc<Readers>,
    /// The newest event id `new_events` has reported.
    seen_events: crate::outbox::EventsSeen,
}

impl SqliteStore {
    /// Open (creating if needed) the database at `path` and apply migrations, with
    /// `synchronous = FULL`.
    pub fn open(path: impl AsRef<Path>) -> Result<SqliteStore> {
        Self::open_with(path, Synchronous::Full)
    }

    pub fn open_with(path: impl AsRef<Path>, synchronous: Synchronous) -> Result<SqliteStore> {
        let path = path.as_ref().to_path_buf();
        create_private(&path)?;
        let mut conn = Connection::open(&path).map_err(db_error)?;
        configure(&conn, false).map_err(db_error)?;
        conn.execute_batch(match synchronous {
            Synchronous::Full => "PRAGMA synchronous = FULL;",
            Synchronous::Normal => "PRAGMA synchronous = NORMAL;",
        })
        .map_err(db_error)?;
        migrate::apply(&mut conn)?;
        let readers = (0..READERS)
            .map(|_| {
                let conn = Connection::open_with_flags(
                    &path,
                    rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY
                        | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
                )?;
                configure(&conn, true)?;
                Ok(conn)
            })
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(db_error)?;
        Ok(SqliteStore {
            path,
            writer: Writer::start(conn),
            readers: Arc::new(Readers::new(readers)),
            seen_events: Default::default(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    async fn read<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        self.readers.read(f).await
    }
}

/// Copy the database at `db` to `to` (which must not exist), consistent, while other
/// processes read and write it: `VACUUM INTO` runs in one read transaction, so the copy holds
/// exactly what was committed when it began. The copy is readable by its owner only, and
/// checked before it is reported done.
pub fn backup(db: &Path, to: &Path) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let source = Connection::open_with_flags(
        db,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(db_error)?;
    source
        .busy_timeout(std::time::Duration::from_secs(30))
        .map_err(db_error)?;
    // An empty file of the right mode first: VACUUM INTO writes into it.
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(to)
        .map_err(|e| StoreError::Invalid(format!("{}: {e}", to.display())))?;
    let copied = source
        .execute(sql!("backup_into"), [to.to_string_lossy()])
        .map_err(db_error);
    if let Err(e) = copied {
        let _ = std::fs::remove_file(to);
        return Err(e);
    }
    let copy = Connection::open_with_flags(to, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .map_err(db_error)?;
    let check: String = copy
        .query_row("PRAGMA quick_check", [], |r| r.get(0))
        .map_err(db_error)?;
    if check != "ok" {
        return Err(StoreError::Internal(format!(
            "the copy fails its check: {check}"
        )));
    }
    Ok(())
}

/// A new database file is created readable by its owner only; SQLite gives its `-wal` and
/// `-shm` files the same mode. Jobs hold users' payloads and results.
fn create_private(path: &Path) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(StoreError::Unavailable(format!(
            "cannot create {}: {e}",
            path.display()
        ))),
    }
}

/// `<database>-node-<hash>.lock`: one small file per node id that has run on this database.
fn node_lock_path(db: &Path, node_id: &str) -> PathBuf {
    // FNV-1a: stable across builds and platforms, unlike the std hasher.
    let hash = node_id.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
    });
    let name = db
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_else(|| "genq.db".into());
    db.with_file_name(format!("{name}-node-{hash:016x}.lock"))
}

/// When a commit reaches the disk (SQLite's `synchronous`, in WAL mode).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Synchronous {
    /// Every commit is fsynced before genq acknowledges it: an accepted job survives a power
    /// cut. Group commit shares each fsync among the writes that arrived together.
    #[default]
    Full,
    /// Commits reach the OS at once and the disk at the next checkpoint: a process crash
    /// (SIGKILL) loses nothing, a power cut or kernel crash may lose the last commits. Faster.
    Normal,
}

/// Prepared statements kept per connection. rusqlite keeps 16 by default; one job's way
/// through (accept, claim, finish, their events and counts) uses about 30 of the statements
/// in `sql/`, so with 16 the writer parsed and planned some of them again on every turn.
const STATEMENT_CACHE: usize = 128;

fn configure(conn: &Connection, read_only: bool) -> rusqlite::Result<()> {
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    if read_only {
        conn.execute_batch("PRAGMA query_only = ON; PRAGMA cache_size = -2000;")
    } else {
        // WAL: readers never block the writer. `synchronous` is set by `open_with`.
        conn.execute_batch(
            "PRAGMA journal_mode = WAL;
             PRAGMA foreign_keys = ON;
             PRAGMA cache_size = -16000;
             PRAGMA temp_store = MEMORY;",
        )
    }
}

fn vtime(conn: &Connection) -> rusqlite::Result<i64> {
    conn.prepare_cached(sql!("fair_clock_get"))?
        .query_row([], |r| r.get(0))
}

/// Reserve `n` consecutive fair-queue tags for `user_id`; returns the first.
fn reserve_tags(conn: &Connection, user_id: &str, n: i64) -> rusqlite::Result<i64> {
    let vtime = vtime(conn)?;
    conn.prepare_cached(sql!("fair_user_reserve"))?.query_row(
        named_params! {":user_id": user_id, ":vtime": vtime, ":n": n},
        |r| r.get(0),
    )
}

fn job_by_id(conn: &Connection, id: &str) -> Result<Job> {
    conn.prepare_cached(sql!("job_get"))
        .and_then(|mut s| s.query_row(named_params! {":id": id}, rows::job))
        .map_err(db_error)
}

fn batch_by_id(conn: &Connection, id: &str) -> Result<Batch> {
    let mut batch = conn
        .prepare_cached(sql!("batch_get"))
        .and_then(|mut s| s.query_row(named_params! {":id": id}, rows::batch))
        .map_err(db_error)?;
    let mut stmt = conn
        .prepare_cached(sql!("batch_counts"))
        .map_err(db_error)?;
    let counts = stmt
        .query_map(named_params! {":id": id}, |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, u32>(1)?,
                r.get::<_, Option<i64>>(2)?,
            ))
        })
        .map_err(db_error)?;
    let mut last_finish = None;
    for row in counts {
        let (state, count, finished) = row.map_err(db_error)?;
        let state: JobState = state
            .parse()
            .map_err(|e: genq_core::state::UnknownState| StoreError::Internal(e.to_string()))?;
        *match state {
            JobState::Queued => &mut batch.queued,
            JobState::Running => &mut batch.running,
            JobState::Retrying => &mut batch.retrying,
            JobState::Succeeded => &mut batch.succeeded,
            JobState::Failed => &mut batch.failed,
            JobState::Canceled => &mut batch.canceled,
        } = count;
        last_finish = last_finish.max(finished);
    }
    if batch.succeeded + batch.failed + batch.canceled == batch.total {
        batch.finished_at = last_finish.map(from_micros);
    }
    Ok(batch)
}

fn batch_job_ids(conn: &Connection, id: &str) -> Result<Vec<String>> {
    let mut stmt = conn
        .prepare_cached(sql!("batch_job_ids"))
        .map_err(db_error)?;
    let ids = stmt
        .query_map(named_params! {":id": id}, |r| r.get(0))
        .map_err(db_error)?
        .collect::<rusqlite::Result<Vec<String>>>()
        .map_err(db_error)?;
    Ok(ids)
}

/// An idempotent replay: the jobs (and batch) an earlier request with the same key created.
fn replay(conn: &Connection, req: &NewJobs) -> Result<Option<Enqueued>> {
    let Some(key) = &req.idempotency_key else {
        return Ok(None);
    };
    let params = named_params! {":user_id": req.user_id, ":idempotency_key": key};
    if req.as_batch {
        let batch_id: Option<String> = conn
            .prepare_cached(sql!("batch_by_idempotency_key"))
            .and_then(|mut s| s.query_row(params, |r| r.get(0)).optional())
            .map_err(db_error)?;
        let Some(batch_id) = batch_id else {
            return Ok(None);
        };
        let jobs = batch_job_ids(conn, &batch_id)?
            .iter()
            .map(|id| job_by_id(conn, id))
            .collect::<Result<Vec<_>>>()?;
        Ok(Some(Enqueued {
            batch: Some(batch_by_id(conn, &batch_id)?),
            jobs,
            replayed: true,
        }))
    } else {
        let job = conn
            .prepare_cached(sql!("job_by_idempotency_key"))
            .and_then(|mut s| s.query_row(params, rows::job).optional())
            .map_err(db_error)?;
        Ok(job.map(|job| Enqueued {
            batch: None,
            jobs: vec![job],
            replayed: true,
        }))
    }
}

fn enqueue(conn: &Connection, mut req: NewJobs) -> Result<Enqueued> {
    if let Some(replayed) = replay(conn, &req)? {
        return Ok(replayed);
    }
    let now = micros(req.now);
    let run_at = req.run_at.map(micros).unwrap_or(now).max(now);
    let due = run_at <= now;
    let n = req.payloads.len() as i64;
    let limits = accounts::limits(conn)?;
    let user = accounts::ensure_user(conn, &req.user_id, &req.user_defaults, req.now)?;
    accounts::admit(conn, &user, &limits, &req.day, n, req.cost, req.as_batch)?;
    let first_tag = if due {
        Some(reserve_tags(conn, &req.user_id, n).map_err(db_error)?)
    } else {
        None
    };
    let batch_id = req.as_batch.then(ids::new_id);
    if let Some(batch_id) = &batch_id {
        conn.prepare_cached(sql!("batch_insert"))
            .and_then(|mut s| {
                s.execute(named_params! {
                    ":id": batch_id, ":user_id": req.user_id, ":kind": req.kind,
                    ":idempotency_key": req.idempotency_key, ":total": n, ":now": now,
                })
            })
            .map_err(db_error)?;
    }
    // A batch's jobs are found through the batch; the key is recorded once, on the batch.
    let job_key = if req.as_batch {
        None
    } else {
        req.idempotency_key.clone()
    };
    let job_key = job_key.as_deref();
    let mut insert = conn.prepare_cached(sql!("job_insert")).map_err(db_error)?;
    let mut jobs = Vec::with_capacity(req.payloads.len());
    let payloads = std::mem::take(&mut req.payloads);
    for (i, payload) in payloads.into_iter().enumerate() {
        let id = ids::new_id();
        insert
            .execute(named_params! {
                ":id": id,
                ":kind": req.kind,
                ":user_id": req.user_id,
                ":batch_id": batch_id,
                ":priority": req.priority,
                ":max_retries": req.max_retries,
                ":payload": payload.to_string(),
                ":cost": req.cost,
                ":idempotency_key": job_key,
                ":run_at": run_at,
                ":now": now,
                ":fair_tag": first_tag.map(|t| t + i as i64),
                ":day": req.day,
            })
            .map_err(db_error)?;
        jobs.push(crate::rules::new_job(
            &req,
            id,
            payload,
            batch_id.clone(),
            job_key.map(str::to_string),
            from_micros(run_at),
        ));
    }
    let reason = format!("{} accepted", req.kind);
    let debited = match &batch_id {
        Some(batch) => Err(batch.as_str()),
        None => Ok(jobs[0].id.as_str()),
    };
    accounts::accept_new(
        conn,
        &req.user_id,
        n,
        req.cost * n,
        debited,
        &reason,
        req.now,
    )?;
    accounts::add_usage(conn, &req.user_id, &req.day, n)?;
    let mut outbox = Outbox::default();
    outbox.accepted(&jobs);
    events::write(conn, outbox, req.now)?;
    Ok(Enqueued {
        batch: batch_id.map(|id| crate::rules::new_batch(&req, id, n as u32)),
        jobs,
        replayed: false,
    })
}

fn claim(conn: &Connection, mut req: ClaimRequest) -> Result<Vec<Job>> {
    req.kinds.sort();
    req.kinds.dedup();
    let cap = accounts::limits(conn)?.get(genq_core::limits::USER_MAX_RUNNING);
    // With a per-user cap, look further ahead: capped users' jobs are skipped.
    let look_ahead = if cap > 0 { req.max * 4 } else { req.max };
    // The best of each kind, merged: the best overall are among them.
    let mut candidates: Vec<Candidate> = Vec::new();
    let mut by_kind = conn
        .prepare_cached(sql!("job_claimable_by_kind"))
        .map_err(db_error)?;
    for kind in &req.kinds {
        let rows = by_kind
            .query_map(named_params! {":kind": kind, ":limit": look_ahead}, |r| {
                Ok(Candidate {
                    id: r.get(0)?,
                    priority: r.get(1)?,
                    tag: r.get(2)?,
                    user_id: r.get(3)?,
                })
            })
            .map_err(db_error)?;
        for row in rows {
            candidates.push(row.map_err(db_error)?);
        }
    }
    // `user_max_running` holds across every process: the running counts are in the database
    // and this transaction is the only writer.
    let mut running = std::collections::HashMap::new();
    if cap > 0 {
        for c in &candidates {
            if !running.contains_key(&c.user_id) {
                let n = accounts::user_row(conn, &c.user_id)?.map_or(0, |u| u.running as i64);
                running.insert(c.user_id.clone(), n);
            }
        }
    }
    let candidates = crate::rules::choose(candidates, req.max as usize, cap, running);
    let Some(max_tag) = candidates.iter().map(|c| c.tag).max() else {
        return Ok(Vec::new());
    };
    let order: std::collections::HashMap<&str, usize> = candidates
        .iter()
        .enumerate()
        .map(|(i, c)| (c.id.as_str(), i))
        .collect();
    let ids = serde_json::to_string(&candidates.iter().map(|c| &c.id).collect::<Vec<_>>())
        .map_err(|e| StoreError::Internal(e.to_string()))?;
    let mut claimed = conn
        .prepare_cached(sql!("job_claim"))
        .and_then(|mut s| {
            s.query_map(
                named_params! {
                    ":ids": ids, ":nonce": ids::new_lease_token(), ":node_id": req.node_id,
                    ":worker_id": req.worker_id, ":lease_until": micros(req.lease_until),
                    ":now": micros(req.now),
                },
                rows::job,
            )?
            .collect::<rusqlite::Result<Vec<Job>>>()
        })
        .map_err(db_error)?;
    claimed.sort_by_key(|job| order.get(job.id.as_str()).copied());
    let mut counts = accounts::Counts::default();
    let mut outbox = Outbox::default();
    outbox.claimed(&claimed);
    for job in &claimed {
        counts.add(&job.user_id, 0, 1);
    }
    counts.apply(conn)?;
    events::write(conn, outbox, req.now)?;
    conn.prepare_cached(sql!("fair_clock_advance"))
        .and_then(|mut s| s.execute(named_params! {":tag": max_tag}))
        .map_err(db_error)?;
    Ok(claimed)
}

fn finish(conn: &Connection, finishes: Vec<Finish>) -> Result<Vec<bool>> {
    let mut stmt = conn.prepare_cached(sql!("job_finish")).map_err(db_error)?;
    let mut applied = Vec::with_capacity(finishes.len());
    let mut counts = accounts::Counts::default();
    let mut outbox = Outbox::default();
    let mut last_now = None;
    let mut front_tag = None;
    for f in finishes {
        let now = micros(f.now);
        if let Outcome::Parked { task_id, poll_at } = &f.outcome {
            let changed = conn
                .prepare_cached(sql!("job_park"))
                .and_then(|mut s| {
                    s.execute(named_params! {
                        ":id": f.lease.job_id, ":token": f.lease.token, ":task_id": task_id,
                        ":poll_at": micros(*poll_at), ":now": now,
                    })
                })
                .map_err(db_error)?;
            applied.push(changed == 1);
            continue;
        }
        let w = crate::rules::written(&f.outcome, now).expect("parked above");
        last_now = Some(f.now);
        let mut fair_tag = None;
        // Due at once: claimable at the head of the fair queue. Later: the scheduler stages it.
        if w.due_now {
            if front_tag.is_none() {
                front_tag = Some(vtime(conn).map_err(db_error)?);
            }
            fair_tag = front_tag;
        }
        let changed = stmt
            .execute(named_params! {
                ":id": f.lease.job_id,
                ":token": f.lease.token,
                ":expired_before": f.only_if_expired_before.map(micros),
                ":state": w.state,
                ":result": w.result.map(|r| r.to_string()),
                ":error_class": w.error.map(|e| e.class.as_str()),
                ":error_detail": w.error.map(|e| e.detail.as_str()),
                ":run_at": w.run_at,
                ":fair_tag": fair_tag,
                ":uses_retry": w.uses_retry as i64,
                ":rate_limit_wait": w.rate_limit_wait as i64,
                ":finished_at": w.finished_at,
                ":now": now,
            })
            .map_err(db_error)?;
        if changed == 1 {
            let to = f.outcome.state();
            accounts::after_transition(
                conn,
                &mut counts,
                &mut outbox,
                &f.lease.job_id,
                &f.owner,
                (JobState::Running, to),
                f.now,
            )?;
            if to.is_terminal() {
                outbox.finished_at(f.now, to, w.error.map(|e| e.class));
            }
        }
        applied.push(changed == 1);
    }
    counts.apply(conn)?;
    if let Some(now) = last_now {
        events::write(conn, outbox, now)?;
    }
    Ok(applied)
}

fn claim_polls(conn: &Connection, req: ClaimRequest) -> Result<Polls> {
    let kinds =
        serde_json::to_string(&req.kinds).map_err(|e| StoreError::Internal(e.to_string()))?;
    let jobs = conn
        .prepare_cached(sql!("job_poll_claim"))
        .and_then(|mut s| {
            s.query_map(
                named_params! {
                    ":kinds": kinds, ":limit": req.max, ":nonce": ids::new_lease_token(),
                    ":node_id": req.node_id, ":worker_id": req.worker_id,
                    ":lease_until": micros(req.lease_until), ":now": micros(req.now),
                },
                rows::job,
            )?
            .collect::<rusqlite::Result<Vec<Job>>>()
        })
        .map_err(db_error)?;
    let next_due: Option<i64> = conn
        .prepare_cached(sql!("job_next_poll"))
        .and_then(|mut s| s.query_row(named_params! {":kinds": kinds}, |r| r.get(0)))
        .map_err(db_error)?;
    Ok(Polls {
        jobs,
        next_due: next_due.map(from_micros),
    })
}

fn stage_due(conn: &Connection, now: DateTime<Utc>, limit: u32) -> Result<Staged> {
    let now = micros(now);
    let due: Vec<(String, String, String)> = conn
        .prepare_cached(sql!("job_due"))
        .and_then(|mut s| {
            s.query_map(named_params! {":now": now, ":limit": limit}, |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })?
            .collect()
        })
        .map_err(db_error)?;
    let front = vtime(conn).map_err(db_error)?;
    let mut stage = conn.prepare_cached(sql!("job_stage")).map_err(db_error)?;
    for (id, user_id, state) in &due {
        // Delayed new jobs join the back of their user's turn; retries go to the front.
        let tag = if state == JobState::Retrying.as_str() {
            front
        } else {
            reserve_tags(conn, user_id, 1).map_err(db_error)?
        };
        stage
            .execute(named_params! {":id": id, ":fair_tag": tag})
            .map_err(db_error)?;
    }
    let next_due: Option<i64> = conn
        .prepare_cached(sql!("job_next_due"))
        .and_then(|mut s| s.query_row([], |r| r.get(0)))
        .map_err(db_error)?;
    Ok(Staged {
        staged: due.len() as u32,
        next_due: next_due.map(from_micros),
    })
}

/// A user with its usage on `day`.
fn user_on(conn: &Connection, id: &str, day: &str) -> Result<User> {
    let mut user = accounts::user_row(conn, id)?.ok_or(StoreError::NotFound)?;
    user.used_today = accounts::usage(conn, id, day)? as u32;
    Ok(user)
}

/// A job's state and what its bookkeeping needs; `NotFound` if there is no such job.
fn job_accounting(conn: &Connection, id: &str) -> Result<(JobState, crate::Owner)> {
    conn.prepare_cached(sql!("job_accounting"))
        .and_then(|mut s| {
            s.query_row(named_params! {":id": id}, |r| {
                let state: String = r.get(1)?;
                Ok((
                    state,
                    crate::Owner {
                        user_id: r.get(0)?,
                        cost: r.get(2)?,
                        day: r.get(3)?,
                        series: r.get(4)?,
                        kind: r.get(5)?,
                        batch_id: r.get(6)?,
                        attempt: r.get(7)?,
                    },
                ))
            })
        })
        .map_err(db_error)
        .and_then(|(state, accounted)| {
            let state = state
                .parse()
                .map_err(|e: genq_core::state::UnknownState| StoreError::Internal(e.to_string()))?;
            Ok((state, accounted))
        })
}

fn cancel(conn: &Connection, id: &str, now: DateTime<Utc>) -> Result<Job> {
    let (from, accounted) = job_accounting(conn, id)?;
    if !from.is_cancelable() {
        return Err(explain_miss(
            conn,
            id,
            "only unfinished jobs can be canceled",
        ));
    }
    let job = conn
        .prepare_cached(sql!("job_cancel"))
        .and_then(|mut s| s.query_row(named_params! {":id": id, ":now": micros(now)}, rows::job))
        .map_err(db_error)?;
    let mut counts = accounts::Counts::default();
    let mut outbox = Outbox::default();
    accounts::after_transition(
        conn,
        &mut counts,
        &mut outbox,
        id,
        &accounted,
        (from, JobState::Canceled),
        now,
    )?;
    outbox.finished_at(now, JobState::Canceled, None);
    counts.apply(conn)?;
    events::write(conn, outbox, now)?;
    Ok(job)
}

/// Re-queue a failed or canceled job: a new attempt series, debited again (402 if the balance
/// does not cover it), counted again toward its day.
fn admin_retry(conn: &Connection, id: &str, now: DateTime<Utc>) -> Result<Job> {
    let (from, accounted) = job_accounting(conn, id)?;
    if !from.is_admin_retryable() {
        return Err(explain_miss(
            conn,
            id,
            "only failed or canceled jobs can be retried",
        ));
    }
    let series = accounted.series + 1;
    if accounted.cost > 0 {
        let balance = accounts::user_row(conn, &accounted.user_id)?.map_or(0, |u| u.credits);
        if balance < accounted.cost {
            return Err(StoreError::Rejected(Rejection::InsufficientCredits {
                needed: accounted.cost,
                balance,
            }));
        }
        accounts::ledger_entry(
            conn,
            &accounted.user_id,
            LedgerKind::Debit,
            -accounted.cost,
            Some((id, series as i64)),
            "admin retry",
            now,
        )?;
    }
    let tag = reserve_tags(conn, &accounted.user_id, 1).map_err(db_error)?;
    let job = conn
        .prepare_cached(sql!("job_admin_retry"))
        .and_then(|mut s| {
            s.query_row(
                named_params! {":id": id, ":now": micros(now), ":fair_tag": tag},
                rows::job,
            )
        })
        .map_err(db_error)?;
    accounts::add_counts(conn, &accounted.user_id, 1, 0)?;
    accounts::add_usage(conn, &accounted.user_id, &accounted.day, 1)?;
    let mut outbox = Outbox::default();
    outbox.transition(id, &accounted, Some(from), JobState::Queued, false);
    events::write(conn, outbox, now)?;
    Ok(job)
}

/// Why a cancel or admin retry matched nothing: the job is missing, or in the wrong state.
fn explain_miss(conn: &Connection, id: &str, wanted: &str) -> StoreError {
    let state: rusqlite::Result<String> = conn
        .prepare_cached(sql!("job_state"))
        .and_then(|mut s| s.query_row(named_params! {":id": id}, |r| r.get(0)));
    match state {
        Ok(state) => StoreError::Conflict(format!("job {id} is {state}; {wanted}")),
        Err(e) => db_error(e),
    }
}

/// At least this many jobs match a list's filter: walk the primary key (see `list_jobs`).
const DENSE_MATCHES: i64 = 5_000;

/// The ids and payload-plus-result sizes of at most `limit` jobs matching `f`, newest first,
/// older than `before` when given.
fn candidates(
    conn: &Connection,
    f: &JobFilter,
    before: Option<&str>,
    limit: u32,
) -> Result<Vec<(String, i64)>> {
    // Only the filters given become conditions, so SQLite can pick the index that fits (a
    // `(? IS NULL OR col = ?)` condition would hide it from the planner).
    let mut params: Vec<(&str, String)> = Vec::new();
    let conditions = [
        ("user_id", ":user_id", f.user_id.clone()),
        ("state", ":state", f.state.map(|s| s.as_str().to_string())),
        ("kind", ":kind", f.kind.clone()),
        ("batch_id", ":batch_id", f.batch_id.clone()),
    ];
    let mut filter = String::new();
    for (column, name, value) in conditions {
        if let Some(value) = value {
            filter.push_str(&format!(" AND {column} = {name}"));
            params.push((name, value));
        }
    }
    // A user's or a batch's jobs come in id order from their own index. A state or kind alone
    // has no such index (jobs_state_kind is for counting): SQLite would collect every match
    // and sort it, 0.3 s for a million succeeded jobs. When the matches are many, walking the
    // primary key backwards finds a page of them at once; when they are few, collecting and
    // sorting them is cheaper. A bounded count tells which.
    let newest_first = if f.user_id.is_none() && f.batch_id.is_none() && !filter.is_empty() {
        let probe = format!(
            "SELECT count(*) FROM (SELECT 1 FROM jobs WHERE 1 = 1{filter} LIMIT {DENSE_MATCHES})"
        );
        let bound: Vec<(&str, &dyn rusqlite::ToSql)> = params
            .iter()
            .map(|(n, v)| (*n, v as &dyn rusqlite::ToSql))
            .collect();
        let matches: i64 = conn
            .prepare_cached(&probe)
            .and_then(|mut s| s.query_row(bound.as_slice(), |r| r.get(0)))
            .map_err(db_error)?;
        matches >= DENSE_MATCHES
    } else {
        false
    };
    let mut sql = format!(
        "SELECT id, octet_length(payload) + coalesce(octet_length(result), 0) FROM jobs{} WHERE 1 = 1{filter}",
        if newest_first {
            " INDEXED BY sqlite_autoindex_jobs_1"
        } else {
            ""
        }
    );
    if let Some(before) = before {
        sql.push_str(" AND id < :before");
        params.push((":before", before.to_string()));
    }
    sql.push_str(" ORDER BY id DESC LIMIT :limit");
    params.push((":limit", limit.to_string()));
    let bound: Vec<(&str, &dyn rusqlite::ToSql)> = params
        .iter()
        .map(|(n, v)| (*n, v as &dyn rusqlite::ToSql))
        .collect();
    let mut stmt = conn.prepare_cached(&sql).map_err(db_error)?;
    stmt.query_map(bound.as_slice(), |r| Ok((r.get(0)?, r.get(1)?)))
        .map_err(db_error)?
        .collect::<rusqlite::Result<Vec<(String, i64)>>>()
        .map_err(db_error)
}

fn list_jobs(conn: &Connection, q: &JobQuery) -> Result<Page> {
    // First the ids and sizes of the candidates, so that the byte budget is applied before
    // any payload is read.
    let candidates = candidates(conn, &q.filter, q.before.as_deref(), q.limit + 1)?;
    let (ids, next_before) = crate::rules::page(&candidates, q.limit, q.max_bytes);
    let ids = serde_json::to_string(&ids).map_err(|e| StoreError::Internal(e.to_string()))?;
    let jobs = conn
        .prepare_cached(sql!("job_get_many"))
        .and_then(|mut s| {
            s.query_map(named_params! {":ids": ids}, rows::job)?
                .collect::<rusqlite::Result<Vec<_>>>()
        })
        .map_err(db_error)?;
    Ok(Page { jobs, next_before })
}

fn stats(conn: &Connection, now: DateTime<Utc>) -> Result<Stats> {
    let mut stats = Stats::default();
    let mut stmt = conn
        .prepare_cached(sql!("stats_by_state_kind"))
        .map_err(db_error)?;
    let rows = stmt
        .query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, i64>(2)?,
            ))
        })
        .map_err(db_error)?
        .collect::<rusqlite::Result<Vec<_>>>()
        .map_err(db_error)?;
    crate::rules::count_tallies(&mut stats, rows)?;
    let seconds = conn
        .prepare_cached(sql!("stats_finished_seconds"))
        .and_then(|mut s| {
            s.query_map(
                named_params! {":since": crate::rules::finished_since(now)},
                |r| Ok((r.get(0)?, r.get::<_, String>(1)?, r.get(2)?, r.get(3)?)),
            )?
            .collect::<rusqlite::Result<Vec<(i64, String, String, u64)>>>()
        })
        .map_err(db_error)?
        .into_iter()
        .map(|(second, state, class, n)| {
            Ok(crate::rules::FinishedSecond {
                second,
                state: state.parse().map_err(|e: genq_core::state::UnknownState| {
                    StoreError::Internal(e.to_string())
                })?,
                class,
                n,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    crate::rules::tally_finished(&mut stats, seconds, now);
    stats.past_lease = conn
        .prepare_cached(sql!("stats_past_lease"))
        .and_then(|mut s| s.query_row(named_params! {":now": micros(now)}, |r| r.get(0)))
        .map_err(db_error)?;
    let oldest: Option<i64> = conn
        .prepare_cached(sql!("stats_oldest_claimable"))
        .and_then(|mut s| s.query_row([], |r| r.get(0)))
        .map_err(db_error)?;
    stats.oldest_claimable_age_ms = oldest.map(|t| ((micros(now) - t) / 1000).max(0));
    Ok(stats)
}

#[async_trait]
impl Store for SqliteStore {
    async fn migrate(&self) -> Result<()> {
        // `open` has applied them.
        Ok(())
    }

    async fn ping(&self) -> Result<()> {
        self.read(|conn| conn.query_row("SELECT 1", [], |_| Ok(())).map_err(db_error))
            .await
    }

    async fn schema(&self) -> Result<crate::SchemaStatus> {
        let (applied, known) = self.read(migrate::status).await?;
        Ok(crate::SchemaStatus {
            applied,
            known,
            server_time: None,
        })
    }

    /// An OS file lock beside the database: released by the kernel when the process dies, so a
    /// crashed process never blocks its own restart.
    async fn lock_node(&self, node_id: &str) -> Result<Option<NodeLock>> {
        let path = node_lock_path(&self.path, node_id);
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| {
                StoreError::Unavailable(format!(
                    "cannot open the node lock {}: {e}",
                    path.display()
                ))
            })?;
        match file.try_lock() {
            Ok(()) => {
                use std::io::Write;
                let _ = file.set_len(0);
                let _ = (&file).write_all(format!("{node_id}\n").as_bytes());
                Ok(Some(NodeLock::new(file)))
            }
            Err(std::fs::TryLockError::WouldBlock) => Ok(None),
            Err(std::fs::TryLockError::Error(e)) => Err(StoreError::Unavailable(format!(
                "cannot lock {}: {e}",
                path.display()
            ))),
        }
    }

    async fn enqueue(&self, jobs: NewJobs) -> Result<Enqueued> {
        self.writer.write(move |conn| enqueue(conn, jobs)).await
    }

    async fn claim(&self, request: ClaimRequest) -> Result<Vec<Job>> {
        if request.max == 0 || request.kinds.is_empty() {
            return Ok(Vec::new());
        }
        self.writer.write(move |conn| claim(conn, request)).await
    }

    async fn heartbeat(
        &self,
        leases: &[LeaseRef],
        lease_until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<Vec<LeaseRef>> {
        if leases.is_empty() {
            return Ok(Vec::new());
        }
        let leases = leases.to_vec();
        self.writer
            .write(move |conn| {
                let mut stmt = conn
                    .prepare_cached(sql!("job_heartbeat"))
                    .map_err(db_error)?;
                let mut renewed = Vec::with_capacity(leases.len());
                for lease in leases {
                    let n = stmt
                        .execute(named_params! {
                            ":id": lease.job_id, ":token": lease.token,
                            ":lease_until": micros(lease_until), ":now": micros(now),
                        })
                        .map_err(db_error)?;
                    if n == 1 {
                        renewed.push(lease);
                    }
                }
                Ok(renewed)
            })
            .await
    }

    async fn finish(&self, finishes: Vec<Finish>) -> Result<Vec<bool>> {
        if finishes.is_empty() {
            return Ok(Vec::new());
        }
        self.writer.write(move |conn| finish(conn, finishes)).await
    }

    async fn claim_polls(&self, request: ClaimRequest) -> Result<Polls> {
        if request.kinds.is_empty() {
            return Ok(Polls::default());
        }
        self.writer
            .write(move |conn| claim_polls(conn, request))
            .await
    }

    async fn expired_leases(&self, before: DateTime<Utc>, limit: u32) -> Result<Vec<Job>> {
        self.read(move |conn| {
            conn.prepare_cached(sql!("job_leases_expired"))
                .and_then(|mut s| {
                    s.query_map(
                        named_params! { ":before": micros(before), ":limit": limit },
                        rows::job,
                    )?
                    .collect()
                })
                .map_err(db_error)
        })
        .await
    }

    async fn node_leases(&self, node_id: &str, limit: u32) -> Result<Vec<Job>> {
        let node_id = node_id.to_string();
        self.read(move |conn| {
            conn.prepare_cached(sql!("job_leases_of_node"))
                .and_then(|mut s| {
                    s.query_map(
                        named_params! { ":node_id": node_id, ":limit": limit },
                        rows::job,
                    )?
                    .collect()
                })
                .map_err(db_error)
        })
        .await
    }

    async fn stage_due(&self, now: DateTime<Utc>, limit: u32) -> Result<Staged> {
        self.writer
            .write(move |conn| stage_due(conn, now, limit))
            .await
    }

    async fn cancel(&self, job_id: &str, now: DateTime<Utc>) -> Result<Job> {
        let id = job_id.to_string();
        self.writer.write(move |conn| cancel(conn, &id, now)).await
    }

    async fn admin_retry(&self, job_id: &str, now: DateTime<Utc>) -> Result<Job> {
        let id = job_id.to_string();
        self.writer
            .write(move |conn| admin_retry(conn, &id, now))
            .await
    }

    async fn job(&self, job_id: &str) -> Result<Job> {
        let id = job_id.to_string();
        self.read(move |conn| job_by_id(conn, &id)).await
    }

    async fn jobs(&self, query: &JobQuery) -> Result<Page> {
        let query = query.clone();
        self.read(move |conn| list_jobs(conn, &query)).await
    }

    async fn job_ids(&self, filter: &JobFilter, at_most: u32) -> Result<Vec<String>> {
        let filter = filter.clone();
        self.read(move |conn| {
            let found = candidates(conn, &filter, None, at_most)?;
            Ok(found.into_iter().map(|(id, _)| id).collect())
        })
        .await
    }

    async fn batch(&self, batch_id: &str) -> Result<Batch> {
        let id = batch_id.to_string();
        self.read(move |conn| batch_by_id(conn, &id)).await
    }

    async fn node_seen(&self, node: &NodeSeen) -> Result<()> {
        let node = node.clone();
        self.writer
            .write(move |conn| {
                conn.prepare_cached(sql!("node_seen"))
                    .and_then(|mut s| {
                        s.execute(named_params! {
                            ":node_id": node.node_id, ":pid": node.pid, ":version": node.version,
                            ":concurrency": node.concurrency, ":started_at": micros(node.started_at),
                            ":seen_at": micros(node.seen_at),
                        })
                    })
                    .map_err(db_error)?;
                conn.prepare_cached(sql!("nodes_forget"))
                    .and_then(|mut s| {
                        s.execute(named_params! {
                            ":before": micros(node.seen_at - crate::NODE_FORGOTTEN_AFTER),
                        })
                    })
                    .map_err(db_error)?;
                Ok(())
            })
            .await
    }

    async fn nodes(&self, since: DateTime<Utc>) -> Result<Vec<NodeSeen>> {
        self.read(move |conn| {
            conn.prepare_cached(sql!("nodes_seen"))
                .and_then(|mut s| {
                    s.query_map(named_params! {":since": micros(since)}, |r| {
                        Ok(NodeSeen {
                            node_id: r.get(0)?,
                            pid: r.get(1)?,
                            version: r.get(2)?,
                            concurrency: r.get(3)?,
                            started_at: from_micros(r.get(4)?),
                            seen_at: from_micros(r.get(5)?),
                        })
                    })?
                    .collect()
                })
                .map_err(db_error)
        })
        .await
    }

    async fn batches(&self, before: Option<&str>, limit: u32) -> Result<Vec<BatchSummary>> {
        let before = before.map(str::to_string);
        self.read(move |conn| {
            let mut stmt = match before {
                Some(_) => conn.prepare_cached(sql!("batches_older")),
                None => conn.prepare_cached(sql!("batches_newest")),
            }
            .map_err(db_error)?;
            let mut params: Vec<(&str, &dyn rusqlite::ToSql)> = vec![(":limit", &limit)];
            if let Some(before) = &before {
                params.push((":before", before));
            }
            stmt.query_map(params.as_slice(), rows::batch_summary)
                .and_then(|rows| rows.collect())
                .map_err(db_error)
        })
        .await
    }

    async fn batch_job_ids(&self, batch_id: &str) -> Result<Vec<String>> {
        let id = batch_id.to_string();
        self.read(move |conn| batch_job_ids(conn, &id)).await
    }

    async fn stats(&self, now: DateTime<Utc>) -> Result<Stats> {
        self.read(move |conn| stats(conn, now)).await
    }

    async fn limits(&self) -> Result<Limits> {
        self.read(accounts::limits).await
    }

    async fn set_limit(&self, key: &str, value: i64, now: DateTime<Utc>) -> Result<Limits> {
        let key = key.to_string();
        self.writer
            .write(move |conn| accounts::set_limit(conn, &key, value, now))
            .await
    }

    async fn user(&self, user_id: &str, day: &str) -> Result<User> {
        let (id, day) = (user_id.to_string(), day.to_string());
        self.read(move |conn| user_on(conn, &id, &day)).await
    }

    async fn users(&self, after: &str, limit: u32) -> Result<Vec<User>> {
        let after = after.to_string();
        self.read(move |conn| accounts::users_page(conn, &after, limit))
            .await
    }

    async fn set_plan(&self, user_id: &str, plan: &str, ctx: &UserCtx) -> Result<User> {
        let (id, plan, ctx) = (user_id.to_string(), plan.to_string(), ctx.clone());
        self.writer
            .write(move |conn| {
                accounts::ensure_user(conn, &id, &ctx.defaults, ctx.now)?;
                conn.prepare_cached(sql!("user_set_plan"))
                    .and_then(|mut s| s.execute(named_params! {":id": id, ":plan": plan}))
                    .map_err(db_error)?;
                user_on(conn, &id, &ctx.day)
            })
            .await
    }

    async fn add_credits(
        &self,
        user_id: &str,
        delta: i64,
        reason: &str,
        ctx: &UserCtx,
    ) -> Result<User> {
        let (id, reason, ctx) = (user_id.to_string(), reason.to_string(), ctx.clone());
        self.writer
            .write(move |conn| {
                accounts::ensure_user(conn, &id, &ctx.defaults, ctx.now)?;
                let kind = if delta > 0 {
                    LedgerKind::Grant
                } else {
                    LedgerKind::Adjust
                };
                accounts::ledger_entry(conn, &id, kind, delta, None, &reason, ctx.now)?;
                user_on(conn, &id, &ctx.day)
            })
            .await
    }

    async fn ledger(
        &self,
        user_id: &str,
        before: Option<i64>,
        limit: u32,
    ) -> Result<(Vec<LedgerEntry>, Option<i64>)> {
        let id = user_id.to_string();
        self.read(move |conn| accounts::ledger_page(conn, &id, before, limit))
            .await
    }

    async fn job_ledger(&self, job_id: &str) -> Result<Vec<LedgerEntry>> {
        let id = job_id.to_string();
        self.read(move |conn| accounts::ledger_of_job(conn, &id))
            .await
    }

    async fn events_after(
        &self,
        position: i64,
        filter: &EventFilter,
        limit: u32,
    ) -> Result<Vec<genq_core::event::Event>> {
        let filter = filter.clone();
        self.read(move |conn| events::after(conn, position, &filter, limit))
            .await
    }

    async fn fan_out(
        &self,
        endpoint: &str,
        filter: &DeliveryFilter,
        limit: u32,
        now: DateTime<Utc>,
    ) -> Result<u64> {
        let (endpoint, filter) = (endpoint.to_string(), filter.clone());
        self.writer
            .write(move |conn| webhooks::fan_out(conn, &endpoint, &filter, limit, now))
            .await
    }

    async fn claim_deliveries(
        &self,
        endpoint: &str,
        max: u32,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
    ) -> Result<Vec<Delivery>> {
        let endpoint = endpoint.to_string();
        self.writer
            .write(move |conn| webhooks::claim(conn, &endpoint, max, now, lease_until))
            .await
    }

    async fn finish_delivery(
        &self,
        delivery: &Delivery,
        outcome: DeliveryOutcome,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let delivery = delivery.clone();
        self.writer
            .write(move |conn| webhooks::finish(conn, &delivery, &outcome, now))
            .await
    }

    async fn webhook_status(&self, endpoint: &str) -> Result<WebhookStatus> {
        let endpoint = endpoint.to_string();
        self.read(move |conn| webhooks::status(conn, &endpoint))
            .await
    }

    async fn redeliver(&self, endpoint: &str, event_id: i64, now: DateTime<Utc>) -> Result<()> {
        let endpoint = endpoint.to_string();
        self.writer
            .write(move |conn| webhooks::redeliver(conn, &endpoint, event_id, now))
            .await
    }

    async fn prune_jobs(&self, prune: &Prune) -> Result<u64> {
        let prune = prune.clone();
        self.writer
            .write(move |conn| {
                let state = prune.state.as_str();
                let mut kinds: Vec<String> = conn
                    .prepare_cached(sql!("job_prune"))
                    .and_then(|mut s| {
                        s.query_map(
                            rusqlite::params![state, micros(prune.finished_before), prune.limit],
                            |r| r.get(0),
                        )?
                        .collect()
                    })
                    .map_err(db_error)?;
                if let Some(keep) = prune.keep_newest {
                    let beyond: Vec<String> = conn
                        .prepare_cached(sql!("job_prune_beyond"))
                        .and_then(|mut s| {
                            s.query_map(rusqlite::params![state, keep as i64, prune.limit], |r| {
                                r.get(0)
                            })?
                            .collect()
                        })
                        .map_err(db_error)?;
                    kinds.extend(beyond);
                }
                let n = kinds.len();
                let mut outbox = Outbox::default();
                for kind in kinds {
                    outbox.pruned(prune.state, kind);
                }
                events::write(conn, outbox, prune.finished_before)?;
                conn.prepare_cached(sql!("batches_prune"))
                    .and_then(|mut s| s.execute(rusqlite::params![prune.limit]))
                    .map_err(db_error)?;
                Ok(n as u64)
            })
            .await
    }

    async fn prune_events(&self, before: DateTime<Utc>, limit: u32) -> Result<u64> {
        self.writer
            .write(move |conn| {
                let n = conn
                    .prepare_cached(sql!("event_prune"))
                    .and_then(|mut s| s.execute(rusqlite::params![micros(before), limit]))
                    .map_err(db_error)?;
                conn.prepare_cached(sql!("delivery_prune"))
                    .and_then(|mut s| s.execute(rusqlite::params![micros(before), limit]))
                    .map_err(db_error)?;
                Ok(n as u64)
            })
            .await
    }

    async fn schedules(&self) -> Result<Vec<ScheduleState>> {
        self.read(|conn| {
            conn.prepare_cached(sql!("schedules_all"))
                .and_then(|mut s| {
                    s.query_map([], |r| {
                        Ok(ScheduleState {
                            name: r.get(0)?,
                            paused: r.get(1)?,
                            covered_until: from_micros(r.get(2)?),
                            last_slot: r.get::<_, Option<i64>>(3)?.map(from_micros),
                            last_job_id: r.get(4)?,
                            last_error: r.get(5)?,
                        })
                    })?
                    .collect()
                })
                .map_err(db_error)
        })
        .await
    }

    async fn cover_schedule(
        &self,
        name: &str,
        until: DateTime<Utc>,
        run: Option<SlotRun>,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let name = name.to_string();
        self.writer
            .write(move |conn| {
                let ran = run.is_some();
                let (slot, job, error) = match run {
                    Some(r) => (Some(micros(r.slot)), r.job_id, r.error),
                    None => (None, None, None),
                };
                conn.prepare_cached(sql!("schedule_cover"))
                    .and_then(|mut s| {
                        s.execute(rusqlite::params![
                            name,
                            micros(until),
                            ran,
                            slot,
                            job,
                            error,
                            micros(now)
                        ])
                    })
                    .map_err(db_error)?;
                Ok(())
            })
            .await
    }

    async fn pause_schedule(&self, name: &str, paused: bool, now: DateTime<Utc>) -> Result<()> {
        let name = name.to_string();
        self.writer
            .write(move |conn| {
                conn.prepare_cached(sql!("schedule_pause"))
                    .and_then(|mut s| s.execute(rusqlite::params![name, paused, micros(now)]))
                    .map_err(db_error)?;
                Ok(())
            })
            .await
    }

    async fn events_end(&self) -> Result<i64> {
        self.read(events::last_id).await
    }

    /// Events are readable as they commit; this reports how many are new since the last call.
    async fn new_events(&self) -> Result<u64> {
        Ok(self.seen_events.up_to(self.read(events::last_id).await?))
    }
}
