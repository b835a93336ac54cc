//! A `jwks_uri`'s keys, cached: fetched once at start, refetched when a token names an
//! unknown `kid`, at most once every [`REFRESH_INTERVAL_SECS`] (every [`EMPTY_RETRY_SECS`]
//! while nothing could be fetched yet, so a failed start-up fetch heals quickly).
//!
//! Invariants: the request path reads the cached set with one atomic load and never waits
//! for a fetch unless its key is missing; concurrent misses share one fetch (a lock taken
//! with the fetch's own deadline, so no request waits longer than [`FETCH_TIMEOUT`] for
//! it); the interval counts refresh attempts, failed ones too, so a flood of made-up `kid`s
//! costs the issuer one request per interval (the start-up fetch does not count: a key the
//! issuer rotates in right after start is still picked up at once); a failed fetch keeps the cached keys (an issuer
//! briefly unreachable must not fail tokens whose keys are known). A fetch runs in its own
//! task, so a request that goes away mid-fetch does not waste the interval's attempt. The
//! clock is the `now` the caller passes (Unix seconds), so tests step it.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::sync::Mutex;

use super::Algorithm;
use super::fetch;
use super::keys::KeySet;

/// The least time between two fetches of one URI.
pub const REFRESH_INTERVAL_SECS: i64 = 30;
/// The least time between two refresh attempts while no set was ever fetched.
pub const EMPTY_RETRY_SECS: i64 = 5;
/// How long a request may wait for a fetch (the fetch's own deadline).
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(2);

/// Every algorithm this gateway verifies: a fetched set keeps keys of all of them, and the
/// issuer's pinned list filters at use (an issuer's list may change on reload; the cached
/// set, inherited across reloads, need not be refetched for that).
const ALL: [Algorithm; 3] = [Algorithm::Rs256, Algorithm::Es256, Algorithm::EdDsa];

#[derive(Debug)]
pub struct RemoteJwks {
    uri: String,
    /// Empty until the first successful fetch (a fetched set is never empty).
    keys: ArcSwap<KeySet>,
    /// When the last refresh (a fetch for an unknown `kid`) started, Unix seconds;
    /// `i64::MIN`: never.
    last_attempt: AtomicI64,
    fetching: Arc<Mutex<()>>,
}

impl RemoteJwks {
    pub fn new(uri: String) -> Self {
        Self {
            uri,
            keys: ArcSwap::from_pointee(KeySet::default()),
            last_attempt: AtomicI64::new(i64::MIN),
            fetching: Arc::new(Mutex::new(())),
        }
    }

    pub fn uri(&self) -> &str {
        &self.uri
    }

    /// The cached set (empty before the first successful fetch).
    pub fn current(&self) -> Arc<KeySet> {
        self.keys.load_full()
    }

    /// Fetches a newer set than `seen` when the interval allows, or waits for the fetch
    /// another request started; returns the set to try next (`seen` itself when nothing new
    /// could be had).
    pub async fn refresh(self: &Arc<Self>, seen: &Arc<KeySet>, now: i64) -> Arc<KeySet> {
        if let Some(newer) = self.newer_than(seen) {
            return newer;
        }
        // No fetch allowed and none in flight: what is cached now is all there is. (One in
        // flight is waited for even when this request could not start one itself.)
        if !self.may_fetch(now) && self.fetching.try_lock().is_ok() {
            return self.current();
        }
        let Ok(guard) =
            tokio::time::timeout(FETCH_TIMEOUT, self.fetching.clone().lock_owned()).await
        else {
            return self.current();
        };
        // The holder we waited for may have fetched, or tried.
        if let Some(newer) = self.newer_than(seen) {
            return newer;
        }
        if !self.may_fetch(now) {
            return self.current();
        }
        self.last_attempt.store(now, Ordering::Relaxed);
        let this = Arc::clone(self);
        let task = tokio::spawn(async move {
            let _guard = guard;
            this.fetch_and_store().await
        });
        match task.await {
            Ok(Ok(set)) => set,
            _ => self.current(),
        }
    }

    /// The first fetch, for start-up: does nothing when a set is already cached (inherited
    /// from the previous policy).
    pub async fn prefetch(self: &Arc<Self>) {
        if !self.current().is_empty() {
            return;
        }
        let Ok(_guard) = self.fetching.try_lock() else {
            return; // a request is fetching already
        };
        let _ = self.fetch_and_store().await;
    }

    /// Shares `other`'s cache, when both fetch the same URI.
    pub fn adopt(&self, other: &RemoteJwks) {
        self.keys.store(other.keys.load_full());
        self.last_attempt.store(
            other.last_attempt.load(Ordering::Relaxed),
            Ordering::Relaxed,
        );
    }

    fn newer_than(&self, seen: &Arc<KeySet>) -> Option<Arc<KeySet>> {
        let current = self.current();
        (!Arc::ptr_eq(&current, seen)).then_some(current)
    }

    /// The interval has passed since the last attempt (or the clock went back, which must
    /// not freeze the keys until it catches up).
    fn may_fetch(&self, now: i64) -> bool {
        let last = self.last_attempt.load(Ordering::Relaxed);
        let interval = if self.current().is_empty() {
            EMPTY_RETRY_SECS
        } else {
            REFRESH_INTERVAL_SECS
        };
        let elapsed = now.saturating_sub(last);
        last == i64::MIN || !(0..interval).contains(&elapsed)
    }

    async fn fetch_and_store(&self) -> Result<Arc<KeySet>, String> {
        match fetch_set(&self.uri, FETCH_TIMEOUT).await {
            Ok(set) => {
                let set = Arc::new(set);
                self.keys.store(set.clone());
                tracing::info!(uri = %self.uri, keys = set.len(), "fetched the issuer's JWK set");
                Ok(set)
            }
            Err(error) => {
                tracing::warn!(uri = %self.uri, %error, "cannot fetch the issuer's JWK set; keeping the cached keys");
                Err(error)
            }
        }
    }
}

/// GETs and parses a JWK set (keys of every supported algorithm).
pub async fn fetch_set(uri: &str, timeout: Duration) -> Result<KeySet, String> {
    let body = fetch::get(uri, timeout).await?;
    KeySet::parse(&body, &ALL)
}
