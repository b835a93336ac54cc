//! What the upstream sees of a request, and what its failures mean to the client: plain
//! functions over headers and errors, called from the proxy's phases.
//!
//! Invariant: the client's credentials and every `X-Mcpwarden-*` it sent are removed before
//! the gateway adds the caller's identity, so the upstream can trust those headers.

use std::net::IpAddr;

use http::{HeaderMap, HeaderName, HeaderValue};
use pingora::http::RequestHeader;
use pingora::{Error, ErrorSource, ErrorType, Result};

use crate::auth::Identity;
use crate::denial::Denial;
use crate::policy::Upstream;

/// Request headers that must not reach the upstream in this request.
#[derive(Debug, Clone, Copy)]
pub struct Strip {
    /// The gateway reads the whole body itself (read in `request_filter`, or held back) and
    /// answers `Expect: 100-continue` for it; an upstream's own 100 would reach the client as
    /// a second interim response.
    pub expect: bool,
}

/// Rewrites the request for the upstream: credentials, forged identity and `Accept-Encoding`
/// out; identity, `X-Forwarded-*`, `Host` and `upstream.headers` in; then `more` (the
/// caller's own additions) over the same map.
///
/// The headers are edited as a plain `http::HeaderMap`, outside Pingora's case-preserving
/// map: Pingora's own insert parses the name and updates two maps on every call (about 2,000
/// instructions a header, the largest single cost of the request path). The upstream
/// therefore receives header names in canonical case, which HTTP/1.1 allows.
pub fn rewrite_request(
    req: &mut RequestHeader,
    upstream: &Upstream,
    identity: &Identity,
    client_ip: Option<IpAddr>,
    strip: Strip,
    more: impl FnOnce(&mut HeaderMap),
) -> Result<()> {
    // A request-target that is not UTF-8 lives beside the URI; carry it over.
    let raw_target = (!req.raw_path_is_utf8()).then(|| req.raw_path().to_vec());
    let placeholder = RequestHeader::from(http::Request::new(()).into_parts().0);
    let mut parts = http::request::Parts::from(std::mem::replace(req, placeholder));
    rewrite_headers(&mut parts.headers, upstream, identity, client_ip, strip);
    more(&mut parts.headers);
    *req = RequestHeader::from(parts);
    if let Some(raw) = raw_target {
        req.set_raw_path(&raw)?;
    }
    Ok(())
}

static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
static IDENTITY: [HeaderName; 3] = [
    HeaderName::from_static("x-mcpwarden-workspace"),
    HeaderName::from_static("x-mcpwarden-key"),
    HeaderName::from_static("x-mcpwarden-scopes"),
];

/// [`rewrite_request`] over the header map.
fn rewrite_headers(
    headers: &mut HeaderMap,
    upstream: &Upstream,
    identity: &Identity,
    client_ip: Option<IpAddr>,
    strip: Strip,
) {
    // Room for what is added below, so the map grows at most once.
    headers.reserve(8);
    // Every request carries its key in one of these two; the rarer spellings (underscores,
    // forged X-Mcpwarden-*) are looked for afterwards.
    headers.remove(http::header::AUTHORIZATION);
    headers.remove(&crate::wire::X_API_KEY);
    for name in forbidden_headers(headers) {
        headers.remove(name);
    }
    if strip.expect {
        headers.remove(http::header::EXPECT);
    }
    // The response cap and the tools/list filter read and cut bodies: ask for them
    // uncompressed (a body encoded anyway is never cut, only passed or refused whole).
    headers.remove(http::header::ACCEPT_ENCODING);
    let who = identity.headers();
    headers.insert(IDENTITY[0].clone(), who.workspace.clone());
    headers.insert(IDENTITY[1].clone(), who.key.clone());
    headers.insert(IDENTITY[2].clone(), who.scopes.clone());
    if let Some(ip) = client_ip {
        let mut forwarded = Vec::with_capacity(64);
        if let Some(prior) = headers.get(&X_FORWARDED_FOR) {
            forwarded.extend_from_slice(prior.as_bytes());
            forwarded.extend_from_slice(b", ");
        }
        crate::wire::push_ip(&mut forwarded, ip);
        // A prior value is a valid header value, and so are ", " and an address.
        if let Ok(value) = HeaderValue::from_maybe_shared(bytes::Bytes::from(forwarded)) {
            headers.insert(X_FORWARDED_FOR.clone(), value);
        }
    }
    headers.insert(X_FORWARDED_PROTO.clone(), HeaderValue::from_static("http"));
    if let Some(host) = headers.get(http::header::HOST).cloned() {
        headers.insert(X_FORWARDED_HOST.clone(), host);
    }
    if !upstream.preserve_host {
        headers.insert(http::header::HOST, upstream.host_header.clone());
    }
    for (name, value) in &upstream.headers {
        headers.insert(name.clone(), value.clone());
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
fn forbidden_headers(headers: &HeaderMap) -> Vec<HeaderName> {
    let forbidden = |name: &&HeaderName| {
        let name = name.as_str().as_bytes();
        dashed_eq(name, b"x-api-key")
            || dashed_eq(name, b"authorization")
            || (name.len() >= 12 && dashed_eq(&name[..12], b"x-mcpwarden-"))
    };
    // Most requests carry none: allocate only when there is something to remove.
    if !headers.keys().any(|name| forbidden(&name)) {
        return Vec::new();
    }
    headers.keys().filter(forbidden).cloned().collect()
}

/// `a == b` where `_` in `a` also matches `-` in `b` (names are already lowercase).
fn dashed_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|(x, y)| x == y || (*x == b'_' && *y == b'-'))
}

