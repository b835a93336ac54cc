//! A bare Pingora pass-through: the floor of what any Pingora gateway costs.
//!
//! No checks, no header changes, no logging: `upstream_peer` and nothing else, so the
//! difference between this and `mcpwarden run` in `benches/e2e.sh` is mcpwarden's own work.
//! Upstream connections are pooled by Pingora as usual (plain HTTP/1.1, keep-alive).
//!
//! Usage: `bare_proxy LISTEN UPSTREAM THREADS [--read-timeout SECS] [--contract]`, e.g.
//! `bare_proxy 127.0.0.1:8081 127.0.0.1:3001 1`.
//! - `--read-timeout SECS`: the upstream reads get Pingora's read timeout, as every
//!   production proxy sets one (mcpwarden's is `upstream.idle_timeout`): a timer per read
//!   that waits, part of what Pingora costs once a proxy gives up on a stalled upstream.
//! - `--contract`: still no checks, but what the contract asks of every forwarded request on
//!   the wire, done the cheapest way: the read timeout (300 s unless given), the credentials
//!   removed, `X-Forwarded-For`/`-Proto`/`-Host` and the three `X-Mcpwarden-*` identity
//!   headers added (fixed values), `Host` set to the upstream's authority. The floor of any
//!   gateway that keeps the contract, whatever it checks.

use std::net::SocketAddr;

use async_trait::async_trait;
use http::{HeaderName, HeaderValue};
use pingora::http::RequestHeader;
use pingora::proxy::{ProxyHttp, Session, http_proxy_service};
use pingora::server::Server;
use pingora::server::configuration::ServerConf;
use pingora::upstreams::peer::HttpPeer;

struct Bare {
    /// Parsed once at start: `HttpPeer::new` with a string would parse it on every request
    /// (and panic on a bad one), which is not part of any gateway's floor.
    upstream: SocketAddr,
    read_timeout: Option<std::time::Duration>,
    /// `--contract`: the upstream's authority, for `Host`.
    contract: Option<HeaderValue>,
}

/// The headers the contract adds to every forwarded request (the client address is added
/// per request).
static ADDED: [(HeaderName, HeaderValue); 4] = [
    (
        HeaderName::from_static("x-forwarded-proto"),
        HeaderValue::from_static("http"),
    ),
    (
        HeaderName::from_static("x-mcpwarden-workspace"),
        HeaderValue::from_static("bench"),
    ),
    (
        HeaderName::from_static("x-mcpwarden-key"),
        HeaderValue::from_static("bench"),
    ),
    (
        HeaderName::from_static("x-mcpwarden-scopes"),
        HeaderValue::from_static("crm:read"),
    ),
];
static X_API_KEY: HeaderName = HeaderName::from_static("x-api-key");
static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");

#[async_trait]
impl ProxyHttp for Bare {
    type CTX = ();

    fn new_ctx(&self) -> Self::CTX {}

    async fn upstream_peer(
        &self,
        _session: &mut Session,
        _ctx: &mut Self::CTX,
    ) -> pingora::Result<Box<HttpPeer>> {
        let mut peer = HttpPeer::new(self.upstream, false, String::new());
        peer.options.read_timeout = self.read_timeout;
        Ok(Box::new(peer))
    }

    async fn upstream_request_filter(
        &self,
        session: &mut Session,
        req: &mut RequestHeader,
        _ctx: &mut Self::CTX,
    ) -> pingora::Result<()> {
        let Some(authority) = &self.contract else {
            return Ok(());
        };
        // Edited as a plain `http::HeaderMap`: Pingora's own insert costs ~2,000 instructions
        // a header (as in mcpwarden's `forward::rewrite_request`).
        let placeholder = RequestHeader::from(http::Request::new(()).into_parts().0);
        let mut parts = http::request::Parts::from(std::mem::replace(req, placeholder));
        let headers = &mut parts.headers;
        headers.reserve(ADDED.len() + 2);
        headers.remove(http::header::AUTHORIZATION);
        headers.remove(&X_API_KEY);
        for (name, value) in &ADDED {
            headers.insert(name.clone(), value.clone());
        }
        if let Some(ip) = session.client_addr().and_then(|a| a.as_inet()) {
            // Written as mcpwarden writes it (by hand, not through `Display`).
            let mut text = Vec::with_capacity(64);
            mcpwarden::wire::push_ip(&mut text, ip.ip());
            if let Ok(value) = HeaderValue::from_maybe_shared(bytes::Bytes::from(text)) {
                headers.insert(X_FORWARDED_FOR.clone(), value);
            }
        }
        if let Some(host) = headers.get(http::header::HOST).cloned() {
            headers.insert(X_FORWARDED_HOST.clone(), host);
        }
        headers.insert(http::header::HOST, authority.clone());
        *req = RequestHeader::from(parts);
        Ok(())
    }
}

fn main() {
    let usage = || -> ! {
        eprintln!("usage: bare_proxy LISTEN UPSTREAM THREADS [--read-timeout SECS] [--contract]");
        std::process::exit(2);
    };
    let mut args = std::env::args().skip(1);
    let (Some(listen), Some(upstream), Some(threads)) = (args.next(), args.next(), args.next())
    else {
        usage();
    };
    let Ok(threads) = threads.parse::<usize>() else {
        eprintln!("bare_proxy: THREADS must be a whole number, got {threads:?}");
        std::process::exit(2);
    };
    let Ok(upstream) = upstream.parse::<SocketAddr>() else {
        eprintln!("bare_proxy: UPSTREAM must be IP:PORT, got {upstream:?}");
        std::process::exit(2);
    };
    let (mut read_timeout, mut contract) = (None, None);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--read-timeout" => match args.next().map(|s| s.parse::<u64>()) {
                Some(Ok(secs)) => read_timeout = Some(std::time::Duration::from_secs(secs)),
                _ => {
                    eprintln!("bare_proxy: --read-timeout takes whole seconds");
                    std::process::exit(2);
                }
            },
            "--contract" => {
                let authority = HeaderValue::from_str(&upstream.to_string()).expect("IP:PORT");
                contract = Some(authority);
            }
            _ => usage(),
        }
    }
    if contract.is_some() {
        read_timeout = read_timeout.or(Some(std::time::Duration::from_secs(300)));
    }
    let conf = ServerConf {
        threads,
        // A bench stops the proxy with SIGTERM; nothing is in flight worth waiting for.
        grace_period_seconds: Some(0),
        graceful_shutdown_timeout_seconds: Some(0),
        ..ServerConf::default()
    };
    let mode = if contract.is_some() {
        ", the contract's wire work"
    } else {
        ""
    };
    let mut server = Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();
    let mut proxy = http_proxy_service(
        &server.configuration,
        Bare {
            upstream,
            read_timeout,
            contract,
        },
    );
    proxy.add_tcp(&listen);
    server.add_service(proxy);
    eprintln!("bare_proxy listening on {listen}, {threads} thread(s){mode}");
    server.run_forever();
}

/// The same allocator as the gateway, so the comparison is of the work done, not of the
/// allocators.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
