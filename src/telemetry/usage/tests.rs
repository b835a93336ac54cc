use super::record::{HOUR, MINUTE, SECOND};
use super::*;
use crate::auth::Identity;
use crate::policy::fixture;
use crate::telemetry::Outcome;
use crate::telemetry::anomaly::SPIKE;

/// The fixture's policy, a `Usage` on a manual clock (synced to it), and its keys' identities.
fn setup() -> (Usage, Clock, Policy, Vec<Identity>) {
    let (policy, _) = fixture::policy();
    let clock = Clock::manual(SECOND);
    let usage = Usage::new(clock.clone());
    usage.sync(&policy);
    let mut ids: Vec<Identity> = policy
        .keys
        .values()
        .cloned()
        .map(Identity::from_key)
        .collect();
    ids.sort_by(|a, b| a.key_id().cmp(b.key_id()));
    (usage, clock, policy, ids)
}

fn identity<'a>(ids: &'a [Identity], key: &str) -> &'a Identity {
    ids.iter().find(|i| i.key_id() == key).unwrap()
}

/// Runs `minutes` of `per_minute(minute)` requests by `key`, spread over each minute's
/// seconds, ticking every second as the server does; returns the alerts and the highest score.
fn traffic(
    usage: &Usage,
    clock: &Clock,
    key: &Identity,
    minutes: u64,
    per_minute: impl Fn(u64) -> u64,
) -> (Vec<Alert>, f64) {
    let (mut alerts, mut top) = (Vec::new(), 0.0f64);
    for minute in 0..minutes {
        let n = per_minute(minute);
        for second in 0..60 {
            for _ in n * second / 60..n * (second + 1) / 60 {
                usage.record(&Finished::sample(Some(key), "search_deals", Outcome::Ok));
            }
            clock.advance(SECOND);
            alerts.extend(usage.tick());
            top = top.max(usage.snapshot(key.workspace(), key.key_id()).anomaly_score);
        }
    }
    (alerts, top)
}

#[test]
fn requests_are_counted_per_key_in_rolling_minute_hour_and_day() {
    let (usage, clock, _, ids) = setup();
    let full = identity(&ids, "full");
    for _ in 0..3 {
        usage.record(&Finished::sample(Some(full), "", Outcome::Ok));
    }
    clock.advance(2 * MINUTE);
    usage.record(&Finished::sample(Some(full), "", Outcome::Ok));
    let s = usage.snapshot("acme", "full");
    assert_eq!((s.minute, s.hour, s.day), (1, 4, 4));
    clock.advance(HOUR);
    let s = usage.snapshot("acme", "full");
    assert_eq!((s.minute, s.hour, s.day), (0, 0, 4));
    clock.advance(24 * HOUR);
    assert_eq!(usage.snapshot("acme", "full").day, 0);
    // Another key, and a key the policy does not have, read as zeros.
    assert_eq!(usage.snapshot("acme", "reader"), Snapshot::default());
    assert_eq!(usage.snapshot("acme", "nobody"), Snapshot::default());
}

#[test]
fn refusals_truncations_bytes_and_last_seen_are_counted_and_strangers_are_not() {
    let (usage, clock, _, ids) = setup();
    let full = identity(&ids, "full");
    let outcomes = [
        Outcome::Ok,
        Outcome::Denied,
        Outcome::Denied,
        Outcome::RateLimited { concurrency: false },
        Outcome::RateLimited { concurrency: true },
        Outcome::RateLimited { concurrency: true },
        Outcome::TooLarge,
        Outcome::UpstreamError,
    ];
    for outcome in outcomes {
        usage.record(&Finished::sample(Some(full), "", outcome));
    }
    let mut cut = Finished::sample(Some(full), "", Outcome::TooLarge);
    cut.truncated = true;
    usage.record(&cut);
    usage.record(&Finished::sample(None, "", Outcome::Denied));
    clock.advance(5 * SECOND);
    let s = usage.snapshot("acme", "full");
    assert_eq!(s.minute, 9, "every authenticated request, allowed or not");
    assert_eq!(
        (s.denied, s.rate_limited, s.concurrency_limited, s.truncated),
        (2, 1, 2, 1)
    );
    assert_eq!(s.bytes_out, 900);
    assert_eq!(s.idle_for, Some(5 * SECOND));
    assert_eq!(usage.snapshot("acme", "reader").idle_for, None);
}

