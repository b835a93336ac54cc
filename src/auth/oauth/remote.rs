//! A `jwks_uri`'s keys, cached: fetched once at start, refreshed in the background once the
//! set is older than [`REFRESH_MAX_AGE_SECS`], refetched when a token names an unknown `kid`
//! at most once every [`REFRESH_INTERVAL_SECS`] (every [`EMPTY_RETRY_SECS`] while no set can
//! be served, so a failed start-up fetch heals quickly).
//!
//! Invariants: a successful fetch replaces the whole set, so a key the issuer removed is
//! gone after the next refresh (at most [`REFRESH_MAX_AGE_SECS`] plus the housekeeping
//! period). A failed fetch keeps the cached keys (an issuer briefly unreachable must not fail
//! tokens whose keys are known), but never past [`MAX_STALE_SECS`] after the last successful
//! fetch: an older set is not used at all (its tokens are `Unavailable`), and that is logged
//! at error level once. The request path reads the set and its fetch time with one atomic
//! load and never waits for a fetch unless its key is missing; concurrent misses share one
//! fetch, and no request waits longer than [`FETCH_TIMEOUT`] in all, for the lock (a
//! background fetch may hold it) and a fetch of its own together.
//! The interval counts refresh attempts for unknown `kid`s, failed ones too, so a flood of
//! made-up `kid`s costs the issuer one request per interval; the start-up fetch and the
//! background refresh do not count (a key the issuer rotates in right after either is still
//! picked up at once). A fetch runs in its own task with its whole deadline, so a request
//! that goes away or stops waiting does not waste the interval's attempt. The clock is the
//! `now` the caller passes (Unix seconds), so tests step it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::sync::Mutex;

use super::Algorithm;
use super::fetch;
use super::keys::KeySet;

/// The least time between two fetches of one URI for unknown `kid`s.
pub const REFRESH_INTERVAL_SECS: i64 = 30;
/// The least time between two refresh attempts while no set can be served.
pub const EMPTY_RETRY_SECS: i64 = 5;
/// A set older than this (since its successful fetch) is fetched again by
/// [`RemoteJwks::refresh_if_stale`]: 10 minutes, so a removed key stays trusted at most
/// about that long.
pub const REFRESH_MAX_AGE_SECS: i64 = 10 * 60;
/// A set older than this is no longer served: an issuer unreachable for a day is more likely
/// gone or compromised than briefly down, and keys it may have revoked must not live on.
pub const MAX_STALE_SECS: i64 = 24 * 60 * 60;
/// How long a request may wait for a fetch, and each fetch's own deadline.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(2);

/// Every algorithm this gateway verifies: a fetched set keeps keys of all of them, and the
/// issuer's pinned list filters at use (an issuer's list may change on reload; the cached
/// set, inherited across reloads, need not be refetched for that).
const ALL: [Algorithm; 3] = [Algorithm::Rs256, Algorithm::Es256, Algorithm::EdDsa];

/// A set and when it was fetched, swapped together so a reader sees a consistent pair.
#[derive(Debug)]
pub struct Fetched {
    /// Empty until the first successful fetch (a fetched set is never empty).
    pub keys: KeySet,
    /// When the fetch succeeded, Unix seconds; `i64::MIN` for the empty start.
    pub at: i64,
}

impl Fetched {
    fn none() -> Self {
        Self {
            keys: KeySet::default(),
            at: i64::MIN,
        }
    }

    /// Whether the set may be served at `now` (a clock that went back keeps it servable).
    fn servable(&self, now: i64) -> bool {
        !self.keys.is_empty() && now.saturating_sub(self.at) < MAX_STALE_SECS
    }
}

#[derive(Debug)]
pub struct RemoteJwks {
    uri: String,
    keys: ArcSwap<Fetched>,
    /// When the last refresh for an unknown `kid` started, Unix seconds; `i64::MIN`: never.
    last_attempt: AtomicI64,
    /// The set's expiry past [`MAX_STALE_SECS`] was logged (cleared by a successful fetch).
    expiry_logged: AtomicBool,
    fetching: Arc<Mutex<()>>,
}

impl RemoteJwks {
    pub fn new(uri: String) -> Self {
        Self {
            uri,
            keys: ArcSwap::from_pointee(Fetched::none()),
            last_attempt: AtomicI64::new(i64::MIN),
            expiry_logged: AtomicBool::new(false),
            fetching: Arc::new(Mutex::new(())),
        }
    }

    pub fn uri(&self) -> &str {
        &self.uri
    }

    /// The cached set with its fetch time (empty before the first successful fetch).
    pub fn current(&self) -> Arc<Fetched> {
        self.keys.load_full()
    }

