//! A schedule every second, run by real `genq` processes killed and restarted in between:
//! exactly one job per slot, none missed, on SQLite (one process restarted) and on PostgreSQL
//! (two processes, one of them killed and restarted).

mod common;

use common::*;
use reqwest::Method;
use std::collections::BTreeSet;
use std::time::Duration;

fn write_config(dir: &std::path::Path, database: &str) {
    let text = format!(
        r#"
listen = "127.0.0.1:0"
database = "{database}"
[auth]
admin_tokens = ["{ADMIN}"]
[users]
default_plan = "enterprise"
[[providers]]
name = "demo"
type = "demo"
latency = "5ms"
[[kinds]]
name = "tick.report"
provider = "demo"
[[schedules]]
name = "tick"
cron = "* * * * * *"
kind = "tick.report"
user_id = "system"
"#
    );
    std::fs::write(dir.join("genq.toml"), text).unwrap();
}

/// The slots (seconds) of the schedule's jobs; every job's key is one slot's.
async fn slots(url: &str) -> Vec<i64> {
    let (status, page) =
        client_call(url, Method::GET, "/v1/jobs?user_id=system&limit=200", None).await;
    assert_eq!(status, 200, "{page}");
    let keys: Vec<String> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["idempotency_key"].as_str().unwrap().to_string())
        .collect();
    let slots: BTreeSet<i64> = keys
        .iter()
        .map(|k| {
            let at = k.strip_prefix("schedule:tick:").unwrap();
            chrono::DateTime::parse_from_rfc3339(at)
                .unwrap()
                .timestamp()
        })
        .collect();
    assert_eq!(slots.len(), keys.len(), "one job per slot: {keys:?}");
    slots.into_iter().collect()
}

/// Every second from the first slot to the last has its job, except (when genq was down for
/// longer than a second) seconds inside `down`: after downtime only the latest missed slot runs.
fn assert_no_slot_missed(slots: &[i64], down: Option<(i64, i64)>) {
    assert!(slots.len() >= 5, "{slots:?}");
    for pair in slots.windows(2) {
        for missing in pair[0] + 1..pair[1] {
            assert!(
                down.is_some_and(|(from, to)| from <= missing && missing < to),
                "slot {missing} is missing: {slots:?}, down {down:?}"
            );
        }
    }
}

fn unix_now() -> i64 {
    chrono::Utc::now().timestamp()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_slot_once_across_restarts_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("genq.db").display());
    write_config(dir.path(), &db);
    let first = Process::serve(dir.path());
    tokio::time::sleep(Duration::from_millis(3300)).await;
    let down_from = unix_now();
    first.signal("KILL");
    drop(first);
    // Back (usually within the second): the slot it missed last runs.
    let second = Process::serve(dir.path());
    let up_at = unix_now();
    tokio::time::sleep(Duration::from_millis(3000)).await;
    assert_no_slot_missed(&slots(&second.url).await, Some((down_from, up_at)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_slot_once_with_two_processes_on_postgres() {
    let db = Database::create().await;
    let dir = tempfile::tempdir().unwrap();
    write_config(dir.path(), &db.url());
    let serve = Process::serve(dir.path());
    let (worker, _) = Process::worker(dir.path());
    tokio::time::sleep(Duration::from_millis(3300)).await;
    worker.signal("KILL");
    drop(worker);
    let (worker, _) = Process::worker(dir.path());
    tokio::time::sleep(Duration::from_millis(3300)).await;
    let found = slots(&serve.url).await;
    drop((serve, worker));
    // The serve process ran throughout: not one slot is missing.
    assert_no_slot_missed(&found, None);
    db.drop_it().await;
}
