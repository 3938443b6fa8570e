//! The conformance suite against PostgreSQL, each test in a schema of its own (see
//! `conformance::pg`).

use genq_store::conformance::pg::fresh_store;
use genq_store::conformance_tests;
use std::sync::Arc;

conformance_tests!(Arc::new(fresh_store().await));
