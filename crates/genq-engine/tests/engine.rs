//! The engine against a real SQLite file: the lifecycle, retries, timeouts, cancel, rescue,
//! restart and graceful shutdown.

use async_trait::async_trait;
use genq_core::{ErrorClass, Failure, JobState, RetryPolicy};
use genq_engine::handler::NoopHandler;
use genq_engine::{Attempt, Engine, EngineSettings, Handler, KindRuntime, Reply};
use genq_store::{ClaimRequest, NewJobs, SqliteStore, Store};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Sleeps for `payload.ms`, failing with `payload.fail` on attempts up to `payload.fail_until`.
struct Scripted;

#[async_trait]
impl Handler for Scripted {
    async fn run(&self, a: Attempt) -> Result<Reply, Failure> {
        let ms = a.payload["ms"].as_u64().unwrap_or(0);
        tokio::time::sleep(Duration::from_millis(ms)).await;
        if let Some(class) = a.payload["fail"].as_str()
            && a.attempt as u64 <= a.payload["fail_until"].as_u64().unwrap_or(u64::MAX)
        {
            return Err(Failure::new(class.parse().unwrap(), "scripted"));
        }
        Ok(Reply::Done(json!({"attempt": a.attempt})))
    }
}

struct Setup {
    store: Arc<dyn Store>,
    engine: Engine,
    _dir: tempfile::TempDir,
}

fn settings(node: &str) -> EngineSettings {
    EngineSettings {
        node_id: node.into(),
        concurrency: 4,
        claim_batch: 4,
        lease: Duration::from_millis(600),
        heartbeat: Duration::from_millis(100),
        poll_interval: Duration::from_millis(50),
        shutdown_grace: Duration::from_secs(5),
        metrics: true,
    }
}

fn kinds(timeout: Duration) -> HashMap<String, KindRuntime> {
    let fast = RetryPolicy {
        max_retries: 2,
        delays: vec![Duration::from_millis(20)],
        jitter: 0.0,
    };
    HashMap::from([
        (
            "scripted".to_string(),
            KindRuntime {
                policy: fast,
                timeout,
                handler: Some(Arc::new(Scripted)),
            },
        ),
        (
            "noop".to_string(),
            KindRuntime {
                policy: RetryPolicy::default(),
                timeout,
                handler: Some(Arc::new(NoopHandler)),
            },
        ),
    ])
}

fn setup(s: EngineSettings) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(dir.path().join("genq.db")).unwrap());
    let engine = Engine::new(store.clone(), s, kinds(Duration::from_millis(300)));
    Setup {
        store,
        engine,
        _dir: dir,
    }
}

async fn enqueue(store: &Arc<dyn Store>, kind: &str, payloads: Vec<Value>) -> Vec<String> {
    let out = store
        .enqueue(NewJobs {
            kind: kind.into(),
            user_id: "u1".into(),
            payloads,
            priority: 0,
            run_at: None,
            max_retries: 2,
            cost: 0,
            idempotency_key: None,
            as_batch: false,
            now: chrono::Utc::now(),
            day: chrono::Utc::now().date_naive().to_string(),
            user_defaults: genq_core::UserDefaults {
                plan: "enterprise".into(),
                initial_credits: 0,
            },
        })
        .await
        .unwrap();
    out.jobs.into_iter().map(|j| j.id).collect()
}

