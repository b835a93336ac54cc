use std::sync::Arc;

use super::Metrics;
use super::key_series::slot;
use crate::auth::Identity;
use crate::auth::api_key::{ApiKey, hash_hex};
use crate::policy::{self, Policy, fixture};
use crate::telemetry::{Finished, Outcome};

/// A policy with workspace `acme` holding the given key ids and workspace `beta` holding
/// `other` (when `with_beta`).
fn policy(acme: &[&str], with_beta: bool) -> Policy {
    let mut yaml = String::from(
        "version: 1\nupstream:\n  url: http://127.0.0.1:3001\ntools:\n  - match: search_*\n    requires: []\nworkspaces:\n  acme:\n    keys:\n",
    );
    for id in acme {
        let hash = hash_hex(ApiKey::generate().expose());
        yaml.push_str(&format!("      - id: {id}\n        sha256: {hash}\n"));
    }
    if with_beta {
        let hash = hash_hex(ApiKey::generate().expose());
        yaml.push_str(&format!(
            "  beta:\n    keys:\n      - id: other\n        sha256: {hash}\n"
        ));
    }
    policy::compile(&yaml, "test.yaml").unwrap()
}

/// `policy` and a registry that has adopted it.
fn adopted(policy: Policy) -> (Policy, Metrics) {
    let metrics = Metrics::new();
    metrics.adopt(&policy);
    (policy, metrics)
}

fn identity(policy: &Policy, id: &str) -> Identity {
    let key = policy.keys.values().find(|k| &*k.id == id).unwrap();
    Identity::from_key(Arc::clone(key))
}

/// The value of the series `name` whose labels include all of `labels`.
fn value(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.rsplit_once(' '))
        .find(|(series, _)| {
            let (n, rest) = series.split_once('{').unwrap_or((series, "}"));
            n == name
                && labels
                    .iter()
                    .all(|(k, v)| rest.contains(&format!("{k}=\"{v}\"")))
        })
        .map(|(_, v)| v.parse().unwrap())
}

const FULL: [(&str, &str); 2] = [("workspace", "acme"), ("key", "full")];

#[test]
fn n_requests_of_a_key_show_as_exactly_n_in_every_family() {
    let (p, metrics) = adopted(policy(&["full", "reader"], false));
    let full = identity(&p, "full");
    for _ in 0..7 {
        metrics.record(&Finished::sample(Some(&full), "search_deals", Outcome::Ok));
    }
    metrics.record(&Finished::sample(Some(&full), "other", Outcome::Denied));
    let text = metrics.render();
    let ok = [
        FULL[0],
        FULL[1],
        ("tool", "search_deals"),
        ("outcome", "ok"),
    ];
    assert_eq!(value(&text, "mcpwarden_requests_total", &ok), Some(7.0));
    let denied = [FULL[0], FULL[1], ("tool", "other"), ("outcome", "denied")];
    assert_eq!(value(&text, "mcpwarden_requests_total", &denied), Some(1.0));
    // Every outcome of a used method and tool shows, at zero until it happens.
    let limited = [("tool", "search_deals"), ("outcome", "rate_limited")];
    assert_eq!(
        value(
            &text,
            "mcpwarden_requests_total",
            &[FULL[0], FULL[1], limited[0], limited[1]]
        ),
        Some(0.0)
    );
    let histogram = [("workspace", "acme"), ("method", "tools/call")];
    assert_eq!(
        value(
            &text,
            "mcpwarden_request_duration_seconds_count",
            &histogram
        ),
        Some(8.0)
    );
    let within_5ms = [histogram[0], histogram[1], ("le", "0.005")];
    assert_eq!(
        value(
            &text,
            "mcpwarden_request_duration_seconds_bucket",
            &within_5ms
        ),
        Some(8.0)
    );
    assert_eq!(
        value(&text, "mcpwarden_response_bytes_total", &FULL),
        Some(8.0 * 100.0)
    );
    // The histogram is per workspace and method: no key label.
    assert!(
        text.lines()
            .filter(|l| l.starts_with("mcpwarden_request_duration_seconds"))
            .all(|l| !l.contains("key=")),
        "{text}"
    );
}

#[test]
fn every_key_of_an_adopted_policy_has_its_per_key_series_at_zero() {
    let (_, metrics) = adopted(policy(&["full", "idle"], false));
    let text = metrics.render();
    let idle = [("workspace", "acme"), ("key", "idle")];
    assert_eq!(
        value(&text, "mcpwarden_response_bytes_total", &idle),
        Some(0.0)
    );
    assert_eq!(
        value(&text, "mcpwarden_responses_truncated_total", &idle),
        Some(0.0)
    );
    for limit in ["rate", "concurrency"] {
        let labels = [idle[0], idle[1], ("limit", limit)];
        assert_eq!(
            value(&text, "mcpwarden_rate_limited_total", &labels),
            Some(0.0)
        );
    }
    for kind in ["connect", "timeout", "reset", "status_5xx"] {
        let labels = [("kind", kind)];
        assert_eq!(
            value(&text, "mcpwarden_upstream_errors_total", &labels),
            Some(0.0)
        );
    }
}

