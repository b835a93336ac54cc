//! The URL rules of `oauth:`: absolute `http(s)` URLs with a host, no credentials and no
//! fragment; `https` everywhere, plain `http` only for loopback hosts: where clients are sent
//! (the resource, authorization servers) and where the gateway fetches from (`jwks_uri`,
//! `introspection_endpoint`: whoever can answer a plain-http JWKS fetch can mint tokens).

use std::net::IpAddr;

use http::Uri;

/// Scheme, lowercase host and port (the scheme's default when not written).
pub(super) fn origin(uri: &Uri) -> (String, String, u16) {
    let scheme = uri.scheme_str().unwrap_or("").to_ascii_lowercase();
    let default = if scheme == "https" { 443 } else { 80 };
    let (host, port) = uri.authority().map_or((String::new(), default), |a| {
        (
            a.host().to_ascii_lowercase(),
            a.port_u16().unwrap_or(default),
        )
    });
    (scheme, host, port)
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Web {
    /// `https`, or `http` for a loopback host (tests and local use); no query.
    HttpsOrLoopback,
    /// The same, with a query allowed: a URL the gateway fetches from.
    Fetched,
}

/// An absolute URL with a host, no credentials, no fragment, `https` unless the host is
/// loopback; with [`Web::HttpsOrLoopback`] also no query (RFC 8707 §2: a resource
/// identifier should have none, and the metadata URL could not carry it).
pub(super) fn web_url(text: &str, web: Web) -> Result<Uri, String> {
    let uri: Uri = text
        .parse()
        .map_err(|e| format!("invalid URL {text:?}: {e}"))?;
    let scheme = uri.scheme_str();
    if !matches!(scheme, Some("http" | "https"))
        || uri.authority().is_none_or(|a| a.host().is_empty())
    {
        return Err(format!(
            "invalid URL {text:?}: an absolute http:// or https:// URL is required"
        ));
    }
    if uri.authority().is_some_and(|a| a.as_str().contains('@')) {
        return Err(format!(
            "invalid URL {text:?}: credentials in the URL are not allowed"
        ));
    }
    // `http::Uri` drops a fragment silently; the text still has it.
    if text.contains('#') {
        return Err(format!(
            "invalid URL {text:?}: a fragment (#…) is not allowed"
        ));
    }
    if scheme == Some("http") && !is_loopback(&uri) {
        return Err(format!(
            "invalid URL {text:?}: https:// is required (http:// only for loopback hosts)"
        ));
    }
    if web == Web::HttpsOrLoopback && uri.query().is_some() {
        return Err(format!("invalid URL {text:?}: a query (?…) is not allowed"));
    }
    Ok(uri)
}

/// `localhost`, 127.0.0.0/8 or `::1`.
fn is_loopback(uri: &Uri) -> bool {
    let host = uri.host().unwrap_or("");
    host.eq_ignore_ascii_case("localhost")
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}