    /// `fetched`'s keys when they may be used at `now`: none before the first fetch, none
    /// once [`MAX_STALE_SECS`] have passed since it (logged once at error level).
    pub fn servable<'f>(&self, fetched: &'f Fetched, now: i64) -> Option<&'f KeySet> {
        if fetched.servable(now) {
            return Some(&fetched.keys);
        }
        if !fetched.keys.is_empty() && !self.expiry_logged.swap(true, Ordering::Relaxed) {
            tracing::error!(
                uri = %self.uri,
                max_stale_secs = MAX_STALE_SECS,
                "the issuer's JWK set could not be fetched for too long; its tokens are refused until it can be"
            );
        }
        None
    }

    /// Fetches a newer set than `seen` when the interval allows, or waits for the fetch
    /// another request started; returns the set to try next (`seen` itself when nothing new
    /// could be had). Waits at most [`FETCH_TIMEOUT`] from the call, for the lock and the
    /// fetch together.
    pub async fn refresh(self: &Arc<Self>, seen: &Arc<Fetched>, now: i64) -> Arc<Fetched> {
        let deadline = tokio::time::Instant::now() + FETCH_TIMEOUT;
        if let Some(newer) = self.newer_than(seen) {
            return newer;
        }
        // No fetch allowed and none in flight: what is cached now is all there is. (One in
        // flight is waited for even when this request could not start one itself.)
        if !self.may_fetch(now) && self.fetching.try_lock().is_ok() {
            return self.current();
        }
        let Ok(guard) = tokio::time::timeout_at(deadline, self.fetching.clone().lock_owned()).await
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
        // The fetch keeps its whole deadline in its own task (what it fetches serves the
        // next requests); this request waits only for what is left of its own.
        let task = tokio::spawn(async move {
            let _guard = guard;
            this.fetch_and_store(now).await
        });
        match tokio::time::timeout_at(deadline, task).await {
            Ok(Ok(Ok(fetched))) => fetched,
            _ => self.current(),
        }
    }

    /// The first fetch, for start-up: does nothing when a set is already cached (inherited
    /// from the previous policy; [`Self::refresh_if_stale`] renews an old one).
    pub async fn prefetch(self: &Arc<Self>) {
        if !self.current().keys.is_empty() {
            return;
        }
        let Ok(_guard) = self.fetching.try_lock() else {
            return; // a request is fetching already
        };
        let _ = self.fetch_and_store(crate::policy::store::now()).await;
    }

    /// The background refresh: fetches the set again when its last successful fetch is
    /// [`REFRESH_MAX_AGE_SECS`] old or more (or there never was one), unless a fetch is in
    /// flight. A success replaces the set; a failure keeps it, up to [`MAX_STALE_SECS`].
    pub async fn refresh_if_stale(&self, now: i64) {
        let fetched = self.current();
        let age = now.saturating_sub(fetched.at);
        if !fetched.keys.is_empty() && age < REFRESH_MAX_AGE_SECS {
            return;
        }
        let Ok(_guard) = self.fetching.try_lock() else {
            return; // a fetch is in flight already
        };
        if self.fetch_and_store(now).await.is_err() {
            // Says so once when the kept set has now aged out, even with no token to use it.
            let _ = self.servable(&self.current(), now);
        }
    }

    /// Shares `other`'s cache, when both fetch the same URI.
    pub fn adopt(&self, other: &RemoteJwks) {
        self.keys.store(other.keys.load_full());
        self.last_attempt.store(
            other.last_attempt.load(Ordering::Relaxed),
            Ordering::Relaxed,
        );
        self.expiry_logged.store(
            other.expiry_logged.load(Ordering::Relaxed),
            Ordering::Relaxed,
        );
    }

    fn newer_than(&self, seen: &Arc<Fetched>) -> Option<Arc<Fetched>> {
        let current = self.current();
        (!Arc::ptr_eq(&current, seen)).then_some(current)
    }

    /// The interval has passed since the last attempt (or the clock went back, which must
    /// not freeze the keys until it catches up).
    fn may_fetch(&self, now: i64) -> bool {
        let last = self.last_attempt.load(Ordering::Relaxed);
        let interval = if self.current().servable(now) {
            REFRESH_INTERVAL_SECS
        } else {
            EMPTY_RETRY_SECS
        };
        let elapsed = now.saturating_sub(last);
        last == i64::MIN || !(0..interval).contains(&elapsed)
    }

    async fn fetch_and_store(&self, now: i64) -> Result<Arc<Fetched>, String> {
        match fetch_set(&self.uri, FETCH_TIMEOUT).await {
            Ok(keys) => {
                let count = keys.len();
                let fetched = Arc::new(Fetched { keys, at: now });
                self.keys.store(fetched.clone());
                self.expiry_logged.store(false, Ordering::Relaxed);
                tracing::info!(uri = %self.uri, keys = count, "fetched the issuer's JWK set");
                Ok(fetched)
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
