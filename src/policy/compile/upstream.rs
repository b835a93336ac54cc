//! `upstream:` — the URL split into scheme, host and port and resolved now (Pingora's
//! `HttpPeer::new` would panic on a name it cannot resolve), timeouts, and headers with
//! `${VAR}` read from the environment.
//!
//! Security: a header value may hold a secret from the environment, so no diagnostic ever
//! quotes a value after substitution.

use std::net::ToSocketAddrs;
use std::time::Duration;

use http::{HeaderName, HeaderValue, Uri};
use serde_saphyr::Spanned;

use super::super::Upstream;
use super::super::schema::{DurationSpec, UpstreamSpec};
use super::{Cx, Env};

/// Headers the gateway owns on the way to the upstream; `upstream.headers` may not set them.
const RESERVED_HEADERS: [&str; 8] = [
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "upgrade",
    "x-mcpwarden-workspace",
    "x-mcpwarden-key",
    "x-mcpwarden-scopes",
];

pub(crate) fn compile(cx: &mut Cx, spec: &UpstreamSpec, env: Env) -> Option<Upstream> {
    let before = cx.diagnostics.len();
    let target = match parse_url(&spec.url.value) {
        Ok(t) => Some(t),
        Err(m) => {
            cx.error(spec.url.referenced, "upstream.url", m);
            None
        }
    };
    let addr = target.as_ref().and_then(|t| {
        let resolved = (t.host.as_str(), t.port)
            .to_socket_addrs()
            .map(|mut addrs| addrs.next());
        match resolved {
            Ok(Some(addr)) => Some(addr),
            Ok(None) => {
                cx.error(
                    spec.url.referenced,
                    "upstream.url",
                    format!("host {:?} has no address", t.host),
                );
                None
            }
            Err(e) => {
                cx.error(
                    spec.url.referenced,
                    "upstream.url",
                    format!("cannot resolve host {:?}: {e}", t.host),
                );
                None
            }
        }
    });
    let connect_timeout = duration(cx, &spec.connect_timeout, "upstream.connect_timeout", 2);
    let idle_timeout = duration(cx, &spec.idle_timeout, "upstream.idle_timeout", 300);

    let mut headers = Vec::with_capacity(spec.headers.0.len());
    for (name, value) in &spec.headers.0 {
        let path = format!("upstream.headers.{}", name.value);
        let Ok(header) = HeaderName::from_bytes(name.value.as_bytes()) else {
            cx.error(name.referenced, &path, "not a valid HTTP header name");
            continue;
        };
        if RESERVED_HEADERS.contains(&header.as_str()) {
            cx.error(
                name.referenced,
                &path,
                "this header is set by the gateway and cannot be configured",
            );
            continue;
        }
        let text = match substitute(&value.value, env) {
            Ok(text) => text,
            Err(m) => {
                cx.error(value.referenced, &path, m);
                continue;
            }
        };
        match HeaderValue::from_str(&text) {
            Ok(mut v) => {
                v.set_sensitive(true);
                headers.push((header, v));
            }
            Err(_) => cx.error(
                value.referenced,
                &path,
                "not a valid HTTP header value after ${VAR} substitution (visible ASCII, spaces and tabs only)",
            ),
        }
    }

    if cx.diagnostics.len() != before {
        return None;
    }
    let (target, addr) = (target?, addr?);
    // A URL's authority is visible ASCII, so it is a valid header value.
    let host_header = HeaderValue::from_str(&target.authority).ok()?;
    Some(Upstream {
        tls: target.tls,
        host_header,
        authority: target.authority,
        host: target.host,
        port: target.port,
        addr,
        connect_timeout: connect_timeout?,
        idle_timeout: idle_timeout?,
        preserve_host: spec.preserve_host,
        headers,
    })
}

fn duration(
    cx: &mut Cx,
    spec: &Option<Spanned<DurationSpec>>,
    path: &str,
    default_secs: u64,
) -> Option<Duration> {
    let Some(d) = spec else {
        return Some(Duration::from_secs(default_secs));
    };
    match d.value.parse() {
        Ok(v) if v.is_zero() => {
            cx.error(d.referenced, path, "must be longer than 0");
            None
        }
        Ok(v) => Some(v),
        Err(m) => {
            cx.error(d.referenced, path, m);
            None
        }
    }
}

/// An upstream URL taken apart.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Target {
    pub tls: bool,
    /// Without IPv6 brackets: what the resolver and SNI take.
    pub host: String,
    pub port: u16,
    /// `host` or `host:port` (port only when not the scheme's default), brackets kept.
    pub authority: String,
}

/// `http(s)://host[:port]` with no path beyond `/`, no query and no credentials.
pub(crate) fn parse_url(url: &str) -> Result<Target, String> {
    let uri: Uri = url
        .parse()
        .map_err(|e| format!("invalid URL {url:?}: {e}"))?;
    let tls = match uri.scheme_str() {
        Some("http") => false,
        Some("https") => true,
        _ => {
            return Err(format!(
                "invalid URL {url:?}: the scheme must be http:// or https://"
            ));
        }
    };
    let authority = uri
        .authority()
        .ok_or_else(|| format!("invalid URL {url:?}: a host is required"))?;
    if authority.as_str().contains('@') {
        return Err(format!(
            "invalid URL {url:?}: credentials in the URL are not supported (use upstream.headers)"
        ));
    }
    let written_host = authority.host();
    if written_host.is_empty() {
        return Err(format!("invalid URL {url:?}: a host is required"));
    }
    if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
        return Err(format!(
            "invalid URL {url:?}: give only scheme, host and port; the request path passes through unchanged"
        ));
    }
    let default_port = if tls { 443 } else { 80 };
    let port = authority.port_u16().unwrap_or(default_port);
    let authority = if port == default_port {
        written_host.to_owned()
    } else {
        format!("{written_host}:{port}")
    };
    let host = written_host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    Ok(Target {
        tls,
        host,
        port,
        authority,
    })
}

/// `server.public_url`: an absolute `http(s)` URL.
pub(crate) fn check_public_url(url: &str) -> Result<String, String> {
    let uri: Uri = url
        .parse()
        .map_err(|e| format!("invalid URL {url:?}: {e}"))?;
    if !matches!(uri.scheme_str(), Some("http" | "https"))
        || uri.authority().is_none_or(|a| a.host().is_empty())
    {
        return Err(format!(
            "invalid URL {url:?}: an absolute http:// or https:// URL is required"
        ));
    }
    Ok(url.to_owned())
}

/// Replaces every `${NAME}` with the variable's value; a missing variable is an error.
/// A `$` not followed by `{` is kept as it is.
pub(crate) fn substitute(text: &str, env: Env) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("${") {
        out.push_str(&rest[..at]);
        let after = &rest[at + 2..];
        let end = after
            .find('}')
            .ok_or_else(|| "unterminated ${ (write ${NAME})".to_owned())?;
        let name = &after[..end];
        let valid = !name.is_empty()
            && !name.starts_with(|c: char| c.is_ascii_digit())
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            return Err(format!("invalid variable name {name:?} in ${{...}}"));
        }
        let value = env(name).ok_or_else(|| format!("environment variable {name} is not set"))?;
        out.push_str(&value);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}
