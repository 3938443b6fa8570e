//! The conformance suite against PostgreSQL, each test in a schema of its own (see
//! `conformance::pg`).

use genq_store::conformance::pg::fresh_store;
use genq_store::conformance_tests;
use std::sync::Arc;

conformance_tests!(Arc::new(fresh_store().await));

mod postgres_only {
    use chrono::Utc;
    use genq_store::conformance::pg::{fresh_options, fresh_store};
    use genq_store::{NewJobs, PgStore, Signal, Store};
    use serde_json::json;
    use std::time::Duration;

    fn one_job(user: &str) -> NewJobs {
        NewJobs {
            kind: "card.generate".into(),
            user_id: user.into(),
            payloads: vec![json!({})],
            priority: 0,
            run_at: None,
            max_retries: 3,
            cost: 0,
            idempotency_key: None,
            as_batch: false,
            now: Utc::now(),
            day: "2026-01-02".into(),
            user_defaults: genq_store::conformance::rich(),
        }
    }

    /// Wait for `want` among the hints (other tests share the server's channel).
    async fn expect(rx: &mut tokio::sync::mpsc::UnboundedReceiver<Signal>, want: Signal) {
        let found = tokio::time::timeout(Duration::from_secs(10), async {
            while let Some(s) = rx.recv().await {
                if s == want {
                    return;
                }
            }
            panic!("the hint channel closed");
        })
        .await;
        assert!(found.is_ok(), "no {want:?} hint arrived");
    }

    /// Another process's enqueue, limit change and cancel reach a listener as hints.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn notify_hints_reach_other_processes() {
        let options = fresh_options().await;
        let listener = PgStore::connect_with(options.clone(), 2).await.unwrap();
        let writer = PgStore::connect_with(options, 2).await.unwrap();
        let mut hints = listener.listen().await.unwrap().expect("PostgreSQL hints");
        let job = writer.enqueue(one_job("u1")).await.unwrap().jobs.remove(0);
        expect(&mut hints, Signal::Work).await;
        let mut later = one_job("u1");
        later.run_at = Some(Utc::now() + chrono::Duration::hours(1));
        writer.enqueue(later).await.unwrap();
        expect(&mut hints, Signal::Delayed).await;
        writer
            .set_limit(genq_core::limits::USER_MAX_RUNNING, 3, Utc::now())
            .await
            .unwrap();
        expect(&mut hints, Signal::Limits).await;
        writer.cancel(&job.id, Utc::now()).await.unwrap();
        expect(&mut hints, Signal::Canceled(job.id.clone())).await;

        let quiet = fresh_store().await.without_notify();
        assert!(quiet.listen().await.unwrap().is_none());
    }
}
