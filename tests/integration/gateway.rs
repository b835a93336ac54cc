//! The request path, end to end: the real binary in front of a real `rmcp` server.

use serde_json::json;

use crate::common::upstream::{self, Mode};
use crate::common::*;

pub(crate) struct Setup {
    pub up: upstream::Upstream,
    pub gw: Gateway,
    pub keys: Keys,
}

pub(crate) async fn setup_with(mode: Mode, extra_upstream: &str, limits: &str) -> Setup {
    let up = upstream::start(mode).await;
    let keys = Keys::new();
    let (addr, admin) = (free_port(), free_port());
    let policy = policy_yaml(up.addr, addr, admin, &keys, extra_upstream, limits);
    let gw = tokio::task::spawn_blocking(move || Gateway::start(addr, admin, &policy))
        .await
        .unwrap();
    Setup { up, gw, keys }
}

pub(crate) async fn setup(mode: Mode) -> Setup {
    setup_with(mode, "", DEFAULT_LIMITS).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_allowed_call_reaches_the_upstream_with_identity_and_without_credentials() {
    let s = setup(Mode::Stateless).await;
    let (addr, key) = (s.gw.addr, key_header(&s.keys.full));
    let resp = blocking(move || {
        post(
            addr,
            &[
                &key,
                "X-Mcpwarden-Workspace: forged",
                "X-Mcpwarden-Key: forged",
                "X-Mcpwarden-Scopes: everything",
            ],
            &call(1, "search_deals", json!({"query": "acme"})),
        )
    })
    .await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(resp.messages()[0]["id"], 1);
    assert_eq!(s.up.calls.count("search_deals"), 1);
    assert_eq!(
        s.up.calls.header("x-mcpwarden-workspace").as_deref(),
        Some("acme")
    );
    assert_eq!(
        s.up.calls.header("x-mcpwarden-key").as_deref(),
        Some("full")
    );
    let scopes = s.up.calls.header("x-mcpwarden-scopes").unwrap();
    assert!(scopes.split(' ').any(|x| x == "crm:write"), "{scopes}");
    assert_eq!(s.up.calls.header("x-api-key"), None);
    assert_eq!(s.up.calls.header("authorization"), None);
    assert_eq!(s.up.calls.header("host"), Some(s.up.addr.to_string()));
    assert_eq!(
        s.up.calls.header("x-forwarded-for").as_deref(),
        Some("127.0.0.1")
    );
    assert_eq!(
        s.up.calls.header("x-forwarded-host"),
        Some(addr.to_string())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_as_a_bearer_token_works_too() {
    let s = setup(Mode::Stateless).await;
    let (addr, key) = (
        s.gw.addr,
        format!("Authorization: Bearer {}", s.keys.reader.expose()),
    );
    let resp = blocking(move || {
        post(
            addr,
            &[&key],
            &call(1, "search_deals", json!({"query": "x"})),
        )
    })
    .await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(s.up.calls.count("search_deals"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_credentials_are_refused_with_401_and_never_reach_the_upstream() {
    let s = setup(Mode::Stateless).await;
    let addr = s.gw.addr;
    let expired = key_header(&s.keys.expired);
    let forged = format!(
        "X-API-Key: {}",
        mcpwarden::auth::api_key::ApiKey::generate().expose()
    );
    let cases: Vec<(Vec<String>, &str)> = vec![
        (vec![], "missing"),
        (vec!["X-API-Key: mcpw_nonsense".into()], "invalid"),
        (vec![forged], "invalid"),
        (vec![expired], "expired"),
        (vec!["Authorization: Bearer not-a-jwt".into()], "bad_token"),
    ];
    for (headers, reason) in cases {
        let resp = blocking(move || {
            let refs: Vec<&str> = headers.iter().map(String::as_str).collect();
            post(addr, &refs, &call(7, "search_deals", json!({"query": "x"})))
        })
        .await;
        assert_eq!(resp.status, 401, "{reason}: {}", resp.text());
        assert_eq!(
            resp.header("www-authenticate"),
            Some("Bearer realm=\"mcpwarden\"")
        );
        assert_eq!(resp.header("content-type"), Some("application/json"));
        let body = resp.json();
        assert_eq!(body["error"]["code"], -32001, "{reason}");
        // The body of an unauthenticated request is never read, so its id is unknown.
        assert_eq!(body["id"], serde_json::Value::Null, "{reason}");
    }
    assert_eq!(s.up.calls.total(), 0);
    let metrics = blocking(move || s.gw.metrics()).await;
    assert!(
        metrics.contains("mcpwarden_auth_failures_total{reason=\"invalid\"} 2"),
        "{metrics}"
    );
    assert!(metrics.contains("mcpwarden_auth_failures_total{reason=\"expired\"} 1"));
    assert!(metrics.contains("mcpwarden_auth_failures_total{reason=\"missing\"} 1"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conflicting_or_repeated_credentials_are_a_400() {
    let s = setup(Mode::Stateless).await;
    let addr = s.gw.addr;
    let (full, reader) = (key_header(&s.keys.full), key_header(&s.keys.reader));
    let bearer = format!("Authorization: Bearer {}", s.keys.reader.expose());
    for headers in [
        vec![full.clone(), bearer],
        vec![full.clone(), full.clone()],
        vec![full, reader],
    ] {
        let resp = blocking(move || {
            let refs: Vec<&str> = headers.iter().map(String::as_str).collect();
            post(addr, &refs, &call(1, "search_deals", json!({})))
        })
        .await;
        assert_eq!(resp.status, 400, "{}", resp.text());
        assert_eq!(resp.json()["error"]["code"], -32001);
    }
    assert_eq!(s.up.calls.total(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tool_outside_the_keys_scopes_is_403_and_never_executes() {
    let s = setup(Mode::Stateless).await;
    let (addr, reader) = (s.gw.addr, key_header(&s.keys.reader));
    let resp = blocking(move || {
        post(
            addr,
            &[&reader],
            &call(3, "create_deal", json!({"name": "x"})),
        )
    })
    .await;
    assert_eq!(resp.status, 403, "{}", resp.text());
    let body = resp.json();
    assert_eq!(body["error"]["code"], -32003);
    assert_eq!(
        body["error"]["data"]["requiredScopes"],
        json!(["crm:write"])
    );
    assert_eq!(body["id"], 3);
    assert_eq!(s.up.calls.count("create_deal"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tool_needs_its_workspace_feature() {
    let s = setup(Mode::Stateless).await;
    let (addr, other) = (s.gw.addr, key_header(&s.keys.other));
    // Workspace beta holds signal:read but has not enabled the `signal` feature.
    let resp =
        blocking(move || post(addr, &[&other], &call(1, "get_signal_visitors", json!({})))).await;
    assert_eq!(resp.status, 403, "{}", resp.text());
    assert_eq!(s.up.calls.count("get_signal_visitors"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_with_one_denied_call_is_refused_whole() {
    let s = setup(Mode::Stateless).await;
    let (addr, reader) = (s.gw.addr, key_header(&s.keys.reader));
    let batch = format!(
        "[{},{}]",
        call(1, "search_deals", json!({"query": "a"})),
        call(2, "create_deal", json!({"name": "b"}))
    );
    let resp = blocking(move || post(addr, &[&reader], &batch)).await;
    assert_eq!(resp.status, 403, "{}", resp.text());
    assert_eq!(resp.json()["id"], serde_json::Value::Null);
    assert_eq!(s.up.calls.total(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tools_list_shows_only_the_tools_a_key_may_call() {
    for mode in [Mode::Stateless, Mode::Stateful] {
        let s = setup(mode).await;
        let (addr, reader) = (s.gw.addr, key_header(&s.keys.reader));
        let names = blocking(move || {
            let session = open_session(addr, &reader);
            let mut headers = vec![reader.as_str()];
            if let Some(sid) = &session {
                headers.push(sid);
            }
            let list = json!({"jsonrpc":"2.0","id":2,"method":"tools/list"}).to_string();
            let resp = post(addr, &headers, &list);
            assert_eq!(resp.status, 200, "{}", resp.text());
            let message = resp.messages().into_iter().find(|m| m["id"] == 2).unwrap();
            let names: Vec<String> = message["result"]["tools"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t["name"].as_str().unwrap().to_owned())
                .collect();
            names
        })
        .await;
        assert!(names.contains(&"search_deals".to_owned()), "{names:?}");
        assert!(names.contains(&"echo_size".to_owned()), "{names:?}");
        for hidden in [
            "create_deal",
            "update_deal_stage",
            "ask_pipeline",
            "get_signal_visitors",
        ] {
            assert!(!names.contains(&hidden.to_owned()), "{hidden} in {names:?}");
        }
    }
}

/// For a stateful upstream: initialize and return the `Mcp-Session-Id: …` header line.
fn open_session(addr: std::net::SocketAddr, key: &str) -> Option<String> {
    let resp = post(addr, &[key], &initialize(1));
    assert_eq!(resp.status, 200, "{}", resp.text());
    let sid = resp.header("mcp-session-id")?.to_owned();
    let header = format!("Mcp-Session-Id: {sid}");
    let note = json!({"jsonrpc":"2.0","method":"notifications/initialized"}).to_string();
    let resp = post(addr, &[key, &header], &note);
    assert!(resp.status == 202 || resp.status == 200, "{}", resp.text());
    Some(header)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_id_is_useless_to_another_key() {
    let s = setup(Mode::Stateful).await;
    let (addr, full, reader) = (
        s.gw.addr,
        key_header(&s.keys.full),
        key_header(&s.keys.reader),
    );
    let calls = s.up.calls.clone();
    let (foreign, unsealed) = blocking(move || {
        let sid = open_session(addr, &full).expect("a stateful upstream issues a session");
        let mine = post(
            addr,
            &[&full, &sid],
            &call(2, "search_deals", json!({"query": "a"})),
        );
        assert_eq!(mine.status, 200, "{}", mine.text());
        // The upstream sees its own id; the client holds it sealed to its key.
        let upstream_id = calls.header("mcp-session-id").unwrap();
        let sealed = sid.trim_start_matches("Mcp-Session-Id: ");
        assert!(
            sealed.starts_with(&format!("{upstream_id}.")),
            "{sealed} vs {upstream_id}"
        );
        let foreign = post(
            addr,
            &[&reader, &sid],
            &call(3, "search_deals", json!({"query": "a"})),
        );
        // The bare upstream id (as leaked from the upstream's logs, say) opens nothing.
        let unsealed = post(
            addr,
            &[&full, &format!("Mcp-Session-Id: {upstream_id}")],
            &call(4, "search_deals", json!({"query": "a"})),
        );
        (foreign, unsealed)
    })
    .await;
    for resp in [foreign, unsealed] {
        assert_eq!(resp.status, 404, "{}", resp.text());
        assert_eq!(resp.json()["error"]["code"], -32001);
    }
    assert_eq!(s.up.calls.count("search_deals"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_on_both_sides_of_the_retry_buffer_arrive_intact() {
    let s = setup(Mode::Stateless).await;
    for size in [60_000usize, 65_536, 70_000, 200_000] {
        let (addr, key) = (s.gw.addr, key_header(&s.keys.full));
        let payload: String = (0..size).map(|i| (b'a' + (i % 26) as u8) as char).collect();
        let expected = format!("{} {}", size, sha256_hex(payload.as_bytes()));
        let resp = blocking(move || {
            post(
                addr,
                &[&key],
                &call(9, "echo_size", json!({"payload": payload})),
            )
        })
        .await;
        assert_eq!(resp.status, 200, "{size}: {}", resp.text());
        let text = resp.messages()[0]["result"]["content"][0]["text"].clone();
        assert_eq!(text, json!(expected), "{size}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_small_body_that_arrives_in_pieces_is_read_whole() {
    let s = setup(Mode::Stateless).await;
    let (addr, key) = (s.gw.addr, key_header(&s.keys.full));
    let payload: String = (0..3_000)
        .map(|i| (b'a' + (i % 26) as u8) as char)
        .collect();
    let expected = format!("3000 {}", sha256_hex(payload.as_bytes()));
    let body = call(5, "echo_size", json!({"payload": payload}));
    let request = format!(
        "POST /mcp HTTP/1.1\r\nHost: x\r\n{key}\r\nContent-Type: application/json\r\n\
         Accept: application/json, text/event-stream\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let resp = blocking(move || raw_in_pieces(addr, request.as_bytes(), 4).unwrap()).await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    let text = resp.messages()[0]["result"]["content"][0]["text"].clone();
    assert_eq!(text, json!(expected));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_denied_body_never_executes() {
    let s = setup(Mode::Stateless).await;
    let (addr, reader) = (s.gw.addr, key_header(&s.keys.reader));
    let payload = "x".repeat(150_000);
    let resp = blocking(move || {
        post(
            addr,
            &[&reader],
            &call(4, "create_deal", json!({"name": payload})),
        )
    })
    .await;
    assert_eq!(resp.status, 403, "{}", resp.text());
    assert_eq!(resp.json()["id"], 4);
    assert_eq!(s.up.calls.total(), 0);
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sse_progress_arrives_before_the_final_result() {
    let s = setup(Mode::Stateful).await;
    let (addr, key) = (s.gw.addr, key_header(&s.keys.full));
    let messages = blocking(move || {
        let sid = open_session(addr, &key).unwrap();
        let body = json!({
            "jsonrpc": "2.0", "id": 5, "method": "tools/call",
            "params": { "name": "progress", "arguments": { "steps": 3 }, "_meta": { "progressToken": "p1" } }
        })
        .to_string();
        let resp = post(addr, &[&key, &sid], &body);
        assert_eq!(resp.status, 200, "{}", resp.text());
        resp.messages()
    })
    .await;
    let progress = messages
        .iter()
        .take_while(|m| m["id"] != 5)
        .filter(|m| m["method"] == "notifications/progress")
        .count();
    assert_eq!(progress, 3, "{messages:?}");
    assert_eq!(messages.last().unwrap()["id"], 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_headers_read_the_environment_and_host_can_be_preserved() {
    // SAFETY of the test: the variable is read by the child process only.
    let up = upstream::start(Mode::Stateless).await;
    let keys = Keys::new();
    let (addr, admin) = (free_port(), free_port());
    let extra =
        "  preserve_host: true\n  headers:\n    Authorization: \"Bearer ${TEST_UPSTREAM_TOKEN}\"\n";
    let policy = policy_yaml(up.addr, addr, admin, &keys, extra, DEFAULT_LIMITS);
    let key = key_header(&keys.full);
    let gw = blocking(move || {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("policy.yaml");
        std::fs::write(&path, &policy).unwrap();
        let child = std::process::Command::new(BIN)
            .args(["run", "--policy"])
            .arg(&path)
            .env("TEST_UPSTREAM_TOKEN", "s3cret")
            .spawn()
            .unwrap();
        assert!(eventually(20, || raw(
            admin,
            "GET /readyz HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"
        )
        .is_ok_and(|r| r.status == 200)));
        let resp = post(
            addr,
            &[&key],
            &call(1, "search_deals", json!({"query": "q"})),
        );
        assert_eq!(resp.status, 200, "{}", resp.text());
        (child, dir)
    })
    .await;
    let (mut child, _dir) = gw;
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(
        up.calls.header("authorization").as_deref(),
        Some("Bearer s3cret")
    );
    assert_eq!(up.calls.header("host"), Some(addr.to_string()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_endpoints_answer() {
    let s = setup(Mode::Stateless).await;
    let (addr, admin, key) = (s.gw.addr, s.gw.admin, key_header(&s.keys.full));
    let (health, ready, text) = blocking(move || {
        assert_eq!(
            post(addr, &[&key], &call(1, "search_deals", json!({}))).status,
            200
        );
        let get = |path: &str| {
            raw(
                admin,
                &format!("GET {path} HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"),
            )
            .unwrap()
        };
        // A request is counted in its logging phase, just after its response is sent.
        let line = "mcpwarden_requests_total{key=\"full\",method=\"tools/call\",outcome=\"ok\",tool=\"search_deals\",workspace=\"acme\"} 1";
        let mut text = String::new();
        let counted = eventually(5, || {
            text = get("/metrics").text();
            text.contains(line)
        });
        assert!(counted, "{line} not in {text}");
        (get("/healthz"), get("/readyz"), text)
    })
    .await;
    assert_eq!(health.status, 200);
    assert_eq!(ready.status, 200);
    for name in [
        "mcpwarden_requests_total",
        "mcpwarden_auth_failures_total",
        "mcpwarden_policy_reloads_total",
        "mcpwarden_policy_last_reload_success_timestamp_seconds",
    ] {
        assert!(text.contains(name), "{name} missing from /metrics");
    }
}
