//! OAuth end to end: the real binary as the resource server of an issuer that serves its JWK
//! set over real HTTP on loopback, with tokens signed here by the fixture keys. Discovery
//! (RFC 9728), 401 challenges, a token's scopes narrowing `tools/list` and the step-up 403,
//! refused tokens never reaching the upstream, key rotation at the issuer, an unreachable
//! issuer, and a token identity counted and limited like a key.

use std::net::SocketAddr;

use serde_json::{Value, json};

use crate::common::issuer::{Issuer, fixture, sign};
use crate::common::upstream::{self, Mode};
use crate::common::*;
use crate::usage::{get, row, usage_json};

struct Setup {
    up: upstream::Upstream,
    gw: Gateway,
    keys: Keys,
    issuer: Issuer,
    /// `http://<gateway>/mcp`: the audience tokens must carry.
    resource: String,
    policy: String,
}

fn oauth_section(issuer: &Issuer, resource: &str) -> String {
    let url = issuer.url();
    format!(
        "oauth:\n  resource: {resource}\n  authorization_servers: [{url}]\n  issuers:\n    - issuer: {url}\n      jwks_uri: {url}/jwks.json\n      workspace_claim: org\n      algorithms: [RS256, ES256, EdDSA]\n      introspection_endpoint: {url}/introspect\n      client_id: gateway\n      client_secret: ${{TEST_INTROSPECTION_SECRET}}\n  scopes_supported: [crm:read, crm:write]\n"
    )
}

async fn setup_limited(limits: &str) -> Setup {
    setup_with(Mode::Stateless, limits).await
}

async fn setup_with(mode: Mode, limits: &str) -> Setup {
    let issuer = Issuer::start(fixture("jwks.json")).await;
    let up = upstream::start(mode).await;
    let keys = Keys::new();
    let (addr, admin) = (free_port(), free_port());
    let resource = format!("http://{addr}/mcp");
    let mut policy = policy_yaml(up.addr, addr, admin, &keys, "", limits);
    let without_oauth = policy.clone();
    policy.push_str(&oauth_section(&issuer, &resource));
    let gw = blocking(move || Gateway::start(addr, admin, &policy)).await;
    Setup {
        up,
        gw,
        keys,
        issuer,
        resource,
        policy: without_oauth,
    }
}

async fn setup() -> Setup {
    setup_limited(DEFAULT_LIMITS).await
}

fn bearer(token: &str) -> String {
    format!("Authorization: Bearer {token}")
}

fn list_tools(addr: SocketAddr, credential: &str) -> Response {
    post(
        addr,
        &[credential],
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#,
    )
}

