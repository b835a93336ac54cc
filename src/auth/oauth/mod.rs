//! OAuth 2.0 resource server: `Authorization: Bearer <access token>` (a value that is not a
//! `mcpw_` key) to verified claims, and the RFC 9728 protected-resource metadata.
//!
//! Invariants: a token is accepted only when signed by a key of its issuer's JWKS (from the
//! configured `jwks_uri` or `jwks_file`, never from a URL in the token), with an algorithm
//! pinned for that issuer, and with `exp`, `iss` and `aud` (= `resource`) present and valid.
//! Every failure is one `Rejected`; the token itself is never logged.
//!
//! The rules, precisely (each module states its own):
//! - a token over [`MAX_TOKEN_BYTES`] is malformed, before anything else is read;
//! - a bearer value of three base64url segments is a JWT (`jwt.rs`); anything else is an
//!   opaque token, for the one issuer that configures introspection (`introspect.rs`; an
//!   opaque token names no issuer, so more than one would each be shown it), and malformed
//!   when none does;
//! - clock leeway [`LEEWAY_SECS`] on `exp` and `nbf`; identities and scopes bounded
//!   (`claims.rs`); a JWT without `kid` is tried against each of its issuer's keys of its
//!   algorithm;
//! - a `jwks_uri` is fetched at start ([`OAuth::prefetch`]) or by the first token, refetched
//!   once [`REFRESH_MAX_AGE_SECS`] old ([`OAuth::refresh_stale`]) and on an unknown `kid` at
//!   most every [`REFRESH_INTERVAL_SECS`]; its cached keys survive failed fetches and reloads,
//!   but are not served [`MAX_STALE_SECS`] after the last successful fetch (`remote.rs`).

mod claims;
mod crypto;
mod fetch;
mod introspect;
mod issuer;
mod jwt;
mod keys;
mod remote;
#[cfg(test)]
mod tests;

pub mod metadata;

use std::path::PathBuf;

pub use claims::{LEEWAY_SECS, MAX_ID_BYTES, MAX_SCOPES};
pub use crypto::install as install_crypto_provider;
pub use remote::{MAX_STALE_SECS, REFRESH_INTERVAL_SECS, REFRESH_MAX_AGE_SECS};

/// The longest bearer token read; longer ones are refused unread.
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;

/// The `oauth:` section as compiled from the policy: plain data, checked by the compiler.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// This gateway's resource identifier (an absolute URL): the audience tokens must carry.
    pub resource: String,
    pub authorization_servers: Vec<String>,
    pub scopes_supported: Vec<String>,
    pub issuers: Vec<IssuerConfig>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuerConfig {
    /// The exact `iss` value.
    pub issuer: String,
    pub jwks: JwksSource,
    /// Signature algorithms accepted from this issuer (never `none`, never HMAC).
    pub algorithms: Vec<Algorithm>,
    /// The claim that names the workspace.
    pub workspace_claim: String,
    /// The workspaces this issuer's tokens may name; `None`: any workspace of the policy
    /// (allowed only when it is the one issuer).
    pub workspaces: Option<Vec<String>>,
    /// RFC 7662 introspection for opaque (non-JWT) tokens.
    pub introspection: Option<IntrospectionConfig>,
}

impl IssuerConfig {
    /// Whether this issuer may vouch for a caller of `workspace`.
    pub fn may_name(&self, workspace: &str) -> bool {
        self.workspaces
            .as_ref()
            .is_none_or(|list| list.iter().any(|w| w == workspace))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algorithm {
    Rs256,
    Es256,
    EdDsa,
}

#[derive(Clone, PartialEq, Eq)]
pub enum JwksSource {
    /// Fetched over HTTP(S), cached, refreshed every 10 minutes and on an unknown `kid` at
    /// most every 30 s; not served a day after the last successful fetch.
    Uri(String),
    /// Read when the policy compiles (so it is reloaded with the policy); `json` is the
    /// file's content.
    File { path: PathBuf, json: String },
}

impl std::fmt::Debug for JwksSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            JwksSource::Uri(uri) => f.debug_tuple("Uri").field(uri).finish(),
            JwksSource::File { path, .. } => f.debug_struct("File").field("path", path).finish(),
        }
    }
}

#[derive(Clone, PartialEq, Eq)]
pub struct IntrospectionConfig {
    pub endpoint: String,
    pub client_id: String,
    /// Read from the environment (`${VAR}`) when the policy compiles; never printed.
    pub client_secret: String,
}

impl std::fmt::Debug for IntrospectionConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IntrospectionConfig")
            .field("endpoint", &self.endpoint)
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

/// What a valid token says about its caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claims {
    /// `client_id` (RFC 9068), else `azp`.
    pub client_id: String,
    /// The value of the issuer's `workspace_claim`.
    pub workspace: String,
    /// From `scope` (space-separated) or `scp` (array), as the token states them (not yet
    /// narrowed to the workspace's).
    pub scopes: Vec<String>,
    /// `sub`: on whose behalf the client acts (a session the upstream issues is bound to it).
    pub subject: Option<String>,
}

