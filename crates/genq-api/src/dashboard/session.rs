//! Dashboard sign-in: an admin or viewer token, typed once, becomes a session cookie.
//!
//! The cookie is `tag.expires.mac`: `tag` names the token (the first bytes of its digest),
//! `mac` is an HMAC of the rest keyed by the token's digest. Any process with the same tokens
//! accepts it, nothing is stored, the token itself never travels again, and removing a token
//! from the config ends its sessions. Every form carries a CSRF value, an HMAC of the same
//! session under another label, so a page on another site cannot post one.

use super::DashError;
use crate::AppState;
use crate::auth::{Scope, digest};
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use hmac::{Hmac, KeyInit, Mac};
use std::sync::Arc;

pub const COOKIE: &str = "genq_session";
/// How long a sign-in lasts.
pub const LIFETIME: chrono::Duration = chrono::Duration::hours(12);
/// Bytes of the token's digest that name it in the cookie (and in the log as the actor).
const TAG_BYTES: usize = 6;

/// A signed-in dashboard user.
#[derive(Clone)]
pub struct Session {
    pub scope: Scope,
    /// Names the token in the log: `admin:<tag>` or `viewer:<tag>`.
    pub actor: String,
    key: [u8; 32],
    tag: String,
    expires: i64,
}

fn mac(key: &[u8; 32], label: &str, tag: &str, expires: i64) -> Vec<u8> {
    let mut m = Hmac::<sha2::Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    m.update(format!("genq.{label}.{tag}.{expires}").as_bytes());
    m.finalize().into_bytes().to_vec()
}

impl Session {
    fn new(key: [u8; 32], scope: Scope, expires: i64) -> Session {
        let tag = B64.encode(&key[..TAG_BYTES]);
        Session {
            actor: format!("{}:{tag}", scope.as_str()),
            scope,
            key,
            tag,
            expires,
        }
    }

    /// A session for a presented token, if it is an admin or viewer token.
    pub fn sign_in(
        state: &AppState,
        token: &str,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Option<Session> {
        let (key, scope) = state.tokens.find(&digest(token.trim()))?;
        matches!(scope, Scope::Admin | Scope::Viewer)
            .then(|| Session::new(key, scope, (now + LIFETIME).timestamp()))
    }

    /// The cookie's value.
    pub fn cookie(&self) -> String {
        let mac = B64.encode(mac(&self.key, "session", &self.tag, self.expires));
        format!("{}.{}.{mac}", self.tag, self.expires)
    }

    /// The value every form of this session sends back.
    pub fn csrf(&self) -> String {
        B64.encode(mac(&self.key, "csrf", &self.tag, self.expires))
    }

    pub fn can_change(&self) -> bool {
        self.scope == Scope::Admin
    }

    /// A change may be made: the session is an admin's and the form came from its pages.
    pub fn authorize(&self, csrf: &str) -> Result<(), DashError> {
        self.check_csrf(csrf)?;
        if !self.can_change() {
            return Err(DashError::new(
                axum::http::StatusCode::FORBIDDEN,
                "A viewer token may look but not change anything: sign in with an admin token.",
            ));
        }
        Ok(())
    }

    /// The form came from this session's pages.
    pub fn check_csrf(&self, csrf: &str) -> Result<(), DashError> {
        use subtle::ConstantTimeEq;
        let ok = B64
            .decode(csrf)
            .map(|c| bool::from(c.ct_eq(&mac(&self.key, "csrf", &self.tag, self.expires))))
            .unwrap_or(false);
        if !ok {
            return Err(DashError::new(
                axum::http::StatusCode::FORBIDDEN,
                "This form is stale or did not come from this dashboard: reload the page and try again.",
            ));
        }
        Ok(())
    }

    fn from_cookie(state: &AppState, value: &str, now: i64) -> Option<Session> {
        let mut parts = value.splitn(3, '.');
        let (tag, expires, presented) = (parts.next()?, parts.next()?, parts.next()?);
        let expires: i64 = expires.parse().ok()?;
        let prefix = B64.decode(tag).ok().filter(|p| p.len() == TAG_BYTES)?;
        let (key, scope) = state.tokens.by_prefix(&prefix)?;
        let presented = B64.decode(presented).ok()?;
        use subtle::ConstantTimeEq;
        let valid = bool::from(presented.ct_eq(&mac(&key, "session", tag, expires)));
        (valid && expires > now && matches!(scope, Scope::Admin | Scope::Viewer))
            .then(|| Session::new(key, scope, expires))
    }
}

/// `Set-Cookie` for a session (or, with `None`, one that ends it).
pub fn set_cookie(session: Option<&Session>, headers: &HeaderMap) -> String {
    // Behind a TLS proxy the browser must never send the cookie over plain HTTP.
    let secure = headers
        .get("x-forwarded-proto")
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"https"));
    let (value, max_age) = match session {
        Some(s) => (s.cookie(), LIFETIME.num_seconds()),
        None => (String::new(), 0),
    };
    format!(
        "{COOKIE}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}{}",
        if secure { "; Secure" } else { "" }
    )
}

fn cookie_value<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

impl FromRequestParts<Arc<AppState>> for Session {
    type Rejection = DashError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, Self::Rejection> {
        let now = state.clock.now().timestamp();
        cookie_value(&parts.headers, COOKIE)
            .and_then(|v| Session::from_cookie(state, v, now))
            .ok_or_else(|| DashError::sign_in(parts.uri.path_and_query().map(|p| p.as_str())))
    }
}
