//! Shared test helpers: start the real `mcpwarden` binary on free loopback ports with a
//! policy written for the test, and talk to it over plain HTTP.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use mcpwarden::auth::api_key::{ApiKey, hash_hex};

pub mod auth_server;
pub mod issuer;
pub mod upstream;

pub const BIN: &str = env!("CARGO_BIN_EXE_mcpwarden");

/// A loopback port nobody listens on right now.
pub fn free_port() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// The test's keys: `full` and `reader` in workspace `acme`, `other` in workspace `beta`,
/// `expired` in `acme` (expired in 2020).
pub struct Keys {
    pub full: ApiKey,
    pub reader: ApiKey,
    pub other: ApiKey,
    pub expired: ApiKey,
}

impl Keys {
    pub fn new() -> Self {
        Self {
            full: ApiKey::generate(),
            reader: ApiKey::generate(),
            other: ApiKey::generate(),
            expired: ApiKey::generate(),
        }
    }
}

/// A policy in the contract's format; `extra_upstream` lines go under `upstream:` and
/// `limits` replaces the `limits:` body.
pub fn policy_yaml(
    upstream: SocketAddr,
    listen: SocketAddr,
    admin: SocketAddr,
    keys: &Keys,
    extra_upstream: &str,
    limits: &str,
) -> String {
    format!(
        r#"version: 1
server:
  listen: {listen}
  admin_listen: {admin}
  threads: 2
  shutdown_grace: 5s
upstream:
  url: http://{upstream}
  connect_timeout: 1s
  idle_timeout: 30s
{extra_upstream}
limits:
{limits}
tools:
  - match: get_signal_visitors
    requires: [signal:read]
    feature: signal
  - match: ask_pipeline
    requires: [pipeline:read]
    cost: 5
  - match: update_deal_stage
    requires: [pipeline:write]
  - match: ["search_*", "get_*", "list_*", "echo_size", "slow", "progress", "big_result"]
    requires: [crm:read]
  - match: ["create_*", "update_*", "add_note"]
    requires: [crm:write]
workspaces:
  acme:
    scopes: [crm:read, crm:write, signal:read, pipeline:read, pipeline:write]
    features: [signal]
    keys:
      - id: full
        sha256: {full}
        created: 2026-09-01
      - id: reader
        sha256: {reader}
        scopes: [crm:read]
      - id: expired
        sha256: {expired}
        expires: 2020-01-01
  beta:
    scopes: [crm:read, signal:read]
    keys:
      - id: other
        sha256: {other}
"#,
        full = hash_hex(keys.full.expose()),
        reader = hash_hex(keys.reader.expose()),
        expired = hash_hex(keys.expired.expose()),
        other = hash_hex(keys.other.expose()),
    )
}

pub const DEFAULT_LIMITS: &str = "  requests_per_minute: 100000\n  max_request_bytes: 1MB\n";

/// The running binary; killed on drop.
pub struct Gateway {
    pub child: Child,
    pub addr: SocketAddr,
    pub admin: SocketAddr,
    pub policy_path: PathBuf,
    /// Where stderr goes, for a gateway started with [`Gateway::start_logged`].
    log_path: Option<PathBuf>,
    _dir: tempfile::TempDir,
}

impl Gateway {
    /// Writes `policy` (built for `addr`/`admin`) and runs `mcpwarden run` on it until ready.
    pub fn start(addr: SocketAddr, admin: SocketAddr, policy: &str) -> Self {
        Self::spawn(addr, admin, policy, &[], false)
    }

    /// Like `start`, with `args` added to `mcpwarden run` and its stderr kept for
    /// [`Gateway::log`].
    pub fn start_logged(addr: SocketAddr, admin: SocketAddr, policy: &str, args: &[&str]) -> Self {
        Self::spawn(addr, admin, policy, args, true)
    }

