//! `/metrics` end to end: exact per-key counts after a known sequence of calls, no secret in
//! any label, and a revoked key's series gone after the reload that revokes it.

use std::net::SocketAddr;

use mcpwarden::auth::api_key::{ApiKey, hash_hex};
use serde_json::json;

use crate::common::upstream::Mode;
use crate::common::*;
use crate::gateway::setup_with;

/// Six requests a minute per key (one token every 10 s: none comes back during a test), and
/// responses cut at 1000 bytes.
const LIMITS: &str = "  requests_per_minute: 6\n  max_response_bytes: 1KB\n";

fn send(
    addr: SocketAddr,
    key: Option<&str>,
    id: u64,
    tool: &str,
    args: serde_json::Value,
) -> Response {
    let headers: Vec<&str> = key.into_iter().collect();
    post(addr, &headers, &call(id, tool, args))
}

/// Every request counted so far. A request is counted in the gateway's `logging` phase, just
/// after its client has the response, so a test waits for its count before reading others.
fn counted(gw: &Gateway) -> f64 {
    gw.metrics()
        .lines()
        .filter(|l| l.starts_with("mcpwarden_requests_total{"))
        .map(|l| l.rsplit_once(' ').unwrap().1.parse::<f64>().unwrap())
        .sum()
}