fn tool_list(resp: &Response) -> Vec<String> {
    resp.messages()[0]["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_owned())
        .collect()
}

fn search(addr: SocketAddr, credential: &str) -> Response {
    post(
        addr,
        &[credential],
        &call(1, "search_deals", json!({"query": "acme"})),
    )
}

fn metadata_url(addr: SocketAddr) -> String {
    format!("http://{addr}/.well-known/oauth-protected-resource/mcp")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_protected_resource_metadata_is_served_at_both_well_known_paths() {
    let s = setup().await;
    let addr = s.gw.addr;
    for path in [
        "/.well-known/oauth-protected-resource",
        "/.well-known/oauth-protected-resource/mcp",
    ] {
        let resp = blocking(move || get(addr, path)).await;
        assert_eq!(resp.status, 200, "{path}: {}", resp.text());
        assert_eq!(resp.header("content-type"), Some("application/json"));
        let doc = resp.json();
        assert_eq!(doc["resource"], s.resource.as_str());
        assert_eq!(doc["authorization_servers"], json!([s.issuer.url()]));
        assert_eq!(doc["scopes_supported"], json!(["crm:read", "crm:write"]));
        assert_eq!(doc["bearer_methods_supported"], json!(["header"]));
    }
    assert_eq!(s.up.calls.total(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_401_leads_step_by_step_to_the_issuer() {
    let s = setup().await;
    let addr = s.gw.addr;
    let refused = blocking(move || {
        post(
            addr,
            &[],
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#,
        )
    })
    .await;
    assert_eq!(refused.status, 401);
    let challenge = refused.header("www-authenticate").unwrap().to_owned();
    let expected = format!(
        "Bearer realm=\"mcpwarden\", resource_metadata=\"{}\"",
        metadata_url(addr)
    );
    assert_eq!(challenge, expected);
    // The client follows resource_metadata to the document, and the document to the issuer.
    let path = metadata_url(addr).replacen(&format!("http://{addr}"), "", 1);
    let doc = blocking(move || get(addr, &path)).await.json();
    assert_eq!(doc["authorization_servers"][0], s.issuer.url().as_str());
    assert_eq!(doc["resource"], s.resource.as_str());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_token_sees_read_tools_and_is_challenged_to_step_up_for_a_write() {
    let s = setup().await;
    let addr = s.gw.addr;
    let token = bearer(&sign("rsa-1", &s.issuer.claims(&s.resource, "crm:read")));
    let (list, found, write) = blocking(move || {
        (
            list_tools(addr, &token),
            search(addr, &token),
            post(
                addr,
                &[&token],
                &call(2, "create_deal", json!({"name": "x", "company": "y"})),
            ),
        )
    })
    .await;
    assert_eq!(list.status, 200, "{}", list.text());
    let names = tool_list(&list);
    assert!(names.contains(&"search_deals".to_owned()), "{names:?}");
    assert!(!names.iter().any(|n| n.starts_with("create_")), "{names:?}");

    assert_eq!(found.status, 200, "{}", found.text());
    assert_eq!(s.up.calls.count("search_deals"), 1);
    assert_eq!(
        s.up.calls.header("x-mcpwarden-key").as_deref(),
        Some("oauth:app")
    );
    assert_eq!(
        s.up.calls.header("x-mcpwarden-workspace").as_deref(),
        Some("acme")
    );
    assert_eq!(
        s.up.calls.header("x-mcpwarden-scopes").as_deref(),
        Some("crm:read")
    );
    assert_eq!(
        s.up.calls.header("authorization"),
        None,
        "no token passthrough"
    );

    assert_eq!(write.status, 403, "{}", write.text());
    assert_eq!(
        write.header("www-authenticate").unwrap(),
        format!(
            "Bearer error=\"insufficient_scope\", scope=\"crm:write\", resource_metadata=\"{}\"",
            metadata_url(addr)
        )
    );
    let body = write.json();
    assert_eq!(body["error"]["code"], -32003);
    assert_eq!(
        body["error"]["data"]["requiredScopes"],
        json!(["crm:write"])
    );
    assert_eq!(s.up.calls.count("create_deal"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_signed_with_rs256_es256_and_eddsa_pass_and_keys_still_work() {
    let s = setup().await;
    let addr = s.gw.addr;
    let tokens: Vec<String> = ["rsa-1", "ec-1", "ed-1"]
        .iter()
        .map(|kid| {
            bearer(&sign(
                kid,
                &s.issuer.claims(&s.resource, "crm:read crm:write"),
            ))
        })
        .collect();
    let key = key_header(&s.keys.reader);
    let statuses = blocking(move || {
        let mut statuses: Vec<u16> = tokens.iter().map(|t| search(addr, t).status).collect();
        statuses.push(search(addr, &key).status);
        statuses
    })
    .await;
    assert_eq!(statuses, [200, 200, 200, 200]);
    assert_eq!(s.up.calls.count("search_deals"), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_tokens_are_401_bad_token_and_never_reach_the_upstream() {
    let s = setup().await;
    let addr = s.gw.addr;
    let valid = s.issuer.claims(&s.resource, "crm:read");
    let with = |field: &str, value: Value| {
        let mut claims = valid.clone();
        claims[field] = value;
        sign("rsa-1", &claims)
    };
    let without = |field: &str| {
        let mut claims = valid.clone();
        claims.as_object_mut().unwrap().remove(field);
        sign("rsa-1", &claims)
    };
    let tampered = {
        let token = sign("rsa-1", &valid);
        let mut parts: Vec<&str> = token.split('.').collect();
        let forged = with("scope", json!("crm:read crm:write"));
        parts[1] = forged.split('.').nth(1).unwrap();
        parts.join(".")
    };
    let unsigned = {
        let token = sign("rsa-1", &valid);
        let payload = token.split('.').nth(1).unwrap().to_owned();
        // {"alg":"none","typ":"JWT"}
        format!("eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.{payload}.")
    };
    let bad = vec![
        ("expired", with("exp", json!(issuer_now() - 3600))),
        ("not yet valid", with("nbf", json!(issuer_now() + 3600))),
        (
            "wrong audience",
            with("aud", json!("https://elsewhere.example/mcp")),
        ),
        ("wrong issuer", with("iss", json!("https://evil.example"))),
        ("unknown workspace", with("org", json!("nobody"))),
        ("no exp", without("exp")),
        ("no client", without("client_id")),
        ("tampered", tampered),
        ("alg none", unsigned),
        ("garbage", "not-a-token".to_owned()),
    ];
    let n = bad.len();
    let answers = blocking(move || {
        bad.into_iter()
            .map(|(what, token)| (what, search(addr, &bearer(&token))))
            .collect::<Vec<_>>()
    })
    .await;
    for (what, resp) in answers {
        assert_eq!(resp.status, 401, "{what}: {}", resp.text());
        assert_eq!(resp.json()["error"]["code"], -32001, "{what}");
        let challenge = resp.header("www-authenticate").unwrap();
        assert!(
            challenge.contains("error=\"invalid_token\""),
            "{what}: {challenge}"
        );
        assert!(
            challenge.contains("resource_metadata="),
            "{what}: {challenge}"
        );
    }
    assert_eq!(s.up.calls.total(), 0);
    let metrics = s.gw.metrics();
    assert_eq!(
        metric(
            &metrics,
            "mcpwarden_auth_failures_total",
            &[("reason", "bad_token")]
        ),
        Some(n as f64)
    );
}

fn issuer_now() -> i64 {
    crate::common::issuer::unix_now()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_rotated_at_the_issuer_is_picked_up_without_a_restart() {
    let s = setup().await;
    let addr = s.gw.addr;
    let old = bearer(&sign("rsa-1", &s.issuer.claims(&s.resource, "crm:read")));
    assert_eq!(blocking(move || search(addr, &old)).await.status, 200);
    // The issuer now signs with rsa-2, a kid the gateway has never seen.
    s.issuer.rotate(fixture("jwks-rotated.json"));
    let new = bearer(&sign("rsa-2", &s.issuer.claims(&s.resource, "crm:read")));
    let resp = blocking(move || search(addr, &new)).await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(s.up.calls.count("search_deals"), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_issuer_does_not_fail_tokens_whose_keys_are_cached() {
    let s = setup().await;
    let addr = s.gw.addr;
    let token = bearer(&sign("rsa-1", &s.issuer.claims(&s.resource, "crm:read")));
    let first = token.clone();
    assert_eq!(blocking(move || search(addr, &first)).await.status, 200);
    s.issuer.stop();
    // An unknown kid now finds the issuer down: refused, and the cached keys stay.
    let unknown = bearer(&sign("rsa-2", &s.issuer.claims(&s.resource, "crm:read")));
    let (refused, still) = blocking(move || (search(addr, &unknown), search(addr, &token))).await;
    assert_eq!(refused.status, 401);
    assert_eq!(still.status, 200, "{}", still.text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oauth_client_is_counted_and_limited_like_a_key() {
    let s = setup_limited("  requests_per_minute: 3\n").await;
    let addr = s.gw.addr;
    let token = bearer(&sign("rsa-1", &s.issuer.claims(&s.resource, "crm:read")));
    let statuses = blocking(move || {
        (0..4)
            .map(|_| search(addr, &token).status)
            .collect::<Vec<_>>()
    })
    .await;
    assert_eq!(statuses, [200, 200, 200, 429]);
    let labels = [("workspace", "acme"), ("key", "oauth:app")];
    let gw = &s.gw;
    assert!(eventually(5, || {
        metric(
            &gw.metrics(),
            "mcpwarden_requests_total",
            &[labels[0], labels[1], ("outcome", "ok")],
        ) == Some(3.0)
    }));
    let metrics = gw.metrics();
    assert_eq!(
        metric(
            &metrics,
            "mcpwarden_rate_limited_total",
            &[labels[0], labels[1], ("limit", "rate")]
        ),
        Some(1.0)
    );
    let admin = s.gw.admin;
    let usage = blocking(move || usage_json(admin)).await;
    let client = row(&usage, "acme", "oauth:app");
    assert_eq!(client["requests"]["minute"], 4);
    assert_eq!(client["rate_limited"], 1, "{client}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_without_oauth_stops_taking_tokens() {
    let s = setup().await;
    let addr = s.gw.addr;
    let token = bearer(&sign("rsa-1", &s.issuer.claims(&s.resource, "crm:read")));
    let first = token.clone();
    assert_eq!(blocking(move || search(addr, &first)).await.status, 200);
    s.gw.write_policy(&s.policy);
    let refused = blocking(move || eventually(5, || search(addr, &token).status == 401)).await;
    assert!(refused);
    let doc = blocking(move || get(addr, "/.well-known/oauth-protected-resource")).await;
    assert_eq!(doc.status, 401, "not served without oauth:");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_belongs_to_the_user_a_token_acts_for_not_just_its_client() {
    let s = setup_with(Mode::StatefulJson, DEFAULT_LIMITS).await;
    let addr = s.gw.addr;
    let token_of = |sub: &str| {
        let mut claims = s.issuer.claims(&s.resource, "crm:read");
        claims["sub"] = json!(sub);
        bearer(&sign("rsa-1", &claims))
    };
    let (alice, alice_again, bob) = (token_of("alice"), token_of("alice"), token_of("bob"));
    let (own, foreign) = blocking(move || {
        let sid = session(addr, &alice);
        let list = r#"{"jsonrpc":"2.0","id":2,"method":"tools/list"}"#;
        (
            post(addr, &[&alice_again, &sid], list),
            post(addr, &[&bob, &sid], list),
        )
    })
    .await;
    assert_eq!(own.status, 200, "{}", own.text());
    assert_eq!(
        foreign.status,
        404,
        "same client, another user: {}",
        foreign.text()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_opaque_token_is_introspected_at_its_issuer() {
    let s = setup().await;
    let addr = s.gw.addr;
    let mut claims = s.issuer.claims(&s.resource, "crm:read");
    claims["client_id"] = json!("opaque-app");
    s.issuer.issue_opaque("opaque-token-1", claims);
    let (known, unknown) = blocking(move || {
        (
            search(addr, &bearer("opaque-token-1")),
            search(addr, &bearer("opaque-token-2")),
        )
    })
    .await;
    assert_eq!(known.status, 200, "{}", known.text());
    assert_eq!(
        s.up.calls.header("x-mcpwarden-key").as_deref(),
        Some("oauth:opaque-app")
    );
    assert_eq!(unknown.status, 401, "{}", unknown.text());
    assert_eq!(s.up.calls.count("search_deals"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_step_up_is_offered_for_scopes_the_workspace_cannot_have() {
    let s = setup().await;
    let addr = s.gw.addr;
    // Workspace `beta` has crm:read but never crm:write.
    let mut claims = s.issuer.claims(&s.resource, "crm:read crm:write");
    claims["org"] = json!("beta");
    let token = bearer(&sign("rsa-1", &claims));
    let write = blocking(move || {
        post(
            addr,
            &[&token],
            &call(2, "create_deal", json!({"name": "x", "company": "y"})),
        )
    })
    .await;
    assert_eq!(write.status, 403, "{}", write.text());
    assert_eq!(write.header("www-authenticate"), None);
    assert_eq!(write.json()["error"]["code"], -32003);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_tokens_do_not_spend_the_address_budget_but_forged_ones_do() {
    let s = setup().await;
    let addr = s.gw.addr;
    let mut claims = s.issuer.claims(&s.resource, "crm:read");
    claims["exp"] = json!(issuer_now() - 3600);
    let expired = bearer(&sign("rsa-1", &claims));
    let valid = bearer(&sign("rsa-1", &s.issuer.claims(&s.resource, "crm:read")));
    let forged = bearer(&format!(
        "{}x",
        sign("rsa-1", &s.issuer.claims(&s.resource, "crm:read"))
    ));
    let (expired_statuses, after, forged_statuses) = blocking(move || {
        let expired_statuses: Vec<u16> = (0..40).map(|_| search(addr, &expired).status).collect();
        let after = search(addr, &valid).status;
        let forged_statuses: Vec<u16> = (0..40).map(|_| search(addr, &forged).status).collect();
        (expired_statuses, after, forged_statuses)
    })
    .await;
    assert!(
        expired_statuses.iter().all(|&s| s == 401),
        "{expired_statuses:?}"
    );
    assert_eq!(after, 200);
    assert!(
        forged_statuses.contains(&429),
        "forgeries are guesses: {forged_statuses:?}"
    );
}
