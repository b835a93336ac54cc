//! The access log end to end: one line per request with its request id, the id the client
//! and the upstream see, both formats, and the switch.

use std::net::SocketAddr;

use serde_json::json;

use crate::common::upstream::{self, Mode};
use crate::common::*;

struct Logged {
    up: upstream::Upstream,
    gw: Gateway,
    keys: Keys,
}

async fn start(args: &'static [&'static str]) -> Logged {
    let up = upstream::start(Mode::Stateless).await;
    let keys = Keys::new();
    let (addr, admin) = (free_port(), free_port());
    let policy = policy_yaml(up.addr, addr, admin, &keys, "", DEFAULT_LIMITS);
    let gw = blocking(move || Gateway::start_logged(addr, admin, &policy, args)).await;
    Logged { up, gw, keys }
}

fn search(addr: SocketAddr, headers: &[&str]) -> Response {
    post(
        addr,
        headers,
        &call(1, "search_deals", json!({"query": "a"})),
    )
}

/// The access lines logged so far, once there are `n` of them.
fn access_lines(gw: &Gateway, n: usize) -> Vec<String> {
    let lines = || -> Vec<String> {
        gw.log()
            .lines()
            .filter(|l| l.contains("mcpwarden::access"))
            .map(str::to_owned)
            .collect()
    };
    assert!(eventually(3, || lines().len() >= n), "{}", gw.log());
    lines()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_request_gets_one_line_and_one_request_id_that_client_and_upstream_share() {
    let s = start(&[]).await;
    let (addr, key) = (s.gw.addr, key_header(&s.keys.full));
    let too_long = format!("X-Request-Id: {}", "a".repeat(129));
    let (chosen, made, replaced, refused) = blocking(move || {
        (
            search(addr, &[&key, "X-Request-Id: client-chosen-1"]),
            search(addr, &[&key]),
            search(addr, &[&key, &too_long]),
            search(addr, &["X-Request-Id: refused-1"]),
        )
    })
    .await;
    assert_eq!(chosen.header("x-request-id"), Some("client-chosen-1"));
    let made_id = made.header("x-request-id").unwrap().to_owned();
    assert!(
        made_id.len() == 32 && made_id.bytes().all(|b| b.is_ascii_hexdigit()),
        "{made_id}"
    );
    let replaced_id = replaced.header("x-request-id").unwrap().to_owned();
    assert_eq!(replaced_id.len(), 32);
    assert_ne!(replaced_id, made_id);
    // The upstream received the id the client got back (the last call: the replaced one).
    assert_eq!(s.up.calls.header("x-request-id"), Some(replaced_id.clone()));
    assert_eq!(s.up.calls.count("search_deals"), 3);
    // The gateway's own answers carry it too.
    assert_eq!(refused.status, 401);
    assert_eq!(refused.header("x-request-id"), Some("refused-1"));

    let lines = access_lines(&s.gw, 4);
    assert_eq!(lines.len(), 4, "{lines:#?}");
    let expect = [
        (
            "client-chosen-1",
            "workspace=acme key=full",
            "outcome=ok status=200",
        ),
        (
            made_id.as_str(),
            "workspace=acme key=full",
            "outcome=ok status=200",
        ),
        (
            replaced_id.as_str(),
            "workspace=acme key=full",
            "outcome=ok status=200",
        ),
        (
            "refused-1",
            "workspace=\"\" key=\"\"",
            "outcome=denied status=401",
        ),
    ];
    for (line, (id, who, how)) in lines.iter().zip(expect) {
        assert!(line.ends_with(&format!(" request_id={id}")), "{line}");
        assert!(line.contains(who) && line.contains(how), "{line}");
        assert!(line.contains(" INFO mcpwarden::access: request "), "{line}");
    }
    assert!(lines[0].contains("method=tools/call tool=search_deals"));
    assert!(lines[0].contains(" upstream_status=200 "), "{}", lines[0]);
    assert!(lines[3].contains(" upstream_status=\"\" "), "{}", lines[3]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_log_format_json_every_line_is_a_json_object_with_every_field() {
    let s = start(&["--log-format", "json"]).await;
    let (addr, key) = (s.gw.addr, key_header(&s.keys.reader));
    let resp = blocking(move || {
        search(addr, &[&key, "X-Request-Id: j-1"]);
        post(
            addr,
            &[&key, "X-Request-Id: j-2"],
            &call(2, "create_deal", json!({"name": "x"})),
        )
    })
    .await;
    assert_eq!(resp.status, 403);
    let lines = access_lines(&s.gw, 2);
    let parsed: Vec<serde_json::Value> = lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let allowed = &parsed[0];
    assert_eq!(allowed["target"], "mcpwarden::access");
    assert_eq!(allowed["level"], "INFO");
    let fields = &allowed["fields"];
    for (name, value) in [
        ("workspace", json!("acme")),
        ("key", json!("reader")),
        ("method", json!("tools/call")),
        ("tool", json!("search_deals")),
        ("outcome", json!("ok")),
        ("status", json!(200)),
        ("upstream_status", json!(200)),
        ("request_id", json!("j-1")),
    ] {
        assert_eq!(fields[name], value, "{name}: {fields}");
    }
    assert!(fields["duration_ms"].as_f64().unwrap() > 0.0);
    assert!(fields["bytes_in"].as_u64().unwrap() > 50);
    assert!(fields["bytes_out"].as_u64().unwrap() > 0);
    assert!(allowed["timestamp"].as_str().unwrap().ends_with('Z'));
    let denied = &parsed[1]["fields"];
    assert_eq!(denied["outcome"], "denied");
    assert_eq!(denied["tool"], "create_deal");
    assert_eq!(denied["upstream_status"], serde_json::Value::Null);
    assert_eq!(denied["request_id"], "j-2");
    // The other log lines are JSON too.
    for line in s.gw.log().lines() {
        serde_json::from_str::<serde_json::Value>(line).unwrap_or_else(|e| panic!("{e}: {line}"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_log_off_writes_no_request_lines_but_the_request_id_stays() {
    let s = start(&["--access-log", "off"]).await;
    let (addr, key) = (s.gw.addr, key_header(&s.keys.full));
    let resp = blocking(move || search(addr, &[&key, "X-Request-Id: quiet-1"])).await;
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("x-request-id"), Some("quiet-1"));
    // The gateway is stopped (flushing what it gathered) before its log is read.
    s.gw.signal("TERM");
    let mut gw = s.gw;
    let _ = gw.child.wait();
    let log = gw.log();
    assert!(log.contains("mcpwarden stopped"), "{log}");
    assert!(!log.contains("mcpwarden::access"), "{log}");
}
