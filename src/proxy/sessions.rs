//! Binds each MCP session id the upstream issues to the identity that received it, without
//! keeping any state.
//!
//! The gateway hands the client `<upstream id>.<tag>`, where the tag is an HMAC-SHA256 (128
//! bits, hex) of the workspace, the session owner (the key id; for an OAuth token, the client
//! and the token's `sub`) and the upstream id under a secret drawn when the process starts. On the way in the tag is checked against the caller's identity in constant
//! time and removed, so the upstream only ever sees its own id. A leaked session id is useless
//! to any other key, and to any other user of the same OAuth client; an id the gateway never sealed — forged, or issued before a restart — is
//! answered 404 like an unknown session, which MCP clients meet by initializing again.
//! Nothing is stored per session, so memory does not grow with sessions and a restart or a
//! DELETE needs no clean-up.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// Hex digits of the tag: 128 bits.
const TAG_HEX: usize = 32;

pub struct SessionSeal {
    secret: [u8; 32],
}

impl std::fmt::Debug for SessionSeal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionSeal(<secret>)")
    }
}

impl SessionSeal {
    /// A seal with a fresh random secret.
    pub fn random() -> Self {
        Self {
            secret: rand::random(),
        }
    }

    /// The session id the client gets for the upstream's `upstream_id`.
    pub fn seal(&self, upstream_id: &str, workspace: &str, key: &str) -> String {
        let tag = hex::encode(self.tag(upstream_id, workspace, key));
        format!("{upstream_id}.{tag}")
    }

    /// The upstream's id inside `client_id` when the gateway sealed it for this identity.
    pub fn open<'a>(&self, client_id: &'a str, workspace: &str, key: &str) -> Option<&'a str> {
        let (upstream_id, tag) = client_id.rsplit_once('.')?;
        if tag.len() != TAG_HEX {
            return None;
        }
        let given = hex::decode(tag).ok()?;
        let expected = self.tag(upstream_id, workspace, key);
        bool::from(given.ct_eq(&expected)).then_some(upstream_id)
    }

    fn tag(&self, upstream_id: &str, workspace: &str, key: &str) -> [u8; TAG_HEX / 2] {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.secret).expect("any key length");
        // Length-prefixed, so no two (workspace, key, id) triples feed the same bytes.
        for part in [workspace, key, upstream_id] {
            mac.update(&(part.len() as u64).to_be_bytes());
            mac.update(part.as_bytes());
        }
        let full = mac.finalize().into_bytes();
        let mut tag = [0u8; TAG_HEX / 2];
        tag.copy_from_slice(&full[..TAG_HEX / 2]);
        tag
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_id_opens_only_for_the_identity_it_was_sealed_for() {
        let seal = SessionSeal::random();
        let id = seal.seal("abc-123", "acme", "full");
        assert_eq!(seal.open(&id, "acme", "full"), Some("abc-123"));
        assert_eq!(seal.open(&id, "acme", "reader"), None);
        assert_eq!(seal.open(&id, "beta", "full"), None);
    }

    #[test]
    fn ids_containing_dots_round_trip() {
        let seal = SessionSeal::random();
        let id = seal.seal("a.b.c", "acme", "full");
        assert_eq!(seal.open(&id, "acme", "full"), Some("a.b.c"));
    }

    #[test]
    fn unsealed_forged_or_foreign_ids_do_not_open() {
        let seal = SessionSeal::random();
        let other = SessionSeal::random();
        let sealed = seal.seal("abc", "acme", "full");
        for id in [
            "abc",
            "abc.",
            "abc.zz",
            &format!("abc.{}", "0".repeat(TAG_HEX)),
            &other.seal("abc", "acme", "full"),
            &sealed.replacen("abc", "abd", 1),
        ] {
            assert_eq!(seal.open(id, "acme", "full"), None, "{id}");
        }
    }

    #[test]
    fn fields_cannot_be_shifted_between_workspace_and_key() {
        let seal = SessionSeal::random();
        let id = seal.seal("s", "ab", "c");
        assert_eq!(seal.open(&id, "a", "bc"), None);
    }
}
