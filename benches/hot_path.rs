//! The per-request work the gateway adds in front of the upstream: classifying a JSON-RPC
//! body, checking an API key's format and hashing it, filtering a `tools/list` result.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use mcpwarden::auth::api_key::{self, ApiKey};
use mcpwarden::mcp::{jsonrpc, tools_list};

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

criterion_group!(benches, classify, api_key, filter);
criterion_main!(benches);