#[test]
fn steady_traffic_scores_near_zero_and_a_tenfold_burst_warns_once() {
    let (usage, clock, _, ids) = setup();
    let full = identity(&ids, "full");
    // Two hours of 5 to 15 requests a minute (10 on average), jittered deterministically.
    let jitter = |m: u64| 5 + (m * 7919 + 13) % 11;
    let (alerts, top) = traffic(&usage, &clock, full, 120, jitter);
    assert_eq!(alerts, []);
    assert!(top < 2.0, "steady traffic peaked at {top}");

    // Ten times as much, for ten minutes: one warning, however long it lasts.
    let (alerts, top) = traffic(&usage, &clock, full, 10, |_| 100);
    assert!(top > SPIKE * 3.0, "{top}");
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert_eq!((&*alerts[0].workspace, &*alerts[0].key), ("acme", "full"));
    let Change::Spike { current, usual, .. } = alerts[0].change else {
        panic!("{alerts:?}");
    };
    assert!(
        current >= 20 && (9.0..11.0).contains(&usual),
        "{current} {usual:.1}"
    );

    // Back to usual: it calms down once, and the next burst is a new spike.
    let (alerts, _) = traffic(&usage, &clock, full, 30, jitter);
    assert_eq!(
        alerts.iter().map(|a| a.change).collect::<Vec<_>>(),
        [Change::Calm]
    );
    let (alerts, _) = traffic(&usage, &clock, full, 2, |_| 100);
    assert!(matches!(
        alerts[..],
        [Alert {
            change: Change::Spike { .. },
            ..
        }]
    ));
}

#[test]
fn a_new_key_is_not_flagged_for_its_first_hour() {
    let (usage, clock, _, ids) = setup();
    let full = identity(&ids, "full");
    let (alerts, top) = traffic(&usage, &clock, full, 59, |m| if m < 50 { 0 } else { 500 });
    assert_eq!((alerts.len(), top), (0, 0.0));
}

#[test]
fn a_tool_never_called_before_is_flagged_once_after_the_warm_up() {
    let (usage, clock, _, ids) = setup();
    let full = identity(&ids, "full");
    let reader = identity(&ids, "reader");
    usage.record(&Finished::sample(Some(full), "search_deals", Outcome::Ok));
    clock.advance(HOUR);
    // Learnt during the warm-up: not new.
    usage.record(&Finished::sample(Some(full), "search_deals", Outcome::Ok));
    assert_eq!(usage.snapshot("acme", "full").new_tools, 0);
    for _ in 0..3 {
        usage.record(&Finished::sample(Some(full), "get_deal", Outcome::Ok));
        usage.record(&Finished::sample(Some(full), "other", Outcome::Denied));
    }
    usage.record(&Finished::sample(Some(full), "", Outcome::Ok));
    assert_eq!(usage.snapshot("acme", "full").new_tools, 2);
    // Per key: another key calling get_deal for the first time is flagged too.
    usage.record(&Finished::sample(Some(reader), "get_deal", Outcome::Ok));
    assert_eq!(usage.snapshot("acme", "reader").new_tools, 1);
}

#[test]
fn a_key_that_leaves_the_policy_loses_its_record_and_a_new_one_gets_one() {
    let (usage, _, mut policy, ids) = setup();
    assert_eq!(usage.len(), 4);
    usage.record(&Finished::sample(
        Some(identity(&ids, "full")),
        "",
        Outcome::Ok,
    ));
    let full = policy
        .keys
        .iter()
        .find(|(_, k)| &*k.id == "full")
        .map(|(h, _)| *h)
        .unwrap();
    let key = policy.keys.remove(&full).unwrap();
    usage.sync(&policy);
    assert_eq!(usage.len(), 3);
    assert_eq!(usage.snapshot("acme", "full"), Snapshot::default());
    policy.keys.insert(full, key);
    usage.sync(&policy);
    assert_eq!(usage.len(), 4);
    assert_eq!(
        usage.snapshot("acme", "full").minute,
        0,
        "the old counts are gone"
    );
}

