//! The claim-validation table: each bad token refused for its own reason, good ones accepted.

use hmac::{Hmac, Mac};
use jsonwebtoken::Algorithm as Jose;
use serde_json::{Value, json};
use sha2::Sha256;

use super::*;
use crate::auth::oauth::{Claims, LEEWAY_SECS, MAX_TOKEN_BYTES, Rejected};

async fn verify(token: &str) -> Result<Claims, Rejected> {
    file_oauth().verify(token, NOW).await
}

/// `claims(NOW)` with `edit` applied.
fn with(edit: impl FnOnce(&mut serde_json::Map<String, Value>)) -> Value {
    let mut claims = claims(NOW);
    edit(claims.as_object_mut().unwrap());
    claims
}

#[tokio::test]
async fn rs256_es256_and_eddsa_tokens_are_accepted() {
    let expected = Claims {
        client_id: "app-1".to_owned(),
        workspace: "acme".to_owned(),
        scopes: vec!["crm:read".to_owned(), "crm:write".to_owned()],
        subject: None,
    };
    for (alg, kid) in [
        (Jose::RS256, "rsa-1"),
        (Jose::ES256, "ec-1"),
        (Jose::EdDSA, "ed-1"),
    ] {
        let token = sign(alg, Some(kid), &claims(NOW));
        assert_eq!(verify(&token).await, Ok(expected.clone()), "{alg:?}");
    }
}

#[tokio::test]
async fn a_token_without_kid_is_tried_against_the_keys_of_its_algorithm() {
    for alg in [Jose::RS256, Jose::ES256, Jose::EdDSA] {
        assert!(
            verify(&sign(alg, None, &claims(NOW))).await.is_ok(),
            "{alg:?}"
        );
    }
}

#[tokio::test]
async fn expiry_and_not_before_are_checked_with_the_leeway() {
    let exp = |t: i64| with(|c| drop(c.insert("exp".into(), json!(t))));
    assert!(verify(&rs256(&exp(NOW - LEEWAY_SECS + 1))).await.is_ok());
    assert_eq!(
        verify(&rs256(&exp(NOW - LEEWAY_SECS))).await,
        Err(Rejected::Expired)
    );
    assert_eq!(
        verify(&rs256(&exp(NOW - 3600))).await,
        Err(Rejected::Expired)
    );
    // A fractional NumericDate is a date too.
    assert!(
        verify(&rs256(&with(|c| drop(
            c.insert("exp".into(), json!(NOW as f64 + 60.5))
        ))))
        .await
        .is_ok()
    );

    let nbf = |t: i64| with(|c| drop(c.insert("nbf".into(), json!(t))));
    assert!(verify(&rs256(&nbf(NOW + LEEWAY_SECS))).await.is_ok());
    assert_eq!(
        verify(&rs256(&nbf(NOW + LEEWAY_SECS + 1))).await,
        Err(Rejected::NotYetValid)
    );
}

#[tokio::test]
async fn the_issuer_must_be_configured() {
    let other = with(|c| drop(c.insert("iss".into(), json!("https://evil.test"))));
    assert_eq!(verify(&rs256(&other)).await, Err(Rejected::UnknownIssuer));
}

#[tokio::test]
async fn the_audience_must_contain_the_resource() {
    let aud = |v: Value| with(|c| drop(c.insert("aud".into(), v)));
    assert_eq!(
        verify(&rs256(&aud(json!("https://other.test/mcp")))).await,
        Err(Rejected::Audience)
    );
    assert_eq!(
        verify(&rs256(&aud(json!(["https://other.test"])))).await,
        Err(Rejected::Audience)
    );
    assert!(
        verify(&rs256(&aud(json!(["https://other.test", RESOURCE]))))
            .await
            .is_ok()
    );
    assert_eq!(
        verify(&rs256(&aud(json!(42)))).await,
        Err(Rejected::Claim("aud"))
    );
    assert_eq!(
        verify(&rs256(&aud(json!([RESOURCE, 1])))).await,
        Err(Rejected::Claim("aud"))
    );
}

