//! genq's storage. [`Store`] is the one interface the engine and the API use; each backend
//! implements it in its own module with its SQL in `.sql` files beside it, and every backend
//! passes the same [`conformance`] suite.
//!
//! Stores *apply* transitions; they do not decide them. What follows a failed attempt is decided
//! by [`genq_core::machine`]; a store applies it fenced by state and lease token, so a worker that
//! lost its lease can never overwrite the job.

mod outbox;
pub mod postgres;
mod rules;
pub mod sqlite;

#[cfg(feature = "conformance")]
pub mod conformance;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use genq_core::{Batch, Job, JobError, JobState, LedgerEntry, Limits, User, UserDefaults};
use serde_json::Value;
use std::collections::BTreeMap;

pub use postgres::PgStore;
pub use sqlite::{SqliteStore, Synchronous};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("not found")]
    NotFound,
    /// The request does not fit the job's current state (cancel a finished job, retry a
    /// succeeded one).
    #[error("conflict: {0}")]
    Conflict(String),
    /// The database is not reachable or refused the operation.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// A broken invariant: a bug, never the caller's fault.
    #[error("internal store error: {0}")]
    Internal(String),
    /// A value the store refuses (an unknown limit key, a value out of range).
    #[error("invalid: {0}")]
    Invalid(String),
    /// An enqueue that does not fit a limit or the balance; nothing was written.
    #[error("rejected: {0:?}")]
    Rejected(Rejection),
}

/// Why an enqueue (or an admin retry) was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejection {
    BatchTooLarge {
        limit: i64,
        items: i64,
    },
    /// Unfinished jobs would exceed `batch_max_queued_per_user`.
    QueueLimit {
        limit: i64,
        current: i64,
    },
    /// The plan's daily limit is reached for the quota day.
    DailyLimit {
        limit: i64,
        used: i64,
    },
    InsufficientCredits {
        needed: i64,
        balance: i64,
    },
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Holds a node id for this process; released when dropped (or when the process dies).
pub struct NodeLock(#[allow(dead_code)] Box<dyn std::any::Any + Send + Sync>);

impl NodeLock {
    pub fn new(guard: impl std::any::Any + Send + Sync) -> NodeLock {
        NodeLock(Box::new(guard))
    }
}

impl std::fmt::Debug for NodeLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NodeLock")
    }
}

/// When a user is looked at: the quota day whose usage to report, what a user seen for the
/// first time gets, and the time of any entry written.
#[derive(Debug, Clone)]
pub struct UserCtx {
    pub day: String,
    pub defaults: UserDefaults,
    pub now: DateTime<Utc>,
}

/// Jobs to enqueue in one transaction: one job, or a batch (all or nothing).
#[derive(Debug, Clone)]
pub struct NewJobs {
    pub kind: String,
    pub user_id: String,
    /// One payload per job, in order (a batch's `copies` are already expanded).
    pub payloads: Vec<Value>,
    pub priority: i32,
    /// Not claimable before this time; `None` is "now".
    pub run_at: Option<DateTime<Utc>>,
    pub max_retries: u32,
    /// Cost per job.
    pub cost: i64,
    /// With `(user_id, idempotency_key)` already seen, nothing is written and the original
    /// jobs come back.
    pub idempotency_key: Option<String>,
    /// Whether to record the jobs as a batch with progress counts.
    pub as_batch: bool,
    pub now: DateTime<Utc>,
    /// The quota day of `now` in `quota.timezone`, e.g. `2026-11-23`.
    pub day: String,
    /// For a user seen for the first time.
    pub user_defaults: UserDefaults,
}

#[derive(Debug, Clone)]
pub struct Enqueued {
    pub batch: Option<Batch>,
    pub jobs: Vec<Job>,
    /// True when an idempotency key matched earlier jobs and nothing new was written.
    pub replayed: bool,
}

#[derive(Debug, Clone)]
pub struct ClaimRequest {
    /// Labels the leases, so a restarted process can take its old ones back.
    pub node_id: String,
    pub worker_id: String,
    /// Claim only these kinds.
    pub kinds: Vec<String>,
    pub max: u32,
    pub lease_until: DateTime<Utc>,
    pub now: DateTime<Utc>,
}

/// A running attempt's identity: the fence for every write about it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct LeaseRef {
    pub job_id: String,
    pub token: String,
}

