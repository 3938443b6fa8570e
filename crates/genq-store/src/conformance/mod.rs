//! The conformance suite: every backend must pass every test here, unchanged.
//!
//! A backend's test crate invokes [`conformance_tests!`] with an async expression that makes a
//! fresh, empty store; the macro expands to one `#[tokio::test]` per test below.

mod events;
mod histories;
pub mod pg;
mod prune;
mod webhooks;

pub use events::*;
pub use histories::{Op, op, run_history};
pub use prune::*;
pub use webhooks::*;

use crate::{
    ClaimRequest, Finish, JobFilter, JobQuery, LeaseRef, NewJobs, Outcome, Store, StoreError,
    UserCtx,
};
use chrono::{DateTime, Duration, TimeZone, Utc};
use genq_core::{ErrorClass, Job, JobError, JobState};
use serde_json::json;
use std::collections::HashSet;
use std::sync::Arc;

pub type DynStore = Arc<dyn Store>;

/// Expands to one test per conformance check, each with a fresh store from `$make`.
#[macro_export]
macro_rules! conformance_tests {
    ($make:expr) => {
        $crate::conformance_tests!(@each $make;
            enqueue_and_read_back, idempotent_single_job, idempotent_batch, batch_progress,
            claim_is_fifo_within_a_user, claim_never_hands_out_a_job_twice, claim_filters_kinds,
            priority_comes_first, users_take_turns, late_user_is_served_within_a_round,
            delayed_jobs_wait_until_staged, delayed_jobs_of_several_users_take_turns_when_staged,
            finish_is_fenced_by_lease, retry_waits_and_counts,
            due_retry_is_claimable_at_once, heartbeat_renews_and_reports_lost_leases,
            cancel_from_every_state, admin_retry_requeues_with_a_fresh_budget,
            rescuer_fence_loses_to_a_heartbeat, node_leases_are_the_nodes_running_jobs,
            pages_never_repeat_or_skip_while_jobs_arrive, pages_stop_at_a_byte_budget, list_filters,
            common_and_rare_states_list_newest_first, batches_and_users_come_in_pages,
            nodes_are_seen_and_forgotten,
            stats_count_states,
            concurrent_claimers_never_share_a_job, a_node_id_is_held_by_one_process,
            users_are_created_on_first_use, limits_are_stored_and_checked,
            enqueue_checks_every_limit_before_writing, credits_are_debited_and_refunded_once,
            a_canceled_attempt_ends_in_the_history,
            admin_retry_debits_again, user_max_running_holds_across_claims,
            user_counts_hold_while_the_upkeep_runs,
            parked_task_jobs_are_polled_when_due, a_poll_that_dies_is_taken_again,
            a_new_attempt_forgets_the_old_task, parked_jobs_can_be_canceled,
            a_batch_naming_a_job_twice_applies_once,
            each_job_tells_its_story_in_order, started_is_told_once_whatever_restarts_the_job,
            a_batch_completes_once, a_change_that_did_not_happen_tells_nothing,
            readers_filter_and_resume_where_they_left,
            deliveries_start_now_and_copy_each_event_once, deliveries_go_in_order_per_job,
            a_batch_event_waits_for_its_jobs_events,
            a_delivery_is_leased_fenced_and_given_up,
            old_finished_jobs_are_pruned_by_age_and_count,
            old_events_are_pruned_once_every_endpoint_has_them);
    };
    (@each $make:expr; $($name:ident),* $(,)?) => {
        proptest::proptest! {
            #![proptest_config(proptest::prelude::ProptestConfig { cases: 64, ..Default::default() })]
            /// Random histories of every operation follow the state machine (SPEC §3).
            #[test]
            fn random_histories_follow_the_state_machine(
                ops in proptest::collection::vec($crate::conformance::op(), 1..80)
            ) {
                let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
                runtime.block_on(async {
                    let store: $crate::conformance::DynStore = $make;
                    $crate::conformance::run_history(store, ops).await;
                });
            }
        }
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let store: $crate::conformance::DynStore = $make;
                $crate::conformance::$name(store).await;
            }
        )*
    };
}

pub fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap()
}

fn new_jobs(user: &str, n: usize) -> NewJobs {
    NewJobs {
        kind: "card.generate".into(),
        user_id: user.into(),
        payloads: (0..n).map(|i| json!({"n": i, "user": user})).collect(),
        priority: 0,
        run_at: None,
        max_retries: 5,
        cost: 1,
        idempotency_key: None,
        as_batch: n > 1,
        now: t0(),
        day: "2026-01-02".into(),
        user_defaults: rich(),
    }
}

fn ctx() -> UserCtx {
    UserCtx {
        day: "2026-01-02".into(),
        defaults: rich(),
        now: t0(),
    }
}

/// A user whose credits and plan never get in the way of tests about jobs.
pub fn rich() -> genq_core::UserDefaults {
    genq_core::UserDefaults {
        plan: "enterprise".into(),
        initial_credits: 1_000_000,
    }
}

fn claim_req(max: u32, now: DateTime<Utc>) -> ClaimRequest {
    ClaimRequest {
        node_id: "node-a".into(),
        worker_id: "w1".into(),
        kinds: vec!["card.generate".into(), "image.generate".into()],
        max,
        lease_until: now + Duration::seconds(30),
        now,
    }
}

async fn claim(store: &DynStore, max: u32) -> Vec<Job> {
    store.claim(claim_req(max, t0())).await.unwrap()
}

fn lease(job: &Job) -> LeaseRef {
    LeaseRef {
        job_id: job.id.clone(),
        token: job
            .lease
            .as_ref()
            .expect("a running job has a lease")
            .token
            .clone(),
    }
}

fn finish(job: &Job, outcome: Outcome, now: DateTime<Utc>) -> Finish {
    Finish::new(job, outcome, now)
}

fn success() -> Outcome {
    Outcome::Succeeded {
        result: json!({"ok": true}),
    }
}

fn error(class: ErrorClass) -> JobError {
    JobError {
        class,
        detail: format!("{class} detail"),
    }
}

pub async fn enqueue_and_read_back(store: DynStore) {
    let mut req = new_jobs("u1", 1);
    req.as_batch = false;
    req.priority = 3;
    let out = store.enqueue(req).await.unwrap();
    assert!(!out.replayed);
    assert!(out.batch.is_none());
    let job = &out.jobs[0];
    assert_eq!(job.state, JobState::Queued);
    assert_eq!((job.attempt, job.priority, job.cost), (0, 3, 1));
    assert_eq!(job.payload, json!({"n": 0, "user": "u1"}));
    assert_eq!(job.created_at, t0());
    assert!(job.started_at.is_none() && job.finished_at.is_none() && job.lease.is_none());
    assert_eq!(&store.job(&job.id).await.unwrap(), job);
    assert!(matches!(store.job("nope").await, Err(StoreError::NotFound)));
}

pub async fn idempotent_single_job(store: DynStore) {
    let mut req = new_jobs("u1", 1);
    req.as_batch = false;
    req.idempotency_key = Some("order-17".into());
    let first = store.enqueue(req.clone()).await.unwrap();
    let again = store.enqueue(req.clone()).await.unwrap();
    assert!(again.replayed && !first.replayed);
    assert_eq!(first.jobs[0].id, again.jobs[0].id);
    // The key is per user.
    req.user_id = "u2".into();
    let other = store.enqueue(req).await.unwrap();
    assert!(!other.replayed);
    assert_ne!(other.jobs[0].id, first.jobs[0].id);
    assert_eq!(claim(&store, 10).await.len(), 2);
}

