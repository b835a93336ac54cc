//! A small OAuth 2.1 authorization server for the tests, on `127.0.0.1:0`: what an MCP client
//! meets after following a resource's metadata to its authorization server.
//!
//! - `GET /.well-known/oauth-authorization-server`: RFC 8414 metadata;
//! - `POST /register`: RFC 7591 dynamic client registration (public clients, any name);
//! - `GET /authorize`: approves at once (there is no user) by redirecting to the registered
//!   `redirect_uri` with `code`, `state` and RFC 9207 `iss`; the code remembers the client,
//!   the redirect URI, the scopes, the PKCE challenge and the RFC 8707 `resource`;
//! - `POST /token`: `authorization_code` with PKCE S256 only; answers a JWT access token
//!   (RFC 9068 shape) signed RS256 with `tests/fixtures/oauth/rsa.pem`, kid `rsa-1`: `iss`
//!   this server's URL, `aud` the `resource` the client asked for (else the configured one),
//!   `client_id`, `scope`, `org: "acme"`, one hour of validity;
//! - `GET /jwks.json`: `tests/fixtures/oauth/jwks.json`, the public half of that key.
//!
//! Invariants: a code is good once, for the client and redirect URI it was issued to, and only
//! with the verifier of its challenge; a request it cannot honour gets a 400 (an OAuth error
//! body at `/token`), never a token. Every authorize and token request is recorded so a test
//! can see what the client sent.
//!
//! The fixture key pair (RSA 2048, PKCS#1): `openssl genrsa -traditional -out rsa.pem 2048`;
//! `jwks.json` holds its modulus and exponent, base64url, with `kid` `rsa-1`, `alg` RS256 and
//! `use` sig. Test-only: the private key is public in this repository.
#![allow(dead_code)] // each test uses a different part

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{StatusCode, Uri, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// The workspace every token names (claim `org`).
pub const ORG: &str = "acme";
/// The key id of the fixture key.
pub const KID: &str = "rsa-1";
pub const RSA_PEM: &str = include_str!("../fixtures/oauth/rsa.pem");
pub const JWKS: &str = include_str!("../fixtures/oauth/jwks.json");

/// A running authorization server; dropping it shuts it down.
pub struct AuthServer {
    pub addr: SocketAddr,
    state: Arc<Shared>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
}

impl AuthServer {
    /// The issuer identifier, `http://127.0.0.1:<port>` (no trailing slash).
    pub fn url(&self) -> String {
        self.state.issuer.clone()
    }

    /// The query parameters of every `/authorize` request, in order.
    pub fn authorize_requests(&self) -> Vec<HashMap<String, String>> {
        self.state.log.lock().unwrap().authorize.clone()
    }

    /// The form parameters of every `/token` request, in order.
    pub fn token_requests(&self) -> Vec<HashMap<String, String>> {
        self.state.log.lock().unwrap().token.clone()
    }

    /// The client ids registered so far.
    pub fn clients(&self) -> Vec<String> {
        let mut ids: Vec<String> = self.state.clients.lock().unwrap().keys().cloned().collect();
        ids.sort();
        ids
    }
}

impl Drop for AuthServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

struct Shared {
    issuer: String,
    /// The audience of a token whose client named no `resource`.
    default_resource: String,
    /// client_id → its registered redirect URIs.
    clients: Mutex<HashMap<String, Vec<String>>>,
    codes: Mutex<HashMap<String, Grant>>,
    log: Mutex<Log>,
    key: jsonwebtoken::EncodingKey,
}

#[derive(Default)]
struct Log {
    authorize: Vec<HashMap<String, String>>,
    token: Vec<HashMap<String, String>>,
}

/// What an authorization code stands for.
struct Grant {
    client_id: String,
    redirect_uri: String,
    scope: String,
    challenge: String,
    resource: Option<String>,
}

/// Starts a server whose tokens are for `default_resource` unless the client names another.
pub async fn start(default_resource: &str) -> AuthServer {
    mcpwarden::auth::oauth::install_crypto_provider();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let state = Arc::new(Shared {
        issuer: format!("http://{addr}"),
        default_resource: default_resource.to_owned(),
        clients: Mutex::default(),
        codes: Mutex::default(),
        log: Mutex::default(),
        key: jsonwebtoken::EncodingKey::from_rsa_pem(RSA_PEM.as_bytes()).unwrap(),
    });
    let router = Router::new()
        .route("/.well-known/oauth-authorization-server", get(metadata))
        .route("/register", post(register))
        .route("/authorize", get(authorize))
        .route("/token", post(token))
        .route("/jwks.json", get(jwks))
        .with_state(state.clone());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        let _ = axum::serve(listener, router)
            .with_graceful_shutdown(async move {
                let _ = rx.await;
            })
            .await;
    });
    AuthServer {
        addr,
        state,
        shutdown: Some(tx),
    }
}

