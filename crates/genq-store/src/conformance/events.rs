//! The events outbox (SPEC §8), on every backend: each change writes its event in its own
//! transaction, each job's events come in order, `job.started` and `batch.completed` come once,
//! and a change that did not happen tells nothing.

use super::*;
use crate::EventFilter;
use genq_core::event::{Event, EventType};

/// Everything after `position` that passes `filter`.
async fn read(store: &DynStore, position: i64, filter: EventFilter) -> Vec<Event> {
    store.events_after(position, &filter, 1000).await.unwrap()
}

fn of_user(user: &str) -> EventFilter {
    EventFilter {
        user_id: Some(user.into()),
        ..Default::default()
    }
}

fn kinds(events: &[Event]) -> Vec<(EventType, u32)> {
    events.iter().map(|e| (e.kind, e.attempt)).collect()
}

fn retry_now(now: DateTime<Utc>) -> Outcome {
    Outcome::Retry {
        run_at: now,
        error: Some(error(ErrorClass::Temporary)),
        uses_retry: true,
        rate_limit_wait: false,
    }
}

async fn single(store: &DynStore, user: &str) -> Job {
    let mut req = new_jobs(user, 1);
    req.as_batch = false;
    store.enqueue(req).await.unwrap().jobs.remove(0)
}

pub async fn each_job_tells_its_story_in_order(store: DynStore) {
    let job = single(&store, "u1").await;
    for _ in 0..2 {
        let running = claim(&store, 1).await.remove(0);
        assert_eq!(
            store
                .finish(vec![finish(&running, retry_now(t0()), t0())])
                .await
                .unwrap(),
            [true]
        );
    }
    let running = claim(&store, 1).await.remove(0);
    store
        .finish(vec![finish(&running, success(), t0())])
        .await
        .unwrap();
    let events = read(&store, 0, of_user("u1")).await;
    use EventType::*;
    assert_eq!(
        kinds(&events),
        [
            (JobQueued, 0),
            (JobStarted, 1),
            (JobRetrying, 1),
            (JobRetrying, 2),
            (JobSucceeded, 3)
        ],
        "started once, then each retry, then the success"
    );
    assert!(events.iter().all(|e| e.job_id.as_deref() == Some(&*job.id)));
    assert!(
        events
            .iter()
            .all(|e| e.user_id == "u1" && e.job_kind == "card.generate")
    );
    assert!(events.windows(2).all(|w| w[0].position < w[1].position));
    let mut ids: Vec<i64> = events.iter().map(|e| e.id).collect();
    ids.dedup();
    assert_eq!(ids.len(), 5, "ids are unique");
}

pub async fn started_is_told_once_whatever_restarts_the_job(store: DynStore) {
    single(&store, "u1").await;
    // First attempt: a rescue after the lease expired.
    let running = claim(&store, 1).await.remove(0);
    let later = t0() + Duration::seconds(60);
    let rescue = Finish::new(
        &running,
        Outcome::Retry {
            run_at: later,
            error: Some(error(ErrorClass::LeaseExpired)),
            uses_retry: true,
            rate_limit_wait: false,
        },
        later,
    )
    .if_expired_before(later);
    assert_eq!(store.finish(vec![rescue]).await.unwrap(), [true]);
    // Second attempt fails for good; an admin retry queues it again.
    let running = store.claim(claim_req(1, later)).await.unwrap().remove(0);
    store
        .finish(vec![finish(
            &running,
            Outcome::Failed {
                error: error(ErrorClass::UserError),
            },
            later,
        )])
        .await
        .unwrap();
    store.admin_retry(&running.id, later).await.unwrap();
    let again = store.claim(claim_req(1, later)).await.unwrap().remove(0);
    store
        .finish(vec![finish(&again, success(), later)])
        .await
        .unwrap();
    use EventType::*;
    assert_eq!(
        kinds(&read(&store, 0, of_user("u1")).await),
        [
            (JobQueued, 0),
            (JobStarted, 1),
            (JobRetrying, 1),
            (JobFailed, 2),
            (JobQueued, 2),
            (JobSucceeded, 3)
        ]
    );
}

