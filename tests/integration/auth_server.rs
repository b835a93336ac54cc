//! The test authorization server with `rmcp`'s OAuth client alone, no gateway: RFC 8414
//! discovery, dynamic client registration, authorization with PKCE and the resource
//! indicator, and the token exchange — so a failure of the end-to-end OAuth run through the
//! gateway can be told apart from a failure of the client or of this server.

use rmcp::transport::auth::{
    AuthorizationManager, AuthorizationMetadataSource, AuthorizationRequest, AuthorizationSession,
};
use serde_json::json;

use crate::common::auth_server::{self, ORG};

/// Never requested: the test takes the code from the redirect itself.
const REDIRECT: &str = "http://127.0.0.1:9/callback";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rmcp_registers_authorizes_and_exchanges_a_code_for_a_verifiable_token() {
    let auth = auth_server::start("http://127.0.0.1:9/mcp").await;

    // With nothing in front of it, rmcp finds the server through RFC 8414 at the base URL.
    let mut manager = AuthorizationManager::new(auth.url()).await.unwrap();
    let resolution = manager.resolve_metadata().await.unwrap();
    assert_eq!(
        resolution.source,
        AuthorizationMetadataSource::AuthorizationServerMetadata
    );
    manager.set_metadata(resolution.metadata);

    let request = AuthorizationRequest::new(REDIRECT)
        .with_scopes(["crm:read"])
        .with_client_name("mcpwarden tests");
    let session = AuthorizationSession::new(manager, request)
        .await
        .map_err(|(_, e)| e)
        .unwrap();
    assert_eq!(auth.clients(), ["client-1"], "registered dynamically");

    let callback = auth_server::approve(session.get_authorization_url()).await;
    session.handle_callback_url(&callback).await.unwrap();
    let token = session.auth_manager.get_access_token().await.unwrap();

    let authorize = &auth.authorize_requests()[0];
    assert_eq!(authorize["code_challenge_method"], "S256");
    assert_eq!(authorize["scope"], "crm:read");
    let resource = authorize.get("resource").expect("RFC 8707 resource sent");
    let exchange = &auth.token_requests()[0];
    assert!(exchange.contains_key("code_verifier"));
    assert_eq!(exchange.get("resource"), Some(resource));

    let jwks = reqwest::get(format!("{}/jwks.json", auth.url()))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let claims = auth_server::verify(&token, &jwks, &auth.url(), resource);
    assert_eq!(claims["client_id"], "client-1");
    assert_eq!(claims["scope"], "crm:read");
    assert_eq!(claims["org"], ORG);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_code_is_refused_without_its_pkce_verifier_and_is_good_only_once() {
    let auth = auth_server::start("http://127.0.0.1:9/mcp").await;
    let http = reqwest::Client::new();
    let registered: serde_json::Value = http
        .post(format!("{}/register", auth.url()))
        .json(&json!({ "redirect_uris": [REDIRECT], "client_name": "by hand" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let client_id = registered["client_id"].as_str().unwrap();

    // The challenge of the RFC 7636 appendix B example.
    let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    let challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
    let mut authorize = url::Url::parse(&format!("{}/authorize", auth.url())).unwrap();
    authorize
        .query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", client_id)
        .append_pair("redirect_uri", REDIRECT)
        .append_pair("scope", "crm:read")
        .append_pair("state", "s1")
        .append_pair("code_challenge", challenge)
        .append_pair("code_challenge_method", "S256");
    let exchange = |code: String, verifier: &'static str| {
        let form = [
            ("grant_type", "authorization_code".to_owned()),
            ("code", code),
            ("redirect_uri", REDIRECT.to_owned()),
            ("client_id", client_id.to_owned()),
            ("code_verifier", verifier.to_owned()),
        ];
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form)
            .finish();
        http.post(format!("{}/token", auth.url()))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
    };
    let code = |callback: String| {
        let url = url::Url::parse(&callback).unwrap();
        let pairs: std::collections::HashMap<_, _> = url.query_pairs().into_owned().collect();
        assert_eq!(pairs["state"], "s1");
        pairs["code"].clone()
    };

    let first = code(auth_server::approve(authorize.as_str()).await);
    let wrong = exchange(first.clone(), "not-the-verifier").await.unwrap();
    assert_eq!(wrong.status(), 400);
    let body: serde_json::Value = wrong.json().await.unwrap();
    assert_eq!(body["error"], "invalid_grant");
    // The failed attempt used the code up.
    let retry = exchange(first, verifier).await.unwrap();
    assert_eq!(retry.status(), 400);

    let second = code(auth_server::approve(authorize.as_str()).await);
    let ok = exchange(second.clone(), verifier).await.unwrap();
    assert_eq!(ok.status(), 200, "{:?}", ok.text().await);
    let body: serde_json::Value = ok.json().await.unwrap();
    assert_eq!(body["token_type"], "Bearer");
    let claims = auth_server::verify(
        body["access_token"].as_str().unwrap(),
        auth_server::JWKS,
        &auth.url(),
        "http://127.0.0.1:9/mcp",
    );
    assert_eq!(claims["client_id"], client_id);
    assert_eq!(exchange(second, verifier).await.unwrap().status(), 400);
}
