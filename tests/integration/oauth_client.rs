//! OAuth end to end with a real MCP client library: `rmcp`'s auth support meets the gateway's
//! 401, follows its `resource_metadata` to the RFC 9728 document and from there to the test
//! authorization server (RFC 8414), registers (RFC 7591), authorizes with PKCE and the RFC 8707
//! resource indicator, exchanges the code for a JWT, and then works through the gateway with
//! it; and the same discovery chain step by step over plain HTTP.
//!
//! What rmcp does by itself: everything from the challenge on — discovery, registration, the
//! authorization URL, the code exchange, and the bearer token on every MCP request (its
//! `AuthClient`). What the test does in its place: the user's browser (it requests the
//! authorization URL and hands the redirect back to rmcp), and the step-up after a 403, where
//! it asks rmcp for the wider authorization URL itself, as an application would.

use rmcp::ServiceExt;
use rmcp::model::CallToolRequestParams;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::auth::{AuthClient, AuthorizationRequest, OAuthState};
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use serde_json::json;

use crate::common::auth_server::{self, AuthServer};
use crate::common::upstream::{self, Mode, Upstream};
use crate::common::*;

/// Never requested: the test takes the code from the redirect itself.
const REDIRECT: &str = "http://127.0.0.1:9/callback";

struct Setup {
    up: Upstream,
    auth: AuthServer,
    gw: Gateway,
    /// `http://127.0.0.1:<gateway port>/mcp`, the gateway's resource identifier.
    resource: String,
}

async fn setup() -> Setup {
    let up = upstream::start(Mode::Stateful).await;
    let (addr, admin) = (free_port(), free_port());
    let resource = format!("http://{addr}/mcp");
    let auth = auth_server::start(&resource).await;
    let issuer = auth.url();
    let policy = format!(
        "{}oauth:
  resource: {resource}
  authorization_servers: [{issuer}]
  issuers:
    - issuer: {issuer}
      jwks_uri: {issuer}/jwks.json
      workspace_claim: org
  scopes_supported: [crm:read, crm:write]
",
        policy_yaml(up.addr, addr, admin, &Keys::new(), "", DEFAULT_LIMITS)
    );
    let gw = blocking(move || Gateway::start(addr, admin, &policy)).await;
    Setup {
        up,
        auth,
        gw,
        resource,
    }
}

