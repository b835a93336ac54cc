//! A token issuer for tests: signs access tokens with the fixed test keys in
//! `tests/fixtures/oauth/`, and serves its JWK set over real HTTP on loopback, swappable (key
//! rotation), stoppable (an unreachable issuer), counting how often it was fetched.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/oauth");

pub fn fixture(name: &str) -> String {
    std::fs::read_to_string(format!("{FIXTURES}/{name}")).unwrap()
}

/// A signing key of the fixtures: `rsa-1`, `rsa-2`, `ec-1`, `ed-1`.
pub fn signer(kid: &str) -> (Algorithm, EncodingKey) {
    match kid {
        "rsa-1" => (
            Algorithm::RS256,
            EncodingKey::from_rsa_pem(fixture("rsa.pem").as_bytes()).unwrap(),
        ),
        "rsa-2" => (
            Algorithm::RS256,
            EncodingKey::from_rsa_pem(fixture("rsa2.pem").as_bytes()).unwrap(),
        ),
        "ec-1" => (
            Algorithm::ES256,
            EncodingKey::from_ec_pem(fixture("ec.pem").as_bytes()).unwrap(),
        ),
        "ed-1" => (
            Algorithm::EdDSA,
            EncodingKey::from_ed_pem(fixture("ed25519.pem").as_bytes()).unwrap(),
        ),
        other => panic!("no test key {other}"),
    }
}

/// `claims` signed by the fixture key `kid`.
pub fn sign(kid: &str, claims: &Value) -> String {
    mcpwarden::auth::oauth::install_crypto_provider();
    let (alg, key) = signer(kid);
    let mut header = Header::new(alg);
    header.kid = Some(kid.into());
    jsonwebtoken::encode(&header, claims, &key).unwrap()
}

pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// An issuer at `http://<addr>` serving `/jwks.json`.
pub struct Issuer {
    pub addr: SocketAddr,
    jwks: Arc<Mutex<String>>,
    /// Opaque tokens `/introspect` answers `active: true` for, with their claims.
    active: Arc<Mutex<HashMap<String, Value>>>,
    fetches: Arc<AtomicUsize>,
    /// Once set, even a connection kept alive from before gets a 503.
    stopped: Arc<AtomicBool>,
    server: tokio::task::JoinHandle<()>,
}

impl Issuer {
    /// Serves `jwks` (a fixture's content) until dropped or stopped.
    pub async fn start(jwks: String) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let body = Arc::new(Mutex::new(jwks));
        let fetches = Arc::new(AtomicUsize::new(0));
        let stopped = Arc::new(AtomicBool::new(false));
        let active = Arc::new(Mutex::new(HashMap::<String, Value>::new()));
        let introspect = {
            let active = active.clone();
            move |headers: axum::http::HeaderMap, form: String| {
                let active = active.clone();
                async move {
                    // Basic base64("gateway:s3cret")
                    let authorized = headers.get("authorization").and_then(|v| v.to_str().ok())
                        == Some("Basic Z2F0ZXdheTpzM2NyZXQ=");
                    if !authorized {
                        return (axum::http::StatusCode::UNAUTHORIZED, String::new());
                    }
                    let token = form.strip_prefix("token=").unwrap_or_default().to_owned();
                    let answer = active
                        .lock()
                        .unwrap()
                        .get(&token)
                        .cloned()
                        .unwrap_or_else(|| json!({"active": false}));
                    (axum::http::StatusCode::OK, answer.to_string())
                }
            }
        };
        let app = {
            let (body, fetches, stopped) = (body.clone(), fetches.clone(), stopped.clone());
            axum::Router::new()
                .route("/introspect", axum::routing::post(introspect))
                .route(
                    "/jwks.json",
                    axum::routing::get(move || {
                        let (body, fetches, stopped) =
                            (body.clone(), fetches.clone(), stopped.clone());
                        async move {
                            if stopped.load(Ordering::SeqCst) {
                                return (
                                    axum::http::StatusCode::SERVICE_UNAVAILABLE,
                                    String::new(),
                                );
                            }
                            fetches.fetch_add(1, Ordering::SeqCst);
                            (axum::http::StatusCode::OK, body.lock().unwrap().clone())
                        }
                    }),
                )
        };
        let server = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Self {
            addr,
            jwks: body,
            active,
            fetches,
            stopped,
            server,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Serves `jwks` from now on (the issuer rotated its keys).
    pub fn rotate(&self, jwks: String) {
        *self.jwks.lock().unwrap() = jwks;
    }

    pub fn fetches(&self) -> usize {
        self.fetches.load(Ordering::SeqCst)
    }

    /// Makes `/introspect` answer for the opaque `token` with `claims` and `active: true`
    /// (it asks for HTTP Basic `gateway:s3cret`).
    pub fn issue_opaque(&self, token: &str, mut claims: Value) {
        claims["active"] = json!(true);
        self.active.lock().unwrap().insert(token.into(), claims);
    }

    /// Stops serving: the issuer is unreachable from now on.
    pub fn stop(&self) {
        self.stopped.store(true, Ordering::SeqCst);
        self.server.abort();
    }

    /// Claims of a valid token of this issuer for `resource`: client `app`, workspace `acme`,
    /// `scope`, valid for ten minutes. Tests change what they test.
    pub fn claims(&self, resource: &str, scope: &str) -> Value {
        let now = unix_now();
        json!({
            "iss": self.url(),
            "aud": resource,
            "sub": "user-1",
            "client_id": "app",
            "org": "acme",
            "scope": scope,
            "iat": now,
            "exp": now + 600,
        })
    }
}

impl Drop for Issuer {
    fn drop(&mut self) {
        self.server.abort();
    }
}
