//! Validation of a loaded config, one function per section, beside (not inside) the config
//! types. Each check names the dotted key that is wrong and says what would be right.

use crate::{Config, ProviderType};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// The key that is wrong, and what is wrong with it.
pub(crate) type Invalid = (String, String);

fn fail<T>(key: &str, message: impl Into<String>) -> Result<T, Invalid> {
    Err((key.to_string(), message.into()))
}

const HOUR: Duration = Duration::from_secs(3600);

pub(crate) fn validate(c: &Config) -> Result<(), Invalid> {
    worker(c)?;
    api(c)?;
    storage(c)?;
    accounts(c)?;
    auth(c)?;
    let provider_names = providers(c)?;
    kinds(c, &provider_names)?;
    webhooks(c)?;
    schedules(c)?;
    retention(c)
}

fn retention(c: &Config) -> Result<(), Invalid> {
    let r = &c.retention;
    for (name, rule) in [
        ("succeeded", &r.succeeded),
        ("failed", &r.failed),
        ("canceled", &r.canceled),
        ("events", &r.events),
    ] {
        if rule.max_age < Duration::from_secs(60) {
            return fail(&format!("retention.{name}.max_age"), "must be at least 1m");
        }
        if rule.max_count == Some(0) {
            return fail(
                &format!("retention.{name}.max_count"),
                "must be at least 1 (leave it out for no count limit)",
            );
        }
    }
    Ok(())
}

fn schedules(c: &Config) -> Result<(), Invalid> {
    let mut names = BTreeSet::new();
    for (i, s) in c.schedules.iter().enumerate() {
        let key = |field: &str| format!("schedules[{i}].{field}");
        if !valid_name(&s.name) {
            return fail(&key("name"), name_rule(&s.name));
        }
        if !names.insert(s.name.as_str()) {
            return fail(
                &key("name"),
                format!("schedule {:?} is defined twice", s.name),
            );
        }
        if let Err(e) = genq_core::schedule::Plan::parse(&s.cron, "UTC") {
            return fail(&key("cron"), format!("{:?}: {e}", s.cron));
        }
        if s.timezone.parse::<chrono_tz::Tz>().is_err() {
            return fail(
                &key("timezone"),
                format!(
                    "{:?} is not an IANA time zone name such as \"Europe/Moscow\"",
                    s.timezone
                ),
            );
        }
        if c.kind(&s.kind).is_none() {
            return fail(&key("kind"), format!("no kind named {:?}", s.kind));
        }
        if !genq_core::ids::valid_key(&s.user_id) {
            return fail(
                &key("user_id"),
                "must be 1 to 200 letters, digits or -._~!$&'()*+,;=:@",
            );
        }
    }
    Ok(())
}

fn webhooks(c: &Config) -> Result<(), Invalid> {
    let mut urls = BTreeSet::new();
    for (i, hook) in c.webhooks.iter().enumerate() {
        let key = |field: &str| format!("webhooks[{i}].{field}");
        if !(hook.url.starts_with("https://") || hook.url.starts_with("http://")) {
            return fail(
                &key("url"),
                format!("expected https://… (or http://), got {:?}", hook.url),
            );
        }
        if !urls.insert(hook.url.as_str()) {
            return fail(&key("url"), "the same url is configured twice");
        }
        if hook.secret.len() < 16 {
            return fail(&key("secret"), "a secret must be at least 16 characters");
        }
        for (j, name) in hook.events.iter().enumerate() {
            if name.parse::<genq_core::event::EventType>().is_err() {
                return fail(
                    &format!("webhooks[{i}].events[{j}]"),
                    format!(
                        "{name:?} is not an event type; types: {}",
                        genq_core::event::EventType::ALL
                            .map(|t| t.as_str())
                            .join(", ")
                    ),
                );
            }
        }
        for (j, kind) in hook.kinds.iter().enumerate() {
            if c.kind(kind).is_none() {
                return fail(
                    &format!("webhooks[{i}].kinds[{j}]"),
                    format!("no kind named {kind:?}"),
                );
            }
        }
        if hook
            .timeout
            .is_some_and(|t| t < Duration::from_millis(100) || t > Duration::from_secs(300))
        {
            return fail(&key("timeout"), "must be between 100ms and 5m");
        }
    }
    Ok(())
}