fn json_response(status: StatusCode, body: Value) -> Response {
    (
        status,
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        body.to_string(),
    )
        .into_response()
}

/// An RFC 6749 §5.2 error from the token endpoint.
fn oauth_error(error: &str, description: &str) -> Response {
    json_response(
        StatusCode::BAD_REQUEST,
        json!({ "error": error, "error_description": description }),
    )
}

fn params(encoded: &[u8]) -> HashMap<String, String> {
    url::form_urlencoded::parse(encoded).into_owned().collect()
}

async fn metadata(State(s): State<Arc<Shared>>) -> Response {
    let issuer = &s.issuer;
    json_response(
        StatusCode::OK,
        json!({
            "issuer": issuer,
            "authorization_endpoint": format!("{issuer}/authorize"),
            "token_endpoint": format!("{issuer}/token"),
            "registration_endpoint": format!("{issuer}/register"),
            "jwks_uri": format!("{issuer}/jwks.json"),
            "scopes_supported": ["crm:read", "crm:write"],
            "response_types_supported": ["code"],
            "grant_types_supported": ["authorization_code"],
            "token_endpoint_auth_methods_supported": ["none"],
            "code_challenge_methods_supported": ["S256"],
            "authorization_response_iss_parameter_supported": true,
        }),
    )
}

async fn register(State(s): State<Arc<Shared>>, body: Bytes) -> Response {
    let Ok(request) = serde_json::from_slice::<Value>(&body) else {
        return oauth_error("invalid_client_metadata", "not JSON");
    };
    let redirect_uris: Vec<String> = request["redirect_uris"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|u| u.as_str().map(str::to_owned))
        .collect();
    if redirect_uris.is_empty() {
        return oauth_error("invalid_redirect_uri", "redirect_uris is required");
    }
    let mut clients = s.clients.lock().unwrap();
    let client_id = format!("client-{}", clients.len() + 1);
    clients.insert(client_id.clone(), redirect_uris.clone());
    json_response(
        StatusCode::CREATED,
        json!({
            "client_id": client_id,
            "client_name": request["client_name"],
            "redirect_uris": redirect_uris,
            "token_endpoint_auth_method": "none",
            "grant_types": ["authorization_code"],
            "response_types": ["code"],
        }),
    )
}

async fn authorize(State(s): State<Arc<Shared>>, uri: Uri) -> Response {
    let q = params(uri.query().unwrap_or_default().as_bytes());
    s.log.lock().unwrap().authorize.push(q.clone());
    let get = |name: &str| q.get(name).map(String::as_str).unwrap_or_default();
    let (client_id, redirect_uri) = (get("client_id"), get("redirect_uri"));
    // Errors are not redirected: before the client and its redirect URI are known to match,
    // redirecting would be an open redirector, and after, a plain 400 is all a test needs.
    let registered = s.clients.lock().unwrap().get(client_id).cloned();
    if !registered.is_some_and(|uris| uris.iter().any(|u| u == redirect_uri)) {
        return (StatusCode::BAD_REQUEST, "unknown client or redirect_uri").into_response();
    }
    if get("response_type") != "code" {
        return (StatusCode::BAD_REQUEST, "response_type must be code").into_response();
    }
    if get("code_challenge_method") != "S256" || get("code_challenge").is_empty() {
        return (StatusCode::BAD_REQUEST, "PKCE with S256 is required").into_response();
    }
    let code = format!(
        "code-{}",
        URL_SAFE_NO_PAD.encode(rand::random::<[u8; 16]>())
    );
    s.codes.lock().unwrap().insert(
        code.clone(),
        Grant {
            client_id: client_id.to_owned(),
            redirect_uri: redirect_uri.to_owned(),
            scope: get("scope").to_owned(),
            challenge: get("code_challenge").to_owned(),
            resource: q.get("resource").cloned(),
        },
    );
    let mut location = url::Url::parse(redirect_uri).unwrap();
    location
        .query_pairs_mut()
        .append_pair("code", &code)
        .append_pair("state", get("state"))
        .append_pair("iss", &s.issuer);
    Redirect::to(location.as_str()).into_response()
}

