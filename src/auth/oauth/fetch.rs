//! HTTP(S) to an issuer: GET a JWK set, POST an introspection request.
//!
//! Invariants: only `http` and `https` URIs; every call has a deadline (connect, headers and
//! body together); a body is read up to a cap and refused past it, whatever
//! `Content-Length` says; redirects are not followed (an issuer's endpoints are configured
//! exactly, and a credentialed POST must not wander). TLS is rustls with the ring provider
//! Pingora already installs, and the system's roots.

use std::sync::OnceLock;
use std::time::Duration;

use reqwest::{Client, Response, Url};

/// The most a JWK set may weigh (real ones are a few KiB).
pub const MAX_JWKS_BYTES: usize = 256 * 1024;
/// The most an introspection answer may weigh.
pub const MAX_INTROSPECTION_BYTES: usize = 64 * 1024;

/// One client for the process: it pools connections across reloads.
fn client() -> Result<&'static Client, String> {
    static CLIENT: OnceLock<Result<Client, String>> = OnceLock::new();
    CLIENT
        .get_or_init(|| {
            pingora::tls::install_default_crypto_provider();
            Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .user_agent(concat!("mcpwarden/", env!("CARGO_PKG_VERSION")))
                .build()
                .map_err(|e| format!("cannot build the HTTP client: {e}"))
        })
        .as_ref()
        .map_err(Clone::clone)
}

fn http_url(uri: &str) -> Result<Url, String> {
    let url = Url::parse(uri).map_err(|e| format!("not a URL: {e}"))?;
    match url.scheme() {
        "http" | "https" => Ok(url),
        other => Err(format!("scheme {other}: only http and https are fetched")),
    }
}

/// GETs `uri` (a JWK set) within `timeout`.
pub async fn get(uri: &str, timeout: Duration) -> Result<Vec<u8>, String> {
    let request = client()?
        .get(http_url(uri)?)
        .header(
            http::header::ACCEPT,
            "application/json, application/jwk-set+json",
        )
        .timeout(timeout);
    let response = request.send().await.map_err(describe)?;
    body(response, MAX_JWKS_BYTES).await
}

/// POSTs `form` (`application/x-www-form-urlencoded`) to `uri` with HTTP Basic credentials.
pub async fn post_form(
    uri: &str,
    (user, password): (&str, &str),
    form: &[(&str, &str)],
    timeout: Duration,
) -> Result<Vec<u8>, String> {
    let encoded = encode_form(form);
    let request = client()?
        .post(http_url(uri)?)
        .basic_auth(form_encode(user), Some(form_encode(password)))
        .header(
            http::header::CONTENT_TYPE,
            "application/x-www-form-urlencoded",
        )
        .header(http::header::ACCEPT, "application/json")
        .body(encoded)
        .timeout(timeout);
    let response = request.send().await.map_err(describe)?;
    body(response, MAX_INTROSPECTION_BYTES).await
}

/// A 2xx body up to `max` bytes.
async fn body(mut response: Response, max: usize) -> Result<Vec<u8>, String> {
    let status = response.status();
    if !status.is_success() {
        return Err(format!("HTTP status {status}"));
    }
    if response
        .content_length()
        .is_some_and(|len| len > max as u64)
    {
        return Err(format!("body over {} KiB", max / 1024));
    }
    let mut out = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(describe)? {
        if out.len() + chunk.len() > max {
            return Err(format!("body over {} KiB", max / 1024));
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

/// reqwest's error with its cause chain (its own text alone often says only "error sending
/// request").
fn describe(error: reqwest::Error) -> String {
    let mut text = if error.is_timeout() {
        "timed out".to_owned()
    } else {
        error.to_string()
    };
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

fn encode_form(form: &[(&str, &str)]) -> String {
    let mut out = String::new();
    for (name, value) in form {
        if !out.is_empty() {
            out.push('&');
        }
        out.push_str(&form_encode(name));
        out.push('=');
        out.push_str(&form_encode(value));
    }
    out
}

/// `application/x-www-form-urlencoded` encoding (also what RFC 6749 §2.3.1 asks of client
/// credentials before Basic authentication).
pub fn form_encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'*' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => {
                out.push('%');
                out.push(char::from(b"0123456789ABCDEF"[usize::from(b >> 4)]));
                out.push(char::from(b"0123456789ABCDEF"[usize::from(b & 15)]));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_encoding_escapes_reserved_bytes() {
        assert_eq!(form_encode("a b+c/d=é"), "a+b%2Bc%2Fd%3D%C3%A9");
        assert_eq!(
            encode_form(&[("token", "x.y"), ("k", "&")]),
            "token=x.y&k=%26"
        );
    }

    #[test]
    fn only_http_and_https_are_fetched() {
        assert!(http_url("https://a.example/jwks").is_ok());
        assert!(http_url("http://127.0.0.1:1/jwks").is_ok());
        assert!(
            http_url("file:///etc/passwd")
                .unwrap_err()
                .contains("only http and https")
        );
        assert!(http_url("not a url").is_err());
    }
}
