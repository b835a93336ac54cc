//! Opaque tokens: RFC 7662 introspection, with a small cache of the answers.
//!
//! Invariants: the request is `POST token=<t>` form-encoded with HTTP Basic client
//! credentials and a [`TIMEOUT`]; only `"active": true` admits, then the same claim rules as
//! a JWT (except that `iss` may be absent: the endpoint vouches for its issuer; when present
//! it must match), `aud` must contain the resource as for a JWT, and a `token_type` naming a
//! refresh token is refused. Answers are cached by the SHA-256 of the token (the token
//! itself is never stored or logged): positive ones until min(`exp`, [`POSITIVE_TTL_SECS`]),
//! negative ones for [`NEGATIVE_TTL_SECS`], at most [`MAX_ENTRIES`] (when full, expired
//! entries go, and if none had, all do). A cached answer's claims are checked again on every
//! use, against the policy of the moment. Failures to reach the endpoint are not cached.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use sha2::{Digest, Sha256};

use super::claims::{self, ClaimSet, Expect};
use super::fetch;
use super::{Claims, IntrospectionConfig, OAuth, Rejected};

pub const TIMEOUT: Duration = Duration::from_secs(2);
pub const POSITIVE_TTL_SECS: i64 = 60;
pub const NEGATIVE_TTL_SECS: i64 = 10;
pub const MAX_ENTRIES: usize = 10_000;

/// An opaque bearer value: RFC 6750 b64token characters only (anything else is not a token
/// and is not sent to an issuer).
fn is_b64token(token: &str) -> bool {
    let body = token.trim_end_matches('=');
    !body.is_empty()
        && body
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~+/".contains(&b))
}

/// An answer whose `token_type` (RFC 7662 §2.2, optional) names a refresh token: such a
/// token is for the authorization server's token endpoint, never a bearer credential here,
/// whatever else the answer says. Any type containing "refresh", in any case, is refused
/// (`refresh_token`, `urn:ietf:params:oauth:token-type:refresh_token`, `Refresh`).
fn refuse_refresh_token(set: &ClaimSet<'_>) -> Result<(), Rejected> {
    let Some(token_type) = set.string("token_type")? else {
        return Ok(());
    };
    if token_type.to_ascii_lowercase().contains("refresh") {
        return Err(Rejected::Claim("token_type"));
    }
    Ok(())
}

#[derive(Clone)]
enum Answer {
    /// The endpoint's JSON, kept to check its claims against the current policy.
    Active(Arc<[u8]>),
    Inactive,
}

struct Entry {
    answer: Answer,
    until: i64,
}

type Cache = Mutex<HashMap<[u8; 32], Entry>>;

pub struct Introspector {
    config: IntrospectionConfig,
    cache: ArcSwap<Cache>,
}