#[tokio::test]
async fn exp_iss_and_aud_are_required() {
    for name in ["exp", "iss", "aud"] {
        let token = rs256(&with(|c| drop(c.remove(name))));
        assert_eq!(verify(&token).await, Err(Rejected::Claim(name)), "{name}");
    }
}

#[tokio::test]
async fn time_claims_as_strings_are_refused_not_ignored() {
    let exp = with(|c| drop(c.insert("exp".into(), json!((NOW + 300).to_string()))));
    assert_eq!(verify(&rs256(&exp)).await, Err(Rejected::Claim("exp")));
    let nbf = with(|c| drop(c.insert("nbf".into(), json!("99999999999"))));
    assert_eq!(verify(&rs256(&nbf)).await, Err(Rejected::Claim("nbf")));
}

#[tokio::test]
async fn alg_none_is_refused() {
    let token = hand_token(&json!({"alg": "none", "typ": "JWT"}), &claims(NOW), b"");
    assert_eq!(verify(&token).await, Err(Rejected::Algorithm));
    let token = hand_token(&json!({"alg": "none", "kid": "rsa-1"}), &claims(NOW), b"x");
    assert_eq!(verify(&token).await, Err(Rejected::Algorithm));
}

#[tokio::test]
async fn hs256_signed_with_the_rsa_public_key_is_refused() {
    // The RS/HS confusion attack: the public key's PEM bytes as the HMAC secret.
    let secret = fixture("rsa.pub.pem");
    for header in [
        json!({"alg": "HS256", "kid": "rsa-1"}),
        json!({"alg": "HS256"}),
    ] {
        let unsigned = hand_token(&header, &claims(NOW), b"");
        let signed_part = unsigned.trim_end_matches('.');
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(signed_part.as_bytes());
        let token = hand_token(&header, &claims(NOW), &mac.finalize().into_bytes());
        assert_eq!(verify(&token).await, Err(Rejected::Algorithm));
    }
}

#[tokio::test]
async fn an_algorithm_not_pinned_for_the_issuer_is_refused() {
    let only_rs = OAuth::new(config(vec![issuer(
        file_jwks("jwks.json"),
        &[Algorithm::Rs256],
    )]));
    let token = sign(Jose::ES256, Some("ec-1"), &claims(NOW));
    assert_eq!(
        only_rs.unwrap().verify(&token, NOW).await,
        Err(Rejected::Algorithm)
    );
    // Nor may a token borrow a key of another algorithm by its kid.
    let token = sign(Jose::ES256, Some("rsa-1"), &claims(NOW));
    assert_eq!(verify(&token).await, Err(Rejected::Algorithm));
}

#[tokio::test]
async fn an_unknown_kid_is_refused() {
    let token = sign(Jose::RS256, Some("rsa-9"), &claims(NOW));
    assert_eq!(verify(&token).await, Err(Rejected::UnknownKey));
}

#[tokio::test]
async fn a_tampered_payload_fails_the_signature() {
    let token = rs256(&claims(NOW));
    let parts: Vec<&str> = token.split('.').collect();
    let wider = with(|c| drop(c.insert("scope".into(), json!("crm:read crm:write admin"))));
    let forged = format!(
        "{}.{}.{}",
        parts[0],
        URL_SAFE_NO_PAD.encode(wider.to_string()),
        parts[2]
    );
    assert_eq!(verify(&forged).await, Err(Rejected::Signature));
    // Another key's signature under this kid fails too.
    let mut truncated = token.clone();
    truncated.truncate(token.len() - 4);
    assert_eq!(verify(&truncated).await, Err(Rejected::Signature));
}

