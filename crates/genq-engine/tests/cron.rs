//! The cron service on SQLite with a clock the test moves: a new schedule starts from now,
//! each slot makes one job, after downtime only the latest missed slot runs, a restart repeats
//! nothing, and a paused schedule's slots pass without jobs.

use chrono::{DateTime, TimeZone, Utc};
use genq_core::ManualClock;
use genq_engine::{Engine, EngineSettings};
use genq_store::{JobFilter, JobQuery, SqliteStore, Store};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

fn at(h: u32, m: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 10, h, m, 0).unwrap()
}

const CONFIG: &str = r#"
[users]
default_plan = "enterprise"
[[providers]]
name = "demo"
type = "demo"
[[kinds]]
name = "report.hourly"
provider = "demo"
[[schedules]]
name = "hourly"
cron = "0 * * * *"
kind = "report.hourly"
user_id = "system"
payload = { report = "usage" }
"#;

struct Running {
    engine: Engine,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

async fn start(store: Arc<dyn Store>, clock: Arc<ManualClock>) -> Running {
    let config = genq_config::Config::from_toml("cron.toml", CONFIG, &Default::default()).unwrap();
    let engine =
        Engine::from_config_with_clock(store, &config, EngineSettings::from_config(&config), clock)
            .await
            .unwrap();
    let stop = CancellationToken::new();
    // No workers: the jobs stay queued for the test to count.
    let (e, s) = (engine.clone(), stop.clone());
    let task = tokio::spawn(async move { e.run(s, false).await });
    Running { engine, stop, task }
}

impl Running {
    async fn stop(self) {
        self.stop.cancel();
        self.task.await.unwrap();
    }
}

/// The schedule's jobs' idempotency keys, oldest first.
async fn slots(store: &Arc<dyn Store>) -> Vec<String> {
    let page = store
        .jobs(&JobQuery::newest(JobFilter::default(), 100))
        .await
        .unwrap();
    let mut keys: Vec<String> = page
        .jobs
        .into_iter()
        .filter_map(|j| j.idempotency_key)
        .collect();
    keys.sort();
    keys
}

/// Move the clock, wake the service, and wait (bounded) until it has looked at the schedule.
async fn tick(r: &Running, store: &Arc<dyn Store>, clock: &ManualClock, to: DateTime<Utc>) {
    clock.set(to);
    r.engine.wake().schedules();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let states = store.schedules().await.unwrap();
        let covered = states
            .iter()
            .find(|s| s.name == "hourly")
            .map(|s| s.covered_until);
        let expected = genq_core::schedule::Plan::parse("0 * * * *", "UTC")
            .unwrap()
            .last_slot(to)
            .unwrap();
        if covered.is_some_and(|c| c >= expected.min(to)) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the schedule was not looked at: {states:?}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_job_per_slot_and_only_the_latest_missed_one() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(dir.path().join("genq.db")).unwrap());
    let clock = Arc::new(ManualClock::new(at(10, 30)));
    let r = start(store.clone(), clock.clone()).await;
    // First seen at 10:30: the 10:00 slot is in the past and does not run.
    tick(&r, &store, &clock, at(10, 30)).await;
    assert!(slots(&store).await.is_empty());
    tick(&r, &store, &clock, at(11, 0)).await;
    tick(&r, &store, &clock, at(11, 20)).await;
    assert_eq!(
        slots(&store).await,
        ["schedule:hourly:2026-03-10T11:00:00Z"]
    );
    // Down from 11:20 to 14:10: one job, for 14:00, none for 12:00 and 13:00.
    r.stop().await;
    clock.set(at(14, 10));
    let r = start(store.clone(), clock.clone()).await;
    tick(&r, &store, &clock, at(14, 10)).await;
    assert_eq!(
        slots(&store).await,
        [
            "schedule:hourly:2026-03-10T11:00:00Z",
            "schedule:hourly:2026-03-10T14:00:00Z"
        ]
    );
    // A restart within the hour repeats nothing.
    r.stop().await;
    let r = start(store.clone(), clock.clone()).await;
    tick(&r, &store, &clock, at(14, 50)).await;
    assert_eq!(slots(&store).await.len(), 2);
    // Paused over 15:00 and 16:00: no jobs, and the resume does not catch them up.
    store
        .pause_schedule("hourly", true, at(14, 50))
        .await
        .unwrap();
    tick(&r, &store, &clock, at(15, 5)).await;
    tick(&r, &store, &clock, at(16, 5)).await;
    store
        .pause_schedule("hourly", false, at(16, 6))
        .await
        .unwrap();
    tick(&r, &store, &clock, at(16, 30)).await;
    assert_eq!(slots(&store).await.len(), 2);
    tick(&r, &store, &clock, at(17, 0)).await;
    let all = slots(&store).await;
    assert_eq!(all.last().unwrap(), "schedule:hourly:2026-03-10T17:00:00Z");
    assert_eq!(all.len(), 3);
    let state = store.schedules().await.unwrap().remove(0);
    assert_eq!(state.last_slot, Some(at(17, 0)));
    assert!(state.last_job_id.is_some() && state.last_error.is_none());
    r.stop().await;
}
