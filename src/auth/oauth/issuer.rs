//! One configured issuer at run time: its keys (a file's set, built once, or a remote set's
//! cache) and its introspection client.
//!
//! Invariants: a `jwks_file` that is not a JWK set, or has no key usable with the issuer's
//! algorithms, fails the policy (the compiler reports it); a remote set starts empty and is
//! filled by `prefetch` or the first token, or taken over from the previous policy by
//! `inherit` (with its fetch time) so a reload neither refetches a fresh set nor forgets one;
//! `refresh_if_stale` renews an old one.

use std::sync::Arc;
use std::time::Duration;

use super::introspect::{Expected, Introspector};
use super::keys::KeySet;
use super::remote::{self, RemoteJwks};
use super::{IssuerConfig, JwksSource};

/// How long `mcpwarden check` waits for each `jwks_uri`.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

#[derive(Debug)]
pub struct Issuer {
    pub keys: Keys,
    pub introspection: Option<Introspector>,
}

#[derive(Debug)]
pub enum Keys {
    File(KeySet),
    Remote(Arc<RemoteJwks>),
}

impl Issuer {
    /// `resource` is what introspection answers must name in `aud`.
    pub fn new(config: &IssuerConfig, resource: &str) -> Result<Issuer, String> {
        let keys = match &config.jwks {
            JwksSource::File { path, json } => {
                let set = KeySet::parse(json.as_bytes(), &config.algorithms).map_err(|e| {
                    format!(
                        "issuer {}: jwks_file {}: {e}",
                        config.issuer,
                        path.display()
                    )
                })?;
                Keys::File(set)
            }
            JwksSource::Uri(uri) => Keys::Remote(Arc::new(RemoteJwks::new(uri.clone()))),
        };
        let introspection = config.introspection.clone().map(|introspection| {
            let expected = Expected {
                issuer: config.issuer.clone(),
                resource: resource.to_owned(),
                workspace_claim: config.workspace_claim.clone(),
                workspaces: config.workspaces.clone(),
            };
            Introspector::new(introspection, expected)
        });
        Ok(Issuer {
            keys,
            introspection,
        })
    }

    /// Takes over `previous`'s caches where it fetched the same URI / asked the same
    /// endpoint with the same credentials.
    pub fn inherit(&self, previous: &Issuer) {
        if let (Keys::Remote(new), Keys::Remote(old)) = (&self.keys, &previous.keys)
            && new.uri() == old.uri()
        {
            new.adopt(old);
        }
        if let (Some(new), Some(old)) = (&self.introspection, &previous.introspection) {
            new.adopt(old);
        }
    }

    pub async fn prefetch(&self) {
        if let Keys::Remote(remote) = &self.keys {
            remote.prefetch().await;
        }
    }

    /// Fetches a remote set again when it is old enough (see `remote.rs`).
    pub async fn refresh_if_stale(&self, now: i64) {
        if let Keys::Remote(remote) = &self.keys {
            remote.refresh_if_stale(now).await;
        }
    }

    /// What is wrong with this issuer's remote endpoints, in words naming them.
    pub async fn probe(&self, config: &IssuerConfig) -> Vec<String> {
        let mut problems = Vec::new();
        if let Keys::Remote(remote) = &self.keys {
            match remote::fetch_set(remote.uri(), PROBE_TIMEOUT).await {
                Ok(set)
                    if !config
                        .algorithms
                        .iter()
                        .any(|a| set.of_algorithm(*a).next().is_some()) =>
                {
                    problems.push(format!(
                        "issuer {}: jwks_uri {}: no key for the issuer's algorithms",
                        config.issuer,
                        remote.uri()
                    ));
                }
                Ok(_) => {}
                Err(e) => problems.push(format!(
                    "issuer {}: jwks_uri {}: {e}",
                    config.issuer,
                    remote.uri()
                )),
            }
        }
        if let Some(introspection) = &self.introspection
            && let Err(e) = introspection.probe().await
        {
            problems.push(format!(
                "issuer {}: introspection_endpoint {}: {e}",
                config.issuer,
                introspection.endpoint()
            ));
        }
        problems
    }
}
