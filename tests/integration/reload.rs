//! Hot reload and shutdown, end to end.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use serde_json::json;

use crate::common::upstream::{self, Mode};
use crate::common::*;
use mcpwarden::auth::api_key::{ApiKey, hash_hex};

/// Runs `test` on a blocking thread with a gateway started on the usual test policy (given
/// with its keys) in front of a stateless upstream, which stays up until `test` returns.
async fn on_gateway(test: impl FnOnce(Gateway, String, Keys) + Send + 'static) {
    let up = upstream::start(Mode::Stateless).await;
    let keys = Keys::new();
    let (addr, admin) = (free_port(), free_port());
    let policy = policy_yaml(up.addr, addr, admin, &keys, "", DEFAULT_LIMITS);
    blocking(move || test(Gateway::start(addr, admin, &policy), policy, keys)).await;
    drop(up);
}

/// `policy` with `key` added to workspace `acme` as `id`.
fn with_key(policy: &str, id: &str, key: &ApiKey) -> String {
    policy.replace(
        "  beta:\n",
        &format!(
            "      - id: {id}\n        sha256: {}\n  beta:\n",
            hash_hex(key.expose())
        ),
    )
}

fn search(addr: std::net::SocketAddr, key: &ApiKey) -> u16 {
    post(
        addr,
        &[&key_header(key)],
        &call(1, "search_deals", json!({"query": "a"})),
    )
    .status
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_are_added_and_revoked_live_and_a_broken_edit_changes_nothing() {
    on_gateway(|gw, policy, keys| {
        let addr = gw.addr;
        let newcomer = ApiKey::generate();
        assert_eq!(search(addr, &newcomer), 401);

        // Add a key: it works within a second.
        let added = with_key(&policy, "newcomer", &newcomer);
        gw.write_policy(&added);
        assert!(
            eventually(2, || search(addr, &newcomer) == 200),
            "the added key never worked"
        );

        // A broken edit is refused whole: both keys keep working, the failure is counted.
        gw.write_policy(&added.replace("requests_per_minute", "request_per_minute"));
        assert!(eventually(2, || gw.metrics().contains(
            "mcpwarden_policy_reloads_total{result=\"failure\"} 1"
        )));
        assert_eq!(search(addr, &newcomer), 200);
        assert_eq!(search(addr, &keys.full), 200);

        // Revoke the original key: refused within a second, the newcomer still works.
        let revoked = added.replace(
            &hash_hex(keys.full.expose()),
            &hash_hex(ApiKey::generate().expose()),
        );
        gw.write_policy(&revoked);
        assert!(
            eventually(2, || search(addr, &keys.full) == 401),
            "the revoked key still works"
        );
        assert_eq!(search(addr, &newcomer), 200);
        assert!(eventually(2, || gw.metrics().contains(
            "mcpwarden_policy_reloads_total{result=\"success\"} 3"
        )));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reloads_under_concurrent_traffic_fail_no_request() {
    on_gateway(|gw, policy, keys| {
        let addr = gw.addr;
        let full = keys.full.clone();
        let stop = Arc::new(AtomicBool::new(false));
        let failures = Arc::new(AtomicUsize::new(0));
        let done = Arc::new(AtomicUsize::new(0));
        let workers: Vec<_> = (0..4)
            .map(|_| {
                let (stop, failures, done, key) =
                    (stop.clone(), failures.clone(), done.clone(), full.clone());
                std::thread::spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        if search(addr, &key) != 200 {
                            failures.fetch_add(1, Ordering::Relaxed);
                        }
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                })
            })
            .collect();
        for i in 0..10 {
            let extra = ApiKey::generate();
            let edited = with_key(&policy, &format!("extra{i}"), &extra);
            gw.write_policy(&edited);
            std::thread::sleep(std::time::Duration::from_millis(250));
        }
        stop.store(true, Ordering::Relaxed);
        for w in workers {
            w.join().unwrap();
        }
        assert!(done.load(Ordering::Relaxed) > 20);
        assert_eq!(failures.load(Ordering::Relaxed), 0);
        assert!(
            gw.metrics()
                .contains("mcpwarden_policy_reloads_total{result=\"failure\"} 0")
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_and_sigterm_drains_in_flight_requests() {
    on_gateway(|mut gw, _, keys| {
        let addr = gw.addr;
        let key = key_header(&keys.full);
        gw.signal("HUP");
        assert!(eventually(2, || gw.metrics().contains(
            "mcpwarden_policy_reloads_total{result=\"success\"} 2"
        )));

        let slow =
            std::thread::spawn(move || post(addr, &[&key], &call(1, "slow", json!({"ms": 1500}))));
        std::thread::sleep(std::time::Duration::from_millis(400));
        gw.signal("TERM");
        let resp = slow.join().unwrap();
        assert_eq!(
            resp.status,
            200,
            "the request in flight was dropped: {}",
            resp.text()
        );
        let status = gw.child.wait().unwrap();
        assert!(status.success(), "exit status {status}");
        // New connections are refused once it has stopped.
        assert!(std::net::TcpStream::connect(addr).is_err());
    })
    .await;
}

/// A log written and rotated next to the policy (`mcpwarden run --policy policy.yaml >
/// gateway.log`) changes the folder many times a second; a policy edit must still take effect
/// at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_neighbour_file_does_not_hold_back_a_reload() {
    use std::io::Write;
    on_gateway(|gw, policy, _| {
        let addr = gw.addr;
        let folder = gw.policy_path.parent().unwrap().to_owned();
        let stop = Arc::new(AtomicBool::new(false));
        let writer = {
            let stop = stop.clone();
            let path = folder.join("gateway.log");
            std::thread::spawn(move || {
                let mut log = std::fs::File::create(&path).unwrap();
                for line in 0.. {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    log.write_all(b"a line of log\n").unwrap();
                    if line % 5 == 4 {
                        std::fs::rename(&path, path.with_extension("log.1")).unwrap();
                        log = std::fs::File::create(&path).unwrap();
                    }
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
            })
        };
        let newcomer = ApiKey::generate();
        gw.write_policy(&with_key(&policy, "newcomer", &newcomer));
        let reloaded = eventually(2, || search(addr, &newcomer) == 200);
        stop.store(true, Ordering::Relaxed);
        writer.join().unwrap();
        assert!(
            reloaded,
            "the edit was not applied while the neighbour file was written"
        );
    })
    .await;
}

/// `policy.yaml -> policy.real.yaml` in the same folder, the real file edited in place (as
/// editors do through a link): the edit takes effect.
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_in_place_edit_of_the_file_the_policy_links_to_is_applied() {
    on_gateway(|gw, policy, _| {
        let addr = gw.addr;
        let folder = gw.policy_path.parent().unwrap().to_owned();
        // The policy becomes a link to a file beside it.
        let (first, second) = (ApiKey::generate(), ApiKey::generate());
        let real = folder.join("policy.real.yaml");
        std::fs::write(&real, with_key(&policy, "first", &first)).unwrap();
        let link = folder.join("policy.link");
        std::os::unix::fs::symlink("policy.real.yaml", &link).unwrap();
        std::fs::rename(&link, &gw.policy_path).unwrap();
        assert!(
            eventually(2, || search(addr, &first) == 200),
            "the linked policy was not loaded"
        );
        // Edited in place through the link's target: truncate, write, close.
        std::fs::write(&real, with_key(&policy, "second", &second)).unwrap();
        assert!(
            eventually(2, || search(addr, &second) == 200),
            "the in-place edit of the linked file was not applied"
        );
    })
    .await;
}