impl std::fmt::Debug for Introspector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // `IntrospectionConfig`'s Debug leaves the secret out; the cache holds only hashes.
        f.debug_struct("Introspector")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Introspector {
    pub fn new(config: IntrospectionConfig) -> Self {
        Self {
            config,
            cache: ArcSwap::from_pointee(Cache::default()),
        }
    }

    pub fn endpoint(&self) -> &str {
        &self.config.endpoint
    }

    /// Shares `previous`'s cache when it asked the same endpoint as the same client.
    pub fn adopt(&self, previous: &Introspector) {
        if self.config == previous.config {
            self.cache.store(previous.cache.load_full());
        }
    }

    /// `Inactive` when the endpoint says so, `Unavailable` when it cannot be asked; anything
    /// else is this issuer's final word on the token.
    async fn verify(
        &self,
        token: &str,
        expect: Expect<'_>,
        workspace_claim: &str,
        now: i64,
    ) -> Result<Claims, Rejected> {
        let key: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let answer = match self.cached(&key, now) {
            Some(answer) => answer,
            None => {
                let (answer, until) = self.ask(token, now).await?;
                self.remember(key, answer.clone(), until, now);
                answer
            }
        };
        let Answer::Active(json) = answer else {
            return Err(Rejected::Inactive);
        };
        let set = ClaimSet::parse(&json)?;
        refuse_refresh_token(&set)?;
        claims::check_validity(&set, expect, now)?;
        claims::identity(&set, workspace_claim)
    }

    fn cached(&self, key: &[u8; 32], now: i64) -> Option<Answer> {
        let cache = self.cache.load();
        let entries = cache.lock().unwrap_or_else(|e| e.into_inner());
        entries
            .get(key)
            .filter(|e| now < e.until)
            .map(|e| e.answer.clone())
    }

    fn remember(&self, key: [u8; 32], answer: Answer, until: i64, now: i64) {
        if until <= now {
            return;
        }
        let cache = self.cache.load();
        let mut entries = cache.lock().unwrap_or_else(|e| e.into_inner());
        if entries.len() >= MAX_ENTRIES {
            entries.retain(|_, e| now < e.until);
            if entries.len() >= MAX_ENTRIES {
                entries.clear();
            }
        }
        entries.insert(key, Entry { answer, until });
    }

    /// POSTs the token; the answer and how long it may be cached.
    async fn ask(&self, token: &str, now: i64) -> Result<(Answer, i64), Rejected> {
        let body = self.post(token).await.map_err(|error| {
            tracing::warn!(endpoint = %self.config.endpoint, %error, "token introspection failed");
            Rejected::Unavailable
        })?;
        let set = ClaimSet::parse(&body).map_err(|_| Rejected::Unavailable)?;
        let active = match set.get("active")? {
            Some(raw) => {
                serde_json::from_str::<bool>(raw.get()).map_err(|_| Rejected::Unavailable)?
            }
            None => return Err(Rejected::Unavailable),
        };
        if !active {
            return Ok((Answer::Inactive, now.saturating_add(NEGATIVE_TTL_SECS)));
        }
        let exp = claims::numeric_date(&set, "exp")?.unwrap_or(now);
        let until = exp.min(now.saturating_add(POSITIVE_TTL_SECS));
        Ok((Answer::Active(body.into()), until))
    }

    async fn post(&self, token: &str) -> Result<Vec<u8>, String> {
        let credentials = (
            self.config.client_id.as_str(),
            self.config.client_secret.as_str(),
        );
        fetch::post_form(
            &self.config.endpoint,
            credentials,
            &[("token", token)],
            TIMEOUT,
        )
        .await
    }

    /// For `mcpwarden check`: the endpoint answers a made-up token with a JSON `active`
    /// member (a 401 here means the client credentials are wrong).
    pub async fn probe(&self) -> Result<(), String> {
        let body = self.post("mcpwarden-check-probe").await?;
        let set =
            ClaimSet::parse(&body).map_err(|_| "the answer is not a JSON object".to_owned())?;
        match set.get("active") {
            Ok(Some(_)) => Ok(()),
            _ => Err("the answer has no \"active\" member".to_owned()),
        }
    }
}

impl OAuth {
    /// An opaque token: asked of the one issuer with introspection (the compiler allows at
    /// most one); malformed when there is none.
    pub(super) async fn verify_opaque(&self, token: &str, now: i64) -> Result<Claims, Rejected> {
        if !is_b64token(token) {
            return Err(Rejected::Malformed);
        }
        let Some(index) = self.introspecting else {
            return Err(Rejected::Malformed);
        };
        let config = &self.config.issuers[index];
        let Some(introspector) = &self.issuers[index].introspection else {
            return Err(Rejected::Malformed);
        };
        let expect = Expect {
            issuer: &config.issuer,
            resource: &self.config.resource,
            iss_required: false,
        };
        introspector
            .verify(token, expect, &config.workspace_claim, now)
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(i: usize) -> [u8; 32] {
        Sha256::digest(i.to_le_bytes()).into()
    }

    #[test]
    fn the_cache_is_bounded_dropping_expired_answers_first_then_all() {
        let introspector = Introspector::new(IntrospectionConfig {
            endpoint: "http://127.0.0.1:1/".to_owned(),
            client_id: "c".to_owned(),
            client_secret: "s".to_owned(),
        });
        let now = 1_000;
        for i in 0..MAX_ENTRIES {
            // Half of them expire at now + 5.
            let until = if i % 2 == 0 { now + 5 } else { now + 50 };
            introspector.remember(key(i), Answer::Inactive, until, now);
        }
        introspector.remember(key(MAX_ENTRIES), Answer::Inactive, now + 50, now + 10);
        assert!(
            introspector.cached(&key(1), now + 10).is_some(),
            "live answers stay"
        );
        assert!(
            introspector.cached(&key(0), now).is_none(),
            "expired ones went"
        );
        let len = |i: &Introspector| i.cache.load().lock().unwrap().len();
        assert_eq!(len(&introspector), MAX_ENTRIES / 2 + 1);

        introspector.cache.store(Arc::default());
        for i in 0..MAX_ENTRIES {
            introspector.remember(key(i), Answer::Inactive, now + 50, now + 10);
        }
        assert_eq!(len(&introspector), MAX_ENTRIES);
        introspector.remember(key(MAX_ENTRIES + 1), Answer::Inactive, now + 50, now + 10);
        assert_eq!(len(&introspector), 1, "full of live answers: cleared");
    }
}
