//! Shared helpers for the OAuth runtime's tests: the fixture keys of
//! `tests/fixtures/oauth/`, configs, and tokens signed with `jsonwebtoken`'s encoder.

mod introspect;
mod jwks;
mod jwt;
mod remote;

use std::path::PathBuf;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{EncodingKey, Header};
use serde_json::{Value, json};

use super::{Algorithm, Config, IntrospectionConfig, IssuerConfig, JwksSource, OAuth};

pub const ISS: &str = "https://auth.test";
pub const RESOURCE: &str = "https://mcp.test/mcp";
/// A fixed "now" for tests that need no real clock (file key sets).
pub const NOW: i64 = 1_800_000_000;
pub const ALL: [Algorithm; 3] = [Algorithm::Rs256, Algorithm::Es256, Algorithm::EdDsa];

pub fn fixture(name: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/oauth")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

pub fn issuer(jwks: JwksSource, algorithms: &[Algorithm]) -> IssuerConfig {
    IssuerConfig {
        issuer: ISS.to_owned(),
        jwks,
        algorithms: algorithms.to_vec(),
        workspace_claim: "org".to_owned(),
        workspaces: None,
        introspection: None,
    }
}

pub fn config(issuers: Vec<IssuerConfig>) -> Config {
    Config {
        resource: RESOURCE.to_owned(),
        authorization_servers: vec![ISS.to_owned()],
        scopes_supported: vec!["crm:read".to_owned(), "crm:write".to_owned()],
        issuers,
    }
}

pub fn file_jwks(name: &str) -> JwksSource {
    JwksSource::File {
        path: PathBuf::from(name),
        json: fixture(name),
    }
}

/// A runtime with one issuer whose keys are `jwks.json`, all three algorithms pinned.
pub fn file_oauth() -> OAuth {
    OAuth::new(config(vec![issuer(file_jwks("jwks.json"), &ALL)])).unwrap()
}

pub fn introspection(endpoint: &str) -> IntrospectionConfig {
    IntrospectionConfig {
        endpoint: endpoint.to_owned(),
        client_id: "gateway".to_owned(),
        client_secret: "s3cret-value".to_owned(),
    }
}

/// Valid claims at `now`.
pub fn claims(now: i64) -> Value {
    json!({
        "iss": ISS,
        "aud": RESOURCE,
        "exp": now + 300,
        "iat": now,
        "client_id": "app-1",
        "org": "acme",
        "scope": "crm:read crm:write",
    })
}

/// Signs `claims` with the fixture key of `alg`, naming `kid` in the header.
pub fn sign(alg: jsonwebtoken::Algorithm, kid: Option<&str>, claims: &Value) -> String {
    super::crypto::install();
    let key = match alg {
        jsonwebtoken::Algorithm::RS256 => {
            EncodingKey::from_rsa_pem(fixture("rsa.pem").as_bytes()).unwrap()
        }
        jsonwebtoken::Algorithm::ES256 => {
            EncodingKey::from_ec_pem(fixture("ec.pem").as_bytes()).unwrap()
        }
        _ => EncodingKey::from_ed_pem(fixture("ed25519.pem").as_bytes()).unwrap(),
    };
    let mut header = Header::new(alg);
    header.kid = kid.map(str::to_owned);
    jsonwebtoken::encode(&header, claims, &key).unwrap()
}

pub fn rs256(claims: &Value) -> String {
    sign(jsonwebtoken::Algorithm::RS256, Some("rsa-1"), claims)
}

/// A token put together by hand (for headers the encoder would not write).
pub fn hand_token(header: &Value, claims: &Value, signature: &[u8]) -> String {
    format!(
        "{}.{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string()),
        URL_SAFE_NO_PAD.encode(signature)
    )
}

pub fn unix_now() -> i64 {
    crate::policy::store::now()
}

/// Signs with the RSA fixture key `pem` (`rsa.pem` or `rsa2.pem`) under `kid`.
pub fn rs256_with(pem: &str, kid: &str, claims: &Value) -> String {
    super::crypto::install();
    let key = EncodingKey::from_rsa_pem(fixture(pem).as_bytes()).unwrap();
    let mut header = Header::new(jsonwebtoken::Algorithm::RS256);
    header.kid = Some(kid.to_owned());
    jsonwebtoken::encode(&header, claims, &key).unwrap()
}

/// A real HTTP server on a loopback port, serving `router`; every response closes its
/// connection, so that stopping the server makes the address unreachable at once.
pub struct Server {
    pub base: String,
    task: tokio::task::JoinHandle<()>,
}

impl Server {
    pub async fn start(router: axum::Router) -> Server {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let router = router.layer(axum::middleware::map_response(
            |mut response: axum::response::Response| async move {
                let close = http::HeaderValue::from_static("close");
                response
                    .headers_mut()
                    .insert(http::header::CONNECTION, close);
                response
            },
        ));
        let task = tokio::spawn(async move {
            axum::serve(listener, router).await.unwrap();
        });
        Server { base, task }
    }

    /// Stops serving; returns once the listener is closed.
    pub async fn stop(&mut self) {
        self.task.abort();
        let _ = (&mut self.task).await;
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// An address where nothing listens.
pub async fn closed_port_url(path: &str) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    format!("http://{addr}{path}")
}