#[tokio::test]
async fn header_urls_are_never_followed() {
    // Signed by a key the issuer never published, pointing at where to find it.
    let claims = claims(NOW);
    let body = URL_SAFE_NO_PAD.encode(claims.to_string());
    for kid in ["rsa-1", "attacker"] {
        let header = json!({"alg": "RS256", "kid": kid, "jku": "http://127.0.0.1:1/jwks",
                            "x5u": "http://127.0.0.1:1/cert", "jwk": {"kty": "RSA"}});
        let head = URL_SAFE_NO_PAD.encode(header.to_string());
        let other = rs256_with_rsa2(&format!("{head}.{body}"));
        let want = if kid == "rsa-1" {
            Rejected::Signature
        } else {
            Rejected::UnknownKey
        };
        assert_eq!(verify(&format!("{head}.{body}.{other}")).await, Err(want));
    }
}

fn rs256_with_rsa2(signed: &str) -> String {
    let key = EncodingKey::from_rsa_pem(fixture("rsa2.pem").as_bytes()).unwrap();
    jsonwebtoken::crypto::sign(signed.as_bytes(), &key, Jose::RS256).unwrap()
}

#[tokio::test]
async fn a_critical_header_extension_is_malformed() {
    let header = json!({"alg": "RS256", "kid": "rsa-1", "crit": ["exp"]});
    let token = hand_token(&header, &claims(NOW), b"sig");
    assert_eq!(verify(&token).await, Err(Rejected::Malformed));
}

#[tokio::test]
async fn malformed_and_oversized_tokens_are_refused_unread() {
    for token in [
        "",
        "a.b",
        "a.b.c.d",
        "%%%.e30.x",
        "e30.e30.",
        "bm90IGpzb24.e30.sig",
    ] {
        assert_eq!(verify(token).await, Err(Rejected::Malformed), "{token:?}");
    }
    let huge = rs256(&with(|c| {
        drop(c.insert("pad".into(), json!("x".repeat(MAX_TOKEN_BYTES))))
    }));
    assert_eq!(verify(&huge).await, Err(Rejected::Malformed));
    // An opaque token with no issuer doing introspection.
    assert_eq!(
        verify("2YotnFZFEjr1zCsicMWpAA").await,
        Err(Rejected::Malformed)
    );
}

#[tokio::test]
async fn the_client_is_client_id_else_azp() {
    let azp = with(|c| {
        c.remove("client_id");
        c.insert("azp".into(), json!("app-2"));
    });
    assert_eq!(verify(&rs256(&azp)).await.unwrap().client_id, "app-2");
    let neither = with(|c| drop(c.remove("client_id")));
    assert_eq!(
        verify(&rs256(&neither)).await,
        Err(Rejected::Claim("client_id"))
    );
    for bad in [
        json!("x".repeat(129)),
        json!("has space"),
        json!("é"),
        json!(""),
        json!(7),
    ] {
        let token = rs256(&with(|c| drop(c.insert("client_id".into(), bad.clone()))));
        assert_eq!(
            verify(&token).await,
            Err(Rejected::Claim("client_id")),
            "{bad}"
        );
    }
}

#[tokio::test]
async fn the_workspace_is_the_configured_claim_bounded() {
    let missing = with(|c| drop(c.remove("org")));
    assert_eq!(
        verify(&rs256(&missing)).await,
        Err(Rejected::Claim("workspace"))
    );
    for bad in [json!(["acme"]), json!("x".repeat(129)), json!("a\u{7f}")] {
        let token = rs256(&with(|c| drop(c.insert("org".into(), bad.clone()))));
        assert_eq!(
            verify(&token).await,
            Err(Rejected::Claim("workspace")),
            "{bad}"
        );
    }
    assert!(
        verify(&rs256(&with(|c| drop(
            c.insert("org".into(), json!("x".repeat(128)))
        ))))
        .await
        .is_ok()
    );
}

async fn scopes_of(
    edit: impl FnOnce(&mut serde_json::Map<String, Value>),
) -> Result<Vec<String>, Rejected> {
    verify(&rs256(&with(|c| {
        c.remove("scope");
        edit(c);
    })))
    .await
    .map(|claims| claims.scopes)
}