/// The wire answer for an upstream failure, or None when the failure is the client's.
///
/// A read or write timeout is the upstream's only when its source is: a client that stalls
/// while sending a body the gateway holds times out on Pingora's downstream read, and is not
/// an upstream that timed out.
pub fn upstream_failure(e: &Error) -> Option<Denial> {
    let upstream = e.esource() == &ErrorSource::Upstream;
    match e.etype() {
        // Only the upstream is ever connected to.
        ErrorType::ConnectTimedout => Some(Denial::UpstreamTimeout),
        ErrorType::ReadTimedout | ErrorType::WriteTimedout if upstream => {
            Some(Denial::UpstreamTimeout)
        }
        _ if upstream => Some(Denial::UpstreamUnreachable),
        ErrorType::ConnectRefused | ErrorType::ConnectNoRoute | ErrorType::ConnectError => {
            Some(Denial::UpstreamUnreachable)
        }
        _ => None,
    }
}

/// The `kind` of `mcpwarden_upstream_errors_total` for an upstream failure the gateway
/// answered itself (`None` for any other refusal).
pub fn failure_kind(denial: &Denial) -> Option<&'static str> {
    match denial {
        Denial::UpstreamTimeout => Some("timeout"),
        Denial::UpstreamUnreachable => Some("connect"),
        _ => None,
    }
}

/// The `kind` of `mcpwarden_upstream_errors_total` for a failure after the client's answer
/// began: `timeout` or `reset` when the upstream failed, `None` when the failure is the
/// client's, or when the upstream had answered 5xx — counted as `status_5xx` already, and one
/// failing answer is one upstream error.
pub fn mid_response_kind(e: &Error, upstream_status: Option<u16>) -> Option<&'static str> {
    if upstream_status.is_some_and(|status| status >= 500) {
        return None;
    }
    match upstream_failure(e)? {
        Denial::UpstreamTimeout => Some("timeout"),
        _ => Some("reset"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(etype: ErrorType, source: ErrorSource) -> Box<Error> {
        let mut e = Error::explain(etype, "test");
        match source {
            ErrorSource::Upstream => e.as_up(),
            ErrorSource::Downstream => e.as_down(),
            _ => {}
        }
        e
    }

    #[test]
    fn a_client_that_stalls_is_not_an_upstream_timeout() {
        for etype in [ErrorType::ReadTimedout, ErrorType::WriteTimedout] {
            let client = error(etype.clone(), ErrorSource::Downstream);
            assert_eq!(upstream_failure(&client), None);
            // Nor is it answered: the client is the one not talking.
            assert_eq!(client_fault(&client), None);
            assert_eq!(mid_response_kind(&client, Some(200)), None);
            let upstream = error(etype, ErrorSource::Upstream);
            assert_eq!(upstream_failure(&upstream), Some(Denial::UpstreamTimeout));
        }
        let connect = error(ErrorType::ConnectTimedout, ErrorSource::Upstream);
        assert_eq!(upstream_failure(&connect), Some(Denial::UpstreamTimeout));
        let refused = error(ErrorType::ConnectRefused, ErrorSource::Upstream);
        assert_eq!(
            upstream_failure(&refused),
            Some(Denial::UpstreamUnreachable)
        );
    }

    #[test]
    fn a_failure_mid_response_is_counted_by_its_kind_and_once() {
        let stalled = error(ErrorType::ReadTimedout, ErrorSource::Upstream);
        assert_eq!(mid_response_kind(&stalled, Some(200)), Some("timeout"));
        let closed = error(ErrorType::ConnectionClosed, ErrorSource::Upstream);
        assert_eq!(mid_response_kind(&closed, Some(200)), Some("reset"));
        // A 5xx is counted as `status_5xx` when its head arrives; not twice.
        assert_eq!(mid_response_kind(&closed, Some(502)), None);
        assert_eq!(mid_response_kind(&stalled, Some(500)), None);
        let client_gone = error(ErrorType::ConnectionClosed, ErrorSource::Downstream);
        assert_eq!(mid_response_kind(&client_gone, Some(200)), None);
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
        let mut names: Vec<String> = forbidden_headers(&req.headers)
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
