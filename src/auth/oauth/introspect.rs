//! Opaque tokens: RFC 7662 introspection, with a small cache of the answers.
//!
//! Invariants: the request is `POST token=<t>` form-encoded with HTTP Basic client
//! credentials and a [`TIMEOUT`]; only `"active": true` admits, then the same claim rules as
//! a JWT (except that `iss` may be absent: the endpoint vouches for its issuer; when present
//! it must match), `aud` must contain the resource as for a JWT, and a `token_type` naming a
//! refresh token is refused. What is cached is the checked outcome (the caller's [`Claims`],
//! or why the token is refused), never the answer, keyed by the SHA-256 of the token (the
//! token itself is never stored or logged): a valid answer until min(`exp`,
//! [`POSITIVE_TTL_SECS`]), an inactive one, or an active one the rules refuse, for
//! [`NEGATIVE_TTL_SECS`]; at most [`MAX_ENTRIES`] (when full, expired entries go, and if none
//! had, all do). The outcome depends on the issuer, resource and workspace claim it was
//! checked against, so a reload shares the cache only when they are unchanged. Failures to
//! reach the endpoint are not cached.

use std::collections::HashMap;
use std::sync::Mutex;
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

/// What the cache keeps of an answer: the outcome of the rules, never the answer itself, so
/// an entry weighs at most the bounded identity of [`Claims`] (not a 64 KiB answer).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Answer {
    /// Active, and its claims met the rules: who the caller is.
    Valid(Claims),
    /// Inactive, or active but refused by the rules: why.
    Refused(Rejected),
}

impl Answer {
    fn into_result(self) -> Result<Claims, Rejected> {
        match self {
            Answer::Valid(claims) => Ok(claims),
            Answer::Refused(why) => Err(why),
        }
    }
}

struct Entry {
    answer: Answer,
    until: i64,
}

type Cache = Mutex<HashMap<[u8; 32], Entry>>;

/// What an answer's claims are checked against: the outcome cached depends on it, so a cache
/// is shared across a reload only when it is the same.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expected {
    pub issuer: String,
    pub resource: String,
    pub workspace_claim: String,
}

pub struct Introspector {
    config: IntrospectionConfig,
    expected: Expected,
    cache: ArcSwap<Cache>,
}

impl std::fmt::Debug for Introspector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // `IntrospectionConfig`'s Debug leaves the secret out; the cache holds only hashes.
        f.debug_struct("Introspector")
            .field("config", &self.config)
            .field("expected", &self.expected)
            .finish_non_exhaustive()
    }
}

impl Introspector {
    pub fn new(config: IntrospectionConfig, expected: Expected) -> Self {
        Self {
            config,
            expected,
            cache: ArcSwap::from_pointee(Cache::default()),
        }
    }

    pub fn endpoint(&self) -> &str {
        &self.config.endpoint
    }

    /// Shares `previous`'s cache when it asked the same endpoint as the same client and
    /// checked the answers against the same issuer, resource and workspace claim.
    pub fn adopt(&self, previous: &Introspector) {
        if self.config == previous.config && self.expected == previous.expected {
            self.cache.store(previous.cache.load_full());
        }
    }

