use super::*;

const S: u64 = 1_000_000_000;

fn subject(key: &str) -> Subject {
    Subject {
        workspace: "acme".into(),
        key: key.into(),
    }
}

fn limits(rpm: u32, burst: u32, concurrent: u32) -> Limits {
    Limits {
        requests_per_minute: rpm,
        burst,
        concurrent_connections: concurrent,
        ..Limits::default()
    }
}

fn admit(l: &LocalLimiter, s: &Subject, lim: &Limits, cost: u32) -> Result<Admission, Denied> {
    l.admit_blocking(s, lim, cost)
}

#[test]
fn a_key_gets_its_burst_then_a_retry_after_that_works() {
    let clock = Clock::manual(S);
    let l = LocalLimiter::new(clock.clone());
    let (k, lim) = (subject("ci"), limits(20, 20, 100));
    for i in 0..20 {
        let a = admit(&l, &k, &lim, 1).unwrap();
        assert_eq!(a.rate.remaining, 19 - i);
        assert_eq!(a.rate.quota, 20);
    }
    let denied = admit(&l, &k, &lim, 1).unwrap_err();
    assert_eq!(
        denied,
        Denied::Rate {
            requests_per_minute: 20,
            retry_after: 3
        }
    );
    clock.advance(denied.retry_after() * S);
    assert!(admit(&l, &k, &lim, 1).is_ok());
}

#[test]
fn keys_do_not_share_buckets() {
    let l = LocalLimiter::new(Clock::manual(S));
    let lim = limits(60, 2, 100);
    assert!(admit(&l, &subject("a"), &lim, 2).is_ok());
    assert!(admit(&l, &subject("a"), &lim, 1).is_err());
    assert!(admit(&l, &subject("b"), &lim, 2).is_ok());
    let other_workspace = Subject {
        workspace: "globex".into(),
        key: "a".into(),
    };
    assert!(admit(&l, &other_workspace, &lim, 1).is_ok());
}

#[test]
fn concurrency_slots_are_released_when_the_permit_drops() {
    let l = LocalLimiter::new(Clock::manual(S));
    let (k, lim) = (subject("k"), limits(1000, 1000, 3));
    let held: Vec<_> = (0..3).map(|_| admit(&l, &k, &lim, 1).unwrap()).collect();
    assert_eq!(l.inflight(&k), 3);
    assert_eq!(
        admit(&l, &k, &lim, 1).unwrap_err(),
        Denied::Concurrency { limit: 3 }
    );
    drop(held);
    assert_eq!(l.inflight(&k), 0);
    assert!(admit(&l, &k, &lim, 1).is_ok());
}

#[test]
fn a_request_refused_for_concurrency_draws_no_tokens() {
    let l = LocalLimiter::new(Clock::manual(S));
    let (k, lim) = (subject("k"), limits(60, 3, 1));
    let held = admit(&l, &k, &lim, 1).unwrap();
    for _ in 0..5 {
        assert!(matches!(
            admit(&l, &k, &lim, 1),
            Err(Denied::Concurrency { .. })
        ));
    }
    drop(held);
    let a = admit(&l, &k, &lim, 2).unwrap();
    assert_eq!(a.rate.remaining, 0, "the five refusals took nothing");
}

#[test]
fn the_rate_is_checked_before_concurrency() {
    let l = LocalLimiter::new(Clock::manual(S));
    let (k, lim) = (subject("k"), limits(60, 1, 1));
    let _held = admit(&l, &k, &lim, 1).unwrap();
    assert!(matches!(admit(&l, &k, &lim, 1), Err(Denied::Rate { .. })));
}

#[test]
fn a_cost_over_the_burst_is_refused_as_never_passing() {
    let l = LocalLimiter::new(Clock::manual(S));
    let denied = admit(&l, &subject("k"), &limits(60, 5, 10), 6).unwrap_err();
    assert!(matches!(
        denied,
        Denied::OverBurst {
            cost: 6,
            burst: 5,
            ..
        }
    ));
    assert_eq!(denied.retry_after(), 1);
}

#[test]
fn a_changed_limit_applies_from_the_next_request_without_refilling() {
    let clock = Clock::manual(S);
    let l = LocalLimiter::new(clock.clone());
    let k = subject("k");
    for _ in 0..10 {
        admit(&l, &k, &limits(60, 10, 10), 1).unwrap();
    }
    // A reload raises the key to 600/min with burst 100: the ten seconds of debt the bucket
    // holds are now 100 tokens' worth, so it is still empty...
    assert!(admit(&l, &k, &limits(600, 100, 10), 1).is_err());
    // ...and refills at the new rate.
    clock.advance(S / 10);
    assert!(admit(&l, &k, &limits(600, 100, 10), 1).is_ok());
}

#[test]
fn retain_drops_keys_that_left_the_policy() {
    let l = LocalLimiter::new(Clock::manual(S));
    let lim = limits(60, 1, 10);
    admit(&l, &subject("stays"), &lim, 1).unwrap();
    admit(&l, &subject("goes"), &lim, 1).unwrap();
    l.retain(&|s| &*s.key == "stays");
    assert_eq!(l.len(), 1);
    assert!(admit(&l, &subject("stays"), &lim, 1).is_err(), "state kept");
    assert!(admit(&l, &subject("goes"), &lim, 1).is_ok(), "a new bucket");
}

#[test]
fn shrink_drops_full_buckets_with_nothing_in_flight() {
    let clock = Clock::manual(S);
    let l = LocalLimiter::new(clock.clone());
    let lim = limits(60, 2, 10);
    drop(admit(&l, &subject("idle"), &lim, 1).unwrap());
    let held = admit(&l, &subject("streaming"), &lim, 1).unwrap();
    drop(admit(&l, &subject("recent"), &lim, 2).unwrap());
    clock.advance(S);
    l.shrink();
    // "idle" refilled its one token; "recent" still owes one; "streaming" holds a slot.
    assert_eq!(l.len(), 2);
    assert_eq!(l.inflight(&subject("streaming")), 1);
    drop(held);
    clock.advance(2 * S);
    l.shrink();
    assert!(l.is_empty());
}

#[test]
fn concurrent_admissions_never_pass_more_than_the_burst() {
    let l = std::sync::Arc::new(LocalLimiter::new(Clock::manual(S)));
    let lim = limits(60, 1000, u32::MAX);
    let passed = std::sync::atomic::AtomicU32::new(0);
    std::thread::scope(|scope| {
        for _ in 0..4 {
            scope.spawn(|| {
                for _ in 0..500 {
                    if let Ok(a) = admit(&l, &subject("k"), &lim, 1) {
                        std::mem::forget(a.permit);
                        passed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            });
        }
    });
    assert_eq!(passed.load(Ordering::Relaxed), 1000);
}
