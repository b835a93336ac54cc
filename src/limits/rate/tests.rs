use proptest::prelude::*;

use super::*;

const S: u64 = 1_000_000_000;

/// Draws `cost` at `now`, updating `tat` when it passes.
fn try_draw(quota: &Quota, tat: &mut u64, now: u64, cost: u32) -> Result<Passed, Refused> {
    let (next, passed) = quota.draw(*tat, now, cost)?;
    *tat = next;
    Ok(passed)
}

#[test]
fn from_idle_exactly_burst_pass_at_once_then_one_per_interval() {
    let q = Quota::per_minute(20, 20);
    let mut tat = 0;
    let now = 5 * S;
    for i in 0..20 {
        let passed = try_draw(&q, &mut tat, now, 1).unwrap();
        assert_eq!(passed.remaining, 19 - i);
    }
    assert_eq!(try_draw(&q, &mut tat, now, 1), Err(Refused::Wait(3 * S)));
    assert_eq!(
        try_draw(&q, &mut tat, now + 3 * S - 1, 1),
        Err(Refused::Wait(1))
    );
    assert!(try_draw(&q, &mut tat, now + 3 * S, 1).is_ok());
    assert!(try_draw(&q, &mut tat, now + 3 * S, 1).is_err());
}

#[test]
fn a_smaller_burst_passes_fewer_at_once_at_the_same_rate() {
    let q = Quota::per_minute(60, 5);
    let mut tat = 0;
    let passed = (0..10)
        .filter(|_| try_draw(&q, &mut tat, S, 1).is_ok())
        .count();
    assert_eq!(passed, 5);
    assert!(try_draw(&q, &mut tat, 2 * S, 1).is_ok());
}

#[test]
fn costs_draw_all_or_nothing() {
    let q = Quota::per_minute(60, 10);
    let mut tat = 0;
    assert_eq!(try_draw(&q, &mut tat, S, 7).unwrap().remaining, 3);
    // 4 do not fit in 3: nothing is drawn, and the wait is for the missing one.
    assert_eq!(try_draw(&q, &mut tat, S, 4), Err(Refused::Wait(S)));
    assert_eq!(try_draw(&q, &mut tat, S, 3).unwrap().remaining, 0);
}

#[test]
fn a_cost_over_the_burst_never_passes() {
    let q = Quota::per_minute(60, 10);
    assert_eq!(q.draw(0, S, 11), Err(Refused::Never));
    assert!(q.draw(0, S, 10).is_ok());
}

#[test]
fn full_in_and_remaining_describe_the_bucket() {
    let q = Quota::per_minute(100, 100);
    let (tat, passed) = q.draw(0, 10 * S, 1).unwrap();
    assert_eq!(passed.remaining, 99);
    assert_eq!(passed.full_in, 600_000_000);
    assert_eq!(seconds_up(passed.full_in), 1);
    assert_eq!(q.full_in(tat, 10 * S), 600_000_000);
    assert_eq!(q.full_in(tat, 11 * S), 0);
}

#[test]
fn a_refund_gives_back_exactly_the_draw() {
    let q = Quota::per_minute(60, 10);
    let (tat, _) = q.draw(0, 5 * S, 4).unwrap();
    let (tat, _) = q.draw(tat, 5 * S, 2).unwrap();
    let tat = q.refund(tat, 2);
    assert_eq!(q.draw(tat, 5 * S, 6).unwrap().1.remaining, 0);
}

#[test]
fn retry_after_is_whole_seconds_rounded_up_and_at_least_one() {
    assert_eq!(whole_seconds(1), 1);
    assert_eq!(whole_seconds(S), 1);
    assert_eq!(whole_seconds(S + 1), 2);
    assert_eq!(whole_seconds(0), 1);
    assert_eq!(seconds_up(0), 0);
}

#[test]
fn rates_that_do_not_divide_a_minute_round_the_interval_up() {
    let q = Quota::per_minute(7, 1);
    assert_eq!(q.interval(), 8_571_428_572);
    assert!(q.interval() * 7 >= MINUTE);
}

#[test]
fn absurd_quotas_saturate_instead_of_overflowing() {
    // Neither panics (debug builds check overflow).
    let q = Quota::per_minute(u32::MAX, u32::MAX);
    let _ = q.draw(u64::MAX - 5, u64::MAX - 10, u32::MAX);
    let q = Quota::per_minute(1, u32::MAX);
    assert!(q.draw(u64::MAX, u64::MAX, u32::MAX).is_ok());
}

/// A schedule: for each request, nanoseconds after the previous one, and its cost.
fn schedule() -> impl Strategy<Value = Vec<(u64, u32)>> {
    prop::collection::vec((0..3 * S, 1u32..4), 1..300)
}

proptest! {
    /// No schedule ever passes more than `burst − 1 + ⌈rate × t⌉` tokens in a window of `t`
    /// (here: every window that starts at a request and ends after a later one).
    #[test]
    fn no_window_ever_passes_more_than_the_bound(
        rpm in 1u32..600,
        burst in 1u32..50,
        steps in schedule(),
    ) {
        let q = Quota::per_minute(rpm, burst);
        let mut tat = 0;
        let mut now = S;
        let mut passed: Vec<(u64, u32)> = Vec::new();
        for (gap, cost) in steps {
            now += gap;
            if try_draw(&q, &mut tat, now, cost).is_ok() {
                passed.push((now, cost));
            }
        }
        for (i, &(start, _)) in passed.iter().enumerate() {
            let mut tokens = 0u64;
            for &(at, cost) in &passed[i..] {
                tokens += u64::from(cost);
                // The window [start, at] has length `at − start`, half-open at its end by
                // one nanosecond: t = at − start + 1.
                let t = at - start + 1;
                let bound = u64::from(burst) - 1 + t.div_ceil(q.interval());
                prop_assert!(tokens <= bound, "{tokens} > {bound} in {t} ns");
            }
        }
    }

    /// A request refused with `Wait(n)` passes at exactly `now + n`, and a client told to
    /// retry after `whole_seconds(n)` passes too.
    #[test]
    fn a_request_at_exactly_its_retry_after_passes(
        rpm in 1u32..600,
        burst in 1u32..50,
        steps in schedule(),
        cost in 1u32..4,
    ) {
        let q = Quota::per_minute(rpm, burst);
        let cost = cost.min(burst);
        let mut tat = 0;
        let mut now = S;
        for (gap, c) in steps {
            now += gap;
            let _ = try_draw(&q, &mut tat, now, c.min(burst));
        }
        if let Err(Refused::Wait(n)) = q.draw(tat, now, cost) {
            prop_assert!(q.draw(tat, now + n, cost).is_ok());
            prop_assert!(q.draw(tat, now + n - 1, cost).is_err());
            prop_assert!(q.draw(tat, now + whole_seconds(n) * S, cost).is_ok());
        }
    }
}