pub async fn idempotent_batch(store: DynStore) {
    let mut req = new_jobs("u1", 3);
    req.idempotency_key = Some("batch-1".into());
    let first = store.enqueue(req.clone()).await.unwrap();
    let again = store.enqueue(req).await.unwrap();
    assert!(again.replayed);
    assert_eq!(
        first.batch.as_ref().unwrap().id,
        again.batch.as_ref().unwrap().id
    );
    let ids = |e: &crate::Enqueued| e.jobs.iter().map(|j| j.id.clone()).collect::<Vec<_>>();
    assert_eq!(ids(&first), ids(&again));
    assert_eq!(claim(&store, 10).await.len(), 3);
}

pub async fn batch_progress(store: DynStore) {
    let out = store.enqueue(new_jobs("u1", 4)).await.unwrap();
    let batch = out.batch.unwrap();
    // The enqueue answers with the batch as stored.
    let stored = store.batch(&batch.id).await.unwrap();
    assert_eq!(
        (batch.total, batch.queued, &batch.user_id, &batch.kind),
        (stored.total, stored.queued, &stored.user_id, &stored.kind)
    );
    assert_eq!((batch.total, batch.queued), (4, 4));
    assert_eq!(
        batch.created_at.timestamp_micros(),
        stored.created_at.timestamp_micros()
    );
    let batch_id = batch.id;
    assert_eq!(
        store.batch_job_ids(&batch_id).await.unwrap(),
        out.jobs.iter().map(|j| j.id.clone()).collect::<Vec<_>>()
    );
    let claimed = claim(&store, 2).await;
    let now = t0() + Duration::seconds(1);
    store
        .finish(vec![finish(&claimed[0], success(), now)])
        .await
        .unwrap();
    store.cancel(&out.jobs[3].id, now).await.unwrap();
    let b = store.batch(&batch_id).await.unwrap();
    assert_eq!(
        (b.total, b.queued, b.running, b.succeeded, b.canceled),
        (4, 1, 1, 1, 1)
    );
    assert!(b.finished_at.is_none());
    let rest = claim(&store, 5).await;
    let later = now + Duration::seconds(5);
    store
        .finish(
            [&claimed[1], &rest[0]]
                .iter()
                .map(|j| {
                    finish(
                        j,
                        Outcome::Failed {
                            error: error(ErrorClass::UserError),
                        },
                        later,
                    )
                })
                .collect(),
        )
        .await
        .unwrap();
    let b = store.batch(&batch_id).await.unwrap();
    assert_eq!((b.succeeded, b.failed, b.canceled), (1, 2, 1));
    assert_eq!(b.finished_at, Some(later));
    let listed = store.batches(None, 10).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(
        (listed[0].id.as_str(), listed[0].total, listed[0].unfinished),
        (batch_id.as_str(), 4, 0)
    );
    assert_eq!(listed[0].completed_at, Some(later));
    assert!(matches!(
        store.batch("nope").await,
        Err(StoreError::NotFound)
    ));
}

pub async fn claim_is_fifo_within_a_user(store: DynStore) {
    let out = store.enqueue(new_jobs("u1", 5)).await.unwrap();
    let mut claimed = Vec::new();
    for _ in 0..5 {
        claimed.extend(claim(&store, 1).await);
    }
    let order = |jobs: &[Job]| jobs.iter().map(|j| j.id.clone()).collect::<Vec<_>>();
    assert_eq!(order(&claimed), order(&out.jobs));
    for job in &claimed {
        assert_eq!(job.state, JobState::Running);
        assert_eq!(job.attempt, 1);
        assert_eq!(job.started_at, Some(t0()));
        let l = job.lease.as_ref().unwrap();
        assert_eq!((l.node_id.as_str(), l.worker_id.as_str()), ("node-a", "w1"));
        assert_eq!(l.expires_at, t0() + Duration::seconds(30));
    }
}

pub async fn claim_never_hands_out_a_job_twice(store: DynStore) {
    store.enqueue(new_jobs("u1", 10)).await.unwrap();
    let first = claim(&store, 6).await;
    let second = claim(&store, 6).await;
    assert_eq!((first.len(), second.len()), (6, 4));
    let ids: HashSet<_> = first.iter().chain(&second).map(|j| j.id.clone()).collect();
    assert_eq!(ids.len(), 10);
    assert!(claim(&store, 6).await.is_empty());
}

pub async fn claim_filters_kinds(store: DynStore) {
    let mut video = new_jobs("u1", 2);
    video.kind = "video.generate".into();
    store.enqueue(video).await.unwrap();
    assert!(claim(&store, 10).await.is_empty());
    let mut req = claim_req(10, t0());
    req.kinds = vec!["video.generate".into()];
    assert_eq!(store.claim(req).await.unwrap().len(), 2);
}

pub async fn priority_comes_first(store: DynStore) {
    store.enqueue(new_jobs("u1", 3)).await.unwrap();
    let mut urgent = new_jobs("u2", 1);
    urgent.priority = 10;
    urgent.as_batch = false;
    let urgent = store.enqueue(urgent).await.unwrap().jobs[0].id.clone();
    assert_eq!(claim(&store, 1).await[0].id, urgent);
}

pub async fn users_take_turns(store: DynStore) {
    for user in ["a", "b", "c"] {
        store.enqueue(new_jobs(user, 4)).await.unwrap();
    }
    let mut users = Vec::new();
    for _ in 0..12 {
        users.push(claim(&store, 1).await[0].user_id.clone());
    }
    // Each round serves each user once, whatever order they submitted in.
    for round in users.chunks(3) {
        let set: HashSet<_> = round.iter().collect();
        assert_eq!(set.len(), 3, "{users:?}");
    }
}

pub async fn late_user_is_served_within_a_round(store: DynStore) {
    store.enqueue(new_jobs("a", 150)).await.unwrap();
    store.enqueue(new_jobs("a", 150)).await.unwrap();
    for _ in 0..7 {
        claim(&store, 1).await;
    }
    let mut late = new_jobs("b", 1);
    late.as_batch = false;
    let b_job = store.enqueue(late).await.unwrap().jobs[0].id.clone();
    let next: Vec<String> = {
        let mut ids = Vec::new();
        for _ in 0..2 {
            ids.extend(claim(&store, 1).await.into_iter().map(|j| j.id));
        }
        ids
    };
    assert!(next.contains(&b_job), "B waited behind A's backlog");
    // And with a batch claim of the worker's concurrency, B is in the very next claim.
    let mut late = new_jobs("c", 1);
    late.as_batch = false;
    let c_job = store.enqueue(late).await.unwrap().jobs[0].id.clone();
    let batch = claim(&store, 25).await;
    assert!(batch.iter().any(|j| j.id == c_job));
}

pub async fn delayed_jobs_wait_until_staged(store: DynStore) {
    let mut req = new_jobs("u1", 1);
    req.as_batch = false;
    req.run_at = Some(t0() + Duration::seconds(60));
    let id = store.enqueue(req).await.unwrap().jobs[0].id.clone();
    assert!(claim(&store, 10).await.is_empty());
    let early = store
        .stage_due(t0() + Duration::seconds(59), 100)
        .await
        .unwrap();
    assert_eq!(early.staged, 0);
    assert_eq!(early.next_due, Some(t0() + Duration::seconds(60)));
    let due = store
        .stage_due(t0() + Duration::seconds(60), 100)
        .await
        .unwrap();
    assert_eq!((due.staged, due.next_due), (1, None));
    let claimed = store
        .claim(claim_req(10, t0() + Duration::seconds(61)))
        .await
        .unwrap();
    assert_eq!(claimed[0].id, id);
}

