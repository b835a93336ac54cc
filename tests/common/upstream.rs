//! The MCP server the gateway tests sit in front of: rmcp's streamable HTTP at `/mcp` on
//! `127.0.0.1:0`, in one of three modes, counting every tool execution and keeping the HTTP
//! headers of the last `tools/call` so a test can see what the gateway forwarded.
//!
//! `Host` is checked by rmcp against loopback names with any port, so the gateway's
//! `Host: 127.0.0.1:<port>` passes; a client's own `Host` (with `preserve_host: true`) passes
//! only when it names loopback too.
#![allow(dead_code)] // each test uses a different part

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::middleware::{self, Next};
use axum::response::Response;
use rmcp::{
    ErrorData, ServerHandler,
    handler::server::{tool::Extension, wrapper::Parameters},
    model::{CallToolResult, ContentBlock, ProgressNotificationParam, RequestMetaObject},
    schemars::{self, JsonSchema},
    tool, tool_handler, tool_router,
    transport::streamable_http_server::{
        StreamableHttpServerConfig, StreamableHttpService, session::local::LocalSessionManager,
    },
};
use serde::Deserialize;
use sha2::{Digest, Sha256};

/// How the upstream speaks streamable HTTP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Sessions (`Mcp-Session-Id`) and SSE responses: rmcp's defaults.
    Stateful,
    /// Sessions, and a request's answer as one `application/json` body when it is a single
    /// message (an answer preceded by notifications stays SSE).
    StatefulJson,
    /// No sessions, JSON responses: like MCP 2026-07-28 stateless servers.
    Stateless,
}

/// What the upstream has executed.
#[derive(Debug, Default)]
pub struct Calls {
    counts: Mutex<HashMap<String, usize>>,
    last_headers: Mutex<Vec<(String, String)>>,
    /// `progress` with `hold: true` waits here after its first notification.
    gate: tokio::sync::Notify,
}

impl Calls {
    /// Lets a held `progress` call finish.
    pub fn release(&self) {
        self.gate.notify_one();
    }

    fn record(&self, tool: &str, parts: &http::request::Parts) {
        *self
            .counts
            .lock()
            .unwrap()
            .entry(tool.to_string())
            .or_default() += 1;
        *self.last_headers.lock().unwrap() = parts
            .headers
            .iter()
            .map(|(name, value)| {
                (
                    name.as_str().to_string(),
                    String::from_utf8_lossy(value.as_bytes()).into_owned(),
                )
            })
            .collect();
    }

    /// How many times `tool` ran.
    pub fn count(&self, tool: &str) -> usize {
        self.counts.lock().unwrap().get(tool).copied().unwrap_or(0)
    }

    /// How many tool executions there were in all.
    pub fn total(&self) -> usize {
        self.counts.lock().unwrap().values().sum()
    }

    /// The HTTP headers of the last `tools/call` that ran, names in lowercase.
    pub fn last_headers(&self) -> Vec<(String, String)> {
        self.last_headers.lock().unwrap().clone()
    }

    /// One header of the last `tools/call` (the first, if repeated); `name` in any case.
    pub fn header(&self, name: &str) -> Option<String> {
        self.last_headers
            .lock()
            .unwrap()
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
    }
}

