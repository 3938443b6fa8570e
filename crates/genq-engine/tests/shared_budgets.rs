//! Provider rate budgets kept in PostgreSQL are one budget for every process: reservations
//! from two stores (two processes) queue up one after the other on the database's clock.

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
