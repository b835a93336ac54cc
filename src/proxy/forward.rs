//! What the upstream sees of a request, and what its failures mean to the client: plain
//! functions over headers and errors, called from the proxy's phases.
//!
//! Invariant: the client's credentials and every `X-Mcpwarden-*` it sent are removed before
//! the gateway adds the caller's identity, so the upstream can trust those headers.

use std::net::IpAddr;

use http::HeaderValue;
use pingora::http::RequestHeader;
use pingora::{Error, ErrorSource, ErrorType, Result};

use crate::auth::Identity;
use crate::denial::Denial;
use crate::policy::Upstream;

/// Headers that carry the caller's identity to the upstream.
const IDENTITY_HEADERS: [&str; 3] = [
    "x-mcpwarden-workspace",
    "x-mcpwarden-key",
    "x-mcpwarden-scopes",
];

/// Request headers that must not reach the upstream in this request.
#[derive(Debug, Clone, Copy)]
pub struct Strip {
    /// The gateway answered `Expect: 100-continue` and holds the whole body; an upstream's
    /// own 100 would reach the client as a second interim response.
    pub expect: bool,
}

/// Rewrites the request for the upstream: credentials, forged identity and `Accept-Encoding`
/// out; identity, `X-Forwarded-*`, `Host` and `upstream.headers` in.
pub fn rewrite_request(
    req: &mut RequestHeader,
    upstream: &Upstream,
    identity: &Identity,
    client_ip: Option<IpAddr>,
    strip: Strip,
) -> Result<()> {
    // Every request carries its key in one of these two; the rarer spellings (underscores,
    // forged X-Mcpwarden-*) are looked for afterwards.
    req.remove_header(&http::header::AUTHORIZATION);
    req.remove_header("x-api-key");
    for name in forbidden_headers(req) {
        req.remove_header(&name);
    }
    if strip.expect {
        req.remove_header(&http::header::EXPECT);
    }
    // The response cap and the tools/list filter read and cut bodies: ask for them
    // uncompressed (a body encoded anyway is never cut, only passed or refused whole).
    req.remove_header(&http::header::ACCEPT_ENCODING);
    let who = identity.headers();
    req.insert_header(IDENTITY_HEADERS[0], who.workspace.clone())?;
    req.insert_header(IDENTITY_HEADERS[1], who.key.clone())?;
    req.insert_header(IDENTITY_HEADERS[2], who.scopes.clone())?;
    if let Some(ip) = client_ip {
        let forwarded = match req.headers.get("x-forwarded-for") {
            Some(prior) => {
                let mut v = Vec::with_capacity(prior.len() + 2 + 39);
                v.extend_from_slice(prior.as_bytes());
                v.extend_from_slice(b", ");
                push_ip(&mut v, ip);
                v
            }
            None => {
                let mut v = Vec::with_capacity(39);
                push_ip(&mut v, ip);
                v
            }
        };
        // A prior value is a valid header value, and so are ", " and an address.
        if let Ok(value) = HeaderValue::from_maybe_shared(bytes::Bytes::from(forwarded)) {
            req.insert_header("x-forwarded-for", value)?;
        }
    }
    req.insert_header("x-forwarded-proto", HeaderValue::from_static("http"))?;
    if let Some(host) = req.headers.get(http::header::HOST).cloned() {
        req.insert_header("x-forwarded-host", host)?;
    }
    if !upstream.preserve_host {
        req.insert_header(http::header::HOST, upstream.host_header.clone())?;
    }
    for (name, value) in &upstream.headers {
        req.insert_header(name.clone(), value.clone())?;
    }
    Ok(())
}

/// Appends `ip` as text: IPv4 by hand (the common case, and `Display` goes through the
/// formatting machinery), IPv6 through `Display`.
fn push_ip(out: &mut Vec<u8>, ip: IpAddr) {
    match ip {
        IpAddr::V4(v4) => {
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    out.push(b'.');
                }
                crate::wire::push_decimal(out, u64::from(octet));
            }
        }
        IpAddr::V6(v6) => {
            use std::io::Write;
            let _ = write!(out, "{v6}");
        }
    }
}

/// A request Pingora could not read as HTTP (a malformed chunk, a forbidden header) still
/// gets a JSON-RPC answer; a client that went away gets none.
pub fn client_fault(e: &Error) -> Option<Denial> {
    let gone = matches!(
        e.etype(),
        ErrorType::ConnectionClosed
            | ErrorType::ReadError
            | ErrorType::WriteError
            | ErrorType::ReadTimedout
            | ErrorType::WriteTimedout
    );
    (e.esource() == &ErrorSource::Downstream && !gone)
        .then_some(Denial::BadFraming("the request is not valid HTTP/1.1"))
}

/// Credentials and identity headers from the client, in any spelling: `X_Mcpwarden_Key`
/// reaches CGI-style servers as the same variable as `X-Mcpwarden-Key`, so underscores count
/// as dashes here.
fn forbidden_headers(req: &RequestHeader) -> Vec<http::HeaderName> {
    let forbidden = |name: &&http::HeaderName| {
        let name = name.as_str().as_bytes();
        dashed_eq(name, b"x-api-key")
            || dashed_eq(name, b"authorization")
            || (name.len() >= 12 && dashed_eq(&name[..12], b"x-mcpwarden-"))
    };
    // Most requests carry none: allocate only when there is something to remove.
    if !req.headers.keys().any(|name| forbidden(&name)) {
        return Vec::new();
    }
    req.headers.keys().filter(forbidden).cloned().collect()
}

/// `a == b` where `_` in `a` also matches `-` in `b` (names are already lowercase).
fn dashed_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|(x, y)| x == y || (*x == b'_' && *y == b'-'))
}

/// The wire answer for an upstream failure, or None when the failure is the client's.
pub fn upstream_failure(e: &Error) -> Option<Denial> {
    match e.etype() {
        ErrorType::ConnectTimedout | ErrorType::ReadTimedout | ErrorType::WriteTimedout => {
            Some(Denial::UpstreamTimeout)
        }
        _ if e.esource() == &ErrorSource::Upstream => Some(Denial::UpstreamUnreachable),
        ErrorType::ConnectRefused | ErrorType::ConnectNoRoute | ErrorType::ConnectError => {
            Some(Denial::UpstreamUnreachable)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_written_as_display_writes_them() {
        for ip in [
            "0.0.0.0",
            "127.0.0.1",
            "192.168.10.255",
            "::1",
            "2001:db8::8a2e:370:7334",
        ] {
            let ip: IpAddr = ip.parse().unwrap();
            let mut out = Vec::new();
            push_ip(&mut out, ip);
            assert_eq!(String::from_utf8(out).unwrap(), ip.to_string());
        }
    }

    #[test]
    fn credentials_and_identity_headers_are_forbidden_in_any_spelling() {
        let mut req = RequestHeader::build("POST", b"/mcp", None).unwrap();
        for name in [
            "X-Api-Key",
            "x_api_key",
            "Authorization",
            "X_Mcpwarden_Key",
            "x-mcpwarden-role",
            "accept",
            "x-mcpwardenx",
        ] {
            req.append_header(name.to_owned(), "v").unwrap();
        }
        let mut names: Vec<String> = forbidden_headers(&req)
            .iter()
            .map(|n| n.to_string())
            .collect();
        names.sort();
        assert_eq!(
            names,
            [
                "authorization",
                "x-api-key",
                "x-mcpwarden-role",
                "x_api_key",
                "x_mcpwarden_key"
            ]
        );
    }
}