fn worker(c: &Config) -> Result<(), Invalid> {
    let w = &c.worker;
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
    if w.lease < Duration::from_secs(1) || w.lease > 24 * HOUR {
        return fail("worker.lease", "must be between 1s and 24h");
    }
    if w.shutdown_grace > HOUR {
        return fail("worker.shutdown_grace", "must be at most 1h");
    }
    if w.poll_interval > HOUR {
        return fail("worker.poll_interval", "must be at most 1h");
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
        return fail("worker.poll_interval", "must be at least 10ms");
    }
    Ok(())
}

fn api(c: &Config) -> Result<(), Invalid> {
    let a = &c.api;
    if a.max_claim_wait > Duration::from_secs(600) {
        return fail("api.max_claim_wait", "must be at most 10m");
    }
    if a.max_body_bytes < 1024 {
        return fail("api.max_body_bytes", "must be at least 1024");
    }
    if !(1..=1_000_000).contains(&a.max_connections) {
        return fail(
            "api.max_connections",
            format!("must be between 1 and 1000000, got {}", a.max_connections),
        );
    }
    for (key, value) in [
        ("api.header_timeout", a.header_timeout),
        ("api.body_timeout", a.body_timeout),
    ] {
        if value < Duration::from_millis(100) || value > HOUR {
            return fail(key, "must be between 100ms and 1h");
        }
    }
    if a.list_page_bytes < 1024 {
        return fail("api.list_page_bytes", "must be at least 1024");
    }
    Ok(())
}

fn storage(c: &Config) -> Result<(), Invalid> {
    if !(1..=1000).contains(&c.postgres.max_connections) {
        return fail(
            "postgres.max_connections",
            format!(
                "must be between 1 and 1000, got {}",
                c.postgres.max_connections
            ),
        );
    }
    if c.database.strip_prefix("sqlite://").is_none()
        && !c.database.starts_with("postgres://")
        && !c.database.starts_with("postgresql://")
    {
        return fail(
            "database",
            format!(
                "expected sqlite://PATH or postgres://…, got {:?}",
                c.database_label()
            ),
        );
    }
    Ok(())
}

fn accounts(c: &Config) -> Result<(), Invalid> {
    if c.users.initial_credits < 0 {
        return fail("users.initial_credits", "must not be negative");
    }
    if c.quota.timezone.parse::<chrono_tz::Tz>().is_err() {
        return fail(
            "quota.timezone",
            format!(
                "{:?} is not an IANA time zone name such as \"UTC\" or \"Europe/Moscow\"",
                c.quota.timezone
            ),
        );
    }
    if !genq_core::limits::PLANS.contains(&c.users.default_plan.as_str()) {
        return fail(
            "users.default_plan",
            format!(
                "{:?} is not a plan; plans: {}",
                c.users.default_plan,
                genq_core::limits::PLANS.join(", ")
            ),
        );
    }
    Ok(())
}

/// Tokens (and the metrics token): long enough, sendable in a header, and each in one scope only
/// (a token listed under two scopes would silently get one of them).
fn auth(c: &Config) -> Result<(), Invalid> {
    let mut seen: BTreeMap<&str, String> = BTreeMap::new();
    let metrics = c
        .metrics
        .token
        .iter()
        .map(|t| (t, "metrics.token".to_string()));
    let tokens = [
        (&c.auth.admin_tokens, "auth.admin_tokens"),
        (&c.auth.app_tokens, "auth.app_tokens"),
        (&c.auth.worker_tokens, "auth.worker_tokens"),
        (&c.auth.viewer_tokens, "auth.viewer_tokens"),
    ]
    .into_iter()
    .flat_map(|(list, name)| {
        list.iter()
            .enumerate()
            .map(move |(i, token)| (token, format!("{name}[{i}]")))
    })
    .chain(metrics);
    for (token, key) in tokens {
        if token.len() < 16 {
            return fail(&key, "a token must be at least 16 characters");
        }
        if !header_safe(token) {
            return fail(
                &key,
                "a token must be printable ASCII without spaces (it is sent in the Authorization header)",
            );
        }
        if let Some(first) = seen.insert(token, key.clone()) {
            return fail(
                &key,
                format!("the same token is also {first}; give each scope tokens of its own"),
            );
        }
    }
    Ok(())
}

