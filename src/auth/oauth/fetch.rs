//! HTTP(S) to an issuer: GET a JWK set, POST an introspection request.
//!
//! Invariants: only `http` and `https` URIs; every call has one deadline for connecting, TLS,
//! headers and body together (the connection's task too, so nothing outlives it); a body is
//! read up to a cap and refused past it, whatever `Content-Length` says; redirects are not
//! followed (an issuer's endpoints are configured exactly, and a credentialed POST must not
//! wander). One HTTP/1.1 exchange per connection: fetches are rare (a JWK set at most every
//! 30 s, introspection once per token per minute), so a pool would buy little. TLS is rustls
//! with ring and the system's roots, configured here rather than through a process-wide
//! provider, so nothing else in the process depends on this module having run; the roots
//! are read once, on the blocking pool, never on the worker that made the first request.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use http::{Method, Request, Uri, header};
use http_body_util::{BodyExt as _, Full};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::sync::OnceCell;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::pki_types::ServerName;
use tokio_rustls::rustls::{ClientConfig, RootCertStore};

/// The most a JWK set may weigh (real ones are a few KiB).
pub const MAX_JWKS_BYTES: usize = 256 * 1024;
/// The most an introspection answer may weigh.
pub const MAX_INTROSPECTION_BYTES: usize = 64 * 1024;

const USER_AGENT: &str = concat!("mcpwarden/", env!("CARGO_PKG_VERSION"));

/// GETs `uri` (a JWK set) within `timeout`.
pub async fn get(uri: &str, timeout: Duration) -> Result<Vec<u8>, String> {
    let accept = [(
        header::ACCEPT,
        "application/json, application/jwk-set+json".to_owned(),
    )];
    exchange(
        Method::GET,
        uri,
        &accept,
        Bytes::new(),
        MAX_JWKS_BYTES,
        timeout,
    )
    .await
}

/// POSTs `form` (`application/x-www-form-urlencoded`) to `uri` with HTTP Basic credentials.
pub async fn post_form(
    uri: &str,
    (user, password): (&str, &str),
    form: &[(&str, &str)],
    timeout: Duration,
) -> Result<Vec<u8>, String> {
    // RFC 6749 §2.3.1: the client id and secret are form-encoded before Basic encoding.
    let credentials = format!("{}:{}", form_encode(user), form_encode(password));
    let headers = [
        (
            header::AUTHORIZATION,
            format!("Basic {}", STANDARD.encode(credentials)),
        ),
        (
            header::CONTENT_TYPE,
            "application/x-www-form-urlencoded".to_owned(),
        ),
        (header::ACCEPT, "application/json".to_owned()),
    ];
    let body = Bytes::from(encode_form(form));
    exchange(
        Method::POST,
        uri,
        &headers,
        body,
        MAX_INTROSPECTION_BYTES,
        timeout,
    )
    .await
}

/// Where to connect, checked: scheme, host, port, and the request target.
struct Target {
    https: bool,
    host: String,
    port: u16,
    authority: String,
    path: String,
}

fn target(uri: &str) -> Result<Target, String> {
    let parsed: Uri = uri.parse().map_err(|e| format!("not a URL: {e}"))?;
    let https = match parsed.scheme_str() {
        Some("https") => true,
        Some("http") => false,
        Some(other) => return Err(format!("scheme {other}: only http and https are fetched")),
        None => return Err("not an absolute URL".to_owned()),
    };
    let authority = parsed.authority().ok_or("not an absolute URL")?;
    // `[::1]` in a URL is `::1` to connect to and to name in TLS.
    let host = authority
        .host()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let port = authority.port_u16().unwrap_or(if https { 443 } else { 80 });
    let path = parsed
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_owned();
    Ok(Target {
        https,
        host,
        port,
        authority: authority.as_str().to_owned(),
        path,
    })
}

async fn exchange(
    method: Method,
    uri: &str,
    headers: &[(header::HeaderName, String)],
    body: Bytes,
    max: usize,
    timeout: Duration,
) -> Result<Vec<u8>, String> {
    let target = target(uri)?;
    let mut request = Request::builder()
        .method(method)
        .uri(&target.path)
        .header(header::HOST, &target.authority)
        .header(header::USER_AGENT, USER_AGENT);
    for (name, value) in headers {
        request = request.header(name, value);
    }
    let request = request.body(Full::new(body)).map_err(|e| e.to_string())?;
    let work = async {
        let tcp = TcpStream::connect((target.host.as_str(), target.port))
            .await
            .map_err(|e| format!("cannot connect: {e}"))?;
        if target.https {
            let name = ServerName::try_from(target.host.clone())
                .map_err(|e| format!("not a TLS server name: {e}"))?;
            let tls = TlsConnector::from(tls_config().await?)
                .connect(name, tcp)
                .await
                .map_err(|e| format!("TLS: {e}"))?;
            round_trip(TokioIo::new(tls), request, max, timeout).await
        } else {
            round_trip(TokioIo::new(tcp), request, max, timeout).await
        }
    };
    tokio::time::timeout(timeout, work)
        .await
        .map_err(|_| "timed out".to_owned())?
}

