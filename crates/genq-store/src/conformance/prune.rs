//! The pruner's steps on every backend: old finished jobs go (by age, by count, a step at a
//! time), their emptied batches too, ledger entries stay; old events go once every endpoint
//! has them, never the newest.

use super::*;
use crate::{DeliveryFilter, EventFilter, JobFilter, JobQuery, Prune};

async fn run_to(store: &DynStore, jobs: &[Job], outcome: fn() -> Outcome, at: DateTime<Utc>) {
    let finishes = jobs.iter().map(|j| finish(j, outcome(), at)).collect();
    store.finish(finishes).await.unwrap();
}

fn failed() -> Outcome {
    Outcome::Failed {
        error: error(ErrorClass::UserError),
    }
}

pub async fn old_finished_jobs_are_pruned_by_age_and_count(store: DynStore) {
    let out = store.enqueue(new_jobs("u1", 6)).await.unwrap();
    let batch_id = out.batch.unwrap().id;
    let running = claim(&store, 6).await;
    let later = t0() + Duration::hours(1);
    run_to(&store, &running[..3], success, t0()).await;
    run_to(&store, &running[3..5], success, later).await;
    run_to(&store, &running[5..], failed, t0()).await;
    let prune = |state, before, keep, limit| Prune {
        state,
        finished_before: before,
        keep_newest: keep,
        limit,
    };
    // By age, a step of two at a time.
    let half_hour = t0() + Duration::minutes(30);
    let step = prune(JobState::Succeeded, half_hour, None, 2);
    assert_eq!(store.prune_jobs(&step).await.unwrap(), 2);
    assert_eq!(store.prune_jobs(&step).await.unwrap(), 1);
    assert_eq!(store.prune_jobs(&step).await.unwrap(), 0);
    for j in &running[..3] {
        assert!(matches!(store.job(&j.id).await, Err(StoreError::NotFound)));
    }
    // Other states keep their own rules.
    assert!(store.job(&running[5].id).await.is_ok());
    // The user's and the batch's listings and the batch's counts follow.
    let listed = |user_id: Option<&str>, batch_id: Option<&str>| {
        let filter = JobFilter {
            user_id: user_id.map(str::to_string),
            batch_id: batch_id.map(str::to_string),
            ..JobFilter::default()
        };
        let store = store.clone();
        async move {
            let page = store.jobs(&JobQuery::newest(filter, 100)).await.unwrap();
            let mut ids: Vec<String> = page.jobs.into_iter().map(|j| j.id).collect();
            ids.sort();
            ids
        }
    };
    let mut left: Vec<String> = running[3..].iter().map(|j| j.id.clone()).collect();
    left.sort();
    assert_eq!(listed(Some("u1"), None).await, left);
    assert_eq!(listed(None, Some(&batch_id)).await, left);
    assert_eq!(listed(Some("u1"), Some(&batch_id)).await, left);
    let batch = store.batch(&batch_id).await.unwrap();
    assert_eq!((batch.succeeded, batch.failed), (2, 1));
    // By count: the newest one stays.
    let keep_one = prune(JobState::Succeeded, t0(), Some(1), 100);
    assert_eq!(store.prune_jobs(&keep_one).await.unwrap(), 1);
    assert_eq!(store.prune_jobs(&keep_one).await.unwrap(), 0);
    assert!(store.job(&running[4].id).await.is_ok() || store.job(&running[3].id).await.is_ok());
    let counts = store.stats(later).await.unwrap().by_state;
    assert_eq!(
        (
            counts.get(&JobState::Succeeded),
            counts.get(&JobState::Failed)
        ),
        (Some(&1), Some(&1)),
        "the counts follow what was pruned"
    );
    // The batch stays while a job of it does, then goes with the last.
    assert!(store.batch(&batch_id).await.is_ok());
    store
        .prune_jobs(&prune(
            JobState::Succeeded,
            later + Duration::hours(1),
            None,
            100,
        ))
        .await
        .unwrap();
    store
        .prune_jobs(&prune(JobState::Failed, later, None, 100))
        .await
        .unwrap();
    assert!(matches!(
        store.batch(&batch_id).await,
        Err(StoreError::NotFound)
    ));
    // Money is history: the debit and the refund stay.
    let (entries, _) = store.ledger("u1", None, 100).await.unwrap();
    assert!(
        entries
            .iter()
            .any(|e| e.kind == genq_core::LedgerKind::Refund)
    );
    assert!(
        entries
            .iter()
            .any(|e| e.kind == genq_core::LedgerKind::Debit)
    );
}

pub async fn old_events_are_pruned_once_every_endpoint_has_them(store: DynStore) {
    let hook = "https://hooks.example/prune";
    store
        .fan_out(hook, &DeliveryFilter::default(), 1000, t0())
        .await
        .unwrap();
    let mut req = new_jobs("u1", 1);
    req.as_batch = false;
    for _ in 0..3 {
        store.enqueue(req.clone()).await.unwrap();
    }
    let all = store
        .events_after(0, &EventFilter::default(), 100)
        .await
        .unwrap();
    assert_eq!(all.len(), 3);
    let long_after = t0() + Duration::days(30);
    // The endpoint has not been given them yet: nothing goes.
    assert_eq!(store.prune_events(long_after, 100).await.unwrap(), 0);
    store
        .fan_out(hook, &DeliveryFilter::default(), 1000, t0())
        .await
        .unwrap();
    // Given, but pending: still kept.
    assert_eq!(store.prune_events(long_after, 100).await.unwrap(), 0);
    let taken = store
        .claim_deliveries(hook, 100, t0(), t0() + Duration::seconds(30))
        .await
        .unwrap();
    for d in &taken {
        store
            .finish_delivery(d, crate::DeliveryOutcome::Delivered { status: 200 }, t0())
            .await
            .unwrap();
    }
    // Delivered: all but the newest go (ids keep growing).
    assert_eq!(store.prune_events(long_after, 100).await.unwrap(), 2);
    let left = store
        .events_after(0, &EventFilter::default(), 100)
        .await
        .unwrap();
    assert_eq!(left, all[2..]);
    // Not old enough: kept.
    store.enqueue(req).await.unwrap();
    store
        .fan_out(hook, &DeliveryFilter::default(), 1000, t0())
        .await
        .unwrap();
    assert_eq!(store.prune_events(t0(), 100).await.unwrap(), 0);
}