#[test]
fn rate_limits_and_truncations_count_by_key_and_limit() {
    let (p, metrics) = adopted(policy(&["full"], false));
    let full = identity(&p, "full");
    let rate = Outcome::RateLimited { concurrency: false };
    let slots = Outcome::RateLimited { concurrency: true };
    for outcome in [rate, rate, slots] {
        metrics.record(&Finished::sample(Some(&full), "search_deals", outcome));
    }
    let mut cut = Finished::sample(Some(&full), "search_deals", Outcome::TooLarge);
    cut.truncated = true;
    metrics.record(&cut);
    let text = metrics.render();
    let by_limit = |limit| {
        value(
            &text,
            "mcpwarden_rate_limited_total",
            &[FULL[0], FULL[1], ("limit", limit)],
        )
    };
    assert_eq!(by_limit("rate"), Some(2.0));
    assert_eq!(by_limit("concurrency"), Some(1.0));
    assert_eq!(
        value(&text, "mcpwarden_responses_truncated_total", &FULL),
        Some(1.0)
    );
    let limited = [FULL[0], FULL[1], ("outcome", "rate_limited")];
    assert_eq!(
        value(&text, "mcpwarden_requests_total", &limited),
        Some(3.0)
    );
}

#[test]
fn requests_without_an_identity_carry_empty_key_labels() {
    let (_, metrics) = adopted(policy(&["full"], false));
    metrics.record(&Finished::sample(None, "", Outcome::Denied));
    metrics.record(&Finished::sample(
        None,
        "",
        Outcome::RateLimited { concurrency: false },
    ));
    let text = metrics.render();
    let none = [("workspace", ""), ("key", ""), ("method", ""), ("tool", "")];
    let denied = [none[0], none[1], none[2], none[3], ("outcome", "denied")];
    assert_eq!(value(&text, "mcpwarden_requests_total", &denied), Some(1.0));
    assert_eq!(
        value(&text, "mcpwarden_response_bytes_total", &none[..2]),
        Some(200.0)
    );
    // No key was over its limit: the address's failed-authentication budget is not a key's.
    assert!(
        !text.contains("mcpwarden_rate_limited_total{key=\"\""),
        "{text}"
    );
}

#[test]
fn a_key_that_leaves_the_policy_loses_its_series_and_one_that_stays_keeps_its_counts() {
    let (before, metrics) = adopted(policy(&["full", "reader"], true));
    let (full, reader, other) = (
        identity(&before, "full"),
        identity(&before, "reader"),
        identity(&before, "other"),
    );
    for who in [&full, &reader, &other] {
        metrics.record(&Finished::sample(Some(who), "search_deals", Outcome::Ok));
    }
    assert!(metrics.render().contains("key=\"reader\""));

    // `reader` and the whole of `beta` are revoked; `full` gets a new hash, same id.
    let after = policy(&["full"], false);
    metrics.adopt(&after);
    let text = metrics.render();
    assert!(!text.contains("reader"), "{text}");
    assert!(!text.contains("beta"), "{text}");
    let ok = [FULL[0], FULL[1], ("outcome", "ok")];
    assert_eq!(value(&text, "mcpwarden_requests_total", &ok), Some(1.0));

    // Requests of the old policy still in flight: the kept key counts on, the revoked one's
    // series do not come back (not even through a method it had not used).
    metrics.record(&Finished::sample(Some(&full), "search_deals", Outcome::Ok));
    metrics.record(&Finished::sample(
        Some(&reader),
        "search_deals",
        Outcome::Ok,
    ));
    metrics.record(&Finished::sample(Some(&reader), "search_more", Outcome::Ok));
    metrics.record(&Finished::sample(
        Some(&identity(&after, "full")),
        "search_deals",
        Outcome::Ok,
    ));
    let text = metrics.render();
    assert!(!text.contains("reader"), "{text}");
    assert_eq!(value(&text, "mcpwarden_requests_total", &ok), Some(3.0));
    let histogram = [("workspace", "acme"), ("method", "tools/call")];
    assert_eq!(
        value(
            &text,
            "mcpwarden_request_duration_seconds_count",
            &histogram
        ),
        Some(4.0)
    );
}

#[test]
fn a_policy_the_registry_never_adopted_counts_nothing_per_key() {
    let metrics = Metrics::new();
    let p = policy(&["full"], false);
    metrics.record(&Finished::sample(
        Some(&identity(&p, "full")),
        "search_deals",
        Outcome::Ok,
    ));
    assert!(!metrics.render().contains("key=\"full\""));
}

