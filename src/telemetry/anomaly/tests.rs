use super::*;

/// A baseline fed `minutes` minutes of `count` requests each.
fn steady(count: u64, minutes: u64) -> Baseline {
    let mut b = Baseline::default();
    for _ in 0..minutes {
        b.observe(count);
    }
    b
}

#[test]
fn the_warm_up_hour_is_a_plain_average_and_scores_nothing() {
    let mut b = Baseline::default();
    for count in [10, 20, 30] {
        b.observe(count);
    }
    assert!((b.mean() - 20.0).abs() < 1e-9);
    // Population variance of 10, 20, 30.
    assert!((b.deviation() - (200.0f64 / 3.0).sqrt()).abs() < 1e-9);
    assert!(!b.warm());
    assert_eq!(
        b.score(10_000),
        0.0,
        "a new key is not flagged for existing"
    );
    let b = steady(10, WARMUP_MINUTES);
    assert!(b.warm());
}

#[test]
fn an_even_key_scores_zero_and_a_tenfold_minute_scores_far_above_three() {
    let b = steady(10, 120);
    assert_eq!(b.score(10), 0.0);
    assert_eq!(b.score(3), 0.0, "quieter than usual is not an anomaly");
    // The deviation of an even key is its Poisson noise, √10.
    let tenfold = b.score(100);
    assert!((tenfold - 90.0 / 10f64.sqrt()).abs() < 1e-6, "{tenfold}");
    assert!(b.score(19) < SPIKE && b.score(20) > SPIKE);
}

#[test]
fn an_idle_key_is_measured_against_one_request_a_minute() {
    let b = steady(0, 120);
    assert_eq!(b.deviation(), 1.0);
    assert_eq!(b.score(3), 3.0);
    assert_eq!(b.score(MIN_SPIKE_REQUESTS), MIN_SPIKE_REQUESTS as f64);
}

#[test]
fn a_quiet_key_waking_up_with_a_handful_of_requests_is_no_spike() {
    let b = steady(0, 120);
    for current in 4..MIN_SPIKE_REQUESTS {
        assert_eq!(b.score(current), SPIKE, "{current} requests");
    }
    assert!(b.score(MIN_SPIKE_REQUESTS) > SPIKE);
    // So the detector neither warns nor exports a spike for it...
    let mut d = Detector::new(0);
    for minute in 1..=120 {
        assert_eq!(d.update(minute, |_| 0, 0), None);
    }
    assert_eq!(d.update(121, |_| 0, MIN_SPIKE_REQUESTS - 1), None);
    assert_eq!(d.score(), SPIKE);
    // ...and ten requests are one.
    assert!(matches!(
        d.update(122, |_| 0, MIN_SPIKE_REQUESTS),
        Some(Change::Spike { .. })
    ));
}

#[test]
fn a_sustained_spike_keeps_scoring_high_for_tens_of_minutes() {
    let mut b = steady(10, 120);
    let mut minutes_above = 0;
    for _ in 0..120 {
        if b.score(100) > SPIKE {
            minutes_above += 1;
        }
        b.observe(100);
    }
    assert!(minutes_above >= 20, "{minutes_above}");
    // ...but a new level becomes the usual within two hours.
    assert!(b.score(100) < SPIKE, "{}", b.score(100));
}

#[test]
fn a_spike_is_reported_once_and_again_only_after_calm() {
    let mut d = Detector::new(0);
    let counts = |_| 10;
    for minute in 1..=120 {
        assert_eq!(d.update(minute, counts, 10), None);
    }
    let Some(Change::Spike {
        score,
        current,
        usual,
    }) = d.update(121, counts, 100)
    else {
        panic!("no spike");
    };
    assert!(score > SPIKE && current == 100 && (usual - 10.0).abs() < 1e-9);
    // Hovering around the threshold says nothing more.
    for (minute, current) in (122..).zip([100, 25, 19, 30, 22, 100]) {
        assert_eq!(d.update(minute, counts, current), None, "minute {minute}");
    }
    assert_eq!(d.update(130, counts, 10), Some(Change::Calm));
    assert!(matches!(
        d.update(131, counts, 100),
        Some(Change::Spike { .. })
    ));
}

#[test]
fn after_a_gap_every_missed_minute_is_folded_once() {
    let mut d = Detector::new(0);
    d.update(61, |_| 6, 6);
    assert_eq!(d.baseline().minutes, 60);
    assert!((d.baseline().mean() - 6.0).abs() < 1e-9);
    // The same minute again folds nothing; a day-long gap folds at most a day.
    d.update(61, |_| 1000, 6);
    assert_eq!(d.baseline().minutes, 60);
    d.update(61 + 10 * MAX_FOLD, |_| 0, 0);
    assert_eq!(d.baseline().minutes, 60 + MAX_FOLD);
}
