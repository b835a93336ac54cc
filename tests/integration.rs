//! Integration tests: the real `mcpwarden` binary on loopback sockets, in front of a real MCP
//! server built with `rmcp`, driven by `rmcp`'s client and by plain HTTP.

mod common;
#[path = "integration/demo.rs"]
mod demo;
#[path = "integration/upstream_selfcheck.rs"]
mod upstream_selfcheck;
