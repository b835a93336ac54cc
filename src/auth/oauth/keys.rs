//! A JWK set (RFC 7517) to the verification keys one issuer may use.
//!
//! Invariants: a key is kept only when it is a signature key (`use` absent or `sig`,
//! `key_ops` absent or containing `verify`) of a supported shape — RSA of 2048 to 8192 bits,
//! EC on P-256, OKP on Ed25519 — whose algorithm (its `alg`, or the one its shape implies when
//! `alg` is absent) is pinned for the issuer. Other keys (encryption keys, P-384, HMAC secrets)
//! are skipped silently, since real sets mix them in; a set that leaves no key is an error.
//! Keys are built once here, never per request.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::DecodingKey;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm, KeyOperations};
use jsonwebtoken::jwk::{PublicKeyUse, RSAKeyParameters};
use serde::Deserialize;
use serde_json::value::RawValue;

use super::Algorithm;

/// Bounds what one set may cost in memory and in the no-`kid` search.
pub const MAX_KEYS: usize = 64;

/// One verification key.
pub struct Key {
    pub kid: Option<String>,
    pub algorithm: Algorithm,
    pub key: DecodingKey,
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Key")
            .field("kid", &self.kid)
            .field("algorithm", &self.algorithm)
            .finish()
    }
}

/// The usable keys of one JWK set, in the set's order.
#[derive(Debug, Default)]
pub struct KeySet {
    keys: Vec<Key>,
}

#[derive(Deserialize)]
struct RawSet<'a> {
    #[serde(borrow)]
    keys: Vec<&'a RawValue>,
}

impl KeySet {
    /// Parses a JWK set, keeping the keys usable with `allowed`. `Err` says why in words an
    /// operator can act on.
    pub fn parse(json: &[u8], allowed: &[Algorithm]) -> Result<KeySet, String> {
        let raw: RawSet<'_> = serde_json::from_slice(json)
            .map_err(|e| format!("not a JWK set (a JSON object with a \"keys\" array): {e}"))?;
        let keys: Vec<Key> = raw
            .keys
            .iter()
            .filter_map(|raw| serde_json::from_str::<Jwk>(raw.get()).ok())
            .filter_map(|jwk| usable(&jwk, allowed))
            .take(MAX_KEYS)
            .collect();
        if keys.is_empty() {
            let names: Vec<&str> = allowed.iter().map(|a| jose_name(*a)).collect();
            return Err(format!(
                "the JWK set has no usable signature key for {} (RSA of 2048 to 8192 bits, EC P-256 \
                 or Ed25519, for signatures)",
                names.join(", ")
            ));
        }
        Ok(KeySet { keys })
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The key named `kid`, whatever its algorithm (the caller refuses a mismatch).
    pub fn by_kid(&self, kid: &str) -> Option<&Key> {
        self.keys.iter().find(|k| k.kid.as_deref() == Some(kid))
    }

    /// The keys of `algorithm`: the candidates for a token without `kid`.
    pub fn of_algorithm(&self, algorithm: Algorithm) -> impl Iterator<Item = &Key> {
        self.keys.iter().filter(move |k| k.algorithm == algorithm)
    }
}

/// The key `jwk` describes, when it is a signature key of a supported shape and an algorithm
/// in `allowed`.
fn usable(jwk: &Jwk, allowed: &[Algorithm]) -> Option<Key> {
    let common = &jwk.common;
    if matches!(common.public_key_use, Some(ref u) if *u != PublicKeyUse::Signature) {
        return None;
    }
    if matches!(&common.key_operations, Some(ops) if !ops.contains(&KeyOperations::Verify)) {
        return None;
    }
    let implied = match &jwk.algorithm {
        AlgorithmParameters::RSA(rsa) if rsa_size_ok(rsa) => Algorithm::Rs256,
        AlgorithmParameters::EllipticCurve(ec)
            if ec.curve == EllipticCurve::P256
                && coordinate(&ec.x, 32)
                && coordinate(&ec.y, 32) =>
        {
            Algorithm::Es256
        }
        AlgorithmParameters::OctetKeyPair(okp)
            if okp.curve == EllipticCurve::Ed25519 && coordinate(&okp.x, 32) =>
        {
            Algorithm::EdDsa
        }
        _ => return None,
    };
    // A stated `alg` must agree with the key's shape (an RSA key marked ES256 is not usable).
    let stated = match common.key_algorithm {
        None => implied,
        Some(KeyAlgorithm::RS256) => Algorithm::Rs256,
        Some(KeyAlgorithm::ES256) => Algorithm::Es256,
        Some(KeyAlgorithm::EdDSA) => Algorithm::EdDsa,
        Some(_) => return None,
    };
    if stated != implied || !allowed.contains(&stated) {
        return None;
    }
    let key = DecodingKey::from_jwk(jwk).ok()?;
    Some(Key {
        kid: common.key_id.clone(),
        algorithm: stated,
        key,
    })
}

/// RSA moduli from 2048 to 8192 bits: ring's verifier refuses others, so such a key could
/// only ever fail; better to say so when the set loads.
fn rsa_size_ok(rsa: &RSAKeyParameters) -> bool {
    let Ok(n) = URL_SAFE_NO_PAD.decode(rsa.n.trim_end_matches('=')) else {
        return false;
    };
    let significant = n.iter().skip_while(|b| **b == 0).count();
    (256..=1024).contains(&significant)
}

fn coordinate(b64: &str, len: usize) -> bool {
    URL_SAFE_NO_PAD
        .decode(b64)
        .is_ok_and(|bytes| bytes.len() == len)
}

/// The JOSE name (`alg` header value) of an algorithm.
pub fn jose_name(algorithm: Algorithm) -> &'static str {
    match algorithm {
        Algorithm::Rs256 => "RS256",
        Algorithm::Es256 => "ES256",
        Algorithm::EdDsa => "EdDSA",
    }
}

/// The algorithm a JOSE `alg` value names, if it is one this gateway supports.
pub fn from_jose_name(name: &str) -> Option<Algorithm> {
    match name {
        "RS256" => Some(Algorithm::Rs256),
        "ES256" => Some(Algorithm::Es256),
        "EdDSA" => Some(Algorithm::EdDsa),
        _ => None,
    }
}

pub fn to_jsonwebtoken(algorithm: Algorithm) -> jsonwebtoken::Algorithm {
    match algorithm {
        Algorithm::Rs256 => jsonwebtoken::Algorithm::RS256,
        Algorithm::Es256 => jsonwebtoken::Algorithm::ES256,
        Algorithm::EdDsa => jsonwebtoken::Algorithm::EdDSA,
    }
}
