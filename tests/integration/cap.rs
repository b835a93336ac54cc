//! The response size cap end to end: the real binary in front of the real rmcp upstream (and
//! a canned one for framings rmcp does not produce), read as bytes by a plain HTTP client and
//! as messages by rmcp's client.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use rmcp::ServiceExt;
use rmcp::model::CallToolRequestParams;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use serde_json::{Value, json};

use crate::common::upstream::{self, Mode, chunk};
use crate::common::*;
use crate::gateway::setup_with;

/// 200KB, as the policy writes it.
const CAP: usize = 200_000;

fn limits(max_response_bytes: &str) -> String {
    format!("{DEFAULT_LIMITS}  max_response_bytes: {max_response_bytes}\n")
}

/// For a stateful upstream: initialize and return the `Mcp-Session-Id: …` header line.
fn open_session(addr: SocketAddr, key: &str) -> Option<String> {
    let resp = post(addr, &[key], &initialize(1));
    assert_eq!(resp.status, 200, "{}", resp.text());
    let header = format!("Mcp-Session-Id: {}", resp.header("mcp-session-id")?);
    let note = json!({"jsonrpc":"2.0","method":"notifications/initialized"}).to_string();
    let resp = post(addr, &[key, &header], &note);
    assert!(resp.status == 202 || resp.status == 200, "{}", resp.text());
    Some(header)
}

/// `tools/call big_result` for `bytes` of text (id 7), with a session when there is one.
fn call_big_result(addr: SocketAddr, key: &str, bytes: usize) -> Response {
    let session = open_session(addr, key);
    let mut headers = vec![key, "Accept-Encoding: gzip, br"];
    if let Some(sid) = &session {
        headers.push(sid);
    }
    post(
        addr,
        &headers,
        &call(7, "big_result", json!({ "bytes": bytes })),
    )
}

const FULL: [(&str, &str); 2] = [("workspace", "acme"), ("key", "full")];

