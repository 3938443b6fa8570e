//! The engine across processes on one PostgreSQL database (each "process" a store with a pool
//! of its own): provider rate budgets and `max_concurrent` slots are one for every process, and
//! another process's enqueue, cancel and limit change reach a running engine at once.

use genq_engine::providers::pace::{Bucket, Budgets, SAFETY, StoreBudgets};
use genq_store::PgStore;
use genq_store::conformance::pg::fresh_options;
use std::sync::Arc;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_spend_one_budget() {
    let options = fresh_options().await;
    let a: Arc<dyn genq_store::Store> =
        Arc::new(PgStore::connect_with(options.clone(), 2).await.unwrap());
    let b: Arc<dyn genq_store::Store> = Arc::new(PgStore::connect_with(options, 2).await.unwrap());
    let a = StoreBudgets::new(a.coordination().expect("PostgreSQL coordinates"));
    let b = StoreBudgets::new(b.coordination().expect("PostgreSQL coordinates"));
    // 60 a minute: one a second (over SAFETY).
    let bucket = Bucket::new("fake#1/rpm".into(), Some(60)).unwrap();
    let unit = 1.0 / SAFETY;
    let mut waits = Vec::new();
    for i in 0..6 {
        let who: &StoreBudgets = if i % 2 == 0 { &a } else { &b };
        waits.push(who.reserve(&bucket, 1.0).await.as_secs_f64());
    }
    // Each reservation starts one unit after the one before, whichever process made it (less
    // the little time the calls themselves take).
    for (i, w) in waits.iter().enumerate() {
        let want = i as f64 * unit;
        assert!(
            (w - want).abs() < 0.25 && *w <= want + 1e-3,
            "reservation {i} waits {w:.3}s, want about {want:.3}s: {waits:?}"
        );
    }
    // Giving back moves the budget for both; a hold stops both.
    a.adjust(&bucket, -5.0).await;
    let next = b.reserve(&bucket, 1.0).await.as_secs_f64();
    assert!(next < unit + 0.25, "after giving back 5 units: {next}");
    let other = Bucket::new("fake#2/rpm".into(), Some(60)).unwrap();
    b.hold(&other, Duration::from_secs(30)).await;
    let held = a.reserve(&other, 1.0).await;
    assert!(held > Duration::from_secs(29), "{held:?}");
}

/// `max_concurrent` slots in PostgreSQL are one bound for every process; an expired slot (its
/// holder died) frees itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_share_max_concurrent() {
    use genq_engine::providers::slots::{Slots, StoreSlots};
    let options = fresh_options().await;
    let a: Arc<dyn genq_store::Store> =
        Arc::new(PgStore::connect_with(options.clone(), 2).await.unwrap());
    let b: Arc<dyn genq_store::Store> = Arc::new(PgStore::connect_with(options, 2).await.unwrap());
    let a = StoreSlots::new(a.coordination().expect("PostgreSQL coordinates"));
    let b = StoreSlots::new(b.coordination().expect("PostgreSQL coordinates"));
    let ttl = Duration::from_secs(60);
    assert!(a.take("video/tasks", "job-1", 2, ttl).await);
    assert!(b.take("video/tasks", "job-2", 2, ttl).await);
    assert!(
        !a.take("video/tasks", "job-3", 2, ttl).await,
        "two of two held"
    );
    assert!(
        b.take("video/tasks", "job-1", 2, ttl).await,
        "a holder renews its own"
    );
    assert_eq!(
        (a.in_use("video/tasks").await, b.in_use("video/tasks").await),
        (2, 2)
    );
    b.free("video/tasks", "job-1").await;
    assert!(a.take("video/tasks", "job-3", 2, ttl).await);
    // A slot whose holder never gives it back expires.
    assert!(
        a.take("fake/requests", "dead", 1, Duration::from_millis(200))
            .await
    );
    assert!(!b.take("fake/requests", "alive", 1, ttl).await);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(b.take("fake/requests", "alive", 1, ttl).await);
}

