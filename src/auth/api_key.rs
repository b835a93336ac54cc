//! API keys: their format, checksum, generation and hash.
//!
//! A key is 43 ASCII characters: `mcpw_`, 32 random base62 characters, and a 6-character
//! checksum, the CRC-32 (IEEE) of the first 37 characters in base62 (`0-9A-Za-z`, most
//! significant digit first, padded with `0`). The checksum lets secret scanners recognise a
//! key and lets the gateway refuse a mistyped one before any lookup.
//!
//! Security: a key is only ever compared by its SHA-256 (a hash-map lookup, so there is no
//! byte-by-byte comparison whose timing depends on the secret), and [`ApiKey`] prints nothing
//! in `Debug`.

use rand::Rng;
use sha2::{Digest, Sha256};

pub const PREFIX: &str = "mcpw_";
pub const LEN: usize = 43;
const RANDOM_LEN: usize = 32;
const BODY_LEN: usize = PREFIX.len() + RANDOM_LEN; // 37
const CHECKSUM_LEN: usize = LEN - BODY_LEN; // 6
const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// Why a string is not a well-formed key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FormatError {
    #[error("a key starts with `mcpw_`")]
    Prefix,
    #[error("a key is 43 characters long")]
    Length,
    #[error("a key holds only the characters 0-9, A-Z and a-z after `mcpw_`")]
    Charset,
    #[error("the key's checksum does not match (mistyped or truncated?)")]
    Checksum,
}

/// A freshly generated key. It is printed once, to the operator, and never stored.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(String);

impl std::fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ApiKey(<redacted>)")
    }
}

impl ApiKey {
    /// A new key from the operating system's random source.
    pub fn generate() -> Self {
        let mut rng = rand::rng();
        let mut key = String::with_capacity(LEN);
        key.push_str(PREFIX);
        for _ in 0..RANDOM_LEN {
            key.push(BASE62[rng.random_range(0..BASE62.len())] as char);
        }
        let sum = checksum(&key);
        key.push_str(std::str::from_utf8(&sum).expect("base62 is ASCII"));
        Self(key)
    }

    /// The key itself, for the one moment it is shown.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The SHA-256 of the key, as the policy stores it.
    pub fn hash(&self) -> [u8; 32] {
        hash(&self.0)
    }
}

/// True when `value` claims to be a gateway key (rather than an OAuth access token).
pub fn is_key_like(value: &str) -> bool {
    value.starts_with(PREFIX)
}

/// Checks prefix, length, alphabet and checksum without touching any key store.
pub fn check_format(key: &str) -> Result<(), FormatError> {
    if !key.starts_with(PREFIX) {
        return Err(FormatError::Prefix);
    }
    if key.len() != LEN {
        return Err(FormatError::Length);
    }
    if !key.as_bytes()[PREFIX.len()..]
        .iter()
        .all(u8::is_ascii_alphanumeric)
    {
        return Err(FormatError::Charset);
    }
    if checksum(&key[..BODY_LEN]).as_slice() != &key.as_bytes()[BODY_LEN..] {
        return Err(FormatError::Checksum);
    }
    Ok(())
}

/// The 6-character base62 CRC-32 of `body` (the first 37 characters of a key).
pub fn checksum(body: &str) -> [u8; CHECKSUM_LEN] {
    let mut n = crc32fast::hash(body.as_bytes());
    let mut out = [b'0'; CHECKSUM_LEN];
    for slot in out.iter_mut().rev() {
        *slot = BASE62[(n % 62) as usize];
        n /= 62;
    }
    out
}

/// SHA-256 of the whole key string.
pub fn hash(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

/// The policy's `sha256:` value for `key`: 64 lowercase hex digits.
pub fn hash_hex(key: &str) -> String {
    hex::encode(hash(key))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_are_well_formed_and_distinct() {
        let a = ApiKey::generate();
        let b = ApiKey::generate();
        assert_eq!(a.expose().len(), LEN);
        assert!(a.expose().starts_with(PREFIX));
        assert_eq!(check_format(a.expose()), Ok(()));
        assert_ne!(a, b);
    }

    #[test]
    fn checksum_is_crc32_in_padded_base62() {
        // CRC-32 of the empty string is 0, so its checksum is all padding.
        assert_eq!(&checksum(""), b"000000");
        // CRC-32("123456789") = 0xCBF43926 = 3421780262 = 3:47:27:45:38:26:... in base62.
        let n: u64 = 0xCBF4_3926;
        let mut digits = Vec::new();
        let mut m = n;
        while m > 0 {
            digits.push(BASE62[(m % 62) as usize]);
            m /= 62;
        }
        while digits.len() < 6 {
            digits.push(b'0');
        }
        digits.reverse();
        assert_eq!(checksum("123456789").as_slice(), digits.as_slice());
    }

    #[test]
    fn mistyped_keys_are_refused_by_format() {
        let key = ApiKey::generate();
        let k = key.expose();
        assert_eq!(
            check_format(&k.replacen("mcpw_", "mcpx_", 1)),
            Err(FormatError::Prefix)
        );
        assert_eq!(check_format(&k[..42]), Err(FormatError::Length));
        assert_eq!(
            check_format(&format!("{}!", &k[..42])),
            Err(FormatError::Charset)
        );
        // Change one random character: the checksum no longer matches.
        let mut bytes = k.as_bytes().to_vec();
        bytes[10] = if bytes[10] == b'a' { b'b' } else { b'a' };
        let typo = String::from_utf8(bytes).unwrap();
        assert_eq!(check_format(&typo), Err(FormatError::Checksum));
    }

    #[test]
    fn non_ascii_input_is_refused_without_panicking() {
        let s = format!("mcpw_{}", "é".repeat(19)); // 43 bytes, not ASCII
        assert!(check_format(&s).is_err());
    }

    #[test]
    fn debug_never_prints_the_key() {
        let key = ApiKey::generate();
        assert!(!format!("{key:?}").contains(key.expose()));
    }

    #[test]
    fn hash_hex_is_64_lowercase_hex_digits() {
        let h = hash_hex("mcpw_example");
        assert_eq!(h.len(), 64);
        assert!(
            h.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        );
    }
}