fn series<'a>(key: &'a str, tool: &'a str, outcome: &'a str) -> [(&'a str, &'a str); 5] {
    let workspace = if key.is_empty() { "" } else { "acme" };
    let method = if tool.is_empty() { "" } else { "tools/call" };
    [
        ("workspace", workspace),
        ("key", key),
        ("method", method),
        ("tool", tool),
        ("outcome", outcome),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counts_per_key_are_exact_after_allowed_denied_rate_limited_and_truncated_calls() {
    let s = setup_with(Mode::Stateless, "", LIMITS).await;
    let (addr, full, reader) = (
        s.gw.addr,
        key_header(&s.keys.full),
        key_header(&s.keys.reader),
    );
    let forged = key_header(&ApiKey::generate());
    // (key, status, response body bytes) of every request.
    let sent = blocking(move || {
        let mut sent = Vec::new();
        let mut go = |key: &str, who: Option<&str>, id, tool, args, status| {
            let r = send(addr, who, id, tool, args);
            assert_eq!(r.status, status, "{tool} #{id}: {}", r.text());
            sent.push((key.to_owned(), r.body.len()));
        };
        let search = || json!({"query": "a"});
        for i in 0..3 {
            go("full", Some(&full), i, "search_deals", search(), 200);
        }
        for i in 3..5 {
            go(
                "full",
                Some(&full),
                i,
                "big_result",
                json!({"bytes": 5000}),
                200,
            );
        }
        for i in 5..7 {
            go("full", Some(&full), i, "drop_tables", json!({}), 403);
        }
        go("full", Some(&full), 7, "search_deals", search(), 200);
        for i in 8..10 {
            go("full", Some(&full), i, "search_deals", search(), 429);
        }
        for i in 0..2 {
            go("reader", Some(&reader), i, "search_deals", search(), 200);
        }
        for i in 2..5 {
            go(
                "reader",
                Some(&reader),
                i,
                "create_deal",
                json!({"name": "x"}),
                403,
            );
        }
        go("", None, 0, "search_deals", search(), 401);
        go("", Some(&forged), 1, "search_deals", search(), 401);
        sent
    })
    .await;
    assert_eq!(s.up.calls.count("search_deals"), 6);
    assert_eq!(s.up.calls.count("big_result"), 2);

    let text = blocking(move || {
        assert!(
            eventually(3, || counted(&s.gw) == 17.0),
            "{}",
            s.gw.metrics()
        );
        s.gw.metrics()
    })
    .await;
    let requests = |labels: [(&str, &str); 5]| metric(&text, "mcpwarden_requests_total", &labels);
    assert_eq!(requests(series("full", "search_deals", "ok")), Some(4.0));
    assert_eq!(
        requests(series("full", "search_deals", "rate_limited")),
        Some(2.0)
    );
    assert_eq!(
        requests(series("full", "big_result", "too_large")),
        Some(2.0)
    );
    assert_eq!(requests(series("full", "big_result", "ok")), Some(0.0));
    // A tool no rule matches is labelled `other`, whatever its name.
    assert_eq!(requests(series("full", "other", "denied")), Some(2.0));
    assert!(!text.contains("drop_tables"), "{text}");
    assert_eq!(requests(series("reader", "search_deals", "ok")), Some(2.0));
    assert_eq!(
        requests(series("reader", "create_deal", "denied")),
        Some(3.0)
    );
    // Without a valid key: no key labels (and the body was never read).
    assert_eq!(requests(series("", "", "denied")), Some(2.0));

    let by_key = |name, key| metric(&text, name, &[("workspace", "acme"), ("key", key)]);
    let limited = |key, limit| {
        metric(
            &text,
            "mcpwarden_rate_limited_total",
            &[("workspace", "acme"), ("key", key), ("limit", limit)],
        )
    };
    assert_eq!(limited("full", "rate"), Some(2.0));
    assert_eq!(limited("full", "concurrency"), Some(0.0));
    assert_eq!(limited("reader", "rate"), Some(0.0));
    assert_eq!(
        by_key("mcpwarden_responses_truncated_total", "full"),
        Some(2.0)
    );
    assert_eq!(
        by_key("mcpwarden_responses_truncated_total", "reader"),
        Some(0.0)
    );

    // Response bytes: exactly the body bytes each key's clients read.
    let bytes = |key: &str| -> f64 {
        sent.iter()
            .filter(|(k, _)| k == key)
            .map(|(_, n)| *n as f64)
            .sum()
    };
    assert_eq!(
        by_key("mcpwarden_response_bytes_total", "full"),
        Some(bytes("full"))
    );
    assert_eq!(
        by_key("mcpwarden_response_bytes_total", "reader"),
        Some(bytes("reader"))
    );
    assert_eq!(
        metric(
            &text,
            "mcpwarden_response_bytes_total",
            &[("workspace", ""), ("key", "")]
        ),
        Some(bytes(""))
    );

    // Durations per workspace and method, never per key.
    let count = |workspace, method| {
        metric(
            &text,
            "mcpwarden_request_duration_seconds_count",
            &[("workspace", workspace), ("method", method)],
        )
    };
    assert_eq!(count("acme", "tools/call"), Some(15.0));
    assert_eq!(count("", ""), Some(2.0));
    assert!(
        text.lines()
            .filter(|l| l.starts_with("mcpwarden_request_duration_seconds"))
            .all(|l| !l.contains("key=")),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_keys_series_are_removed_by_the_reload_and_the_others_count_on() {
    let s = setup_with(Mode::Stateless, "", DEFAULT_LIMITS).await;
    let (addr, full, reader) = (
        s.gw.addr,
        key_header(&s.keys.full),
        key_header(&s.keys.reader),
    );
    let policy = std::fs::read_to_string(&s.gw.policy_path).unwrap();
    let reader_entry = format!(
        "      - id: reader\n        sha256: {}\n        scopes: [crm:read]\n",
        hash_hex(s.keys.reader.expose())
    );
    assert!(policy.contains(&reader_entry));
    let ok = series("full", "search_deals", "ok");
    blocking(move || {
        let gw = &s.gw;
        for i in 0..3 {
            assert_eq!(
                send(addr, Some(&full), i, "search_deals", json!({"query": "a"})).status,
                200
            );
            assert_eq!(
                send(
                    addr,
                    Some(&reader),
                    i,
                    "search_deals",
                    json!({"query": "a"})
                )
                .status,
                200
            );
        }
        assert!(eventually(3, || counted(gw) == 6.0));
        let before = gw.metrics();
        assert!(before.contains("key=\"reader\""), "{before}");
        assert_eq!(metric(&before, "mcpwarden_requests_total", &ok), Some(3.0));

        gw.write_policy(&policy.replace(&reader_entry, ""));
        assert!(
            eventually(3, || send(
                addr,
                Some(&reader),
                9,
                "search_deals",
                json!({})
            )
            .status
                == 401),
            "the revoked key still works"
        );
        // The revoked key's 401s count with the unauthenticated requests.
        let anonymous = series("", "", "denied");
        assert!(eventually(3, || {
            metric(&gw.metrics(), "mcpwarden_requests_total", &anonymous) >= Some(1.0)
        }));
        let after = gw.metrics();
        assert!(!after.contains("key=\"reader\""), "{after}");
        assert_eq!(metric(&after, "mcpwarden_requests_total", &ok), Some(3.0));
        assert_eq!(
            send(addr, Some(&full), 9, "search_deals", json!({"query": "a"})).status,
            200
        );
        assert!(eventually(3, || {
            metric(&gw.metrics(), "mcpwarden_requests_total", &ok) == Some(4.0)
        }));
        // Its workspace is still in the policy: the workspace's histogram stays.
        assert!(after.contains(
            "mcpwarden_request_duration_seconds_count{method=\"tools/call\",workspace=\"acme\"}"
        ));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_key_hash_or_argument_appears_in_metrics_or_the_access_log() {
    let up = crate::common::upstream::start(Mode::Stateless).await;
    let upstream = up.addr;
    let keys = Keys::new();
    let forged = ApiKey::generate();
    let secrets: Vec<String> = [
        &keys.full,
        &keys.reader,
        &keys.other,
        &keys.expired,
        &forged,
    ]
    .iter()
    .flat_map(|k| [k.expose().to_owned(), hash_hex(k.expose())])
    .chain(["an-argument-no-log-may-show".to_owned()])
    .collect();
    blocking(move || {
        for format in ["text", "json"] {
            let (addr, admin) = (free_port(), free_port());
            let policy = policy_yaml(upstream, addr, admin, &keys, "", DEFAULT_LIMITS);
            let gw = Gateway::start_logged(addr, admin, &policy, &["--log-format", format]);
            let marker = json!({"query": "an-argument-no-log-may-show"});
            let bearer = format!("Authorization: Bearer {}", keys.reader.expose());
            for key in [&keys.full, &keys.other, &keys.expired, &forged] {
                post(
                    addr,
                    &[&key_header(key)],
                    &call(1, "search_deals", marker.clone()),
                );
                post(
                    addr,
                    &[&key_header(key)],
                    &call(2, "create_deal", marker.clone()),
                );
            }
            post(addr, &[&bearer], &call(3, "search_deals", marker.clone()));
            post(
                addr,
                &[&bearer, &key_header(&keys.full)],
                &call(4, "search_deals", marker.clone()),
            );
            assert!(
                eventually(3, || gw.log().matches("mcpwarden::access").count() >= 10),
                "{}",
                gw.log()
            );
            let (metrics, log) = (gw.metrics(), gw.log());
            for secret in &secrets {
                assert!(
                    !metrics.contains(secret.as_str()),
                    "{format}: {secret} in /metrics"
                );
                assert!(
                    !log.contains(secret.as_str()),
                    "{format}: {secret} in the log:\n{log}"
                );
            }
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_valid_key_refused_after_authentication_is_counted_under_its_key() {
    let s = setup_with(Mode::Stateless, "", LIMITS).await;
    let (addr, key) = (s.gw.addr, key_header(&s.keys.full));
    let (put, foreign) = blocking(move || {
        let put = raw(
            addr,
            &format!("PUT /mcp HTTP/1.1\r\nHost: x\r\n{key}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"),
        )
        .unwrap();
        let foreign = raw(
            addr,
            &format!("GET /mcp HTTP/1.1\r\nHost: x\r\n{key}\r\nMcp-Session-Id: not-sealed-by-us\r\nConnection: close\r\n\r\n"),
        )
        .unwrap();
        (put, foreign)
    })
    .await;
    assert_eq!((put.status, foreign.status), (405, 404));
    let labels = [
        ("workspace", "acme"),
        ("key", "full"),
        ("outcome", "denied"),
    ];
    let gw = &s.gw;
    assert!(
        eventually(5, || metric(
            &gw.metrics(),
            "mcpwarden_requests_total",
            &labels
        ) == Some(2.0)),
        "{}",
        gw.metrics()
    );
    // The usage page's Denied column counts them too, and says so.
    let admin = gw.admin;
    let (usage, page) = blocking(move || {
        let page = crate::usage::get(admin, "/usage").text();
        (crate::usage::usage_json(admin), page)
    })
    .await;
    assert_eq!(crate::usage::row(&usage, "acme", "full")["denied"], 2);
    let denied_title = page
        .split("<th ")
        .find(|th| th.contains(">Denied</th>"))
        .unwrap();
    assert!(
        denied_title.contains("(404)") && denied_title.contains("(405)"),
        "{denied_title}"
    );
}
