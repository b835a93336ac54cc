//! The command line, as an operator uses it.

use std::io::Write;
use std::process::{Command, Stdio};

use crate::common::*;

fn run(args: &[&str]) -> std::process::Output {
    Command::new(BIN).args(args).output().unwrap()
}

#[test]
fn keygen_prints_the_key_once_and_the_entry_to_paste() {
    let out = run(&[
        "keygen",
        "--workspace",
        "acme",
        "--id",
        "ci",
        "--scopes",
        "crm:read,signal:read",
        "--expires",
        "2027-01-01",
    ]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let mut lines = text.lines();
    let key = lines.next().unwrap();
    assert_eq!(mcpwarden::auth::api_key::check_format(key), Ok(()));
    let rest: String = lines.collect::<Vec<_>>().join("\n");
    assert!(rest.contains("- id: ci"));
    assert!(rest.contains(&format!(
        "sha256: {}",
        mcpwarden::auth::api_key::hash_hex(key)
    )));
    assert!(rest.contains("scopes: [crm:read, signal:read]"));
    assert!(rest.contains("expires: 2027-01-01"));
    assert!(rest.contains("created: "));
    assert!(!rest.contains(key), "the key must appear once only");
}

#[test]
fn hash_key_reads_stdin_and_refuses_a_mistyped_key() {
    let key = mcpwarden::auth::api_key::ApiKey::generate();
    let mut child = Command::new(BIN)
        .arg("hash-key")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    writeln!(child.stdin.take().unwrap(), "{}", key.expose()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8(out.stdout).unwrap().trim(),
        format!(
            "sha256: {}",
            mcpwarden::auth::api_key::hash_hex(key.expose())
        )
    );
    // The last character changed (to one it is not: a key may well end in `x`).
    let (head, last) = key.expose().split_at(42);
    let typo = format!("{head}{}", if last == "x" { "y" } else { "x" });
    let out = run(&["hash-key", &typo]);
    assert!(!out.status.success());
}

#[test]
fn check_accepts_the_example_policy_and_summarises_it() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/policy.yaml");
    let out = run(&["check", "--policy", example]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("workspaces"), "{stdout}");
}

#[test]
fn check_reports_every_error_with_file_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.yaml");
    let keys = Keys::new();
    let policy = policy_yaml(
        free_port(),
        free_port(),
        free_port(),
        &keys,
        "",
        DEFAULT_LIMITS,
    )
    .replace("requests_per_minute", "request_per_minute");
    std::fs::write(&path, policy).unwrap();
    let out = run(&["check", "--policy", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let prefix = format!("{}:", path.display());
    let line = stderr
        .lines()
        .find(|l| l.starts_with(&prefix))
        .unwrap_or_else(|| panic!("{stderr}"));
    // FILE:LINE:COL: on the line of the misspelled field.
    let mut parts = line[prefix.len()..].splitn(3, ':');
    let (l, c) = (parts.next().unwrap(), parts.next().unwrap());
    assert_eq!(l.parse::<usize>().unwrap(), 13, "{line}");
    assert!(c.parse::<usize>().is_ok(), "{line}");
    assert!(line.contains("request_per_minute"), "{line}");
}

#[test]
fn every_subcommand_has_help() {
    for sub in ["run", "check", "keygen", "hash-key", "demo"] {
        let out = run(&[sub, "--help"]);
        assert!(out.status.success(), "{sub}");
    }
    assert!(run(&["--version"]).status.success());
}

/// A policy in `dir` with an `oauth:` section whose issuer reads `jwks_file` (relative to the
/// policy's folder); returns the policy's path and the line `jwks_file` is on.
fn oauth_policy(dir: &std::path::Path, jwks_file: &str) -> (std::path::PathBuf, usize) {
    let base = policy_yaml(
        free_port(),
        free_port(),
        free_port(),
        &Keys::new(),
        "",
        DEFAULT_LIMITS,
    );
    let section = format!(
        "oauth:
  resource: https://mcp.example.com/mcp
  authorization_servers: [https://auth.example.com]
  issuers:
    - issuer: https://auth.example.com
      jwks_file: {jwks_file}
      workspace_claim: org
      algorithms: [RS256, ES256]
  scopes_supported: [crm:read, crm:write]
"
    );
    let path = dir.join("policy.yaml");
    std::fs::write(&path, format!("{base}{section}")).unwrap();
    (path, base.lines().count() + 6)
}

#[test]
fn check_validates_an_oauth_section_and_summarises_it() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("keys")).unwrap();
    std::fs::copy(
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/oauth/jwks-min.json"
        ),
        dir.path().join("keys/jwks.json"),
    )
    .unwrap();
    let (path, _) = oauth_policy(dir.path(), "keys/jwks.json");
    let out = run(&["check", "--policy", path.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains(
            "  oauth      resource https://mcp.example.com/mcp, metadata at https://mcp.example.com/.well-known/oauth-protected-resource/mcp\n"
        ),
        "{stdout}"
    );
    let keys = dir.path().join("keys/jwks.json");
    assert!(
        stdout.contains(&format!(
            "    issuer https://auth.example.com: keys from file {}, RS256 ES256, workspace from claim \"org\"\n",
            keys.display()
        )),
        "{stdout}"
    );
    assert!(
        stdout.contains("    scopes supported: crm:read crm:write\n"),
        "{stdout}"
    );
}

#[test]
fn check_reports_an_unreadable_jwks_file_at_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let (path, line) = oauth_policy(dir.path(), "keys/missing.json");
    let out = run(&["check", "--policy", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let expected = format!(
        "{}:{line}:18: oauth.issuers[0].jwks_file: cannot read {}",
        path.display(),
        dir.path().join("keys/missing.json").display()
    );
    assert!(stderr.contains(&expected), "{stderr}");
}

#[test]
fn check_reports_a_jwks_uri_it_cannot_fetch() {
    let dir = tempfile::tempdir().unwrap();
    let closed = free_port();
    let (path, _) = oauth_policy(dir.path(), "x");
    let text = std::fs::read_to_string(&path).unwrap().replace(
        "jwks_file: x",
        &format!("jwks_uri: http://{closed}/jwks.json"),
    );
    std::fs::write(&path, text).unwrap();
    let out = run(&["check", "--policy", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.starts_with(&format!("{}:", path.display())) && stderr.contains(": oauth: "),
        "{stderr}"
    );
    assert!(stderr.contains(&closed.to_string()), "{stderr}");
}
