//! Prometheus metrics (SPEC §11). What this process did is counted where it happens (enqueues,
//! outcomes, rescues, money, provider requests, webhook deliveries); what the database holds
//! (jobs by state, backlog, jobs past their lease) and what the providers are doing now are read
//! when `/metrics` is scraped, so every process of a cluster shows the same store-derived
//! gauges. Labels are bounded by the config (kinds, providers, key labels, endpoints, classes,
//! states, statuses): never a user id or a job id.
//!
//! prometheus-client rather than the `metrics` facade: each engine owns its registry, so two
//! engines in one process (tests, `genq bench`) never mix their counts.

use crate::Shared;
use genq_core::{ErrorClass, Job, JobState};
use genq_store::{Enqueued, Finish, Outcome};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::{encode_eof, encode_registry};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

/// Every series name `/metrics` exports (histograms as `_bucket`, `_sum`, `_count`): what the
/// alert rules and the Grafana dashboard may name. `tests/prometheus.rs` checks both ways.
pub const SERIES: &[&str] = &[
    "genq_jobs_enqueued_total",
    "genq_jobs_finished_total",
    "genq_job_retries_total",
    "genq_lease_rescues_total",
    "genq_credits_debited_total",
    "genq_credits_refunded_total",
    "genq_attempt_duration_seconds_bucket",
    "genq_attempt_duration_seconds_sum",
    "genq_attempt_duration_seconds_count",
    "genq_queue_wait_seconds_bucket",
    "genq_queue_wait_seconds_sum",
    "genq_queue_wait_seconds_count",
    "genq_provider_requests_total",
    "genq_provider_budget_waits_total",
    "genq_webhook_deliveries_total",
    "genq_jobs",
    "genq_backlog",
    "genq_oldest_claimable_job_age_seconds",
    "genq_jobs_past_lease",
    "genq_webhook_backlog",
    "genq_webhook_dead",
    "genq_database_up",
    "genq_provider_key_state",
    "genq_provider_usable_keys",
    "genq_provider_in_flight",
    "genq_provider_tasks_in_flight",
    "genq_worker_slots",
    "genq_worker_slots_busy",
    "genq_build_info",
    "genq_process_start_time_seconds",
    "genq_process_resident_memory_bytes",
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabel {
    kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FinishedLabels {
    kind: String,
    state: &'static str,
    class: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ClassLabels {
    kind: String,
    class: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    provider: String,
    key: String,
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WaitLabels {
    provider: String,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DeliveryLabels {
    endpoint: String,
    result: &'static str,
}

/// Queue waits: from a millisecond (an idle queue) to an hour (a deep backlog).
const WAIT_BUCKETS: [f64; 16] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0, 60.0, 300.0, 900.0,
    3600.0,
];
/// Attempts: from a no-op to a ten-minute video.
const ATTEMPT_BUCKETS: [f64; 15] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 180.0, 600.0,
];

/// This process's counters and histograms.
pub struct Metrics {
    /// Off (`[metrics] enabled = false`): nothing is recorded and `/metrics` is not served.
    enabled: bool,
    registry: Registry,
    enqueued: Family<KindLabel, Counter>,
    finished: Family<FinishedLabels, Counter>,
    retries: Family<ClassLabels, Counter>,
    rescues: Counter,
    debited: Counter,
    refunded: Counter,
    attempt_duration: Histograms,
    queue_wait: Histograms,
    provider_requests: Family<RequestLabels, Counter>,
    budget_waits: Family<WaitLabels, Counter>,
    webhook_deliveries: Family<DeliveryLabels, Counter>,
    started_at: f64,
}

type Histograms = Family<KindLabel, Histogram, fn() -> Histogram>;

fn wait_histogram() -> Histogram {
    Histogram::new(WAIT_BUCKETS)
}

fn attempt_histogram() -> Histogram {
    Histogram::new(ATTEMPT_BUCKETS)
}

impl Metrics {
    pub fn new(enabled: bool) -> Metrics {
        let mut m = Metrics {
            enabled,
            registry: Registry::default(),
            enqueued: Family::default(),
            finished: Family::default(),
            retries: Family::default(),
            rescues: Counter::default(),
            debited: Counter::default(),
            refunded: Counter::default(),
            attempt_duration: Family::new_with_constructor(attempt_histogram),
            queue_wait: Family::new_with_constructor(wait_histogram),
            provider_requests: Family::default(),
            budget_waits: Family::default(),
            webhook_deliveries: Family::default(),
            started_at: chrono::Utc::now().timestamp_micros() as f64 / 1e6,
        };
        let r = &mut m.registry;
        r.register(
            "genq_jobs_enqueued",
            "Jobs this process accepted, by kind",
            m.enqueued.clone(),
        );
        r.register(
            "genq_jobs_finished",
            "Jobs this process moved to a final state (succeeded, failed, canceled), by kind and error class (none for a success)",
            m.finished.clone(),
        );
        r.register(
            "genq_job_retries",
            "Failed attempts this process scheduled for a retry, by kind and error class",
            m.retries.clone(),
        );
        r.register(
            "genq_lease_rescues",
            "Running jobs whose lease expired (a dead or hung worker) that this process took back",
            m.rescues.clone(),
        );
        r.register(
            "genq_credits_debited",
            "Credits this process debited (enqueues and admin retries)",
            m.debited.clone(),
        );
        r.register(
            "genq_credits_refunded",
            "Credits this process refunded (jobs that ended failed or canceled)",
            m.refunded.clone(),
        );
        r.register_with_unit(
            "genq_attempt_duration",
            "How long attempts run in this process's worker slots, by kind",
            prometheus_client::registry::Unit::Seconds,
            m.attempt_duration.clone(),
        );
        r.register_with_unit(
            "genq_queue_wait",
            "From when a job could start to when a worker of this process took it, by kind",
            prometheus_client::registry::Unit::Seconds,
            m.queue_wait.clone(),
        );
        r.register(
            "genq_provider_requests",
            "Requests to external providers, by provider, key label and HTTP status (error: no answer)",
            m.provider_requests.clone(),
        );
        r.register(
            "genq_provider_budget_waits",
            "Requests that waited for a rate budget: slept (a short wait) or requeued (a long one)",
            m.budget_waits.clone(),
        );
        r.register(
            "genq_webhook_deliveries",
            "Webhook delivery attempts, by endpoint and result (delivered, failed, dead)",
            m.webhook_deliveries.clone(),
        );
        m
    }

    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// New jobs were accepted (nothing for a replayed idempotency key).
    pub fn enqueued(&self, enqueued: &Enqueued) {
        if !self.enabled || enqueued.replayed {
            return;
        }
        for job in &enqueued.jobs {
            self.enqueued.get_or_create(&kind(&job.kind)).inc();
            self.debited.inc_by(job.cost.max(0) as u64);
        }
    }

    /// Transitions the store applied (`applied[i]` for `finishes[i]`).
    pub fn finished(&self, finishes: &[Finish], applied: &[bool]) {
        if !self.enabled {
            return;
        }
        for (f, _) in finishes.iter().zip(applied).filter(|(_, a)| **a) {
            let owner = &f.owner;
            match &f.outcome {
                Outcome::Succeeded { .. } => self.ended(&owner.kind, JobState::Succeeded, None, 0),
                Outcome::Failed { error } => {
                    self.ended(&owner.kind, JobState::Failed, Some(error.class), owner.cost)
                }
                Outcome::Canceled { error } => self.ended(
                    &owner.kind,
                    JobState::Canceled,
                    Some(error.class),
                    owner.cost,
                ),
                Outcome::Retry {
                    error: Some(error), ..
                } => {
                    self.retries
                        .get_or_create(&ClassLabels {
                            kind: owner.kind.clone(),
                            class: error.class.as_str(),
                        })
                        .inc();
                }
                // A hand-back at shutdown or a parked task attempt: nothing ended.
                Outcome::Retry { error: None, .. } | Outcome::Parked { .. } => {}
            }
        }
    }

    /// A job an admin or its application canceled (as the store returned it).
    pub fn canceled(&self, job: &Job) {
        if job.state == JobState::Canceled {
            self.ended(
                &job.kind,
                JobState::Canceled,
                job.error.as_ref().map(|e| e.class),
                job.cost,
            );
        }
    }

    /// An admin retry: the job's cost is debited again.
    pub fn retried_by_admin(&self, job: &Job) {
        if self.enabled {
            self.debited.inc_by(job.cost.max(0) as u64);
        }
    }

    fn ended(&self, kind: &str, state: JobState, class: Option<ErrorClass>, refund: i64) {
        if !self.enabled {
            return;
        }
        self.finished
            .get_or_create(&FinishedLabels {
                kind: kind.to_string(),
                state: state.as_str(),
                class: class.map_or("none", ErrorClass::as_str),
            })
            .inc();
        if state != JobState::Succeeded {
            self.refunded.inc_by(refund.max(0) as u64);
        }
    }

    pub fn rescued(&self, n: u64) {
        if self.enabled {
            self.rescues.inc_by(n);
        }
    }

    /// A worker of this process took `job`, due since its `run_at`.
    pub fn claimed(&self, job: &Job, now: chrono::DateTime<chrono::Utc>) {
        if self.enabled {
            let waited = (now - job.run_at).num_microseconds().unwrap_or(0).max(0);
            self.queue_wait
                .get_or_create(&kind(&job.kind))
                .observe(waited as f64 / 1e6);
        }
    }

    pub fn attempt_ran(&self, kind_: &str, took: Duration) {
        if self.enabled {
            self.attempt_duration
                .get_or_create(&kind(kind_))
                .observe(took.as_secs_f64());
        }
    }

    /// A request to a provider ended: its HTTP status, or `None` when no answer came.
    pub fn provider_request(&self, provider: &str, key: &str, status: Option<u16>) {
        if self.enabled {
            self.provider_requests
                .get_or_create(&RequestLabels {
                    provider: provider.to_string(),
                    key: key.to_string(),
                    status: status.map_or_else(|| "error".to_string(), |s| s.to_string()),
                })
                .inc();
        }
    }

    /// A request waited for its provider's rate budget: `requeued` when the wait was too
    /// long to hold a slot for.
    pub fn budget_wait(&self, provider: &str, requeued: bool) {
        if self.enabled {
            self.budget_waits
                .get_or_create(&WaitLabels {
                    provider: provider.to_string(),
                    outcome: if requeued { "requeued" } else { "slept" },
                })
                .inc();
        }
    }

    /// A webhook delivery attempt ended: `delivered`, `failed` (retried later) or `dead`.
    pub fn delivery(&self, endpoint: &str, result: &'static str) {
        if self.enabled {
            self.webhook_deliveries
                .get_or_create(&DeliveryLabels {
                    endpoint: endpoint.to_string(),
                    result,
                })
                .inc();
        }
    }
}

fn kind(kind: &str) -> KindLabel {
    KindLabel {
        kind: kind.to_string(),
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabel {
    state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ProviderLabel {
    provider: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KeyStateLabels {
    provider: String,
    key: String,
    state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EndpointLabel {
    endpoint: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: &'static str,
    commit: &'static str,
    node: String,
}

type FloatGauge = Gauge<f64, AtomicU64>;

/// The exposition: this process's counters, then gauges read now from the store, the
/// providers and the process.
pub(crate) async fn render(shared: &Shared) -> String {
    let now = shared.clock.now();
    let mut r = Registry::default();
    let gauge = |r: &mut Registry, name: &str, help: &str, value: i64| {
        let g: Gauge = Gauge::default();
        g.set(value);
        r.register(name, help, g);
    };

    let store_up = match shared.store.stats(now).await {
        Ok(stats) => {
            let jobs = Family::<StateLabel, Gauge>::default();
            for state in JobState::ALL {
                let n = stats.by_state.get(&state).copied().unwrap_or(0);
                jobs.get_or_create(&StateLabel {
                    state: state.as_str(),
                })
                .set(n as i64);
            }
            r.register("genq_jobs", "Jobs in the store, by state", jobs);
            let backlog = Family::<KindLabel, Gauge>::default();
            for k in shared.kinds.keys() {
                let by = stats.by_kind.get(k);
                let n = [JobState::Queued, JobState::Retrying]
                    .iter()
                    .map(|s| by.and_then(|b| b.get(s)).copied().unwrap_or(0))
                    .sum::<u64>();
                backlog.get_or_create(&kind(k)).set(n as i64);
            }
            r.register(
                "genq_backlog",
                "Jobs waiting to run (queued or retrying), by kind",
                backlog,
            );
            let oldest = FloatGauge::default();
            oldest.set(stats.oldest_claimable_age_ms.unwrap_or(0).max(0) as f64 / 1e3);
            r.register_with_unit(
                "genq_oldest_claimable_job_age",
                "How long the oldest claimable job has been waiting (0: none waits)",
                prometheus_client::registry::Unit::Seconds,
                oldest,
            );
            gauge(
                &mut r,
                "genq_jobs_past_lease",
                "Running jobs whose lease has expired and that nobody has taken back yet",
                stats.past_lease as i64,
            );
            true
        }
        Err(e) => {
            tracing::warn!(error = %e, "metrics: the store does not answer");
            false
        }
    };
    if store_up {
        let backlog = Family::<EndpointLabel, Gauge>::default();
        let dead = Family::<EndpointLabel, Gauge>::default();
        for hook in &shared.webhooks {
            if let Ok(status) = shared.store.webhook_status(&hook.key).await {
                let label = EndpointLabel {
                    endpoint: hook.id().to_string(),
                };
                backlog.get_or_create(&label).set(status.backlog as i64);
                dead.get_or_create(&label).set(status.dead as i64);
            }
        }
        r.register(
            "genq_webhook_backlog",
            "Events not yet delivered to an endpoint",
            backlog,
        );
        r.register(
            "genq_webhook_dead",
            "Events given up for an endpoint (redeliver them once it works)",
            dead,
        );
    }
    gauge(
        &mut r,
        "genq_database_up",
        "1 if the database answered this scrape",
        store_up as i64,
    );

    let key_states = Family::<KeyStateLabels, Gauge>::default();
    let usable = Family::<ProviderLabel, Gauge>::default();
    let in_flight = Family::<ProviderLabel, Gauge>::default();
    let tasks = Family::<ProviderLabel, Gauge>::default();
    for view in shared.providers.views().await {
        let provider = ProviderLabel {
            provider: view.name.clone(),
        };
        for key in &view.keys {
            for state in ["ok", "cooling", "disabled"] {
                key_states
                    .get_or_create(&KeyStateLabels {
                        provider: view.name.clone(),
                        key: key.label.clone(),
                        state,
                    })
                    .set((key.state == state) as i64);
            }
        }
        let n = view.keys.iter().filter(|k| k.state == "ok").count();
        usable.get_or_create(&provider).set(n as i64);
        in_flight
            .get_or_create(&provider)
            .set(view.in_flight as i64);
        if let Some(t) = view.tasks_in_flight {
            tasks.get_or_create(&provider).set(t as i64);
        }
    }
    r.register(
        "genq_provider_key_state",
        "1 for each key's state: ok, cooling (rate limited) or disabled (billing)",
        key_states,
    );
    r.register(
        "genq_provider_usable_keys",
        "Keys of a provider that may be used now",
        usable,
    );
    r.register(
        "genq_provider_in_flight",
        "Requests to a provider in flight from this process",
        in_flight,
    );
    r.register(
        "genq_provider_tasks_in_flight",
        "Tasks of a task provider started and not yet finished (across processes)",
        tasks,
    );

    gauge(
        &mut r,
        "genq_worker_slots",
        "This process's worker slots (worker.concurrency)",
        shared.settings.concurrency as i64,
    );
    gauge(
        &mut r,
        "genq_worker_slots_busy",
        "Worker slots running an attempt now",
        shared.active.running() as i64,
    );
    r.register(
        "genq_build",
        "genq's version, commit and node id",
        Info::new(BuildLabels {
            version: crate::VERSION,
            commit: crate::COMMIT,
            node: shared.settings.node_id.clone(),
        }),
    );
    let started = FloatGauge::default();
    started.set(shared.metrics.started_at);
    r.register_with_unit(
        "genq_process_start_time",
        "When this process started (Unix time)",
        prometheus_client::registry::Unit::Seconds,
        started,
    );
    if let Some(rss) = resident_bytes() {
        gauge(
            &mut r,
            "genq_process_resident_memory_bytes",
            "This process's resident memory",
            rss,
        );
    }

    let mut text = String::new();
    // Writing to a String cannot fail.
    let _ = encode_registry(&mut text, &shared.metrics.registry);
    let _ = encode_registry(&mut text, &r);
    let _ = encode_eof(&mut text);
    text
}

/// Resident memory from /proc (Linux); none elsewhere.
fn resident_bytes() -> Option<i64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: i64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}
