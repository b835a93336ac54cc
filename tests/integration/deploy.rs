//! deploy/'s Prometheus rules and Grafana dashboard against a running gateway: every metric
//! they name is one `/metrics` exports, and they cover what operators are promised. (Their
//! syntax and the rules' behaviour are checked with promtool by `deploy/check.sh` in CI.)

use std::collections::BTreeSet;
use std::path::Path;

use serde_json::{Value, json};

use crate::common::upstream::Mode;
use crate::common::*;
use crate::gateway::setup_with;

fn deploy_file(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("deploy")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The PromQL of every alerting rule.
fn rule_queries() -> Vec<String> {
    let rules: Value = serde_saphyr::from_str(&deploy_file("prometheus-rules.yaml")).unwrap();
    let queries: Vec<String> = rules["groups"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|g| g["rules"].as_array().unwrap())
        .map(|r| r["expr"].as_str().unwrap().to_owned())
        .collect();
    assert!(queries.len() >= 7);
    queries
}

/// The PromQL of every panel, and the selector of every variable.
fn dashboard_queries() -> Vec<String> {
    let dashboard: Value = serde_json::from_str(&deploy_file("grafana-dashboard.json")).unwrap();
    let panels = dashboard["panels"].as_array().unwrap();
    let targets = panels
        .iter()
        .flat_map(|p| p["targets"].as_array().into_iter().flatten())
        .map(|t| t["expr"].as_str().unwrap().to_owned());
    let variables = dashboard["templating"]["list"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| v["definition"].as_str().map(str::to_owned));
    targets.chain(variables).collect()
}

/// The `mcpwarden_*` metric names in some PromQL.
fn names(queries: &[String]) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for query in queries {
        let mut rest = query.as_str();
        while let Some(at) = rest.find("mcpwarden_") {
            let name: String = rest[at..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            rest = &rest[at + name.len()..];
            names.insert(name);
        }
    }
    names
}

/// Series names in a Prometheus text exposition.
fn exported(metrics: &str) -> BTreeSet<String> {
    metrics
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| l.split(['{', ' ']).next().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_metric_the_rules_and_dashboard_use_is_exported() {
    let s = setup_with(Mode::Stateless, "", DEFAULT_LIMITS).await;
    let (addr, full) = (s.gw.addr, key_header(&s.keys.full));
    let metrics = blocking(move || {
        // Allowed, denied and unauthenticated calls, so every family has series.
        let ok = post(
            addr,
            &[&full],
            &call(1, "search_deals", json!({"query": "a"})),
        );
        assert_eq!(ok.status, 200);
        assert_eq!(
            post(addr, &[&full], &call(2, "drop_tables", json!({}))).status,
            403
        );
        assert_eq!(
            post(addr, &[], &call(3, "search_deals", json!({}))).status,
            401
        );
        assert!(eventually(3, || s
            .gw
            .metrics()
            .contains("outcome=\"denied\",tool=\"\"")));
        s.gw.metrics()
    })
    .await;
    let exported = exported(&metrics);
    let used: BTreeSet<String> = names(&rule_queries())
        .into_iter()
        .chain(names(&dashboard_queries()))
        .collect();
    let missing: Vec<&String> = used
        .iter()
        .filter(|n| !exported.contains(n.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "deploy/ uses metrics /metrics does not export: {missing:?}\n{metrics}"
    );
}

#[test]
fn the_rules_and_dashboard_cover_what_operators_are_promised() {
    let rules = names(&rule_queries());
    for name in [
        "mcpwarden_key_usage_anomaly_score",
        "mcpwarden_auth_failures_total",
        "mcpwarden_rate_limited_total",
        "mcpwarden_key_expiry_timestamp_seconds",
        "mcpwarden_key_created_timestamp_seconds",
        "mcpwarden_policy_reloads_total",
        "mcpwarden_upstream_errors_total",
    ] {
        assert!(rules.contains(name), "no alert on {name}");
    }
    let dashboard = names(&dashboard_queries());
    for name in [
        "mcpwarden_requests_total",
        "mcpwarden_auth_failures_total",
        "mcpwarden_rate_limited_total",
        "mcpwarden_request_duration_seconds_bucket",
        "mcpwarden_responses_truncated_total",
        "mcpwarden_key_usage_anomaly_score",
        "mcpwarden_key_expiry_timestamp_seconds",
    ] {
        assert!(dashboard.contains(name), "no panel over {name}");
    }
}