#[test]
fn a_request_racing_a_reload_makes_its_own_record() {
    let (policy, _) = fixture::policy();
    let usage = Usage::new(Clock::manual(SECOND));
    let key = policy.keys.values().next().unwrap().clone();
    let identity = Identity::from_key(key);
    usage.record(&Finished::sample(Some(&identity), "", Outcome::Ok));
    assert_eq!(usage.len(), 1);
    assert_eq!(
        usage
            .snapshot(identity.workspace(), identity.key_id())
            .minute,
        1
    );
}

#[test]
fn the_report_lists_every_key_in_order_with_its_numbers() {
    let (usage, clock, policy, ids) = setup();
    usage.record(&Finished::sample(
        Some(identity(&ids, "reader")),
        "",
        Outcome::Denied,
    ));
    clock.advance(3 * SECOND);
    let status = crate::policy::store::ReloadStatus {
        last_reload: Some(1_788_220_800),
        last_error: Some(format!("bad: sha256: {}", "f".repeat(64))),
    };
    let report = report::Report::build(&usage, &policy, 7, &status, 1_788_220_900);
    let names: Vec<(&str, &str)> = report
        .keys
        .iter()
        .map(|k| (k.workspace.as_str(), k.key.as_str()))
        .collect();
    assert_eq!(
        names,
        [
            ("acme", "full"),
            ("acme", "old"),
            ("acme", "reader"),
            ("beta", "beta")
        ]
    );
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(json["generated_at"], "2026-09-01T00:01:40Z");
    assert_eq!(
        json["policy"],
        serde_json::json!({
            "generation": 7,
            "last_reload": "2026-09-01T00:00:00Z",
            "last_error": "bad: sha256: [redacted]"
        })
    );
    assert_eq!(
        json["keys"][2],
        serde_json::json!({
            "workspace": "acme", "key": "reader",
            "requests": {"minute": 1, "hour": 1, "day": 1},
            "denied": 1, "rate_limited": 0, "concurrency_limited": 0, "truncated": 0,
            "bytes_out": 100, "last_seen": "2026-09-01T00:01:37Z", "anomaly_score": 0.0,
            "created": null, "expires": null
        })
    );
    assert_eq!(json["keys"][1]["expires"], "1970-01-01T00:16:40Z");
    assert_eq!(json["keys"][0]["last_seen"], serde_json::Value::Null);
}

#[test]
fn oauth_clients_get_a_record_on_first_use_and_keep_it_while_their_workspace_takes_tokens() {
    let (policy, _) = fixture::policy();
    let policy = fixture::with_oauth(policy);
    let clock = Clock::manual(SECOND);
    let usage = Usage::new(clock);
    usage.sync(&policy);
    let keys = usage.len();
    let app = fixture::client(&policy, "acme", "app");
    for _ in 0..3 {
        usage.record(&Finished::sample(Some(&app), "search_deals", Outcome::Ok));
    }
    assert_eq!(usage.snapshot("acme", "oauth:app").minute, 3);
    assert_eq!(
        usage.oauth_clients(),
        vec![(Arc::from("acme"), Arc::from("oauth:app"))]
    );
    usage.sync(&policy);
    assert_eq!(usage.snapshot("acme", "oauth:app").minute, 3, "kept");
    let (without, _) = fixture::policy();
    usage.sync(&without);
    assert_eq!(usage.len(), keys, "gone once the policy takes no tokens");
}

#[test]
fn oauth_clients_past_the_cap_share_one_record() {
    let (policy, _) = fixture::policy();
    let policy = fixture::with_oauth(policy);
    let usage = Usage::new(Clock::manual(SECOND));
    let cap = crate::telemetry::MAX_OAUTH_CLIENTS;
    for i in 0..cap + 3 {
        let client = fixture::client(&policy, "acme", &format!("c{i}"));
        usage.record(&Finished::sample(Some(&client), "", Outcome::Ok));
    }
    assert_eq!(usage.oauth_clients().len(), cap + 1);
    assert_eq!(usage.snapshot("acme", "oauth:other").minute, 3);
}