/// Another process's cancel and limit change reach a running engine through NOTIFY, long
/// before its next heartbeat (10 s) would have noticed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_and_a_limit_change_reach_another_process_at_once() {
    use async_trait::async_trait;
    use genq_engine::{Attempt, Engine, EngineSettings, Handler, KindRuntime, Reply};
    use genq_store::Store;
    use std::collections::HashMap;

    /// Runs until stopped (or dropped: a lost lease drops the attempt), and says when.
    struct UntilStopped(tokio::sync::mpsc::UnboundedSender<std::time::Instant>);

    struct SaysWhenDropped(tokio::sync::mpsc::UnboundedSender<std::time::Instant>);

    impl Drop for SaysWhenDropped {
        fn drop(&mut self) {
            let _ = self.0.send(std::time::Instant::now());
        }
    }

    #[async_trait]
    impl Handler for UntilStopped {
        async fn run(&self, attempt: Attempt) -> Result<Reply, genq_core::Failure> {
            let _ended = SaysWhenDropped(self.0.clone());
            attempt.stop.cancelled().await;
            Ok(Reply::Done(serde_json::json!({})))
        }
    }

    let options = fresh_options().await;
    let here: Arc<dyn genq_store::Store> =
        Arc::new(PgStore::connect_with(options.clone(), 4).await.unwrap());
    let elsewhere = PgStore::connect_with(options, 2).await.unwrap();
    let (stopped, mut stops) = tokio::sync::mpsc::unbounded_channel();
    let kinds = HashMap::from([(
        "video.generate".to_string(),
        KindRuntime {
            policy: Default::default(),
            timeout: Duration::from_secs(120),
            handler: Some(Arc::new(UntilStopped(stopped)) as Arc<dyn Handler>),
        },
    )]);
    let settings = EngineSettings {
        node_id: "here".into(),
        concurrency: 2,
        claim_batch: 2,
        lease: Duration::from_secs(30),
        heartbeat: Duration::from_secs(10),
        poll_interval: Duration::from_secs(5),
        shutdown_grace: Duration::from_millis(100),
        metrics: true,
    };
    let engine = Engine::new(here.clone(), settings, kinds);
    let stop = tokio_util::sync::CancellationToken::new();
    let running = {
        let (e, s) = (engine.clone(), stop.clone());
        tokio::spawn(async move { e.run(s, true).await })
    };
    let job = elsewhere
        .enqueue(genq_store::NewJobs {
            kind: "video.generate".into(),
            user_id: "u1".into(),
            payloads: vec![serde_json::json!({})],
            priority: 0,
            run_at: None,
            max_retries: 0,
            cost: 0,
            idempotency_key: None,
            as_batch: false,
            now: chrono::Utc::now(),
            day: "2026-01-02".into(),
            user_defaults: genq_store::conformance::rich(),
        })
        .await
        .unwrap()
        .jobs
        .remove(0);
    // The enqueue elsewhere wakes this engine (its fallback poll is 5 s away).
    let started = std::time::Instant::now();
    while here.job(&job.id).await.unwrap().state != genq_core::JobState::Running {
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "the enqueue did not wake the engine"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let canceled_at = std::time::Instant::now();
    elsewhere.cancel(&job.id, chrono::Utc::now()).await.unwrap();
    let when = tokio::time::timeout(Duration::from_secs(3), stops.recv())
        .await
        .expect("the attempt stopped before the next heartbeat")
        .unwrap();
    assert!(when.duration_since(canceled_at) < Duration::from_secs(3));

    elsewhere
        .set_limit(genq_core::limits::USER_MAX_RUNNING, 7, chrono::Utc::now())
        .await
        .unwrap();
    let changed = std::time::Instant::now();
    while engine
        .shared()
        .limits
        .read()
        .unwrap()
        .get(genq_core::limits::USER_MAX_RUNNING)
        != 7
    {
        assert!(
            changed.elapsed() < Duration::from_secs(1),
            "the limit did not arrive within 1 s"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    stop.cancel();
    running.await.unwrap();
}
