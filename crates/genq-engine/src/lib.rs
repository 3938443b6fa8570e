//! genq's engine: everything that moves jobs without an HTTP request.
//!
//! - [`worker_pool`]: claims jobs fairly in batches, runs attempts under `worker.concurrency`
//!   slots with per-kind timeouts, and records their outcomes in batches.
//! - [`heartbeat`]: renews the leases of running attempts; a lost lease stops its attempt.
//! - [`rescuer`]: moves jobs whose lease expired (a dead or hung worker) back to `retrying`.
//! - [`scheduler`]: makes delayed jobs and retries claimable when their time comes.
//! - [`limits`]: keeps this process's copy of the runtime limits fresh.
//! - [`signals`]: hints from other processes on the same database (PostgreSQL NOTIFY).
//! - [`notifier`]: makes events readable and delivers them to the configured webhooks.
//! - [`cron`]: makes each `[[schedules]]` job once per slot.
//! - [`pruner`]: deletes old finished jobs and delivered events (`[retention]`).
//! - [`metrics`]: what this process did and what the store holds, for Prometheus.
//! - [`providers`]: what runs an attempt (the in-process `demo` provider today).
//!
//! The path of one job: the API enqueues it and calls [`Engine::wake`]; the worker pool claims
//! it (lease taken), a provider runs it, the pool's completer applies the outcome decided by
//! `genq_core::machine`, fenced by the lease token.

pub mod cron;
pub mod handler;
pub mod heartbeat;
pub mod limits;
pub mod metrics;
pub mod notifier;
pub mod providers;
pub mod pruner;
pub mod rescuer;
pub mod scheduler;
pub mod signals;
pub mod worker_pool;

use genq_config::Config;
use genq_core::{Clock, ErrorClass, Limits, RetryPolicy, SystemClock};
use genq_store::Store;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use handler::{Attempt, Handler, Reply};
pub use worker_pool::ActiveAttempts;

/// genq's version and the commit it was built from.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
pub const COMMIT: &str = env!("GENQ_GIT_COMMIT");

/// A provider or kind that cannot be set up from the config.
#[derive(Debug, thiserror::Error)]
#[error("{key}: {message}")]
pub struct SetupError {
    pub key: String,
    pub message: String,
}

/// How one kind runs.
#[derive(Clone)]
pub struct KindRuntime {
    pub policy: RetryPolicy,
    pub timeout: Duration,
    /// `None` for external kinds: run by external workers through the claim API.
    pub handler: Option<Arc<dyn Handler>>,
}

#[derive(Debug, Clone)]
pub struct EngineSettings {
    pub node_id: String,
    pub concurrency: u32,
    pub claim_batch: u32,
    pub lease: Duration,
    pub heartbeat: Duration,
    pub poll_interval: Duration,
    pub shutdown_grace: Duration,
    /// Record metrics (`[metrics] enabled`).
    pub metrics: bool,
}

impl EngineSettings {
    pub fn from_config(config: &Config) -> Self {
        let w = &config.worker;
        EngineSettings {
            node_id: config.node_id(),
            concurrency: w.concurrency,
            claim_batch: w.claim_batch,
            lease: w.lease,
            heartbeat: w.heartbeat,
            poll_interval: w.poll_interval,
            shutdown_grace: w.shutdown_grace,
            metrics: config.metrics.enabled,
        }
    }
}

/// Most processes that may share one base node id (one host and database).
const NODE_SLOTS: u32 = 64;

/// The node id this process runs as: `<base>#<n>` for the first `n` no live process holds.
/// A process that restarts after a crash gets its old slot back (the kernel released its lock)
/// and with it takes back its old leases at once, while a second process on the same host and
/// database gets a slot of its own and never touches the first one's leases.
pub async fn acquire_node_id(
    store: &dyn Store,
    base: &str,
) -> Result<(String, genq_store::NodeLock), SetupError> {
    for slot in 1..=NODE_SLOTS {
        let node_id = format!("{base}#{slot}");
        let lock = store.lock_node(&node_id).await.map_err(|e| SetupError {
            key: "worker.node_id".into(),
            message: e.to_string(),
        })?;
        if let Some(lock) = lock {
            return Ok((node_id, lock));
        }
    }
    Err(SetupError {
        key: "worker.node_id".into(),
        message: format!("all {NODE_SLOTS} node slots of {base:?} are held by running processes"),
    })
}

