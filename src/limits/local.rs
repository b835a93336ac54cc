//! The in-process [`Limiter`]: one small record per active key in a sharded concurrent map,
//! updated with compare-and-swap.
//!
//! Invariants:
//! - A draw and a slot are taken while the map entry is held (a shard read lock), so
//!   [`LocalLimiter::shrink`], which needs the shard's write lock, can never drop a record
//!   between a lookup and its update (which would lose the draw).
//! - A [`Permit`] holds its record, not a map reference: releasing a slot never touches the
//!   map, and a record dropped from the map (its key left the policy) stays consistent for the
//!   permits still out.
//! - Memory per key with state: one map entry (the subject's two `Arc<str>` and a pointer)
//!   and a 32-byte record (`docs/benchmarks.md` has the measured total); a key's record is
//!   dropped by [`LocalLimiter::shrink`] once its bucket is full and nothing is in flight.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use dashmap::DashMap;

use super::rate::{self, Passed, Quota, Refused};
use super::{Admission, Clock, Denied, Limiter, RateStatus, Subject};
use crate::policy::Limits;

/// One key's state.
#[derive(Debug, Default)]
struct Record {
    /// The bucket's theoretical arrival time (see [`rate`]); 0 is a full bucket.
    tat: AtomicU64,
    inflight: AtomicU32,
}

impl Record {
    fn draw(&self, quota: Quota, now: u64, cost: u32) -> Result<Passed, Refused> {
        let mut tat = self.tat.load(Ordering::Acquire);
        loop {
            let (next, passed) = quota.draw(tat, now, cost)?;
            match self
                .tat
                .compare_exchange_weak(tat, next, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return Ok(passed),
                Err(current) => tat = current,
            }
        }
    }

    fn refund(&self, quota: Quota, cost: u32) {
        let _ = self
            .tat
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |tat| {
                Some(quota.refund(tat, cost))
            });
    }

    fn try_acquire(&self, limit: u32) -> bool {
        self.inflight
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < limit).then_some(n + 1)
            })
            .is_ok()
    }

    fn idle(&self, now: u64) -> bool {
        self.inflight.load(Ordering::Acquire) == 0 && self.tat.load(Ordering::Acquire) <= now
    }
}

/// A concurrency slot: held in the request context, released when dropped, on every exit
/// path (success, error, upstream failure, timeout, a client gone mid-stream).
#[derive(Debug)]
pub struct Permit(Arc<Record>);

impl Drop for Permit {
    fn drop(&mut self) {
        self.0.inflight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Rate and concurrency state for every key in use, in this process.
#[derive(Debug)]
pub struct LocalLimiter {
    /// aHash rather than SipHash: subjects come from the policy, not from clients, and it
    /// halves the cost of the lookup.
    records: DashMap<Subject, Arc<Record>, ahash::RandomState>,
    clock: Clock,
}

impl Default for LocalLimiter {
    fn default() -> Self {
        Self::new(Clock::monotonic())
    }
}

impl LocalLimiter {
    pub fn new(clock: Clock) -> Self {
        Self {
            records: DashMap::default(),
            clock,
        }
    }

    /// Keys with state (for tests and the memory bench).
    pub fn len(&self) -> usize {
        self.records.len()
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// [`Limiter::admit`] without the future: the in-process limiter never waits.
    pub fn admit_blocking(
        &self,
        subject: &Subject,
        limits: &Limits,
        cost: u32,
    ) -> Result<Admission, Denied> {
        let quota = Quota::per_minute(limits.requests_per_minute, limits.burst);
        let now = self.clock.now();
        let decide = |record: &Arc<Record>| -> Result<Admission, Denied> {
            let passed = record
                .draw(quota, now, cost)
                .map_err(|refused| match refused {
                    Refused::Wait(nanos) => Denied::Rate {
                        requests_per_minute: limits.requests_per_minute,
                        retry_after: rate::whole_seconds(nanos),
                    },
                    Refused::Never => Denied::OverBurst {
                        requests_per_minute: limits.requests_per_minute,
                        cost,
                        burst: quota.burst(),
                        retry_after: rate::whole_seconds(
                            quota.full_in(record.tat.load(Ordering::Acquire), now),
                        ),
                    },
                })?;
            if !record.try_acquire(limits.concurrent_connections) {
                record.refund(quota, cost);
                return Err(Denied::Concurrency {
                    limit: limits.concurrent_connections,
                });
            }
            Ok(Admission {
                permit: Permit(record.clone()),
                rate: RateStatus {
                    quota: limits.requests_per_minute,
                    remaining: passed.remaining,
                    reset: rate::seconds_up(passed.full_in),
                },
            })
        };
        // The common case takes only the shard's read lock; the first request of a key (or the
        // first after its record was shrunk away) takes the write lock once.
        if let Some(record) = self.records.get(subject) {
            return decide(&record);
        }
        let record = self.records.entry(subject.clone()).or_default();
        decide(&record)
    }
}

impl Limiter for LocalLimiter {
    async fn admit(
        &self,
        subject: &Subject,
        limits: &Limits,
        cost: u32,
    ) -> Result<Admission, Denied> {
        self.admit_blocking(subject, limits, cost)
    }

    fn inflight(&self, subject: &Subject) -> u32 {
        self.records
            .get(subject)
            .map_or(0, |r| r.inflight.load(Ordering::Acquire))
    }

    fn each_busy(&self, f: &mut dyn FnMut(&Subject, u32)) {
        for entry in self.records.iter() {
            let n = entry.value().inflight.load(Ordering::Acquire);
            if n > 0 {
                f(entry.key(), n);
            }
        }
    }

    fn retain(&self, keep: &dyn Fn(&Subject) -> bool) {
        self.records.retain(|subject, _| keep(subject));
    }

    fn shrink(&self) {
        let now = self.clock.now();
        self.records.retain(|_, record| !record.idle(now));
        self.records.shrink_to_fit();
    }
}

#[cfg(test)]
mod tests;