impl LeaseRef {
    /// The lease `job` holds (an empty token when it holds none, which no fence accepts).
    pub fn of(job: &Job) -> LeaseRef {
        LeaseRef {
            job_id: job.id.clone(),
            token: job
                .lease
                .as_ref()
                .map(|l| l.token.clone())
                .unwrap_or_default(),
        }
    }
}

/// A transition out of `running`, applied only if the lease still holds.
#[derive(Debug, Clone)]
pub struct Finish {
    pub lease: LeaseRef,
    /// Who pays for the job and how much: for the counters, the quota and a refund. These never
    /// change while the job runs, so the values read with the claim are current.
    pub owner: Owner,
    pub outcome: Outcome,
    /// Apply only if the lease expired before this time (the rescuer's fence: a heartbeat that
    /// renewed the lease in the meantime wins).
    pub only_if_expired_before: Option<DateTime<Utc>>,
    pub now: DateTime<Utc>,
}

/// What the bookkeeping of a job's transition needs: who pays and how much, and what its
/// event says (kind, batch, attempt).
#[derive(Debug, Clone)]
pub struct Owner {
    pub user_id: String,
    pub cost: i64,
    pub day: String,
    pub series: u32,
    pub kind: String,
    pub batch_id: Option<String>,
    pub attempt: u32,
}

impl Finish {
    /// A transition of the running attempt `job` holds (the job as claimed or read).
    pub fn new(job: &Job, outcome: Outcome, now: DateTime<Utc>) -> Finish {
        Finish {
            lease: LeaseRef::of(job),
            owner: rules::owner(job),
            outcome,
            only_if_expired_before: None,
            now,
        }
    }

    /// Apply only if the lease expired before `t` (the rescuer).
    pub fn if_expired_before(mut self, t: DateTime<Utc>) -> Finish {
        self.only_if_expired_before = Some(t);
        self
    }
}

#[derive(Debug, Clone)]
pub enum Outcome {
    Succeeded {
        result: Value,
    },
    Retry {
        run_at: DateTime<Utc>,
        error: Option<JobError>,
        uses_retry: bool,
        rate_limit_wait: bool,
    },
    Failed {
        error: JobError,
    },
    Canceled {
        error: JobError,
    },
    /// Stay `running` without a worker: the attempt waits for the provider task `task_id`,
    /// polled again at `poll_at` by whoever claims it then ([`Store::claim_polls`]).
    Parked {
        task_id: String,
        poll_at: DateTime<Utc>,
    },
}