/// Delayed jobs of several users staged together take turns like new ones, each user's in the
/// order they fell due (not the order they were enqueued).
pub async fn delayed_jobs_of_several_users_take_turns_when_staged(store: DynStore) {
    let mut due_order = std::collections::HashMap::new();
    for (user, offsets) in [("u1", [62, 61, 60].as_slice()), ("u2", [60, 61].as_slice())] {
        for &seconds in offsets {
            let mut req = new_jobs(user, 1);
            req.as_batch = false;
            req.run_at = Some(t0() + Duration::seconds(seconds));
            let id = store.enqueue(req).await.unwrap().jobs[0].id.clone();
            due_order.insert(id, (user, seconds));
        }
    }
    let staged = store
        .stage_due(t0() + Duration::seconds(62), 100)
        .await
        .unwrap();
    assert_eq!(staged.staged, 5);
    let mut order = Vec::new();
    for _ in 0..5 {
        let job = claim(&store, 1).await.remove(0);
        order.push(due_order[&job.id]);
    }
    assert_eq!(
        order,
        [("u1", 60), ("u2", 60), ("u1", 61), ("u2", 61), ("u1", 62)]
    );
}

pub async fn finish_is_fenced_by_lease(store: DynStore) {
    store.enqueue(new_jobs("u1", 2)).await.unwrap();
    let jobs = claim(&store, 2).await;
    let now = t0() + Duration::seconds(2);
    let mut forged = finish(&jobs[1], success(), now);
    forged.lease.token = "not-the-token".into();
    let applied = store
        .finish(vec![finish(&jobs[0], success(), now), forged])
        .await
        .unwrap();
    assert_eq!(applied, vec![true, false]);
    // A second completion of the same attempt does nothing.
    let again = store
        .finish(vec![finish(&jobs[0], success(), now)])
        .await
        .unwrap();
    assert_eq!(again, vec![false]);
    let done = store.job(&jobs[0].id).await.unwrap();
    assert_eq!(done.state, JobState::Succeeded);
    assert!(done.error.is_none());
    assert_eq!(done.result, Some(json!({"ok": true})));
    assert_eq!(done.finished_at, Some(now));
    assert!(done.lease.is_none());
    assert_eq!(
        store.job(&jobs[1].id).await.unwrap().state,
        JobState::Running
    );
}

pub async fn retry_waits_and_counts(store: DynStore) {
    store.enqueue(new_jobs("u1", 1)).await.unwrap();
    let job = claim(&store, 1).await.remove(0);
    let now = t0() + Duration::seconds(1);
    let run_at = now + Duration::seconds(5);
    let retry = Outcome::Retry {
        run_at,
        error: Some(error(ErrorClass::Temporary)),
        uses_retry: true,
        rate_limit_wait: false,
    };
    assert_eq!(
        store.finish(vec![finish(&job, retry, now)]).await.unwrap(),
        vec![true]
    );
    let waiting = store.job(&job.id).await.unwrap();
    assert_eq!(waiting.state, JobState::Retrying);
    assert_eq!((waiting.retries_used, waiting.rate_limit_waits), (1, 0));
    assert_eq!(waiting.run_at, run_at);
    assert_eq!(waiting.error, Some(error(ErrorClass::Temporary)));
    assert!(store.claim(claim_req(5, now)).await.unwrap().is_empty());
    assert_eq!(store.stage_due(run_at, 10).await.unwrap().staged, 1);
    let again = store.claim(claim_req(5, run_at)).await.unwrap();
    assert_eq!(again[0].attempt, 2);
    assert_eq!(
        again[0].error,
        Some(error(ErrorClass::Temporary)),
        "the last failure stays visible while running"
    );
    let wait = Outcome::Retry {
        run_at: run_at + Duration::seconds(30),
        error: Some(error(ErrorClass::RateLimited)),
        uses_retry: false,
        rate_limit_wait: true,
    };
    store
        .finish(vec![finish(&again[0], wait, run_at)])
        .await
        .unwrap();
    let waiting = store.job(&job.id).await.unwrap();
    assert_eq!((waiting.retries_used, waiting.rate_limit_waits), (1, 1));
    let later = run_at + Duration::seconds(30);
    store.stage_due(later, 10).await.unwrap();
    let third = store.claim(claim_req(5, later)).await.unwrap();
    store
        .finish(vec![finish(&third[0], success(), later)])
        .await
        .unwrap();
    let done = store.job(&job.id).await.unwrap();
    assert_eq!((done.state, done.attempt), (JobState::Succeeded, 3));
    assert!(done.error.is_none(), "a success clears the last failure");
    // Every attempt stays in the history: when it ran, what it led to, and why.
    let kept: Vec<_> = done
        .history
        .iter()
        .map(|a| (a.attempt, a.started_at, a.ended_at, a.outcome, a.class))
        .collect();
    assert_eq!(
        kept,
        [
            (
                1,
                Some(t0()),
                now,
                JobState::Retrying,
                Some(ErrorClass::Temporary)
            ),
            (
                2,
                Some(run_at),
                run_at,
                JobState::Retrying,
                Some(ErrorClass::RateLimited)
            ),
            (3, Some(later), later, JobState::Succeeded, None),
        ]
    );
    assert_eq!(done.history[0].detail.as_deref(), Some("temporary detail"));
    assert_eq!(done.attempt_started_at, Some(later));
}

pub async fn a_canceled_attempt_ends_in_the_history(store: DynStore) {
    store.enqueue(new_jobs("u1", 2)).await.unwrap();
    let running = claim(&store, 1).await.remove(0);
    let now = t0() + Duration::seconds(2);
    let canceled = store.cancel(&running.id, now).await.unwrap();
    assert_eq!(canceled.history.len(), 1);
    let a = &canceled.history[0];
    assert_eq!(
        (a.attempt, a.started_at, a.ended_at, a.outcome, a.class),
        (
            1,
            Some(t0()),
            now,
            JobState::Canceled,
            Some(ErrorClass::Canceled)
        )
    );
    // A job canceled before it ran had no attempt.
    let page = store
        .jobs(&JobQuery::newest(JobFilter::default(), 10))
        .await
        .unwrap();
    let queued = page.jobs.iter().find(|j| j.id != running.id).unwrap();
    assert!(
        store
            .cancel(&queued.id, now)
            .await
            .unwrap()
            .history
            .is_empty()
    );
}

pub async fn due_retry_is_claimable_at_once(store: DynStore) {
    store.enqueue(new_jobs("u1", 1)).await.unwrap();
    let job = claim(&store, 1).await.remove(0);
    let release = Outcome::Retry {
        run_at: t0(),
        error: None,
        uses_retry: false,
        rate_limit_wait: false,
    };
    store
        .finish(vec![finish(&job, release, t0())])
        .await
        .unwrap();
    let again = claim(&store, 1).await;
    assert_eq!(again[0].id, job.id);
    assert_eq!((again[0].attempt, again[0].retries_used), (2, 0));
    assert_ne!(
        lease(&again[0]),
        lease(&job),
        "a new attempt has a new lease token"
    );
}

pub async fn heartbeat_renews_and_reports_lost_leases(store: DynStore) {
    store.enqueue(new_jobs("u1", 2)).await.unwrap();
    let jobs = claim(&store, 2).await;
    let later = t0() + Duration::seconds(20);
    store.cancel(&jobs[1].id, later).await.unwrap();
    let leases = vec![lease(&jobs[0]), lease(&jobs[1])];
    let renewed = store
        .heartbeat(&leases, later + Duration::seconds(30), later)
        .await
        .unwrap();
    assert_eq!(renewed, vec![lease(&jobs[0])]);
    let job = store.job(&jobs[0].id).await.unwrap();
    assert_eq!(job.lease.unwrap().expires_at, later + Duration::seconds(30));
}

