//! A provider's `max_concurrent`: slots taken by requests (`http`) or by tasks in flight
//! (`task`) and given back when they end. A slot expires by itself after its `ttl`, so one whose
//! holder died (a crash, a job canceled while its task was parked) frees itself.
//!
//! [`StoreSlots`] keeps them in the database (PostgreSQL), so the bound holds across every
//! process; [`LocalSlots`] in this process (SQLite: the process is the cluster).

use async_trait::async_trait;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

#[async_trait]
pub trait Slots: Send + Sync {
    /// Take, or renew, one of `max` slots of `name` for `holder`; whether it was taken.
    async fn take(&self, name: &str, holder: &str, max: u32, ttl: Duration) -> bool;

    async fn free(&self, name: &str, holder: &str);

    /// How many slots of `name` are held.
    async fn in_use(&self, name: &str) -> usize;

    /// Take a slot, waiting up to `within` for one to be freed; whether it was taken. Slots
    /// freed by other processes send no signal here, so this asks again every 20 ms.
    async fn take_within(
        &self,
        name: &str,
        holder: &str,
        max: u32,
        ttl: Duration,
        within: Duration,
    ) -> bool {
        let deadline = Instant::now() + within;
        loop {
            if self.take(name, holder, max, ttl).await {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20).min(deadline - Instant::now())).await;
        }
    }
}

/// Slots in this process's memory.
#[derive(Default)]
pub struct LocalSlots {
    held: Mutex<HashMap<String, HashMap<String, Instant>>>,
    /// Wakes waiters when a slot is given back.
    freed: tokio::sync::Notify,
}

impl LocalSlots {
    fn live(
        &self,
        name: &str,
    ) -> std::sync::MutexGuard<'_, HashMap<String, HashMap<String, Instant>>> {
        let mut held = self.held.lock().unwrap();
        let now = Instant::now();
        if let Some(slots) = held.get_mut(name) {
            slots.retain(|_, until| *until > now);
        }
        held
    }
}

#[async_trait]
impl Slots for LocalSlots {
    async fn take(&self, name: &str, holder: &str, max: u32, ttl: Duration) -> bool {
        let mut held = self.live(name);
        let slots = held.entry(name.to_string()).or_default();
        if !slots.contains_key(holder) && slots.len() >= max as usize {
            return false;
        }
        slots.insert(holder.to_string(), Instant::now() + ttl);
        true
    }

    async fn free(&self, name: &str, holder: &str) {
        if let Some(slots) = self.held.lock().unwrap().get_mut(name) {
            slots.remove(holder);
        }
        self.freed.notify_waiters();
    }

    async fn in_use(&self, name: &str) -> usize {
        self.live(name).get(name).map_or(0, HashMap::len)
    }

    /// Woken by `free`; a slot that only expires (its holder in this process is gone) is
    /// found at the deadline at the latest.
    async fn take_within(
        &self,
        name: &str,
        holder: &str,
        max: u32,
        ttl: Duration,
        within: Duration,
    ) -> bool {
        let deadline = Instant::now() + within;
        loop {
            // Registered before the check, so a free in between is not missed.
            let freed = self.freed.notified();
            if self.take(name, holder, max, ttl).await {
                return true;
            }
            tokio::select! {
                _ = freed => {}
                _ = tokio::time::sleep_until(deadline) => return self.take(name, holder, max, ttl).await,
            }
        }
    }
}

/// Slots in the database, shared by every process that uses it.
pub struct StoreSlots {
    shared: Arc<dyn genq_store::Coordination>,
}

impl StoreSlots {
    pub fn new(shared: Arc<dyn genq_store::Coordination>) -> StoreSlots {
        StoreSlots { shared }
    }
}

#[async_trait]
impl Slots for StoreSlots {
    async fn take(&self, name: &str, holder: &str, max: u32, ttl: Duration) -> bool {
        match self.shared.take_slot(name, holder, max, ttl).await {
            Ok(taken) => taken,
            Err(e) => {
                tracing::warn!(error = %e, slots = %name, "concurrency slots unavailable");
                false
            }
        }
    }

    async fn free(&self, name: &str, holder: &str) {
        if let Err(e) = self.shared.free_slot(name, holder).await {
            // The slot expires by itself.
            tracing::warn!(error = %e, slots = %name, "could not give back a slot");
        }
    }

    async fn in_use(&self, name: &str) -> usize {
        match self.shared.slots_in_use(name).await {
            Ok(n) => n as usize,
            // Unknown: as if full, so nothing new starts.
            Err(_) => usize::MAX,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn slots_bound_holders_and_expire() {
        let slots = LocalSlots::default();
        let ttl = Duration::from_secs(10);
        assert!(slots.take("p", "a", 2, ttl).await);
        assert!(slots.take("p", "b", 2, ttl).await);
        assert!(!slots.take("p", "c", 2, ttl).await, "full");
        assert!(
            slots.take("p", "a", 2, ttl).await,
            "a holder renews its own"
        );
        assert_eq!(slots.in_use("p").await, 2);
        slots.free("p", "b").await;
        assert!(slots.take("p", "c", 2, ttl).await);
        tokio::time::advance(Duration::from_secs(11)).await;
        assert_eq!(slots.in_use("p").await, 0, "expired");
        assert!(slots.take("q", "a", 1, ttl).await, "names are separate");
    }

    #[tokio::test(start_paused = true)]
    async fn a_waiter_gets_the_slot_freed_for_it() {
        let slots = std::sync::Arc::new(LocalSlots::default());
        let ttl = Duration::from_secs(60);
        assert!(slots.take("p", "a", 1, ttl).await);
        let waiter = {
            let slots = slots.clone();
            tokio::spawn(async move {
                slots
                    .take_within("p", "b", 1, ttl, Duration::from_secs(2))
                    .await
            })
        };
        tokio::task::yield_now().await;
        slots.free("p", "a").await;
        assert!(waiter.await.unwrap(), "woken by the free");
        assert!(
            !slots
                .take_within("p", "c", 1, ttl, Duration::from_secs(2))
                .await,
            "nobody frees it: not taken by the deadline"
        );
    }
}
