//! mcpwarden: an authenticating reverse proxy and policy sidecar for MCP servers.
//!
//! Decisions are plain Rust; the proxy is glue. Every module below except `proxy`, `admin`
//! and `cli` is testable without a socket.
#![forbid(unsafe_code)]

pub mod admin;
pub mod auth;
pub mod authorize;
pub mod cli;
pub mod demo;
pub mod denial;
pub mod limits;
pub mod mcp;
pub mod policy;
pub mod proxy;
pub mod server;
pub mod telemetry;
pub mod wire;
