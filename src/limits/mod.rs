//! Per-key limits: a rate (GCRA token bucket) and a concurrency cap, behind the [`Limiter`]
//! trait so a shared backend (gateways running as several replicas) can replace the
//! in-process one without touching the proxy; a budget of failed authentications per client
//! address; and the response cap.
//!
//! Invariants:
//! - State is keyed by [`Subject`] (workspace, key id) and lives outside the policy snapshot:
//!   a reload neither refills nor empties a bucket, and a changed limit applies from the next
//!   request.
//! - State is created only for an authenticated identity, so unauthenticated traffic can
//!   neither use a key's bucket nor grow the maps.
//! - A refused request draws nothing and holds nothing.

pub mod auth_failures;
pub mod clock;
pub mod local;
pub mod rate;
pub mod response_cap;

use std::future::Future;
use std::sync::Arc;

pub use clock::Clock;
pub use local::{LocalLimiter, Permit};
pub use rate::Quota;

use crate::policy::{Key, Limits};

/// Whose bucket: a key of a workspace (or, with OAuth, a client within a workspace).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Subject {
    pub workspace: Arc<str>,
    pub key: Arc<str>,
}

impl Subject {
    /// A policy key's subject (two reference counts, no allocation).
    pub fn of_key(key: &Key) -> Self {
        Self {
            workspace: key.workspace.name.clone(),
            key: key.id.clone(),
        }
    }
}

/// A request admitted under its key's limits. Dropping it frees the concurrency slot.
#[derive(Debug)]
pub struct Admission {
    pub permit: Permit,
    /// The `RateLimit` header's numbers after this request's draw.
    pub rate: RateStatus,
}

/// How a key's bucket stands, as `RateLimit` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateStatus {
    /// `requests_per_minute` (the `q` of `RateLimit-Policy`).
    pub quota: u32,
    /// Whole tokens left (`r`).
    pub remaining: u32,
    /// Whole seconds until the bucket is full again (`t`).
    pub reset: u64,
}

/// Why a request was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Denied {
    /// The bucket holds fewer tokens than the request costs.
    #[error("rate limit exceeded: {requests_per_minute} requests per minute")]
    Rate {
        requests_per_minute: u32,
        /// Whole seconds (≥ 1) after which the same request passes.
        retry_after: u64,
    },
    /// The request costs more than the key's burst; it can never pass.
    #[error(
        "rate limit exceeded: this request costs {cost} tokens, more than the key's burst of {burst}"
    )]
    OverBurst {
        requests_per_minute: u32,
        cost: u32,
        burst: u32,
        /// Seconds until the bucket is full; retrying then still fails.
        retry_after: u64,
    },
    /// The key already has `limit` requests or streams in flight.
    #[error("concurrency limit exceeded: {limit} requests in flight")]
    Concurrency { limit: u32 },
}

impl Denied {
    /// The whole seconds `Retry-After` says.
    pub fn retry_after(&self) -> u64 {
        match self {
            Denied::Rate { retry_after, .. } | Denied::OverBurst { retry_after, .. } => {
                *retry_after
            }
            Denied::Concurrency { .. } => 1,
        }
    }
}

/// Where rate and concurrency state lives. The in-process [`LocalLimiter`] is the one there
/// is; a shared backend implements the same calls.
pub trait Limiter: Send + Sync + 'static {
    /// Draws `cost` tokens from `subject`'s bucket and takes one of its concurrency slots, both
    /// or neither: the rate is checked first, as the contract orders them.
    fn admit(
        &self,
        subject: &Subject,
        limits: &Limits,
        cost: u32,
    ) -> impl Future<Output = Result<Admission, Denied>> + Send;

    /// Requests and streams of `subject` in flight through this gateway.
    fn inflight(&self, subject: &Subject) -> u32;

    /// Calls `f` with every subject that has requests or streams in flight, and how many.
    fn each_busy(&self, f: &mut dyn FnMut(&Subject, u32));

    /// Drops the state of every subject `keep` refuses (keys that left the policy).
    fn retain(&self, keep: &dyn Fn(&Subject) -> bool);

    /// Drops state that says nothing (a full bucket, nothing in flight), so memory follows
    /// the keys in use rather than every key ever seen.
    fn shrink(&self);
}
