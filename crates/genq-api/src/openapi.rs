//! The OpenAPI 3.1 document. utoipa generates it from the handlers and types; [`document`]
//! then completes it from the config it is served with (the configured kinds, one path per
//! runtime limit with that limit's range) and adds the error answers every operation can give.
//! It states exactly what genq accepts and what it answers: schemathesis checks both ways in
//! CI, and `tests/openapi.rs` keeps a snapshot so that a change shows in review.

use crate::error::{Code, ErrorBody, ErrorInner};
use crate::extract::{KEY_PATTERN, text_pattern};
use crate::routes::{admin, batches, events, jobs, schedules, system, users, workers};
use crate::views::{BatchView, ClaimedJobView, ErrorView, JobView, StatsView};
use genq_config::Config;
use genq_core::limits::{LIMITS, PLANS};
use serde_json::{Value, json};
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi, PartialSchema, ToSchema};

#[derive(OpenApi)]
#[openapi(
    info(title = "genq", description = "A durable, fair job queue for AI generation."),
    paths(
        jobs::enqueue, jobs::list, jobs::get, jobs::cancel, jobs::retry,
        batches::submit, batches::get,
        workers::claim, workers::heartbeat, workers::complete, workers::fail,
        users::get, users::put, users::credits, users::ledger,
        admin::limits, admin::set_limit, admin::providers, admin::enable_key,
        admin::webhooks, admin::redeliver, events::stream, schedules::list, schedules::set,
        system::stats, system::healthz, system::readyz, system::metrics, system::openapi,
    ),
    components(schemas(
        JobView, ErrorView, BatchView, StatsView, ClaimedJobView, ErrorBody, ErrorInner,
        jobs::EnqueueJob, jobs::JobPage, batches::SubmitBatch, batches::Submitted,
        workers::ClaimBody, workers::Claimed, workers::HeartbeatBody, workers::LeaseView,
        workers::CompleteBody, workers::FailBody,
        users::UserView, users::SetPlan, users::Credits, users::LedgerEntryView, users::LedgerPage,
        admin::LimitView, admin::LimitsView, admin::SetLimit, admin::ProvidersView,
        admin::WebhookView, admin::WebhooksView, schedules::ScheduleView,
        schedules::SchedulesView, schedules::SetSchedule,
        Key, KindName, ExternalKindName, ProviderName, KeyLabel, JobCursor, LedgerCursor, Plan, FailClass, JobStateName,
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

/// Names of kinds and providers (`genq-config` checks them so).
const NAME_PATTERN: &str = "^[A-Za-z0-9._:-]{1,100}$";

/// A string schema with a pattern, for the named string types below.
fn pattern(description: &str, pattern: &str) -> RefOr<Schema> {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .description(Some(description))
        .pattern(Some(pattern))
        .into()
}

fn one_of(description: &str, values: &[&str]) -> RefOr<Schema> {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .description(Some(description))
        .enum_values(Some(values.iter().copied()))
        .into()
}

/// Declares a documentation-only string type, referenced by fields as `value_type = …`.
macro_rules! string_schema {
    ($name:ident, $schema:expr) => {
        pub struct $name;
        impl PartialSchema for $name {
            fn schema() -> RefOr<Schema> {
                $schema
            }
        }
        impl ToSchema for $name {
            fn name() -> std::borrow::Cow<'static, str> {
                stringify!($name).trim_end_matches("Name").into()
            }
        }
    };
}

string_schema!(
    Key,
    pattern(
        "An identifier: 1 to 200 letters, digits or -._~!$&'()*+,;=:@ (what a URL path segment holds unescaped).",
        KEY_PATTERN
    )
);
string_schema!(
    ProviderName,
    pattern("A configured provider.", NAME_PATTERN)
);
string_schema!(
    KeyLabel,
    pattern(
        "A key's label, `<provider>#<n>` (`#` written `%23`), or just its number `n`.",
        "^([A-Za-z0-9._:-]{1,100}#)?[0-9]{1,9}$"
    )
);
string_schema!(
    KindName,
    pattern(
        "A configured kind (the served document lists them).",
        NAME_PATTERN
    )
);
string_schema!(
    ExternalKindName,
    pattern(
        "A configured kind with external = true (the served document lists them).",
        NAME_PATTERN
    )
);
string_schema!(
    JobCursor,
    pattern(
        "The next_cursor of a previous page, as it is.",
        crate::cursor::JOBS_PATTERN
    )
);
string_schema!(
    LedgerCursor,
    pattern(
        "The next_cursor of a previous page, as it is.",
        crate::cursor::LEDGER_PATTERN
    )
);
string_schema!(Plan, one_of("A plan.", &PLANS));
string_schema!(
    JobStateName,
    one_of(
        "A job's state.",
        &genq_core::JobState::ALL.map(|s| s.as_str())
    )
);
string_schema!(
    FailClass,
    one_of(
        "An error class a worker may report (lease_expired is genq's own).",
        &[
            "user_error",
            "temporary",
            "rate_limited",
            "billing",
            "timeout",
            "internal",
            "canceled"
        ]
    )
);

/// The document as `GET /openapi.json` serves it for `config`.
pub fn document(config: &Config) -> Value {
    let mut doc = serde_json::to_value(ApiDoc::openapi()).expect("the document serializes");
    let schemas = &mut doc["components"]["schemas"];
    let kinds: Vec<&str> = config.kinds.iter().map(|k| k.name.as_str()).collect();
    schemas["Kind"] = kind_schema("A configured kind.", &kinds);
    let external: Vec<&str> = config
        .kinds
        .iter()
        .filter(|k| k.external)
        .map(|k| k.name.as_str())
        .collect();
    schemas["ExternalKind"] = kind_schema("A configured kind with external = true.", &external);
    // Rules serde attributes cannot state. `run_at` and `delay_ms` exclude each other (a
    // null counts as absent).
    for body in ["EnqueueJob", "SubmitBatch"] {
        schemas[body]["not"] = json!({
            "required": ["run_at", "delay_ms"],
            "properties": {"run_at": {"type": "string"}, "delay_ms": {"type": "integer"}},
        });
        schemas[body]["properties"]["delay_ms"]["maximum"] = json!(jobs::MAX_DELAY_MS);
    }
    schemas["Credits"]["properties"]["delta"]["not"] = json!({"const": 0});
    schemas["Credits"]["properties"]["reason"]["pattern"] =
        json!(text_pattern(users::MAX_REASON_CHARS));
    one_path_per_limit(&mut doc);
    error_answers(&mut doc);
    metrics_path(&mut doc, config);
    doc
}

/// `/metrics` as this config serves it: absent when off, and with its own token when set.
fn metrics_path(doc: &mut Value, config: &Config) {
    let paths = doc["paths"].as_object_mut().expect("paths");
    if !config.metrics.enabled {
        paths.remove("/metrics");
        return;
    }
    let op = &mut paths["/metrics"]["get"];
    let token = config.metrics.token.is_some();
    if token {
        op["security"] = json!([{"bearer": []}]);
    }
    let responses = op["responses"].as_object_mut().expect("responses");
    responses.remove("404");
    responses.remove("403");
    if !token {
        responses.remove("401");
    }
}

fn kind_schema(description: &str, names: &[&str]) -> Value {
    if names.is_empty() {
        // No such kind: no value is valid.
        json!({"description": description, "not": {}})
    } else {
        json!({"type": "string", "description": description, "enum": names})
    }
}

/// `PUT /v1/admin/limits/{key}` as one path per limit, each body with that limit's range.
fn one_path_per_limit(doc: &mut Value) {
    let paths = doc["paths"].as_object_mut().expect("paths");
    let Some(template) = paths.remove("/v1/admin/limits/{key}") else {
        return;
    };
    for spec in LIMITS {
        let mut item = template.clone();
        let put = &mut item["put"];
        put.as_object_mut()
            .expect("an operation")
            .remove("parameters");
        put["operationId"] = json!(format!("set_limit_{}", spec.key));
        put["summary"] = json!(format!("Set {}: {}", spec.key, spec.meaning));
        put["requestBody"]["content"]["application/json"]["schema"] = json!({
            "type": "object",
            "required": ["value"],
            "additionalProperties": false,
            "properties": {"value": {
                "type": "integer", "format": "int64",
                "minimum": spec.min, "maximum": spec.max,
                "description": format!("default {}", spec.default),
            }},
        });
        paths.insert(format!("/v1/admin/limits/{}", spec.key), item);
    }
}

/// The error answers any operation can give, added where the operation does not say more.
fn error_answers(doc: &mut Value) {
    let answer = |code: Code, why: &str| {
        json!({
            "description": format!("`{}`: {why}", code.as_str()),
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}},
        })
    };
    let paths = doc["paths"].as_object_mut().expect("paths");
    for (path, item) in paths.iter_mut() {
        let Some(item) = item.as_object_mut() else {
            continue;
        };
        for op in item.values_mut() {
            let Some(op) = op.as_object_mut() else {
                continue;
            };
            let public = op
                .get("security")
                .and_then(Value::as_array)
                .is_some_and(|s| {
                    s.iter()
                        .all(|r| r.as_object().is_some_and(|o| o.is_empty()))
                });
            let has_input = op.contains_key("parameters")
                || op.contains_key("requestBody")
                || path.contains('{');
            let has_body = op.contains_key("requestBody");
            let has_uri_input = op.contains_key("parameters") || path.contains('{');
            // `/metrics` reports a database that does not answer as `genq_database_up 0`.
            let uses_database = !matches!(path.as_str(), "/healthz" | "/openapi.json" | "/metrics");
            let responses = op
                .entry("responses")
                .or_insert_with(|| json!({}))
                .as_object_mut()
                .expect("responses");
            let mut add = |status: &str, value: Value| {
                responses.entry(status).or_insert(value);
            };
            if has_input {
                add(
                    "400",
                    answer(
                        Code::InvalidRequest,
                        "malformed JSON, a wrong type, an unknown field, or a bad path or query",
                    ),
                );
            }
            if has_uri_input {
                add(
                    "414",
                    answer(Code::UriTooLong, "the path and query are over 8 KiB"),
                );
            }
            if !public {
                add(
                    "401",
                    answer(Code::Unauthorized, "no bearer token, or an unknown one"),
                );
                add(
                    "403",
                    answer(Code::Forbidden, "the token's scope may not do this"),
                );
            }
            if has_body {
                add(
                    "408",
                    answer(
                        Code::RequestTimeout,
                        "the body did not arrive within api.body_timeout",
                    ),
                );
                add(
                    "413",
                    answer(Code::PayloadTooLarge, "the body is over api.max_body_bytes"),
                );
            }
            if uses_database {
                add(
                    "503",
                    answer(Code::Unavailable, "the database does not answer"),
                );
            }
        }
    }
}
