//! JWT access tokens (RFC 9068): structure, header, issuer choice and signature.
//!
//! Invariants: the unverified payload is read only to choose the issuer (by `iss`) and to
//! refuse oversized identities before any crypto; the signature is checked with that
//! issuer's keys only, with an algorithm pinned for it. `alg: none`, HMAC and any other
//! algorithm are refused from the header alone; `jku`, `x5u`, `jwk` and `x5c` header members
//! are never read, and a `crit` member (an extension this gateway cannot understand, RFC 7515
//! §4.1.11) makes the token malformed. A token with a `kid` is checked against that key
//! only; a token without one against each of the issuer's keys of its algorithm, in the
//! set's order (at most `keys::MAX_KEYS`). `typ` is not required to be `at+jwt`: Auth0,
//! Entra ID and Keycloak send `JWT`.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;

use super::claims::{self, ClaimSet, Expect};
use super::issuer::{Issuer, Keys};
use super::keys::{self, KeySet};
use super::{Algorithm, Claims, OAuth, Rejected};

/// The three segments of a compact JWS, borrowed from the token.
#[derive(Debug, Clone, Copy)]
pub struct Jwt<'t> {
    header: &'t str,
    payload: &'t str,
    signature: &'t str,
    /// `header.payload`: what the signature covers.
    signed: &'t str,
}

impl<'t> Jwt<'t> {
    /// The segments when `token` has the shape of a JWT: three base64url segments (the
    /// third may be empty, as in an `alg: none` token, which must still be refused as a JWT
    /// rather than sent to introspection).
    pub fn split(token: &'t str) -> Option<Jwt<'t>> {
        let (signed, signature) = token.rsplit_once('.')?;
        let (header, payload) = signed.split_once('.')?;
        let b64 = |s: &str| {
            s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        };
        (!header.is_empty() && !payload.is_empty() && b64(header) && b64(payload) && b64(signature))
            .then_some(Jwt {
                header,
                payload,
                signature,
                signed,
            })
    }
}

#[derive(Deserialize)]
struct Header<'a> {
    #[serde(borrow)]
    alg: &'a str,
    #[serde(default, borrow)]
    kid: Option<&'a str>,
    #[serde(default)]
    crit: Option<serde::de::IgnoredAny>,
}

impl OAuth {
    pub(super) async fn verify_jwt(&self, jwt: Jwt<'_>, now: i64) -> Result<Claims, Rejected> {
        let header_json = decode(jwt.header)?;
        let header: Header<'_> =
            serde_json::from_slice(&header_json).map_err(|_| Rejected::Malformed)?;
        if header.crit.is_some() {
            return Err(Rejected::Malformed);
        }
        let algorithm = keys::from_jose_name(header.alg).ok_or(Rejected::Algorithm)?;

        let payload = decode(jwt.payload)?;
        let set = ClaimSet::parse(&payload)?;
        let iss = set.string("iss")?.ok_or(Rejected::Claim("iss"))?;
        let (config, issuer) = self.issuer(&iss).ok_or(Rejected::UnknownIssuer)?;
        if !config.algorithms.contains(&algorithm) {
            return Err(Rejected::Algorithm);
        }
        // Bounds before crypto: an oversized identity costs no signature check.
        let identity = claims::identity(&set, &config.workspace_claim)?;
        if !config.may_name(&identity.workspace) {
            return Err(Rejected::Claim("workspace"));
        }

        issuer
            .verify_signature(jwt, header.kid, algorithm, now)
            .await?;

        let expect = Expect {
            issuer: &config.issuer,
            resource: &self.config.resource,
            iss_required: true,
        };
        claims::check_validity(&set, expect, now)?;
        Ok(identity)
    }
}

impl Issuer {
    /// Checks `jwt`'s signature with this issuer's keys, fetching them first when a remote
    /// set is not cached yet or lacks the token's `kid`.
    async fn verify_signature(
        &self,
        jwt: Jwt<'_>,
        kid: Option<&str>,
        algorithm: Algorithm,
        now: i64,
    ) -> Result<(), Rejected> {
        match &self.keys {
            Keys::File(set) => check(set, jwt, kid, algorithm),
            Keys::Remote(remote) => {
                let cached = remote.current();
                let first = match remote.servable(&cached, now) {
                    Some(set) => check(set, jwt, kid, algorithm),
                    None => Err(Rejected::Unavailable),
                };
                match first {
                    Err(Rejected::UnknownKey | Rejected::Unavailable) => {
                        let fresh = remote.refresh(&cached, now).await;
                        let set = remote.servable(&fresh, now).ok_or(Rejected::Unavailable)?;
                        check(set, jwt, kid, algorithm)
                    }
                    other => other,
                }
            }
        }
    }
}

/// Checks the signature against the candidate keys of `set`.
fn check(
    set: &KeySet,
    jwt: Jwt<'_>,
    kid: Option<&str>,
    algorithm: Algorithm,
) -> Result<(), Rejected> {
    let alg = keys::to_jsonwebtoken(algorithm);
    let verifies = |key: &keys::Key| {
        jsonwebtoken::crypto::verify(jwt.signature, jwt.signed.as_bytes(), &key.key, alg)
            .unwrap_or(false)
    };
    match kid {
        Some(kid) => {
            let key = set.by_kid(kid).ok_or(Rejected::UnknownKey)?;
            if key.algorithm != algorithm {
                return Err(Rejected::Algorithm);
            }
            if verifies(key) {
                Ok(())
            } else {
                Err(Rejected::Signature)
            }
        }
        None => {
            let mut candidates = set.of_algorithm(algorithm).peekable();
            if candidates.peek().is_none() {
                return Err(Rejected::UnknownKey);
            }
            if candidates.any(verifies) {
                Ok(())
            } else {
                Err(Rejected::Signature)
            }
        }
    }
}

/// base64url without padding (RFC 7515 §2), as JWS requires.
fn decode(segment: &str) -> Result<Vec<u8>, Rejected> {
    URL_SAFE_NO_PAD
        .decode(segment)
        .map_err(|_| Rejected::Malformed)
}
