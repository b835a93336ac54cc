//! An upstream that fails after its answer began, end to end: how the failure is counted in
//! `mcpwarden_upstream_errors_total` and under the key.

use std::net::SocketAddr;

use serde_json::json;

use crate::common::*;

/// An upstream that answers its first request with `reply`, then either stays silent (until
/// the gateway gives up and closes) or closes at once.
fn scripted_upstream(reply: &'static str, hold: bool) -> (SocketAddr, std::thread::JoinHandle<()>) {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let handle = std::thread::spawn(move || {
        let (mut conn, _) = listener.accept().unwrap();
        conn.set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .unwrap();
        let mut seen = Vec::new();
        let mut chunk = [0u8; 4096];
        while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = conn.read(&mut chunk).unwrap();
            assert!(n > 0, "the gateway closed before its request head");
            seen.extend_from_slice(&chunk[..n]);
        }
        conn.write_all(reply.as_bytes()).unwrap();
        if hold {
            // Until the gateway's idle timeout closes the connection.
            while matches!(conn.read(&mut chunk), Ok(n) if n > 0) {}
        }
    });
    (addr, handle)
}

/// Starts a gateway in front of `upstream` (idle timeout 1 s), sends one allowed call, and
/// returns the client's view of the response and the metrics once it is counted.
async fn one_call(upstream: SocketAddr) -> (String, String) {
    let keys = Keys::new();
    let (addr, admin) = (free_port(), free_port());
    let policy = policy_yaml(upstream, addr, admin, &keys, "", DEFAULT_LIMITS)
        .replace("idle_timeout: 30s", "idle_timeout: 1s");
    let key = key_header(&keys.full);
    blocking(move || {
        use std::io::Read;
        let gw = Gateway::start(addr, admin, &policy);
        let body = call(1, "search_deals", json!({}));
        let (mut stream, head, mut seen) = open(
            addr,
            &format!(
                "POST /mcp HTTP/1.1\r\nHost: x\r\n{key}\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            ),
        );
        let mut chunk = [0u8; 4096];
        while let Ok(n) = stream.read(&mut chunk) {
            if n == 0 {
                break;
            }
            seen.extend_from_slice(&chunk[..n]);
        }
        let outcome = [("key", "full"), ("outcome", "upstream_error")];
        let counted = |text: &str| metric(text, "mcpwarden_requests_total", &outcome) == Some(1.0);
        assert!(eventually(5, || counted(&gw.metrics())), "{}", gw.metrics());
        (format!("{head}\r\n\r\n{}", String::from_utf8_lossy(&seen)), gw.metrics())
    })
    .await
}

fn upstream_errors(text: &str, kind: &str) -> Option<f64> {
    metric(text, "mcpwarden_upstream_errors_total", &[("kind", kind)])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_that_stalls_mid_body_is_counted_as_a_timeout() {
    let (upstream, held) = scripted_upstream(
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 100\r\n\r\npartial",
        true,
    );
    let (client, text) = one_call(upstream).await;
    held.join().unwrap();
    assert!(client.starts_with("HTTP/1.1 200"), "{client}");
    assert_eq!(upstream_errors(&text, "timeout"), Some(1.0), "{text}");
    assert_eq!(upstream_errors(&text, "reset"), Some(0.0), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_5xx_that_fails_mid_body_is_one_upstream_error() {
    let (upstream, closed) = scripted_upstream(
        "HTTP/1.1 500 Internal Server Error\r\nContent-Type: text/plain\r\nContent-Length: 100\r\n\r\npartial",
        false,
    );
    let (client, text) = one_call(upstream).await;
    closed.join().unwrap();
    assert!(client.starts_with("HTTP/1.1 500"), "{client}");
    assert_eq!(upstream_errors(&text, "status_5xx"), Some(1.0), "{text}");
    assert_eq!(upstream_errors(&text, "reset"), Some(0.0), "{text}");
    assert_eq!(upstream_errors(&text, "timeout"), Some(0.0), "{text}");
}