/// Counters of what this process's engine did; read by `genq bench` and metrics.
#[derive(Debug, Default)]
pub struct EngineCounters {
    pub claimed: AtomicU64,
    pub succeeded: AtomicU64,
    pub retried: AtomicU64,
    pub failed: AtomicU64,
    pub canceled: AtomicU64,
    /// Outcomes fenced out: the lease was lost before the attempt reported.
    pub fenced: AtomicU64,
    pub rescued: AtomicU64,
    pub released: AtomicU64,
    /// Attempts parked to wait for their provider task.
    pub parked: AtomicU64,
}

impl EngineCounters {
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}

/// Wake-ups: a hint that work may be there, never the only way it is found (a fallback poll
/// always runs).
#[derive(Default)]
pub struct Wake {
    /// The worker pool's claim loop.
    pub(crate) pool: Notify,
    /// The scheduler: a delayed job or a retry may now be due sooner than it planned.
    pub(crate) scheduler: Notify,
    /// Long-polling external claims.
    pub(crate) claims: Notify,
    /// Readers of events (SSE streams, the notifier): new events are readable.
    pub(crate) events: Notify,
    /// The cron service: a schedule was paused or resumed here, or the clock was moved.
    pub(crate) cron: Notify,
}

impl Wake {
    /// New claimable work.
    pub fn work(&self) {
        self.pool.notify_one();
        self.claims.notify_waiters();
    }

    /// New delayed work.
    pub fn delayed(&self) {
        self.scheduler.notify_one();
    }

    /// Look at the schedules now (a pause or resume, a test's clock moved).
    pub fn schedules(&self) {
        self.cron.notify_one();
    }

    /// New events are readable.
    pub fn events_published(&self) {
        self.events.notify_waiters();
    }

    /// Wait until new events may be readable; create the future before reading, as for
    /// [`Wake::claims`].
    pub fn events(&self) -> tokio::sync::futures::Notified<'_> {
        self.events.notified()
    }

    /// Wait until new claimable work may be there (for long-polling external claims). Create
    /// the future before checking for work, so that a wake between the check and the wait
    /// is not lost.
    pub fn claims(&self) -> tokio::sync::futures::Notified<'_> {
        self.claims.notified()
    }
}

/// The span of the log lines about one job: its id, kind, user and attempt as fields.
pub fn job_span(job_id: &str, kind: &str, user_id: &str, attempt: u32) -> tracing::Span {
    tracing::info_span!("job", job_id, kind, user_id, attempt)
}

/// Kinds the worker pool may claim now.
#[derive(Debug, Default)]
pub struct Claimable {
    /// Kinds with no bound on how many attempts may start.
    pub unbounded: Vec<String>,
    /// Kinds whose provider has room for only so many more (see `Handler::room`).
    pub bounded: Vec<String>,
    /// Some kinds cannot start anything now; this long until one may.
    pub blocked_for: Option<Duration>,
}

/// State shared by the engine's services.
pub struct Shared {
    pub store: Arc<dyn Store>,
    pub clock: Arc<dyn Clock>,
    pub settings: EngineSettings,
    pub kinds: HashMap<String, KindRuntime>,
    pub wake: Wake,
    pub counters: EngineCounters,
    pub metrics: Arc<metrics::Metrics>,
    pub active: ActiveAttempts,
    /// The runtime limits, as last read from the database (see `limits`).
    pub limits: std::sync::RwLock<Limits>,
    /// External providers: key states, budgets, in-flight counts.
    pub providers: Arc<providers::Providers>,
    /// When the next parked task job is due for a poll, as far as this process knows.
    pub(crate) next_poll: std::sync::Mutex<Option<chrono::DateTime<chrono::Utc>>>,
    /// The configured webhook endpoints.
    pub webhooks: Vec<Arc<notifier::Endpoint>>,
    /// The configured schedules.
    pub schedules: Vec<Arc<cron::Scheduled>>,
    /// `[retention]`, applied by the pruner.
    pub retention: genq_config::Retention,
    /// How events show jobs and batches (set by the API crate, see [`Engine::set_render`]).
    pub render: std::sync::OnceLock<Arc<dyn notifier::Render>>,
}