pub async fn cancel_from_every_state(store: DynStore) {
    let jobs = store.enqueue(new_jobs("u1", 4)).await.unwrap().jobs;
    let now = t0() + Duration::seconds(1);
    // queued
    let canceled = store.cancel(&jobs[0].id, now).await.unwrap();
    assert_eq!(canceled.state, JobState::Canceled);
    assert_eq!(canceled.error.unwrap().class, ErrorClass::Canceled);
    assert_eq!(canceled.finished_at, Some(now));
    // running: the lease goes, so the worker's completion is fenced out.
    let running = claim(&store, 2).await;
    let canceled = store.cancel(&running[0].id, now).await.unwrap();
    assert!(canceled.lease.is_none());
    assert_eq!(
        store
            .finish(vec![finish(&running[0], success(), now)])
            .await
            .unwrap(),
        vec![false]
    );
    // retrying
    let retry = Outcome::Retry {
        run_at: now + Duration::seconds(100),
        error: Some(error(ErrorClass::Timeout)),
        uses_retry: true,
        rate_limit_wait: false,
    };
    store
        .finish(vec![finish(&running[1], retry, now)])
        .await
        .unwrap();
    assert_eq!(
        store.cancel(&running[1].id, now).await.unwrap().state,
        JobState::Canceled
    );
    // terminal: conflict; missing: not found.
    assert!(matches!(
        store.cancel(&jobs[0].id, now).await,
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(
        store.cancel("missing", now).await,
        Err(StoreError::NotFound)
    ));
    // A canceled job never becomes claimable again by itself.
    assert_eq!(
        store
            .stage_due(now + Duration::days(1), 10)
            .await
            .unwrap()
            .staged,
        0
    );
    let left = claim(&store, 10).await;
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].id, jobs[3].id);
}

