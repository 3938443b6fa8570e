//! Provider rate budgets and `max_concurrent` slots kept in PostgreSQL are one for every
//! process: reservations from two stores (two processes) queue up one after the other on the
//! database's clock, and slots taken by one count for the other.

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
    let a = StoreBudgets::new(a)
        .await
        .expect("PostgreSQL keeps budgets");
    let b = StoreBudgets::new(b)
        .await
        .expect("PostgreSQL keeps budgets");
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
    let a = StoreSlots::new(a).await.expect("PostgreSQL keeps slots");
    let b = StoreSlots::new(b).await.expect("PostgreSQL keeps slots");
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
