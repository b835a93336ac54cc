//! Compiler tests, continued: the upstream, limit resolution, rule shadowing, name syntax.

use super::*;

#[test]
fn an_upstream_url_with_a_path_or_another_scheme_is_refused() {
    for url in [
        "http://127.0.0.1:3001/mcp",
        "ftp://127.0.0.1",
        "127.0.0.1:3001",
        "http://u:p@127.0.0.1",
    ] {
        let src = base("").replace("http://127.0.0.1:3001", url);
        assert_reported(&errors(&src), 3, "upstream.url: invalid URL");
    }
}

#[test]
fn an_upstream_host_that_does_not_resolve_is_named() {
    let src = base("").replace("127.0.0.1:3001", "no-such-host.invalid:3001");
    assert_reported(
        &errors(&src),
        3,
        "cannot resolve host \"no-such-host.invalid\"",
    );
}

#[test]
fn the_authority_omits_the_scheme_default_port() {
    let src = base("").replace("http://127.0.0.1:3001", "https://127.0.0.1");
    let p = ok(&src);
    assert!(p.upstream.tls);
    assert_eq!(p.upstream.port, 443);
    assert_eq!(p.upstream.authority, "127.0.0.1");
    let src = base("").replace("http://127.0.0.1:3001", "http://[::1]:80");
    let p = ok(&src);
    assert_eq!(
        (p.upstream.host.as_str(), p.upstream.authority.as_str()),
        ("::1", "[::1]")
    );
}

#[test]
fn limits_resolve_key_over_workspace_over_defaults_field_by_field() {
    let src = format!(
        "version: 1
upstream:
  url: http://127.0.0.1:3001
limits:
  max_response_bytes: 5MiB
workspaces:
  acme:
    limits: {{ requests_per_minute: 600 }}
    keys:
      - id: one
        sha256: {H1}
        limits: {{ concurrent_connections: 4 }}
      - id: two
        sha256: {H2}
        limits: {{ burst: 50, max_request_bytes: 2KB }}
"
    );
    let p = ok(&src);
    assert_eq!(p.limits.max_response_bytes, 5_242_880);
    let acme = &p.workspaces[0].limits;
    assert_eq!(
        (
            acme.requests_per_minute,
            acme.burst,
            acme.concurrent_connections
        ),
        (600, 600, 10)
    );
    let one = p.keys[&[0x11; 32]].limits;
    assert_eq!(
        one,
        Limits {
            requests_per_minute: 600,
            burst: 600,
            concurrent_connections: 4,
            max_response_bytes: 5_242_880,
            max_request_bytes: 1_000_000,
        }
    );
    let two = p.keys[&[0x22; 32]].limits;
    assert_eq!(
        (
            two.requests_per_minute,
            two.burst,
            two.concurrent_connections
        ),
        (600, 50, 10)
    );
    assert_eq!(two.max_request_bytes, 2_000);
}

#[test]
fn a_rule_an_earlier_rule_shadows_is_a_warning() {
    let src = base(
        "tools:
  - match: get_*
    requires: [crm:read]
  - match: search
    requires: [crm:read]
  - match: [get_x, search]
    requires: [crm:write]
  - match: get_y
    requires: [crm:write]
  - match: [get_z, other]
    requires: []
",
    );
    let p = ok(&src);
    assert_eq!(p.warnings.len(), 2, "{:?}", p.warnings);
    assert_eq!(
        p.warnings[0],
        "p.yaml:9:5: tools[2] (\"get_x\", \"search\") can never match: tools[0] (\"get_*\") and tools[1] (\"search\") match first"
    );
    assert_eq!(
        p.warnings[1],
        "p.yaml:11:5: tools[3] (\"get_y\") can never match: tools[0] (\"get_*\") matches first"
    );
}

#[test]
fn an_invalid_scope_or_key_id_is_refused() {
    let src = with_workspaces(&format!(
        "  acme:
    scopes: [\"crm read\"]
    keys:
      - id: \"my key\"
        sha256: {H1}
"
    ));
    let diags = errors(&src);
    assert_reported(
        &diags,
        6,
        "workspaces.acme.scopes[0]: invalid scope \"crm read\"",
    );
    assert_reported(
        &diags,
        8,
        "workspaces.acme.keys[0].id: invalid key id \"my key\"",
    );
}

#[test]
fn a_response_limit_too_small_for_the_gateways_own_error_is_refused() {
    let diags = errors(&base("limits:\n  max_response_bytes: 999\n"));
    assert_reported(
        &diags,
        5,
        "limits.max_response_bytes: must be at least 1000 bytes",
    );
    let p = ok(&base("limits:\n  max_response_bytes: 1KB\n"));
    assert_eq!(p.limits.max_response_bytes, 1000);
}

#[test]
fn a_file_that_cannot_be_read_is_one_diagnostic_at_0_0() {
    let err =
        crate::policy::compile_file(std::path::Path::new("/nonexistent/policy.yaml")).unwrap_err();
    assert_eq!(err.diagnostics.len(), 1);
    assert!(
        err.to_string()
            .starts_with("/nonexistent/policy.yaml:0:0: cannot read")
    );
}

#[test]
fn yaml_alias_expansion_is_bounded() {
    // An alias bomb that fits the schema: 100 scopes, replayed by each of 100 keys, whose list
    // is replayed by each of 200 workspaces: 2,000,000 events from a 20 KB file, were it not
    // for the parser's alias budget. (No section is skipped unread, so aliases cannot nest
    // deeper than the schema does.)
    let scopes = vec!["s"; 100].join(", ");
    let mut src = format!(
        "version: 1\nupstream:\n  url: http://127.0.0.1:3001\nworkspaces:\n  w0:\n    scopes: &s [{scopes}]\n    keys: &k\n"
    );
    for i in 0..100 {
        src.push_str(&format!("      - {{id: k{i}, sha256: {H1}, scopes: *s}}\n"));
    }
    for i in 1..200 {
        src.push_str(&format!("  w{i}: {{keys: *k}}\n"));
    }
    let diags = errors(&src);
    assert_eq!(diags.len(), 1, "{diags:?}");
    assert!(diags[0].line > 0, "{diags:?}");
    assert!(diags[0].message.contains("budget"), "{diags:?}");
}

#[test]
fn a_tool_cost_over_a_key_burst_is_a_warning() {
    let src = base(
        "limits:
  burst: 4
tools:
  - match: ask
    requires: [crm:read]
    cost: 5
  - match: search
    requires: [crm:read]
    cost: 4
",
    );
    let p = ok(&src);
    assert_eq!(
        p.warnings,
        [
            "p.yaml:9:11: tools[0].cost is 5, more than the burst of key acme/one (4): its calls to these tools will always be refused"
        ]
    );
}
