//! Random histories: sequences of every store operation, checked after each step against a
//! model of SPEC §3. Every transition a store makes must be one the state machine allows, every
//! fence must hold, and nothing may appear, vanish or be claimed twice.

use super::DynStore;
use crate::{ClaimRequest, Finish, JobFilter, LeaseRef, NewJobs, Outcome, StoreError};
use chrono::{DateTime, Duration, TimeZone, Utc};
use genq_core::{ErrorClass, JobError, JobState};
use proptest::prelude::*;
use serde_json::json;
use std::collections::BTreeMap;

#[derive(Debug, Clone)]
pub enum Op {
    Enqueue {
        user: u8,
        n: u8,
        delayed: bool,
    },
    Claim {
        max: u8,
    },
    Finish {
        pick: u8,
        how: How,
        stale: bool,
    },
    Cancel {
        pick: u8,
    },
    AdminRetry {
        pick: u8,
    },
    Heartbeat {
        pick: u8,
    },
    /// Move the clock past delays and leases, then stage and rescue.
    Tick {
        seconds: u8,
    },
}

#[derive(Debug, Clone, Copy)]
pub enum How {
    Succeed,
    RetryNow,
    RetryLater,
    Fail,
    Cancel,
}

pub fn op() -> impl Strategy<Value = Op> {
    let how = prop_oneof![
        Just(How::Succeed),
        Just(How::RetryNow),
        Just(How::RetryLater),
        Just(How::Fail),
        Just(How::Cancel)
    ];
    prop_oneof![
        3 => (0u8..3, 1u8..4, any::<bool>()).prop_map(|(user, n, delayed)| Op::Enqueue { user, n, delayed }),
        3 => (1u8..4).prop_map(|max| Op::Claim { max }),
        4 => (any::<u8>(), how, proptest::bool::weighted(0.15)).prop_map(|(pick, how, stale)| Op::Finish { pick, how, stale }),
        1 => any::<u8>().prop_map(|pick| Op::Cancel { pick }),
        1 => any::<u8>().prop_map(|pick| Op::AdminRetry { pick }),
        1 => any::<u8>().prop_map(|pick| Op::Heartbeat { pick }),
        1 => (1u8..40).prop_map(|seconds| Op::Tick { seconds }),
    ]
}

/// What the model knows of one job.
#[derive(Debug, Clone)]
struct Model {
    user: String,
    /// Accepted in a batch: its first debit is the batch's one entry.
    in_batch: bool,
    state: JobState,
    attempt: u32,
    token: Option<String>,
    lease_until: Option<DateTime<Utc>>,
    /// Claimable no earlier than this.
    due: DateTime<Utc>,
}

const LEASE: i64 = 30;
/// Each user starts with this many credits; a job costs one, so balances run out.
const CREDITS: i64 = 8;

fn defaults() -> genq_core::UserDefaults {
    genq_core::UserDefaults {
        plan: "enterprise".into(),
        initial_credits: CREDITS,
    }
}

fn pays(state: JobState) -> bool {
    !matches!(state, JobState::Failed | JobState::Canceled)
}

fn pick(
    jobs: &BTreeMap<String, Model>,
    n: u8,
    want: impl Fn(&Model) -> bool,
) -> Option<(&String, &Model)> {
    let candidates: Vec<_> = jobs.iter().filter(|(_, m)| want(m)).collect();
    (!candidates.is_empty()).then(|| candidates[n as usize % candidates.len()])
}

fn move_to(model: &mut Model, to: JobState) {
    assert!(
        JobState::can_transition(Some(model.state), to),
        "the model itself broke the state machine: {:?} -> {to:?}",
        model.state
    );
    model.state = to;
    if to != JobState::Running {
        model.token = None;
        model.lease_until = None;
    }
}