    fn spawn(addr: SocketAddr, admin: SocketAddr, policy: &str, args: &[&str], keep: bool) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let policy_path = dir.path().join("policy.yaml");
        std::fs::write(&policy_path, policy).unwrap();
        let log_path = keep.then(|| dir.path().join("stderr.log"));
        let stderr = match &log_path {
            Some(path) => Stdio::from(std::fs::File::create(path).unwrap()),
            None => Stdio::inherit(),
        };
        let child = Command::new(BIN)
            .args(["run", "--policy"])
            .arg(&policy_path)
            .args(args)
            .env("RUST_LOG", "info,pingora_core=warn,pingora_proxy=warn")
            // The test issuer's introspection secret (tests/common/issuer.rs).
            .env("TEST_INTROSPECTION_SECRET", "s3cret")
            .env_remove("MCPWARDEN_ACCESS_LOG")
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .unwrap();
        let mut gateway = Self {
            child,
            addr,
            admin,
            policy_path,
            log_path,
            _dir: dir,
        };
        gateway.wait_ready();
        gateway
    }

    /// What the gateway has written to stderr so far (started with `start_logged`).
    pub fn log(&self) -> String {
        let path = self.log_path.as_ref().expect("started with start_logged");
        std::fs::read_to_string(path).unwrap()
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("mcpwarden exited before it was ready: {status}");
            }
            if let Ok(resp) = raw(
                self.admin,
                "GET /readyz HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
            ) && resp.status == 200
            {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("mcpwarden was not ready within 30 s");
    }

    /// Rewrites the policy file the way an editor does: write a new file, rename it over.
    pub fn write_policy(&self, policy: &str) {
        let tmp = self.policy_path.with_extension("yaml.tmp");
        std::fs::write(&tmp, policy).unwrap();
        std::fs::rename(&tmp, &self.policy_path).unwrap();
    }

    pub fn metrics(&self) -> String {
        raw(
            self.admin,
            "GET /metrics HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
        )
        .unwrap()
        .text()
    }

    /// Sends a signal to the process.
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A raw HTTP/1.1 response.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }

    /// The JSON-RPC messages of an SSE body's `data:` lines, or the JSON body itself.
    pub fn messages(&self) -> Vec<serde_json::Value> {
        if self
            .header("content-type")
            .is_some_and(|c| c.starts_with("text/event-stream"))
        {
            self.text()
                .lines()
                .filter_map(|l| l.strip_prefix("data:"))
                .filter(|d| !d.trim().is_empty())
                .map(|d| serde_json::from_str(d.trim()).unwrap())
                .collect()
        } else {
            vec![self.json()]
        }
    }
}

/// Sends `request` bytes as they are, reads the response until the server closes or the
/// framing says it is complete.
pub fn raw(addr: SocketAddr, request: &str) -> std::io::Result<Response> {
    raw_bytes(addr, request.as_bytes())
}

pub fn raw_bytes(addr: SocketAddr, request: &[u8]) -> std::io::Result<Response> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(20)))?;
    stream.write_all(request)?;
    read_response(&mut stream)
}

/// Like [`raw_bytes`], but the request goes out in `pieces` writes 50 ms apart, so the
/// gateway reads its body in several chunks.
pub fn raw_in_pieces(addr: SocketAddr, request: &[u8], pieces: usize) -> std::io::Result<Response> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(Duration::from_secs(20)))?;
    for piece in request.chunks(request.len().div_ceil(pieces)) {
        stream.write_all(piece)?;
        stream.flush()?;
        std::thread::sleep(Duration::from_millis(50));
    }
    read_response(&mut stream)
}

fn read_response(stream: &mut TcpStream) -> std::io::Result<Response> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 16384];
    let head_end = loop {
        if let Some(at) = find(&buf, b"\r\n\r\n") {
            break at;
        }
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            return Err(std::io::Error::other("closed before the response head"));
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let mut rest = buf[head_end + 4..].to_vec();
    let get = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
    };
    let body = if let Some(len) = get("content-length") {
        let len: usize = len.parse().unwrap();
        while rest.len() < len {
            let n = stream.read(&mut chunk)?;
            if n == 0 {
                break;
            }
            rest.extend_from_slice(&chunk[..n]);
        }
        rest.truncate(len);
        rest
    } else if get("transfer-encoding").is_some_and(|t| t.eq_ignore_ascii_case("chunked")) {
        loop {
            if let Some(body) = dechunk(&rest) {
                break body;
            }
            let n = stream.read(&mut chunk)?;
            if n == 0 {
                return Err(std::io::Error::other("closed inside a chunked body"));
            }
            rest.extend_from_slice(&chunk[..n]);
        }
    } else {
        loop {
            let n = stream.read(&mut chunk)?;
            if n == 0 {
                break rest;
            }
            rest.extend_from_slice(&chunk[..n]);
        }
    };
    Ok(Response {
        status,
        headers,
        body,
    })
}

