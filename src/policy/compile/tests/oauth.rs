//! Compiler tests for `oauth:`: every refusal at its node, and what a valid section becomes.

use super::*;
use crate::auth::oauth::{Algorithm, Config, IntrospectionConfig, IssuerConfig, JwksSource};

/// `base("")` with `oauth:` on line 10, so the section's first field is on line 11.
fn with_oauth(section: &str) -> String {
    format!("{}oauth:\n{section}", base(""))
}

/// A valid section; lines 11 to 16.
const MINIMAL: &str = "  resource: https://mcp.example.com/mcp
  authorization_servers: [https://auth.example.com]
  issuers:
    - issuer: https://auth.example.com
      jwks_uri: https://auth.example.com/.well-known/jwks.json
      workspace_claim: org
";

const FIXTURE: &str = "tests/fixtures/oauth/jwks-min.json";

fn config(src: &str) -> Config {
    ok(src).oauth.expect("an oauth section").config().clone()
}

#[test]
fn a_full_section_compiles_to_its_config() {
    let src = with_oauth(&format!(
        "  resource: https://mcp.example.com/mcp
  authorization_servers: [https://auth.example.com, https://login.example.org/tenant/v2.0]
  issuers:
    - issuer: https://auth.example.com/
      jwks_uri: https://auth.example.com/.well-known/jwks.json
      workspace_claim: org
      workspaces: [acme]
    - issuer: https://login.example.org/tenant/v2.0
      jwks_file: {FIXTURE}
      workspace_claim: https://example.com/claims/org
      workspaces: [acme]
      algorithms: [ES256, EdDSA, RS256]
      introspection_endpoint: https://login.example.org/introspect
      client_id: mcpwarden
      client_secret: \"${{UPSTREAM_TOKEN}}\"
  scopes_supported: [crm:write]
"
    ));
    let fixture = std::fs::read_to_string(FIXTURE).unwrap();
    assert_eq!(
        config(&src),
        Config {
            resource: "https://mcp.example.com/mcp".into(),
            authorization_servers: vec![
                "https://auth.example.com".into(),
                "https://login.example.org/tenant/v2.0".into(),
            ],
            scopes_supported: vec!["crm:write".into()],
            issuers: vec![
                IssuerConfig {
                    issuer: "https://auth.example.com/".into(),
                    jwks: JwksSource::Uri("https://auth.example.com/.well-known/jwks.json".into()),
                    algorithms: vec![Algorithm::Rs256],
                    workspace_claim: "org".into(),
                    workspaces: Some(vec!["acme".into()]),
                    introspection: None,
                },
                IssuerConfig {
                    issuer: "https://login.example.org/tenant/v2.0".into(),
                    jwks: JwksSource::File {
                        path: FIXTURE.into(),
                        json: fixture,
                    },
                    algorithms: vec![Algorithm::Es256, Algorithm::EdDsa, Algorithm::Rs256],
                    workspace_claim: "https://example.com/claims/org".into(),
                    workspaces: Some(vec!["acme".into()]),
                    introspection: Some(IntrospectionConfig {
                        endpoint: "https://login.example.org/introspect".into(),
                        client_id: "mcpwarden".into(),
                        client_secret: "s3cret".into(),
                    }),
                },
            ],
        }
    );
}

#[test]
fn scopes_supported_defaults_to_every_workspace_scope_in_file_order() {
    let src = with_workspaces(&format!(
        "  zeta:
    scopes: [b:read, a:read]
    keys:
      - id: one
        sha256: {H1}
  alpha:
    scopes: [a:read, c:read]
    keys:
      - id: two
        sha256: {H2}
oauth:
{MINIMAL}"
    ));
    assert_eq!(
        config(&src).scopes_supported,
        ["b:read", "a:read", "c:read"]
    );
}

#[test]
fn a_section_whose_workspaces_have_no_scopes_is_fine() {
    let src = with_oauth(MINIMAL).replace("    scopes: [crm:read, crm:write]\n", "");
    assert!(config(&src).scopes_supported.is_empty());
}

#[test]
fn loopback_http_is_allowed_for_the_resource_and_authorization_servers() {
    let c = config(&with_oauth(
        &MINIMAL
            .replace("https://mcp.example.com/mcp", "http://127.0.0.1:8080/mcp")
            .replace("[https://auth.example.com]", "[http://localhost:9000]"),
    ));
    assert_eq!(c.resource, "http://127.0.0.1:8080/mcp");
    assert_eq!(c.authorization_servers, ["http://localhost:9000"]);
}

#[test]
fn the_compiled_section_carries_its_metadata() {
    let p = ok(&with_oauth(MINIMAL));
    let m = p.oauth.as_ref().unwrap().metadata();
    assert_eq!(
        m.url(),
        "https://mcp.example.com/.well-known/oauth-protected-resource/mcp"
    );
    assert!(m.serves("/.well-known/oauth-protected-resource/mcp"));
    let doc: serde_json::Value = serde_json::from_slice(m.document()).unwrap();
    assert_eq!(
        doc["scopes_supported"],
        serde_json::json!(["crm:read", "crm:write"])
    );
}

/// Each case: the section, then (line, text) of every diagnostic expected.
#[test]
fn every_refusal_names_its_field_at_its_line() {
    let issuer = |extra: &str| format!("{MINIMAL}{extra}");
    let cases: Vec<(String, Vec<(usize, &str)>)> = vec![
        (
            MINIMAL.replace("https://mcp.example.com/mcp", "http://mcp.example.com/mcp"),
            vec![(11, "oauth.resource: invalid URL \"http://mcp.example.com/mcp\": https:// is required (http:// only for loopback hosts)")],
        ),
        (
            MINIMAL.replace("https://mcp.example.com/mcp", "/mcp"),
            vec![(11, "oauth.resource: invalid URL \"/mcp\": an absolute http:// or https:// URL is required")],
        ),
        (
            MINIMAL.replace("https://mcp.example.com/mcp", "https://mcp.example.com/mcp#top"),
            vec![(11, "oauth.resource: invalid URL \"https://mcp.example.com/mcp#top\": a fragment")],
        ),
        (
            MINIMAL.replace("https://mcp.example.com/mcp", "https://mcp.example.com/mcp?t=a"),
            vec![(11, "oauth.resource: invalid URL \"https://mcp.example.com/mcp?t=a\": a query")],
        ),
        (
            MINIMAL.replace("https://mcp.example.com/mcp", "https://user:pw@mcp.example.com/mcp"),
            vec![(11, "oauth.resource: invalid URL \"https://user:pw@mcp.example.com/mcp\": credentials")],
        ),
        (
            MINIMAL.replace("  resource: https://mcp.example.com/mcp\n", ""),
            vec![(11, "oauth.resource: required")],
        ),
        (
            MINIMAL.replace("[https://auth.example.com]", "[]"),
            vec![(12, "oauth.authorization_servers: at least one is required")],
        ),
        (
            MINIMAL.replace("  authorization_servers: [https://auth.example.com]\n", ""),
            vec![(11, "oauth.authorization_servers: required")],
        ),
        (
            MINIMAL.replace("[https://auth.example.com]", "[https://a.example, auth.example.com]"),
            vec![(12, "oauth.authorization_servers[1]: invalid URL \"auth.example.com\": an absolute")],
        ),
        (
            MINIMAL.replace("[https://auth.example.com]", "[https://a.example, https://a.example]"),
            vec![(12, "oauth.authorization_servers[1]: listed twice")],
        ),
        (
            "  resource: https://mcp.example.com/mcp\n  authorization_servers: [https://a.example]\n  issuers: []\n".into(),
            vec![(13, "oauth.issuers: at least one is required")],
        ),
        (
            issuer("      workspaces: [acme]\n    - issuer: https://auth.example.com\n      jwks_uri: https://b.example/jwks\n      workspace_claim: org\n      workspaces: [acme]\n"),
            vec![(18, "oauth.issuers[1].issuer: issuer \"https://auth.example.com\" is listed twice (first at line 14)")],
        ),
        (
            MINIMAL.replace("      workspace_claim: org\n", &format!("      workspace_claim: org\n      jwks_file: {FIXTURE}\n")),
            vec![(17, "oauth.issuers[0].jwks_file: give jwks_uri or jwks_file, not both")],
        ),
        (
            MINIMAL.replace("      jwks_uri: https://auth.example.com/.well-known/jwks.json\n", ""),
            vec![(14, "oauth.issuers[0].jwks_uri: jwks_uri or jwks_file is required")],
        ),
        (
            MINIMAL.replace("https://auth.example.com/.well-known/jwks.json", "ftp://auth.example.com/jwks.json"),
            vec![(15, "oauth.issuers[0].jwks_uri: invalid URL \"ftp://auth.example.com/jwks.json\": an absolute http:// or https:// URL is required")],
        ),
        (
            MINIMAL.replace("jwks_uri: https://auth.example.com/.well-known/jwks.json", "jwks_file: no/such/jwks.json"),
            vec![(15, "oauth.issuers[0].jwks_file: cannot read no/such/jwks.json")],
        ),
        (
            MINIMAL.replace("jwks_uri: https://auth.example.com/.well-known/jwks.json", "jwks_file: Cargo.toml"),
            vec![(15, "oauth.issuers[0].jwks_file: Cargo.toml is not a JWK set")],
        ),
        (
            MINIMAL.replace("workspace_claim: org", "workspace_claim: \"\""),
            vec![(16, "oauth.issuers[0].workspace_claim: must be a claim name")],
        ),
        (
            MINIMAL.replace("      workspace_claim: org\n", ""),
            vec![(14, "oauth.issuers[0].workspace_claim: required")],
        ),
        (
            MINIMAL.replace("    - issuer: https://auth.example.com\n", "    - jwks_file: x\n").replace("      jwks_uri: https://auth.example.com/.well-known/jwks.json\n", ""),
            vec![(14, "oauth.issuers[0].issuer: required"), (14, "oauth.issuers[0].jwks_file: cannot read x")],
        ),
        (
            issuer("      algorithms: [RS256, HS256]\n"),
            vec![(17, "oauth.issuers[0].algorithms[1]: unknown algorithm \"HS256\": expected RS256, ES256 or EdDSA")],
        ),
        (
            issuer("      algorithms: [none]\n"),
            vec![(17, "`none` and HMAC are never accepted")],
        ),
        (
            issuer("      algorithms: [ES256, ES256]\n"),
            vec![(17, "oauth.issuers[0].algorithms[1]: listed twice")],
        ),
        (
            issuer("      algorithms: []\n"),
            vec![(17, "oauth.issuers[0].algorithms: at least one is required")],
        ),
        (
            issuer("      introspection_endpoint: https://auth.example.com/introspect\n"),
            vec![
                (14, "oauth.issuers[0].client_id: required with the other introspection fields"),
                (14, "oauth.issuers[0].client_secret: required with the other introspection fields"),
            ],
        ),
        (
            issuer("      client_id: gw\n      client_secret: ${UPSTREAM_TOKEN}\n"),
            vec![(14, "oauth.issuers[0].introspection_endpoint: required with the other introspection fields")],
        ),
        (
            issuer("      introspection_endpoint: introspect\n      client_id: gw\n      client_secret: ${UPSTREAM_TOKEN}\n"),
            vec![(17, "oauth.issuers[0].introspection_endpoint: invalid URL")],
        ),
        (
            issuer("      introspection_endpoint: https://a.example/i\n      client_id: \" \"\n      client_secret: ${UPSTREAM_TOKEN}\n"),
            vec![(18, "oauth.issuers[0].client_id: must not be empty")],
        ),
        (
            issuer("      workspaces: [acme]\n      introspection_endpoint: https://auth.example.com/i\n      client_id: gw\n      client_secret: ${UPSTREAM_TOKEN}\n    - issuer: https://b.example\n      jwks_uri: https://b.example/jwks\n      workspace_claim: org\n      introspection_endpoint: https://b.example/i\n      client_id: gw\n      client_secret: ${UPSTREAM_TOKEN}\n      workspaces: [acme]\n"),
            vec![(24, "oauth.issuers[1].introspection_endpoint: at most one issuer may introspect opaque tokens (an opaque token names no issuer, so it would be sent to each); the first is at line 18")],
        ),
        (
            issuer("    - issuer: https://b.example\n      jwks_uri: https://b.example/jwks\n      workspace_claim: org\n"),
            vec![
                (14, "oauth.issuers[0].workspaces: required when there is more than one issuer"),
                (17, "oauth.issuers[1].workspaces: required when there is more than one issuer"),
            ],
        ),
        (
            issuer("      workspaces: [acme, nobody, acme]\n"),
            vec![
                (17, "oauth.issuers[0].workspaces[1]: unknown workspace \"nobody\""),
                (17, "oauth.issuers[0].workspaces[2]: workspace \"acme\" is listed twice"),
            ],
        ),
        (
            format!("{MINIMAL}  scopes_supported: [crm:read, crm:delete]\n"),
            vec![(17, "oauth.scopes_supported[1]: unknown scope \"crm:delete\": no workspace has it")],
        ),
        (
            format!("{MINIMAL}  scopes_supported: [crm:read, crm:read]\n"),
            vec![(17, "oauth.scopes_supported[1]: listed twice")],
        ),
    ];
    for (section, expected) in cases {
        let diags = errors(&with_oauth(&section));
        assert_eq!(diags.len(), expected.len(), "{section}\n{diags:#?}");
        for (line, needle) in expected {
            assert_reported(&diags, line, needle);
        }
    }
}

#[test]
fn a_misspelled_oauth_field_is_refused() {
    for (section, field) in [
        (
            format!("{MINIMAL}  scope_supported: [crm:read]\n"),
            "scope_supported",
        ),
        (
            format!("{MINIMAL}      jwks_url: https://x.example/\n"),
            "jwks_url",
        ),
    ] {
        let diags = errors(&with_oauth(&section));
        assert_eq!(diags.len(), 1, "{diags:?}");
        assert_eq!(diags[0].line, 17, "{diags:?}");
        assert!(diags[0].message.contains(field), "{}", diags[0]);
    }
}

#[test]
fn a_missing_client_secret_variable_is_refused_and_no_secret_is_printed() {
    let intro = |secret: &str| {
        with_oauth(&format!(
            "{MINIMAL}      introspection_endpoint: https://auth.example.com/introspect\n      client_id: gw\n      client_secret: \"{secret}\"\n"
        ))
    };
    let diags = errors(&intro("${NO_SUCH_VAR}"));
    assert_eq!(diags.len(), 1, "{diags:?}");
    assert_reported(
        &diags,
        19,
        "oauth.issuers[0].client_secret: environment variable NO_SUCH_VAR is not set",
    );

    // A problem elsewhere in the same issuer quotes neither the secret nor its variable's value.
    let bad = intro("${UPSTREAM_TOKEN}").replace("workspace_claim: org", "workspace_claim: \" \"");
    let text = super::super::compile_with_env(&bad, "p.yaml", &env)
        .unwrap_err()
        .to_string();
    assert!(!text.contains("s3cret"), "{text}");

    // Nor does the compiled policy's debug output.
    let p = ok(&intro("${UPSTREAM_TOKEN}"));
    assert!(p.warnings.is_empty(), "{:?}", p.warnings);
    let debug = format!("{:?}", p.oauth);
    assert!(!debug.contains("s3cret"), "{debug}");
}

#[test]
fn a_client_secret_written_in_the_file_is_a_warning() {
    let p = ok(&with_oauth(&format!(
        "{MINIMAL}      introspection_endpoint: https://auth.example.com/introspect\n      client_id: gw\n      client_secret: literal\n"
    )));
    assert_eq!(p.warnings.len(), 1, "{:?}", p.warnings);
    assert!(p.warnings[0].starts_with("p.yaml:19:"), "{:?}", p.warnings);
    assert!(!p.warnings[0].contains("literal"), "{:?}", p.warnings);
}

#[test]
fn plain_http_beyond_loopback_is_refused_for_the_urls_the_gateway_fetches() {
    let jwks = MINIMAL.replace(
        "https://auth.example.com/.well-known/jwks.json",
        "http://keycloak.auth.svc:8080/realms/acme/protocol/openid-connect/certs",
    );
    assert_reported(
        &errors(&with_oauth(&jwks)),
        15,
        "oauth.issuers[0].jwks_uri: invalid URL \"http://keycloak.auth.svc:8080/realms/acme/protocol/openid-connect/certs\": https:// is required (http:// only for loopback hosts)",
    );
    let introspection = format!(
        "{MINIMAL}      introspection_endpoint: http://auth.example.com/introspect\n      client_id: gw\n      client_secret: ${{UPSTREAM_TOKEN}}\n"
    );
    assert_reported(
        &errors(&with_oauth(&introspection)),
        17,
        "oauth.issuers[0].introspection_endpoint: invalid URL \"http://auth.example.com/introspect\": https:// is required",
    );

    // Loopback stays allowed (tests, a local authorization server), with a query too.
    for local in [
        "http://127.0.0.1:7000/jwks?v=2",
        "http://localhost/jwks",
        "http://[::1]:7000/jwks",
    ] {
        let p = ok(&with_oauth(
            &MINIMAL.replace("https://auth.example.com/.well-known/jwks.json", local),
        ));
        assert!(p.warnings.is_empty(), "{local}: {:?}", p.warnings);
    }
}

#[test]
fn a_public_url_on_another_origin_than_the_resource_is_a_warning() {
    let src = |public: &str| {
        with_oauth(MINIMAL).replace(
            "upstream:",
            &format!("server:\n  public_url: {public}\nupstream:"),
        )
    };
    assert!(ok(&src("https://mcp.example.com")).warnings.is_empty());
    assert!(ok(&src("https://MCP.example.com:443/")).warnings.is_empty());
    let p = ok(&src("https://gateway.example.com"));
    assert_eq!(p.warnings.len(), 1, "{:?}", p.warnings);
    assert!(p.warnings[0].starts_with("p.yaml:3:"), "{:?}", p.warnings);
}

#[test]
fn a_relative_jwks_file_is_read_from_the_policy_files_folder() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("keys")).unwrap();
    let jwks = std::fs::read_to_string(FIXTURE).unwrap();
    std::fs::write(dir.path().join("keys/jwks.json"), &jwks).unwrap();
    let policy = dir.path().join("policy.yaml");
    let src = with_oauth(&MINIMAL.replace(
        "jwks_uri: https://auth.example.com/.well-known/jwks.json",
        "jwks_file: keys/jwks.json",
    ));
    std::fs::write(&policy, &src).unwrap();

    let p = crate::policy::compile_file(&policy).unwrap();
    let c = p.oauth.unwrap().config().clone();
    assert_eq!(
        c.issuers[0].jwks,
        JwksSource::File {
            path: dir.path().join("keys/jwks.json"),
            json: jwks,
        }
    );

    // The same text elsewhere finds no file, and says where it looked.
    let diags = errors(&src);
    assert_reported(&diags, 15, "cannot read keys/jwks.json");
}

