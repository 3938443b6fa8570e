//! A provider's key pool (SPEC §7): round-robin over `ok` keys; a 429 cools a key until its
//! `Retry-After`; a `billing` failure disables it for `key_disable_seconds` or until an admin
//! enables it. A key is named by its label (`openrouter#2`) everywhere; its secret appears only
//! in the `Authorization` header.
//!
//! A key that has not answered OK yet (new, enabled again, or back from cooling) is on
//! probation: it carries one request at a time until one is answered OK, so a key that turns
//! out to be out of credit costs one request, not one per slot.

use serde::Serialize;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::time::{Duration, SystemTime};
use tokio::time::Instant;

/// How long a 429 without Retry-After cools a key.
pub const DEFAULT_COOLING: Duration = Duration::from_secs(60);
/// How long a key an admin disabled stays so: until an admin enables it, in practice.
const ADMIN_DISABLED: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

pub struct Key {
    pub label: String,
    pub(crate) secret: String,
    state: Mutex<KeyState>,
    pub requests: AtomicU64,
    /// Its requests in the last minute: the pace the dashboard shows beside the budgets.
    pub recent: LastMinute,
    pub rate_limited: AtomicU64,
    pub errors: AtomicU64,
    /// Answered OK since it was last new, cooled, disabled or enabled.
    proven: AtomicBool,
    /// Its one request on probation is in flight.
    probing: AtomicBool,
}

/// Counts of the last 60 seconds, one per second (a ring: each slot remembers which second it
/// counts). A mutex, not atomics: a provider's requests come at most thousands a second.
pub struct LastMinute {
    slots: Mutex<[(u64, u64); 60]>,
}

impl Default for LastMinute {
    fn default() -> Self {
        LastMinute {
            slots: Mutex::new([(0, 0); 60]),
        }
    }
}

impl LastMinute {
    fn second(at: SystemTime) -> u64 {
        at.duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0)
    }

    pub fn record(&self, at: SystemTime) {
        let s = Self::second(at);
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        let slot = &mut slots[(s % 60) as usize];
        if slot.0 != s {
            *slot = (s, 0);
        }
        slot.1 += 1;
    }

    /// What the 60 seconds up to `at` counted.
    pub fn total(&self, at: SystemTime) -> u64 {
        let s = Self::second(at);
        let slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        slots
            .iter()
            .filter(|(second, _)| *second + 60 > s && *second <= s)
            .map(|(_, n)| n)
            .sum()
    }
}

/// A key picked for one request; on probation, the key's one request. Dropping it ends the
/// request ([`Picked::answered_ok`] first if it was answered OK).
pub struct Picked<'a> {
    pub key: &'a Key,
    /// Its position in the pool (its budgets are per position).
    pub index: usize,
    pool: &'a KeyPool,
    probe: bool,
}

impl Picked<'_> {
    pub fn answered_ok(&self) {
        self.key.proven.store(true, Relaxed);
    }
}

impl Drop for Picked<'_> {
    fn drop(&mut self) {
        if self.probe {
            self.key.probing.store(false, Relaxed);
            self.pool.probe_ended.notify_waiters();
        }
    }
}

