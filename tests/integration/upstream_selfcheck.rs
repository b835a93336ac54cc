//! The test upstream itself, in each mode, driven by rmcp's client and by plain HTTP.

use rmcp::ServiceExt;
use rmcp::model::CallToolRequestParams;
use rmcp::transport::StreamableHttpClientTransport;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::common::upstream::{self, Mode};
use crate::common::{args, search_works};

const INIT: &str = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"selfcheck","version":"1"}}}"#;

async fn drive(mode: Mode) {
    let up = upstream::start(mode).await;
    let transport = StreamableHttpClientTransport::from_uri(up.url());
    let client = ().serve(transport).await.unwrap();

    let tools = client.list_all_tools().await.unwrap();
    assert_eq!(tools.len(), 9, "{mode:?}");

    let payload = "p".repeat(200_000);
    let result = client
        .call_tool(
            CallToolRequestParams::new("echo_size")
                .with_arguments(args(json!({"payload": payload}))),
        )
        .await
        .unwrap();
    let expected = format!("200000 {}", hex::encode(Sha256::digest(payload.as_bytes())));
    assert_eq!(
        result.content[0].as_text().unwrap().text,
        expected,
        "{mode:?}"
    );

    search_works(&client).await;
    let result = client
        .call_tool(
            CallToolRequestParams::new("big_result").with_arguments(args(json!({"bytes": 1000}))),
        )
        .await
        .unwrap();
    assert_eq!(result.content[0].as_text().unwrap().text.len(), 1000);

    assert_eq!(up.calls.count("echo_size"), 1);
    assert_eq!(up.calls.count("search_deals"), 1);
    assert_eq!(up.calls.count("slow"), 0);
    assert_eq!(up.calls.total(), 3);
    assert!(
        up.calls.header("host").unwrap().starts_with("127.0.0.1:"),
        "{mode:?}"
    );
    assert!(
        up.calls
            .last_headers()
            .iter()
            .any(|(n, _)| n == "content-type")
    );
    client.cancel().await.unwrap();
}

/// What an `initialize` POST gets back: content type and session id.
async fn initialize_raw(mode: Mode) -> (String, Option<String>, String) {
    let up = upstream::start(mode).await;
    let response = reqwest::Client::new()
        .post(up.url())
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(INIT)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_string();
    let session = response
        .headers()
        .get("mcp-session-id")
        .map(|v| v.to_str().unwrap().to_string());
    (content_type, session, response.text().await.unwrap())
}

#[tokio::test]
async fn stateful_upstream_serves_rmcp_client() {
    drive(Mode::Stateful).await;
}

#[tokio::test]
async fn stateful_json_upstream_serves_rmcp_client() {
    drive(Mode::StatefulJson).await;
}

#[tokio::test]
async fn stateless_upstream_serves_rmcp_client() {
    drive(Mode::Stateless).await;
}

#[tokio::test]
async fn modes_differ_in_sessions_and_content_type() {
    let (ct, session, _) = initialize_raw(Mode::Stateful).await;
    assert!(ct.starts_with("text/event-stream"));
    assert!(session.is_some());

    let (ct, session, body) = initialize_raw(Mode::StatefulJson).await;
    assert!(ct.starts_with("application/json"), "{ct}");
    assert!(session.is_some());
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["id"], 1);

    let (ct, session, body) = initialize_raw(Mode::Stateless).await;
    assert!(ct.starts_with("application/json"), "{ct}");
    assert!(session.is_none());
    let body: Value = serde_json::from_str(&body).unwrap();
    assert!(body["result"]["serverInfo"].is_object());
}

#[tokio::test]
async fn progress_tool_sends_notifications_before_its_result() {
    let up = upstream::start(Mode::Stateless).await;
    let call = r#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"progress","arguments":{"steps":3},"_meta":{"progressToken":"t1"}}}"#;
    let response = reqwest::Client::new()
        .post(up.url())
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2025-06-18")
        .body(call)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let body = response.text().await.unwrap();
    assert_eq!(body.matches("notifications/progress").count(), 3, "{body}");
    assert!(body.contains(r#""text":"done""#), "{body}");
    assert_eq!(up.calls.count("progress"), 1);
}

#[tokio::test]
async fn slow_tool_waits_and_gateway_style_host_is_accepted() {
    let up = upstream::start(Mode::Stateless).await;
    let call = r#"{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"slow","arguments":{"ms":200}}}"#;
    let started = std::time::Instant::now();
    let response = reqwest::Client::new()
        .post(up.url())
        .header("host", up.addr.to_string())
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("x-mcpwarden-key", "demo-full")
        .body(call)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(started.elapsed() >= std::time::Duration::from_millis(200));
    assert!(response.text().await.unwrap().contains("done"));
    assert_eq!(
        up.calls.header("X-Mcpwarden-Key").as_deref(),
        Some("demo-full")
    );
    assert_eq!(up.calls.header("host"), Some(up.addr.to_string()));
}

#[tokio::test]
async fn stateful_json_keeps_sse_when_progress_precedes_the_result() {
    let up = upstream::start(Mode::StatefulJson).await;
    let http = reqwest::Client::new();
    let post = |body: &'static str, session: Option<&str>| {
        let mut request = http
            .post(up.url())
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .body(body);
        if let Some(session) = session {
            request = request
                .header("mcp-session-id", session)
                .header("mcp-protocol-version", "2025-06-18");
        }
        request.send()
    };
    let init = post(INIT, None).await.unwrap();
    let session = init.headers()["mcp-session-id"]
        .to_str()
        .unwrap()
        .to_string();
    let initialized = r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#;
    assert_eq!(
        post(initialized, Some(&session)).await.unwrap().status(),
        202
    );

    let plain = r#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"search_deals","arguments":{"query":"a"}}}"#;
    let response = post(plain, Some(&session)).await.unwrap();
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["result"]["content"][0]["text"], "deals matching a");

    let with_progress = r#"{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"progress","arguments":{"steps":2},"_meta":{"progressToken":7}}}"#;
    let response = post(with_progress, Some(&session)).await.unwrap();
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let body = response.text().await.unwrap();
    assert_eq!(body.matches("notifications/progress").count(), 2, "{body}");
    assert!(body.contains(r#""id":3"#), "{body}");
}