pub async fn a_batch_completes_once(store: DynStore) {
    let out = store.enqueue(new_jobs("u1", 3)).await.unwrap();
    let batch_id = out.batch.unwrap().id;
    let running = claim(&store, 3).await;
    store
        .finish(vec![
            finish(&running[0], success(), t0()),
            finish(&running[1], success(), t0()),
        ])
        .await
        .unwrap();
    let completed = |events: &[Event]| {
        events
            .iter()
            .filter(|e| e.kind == EventType::BatchCompleted)
            .count()
    };
    assert_eq!(completed(&read(&store, 0, of_user("u1")).await), 0);
    // The last one ends canceled: the batch is complete.
    store.cancel(&running[2].id, t0()).await.unwrap();
    let events = read(&store, 0, of_user("u1")).await;
    assert_eq!(completed(&events), 1);
    let last = events.last().unwrap();
    assert_eq!(
        last.kind,
        EventType::BatchCompleted,
        "after the job that completed it"
    );
    assert_eq!(
        (last.batch_id.as_deref(), last.job_id.as_deref()),
        (Some(batch_id.as_str()), None)
    );
    // Re-run and finished again: it stays completed, told once.
    store.admin_retry(&running[2].id, t0()).await.unwrap();
    let again = claim(&store, 1).await.remove(0);
    store
        .finish(vec![finish(&again, success(), t0())])
        .await
        .unwrap();
    let events = read(&store, 0, of_user("u1")).await;
    assert_eq!(completed(&events), 1);
    assert_eq!(events.last().unwrap().kind, EventType::JobSucceeded);
    let batch = store.batch(&batch_id).await.unwrap();
    assert_eq!((batch.succeeded, batch.canceled), (3, 0));
}

pub async fn a_change_that_did_not_happen_tells_nothing(store: DynStore) {
    // Refused for want of credits: no job, no event.
    let mut poor = new_jobs("poor", 1);
    poor.as_batch = false;
    poor.user_defaults = genq_core::UserDefaults {
        plan: "enterprise".into(),
        initial_credits: 0,
    };
    assert!(store.enqueue(poor).await.is_err());
    assert!(read(&store, 0, of_user("poor")).await.is_empty());
    // A finish whose lease is gone, a cancel of a finished job: nothing.
    single(&store, "u1").await;
    let running = claim(&store, 1).await.remove(0);
    let mut stale = finish(&running, success(), t0());
    stale.lease.token = "not-the-lease".into();
    assert_eq!(store.finish(vec![stale]).await.unwrap(), [false]);
    store
        .finish(vec![finish(&running, success(), t0())])
        .await
        .unwrap();
    assert!(matches!(
        store.cancel(&running.id, t0()).await,
        Err(StoreError::Conflict(_))
    ));
    use EventType::*;
    assert_eq!(
        kinds(&read(&store, 0, of_user("u1")).await),
        [(JobQueued, 0), (JobStarted, 1), (JobSucceeded, 1)]
    );
}

pub async fn readers_filter_and_resume_where_they_left(store: DynStore) {
    for user in ["u1", "u2", "u1"] {
        single(&store, user).await;
    }
    let out = store.enqueue(new_jobs("u2", 2)).await.unwrap();
    let batch_id = out.batch.unwrap().id;
    claim(&store, 10).await;
    let all = read(&store, 0, EventFilter::default()).await;
    assert_eq!(all.len(), 10, "5 queued, 5 started");
    assert_eq!(read(&store, 0, of_user("u1")).await.len(), 4);
    let of_batch = read(
        &store,
        0,
        EventFilter {
            batch_id: Some(batch_id.clone()),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(of_batch.len(), 4);
    assert!(
        of_batch
            .iter()
            .all(|e| e.batch_id.as_deref() == Some(&*batch_id))
    );
    let started = read(
        &store,
        0,
        EventFilter {
            types: vec![EventType::JobStarted],
            ..Default::default()
        },
    )
    .await;
    assert_eq!(started.len(), 5);
    // Resume after the fourth: the rest, each once.
    let rest = read(&store, all[3].position, EventFilter::default()).await;
    assert_eq!(rest, all[4..]);
    assert!(
        read(&store, all[9].position, EventFilter::default())
            .await
            .is_empty()
    );
    // The newest events are counted once: none are new the second time.
    assert!(store.new_events().await.unwrap() >= 10);
    assert_eq!(store.new_events().await.unwrap(), 0);
}
