//! `/usage.json` end to end: exact numbers after a known sequence of calls, agreeing with
//! `/metrics`, and no key or hash anywhere on the admin listener. Shared by the page and
//! key-lifecycle tests: the sequence and the admin helpers.

use std::collections::HashMap;
use std::net::SocketAddr;

use mcpwarden::auth::api_key::{ApiKey, hash_hex};
use serde_json::{Value, json};

use crate::common::upstream::Mode;
use crate::common::*;
use crate::gateway::{Setup, setup_with};

/// A burst of 20 that refills one every 30 s (so a test sees no refill), 2 at once,
/// responses up to 1 KB.
pub(crate) const LIMITS: &str = "  requests_per_minute: 2\n  burst: 20\n  concurrent_connections: 2\n  max_response_bytes: 1KB\n";

pub(crate) fn get(admin: SocketAddr, path: &str) -> Response {
    raw(
        admin,
        &format!("GET {path} HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"),
    )
    .unwrap()
}

pub(crate) fn usage_json(admin: SocketAddr) -> Value {
    let resp = get(admin, "/usage.json");
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("content-type"), Some("application/json"));
    resp.json()
}

/// The row of `workspace/key` in a `/usage.json` document.
pub(crate) fn row<'a>(usage: &'a Value, workspace: &str, key: &str) -> &'a Value {
    usage["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["workspace"] == workspace && k["key"] == key)
        .unwrap_or_else(|| panic!("no row for {workspace}/{key}: {usage}"))
}

/// The sum of every series of `name` carrying `labels`.
fn metric_sum(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.rsplit_once(' '))
        .filter(|(series, _)| {
            let (n, rest) = series.split_once('{').unwrap_or((series, "}"));
            n == name
                && labels
                    .iter()
                    .all(|(k, v)| rest.contains(&format!("{k}=\"{v}\"")))
        })
        .map(|(_, value)| value.parse::<f64>().unwrap())
        .sum()
}

pub(crate) fn search(addr: SocketAddr, key: &str, id: u64) -> Response {
    post(
        addr,
        &[key],
        &call(id, "search_deals", json!({"query": "a"})),
    )
}

/// What the client saw for one key, by status.
#[derive(Debug, Default)]
pub(crate) struct Tally(HashMap<u16, u64>);

impl Tally {
    fn add(&mut self, r: &Response) -> u16 {
        *self.0.entry(r.status).or_default() += 1;
        r.status
    }
    fn of(&self, status: u16) -> u64 {
        self.0.get(&status).copied().unwrap_or(0)
    }
    fn total(&self) -> u64 {
        self.0.values().sum()
    }
}

