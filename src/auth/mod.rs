//! Credentials to identity: `X-API-Key: <key>`, `Authorization: Bearer <key>`, or
//! `Authorization: Bearer <OAuth access token>` when the policy has `oauth:`.
//!
//! Invariants: a key's format (prefix, length, checksum) is checked before any lookup; a key
//! is looked up only by its SHA-256; a request that carries two credentials that disagree, or
//! a credential header twice, is refused rather than guessed at. Keys in the query string are
//! never read.

pub mod api_key;
pub mod clients;
pub mod oauth;

use std::sync::Arc;

use http::{HeaderMap, HeaderName};

use crate::limits::Subject;
use crate::policy::{Key, KeyHeaders, Limits, Policy};
use oauth::Rejected;

/// Why a request has no identity. Each maps to one `reason` label and one wire answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("missing credentials: send X-API-Key or Authorization: Bearer")]
    Missing,
    #[error("invalid API key")]
    Invalid,
    #[error("API key expired")]
    Expired,
    #[error("invalid bearer token")]
    BadToken,
    /// A token signed by its issuer but expired or not yet valid: not a guess.
    #[error("bearer token expired or not yet valid")]
    StaleToken,
    /// The token's issuer could not be asked (its keys were never fetched, introspection
    /// failed): the token may be good, so the client should retry rather than sign in again.
    #[error("cannot verify the bearer token now: its issuer is unavailable")]
    IssuerUnavailable,
    #[error("conflicting credentials: send one X-API-Key or one Authorization header")]
    Conflict,
}

impl Error {
    /// The `reason` label of `mcpwarden_auth_failures_total`.
    pub fn reason(self) -> &'static str {
        match self {
            Error::Missing => "missing",
            Error::Invalid => "invalid",
            Error::Expired => "expired",
            Error::BadToken | Error::StaleToken | Error::IssuerUnavailable => "bad_token",
            Error::Conflict => "conflict",
        }
    }

    /// Whether the failure spends the client address's failed-authentication budget: a
    /// credential that may be a guess does; none at all, a token its issuer signed, or an
    /// issuer that could not be asked does not (otherwise everyone behind a shared address
    /// would be locked out by ordinary token expiry or an issuer outage).
    pub fn spends_budget(self) -> bool {
        !matches!(
            self,
            Error::Missing | Error::StaleToken | Error::IssuerUnavailable
        )
    }
}

/// Who is calling: a key of a workspace, or an OAuth client of one (see [`clients`]), with
/// what it may do.
#[derive(Debug, Clone)]
pub struct Identity {
    key: Arc<Key>,
    /// For a token with a `sub`: `oauth:<client_id>` and the subject, one per line (neither a
    /// key id nor a client id can hold a line break).
    owner: Option<Arc<str>>,
}

impl Identity {
    pub fn from_key(key: Arc<Key>) -> Self {
        Self { key, owner: None }
    }

    /// An OAuth client's identity, acting for `subject` when the token names one.
    pub fn from_token(key: Arc<Key>, subject: Option<&str>) -> Self {
        let owner = subject.map(|sub| Arc::from(format!("{}\n{sub}", key.id)));
        Self { key, owner }
    }

    pub fn workspace(&self) -> &str {
        &self.key.workspace.name
    }

    /// The key id (never the key).
    pub fn key_id(&self) -> &str {
        &self.key.id
    }

    /// The policy's entry for this key (its hash is not part of it).
    pub fn key(&self) -> &Key {
        &self.key
    }

    /// The same entry, for a record that outlives the request (the access log's).
    pub fn shared_key(&self) -> &Arc<Key> {
        &self.key
    }

    pub fn has_scope(&self, scope: &str) -> bool {
        self.key.scopes.contains(scope)
    }

    pub fn has_feature(&self, feature: &str) -> bool {
        self.key.workspace.features.contains(feature)
    }

    /// The identity headers and `RateLimit-Policy`, as built when the policy compiled.
    pub fn headers(&self) -> &KeyHeaders {
        &self.key.headers
    }

    pub fn limits(&self) -> &Limits {
        &self.key.limits
    }

    /// Whose limits apply: this key of this workspace.
    pub fn subject(&self) -> Subject {
        Subject::of_key(&self.key)
    }

    /// True for an OAuth client (a bearer token) rather than a key.
    pub fn is_oauth(&self) -> bool {
        self.key.is_oauth()
    }

    /// Whether asking the authorization server for `scopes` could help: only a token can be
    /// exchanged for a wider one, and only for scopes its workspace has (a token's scopes are
    /// narrowed to its workspace's, so asking for others would loop through consent in vain).
    pub fn may_step_up_to(&self, scopes: &[String]) -> bool {
        self.is_oauth() && scopes.iter().all(|s| self.key.workspace.scopes.contains(s))
    }

