//! A provider's key pool (SPEC §7): round-robin over `ok` keys; a 429 cools a key until its
//! `Retry-After`; a `billing` failure disables it for `key_disable_seconds` or until an admin
//! enables it. A key is named by its label (`openrouter#2`) everywhere; its secret appears only
//! in the `Authorization` header.

use serde::Serialize;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::time::{Duration, SystemTime};
use tokio::time::Instant;

/// How long a 429 without Retry-After cools a key.
pub const DEFAULT_COOLING: Duration = Duration::from_secs(60);

pub struct Key {
    pub label: String,
    pub(crate) secret: String,
    state: Mutex<KeyState>,
    pub requests: AtomicU64,
    pub rate_limited: AtomicU64,
    pub errors: AtomicU64,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum KeyState {
    Ok,
    Cooling(Instant),
    Disabled(Instant),
}

pub struct KeyPool {
    provider: String,
    keys: Vec<Key>,
    next: AtomicUsize,
    disable_for: Duration,
}

/// A key as `GET /v1/admin/providers` shows it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct KeyView {
    pub label: String,
    /// `ok`, `cooling` or `disabled`.
    pub state: &'static str,
    /// When a cooling or disabled key becomes usable again by itself (RFC 3339).
    pub until: Option<String>,
    pub requests: u64,
    pub rate_limited: u64,
    pub errors: u64,
}

impl KeyPool {
    pub fn new(provider: &str, secrets: &[String], disable_for: Duration) -> KeyPool {
        KeyPool {
            provider: provider.to_string(),
            keys: secrets
                .iter()
                .enumerate()
                .map(|(i, secret)| Key {
                    label: format!("{provider}#{}", i + 1),
                    secret: secret.clone(),
                    state: Mutex::new(KeyState::Ok),
                    requests: AtomicU64::new(0),
                    rate_limited: AtomicU64::new(0),
                    errors: AtomicU64::new(0),
                })
                .collect(),
            next: AtomicUsize::new(0),
            disable_for,
        }
    }

    /// The next usable key, round-robin; or, when none is, how long until one may be and why.
    pub fn pick(&self) -> Result<&Key, (Duration, String)> {
        self.first_usable(self.next.fetch_add(1, Relaxed))
    }

    /// The first usable key from position `start` on; or how long until one may be, and why.
    fn first_usable(&self, start: usize) -> Result<&Key, (Duration, String)> {
        let now = Instant::now();
        let mut soonest = Duration::MAX;
        let mut why = Vec::new();
        for i in 0..self.keys.len() {
            let key = &self.keys[(start + i) % self.keys.len()];
            match key.usable_at(now) {
                None => return Ok(key),
                Some((until, what)) => {
                    why.push(format!("{} {what}", key.label));
                    soonest = soonest.min(until - now);
                }
            }
        }
        Err((soonest, why.join(", ")))
    }

    /// How long until some key is usable, and why none is; `None` if one is now.
    pub fn blocked_for(&self) -> Option<(Duration, String)> {
        self.first_usable(0).err()
    }

    pub fn cool(&self, key: &Key, wait: Option<Duration>) {
        let until = Instant::now() + wait.unwrap_or(DEFAULT_COOLING);
        let mut state = key.state.lock().unwrap();
        // A later cooling wins; a disabled key stays disabled.
        match *state {
            KeyState::Disabled(_) => {}
            KeyState::Cooling(t) if t >= until => {}
            _ => *state = KeyState::Cooling(until),
        }
    }

    pub fn disable(&self, key: &Key) {
        *key.state.lock().unwrap() = KeyState::Disabled(Instant::now() + self.disable_for);
        tracing::warn!(provider = %self.provider, key = %key.label, "key disabled after a billing failure");
    }

    /// An admin's re-enable: `false` if no key has that label.
    pub fn enable(&self, label: &str) -> bool {
        let Some(key) = self.keys.iter().find(|k| k.label == label) else {
            return false;
        };
        *key.state.lock().unwrap() = KeyState::Ok;
        tracing::info!(provider = %self.provider, key = %label, "key enabled by an admin");
        true
    }

    pub fn keys(&self) -> &[Key] {
        &self.keys
    }

    pub fn views(&self) -> Vec<KeyView> {
        let now = Instant::now();
        let wall = SystemTime::now();
        self.keys
            .iter()
            .map(|k| {
                let (state, until) = match k.usable_at(now) {
                    None => ("ok", None),
                    Some((until, what)) => {
                        let at = chrono::DateTime::<chrono::Utc>::from(wall + (until - now));
                        (
                            what,
                            Some(at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
                        )
                    }
                };
                KeyView {
                    label: k.label.clone(),
                    state,
                    until,
                    requests: k.requests.load(Relaxed),
                    rate_limited: k.rate_limited.load(Relaxed),
                    errors: k.errors.load(Relaxed),
                }
            })
            .collect()
    }
}

impl Key {
    /// `None` if usable at `now`; else until when, and why.
    fn usable_at(&self, now: Instant) -> Option<(Instant, &'static str)> {
        let mut state = self.state.lock().unwrap();
        match *state {
            KeyState::Ok => None,
            KeyState::Cooling(t) | KeyState::Disabled(t) if t <= now => {
                *state = KeyState::Ok;
                None
            }
            KeyState::Cooling(t) => Some((t, "cooling")),
            KeyState::Disabled(t) => Some((t, "disabled")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool() -> KeyPool {
        KeyPool::new("p", &["a".into(), "b".into()], Duration::from_secs(3600))
    }

    #[tokio::test]
    async fn one_cooling_key_blocks() {
        let pool = KeyPool::new("p", &["a".into()], Duration::from_secs(3600));
        let k = pool.pick().unwrap();
        pool.cool(k, Some(Duration::from_secs(1)));
        assert!(pool.blocked_for().is_some());
    }

    #[tokio::test(start_paused = true)]
    async fn round_robin_skips_cooling_and_disabled_keys() {
        let pool = pool();
        let first = pool.pick().unwrap().label.clone();
        let second = pool.pick().unwrap().label.clone();
        assert_ne!(first, second);
        pool.cool(&pool.keys()[0], Some(Duration::from_secs(5)));
        for _ in 0..3 {
            assert_eq!(pool.pick().unwrap().label, "p#2");
        }
        pool.disable(&pool.keys()[1]);
        let (wait, why) = pool.pick().err().unwrap();
        assert_eq!(wait, Duration::from_secs(5));
        assert!(
            why.contains("p#1 cooling") && why.contains("p#2 disabled"),
            "{why}"
        );
        assert_eq!(
            pool.blocked_for().map(|b| b.0),
            Some(Duration::from_secs(5))
        );
        let views = pool.views();
        assert_eq!((views[0].state, views[1].state), ("cooling", "disabled"));
        assert!(views[1].until.is_some());

        tokio::time::advance(Duration::from_secs(5)).await;
        assert_eq!(pool.pick().unwrap().label, "p#1");
        assert!(pool.blocked_for().is_none());
        assert!(pool.enable("p#2"));
        assert!(!pool.enable("p#3"));
        assert_eq!(pool.views()[1].state, "ok");
    }
}