/// Allowed, denied, truncated, concurrency-limited and rate-limited calls by `full`; two
/// denied calls by `reader`; one call by `other`; refused credentials. Returns `full`'s tally.
pub(crate) async fn known_sequence(s: &Setup) -> Tally {
    let addr = s.gw.addr;
    let full = key_header(&s.keys.full);
    // Two slow calls hold both slots while a third is refused.
    let slow: Vec<_> = (0..2)
        .map(|i| {
            let full = full.clone();
            tokio::task::spawn_blocking(move || {
                post(addr, &[&full], &call(100 + i, "slow", json!({"ms": 1500})))
            })
        })
        .collect();
    let (reader, other, expired) = (
        key_header(&s.keys.reader),
        key_header(&s.keys.other),
        key_header(&s.keys.expired),
    );
    let up = &s.up;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while up.calls.count("slow") < 2 {
        assert!(
            std::time::Instant::now() < deadline,
            "the slow calls never arrived"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let mut tally = Tally::default();
    let key = full.clone();
    let refused = blocking(move || search(addr, &key, 1)).await;
    assert_eq!(tally.add(&refused), 429, "both slots are taken");
    for call in slow {
        assert_eq!(tally.add(&call.await.unwrap()), 200);
    }
    blocking(move || {
        let mut t = tally;
        for i in 0..3 {
            assert_eq!(t.add(&search(addr, &full, 2 + i)), 200);
        }
        let big = big_result(addr, &full, 5_000);
        assert_eq!(t.add(&big), 200);
        assert_eq!(big.json()["result"]["_meta"]["mcpwarden/truncated"], true);
        let forbidden = post_call(addr, &full, "drop_everything");
        assert_eq!(t.add(&forbidden), 403);
        // Spend the rest of the bucket: 200s until the first 429, then one more 429.
        let mut i = 10;
        while t.add(&search(addr, &full, i)) == 200 {
            i += 1;
            assert!(i < 40, "the bucket never ran out");
        }
        assert_eq!(t.add(&search(addr, &full, i + 1)), 429);

        for _ in 0..2 {
            assert_eq!(post_call(addr, &reader, "create_deal").status, 403);
        }
        assert_eq!(search(addr, &other, 1).status, 200);
        assert_eq!(search(addr, &expired, 1).status, 401);
        assert_eq!(
            search(addr, &key_header(&ApiKey::generate()), 1).status,
            401
        );
        t
    })
    .await
}

fn big_result(addr: SocketAddr, key: &str, bytes: usize) -> Response {
    post(
        addr,
        &[key],
        &call(7, "big_result", json!({ "bytes": bytes })),
    )
}

fn post_call(addr: SocketAddr, key: &str, tool: &str) -> Response {
    post(addr, &[key], &call(9, tool, json!({"name": "x"})))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_json_counts_a_known_sequence_exactly_and_agrees_with_metrics() {
    let s = setup_with(Mode::Stateless, "", LIMITS).await;
    let tally = known_sequence(&s).await;
    let admin = s.gw.admin;
    let (usage, metrics) = blocking(move || {
        let metrics = get(admin, "/metrics").text();
        (usage_json(admin), metrics)
    })
    .await;

    let full = row(&usage, "acme", "full");
    let rate_limited = tally.of(429) - 1; // one 429 was the concurrency refusal
    assert!(rate_limited >= 2, "{tally:?}");
    assert_eq!(
        full["requests"],
        json!({"minute": tally.total(), "hour": tally.total(), "day": tally.total()}),
        "{tally:?}"
    );
    assert_eq!(full["denied"], tally.of(403));
    assert_eq!(full["rate_limited"], rate_limited);
    assert_eq!(full["concurrency_limited"], 1);
    assert_eq!(full["truncated"], 1);
    assert!(full["bytes_out"].as_u64().unwrap() > 1000, "{full}");
    assert_eq!(full["anomaly_score"], 0.0, "no score during the warm-up");
    assert_eq!(full["created"], "2026-09-01T00:00:00Z");
    assert_eq!(full["expires"], Value::Null);
    let seen = full["last_seen"].as_str().unwrap();
    let seen: jiff::Timestamp = seen.parse().unwrap();
    assert!(
        (jiff::Timestamp::now() - seen).get_seconds().abs() < 60,
        "{seen}"
    );

    let reader = row(&usage, "acme", "reader");
    assert_eq!(
        (
            reader["requests"]["day"].as_u64(),
            reader["denied"].as_u64()
        ),
        (Some(2), Some(2))
    );
    assert_eq!(row(&usage, "beta", "other")["requests"]["minute"], 1);
    // A refused credential counts under no key; an idle key is listed with zeros.
    let expired = row(&usage, "acme", "expired");
    assert_eq!(
        expired["requests"],
        json!({"minute": 0, "hour": 0, "day": 0})
    );
    assert_eq!(expired["last_seen"], Value::Null);
    assert_eq!(expired["expires"], "2020-01-01T00:00:00Z");
    assert_eq!(usage["keys"].as_array().unwrap().len(), 4);
    assert_eq!(usage["policy"]["generation"], 1);
    assert_eq!(usage["policy"]["last_error"], Value::Null);
    assert!(
        usage["policy"]["last_reload"]
            .as_str()
            .unwrap()
            .ends_with('Z')
    );
    assert!(usage["generated_at"].as_str().unwrap().ends_with('Z'));

    // The same numbers as /metrics, key by key.
    for (ws, key) in [("acme", "full"), ("acme", "reader"), ("beta", "other")] {
        let row = row(&usage, ws, key);
        let labels = [("workspace", ws), ("key", key)];
        let sum = |name: &str, extra: &[(&str, &str)]| {
            let all: Vec<_> = labels.iter().chain(extra).copied().collect();
            metric_sum(&metrics, name, &all) as u64
        };
        let requests = sum("mcpwarden_requests_total", &[]);
        assert_eq!(row["requests"]["day"], requests, "{ws}/{key}");
        let denied = sum("mcpwarden_requests_total", &[("outcome", "denied")]);
        assert_eq!(row["denied"], denied, "{ws}/{key}");
        let rate = sum("mcpwarden_rate_limited_total", &[("limit", "rate")]);
        assert_eq!(row["rate_limited"], rate, "{ws}/{key}");
        let slots = sum("mcpwarden_rate_limited_total", &[("limit", "concurrency")]);
        assert_eq!(row["concurrency_limited"], slots, "{ws}/{key}");
        let cut = sum("mcpwarden_responses_truncated_total", &[]);
        assert_eq!(row["truncated"], cut, "{ws}/{key}");
        if metrics.contains("mcpwarden_response_bytes_total{") {
            let bytes = sum("mcpwarden_response_bytes_total", &[]);
            assert_eq!(row["bytes_out"], bytes, "{ws}/{key}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_key_or_hash_appears_on_the_admin_listener_even_in_a_reload_error() {
    let s = setup_with(Mode::Stateless, "", LIMITS).await;
    known_sequence(&s).await;
    // A key pasted where a date goes: the error quotes it, the page must not.
    let text = std::fs::read_to_string(&s.gw.policy_path).unwrap();
    let full_hash = hash_hex(s.keys.full.expose());
    let broken = text.replace(
        &format!("sha256: {full_hash}"),
        &format!(
            "sha256: {full_hash}\n        expires: {}",
            s.keys.full.expose()
        ),
    );
    s.gw.write_policy(&broken);
    let admin = s.gw.admin;
    let keys = [&s.keys.full, &s.keys.reader, &s.keys.other, &s.keys.expired]
        .map(|k| (k.expose().to_owned(), hash_hex(k.expose())));
    blocking(move || {
        assert!(eventually(3, || usage_json(admin)["policy"]["last_error"].is_string()));
        let usage = usage_json(admin);
        assert_eq!(usage["policy"]["generation"], 1);
        let error = usage["policy"]["last_error"].as_str().unwrap();
        assert!(
            error.contains("expires: invalid date \"[redacted]\""),
            "{error}"
        );
        let page = get(admin, "/usage").text();
        assert!(page.contains("The last policy reload failed"), "{page}");
        let metrics = get(admin, "/metrics").text();
        for (key, hash) in &keys {
            for (name, text) in [
                ("/usage", &page),
                ("/usage.json", &usage.to_string()),
                ("/metrics", &metrics),
            ] {
                assert!(!text.contains(key.as_str()), "a key in {name}");
                assert!(!text.contains(hash.as_str()), "a key hash in {name}");
                assert!(!text.contains(&hash[..16]), "part of a key hash in {name}");
            }
        }
    })
    .await;
}
