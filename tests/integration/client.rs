//! Real MCP clients through the gateway: `rmcp`'s client with a key, both protocol eras,
//! standalone SSE streams, session deletion, and SSE that is streamed rather than buffered.

use std::collections::HashMap;

use rmcp::ServiceExt;
use rmcp::model::CallToolRequestParams;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use serde_json::json;

use crate::common::upstream::{self, Mode};
use crate::common::*;

async fn start(mode: Mode) -> (upstream::Upstream, Gateway, Keys) {
    let up = upstream::start(mode).await;
    let keys = Keys::new();
    let (addr, admin) = (free_port(), free_port());
    let policy = policy_yaml(up.addr, addr, admin, &keys, "", DEFAULT_LIMITS);
    let gw = tokio::task::spawn_blocking(move || Gateway::start(addr, admin, &policy))
        .await
        .unwrap();
    (up, gw, keys)
}

fn config(
    gw: &Gateway,
    key: &mcpwarden::auth::api_key::ApiKey,
) -> StreamableHttpClientTransportConfig {
    let mut headers = HashMap::new();
    headers.insert(
        http::HeaderName::from_static("x-api-key"),
        http::HeaderValue::from_str(key.expose()).unwrap(),
    );
    StreamableHttpClientTransportConfig::with_uri(format!("http://{}/mcp", gw.addr))
        .custom_headers(headers)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_rmcp_client_with_a_read_only_key_sees_and_calls_only_what_it_may() {
    for mode in [Mode::Stateful, Mode::StatefulJson, Mode::Stateless] {
        let (up, gw, keys) = start(mode).await;
        let transport = StreamableHttpClientTransport::from_config(config(&gw, &keys.reader));
        let client = ().serve(transport).await.unwrap();

        let names = crate::common::tool_names(&client).await;
        assert_eq!(
            names,
            [
                "big_result",
                "echo_size",
                "progress",
                "search_deals",
                "slow"
            ],
            "{mode:?}"
        );

        search_works(&client).await;

        let refused = client
            .call_tool(
                CallToolRequestParams::new("create_deal")
                    .with_arguments(args(json!({"name": "x"}))),
            )
            .await;
        assert!(
            refused.is_err(),
            "{mode:?}: a write with a read-only key must fail"
        );
        assert_eq!(up.calls.count("create_deal"), 0);
        assert_eq!(up.calls.count("search_deals"), 1);
        client.cancel().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_rmcp_client_sending_the_key_as_a_bearer_token_works() {
    let (up, gw, keys) = start(Mode::Stateful).await;
    let config = StreamableHttpClientTransportConfig::with_uri(format!("http://{}/mcp", gw.addr))
        .auth_header(keys.full.expose());
    let client = ().serve(StreamableHttpClientTransport::from_config(config)).await.unwrap();
    let result = client
        .call_tool(
            CallToolRequestParams::new("create_deal").with_arguments(args(json!({"name": "x"}))),
        )
        .await
        .unwrap();
    assert!(!result.content.is_empty());
    assert_eq!(up.calls.count("create_deal"), 1);
    assert_eq!(up.calls.header("authorization"), None);
    client.cancel().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stateless_2026_revision_passes_with_its_headers() {
    let (up, gw, keys) = start(Mode::Stateless).await;
    let (addr, key) = (gw.addr, key_header(&keys.reader));
    let resp = tokio::task::spawn_blocking(move || {
        post(
            addr,
            &[
                &key,
                "MCP-Protocol-Version: 2026-07-28",
                "Mcp-Method: tools/call",
                "Mcp-Name: search_deals",
            ],
            &json!({
                "jsonrpc": "2.0", "id": 11, "method": "tools/call",
                "params": {
                    "name": "search_deals", "arguments": {"query": "new"},
                    "_meta": {
                        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
                        "io.modelcontextprotocol/clientCapabilities": {}
                    }
                }
            })
            .to_string(),
        )
    })
    .await
    .unwrap();
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(resp.messages()[0]["id"], 11);
    assert_eq!(up.calls.count("search_deals"), 1);
    assert_eq!(up.calls.header("mcp-method").as_deref(), Some("tools/call"));
    assert_eq!(
        up.calls.header("mcp-protocol-version").as_deref(),
        Some("2026-07-28")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sse_events_reach_the_client_while_the_tool_is_still_running() {
    let (up, gw, keys) = start(Mode::Stateful).await;
    let (addr, key) = (gw.addr, key_header(&keys.full));
    let calls = up.calls.clone();
    tokio::task::spawn_blocking(move || {
        let sid = session(addr, &key);
        let (mut stream, mut seen) = call_held_progress(addr, &key, &sid);
        // The tool is now blocked until released: the first progress event can only be here
        // if the gateway streams events as they come.
        read_until(&mut stream, &mut seen, "notifications/progress");
        assert!(!String::from_utf8_lossy(&seen).contains("\"id\":5"));
        calls.release();
        read_until(&mut stream, &mut seen, "\"id\":5");
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_standalone_get_stream_opens_and_delete_ends_the_session() {
    let (_up, gw, keys) = start(Mode::Stateful).await;
    let (addr, full, reader) = (gw.addr, key_header(&keys.full), key_header(&keys.reader));
    tokio::task::spawn_blocking(move || {
        let sid = session(addr, &full);
        let get = format!("GET /mcp HTTP/1.1\r\nHost: x\r\n{full}\r\n{sid}\r\nAccept: text/event-stream\r\n\r\n");
        let (_stream, head, _) = open(addr, &get);
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        assert!(head.to_ascii_lowercase().contains("content-type: text/event-stream"), "{head}");

        // Another key can neither listen on nor delete the session.
        let foreign = format!("GET /mcp HTTP/1.1\r\nHost: x\r\n{reader}\r\n{sid}\r\nAccept: text/event-stream\r\nConnection: close\r\n\r\n");
        assert_eq!(raw(addr, &foreign).unwrap().status, 404);
        let delete = |key: &str| {
            raw(addr, &format!("DELETE /mcp HTTP/1.1\r\nHost: x\r\n{key}\r\n{sid}\r\nConnection: close\r\n\r\n")).unwrap()
        };
        assert_eq!(delete(&reader).status, 404);
        let deleted = delete(&full);
        assert!(deleted.status == 200 || deleted.status == 204 || deleted.status == 202, "{deleted:?}");
        // The upstream no longer knows the session.
        let after = post(addr, &[&full, &sid], &call(2, "search_deals", json!({"query": "a"})));
        assert_eq!(after.status, 404, "{}", after.text());
    })
    .await
    .unwrap();
}