pub async fn admin_retry_requeues_with_a_fresh_budget(store: DynStore) {
    store.enqueue(new_jobs("u1", 2)).await.unwrap();
    let jobs = claim(&store, 2).await;
    let now = t0() + Duration::seconds(3);
    store
        .finish(vec![
            finish(
                &jobs[0],
                Outcome::Failed {
                    error: error(ErrorClass::Temporary),
                },
                now,
            ),
            finish(&jobs[1], success(), now),
        ])
        .await
        .unwrap();
    let requeued = store.admin_retry(&jobs[0].id, now).await.unwrap();
    assert_eq!(requeued.state, JobState::Queued);
    assert_eq!((requeued.retries_used, requeued.rate_limit_waits), (0, 0));
    assert!(requeued.error.is_none() && requeued.finished_at.is_none());
    assert!(matches!(
        store.admin_retry(&jobs[1].id, now).await,
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(
        store.admin_retry("missing", now).await,
        Err(StoreError::NotFound)
    ));
    let again = claim(&store, 5).await;
    assert_eq!(again[0].id, jobs[0].id);
    assert_eq!(again[0].attempt, 2);
}

pub async fn rescuer_fence_loses_to_a_heartbeat(store: DynStore) {
    store.enqueue(new_jobs("u1", 2)).await.unwrap();
    let jobs = claim(&store, 2).await;
    let after_expiry = t0() + Duration::seconds(31);
    let expired = store.expired_leases(after_expiry, 10).await.unwrap();
    assert_eq!(expired.len(), 2);
    // One worker renews just before the rescuer acts on what it read.
    store
        .heartbeat(
            &[lease(&jobs[0])],
            after_expiry + Duration::seconds(30),
            after_expiry,
        )
        .await
        .unwrap();
    let rescue = |job: &Job| {
        let outcome = Outcome::Retry {
            run_at: after_expiry,
            error: Some(error(ErrorClass::LeaseExpired)),
            uses_retry: true,
            rate_limit_wait: false,
        };
        Finish::new(job, outcome, after_expiry).if_expired_before(after_expiry)
    };
    let applied = store
        .finish(expired.iter().map(rescue).collect())
        .await
        .unwrap();
    let by_id: Vec<(String, bool)> = expired.iter().map(|j| j.id.clone()).zip(applied).collect();
    for (id, applied) in by_id {
        assert_eq!(
            applied,
            id != jobs[0].id,
            "only the silent lease is rescued"
        );
    }
    assert_eq!(
        store.job(&jobs[1].id).await.unwrap().state,
        JobState::Retrying
    );
    assert!(
        store
            .expired_leases(after_expiry, 10)
            .await
            .unwrap()
            .is_empty()
    );
}

pub async fn node_leases_are_the_nodes_running_jobs(store: DynStore) {
    store.enqueue(new_jobs("u1", 3)).await.unwrap();
    claim(&store, 2).await;
    let mut other = claim_req(1, t0());
    other.node_id = "node-b".into();
    store.claim(other).await.unwrap();
    let mine = store.node_leases("node-a", 10).await.unwrap();
    assert_eq!(mine.len(), 2);
    assert!(
        mine.iter()
            .all(|j| j.lease.as_ref().unwrap().node_id == "node-a")
    );
}

pub async fn pages_never_repeat_or_skip_while_jobs_arrive(store: DynStore) {
    let mut single = new_jobs("u1", 1);
    single.as_batch = false;
    let mut all = Vec::new();
    for _ in 0..25 {
        all.push(
            store.enqueue(single.clone()).await.unwrap().jobs[0]
                .id
                .clone(),
        );
    }
    let mut seen = Vec::new();
    let mut before: Option<String> = None;
    loop {
        let page = store
            .jobs(&JobQuery {
                before: before.clone(),
                ..JobQuery::newest(JobFilter::default(), 7)
            })
            .await
            .unwrap();
        seen.extend(page.jobs.iter().map(|j| j.id.clone()));
        // New jobs keep arriving between pages.
        store.enqueue(single.clone()).await.unwrap();
        match page.next_before {
            Some(b) => before = Some(b),
            None => break,
        }
    }
    all.reverse();
    assert_eq!(seen, all, "newest first, each exactly once");
}

pub async fn pages_stop_at_a_byte_budget(store: DynStore) {
    // Five jobs of ~10 kB each and one small one, newest last.
    let mut single = new_jobs("u1", 1);
    single.as_batch = false;
    let mut ids = Vec::new();
    for i in 0..6 {
        let mut one = single.clone();
        let size = if i == 5 { 10 } else { 10_000 };
        one.payloads = vec![json!({"blob": "x".repeat(size)})];
        ids.push(store.enqueue(one).await.unwrap().jobs[0].id.clone());
    }
    ids.reverse();
    let page = |before: Option<String>, max_bytes: usize| {
        let store = store.clone();
        async move {
            store
                .jobs(&JobQuery {
                    before,
                    max_bytes,
                    ..JobQuery::newest(JobFilter::default(), 200)
                })
                .await
                .unwrap()
        }
    };
    // 25 kB: the small job and two large ones fit, a third large one would not.
    let first = page(None, 25_000).await;
    let got: Vec<&str> = first.jobs.iter().map(|j| j.id.as_str()).collect();
    assert_eq!(got, ids[..3].iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(first.next_before.as_deref(), Some(ids[2].as_str()));
    // A budget smaller than one job still makes progress, one job a page.
    let mut seen = Vec::new();
    let mut before = None;
    loop {
        let p = page(before, 100).await;
        assert_eq!(p.jobs.len(), 1);
        seen.push(p.jobs[0].id.clone());
        match p.next_before {
            Some(b) => before = Some(b),
            None => break,
        }
    }
    assert_eq!(seen, ids);
}

/// A state that thousands of jobs share lists newest first and pages on, as a rare one does
/// (SQLite takes another plan for each; see `list_jobs`).
pub async fn common_and_rare_states_list_newest_first(store: DynStore) {
    for user in 0..27 {
        store
            .enqueue(new_jobs(&format!("u{user}"), 200))
            .await
            .unwrap();
    }
    claim(&store, 120).await;
    for (state, total) in [(JobState::Queued, 5_280), (JobState::Running, 120)] {
        let filter = JobFilter {
            state: Some(state),
            ..Default::default()
        };
        let mut all = store
            .jobs(&JobQuery::newest(JobFilter::default(), 10_000))
            .await
            .unwrap()
            .jobs;
        all.retain(|j| j.state == state);
        let want: Vec<String> = all.iter().map(|j| j.id.clone()).take(150).collect();
        let mut got = Vec::new();
        let mut before = None;
        while got.len() < want.len() {
            let page = store
                .jobs(&JobQuery {
                    filter: filter.clone(),
                    before,
                    limit: 50,
                    max_bytes: usize::MAX,
                })
                .await
                .unwrap();
            got.extend(page.jobs.iter().map(|j| j.id.clone()));
            before = page.next_before;
            if before.is_none() {
                break;
            }
        }
        assert_eq!(all.len(), total, "{state:?}");
        assert_eq!(got, want, "{state:?}: newest first, pages in order");
        let ids = store.job_ids(&filter, 150).await.unwrap();
        assert_eq!(ids, want, "{state:?}: job_ids takes the newest matches");
        let every: Vec<String> = all.iter().map(|j| j.id.clone()).collect();
        let ids = store.job_ids(&filter, 6_000).await.unwrap();
        assert_eq!(ids, every, "{state:?}: job_ids stops at the last match");
    }
}

pub async fn batches_and_users_come_in_pages(store: DynStore) {
    let mut batches = Vec::new();
    for user in ["u1", "u2", "u3"] {
        let out = store.enqueue(new_jobs(user, 2)).await.unwrap();
        batches.push(out.batch.unwrap().id);
    }
    store.enqueue(new_jobs("u2", 1)).await.unwrap();
    let running = claim(&store, 1).await;
    let ids = |page: Vec<crate::BatchSummary>| page.into_iter().map(|b| b.id).collect::<Vec<_>>();
    let newest = store.batches(None, 2).await.unwrap();
    assert!(
        newest
            .iter()
            .all(|b| b.total == 2 && b.completed_at.is_none())
    );
    assert_eq!(ids(newest), [batches[2].clone(), batches[1].clone()]);
    assert_eq!(
        ids(store.batches(Some(&batches[1]), 2).await.unwrap()),
        [batches[0].clone()]
    );
    assert!(
        store
            .batches(Some(&batches[0]), 2)
            .await
            .unwrap()
            .is_empty()
    );

    let first = store.users("", 2).await.unwrap();
    let rest = store.users(&first[1].id, 2).await.unwrap();
    let counts = |users: &[genq_core::User]| {
        users
            .iter()
            .map(|u| (u.id.clone(), u.unfinished, u.running))
            .collect::<Vec<_>>()
    };
    let mut want = [
        ("u1".to_string(), 2, 0),
        ("u2".to_string(), 3, 0),
        ("u3".to_string(), 2, 0),
    ];
    let who = want
        .iter_mut()
        .find(|(id, _, _)| *id == running[0].user_id)
        .unwrap();
    who.2 = 1;
    assert_eq!(counts(&first), want[..2]);
    assert_eq!(counts(&rest), want[2..]);
    assert!(store.users("u3", 2).await.unwrap().is_empty());
}

pub async fn nodes_are_seen_and_forgotten(store: DynStore) {
    let node = |id: &str, seen_at| crate::NodeSeen {
        node_id: id.into(),
        pid: 4242,
        version: "0.1.0".into(),
        concurrency: 25,
        started_at: t0(),
        seen_at,
    };
    store.node_seen(&node("host:a#1", t0())).await.unwrap();
    store.node_seen(&node("host:b#1", t0())).await.unwrap();
    let later = t0() + Duration::minutes(5);
    store.node_seen(&node("host:a#1", later)).await.unwrap();
    assert_eq!(
        store.nodes(t0()).await.unwrap(),
        [node("host:a#1", later), node("host:b#1", t0())]
    );
    assert_eq!(
        store.nodes(t0() + Duration::seconds(1)).await.unwrap(),
        [node("host:a#1", later)],
        "b has not been seen since"
    );
    let next_day = later + crate::NODE_FORGOTTEN_AFTER;
    store.node_seen(&node("host:c#1", next_day)).await.unwrap();
    assert_eq!(
        store
            .nodes(t0() - Duration::days(1))
            .await
            .unwrap()
            .into_iter()
            .map(|n| n.node_id)
            .collect::<Vec<_>>(),
        ["host:a#1", "host:c#1"],
        "b, silent for a day, is forgotten"
    );
}

pub async fn list_filters(store: DynStore) {
    store.enqueue(new_jobs("u1", 3)).await.unwrap();
    let b = store.enqueue(new_jobs("u2", 2)).await.unwrap();
    claim(&store, 1).await;
    let count = |f: JobFilter| {
        let store = store.clone();
        async move {
            store
                .jobs(&JobQuery::newest(f, 200))
                .await
                .unwrap()
                .jobs
                .len()
        }
    };
    assert_eq!(
        count(JobFilter {
            user_id: Some("u2".into()),
            ..Default::default()
        })
        .await,
        2
    );
    assert_eq!(
        count(JobFilter {
            state: Some(JobState::Running),
            ..Default::default()
        })
        .await,
        1
    );
    assert_eq!(
        count(JobFilter {
            kind: Some("card.generate".into()),
            ..Default::default()
        })
        .await,
        5
    );
    assert_eq!(
        count(JobFilter {
            kind: Some("other".into()),
            ..Default::default()
        })
        .await,
        0
    );
    let batch = Some(b.batch.unwrap().id);
    assert_eq!(
        count(JobFilter {
            batch_id: batch,
            ..Default::default()
        })
        .await,
        2
    );
}

pub async fn stats_count_states(store: DynStore) {
    store.enqueue(new_jobs("u1", 4)).await.unwrap();
    let jobs = claim(&store, 2).await;
    let now = t0() + Duration::seconds(10);
    store
        .finish(vec![finish(&jobs[0], success(), now)])
        .await
        .unwrap();
    let stats = store.stats(now + Duration::seconds(30)).await.unwrap();
    assert_eq!(stats.by_state.get(&JobState::Queued), Some(&2));
    assert_eq!(stats.by_state.get(&JobState::Running), Some(&1));
    assert_eq!(stats.by_state.get(&JobState::Succeeded), Some(&1));
    assert_eq!(stats.by_kind["card.generate"][&JobState::Queued], 2);
    assert_eq!(
        (stats.finished_last_minute, stats.finished_last_hour),
        (1, 1)
    );
    assert_eq!(stats.oldest_claimable_age_ms, Some(40_000));
    // Leased until t0 + 30 s: the running one is past its lease at t0 + 40 s, not before.
    assert_eq!(stats.past_lease, 1);
    assert_eq!(store.stats(t0()).await.unwrap().past_lease, 0);
    let later = store.stats(now + Duration::minutes(5)).await.unwrap();
    assert_eq!(
        (later.finished_last_minute, later.finished_last_hour),
        (0, 1)
    );

    // Every change moves the counts: a cancel, a failure, an admin retry, a prune.
    let failed_at = now + Duration::minutes(2);
    store
        .finish(vec![finish(
            &jobs[1],
            Outcome::Failed {
                error: error(ErrorClass::UserError),
            },
            failed_at,
        )])
        .await
        .unwrap();
    let queued = store.job_ids(&JobFilter::default(), 10).await.unwrap();
    let canceled = store.cancel(&queued[0], failed_at).await.unwrap();
    assert_eq!(canceled.state, JobState::Canceled);
    let stats = store.stats(failed_at + Duration::seconds(1)).await.unwrap();
    let minutes = &stats.finished_per_minute;
    assert_eq!(minutes.len(), 60);
    assert_eq!(
        minutes[59],
        crate::FinishedMinute {
            start: failed_at - Duration::seconds(failed_at.timestamp() % 60),
            succeeded: 0,
            failed: 1,
            canceled: 1,
        },
        "the minute now is in comes last"
    );
    assert_eq!(
        minutes.iter().map(|m| m.succeeded).sum::<u64>(),
        1,
        "two minutes earlier"
    );
    assert_eq!(
        stats.failed_last_hour_by_class,
        [("user_error".to_string(), 1)].into()
    );
    assert_eq!(stats.finished_last_hour, 3);
    store.admin_retry(&canceled.id, failed_at).await.unwrap();
    store
        .prune_jobs(&crate::Prune {
            state: JobState::Succeeded,
            finished_before: failed_at,
            keep_newest: None,
            limit: 10,
        })
        .await
        .unwrap();
    let stats = store.stats(failed_at).await.unwrap();
    let listed = store
        .jobs(&JobQuery::newest(JobFilter::default(), 100))
        .await
        .unwrap()
        .jobs;
    for state in JobState::ALL {
        let n = listed.iter().filter(|j| j.state == state).count() as u64;
        assert_eq!(
            stats.by_state.get(&state).copied().unwrap_or(0),
            n,
            "{state:?}"
        );
    }
    assert_eq!(stats.by_state.get(&JobState::Queued), Some(&2));
    assert_eq!(stats.by_state.get(&JobState::Succeeded), None);
}

pub async fn concurrent_claimers_never_share_a_job(store: DynStore) {
    for user in 0..10 {
        store
            .enqueue(new_jobs(&format!("u{user}"), 20))
            .await
            .unwrap();
    }
    let mut tasks = Vec::new();
    for w in 0..8 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            loop {
                let mut req = claim_req(3, t0());
                req.worker_id = format!("w{w}");
                let got = store.claim(req).await.unwrap();
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
    let unique: HashSet<_> = all.iter().collect();
    assert_eq!((all.len(), unique.len()), (200, 200));
}

pub async fn a_node_id_is_held_by_one_process(store: DynStore) {
    let held = store.lock_node("host:db:serve#1").await.unwrap();
    assert!(held.is_some());
    assert!(store.lock_node("host:db:serve#1").await.unwrap().is_none());
    assert!(store.lock_node("host:db:serve#2").await.unwrap().is_some());
    drop(held);
    // Free again once the holder is gone: at once on SQLite (a file lock), as soon as the
    // server sees the session end on PostgreSQL (an advisory lock).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while store.lock_node("host:db:serve#1").await.unwrap().is_none() {
        assert!(
            std::time::Instant::now() < deadline,
            "a dropped node lock stays held"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

fn poor(credits: i64, plan: &str) -> genq_core::UserDefaults {
    genq_core::UserDefaults {
        plan: plan.into(),
        initial_credits: credits,
    }
}

async fn user(store: &DynStore, id: &str) -> genq_core::User {
    store.user(id, &ctx().day).await.unwrap()
}

pub async fn users_are_created_on_first_use(store: DynStore) {
    // Reading a user never seen creates nothing.
    assert!(matches!(
        store.user("new", &ctx().day).await,
        Err(StoreError::NotFound)
    ));
    let u = store
        .set_plan(
            "new",
            "basic",
            &UserCtx {
                defaults: poor(7, "free"),
                ..ctx()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        (u.plan.as_str(), u.credits, u.unfinished, u.used_today),
        ("basic", 7, 0, 0)
    );
    assert_eq!(u.created_at, t0());
    let (entries, next) = store.ledger("new", None, 10).await.unwrap();
    assert_eq!(entries.len(), 1);
    assert_eq!(
        (entries[0].kind, entries[0].amount, entries[0].balance),
        (genq_core::LedgerKind::Grant, 7, 7)
    );
    assert!(next.is_none());
    // Seen again: the defaults do not apply twice.
    let again = store
        .add_credits(
            "new",
            1,
            "bonus",
            &UserCtx {
                defaults: poor(100, "free"),
                ..ctx()
            },
        )
        .await
        .unwrap();
    assert_eq!((again.plan.as_str(), again.credits), ("basic", 8));
    let again = store
        .add_credits("new", -1, "bonus taken back", &ctx())
        .await
        .unwrap();
    assert_eq!((again.plan.as_str(), again.credits), ("basic", 7));
    let u = store.set_plan("new", "professional", &ctx()).await.unwrap();
    assert_eq!(u.plan, "professional");
    let u = store
        .add_credits("new", -7, "chargeback", &ctx())
        .await
        .unwrap();
    assert_eq!(u.credits, 0);
    assert!(matches!(
        store.add_credits("new", -1, "too much", &ctx()).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(
        user(&store, "new").await.credits,
        0,
        "a refused adjustment changes nothing"
    );
    let (entries, _) = store.ledger("new", None, 10).await.unwrap();
    assert_eq!(entries.len(), 4, "{entries:?}");
}

pub async fn limits_are_stored_and_checked(store: DynStore) {
    let defaults = store.limits().await.unwrap();
    assert_eq!(defaults, genq_core::Limits::default());
    let changed = store
        .set_limit("batch_max_items_per_request", 10, t0())
        .await
        .unwrap();
    assert_eq!(changed.get("batch_max_items_per_request"), 10);
    assert_eq!(store.limits().await.unwrap(), changed);
    for (key, value) in [
        ("nope", 1),
        ("batch_max_items_per_request", 0),
        ("user_max_running", -1),
    ] {
        assert!(
            matches!(
                store.set_limit(key, value, t0()).await,
                Err(StoreError::Invalid(_))
            ),
            "{key}={value}"
        );
    }
    assert_eq!(
        store.limits().await.unwrap(),
        changed,
        "a refused change changes nothing"
    );
}

pub async fn enqueue_checks_every_limit_before_writing(store: DynStore) {
    use crate::Rejection;
    let mut req = new_jobs("u1", 5);
    req.user_defaults = poor(100, "free");
    store.enqueue(req.clone()).await.unwrap();
    // The free plan's 5 a day are used.
    let mut one = req.clone();
    one.payloads.truncate(1);
    one.as_batch = false;
    assert_eq!(
        store.enqueue(one.clone()).await.unwrap_err().to_string(),
        StoreError::Rejected(Rejection::DailyLimit { limit: 5, used: 5 }).to_string()
    );
    // The next day is a new day.
    one.day = "2026-01-03".into();
    store.enqueue(one.clone()).await.unwrap();
    // The queue limit counts unfinished jobs.
    store
        .set_limit("batch_max_queued_per_user", 6, t0())
        .await
        .unwrap();
    one.day = "2026-01-04".into();
    assert!(matches!(
        store.enqueue(one.clone()).await,
        Err(StoreError::Rejected(Rejection::QueueLimit {
            limit: 6,
            current: 6
        }))
    ));
    // Credits: 100 - 6 = 94 left; a batch of 95 at cost 1 does not fit.
    store
        .set_limit("batch_max_queued_per_user", 1000, t0())
        .await
        .unwrap();
    store.set_plan("u1", "enterprise", &ctx()).await.unwrap();
    let mut big = req.clone();
    big.day = "2026-01-04".into();
    big.payloads = vec![json!({}); 95];
    assert!(matches!(
        store.enqueue(big.clone()).await,
        Err(StoreError::Rejected(Rejection::InsufficientCredits {
            needed: 95,
            balance: 94
        }))
    ));
    store
        .set_limit("batch_max_items_per_request", 50, t0())
        .await
        .unwrap();
    big.payloads.truncate(60);
    assert!(matches!(
        store.enqueue(big).await,
        Err(StoreError::Rejected(Rejection::BatchTooLarge {
            limit: 50,
            items: 60
        }))
    ));
    let u = user(&store, "u1").await;
    assert_eq!(
        (u.unfinished, u.credits),
        (6, 94),
        "rejected requests wrote nothing"
    );
    assert_eq!(
        store
            .jobs(&JobQuery::newest(JobFilter::default(), 200))
            .await
            .unwrap()
            .jobs
            .len(),
        6
    );
}

pub async fn credits_are_debited_and_refunded_once(store: DynStore) {
    let mut req = new_jobs("u1", 3);
    req.user_defaults = poor(10, "enterprise");
    req.cost = 2;
    let jobs = store.enqueue(req.clone()).await.unwrap().jobs;
    assert_eq!(user(&store, "u1").await.credits, 4);
    // Replaying an idempotent request debits nothing.
    let mut keyed = new_jobs("u1", 1);
    keyed.as_batch = false;
    keyed.cost = 2;
    keyed.idempotency_key = Some("k".into());
    let single = store.enqueue(keyed.clone()).await.unwrap().jobs[0]
        .id
        .clone();
    store.enqueue(keyed).await.unwrap();
    assert_eq!(user(&store, "u1").await.credits, 2);
    // One fails, one is canceled, one succeeds after a retry: two refunds.
    let claimed = claim(&store, 3).await;
    let now = t0() + Duration::seconds(1);
    store.cancel(&claimed[1].id, now).await.unwrap();
    store
        .finish(vec![
            finish(
                &claimed[0],
                Outcome::Failed {
                    error: error(ErrorClass::UserError),
                },
                now,
            ),
            finish(&claimed[1], success(), now),
            finish(
                &claimed[2],
                Outcome::Retry {
                    run_at: now,
                    error: None,
                    uses_retry: false,
                    rate_limit_wait: false,
                },
                now,
            ),
        ])
        .await
        .unwrap();
    let again = store.claim(claim_req(5, now)).await.unwrap();
    let retried = again.iter().find(|j| j.id == claimed[2].id).unwrap();
    store
        .finish(vec![finish(retried, success(), now)])
        .await
        .unwrap();
    let u = user(&store, "u1").await;
    assert_eq!(u.credits, 6, "10 - 4*2 + 2 refunds of 2");
    let (entries, _) = store.ledger("u1", None, 100).await.unwrap();
    let sum: i64 = entries.iter().map(|e| e.amount).sum();
    assert_eq!(sum, u.credits, "the balance is the sum of the ledger");
    let refunds: Vec<_> = entries
        .iter()
        .filter(|e| e.kind == genq_core::LedgerKind::Refund)
        .collect();
    assert_eq!(refunds.len(), 2);
    // A job's own entries: the failed batch job has its refund (the batch was debited once,
    // naming the batch); the idempotent single job its debit.
    let failed = store.job_ledger(&claimed[0].id).await.unwrap();
    let kinds: Vec<_> = failed.iter().map(|e| (e.kind, e.amount)).collect();
    assert_eq!(kinds, [(genq_core::LedgerKind::Refund, 2)]);
    assert_eq!(failed[0].job_id.as_deref(), Some(claimed[0].id.as_str()));
    let debit = store.job_ledger(&single).await.unwrap();
    let kinds: Vec<_> = debit.iter().map(|e| (e.kind, e.amount)).collect();
    assert_eq!(kinds[0], (genq_core::LedgerKind::Debit, -2));
    assert!(store.job_ledger("no-such-job").await.unwrap().is_empty());
    assert_eq!(
        u.used_today, 2,
        "failed and canceled jobs do not count toward the day"
    );
    // The idempotent job was claimed with the retry and still runs.
    assert_eq!((u.unfinished, u.running), (1, 1));
    let _ = jobs;
}

/// A user's counts stay exact while claims, finishes and enqueues interleave with the
/// scheduler's upkeep (`stage_due`, which on PostgreSQL folds the users' count moves).
pub async fn user_counts_hold_while_the_upkeep_runs(store: DynStore) {
    store
        .set_limit(genq_core::limits::BATCH_MAX_QUEUED_PER_USER, 2, t0())
        .await
        .unwrap();
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let upkeep = {
        let (store, done) = (store.clone(), done.clone());
        tokio::spawn(async move {
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                store.stage_due(t0(), 100).await.unwrap();
            }
        })
    };
    for i in 0..150 {
        let mut one = new_jobs("u1", 1);
        one.as_batch = false;
        // Refused (queue_limit) if the count read under the user's lock were off.
        store
            .enqueue(one)
            .await
            .unwrap_or_else(|e| panic!("enqueue {i}: {e}"));
        let u = user(&store, "u1").await;
        assert_eq!((u.unfinished, u.running), (1, 0), "after enqueue {i}");
        let job = claim(&store, 1).await.remove(0);
        let u = user(&store, "u1").await;
        assert_eq!((u.unfinished, u.running), (1, 1), "after claim {i}");
        let applied = store
            .finish(vec![finish(&job, success(), t0())])
            .await
            .unwrap();
        assert_eq!(applied, vec![true]);
    }
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    upkeep.await.unwrap();
    store.stage_due(t0(), 100).await.unwrap();
    let u = user(&store, "u1").await;
    assert_eq!((u.unfinished, u.running), (0, 0));
}

pub async fn admin_retry_debits_again(store: DynStore) {
    let mut req = new_jobs("u1", 1);
    req.as_batch = false;
    req.user_defaults = poor(1, "enterprise");
    let id = store.enqueue(req).await.unwrap().jobs[0].id.clone();
    store.cancel(&id, t0()).await.unwrap();
    assert_eq!(user(&store, "u1").await.credits, 1);
    store.admin_retry(&id, t0()).await.unwrap();
    let u = user(&store, "u1").await;
    assert_eq!((u.credits, u.unfinished), (0, 1));
    store.cancel(&id, t0()).await.unwrap();
    assert_eq!(
        user(&store, "u1").await.credits,
        1,
        "the second series is refunded too"
    );
    store.add_credits("u1", -1, "spent", &ctx()).await.unwrap();
    assert!(matches!(
        store.admin_retry(&id, t0()).await,
        Err(StoreError::Rejected(
            crate::Rejection::InsufficientCredits {
                needed: 1,
                balance: 0
            }
        ))
    ));
    assert_eq!(store.job(&id).await.unwrap().state, JobState::Canceled);
}

pub async fn user_max_running_holds_across_claims(store: DynStore) {
    store.set_limit("user_max_running", 2, t0()).await.unwrap();
    store.enqueue(new_jobs("a", 10)).await.unwrap();
    store.enqueue(new_jobs("b", 10)).await.unwrap();
    let first = claim(&store, 10).await;
    let count = |jobs: &[Job], u: &str| jobs.iter().filter(|j| j.user_id == u).count();
    assert_eq!((count(&first, "a"), count(&first, "b")), (2, 2));
    assert!(
        claim(&store, 10).await.is_empty(),
        "both users are at their cap"
    );
    let a = first.iter().find(|j| j.user_id == "a").unwrap();
    store
        .finish(vec![finish(a, success(), t0())])
        .await
        .unwrap();
    let next = claim(&store, 10).await;
    assert_eq!(next.len(), 1);
    assert_eq!(next[0].user_id, "a");
    assert_eq!(user(&store, "a").await.running, 2);
}

fn park(job: &Job, task_id: &str, poll_at: DateTime<Utc>, now: DateTime<Utc>) -> Finish {
    finish(
        job,
        Outcome::Parked {
            task_id: task_id.into(),
            poll_at,
        },
        now,
    )
}

async fn one_running(store: &DynStore) -> Job {
    store.enqueue(new_jobs("u1", 1)).await.unwrap();
    let mut jobs = claim(store, 1).await;
    assert_eq!(jobs.len(), 1);
    jobs.remove(0)
}

/// A parked job stays running with no worker, is not the rescuer's, and is taken for a poll
/// when due with a fresh lease that fences out the old one; the attempt number stays.
pub async fn parked_task_jobs_are_polled_when_due(store: DynStore) {
    let job = one_running(&store).await;
    let poll_at = t0() + Duration::seconds(5);
    let applied = store
        .finish(vec![park(&job, "task_1", poll_at, t0())])
        .await
        .unwrap();
    assert_eq!(applied, vec![true]);
    let parked = store.job(&job.id).await.unwrap();
    assert_eq!(parked.state, JobState::Running);
    let task = parked.provider_task.clone().expect("the task is stored");
    assert_eq!((task.id.as_str(), task.created_at), ("task_1", t0()));
    assert_eq!(parked.lease.as_ref().unwrap().expires_at, poll_at);
    // A heartbeat that read the lease before the job was parked does not push its poll back
    // to the end of a lease.
    let renewed = store
        .heartbeat(&[lease(&job)], t0() + Duration::seconds(30), t0())
        .await
        .unwrap();
    assert!(renewed.is_empty(), "a parked job's lease is not renewed");
    let still = store.job(&job.id).await.unwrap();
    assert_eq!(still.lease.as_ref().unwrap().expires_at, poll_at);

    // Not stuck: neither the rescuer nor a restarted node takes it.
    let late = t0() + Duration::hours(1);
    assert!(store.expired_leases(late, 10).await.unwrap().is_empty());
    assert!(store.node_leases("node-a", 10).await.unwrap().is_empty());
    // Nor does a claim of new work.
    assert!(store.claim(claim_req(5, late)).await.unwrap().is_empty());

    let early = store.claim_polls(claim_req(5, t0())).await.unwrap();
    assert!(early.jobs.is_empty());
    assert_eq!(early.next_due, Some(poll_at));
    let other_kind = ClaimRequest {
        kinds: vec!["video.generate".into()],
        ..claim_req(5, poll_at)
    };
    let none = store.claim_polls(other_kind).await.unwrap();
    assert!(none.jobs.is_empty() && none.next_due.is_none());

    let due = store.claim_polls(claim_req(5, poll_at)).await.unwrap();
    assert_eq!(due.jobs.len(), 1);
    let polled = &due.jobs[0];
    assert_eq!(polled.attempt, job.attempt, "a poll is not a new attempt");
    assert_eq!(polled.provider_task, parked.provider_task);
    assert_ne!(lease(polled), lease(&job));
    assert_eq!(due.next_due, Some(poll_at + Duration::seconds(30)));
    // Taken once.
    assert!(
        store
            .claim_polls(claim_req(5, poll_at))
            .await
            .unwrap()
            .jobs
            .is_empty()
    );

    // The old lease is fenced out; parking again keeps the task and its creation time.
    let later = poll_at + Duration::seconds(5);
    assert_eq!(
        store
            .finish(vec![finish(&job, success(), poll_at)])
            .await
            .unwrap(),
        vec![false]
    );
    let applied = store
        .finish(vec![park(polled, "task_1", later, poll_at)])
        .await
        .unwrap();
    assert_eq!(applied, vec![true]);
    let again = store.claim_polls(claim_req(5, later)).await.unwrap().jobs;
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].provider_task.as_ref().unwrap().created_at, t0());
    // A parked attempt cannot switch to another task.
    assert_eq!(
        store
            .finish(vec![park(&again[0], "task_2", later, later)])
            .await
            .unwrap(),
        vec![false]
    );
    let applied = store
        .finish(vec![finish(&again[0], success(), later)])
        .await
        .unwrap();
    assert_eq!(applied, vec![true]);
    let done = store.job(&job.id).await.unwrap();
    assert_eq!(done.state, JobState::Succeeded);
    assert_eq!(done.attempt, 1);
    let user = store.user("u1", &ctx().day).await.unwrap();
    assert_eq!(
        user.running, 0,
        "the running count follows the job, not the polls"
    );
    let none = store.claim_polls(claim_req(5, later)).await.unwrap();
    assert!(none.jobs.is_empty() && none.next_due.is_none());
}

/// A poller that dies mid-poll leaves its lease to run out; then the poll is taken again, of
/// the same task.
pub async fn a_poll_that_dies_is_taken_again(store: DynStore) {
    let job = one_running(&store).await;
    store
        .finish(vec![park(&job, "task_1", t0(), t0())])
        .await
        .unwrap();
    let taken = store.claim_polls(claim_req(1, t0())).await.unwrap().jobs;
    assert_eq!(taken.len(), 1);
    let lease_end = taken[0].lease.as_ref().unwrap().expires_at;
    assert!(
        store
            .claim_polls(claim_req(1, lease_end - Duration::seconds(1)))
            .await
            .unwrap()
            .jobs
            .is_empty(),
        "a live poll is not taken"
    );
    let retaken = store
        .claim_polls(claim_req(1, lease_end))
        .await
        .unwrap()
        .jobs;
    assert_eq!(retaken.len(), 1);
    assert_eq!(retaken[0].provider_task.as_ref().unwrap().id, "task_1");
    assert_eq!(retaken[0].attempt, 1);
}

/// A failed task attempt retries as a new attempt, which creates a new task.
pub async fn a_new_attempt_forgets_the_old_task(store: DynStore) {
    let job = one_running(&store).await;
    store
        .finish(vec![park(&job, "task_1", t0(), t0())])
        .await
        .unwrap();
    let polled = store.claim_polls(claim_req(1, t0())).await.unwrap().jobs;
    let retry = Outcome::Retry {
        run_at: t0(),
        error: Some(error(ErrorClass::Temporary)),
        uses_retry: true,
        rate_limit_wait: false,
    };
    let applied = store
        .finish(vec![finish(&polled[0], retry, t0())])
        .await
        .unwrap();
    assert_eq!(applied, vec![true]);
    let second = claim(&store, 1).await;
    assert_eq!(second.len(), 1);
    assert_eq!(second[0].attempt, 2);
    assert_eq!(second[0].provider_task, None);
}

/// Canceling a parked job ends it; no poll takes it afterwards.
pub async fn parked_jobs_can_be_canceled(store: DynStore) {
    let job = one_running(&store).await;
    store
        .finish(vec![park(&job, "task_1", t0(), t0())])
        .await
        .unwrap();
    let canceled = store.cancel(&job.id, t0()).await.unwrap();
    assert_eq!(canceled.state, JobState::Canceled);
    let polls = store.claim_polls(claim_req(1, t0())).await.unwrap();
    assert!(polls.jobs.is_empty() && polls.next_due.is_none());
    let user = store.user("u1", &ctx().day).await.unwrap();
    assert_eq!(user.running, 0);
}

/// One `finish` call naming a job twice (a stale outcome and the current one, or the same one
/// twice) applies exactly one of them, the one whose fence holds, and books it once.
pub async fn a_batch_naming_a_job_twice_applies_once(store: DynStore) {
    let mut req = new_jobs("u1", 2);
    req.cost = 3;
    store.enqueue(req).await.unwrap();
    let jobs = claim(&store, 2).await;
    let (a, b) = (&jobs[0], &jobs[1]);
    let mut stale = finish(a, success(), t0());
    stale.lease.token = "an-older-attempt".into();
    let failed = Outcome::Failed {
        error: error(ErrorClass::UserError),
    };
    let applied = store
        .finish(vec![stale, finish(a, failed.clone(), t0())])
        .await
        .unwrap();
    assert_eq!(applied, vec![false, true]);
    assert_eq!(store.job(&a.id).await.unwrap().state, JobState::Failed);
    let applied = store
        .finish(vec![
            finish(b, failed.clone(), t0()),
            finish(b, failed, t0()),
        ])
        .await
        .unwrap();
    assert_eq!(applied, vec![true, false]);
    let user = store.user("u1", &ctx().day).await.unwrap();
    assert_eq!((user.running, user.unfinished), (0, 0));
    let (entries, _) = store.ledger("u1", None, 50).await.unwrap();
    let refunds = entries
        .iter()
        .filter(|e| e.kind == genq_core::LedgerKind::Refund)
        .count();
    assert_eq!(refunds, 2, "one refund per failed job");
}
