//! The cost of counting one finished request for `/usage` (`Usage::record`: one map lookup by
//! borrowed names, three rolling windows, the outcome counters, the tool bit):
//!
//! - `record_hot`: one of 16 busy keys, everything in cache (a gateway's usual day);
//! - `record`: one of 10,000 keys in turn, so each request misses the cache for its key's
//!   record and names (the worst case);
//! - `record_with_2_threads`: the same while a second thread counts the same keys.
//!
//! Run: `cargo bench --bench usage`.

use std::collections::BTreeSet;
use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, criterion_group};
use mcpwarden::auth::Identity;
use mcpwarden::limits::Clock;
use mcpwarden::policy::{Key, Limits, Workspace};
use mcpwarden::telemetry::usage::Usage;
use mcpwarden::telemetry::{Finished, Outcome};

const KEYS: usize = 10_000;

fn identities() -> Vec<Identity> {
    let workspaces: Vec<Arc<Workspace>> = (0..KEYS / 100)
        .map(|w| {
            Arc::new(Workspace {
                name: format!("ws{w}").into(),
                scopes: BTreeSet::new(),
                features: BTreeSet::new(),
                limits: Limits::default(),
            })
        })
        .collect();
    (0..KEYS)
        .map(|i| {
            let ws = workspaces[i / 100].clone();
            let key = Key::new(
                ws,
                &format!("key{i}"),
                BTreeSet::new(),
                Limits::default(),
                None,
                None,
            );
            Identity::from_key(Arc::new(key))
        })
        .collect()
}

fn finished(identity: &Identity) -> Finished<'_> {
    Finished {
        identity: Some(identity),
        method: "tools/call",
        tool: "search_deals",
        outcome: Outcome::Ok,
        status: 200,
        upstream_status: Some(200),
        duration: Duration::from_micros(300),
        bytes_in: 200,
        bytes_out: 400,
        truncated: false,
    }
}

fn record(c: &mut Criterion) {
    let ids = identities();
    let usage = Arc::new(Usage::new(Clock::monotonic()));
    for id in &ids {
        usage.record(&finished(id));
    }
    let mut group = c.benchmark_group("usage");
    let mut i = 0;
    group.bench_function("record_hot", |b| {
        b.iter(|| {
            i = (i + 1) % 16;
            usage.record(black_box(&finished(&ids[i])));
        })
    });
    group.bench_function("record", |b| {
        b.iter(|| {
            i = (i + 1) % KEYS;
            usage.record(black_box(&finished(&ids[i])));
        })
    });
    // A second thread counting the same keys meanwhile (the proxy runs several workers).
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let other = {
        let (usage, stop, ids) = (usage.clone(), stop.clone(), identities());
        std::thread::spawn(move || {
            let mut j = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                j = (j + 7) % KEYS;
                usage.record(&finished(&ids[j]));
            }
        })
    };
    group.bench_function("record_with_2_threads", |b| {
        b.iter(|| {
            i = (i + 1) % KEYS;
            usage.record(black_box(&finished(&ids[i])));
        })
    });
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    other.join().unwrap();
    group.finish();
}

criterion_group!(benches, record);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
}