async fn token(State(s): State<Arc<Shared>>, body: Bytes) -> Response {
    let form = params(&body);
    s.log.lock().unwrap().token.push(form.clone());
    let get = |name: &str| form.get(name).map(String::as_str).unwrap_or_default();
    if get("grant_type") != "authorization_code" {
        return oauth_error("unsupported_grant_type", "only authorization_code");
    }
    // Public clients only (`token_endpoint_auth_methods_supported: ["none"]`): the client
    // names itself in the form.
    let client_id = get("client_id").to_owned();
    // Taken out whatever happens next: a code is good for one attempt.
    let Some(grant) = s.codes.lock().unwrap().remove(get("code")) else {
        return oauth_error("invalid_grant", "unknown or used code");
    };
    if grant.client_id != client_id || grant.redirect_uri != get("redirect_uri") {
        return oauth_error(
            "invalid_grant",
            "code issued to another client or redirect_uri",
        );
    }
    let verifier = get("code_verifier");
    if URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes())) != grant.challenge {
        return oauth_error("invalid_grant", "PKCE verification failed");
    }
    let resource = match (grant.resource, form.get("resource")) {
        (Some(at_authorize), Some(now)) if &at_authorize != now => {
            return oauth_error("invalid_target", "resource differs from the authorization");
        }
        (Some(resource), _) => resource,
        (None, Some(resource)) => resource.clone(),
        (None, None) => s.default_resource.clone(),
    };
    let access_token = sign(&s, &client_id, &grant.scope, &resource);
    json_response(
        StatusCode::OK,
        json!({
            "access_token": access_token,
            "token_type": "Bearer",
            "expires_in": 3600,
            "scope": grant.scope,
        }),
    )
}

async fn jwks() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], JWKS).into_response()
}

/// An RFC 9068 access token for `client_id`.
fn sign(s: &Shared, client_id: &str, scope: &str, audience: &str) -> String {
    let now = jsonwebtoken::get_current_timestamp();
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    header.kid = Some(KID.to_owned());
    header.typ = Some("at+jwt".to_owned());
    let claims = json!({
        "iss": s.issuer,
        "sub": client_id,
        "aud": audience,
        "iat": now,
        "exp": now + 3600,
        "jti": URL_SAFE_NO_PAD.encode(rand::random::<[u8; 12]>()),
        "client_id": client_id,
        "scope": scope,
        "org": ORG,
    });
    jsonwebtoken::encode(&header, &claims, &s.key).unwrap()
}

/// The claims of `token` once its signature checks against `jwks` (a JWK set, as served at
/// `/jwks.json`) and its `iss`, `aud` and `exp` are as expected.
pub fn verify(token: &str, jwks: &str, issuer: &str, audience: &str) -> Value {
    mcpwarden::auth::oauth::install_crypto_provider();
    let header = jsonwebtoken::decode_header(token).unwrap();
    let set: jsonwebtoken::jwk::JwkSet = serde_json::from_str(jwks).unwrap();
    let jwk = set.find(header.kid.as_deref().unwrap()).unwrap();
    let key = jsonwebtoken::DecodingKey::from_jwk(jwk).unwrap();
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    validation.set_issuer(&[issuer]);
    validation.set_audience(&[audience]);
    validation.set_required_spec_claims(&["exp", "iss", "aud"]);
    jsonwebtoken::decode::<Value>(token, &key, &validation)
        .unwrap()
        .claims
}

/// What a user's browser does with an authorization URL here: requests it and, instead of
/// following the redirect to the client's callback, returns the callback URL (with `code`,
/// `state` and `iss`) for the test to hand to the client.
pub async fn approve(authorization_url: &str) -> String {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let resp = client.get(authorization_url).send().await.unwrap();
    assert!(
        resp.status().is_redirection(),
        "authorization refused ({}): {}",
        resp.status(),
        resp.text().await.unwrap_or_default()
    );
    resp.headers()[reqwest::header::LOCATION]
        .to_str()
        .unwrap()
        .to_owned()
}