    /// `Unavailable` when the endpoint cannot be asked; anything else is the issuer's word
    /// on the token, checked by the rules.
    pub async fn verify(&self, token: &str, now: i64) -> Result<Claims, Rejected> {
        let key: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        if let Some(answer) = self.cached(&key, now) {
            return answer.into_result();
        }
        let (answer, until) = self.ask(token, now).await?;
        self.remember(key, answer.clone(), until, now);
        answer.into_result()
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

    /// The checked outcome of an active answer: its claims when they meet the rules.
    fn check(&self, set: &ClaimSet<'_>, now: i64) -> Result<Claims, Rejected> {
        refuse_refresh_token(set)?;
        let expect = Expect {
            issuer: &self.expected.issuer,
            resource: &self.expected.resource,
            iss_required: false,
        };
        claims::check_validity(set, expect, now)?;
        claims::identity(set, &self.expected.workspace_claim)
    }

    /// POSTs the token; the checked answer and how long it may be cached: a valid one until
    /// its `exp` but at most [`POSITIVE_TTL_SECS`], a refusal [`NEGATIVE_TTL_SECS`].
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
        let refused = |why| Ok((Answer::Refused(why), now.saturating_add(NEGATIVE_TTL_SECS)));
        if !active {
            return refused(Rejected::Inactive);
        }
        match self.check(&set, now) {
            Ok(claims) => {
                // `check` made sure `exp` is a number.
                let exp = claims::numeric_date(&set, "exp")?.unwrap_or(now);
                let until = exp.min(now.saturating_add(POSITIVE_TTL_SECS));
                Ok((Answer::Valid(claims), until))
            }
            Err(why) => refused(why),
        }
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
        match &self.issuers[index].introspection {
            Some(introspector) => introspector.verify(token, now).await,
            None => Err(Rejected::Malformed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(i: usize) -> [u8; 32] {
        Sha256::digest(i.to_le_bytes()).into()
    }

    fn introspector() -> Introspector {
        let config = IntrospectionConfig {
            endpoint: "http://127.0.0.1:1/".to_owned(),
            client_id: "c".to_owned(),
            client_secret: "s".to_owned(),
        };
        let expected = Expected {
            issuer: "https://auth.test".to_owned(),
            resource: "https://mcp.test/mcp".to_owned(),
            workspace_claim: "org".to_owned(),
        };
        Introspector::new(config, expected)
    }

    const INACTIVE: Answer = Answer::Refused(Rejected::Inactive);

    /// A 60 KiB answer costs the cache its caller's identity, not its bytes.
    #[tokio::test]
    async fn the_cache_keeps_the_checked_claims_not_the_answer() {
        let now = 1_800_000_000;
        let answer = serde_json::json!({
            "active": true, "iss": "https://auth.test", "aud": "https://mcp.test/mcp",
            "exp": now + 3600, "client_id": "app-1", "org": "acme", "scope": "crm:read",
            "padding": "x".repeat(60 * 1024),
        })
        .to_string();
        let router = axum::Router::new().route(
            "/introspect",
            axum::routing::post(move || std::future::ready(answer.clone())),
        );
        let server = super::super::tests::Server::start(router).await;
        let mut introspector = introspector();
        introspector.config.endpoint = format!("{}/introspect", server.base);

        let claims = Claims {
            client_id: "app-1".to_owned(),
            workspace: "acme".to_owned(),
            scopes: vec!["crm:read".to_owned()],
            subject: None,
        };
        assert_eq!(introspector.verify("opaque", now).await, Ok(claims.clone()));
        let key: [u8; 32] = Sha256::digest(b"opaque").into();
        assert_eq!(introspector.cached(&key, now), Some(Answer::Valid(claims)));
    }

    #[test]
    fn the_cache_is_bounded_dropping_expired_answers_first_then_all() {
        let introspector = introspector();
        let now = 1_000;
        for i in 0..MAX_ENTRIES {
            // Half of them expire at now + 5.
            let until = if i % 2 == 0 { now + 5 } else { now + 50 };
            introspector.remember(key(i), INACTIVE, until, now);
        }
        introspector.remember(key(MAX_ENTRIES), INACTIVE, now + 50, now + 10);
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

        introspector.cache.store(std::sync::Arc::default());
        for i in 0..MAX_ENTRIES {
            introspector.remember(key(i), INACTIVE, now + 50, now + 10);
        }
        assert_eq!(len(&introspector), MAX_ENTRIES);
        introspector.remember(key(MAX_ENTRIES + 1), INACTIVE, now + 50, now + 10);
        assert_eq!(len(&introspector), 1, "full of live answers: cleared");
    }
}
