//! What `genq serve` runs with no config at all: the in-process demo provider and three demo
//! kinds, so the whole lifecycle can be tried without an API key.

use crate::{Kind, Provider, ProviderType};
use std::time::Duration;

pub const DEMO_KINDS: [&str; 3] = ["card.generate", "image.generate", "video.generate"];

pub fn demo_provider() -> Provider {
    Provider {
        name: "demo".into(),
        kind: ProviderType::Demo,
        latency: Some(Duration::from_millis(200)),
        ..Provider::default()
    }
}

pub fn demo_kinds() -> Vec<Kind> {
    DEMO_KINDS
        .iter()
        .map(|name| Kind {
            name: name.to_string(),
            provider: Some("demo".into()),
            external: false,
            path: None,
            cost: 0,
            priority: 0,
            timeout: Some(Duration::from_secs(120)),
            max_retries: None,
            retry_delays: None,
            estimated_tokens: None,
        })
        .collect()
}
