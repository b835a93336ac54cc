//! `jsonwebtoken`'s cryptography backed by `ring` (already in the tree through rustls, so no
//! second crypto library is built): RS256, ES256 and EdDSA, and nothing else.
//!
//! Invariants: HMAC, `none` and every other algorithm have no verifier here at all, so even a
//! bug before the signature check could not accept an HS256 token keyed with a public key's
//! bytes (the RS/HS confusion attack). The provider is process-wide, installed once, the way
//! Pingora installs ring for rustls; `OAuth::new` installs it, and so must a test or bench
//! that signs tokens before building an `OAuth` ([`install`]).

use jsonwebtoken::crypto::{CryptoProvider, JwtSigner, JwtVerifier, KeyUtils};
use jsonwebtoken::errors::{Error, ErrorKind};
use jsonwebtoken::signature::{self, Signer, Verifier};
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey, DecodingKeyKind, EncodingKey};
use ring::rand::SystemRandom;
use ring::signature as sig;

static PROVIDER: CryptoProvider = CryptoProvider {
    signer_factory: new_signer,
    verifier_factory: new_verifier,
    // Thumbprints and public keys from private ones: not needed to verify.
    key_utils: KeyUtils::new_unimplemented(),
};

/// Makes the ring provider `jsonwebtoken`'s process default. Idempotent; when the embedding
/// program installed another provider first, that one stays.
pub fn install() {
    let _ = PROVIDER.install_default();
}

/// The family each supported algorithm's key must have.
fn family(algorithm: Algorithm) -> Option<AlgorithmFamily> {
    match algorithm {
        Algorithm::RS256 => Some(AlgorithmFamily::Rsa),
        Algorithm::ES256 => Some(AlgorithmFamily::Ec),
        Algorithm::EdDSA => Some(AlgorithmFamily::Ed),
        _ => None,
    }
}

fn new_verifier(algorithm: &Algorithm, key: &DecodingKey) -> Result<Box<dyn JwtVerifier>, Error> {
    if family(*algorithm) != Some(key.family()) {
        return Err(ErrorKind::InvalidAlgorithm.into());
    }
    Ok(Box::new(RingVerifier {
        algorithm: *algorithm,
        key: key.clone(),
    }))
}

fn new_signer(algorithm: &Algorithm, key: &EncodingKey) -> Result<Box<dyn JwtSigner>, Error> {
    if family(*algorithm) != Some(key.family()) {
        return Err(ErrorKind::InvalidAlgorithm.into());
    }
    let der = key.as_bytes();
    let signer = match algorithm {
        Algorithm::RS256 => RingSigner::Rsa(
            sig::RsaKeyPair::from_der(der)
                .or_else(|_| sig::RsaKeyPair::from_pkcs8(der))
                .map_err(|e| ErrorKind::InvalidRsaKey(e.to_string()))?,
        ),
        Algorithm::ES256 => RingSigner::Ec(
            sig::EcdsaKeyPair::from_pkcs8(
                &sig::ECDSA_P256_SHA256_FIXED_SIGNING,
                der,
                &SystemRandom::new(),
            )
            .map_err(|_| ErrorKind::InvalidEcdsaKey)?,
        ),
        _ => RingSigner::Ed(
            // OpenSSL writes PKCS#8 v1 (no public key inside), which ring checks only here.
            sig::Ed25519KeyPair::from_pkcs8_maybe_unchecked(der)
                .map_err(|_| ErrorKind::InvalidEddsaKey)?,
        ),
    };
    Ok(Box::new(signer))
}

struct RingVerifier {
    algorithm: Algorithm,
    key: DecodingKey,
}

impl Verifier<Vec<u8>> for RingVerifier {
    fn verify(&self, msg: &[u8], signature: &Vec<u8>) -> Result<(), signature::Error> {
        let verified = match (self.algorithm, self.key.kind()) {
            (Algorithm::RS256, DecodingKeyKind::RsaModulusExponent { n, e }) => {
                sig::RsaPublicKeyComponents { n, e }.verify(
                    &sig::RSA_PKCS1_2048_8192_SHA256,
                    msg,
                    signature,
                )
            }
            (Algorithm::RS256, DecodingKeyKind::SecretOrDer(der)) => {
                sig::UnparsedPublicKey::new(&sig::RSA_PKCS1_2048_8192_SHA256, der)
                    .verify(msg, signature)
            }
            (Algorithm::ES256, DecodingKeyKind::SecretOrDer(point)) => {
                sig::UnparsedPublicKey::new(&sig::ECDSA_P256_SHA256_FIXED, point)
                    .verify(msg, signature)
            }
            (Algorithm::EdDSA, DecodingKeyKind::SecretOrDer(x)) => {
                sig::UnparsedPublicKey::new(&sig::ED25519, x).verify(msg, signature)
            }
            _ => return Err(signature::Error::new()),
        };
        verified.map_err(|_| signature::Error::new())
    }
}

impl JwtVerifier for RingVerifier {
    fn algorithm(&self) -> Algorithm {
        self.algorithm
    }
}

/// Signing exists for tests, benches and tools that mint tokens for this gateway; the gateway
/// itself only verifies.
enum RingSigner {
    Rsa(sig::RsaKeyPair),
    Ec(sig::EcdsaKeyPair),
    Ed(sig::Ed25519KeyPair),
}

impl Signer<Vec<u8>> for RingSigner {
    fn try_sign(&self, msg: &[u8]) -> Result<Vec<u8>, signature::Error> {
        let rng = SystemRandom::new();
        match self {
            RingSigner::Rsa(pair) => {
                let mut out = vec![0; pair.public().modulus_len()];
                pair.sign(&sig::RSA_PKCS1_SHA256, &rng, msg, &mut out)
                    .map_err(|_| signature::Error::new())?;
                Ok(out)
            }
            RingSigner::Ec(pair) => pair
                .sign(&rng, msg)
                .map(|s| s.as_ref().to_vec())
                .map_err(|_| signature::Error::new()),
            RingSigner::Ed(pair) => Ok(pair.sign(msg).as_ref().to_vec()),
        }
    }
}

impl JwtSigner for RingSigner {
    fn algorithm(&self) -> Algorithm {
        match self {
            RingSigner::Rsa(_) => Algorithm::RS256,
            RingSigner::Ec(_) => Algorithm::ES256,
            RingSigner::Ed(_) => Algorithm::EdDSA,
        }
    }
}