impl Outcome {
    pub fn state(&self) -> JobState {
        match self {
            Outcome::Succeeded { .. } => JobState::Succeeded,
            Outcome::Retry { .. } => JobState::Retrying,
            Outcome::Failed { .. } => JobState::Failed,
            Outcome::Canceled { .. } => JobState::Canceled,
            Outcome::Parked { .. } => JobState::Running,
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct JobFilter {
    pub user_id: Option<String>,
    pub state: Option<JobState>,
    pub kind: Option<String>,
    pub batch_id: Option<String>,
}

/// One page of `jobs`, newest first.
#[derive(Debug, Clone)]
pub struct JobQuery {
    pub filter: JobFilter,
    /// Only jobs older than this id: the previous page's `next_before`.
    pub before: Option<String>,
    /// Most jobs on the page.
    pub limit: u32,
    /// The page ends before the job that would take its payloads and results past this many
    /// bytes; it always holds at least one job.
    pub max_bytes: usize,
}

impl JobQuery {
    /// The newest `limit` jobs that pass `filter`, however large.
    pub fn newest(filter: JobFilter, limit: u32) -> JobQuery {
        JobQuery {
            filter,
            before: None,
            limit,
            max_bytes: usize::MAX,
        }
    }
}

/// A batch as a list of batches shows it: its progress from its count of unfinished jobs,
/// without counting its jobs by state.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchSummary {
    pub id: String,
    pub user_id: String,
    pub kind: String,
    pub total: u32,
    pub unfinished: u32,
    pub created_at: DateTime<Utc>,
    /// When its last job finished.
    pub completed_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone)]
pub struct Page {
    pub jobs: Vec<Job>,
    /// The id to pass as `before` for the next page, if there may be one.
    pub next_before: Option<String>,
}

/// Parked task jobs taken for a poll, and when the next one not yet due will be.
#[derive(Debug, Clone, Default)]
pub struct Polls {
    pub jobs: Vec<Job>,
    pub next_due: Option<DateTime<Utc>>,
}

/// The result of moving due delayed and retrying jobs into the claimable set.
#[derive(Debug, Clone, Default)]
pub struct Staged {
    pub staged: u32,
    /// When the next not-yet-due job becomes due.
    pub next_due: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Stats {
    pub by_state: BTreeMap<JobState, u64>,
    pub by_kind: BTreeMap<String, BTreeMap<JobState, u64>>,
    /// Jobs that reached a final state in the last minute and hour (to the second), tallied as
    /// each job finishes: a job pruned or retried since still counts.
    pub finished_last_minute: u64,
    pub finished_last_hour: u64,
    /// Jobs that reached a final state in each of the last 60 minutes, oldest first; the last
    /// is the minute `now` is in.
    pub finished_per_minute: Vec<FinishedMinute>,
    /// Jobs that failed in the last hour, by error class.
    pub failed_last_hour_by_class: BTreeMap<String, u64>,
    /// How long the oldest claimable job has been due.
    pub oldest_claimable_age_ms: Option<i64>,
    /// Running jobs whose lease has expired (not yet rescued).
    pub past_lease: u64,
}

/// A process running an engine on the database, as it last said it was alive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeSeen {
    pub node_id: String,
    pub pid: u32,
    pub version: String,
    /// Its worker slots.
    pub concurrency: u32,
    pub started_at: DateTime<Utc>,
    pub seen_at: DateTime<Utc>,
}

/// How long a node not seen is remembered.
pub const NODE_FORGOTTEN_AFTER: chrono::Duration = chrono::Duration::days(1);

/// One minute of [`Stats::finished_per_minute`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FinishedMinute {
    /// Its first instant.
    pub start: DateTime<Utc>,
    pub succeeded: u64,
    pub failed: u64,
    pub canceled: u64,
}

/// Which events a reader wants; empty fields take all.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EventFilter {
    pub user_id: Option<String>,
    pub batch_id: Option<String>,
    pub types: Vec<genq_core::event::EventType>,
}

/// One step of the pruner for jobs of one final state: up to `limit` of them that finished
/// before `finished_before`, or beyond the newest `keep_newest`.
#[derive(Debug, Clone, PartialEq)]
pub struct Prune {
    pub state: JobState,
    pub finished_before: DateTime<Utc>,
    pub keep_newest: Option<u64>,
    pub limit: u32,
}

/// A schedule as the database keeps it.
#[derive(Debug, Clone, PartialEq)]
pub struct ScheduleState {
    pub name: String,
    pub paused: bool,
    /// Slots up to this time are done: run, skipped while paused, or from before the schedule
    /// was first seen.
    pub covered_until: DateTime<Utc>,
    /// The last slot that made (or tried to make) a job.
    pub last_slot: Option<DateTime<Utc>>,
    pub last_job_id: Option<String>,
    /// Why the last slot's job was refused (a limit, the balance).
    pub last_error: Option<String>,
}

/// What one slot of a schedule made.
#[derive(Debug, Clone, PartialEq)]
pub struct SlotRun {
    pub slot: DateTime<Utc>,
    pub job_id: Option<String>,
    pub error: Option<String>,
}

/// What `genq doctor` checks of a database.
#[derive(Debug, Clone, PartialEq)]
pub struct SchemaStatus {
    /// Migrations applied to the database.
    pub applied: u32,
    /// Migrations this build knows.
    pub known: u32,
    /// The database server's clock (PostgreSQL); `None` for an embedded database.
    pub server_time: Option<DateTime<Utc>>,
}

/// Which events a webhook endpoint receives; empty lists take all.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DeliveryFilter {
    pub types: Vec<genq_core::event::EventType>,
    /// Kinds of jobs (and batches).
    pub kinds: Vec<String>,
}

impl DeliveryFilter {
    pub fn wants(&self, event: &genq_core::event::Event) -> bool {
        (self.types.is_empty() || self.types.contains(&event.kind))
            && (self.kinds.is_empty() || self.kinds.contains(&event.job_kind))
    }
}

