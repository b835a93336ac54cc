//! Opaque tokens: RFC 7662 introspection, capped in flight, with a cache of the outcomes.
//!
//! Invariants: the request is `POST token=<t>` form-encoded with HTTP Basic client
//! credentials and a [`TIMEOUT`]; only `"active": true` admits, then the same claim rules as
//! a JWT (except that `iss` may be absent: the endpoint vouches for its issuer; when present
//! it must match), `aud` must contain the resource as for a JWT, and a `token_type` naming a
//! refresh token is refused. At most [`MAX_IN_FLIGHT`] calls are in flight, whoever makes
//! them; past that a token not cached is `Unavailable` at once, without waiting. What is
//! cached is the checked outcome (`cache.rs`: valid outcomes and refusals apart, each
//! bounded), never the answer or the token: a valid answer until min(`exp`,
//! [`POSITIVE_TTL_SECS`]), an inactive one, or an active one the rules refuse, for
//! [`NEGATIVE_TTL_SECS`]. The outcome depends on the issuer, resource and workspace claim it
//! was checked against, so a reload shares the cache only when they are unchanged (and the
//! cap always). Failures to reach the endpoint are not cached.

mod cache;

use std::time::Duration;

use arc_swap::ArcSwap;
use sha2::{Digest, Sha256};
use tokio::sync::Semaphore;

use super::claims::{self, ClaimSet, Expect};
use super::fetch;
use super::{Claims, IntrospectionConfig, OAuth, Rejected};
use cache::{Answer, Cache};

pub const TIMEOUT: Duration = Duration::from_secs(2);
pub const POSITIVE_TTL_SECS: i64 = 60;
pub const NEGATIVE_TTL_SECS: i64 = 10;
/// The most introspection calls in flight at once, over all callers: beyond them a token
/// that is not cached is `Unavailable` at once. Real clients present the same token for
/// many requests (one call per token per minute), so 32 is far above honest load.
pub const MAX_IN_FLIGHT: usize = 32;

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

/// What an answer's claims are checked against: the outcome cached depends on it, so a cache
/// is shared across a reload only when it is the same.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expected {
    pub issuer: String,
    pub resource: String,
    pub workspace_claim: String,
    /// The issuer's `workspaces:` (`None`: any).
    pub workspaces: Option<Vec<String>>,
}

pub struct Introspector {
    config: IntrospectionConfig,
    expected: Expected,
    cache: ArcSwap<Cache>,
    /// Permits for calls in flight; shared across reloads, so the cap holds through them.
    in_flight: ArcSwap<Semaphore>,
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
            in_flight: ArcSwap::from_pointee(Semaphore::new(MAX_IN_FLIGHT)),
        }
    }

    pub fn endpoint(&self) -> &str {
        &self.config.endpoint
    }

    /// Shares `previous`'s cap on calls in flight, and its cache when it asked the same
    /// endpoint as the same client and checked the answers against the same issuer,
    /// resource and workspace claim.
    pub fn adopt(&self, previous: &Introspector) {
        self.in_flight.store(previous.in_flight.load_full());
        if self.config == previous.config && self.expected == previous.expected {
            self.cache.store(previous.cache.load_full());
        }
    }

    /// `Unavailable` when the endpoint cannot be asked; anything else is the issuer's word
    /// on the token, checked by the rules.
    pub async fn verify(&self, token: &str, now: i64) -> Result<Claims, Rejected> {
        let key: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let cache = self.cache.load_full();
        if let Some(answer) = cache.get(&key, now) {
            return answer.into_result();
        }
        // No waiting for a permit: a caller past the cap is most likely one of a flood of
        // made-up tokens, and queueing them would only hold their connections open longer.
        let in_flight = self.in_flight.load_full();
        let Ok(_permit) = in_flight.try_acquire() else {
            return Err(Rejected::Unavailable);
        };
        let (answer, until) = self.ask(token, now).await?;
        cache.put(key, answer.clone(), until, now);
        answer.into_result()
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
        let identity = claims::identity(set, &self.expected.workspace_claim)?;
        let allowed = self.expected.workspaces.as_ref();
        if allowed.is_some_and(|list| !list.contains(&identity.workspace)) {
            return Err(Rejected::Claim("workspace"));
        }
        Ok(identity)
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
            workspaces: None,
        };
        Introspector::new(config, expected)
    }

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
        let cached = introspector.cache.load().get(&key, now);
        assert_eq!(cached, Some(Answer::Valid(claims)));
    }
}