/// The value of `name="value"` in a `WWW-Authenticate` header.
fn param<'a>(challenge: &'a str, name: &str) -> Option<&'a str> {
    let at = challenge.find(&format!("{name}=\""))? + name.len() + 2;
    challenge[at..].split('"').next()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_rmcp_client_completes_the_oauth_dance_from_the_401_and_works_through_the_gateway() {
    let s = setup().await;

    // 1. An MCP client without a token: the gateway's 401 is the start of the dance.
    let Err(refused) = ().serve(StreamableHttpClientTransport::from_uri(s.resource.clone())).await
    else {
        panic!("a session without a token");
    };
    let challenge = refused
        .auth_challenge()
        .expect("a 401 challenge")
        .to_owned();
    assert!(
        param(&challenge, "resource_metadata").is_some(),
        "{challenge}"
    );

    // 2. rmcp discovers, registers and builds the authorization URL from that challenge.
    let mut oauth = OAuthState::new(&s.resource, None).await.unwrap();
    let request = AuthorizationRequest::new(REDIRECT)
        .with_scopes(["crm:read"])
        .with_client_name("mcpwarden e2e")
        .with_challenge(challenge);
    oauth.start_authorization(request).await.unwrap();
    assert_eq!(s.auth.clients(), ["client-1"]);

    // 3. The "user" approves; rmcp checks state and issuer and exchanges the code.
    let url = oauth.get_authorization_url().await.unwrap();
    oauth
        .handle_callback_url(&auth_server::approve(&url).await)
        .await
        .unwrap();
    let authorize = &s.auth.authorize_requests()[0];
    assert_eq!(authorize["resource"], s.resource, "RFC 8707 audience");
    assert_eq!(authorize["code_challenge_method"], "S256");
    assert_eq!(s.auth.token_requests()[0]["resource"], s.resource);

    // 4. An MCP session through the gateway with the token.
    let manager = oauth.into_authorization_manager().unwrap();
    let auth_client = AuthClient::new(reqwest::Client::default(), manager);
    let transport = StreamableHttpClientTransport::with_client(
        auth_client.clone(),
        StreamableHttpClientTransportConfig::with_uri(s.resource.clone()),
    );
    let client = ().serve(transport).await.unwrap();
    assert_eq!(
        tool_names(&client).await,
        [
            "big_result",
            "echo_size",
            "progress",
            "search_deals",
            "slow"
        ],
        "crm:read sees read tools only"
    );
    search_works(&client).await;
    assert_eq!(
        s.up.calls.header("x-mcpwarden-key").as_deref(),
        Some("oauth:client-1")
    );
    assert_eq!(
        s.up.calls.header("x-mcpwarden-workspace").as_deref(),
        Some("acme")
    );
    assert_eq!(s.up.calls.header("authorization"), None, "no passthrough");

    // 5. A write tool is refused with the step-up challenge, and never reaches the upstream.
    let refused = client
        .call_tool(
            CallToolRequestParams::new("create_deal").with_arguments(args(json!({"name": "x"}))),
        )
        .await;
    assert!(refused.is_err(), "a write with crm:read must fail");
    assert_eq!(s.up.calls.count("create_deal"), 0);
    let token = auth_client.get_access_token().await.unwrap();
    let (addr, bearer) = (s.gw.addr, format!("Authorization: Bearer {token}"));
    let resp = blocking(move || post(addr, &[&bearer], &call(7, "create_deal", json!({})))).await;
    assert_eq!(resp.status, 403, "{}", resp.text());
    let step_up = resp.header("www-authenticate").unwrap().to_owned();
    assert!(
        step_up.contains("error=\"insufficient_scope\""),
        "{step_up}"
    );
    assert_eq!(param(&step_up, "scope"), Some("crm:write"), "{step_up}");
    // rmcp may already have closed this session on the 403; either way it is done.
    let _ = client.cancel().await;

    // 6. The step-up: rmcp asks for the union of scopes; with the new token the write passes.
    let url = {
        let manager = auth_client.auth_manager.lock().await;
        manager.request_scope_upgrade("crm:write").await.unwrap()
    };
    let callback = auth_server::approve(&url).await;
    let callback =
        rmcp::transport::auth::AuthorizationCallback::from_redirect_url(&callback).unwrap();
    auth_client
        .auth_manager
        .lock()
        .await
        .exchange_code_for_token_with_issuer(
            &callback.code,
            &callback.csrf_token,
            callback.issuer.as_deref(),
        )
        .await
        .unwrap();
    assert_eq!(
        s.auth.authorize_requests()[1]["scope"],
        "crm:read crm:write"
    );
    let transport = StreamableHttpClientTransport::with_client(
        auth_client,
        StreamableHttpClientTransportConfig::with_uri(s.resource.clone()),
    );
    let client = ().serve(transport).await.unwrap();
    client
        .call_tool(
            CallToolRequestParams::new("create_deal").with_arguments(args(json!({"name": "x"}))),
        )
        .await
        .unwrap();
    assert_eq!(s.up.calls.count("create_deal"), 1);
    client.cancel().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_discovery_chain_step_by_step_over_http() {
    let s = setup().await;
    let addr = s.gw.addr;

    // 401 → resource_metadata.
    let resp = blocking(move || post(addr, &[], &initialize(1))).await;
    assert_eq!(resp.status, 401, "{}", resp.text());
    let challenge = resp.header("www-authenticate").unwrap().to_owned();
    assert!(challenge.starts_with("Bearer "), "{challenge}");
    assert_eq!(param(&challenge, "realm"), Some("mcpwarden"));
    let metadata_url = param(&challenge, "resource_metadata").unwrap().to_owned();
    let origin = format!("http://{addr}");
    assert!(
        [
            format!("{origin}/.well-known/oauth-protected-resource"),
            format!("{origin}/.well-known/oauth-protected-resource/mcp"),
        ]
        .contains(&metadata_url),
        "{metadata_url}"
    );

    // The RFC 9728 document, at that URL and at both well-known paths.
    let document: serde_json::Value = reqwest::get(&metadata_url)
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(document["resource"], s.resource);
    assert_eq!(document["authorization_servers"], json!([s.auth.url()]));
    assert_eq!(
        document["scopes_supported"],
        json!(["crm:read", "crm:write"])
    );
    assert_eq!(document["bearer_methods_supported"], json!(["header"]));
    for path in [
        "/.well-known/oauth-protected-resource",
        "/.well-known/oauth-protected-resource/mcp",
    ] {
        let resp = reqwest::get(format!("{origin}{path}")).await.unwrap();
        assert_eq!(resp.status(), 200, "{path}");
        let same: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(same, document, "{path}");
    }

    // authorization_servers[0] → its RFC 8414 metadata.
    let issuer = document["authorization_servers"][0].as_str().unwrap();
    let metadata: serde_json::Value =
        reqwest::get(format!("{issuer}/.well-known/oauth-authorization-server"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
    assert_eq!(metadata["issuer"], issuer);
    assert_eq!(metadata["jwks_uri"], format!("{issuer}/jwks.json"));
    for endpoint in [
        "authorization_endpoint",
        "token_endpoint",
        "registration_endpoint",
    ] {
        assert!(metadata[endpoint].is_string(), "{endpoint}");
    }
    assert_eq!(
        metadata["code_challenge_methods_supported"],
        json!(["S256"])
    );
}