/// How a delivery is ordered: `(order_key, batch)`. Events of one job go out in order (their
/// key is the job); a batch's event waits for every earlier event of its jobs, so
/// `batch.completed` never overtakes a `job.succeeded` of the same batch. `batch` is the batch
/// of a job event, the key that batch's own event waits on.
pub fn delivery_order(event: &genq_core::event::Event) -> (&str, Option<&str>) {
    match (&event.job_id, &event.batch_id) {
        (Some(job), batch) => (job, batch.as_deref()),
        (None, Some(batch)) => (batch, None),
        (None, None) => ("", None),
    }
}

/// A delivery a notifier took: the event to send, and the lease that fences its outcome.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    pub id: i64,
    pub token: String,
    /// This attempt's number (1 for the first).
    pub attempt: u32,
    /// When the event was first due here: deliveries are retried for a day from then.
    pub first_due_at: DateTime<Utc>,
    pub event: genq_core::event::Event,
}

/// How a delivery attempt went.
#[derive(Debug, Clone, PartialEq)]
pub enum DeliveryOutcome {
    /// The endpoint answered 2xx.
    Delivered { status: u16 },
    /// Any other answer, or none; tried again at `retry_at`, or given up (dead) without one.
    Failed {
        status: Option<u16>,
        error: String,
        retry_at: Option<DateTime<Utc>>,
    },
}

/// What `GET /v1/admin/webhooks` shows of one endpoint.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WebhookStatus {
    /// Deliveries not yet made (waiting, retrying or in flight).
    pub backlog: u64,
    /// Deliveries given up after a day of retries.
    pub dead: u64,
    pub last_success_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    pub last_error_at: Option<DateTime<Utc>>,
    /// The dead deliveries' event ids, newest first (at most 100), for a redelivery.
    pub dead_events: Vec<i64>,
}

/// A hint from another process sharing the database: something it did may concern this one.
/// Hints can be lost (a dropped connection); every service also polls.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Signal {
    /// New claimable work.
    Work,
    /// New delayed work or retries: the scheduler may need to wake sooner.
    Delayed,
    /// The runtime limits changed.
    Limits,
    /// A job was canceled: stop its attempt if it runs here.
    Canceled(String),
    /// Hints may have been lost (the channel reconnected): look at everything again.
    Resync,
}

/// A move of a shared rate budget (a GCRA bucket; see genq-engine's `providers::pace`), in
/// microseconds of the budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BudgetOp {
    /// Take this much, starting when what is already taken is spent; the answer says how long
    /// until then.
    Reserve(i64),
    /// Give back (negative) or take more (positive) of an earlier reservation.
    Adjust(i64),
    /// Nothing more for this long from now.
    Hold(i64),
}

/// What the processes sharing one database coordinate through it (PostgreSQL): hints, and the
/// provider rate budgets and concurrency slots they spend together. A store offers it or not
/// ([`Store::coordination`]); an engine on a store without it is the only process of its
/// cluster and keeps budgets and slots in memory.
#[async_trait]
pub trait Coordination: Send + Sync {
    /// Hints from other processes sharing the database, for as long as the store lives; `None`
    /// if hints are turned off for this store.
    async fn listen(&self) -> Result<Option<tokio::sync::mpsc::UnboundedReceiver<Signal>>>;

    /// Move a provider rate budget that every process spends; for a reservation, how long
    /// until its turn.
    async fn budget(&self, name: &str, op: BudgetOp) -> Result<std::time::Duration>;

    /// Take (or renew) one of `max` slots of `name` for `holder`, for `ttl` unless freed
    /// sooner: a provider's `max_concurrent` held across processes. Whether it was taken.
    async fn take_slot(
        &self,
        name: &str,
        holder: &str,
        max: u32,
        ttl: std::time::Duration,
    ) -> Result<bool>;

    /// Give back a slot taken with [`Coordination::take_slot`].
    async fn free_slot(&self, name: &str, holder: &str) -> Result<()>;

    /// How many slots of `name` are held.
    async fn slots_in_use(&self, name: &str) -> Result<u32>;
}