/// `/metrics` once the sample of `metric` with `labels` is `want` (a request is counted just
/// after its client has the response), or as it is after 3 s.
fn metrics_when(gw: &Gateway, name: &str, labels: &[(&str, &str)], want: f64) -> String {
    eventually(3, || metric(&gw.metrics(), name, labels) == Some(want));
    gw.metrics()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_300kb_json_result_under_a_200kb_cap_arrives_cut_well_formed_and_within_it() {
    for mode in [Mode::Stateless, Mode::StatefulJson] {
        let s = setup_with(mode, "", &limits("200KB")).await;
        let (addr, key) = (s.gw.addr, key_header(&s.keys.full));
        let resp = blocking(move || call_big_result(addr, &key, 300_000)).await;
        assert_eq!(resp.status, 200, "{mode:?}: {}", resp.text());
        assert_eq!(resp.header("content-type"), Some("application/json"));
        assert_eq!(
            resp.header("content-length"),
            None,
            "{mode:?}: sent chunked"
        );
        assert!(
            resp.body.len() <= CAP,
            "{mode:?}: {} bytes",
            resp.body.len()
        );
        let v = resp.json();
        assert_eq!(v["id"], 7);
        let text = v["result"]["content"][0]["text"].as_str().unwrap();
        assert!(text.len() > CAP - 1000 && text.bytes().all(|b| b == b'x'));
        assert_eq!(v["result"]["_meta"]["mcpwarden/truncated"], true);
        // The upstream was asked for an uncompressed body.
        assert_eq!(s.up.calls.header("accept-encoding"), None, "{mode:?}");
        let metrics = blocking(move || {
            metrics_when(&s.gw, "mcpwarden_responses_truncated_total", &FULL, 1.0)
        })
        .await;
        let truncated = metric(&metrics, "mcpwarden_responses_truncated_total", &FULL);
        assert_eq!(truncated, Some(1.0), "{mode:?}\n{metrics}");
        let too_large = [
            FULL[0],
            FULL[1],
            ("tool", "big_result"),
            ("outcome", "too_large"),
        ];
        assert_eq!(
            metric(&metrics, "mcpwarden_requests_total", &too_large),
            Some(1.0)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_result_within_the_cap_passes_untouched_and_is_not_counted() {
    let s = setup_with(Mode::Stateless, "", &limits("200KB")).await;
    let (addr, key) = (s.gw.addr, key_header(&s.keys.full));
    let resp = blocking(move || call_big_result(addr, &key, 150_000)).await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    let v = resp.json();
    assert_eq!(
        v["result"]["content"][0]["text"].as_str().unwrap().len(),
        150_000
    );
    assert_eq!(v["result"].get("_meta"), None);
    // rmcp sends a length; within the cap it is kept, as the body is.
    let length = resp.body.len().to_string();
    assert_eq!(resp.header("content-length"), Some(length.as_str()));
    let metrics = blocking(move || s.gw.metrics()).await;
    // Every key's series shows from the start, at zero until a cut.
    assert_eq!(
        metric(&metrics, "mcpwarden_responses_truncated_total", &FULL),
        Some(0.0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_300kb_sse_result_under_a_200kb_cap_becomes_the_error_event_for_its_id() {
    let s = setup_with(Mode::Stateful, "", &limits("200KB")).await;
    let (addr, key) = (s.gw.addr, key_header(&s.keys.full));
    let resp = blocking(move || call_big_result(addr, &key, 300_000)).await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert!(
        resp.header("content-type")
            .is_some_and(|c| c.starts_with("text/event-stream"))
    );
    assert!(resp.body.len() <= CAP, "{} bytes", resp.body.len());
    let text = resp.text();
    assert!(text.ends_with("\n\n"), "{text}");
    let last = resp.messages().pop().unwrap();
    assert_eq!(last["id"], 7);
    assert_eq!(last["error"]["code"], -32005);
    assert_eq!(last["error"]["data"]["limitBytes"], CAP);
    let metrics =
        blocking(move || metrics_when(&s.gw, "mcpwarden_responses_truncated_total", &FULL, 1.0))
            .await;
    assert_eq!(
        metric(&metrics, "mcpwarden_responses_truncated_total", &FULL),
        Some(1.0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tools_list_under_a_small_cap_is_the_error_for_its_id_never_a_partial_list() {
    for mode in [Mode::Stateless, Mode::Stateful] {
        let s = setup_with(mode, "", &limits("1KB")).await;
        let (addr, key) = (s.gw.addr, key_header(&s.keys.reader));
        let resp = blocking(move || {
            let session = open_session(addr, &key);
            let mut headers = vec![key.as_str()];
            if let Some(sid) = &session {
                headers.push(sid);
            }
            let list = json!({"jsonrpc":"2.0","id":2,"method":"tools/list"}).to_string();
            post(addr, &headers, &list)
        })
        .await;
        assert_eq!(resp.status, 200, "{mode:?}: {}", resp.text());
        assert!(
            resp.body.len() <= 1000,
            "{mode:?}: {} bytes",
            resp.body.len()
        );
        assert!(!resp.text().contains("search_deals"), "{mode:?}");
        let answer = resp.messages().into_iter().find(|m| m["id"] == 2).unwrap();
        assert_eq!(answer["error"]["code"], -32005, "{mode:?}");
        assert_eq!(answer["error"]["data"]["limitBytes"], 1000);
        let reader = [("workspace", "acme"), ("key", "reader")];
        let metrics = blocking(move || {
            metrics_when(&s.gw, "mcpwarden_responses_truncated_total", &reader, 1.0)
        })
        .await;
        assert_eq!(
            metric(&metrics, "mcpwarden_responses_truncated_total", &reader),
            Some(1.0),
            "{mode:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_rmcp_client_reads_the_cut_text_or_the_error() {
    for mode in [Mode::Stateless, Mode::Stateful] {
        let s = setup_with(mode, "", &limits("200KB")).await;
        let mut headers = std::collections::HashMap::new();
        headers.insert(
            http::HeaderName::from_static("x-api-key"),
            http::HeaderValue::from_str(s.keys.full.expose()).unwrap(),
        );
        let config =
            StreamableHttpClientTransportConfig::with_uri(format!("http://{}/mcp", s.gw.addr))
                .custom_headers(headers);
        let client = ().serve(StreamableHttpClientTransport::from_config(config)).await.unwrap();
        let result = client
            .call_tool(
                CallToolRequestParams::new("big_result")
                    .with_arguments(args(json!({"bytes": 300_000}))),
            )
            .await;
        match (mode, result) {
            (Mode::Stateless, Ok(result)) => {
                let text = &result.content[0].as_text().unwrap().text;
                assert!(text.len() > CAP - 1000 && text.len() < CAP);
                let v = serde_json::to_value(&result).unwrap();
                assert_eq!(v["_meta"]["mcpwarden/truncated"], true);
            }
            (Mode::Stateful, Err(rmcp::ServiceError::McpError(e))) => {
                assert_eq!(e.code.0, -32005);
            }
            (mode, other) => panic!("{mode:?}: {other:?}"),
        }
        client.cancel().await.unwrap();
    }
}

/// A canned upstream behind a gateway with a 1KB cap.
async fn canned_setup(parts: Vec<Vec<u8>>) -> (upstream::Canned, Gateway, Keys) {
    let up = upstream::canned(parts).await;
    let keys = Keys::new();
    let (addr, admin) = (free_port(), free_port());
    let policy = policy_yaml(up.addr, addr, admin, &keys, "", &limits("1KB"));
    let gw = blocking(move || Gateway::start(addr, admin, &policy)).await;
    (up, gw, keys)
}

fn head(content_type: &str, framing: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\n{framing}\r\nConnection: close\r\n\r\n"
    )
    .into_bytes()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chunked_json_result_without_a_length_is_held_then_cut() {
    let result = json!({"jsonrpc":"2.0","id":7,"result":{"content":[{"type":"text","text":"é".repeat(3000)}]}})
        .to_string();
    let mut response = head("application/json", "Transfer-Encoding: chunked");
    for piece in result.as_bytes().chunks(333) {
        response.extend(chunk(piece));
    }
    response.extend_from_slice(b"0\r\n\r\n");
    let (_up, gw, keys) = canned_setup(vec![response]).await;
    let (addr, key) = (gw.addr, key_header(&keys.full));
    let resp =
        blocking(move || post(addr, &[&key], &call(7, "big_result", json!({"bytes": 1})))).await;
    assert!(resp.body.len() <= 1000, "{}", resp.body.len());
    let v = resp.json();
    let text = v["result"]["content"][0]["text"].as_str().unwrap();
    assert!(
        text.chars().count() > 400 && text.chars().all(|c| c == 'é'),
        "{text}"
    );
    assert_eq!(v["result"]["_meta"]["mcpwarden/truncated"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compressed_body_over_the_cap_is_replaced_whole_with_json_headers() {
    let mut response = head(
        "application/json",
        "Content-Encoding: gzip\r\nContent-Length: 5000",
    );
    response.extend_from_slice(&[0x1f; 5000]);
    let (_up, gw, keys) = canned_setup(vec![response]).await;
    let (addr, key) = (gw.addr, key_header(&keys.full));
    let resp =
        blocking(move || post(addr, &[&key], &call(7, "big_result", json!({"bytes": 1})))).await;
    assert_eq!(resp.header("content-type"), Some("application/json"));
    assert_eq!(resp.header("content-encoding"), None);
    let v = resp.json();
    assert_eq!(v["id"], 7);
    assert_eq!(v["error"]["code"], -32005);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crlf_sse_events_pass_until_one_would_cross_the_cap() {
    let mut response = head("text/event-stream", "Transfer-Encoding: chunked");
    let small = "id: 1\r\nevent: message\r\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/message\"}\r\n\r\n";
    let big = format!("data: {}\r\n\r\n", "y".repeat(2000));
    response.extend(chunk(b": keep-alive\r\n\r\n"));
    // The small event split across two chunks, mid-CRLF.
    response.extend(chunk(&small.as_bytes()[..small.len() - 1]));
    response.extend(chunk(&small.as_bytes()[small.len() - 1..]));
    response.extend(chunk(big.as_bytes()));
    response.extend_from_slice(b"0\r\n\r\n");
    let (_up, gw, keys) = canned_setup(vec![response]).await;
    let (addr, key) = (gw.addr, key_header(&keys.full));
    let resp =
        blocking(move || post(addr, &[&key], &call(7, "big_result", json!({"bytes": 1})))).await;
    let text = resp.text();
    assert!(text.len() <= 1000, "{}", text.len());
    assert!(
        text.starts_with(&format!(": keep-alive\r\n\r\n{small}")),
        "{text}"
    );
    assert!(!text.contains("yyy"));
    let error: Value = serde_json::from_str(
        text.rsplit("data: ")
            .next()
            .unwrap()
            .trim_end_matches("\n\n"),
    )
    .unwrap();
    assert_eq!(error["id"], 7);
    assert_eq!(error["error"]["code"], -32005);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_get_stream_the_cap_ended_is_closed_so_the_client_reconnects() {
    let mut first = head("text/event-stream", "Transfer-Encoding: chunked");
    first.extend(chunk(b": ping\n\n"));
    first.extend(chunk(format!("data: {}\n\n", "z".repeat(2000)).as_bytes()));
    let later = chunk(b"data: later\n\n");
    // Never released: the upstream keeps the stream open, as a GET stream does.
    let end = b"0\r\n\r\n".to_vec();
    let (up, gw, keys) = canned_setup(vec![first, later, end]).await;
    let (addr, key) = (gw.addr, key_header(&keys.full));
    let up = std::sync::Arc::new(up);
    let release = up.clone();
    let seen = blocking(move || {
        let mut stream = TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let request = format!(
            "GET /mcp HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\n{key}\r\n\r\n"
        );
        stream.write_all(request.as_bytes()).unwrap();
        let mut seen = Vec::new();
        let mut buf = [0u8; 4096];
        while !String::from_utf8_lossy(&seen).contains("-32005") {
            let n = stream.read(&mut buf).unwrap();
            assert!(n > 0, "closed before the error event");
            seen.extend_from_slice(&buf[..n]);
        }
        // The upstream sends another event: the gateway closes the connection instead.
        release.release();
        loop {
            match stream.read(&mut buf) {
                Ok(0) => break seen,
                Ok(n) => seen.extend_from_slice(&buf[..n]),
                Err(e) => panic!("the connection stayed open: {e}"),
            }
        }
    })
    .await;
    let text = String::from_utf8_lossy(&seen);
    assert!(!text.contains("later") && !text.contains("zzz"), "{text}");
    assert!(text.contains(": ping"));
}
