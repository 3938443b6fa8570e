//! Providers: the external AI APIs (and the in-process demo) that run attempts.
//!
//! Each provider type turns into a [`Handler`] per kind: `demo` (in process), `http` (POST the
//! payload, take the JSON answer). The `task` type (create-then-poll), key states, and
//! cluster-wide rate limits belong here too, one module each.

pub mod classify;
pub mod demo;
pub mod http;

use crate::{Handler, SetupError};
use genq_config::{Config, ProviderType};
use std::collections::HashMap;
use std::sync::Arc;

/// The handler of every in-process kind, by kind name.
pub fn build(config: &Config) -> Result<HashMap<String, Arc<dyn Handler>>, SetupError> {
    let setup = |key: String| move |message: String| SetupError { key, message };
    let mut demo: HashMap<&str, Arc<demo::DemoProvider>> = HashMap::new();
    let mut http: HashMap<&str, Arc<http::HttpProvider>> = HashMap::new();
    for (i, p) in config.providers.iter().enumerate() {
        match p.kind {
            ProviderType::Demo => {
                let provider =
                    demo::DemoProvider::from_config(p).map_err(setup(format!("providers[{i}]")))?;
                demo.insert(&p.name, Arc::new(provider));
            }
            ProviderType::Http => {
                let provider =
                    http::HttpProvider::from_config(p).map_err(setup(format!("providers[{i}]")))?;
                http.insert(&p.name, Arc::new(provider));
            }
            ProviderType::Task => {
                return Err(SetupError {
                    key: format!("providers[{i}].type"),
                    message: "task providers are not available in this version".into(),
                });
            }
        }
    }
    let mut handlers: HashMap<String, Arc<dyn Handler>> = HashMap::new();
    for kind in config.kinds.iter().filter(|k| !k.external) {
        let Some(name) = kind.provider.as_deref() else {
            continue;
        };
        let handler: Arc<dyn Handler> = if let Some(p) = demo.get(name) {
            p.clone()
        } else if let Some(p) = http.get(name) {
            // Validated at load time: an http kind has a path.
            Arc::new(p.at(kind.path.as_deref().unwrap_or("")))
        } else {
            continue;
        };
        handlers.insert(kind.name.clone(), handler);
    }
    Ok(handlers)
}
