//! genq's domain model, free of I/O: what a job is, which states it moves through, who may move
//! it, and what happens after a failed attempt. Storage backends, the engine and the HTTP API all
//! decide transitions here and only *apply* them elsewhere.

pub mod account;
pub mod clock;
pub mod error_class;
pub mod event;
pub mod ids;
pub mod job;
pub mod limits;
pub mod machine;
pub mod retry;
pub mod schedule;
pub mod signature;
pub mod simulate;
pub mod state;

pub use account::{LedgerEntry, LedgerKind, User, UserDefaults};
pub use clock::{Clock, ManualClock, SystemClock};
pub use error_class::{ErrorClass, Messages};
pub use job::{Batch, Job, JobError};
pub use limits::Limits;
pub use machine::{AttemptCounters, Failure, Next};
pub use retry::RetryPolicy;
pub use state::JobState;