/// Printable ASCII without spaces: what a bearer token or an API key may hold. A CR or LF in
/// a key would otherwise be accepted at start-up and fail every request later.
pub(crate) fn header_safe(value: &str) -> bool {
    value.bytes().all(|b| b.is_ascii_graphic())
}

fn providers(c: &Config) -> Result<BTreeSet<&str>, Invalid> {
    let mut names = BTreeSet::new();
    for (i, p) in c.providers.iter().enumerate() {
        let key = |field: &str| format!("providers[{i}].{field}");
        if !valid_name(&p.name) {
            return fail(&key("name"), name_rule(&p.name));
        }
        if !names.insert(p.name.as_str()) {
            return fail(
                &key("name"),
                format!("provider {:?} is defined twice", p.name),
            );
        }
        for (j, secret) in p.keys.iter().enumerate() {
            if secret.is_empty() || !header_safe(secret) {
                return fail(
                    &key(&format!("keys[{j}]")),
                    "a key must be printable ASCII without spaces or line breaks (it is sent as Authorization: Bearer <key>)",
                );
            }
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
            task_provider(p, &key)?;
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
            return fail(&key("max_concurrent"), "must be at least 1");
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
                    "must be at least 1 (leave it out for no limit)",
                );
            }
        }
    }
    Ok(names)
}

fn task_provider(p: &crate::Provider, key: &dyn Fn(&str) -> String) -> Result<(), Invalid> {
    if !p.create_path.as_deref().is_some_and(|s| s.starts_with('/')) {
        return fail(
            &key("create_path"),
            "a task provider needs create_path = \"/…\", e.g. \"/v1/tasks\"",
        );
    }
    if !p
        .status_path
        .as_deref()
        .is_some_and(|s| s.starts_with('/') && s.contains("{task_id}"))
    {
        return fail(
            &key("status_path"),
            "a task provider needs status_path = \"/…{task_id}…\", e.g. \"/v1/tasks/{task_id}\"",
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
                "a JSON pointer is empty or starts with \"/\", e.g. \"/data/id\"",
            );
        }
    }
    if p.poll_interval
        .is_some_and(|d| d < Duration::from_millis(10))
    {
        return fail(&key("poll_interval"), "must be at least 10ms");
    }
    if p.max_wait.is_some_and(|d| d.is_zero() || d > 7 * 24 * HOUR) {
        return fail(&key("max_wait"), "must be more than 0 and at most 7 days");
    }
    Ok(())
}

fn kinds(c: &Config, provider_names: &BTreeSet<&str>) -> Result<(), Invalid> {
    let mut kind_names = BTreeSet::new();
    for (i, k) in c.kinds.iter().enumerate() {
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
                    "an external kind is run by external workers and takes no provider",
                );
            }
            (None, false) => {
                return fail(&key("provider"), "name a provider, or set external = true");
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
                if c.provider(p).is_some_and(|p| p.kind == ProviderType::Http)
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
            return fail(&key("cost"), "must not be negative");
        }
        if k.timeout.is_some_and(|t| t.is_zero() || t > 24 * HOUR) {
            return fail(&key("timeout"), "must be more than 0 and at most 24h");
        }
        if k.max_retries.is_some_and(|n| n > 100) {
            return fail(&key("max_retries"), "must be at most 100");
        }
        if let Some(delays) = &k.retry_delays {
            for (j, d) in delays.iter().enumerate() {
                let problem = match humantime::parse_duration(d) {
                    Err(e) => Some(format!("{d:?}: {e}")),
                    Ok(delay) if delay > 30 * 24 * HOUR => {
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