#[tokio::test]
async fn scopes_come_from_scope_or_scp() {
    let s = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert_eq!(
        scopes_of(|c| drop(c.insert("scope".into(), json!(" a  b ")))).await,
        Ok(s(&["a", "b"]))
    );
    assert_eq!(
        scopes_of(|c| drop(c.insert("scp".into(), json!(["a", "b:c"])))).await,
        Ok(s(&["a", "b:c"]))
    );
    assert_eq!(
        scopes_of(|c| drop(c.insert("scp".into(), json!("a b")))).await,
        Ok(s(&["a", "b"]))
    );
    assert_eq!(scopes_of(|_| {}).await, Ok(vec![]));
    // `scope` wins when both are sent.
    let both = scopes_of(|c| {
        c.insert("scope".into(), json!("a"));
        c.insert("scp".into(), json!(["b"]));
    });
    assert_eq!(both.await, Ok(s(&["a"])));
}

#[tokio::test]
async fn scopes_are_bounded_in_number_and_characters() {
    let many: Vec<String> = (0..65).map(|i| format!("s{i}")).collect();
    let joined = many.join(" ");
    assert_eq!(
        scopes_of(|c| drop(c.insert("scope".into(), json!(joined)))).await,
        Err(Rejected::Claim("scope"))
    );
    assert_eq!(
        scopes_of(|c| drop(c.insert("scp".into(), json!(many)))).await,
        Err(Rejected::Claim("scp"))
    );
    assert_eq!(
        scopes_of(|c| drop(c.insert("scope".into(), json!("a\"b")))).await,
        Err(Rejected::Claim("scope"))
    );
    assert_eq!(
        scopes_of(|c| drop(c.insert("scp".into(), json!(["a", 1])))).await,
        Err(Rejected::Claim("scp"))
    );
    assert_eq!(
        scopes_of(|c| drop(c.insert("scope".into(), json!(["a"])))).await,
        Err(Rejected::Claim("scope"))
    );
    let max: Vec<String> = (0..64).map(|i| format!("s{i}")).collect();
    assert_eq!(
        scopes_of(|c| drop(c.insert("scp".into(), json!(max))))
            .await
            .unwrap()
            .len(),
        64
    );
}

#[tokio::test]
async fn a_claim_sent_twice_is_refused() {
    let header = r#"{"alg":"RS256","kid":"rsa-1"}"#;
    let payload = format!(
        r#"{{"iss":"{ISS}","aud":"{RESOURCE}","exp":{},"client_id":"a","client_id":"b","org":"acme"}}"#,
        NOW + 60
    );
    let signed = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(payload)
    );
    let key = EncodingKey::from_rsa_pem(fixture("rsa.pem").as_bytes()).unwrap();
    let sig = jsonwebtoken::crypto::sign(signed.as_bytes(), &key, Jose::RS256).unwrap();
    assert_eq!(
        verify(&format!("{signed}.{sig}")).await,
        Err(Rejected::Claim("client_id"))
    );
}

#[test]
fn debug_of_the_runtime_prints_no_secret() {
    let mut issuer = issuer(file_jwks("jwks.json"), &ALL);
    issuer.introspection = Some(introspection("http://127.0.0.1:1/introspect"));
    let oauth = OAuth::new(config(vec![issuer])).unwrap();
    let debug = format!("{oauth:?}");
    assert!(!debug.contains("s3cret-value"), "{debug}");
    assert!(!debug.contains("\"n\""), "no key material either: {debug}");
}

#[tokio::test]
async fn an_issuer_limited_to_some_workspaces_cannot_name_another() {
    let mut limited = issuer(file_jwks("jwks.json"), &ALL);
    limited.workspaces = Some(vec!["beta".to_owned()]);
    let oauth = OAuth::new(config(vec![limited])).unwrap();
    let acme = sign(Jose::RS256, Some("rsa-1"), &claims(NOW));
    assert_eq!(
        oauth.verify(&acme, NOW).await,
        Err(Rejected::Claim("workspace"))
    );
    let beta = sign(
        Jose::RS256,
        Some("rsa-1"),
        &with(|c| {
            c.insert("org".into(), json!("beta"));
        }),
    );
    assert_eq!(oauth.verify(&beta, NOW).await.unwrap().workspace, "beta");
}
