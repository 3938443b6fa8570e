pub mod admin;
pub mod batches;
pub mod events;
pub mod jobs;
pub mod schedules;
pub mod system;
pub mod users;
pub mod workers;

use crate::AppState;
use crate::auth::Caller;
use crate::views::Visibility;

pub(crate) fn visibility<'a>(state: &'a AppState, caller: &Caller) -> Visibility<'a> {
    Visibility::for_caller(caller, state.config.mode, &state.messages)
}