impl Shared {
    pub fn policy(&self, kind: &str) -> RetryPolicy {
        self.kinds
            .get(kind)
            .map(|k| k.policy.clone())
            .unwrap_or_default()
    }

    /// What the worker pool may claim now: kinds this process runs in-process whose handler
    /// is not blocked (no usable key), split by whether their room is bounded.
    pub(crate) fn claimable_kinds(&self) -> Claimable {
        let mut c = Claimable::default();
        for (name, k) in &self.kinds {
            let Some(handler) = &k.handler else { continue };
            match handler.blocked_for() {
                None if handler.bounded() => c.bounded.push(name.clone()),
                None => c.unbounded.push(name.clone()),
                Some(wait) => c.blocked_for = Some(c.blocked_for.map_or(wait, |b| b.min(wait))),
            }
        }
        c.unbounded.sort();
        c.bounded.sort();
        c
    }

    /// How many more attempts of `kind` may start now.
    pub(crate) async fn room(&self, kind: &str) -> usize {
        match self.kinds.get(kind).and_then(|k| k.handler.as_ref()) {
            Some(h) => h.room().await.unwrap_or(usize::MAX),
            None => usize::MAX,
        }
    }

    /// Transitions the store applied (`applied[i]` for `finishes[i]`): counted in the metrics
    /// and logged, a line per job with the job's fields.
    pub fn record_outcomes(&self, finishes: &[genq_store::Finish], applied: &[bool]) {
        self.metrics.finished(finishes, applied);
        let debug = tracing::enabled!(tracing::Level::DEBUG);
        for (f, _) in finishes.iter().zip(applied).filter(|(_, a)| **a) {
            // Successes, parked polls and waits for a rate budget are debug lines: at info,
            // not even their span is made (spans cost).
            // So are hand-backs (a retry without an error): at shutdown, the jobs of the local
            // queue go back by the hundred, and the pool logs one line for them all.
            let quiet = matches!(
                f.outcome,
                genq_store::Outcome::Succeeded { .. }
                    | genq_store::Outcome::Parked { .. }
                    | genq_store::Outcome::Retry {
                        rate_limit_wait: true,
                        ..
                    }
                    | genq_store::Outcome::Retry { error: None, .. }
            );
            if quiet && !debug {
                continue;
            }
            let o = &f.owner;
            let span = job_span(&f.lease.job_id, &o.kind, &o.user_id, o.attempt);
            let _in = span.enter();
            match &f.outcome {
                genq_store::Outcome::Succeeded { .. } => tracing::debug!("job succeeded"),
                genq_store::Outcome::Retry {
                    rate_limit_wait: true,
                    run_at,
                    ..
                } => tracing::debug!(%run_at, "the job waits for its provider's rate budget"),
                genq_store::Outcome::Retry {
                    error: Some(e),
                    run_at,
                    ..
                } => {
                    tracing::info!(class = %e.class, %run_at, "attempt failed; the job will be retried")
                }
                genq_store::Outcome::Retry { error: None, .. } => {
                    tracing::info!("attempt handed back; the job is claimable again")
                }
                // An internal failure is genq's (or a handler's) fault: an error, which also
                // reaches Sentry when it is configured.
                genq_store::Outcome::Failed { error } if error.class == ErrorClass::Internal => {
                    tracing::error!(class = %error.class, detail = %error.detail, "job failed")
                }
                genq_store::Outcome::Failed { error } => {
                    tracing::warn!(class = %error.class, "job failed")
                }
                genq_store::Outcome::Canceled { error } => {
                    tracing::info!(class = %error.class, "job canceled")
                }
                genq_store::Outcome::Parked { poll_at, .. } => {
                    tracing::debug!(%poll_at, "attempt waits for its provider task")
                }
            }
        }
    }

    /// Running jobs taken back after their lease (the rescuer, or a restart taking its own):
    /// recorded like any outcome, counted as rescues, and the workers and scheduler woken for
    /// their retries. Returns how many the store applied.
    pub(crate) fn rescued(&self, finishes: &[genq_store::Finish], applied: &[bool]) -> usize {
        self.record_outcomes(finishes, applied);
        let taken = applied.iter().filter(|a| **a).count();
        self.metrics.rescued(taken as u64);
        self.counters
            .rescued
            .fetch_add(taken as u64, Ordering::Relaxed);
        if taken > 0 {
            self.wake.work();
            self.wake.delayed();
        }
        taken
    }

