//! The job states and the transitions between them (SPEC §3). This table is the single source
//! of truth: stores check it before they write, and the database repeats the per-state column
//! rules as CHECK constraints.
//!
//! ```text
//!            enqueue                claim               result
//!   (new) ──────────▶ queued ─────────────▶ running ─────────────▶ succeeded
//!                       │  ▲                 │ │ │
//!              cancel   │  │ admin retry     │ │ └─ retryable failure / lease expired ─▶ retrying ─┐
//!                       ▼  │                 │ └─ final failure ─────────────────────▶ failed    │
//!                    canceled ◀──── cancel ──┘                                                   │
//!                       ▲                                   claim (run_at passed)                │
//!                       └──────────── cancel ◀──────────── retrying ◀────────────────────────────┘
//! ```

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    /// Accepted and waiting for its `run_at`. Entered from enqueue (API) and admin retry.
    /// Left by a claim (worker) or a cancel.
    Queued,
    /// An attempt holds a lease. Entered only by a claim. Left by the worker's result, the
    /// rescuer (lease expired), or a cancel.
    Running,
    /// A failed attempt waits for its retry delay. Entered from `running` by the worker or the
    /// rescuer. Left by a claim or a cancel.
    Retrying,
    /// Terminal: an attempt returned a result.
    Succeeded,
    /// Terminal: a non-retryable failure or no retries left; the cost was refunded.
    Failed,
    /// Terminal: canceled on request; the cost was refunded.
    Canceled,
}

impl JobState {
    pub const ALL: [JobState; 6] = [
        JobState::Queued,
        JobState::Running,
        JobState::Retrying,
        JobState::Succeeded,
        JobState::Failed,
        JobState::Canceled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Running => "running",
            JobState::Retrying => "retrying",
            JobState::Succeeded => "succeeded",
            JobState::Failed => "failed",
            JobState::Canceled => "canceled",
        }
    }

    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            JobState::Succeeded | JobState::Failed | JobState::Canceled
        )
    }

    /// Unfinished jobs count against `batch_max_queued_per_user`.
    pub fn is_unfinished(self) -> bool {
        !self.is_terminal()
    }

    /// Whether a worker may claim a job in this state (once its `run_at` has passed).
    pub fn is_claimable(self) -> bool {
        matches!(self, JobState::Queued | JobState::Retrying)
    }

    /// Whether a cancel request may move a job out of this state.
    pub fn is_cancelable(self) -> bool {
        !self.is_terminal()
    }

    /// Whether an admin retry may re-queue a job in this state.
    pub fn is_admin_retryable(self) -> bool {
        matches!(self, JobState::Failed | JobState::Canceled)
    }

    /// The SPEC §3 transition table. `from == None` is a new job.
    pub fn can_transition(from: Option<JobState>, to: JobState) -> bool {
        use JobState::*;
        matches!(
            (from, to),
            (None, Queued)
                | (Some(Queued | Retrying), Running)
                | (Some(Running), Succeeded | Retrying | Failed)
                | (Some(Queued | Retrying | Running), Canceled)
                | (Some(Failed | Canceled), Queued)
        )
    }
}

impl fmt::Display for JobState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, thiserror::Error)]
#[error(
    "unknown job state {0:?}; expected one of queued, running, retrying, succeeded, failed, canceled"
)]
pub struct UnknownState(pub String);

impl FromStr for JobState {
    type Err = UnknownState;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        JobState::ALL
            .into_iter()
            .find(|state| state.as_str() == s)
            .ok_or_else(|| UnknownState(s.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use JobState::*;

    #[test]
    fn round_trips_through_text() {
        for state in JobState::ALL {
            assert_eq!(state.as_str().parse::<JobState>().unwrap(), state);
        }
        assert!("processing".parse::<JobState>().is_err());
    }

    #[test]
    fn the_transition_table_is_exactly_the_spec() {
        let allowed = [
            (None, Queued),
            (Some(Queued), Running),
            (Some(Retrying), Running),
            (Some(Running), Succeeded),
            (Some(Running), Retrying),
            (Some(Running), Failed),
            (Some(Queued), Canceled),
            (Some(Retrying), Canceled),
            (Some(Running), Canceled),
            (Some(Failed), Queued),
            (Some(Canceled), Queued),
        ];
        let froms = std::iter::once(None).chain(JobState::ALL.into_iter().map(Some));
        for from in froms {
            for to in JobState::ALL {
                assert_eq!(
                    JobState::can_transition(from, to),
                    allowed.contains(&(from, to)),
                    "{from:?} -> {to:?}"
                );
            }
        }
    }

    #[test]
    fn nothing_leaves_succeeded() {
        for to in JobState::ALL {
            assert!(!JobState::can_transition(Some(Succeeded), to));
        }
    }

    #[test]
    fn predicates_agree_with_the_table() {
        for s in JobState::ALL {
            assert_eq!(s.is_claimable(), JobState::can_transition(Some(s), Running));
            assert_eq!(
                s.is_cancelable(),
                JobState::can_transition(Some(s), Canceled)
            );
            assert_eq!(
                s.is_admin_retryable(),
                JobState::can_transition(Some(s), Queued)
            );
        }
    }
}
