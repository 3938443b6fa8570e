//! Webhook deliveries on every backend: each event copied once per endpoint, delivered in order
//! per job, leased and fenced like a job, retried, given up, redelivered.

use super::*;
use crate::{Delivery, DeliveryFilter, DeliveryOutcome};
use genq_core::event::EventType;

const HOOK: &str = "https://hooks.example/genq";

async fn copy(store: &DynStore, filter: &DeliveryFilter) -> u64 {
    store.fan_out(HOOK, filter, 1000, t0()).await.unwrap()
}

async fn take(store: &DynStore, now: DateTime<Utc>) -> Vec<Delivery> {
    store
        .claim_deliveries(HOOK, 100, now, now + Duration::seconds(30))
        .await
        .unwrap()
}

fn shown(ds: &[Delivery]) -> Vec<(String, EventType)> {
    ds.iter()
        .map(|d| (d.event.job_id.clone().unwrap_or_default(), d.event.kind))
        .collect()
}

async fn delivered(store: &DynStore, d: &Delivery) {
    assert!(
        store
            .finish_delivery(d, DeliveryOutcome::Delivered { status: 200 }, t0())
            .await
            .unwrap()
    );
}

async fn two_jobs(store: &DynStore) -> (String, String) {
    let mut ids = Vec::new();
    for _ in 0..2 {
        let mut req = new_jobs("u1", 1);
        req.as_batch = false;
        ids.push(store.enqueue(req).await.unwrap().jobs[0].id.clone());
    }
    for running in claim(store, 2).await {
        store
            .finish(vec![finish(&running, success(), t0())])
            .await
            .unwrap();
    }
    (ids.remove(0), ids.remove(0))
}

pub async fn deliveries_start_now_and_copy_each_event_once(store: DynStore) {
    // Events from before the endpoint was first seen are not sent to it.
    let mut early = new_jobs("u0", 1);
    early.as_batch = false;
    store.enqueue(early).await.unwrap();
    let running = claim(&store, 1).await.remove(0);
    store
        .finish(vec![finish(&running, success(), t0())])
        .await
        .unwrap();
    assert_eq!(copy(&store, &DeliveryFilter::default()).await, 0);
    two_jobs(&store).await;
    assert_eq!(copy(&store, &DeliveryFilter::default()).await, 6);
    assert_eq!(copy(&store, &DeliveryFilter::default()).await, 0, "once");
    let status = store.webhook_status(HOOK).await.unwrap();
    assert_eq!((status.backlog, status.dead), (6, 0));
    // A filter by type and kind.
    let other = "https://other.example/hook";
    store
        .fan_out(other, &DeliveryFilter::default(), 1000, t0())
        .await
        .unwrap();
    two_jobs(&store).await;
    let only_success = DeliveryFilter {
        types: vec![EventType::JobSucceeded],
        kinds: vec!["card.generate".into()],
    };
    assert_eq!(
        store
            .fan_out(other, &only_success, 1000, t0())
            .await
            .unwrap(),
        2
    );
    let none = DeliveryFilter {
        kinds: vec!["video.generate".into()],
        ..Default::default()
    };
    two_jobs(&store).await;
    assert_eq!(store.fan_out(other, &none, 1000, t0()).await.unwrap(), 0);
}

pub async fn deliveries_go_in_order_per_job(store: DynStore) {
    copy(&store, &DeliveryFilter::default()).await;
    let (a, b) = two_jobs(&store).await;
    copy(&store, &DeliveryFilter::default()).await;
    use EventType::*;
    // Only each job's earliest event is claimable.
    let first = take(&store, t0()).await;
    assert_eq!(
        shown(&first),
        [(a.clone(), JobQueued), (b.clone(), JobQueued)]
    );
    assert!(take(&store, t0()).await.is_empty(), "in flight: leased");
    // A's first fails and waits for its retry: A's later events wait with it; B's go on.
    let later = t0() + Duration::seconds(60);
    assert!(
        store
            .finish_delivery(
                &first[0],
                DeliveryOutcome::Failed {
                    status: Some(500),
                    error: "HTTP 500".into(),
                    retry_at: Some(later),
                },
                t0(),
            )
            .await
            .unwrap()
    );
    delivered(&store, &first[1]).await;
    let next = take(&store, t0()).await;
    assert_eq!(shown(&next), [(b.clone(), JobStarted)]);
    delivered(&store, &next[0]).await;
    let b_done = take(&store, t0()).await;
    assert_eq!(shown(&b_done), [(b.clone(), JobSucceeded)]);
    delivered(&store, &b_done[0]).await;
    // At its retry time A's first is taken again (attempt 2), then the rest in order.
    let again = take(&store, later).await;
    assert_eq!(shown(&again), [(a.clone(), JobQueued)]);
    assert_eq!(again[0].attempt, 2);
    delivered(&store, &again[0]).await;
    let rest = take(&store, later).await;
    assert_eq!(shown(&rest), [(a.clone(), JobStarted)]);
    let status = store.webhook_status(HOOK).await.unwrap();
    assert_eq!(status.last_error.as_deref(), Some("HTTP 500"));
    assert!(status.last_success_at.is_some());
}

