//! `genq doctor`: check the config, the database and every provider and key, and print what is
//! wrong and what to do about it. Exits non-zero when something would stop genq from working.

use crate::serve::{load_config, open_store};
use genq_config::{Config, Database, Mode, ProviderType};
use genq_engine::providers::{self, pace::LocalBudgets, slots::LocalSlots, upstream::Upstream};
use std::path::Path;
use std::sync::Arc;

/// The checks made so far; printed one a line as they are made, or as one JSON document.
#[derive(Default)]
struct Report {
    json: bool,
    checks: Vec<(&'static str, String)>,
}

impl Report {
    fn add(&mut self, status: &'static str, what: &str) {
        if !self.json {
            println!("{status:<5} {what}");
        }
        self.checks.push((status, what.to_string()));
    }
    fn ok(&mut self, what: &str) {
        self.add("ok", what);
    }
    fn warn(&mut self, what: &str) {
        self.add("warn", what);
    }
    fn fail(&mut self, what: &str) {
        self.add("FAIL", what);
    }
    fn count(&self, status: &str) -> usize {
        self.checks.iter().filter(|(s, _)| *s == status).count()
    }

    /// Print the summary (or the JSON document); an error when something failed.
    fn finish(self) -> anyhow::Result<()> {
        let (failures, warnings) = (self.count("FAIL"), self.count("warn"));
        if self.json {
            let checks: Vec<_> = self
                .checks
                .iter()
                .map(|(status, message)| {
                    serde_json::json!({"status": status.to_lowercase(), "message": message})
                })
                .collect();
            println!(
                "{}",
                serde_json::json!({"ok": failures == 0, "failures": failures, "warnings": warnings, "checks": checks})
            );
        } else {
            println!("{failures} failed, {warnings} warnings");
        }
        if failures > 0 {
            anyhow::bail!("genq doctor found {failures} problem(s)");
        }
        Ok(())
    }
}

pub async fn run(config_path: Option<&Path>, json: bool) -> anyhow::Result<()> {
    let mut r = Report {
        json,
        ..Report::default()
    };
    let config = match load_config(config_path) {
        Ok(c) => c,
        Err(e) => {
            r.fail(&format!("config: {e:#}"));
            r.finish()?;
            unreachable!("a failed check fails the report");
        }
    };
    r.ok(&format!(
        "config {}",
        config_path.map_or("(none: the zero-config demo setup)".into(), |p| p
            .display()
            .to_string())
    ));
    tokens(&config, &mut r);
    database(&config, &mut r).await;
    disk(&config, &mut r);
    webhooks(&config, &mut r).await;
    metrics(&config, &mut r).await;
    let built = providers::build(
        &config,
        Arc::new(LocalBudgets::default()),
        Arc::new(LocalSlots::default()),
        // Probes are not counted.
        Arc::new(genq_engine::metrics::Metrics::new(false)),
    );
    match built {
        Err(e) => r.fail(&format!("providers: {e}")),
        Ok(built) => {
            for p in config
                .providers
                .iter()
                .filter(|p| p.kind == ProviderType::Demo)
            {
                r.ok(&format!("provider {}: demo, in process", p.name));
            }
            for upstream in &built.upstreams {
                provider(&config, upstream, &mut r).await;
            }
        }
    }
    r.finish()
}

/// Tokens are configured; in production, not the token a zero-config start generated.
fn tokens(config: &Config, r: &mut Report) {
    let a = &config.auth;
    let configured =
        a.admin_tokens.len() + a.app_tokens.len() + a.worker_tokens.len() + a.viewer_tokens.len();
    match (configured, config.mode) {
        (0, Mode::Production) => r.fail(
            "auth: no tokens in production; set auth.admin_tokens and auth.app_tokens (env:NAME) instead of the generated admin token",
        ),
        (0, Mode::Development) => r.warn(
            "auth: no tokens configured; genq serve uses the admin token it stores beside the database (fine for a demo, not for production)",
        ),
        _ if a.app_tokens.is_empty() => r.warn(
            "auth: no app_tokens; applications should not hold an admin token",
        ),
        _ => r.ok(&format!("auth: {configured} token(s) configured")),
    }
}

async fn database(config: &Config, r: &mut Report) {
    let label = config.database_label();
    let store = match open_store(config).await {
        Ok(s) => s,
        Err(e) => return r.fail(&format!("database {label}: {e:#}")),
    };
    if let Err(e) = store.ping().await {
        return r.fail(&format!("database {label}: {e}"));
    }
    r.ok(&format!("database {label} answers"));
    match store.schema().await {
        Ok(s) if s.applied >= s.known => {
            r.ok(&format!(
                "database: {} of {} migrations applied",
                s.applied, s.known
            ));
            if let Some(server) = s.server_time {
                let skew = (chrono::Utc::now() - server).num_milliseconds().abs();
                let line = format!("clock: {skew} ms apart from the database server's");
                // Leases and schedules compare this machine's clock with other processes'.
                if skew > 2_000 {
                    r.fail(&format!(
                        "{line}; run NTP (chrony, systemd-timesyncd) on every machine"
                    ));
                } else if skew > 500 {
                    r.warn(&line);
                } else {
                    r.ok(&line);
                }
            }
        }
        Ok(s) => r.fail(&format!(
            "database: {} of {} migrations applied; run genq migrate",
            s.applied, s.known
        )),
        Err(e) => r.fail(&format!("database: cannot read the migrations: {e}")),
    }
}

/// Room on the disk that holds the SQLite file.
fn disk(config: &Config, r: &mut Report) {
    let Database::Sqlite(path) = config.database() else {
        return;
    };
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    let Ok(c_dir) = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes()) else {
        return;
    };
    // SAFETY: statvfs writes into the zeroed struct it is given; the path is a valid C string.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(c_dir.as_ptr(), &mut st) } != 0 {
        return r.warn(&format!(
            "disk: cannot read the free space of {}: {}",
            dir.display(),
            std::io::Error::last_os_error()
        ));
    }
    let free = st.f_bavail as u64 * st.f_frsize as u64;
    let line = format!("disk: {} MiB free beside {}", free >> 20, path.display());
    if free < 100 << 20 {
        r.fail(&format!(
            "{line}; SQLite stops writing when the disk is full"
        ));
    } else if free < 1 << 30 {
        r.warn(&line);
    } else {
        r.ok(&line);
    }
}

