//! Arbitrary bearer values through OAuth token verification (JWT splitting, header and claim
//! parsing, key selection, signature checks) against the test key set: it must never panic,
//! and with keys from a file it never waits.
#![no_main]

use std::sync::OnceLock;
use std::task::{Context, Poll, Waker};

use libfuzzer_sys::fuzz_target;
use mcpwarden::auth::oauth::{Algorithm, Config, IssuerConfig, JwksSource, OAuth};

fn oauth() -> &'static OAuth {
    static OAUTH: OnceLock<OAuth> = OnceLock::new();
    OAUTH.get_or_init(|| {
        let json = include_str!("../../tests/fixtures/oauth/jwks.json").to_owned();
        OAuth::new(Config {
            resource: "https://mcp.example.com/mcp".into(),
            authorization_servers: vec!["https://auth.example.com".into()],
            scopes_supported: vec![],
            issuers: vec![IssuerConfig {
                issuer: "https://auth.example.com".into(),
                jwks: JwksSource::File {
                    path: "jwks.json".into(),
                    json,
                },
                algorithms: vec![Algorithm::Rs256, Algorithm::Es256, Algorithm::EdDsa],
                workspace_claim: "org".into(),
                workspaces: None,
                introspection: None,
            }],
        })
        .expect("the fixture key set")
    })
}

fuzz_target!(|token: &str| {
    let future = std::pin::pin!(oauth().verify(token, 1_800_000_000));
    let mut cx = Context::from_waker(Waker::noop());
    assert!(matches!(future.poll(&mut cx), Poll::Ready(_)), "file keys never wait");
});