/// The storage interface: verbs named for what they do to jobs.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Apply migrations; safe to call from several processes at once.
    async fn migrate(&self) -> Result<()>;

    /// Answer whether the database is reachable (`/readyz`).
    async fn ping(&self) -> Result<()>;

    /// The schema's migrations and the database's clock (`genq doctor`).
    async fn schema(&self) -> Result<SchemaStatus>;

    /// How processes sharing this database coordinate through it; `None` for a database one
    /// process serves (SQLite), which keeps its budgets and slots in memory.
    fn coordination(&self) -> Option<std::sync::Arc<dyn Coordination>> {
        None
    }

    /// Hold `node_id` for as long as the returned guard lives, if no other live process holds
    /// it; `None` if one does. A process takes back the leases of its node id at start, so two
    /// live processes must never share one.
    async fn lock_node(&self, node_id: &str) -> Result<Option<NodeLock>>;

    /// Insert jobs (and their batch) in one transaction, or replay an idempotent request.
    async fn enqueue(&self, jobs: NewJobs) -> Result<Enqueued>;

    /// Claim up to `max` claimable jobs of the given kinds, fairly (SPEC §4): highest priority
    /// first, then round-robin across users, FIFO within a user. Each comes back `running` with
    /// a fresh lease. No job is ever held by two claims at once.
    async fn claim(&self, request: ClaimRequest) -> Result<Vec<Job>>;

    /// Renew leases; returns the ones renewed. A lease not renewed is lost (canceled, rescued or
    /// finished): its worker must stop.
    async fn heartbeat(
        &self,
        leases: &[LeaseRef],
        lease_until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<Vec<LeaseRef>>;

    /// Apply transitions out of `running` (or park the attempt, [`Outcome::Parked`]); each
    /// result says whether its fence held.
    async fn finish(&self, finishes: Vec<Finish>) -> Result<Vec<bool>>;

    /// Take up to `max` parked task jobs of the given kinds whose poll is due, each with a fresh
    /// lease (the attempt number stays), oldest due first; and when the next poll falls due.
    async fn claim_polls(&self, request: ClaimRequest) -> Result<Polls>;

    /// Up to `limit` running jobs whose lease expired before `before`, soonest expired first
    /// (the rescuer's). Parked task jobs are not among them: they are never stuck, only
    /// waiting for their next poll.
    async fn expired_leases(&self, before: DateTime<Utc>, limit: u32) -> Result<Vec<Job>>;

    /// Up to `limit` running jobs leased by `node_id` (not parked task jobs): what a process
    /// restarted under that node id takes back.
    async fn node_leases(&self, node_id: &str, limit: u32) -> Result<Vec<Job>>;

    /// Make due delayed and retrying jobs claimable.
    async fn stage_due(&self, now: DateTime<Utc>, limit: u32) -> Result<Staged>;

    /// Cancel a job that is not finished. `Conflict` if it is.
    async fn cancel(&self, job_id: &str, now: DateTime<Utc>) -> Result<Job>;

    /// An operator's retry: re-queue a `failed` or `canceled` job with a fresh retry budget
    /// (and a new debit). `Conflict` otherwise.
    async fn admin_retry(&self, job_id: &str, now: DateTime<Utc>) -> Result<Job>;

    async fn job(&self, job_id: &str) -> Result<Job>;

    /// Jobs newest first, strictly older than `before` (an id) when given.
    async fn jobs(&self, query: &JobQuery) -> Result<Page>;

    /// The ids of at most `at_most` jobs matching `filter`, newest first: what a bulk action
    /// of the dashboard acts on.
    async fn job_ids(&self, filter: &JobFilter, at_most: u32) -> Result<Vec<String>>;

    async fn batch(&self, batch_id: &str) -> Result<Batch>;

    /// At most `limit` batches newest first, strictly older than `before` (an id) when given.
    async fn batches(&self, before: Option<&str>, limit: u32) -> Result<Vec<BatchSummary>>;

    /// The ids of a batch's jobs, in submission order.
    async fn batch_job_ids(&self, batch_id: &str) -> Result<Vec<String>>;

    async fn stats(&self, now: DateTime<Utc>) -> Result<Stats>;

    /// A process says it is alive (`node.seen_at` is now); nodes silent for
    /// [`NODE_FORGOTTEN_AFTER`] are forgotten.
    async fn node_seen(&self, node: &NodeSeen) -> Result<()>;

    /// The nodes seen since `since`, in id order.
    async fn nodes(&self, since: DateTime<Utc>) -> Result<Vec<NodeSeen>>;

    /// The limits in force (stored values over defaults).
    async fn limits(&self) -> Result<Limits>;

    /// Store one limit; `Invalid` for an unknown key or a value out of range.
    async fn set_limit(&self, key: &str, value: i64, now: DateTime<Utc>) -> Result<Limits>;

    /// A user with its usage on `day`; `NotFound` for a user never seen. Reads write nothing:
    /// users are created by the writes that need them (an enqueue, a plan, credits).
    async fn user(&self, user_id: &str, day: &str) -> Result<User>;

    /// At most `limit` users in id order after `after` (`""` for the first page), with their
    /// counts; `used_today` is not filled.
    async fn users(&self, after: &str, limit: u32) -> Result<Vec<User>>;

    async fn set_plan(&self, user_id: &str, plan: &str, ctx: &UserCtx) -> Result<User>;

    /// A `grant` (delta > 0) or `adjust` (delta < 0) entry; `Conflict` if the balance would go
    /// below zero.
    async fn add_credits(
        &self,
        user_id: &str,
        delta: i64,
        reason: &str,
        ctx: &UserCtx,
    ) -> Result<User>;

    /// Ledger entries newest first, older than the entry id `before`; with the id to pass for
    /// the next page.
    async fn ledger(
        &self,
        user_id: &str,
        before: Option<i64>,
        limit: u32,
    ) -> Result<(Vec<LedgerEntry>, Option<i64>)>;

    /// A job's own ledger entries (its debit, refunds), oldest first.
    async fn job_ledger(&self, job_id: &str) -> Result<Vec<LedgerEntry>>;

    /// Up to `limit` events after `position` that pass `filter`, in position order: the order
    /// they became visible in, which keeps each job's events in their order.
    async fn events_after(
        &self,
        position: i64,
        filter: &EventFilter,
        limit: u32,
    ) -> Result<Vec<genq_core::event::Event>>;

    /// The position of the newest readable event (0 with none): where a reader that wants
    /// only what happens from now on starts.
    async fn events_end(&self) -> Result<i64>;

    /// How many events became readable by [`Store::events_after`] since the last call (events
    /// are readable as they commit).
    async fn new_events(&self) -> Result<u64> {
        Ok(0)
    }

    /// Copy up to `limit` readable events `endpoint` has not been given yet and that pass
    /// `filter` into its deliveries, each once (an endpoint seen for the first time starts at
    /// the newest event); how many were copied.
    async fn fan_out(
        &self,
        endpoint: &str,
        filter: &DeliveryFilter,
        limit: u32,
        now: DateTime<Utc>,
    ) -> Result<u64>;

    /// Lease up to `max` due deliveries of `endpoint`, oldest first, each the earliest
    /// undelivered one of its job (or batch): a later event waits for the earlier ones.
    async fn claim_deliveries(
        &self,
        endpoint: &str,
        max: u32,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
    ) -> Result<Vec<Delivery>>;

    /// Record a delivery attempt, fenced by its lease; whether the lease still held.
    async fn finish_delivery(
        &self,
        delivery: &Delivery,
        outcome: DeliveryOutcome,
        now: DateTime<Utc>,
    ) -> Result<bool>;

    async fn webhook_status(&self, endpoint: &str) -> Result<WebhookStatus>;

    /// Delete one step of old finished jobs (and batches left empty); how many jobs went.
    /// Ledger entries stay: money is history.
    async fn prune_jobs(&self, prune: &Prune) -> Result<u64>;

    /// Delete up to `limit` events older than `before` that every webhook endpoint has been
    /// given and no pending delivery names (never the newest event), and finished deliveries
    /// older than `before`; how many events went.
    async fn prune_events(&self, before: DateTime<Utc>, limit: u32) -> Result<u64>;

    /// Every schedule the database knows.
    async fn schedules(&self) -> Result<Vec<ScheduleState>>;

    /// `name` is covered up to `until` (never moving back), with what its slot made if it ran
    /// one; a schedule not known yet is added.
    async fn cover_schedule(
        &self,
        name: &str,
        until: DateTime<Utc>,
        run: Option<SlotRun>,
        now: DateTime<Utc>,
    ) -> Result<()>;

    /// Pause or resume `name`; a schedule not known yet is added, covered up to `now`.
    async fn pause_schedule(&self, name: &str, paused: bool, now: DateTime<Utc>) -> Result<()>;

    /// Deliver a dead event again, at once and with a fresh day of retries. `NotFound` if
    /// the endpoint has no dead delivery of that event.
    async fn redeliver(&self, endpoint: &str, event_id: i64, now: DateTime<Utc>) -> Result<()>;
}
