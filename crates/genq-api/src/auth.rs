//! Bearer tokens and their scopes (SPEC §6): `admin` may do everything, `app` everything but
//! the admin endpoints and `error.detail`, `worker` the external-worker endpoints.

use crate::AppState;
use crate::error::{ApiError, Code};
use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use std::collections::HashMap;
use std::sync::Arc;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    Admin,
    App,
    Worker,
}

#[derive(Debug, Default)]
pub struct Tokens(HashMap<String, Scope>);

impl Tokens {
    pub fn new(admin: &[String], app: &[String], worker: &[String]) -> Tokens {
        let mut map = HashMap::new();
        for (list, scope) in [
            (worker, Scope::Worker),
            (app, Scope::App),
            (admin, Scope::Admin),
        ] {
            for token in list {
                map.insert(token.clone(), scope);
            }
        }
        Tokens(map)
    }

    fn scope(&self, token: &str) -> Option<Scope> {
        self.0.get(token).copied()
    }
}

/// The authenticated caller of a request.
#[derive(Debug, Clone, Copy)]
pub struct Caller {
    pub scope: Scope,
}

impl Caller {
    pub fn is_admin(&self) -> bool {
        self.scope == Scope::Admin
    }

    pub fn require(&self, allowed: &[Scope]) -> Result<(), ApiError> {
        if allowed.contains(&self.scope) {
            Ok(())
        } else {
            let names: Vec<&str> = allowed
                .iter()
                .map(|s| match s {
                    Scope::Admin => "admin",
                    Scope::App => "app",
                    Scope::Worker => "worker",
                })
                .collect();
            Err(ApiError::new(
                Code::Forbidden,
                format!(
                    "this endpoint needs a token with scope {}",
                    names.join(" or ")
                ),
            ))
        }
    }

    pub fn require_admin(&self) -> Result<(), ApiError> {
        self.require(&[Scope::Admin])
    }

    /// Applications and admins: the job endpoints.
    pub fn require_app(&self) -> Result<(), ApiError> {
        self.require(&[Scope::Admin, Scope::App])
    }

    /// External workers and admins: claim, heartbeat, complete, fail.
    pub fn require_worker(&self) -> Result<(), ApiError> {
        self.require(&[Scope::Admin, Scope::Worker])
    }
}

impl FromRequestParts<Arc<AppState>> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, Self::Rejection> {
        let header = parts
            .headers
            .get(AUTHORIZATION)
            .ok_or_else(|| {
                ApiError::new(
                    Code::Unauthorized,
                    "send a token as Authorization: Bearer <token>",
                )
            })?
            .to_str()
            .map_err(|_| ApiError::new(Code::Unauthorized, "malformed Authorization header"))?;
        let token = header
            .strip_prefix("Bearer ")
            .or_else(|| header.strip_prefix("bearer "))
            .ok_or_else(|| {
                ApiError::new(
                    Code::Unauthorized,
                    "the Authorization header must be Bearer <token>",
                )
            })?
            .trim();
        let scope = state
            .tokens
            .scope(token)
            .ok_or_else(|| ApiError::new(Code::Unauthorized, "unknown token"))?;
        Ok(Caller { scope })
    }
}
