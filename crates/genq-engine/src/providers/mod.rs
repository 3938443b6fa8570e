//! Providers: the external AI APIs (and the in-process demo) that run attempts.
//!
//! Each provider type turns into a [`Handler`]. Today: `demo`. The `http` (sync POST) and
//! `task` (create-then-poll) types, key pools and cluster-wide rate limits belong here, one
//! module each, built by [`build`] from `[[providers]]`.

pub mod demo;

use crate::{Handler, SetupError};
use genq_config::{Config, ProviderType};
use std::collections::HashMap;
use std::sync::Arc;

/// One handler per configured provider, by provider name.
pub fn build(config: &Config) -> Result<HashMap<String, Arc<dyn Handler>>, SetupError> {
    let mut handlers: HashMap<String, Arc<dyn Handler>> = HashMap::new();
    for (i, provider) in config.providers.iter().enumerate() {
        let handler: Arc<dyn Handler> = match provider.kind {
            ProviderType::Demo => Arc::new(demo::DemoProvider::from_config(provider).map_err(
                |message| SetupError {
                    key: format!("providers[{i}]"),
                    message,
                },
            )?),
            other => {
                return Err(SetupError {
                    key: format!("providers[{i}].type"),
                    message: format!("{other:?} providers are not available in this version"),
                });
            }
        };
        handlers.insert(provider.name.clone(), handler);
    }
    Ok(handlers)
}