/// Run one history against a fresh store, checking the model after every step.
pub async fn run_history(store: DynStore, ops: Vec<Op>) {
    let mut now = Utc.with_ymd_and_hms(2026, 3, 1, 12, 0, 0).unwrap();
    let mut jobs: BTreeMap<String, Model> = BTreeMap::new();
    let mut credits: BTreeMap<String, i64> = BTreeMap::new();
    let day = now.date_naive().to_string();
    for op in ops {
        match op {
            Op::Enqueue { user, n, delayed } => {
                let due = if delayed {
                    now + Duration::seconds(10)
                } else {
                    now
                };
                let user = format!("u{user}");
                let balance = credits.entry(user.clone()).or_insert(CREDITS);
                let out = store
                    .enqueue(NewJobs {
                        kind: "card.generate".into(),
                        user_id: user.clone(),
                        payloads: (0..n).map(|i| json!({"i": i})).collect(),
                        priority: 0,
                        run_at: Some(due),
                        max_retries: 3,
                        cost: 1,
                        idempotency_key: None,
                        as_batch: n > 1,
                        now,
                        day: day.clone(),
                        user_defaults: defaults(),
                    })
                    .await;
                if *balance < n as i64 {
                    assert!(
                        matches!(
                            out,
                            Err(StoreError::Rejected(
                                crate::Rejection::InsufficientCredits { .. }
                            ))
                        ),
                        "{n} jobs with {balance} credits: {out:?}"
                    );
                    continue;
                }
                *balance -= n as i64;
                for job in out.unwrap().jobs {
                    assert_eq!(job.state, JobState::Queued);
                    jobs.insert(
                        job.id,
                        Model {
                            in_batch: job.batch_id.is_some(),
                            user: user.clone(),
                            state: JobState::Queued,
                            attempt: 0,
                            token: None,
                            lease_until: None,
                            due,
                        },
                    );
                }
            }
            Op::Claim { max } => {
                let claimed = store
                    .claim(ClaimRequest {
                        node_id: "n".into(),
                        worker_id: "w".into(),
                        kinds: vec!["card.generate".into()],
                        max: max as u32,
                        lease_until: now + Duration::seconds(LEASE),
                        now,
                    })
                    .await
                    .unwrap();
                let claimable = |m: &Model| m.state.is_claimable() && m.due <= now;
                let staged_or_due = jobs.values().filter(|m| claimable(m)).count();
                assert!(claimed.len() <= max as usize);
                // Jobs delayed at enqueue wait for the scheduler, so fewer may be claimable
                // than are due; never more, and never a job that is not claimable.
                assert!(claimed.len() <= staged_or_due);
                for job in claimed {
                    let m = jobs
                        .get_mut(&job.id)
                        .expect("claimed a job that was never enqueued");
                    assert!(
                        claimable(m),
                        "claimed {} in state {:?}, due {}",
                        job.id,
                        m.state,
                        m.due
                    );
                    move_to(m, JobState::Running);
                    m.attempt += 1;
                    assert_eq!(job.attempt, m.attempt);
                    let lease = job.lease.unwrap();
                    m.token = Some(lease.token);
                    m.lease_until = Some(lease.expires_at);
                }
            }
            Op::Finish {
                pick: n,
                how,
                stale,
            } => {
                let Some((id, m)) = pick(&jobs, n, |m| m.state == JobState::Running) else {
                    continue;
                };
                let id = id.clone();
                let token = if stale {
                    "stale".to_string()
                } else {
                    m.token.clone().unwrap()
                };
                let error = |class| JobError {
                    class,
                    detail: "x".into(),
                };
                let (outcome, to, due) = match how {
                    How::Succeed => (
                        Outcome::Succeeded { result: json!({}) },
                        JobState::Succeeded,
                        m.due,
                    ),
                    How::RetryNow => (
                        Outcome::Retry {
                            run_at: now,
                            error: None,
                            uses_retry: false,
                            rate_limit_wait: false,
                        },
                        JobState::Retrying,
                        now,
                    ),
                    How::RetryLater => (
                        Outcome::Retry {
                            run_at: now + Duration::seconds(5),
                            error: Some(error(ErrorClass::Temporary)),
                            uses_retry: true,
                            rate_limit_wait: false,
                        },
                        JobState::Retrying,
                        now + Duration::seconds(5),
                    ),
                    How::Fail => (
                        Outcome::Failed {
                            error: error(ErrorClass::UserError),
                        },
                        JobState::Failed,
                        m.due,
                    ),
                    How::Cancel => (
                        Outcome::Canceled {
                            error: error(ErrorClass::Canceled),
                        },
                        JobState::Canceled,
                        m.due,
                    ),
                };
                let mut f = Finish::new(&store.job(&id).await.unwrap(), outcome, now);
                f.lease.token = token;
                let applied = store.finish(vec![f]).await.unwrap();
                assert_eq!(
                    applied,
                    vec![!stale],
                    "a finish applies exactly when its lease token is the current one"
                );
                if !stale {
                    let m = jobs.get_mut(&id).unwrap();
                    move_to(m, to);
                    m.due = due;
                    if !pays(to) {
                        *credits.get_mut(&m.user).unwrap() += 1;
                    }
                }
            }
            Op::Cancel { pick: n } => {
                let Some((id, m)) = pick(&jobs, n, |_| true) else {
                    continue;
                };
                let id = id.clone();
                let result = store.cancel(&id, now).await;
                if m.state.is_cancelable() {
                    assert_eq!(result.unwrap().state, JobState::Canceled);
                    let m = jobs.get_mut(&id).unwrap();
                    move_to(m, JobState::Canceled);
                    *credits.get_mut(&m.user).unwrap() += 1;
                } else {
                    assert!(matches!(result, Err(StoreError::Conflict(_))), "{result:?}");
                }
            }
            Op::AdminRetry { pick: n } => {
                let Some((id, m)) = pick(&jobs, n, |_| true) else {
                    continue;
                };
                let id = id.clone();
                let result = store.admin_retry(&id, now).await;
                let balance = credits[&m.user];
                if m.state.is_admin_retryable() && balance < 1 {
                    assert!(
                        matches!(
                            result,
                            Err(StoreError::Rejected(
                                crate::Rejection::InsufficientCredits { .. }
                            ))
                        ),
                        "{result:?}"
                    );
                } else if m.state.is_admin_retryable() {
                    assert_eq!(result.unwrap().state, JobState::Queued);
                    let m = jobs.get_mut(&id).unwrap();
                    move_to(m, JobState::Queued);
                    m.due = now;
                    *credits.get_mut(&m.user).unwrap() -= 1;
                } else {
                    assert!(matches!(result, Err(StoreError::Conflict(_))), "{result:?}");
                }
            }
            Op::Heartbeat { pick: n } => {
                let Some((id, m)) = pick(&jobs, n, |m| m.state == JobState::Running) else {
                    continue;
                };
                let lease = LeaseRef {
                    job_id: id.clone(),
                    token: m.token.clone().unwrap(),
                };
                let until = now + Duration::seconds(LEASE);
                let renewed = store
                    .heartbeat(std::slice::from_ref(&lease), until, now)
                    .await
                    .unwrap();
                assert_eq!(renewed, vec![lease.clone()]);
                jobs.get_mut(&lease.job_id).unwrap().lease_until = Some(until);
            }
            Op::Tick { seconds } => {
                now += Duration::seconds(seconds as i64);
                store.stage_due(now, 10_000).await.unwrap();
                // The rescuer: expired leases go back to retrying, fenced.
                let expired = store.expired_leases(now, 10_000).await.unwrap();
                let expected: Vec<&String> = jobs
                    .iter()
                    .filter(|(_, m)| m.state == JobState::Running && m.lease_until.unwrap() < now)
                    .map(|(id, _)| id)
                    .collect();
                assert_eq!(
                    expired.len(),
                    expected.len(),
                    "the store and the model disagree on expired leases"
                );
                let finishes = expired
                    .iter()
                    .map(|job| {
                        let outcome = Outcome::Retry {
                            run_at: now,
                            error: Some(JobError {
                                class: ErrorClass::LeaseExpired,
                                detail: "x".into(),
                            }),
                            uses_retry: true,
                            rate_limit_wait: false,
                        };
                        Finish::new(job, outcome, now).if_expired_before(now)
                    })
                    .collect();
                let applied = store.finish(finishes).await.unwrap();
                assert!(applied.iter().all(|a| *a));
                for job in expired {
                    let m = jobs.get_mut(&job.id).unwrap();
                    move_to(m, JobState::Retrying);
                    m.due = now;
                }
            }
        }
        // After every step the store holds exactly the model's jobs, in the model's states.
        let page = store
            .jobs(&crate::JobQuery::newest(JobFilter::default(), 10_000))
            .await
            .unwrap();
        assert_eq!(page.jobs.len(), jobs.len(), "jobs appeared or vanished");
        for job in page.jobs {
            let m = &jobs[&job.id];
            assert_eq!(
                (job.state, job.attempt),
                (m.state, m.attempt),
                "job {}",
                job.id
            );
            assert_eq!(job.lease.is_some(), job.state == JobState::Running);
            assert_eq!(job.finished_at.is_some(), job.state.is_terminal());
        }
        // The counts by state the overview shows.
        let stats = store.stats(now).await.unwrap();
        for state in JobState::ALL {
            assert_eq!(
                stats.by_state.get(&state).copied().unwrap_or(0) as usize,
                jobs.values().filter(|m| m.state == state).count(),
                "jobs {state:?}"
            );
        }
        // The money and the counts: each user's balance, its ledger, its quota usage.
        for (user, balance) in &credits {
            let mine: Vec<&Model> = jobs.values().filter(|m| &m.user == user).collect();
            let ctx = crate::UserCtx {
                day: day.clone(),
                defaults: defaults(),
                now,
            };
            let u = store.user(user, &ctx.day).await.unwrap();
            assert_eq!(u.credits, *balance, "{user}'s balance");
            assert_eq!(
                u.unfinished as usize,
                mine.iter().filter(|m| m.state.is_unfinished()).count()
            );
            assert_eq!(
                u.running as usize,
                mine.iter().filter(|m| m.state == JobState::Running).count()
            );
            assert_eq!(
                u.used_today as usize,
                mine.iter().filter(|m| pays(m.state)).count(),
                "failed and canceled jobs do not count"
            );
            let (entries, _) = store.ledger(user, None, 10_000).await.unwrap();
            assert_eq!(
                entries.iter().map(|e| e.amount).sum::<i64>(),
                *balance,
                "balance = sum of the ledger"
            );
            assert!(entries.iter().all(|e| e.balance >= 0));
            for (id, m) in jobs.iter().filter(|(_, m)| &m.user == user) {
                let own: i64 = entries
                    .iter()
                    .filter(|e| e.job_id.as_deref() == Some(id))
                    .map(|e| e.amount)
                    .sum();
                let batch_share = if m.in_batch { -1 } else { 0 };
                assert_eq!(
                    own + batch_share,
                    if pays(m.state) { -1 } else { 0 },
                    "job {id} in {:?}",
                    m.state
                );
            }
        }
    }
}