/// A running upstream; dropping it shuts the server down.
pub struct Upstream {
    pub addr: SocketAddr,
    pub calls: Arc<Calls>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Upstream {
    /// `http://127.0.0.1:<port>/mcp`.
    pub fn url(&self) -> String {
        format!("http://{}/mcp", self.addr)
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

#[derive(Debug, Deserialize, JsonSchema)]
struct Query {
    query: String,
}
#[derive(Debug, Deserialize, JsonSchema)]
struct Name {
    name: String,
}
#[derive(Debug, Deserialize, JsonSchema)]
struct Question {
    question: String,
}
#[derive(Debug, Deserialize, JsonSchema)]
struct Stage {
    id: String,
    stage: String,
}
#[derive(Debug, Deserialize, JsonSchema)]
struct Payload {
    payload: String,
}
#[derive(Debug, Deserialize, JsonSchema)]
struct Millis {
    ms: u64,
}
#[derive(Debug, Deserialize, JsonSchema)]
struct Steps {
    steps: u32,
    /// Wait for `Calls::release` after the first notification.
    #[serde(default)]
    hold: bool,
}
#[derive(Debug, Deserialize, JsonSchema)]
struct Bytes {
    bytes: usize,
}

type Parts = Extension<http::request::Parts>;

fn text(s: impl Into<String>) -> CallToolResult {
    CallToolResult::success(vec![ContentBlock::text(s)])
}

#[derive(Clone)]
struct TestServer {
    calls: Arc<Calls>,
}

#[tool_router]
impl TestServer {
    #[tool(description = "Search deals.")]
    fn search_deals(
        &self,
        Extension(h): Parts,
        Parameters(p): Parameters<Query>,
    ) -> CallToolResult {
        self.calls.record("search_deals", &h);
        text(format!("deals matching {}", p.query))
    }

    #[tool(description = "Create a deal.")]
    fn create_deal(&self, Extension(h): Parts, Parameters(p): Parameters<Name>) -> CallToolResult {
        self.calls.record("create_deal", &h);
        text(format!("created {}", p.name))
    }

    #[tool(description = "Website visitors.")]
    fn get_signal_visitors(&self, Extension(h): Parts) -> CallToolResult {
        self.calls.record("get_signal_visitors", &h);
        text("visitors")
    }

    #[tool(description = "Answer a pipeline question.")]
    fn ask_pipeline(
        &self,
        Extension(h): Parts,
        Parameters(p): Parameters<Question>,
    ) -> CallToolResult {
        self.calls.record("ask_pipeline", &h);
        text(format!("answer to {}", p.question))
    }

    #[tool(description = "Move a deal to a stage.")]
    fn update_deal_stage(
        &self,
        Extension(h): Parts,
        Parameters(p): Parameters<Stage>,
    ) -> CallToolResult {
        self.calls.record("update_deal_stage", &h);
        text(format!("{} is now {}", p.id, p.stage))
    }

    #[tool(description = "The payload's length and SHA-256: `<len> <sha256hex>`.")]
    fn echo_size(&self, Extension(h): Parts, Parameters(p): Parameters<Payload>) -> CallToolResult {
        self.calls.record("echo_size", &h);
        text(format!(
            "{} {}",
            p.payload.len(),
            hex::encode(Sha256::digest(p.payload.as_bytes()))
        ))
    }

    #[tool(description = "Sleeps `ms` milliseconds, then answers `done`.")]
    async fn slow(&self, Extension(h): Parts, Parameters(p): Parameters<Millis>) -> CallToolResult {
        self.calls.record("slow", &h);
        tokio::time::sleep(Duration::from_millis(p.ms)).await;
        text("done")
    }

    #[tool(description = "Sends `steps` progress notifications, then answers `done`.")]
    async fn progress(
        &self,
        Extension(h): Parts,
        meta: RequestMetaObject,
        peer: rmcp::Peer<rmcp::RoleServer>,
        Parameters(p): Parameters<Steps>,
    ) -> Result<CallToolResult, ErrorData> {
        self.calls.record("progress", &h);
        if let Some(token) = meta.get_progress_token() {
            for step in 1..=p.steps {
                let note = ProgressNotificationParam::new(token.clone(), f64::from(step))
                    .with_total(f64::from(p.steps));
                peer.notify_progress(note)
                    .await
                    .map_err(|e| ErrorData::internal_error(e.to_string(), None))?;
                if step == 1 && p.hold {
                    self.calls.gate.notified().await;
                }
            }
        }
        Ok(text("done"))
    }

    #[tool(description = "A text result of `bytes` times 'x'.")]
    fn big_result(&self, Extension(h): Parts, Parameters(p): Parameters<Bytes>) -> CallToolResult {
        self.calls.record("big_result", &h);
        text("x".repeat(p.bytes))
    }
}

#[tool_handler(name = "mcpwarden-test-upstream")]
impl ServerHandler for TestServer {}

/// Starts an upstream in `mode` on a fresh loopback port.
pub async fn start(mode: Mode) -> Upstream {
    let calls = Arc::new(Calls::default());
    let server = TestServer {
        calls: calls.clone(),
    };
    let config = match mode {
        Mode::Stateful | Mode::StatefulJson => StreamableHttpServerConfig::default(),
        Mode::Stateless => StreamableHttpServerConfig::default()
            .with_legacy_session_mode(false)
            .with_json_response(true),
    };
    let sessions = config.cancellation_token.clone();
    let service = StreamableHttpService::new(
        move || Ok(server.clone()),
        Arc::new(LocalSessionManager::default()),
        config,
    );
    let mut router = axum::Router::new().nest_service("/mcp", service);
    if mode == Mode::StatefulJson {
        router = router.layer(middleware::from_fn(single_sse_message_as_json));
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        let _ = axum::serve(listener, router)
            .with_graceful_shutdown(async move {
                let _ = rx.await;
                sessions.cancel();
            })
            .await;
    });
    Upstream {
        addr,
        calls,
        shutdown: Some(tx),
    }
}

/// rmcp 3.11 ignores `json_response` when sessions are on (its responses are then always
/// SSE), so `Mode::StatefulJson` rewrites a POST's SSE answer that holds a single JSON-RPC
/// message into an `application/json` body, keeping every header (`Mcp-Session-Id` too).
/// An answer with notifications before it is passed on as SSE, as rmcp does when stateless.
async fn single_sse_message_as_json(request: Request, next: Next) -> Response {
    let is_post = request.method() == http::Method::POST;
    let response = next.run(request).await;
    let is_sse = response
        .headers()
        .get(http::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));
    if !is_post || !is_sse {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    // A request's SSE stream ends once its answer is sent, so this does not hang.
    let Ok(bytes) = axum::body::to_bytes(body, usize::MAX).await else {
        return Response::from_parts(parts, Body::empty());
    };
    let messages = sse_data(&String::from_utf8_lossy(&bytes));
    if messages.len() != 1 {
        return Response::from_parts(parts, Body::from(bytes));
    }
    parts.headers.insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    parts.headers.remove(http::header::CONTENT_LENGTH);
    parts.headers.remove(http::header::CACHE_CONTROL);
    Response::from_parts(parts, Body::from(messages.into_iter().next().unwrap()))
}

/// The non-empty `data` of each SSE event (rmcp's priming events carry empty data).
fn sse_data(stream: &str) -> Vec<String> {
    let stream = stream.replace("\r\n", "\n");
    stream
        .split("\n\n")
        .filter_map(|event| {
            let data: Vec<&str> = event
                .lines()
                .filter_map(|line| line.strip_prefix("data:"))
                .map(|d| d.strip_prefix(' ').unwrap_or(d))
                .collect();
            let data = data.join("\n");
            (!data.trim().is_empty()).then_some(data)
        })
        .collect()
}

/// A plain HTTP/1.1 upstream that answers every request with the same bytes (status line,
/// headers and body, exactly as given), for tests about framings rmcp does not produce:
/// chunked JSON, encoded bodies, CRLF events. The answer is written in `parts`; before each
/// part after the first the server waits for [`Canned::release`], so a test can see what
/// reached the client in between. The connection closes after the last part.
pub struct Canned {
    pub addr: SocketAddr,
    gate: Arc<tokio::sync::Notify>,
    task: tokio::task::JoinHandle<()>,
}

impl Canned {
    /// Lets the server write its next part.
    pub fn release(&self) {
        self.gate.notify_one();
    }
}

impl Drop for Canned {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Starts a [`Canned`] upstream on a fresh loopback port.
pub async fn canned(parts: Vec<Vec<u8>>) -> Canned {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let gate = Arc::new(tokio::sync::Notify::new());
    let parts = Arc::new(parts);
    let (g, p) = (gate.clone(), parts.clone());
    let task = tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let (gate, parts) = (g.clone(), p.clone());
            tokio::spawn(async move {
                // The request: its head, then as many body bytes as it declares.
                let mut request = Vec::new();
                let mut buf = [0u8; 16384];
                let head_end = loop {
                    if let Some(at) = request.windows(4).position(|w| w == b"\r\n\r\n") {
                        break at + 4;
                    }
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                };
                let head = String::from_utf8_lossy(&request[..head_end]).to_ascii_lowercase();
                let length: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap_or(0);
                while request.len() < head_end + length {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                for (i, part) in parts.iter().enumerate() {
                    if i > 0 {
                        gate.notified().await;
                    }
                    if stream.write_all(part).await.is_err() {
                        return;
                    }
                }
                let _ = stream.shutdown().await;
            });
        }
    });
    Canned { addr, gate, task }
}

/// `bytes` as one HTTP/1.1 chunk.
pub fn chunk(bytes: &[u8]) -> Vec<u8> {
    let mut out = format!("{:x}\r\n", bytes.len()).into_bytes();
    out.extend_from_slice(bytes);
    out.extend_from_slice(b"\r\n");
    out
}
