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
        diags.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n")
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
    assert!(p.method_rule("notifications/initialized").unwrap().requires.is_empty());
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
    assert!(diags[0].message.contains("request_per_minute"), "{}", diags[0]);
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
    assert_eq!(diags[0].to_string(), "p.yaml:5:10: limits.burst: must be at least 1");
}