/// Every webhook's host resolves.
async fn webhooks(config: &Config, r: &mut Report) {
    for (i, hook) in config.webhooks.iter().enumerate() {
        let Ok(url) = reqwest::Url::parse(&hook.url) else {
            continue;
        };
        let host = url.host_str().unwrap_or_default().to_string();
        let port = url.port_or_known_default().unwrap_or(443);
        match tokio::net::lookup_host((host.as_str(), port))
            .await
            .map(|mut addrs| addrs.next())
        {
            Ok(Some(_)) => r.ok(&format!("webhooks[{i}]: {host} resolves")),
            Ok(None) => r.fail(&format!("webhooks[{i}]: {host} has no address")),
            Err(e) => r.fail(&format!("webhooks[{i}]: {host} does not resolve ({e})")),
        }
    }
}

/// `/metrics` of a genq running with this config answers.
async fn metrics(config: &Config, r: &mut Report) {
    if !config.metrics.enabled {
        return r.ok("metrics: off ([metrics] enabled = false)");
    }
    let at = config.metrics.listen.unwrap_or(config.listen);
    let url = format!("http://{at}/metrics");
    let mut req = reqwest::Client::new()
        .get(&url)
        .timeout(std::time::Duration::from_secs(2));
    if let Some(t) = &config.metrics.token {
        req = req.bearer_auth(t);
    }
    match req.send().await {
        Ok(resp) if resp.status().is_success() => r.ok(&format!("metrics: {url} answers")),
        Ok(resp) => r.fail(&format!("metrics: {url} answered HTTP {}", resp.status())),
        Err(_) => r.warn(&format!(
            "metrics: nothing answers at {url} (is genq running with this config?)"
        )),
    }
}

