//! Integration tests: the real `mcpwarden` binary on loopback sockets, in front of a real MCP
//! server built with `rmcp`, driven by `rmcp`'s client and by plain HTTP. One test binary, so
//! Pingora is linked once.

mod common;

#[path = "integration/access_log.rs"]
mod access_log;
#[path = "integration/auth_server.rs"]
mod auth_server;
#[path = "integration/cap.rs"]
mod cap;
#[path = "integration/cli.rs"]
mod cli;
#[path = "integration/client.rs"]
mod client;
#[path = "integration/demo.rs"]
mod demo;
#[path = "integration/deploy.rs"]
mod deploy;
#[path = "integration/errors.rs"]
mod errors;
#[path = "integration/gateway.rs"]
mod gateway;
#[path = "integration/key_lifecycle.rs"]
mod key_lifecycle;
#[path = "integration/limits.rs"]
mod limits;
#[path = "integration/metrics.rs"]
mod metrics;
#[path = "integration/oauth.rs"]
mod oauth;
#[path = "integration/oauth_client.rs"]
mod oauth_client;
#[path = "integration/reload.rs"]
mod reload;
#[path = "integration/upstream_failures.rs"]
mod upstream_failures;
#[path = "integration/upstream_selfcheck.rs"]
mod upstream_selfcheck;
#[path = "integration/usage.rs"]
mod usage;
#[path = "integration/usage_page.rs"]
mod usage_page;
