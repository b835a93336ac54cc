//! Errors the gateway answers itself, end to end: what a client sees for a malformed body,
//! unsafe framing, an oversized body and a dead or silent upstream.

use serde_json::json;

use crate::common::upstream::Mode;
use crate::common::*;
use crate::gateway::{setup, setup_with};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_over_max_request_bytes_are_413_whether_declared_or_chunked() {
    let s = setup_with(Mode::Stateless, "", "  max_request_bytes: 100KB\n").await;
    let (addr, key) = (s.gw.addr, key_header(&s.keys.full));
    let big = call(1, "echo_size", json!({"payload": "y".repeat(120_000)}));
    let declared = {
        let (big, key) = (big.clone(), key.clone());
        blocking(move || post(addr, &[&key], &big)).await
    };
    assert_eq!(declared.status, 413, "{}", declared.text());
    assert_eq!(declared.json()["error"]["code"], -32600);
    let chunked = blocking(move || {
        let mut req = format!(
            "POST /mcp HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\n{key}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        )
        .into_bytes();
        for piece in big.as_bytes().chunks(10_000) {
            req.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
            req.extend_from_slice(piece);
            req.extend_from_slice(b"\r\n");
        }
        req.extend_from_slice(b"0\r\n\r\n");
        raw_bytes(addr, &req).unwrap()
    })
    .await;
    assert_eq!(chunked.status, 413, "{}", chunked.text());
    assert_eq!(s.up.calls.total(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_requests_get_their_documented_errors() {
    let s = setup(Mode::Stateless).await;
    let (addr, key) = (s.gw.addr, key_header(&s.keys.full));
    let cases: Vec<(Vec<String>, String, u16, i64)> = vec![
        (vec![], "{not json".into(), 400, -32700),
        (
            vec![],
            r#"{"jsonrpc":"1.0","id":1,"method":"ping"}"#.into(),
            400,
            -32600,
        ),
        (
            vec![],
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{}}"#.into(),
            400,
            -32600,
        ),
        (
            vec!["Mcp-Method: tools/list".into()],
            call(1, "search_deals", json!({})),
            400,
            -32020,
        ),
        (
            vec!["Mcp-Method: tools/call".into(), "Mcp-Name: get_deal".into()],
            call(1, "search_deals", json!({})),
            400,
            -32020,
        ),
    ];
    for (extra, body, status, code) in cases {
        let key = key.clone();
        let resp = blocking(move || {
            let mut headers: Vec<&str> = vec![&key];
            headers.extend(extra.iter().map(String::as_str));
            post(addr, &headers, &body)
        })
        .await;
        assert_eq!(resp.status, status, "{}", resp.text());
        assert_eq!(resp.json()["error"]["code"], code, "{}", resp.text());
    }
    assert_eq!(s.up.calls.total(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsafe_framing_is_refused_before_the_body_is_read() {
    let s = setup(Mode::Stateless).await;
    let (addr, key) = (s.gw.addr, key_header(&s.keys.full));
    let body = call(1, "search_deals", json!({}));
    let resp = blocking(move || {
        let req = format!(
            "POST /mcp HTTP/1.1\r\nHost: x\r\n{key}\r\nContent-Type: application/json\r\nContent-Length: +{}\r\n\r\n{body}",
            body.len()
        );
        raw(addr, &req).unwrap()
    })
    .await;
    assert_eq!(resp.status, 400, "{}", resp.text());
    assert_eq!(s.up.calls.total(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_upstream_is_a_quick_502_with_a_json_rpc_body() {
    let keys = Keys::new();
    let dead = free_port();
    let (addr, admin) = (free_port(), free_port());
    let policy = policy_yaml(dead, addr, admin, &keys, "", DEFAULT_LIMITS);
    let key = key_header(&keys.full);
    let resp = blocking(move || {
        let _gw = Gateway::start(addr, admin, &policy);
        post(addr, &[&key], &call(8, "search_deals", json!({})))
    })
    .await;
    assert_eq!(resp.status, 502, "{}", resp.text());
    assert_eq!(resp.json()["error"]["code"], -32006);
    assert_eq!(resp.json()["id"], 8);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_upstream_is_a_504() {
    // A listener that accepts and never answers.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let upstream_addr = silent.local_addr().unwrap();
    let keys = Keys::new();
    let (addr, admin) = (free_port(), free_port());
    let policy = policy_yaml(upstream_addr, addr, admin, &keys, "", DEFAULT_LIMITS)
        .replace("idle_timeout: 30s", "idle_timeout: 1s");
    let key = key_header(&keys.full);
    let resp = blocking(move || {
        let _gw = Gateway::start(addr, admin, &policy);
        let _held = silent;
        post(addr, &[&key], &call(8, "search_deals", json!({})))
    })
    .await;
    assert_eq!(resp.status, 504, "{}", resp.text());
    assert_eq!(resp.json()["error"]["code"], -32006);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upgrade_or_a_body_on_get_or_delete_never_reaches_the_upstream() {
    let s = setup(Mode::Stateless).await;
    let (addr, key) = (s.gw.addr, key_header(&s.keys.full));
    let body = call(1, "create_deal", json!({"name": "smuggled"}));
    let responses = blocking(move || {
        let upgrade = format!(
            "GET /mcp HTTP/1.1\r\nHost: x\r\n{key}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        );
        let delete = format!(
            "DELETE /mcp HTTP/1.1\r\nHost: x\r\n{key}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        let get = format!(
            "GET /mcp HTTP/1.1\r\nHost: x\r\n{key}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        [upgrade, delete, get].map(|r| raw(addr, &r).unwrap())
    })
    .await;
    for resp in responses {
        assert_eq!(resp.status, 400, "{}", resp.text());
        assert_eq!(resp.json()["error"]["code"], -32600);
    }
    assert_eq!(s.up.calls.total(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identity_headers_are_stripped_in_any_spelling() {
    let s = setup(Mode::Stateless).await;
    let (addr, key) = (s.gw.addr, key_header(&s.keys.reader));
    let resp = blocking(move || {
        post(
            addr,
            &[
                &key,
                "X_Mcpwarden_Key: admin",
                "X-Mcpwarden-Role: admin",
                "X_API_KEY: leak",
            ],
            &call(1, "search_deals", json!({"query": "a"})),
        )
    })
    .await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    let seen = s.up.calls.last_headers();
    for (name, _) in &seen {
        let normal = name.replace('_', "-");
        assert!(
            normal != "x-api-key"
                && (!normal.starts_with("x-mcpwarden-")
                    || [
                        "x-mcpwarden-workspace",
                        "x-mcpwarden-key",
                        "x-mcpwarden-scopes"
                    ]
                    .contains(&name.as_str())),
            "{name} reached the upstream"
        );
    }
    assert_eq!(
        s.up.calls.header("x-mcpwarden-key").as_deref(),
        Some("reader")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_post_closes_the_connection_and_expect_continue_works() {
    let s = setup(Mode::Stateless).await;
    let (addr, key) = (s.gw.addr, key_header(&s.keys.full));
    let (refused, continued) = blocking(move || {
        let body = call(1, "search_deals", json!({"query": "a"}));
        // No credential: refused before the body is read, so the connection closes.
        let refused = raw(
            addr,
            &format!("POST /mcp HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}", body.len()),
        )
        .unwrap();
        // A client that waits for 100 Continue before sending its body.
        let mut stream = std::net::TcpStream::connect(addr).unwrap();
        stream.set_read_timeout(Some(std::time::Duration::from_secs(20))).unwrap();
        use std::io::{Read, Write};
        write!(
            stream,
            "POST /mcp HTTP/1.1\r\nHost: x\r\n{key}\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\nExpect: 100-continue\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        )
        .unwrap();
        let mut interim = [0u8; 25];
        stream.read_exact(&mut interim).unwrap();
        stream.write_all(body.as_bytes()).unwrap();
        let mut rest = String::new();
        stream.read_to_string(&mut rest).unwrap();
        (refused, (String::from_utf8_lossy(&interim).into_owned(), rest))
    })
    .await;
    assert_eq!(refused.status, 401);
    assert_eq!(refused.header("connection"), Some("close"));
    assert!(continued.0.starts_with("HTTP/1.1 100"), "{}", continued.0);
    assert!(
        continued.1.trim_start().starts_with("HTTP/1.1 200"),
        "{}",
        continued.1
    );
    assert_eq!(s.up.calls.count("search_deals"), 1);
}

/// Sends a POST with `Expect: 100-continue`, waits for the interim answer before sending the
/// body (as curl and most HTTP clients do), and returns the interim head and what followed.
fn post_after_continue(addr: std::net::SocketAddr, key: &str, body: &str) -> (String, String) {
    use std::io::{Read, Write};
    let (mut stream, interim, mut rest) = open(
        addr,
        &format!(
            "POST /mcp HTTP/1.1\r\nHost: x\r\n{key}\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\nExpect: 100-continue\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        ),
    );
    stream.write_all(body.as_bytes()).unwrap();
    // The gateway may close while an unread part of a refused body is still in flight; what
    // it answered first is what counts.
    let mut chunk = [0u8; 4096];
    while let Ok(n) = stream.read(&mut chunk) {
        if n == 0 {
            break;
        }
        rest.extend_from_slice(&chunk[..n]);
    }
    (interim, String::from_utf8_lossy(&rest).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_told_to_continue_still_gets_the_502_of_a_dead_upstream() {
    let keys = Keys::new();
    let dead = free_port();
    let (addr, admin) = (free_port(), free_port());
    let policy = policy_yaml(dead, addr, admin, &keys, "", DEFAULT_LIMITS);
    let key = key_header(&keys.full);
    let ((interim, answer), text) = blocking(move || {
        let gw = Gateway::start(addr, admin, &policy);
        let answered = post_after_continue(addr, &key, &call(8, "search_deals", json!({})));
        let counted = |text: &str| {
            metric(
                text,
                "mcpwarden_upstream_errors_total",
                &[("kind", "connect")],
            ) == Some(1.0)
        };
        assert!(eventually(3, || counted(&gw.metrics())), "{}", gw.metrics());
        (answered, gw.metrics())
    })
    .await;
    assert!(interim.starts_with("HTTP/1.1 100"), "{interim}");
    assert!(answer.starts_with("HTTP/1.1 502"), "{answer:?}");
    assert!(answer.contains("-32006"), "{answer}");
    assert_eq!(
        metric(
            &text,
            "mcpwarden_upstream_errors_total",
            &[("kind", "reset")]
        ),
        Some(0.0)
    );
    let requests = |outcome| {
        metric(
            &text,
            "mcpwarden_requests_total",
            &[("key", "full"), ("outcome", outcome)],
        )
    };
    assert_eq!(requests("upstream_error"), Some(1.0), "{text}");
    assert_eq!(requests("ok"), Some(0.0), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_body_is_told_to_continue_by_the_gateway_and_refused_with_403() {
    // An upstream that reads what it is sent and never answers: any `100 Continue` the client
    // gets is the gateway's own.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let upstream_addr = silent.local_addr().unwrap();
    let received = std::thread::spawn(move || {
        use std::io::Read;
        let (mut conn, _) = silent.accept().unwrap();
        conn.set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .unwrap();
        let mut seen = Vec::new();
        let _ = conn.read_to_end(&mut seen);
        String::from_utf8_lossy(&seen).into_owned()
    });
    let keys = Keys::new();
    let (addr, admin) = (free_port(), free_port());
    let policy = policy_yaml(upstream_addr, addr, admin, &keys, "", DEFAULT_LIMITS);
    let key = key_header(&keys.reader);
    // Over Pingora's 64 KiB retry buffer: held back until complete, then authorized.
    let body = call(3, "create_deal", json!({"name": "x".repeat(70_000)}));
    let ((interim, answer), text) = blocking(move || {
        let gw = Gateway::start(addr, admin, &policy);
        let answered = post_after_continue(addr, &key, &body);
        let denied = [
            ("key", "reader"),
            ("tool", "create_deal"),
            ("outcome", "denied"),
        ];
        let counted = |text: &str| metric(text, "mcpwarden_requests_total", &denied) == Some(1.0);
        assert!(eventually(3, || counted(&gw.metrics())), "{}", gw.metrics());
        (answered, gw.metrics())
    })
    .await;
    assert!(interim.starts_with("HTTP/1.1 100"), "{interim}");
    assert!(answer.starts_with("HTTP/1.1 403"), "{answer:?}");
    assert!(answer.contains("-32003"), "{answer}");
    let ok = [
        ("key", "reader"),
        ("tool", "create_deal"),
        ("outcome", "ok"),
    ];
    assert_eq!(
        metric(&text, "mcpwarden_requests_total", &ok),
        Some(0.0),
        "{text}"
    );
    // The upstream saw the request head, without `Expect`, and not one byte of the body.
    let received = received.join().unwrap().to_ascii_lowercase();
    assert!(received.starts_with("post /mcp"), "{received}");
    assert!(!received.contains("expect:"), "{received}");
    assert!(received.ends_with("\r\n\r\n"), "{received}");
}
