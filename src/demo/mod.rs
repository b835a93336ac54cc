//! The built-in demo behind `mcpwarden demo`: a CRM-like MCP server over in-memory data
//! (built with `rmcp`), the policy and keys that put the gateway in front of it, and the
//! banner that shows a user how to call it.
//!
//! The server speaks rmcp's default streamable HTTP at `/mcp`: stateful sessions, SSE
//! responses, and `Host` checked against loopback names (`localhost`, `127.0.0.1`, `::1`, any
//! port) against DNS rebinding — which the gateway satisfies, as it sends the upstream's own
//! authority as `Host`.

mod data;
mod pipeline;
mod setup;
mod tools;

#[cfg(test)]
mod tests;

use std::future::Future;
use std::sync::Arc;

use rmcp::transport::streamable_http_server::{
    StreamableHttpServerConfig, StreamableHttpService, session::local::LocalSessionManager,
};

pub use data::Stage;
pub use setup::{DemoSetup, FULL_KEY_ID, READ_KEY_ID, banner, demo_setup};
pub use tools::DemoServer;

/// Serves the demo MCP server on `listener` at `/mcp` until `shutdown` resolves; then open
/// sessions and their SSE streams are closed and in-flight requests finish.
pub async fn serve(
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let server = DemoServer::new();
    let config = StreamableHttpServerConfig::default();
    let sessions = config.cancellation_token.clone();
    let service = StreamableHttpService::new(
        move || Ok(server.clone()),
        Arc::new(LocalSessionManager::default()),
        config,
    );
    let router = axum::Router::new().nest_service("/mcp", service);
    axum::serve(listener, router)
        .with_graceful_shutdown(async move {
            shutdown.await;
            // Without this, an open GET stream would hold graceful shutdown forever.
            sessions.cancel();
        })
        .await
}
