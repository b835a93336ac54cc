//! The parts of MCP the gateway reads: JSON-RPC messages, SSE events, `tools/list` results.

pub mod jsonrpc;
pub mod sse;
pub mod tools_list;
