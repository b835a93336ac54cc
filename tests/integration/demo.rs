//! The demo MCP server on a real socket, driven by rmcp's streamable-HTTP client.

use crate::common::args;
use rmcp::ServiceExt;
use rmcp::model::CallToolRequestParams;
use rmcp::transport::StreamableHttpClientTransport;
use serde_json::{Value, json};

#[tokio::test]
async fn demo_server_lists_its_tools_and_answers_over_http() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(mcpwarden::demo::serve(listener, async move {
        let _ = stopped.await;
    }));

    let transport = StreamableHttpClientTransport::from_uri(format!("http://{addr}/mcp"));
    let client = ().serve(transport).await.unwrap();

    let names = crate::common::tool_names(&client).await;
    assert_eq!(
        names,
        [
            "add_note",
            "ask_pipeline",
            "create_contact",
            "create_deal",
            "get_company",
            "get_contact",
            "get_deal",
            "get_signal_visitors",
            "list_deals",
            "search_companies",
            "search_contacts",
            "search_deals",
            "update_contact",
            "update_deal",
            "update_deal_stage",
        ]
    );

    let found = client
        .call_tool(
            CallToolRequestParams::new("search_deals")
                .with_arguments(args(json!({"query": "globex"}))),
        )
        .await
        .unwrap();
    let deals: Value = serde_json::from_str(&found.content[0].as_text().unwrap().text).unwrap();
    let ids: Vec<&str> = deals
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["deal-3", "deal-4"]);

    let answer = client
        .call_tool(
            CallToolRequestParams::new("ask_pipeline")
                .with_arguments(args(json!({"question": "What is the largest open deal?"}))),
        )
        .await
        .unwrap();
    let answer: Value = serde_json::from_str(&answer.content[0].as_text().unwrap().text).unwrap();
    assert_eq!(answer["data"]["id"], "deal-6");

    client.cancel().await.unwrap();
    stop.send(()).unwrap();
    tokio::time::timeout(std::time::Duration::from_secs(10), server)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}