/// `policy.yaml` with its commented-out `oauth:` example switched on (and, with `deep`, the
/// introspection lines inside it too).
fn example_with_oauth(deep: bool) -> String {
    let example = include_str!("../../../../policy.yaml");
    let at = example
        .find("\n# oauth:")
        .expect("the example has an oauth: section")
        + 1;
    let mut out = example[..at].to_owned();
    for line in example[at..].lines() {
        let mut line = line.strip_prefix("# ").unwrap_or(line);
        let field = line.trim_start();
        if deep
            && [
                "# introspection_endpoint:",
                "# client_id:",
                "# client_secret:",
            ]
            .iter()
            .any(|f| field.starts_with(f))
        {
            let indent = line.len() - line.trim_start().len();
            out.push_str(&line[..indent]);
            line = &line[indent + 2..];
        }
        out.push_str(line);
        out.push('\n');
    }
    out.replace("INTROSPECTION_SECRET", "UPSTREAM_TOKEN")
}

#[test]
fn the_example_policys_oauth_section_compiles_when_switched_on() {
    let c = config(&example_with_oauth(false));
    assert_eq!(c.resource, "https://mcp.example.com/mcp");
    assert_eq!(c.issuers.len(), 1);
    assert_eq!(c.issuers[0].workspace_claim, "org");
    assert!(c.issuers[0].introspection.is_none());
    assert_eq!(c.scopes_supported.len(), 5);

    let src = example_with_oauth(true);
    assert!(src.contains("\n      client_id: mcpwarden"), "{src}");
    let c = config(&src);
    assert_eq!(
        c.issuers[0].introspection.as_ref().unwrap().endpoint,
        "https://auth.example.com/oauth/introspect"
    );
}