pub async fn a_batch_event_waits_for_its_jobs_events(store: DynStore) {
    copy(&store, &DeliveryFilter::default()).await;
    store.enqueue(new_jobs("u1", 2)).await.unwrap();
    for running in claim(&store, 2).await {
        store
            .finish(vec![finish(&running, success(), t0())])
            .await
            .unwrap();
    }
    // A job outside the batch is not held up by the batch's event.
    let (loner, _) = two_jobs(&store).await;
    assert_eq!(copy(&store, &DeliveryFilter::default()).await, 13);
    let mut rounds = Vec::new();
    loop {
        let taken = take(&store, t0()).await;
        if taken.is_empty() {
            break;
        }
        for d in &taken {
            delivered(&store, d).await;
        }
        rounds.push(shown(&taken));
    }
    use EventType::*;
    // Each job's events in turn; the loner's first event goes out at once although it came
    // after the batch's, and the batch's event goes alone after its jobs'.
    let kinds: Vec<Vec<EventType>> = rounds
        .iter()
        .map(|r| r.iter().map(|(_, k)| *k).collect())
        .collect();
    assert_eq!(
        kinds,
        [
            vec![JobQueued; 4],
            vec![JobStarted; 4],
            vec![JobSucceeded; 4],
            vec![BatchCompleted]
        ]
    );
    assert!(rounds[0].iter().any(|(job, _)| *job == loner));
}

pub async fn a_delivery_is_leased_fenced_and_given_up(store: DynStore) {
    copy(&store, &DeliveryFilter::default()).await;
    let (a, _) = two_jobs(&store).await;
    copy(&store, &DeliveryFilter::default()).await;
    let taken = take(&store, t0()).await;
    let first = taken
        .iter()
        .find(|d| d.event.job_id.as_deref() == Some(&*a))
        .unwrap();
    // The holder died: after its lease the delivery is taken again, and the old lease is
    // fenced out.
    let after_lease = t0() + Duration::seconds(31);
    let retaken = take(&store, after_lease).await;
    let again = retaken.iter().find(|d| d.id == first.id).unwrap();
    assert_ne!(again.token, first.token);
    assert!(
        !store
            .finish_delivery(first, DeliveryOutcome::Delivered { status: 200 }, t0())
            .await
            .unwrap()
    );
    // Given up: dead, and the job's next event goes.
    assert!(
        store
            .finish_delivery(
                again,
                DeliveryOutcome::Failed {
                    status: None,
                    error: "timed out".into(),
                    retry_at: None,
                },
                after_lease,
            )
            .await
            .unwrap()
    );
    let status = store.webhook_status(HOOK).await.unwrap();
    assert_eq!(status.dead, 1);
    assert_eq!(status.dead_events, [first.event.id]);
    let next = take(&store, after_lease).await;
    assert!(
        next.iter().any(
            |d| d.event.job_id.as_deref() == Some(&*a) && d.event.kind == EventType::JobStarted
        )
    );
    // An admin redelivers it: pending again, with a fresh count.
    store
        .redeliver(HOOK, first.event.id, after_lease)
        .await
        .unwrap();
    assert!(matches!(
        store.redeliver(HOOK, first.event.id, after_lease).await,
        Err(StoreError::NotFound)
    ));
    assert_eq!(store.webhook_status(HOOK).await.unwrap().dead, 0);
    let redone = take(&store, after_lease).await;
    let redone = redone.iter().find(|d| d.id == first.id).unwrap();
    assert_eq!(redone.attempt, 1);
}
