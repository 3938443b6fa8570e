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
        let mut hints = listener
            .coordination()
            .expect("PostgreSQL coordinates")
            .listen()
            .await
            .unwrap()
            .expect("PostgreSQL hints");
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
        let quiet = quiet.coordination().expect("PostgreSQL coordinates");
        assert!(quiet.listen().await.unwrap().is_none());
    }

    /// Positions follow commits: while one writer holds the events lock with an uncommitted
    /// event, another's events wait, and no reader sees a position after the held one.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn event_positions_follow_commits() {
        use sqlx::Connection;
        let options = fresh_options().await;
        let store = PgStore::connect_with(options.clone(), 4).await.unwrap();
        let mut held = sqlx::PgConnection::connect_with(&options).await.unwrap();
        let mut tx = held.begin().await.unwrap();
        sqlx::query("SELECT pg_advisory_xact_lock(hashtext(current_schema() || '/genq/events'))")
            .execute(&mut *tx)
            .await
            .unwrap();
        let first: i64 = sqlx::query_scalar(
            "INSERT INTO events (position, type, batch_id, attempt, created_at)
             VALUES (nextval('event_positions'), 'batch.completed', 'b-held', 0, 0)
             RETURNING position",
        )
        .fetch_one(&mut *tx)
        .await
        .unwrap();
        let writer = {
            let store = store.clone();
            tokio::spawn(async move { store.enqueue(one_job("u1")).await.unwrap() })
        };
        // Until the enqueue waits for the lock (a condition, not a guess at timing).
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let waiting: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted",
            )
            .fetch_one(store.pool())
            .await
            .unwrap();
            if waiting > 0 {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the enqueue never waited"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let filter = genq_store::EventFilter::default();
        assert!(store.events_after(0, &filter, 10).await.unwrap().is_empty());
        tx.commit().await.unwrap();
        let job = writer.await.unwrap().jobs.remove(0);
        let events = store.events_after(0, &filter, 10).await.unwrap();
        assert_eq!(events.len(), 2);
        assert_eq!(events[0].position, first);
        assert_eq!(events[1].job_id.as_deref(), Some(job.id.as_str()));
        assert!(events[1].position > first);
    }
}

mod across_processes {
    use chrono::Utc;
    use genq_store::conformance::pg::fresh_options;
    use genq_store::{ClaimRequest, Finish, LeaseRef, NewJobs, Outcome, PgStore, Store};
    use serde_json::json;
    use std::collections::HashSet;
    use std::sync::Arc;

    fn jobs(user: &str, n: usize) -> NewJobs {
        NewJobs {
            kind: "card.generate".into(),
            user_id: user.into(),
            payloads: (0..n).map(|i| json!({"i": i})).collect(),
            priority: 0,
            run_at: None,
            max_retries: 3,
            cost: 0,
            idempotency_key: None,
            as_batch: true,
            now: Utc::now(),
            day: "2026-01-02".into(),
            user_defaults: genq_store::conformance::rich(),
        }
    }

    fn claim(node: &str, max: u32) -> ClaimRequest {
        let now = Utc::now();
        ClaimRequest {
            node_id: node.into(),
            worker_id: format!("{node}/w"),
            kinds: vec!["card.generate".into()],
            max,
            lease_until: now + chrono::Duration::seconds(30),
            now,
        }
    }

    /// Four stores with pools of their own (four processes) claim one queue at once: every job
    /// is taken exactly once.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn claimers_in_separate_processes_never_share_a_job() {
        let options = fresh_options().await;
        let mut stores = Vec::new();
        for _ in 0..4 {
            stores.push(Arc::new(
                PgStore::connect_with(options.clone(), 3).await.unwrap(),
            ));
        }
        for u in 0..5 {
            stores[0]
                .enqueue(jobs(&format!("u{u}"), 100))
                .await
                .unwrap();
        }
        let mut tasks = Vec::new();
        for (i, store) in stores.iter().enumerate() {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                let mut mine = Vec::new();
                loop {
                    let got = store.claim(claim(&format!("node-{i}"), 7)).await.unwrap();
                    if got.is_empty() {
                        return mine;
                    }
                    mine.extend(got.into_iter().map(|j| j.id));
                }
            }));
        }
        let mut all = Vec::new();
        for t in tasks {
            all.extend(t.await.unwrap());
        }
        let distinct: HashSet<&String> = all.iter().collect();
        assert_eq!(all.len(), 500, "every job claimed");
        assert_eq!(distinct.len(), 500, "no job claimed twice");
    }

    /// A lease taken through one process is honoured by every other: its holder's outcome
    /// applies from any connection, a stale token from none.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn lease_fencing_holds_across_processes() {
        let options = fresh_options().await;
        let a = PgStore::connect_with(options.clone(), 2).await.unwrap();
        let b = PgStore::connect_with(options, 2).await.unwrap();
        a.enqueue(jobs("u1", 1)).await.unwrap();
        let job = a.claim(claim("node-a", 1)).await.unwrap().remove(0);
        let mut stale = Finish::new(&job, Outcome::Succeeded { result: json!(1) }, Utc::now());
        stale.lease = LeaseRef {
            job_id: job.id.clone(),
            token: "someone-else".into(),
        };
        assert_eq!(b.finish(vec![stale]).await.unwrap(), vec![false]);
        let renewed = b
            .heartbeat(
                &[LeaseRef::of(&job)],
                Utc::now() + chrono::Duration::seconds(60),
                Utc::now(),
            )
            .await
            .unwrap();
        assert_eq!(renewed, vec![LeaseRef::of(&job)]);
        let done = Finish::new(&job, Outcome::Succeeded { result: json!(2) }, Utc::now());
        assert_eq!(b.finish(vec![done.clone()]).await.unwrap(), vec![true]);
        assert_eq!(
            a.finish(vec![done]).await.unwrap(),
            vec![false],
            "applied once"
        );
        assert_eq!(a.job(&job.id).await.unwrap().result, Some(json!(2)));
    }
}
