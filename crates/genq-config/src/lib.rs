//! genq's configuration (SPEC §9): one TOML file, every key optional, `GENQ_<SECTION>_<KEY>`
//! environment overrides, `env:NAME` secrets, and validation that names the key that is wrong.

mod defaults;
mod env;

use genq_core::{ErrorClass, Messages, RetryPolicy};
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};
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
    pub sqlite: Sqlite,
    #[serde(default)]
    pub postgres: Postgres,
    pub providers: Vec<Provider>,
    pub kinds: Vec<Kind>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Auth {
    pub admin_tokens: Vec<String>,
    pub app_tokens: Vec<String>,
    pub worker_tokens: Vec<String>,
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
    /// Most jobs taken in one claim.
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

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Retention {
    pub succeeded: RetentionRule,
    pub failed: RetentionRule,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionRule {
    #[serde(with = "humantime_serde")]
    pub max_age: Duration,
    pub max_count: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Api {
    /// Largest request body accepted; larger ones get 413 `payload_too_large`.
    pub max_body_bytes: usize,
    /// Longest `wait_ms` an external worker's claim may long-poll.
    #[serde(with = "humantime_serde")]
    pub max_claim_wait: Duration,
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
            sqlite: Sqlite::default(),
            postgres: Postgres::default(),
            providers: Vec::new(),
            kinds: Vec::new(),
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
            claim_batch: 25,
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
            succeeded: RetentionRule {
                max_age: Duration::from_secs(24 * 3600),
                max_count: 1000,
            },
            failed: RetentionRule {
                max_age: Duration::from_secs(7 * 24 * 3600),
                max_count: 5000,
            },
        }
    }
}

impl Default for Api {
    fn default() -> Self {
        Self {
            max_body_bytes: 2 * 1024 * 1024,
            max_claim_wait: Duration::from_secs(30),
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
        config.validate().map_err(|(k, m)| err(k, m))?;
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
        // A PostgreSQL URL carries a password.
        resolve("database".into(), &mut self.database)?;
        Ok(())
    }

    fn validate(&self) -> Result<(), (String, String)> {
        let fail = |key: &str, message: String| Err((key.to_string(), message));
        let w = &self.worker;
        if !(1..=10_000).contains(&w.concurrency) {
            return fail(
                "worker.concurrency",
                format!("must be between 1 and 10000, got {}", w.concurrency),
            );
        }
        if !(1..=1000).contains(&w.claim_batch) {
            return fail(
                "worker.claim_batch",
                format!("must be between 1 and 1000, got {}", w.claim_batch),
            );
        }
        let hour = Duration::from_secs(3600);
        if w.lease < Duration::from_secs(1) || w.lease > 24 * hour {
            return fail("worker.lease", "must be between 1s and 24h".into());
        }
        if w.shutdown_grace > hour {
            return fail("worker.shutdown_grace", "must be at most 1h".into());
        }
        if w.poll_interval > hour {
            return fail("worker.poll_interval", "must be at most 1h".into());
        }
        if self.api.max_claim_wait > Duration::from_secs(600) {
            return fail("api.max_claim_wait", "must be at most 10m".into());
        }
        if w.heartbeat.is_zero() || w.heartbeat * 2 > w.lease {
            return fail(
                "worker.heartbeat",
                format!(
                    "must be more than 0 and at most half of worker.lease ({}), so that one lost heartbeat does not lose the lease",
                    humantime::format_duration(w.lease)
                ),
            );
        }
        if w.poll_interval < Duration::from_millis(10) {
            return fail("worker.poll_interval", "must be at least 10ms".into());
        }
        if self.users.initial_credits < 0 {
            return fail("users.initial_credits", "must not be negative".into());
        }
        if !(1..=1000).contains(&self.postgres.max_connections) {
            return fail(
                "postgres.max_connections",
                format!(
                    "must be between 1 and 1000, got {}",
                    self.postgres.max_connections
                ),
            );
        }
        if self.api.max_body_bytes < 1024 {
            return fail("api.max_body_bytes", "must be at least 1024".into());
        }
        if self.database.strip_prefix("sqlite://").is_none()
            && !self.database.starts_with("postgres://")
            && !self.database.starts_with("postgresql://")
        {
            return fail(
                "database",
                format!(
                    "expected sqlite://PATH or postgres://…, got {:?}",
                    self.database
                ),
            );
        }
        if self.quota.timezone.parse::<chrono_tz::Tz>().is_err() {
            return fail(
                "quota.timezone",
                format!(
                    "{:?} is not an IANA time zone name such as \"UTC\" or \"Europe/Moscow\"",
                    self.quota.timezone
                ),
            );
        }
        if !genq_core::limits::PLANS.contains(&self.users.default_plan.as_str()) {
            return fail(
                "users.default_plan",
                format!(
                    "{:?} is not a plan; plans: {}",
                    self.users.default_plan,
                    genq_core::limits::PLANS.join(", ")
                ),
            );
        }
        for (list, name) in [
            (&self.auth.admin_tokens, "auth.admin_tokens"),
            (&self.auth.app_tokens, "auth.app_tokens"),
            (&self.auth.worker_tokens, "auth.worker_tokens"),
        ] {
            for (i, token) in list.iter().enumerate() {
                if token.len() < 16 {
                    return fail(
                        &format!("{name}[{i}]"),
                        "a token must be at least 16 characters".into(),
                    );
                }
            }
        }

        let mut provider_names = BTreeSet::new();
        for (i, p) in self.providers.iter().enumerate() {
            let key = |field: &str| format!("providers[{i}].{field}");
            if !valid_name(&p.name) {
                return fail(&key("name"), name_rule(&p.name));
            }
            if !provider_names.insert(p.name.as_str()) {
                return fail(
                    &key("name"),
                    format!("provider {:?} is defined twice", p.name),
                );
            }
            if p.kind != ProviderType::Demo {
                let ty = if p.kind == ProviderType::Http {
                    "http"
                } else {
                    "task"
                };
                let url = p.base_url.as_deref().unwrap_or("");
                if !(url.starts_with("http://") || url.starts_with("https://")) {
                    return fail(
                        &key("base_url"),
                        format!("an {ty} provider needs base_url = \"https://…\", got {url:?}"),
                    );
                }
                if p.keys.is_empty() {
                    return fail(
                        &key("keys"),
                        format!("an {ty} provider needs at least one key"),
                    );
                }
            }
            if p.kind == ProviderType::Task {
                if !p.create_path.as_deref().is_some_and(|s| s.starts_with('/')) {
                    return fail(
                        &key("create_path"),
                        "a task provider needs create_path = \"/…\", e.g. \"/v1/tasks\"".into(),
                    );
                }
                if !p
                    .status_path
                    .as_deref()
                    .is_some_and(|s| s.starts_with('/') && s.contains("{task_id}"))
                {
                    return fail(
                        &key("status_path"),
                        "a task provider needs status_path = \"/…{task_id}…\", e.g. \"/v1/tasks/{task_id}\"".into(),
                    );
                }
                for (field, pointer) in [
                    ("task_id_pointer", &p.task_id_pointer),
                    ("state_pointer", &p.state_pointer),
                    ("result_pointer", &p.result_pointer),
                ] {
                    if pointer
                        .as_deref()
                        .is_some_and(|s| !s.is_empty() && !s.starts_with('/'))
                    {
                        return fail(
                            &key(field),
                            "a JSON pointer is empty or starts with \"/\", e.g. \"/data/id\""
                                .into(),
                        );
                    }
                }
                if p.poll_interval
                    .is_some_and(|d| d < Duration::from_millis(10))
                {
                    return fail(&key("poll_interval"), "must be at least 10ms".into());
                }
                if p.max_wait.is_some_and(|d| d.is_zero() || d > 7 * 24 * hour) {
                    return fail(
                        &key("max_wait"),
                        "must be more than 0 and at most 7 days".into(),
                    );
                }
            }
            for (j, rule) in p.error_rules.iter().enumerate() {
                let rule_key = |field: &str| key(&format!("error_rules[{j}].{field}"));
                if let Err(e) = regex::RegexBuilder::new(&rule.pattern)
                    .case_insensitive(true)
                    .build()
                {
                    return fail(
                        &rule_key("pattern"),
                        format!("not a regular expression: {e}"),
                    );
                }
                if rule.class.parse::<genq_core::ErrorClass>().is_err() {
                    return fail(
                        &rule_key("class"),
                        format!(
                            "{:?} is not an error class; classes: {}",
                            rule.class,
                            genq_core::ErrorClass::ALL.map(|c| c.as_str()).join(", ")
                        ),
                    );
                }
            }
            if p.max_concurrent == Some(0) {
                return fail(&key("max_concurrent"), "must be at least 1".into());
            }
            for (field, value) in [
                ("requests_per_minute", p.requests_per_minute),
                ("key_requests_per_minute", p.key_requests_per_minute),
                ("tokens_per_minute", p.tokens_per_minute),
                ("key_tokens_per_minute", p.key_tokens_per_minute),
            ] {
                if value == Some(0) {
                    return fail(
                        &key(field),
                        "must be at least 1 (leave it out for no limit)".into(),
                    );
                }
            }
        }

        let mut kind_names = BTreeSet::new();
        for (i, k) in self.kinds.iter().enumerate() {
            let key = |field: &str| format!("kinds[{i}].{field}");
            if !valid_name(&k.name) {
                return fail(&key("name"), name_rule(&k.name));
            }
            if !kind_names.insert(k.name.as_str()) {
                return fail(&key("name"), format!("kind {:?} is defined twice", k.name));
            }
            match (&k.provider, k.external) {
                (Some(_), true) => {
                    return fail(
                        &key("external"),
                        "an external kind is run by external workers and takes no provider".into(),
                    );
                }
                (None, false) => {
                    return fail(
                        &key("provider"),
                        "name a provider, or set external = true".into(),
                    );
                }
                (Some(p), false) if !provider_names.contains(p.as_str()) => {
                    return fail(
                        &key("provider"),
                        format!(
                            "no provider named {p:?}; defined: {}",
                            provider_names
                                .iter()
                                .copied()
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    );
                }
                (Some(p), false)
                    if self
                        .provider(p)
                        .is_some_and(|p| p.kind == ProviderType::Http)
                        && !k.path.as_deref().is_some_and(|path| path.starts_with('/')) =>
                {
                    return fail(
                        &key("path"),
                        format!(
                            "a kind of the http provider {p:?} needs path = \"/…\", e.g. \"/chat/completions\""
                        ),
                    );
                }
                _ => {}
            }
            if k.cost < 0 {
                return fail(&key("cost"), "must not be negative".into());
            }
            if k.timeout.is_some_and(|t| t.is_zero() || t > 24 * hour) {
                return fail(
                    &key("timeout"),
                    "must be more than 0 and at most 24h".into(),
                );
            }
            if k.max_retries.is_some_and(|n| n > 100) {
                return fail(&key("max_retries"), "must be at most 100".into());
            }
            if let Some(delays) = &k.retry_delays {
                for (j, d) in delays.iter().enumerate() {
                    let problem = match humantime::parse_duration(d) {
                        Err(e) => Some(format!("{d:?}: {e}")),
                        Ok(delay) if delay > 30 * 24 * hour => {
                            Some(format!("{d:?} is longer than 30 days"))
                        }
                        Ok(_) => None,
                    };
                    if let Some(problem) = problem {
                        return fail(&format!("kinds[{i}].retry_delays[{j}]"), problem);
                    }
                }
            }
        }
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

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 100
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | ':'))
}

fn name_rule(name: &str) -> String {
    format!("{name:?} must be 1 to 100 characters of letters, digits, '.', '_', '-' or ':'")
}

#[cfg(test)]
mod tests;
