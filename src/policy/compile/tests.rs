use std::time::Duration;

use super::{Diagnostic, compile_with_env};
use crate::policy::{Limits, Policy};

const H1: &str = "1111111111111111111111111111111111111111111111111111111111111111";
const H2: &str = "2222222222222222222222222222222222222222222222222222222222222222";

fn env(name: &str) -> Option<String> {
    (name == "UPSTREAM_TOKEN").then(|| "s3cret".to_owned())
}

fn ok(src: &str) -> Policy {
    match compile_with_env(src, "p.yaml", &env) {
        Ok(p) => p,
        Err(e) => panic!("expected the policy to compile:\n{e}"),
    }
}

fn errors(src: &str) -> Vec<Diagnostic> {
    match compile_with_env(src, "p.yaml", &env) {
        Ok(_) => panic!("expected the policy to be refused"),
        Err(e) => e.diagnostics,
    }
}

/// The one diagnostic on `line` whose text contains `needle`.
#[track_caller]
fn assert_reported(diags: &[Diagnostic], line: usize, needle: &str) {
    assert!(
        diags
            .iter()
            .any(|d| d.line == line && d.to_string().contains(needle)),
        "no diagnostic on line {line} containing {needle:?} in:\n{}",
        diags
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("\n")
    );
}

/// A small valid policy; `extra` is spliced in before `workspaces:` (line 4 onwards).
fn base(extra: &str) -> String {
    format!(
        "version: 1
upstream:
  url: http://127.0.0.1:3001
{extra}workspaces:
  acme:
    scopes: [crm:read, crm:write]
    keys:
      - id: one
        sha256: {H1}
"
    )
}

#[test]
fn the_example_policy_compiles_without_warnings() {
    let p = ok(include_str!("../../../policy.yaml"));
    assert!(p.warnings.is_empty(), "{:?}", p.warnings);
    assert_eq!(p.workspaces.len(), 2);
    assert_eq!(p.keys.len(), 3);
    assert_eq!(p.server.threads, Some(2));
    assert_eq!(p.upstream.authority, "127.0.0.1:3001");
    assert_eq!(p.tools.len(), 5);
    assert_eq!(p.tool_rule("ask_pipeline").unwrap().cost, 5);
    let acme = &p.workspaces[0];
    assert_eq!(&*acme.name, "acme");
    assert_eq!(acme.limits.requests_per_minute, 600);
    // Field by field: `limits.burst: 100` is set explicitly, so it is not the raised rate.
    assert_eq!(acme.limits.burst, 100);
}

#[test]
fn the_example_policy_compiles_with_the_real_environment() {
    super::compile(include_str!("../../../policy.yaml"), "policy.yaml").unwrap();
}

#[test]
fn a_minimal_policy_gets_the_documented_defaults() {
    let p = ok(&base(""));
    assert_eq!(p.server.listen.to_string(), "127.0.0.1:8080");
    assert_eq!(p.server.admin_listen.to_string(), "127.0.0.1:9090");
    assert_eq!(p.server.shutdown_grace, Duration::from_secs(10));
    assert_eq!(p.server.threads, None);
    assert_eq!(p.upstream.connect_timeout, Duration::from_secs(2));
    assert_eq!(p.upstream.idle_timeout, Duration::from_secs(300));
    assert!(!p.upstream.preserve_host && !p.upstream.tls);
    assert_eq!(p.limits, Limits::default());
    assert_eq!(p.methods.len(), 2);
    assert!(
        p.method_rule("notifications/initialized")
            .unwrap()
            .requires
            .is_empty()
    );
    assert_eq!(p.method_rule("prompts/get").unwrap().requires, ["crm:read"]);
    assert!(p.method_rule("sampling/createMessage").is_none());
    let key = p.keys.values().next().unwrap();
    assert_eq!(&*key.id, "one");
    assert_eq!(key.scopes.len(), 2);
}

#[test]
fn a_misspelled_field_is_refused_with_its_line_and_column() {
    let diags = errors(&base("limits:\n  request_per_minute: 5\n"));
    assert_eq!(diags.len(), 1, "{diags:?}");
    assert_eq!(diags[0].line, 5);
    assert!(diags[0].col > 0);
    assert!(
        diags[0].message.contains("request_per_minute"),
        "{}",
        diags[0]
    );
}

#[test]
fn every_error_is_reported_not_just_the_first() {
    let src = base(
        "server:\n  shutdown_grace: 10 seconds\nlimits:\n  max_response_bytes: 5 TB\n  burst: 0\n",
    );
    let diags = errors(&src);
    assert_eq!(diags.len(), 3, "{diags:?}");
    assert_reported(&diags, 5, "server.shutdown_grace: invalid duration");
    assert_reported(&diags, 7, "limits.max_response_bytes: invalid size");
    assert_reported(&diags, 8, "limits.burst: must be at least 1");
}

#[test]
fn diagnostics_print_as_file_line_col_path_message() {
    let diags = errors(&base("limits:\n  burst: 0\n"));
    assert_eq!(
        diags[0].to_string(),
        "p.yaml:5:10: limits.burst: must be at least 1"
    );
}

/// A policy with `workspaces` given in full (starting at line 4).
fn with_workspaces(workspaces: &str) -> String {
    format!("version: 1\nupstream:\n  url: http://127.0.0.1:3001\nworkspaces:\n{workspaces}")
}

#[test]
fn a_key_hash_used_twice_in_the_policy_is_refused() {
    let src = with_workspaces(&format!(
        "  acme:
    keys:
      - id: one
        sha256: {H1}
  globex:
    keys:
      - id: two
        sha256: {H1}
"
    ));
    let diags = errors(&src);
    assert_eq!(diags.len(), 1, "{diags:?}");
    assert_reported(
        &diags,
        12,
        "workspaces.globex.keys[0].sha256: this key hash is already used by workspaces.acme.keys[0]",
    );
}