async fn round_trip<T>(
    io: T,
    request: Request<Full<Bytes>>,
    max: usize,
    timeout: Duration,
) -> Result<Vec<u8>, String>
where
    T: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (mut sender, connection) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|e| format!("HTTP: {e}"))?;
    // The connection is driven by its own task, bounded like the exchange.
    tokio::spawn(tokio::time::timeout(timeout, connection));
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| format!("HTTP: {e}"))?;
    let status = response.status();
    if !status.is_success() {
        return Err(format!("HTTP status {status}"));
    }
    let too_big = || format!("body over {} KiB", max / 1024);
    let declared = response.headers().get(header::CONTENT_LENGTH);
    if declared
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
        .is_some_and(|n| n > max as u64)
    {
        return Err(too_big());
    }
    let mut body = response.into_body();
    let mut out = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| format!("HTTP: {e}"))?;
        if let Some(data) = frame.data_ref() {
            if out.len() + data.len() > max {
                return Err(too_big());
            }
            out.extend_from_slice(data);
        }
    }
    Ok(out)
}

/// rustls with ring and the system's root certificates, built once per process. Requests
/// that arrive while it is being built wait for it without blocking their thread.
async fn tls_config() -> Result<Arc<ClientConfig>, String> {
    static CONFIG: OnceCell<Result<Arc<ClientConfig>, String>> = OnceCell::const_new();
    CONFIG.get_or_init(load_tls_config).await.clone()
}

/// Reading the system's certificate files is blocking file I/O (tens of milliseconds, more
/// on a slow disk), and the first HTTPS fetch may come from a proxy worker: it runs on
/// tokio's blocking pool instead.
async fn load_tls_config() -> Result<Arc<ClientConfig>, String> {
    tokio::task::spawn_blocking(build_tls_config)
        .await
        .map_err(|e| format!("loading the system root certificates: {e}"))?
}

fn build_tls_config() -> Result<Arc<ClientConfig>, String> {
    #[cfg(test)]
    tests::BUILT_ON
        .lock()
        .unwrap()
        .push(std::thread::current().id());
    let mut roots = RootCertStore::empty();
    for cert in rustls_native_certs::load_native_certs().certs {
        let _ = roots.add(cert);
    }
    if roots.is_empty() {
        return Err("no system root certificates to check the server's".to_owned());
    }
    // ring, already built for Pingora's rustls, rather than a second crypto library. Newer
    // rustls releases deprecate it for lacking post-quantum key exchange, which fetching
    // public key sets and introspection answers does not need.
    #[allow(deprecated)]
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
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

    /// The threads `build_tls_config` ran on.
    pub(super) static BUILT_ON: std::sync::Mutex<Vec<std::thread::ThreadId>> =
        std::sync::Mutex::new(Vec::new());

    /// A current-thread runtime: its one worker is the test's own thread.
    #[tokio::test]
    async fn the_root_certificates_are_read_off_the_worker_thread() {
        let _ = load_tls_config().await;
        let built_on = BUILT_ON.lock().unwrap().clone();
        assert!(!built_on.is_empty());
        assert!(
            !built_on.contains(&std::thread::current().id()),
            "the system's certificate files were read on the runtime's worker"
        );
    }

    #[test]
    fn form_encoding_escapes_reserved_bytes() {
        assert_eq!(form_encode("a b+c/d=é"), "a+b%2Bc%2Fd%3D%C3%A9");
        assert_eq!(
            encode_form(&[("token", "x.y"), ("k", "&")]),
            "token=x.y&k=%26"
        );
    }

    #[test]
    fn only_absolute_http_and_https_urls_are_fetched() {
        let t = target("https://a.example/jwks?x=1").unwrap();
        assert!(t.https && t.host == "a.example" && t.port == 443 && t.path == "/jwks?x=1");
        let t = target("http://[::1]:8080").unwrap();
        assert!(!t.https && t.host == "::1" && t.port == 8080 && t.path == "/");
        assert_eq!(t.authority, "[::1]:8080");
        let refused = target("ftp://a.example/jwks").err().unwrap();
        assert!(refused.contains("only http and https"), "{refused}");
        assert!(target("file:///etc/passwd").is_err());
        assert!(target("/jwks").is_err());
        assert!(target("not a url").is_err());
    }

    #[tokio::test]
    async fn https_speaks_tls_and_refuses_a_server_that_does_not() {
        use tokio::io::AsyncWriteExt as _;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("https://{}/jwks", listener.local_addr().unwrap());
        tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let _ = socket
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}")
                .await;
        });
        let error = get(&url, Duration::from_secs(2)).await.unwrap_err();
        assert!(error.starts_with("TLS: "), "{error}");
    }
}
