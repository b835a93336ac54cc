//! Introspection (RFC 7662) against a real endpoint on loopback: client credentials, the
//! answer's claims, the positive and negative cache, reloads, probe.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};

use super::*;
use crate::auth::oauth::{Claims, Rejected};

#[derive(Clone, Default)]
struct Endpoint {
    /// token → answer; unknown tokens are inactive.
    answers: Arc<std::sync::Mutex<HashMap<String, Value>>>,
    hits: Arc<AtomicUsize>,
}

impl Endpoint {
    fn answer(&self, token: &str, answer: Value) {
        self.answers
            .lock()
            .unwrap()
            .insert(token.to_owned(), answer);
    }
    fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

async fn introspect(
    State(endpoint): State<Endpoint>,
    headers: HeaderMap,
    body: String,
) -> (StatusCode, String) {
    endpoint.hits.fetch_add(1, Ordering::SeqCst);
    let basic = format!("Basic {}", STANDARD.encode("gateway:s3cret-value"));
    let form_ok = headers
        .get("content-type")
        .is_some_and(|v| v == "application/x-www-form-urlencoded");
    if headers.get("authorization").is_none_or(|v| *v != *basic) || !form_ok {
        return (
            StatusCode::UNAUTHORIZED,
            r#"{"error":"invalid_client"}"#.to_owned(),
        );
    }
    let Some(token) = body.strip_prefix("token=") else {
        return (StatusCode::BAD_REQUEST, String::new());
    };
    let answers = endpoint.answers.lock().unwrap();
    let answer = answers
        .get(token)
        .cloned()
        .unwrap_or(json!({"active": false}));
    (StatusCode::OK, answer.to_string())
}

async fn start() -> (Server, Endpoint) {
    let endpoint = Endpoint::default();
    let router = axum::Router::new()
        .route("/introspect", post(introspect))
        .with_state(endpoint.clone());
    (Server::start(router).await, endpoint)
}

fn opaque_oauth(server: &Server, secret: &str) -> OAuth {
    let mut issuer = super::issuer(file_jwks("jwks.json"), &ALL);
    let mut introspection = introspection(&format!("{}/introspect", server.base));
    introspection.client_secret = secret.to_owned();
    issuer.introspection = Some(introspection);
    OAuth::new(config(vec![issuer])).unwrap()
}

fn active(now: i64) -> Value {
    json!({"active": true, "iss": ISS, "aud": [RESOURCE], "exp": now + 3600,
           "client_id": "app-1", "org": "acme", "scope": "crm:read"})
}

#[tokio::test]
async fn an_active_token_is_accepted_and_its_answer_cached_for_a_minute() {
    let (server, endpoint) = start().await;
    let oauth = opaque_oauth(&server, "s3cret-value");
    endpoint.answer("opaque-1", active(NOW));
    let expected = Claims {
        client_id: "app-1".to_owned(),
        workspace: "acme".to_owned(),
        scopes: vec!["crm:read".to_owned()],
        subject: None,
    };
    assert_eq!(oauth.verify("opaque-1", NOW).await, Ok(expected.clone()));
    assert_eq!(oauth.verify("opaque-1", NOW + 59).await, Ok(expected));
    assert_eq!(endpoint.hits(), 1);
    // Revoked at the issuer: noticed once the cached answer ages out.
    endpoint.answer("opaque-1", json!({"active": false}));
    assert_eq!(
        oauth.verify("opaque-1", NOW + 60).await,
        Err(Rejected::Inactive)
    );
    assert_eq!(endpoint.hits(), 2);
}

#[tokio::test]
async fn a_positive_answer_is_cached_no_longer_than_the_token_lives() {
    let (server, endpoint) = start().await;
    let oauth = opaque_oauth(&server, "s3cret-value");
    let mut answer = active(NOW);
    answer["exp"] = json!(NOW + 5);
    endpoint.answer("short", answer);
    assert!(oauth.verify("short", NOW).await.is_ok());
    assert!(oauth.verify("short", NOW + 4).await.is_ok());
    assert_eq!(endpoint.hits(), 1);
    assert!(
        oauth.verify("short", NOW + 6).await.is_ok(),
        "within the leeway"
    );
    assert_eq!(endpoint.hits(), 2);
}

#[tokio::test]
async fn an_inactive_token_is_refused_and_the_answer_cached_for_ten_seconds() {
    let (server, endpoint) = start().await;
    let oauth = opaque_oauth(&server, "s3cret-value");
    assert_eq!(oauth.verify("unknown", NOW).await, Err(Rejected::Inactive));
    assert_eq!(
        oauth.verify("unknown", NOW + 9).await,
        Err(Rejected::Inactive)
    );
    assert_eq!(endpoint.hits(), 1);
    endpoint.answer("unknown", active(NOW));
    assert!(oauth.verify("unknown", NOW + 10).await.is_ok());
    assert_eq!(endpoint.hits(), 2);
}

#[tokio::test]
async fn the_claims_of_an_active_answer_follow_the_token_rules() {
    let (server, endpoint) = start().await;
    let oauth = opaque_oauth(&server, "s3cret-value");
    // (token, claims removed, claim set to a value, the outcome)
    let cases = [
        ("no-iss", &["iss"][..], None, Ok(())),
        ("no-aud", &["aud"], None, Err(Rejected::Claim("aud"))),
        (
            "no-iss-no-aud",
            &["iss", "aud"],
            None,
            Err(Rejected::Claim("aud")),
        ),
        (
            "access-token-type",
            &[],
            Some(("token_type", json!("access_token"))),
            Ok(()),
        ),
        (
            "bearer-token-type",
            &[],
            Some(("token_type", json!("Bearer"))),
            Ok(()),
        ),
        (
            "refresh-token-type",
            &[],
            Some(("token_type", json!("refresh_token"))),
            Err(Rejected::Claim("token_type")),
        ),
        (
            "urn-refresh-token-type",
            &[],
            Some((
                "token_type",
                json!("urn:ietf:params:oauth:token-type:Refresh_Token"),
            )),
            Err(Rejected::Claim("token_type")),
        ),
        (
            "numeric-token-type",
            &[],
            Some(("token_type", json!(1))),
            Err(Rejected::Claim("token_type")),
        ),
        (
            "other-iss",
            &[],
            Some(("iss", json!("https://other.test"))),
            Err(Rejected::Claim("iss")),
        ),
        (
            "other-aud",
            &[],
            Some(("aud", json!("https://other.test"))),
            Err(Rejected::Audience),
        ),
        ("no-exp", &["exp"], None, Err(Rejected::Claim("exp"))),
        (
            "expired",
            &[],
            Some(("exp", json!(NOW - 3600))),
            Err(Rejected::Expired),
        ),
        (
            "no-client",
            &["client_id"],
            None,
            Err(Rejected::Claim("client_id")),
        ),
        (
            "string-active",
            &[],
            Some(("active", json!("true"))),
            Err(Rejected::Unavailable),
        ),
    ];
    for (token, removed, set, want) in cases {
        let mut answer = active(NOW);
        let members = answer.as_object_mut().unwrap();
        for name in removed {
            members.remove(*name);
        }
        if let Some((name, value)) = set {
            members.insert(name.to_owned(), value);
        }
        endpoint.answer(token, answer);
        assert_eq!(oauth.verify(token, NOW).await.map(drop), want, "{token}");
    }
}

#[tokio::test]
async fn an_active_answer_the_rules_refuse_is_cached_as_negative_for_ten_seconds() {
    let (server, endpoint) = start().await;
    let oauth = opaque_oauth(&server, "s3cret-value");
    let mut answer = active(NOW);
    answer["aud"] = json!("https://other.test");
    endpoint.answer("for-another-resource", answer);
    for now in [NOW, NOW + 9] {
        assert_eq!(
            oauth.verify("for-another-resource", now).await,
            Err(Rejected::Audience)
        );
    }
    assert_eq!(endpoint.hits(), 1);
    // Refusals age out like inactive answers, not like valid ones.
    endpoint.answer("for-another-resource", active(NOW));
    assert!(oauth.verify("for-another-resource", NOW + 10).await.is_ok());
    assert_eq!(endpoint.hits(), 2);
}

#[tokio::test]
async fn wrong_credentials_or_no_endpoint_are_unavailable_and_not_cached() {
    let (server, endpoint) = start().await;
    let oauth = opaque_oauth(&server, "wrong");
    endpoint.answer("opaque-1", active(NOW));
    assert_eq!(
        oauth.verify("opaque-1", NOW).await,
        Err(Rejected::Unavailable)
    );
    assert_eq!(
        oauth.verify("opaque-1", NOW).await,
        Err(Rejected::Unavailable)
    );
    assert_eq!(endpoint.hits(), 2);

    let mut issuer = super::issuer(file_jwks("jwks.json"), &ALL);
    issuer.introspection = Some(introspection(&closed_port_url("/introspect").await));
    let oauth = OAuth::new(config(vec![issuer])).unwrap();
    assert_eq!(
        oauth.verify("opaque-1", NOW).await,
        Err(Rejected::Unavailable)
    );
}

#[tokio::test]
async fn an_opaque_token_goes_to_the_one_introspecting_issuer_only() {
    let (server, endpoint) = start().await;
    let mut first = super::issuer(file_jwks("jwks.json"), &ALL);
    first.issuer = "https://first.test".to_owned();
    let mut second = super::issuer(file_jwks("jwks.json"), &ALL);
    second.introspection = Some(introspection(&format!("{}/introspect", server.base)));
    let oauth = OAuth::new(config(vec![first.clone(), second.clone()])).unwrap();
    endpoint.answer("opaque-2", active(NOW));
    assert!(oauth.verify("opaque-2", NOW).await.is_ok());
    assert_eq!(endpoint.hits(), 1);

    // A second introspecting issuer would be shown every opaque token the first is.
    let (other, _) = start().await;
    first.introspection = Some(introspection(&format!("{}/introspect", other.base)));
    let refused = OAuth::new(config(vec![first, second])).unwrap_err();
    assert!(
        refused.contains("at most one issuer may introspect opaque tokens"),
        "{refused}"
    );
}

#[tokio::test]
async fn a_value_that_is_no_token_is_not_sent_anywhere() {
    let (server, endpoint) = start().await;
    let oauth = opaque_oauth(&server, "s3cret-value");
    for bad in ["has space", "semi;colon", "é", "="] {
        assert_eq!(
            oauth.verify(bad, NOW).await,
            Err(Rejected::Malformed),
            "{bad}"
        );
    }
    assert_eq!(endpoint.hits(), 0);
}

#[tokio::test]
async fn a_reload_with_the_same_endpoint_keeps_the_cache() {
    let (server, endpoint) = start().await;
    let old = opaque_oauth(&server, "s3cret-value");
    endpoint.answer("opaque-1", active(NOW));
    assert!(old.verify("opaque-1", NOW).await.is_ok());
    let new = opaque_oauth(&server, "s3cret-value");
    new.inherit(&old);
    assert!(new.verify("opaque-1", NOW + 1).await.is_ok());
    assert_eq!(endpoint.hits(), 1);
    // New credentials start a new cache.
    let rotated = opaque_oauth(&server, "s3cret-value-2");
    rotated.inherit(&old);
    assert_eq!(
        rotated.verify("opaque-1", NOW + 1).await,
        Err(Rejected::Unavailable)
    );
}

#[tokio::test]
async fn probe_checks_the_endpoint_and_the_credentials() {
    let (server, _) = start().await;
    assert_eq!(
        opaque_oauth(&server, "s3cret-value").probe().await,
        Vec::<String>::new()
    );
    let problems = opaque_oauth(&server, "wrong").probe().await;
    assert_eq!(problems.len(), 1);
    let prefix = format!(
        "issuer {ISS}: introspection_endpoint {}/introspect: ",
        server.base
    );
    assert!(
        problems[0].starts_with(&prefix) && problems[0].contains("401"),
        "{problems:?}"
    );
}

/// The endpoint holds every call until the test opens the gate; each call reports its
/// arrival first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_in_flight_are_capped_and_one_past_the_cap_fails_at_once() {
    use crate::auth::oauth::introspect::MAX_IN_FLIGHT;
    let (arrived_tx, mut arrived) = tokio::sync::mpsc::unbounded_channel();
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let held = gate.clone();
    let router = axum::Router::new().route(
        "/introspect",
        post(move || {
            let (arrived, gate) = (arrived_tx.clone(), held.clone());
            async move {
                arrived.send(()).unwrap();
                drop(gate.acquire().await.unwrap());
                json!({"active": false}).to_string()
            }
        }),
    );
    let server = Server::start(router).await;
    let oauth = Arc::new(opaque_oauth(&server, "s3cret-value"));

    let mut calls = tokio::task::JoinSet::new();
    for i in 0..MAX_IN_FLIGHT {
        let oauth = oauth.clone();
        calls.spawn(async move { oauth.verify(&format!("made-up-{i}"), NOW).await });
    }
    for _ in 0..MAX_IN_FLIGHT {
        arrived.recv().await.unwrap();
    }
    let one_more = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        oauth.verify("one-too-many", NOW),
    )
    .await
    .expect("a call past the cap fails at once instead of waiting for a permit");
    assert_eq!(one_more, Err(Rejected::Unavailable));

    gate.add_permits(MAX_IN_FLIGHT);
    while let Some(outcome) = calls.join_next().await {
        assert_eq!(outcome.unwrap(), Err(Rejected::Inactive));
    }
    // The permits came back with the answers; the refused call was not cached.
    assert_eq!(
        oauth.verify("one-too-many", NOW).await,
        Err(Rejected::Inactive)
    );
}
