//! The OpenAPI 3 document, generated from the handlers and types themselves.

use crate::error::{ErrorBody, ErrorInner};
use crate::routes::{admin, batches, jobs, system, users, workers};
use crate::views::{BatchView, ClaimedJobView, ErrorView, JobView, StatsView};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

#[derive(OpenApi)]
#[openapi(
    info(title = "genq", description = "A durable, fair job queue for AI generation."),
    paths(
        jobs::enqueue, jobs::list, jobs::get, jobs::cancel, jobs::retry,
        batches::submit, batches::get,
        workers::claim, workers::heartbeat, workers::complete, workers::fail,
        users::get, users::put, users::credits, users::ledger,
        admin::limits, admin::set_limit, admin::providers, admin::enable_key,
        system::stats, system::healthz, system::readyz, system::openapi,
    ),
    components(schemas(
        JobView, ErrorView, BatchView, StatsView, ClaimedJobView, ErrorBody, ErrorInner,
        jobs::EnqueueJob, jobs::JobPage, batches::SubmitBatch, batches::Submitted,
        workers::ClaimBody, workers::Claimed, workers::HeartbeatBody, workers::LeaseView,
        workers::CompleteBody, workers::FailBody,
        users::UserView, users::SetPlan, users::Credits, users::LedgerEntryView, users::LedgerPage,
        admin::LimitView, admin::LimitsView, admin::SetLimit, admin::ProvidersView,
    )),
    modifiers(&BearerAuth),
    security(("bearer" = [])),
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}
