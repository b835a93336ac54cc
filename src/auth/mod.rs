//! Credentials to identity: `X-API-Key: <key>` or `Authorization: Bearer <key>`.
//!
//! Invariants: a key's format (prefix, length, checksum) is checked before any lookup; a key
//! is looked up only by its SHA-256; a request that carries two credentials that disagree, or
//! a credential header twice, is refused rather than guessed at. Keys in the query string are
//! never read.

pub mod api_key;
pub mod oauth;

use std::sync::Arc;

use http::{HeaderMap, HeaderName};

use crate::limits::Subject;
use crate::policy::{Key, KeyHeaders, Limits, Policy};

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
            Error::BadToken => "bad_token",
            Error::Conflict => "conflict",
        }
    }
}

/// Who is calling: a key of a workspace, with what that key may do.
#[derive(Debug, Clone)]
pub struct Identity {
    key: Arc<Key>,
}

impl Identity {
    pub fn from_key(key: Arc<Key>) -> Self {
        Self { key }
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

    /// True when both are the same key of the same workspace.
    pub fn same_as(&self, other: &Identity) -> bool {
        self.workspace() == other.workspace() && self.key_id() == other.key_id()
    }
}

/// Finds the caller's identity from the request headers, at `now` (Unix seconds).
pub fn authenticate(headers: &HeaderMap, policy: &Policy, now: i64) -> Result<Identity, Error> {
    let key = credential(headers)?;
    api_key::check_format(key).map_err(|_| Error::Invalid)?;
    let entry = policy.keys.get(&api_key::hash(key)).ok_or(Error::Invalid)?;
    if entry.expires.is_some_and(|at| now >= at) {
        return Err(Error::Expired);
    }
    Ok(Identity::from_key(entry.clone()))
}

/// The one credential the request carries, or why there is not exactly one.
fn credential(headers: &HeaderMap) -> Result<&str, Error> {
    let api_key = single(headers, &crate::wire::X_API_KEY)?;
    let bearer = match single(headers, &http::header::AUTHORIZATION)? {
        None => None,
        Some(value) => Some(bearer_token(value).ok_or(Error::BadToken)?),
    };
    match (api_key, bearer) {
        (None, None) => Err(Error::Missing),
        (Some(key), None) => Ok(key),
        (None, Some(token)) if api_key::is_key_like(token) => Ok(token),
        // Not a gateway key: an OAuth access token, which this policy has no issuer for.
        (None, Some(_)) => Err(Error::BadToken),
        (Some(key), Some(token)) if key == token => Ok(key),
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
