//! Key lifecycle end to end: per-key created/expiry/score/new-tool series that follow the
//! policy, and the warnings of `run` (at start and on reload) and `check` for keys to rotate or
//! renew.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};

use mcpwarden::auth::api_key::{ApiKey, hash_hex};

use crate::common::upstream::{self, Mode};
use crate::common::*;
use crate::gateway::setup_with;
use crate::usage::{LIMITS, get, row, search, usage_json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_key_has_its_lifecycle_and_score_series_until_it_leaves_the_policy() {
    let s = setup_with(Mode::Stateless, "", LIMITS).await;
    let (addr, full) = (s.gw.addr, key_header(&s.keys.full));
    assert_eq!(blocking(move || search(addr, &full, 1)).await.status, 200);
    let gw = &s.gw;
    let metrics = gw.metrics();
    let labels = |key| [("workspace", "acme"), ("key", key)];
    assert_eq!(
        metric(
            &metrics,
            "mcpwarden_key_created_timestamp_seconds",
            &labels("full")
        ),
        Some(1_788_220_800.0)
    );
    assert_eq!(
        metric(
            &metrics,
            "mcpwarden_key_expiry_timestamp_seconds",
            &labels("expired")
        ),
        Some(1_577_836_800.0)
    );
    // Dates the policy does not give have no series.
    assert_eq!(
        metric(
            &metrics,
            "mcpwarden_key_expiry_timestamp_seconds",
            &labels("full")
        ),
        None
    );
    assert_eq!(
        metric(
            &metrics,
            "mcpwarden_key_created_timestamp_seconds",
            &labels("reader")
        ),
        None
    );
    for key in ["full", "reader", "expired"] {
        assert_eq!(
            metric(&metrics, "mcpwarden_key_usage_anomaly_score", &labels(key)),
            Some(0.0)
        );
        assert_eq!(
            metric(&metrics, "mcpwarden_key_new_tools_total", &labels(key)),
            Some(0.0)
        );
    }

    // Revoke `full`: its row and its series go with the reload.
    let text = std::fs::read_to_string(&gw.policy_path).unwrap();
    gw.write_policy(
        &text
            .replace(
                &hash_hex(s.keys.full.expose()),
                &hash_hex(ApiKey::generate().expose()),
            )
            .replace("id: full", "id: successor"),
    );
    let admin = gw.admin;
    blocking(move || {
        assert!(eventually(3, || usage_json(admin)["policy"]["generation"] == 2));
        let usage = usage_json(admin);
        let keys: Vec<&str> = usage["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["key"].as_str().unwrap())
            .collect();
        assert_eq!(keys, ["expired", "reader", "successor", "other"]);
        assert_eq!(row(&usage, "acme", "successor")["requests"]["day"], 0);
        let metrics = get(admin, "/metrics").text();
        for name in [
            "mcpwarden_key_usage_anomaly_score",
            "mcpwarden_key_created_timestamp_seconds",
        ] {
            assert_eq!(metric(&metrics, name, &[("key", "full")]), None, "{name}");
        }
        assert!(
            metric(
                &metrics,
                "mcpwarden_key_created_timestamp_seconds",
                &[("key", "successor")]
            )
            .is_some()
        );
    })
    .await;
}

/// A day as the policy writes it, `days` from today (negative: in the past).
fn day(days: i64) -> String {
    let today = jiff::Timestamp::now()
        .to_zoned(jiff::tz::TimeZone::UTC)
        .date();
    today
        .checked_add(jiff::Span::new().days(days))
        .unwrap()
        .to_string()
}

/// The test policy with `full` created 200 days ago and `reader` expiring in 5 days.
fn aging_policy(up: SocketAddr, addr: SocketAddr, admin: SocketAddr, keys: &Keys) -> String {
    policy_yaml(up, addr, admin, keys, "", DEFAULT_LIMITS)
        .replace("created: 2026-09-01", &format!("created: {}", day(-200)))
        .replace(
            "scopes: [crm:read]\n",
            &format!("scopes: [crm:read]\n        expires: {}\n", day(5)),
        )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_warns_of_old_and_expiring_keys_at_start_and_on_reload() {
    let up = upstream::start(Mode::Stateless).await;
    let keys = Keys::new();
    let (addr, admin) = (free_port(), free_port());
    let policy = aging_policy(up.addr, addr, admin, &keys);
    blocking(move || {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("policy.yaml");
        std::fs::write(&path, &policy).unwrap();
        let mut child = Command::new(BIN)
            .args(["run", "--policy"])
            .arg(&path)
            .env("RUST_LOG", "info,pingora_core=warn,pingora_proxy=warn")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let lines = Arc::new(Mutex::new(Vec::<String>::new()));
        let stderr = child.stderr.take().unwrap();
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        let count = |needle: &str| {
            lines
                .lock()
                .unwrap()
                .iter()
                .filter(|l| l.contains(needle))
                .count()
        };
        let old = "key acme/full was created";
        let expiring = "key acme/reader expires";
        let expired = "key acme/expired expired 2020-01-01";
        let started = eventually(20, || count("mcpwarden serving") == 1);
        let seen = (count(old), count(expiring), count(expired));
        // A reload warns again.
        let tmp = path.with_extension("yaml.tmp");
        std::fs::write(&tmp, format!("{policy}\n")).unwrap();
        std::fs::rename(&tmp, &path).unwrap();
        let reloaded = eventually(5, || count("policy reloaded") == 1 && count(old) == 2);
        let _ = child.kill();
        let _ = child.wait();
        let all = lines.lock().unwrap().join("\n");
        assert!(started, "{all}");
        assert_eq!(seen, (1, 1, 1), "{all}");
        assert!(reloaded, "{all}");
        assert!(
            all.contains("(200 days ago, more than 90): rotate it"),
            "{all}"
        );
        assert!(
            all.contains("(in 5 days)") || all.contains("(in 4 days)"),
            "{all}"
        );
        assert_eq!(count(expiring), 2, "{all}");
    })
    .await;
}

#[test]
fn check_lists_keys_to_rotate_and_to_renew() {
    let keys = Keys::new();
    let port = |p: u16| SocketAddr::from(([127, 0, 0, 1], p));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("policy.yaml");
    std::fs::write(&path, aging_policy(port(1), port(2), port(3), &keys)).unwrap();
    let out = Command::new(BIN)
        .arg("check")
        .arg("--policy")
        .arg(&path)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let warnings: Vec<&str> = stdout
        .lines()
        .filter(|l| l.starts_with("warning: key "))
        .collect();
    assert_eq!(warnings.len(), 3, "{stdout}");
    assert!(
        warnings[0].starts_with("warning: key acme/expired expired 2020-01-01"),
        "{stdout}"
    );
    assert!(
        warnings[1].starts_with(&format!("warning: key acme/full was created {}", day(-200))),
        "{stdout}"
    );
    assert!(
        warnings[2].starts_with(&format!("warning: key acme/reader expires {}", day(5))),
        "{stdout}"
    );
}
