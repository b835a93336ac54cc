//! The per-request work the gateway adds in front of the upstream: authenticating a key
//! against a policy of 10,000 keys, classifying a JSON-RPC body, authorizing a `tools/call`,
//! filtering a `tools/list` result, counting the request and writing its access log line.
//! Run: `cargo bench --bench hot_path`.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use mcpwarden::auth::api_key::{self, ApiKey};
use mcpwarden::mcp::{jsonrpc, tools_list};
use mcpwarden::policy::{self, Policy};

/// A policy with 10,000 keys in 100 workspaces, and one of its keys.
fn big_policy() -> (Policy, ApiKey) {
    let mut yaml = String::from(
        "version: 1\nupstream:\n  url: http://127.0.0.1:3001\ntools:\n  - match: [\"search_*\", \"get_*\"]\n    requires: [crm:read]\n  - match: [\"create_*\"]\n    requires: [crm:write]\nworkspaces:\n",
    );
    let mut chosen = None;
    for w in 0..100 {
        yaml.push_str(&format!(
            "  ws{w}:\n    scopes: [crm:read, crm:write]\n    keys:\n"
        ));
        for k in 0..100 {
            let key = ApiKey::generate();
            yaml.push_str(&format!(
                "      - id: key{k}\n        sha256: {}\n",
                api_key::hash_hex(key.expose())
            ));
            if w == 50 && k == 50 {
                chosen = Some(key);
            }
        }
    }
    (
        policy::compile(&yaml, "bench.yaml").unwrap(),
        chosen.unwrap(),
    )
}

/// Authenticates by key: the future is ready on its first poll (only a token may wait).
fn authenticate(headers: &http::HeaderMap, policy: &Policy) -> mcpwarden::auth::Identity {
    let future = std::pin::pin!(mcpwarden::auth::authenticate(headers, policy, 0));
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    match future.poll(&mut cx) {
        std::task::Poll::Ready(identity) => identity.unwrap(),
        std::task::Poll::Pending => unreachable!("a key is decided on the spot"),
    }
}

fn request_path(c: &mut Criterion) {
    let (policy, key) = big_policy();
    let headers = key_headers(&key);
    c.bench_function("authenticate/10k_keys", |b| {
        b.iter(|| authenticate(black_box(&headers), &policy))
    });
    let body = br#"{"jsonrpc":"2.0","id":42,"method":"tools/call","params":{"name":"search_deals","arguments":{"query":"acme","limit":20}}}"#;
    bench_evaluate(c, "evaluate/small_tools_call", &policy, &key, body);
    // A policy of 30 glob rules, the tool matching the last: the rules are searched once per
    // message (for its decision and its labels alike).
    let (policy, key) = many_rules_policy();
    let body = br#"{"jsonrpc":"2.0","id":42,"method":"tools/call","params":{"name":"tool29_x","arguments":{}}}"#;
    bench_evaluate(c, "evaluate/tools_call_30th_rule", &policy, &key, body);
}

fn key_headers(key: &ApiKey) -> http::HeaderMap {
    let mut headers = http::HeaderMap::new();
    headers.insert("x-api-key", key.expose().parse().unwrap());
    headers
}

/// `proxy::request::evaluate` of `body` for the identity of `key`.
fn bench_evaluate(c: &mut Criterion, name: &str, policy: &Policy, key: &ApiKey, body: &[u8]) {
    let identity = authenticate(&key_headers(key), policy);
    let headers = http::HeaderMap::new();
    c.bench_function(name, |b| {
        b.iter(|| {
            mcpwarden::proxy::request::evaluate(policy, &identity, &headers, black_box(body))
                .unwrap()
        })
    });
}

fn many_rules_policy() -> (Policy, ApiKey) {
    let key = ApiKey::generate();
    let mut yaml = String::from("version: 1\nupstream:\n  url: http://127.0.0.1:3001\ntools:\n");
    for r in 0..30 {
        yaml.push_str(&format!(
            "  - match: [\"tool{r}_*\", \"other{r}_*\"]\n    requires: [crm:read]\n"
        ));
    }
    yaml.push_str(&format!(
        "workspaces:\n  ws:\n    scopes: [crm:read]\n    keys:\n      - id: k\n        sha256: {}\n",
        api_key::hash_hex(key.expose())
    ));
    (policy::compile(&yaml, "bench.yaml").unwrap(), key)
}