/// Why no key can take a request now.
#[derive(Debug, Clone, PartialEq)]
pub enum NoKey {
    /// None is usable (cooling or disabled) for this long at least.
    Unusable(Duration, String),
    /// Usable keys are all on probation with their one request in flight.
    Probing,
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
    /// A request on probation ended: a key may be free to pick.
    probe_ended: tokio::sync::Notify,
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
    /// Its requests in the last minute (this process's).
    pub requests_last_minute: u64,
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
                    recent: LastMinute::default(),
                    rate_limited: AtomicU64::new(0),
                    errors: AtomicU64::new(0),
                    proven: AtomicBool::new(false),
                    probing: AtomicBool::new(false),
                })
                .collect(),
            next: AtomicUsize::new(0),
            disable_for,
            probe_ended: tokio::sync::Notify::new(),
        }
    }

    /// The next usable key, round-robin over the usable ones (a skipped key's turn goes to
    /// the next, not always to the same neighbour), skipping a key on probation whose one
    /// request is in flight.
    pub fn pick(&self) -> Result<Picked<'_>, NoKey> {
        let n = self.keys.len();
        let start = self.next.fetch_add(1, Relaxed);
        let now = Instant::now();
        let mut probing = false;
        for i in 0..n {
            let index = (start + i) % n;
            let key = &self.keys[index];
            if key.usable_at(now).is_some() {
                continue;
            }
            let probe = !key.proven.load(Relaxed);
            if probe && key.probing.swap(true, Relaxed) {
                probing = true;
                continue;
            }
            if i > 0 {
                self.next.store(index + 1, Relaxed);
            }
            return Ok(Picked {
                key,
                index,
                pool: self,
                probe,
            });
        }
        if probing {
            return Err(NoKey::Probing);
        }
        let (wait, why) = self
            .first_usable(start)
            .err()
            .unwrap_or((Duration::ZERO, String::new()));
        Err(NoKey::Unusable(wait, why))
    }

    /// Ready when a request on probation ends after this call; make it before a [`pick`] that
    /// may find every key probing, so that an end in between is not missed.
    ///
    /// [`pick`]: KeyPool::pick
    pub fn probe_ended(&self) -> tokio::sync::futures::Notified<'_> {
        self.probe_ended.notified()
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
        key.proven.store(false, Relaxed);
    }

    pub fn disable(&self, key: &Key) {
        *key.state.lock().unwrap() = KeyState::Disabled(Instant::now() + self.disable_for);
        key.proven.store(false, Relaxed);
        tracing::warn!(provider = %self.provider, key = %key.label, "key disabled after a billing failure");
    }

    /// An admin enables a key, or disables it until an admin enables it: `false` if no key
    /// has that label.
    pub fn set_by_admin(&self, label: &str, enabled: bool) -> bool {
        let Some(key) = self.keys.iter().find(|k| k.label == label) else {
            return false;
        };
        *key.state.lock().unwrap() = if enabled {
            KeyState::Ok
        } else {
            KeyState::Disabled(Instant::now() + ADMIN_DISABLED)
        };
        key.proven.store(false, Relaxed);
        let change = if enabled { "enabled" } else { "disabled" };
        tracing::info!(provider = %self.provider, key = %label, "key {change} by an admin");
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
                    // Disabled by an admin: until an admin enables it.
                    Some((until, what)) if until - now > ADMIN_DISABLED / 2 => (what, None),
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
                    requests_last_minute: k.recent.total(wall),
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

    #[test]
    fn the_last_minute_counts_sixty_seconds() {
        let recent = LastMinute::default();
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let at = |s: u64| t + Duration::from_secs(s);
        for s in [0, 0, 1, 59] {
            recent.record(at(s));
        }
        assert_eq!(recent.total(at(59)), 4);
        assert_eq!(recent.total(at(60)), 2, "second 0 has passed");
        recent.record(at(60));
        assert_eq!(recent.total(at(60)), 3, "second 60 took second 0's slot");
        assert_eq!(recent.total(at(119)), 1);
        recent.record(at(130));
        assert_eq!(recent.total(at(130)), 1);
        assert_eq!(recent.total(at(200)), 0);
    }

    fn pool() -> KeyPool {
        KeyPool::new("p", &["a".into(), "b".into()], Duration::from_secs(3600))
    }

    /// Labels of keys picked (and their requests ended at once, answered OK).
    fn picks(pool: &KeyPool, n: usize) -> Vec<String> {
        (0..n)
            .map(|_| {
                let picked = pool.pick().unwrap();
                picked.answered_ok();
                picked.key.label.clone()
            })
            .collect()
    }

    #[tokio::test]
    async fn one_cooling_key_blocks() {
        let pool = KeyPool::new("p", &["a".into()], Duration::from_secs(3600));
        let k = pool.pick().unwrap().key;
        pool.cool(k, Some(Duration::from_secs(1)));
        assert!(pool.blocked_for().is_some());
    }

    #[tokio::test]
    async fn a_skipped_keys_turn_is_shared_by_the_others() {
        let pool = KeyPool::new(
            "p",
            &["a".into(), "b".into(), "c".into()],
            Duration::from_secs(3600),
        );
        picks(&pool, 3);
        pool.disable(&pool.keys()[2]);
        let labels = picks(&pool, 60);
        let p1 = labels.iter().filter(|l| *l == "p#1").count();
        assert_eq!((p1, 60 - p1), (30, 30), "{labels:?}");
    }

    #[tokio::test]
    async fn a_key_on_probation_carries_one_request_until_answered_ok() {
        let pool = KeyPool::new("p", &["a".into(), "b".into()], Duration::from_secs(3600));
        // Both new: one request each, and a third finds them probing.
        let first = pool.pick().unwrap();
        let second = pool.pick().unwrap();
        assert_ne!(first.key.label, second.key.label);
        assert_eq!(pool.pick().err(), Some(NoKey::Probing));
        // An answer that is not OK leaves the key on probation; the next request probes it.
        let ended = pool.probe_ended();
        drop(first);
        ended.await;
        let again = pool.pick().unwrap();
        assert_eq!(pool.pick().err(), Some(NoKey::Probing));
        again.answered_ok();
        let proven = again.key.label.clone();
        drop(again);
        // A proven key takes any number at once.
        let many: Vec<_> = (0..5).map(|_| pool.pick().unwrap()).collect();
        assert!(many.iter().all(|p| p.key.label == proven));
        drop(many);
        // Cooled, it is on probation again.
        let key = pool.keys().iter().find(|k| k.label == proven).unwrap();
        pool.cool(key, Some(Duration::ZERO));
        let probe = pool.pick().unwrap();
        assert_eq!(probe.key.label, proven);
        drop(second);
    }

    #[tokio::test(start_paused = true)]
    async fn round_robin_skips_cooling_and_disabled_keys() {
        let pool = pool();
        let first = picks(&pool, 1).remove(0);
        let second = picks(&pool, 1).remove(0);
        assert_ne!(first, second);
        pool.cool(&pool.keys()[0], Some(Duration::from_secs(5)));
        for _ in 0..3 {
            assert_eq!(picks(&pool, 1), ["p#2"]);
        }
        pool.disable(&pool.keys()[1]);
        let Some(NoKey::Unusable(wait, why)) = pool.pick().err() else {
            panic!("a key is usable")
        };
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
        assert_eq!(pool.pick().unwrap().key.label, "p#1");
        assert!(pool.blocked_for().is_none());
        assert!(pool.set_by_admin("p#2", true));
        assert!(!pool.set_by_admin("p#3", true));
        assert_eq!(pool.views()[1].state, "ok");
    }
}
