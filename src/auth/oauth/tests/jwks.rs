//! JWK sets to keys: what is kept, what is skipped, what fails the policy.

use serde_json::json;

use super::*;
use crate::auth::oauth::keys::KeySet;

fn parse(set: &serde_json::Value, allowed: &[Algorithm]) -> Result<KeySet, String> {
    KeySet::parse(set.to_string().as_bytes(), allowed)
}

fn fixture_keys() -> Vec<serde_json::Value> {
    let set: serde_json::Value = serde_json::from_str(&fixture("jwks.json")).unwrap();
    set["keys"].as_array().unwrap().clone()
}

#[test]
fn the_fixture_set_yields_its_three_keys() {
    let set = KeySet::parse(fixture("jwks.json").as_bytes(), &ALL).unwrap();
    assert_eq!(set.len(), 3);
    assert_eq!(set.by_kid("ec-1").unwrap().algorithm, Algorithm::Es256);
    assert_eq!(set.by_kid("ed-1").unwrap().algorithm, Algorithm::EdDsa);
}

#[test]
fn keys_of_algorithms_not_pinned_are_skipped() {
    let set = KeySet::parse(fixture("jwks.json").as_bytes(), &[Algorithm::Es256]).unwrap();
    assert_eq!(set.len(), 1);
    assert!(set.by_kid("rsa-1").is_none());
}

#[test]
fn encryption_keys_and_unsupported_kinds_are_skipped() {
    let keys = fixture_keys();
    let mut enc = keys[0].clone();
    enc["use"] = json!("enc");
    enc["kid"] = json!("enc-1");
    let mut oaep = keys[0].clone();
    oaep["alg"] = json!("RSA-OAEP-256");
    oaep["kid"] = json!("oaep");
    let mut wrap_only = keys[0].clone();
    wrap_only["key_ops"] = json!(["wrapKey"]);
    wrap_only["kid"] = json!("wrap");
    let mut no_alg = keys[1].clone();
    no_alg.as_object_mut().unwrap().remove("alg");
    no_alg["kid"] = json!("ec-no-alg");
    let p384 = json!({"kty": "EC", "crv": "P-384", "kid": "p384",
                      "x": "AAAA", "y": "AAAA"});
    let hmac = json!({"kty": "oct", "kid": "hs", "k": "c2VjcmV0"});
    let lying = json!({"kty": "RSA", "kid": "lying", "alg": "ES256",
                       "n": keys[0]["n"], "e": "AQAB"});
    let small_rsa = json!({"kty": "RSA", "kid": "small", "n": "AQAB".repeat(40), "e": "AQAB"});
    let garbage = json!({"kty": 12});
    let set =
        json!({"keys": [enc, oaep, wrap_only, no_alg, p384, hmac, lying, small_rsa, garbage]});
    let set = parse(&set, &ALL).unwrap();
    assert_eq!(set.len(), 1, "{set:?}");
    assert_eq!(set.by_kid("ec-no-alg").unwrap().algorithm, Algorithm::Es256);
}

#[test]
fn a_set_without_a_usable_key_is_an_error() {
    let err = parse(&json!({"keys": []}), &ALL).unwrap_err();
    assert!(
        err.contains("no usable signature key for RS256, ES256, EdDSA"),
        "{err}"
    );
    let only_rsa = json!({"keys": [fixture_keys()[0]]});
    assert!(
        parse(&only_rsa, &[Algorithm::EdDsa])
            .unwrap_err()
            .contains("EdDSA")
    );
}

#[test]
fn something_else_than_a_set_is_an_error() {
    for bad in ["", "[]", "{\"keys\": {}}", "{\"kty\": \"RSA\"}", "not json"] {
        let err = KeySet::parse(bad.as_bytes(), &ALL).unwrap_err();
        assert!(err.starts_with("not a JWK set"), "{bad}: {err}");
    }
}

#[test]
fn a_bad_jwks_file_fails_the_runtime_with_a_message_naming_it() {
    let jwks = JwksSource::File {
        path: "keys/jwks.json".into(),
        json: "{}".to_owned(),
    };
    let err = OAuth::new(config(vec![issuer(jwks, &ALL)])).unwrap_err();
    assert!(
        err.contains("issuer https://auth.test: jwks_file keys/jwks.json: not a JWK set"),
        "{err}"
    );
}
