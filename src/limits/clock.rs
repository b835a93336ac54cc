//! The limiters' time: nanoseconds since the clock was made, monotonic.
//!
//! Invariant: limiters never read the system time themselves; tests hand them a
//! [`Clock::manual`] clock and move it, so limit tests are exact and never sleep.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

#[derive(Debug, Clone)]
pub enum Clock {
    Monotonic(Instant),
    /// Shared with the test that moves it.
    Manual(Arc<AtomicU64>),
}

impl Clock {
    pub fn monotonic() -> Self {
        Clock::Monotonic(Instant::now())
    }

    /// A clock at `start` nanoseconds that moves only when told to.
    pub fn manual(start: u64) -> Self {
        Clock::Manual(Arc::new(AtomicU64::new(start)))
    }

    pub fn now(&self) -> u64 {
        match self {
            // 584 years of nanoseconds fit in a u64.
            Clock::Monotonic(start) => start.elapsed().as_nanos() as u64,
            Clock::Manual(now) => now.load(Ordering::Acquire),
        }
    }

    /// Moves a manual clock forward (no effect on a monotonic one).
    pub fn advance(&self, nanos: u64) {
        if let Clock::Manual(now) = self {
            now.fetch_add(nanos, Ordering::AcqRel);
        }
    }
}