#[test]
fn outcome_slots_follow_the_outcome_labels() {
    for outcome in [
        Outcome::Ok,
        Outcome::Denied,
        Outcome::RateLimited { concurrency: true },
        Outcome::TooLarge,
        Outcome::UpstreamError,
    ] {
        assert_eq!(super::families::OUTCOMES[slot(outcome)], outcome.label());
    }
}

#[test]
fn an_oauth_client_gets_its_series_on_first_use_and_keeps_them_across_reloads() {
    let (before, metrics) = adopted(fixture::with_oauth(policy(&["full"], true)));
    let app = fixture::client(&before, "acme", "app");
    let other = fixture::client(&before, "beta", "app");
    for _ in 0..3 {
        metrics.record(&Finished::sample(Some(&app), "search_deals", Outcome::Ok));
    }
    metrics.record(&Finished::sample(Some(&other), "search_deals", Outcome::Ok));
    let app_ok = [
        ("workspace", "acme"),
        ("key", "oauth:app"),
        ("outcome", "ok"),
    ];
    assert_eq!(
        value(&metrics.render(), "mcpwarden_requests_total", &app_ok),
        Some(3.0)
    );

    // A reload that keeps `acme` and drops `beta`: the acme client's counts carry on (through
    // the new policy's own identity), the beta client's series go.
    let after = fixture::with_oauth(policy(&["full"], false));
    metrics.adopt(&after);
    let app = fixture::client(&after, "acme", "app");
    metrics.record(&Finished::sample(Some(&app), "search_deals", Outcome::Ok));
    let text = metrics.render();
    assert_eq!(value(&text, "mcpwarden_requests_total", &app_ok), Some(4.0));
    assert!(!text.contains("workspace=\"beta\""), "{text}");

    // Without `oauth:`, no client series survive.
    metrics.adopt(&policy(&["full"], false));
    assert!(!metrics.render().contains("oauth:app"));
}

#[test]
fn oauth_clients_past_the_cap_share_one_series() {
    let (p, metrics) = adopted(fixture::with_oauth(policy(&["full"], false)));
    let cap = crate::telemetry::MAX_OAUTH_CLIENTS;
    for i in 0..cap + 3 {
        let c = fixture::client(&p, "acme", &format!("c{i}"));
        metrics.record(&Finished::sample(Some(&c), "search_deals", Outcome::Ok));
    }
    let text = metrics.render();
    let shared = [("key", "oauth:other"), ("outcome", "ok")];
    assert_eq!(value(&text, "mcpwarden_requests_total", &shared), Some(3.0));
    let series = text
        .lines()
        .filter(|l| l.starts_with("mcpwarden_response_bytes_total{"))
        .count();
    // Every client up to the cap, the shared one, the policy's key and anonymous requests.
    assert_eq!(series, cap + 3);

    // After a reload every identity is new; a client met before keeps its own series.
    let reloaded = fixture::with_oauth(policy(&["full"], false));
    metrics.adopt(&reloaded);
    let c0 = fixture::client(&reloaded, "acme", "c0");
    metrics.record(&Finished::sample(Some(&c0), "search_deals", Outcome::Ok));
    let own = [("key", "oauth:c0"), ("outcome", "ok")];
    let text = metrics.render();
    assert_eq!(value(&text, "mcpwarden_requests_total", &own), Some(2.0));
    assert_eq!(value(&text, "mcpwarden_requests_total", &shared), Some(3.0));
}

#[test]
fn a_key_inventing_names_gets_at_most_max_rows_of_its_own_then_shares_one() {
    use super::key_series::MAX_ROWS;
    let (p, metrics) = adopted(policy(&["full"], false));
    let full = identity(&p, "full");
    // Label names live as long as the process, as the proxy's interned ones do.
    let names: Vec<&'static str> = (0..MAX_ROWS + 10)
        .map(|i| &*format!("search_{i}").leak())
        .collect();
    for name in &names {
        metrics.record(&Finished::sample(Some(&full), name, Outcome::Ok));
    }
    // The invented names again: counted where they went the first time.
    for name in &names[MAX_ROWS..] {
        metrics.record(&Finished::sample(Some(&full), name, Outcome::Ok));
    }
    let text = metrics.render();
    let rows = text
        .lines()
        .filter(|l| l.starts_with("mcpwarden_requests_total{") && l.contains("outcome=\"ok\""))
        .filter(|l| l.contains("key=\"full\""))
        .count();
    assert_eq!(rows, MAX_ROWS + 1);
    let shared = [
        FULL[0],
        FULL[1],
        ("method", "other"),
        ("tool", "other"),
        ("outcome", "ok"),
    ];
    assert_eq!(
        value(&text, "mcpwarden_requests_total", &shared),
        Some(20.0)
    );

    // Revoked: every row goes, the shared one too.
    metrics.adopt(&policy(&["other"], false));
    assert!(!metrics.render().contains("key=\"full\""));
}
