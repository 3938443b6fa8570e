//! Providers: the external AI APIs (and the in-process demo) that run attempts.
//!
//! - [`demo`]: in process, no key needed.
//! - [`upstream`]: one external provider: its [`keys`] pool, its rate budgets ([`pace`]), its
//!   concurrency and [`classify`] rules, and the one function that sends it a request.
//! - [`http`] and [`task`]: the two external provider types, as one handler per kind.
//!
//! [`Providers`] is what the config builds: the handler of every in-process kind, and the
//! external providers by name for `GET /v1/admin/providers` and `genq doctor`.

pub mod classify;
pub mod demo;
pub mod http;
pub mod keys;
pub mod pace;
pub mod redact;
pub mod slots;
pub mod task;
pub mod upstream;

use crate::{Handler, SetupError};
use genq_config::{Config, ProviderType};
use std::collections::HashMap;
use std::sync::Arc;
use upstream::{ProviderView, Upstream};

/// The providers of one process.
#[derive(Default)]
pub struct Providers {
    /// The handler of every in-process kind, by kind name.
    pub handlers: HashMap<String, Arc<dyn Handler>>,
    /// External providers (`http`, `task`), in config order.
    pub upstreams: Vec<Arc<Upstream>>,
    /// Takes every configured key out of what genq keeps.
    pub redactor: redact::Redactor,
}

impl Providers {
    pub async fn views(&self) -> Vec<ProviderView> {
        let mut views = Vec::with_capacity(self.upstreams.len());
        for u in &self.upstreams {
            views.push(u.view().await);
        }
        views
    }

    /// An admin enables a key (also one disabled after a billing failure) or disables one
    /// until an admin enables it. `Err` says which name was unknown.
    pub async fn set_key(
        &self,
        provider: &str,
        label: &str,
        enabled: bool,
    ) -> Result<ProviderView, &'static str> {
        let upstream = self
            .upstreams
            .iter()
            .find(|u| u.name == provider)
            .ok_or("provider")?;
        if !upstream.keys.set_by_admin(label, enabled) {
            return Err("key");
        }
        Ok(upstream.view().await)
    }
}

/// Build every provider of the config, with rate budgets kept in `budgets` and
/// `max_concurrent` in `slots`.
pub fn build(
    config: &Config,
    budgets: Arc<dyn pace::Budgets>,
    slots: Arc<dyn slots::Slots>,
    metrics: Arc<crate::metrics::Metrics>,
) -> Result<Providers, SetupError> {
    let setup = |key: String| move |message: String| SetupError { key, message };
    let mut demo: HashMap<&str, Arc<demo::DemoProvider>> = HashMap::new();
    let mut upstreams: HashMap<&str, Arc<Upstream>> = HashMap::new();
    let mut providers = Providers {
        redactor: redact::Redactor::new(
            config
                .providers
                .iter()
                .flat_map(|p| p.keys.iter().map(String::as_str)),
        ),
        ..Providers::default()
    };
    for (i, p) in config.providers.iter().enumerate() {
        match p.kind {
            ProviderType::Demo => {
                let provider =
                    demo::DemoProvider::from_config(p).map_err(setup(format!("providers[{i}]")))?;
                demo.insert(&p.name, Arc::new(provider));
            }
            ProviderType::Http | ProviderType::Task => {
                let upstream = Arc::new(
                    Upstream::from_config(
                        p,
                        budgets.clone(),
                        slots.clone(),
                        providers.redactor.clone(),
                        metrics.clone(),
                    )
                    .map_err(setup(format!("providers[{i}]")))?,
                );
                upstreams.insert(&p.name, upstream.clone());
                providers.upstreams.push(upstream);
            }
        }
    }
    for kind in config.kinds.iter().filter(|k| !k.external) {
        let Some(name) = kind.provider.as_deref() else {
            continue;
        };
        let estimated_tokens = kind.estimated_tokens.unwrap_or(0);
        let handler: Arc<dyn Handler> = if let Some(p) = demo.get(name) {
            p.clone()
        } else if let Some(u) = upstreams.get(name) {
            match u.kind {
                ProviderType::Task => Arc::new(task::TaskKind {
                    upstream: u.clone(),
                    api: task::TaskApi::from_config(
                        config.provider(name).expect("validated at load"),
                    ),
                    estimated_tokens,
                }),
                // Validated at load time: an http kind has a path.
                _ => Arc::new(http::HttpKind {
                    upstream: u.clone(),
                    path: kind.path.clone().unwrap_or_default(),
                    estimated_tokens,
                }),
            }
        } else {
            continue;
        };
        providers.handlers.insert(kind.name.clone(), handler);
    }
    Ok(providers)
}