#[test]
fn a_duplicate_key_id_within_a_workspace_is_refused() {
    let src = with_workspaces(&format!(
        "  acme:
    keys:
      - id: one
        sha256: {H1}
      - id: one
        sha256: {H2}
"
    ));
    assert_reported(
        &errors(&src),
        9,
        "workspaces.acme.keys[1].id: duplicate key id \"one\"",
    );
}

#[test]
fn a_key_scope_its_workspace_lacks_is_refused() {
    let src = with_workspaces(&format!(
        "  acme:
    scopes: [crm:read]
    keys:
      - id: one
        sha256: {H1}
        scopes: [crm:read, crm:write]
"
    ));
    let diags = errors(&src);
    assert_eq!(diags.len(), 1, "{diags:?}");
    assert_reported(
        &diags,
        10,
        "workspaces.acme.keys[0].scopes[1]: scope \"crm:write\" is not granted",
    );
}

#[test]
fn a_key_may_narrow_its_workspace_scopes() {
    let src = with_workspaces(&format!(
        "  acme:
    scopes: [crm:read, crm:write]
    keys:
      - id: one
        sha256: {H1}
        scopes: [crm:read]
"
    ));
    let p = ok(&src);
    let key = &p.keys[&[0x11; 32]];
    assert_eq!(key.scopes.iter().collect::<Vec<_>>(), ["crm:read"]);
}

#[test]
fn a_rule_feature_no_workspace_enables_is_refused() {
    let src = base("tools:\n  - match: get_signal\n    requires: []\n    feature: signall\n");
    let diags = errors(&src);
    assert_eq!(diags.len(), 1, "{diags:?}");
    assert_reported(
        &diags,
        7,
        "tools[0].feature: feature \"signall\" is not enabled by any workspace",
    );
}

#[test]
fn a_hash_that_is_not_64_lowercase_hex_digits_is_refused() {
    for bad in [&H1[..63], &H1.replace('1', "A"), "not-a-hash"] {
        let src = base("").replace(H1, bad);
        assert_reported(
            &errors(&src),
            9,
            "workspaces.acme.keys[0].sha256: expected exactly 64 lowercase hex",
        );
    }
}

#[test]
fn an_impossible_date_is_refused_with_its_path() {
    let src = base("").replace(
        &format!("sha256: {H1}\n"),
        &format!("sha256: {H1}\n        created: 2026-09-01\n        expires: 2026-13-01\n"),
    );
    assert_reported(
        &errors(&src),
        11,
        "workspaces.acme.keys[0].expires: invalid date \"2026-13-01\"",
    );
}

#[test]
fn a_key_that_expires_before_it_is_created_is_refused() {
    let src = base("").replace(
        &format!("sha256: {H1}\n"),
        &format!("sha256: {H1}\n        created: 2026-09-01\n        expires: 2026-08-01\n"),
    );
    assert_reported(&errors(&src), 11, "expires: is not after created");
}

#[test]
fn dates_become_unix_seconds() {
    let src = base("").replace(
        &format!("sha256: {H1}\n"),
        &format!(
            "sha256: {H1}\n        created: 2026-09-01\n        expires: 2026-12-01T00:00:00Z\n"
        ),
    );
    let p = ok(&src);
    let key = p.keys.values().next().unwrap();
    assert_eq!(key.created, Some(1_788_220_800));
    assert_eq!(key.expires, Some(1_796_083_200));
}

#[test]
fn a_bad_duration_or_size_is_refused_with_its_line() {
    let diags = errors(&base(
        "  connect_timeout: 2\nlimits:\n  max_request_bytes: 1 MBB\n",
    ));
    assert_eq!(diags.len(), 2, "{diags:?}");
    assert_reported(
        &diags,
        4,
        "upstream.connect_timeout: invalid duration \"2\"",
    );
    assert_reported(&diags, 6, "limits.max_request_bytes: invalid size");
}

#[test]
fn a_workspace_without_keys_is_refused() {
    let diags = errors(&with_workspaces(
        "  acme:\n    scopes: [crm:read]\n  globex:\n    keys: []\n",
    ));
    assert_eq!(diags.len(), 2, "{diags:?}");
    assert_reported(
        &diags,
        5,
        "workspaces.acme.keys: at least one key is required",
    );
    assert_reported(
        &diags,
        8,
        "workspaces.globex.keys: at least one key is required",
    );
}

#[test]
fn a_missing_environment_variable_is_refused_without_leaking_values() {
    let src = base("  headers:\n    Authorization: \"Bearer ${NO_SUCH_VAR}\"\n");
    let diags = errors(&src);
    assert_eq!(diags.len(), 1, "{diags:?}");
    assert_reported(
        &diags,
        5,
        "upstream.headers.Authorization: environment variable NO_SUCH_VAR is not set",
    );
}

#[test]
fn upstream_headers_read_the_environment() {
    let p = ok(&base(
        "  headers:\n    Authorization: \"Bearer ${UPSTREAM_TOKEN}\"\n    X-Extra: plain $5\n",
    ));
    let h = &p.upstream.headers;
    assert_eq!(h[0].0, "authorization");
    assert_eq!(h[0].1, "Bearer s3cret");
    assert_eq!(h[1].1, "plain $5");
}

#[test]
fn a_version_other_than_1_is_refused() {
    let diags = errors(&base("").replace("version: 1", "version: 2"));
    assert_reported(&diags, 1, "version: unsupported policy version 2");
}

// The upstream, limit resolution, rule shadowing and name syntax.
mod more;
// The `oauth:` section.
mod oauth;