async fn provider(config: &Config, u: &Upstream, r: &mut Report) {
    let p = config.provider(&u.name).expect("built from this config");
    let name = &p.name;
    let base = p.base_url.as_deref().unwrap_or_default();
    match u.probe(None, "").await {
        Ok(status) => r.ok(&format!("provider {name}: {base} answers (HTTP {status})")),
        Err(e) => {
            return r.fail(&format!(
                "provider {name}: {base} is not reachable ({e}); check base_url and the network"
            ));
        }
    }
    let check = p
        .check_path
        .clone()
        .or_else(|| (p.kind == ProviderType::Http).then(|| "/models".to_string()));
    match check {
        None => r.warn(&format!(
            "provider {name}: keys not checked; set check_path to a cheap GET that needs a key"
        )),
        Some(path) => {
            for (i, key) in u.keys.keys().iter().enumerate() {
                match u.probe(Some(i), &path).await {
                    Ok(s) if (200..300).contains(&s) => {
                        r.ok(&format!("key {}: accepted (GET {path})", key.label))
                    }
                    Ok(s @ 401..=403) => r.fail(&format!(
                        "key {}: refused with HTTP {s} (GET {path}); replace or top up this key",
                        key.label
                    )),
                    Ok(s) => r.warn(&format!(
                        "key {}: GET {path} answered HTTP {s}; set check_path to an endpoint that checks keys",
                        key.label
                    )),
                    Err(e) => r.fail(&format!("key {}: {e}", key.label)),
                }
            }
        }
    }
    limits(config, p, r);
}

/// Limits that cannot all hold, or that leave capacity unused.
fn limits(config: &Config, p: &genq_config::Provider, r: &mut Report) {
    let name = &p.name;
    let keys = p.keys.len() as u64;
    let mut fine = true;
    for (what, total, per_key) in [
        ("requests", p.requests_per_minute, p.key_requests_per_minute),
        ("tokens", p.tokens_per_minute, p.key_tokens_per_minute),
    ] {
        if let (Some(total), Some(per_key)) = (total, per_key)
            && (per_key as u64) * keys < total as u64
        {
            fine = false;
            r.warn(&format!(
                "provider {name}: {what}_per_minute = {total} cannot be reached: {keys} key(s) x key_{what}_per_minute = {per_key}"
            ));
        }
    }
    let tpm = [p.tokens_per_minute, p.key_tokens_per_minute]
        .into_iter()
        .flatten()
        .min();
    for k in config
        .kinds
        .iter()
        .filter(|k| k.provider.as_deref() == Some(name))
    {
        if let (Some(tpm), Some(est)) = (tpm, k.estimated_tokens)
            && est > tpm
        {
            fine = false;
            r.fail(&format!(
                "kind {}: estimated_tokens = {est} is more than {name}'s tokens per minute ({tpm}); no request would ever fit",
                k.name
            ));
        }
    }
    if p.kind == ProviderType::Http
        && let Some(max) = p.max_concurrent
        && max > config.worker.concurrency
    {
        fine = false;
        r.warn(&format!(
            "provider {name}: max_concurrent = {max} is more than worker.concurrency = {}: one process cannot use it all",
            config.worker.concurrency
        ));
    }
    if p.kind == ProviderType::Task && p.max_concurrent.is_none() {
        fine = false;
        r.warn(&format!(
            "provider {name}: no max_concurrent: nothing bounds the tasks in flight"
        ));
    }
    if fine {
        r.ok(&format!("provider {name}: limits consistent"));
    }
}