/// The request head wrk sends in `benches/e2e.sh`, as Pingora parses it.
fn client_head(key: &ApiKey) -> pingora::http::RequestHeader {
    let mut req = pingora::http::RequestHeader::build("POST", b"/mcp", Some(8)).unwrap();
    req.append_header("Host", "127.0.0.1:8080").unwrap();
    req.append_header("Content-Length", "108").unwrap();
    req.append_header("Content-Type", "application/json")
        .unwrap();
    req.append_header("Accept", "application/json, text/event-stream")
        .unwrap();
    req.append_header("X-API-Key", key.expose()).unwrap();
    req
}

/// What the gateway does to every request head and response head, beside its decisions.
fn headers(c: &mut Criterion) {
    let (policy, key) = big_policy();
    let identity = authenticate(&key_headers(&key), &policy);
    let head = client_head(&key);
    let ip = Some(std::net::IpAddr::from([127, 0, 0, 1]));
    c.bench_function("forward/rewrite_request", |b| {
        b.iter_batched_ref(
            || head.clone(),
            |req| {
                mcpwarden::proxy::forward::rewrite_request(
                    req,
                    &policy.upstream,
                    &identity,
                    ip,
                    mcpwarden::proxy::forward::Strip { expect: false },
                    |_| {},
                )
                .unwrap()
            },
            criterion::BatchSize::SmallInput,
        )
    });
    let mut resp = pingora::http::ResponseHeader::build(200, Some(4)).unwrap();
    resp.append_header("content-type", "application/json")
        .unwrap();
    resp.append_header("content-length", "75").unwrap();
    let policy_value = identity.headers().rate_limit_policy.clone();
    c.bench_function("response/rate_limit_headers", |b| {
        b.iter_batched_ref(
            || resp.clone(),
            |resp| {
                resp.insert_header("ratelimit-policy", policy_value.clone())
                    .unwrap();
                resp.insert_header(
                    "ratelimit",
                    mcpwarden::wire::rate_limit(black_box(99), black_box(1)),
                )
                .unwrap();
            },
            criterion::BatchSize::SmallInput,
        )
    });
}

fn small_call() -> Vec<u8> {
    br#"{"jsonrpc":"2.0","id":42,"method":"tools/call","params":{"name":"github.search_issues","arguments":{"query":"is:open label:bug","repo":"acme/widgets","limit":20}},"_meta":{"progressToken":7}}"#.to_vec()
}

