//! Remote JWK sets over real HTTP on loopback: fetched once, refetched on an unknown `kid` at
//! most once per interval, shared by concurrent misses, kept when the issuer goes away and
//! across reloads, refreshed once old and dropped once too old. The clock is the `now` passed
//! to `verify` and `refresh_stale`, stepped past the intervals.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::extract::State;
use axum::routing::get;

use super::*;
use crate::auth::oauth::remote::{EMPTY_RETRY_SECS, FETCH_TIMEOUT};
use crate::auth::oauth::{MAX_STALE_SECS, REFRESH_INTERVAL_SECS, REFRESH_MAX_AGE_SECS, Rejected};

#[derive(Clone, Default)]
struct Issuer {
    body: Arc<std::sync::Mutex<String>>,
    hits: Arc<AtomicUsize>,
    /// How long each answer takes (to make concurrent misses overlap).
    delay: Arc<std::sync::Mutex<Duration>>,
}

impl Issuer {
    fn serve(&self, body: String) {
        *self.body.lock().unwrap() = body;
    }
    fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

async fn jwks(State(issuer): State<Issuer>) -> String {
    issuer.hits.fetch_add(1, Ordering::SeqCst);
    let delay = *issuer.delay.lock().unwrap();
    tokio::time::sleep(delay).await;
    issuer.body.lock().unwrap().clone()
}

async fn start() -> (Server, Issuer) {
    let issuer = Issuer::default();
    issuer.serve(fixture("jwks.json"));
    let router = axum::Router::new()
        .route("/jwks", get(jwks))
        .with_state(issuer.clone());
    (Server::start(router).await, issuer)
}

fn remote_oauth(server: &Server) -> OAuth {
    let jwks = JwksSource::Uri(format!("{}/jwks", server.base));
    OAuth::new(config(vec![super::issuer(jwks, &ALL)])).unwrap()
}

#[tokio::test]
async fn prefetch_fetches_once_and_tokens_then_use_the_cache() {
    let (server, issuer) = start().await;
    let oauth = remote_oauth(&server);
    oauth.prefetch().await;
    assert_eq!(issuer.hits(), 1);
    let now = unix_now();
    for (alg, kid) in [
        (jsonwebtoken::Algorithm::RS256, "rsa-1"),
        (jsonwebtoken::Algorithm::ES256, "ec-1"),
        (jsonwebtoken::Algorithm::EdDSA, "ed-1"),
    ] {
        assert!(
            oauth
                .verify(&sign(alg, Some(kid), &claims(now)), now)
                .await
                .is_ok()
        );
    }
    oauth.prefetch().await;
    assert_eq!(issuer.hits(), 1, "a cached set is not fetched again");
}

#[tokio::test]
async fn the_first_token_fetches_when_nothing_is_cached() {
    let (server, issuer) = start().await;
    let oauth = remote_oauth(&server);
    let now = unix_now();
    assert!(oauth.verify(&rs256(&claims(now)), now).await.is_ok());
    assert_eq!(issuer.hits(), 1);
}

#[tokio::test]
async fn an_unknown_kid_refetches_at_most_once_per_interval() {
    let (server, issuer) = start().await;
    let oauth = remote_oauth(&server);
    oauth.prefetch().await;
    let t0 = unix_now() + 1; // at or after the prefetch's own clock
    issuer.serve(fixture("jwks-rotated.json"));

    // Rotation at the issuer right after start: the start-up fetch does not count, so the
    // new kid is fetched at once.
    let rotated = |now| rs256_with("rsa2.pem", "rsa-2", &claims(now));
    assert!(oauth.verify(&rotated(t0), t0).await.is_ok());
    assert_eq!(issuer.hits(), 2);
    let t1 = t0;

    // Made-up kids cost the issuer one request per interval, however many arrive.
    let made_up = |now| rs256_with("rsa2.pem", "rsa-9", &claims(now));
    for step in [0, 1, 10, REFRESH_INTERVAL_SECS - 1] {
        let now = t1 + step;
        assert_eq!(
            oauth.verify(&made_up(now), now).await,
            Err(Rejected::UnknownKey)
        );
    }
    assert_eq!(issuer.hits(), 2);
    let t2 = t1 + REFRESH_INTERVAL_SECS;
    assert_eq!(
        oauth.verify(&made_up(t2), t2).await,
        Err(Rejected::UnknownKey)
    );
    assert_eq!(issuer.hits(), 3);
    // Known keys never wait for the interval.
    assert!(oauth.verify(&rotated(t2), t2).await.is_ok());
    assert_eq!(issuer.hits(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_misses_share_one_fetch() {
    let (server, issuer) = start().await;
    let oauth = Arc::new(remote_oauth(&server));
    oauth.prefetch().await;
    issuer.serve(fixture("jwks-rotated.json"));
    *issuer.delay.lock().unwrap() = Duration::from_millis(300);
    let now = unix_now() + REFRESH_INTERVAL_SECS + 1;
    let token = rs256_with("rsa2.pem", "rsa-2", &claims(now));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let (oauth, token) = (oauth.clone(), token.clone());
        tasks.spawn(async move { oauth.verify(&token, now).await });
    }
    while let Some(result) = tasks.join_next().await {
        assert!(result.unwrap().is_ok());
    }
    assert_eq!(issuer.hits(), 2, "the prefetch and one shared refetch");
}

#[tokio::test]
async fn an_unreachable_issuer_does_not_fail_tokens_whose_keys_are_cached() {
    let (mut server, issuer) = start().await;
    let oauth = remote_oauth(&server);
    oauth.prefetch().await;
    server.stop().await;
    let now = unix_now() + REFRESH_INTERVAL_SECS + 1;
    // The unknown kid's refetch fails, and the cached keys stay.
    let unknown = rs256_with("rsa2.pem", "rsa-2", &claims(now));
    assert_eq!(oauth.verify(&unknown, now).await, Err(Rejected::UnknownKey));
    assert!(oauth.verify(&rs256(&claims(now)), now).await.is_ok());
    assert_eq!(issuer.hits(), 1);
}

#[tokio::test]
async fn an_issuer_never_reached_is_unavailable() {
    let jwks = JwksSource::Uri(closed_port_url("/jwks").await);
    let oauth = OAuth::new(config(vec![super::issuer(jwks, &ALL)])).unwrap();
    oauth.prefetch().await;
    let now = unix_now() + REFRESH_INTERVAL_SECS + 1;
    assert_eq!(
        oauth.verify(&rs256(&claims(now)), now).await,
        Err(Rejected::Unavailable)
    );
}

#[tokio::test]
async fn a_reload_takes_over_the_cached_keys_without_refetching() {
    let (mut server, issuer) = start().await;
    let old = remote_oauth(&server);
    old.prefetch().await;
    let new = remote_oauth(&server);
    new.inherit(&old);
    new.prefetch().await;
    assert_eq!(issuer.hits(), 1);
    server.stop().await;
    let now = unix_now();
    assert!(new.verify(&rs256(&claims(now)), now).await.is_ok());
}

#[tokio::test]
async fn probe_reports_each_unusable_jwks_uri_by_issuer_and_uri() {
    let (mut server, issuer) = start().await;
    let oauth = remote_oauth(&server);
    assert_eq!(oauth.probe().await, Vec::<String>::new());

    let uri = format!("{}/jwks", server.base);
    let expect = |problems: Vec<String>, says: &str| {
        assert_eq!(problems.len(), 1, "{problems:?}");
        let prefix = format!("issuer {ISS}: jwks_uri {uri}: ");
        assert!(
            problems[0].starts_with(&prefix) && problems[0].contains(says),
            "{problems:?}"
        );
    };
    issuer.serve("<html>hello</html>".to_owned());
    expect(oauth.probe().await, "not a JWK set");
    issuer.serve(" ".repeat(257 * 1024));
    expect(oauth.probe().await, "body over 256 KiB");
    let only_ec = OAuth::new(config(vec![super::issuer(
        JwksSource::Uri(uri.clone()),
        &[Algorithm::Es256],
    )]))
    .unwrap();
    issuer.serve(r#"{"keys": []}"#.to_owned());
    expect(only_ec.probe().await, "no usable signature key");
    server.stop().await;
    expect(oauth.probe().await, "cannot connect");

    let ftp = JwksSource::Uri("ftp://127.0.0.1/jwks".to_owned());
    let oauth = OAuth::new(config(vec![super::issuer(ftp, &ALL)])).unwrap();
    assert!(oauth.probe().await[0].contains("only http and https"));
}

#[tokio::test]
async fn a_failed_start_up_fetch_is_retried_soon_rather_than_after_the_full_interval() {
    let (server, issuer) = start().await;
    let oauth = remote_oauth(&server);
    issuer.serve("not a key set".into());
    oauth.prefetch().await;
    assert_eq!(issuer.hits(), 1);
    let t0 = unix_now() + 1;
    // The first token retries at once (the start-up fetch does not count), then the issuer
    // is asked at most every EMPTY_RETRY_SECS while nothing could be fetched.
    issuer.serve("still broken".into());
    assert_eq!(
        oauth.verify(&rs256(&claims(t0)), t0).await,
        Err(Rejected::Unavailable)
    );
    assert_eq!(issuer.hits(), 2);
    issuer.serve(fixture("jwks.json"));
    let t1 = t0 + EMPTY_RETRY_SECS - 1;
    assert_eq!(
        oauth.verify(&rs256(&claims(t1)), t1).await,
        Err(Rejected::Unavailable)
    );
    assert_eq!(issuer.hits(), 2);
    let t2 = t0 + EMPTY_RETRY_SECS;
    assert!(oauth.verify(&rs256(&claims(t2)), t2).await.is_ok());
    assert_eq!(issuer.hits(), 3);
}

/// The rotated set without `rsa-1`: the issuer has retired that key.
fn without_rsa_1() -> String {
    let mut set: serde_json::Value = serde_json::from_str(&fixture("jwks-rotated.json")).unwrap();
    set["keys"]
        .as_array_mut()
        .unwrap()
        .retain(|k| k["kid"] != "rsa-1");
    set.to_string()
}

#[tokio::test]
async fn a_key_removed_at_the_issuer_is_refused_after_the_background_refresh() {
    let (server, issuer) = start().await;
    let oauth = remote_oauth(&server);
    let t0 = unix_now();
    // The first token fetches the set at t0.
    assert!(oauth.verify(&rs256(&claims(t0)), t0).await.is_ok());
    issuer.serve(without_rsa_1());

    // A fresh set is not fetched again, and its keys stay trusted meanwhile.
    let t1 = t0 + REFRESH_MAX_AGE_SECS - 1;
    oauth.refresh_stale(t1).await;
    assert_eq!(issuer.hits(), 1);
    assert!(oauth.verify(&rs256(&claims(t1)), t1).await.is_ok());

    // Once old, it is replaced: the removed key goes, the rotated one works.
    let t2 = t0 + REFRESH_MAX_AGE_SECS;
    oauth.refresh_stale(t2).await;
    assert_eq!(issuer.hits(), 2);
    assert_eq!(
        oauth.verify(&rs256(&claims(t2)), t2).await,
        Err(Rejected::UnknownKey)
    );
    let rotated = rs256_with("rsa2.pem", "rsa-2", &claims(t2));
    assert!(oauth.verify(&rotated, t2).await.is_ok());
}

#[tokio::test]
async fn an_unreachable_issuers_keys_are_served_up_to_the_maximum_staleness_then_not() {
    let (mut server, issuer) = start().await;
    let oauth = remote_oauth(&server);
    let t0 = unix_now();
    assert!(oauth.verify(&rs256(&claims(t0)), t0).await.is_ok());
    server.stop().await;

    // The background refreshes fail and keep the keys.
    for t in [t0 + REFRESH_MAX_AGE_SECS, t0 + MAX_STALE_SECS / 2] {
        oauth.refresh_stale(t).await;
        assert!(oauth.verify(&rs256(&claims(t)), t).await.is_ok(), "at {t}");
    }
    let last = t0 + MAX_STALE_SECS - 1;
    assert!(oauth.verify(&rs256(&claims(last)), last).await.is_ok());

    // A day after the last successful fetch, the set is not used any more.
    let t = t0 + MAX_STALE_SECS;
    oauth.refresh_stale(t).await;
    assert_eq!(
        oauth.verify(&rs256(&claims(t)), t).await,
        Err(Rejected::Unavailable)
    );
    assert_eq!(issuer.hits(), 1);
}

#[tokio::test]
async fn a_reload_keeps_a_fresh_set_and_the_background_refresh_renews_an_old_one() {
    let (server, issuer) = start().await;
    let old = remote_oauth(&server);
    let t0 = unix_now();
    assert!(old.verify(&rs256(&claims(t0)), t0).await.is_ok());
    issuer.serve(without_rsa_1());

    let new = remote_oauth(&server);
    new.inherit(&old);
    new.prefetch().await;
    new.refresh_stale(t0 + 60).await;
    assert_eq!(
        issuer.hits(),
        1,
        "an inherited fresh set is not fetched again"
    );

    // The inherited set keeps its age: the reload does not make it fresh.
    let t = t0 + REFRESH_MAX_AGE_SECS;
    new.refresh_stale(t).await;
    assert_eq!(issuer.hits(), 2);
    assert_eq!(
        new.verify(&rs256(&claims(t)), t).await,
        Err(Rejected::UnknownKey)
    );
}

/// The clock is tokio's paused one: the fetches end by their deadlines, at exact instants.
#[tokio::test(start_paused = true)]
async fn a_request_that_waited_for_the_lock_waits_no_longer_than_one_fetch_deadline_in_all() {
    // Accepts connections (the kernel does) and never answers.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let jwks = JwksSource::Uri(format!("http://{}/jwks", silent.local_addr().unwrap()));
    let oauth = Arc::new(OAuth::new(config(vec![super::issuer(jwks, &ALL)])).unwrap());
    // A background refresh holds the fetch lock until its deadline.
    let background = oauth.clone();
    let background = tokio::spawn(async move { background.refresh_stale(NOW).await });
    tokio::time::sleep(FETCH_TIMEOUT / 4).await;

    let started = tokio::time::Instant::now();
    let token = rs256(&claims(NOW));
    assert_eq!(oauth.verify(&token, NOW).await, Err(Rejected::Unavailable));
    let waited = started.elapsed();
    assert!(
        waited <= FETCH_TIMEOUT,
        "waited {waited:?} for the lock and a fetch of its own"
    );
    background.await.unwrap();
}
