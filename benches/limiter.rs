//! The limiter's per-request check against the obvious baseline, and its memory per key.
//!
//! - `limiter/admit`: `LocalLimiter::admit_now`'s path (shard read lock, CAS on the bucket,
//!   CAS on the slot, permit dropped) for one of 10,000 keys, single-threaded and with 2
//!   threads hammering the same 10,000 keys.
//! - `mutex_hashmap/admit`: the same GCRA arithmetic behind one `Mutex<HashMap>` — what a
//!   first version would write.
//! - memory: `cargo bench --bench limiter -- --memory` fills state for 1,000,000 keys and
//!   prints the resident-set growth per key (read from /proc/self/statm).
//!
//! Run: `cargo bench --bench limiter`.

use std::collections::HashMap;
use std::hint::black_box;
use std::sync::Mutex;
use std::sync::atomic::Ordering;

use criterion::{Criterion, criterion_group};
use mcpwarden::limits::{Clock, LocalLimiter, Quota, Subject};
use mcpwarden::policy::Limits;

const KEYS: usize = 10_000;

fn subjects(n: usize) -> Vec<Subject> {
    (0..n)
        .map(|i| Subject {
            workspace: format!("ws{}", i / 100).into(),
            key: format!("key{i}").into(),
        })
        .collect()
}

fn generous() -> Limits {
    Limits {
        requests_per_minute: u32::MAX,
        burst: u32::MAX,
        concurrent_connections: u32::MAX,
        ..Limits::default()
    }
}

/// One request through the limiter, synchronously (the local limiter's future is ready at
/// once; polling it through an executor would measure the executor).
fn admit(limiter: &LocalLimiter, subject: &Subject, limits: &Limits) {
    let admission = limiter.admit_blocking(subject, limits, 1);
    black_box(admission.is_ok());
}

/// The baseline: one lock around a map of (tat, inflight).
struct MutexLimiter {
    map: Mutex<HashMap<Subject, (u64, u32)>>,
    clock: Clock,
}

impl MutexLimiter {
    fn admit(&self, subject: &Subject, limits: &Limits) -> bool {
        let quota = Quota::per_minute(limits.requests_per_minute, limits.burst);
        let now = self.clock.now();
        let mut map = self.map.lock().unwrap();
        let entry = match map.get_mut(subject) {
            Some(e) => e,
            None => map.entry(subject.clone()).or_default(),
        };
        let Ok((tat, _)) = quota.draw(entry.0, now, 1) else {
            return false;
        };
        if entry.1 >= limits.concurrent_connections {
            return false;
        }
        entry.0 = tat;
        entry.1 += 1;
        drop(map);
        // The permit's release.
        let mut map = self.map.lock().unwrap();
        if let Some(e) = map.get_mut(subject) {
            e.1 -= 1;
        }
        true
    }
}

fn bench(c: &mut Criterion) {
    let keys = subjects(KEYS);
    let limits = generous();
    let local = LocalLimiter::new(Clock::monotonic());
    let mutex = MutexLimiter {
        map: Mutex::new(HashMap::new()),
        clock: Clock::monotonic(),
    };
    // Each thread walks the keys on its own counter (a shared one would measure its cache line).
    thread_local!(static NEXT: std::cell::Cell<usize> = const { std::cell::Cell::new(0) });
    let pick = || {
        let i = NEXT.with(|n| {
            n.set(n.get().wrapping_add(7919));
            n.get()
        });
        &keys[i % KEYS]
    };

    c.bench_function("limiter/admit", |b| {
        b.iter(|| admit(&local, pick(), &limits))
    });
    c.bench_function("mutex_hashmap/admit", |b| {
        b.iter(|| black_box(mutex.admit(pick(), &limits)))
    });

    // Two threads on the same keys: the second thread runs unmeasured beside the first.
    let mut contended = |name: &str, work: &(dyn Fn() + Sync)| {
        let stop = std::sync::atomic::AtomicBool::new(false);
        std::thread::scope(|s| {
            s.spawn(|| {
                while !stop.load(Ordering::Relaxed) {
                    work();
                }
            });
            c.bench_function(name, |b| b.iter(work));
            stop.store(true, Ordering::Relaxed);
        });
    };
    contended("limiter/admit_2_threads", &|| {
        admit(&local, pick(), &limits)
    });
    contended("mutex_hashmap/admit_2_threads", &|| {
        black_box(mutex.admit(pick(), &limits));
    });
}

fn resident_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: u64 = statm.split(' ').nth(1).unwrap().parse().unwrap();
    pages * 4096
}

/// State for 1,000,000 keys: resident memory per key, subjects included (their strings are
/// shared with the policy in the gateway, so this overstates the limiter's own share).
fn memory() {
    const N: usize = 1_000_000;
    let limits = Limits::default();
    let before = resident_bytes();
    let keys = subjects(N);
    let after_keys = resident_bytes();
    let limiter = LocalLimiter::new(Clock::monotonic());
    for k in &keys {
        let _ = limiter.admit_blocking(k, &limits, 1);
    }
    let after = resident_bytes();
    assert_eq!(limiter.len(), N);
    println!(
        "limiter state for {N} keys: {:.1} MB, {} bytes per key (the keys' own strings: {} bytes per key)",
        (after - after_keys) as f64 / 1e6,
        (after - after_keys) / N as u64,
        (after_keys - before) / N as u64,
    );
}

criterion_group!(benches, bench);

fn main() {
    if std::env::args().any(|a| a == "--memory") {
        memory();
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
