//! Header names the request path looks up on every request, as constants (a `&str` name is
//! parsed and hashed again at every lookup), and header values written without the
//! formatting machinery.

use http::{HeaderName, HeaderValue};

pub static X_API_KEY: HeaderName = HeaderName::from_static("x-api-key");
pub static MCP_SESSION_ID: HeaderName = HeaderName::from_static("mcp-session-id");
pub static MCP_METHOD: HeaderName = HeaderName::from_static("mcp-method");
pub static MCP_NAME: HeaderName = HeaderName::from_static("mcp-name");
pub static RATELIMIT: HeaderName = HeaderName::from_static("ratelimit");
pub static RATELIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");

/// Appends `n` in decimal.
pub fn push_decimal(out: &mut Vec<u8>, n: u64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    let mut n = n;
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[at..]);
}

/// Appends `ip` as text: IPv4 by hand (the common case, and `Display` goes through the
/// formatting machinery), IPv6 through `Display`.
pub fn push_ip(out: &mut Vec<u8>, ip: std::net::IpAddr) {
    match ip {
        std::net::IpAddr::V4(v4) => {
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    out.push(b'.');
                }
                push_decimal(out, u64::from(octet));
            }
        }
        std::net::IpAddr::V6(v6) => {
            use std::io::Write;
            let _ = write!(out, "{v6}");
        }
    }
}

/// `RateLimit: "default";r=<remaining>;t=<reset>` (IETF httpapi draft).
pub fn rate_limit(remaining: u32, reset: u64) -> HeaderValue {
    let mut v = Vec::with_capacity(48);
    v.extend_from_slice(b"\"default\";r=");
    push_decimal(&mut v, u64::from(remaining));
    v.extend_from_slice(b";t=");
    push_decimal(&mut v, reset);
    HeaderValue::from_maybe_shared(bytes::Bytes::from(v)).expect("digits and ASCII")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_written_as_display_writes_them() {
        for n in [0, 7, 10, 99, 1234567890, u64::MAX] {
            let mut out = Vec::new();
            push_decimal(&mut out, n);
            assert_eq!(String::from_utf8(out).unwrap(), n.to_string());
        }
        assert_eq!(rate_limit(87, 8), "\"default\";r=87;t=8");
    }

    #[test]
    fn addresses_are_written_as_display_writes_them() {
        for ip in [
            "0.0.0.0",
            "127.0.0.1",
            "192.168.10.255",
            "::1",
            "2001:db8::8a2e:370:7334",
        ] {
            let ip: std::net::IpAddr = ip.parse().unwrap();
            let mut out = Vec::new();
            push_ip(&mut out, ip);
            assert_eq!(String::from_utf8(out).unwrap(), ip.to_string());
        }
    }
}