    /// Tell a job's handler that the pool took it (for its in-flight count).
    pub(crate) async fn claimed(&self, job: &genq_core::Job) {
        if let Some(h) = self.kinds.get(&job.kind).and_then(|k| k.handler.as_ref()) {
            h.claimed(&job.id).await;
        }
    }

    /// Kinds whose handler parks jobs between polls.
    pub fn polled_kinds(&self) -> Vec<String> {
        let mut kinds: Vec<String> = self
            .kinds
            .iter()
            .filter(|(_, k)| k.handler.as_ref().is_some_and(|h| h.parks()))
            .map(|(name, _)| name.clone())
            .collect();
        kinds.sort();
        kinds
    }

    /// Kinds this process runs in-process.
    pub fn local_kinds(&self) -> Vec<String> {
        let mut kinds: Vec<String> = self
            .kinds
            .iter()
            .filter(|(_, k)| k.handler.is_some())
            .map(|(name, _)| name.clone())
            .collect();
        kinds.sort();
        kinds
    }
}

/// The engine of one process. Cheap to clone.
#[derive(Clone)]
pub struct Engine {
    shared: Arc<Shared>,
}

impl Engine {
    pub fn new(
        store: Arc<dyn Store>,
        settings: EngineSettings,
        kinds: HashMap<String, KindRuntime>,
    ) -> Engine {
        Self::with_clock(store, settings, kinds, Arc::new(SystemClock))
    }

    pub fn with_clock(
        store: Arc<dyn Store>,
        settings: EngineSettings,
        kinds: HashMap<String, KindRuntime>,
        clock: Arc<dyn Clock>,
    ) -> Engine {
        let metrics = Arc::new(metrics::Metrics::new(settings.metrics));
        Self::assemble(
            store,
            settings,
            kinds,
            clock,
            Arc::new(providers::Providers::default()),
            metrics,
        )
    }

    fn assemble(
        store: Arc<dyn Store>,
        settings: EngineSettings,
        kinds: HashMap<String, KindRuntime>,
        clock: Arc<dyn Clock>,
        providers: Arc<providers::Providers>,
        metrics: Arc<metrics::Metrics>,
    ) -> Engine {
        Engine {
            shared: Arc::new(Shared {
                store,
                clock,
                settings,
                kinds,
                wake: Wake::default(),
                counters: EngineCounters::default(),
                metrics,
                active: ActiveAttempts::default(),
                limits: std::sync::RwLock::new(Limits::default()),
                providers,
                next_poll: std::sync::Mutex::new(None),
                webhooks: Vec::new(),
                schedules: Vec::new(),
                retention: genq_config::Retention::default(),
                render: std::sync::OnceLock::new(),
            }),
        }
    }

    /// The engine the config describes: its kinds, run by its providers, with rate budgets
    /// shared through the database if it can, else kept in this process.
    pub async fn from_config(
        store: Arc<dyn Store>,
        config: &Config,
        settings: EngineSettings,
    ) -> Result<Engine, SetupError> {
        Self::from_config_with_clock(store, config, settings, Arc::new(SystemClock)).await
    }

