//! Bearer tokens and their scopes (SPEC §6): `admin` may do everything, `app` everything but
//! the admin endpoints and `error.detail`, `worker` the external-worker endpoints, `viewer`
//! only reads the dashboard.

use crate::AppState;
use crate::error::{ApiError, Code};
use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use std::sync::Arc;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    Admin,
    App,
    Worker,
    Viewer,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Admin => "admin",
            Scope::App => "app",
            Scope::Worker => "worker",
            Scope::Viewer => "viewer",
        }
    }
}

/// The configured tokens, kept as SHA-256 digests. A presented token is hashed and compared
/// with every digest in constant time, so neither a map lookup's early exit nor a byte-wise
/// comparison tells an attacker how much of a guess was right.
#[derive(Default)]
pub struct Tokens(Vec<([u8; 32], Scope)>);

/// The digest genq keeps of a token.
pub(crate) fn digest(token: &str) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(token.as_bytes()).into()
}

impl Tokens {
    /// Config validation guarantees that no token is in two scopes.
    pub fn new(auth: &genq_config::Auth) -> Tokens {
        let mut tokens = Vec::new();
        for (list, scope) in [
            (&auth.admin_tokens, Scope::Admin),
            (&auth.app_tokens, Scope::App),
            (&auth.worker_tokens, Scope::Worker),
            (&auth.viewer_tokens, Scope::Viewer),
        ] {
            tokens.extend(list.iter().map(|t| (digest(t), scope)));
        }
        Tokens(tokens)
    }

    fn scope(&self, token: &str) -> Option<Scope> {
        self.find(&digest(token)).map(|(_, scope)| scope)
    }

    /// The known token with this digest: its digest and scope.
    pub(crate) fn find(&self, presented: &[u8; 32]) -> Option<([u8; 32], Scope)> {
        use subtle::ConstantTimeEq;
        // Every digest is compared, whichever matches.
        let mut found = None;
        for (known, scope) in &self.0 {
            if bool::from(known.ct_eq(presented)) {
                found = Some((*known, *scope));
            }
        }
        found
    }

    /// The known token whose digest starts with `prefix` (a dashboard session names its
    /// token so), its digest and scope.
    pub(crate) fn by_prefix(&self, prefix: &[u8]) -> Option<([u8; 32], Scope)> {
        self.0
            .iter()
            .find(|(known, _)| known.starts_with(prefix))
            .copied()
    }
}

/// `[metrics] token`: what a scraper of `/metrics` must send, when set.
#[derive(Default)]
pub struct ScrapeToken(Option<[u8; 32]>);

impl ScrapeToken {
    pub fn new(token: Option<&str>) -> ScrapeToken {
        ScrapeToken(token.map(digest))
    }

    /// Whether a request with these headers may read `/metrics`.
    pub fn allows(&self, headers: &axum::http::HeaderMap) -> bool {
        use subtle::ConstantTimeEq;
        let Some(known) = &self.0 else {
            return true;
        };
        let presented = headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|h| {
                h.strip_prefix("Bearer ")
                    .or_else(|| h.strip_prefix("bearer "))
            })
            .map(|t| digest(t.trim()));
        presented.is_some_and(|p| bool::from(known.ct_eq(&p)))
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
            let names: Vec<&str> = allowed.iter().map(|s| s.as_str()).collect();
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
