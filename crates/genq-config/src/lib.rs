//! genq's configuration (SPEC §9): one TOML file, every key optional, `GENQ_<SECTION>_<KEY>`
//! environment overrides, `env:NAME` secrets, and validation that names the key that is wrong.

mod defaults;
mod env;
mod validate;

use genq_core::{ErrorClass, Messages, RetryPolicy};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use defaults::{DEMO_KINDS, demo_kinds, demo_provider};

#[derive(Debug, thiserror::Error)]
#[error("{source_name}: {key}: {message}")]
pub struct ConfigError {
    /// The file (or "environment") the bad value came from.
    pub source_name: String,
    /// The dotted key, e.g. `worker.concurrency` or `kinds[2].provider`.
    pub key: String,
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Development,
    Production,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub mode: Mode,
    pub listen: SocketAddr,
    /// `sqlite://PATH` or `postgres://…`.
    pub database: String,
    pub auth: Auth,
    pub worker: Worker,
    pub users: Users,
    pub quota: Quota,
    pub retention: Retention,
    pub messages: BTreeMap<ErrorClass, String>,
    pub api: Api,
    pub metrics: Metrics,
    pub sentry: Sentry,
    pub sqlite: Sqlite,
    #[serde(default)]
    pub postgres: Postgres,
    pub providers: Vec<Provider>,
    pub kinds: Vec<Kind>,
    pub webhooks: Vec<Webhook>,
    pub schedules: Vec<Schedule>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Auth {
    pub admin_tokens: Vec<String>,
    pub app_tokens: Vec<String>,
    pub worker_tokens: Vec<String>,
    /// Read-only tokens for the dashboard: they see every page and change nothing.
    pub viewer_tokens: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Worker {
    /// Most attempts running at once in this process.
    pub concurrency: u32,
    /// How long a claim holds a job without a heartbeat.
    #[serde(with = "humantime_serde")]
    pub lease: Duration,
    /// How often running attempts renew their leases; well under `lease`.
    #[serde(with = "humantime_serde")]
    pub heartbeat: Duration,
    /// Identifies this process's leases across restarts. Default: host name plus database.
    pub node_id: Option<String>,
    /// Most jobs taken in one claim: the worker pool claims ahead of its free slots (see
    /// genq-engine's `worker_pool`) in claims of up to this many.
    pub claim_batch: u32,
    /// How often an idle worker looks for work it was not woken for (delayed jobs, other
    /// processes' enqueues).
    #[serde(with = "humantime_serde")]
    pub poll_interval: Duration,
    /// How long SIGTERM waits for running attempts before handing them back.
    #[serde(with = "humantime_serde")]
    pub shutdown_grace: Duration,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Users {
    pub default_plan: String,
    pub initial_credits: i64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Quota {
    pub timezone: String,
}

/// `[retention]`: how long finished jobs and delivered events are kept (the `pruner`). Ledger
/// entries are never pruned.
/// Error reporting to Sentry: off unless `dsn` is set.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Sentry {
    /// The project's DSN (`env:NAME` allowed).
    pub dsn: Option<String>,
    /// Sent with every event (`production`, `staging`); default: the config's `mode`.
    pub environment: Option<String>,
}

/// `GET /metrics` (Prometheus).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Metrics {
    /// Count and serve metrics; off, nothing is recorded and `/metrics` answers 404.
    pub enabled: bool,
    /// A bearer token a scraper must send (`env:NAME` allowed); none by default, as Prometheus
    /// scrapes usually run inside the network.
    pub token: Option<String>,
    /// Also serve `/metrics`, `/healthz` and `/readyz` here: how a `genq worker`, which has no
    /// API, is scraped (several workers on one machine need a port each).
    pub listen: Option<SocketAddr>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            enabled: true,
            token: None,
            listen: None,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Retention {
    pub succeeded: RetentionRule,
    pub failed: RetentionRule,
    pub canceled: RetentionRule,
    /// Events (and their webhook deliveries) once every endpoint has been given them.
    pub events: RetentionRule,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionRule {
    /// Older than this (since it finished, or since the event) goes.
    #[serde(with = "humantime_serde")]
    pub max_age: Duration,
    /// And beyond the newest this many goes, whatever its age (none by default).
    #[serde(default)]
    pub max_count: Option<u64>,
}

impl RetentionRule {
    fn days(days: u64) -> RetentionRule {
        RetentionRule {
            max_age: Duration::from_secs(days * 24 * 3600),
            max_count: None,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Api {
    /// Largest request body accepted; larger ones get 413 `payload_too_large`.
    pub max_body_bytes: usize,
    /// Longest `wait_ms` an external worker's claim may long-poll.
    #[serde(with = "humantime_serde")]
    pub max_claim_wait: Duration,
    /// Most connections open at once; further clients wait in the listen backlog.
    pub max_connections: usize,
    /// Longest wait for a request's headers, counted from the moment the connection opens or
    /// its previous response was sent: also how long an idle keep-alive connection stays open.
    #[serde(with = "humantime_serde")]
    pub header_timeout: Duration,
    /// Longest time to receive a request's whole body (408 `request_timeout` after it).
    #[serde(with = "humantime_serde")]
    pub body_timeout: Duration,
    /// About how many bytes of jobs one page of `GET /v1/jobs` holds: a page ends early (with
    /// a `next_cursor`) once its payloads and results reach this size; it always holds one job.
    pub list_page_bytes: usize,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Sqlite {
    /// `"full"`: every acknowledged write survives a power cut. `"normal"`: survives a process
    /// crash; a power cut may lose the last commits; faster.
    pub synchronous: SqliteSynchronous,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Postgres {
    /// LISTEN/NOTIFY wake-ups between processes. Turn off where NOTIFY does not reach;
    /// processes then find work by the fallback poll (`worker.poll_interval`). genq needs a
    /// session (node ids are session advisory locks): connect directly or through a pooler in
    /// session mode.
    pub notify: bool,
    /// Connections per process.
    pub max_connections: u32,
}

impl Default for Postgres {
    fn default() -> Self {
        Postgres {
            notify: true,
            max_connections: 16,
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SqliteSynchronous {
    #[default]
    Full,
    Normal,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProviderType {
    #[default]
    Demo,
    Http,
    Task,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Provider {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: ProviderType,
    /// demo: how long a request takes.
    #[serde(default, with = "humantime_serde")]
    pub latency: Option<Duration>,
    /// demo: append `job_id attempt user_id started_us finished_us` for every successful
    /// completion to this file (an audit trail for crash tests and demos).
    #[serde(default)]
    pub completions_log: Option<PathBuf>,
    #[serde(default)]
    pub base_url: Option<String>,
    #[serde(default)]
    pub keys: Vec<String>,
    #[serde(default)]
    pub requests_per_minute: Option<u32>,
    #[serde(default)]
    pub key_requests_per_minute: Option<u32>,
    #[serde(default)]
    pub tokens_per_minute: Option<u32>,
    #[serde(default)]
    pub key_tokens_per_minute: Option<u32>,
    #[serde(default)]
    pub max_concurrent: Option<u32>,
    #[serde(default, with = "humantime_serde")]
    pub timeout: Option<Duration>,
    /// How long a key that failed with `billing` stays disabled (default 3600).
    #[serde(default)]
    pub key_disable_seconds: Option<u64>,
    /// A cheap GET that needs a valid key, for `genq doctor` (default `/models` for http).
    #[serde(default)]
    pub check_path: Option<String>,
    /// Body-pattern rules that refine the class a status gives, first match wins.
    #[serde(default)]
    pub error_rules: Vec<ErrorRule>,
    /// task: where a task is created (POST), e.g. `/v1/tasks`.
    #[serde(default)]
    pub create_path: Option<String>,
    /// task: where a task is polled (GET), with `{task_id}`, e.g. `/v1/tasks/{task_id}`.
    #[serde(default)]
    pub status_path: Option<String>,
    /// task: JSON pointer to the task id in the create answer (default `/id`).
    #[serde(default)]
    pub task_id_pointer: Option<String>,
    /// task: JSON pointer to the task's state in the status answer (default `/status`).
    #[serde(default)]
    pub state_pointer: Option<String>,
    /// task: states that mean done (default `["succeeded"]`), compared as text.
    #[serde(default)]
    pub success_values: Option<Vec<toml::Value>>,
    /// task: states that mean failed (default `["failed"]`), compared as text.
    #[serde(default)]
    pub failure_values: Option<Vec<toml::Value>>,
    /// task: JSON pointer to the result in the status answer (default: the whole answer).
    #[serde(default)]
    pub result_pointer: Option<String>,
    /// task: time between polls (default 5s).
    #[serde(default, with = "humantime_serde")]
    pub poll_interval: Option<Duration>,
    /// task: longest wait for a task before the attempt fails with `timeout` (default 10m).
    #[serde(default, with = "humantime_serde")]
    pub max_wait: Option<Duration>,
}

/// `error_rules` entry: a provider answer whose body matches `pattern` (a case-insensitive
/// regular expression), and whose status is `status` if given, gets `class`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ErrorRule {
    pub pattern: String,
    pub class: String,
    #[serde(default)]
    pub status: Option<u16>,
}

pub use toml::Value as TomlValue;

/// A value of `success_values` / `failure_values` as the text it is compared by.
pub fn value_text(v: &toml::Value) -> String {
    match v {
        toml::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// `[[schedules]]`: a job of `kind` for `user_id` at every slot of `cron`, one per slot across
/// every process sharing the database.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Schedule {
    pub name: String,
    /// 5 fields, or 6 with seconds first; `@hourly`, `@daily` and the like.
    pub cron: String,
    /// The IANA zone the slots fall in (default UTC).
    #[serde(default = "utc")]
    pub timezone: String,
    pub kind: String,
    pub user_id: String,
    /// The job's payload (default `{}`).
    #[serde(default)]
    pub payload: toml::Table,
    #[serde(default)]
    pub priority: Option<i32>,
}

fn utc() -> String {
    "UTC".into()
}

impl Schedule {
    /// The payload as JSON.
    pub fn payload_json(&self) -> serde_json::Value {
        serde_json::to_value(&self.payload).unwrap_or_default()
    }
}

/// `[[webhooks]]`: an endpoint events are POSTed to, signed with `secret` (SPEC §8).
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Webhook {
    pub url: String,
    /// Signs every delivery (`Genq-Signature`); `env:NAME` reads it from the environment.
    pub secret: String,
    /// Event types to send; all when empty.
    #[serde(default)]
    pub events: Vec<String>,
    /// Only events of jobs (and batches) of these kinds; all when empty.
    #[serde(default)]
    pub kinds: Vec<String>,
    /// Longest wait for the endpoint's answer to one delivery (default 10s).
    #[serde(default, with = "humantime_serde")]
    pub timeout: Option<Duration>,
}

impl std::fmt::Debug for Webhook {
    /// Without the secret: configs are printed in errors and logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Webhook")
            .field("url", &self.url)
            .field("events", &self.events)
            .field("kinds", &self.kinds)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Kind {
    pub name: String,
    #[serde(default)]
    pub provider: Option<String>,
    /// Run by external workers through the claim API, not in-process.
    #[serde(default)]
    pub external: bool,
    #[serde(default)]
    pub path: Option<String>,
    #[serde(default)]
    pub cost: i64,
    #[serde(default)]
    pub priority: i32,
    #[serde(default, with = "humantime_serde")]
    pub timeout: Option<Duration>,
    #[serde(default)]
    pub max_retries: Option<u32>,
    #[serde(default)]
    pub retry_delays: Option<Vec<String>>,
    #[serde(default)]
    pub estimated_tokens: Option<u32>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            mode: Mode::Development,
            listen: "127.0.0.1:8080".parse().unwrap(),
            database: "sqlite://genq.db".into(),
            auth: Auth::default(),
            worker: Worker::default(),
            users: Users::default(),
            quota: Quota::default(),
            retention: Retention::default(),
            messages: BTreeMap::new(),
            api: Api::default(),
            metrics: Metrics::default(),
            sentry: Sentry::default(),
            sqlite: Sqlite::default(),
            postgres: Postgres::default(),
            providers: Vec::new(),
            kinds: Vec::new(),
            webhooks: Vec::new(),
            schedules: Vec::new(),
        }
    }
}

impl Default for Worker {
    fn default() -> Self {
        Self {
            concurrency: 25,
            lease: Duration::from_secs(30),
            heartbeat: Duration::from_secs(10),
            node_id: None,
            claim_batch: 100,
            poll_interval: Duration::from_secs(1),
            shutdown_grace: Duration::from_secs(10),
        }
    }
}

impl Default for Users {
    fn default() -> Self {
        Self {
            default_plan: "free".into(),
            initial_credits: 0,
        }
    }
}

impl Default for Quota {
    fn default() -> Self {
        Self {
            timezone: "UTC".into(),
        }
    }
}

impl Default for Retention {
    fn default() -> Self {
        Self {
            succeeded: RetentionRule::days(1),
            failed: RetentionRule::days(7),
            canceled: RetentionRule::days(7),
            events: RetentionRule::days(7),
        }
    }
}

impl Default for Api {
    fn default() -> Self {
        Self {
            max_body_bytes: 2 * 1024 * 1024,
            max_claim_wait: Duration::from_secs(30),
            max_connections: 1024,
            header_timeout: Duration::from_secs(15),
            body_timeout: Duration::from_secs(30),
            list_page_bytes: 1024 * 1024,
        }
    }
}

/// Where the database lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Database {
    Sqlite(PathBuf),
    Postgres(String),
}

impl Config {
    /// Load from an optional file, then apply `GENQ_*` overrides from `vars`, resolve `env:`
    /// secrets, fill in the demo provider when nothing is configured, and validate.
    pub fn load(
        path: Option<&Path>,
        vars: &BTreeMap<String, String>,
    ) -> Result<Config, ConfigError> {
        let (source_name, text) = match path {
            Some(p) => {
                let text = std::fs::read_to_string(p).map_err(|e| ConfigError {
                    source_name: p.display().to_string(),
                    key: "(file)".into(),
                    message: format!("cannot read the config file: {e}"),
                })?;
                (p.display().to_string(), text)
            }
            None => ("(defaults)".to_string(), String::new()),
        };
        Self::from_toml(&source_name, &text, vars)
    }

    pub fn from_toml(
        source_name: &str,
        text: &str,
        vars: &BTreeMap<String, String>,
    ) -> Result<Config, ConfigError> {
        let err = |key: String, message: String| ConfigError {
            source_name: source_name.to_string(),
            key,
            message,
        };
        let mut table: toml::Table = toml::from_str(text).map_err(|e| {
            let message = e.message().to_string();
            let line = e
                .span()
                .map(|s| text[..s.start].lines().count().max(1))
                .unwrap_or(0);
            err(format!("line {line}"), message)
        })?;
        env::apply_overrides(&mut table, vars).map_err(|(key, message)| ConfigError {
            source_name: "environment".into(),
            key,
            message,
        })?;
        let mut config: Config = serde_path_to_error::deserialize(toml::Value::Table(table))
            .map_err(|e| {
                let path = e.path().to_string();
                err(path, e.into_inner().message().to_string())
            })?;
        if config.providers.is_empty() && config.kinds.is_empty() {
            config.providers.push(demo_provider());
            config.kinds.extend(demo_kinds());
        }
        config.resolve_secrets(vars).map_err(|(k, m)| err(k, m))?;
        validate::validate(&config).map_err(|(k, m)| err(k, m))?;
        Ok(config)
    }

    fn resolve_secrets(&mut self, vars: &BTreeMap<String, String>) -> Result<(), (String, String)> {
        let resolve = |key: String, value: &mut String| -> Result<(), (String, String)> {
            if let Some(name) = value.strip_prefix("env:") {
                *value = vars
                    .get(name)
                    .cloned()
                    .ok_or_else(|| (key, format!("environment variable {name} is not set")))?;
            }
            Ok(())
        };
        for (list, name) in [
            (&mut self.auth.admin_tokens, "auth.admin_tokens"),
            (&mut self.auth.app_tokens, "auth.app_tokens"),
            (&mut self.auth.worker_tokens, "auth.worker_tokens"),
            (&mut self.auth.viewer_tokens, "auth.viewer_tokens"),
        ] {
            for (i, token) in list.iter_mut().enumerate() {
                resolve(format!("{name}[{i}]"), token)?;
            }
        }
        for (p, provider) in self.providers.iter_mut().enumerate() {
            for (i, key) in provider.keys.iter_mut().enumerate() {
                resolve(format!("providers[{p}].keys[{i}]"), key)?;
            }
        }
        for (i, hook) in self.webhooks.iter_mut().enumerate() {
            resolve(format!("webhooks[{i}].secret"), &mut hook.secret)?;
        }
        if let Some(token) = &mut self.metrics.token {
            resolve("metrics.token".into(), token)?;
        }
        if let Some(dsn) = &mut self.sentry.dsn {
            resolve("sentry.dsn".into(), dsn)?;
        }
        // A PostgreSQL URL carries a password.
        resolve("database".into(), &mut self.database)?;
        Ok(())
    }

    pub fn database(&self) -> Database {
        match self.database.strip_prefix("sqlite://") {
            Some(path) => Database::Sqlite(PathBuf::from(path)),
            None => Database::Postgres(self.database.clone()),
        }
    }

    /// `database` as logs and messages may show it: a PostgreSQL URL without its user and
    /// password.
    pub fn database_label(&self) -> String {
        match self.database.split_once("://") {
            Some((scheme, rest)) if scheme.starts_with("postgres") => {
                let place = rest.rsplit_once('@').map_or(rest, |(_, p)| p);
                format!("{scheme}://{}", place.split('?').next().unwrap_or(place))
            }
            _ => self.database.clone(),
        }
    }

    pub fn kind(&self, name: &str) -> Option<&Kind> {
        self.kinds.iter().find(|k| k.name == name)
    }

    pub fn provider(&self, name: &str) -> Option<&Provider> {
        self.providers.iter().find(|p| p.name == name)
    }

    pub fn messages(&self) -> Messages {
        Messages::new(self.messages.clone())
    }

    /// The node id that labels this process's leases: stable across restarts of the same
    /// process on the same host and database, so a restart takes its old leases back at once.
    pub fn node_id(&self) -> String {
        self.worker.node_id.clone().unwrap_or_else(|| {
            let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
                .map(|h| h.trim().to_string())
                .or_else(|_| std::env::var("HOSTNAME"))
                .unwrap_or_else(|_| "localhost".into());
            let location = match self.database() {
                Database::Sqlite(path) => std::path::absolute(&path)
                    .unwrap_or(path)
                    .display()
                    .to_string(),
                Database::Postgres(_) => self.database_label(),
            };
            format!("{host}:{location}")
        })
    }
}

impl Quota {
    fn tz(&self) -> chrono_tz::Tz {
        // Validated at load time.
        self.timezone.parse().unwrap_or(chrono_tz::UTC)
    }

    /// The quota day `now` falls on, e.g. `2026-11-23`: days start at midnight in
    /// `quota.timezone`.
    pub fn day(&self, now: chrono::DateTime<chrono::Utc>) -> String {
        now.with_timezone(&self.tz()).date_naive().to_string()
    }

    /// When the next quota day starts.
    pub fn next_day_start(
        &self,
        now: chrono::DateTime<chrono::Utc>,
    ) -> chrono::DateTime<chrono::Utc> {
        use chrono::TimeZone;
        let tz = self.tz();
        let tomorrow = now.with_timezone(&tz).date_naive() + chrono::Days::new(1);
        // Midnight may not exist (a DST jump): take the first instant of the day that does.
        (0..24 * 60)
            .find_map(|minute| {
                let t = tomorrow.and_hms_opt(0, 0, 0)? + chrono::Duration::minutes(minute);
                tz.from_local_datetime(&t).earliest()
            })
            .map(|t| t.with_timezone(&chrono::Utc))
            .unwrap_or(now + chrono::Duration::days(1))
    }
}

impl Users {
    pub fn defaults(&self) -> genq_core::UserDefaults {
        genq_core::UserDefaults {
            plan: self.default_plan.clone(),
            initial_credits: self.initial_credits,
        }
    }
}

impl Kind {
    pub fn retry_policy(&self) -> RetryPolicy {
        let mut policy = RetryPolicy::default();
        if let Some(n) = self.max_retries {
            policy.max_retries = n;
        }
        if let Some(delays) = &self.retry_delays {
            // Validated at load time.
            policy.delays = delays
                .iter()
                .filter_map(|d| humantime::parse_duration(d).ok())
                .collect();
        }
        policy
    }
}

#[cfg(test)]
mod tests;
