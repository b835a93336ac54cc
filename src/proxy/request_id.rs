//! The request id: the client's `X-Request-Id` when it is one short visible-ASCII value,
//! else one the gateway makes. The upstream receives it, the client gets it back on every
//! answer (the upstream's and the gateway's own), and the access log names the request by it,
//! so one id follows a request through client, gateway and server logs.
//!
//! Invariant: the id is at most [`MAX_LEN`] bytes of visible ASCII (0x21–0x7E), so it is a
//! valid header value and cannot break a log line.

use http::{HeaderMap, HeaderName, HeaderValue};

pub static HEADER: HeaderName = HeaderName::from_static("x-request-id");

/// Longer ids are replaced: 128 fits a UUID, a W3C trace id and most vendors' formats.
pub const MAX_LEN: usize = 128;

/// A request's id, and whether the upstream must be told it (the client sent none, or one
/// that was replaced).
#[derive(Debug, Clone)]
pub struct RequestId {
    pub value: HeaderValue,
    pub generated: bool,
}

impl RequestId {
    /// The client's id, else a new one.
    pub fn of(headers: &HeaderMap) -> Self {
        let mut values = headers.get_all(&HEADER).iter();
        match (values.next(), values.next()) {
            (Some(value), None) if acceptable(value.as_bytes()) => Self {
                value: value.clone(),
                generated: false,
            },
            _ => Self::generate(),
        }
    }

    /// 128 random bits as 32 lowercase hex digits.
    pub fn generate() -> Self {
        let mut hex = [0u8; 32];
        let bits: u128 = rand::random();
        for (i, digit) in hex.iter_mut().enumerate() {
            *digit = b"0123456789abcdef"[((bits >> (124 - 4 * i)) & 0xf) as usize];
        }
        Self {
            value: HeaderValue::from_bytes(&hex).expect("hex digits are a valid header value"),
            generated: true,
        }
    }

    pub fn as_bytes(&self) -> &[u8] {
        self.value.as_bytes()
    }
}

fn acceptable(id: &[u8]) -> bool {
    (1..=MAX_LEN).contains(&id.len()) && id.iter().all(|b| (0x21..=0x7e).contains(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(values: &[&[u8]]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for v in values {
            map.append(HEADER.clone(), HeaderValue::from_bytes(v).unwrap());
        }
        map
    }

    #[test]
    fn a_short_visible_ascii_id_from_the_client_is_kept() {
        let id = RequestId::of(&headers(&[b"req-42_abc.DEF:1/2"]));
        assert_eq!(id.as_bytes(), b"req-42_abc.DEF:1/2");
        assert!(!id.generated);
        let longest = [b'a'; MAX_LEN];
        assert!(!RequestId::of(&headers(&[&longest])).generated);
    }

    #[test]
    fn a_missing_repeated_long_or_odd_id_is_replaced_by_a_new_one() {
        let too_long = [b'a'; MAX_LEN + 1];
        for map in [
            HeaderMap::new(),
            headers(&[b"a", b"b"]),
            headers(&[&too_long]),
            headers(&[b""]),
            headers(&[b"has space"]),
            headers(&[b"tab\there"]),
            headers(&[b"caf\xc3\xa9"]),
        ] {
            let id = RequestId::of(&map);
            assert!(id.generated, "{map:?}");
            assert_eq!(id.as_bytes().len(), 32);
            assert!(id.as_bytes().iter().all(|b| b.is_ascii_hexdigit()));
        }
    }

    #[test]
    fn generated_ids_differ() {
        assert_ne!(
            RequestId::generate().as_bytes(),
            RequestId::generate().as_bytes()
        );
    }
}
