//! deploy/'s Prometheus rules and Grafana dashboard against a running gateway: every metric
//! they name is one `/metrics` exports, every label they select, group or print is one those
//! metrics carry, and they cover what operators are promised. (Their syntax and the rules'
//! behaviour are checked with promtool by `deploy/check.sh` in CI.)

use std::collections::{BTreeMap, BTreeSet};
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

/// Every alerting rule.
fn rules() -> Vec<Value> {
    let rules: Value = serde_saphyr::from_str(&deploy_file("prometheus-rules.yaml")).unwrap();
    let rules: Vec<Value> = rules["groups"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|g| g["rules"].as_array().unwrap().clone())
        .collect();
    assert!(rules.len() >= 7);
    rules
}

/// The PromQL of every alerting rule.
fn rule_queries() -> Vec<String> {
    rules()
        .iter()
        .map(|r| r["expr"].as_str().unwrap().to_owned())
        .collect()
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

/// Labels Prometheus adds to every series it scrapes (the gateway does not export them).
const TARGET_LABELS: [&str; 2] = ["instance", "job"];

/// The label names of each series name in a Prometheus text exposition.
fn exported_labels(metrics: &str) -> BTreeMap<String, BTreeSet<String>> {
    let mut labels: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for line in metrics.lines().filter(|l| !l.starts_with('#')) {
        let Some((name, mut rest)) = line.split_once('{') else {
            continue;
        };
        let names = labels.entry(name.to_owned()).or_default();
        // `name="value",` pairs; values may hold escaped quotes.
        while let Some((label, after)) = rest.split_once("=\"") {
            names.insert(label.trim_start_matches(',').to_owned());
            let mut escaped = false;
            let end = after
                .char_indices()
                .find(|&(_, c)| {
                    let closes = c == '"' && !escaped;
                    escaped = c == '\\' && !escaped;
                    closes
                })
                .map(|(i, _)| i)
                .unwrap();
            rest = &after[end + 1..];
        }
    }
    labels
}

/// The word at the start of `text`: a metric or label name.
fn word(text: &str) -> &str {
    let end = text
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(text.len());
    &text[..end]
}

/// The labels a query uses, each with the metric it must be on: those in a selector
/// (`metric{label="…"}`) are on that metric; those of a grouping clause (`sum without
/// (label) (…)`, `by`, `on`, `ignoring`) on the first metric of the expression it groups.
fn used_labels(query: &str) -> Vec<(String, String)> {
    let mut used = Vec::new();
    for (at, _) in query.match_indices("mcpwarden_") {
        let metric = word(&query[at..]);
        let rest = &query[at + metric.len()..];
        if let Some(selector) = rest.strip_prefix('{') {
            let selector = &selector[..selector.find('}').unwrap()];
            for matcher in selector.split(',') {
                let label = word(matcher.trim());
                used.push((metric.to_owned(), label.to_owned()));
            }
        }
    }
    for clause in ["without", "by", "on", "ignoring"] {
        for (at, _) in query.match_indices(clause) {
            let before = query[..at].chars().next_back();
            let rest = query[at + clause.len()..].trim_start();
            let (Some(list), false) = (
                rest.strip_prefix('('),
                before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_'),
            ) else {
                continue;
            };
            let (list, expression) = list.split_once(')').unwrap();
            let Some(metric) = expression
                .find("mcpwarden_")
                .map(|i| word(&expression[i..]))
            else {
                continue;
            };
            for label in list.split(',').map(str::trim).filter(|l| !l.is_empty()) {
                used.push((metric.to_owned(), label.to_owned()));
            }
        }
    }
    used
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

    // A label no series has matches nothing, silently: a rule on it would never fire.
    let labels = exported_labels(&metrics);
    let has = |metric: &str, label: &str| {
        TARGET_LABELS.contains(&label) || labels.get(metric).is_some_and(|l| l.contains(label))
    };
    let queries: Vec<String> = rule_queries()
        .into_iter()
        .chain(dashboard_queries())
        .collect();
    let mut checked = 0;
    for query in &queries {
        for (metric, label) in used_labels(query) {
            assert!(
                has(&metric, &label),
                "{metric} has no label {label:?}: {query}"
            );
            checked += 1;
        }
    }
    assert!(checked > 30, "{checked}");
    // What the alerts print: labels the rule's metrics carry.
    for rule in rules() {
        let query = rule["expr"].as_str().unwrap();
        let metrics = names(&[query.to_owned()]);
        for text in rule["annotations"].as_object().unwrap().values() {
            for (at, _) in text.as_str().unwrap().match_indices("$labels.") {
                let label = word(&text.as_str().unwrap()[at + "$labels.".len()..]);
                assert!(
                    metrics.iter().any(|m| has(m, label)),
                    "{}: no metric of it has {label:?}",
                    rule["alert"]
                );
            }
        }
    }
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
