//! `genq doctor`: check the config, the database and every provider and key, and print what is
//! wrong and what to do about it. Exits non-zero when something would stop genq from working.

use crate::serve::{load_config, open_store};
use genq_config::{Config, ProviderType};
use genq_engine::providers::{self, pace::LocalBudgets, slots::LocalSlots, upstream::Upstream};
use std::path::Path;
use std::sync::Arc;

#[derive(Default)]
struct Report {
    failures: usize,
    warnings: usize,
}

impl Report {
    fn ok(&self, what: &str) {
        println!("ok    {what}");
    }
    fn warn(&mut self, what: &str) {
        self.warnings += 1;
        println!("warn  {what}");
    }
    fn fail(&mut self, what: &str) {
        self.failures += 1;
        println!("FAIL  {what}");
    }
}

pub async fn run(config_path: Option<&Path>) -> anyhow::Result<()> {
    let mut r = Report::default();
    let config = match load_config(config_path) {
        Ok(c) => c,
        Err(e) => {
            r.fail(&format!("config: {e:#}"));
            anyhow::bail!("the config is invalid; fix the key named above");
        }
    };
    r.ok(&format!(
        "config {}",
        config_path.map_or("(none: the zero-config demo setup)".into(), |p| p
            .display()
            .to_string())
    ));
    database(&config, &mut r).await;
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
    println!("{} failed, {} warnings", r.failures, r.warnings);
    if r.failures > 0 {
        anyhow::bail!("genq doctor found {} problem(s)", r.failures);
    }
    Ok(())
}

async fn database(config: &Config, r: &mut Report) {
    let store = match open_store(config).await {
        Ok(s) => s,
        Err(e) => return r.fail(&format!("database {}: {e:#}", config.database_label())),
    };
    match store.ping().await {
        Ok(()) => r.ok(&format!("database {} answers", config.database_label())),
        Err(e) => r.fail(&format!("database {}: {e}", config.database_label())),
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
