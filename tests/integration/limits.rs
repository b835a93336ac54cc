//! Per-key limits, end to end: the token bucket (429, `Retry-After`, `RateLimit`), costs and
//! batches, concurrency slots held by slow calls and streams, state across a reload, and the
//! budget of failed authentications per address.

use std::time::Duration;

use mcpwarden::auth::api_key::ApiKey;
use serde_json::json;

use crate::common::upstream::Mode;
use crate::common::*;
use crate::gateway::setup_with;

const TWENTY_A_MINUTE: &str = "  requests_per_minute: 20\n";

fn search(addr: std::net::SocketAddr, key: &str, id: u64) -> Response {
    post(
        addr,
        &[key],
        &call(id, "search_deals", json!({"query": "a"})),
    )
}

fn key_labels(key: &'static str) -> [(&'static str, &'static str); 2] {
    [("workspace", "acme"), ("key", key)]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_with_20_a_minute_gets_exactly_20_then_a_429_that_says_when_to_retry() {
    let s = setup_with(Mode::Stateless, "", TWENTY_A_MINUTE).await;
    let (addr, full, reader) = (
        s.gw.addr,
        key_header(&s.keys.full),
        key_header(&s.keys.reader),
    );
    let refused = blocking(move || {
        for i in 0..20 {
            let ok = search(addr, &full, i);
            assert_eq!(ok.status, 200, "request {i}: {}", ok.text());
            assert_eq!(ok.header("ratelimit-policy"), Some("\"default\";q=20;w=60"));
            let rate = ok.header("ratelimit").unwrap();
            assert!(
                rate.starts_with(&format!("\"default\";r={};t=", 19 - i)),
                "{rate}"
            );
        }
        search(addr, &full, 21)
    })
    .await;
    assert_eq!(s.up.calls.count("search_deals"), 20);

    assert_eq!(refused.status, 429, "{}", refused.text());
    let retry: u64 = refused.header("retry-after").unwrap().parse().unwrap();
    assert!(
        (1..=3).contains(&retry),
        "one token comes back every 3 s: {retry}"
    );
    assert_eq!(refused.header("cache-control"), Some("no-store"));
    assert_eq!(refused.header("content-type"), Some("application/json"));
    assert_eq!(
        refused.header("ratelimit"),
        Some(format!("\"default\";r=0;t={retry}").as_str())
    );
    assert_eq!(
        refused.json(),
        json!({"jsonrpc": "2.0", "id": 21, "error": {
            "code": -32004,
            "message": "rate limit exceeded: 20 requests per minute",
            "data": {"retryAfterSeconds": retry}
        }})
    );

    // Another key has its own bucket; the refused one passes once Retry-After has gone by.
    let other = blocking(move || search(addr, &reader, 1)).await;
    assert_eq!(other.status, 200);
    tokio::time::sleep(Duration::from_secs(retry)).await;
    let full = key_header(&s.keys.full);
    assert_eq!(blocking(move || search(addr, &full, 22)).await.status, 200);

    let metrics = s.gw.metrics();
    let [ws, key] = key_labels("full");
    assert_eq!(
        metric(
            &metrics,
            "mcpwarden_rate_limited_total",
            &[ws, key, ("limit", "rate")]
        ),
        Some(1.0)
    );
    assert_eq!(
        metric(
            &metrics,
            "mcpwarden_requests_total",
            &[ws, key, ("outcome", "rate_limited")]
        ),
        Some(1.0)
    );
    assert_eq!(s.up.calls.count("search_deals"), 22);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn costs_and_batches_draw_all_or_nothing_and_refusals_draw_nothing() {
    let s = setup_with(Mode::Stateless, "", TWENTY_A_MINUTE).await;
    let (addr, full, reader) = (
        s.gw.addr,
        key_header(&s.keys.full),
        key_header(&s.keys.reader),
    );
    blocking(move || {
        // Forbidden calls are refused before the bucket: they draw nothing.
        for i in 0..25 {
            let r = post(
                addr,
                &[&reader],
                &call(i, "create_deal", json!({"name": "x"})),
            );
            assert_eq!(r.status, 403);
        }
        assert_eq!(search(addr, &reader, 99).status, 200);

        // ask_pipeline costs 5: three of them and a search leave 4 tokens.
        for i in 0..3 {
            let r = post(
                addr,
                &[&full],
                &call(i, "ask_pipeline", json!({"question": "q"})),
            );
            assert_eq!(r.status, 200, "{}", r.text());
        }
        assert_eq!(search(addr, &full, 3).status, 200);
        // A batch draws for every element. (The test upstream, like rmcp servers, refuses
        // batches itself; what matters is what the gateway drew before forwarding it.)
        let pair = format!(
            "[{},{}]",
            call(4, "search_deals", json!({"query": "a"})),
            call(5, "search_deals", json!({"query": "b"}))
        );
        let forwarded = post(addr, &[&full], &pair);
        assert_ne!(forwarded.status, 429);
        let left = forwarded.header("ratelimit").unwrap();
        assert!(left.starts_with("\"default\";r=2;"), "{left}");
        // A batch costing 6 with 2 left is refused whole, with id null, and takes nothing...
        let batch = format!(
            "[{},{}]",
            call(6, "ask_pipeline", json!({"question": "q"})),
            call(7, "search_deals", json!({"query": "a"}))
        );
        let refused = post(addr, &[&full], &batch);
        assert_eq!(refused.status, 429);
        assert_eq!(refused.json()["id"], serde_json::Value::Null);
        // ...so two single calls still fit, and a third does not.
        assert_eq!(search(addr, &full, 8).status, 200);
        assert_eq!(search(addr, &full, 9).status, 200);
        assert_eq!(search(addr, &full, 10).status, 429);
    })
    .await;
    assert_eq!(s.up.calls.count("ask_pipeline"), 3);
    assert_eq!(s.up.calls.count("search_deals"), 1 + 1 + 2);
    assert_eq!(s.up.calls.count("create_deal"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_3_slots_exactly_3_of_5_slow_calls_go_through_and_the_slots_come_back() {
    let limits = "  requests_per_minute: 100000\n  concurrent_connections: 3\n";
    let s = setup_with(Mode::Stateless, "", limits).await;
    let (addr, full) = (s.gw.addr, key_header(&s.keys.full));
    let calls: Vec<_> = (0..5)
        .map(|i| {
            let full = full.clone();
            tokio::task::spawn_blocking(move || {
                post(addr, &[&full], &call(i, "slow", json!({"ms": 2000})))
            })
        })
        .collect();
    let mut statuses = Vec::new();
    for c in calls {
        let r = c.await.unwrap();
        if r.status == 429 {
            assert_eq!(r.header("retry-after"), Some("1"));
            assert_eq!(r.json()["error"]["code"], -32004);
            assert_eq!(r.json()["error"]["data"]["retryAfterSeconds"], 1);
            assert!(r.header("ratelimit").is_none());
        }
        statuses.push(r.status);
    }
    statuses.sort();
    assert_eq!(statuses, [200, 200, 200, 429, 429]);
    assert_eq!(s.up.calls.count("slow"), 3);

    let gw = &s.gw;
    let [ws, key] = key_labels("full");
    assert!(eventually(2, || {
        metric(&gw.metrics(), "mcpwarden_inflight_requests", &[ws, key]) == Some(0.0)
    }));
    let metrics = gw.metrics();
    assert_eq!(
        metric(
            &metrics,
            "mcpwarden_rate_limited_total",
            &[ws, key, ("limit", "concurrency")]
        ),
        Some(2.0)
    );
    // Every key of the policy has a series, idle ones at 0.
    assert_eq!(
        metric(
            &metrics,
            "mcpwarden_inflight_requests",
            &[("workspace", "beta"), ("key", "other")]
        ),
        Some(0.0)
    );
    let full = key_header(&s.keys.full);
    assert_eq!(blocking(move || search(addr, &full, 9)).await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_goes_away_mid_stream_frees_its_slot() {
    let limits = "  requests_per_minute: 100000\n  concurrent_connections: 1\n";
    let s = setup_with(Mode::Stateful, "", limits).await;
    let (addr, key) = (s.gw.addr, key_header(&s.keys.full));
    let gw_admin = s.gw.admin;
    let calls = s.up.calls.clone();
    blocking(move || {
        let sid = session(addr, &key);
        let (mut stream, mut seen) = call_held_progress(addr, &key, &sid);
        read_until(&mut stream, &mut seen, "notifications/progress");
        let inflight = || {
            let text = raw(
                gw_admin,
                "GET /metrics HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
            )
            .unwrap()
            .text();
            metric(&text, "mcpwarden_inflight_requests", &key_labels("full"))
        };
        assert_eq!(inflight(), Some(1.0));
        // The one slot is taken by the open stream.
        assert_eq!(search(addr, &key, 6).status, 429);

        drop(stream);
        assert!(
            eventually(5, || inflight() == Some(0.0)),
            "{:?}",
            inflight()
        );
        calls.release();
        assert_eq!(
            post(
                addr,
                &[&key, &sid],
                &call(7, "search_deals", json!({"query": "a"}))
            )
            .status,
            200
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_neither_refills_a_bucket_nor_keeps_an_old_limit() {
    let s = setup_with(Mode::Stateless, "", TWENTY_A_MINUTE).await;
    let (addr, full) = (s.gw.addr, key_header(&s.keys.full));
    let before = blocking(move || {
        for i in 0..20 {
            assert_eq!(search(addr, &full, i).status, 200);
        }
        search(addr, &full, 20)
    })
    .await;
    assert_eq!(before.status, 429);
    assert_eq!(
        before.json()["error"]["message"],
        "rate limit exceeded: 20 requests per minute"
    );

    // A tenth of the rate (and burst): a refilled bucket would pass the next request, and the
    // old limit would have it wait at most 3 s.
    let text = std::fs::read_to_string(&s.gw.policy_path)
        .unwrap()
        .replace("requests_per_minute: 20", "requests_per_minute: 2");
    s.gw.write_policy(&text);
    let gw = &s.gw;
    assert!(eventually(3, || gw.metrics().contains(
        "mcpwarden_policy_reloads_total{result=\"success\"} 2"
    )));
    let full = key_header(&s.keys.full);
    let after = blocking(move || search(addr, &full, 21)).await;
    assert_eq!(after.status, 429, "a reload does not refill the bucket");
    assert_eq!(
        after.json()["error"]["message"],
        "rate limit exceeded: 2 requests per minute"
    );
    let retry: u64 = after.header("retry-after").unwrap().parse().unwrap();
    assert!(retry > 3, "the new limit applies: {retry}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_authentications_from_one_address_are_limited() {
    let s = setup_with(Mode::Stateless, "", DEFAULT_LIMITS).await;
    let (addr, full) = (s.gw.addr, key_header(&s.keys.full));
    blocking(move || {
        // No credential at all is not a guess: it spends nothing.
        for i in 0..40 {
            assert_eq!(
                post(addr, &[], &call(i, "search_deals", json!({}))).status,
                401
            );
        }
        for i in 0..30 {
            let guess = key_header(&ApiKey::generate());
            assert_eq!(search(addr, &guess, i).status, 401, "guess {i}");
        }
        let throttled = search(addr, &key_header(&ApiKey::generate()), 31);
        assert_eq!(throttled.status, 429);
        let retry: u64 = throttled.header("retry-after").unwrap().parse().unwrap();
        assert!((1..=2).contains(&retry), "{retry}");
        assert_eq!(throttled.json()["error"]["code"], -32004);
        // Even a right key waits: otherwise guessing would go on at line rate.
        assert_eq!(search(addr, &full, 32).status, 429);
        std::thread::sleep(Duration::from_secs(retry));
        assert_eq!(search(addr, &full, 33).status, 200);
    })
    .await;
}
