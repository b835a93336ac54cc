//! A budget of failed authentications per client address, so keys cannot be guessed at line
//! rate: 30 failures a minute (burst 30) per IPv4 address or IPv6 /64. Once an address has
//! spent it, its requests are answered 429 *before* their credential is looked at, until the
//! budget refills (one failure back every 2 s) — otherwise a right guess would still pass.
//!
//! Invariants:
//! - Only failures spend the budget; a client with a valid key is never slowed by its own
//!   traffic. A request without any credential is not a guess and spends nothing (MCP clients
//!   start that way to discover how to authenticate).
//! - Memory is bounded: at most [`MAX_ADDRESSES`] addresses are tracked one by one; failures
//!   from further addresses share one bucket, so a botnet gets one budget between them rather
//!   than growing the map. Full buckets are dropped by [`AuthFailures::shrink`].

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use dashmap::DashMap;

use super::Clock;
use super::rate::{self, Quota, Refused};

/// Failed authentications an address may make per minute.
pub const FAILURES_PER_MINUTE: u32 = 30;
/// Addresses tracked one by one.
pub const MAX_ADDRESSES: usize = 65_536;

/// Where failures are counted: an IPv4 address, an IPv6 /64 (one host usually holds a whole
/// /64), or the shared bucket once the map is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Source {
    V4(u32),
    V6Prefix(u64),
    Overflow,
}

impl From<IpAddr> for Source {
    fn from(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(v4) => Source::V4(v4.to_bits()),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Source::V4(v4.to_bits()),
                None => Source::V6Prefix((v6.to_bits() >> 64) as u64),
            },
        }
    }
}

#[derive(Debug)]
pub struct AuthFailures {
    buckets: DashMap<Source, AtomicU64>,
    /// No failure since the last shrink left the map empty: the common case, answered
    /// without a lookup.
    quiet: AtomicBool,
    quota: Quota,
    clock: Clock,
}

impl Default for AuthFailures {
    fn default() -> Self {
        Self::new(Clock::monotonic())
    }
}

impl AuthFailures {
    pub fn new(clock: Clock) -> Self {
        Self {
            buckets: DashMap::new(),
            quiet: AtomicBool::new(true),
            quota: Quota::per_minute(FAILURES_PER_MINUTE, FAILURES_PER_MINUTE),
            clock,
        }
    }

    /// Whole seconds until `ip` may try again, when it has spent its budget.
    pub fn blocked(&self, ip: IpAddr) -> Option<u64> {
        if self.quiet.load(Ordering::Acquire) {
            return None;
        }
        let now = self.clock.now();
        let tat = self.buckets.get(&self.source(ip))?.load(Ordering::Acquire);
        match self.quota.draw(tat, now, 1) {
            Ok(_) => None,
            Err(refused) => Some(wait(refused)),
        }
    }

    /// Spends one failure of `ip`'s budget; says how long to wait when that was the last.
    pub fn record(&self, ip: IpAddr) -> Option<u64> {
        let now = self.clock.now();
        let source = self.source(ip);
        // The entry (and the shard's write lock) is held until the end, so `shrink` cannot
        // drop it in between; `quiet` is cleared only once the entry is in the map.
        let bucket = self.buckets.entry(source).or_default();
        let mut tat = bucket.load(Ordering::Acquire);
        let spent = loop {
            let next = match self.quota.draw(tat, now, 1) {
                Ok((next, _)) => next,
                Err(refused) => break Some(wait(refused)),
            };
            match bucket.compare_exchange_weak(tat, next, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => break None,
                Err(current) => tat = current,
            }
        };
        self.quiet.store(false, Ordering::Release);
        spent
    }

    /// Drops the buckets that are full again.
    pub fn shrink(&self) {
        let now = self.clock.now();
        self.buckets
            .retain(|_, tat| tat.load(Ordering::Acquire) > now);
        self.buckets.shrink_to_fit();
        // A failure recorded after this check clears it again (see `record`).
        if self.buckets.is_empty() {
            self.quiet.store(true, Ordering::Release);
        }
    }

    /// Addresses tracked (for tests).
    pub fn len(&self) -> usize {
        self.buckets.len()
    }

    pub fn is_empty(&self) -> bool {
        self.buckets.is_empty()
    }

    fn source(&self, ip: IpAddr) -> Source {
        let source = Source::from(ip);
        if self.buckets.len() >= MAX_ADDRESSES && !self.buckets.contains_key(&source) {
            Source::Overflow
        } else {
            source
        }
    }
}

fn wait(refused: Refused) -> u64 {
    match refused {
        Refused::Wait(nanos) => rate::whole_seconds(nanos),
        // A cost of 1 never exceeds a burst of 30.
        Refused::Never => 60,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: u64 = 1_000_000_000;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn an_address_gets_thirty_failures_then_waits() {
        let clock = Clock::manual(SECOND);
        let failures = AuthFailures::new(clock.clone());
        let a = ip("192.0.2.1");
        for _ in 0..FAILURES_PER_MINUTE - 1 {
            assert_eq!(failures.blocked(a), None);
            assert_eq!(failures.record(a), None);
        }
        assert_eq!(
            failures.record(a),
            None,
            "the 30th failure is still within budget"
        );
        assert_eq!(failures.blocked(a), Some(2));
        assert_eq!(failures.record(a), Some(2), "the 31st is over it");
        assert_eq!(
            failures.blocked(ip("192.0.2.2")),
            None,
            "another address is not"
        );
        clock.advance(2 * SECOND);
        assert_eq!(failures.blocked(a), None, "one failure came back after 2 s");
    }

    #[test]
    fn an_ipv6_slash_64_is_one_source_and_mapped_v4_is_v4() {
        let failures = AuthFailures::new(Clock::manual(SECOND));
        for i in 0..FAILURES_PER_MINUTE {
            failures.record(ip(&format!("2001:db8::{i:x}")));
        }
        assert!(failures.blocked(ip("2001:db8::ffff:1")).is_some());
        assert!(failures.blocked(ip("2001:db8:0:1::1")).is_none());
        for _ in 0..FAILURES_PER_MINUTE {
            failures.record(ip("192.0.2.7"));
        }
        assert!(failures.blocked(ip("::ffff:192.0.2.7")).is_some());
    }

    #[test]
    fn full_buckets_are_dropped_and_the_map_is_bounded() {
        let clock = Clock::manual(SECOND);
        let failures = AuthFailures::new(clock.clone());
        failures.record(ip("192.0.2.1"));
        assert_eq!(failures.len(), 1);
        clock.advance(2 * SECOND);
        failures.shrink();
        assert!(failures.is_empty());

        for i in 0..MAX_ADDRESSES as u32 {
            failures.record(IpAddr::V4(i.into()));
        }
        assert_eq!(failures.len(), MAX_ADDRESSES);
        // Further addresses share one bucket.
        for i in 0..FAILURES_PER_MINUTE {
            failures.record(IpAddr::V4((u32::MAX - i).into()));
        }
        assert_eq!(failures.len(), MAX_ADDRESSES + 1);
        assert!(failures.blocked(ip("255.0.0.1")).is_some());
    }
}