/// The body of a complete chunked encoding, or None if more bytes are needed.
fn dechunk(mut data: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = find(data, b"\r\n")?;
        let size_text = std::str::from_utf8(&data[..line_end]).ok()?;
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        data = &data[line_end + 2..];
        if size == 0 {
            return find(data, b"\r\n").map(|_| out);
        }
        if data.len() < size + 2 {
            return None;
        }
        out.extend_from_slice(&data[..size]);
        data = &data[size + 2..];
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// A POST of `body` to `/mcp` with `headers` (each "Name: value"), as a client sends it.
pub fn post(addr: SocketAddr, headers: &[&str], body: &str) -> Response {
    let mut request = format!(
        "POST /mcp HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for h in headers {
        request.push_str(h);
        request.push_str("\r\n");
    }
    request.push_str("\r\n");
    request.push_str(body);
    raw(addr, &request).unwrap()
}

pub fn key_header(key: &ApiKey) -> String {
    format!("X-API-Key: {}", key.expose())
}

/// A `tools/call` request body.
pub fn call(id: u64, tool: &str, arguments: serde_json::Value) -> String {
    serde_json::json!({
        "jsonrpc": "2.0", "id": id, "method": "tools/call",
        "params": { "name": tool, "arguments": arguments }
    })
    .to_string()
}

/// An `initialize` request body.
pub fn initialize(id: u64) -> String {
    serde_json::json!({
        "jsonrpc": "2.0", "id": id, "method": "initialize",
        "params": {
            "protocolVersion": "2025-06-18",
            "capabilities": {},
            "clientInfo": { "name": "test", "version": "1" }
        }
    })
    .to_string()
}

/// Tool-call arguments from a JSON object literal.
pub fn args(value: serde_json::Value) -> serde_json::Map<String, serde_json::Value> {
    value.as_object().unwrap().clone()
}

/// The names of the tools an MCP client is shown, sorted.
pub async fn tool_names(client: &rmcp::Peer<rmcp::RoleClient>) -> Vec<String> {
    let mut names: Vec<String> = client
        .list_all_tools()
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.name.to_string())
        .collect();
    names.sort();
    names
}

/// Calls the upstream's `search_deals` through `client` and checks its answer.
pub async fn search_works(client: &rmcp::Peer<rmcp::RoleClient>) {
    let result = client
        .call_tool(
            rmcp::model::CallToolRequestParams::new("search_deals")
                .with_arguments(args(serde_json::json!({"query": "acme"}))),
        )
        .await
        .unwrap();
    assert_eq!(
        result.content[0].as_text().unwrap().text,
        "deals matching acme"
    );
}

/// Runs blocking HTTP off the runtime's workers, so an upstream on the runtime keeps serving.
pub async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.unwrap()
}

/// Polls `check` every 50 ms for up to `secs` seconds.
pub fn eventually(secs: u64, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        if check() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    check()
}

/// Opens a request and returns the stream after its response head, with the head.
pub fn open(addr: std::net::SocketAddr, request: &str) -> (TcpStream, String, Vec<u8>) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..at]).into_owned();
            let rest = buf[at + 4..].to_vec();
            return (stream, head, rest);
        }
        let n = stream.read(&mut chunk).expect("response head in time");
        assert!(n > 0, "closed before the response head");
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// Reads until `needle` has arrived; panics on timeout (the read timeout) or close.
pub fn read_until(stream: &mut TcpStream, seen: &mut Vec<u8>, needle: &str) {
    let mut chunk = [0u8; 4096];
    while !String::from_utf8_lossy(seen).contains(needle) {
        let n = stream
            .read(&mut chunk)
            .unwrap_or_else(|e| panic!("waiting for {needle:?}: {e}"));
        assert!(
            n > 0,
            "closed before {needle:?}: {}",
            String::from_utf8_lossy(seen)
        );
        seen.extend_from_slice(&chunk[..n]);
    }
}

/// Initializes a session and returns its `Mcp-Session-Id: …` header line.
pub fn session(addr: std::net::SocketAddr, key: &str) -> String {
    let resp = post(addr, &[key], &initialize(1));
    assert_eq!(resp.status, 200, "{}", resp.text());
    let header = format!("Mcp-Session-Id: {}", resp.header("mcp-session-id").unwrap());
    let note =
        serde_json::json!({"jsonrpc":"2.0","method":"notifications/initialized"}).to_string();
    assert_eq!(post(addr, &[key, &header], &note).status, 202);
    header
}

/// The value of the series `name{labels…}` in a Prometheus text exposition (labels in any
/// order; the series may carry more labels than these).
pub fn metric(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.rsplit_once(' '))
        .find(|(series, _)| {
            let (n, rest) = series.split_once('{').unwrap_or((series, "}"));
            n == name
                && labels
                    .iter()
                    .all(|(k, v)| rest.contains(&format!("{k}=\"{v}\"")))
        })
        .map(|(_, value)| value.parse().unwrap())
}

/// Sends, in session `sid`, a `tools/call` of the upstream's `progress` tool (id 5) that
/// holds after its first progress event until released; returns the open stream after a 200
/// response head, with the body bytes read so far.
pub fn call_held_progress(addr: SocketAddr, key: &str, sid: &str) -> (TcpStream, Vec<u8>) {
    let body = serde_json::json!({
        "jsonrpc": "2.0", "id": 5, "method": "tools/call",
        "params": { "name": "progress", "arguments": { "steps": 2, "hold": true },
                    "_meta": { "progressToken": "p1" } }
    })
    .to_string();
    let request = format!(
        "POST /mcp HTTP/1.1\r\nHost: x\r\n{key}\r\n{sid}\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let (stream, head, seen) = open(addr, &request);
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    (stream, seen)
}