fn big_call() -> Vec<u8> {
    let payload = "a".repeat(200 * 1024);
    format!(r#"{{"jsonrpc":"2.0","id":43,"method":"tools/call","params":{{"name":"fs.write","arguments":{{"path":"/tmp/x","payload":"{payload}"}}}}}}"#)
        .into_bytes()
}

fn batch() -> Vec<u8> {
    let messages: Vec<String> = (0..10)
        .map(|i| format!(r#"{{"jsonrpc":"2.0","id":{i},"method":"tools/call","params":{{"name":"tool_{i}","arguments":{{"n":{i}}}}}}}"#))
        .collect();
    format!("[{}]", messages.join(",")).into_bytes()
}

fn tools_list_50() -> Vec<u8> {
    let tools: Vec<String> = (0..50)
        .map(|i| format!(r#"{{"name":"tool_{i}","description":"Does thing number {i} to the workspace","inputSchema":{{"type":"object","properties":{{"path":{{"type":"string"}},"limit":{{"type":"integer","maximum":100}}}},"required":["path"]}}}}"#))
        .collect();
    format!(
        r#"{{"jsonrpc":"2.0","id":1,"result":{{"tools":[{}]}}}}"#,
        tools.join(",")
    )
    .into_bytes()
}

fn classify(c: &mut Criterion) {
    let mut g = c.benchmark_group("classify");
    for (name, body) in [
        ("small_tools_call", small_call()),
        ("200k_tools_call", big_call()),
        ("batch_of_10", batch()),
    ] {
        g.throughput(Throughput::Bytes(body.len() as u64));
        g.bench_function(name, |b| {
            b.iter(|| jsonrpc::classify(black_box(&body)).unwrap())
        });
    }
    g.finish();
}

fn api_key(c: &mut Criterion) {
    let key = ApiKey::generate();
    let key = key.expose().to_owned();
    c.bench_function("api_key/check_format_and_hash", |b| {
        b.iter(|| {
            api_key::check_format(black_box(&key)).unwrap();
            api_key::hash(black_box(&key))
        })
    });
}

fn filter(c: &mut Criterion) {
    let body = tools_list_50();
    let allowed = |name: &str| name.ends_with('0') || name.ends_with('5');
    let mut g = c.benchmark_group("tools_list");
    g.throughput(Throughput::Bytes(body.len() as u64));
    g.bench_function("filter_json_50_tools", |b| {
        b.iter(|| tools_list::filter_json(black_box(&body), &allowed).unwrap())
    });
    g.finish();
}

/// What the `logging` phase does for every request: count it and write its access log line.
/// The baseline counts the same three series (request, duration, response bytes) the way the
/// gateway counted before handles were cached per key: `with_label_values` on the label
/// strings, per request.
fn telemetry(c: &mut Criterion) {
    use mcpwarden::telemetry::access_log::{AccessLog, Format};
    use mcpwarden::telemetry::{Finished, Outcome, metrics::Metrics};

    let (policy, key) = big_policy();
    let metrics = Metrics::new();
    metrics.adopt(&policy);
    let identity = authenticate(&key_headers(&key), &policy);
    let finished = Finished {
        identity: Some(&identity),
        method: "tools/call",
        tool: "search_deals",
        outcome: Outcome::Ok,
        status: 200,
        upstream_status: Some(200),
        duration: std::time::Duration::from_micros(870),
        bytes_in: 108,
        bytes_out: 75,
        truncated: false,
    };
    let mut g = c.benchmark_group("telemetry");
    g.bench_function("record_one_request", |b| {
        b.iter(|| metrics.record(black_box(&finished)))
    });
    let requests = prometheus::IntCounterVec::new(
        prometheus::Opts::new("requests_total", "baseline"),
        &["workspace", "key", "method", "tool", "outcome"],
    )
    .unwrap();
    let duration = prometheus::HistogramVec::new(
        prometheus::HistogramOpts::new("duration", "baseline"),
        &["workspace", "method"],
    )
    .unwrap();
    let bytes = prometheus::IntCounterVec::new(
        prometheus::Opts::new("bytes", "baseline"),
        &["workspace", "key"],
    )
    .unwrap();
    g.bench_function("baseline_with_label_values", |b| {
        b.iter(|| {
            let (workspace, key) = (identity.workspace(), identity.key_id());
            let (method, tool) = black_box(("tools/call", "search_deals"));
            requests
                .with_label_values(&[workspace, key, method, tool, "ok"])
                .inc();
            duration
                .with_label_values(&[workspace, method])
                .observe(finished.duration.as_secs_f64());
            bytes
                .with_label_values(&[workspace, key])
                .inc_by(finished.bytes_out as u64);
        })
    });
    let log = AccessLog::new(Format::Text, Box::new(std::io::sink()));
    let id = http::HeaderValue::from_static("0123456789abcdef0123456789abcdef");
    // What a request pays (the entry, queued), then what the log thread pays per line.
    g.bench_function("access_log_entry", |b| {
        // Timed: the entries only; their lines are written between the timed stretches.
        b.iter_custom(|iters| {
            let mut timed = std::time::Duration::ZERO;
            let mut left = iters;
            while left > 0 {
                let n = left.min(1000);
                let start = std::time::Instant::now();
                for _ in 0..n {
                    log.record(black_box(&finished), id.clone());
                }
                timed += start.elapsed();
                log.flush();
                left -= n;
            }
            timed
        })
    });
    g.bench_function("access_log_text_line", |b| {
        b.iter(|| {
            log.record(black_box(&finished), id.clone());
            log.flush();
        })
    });
    let log = AccessLog::new(Format::Json, Box::new(std::io::sink()));
    g.bench_function("access_log_json_line", |b| {
        b.iter(|| {
            log.record(black_box(&finished), id.clone());
            log.flush();
        })
    });
    let mut client_id = http::HeaderMap::new();
    client_id.insert("x-request-id", "req-7f3a9c".parse().unwrap());
    g.bench_function("request_id_from_client", |b| {
        b.iter(|| mcpwarden::proxy::request_id::RequestId::of(black_box(&client_id)))
    });
    g.bench_function("request_id_generated", |b| {
        b.iter(mcpwarden::proxy::request_id::RequestId::generate)
    });
    g.finish();
}

criterion_group!(
    benches,
    request_path,
    headers,
    classify,
    api_key,
    filter,
    telemetry
);
criterion_main!(benches);