    /// Who owns the sessions this identity opens (within its workspace): the key, or for a
    /// token the client together with the user it acts for — two people using the same
    /// client app must not be able to take over each other's sessions.
    pub fn session_owner(&self) -> &str {
        self.owner.as_deref().unwrap_or(&self.key.id)
    }
}

/// Finds the caller's identity from the request headers, at `now` (Unix seconds). Only a
/// bearer token may wait (for its issuer's keys); a key is decided on the spot.
pub async fn authenticate(
    headers: &HeaderMap,
    policy: &Policy,
    now: i64,
) -> Result<Identity, Error> {
    match credential(headers)? {
        Credential::Key(key) => by_key(key, policy, now),
        // Boxed: verifying a token may fetch its issuer's keys, a future of several KiB that
        // would otherwise be part of every request's state, and copied with it, keys included.
        Credential::Token(token) => Box::pin(by_token(token, policy, now)).await,
    }
}

/// A gateway key: format, then lookup by SHA-256, then expiry.
fn by_key(key: &str, policy: &Policy, now: i64) -> Result<Identity, Error> {
    api_key::check_format(key).map_err(|_| Error::Invalid)?;
    let entry = policy.keys.get(&api_key::hash(key)).ok_or(Error::Invalid)?;
    if entry.expires.is_some_and(|at| now >= at) {
        return Err(Error::Expired);
    }
    Ok(Identity::from_key(entry.clone()))
}

/// An OAuth access token: verified by its issuer's keys, then mapped onto its workspace.
async fn by_token(token: &str, policy: &Policy, now: i64) -> Result<Identity, Error> {
    let Some(oauth) = &policy.oauth else {
        return Err(Error::BadToken);
    };
    let refused = |why: &dyn std::fmt::Display, error: Error| {
        // The reason, never the token. Refusals that spend the failed-authentication budget
        // are bounded by it per address; the others (an expired token, a busy issuer) are
        // ordinary and can come in floods, so they stay at debug.
        if error.spends_budget() {
            tracing::info!(reason = %why, "bearer token refused");
        } else {
            tracing::debug!(reason = %why, "bearer token refused");
        }
        error
    };
    let claims = oauth.verify(token, now).await.map_err(|e| {
        let error = match e {
            Rejected::Expired | Rejected::NotYetValid => Error::StaleToken,
            Rejected::Unavailable => Error::IssuerUnavailable,
            _ => Error::BadToken,
        };
        refused(&e, error)
    })?;
    let Some(workspace) = policy.workspace(&claims.workspace) else {
        let why = format_args!("workspace {:?} is not in the policy", claims.workspace);
        return Err(refused(&why, Error::BadToken));
    };
    let key = policy
        .clients
        .get(workspace, &claims)
        .ok_or_else(|| refused(&"client id is not a valid header value", Error::BadToken))?;
    Ok(Identity::from_token(key, claims.subject.as_deref()))
}

/// The one credential a request carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Credential<'a> {
    /// Looks like a gateway key (`mcpw_…`), from `X-API-Key` or `Authorization: Bearer`.
    Key(&'a str),
    /// Any other bearer value: an OAuth access token.
    Token(&'a str),
}

/// The one credential the request carries, or why there is not exactly one.
fn credential(headers: &HeaderMap) -> Result<Credential<'_>, Error> {
    let api_key = single(headers, &crate::wire::X_API_KEY)?;
    let bearer = match single(headers, &http::header::AUTHORIZATION)? {
        None => None,
        Some(value) => Some(bearer_token(value).ok_or(Error::BadToken)?),
    };
    match (api_key, bearer) {
        (None, None) => Err(Error::Missing),
        (Some(key), None) => Ok(Credential::Key(key)),
        (None, Some(token)) if api_key::is_key_like(token) => Ok(Credential::Key(token)),
        (None, Some(token)) => Ok(Credential::Token(token)),
        (Some(key), Some(token)) if key == token => Ok(Credential::Key(key)),
        (Some(_), Some(_)) => Err(Error::Conflict),
    }
}

/// The header's value when it appears at most once; a repeated credential is a conflict.
fn single<'a>(headers: &'a HeaderMap, name: &HeaderName) -> Result<Option<&'a str>, Error> {
    let mut values = headers.get_all(name).iter();
    let Some(first) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(Error::Conflict);
    }
    // A value that is not visible ASCII cannot be a key; say "invalid", not "missing".
    first
        .to_str()
        .map(|v| Some(v.trim()))
        .map_err(|_| Error::Invalid)
}

/// `Bearer <token>`, the scheme case-insensitive (RFC 9110 §11.1).
fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

#[cfg(test)]
mod tests;

/// Runs a future that must not wait (authentication by key) to its end, for tests.
#[cfg(test)]
pub(crate) fn ready<F: std::future::Future>(future: F) -> F::Output {
    let mut future = std::pin::pin!(future);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    match future.as_mut().poll(&mut cx) {
        std::task::Poll::Ready(output) => output,
        std::task::Poll::Pending => panic!("the future waited"),
    }
}
