//! A bare Pingora pass-through: the floor of what any Pingora gateway costs.
//!
//! No checks, no header changes, no logging: `upstream_peer` and nothing else, so the
//! difference between this and `mcpwarden run` in `benches/e2e.sh` is mcpwarden's own work.
//! Upstream connections are pooled by Pingora as usual (plain HTTP/1.1, keep-alive).
//!
//! Usage: `bare_proxy LISTEN UPSTREAM THREADS [READ_TIMEOUT_SECS]`, e.g.
//! `bare_proxy 127.0.0.1:8081 127.0.0.1:3001 1`. With `READ_TIMEOUT_SECS` the upstream
//! reads get Pingora's read timeout, as every production proxy sets one (mcpwarden's is
//! `upstream.idle_timeout`): a timer per read that waits, which is part of what Pingora
//! costs once a proxy gives up on a stalled upstream (`E2E_BARE_READ_TIMEOUT` in
//! `benches/e2e.sh`).

use std::net::SocketAddr;

use async_trait::async_trait;
use pingora::proxy::{ProxyHttp, Session, http_proxy_service};
use pingora::server::Server;
use pingora::server::configuration::ServerConf;
use pingora::upstreams::peer::HttpPeer;

struct Bare {
    /// Parsed once at start: `HttpPeer::new` with a string would parse it on every request
    /// (and panic on a bad one), which is not part of any gateway's floor.
    upstream: SocketAddr,
    read_timeout: Option<std::time::Duration>,
}

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
}

fn main() {
    let mut args = std::env::args().skip(1);
    let (Some(listen), Some(upstream), Some(threads)) = (args.next(), args.next(), args.next())
    else {
        eprintln!("usage: bare_proxy LISTEN UPSTREAM THREADS [READ_TIMEOUT_SECS]");
        std::process::exit(2);
    };
    let Ok(threads) = threads.parse::<usize>() else {
        eprintln!("bare_proxy: THREADS must be a whole number, got {threads:?}");
        std::process::exit(2);
    };
    let read_timeout = match args.next().map(|s| s.parse::<u64>()) {
        None => None,
        Some(Ok(secs)) => Some(std::time::Duration::from_secs(secs)),
        Some(Err(_)) => {
            eprintln!("bare_proxy: READ_TIMEOUT_SECS must be a whole number");
            std::process::exit(2);
        }
    };
    let Ok(upstream) = upstream.parse::<SocketAddr>() else {
        eprintln!("bare_proxy: UPSTREAM must be IP:PORT, got {upstream:?}");
        std::process::exit(2);
    };
    let conf = ServerConf {
        threads,
        // A bench stops the proxy with SIGTERM; nothing is in flight worth waiting for.
        grace_period_seconds: Some(0),
        graceful_shutdown_timeout_seconds: Some(0),
        ..ServerConf::default()
    };
    let mut server = Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();
    let mut proxy = http_proxy_service(
        &server.configuration,
        Bare {
            upstream,
            read_timeout,
        },
    );
    proxy.add_tcp(&listen);
    server.add_service(proxy);
    eprintln!("bare_proxy listening on {listen}, {threads} thread(s)");
    server.run_forever();
}

/// The same allocator as the gateway, so the comparison is of the work done, not of the
/// allocators.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