/// Wait (bounded) until the job reaches `state`.
async fn until_state(store: &Arc<dyn Store>, id: &str, state: JobState) -> genq_core::Job {
    for _ in 0..400 {
        let job = store.job(id).await.unwrap();
        if job.state == state {
            return job;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!(
        "job {id} never became {state}: {:?}",
        store.job(id).await.unwrap()
    );
}

fn start(engine: &Engine) -> (CancellationToken, tokio::task::JoinHandle<()>) {
    let stop = CancellationToken::new();
    let e = engine.clone();
    let s = stop.clone();
    let handle = tokio::spawn(async move { e.run(s, true).await });
    engine.wake().work();
    (stop, handle)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_run_to_success() {
    let s = setup(settings("n1"));
    let (stop, handle) = start(&s.engine);
    let ids = enqueue(&s.store, "noop", vec![json!({}); 50]).await;
    s.engine.wake().work();
    for id in &ids {
        let job = until_state(&s.store, id, JobState::Succeeded).await;
        assert_eq!(job.attempt, 1);
    }
    stop.cancel();
    handle.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_retry_then_succeed_or_fail() {
    let s = setup(settings("n1"));
    let (stop, handle) = start(&s.engine);
    let ids = enqueue(
        &s.store,
        "scripted",
        vec![
            json!({"fail": "temporary", "fail_until": 1}),
            json!({"fail": "temporary"}),
            json!({"fail": "user_error"}),
        ],
    )
    .await;
    s.engine.wake().work();
    let recovered = until_state(&s.store, &ids[0], JobState::Succeeded).await;
    assert_eq!((recovered.attempt, recovered.retries_used), (2, 1));
    let exhausted = until_state(&s.store, &ids[1], JobState::Failed).await;
    assert_eq!(exhausted.attempt, 3, "first attempt plus max_retries = 2");
    assert_eq!(exhausted.error.unwrap().class, ErrorClass::Temporary);
    let rejected = until_state(&s.store, &ids[2], JobState::Failed).await;
    assert_eq!(rejected.attempt, 1, "user_error is not retried");
    stop.cancel();
    handle.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_attempt_past_its_timeout_is_a_timeout() {
    let s = setup(settings("n1"));
    let (stop, handle) = start(&s.engine);
    let id = enqueue(&s.store, "scripted", vec![json!({"ms": 5_000})])
        .await
        .remove(0);
    s.engine.wake().work();
    let job = until_state(&s.store, &id, JobState::Retrying).await;
    assert_eq!(job.error.unwrap().class, ErrorClass::Timeout);
    stop.cancel();
    handle.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_stops_a_running_attempt() {
    let s = setup(settings("n1"));
    let (stop, handle) = start(&s.engine);
    let id = enqueue(&s.store, "scripted", vec![json!({"ms": 250})])
        .await
        .remove(0);
    s.engine.wake().work();
    until_state(&s.store, &id, JobState::Running).await;
    s.store.cancel(&id, chrono::Utc::now()).await.unwrap();
    // No local shortcut: the heartbeat must notice the lost lease.
    for _ in 0..100 {
        if EngineCountersView::fenced(&s.engine) == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(EngineCountersView::fenced(&s.engine), 1);
    assert_eq!(s.store.job(&id).await.unwrap().state, JobState::Canceled);
    stop.cancel();
    handle.await.unwrap();
}

struct EngineCountersView;
impl EngineCountersView {
    fn fenced(engine: &Engine) -> u64 {
        genq_engine::EngineCounters::get(&engine.counters().fenced)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_workers_job_is_rescued_within_a_lease() {
    let s = setup(settings("n1"));
    let id = enqueue(&s.store, "scripted", vec![json!({})])
        .await
        .remove(0);
    // Another node claims it and dies.
    let now = chrono::Utc::now();
    let claimed = s
        .store
        .claim(ClaimRequest {
            node_id: "dead-node".into(),
            worker_id: "w".into(),
            kinds: vec!["scripted".into()],
            max: 1,
            lease_until: now + chrono::Duration::milliseconds(300),
            now,
        })
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    let (stop, handle) = start(&s.engine);
    let job = until_state(&s.store, &id, JobState::Succeeded).await;
    assert_eq!((job.attempt, job.retries_used), (2, 1));
    assert_eq!(
        genq_engine::EngineCounters::get(&s.engine.counters().rescued),
        1
    );
    stop.cancel();
    handle.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_node_takes_its_leases_back_at_once() {
    let mut long = settings("n1");
    long.lease = Duration::from_secs(3600);
    let s = setup(long);
    let id = enqueue(&s.store, "noop", vec![json!({})]).await.remove(0);
    let now = chrono::Utc::now();
    s.store
        .claim(ClaimRequest {
            node_id: "n1".into(),
            worker_id: "previous run".into(),
            kinds: vec!["noop".into()],
            max: 1,
            lease_until: now + chrono::Duration::hours(1),
            now,
        })
        .await
        .unwrap();
    let (stop, handle) = start(&s.engine);
    let job = until_state(&s.store, &id, JobState::Succeeded).await;
    assert_eq!(job.attempt, 2);
    stop.cancel();
    handle.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_hands_back_what_outlives_the_grace_period() {
    let mut quick = settings("n1");
    quick.shutdown_grace = Duration::from_millis(50);
    let s = setup(quick);
    let (stop, handle) = start(&s.engine);
    let ids = enqueue(
        &s.store,
        "scripted",
        vec![json!({"ms": 10}), json!({"ms": 250})],
    )
    .await;
    s.engine.wake().work();
    until_state(&s.store, &ids[1], JobState::Running).await;
    until_state(&s.store, &ids[0], JobState::Succeeded).await;
    stop.cancel();
    handle.await.unwrap();
    let released = s.store.job(&ids[1]).await.unwrap();
    assert_eq!(released.state, JobState::Retrying);
    assert_eq!(released.retries_used, 0, "a release costs no retry");
    assert!(released.lease.is_none());
    // Claimable again at once by anyone.
    let now = chrono::Utc::now();
    let again = s
        .store
        .claim(ClaimRequest {
            node_id: "n2".into(),
            worker_id: "w".into(),
            kinds: vec!["scripted".into()],
            max: 5,
            lease_until: now + chrono::Duration::seconds(30),
            now,
        })
        .await
        .unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].id, ids[1]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_limit_changed_elsewhere_reaches_this_worker_within_a_second() {
    let s = setup(settings("n1"));
    let (stop, handle) = start(&s.engine);
    // Another process: its own connection to the same database file.
    let path = s._dir.path().join("genq.db");
    let other = SqliteStore::open(&path).unwrap();
    let started = std::time::Instant::now();
    other
        .set_limit("job_processing_timeout_seconds", 7, chrono::Utc::now())
        .await
        .unwrap();
    loop {
        let seen = s
            .engine
            .shared()
            .limits
            .read()
            .unwrap()
            .get("job_processing_timeout_seconds");
        if seen == 7 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "the change did not arrive within a second"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.cancel();
    handle.await.unwrap();
}