    /// The same, on `clock` (tests move it).
    pub async fn from_config_with_clock(
        store: Arc<dyn Store>,
        config: &Config,
        settings: EngineSettings,
        clock: Arc<dyn Clock>,
    ) -> Result<Engine, SetupError> {
        // Rate budgets and concurrency slots in the database when processes coordinate
        // through it, so that they hold across processes; in memory when this process is the
        // only one.
        let (budgets, slots): (
            Arc<dyn providers::pace::Budgets>,
            Arc<dyn providers::slots::Slots>,
        ) = match store.coordination() {
            Some(shared) => (
                Arc::new(providers::pace::StoreBudgets::new(shared.clone())),
                Arc::new(providers::slots::StoreSlots::new(shared)),
            ),
            None => (
                Arc::new(providers::pace::LocalBudgets::default()),
                Arc::new(providers::slots::LocalSlots::default()),
            ),
        };
        let metrics = Arc::new(metrics::Metrics::new(settings.metrics));
        let providers = providers::build(config, budgets, slots, metrics.clone())?;
        // Attempts are also bounded by `job_processing_timeout_seconds`, read at run time.
        let max = Duration::from_secs(24 * 3600);
        let kinds = config
            .kinds
            .iter()
            .map(|k| {
                let runtime = KindRuntime {
                    policy: k.retry_policy(),
                    timeout: k.timeout.unwrap_or(max).min(max),
                    handler: providers.handlers.get(&k.name).cloned(),
                };
                (k.name.clone(), runtime)
            })
            .collect();
        let webhooks = config
            .webhooks
            .iter()
            .enumerate()
            .map(|(i, hook)| {
                notifier::Endpoint::from_config(hook)
                    .map(Arc::new)
                    .map_err(|message| SetupError {
                        key: format!("webhooks[{i}]"),
                        message,
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let mut engine =
            Self::assemble(store, settings, kinds, clock, Arc::new(providers), metrics);
        let shared = Arc::get_mut(&mut engine.shared).expect("not shared yet");
        shared.webhooks = webhooks;
        shared.schedules = cron::Scheduled::from_config(config)?;
        shared.retention = config.retention.clone();
        Ok(engine)
    }

    /// How events show jobs and batches; set once, before [`Engine::run`] (the first call
    /// wins).
    pub fn set_render(&self, render: Arc<dyn notifier::Render>) {
        let _ = self.shared.render.set(render);
    }

    /// This process's metrics.
    pub fn metrics(&self) -> &Arc<metrics::Metrics> {
        &self.shared.metrics
    }

    /// The Prometheus exposition: this process's counters, and gauges read now from the store
    /// and the providers.
    pub async fn render_metrics(&self) -> String {
        metrics::render(&self.shared).await
    }

    /// The external providers: key states and counts for the admin API.
    pub fn providers(&self) -> &Arc<providers::Providers> {
        &self.shared.providers
    }

    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.shared.store
    }

    pub fn counters(&self) -> &EngineCounters {
        &self.shared.counters
    }

    pub fn wake(&self) -> &Wake {
        &self.shared.wake
    }

    /// Stop a locally running attempt of a job that was just canceled, without waiting for its
    /// next heartbeat.
    pub fn cancel_local(&self, job_id: &str) {
        self.shared.active.lose(job_id);
    }

    /// Limits just changed through this process: apply them now rather than at the next
    /// refresh (other processes pick them up within `limits::REFRESH`).
    pub fn limits_changed(&self, limits: Limits) {
        *self.shared.limits.write().unwrap() = limits;
    }

    /// Run the engine's services until `shutdown` fires; then stop claiming, let running
    /// attempts finish for `shutdown_grace`, hand the rest back, and return.
    ///
    /// `run_workers = false` runs only the maintenance services (rescuer, scheduler): a process
    /// that serves the API without in-process workers.
    pub async fn run(&self, shutdown: CancellationToken, run_workers: bool) {
        let services = TaskTracker::new();
        let stop_services = CancellationToken::new();
        if run_workers {
            worker_pool::take_back_own_leases(&self.shared).await;
        }
        services.spawn(rescuer::run(self.shared.clone(), stop_services.clone()));
        services.spawn(scheduler::run(self.shared.clone(), stop_services.clone()));
        limits::refresh(&self.shared).await;
        services.spawn(limits::run(self.shared.clone(), stop_services.clone()));
        services.spawn(signals::run(self.shared.clone(), stop_services.clone()));
        services.spawn(notifier::watch_events(
            self.shared.clone(),
            stop_services.clone(),
        ));
        services.spawn(cron::run(self.shared.clone(), stop_services.clone()));
        services.spawn(pruner::run(self.shared.clone(), stop_services.clone()));
        for endpoint in &self.shared.webhooks {
            services.spawn(notifier::deliver(
                self.shared.clone(),
                endpoint.clone(),
                stop_services.clone(),
            ));
        }
        if run_workers {
            services.spawn(heartbeat::run(self.shared.clone(), stop_services.clone()));
            worker_pool::run(self.shared.clone(), shutdown).await;
        } else {
            shutdown.cancelled().await;
        }
        stop_services.cancel();
        services.close();
        services.wait().await;
    }
}
