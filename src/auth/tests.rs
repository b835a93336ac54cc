use http::{HeaderMap, HeaderValue};

use super::{Error, Identity, ready};
use crate::policy::Policy;

/// Authentication by key never waits.
fn authenticate(headers: &HeaderMap, policy: &Policy, now: i64) -> Result<Identity, Error> {
    ready(super::authenticate(headers, policy, now))
}
use crate::policy::fixture;

fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        map.append(
            http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_str(value).unwrap(),
        );
    }
    map
}

#[test]
fn a_known_key_in_x_api_key_names_its_workspace_and_id() {
    let (policy, keys) = fixture::policy();
    let id = authenticate(
        &headers(&[("x-api-key", keys["full"].expose())]),
        &policy,
        0,
    )
    .unwrap();
    assert_eq!((id.workspace(), id.key_id()), ("acme", "full"));
    assert!(id.has_scope("crm:write"));
    assert!(id.has_feature("signal"));
}

#[test]
fn a_key_as_a_bearer_token_is_accepted() {
    let (policy, keys) = fixture::policy();
    let value = format!("bearer {}", keys["reader"].expose());
    let id = authenticate(&headers(&[("authorization", &value)]), &policy, 0).unwrap();
    assert_eq!(id.key_id(), "reader");
    assert_eq!(id.headers().scopes, "crm:read");
}

#[test]
fn no_credential_is_missing() {
    let (policy, _) = fixture::policy();
    assert_eq!(
        authenticate(&headers(&[]), &policy, 0).unwrap_err(),
        Error::Missing
    );
}

#[test]
fn well_formed_but_unknown_key_is_invalid() {
    let (policy, _) = fixture::policy();
    let stranger = crate::auth::api_key::ApiKey::generate();
    let h = headers(&[("x-api-key", stranger.expose())]);
    assert_eq!(authenticate(&h, &policy, 0).unwrap_err(), Error::Invalid);
}

#[test]
fn garbage_key_is_invalid() {
    let (policy, _) = fixture::policy();
    for bad in [
        "",
        "mcpw_",
        "hunter2",
        "mcpw_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
    ] {
        let h = headers(&[("x-api-key", bad)]);
        assert_eq!(
            authenticate(&h, &policy, 0).unwrap_err(),
            Error::Invalid,
            "{bad}"
        );
    }
}

#[test]
fn expired_key_is_refused_from_its_expiry_instant() {
    let (policy, keys) = fixture::policy();
    let h = headers(&[("x-api-key", keys["old"].expose())]);
    assert!(authenticate(&h, &policy, 999).is_ok());
    assert_eq!(authenticate(&h, &policy, 1000).unwrap_err(), Error::Expired);
}

#[test]
fn two_different_credentials_conflict() {
    let (policy, keys) = fixture::policy();
    let bearer = format!("Bearer {}", keys["reader"].expose());
    let h = headers(&[
        ("x-api-key", keys["full"].expose()),
        ("authorization", &bearer),
    ]);
    assert_eq!(authenticate(&h, &policy, 0).unwrap_err(), Error::Conflict);
}

#[test]
fn the_same_key_in_both_headers_is_accepted() {
    let (policy, keys) = fixture::policy();
    let bearer = format!("Bearer {}", keys["full"].expose());
    let h = headers(&[
        ("x-api-key", keys["full"].expose()),
        ("authorization", &bearer),
    ]);
    assert_eq!(authenticate(&h, &policy, 0).unwrap().key_id(), "full");
}

#[test]
fn a_repeated_credential_header_conflicts_even_when_equal() {
    let (policy, keys) = fixture::policy();
    let k = keys["full"].expose();
    let h = headers(&[("x-api-key", k), ("x-api-key", k)]);
    assert_eq!(authenticate(&h, &policy, 0).unwrap_err(), Error::Conflict);
}

#[test]
fn a_non_key_bearer_token_is_a_bad_token() {
    let (policy, _) = fixture::policy();
    let h = headers(&[("authorization", "Bearer eyJhbGciOiJSUzI1NiJ9.e30.sig")]);
    assert_eq!(authenticate(&h, &policy, 0).unwrap_err(), Error::BadToken);
    let h = headers(&[("authorization", "Basic dXNlcjpwYXNz")]);
    assert_eq!(authenticate(&h, &policy, 0).unwrap_err(), Error::BadToken);
}
