//! Events written with the changes they report (SPEC §8). A transaction collects its events
//! here, with how each batch's count of unfinished jobs moves and what the finished tallies
//! gain; the backend writes them all before it commits (`write_outbox` in each backend), and a
//! batch whose count reaches zero for the first time gets its `batch.completed` there too.

use crate::Owner;
use genq_core::event::EventType;
use genq_core::{Job, JobState};
use std::collections::BTreeMap;

/// An event not yet written.
#[derive(Debug, Clone)]
pub(crate) struct NewEvent {
    pub kind: EventType,
    pub job_id: Option<String>,
    pub batch_id: Option<String>,
    pub attempt: u32,
}

/// What `job_counts` counts a job in `state` under: its state, or `waiting` for a queued or
/// retrying job (the claim cannot tell the two apart cheaply; retrying jobs are few, counted
/// from an index, and the rest of the waiting ones are queued).
pub(crate) fn tallied(state: JobState) -> &'static str {
    match state {
        JobState::Queued | JobState::Retrying => WAITING,
        JobState::Running | JobState::Succeeded | JobState::Failed | JobState::Canceled => {
            state.as_str()
        }
    }
}

pub(crate) const WAITING: &str = "waiting";

#[derive(Debug, Default)]
pub(crate) struct Outbox {
    pub events: Vec<NewEvent>,
    /// Per batch (in id order, the order its rows are locked in), how many of its jobs became
    /// unfinished (+) or finished (−).
    pub batches: BTreeMap<String, i64>,
    /// Per tally (see [`tallied`]) and kind, how many jobs entered it (+) or left it (−).
    /// By kind first, so a job adds to its kind's entry without copying the kind's name.
    pub counts: BTreeMap<String, BTreeMap<&'static str, i64>>,
    /// Per second (since the epoch), final state and error class (of a failure; "" otherwise),
    /// how many jobs reached that state. SQLite keeps both tallies for the overview;
    /// PostgreSQL counts its rows instead (a tally row would be one every finish waits on).
    pub finished_at: BTreeMap<(i64, JobState, String), i64>,
}

impl Outbox {
    /// A job moved from `from` (`None`: it is new) to `to`: its event, if the move makes one,
    /// and its batch's count.
    pub fn transition(
        &mut self,
        job_id: &str,
        job: &Owner,
        from: Option<JobState>,
        to: JobState,
        first_start: bool,
    ) {
        if let Some(kind) = EventType::of_transition(from, to, first_start) {
            self.events.push(NewEvent {
                kind,
                job_id: Some(job_id.to_string()),
                batch_id: job.batch_id.clone(),
                attempt: job.attempt,
            });
        }
        // A claim says "from queued" of a retrying job too: both are tallied as waiting.
        let (left, entered) = (from.map(tallied), tallied(to));
        if left != Some(entered) {
            if let Some(left) = left {
                self.count(&job.kind, left, -1);
            }
            self.count(&job.kind, entered, 1);
        }
        if let (Some(batch), Some(from)) = (&job.batch_id, from) {
            let delta = match (from.is_unfinished(), to.is_unfinished()) {
                (true, false) => -1,
                (false, true) => 1,
                _ => 0,
            };
            if delta != 0 {
                *self.batches.entry(batch.clone()).or_default() += delta;
            }
        }
    }

    /// A job reached the final state `to` at `at`, failed with `class`.
    pub fn finished_at(
        &mut self,
        at: chrono::DateTime<chrono::Utc>,
        to: JobState,
        class: Option<genq_core::ErrorClass>,
    ) {
        let class = match (to, class) {
            (JobState::Failed, Some(class)) => class.as_str(),
            _ => "",
        };
        *self
            .finished_at
            .entry((at.timestamp(), to, class.to_string()))
            .or_default() += 1;
    }

    fn count(&mut self, kind: &str, tally: &'static str, delta: i64) {
        let tallies = match self.counts.get_mut(kind) {
            Some(tallies) => tallies,
            None => self.counts.entry(kind.to_string()).or_default(),
        };
        *tallies.entry(tally).or_default() += delta;
    }

    /// A finished job in `state` was deleted.
    pub fn pruned(&mut self, state: JobState, kind: String) {
        self.count(&kind, tallied(state), -1);
    }

    /// `job.queued` for each of new jobs.
    pub fn accepted(&mut self, jobs: &[Job]) {
        for job in jobs {
            self.transition(
                &job.id,
                &crate::rules::owner(job),
                None,
                JobState::Queued,
                false,
            );
        }
    }

    /// `job.started` for each claimed job on its first attempt. Attempts are counted by claims
    /// and never reset (an admin retry, a rescue or a hand-back at shutdown keep the count):
    /// the first claim is the first attempt.
    pub fn claimed(&mut self, jobs: &[Job]) {
        for job in jobs {
            let first = job.attempt == 1;
            let owner = crate::rules::owner(job);
            self.transition(
                &job.id,
                &owner,
                Some(JobState::Queued),
                JobState::Running,
                first,
            );
        }
    }

    /// `batch.completed` for a batch whose last job just finished.
    pub fn batch_completed(&mut self, batch_id: &str) {
        self.events.push(NewEvent {
            kind: EventType::BatchCompleted,
            job_id: None,
            batch_id: Some(batch_id.to_string()),
            attempt: 0,
        });
    }
}

/// The newest event position a store has reported to `Store::new_events`.
#[derive(Debug, Default)]
pub(crate) struct EventsSeen(std::sync::atomic::AtomicI64);

impl EventsSeen {
    /// How many positions up to `last` were not reported yet; `last` is reported from now on.
    pub fn up_to(&self, last: i64) -> u64 {
        let seen = self.0.swap(last, std::sync::atomic::Ordering::Relaxed);
        last.saturating_sub(seen).max(0) as u64
    }
}