/// Why a token is refused (each is `bad_token` on the wire; the reason goes to the log).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejected {
    #[error("not a well-formed token")]
    Malformed,
    #[error("issuer not configured")]
    UnknownIssuer,
    #[error("algorithm not allowed for this issuer")]
    Algorithm,
    #[error("no key with this kid")]
    UnknownKey,
    #[error("bad signature")]
    Signature,
    #[error("expired")]
    Expired,
    #[error("not yet valid")]
    NotYetValid,
    #[error("wrong audience")]
    Audience,
    #[error("missing or malformed claim {0}")]
    Claim(&'static str),
    #[error("token is not active")]
    Inactive,
    /// The issuer could not be asked: its JWK set was never fetched, or its introspection
    /// endpoint did not answer.
    #[error("the issuer could not be reached to check the token")]
    Unavailable,
}

/// The compiled `oauth:` section at run time: the config, the issuers' keys, the metadata.
#[derive(Debug)]
pub struct OAuth {
    config: Config,
    /// One per `config.issuers`, in the same order.
    issuers: Vec<issuer::Issuer>,
    /// The index of the one issuer with introspection, which every opaque token goes to.
    introspecting: Option<usize>,
    /// The RFC 9728 document and its URL, built once.
    metadata: metadata::Metadata,
}

impl OAuth {
    /// Builds the runtime from the compiled section; `Err` is a message for the compiler to
    /// report (for example a `jwks_file` that is not a JWK set).
    pub fn new(config: Config) -> Result<Self, String> {
        crypto::install();
        let issuers = config
            .issuers
            .iter()
            .map(|i| issuer::Issuer::new(i, &config.resource))
            .collect::<Result<_, _>>()?;
        let mut introspecting = config
            .issuers
            .iter()
            .enumerate()
            .filter(|(_, i)| i.introspection.is_some())
            .map(|(index, _)| index);
        let first = introspecting.next();
        if introspecting.next().is_some() {
            return Err(
                "at most one issuer may introspect opaque tokens (an opaque token names no issuer, so it would be sent to each)"
                    .to_owned(),
            );
        }
        let metadata = metadata::Metadata::new(&config);
        Ok(Self {
            config,
            issuers,
            introspecting: first,
            metadata,
        })
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Takes over what `previous` (the policy this one replaces) already fetched for the same
    /// `jwks_uri`s and introspection endpoints, so a reload neither refetches nor forgets.
    pub fn inherit(&self, previous: &OAuth) {
        for issuer in &self.issuers {
            for old in &previous.issuers {
                issuer.inherit(old);
            }
        }
    }

    /// Fetches every `jwks_uri` not cached yet (inherited sets are not refetched), so that the
    /// first request does not wait for it. Spawn it once the runtime is built; a failure is
    /// logged, and the first token with a key from that set tries again.
    pub async fn prefetch(&self) {
        for issuer in &self.issuers {
            issuer.prefetch().await;
        }
    }

    /// Fetches again every `jwks_uri` whose last successful fetch is
    /// [`REFRESH_MAX_AGE_SECS`] old or more (or never happened), so keys the issuer removed
    /// stop being trusted; `now` is Unix seconds. Call it periodically (every minute) from
    /// housekeeping; it returns when the fetches are done (each within its own deadline). A
    /// set that cannot be fetched is kept, but not served past [`MAX_STALE_SECS`].
    pub async fn refresh_stale(&self, now: i64) {
        for issuer in &self.issuers {
            issuer.refresh_if_stale(now).await;
        }
    }

    /// What `mcpwarden check` reports about the issuers: a `jwks_uri` that cannot be fetched
    /// or is not a JWK set, an introspection endpoint that cannot be reached. Empty when all
    /// is well.
    pub async fn probe(&self) -> Vec<String> {
        let mut problems = Vec::new();
        for (config, issuer) in self.config.issuers.iter().zip(&self.issuers) {
            problems.extend(issuer.probe(config).await);
        }
        problems
    }

    /// Verifies `token` at `now` (Unix seconds).
    pub async fn verify(&self, token: &str, now: i64) -> Result<Claims, Rejected> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(Rejected::Malformed);
        }
        match jwt::Jwt::split(token) {
            Some(jwt) => self.verify_jwt(jwt, now).await,
            None => self.verify_opaque(token, now).await,
        }
    }

    /// The issuer whose `iss` is `iss`, with its run-time half.
    fn issuer(&self, iss: &str) -> Option<(&IssuerConfig, &issuer::Issuer)> {
        let index = self.config.issuers.iter().position(|i| i.issuer == iss)?;
        Some((&self.config.issuers[index], &self.issuers[index]))
    }

    /// The RFC 9728 protected-resource metadata (document, URL, which paths serve it).
    pub fn metadata(&self) -> &metadata::Metadata {
        &self.metadata
    }
}
