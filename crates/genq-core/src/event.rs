//! Events (SPEC §8): what a job or batch change tells the world, and which change tells what.
//! Every backend writes an event in the transaction of the change it reports (an outbox); this
//! module decides which event a transition makes, so that rule lives beside the state machine.

use crate::JobState;
use chrono::{DateTime, Utc};
use std::fmt;
use std::str::FromStr;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EventType {
    JobQueued,
    /// Once per job: its first attempt only (the end user is told "generation started" once).
    JobStarted,
    JobRetrying,
    JobSucceeded,
    JobFailed,
    JobCanceled,
    /// Once per batch: the first time every one of its jobs is finished.
    BatchCompleted,
}

impl EventType {
    pub const ALL: [EventType; 7] = [
        EventType::JobQueued,
        EventType::JobStarted,
        EventType::JobRetrying,
        EventType::JobSucceeded,
        EventType::JobFailed,
        EventType::JobCanceled,
        EventType::BatchCompleted,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventType::JobQueued => "job.queued",
            EventType::JobStarted => "job.started",
            EventType::JobRetrying => "job.retrying",
            EventType::JobSucceeded => "job.succeeded",
            EventType::JobFailed => "job.failed",
            EventType::JobCanceled => "job.canceled",
            EventType::BatchCompleted => "batch.completed",
        }
    }

    /// The event a job transition makes, if any. `first_start`: a claim that starts the job's
    /// very first attempt (no retry, restart, rescue or admin retry starts it again).
    pub fn of_transition(from: Option<JobState>, to: JobState, first_start: bool) -> Option<Self> {
        use JobState::*;
        match (from, to) {
            // Accepted, or re-queued by an admin retry.
            (None, Queued) | (Some(Failed | Canceled), Queued) => Some(EventType::JobQueued),
            (Some(Queued | Retrying), Running) => first_start.then_some(EventType::JobStarted),
            (Some(Running), Retrying) => Some(EventType::JobRetrying),
            (Some(_), Succeeded) => Some(EventType::JobSucceeded),
            (Some(_), Failed) => Some(EventType::JobFailed),
            (Some(_), Canceled) => Some(EventType::JobCanceled),
            _ => None,
        }
    }

    /// The job state a job event reports.
    pub fn state(self) -> Option<JobState> {
        match self {
            EventType::JobQueued => Some(JobState::Queued),
            EventType::JobStarted => Some(JobState::Running),
            EventType::JobRetrying => Some(JobState::Retrying),
            EventType::JobSucceeded => Some(JobState::Succeeded),
            EventType::JobFailed => Some(JobState::Failed),
            EventType::JobCanceled => Some(JobState::Canceled),
            EventType::BatchCompleted => None,
        }
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown event type {0:?}; types: job.queued, job.started, job.retrying, job.succeeded, job.failed, job.canceled, batch.completed"
)]
pub struct UnknownEventType(pub String);

impl FromStr for EventType {
    type Err = UnknownEventType;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        EventType::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| UnknownEventType(s.to_string()))
    }
}

/// One event of the outbox.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// Stable and unique: receivers dedupe by it.
    pub id: i64,
    /// Where the event stands in the order every reader follows (SSE's `Last-Event-ID`): the
    /// order in which events became visible, which keeps each job's events in their order.
    pub position: i64,
    pub kind: EventType,
    /// The job, for job events.
    pub job_id: Option<String>,
    pub batch_id: Option<String>,
    pub user_id: String,
    /// The job's (or batch's) kind.
    pub job_kind: String,
    /// The attempt the event is about (0 before the first claim).
    pub attempt: u32,
    pub created_at: DateTime<Utc>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use JobState::*;

    #[test]
    fn each_transition_makes_its_event() {
        let of = EventType::of_transition;
        assert_eq!(of(None, Queued, false), Some(EventType::JobQueued));
        assert_eq!(of(Some(Queued), Running, true), Some(EventType::JobStarted));
        // A retry, a restart, a rescue or an admin retry never starts the job again.
        assert_eq!(of(Some(Retrying), Running, false), None);
        assert_eq!(of(Some(Queued), Running, false), None);
        assert_eq!(
            of(Some(Running), Retrying, false),
            Some(EventType::JobRetrying)
        );
        assert_eq!(
            of(Some(Running), Succeeded, false),
            Some(EventType::JobSucceeded)
        );
        assert_eq!(of(Some(Running), Failed, false), Some(EventType::JobFailed));
        for from in [Queued, Running, Retrying] {
            assert_eq!(
                of(Some(from), Canceled, false),
                Some(EventType::JobCanceled)
            );
        }
        assert_eq!(of(Some(Failed), Queued, false), Some(EventType::JobQueued));
        assert_eq!(of(Some(Running), Running, false), None);
        for t in EventType::ALL {
            assert_eq!(t.as_str().parse::<EventType>(), Ok(t));
        }
        assert!("job.exploded".parse::<EventType>().is_err());
    }
}
