//! The cost of verifying one OAuth access token with its issuer's key cached (what every
//! request with a bearer token pays):
//!
//! - `verify/rs256`, `verify/es256`, `verify/eddsa`: a valid JWT against a `jwks_file` set
//!   (decode, header, claims, signature with ring, validity);
//! - `verify/rs256_remote_cached`: the same against a `jwks_uri` set fetched once from a
//!   loopback server (the cached path: one atomic load more);
//! - `verify/unknown_kid`: everything but the signature (decode, parse, bounds, key lookup),
//!   for the share of the crypto;
//! - `block_on`: the harness's own cost per call (a ready future on a current-thread runtime).
//!
//! Run: `cargo bench --bench oauth -- --warm-up-time 1 --measurement-time 3`.

use std::hint::black_box;
use std::path::PathBuf;

use criterion::{Criterion, criterion_group, criterion_main};
use jsonwebtoken::{EncodingKey, Header};
use mcpwarden::auth::oauth::{Algorithm, Config, IssuerConfig, JwksSource, OAuth};
use serde_json::json;

const ISS: &str = "https://auth.test";
const RESOURCE: &str = "https://mcp.test/mcp";
const NOW: i64 = 1_800_000_000;

fn fixture(name: &str) -> String {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/oauth");
    std::fs::read_to_string(dir.join(name)).unwrap()
}

fn oauth(jwks: JwksSource) -> OAuth {
    OAuth::new(Config {
        resource: RESOURCE.to_owned(),
        authorization_servers: vec![ISS.to_owned()],
        scopes_supported: vec![],
        issuers: vec![IssuerConfig {
            issuer: ISS.to_owned(),
            jwks,
            algorithms: vec![Algorithm::Rs256, Algorithm::Es256, Algorithm::EdDsa],
            workspace_claim: "org".to_owned(),
            workspaces: None,
            introspection: None,
        }],
    })
    .unwrap()
}

/// A token as an authorization server would mint it: a dozen claims, three scopes.
fn token(alg: jsonwebtoken::Algorithm, kid: &str) -> String {
    let key = match alg {
        jsonwebtoken::Algorithm::RS256 => EncodingKey::from_rsa_pem(fixture("rsa.pem").as_bytes()),
        jsonwebtoken::Algorithm::ES256 => EncodingKey::from_ec_pem(fixture("ec.pem").as_bytes()),
        _ => EncodingKey::from_ed_pem(fixture("ed25519.pem").as_bytes()),
    };
    let mut header = Header::new(alg);
    header.kid = Some(kid.to_owned());
    let claims = json!({
        "iss": ISS, "sub": "user-4f2a9c", "aud": [RESOURCE, "https://api.test"],
        "exp": NOW + 3600, "iat": NOW - 60, "nbf": NOW - 60, "jti": "8d1c0b6e-2f1e-4f7a",
        "client_id": "crm-assistant", "org": "acme", "scope": "crm:read crm:write signal:read",
        "auth_time": NOW - 120, "acr": "1",
    });
    jsonwebtoken::encode(&header, &claims, &key.unwrap()).unwrap()
}

async fn serve_jwks() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/jwks", listener.local_addr().unwrap());
    let body = fixture("jwks.json");
    let router =
        axum::Router::new().route("/jwks", axum::routing::get(move || async move { body }));
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    url
}

fn bench(c: &mut Criterion) {
    mcpwarden::auth::oauth::install_crypto_provider();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let file = oauth(JwksSource::File {
        path: "jwks.json".into(),
        json: fixture("jwks.json"),
    });
    let remote = rt.block_on(async {
        let remote = oauth(JwksSource::Uri(serve_jwks().await));
        remote.prefetch().await;
        remote
    });

    let mut group = c.benchmark_group("verify");
    for (name, alg, kid) in [
        ("rs256", jsonwebtoken::Algorithm::RS256, "rsa-1"),
        ("es256", jsonwebtoken::Algorithm::ES256, "ec-1"),
        ("eddsa", jsonwebtoken::Algorithm::EdDSA, "ed-1"),
    ] {
        let token = token(alg, kid);
        assert!(rt.block_on(file.verify(&token, NOW)).is_ok());
        group.bench_function(name, |b| {
            b.iter(|| rt.block_on(file.verify(black_box(&token), NOW)))
        });
    }
    let rs = token(jsonwebtoken::Algorithm::RS256, "rsa-1");
    assert!(rt.block_on(remote.verify(&rs, NOW)).is_ok());
    group.bench_function("rs256_remote_cached", |b| {
        b.iter(|| rt.block_on(remote.verify(black_box(&rs), NOW)))
    });
    let unknown = token(jsonwebtoken::Algorithm::RS256, "rsa-9");
    assert!(rt.block_on(file.verify(&unknown, NOW)).is_err());
    group.bench_function("unknown_kid", |b| {
        b.iter(|| rt.block_on(file.verify(black_box(&unknown), NOW)))
    });
    group.finish();

    c.bench_function("block_on", |b| {
        b.iter(|| rt.block_on(async { black_box(1) }))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
