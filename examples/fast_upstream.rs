//! The fastest reasonable MCP-ish upstream, for the end-to-end bench (`benches/e2e.sh`).
//!
//! `POST /mcp` reads the whole body and answers a small fixed `tools/call` result with the
//! request's `id` echoed (or `1` when the body has none), `Content-Type: application/json`.
//! One tokio worker: on a 2-core box the other core belongs to the proxy or the load generator.
//!
//! Usage: `fast_upstream [LISTEN]` (default `127.0.0.1:3001`).

use axum::Router;
use axum::body::Bytes;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use axum::routing::post;
use serde::Deserialize;
use serde_json::value::RawValue;

const PREFIX: &[u8] = br#"{"jsonrpc":"2.0","id":"#;
const SUFFIX: &[u8] = br#","result":{"content":[{"type":"text","text":"ok"}]}}"#;

/// Only the field the answer needs; everything else in the body is skipped unparsed.
#[derive(Deserialize)]
struct Request<'a> {
    #[serde(borrow)]
    id: Option<&'a RawValue>,
}

async fn mcp(body: Bytes) -> impl IntoResponse {
    let id = serde_json::from_slice::<Request<'_>>(&body)
        .ok()
        .and_then(|r| r.id)
        .map_or("1", RawValue::get);
    let mut out = Vec::with_capacity(PREFIX.len() + id.len() + SUFFIX.len());
    out.extend_from_slice(PREFIX);
    out.extend_from_slice(id.as_bytes());
    out.extend_from_slice(SUFFIX);
    ([(CONTENT_TYPE, "application/json")], out)
}

fn main() -> std::io::Result<()> {
    let listen = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:3001".to_owned());
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?
        .block_on(async {
            let listener = tokio::net::TcpListener::bind(&listen).await?;
            eprintln!("fast_upstream listening on {listen}");
            axum::serve(listener, Router::new().route("/mcp", post(mcp))).await
        })
}
