//! The generic cell rate algorithm (GCRA) as plain arithmetic over one number per bucket: its
//! theoretical arrival time (TAT), in nanoseconds on the limiter's clock.
//!
//! A quota of `R` requests per minute with burst `B` emits one token every `T = 60 s / R` and
//! holds at most `B`. A draw of `n` tokens at `now` passes when, after it, the bucket would not
//! be more than `B` tokens in debt: `max(tat, now) + n·T ≤ now + B·T`. These are the semantics
//! of `governor` (the same algorithm): from idle, exactly `B` requests pass at once, then one
//! every `T`; in any window of length `t` at most `B − 1 + ⌈R·t⌉` pass (199 in a minute for
//! 100/100).
//!
//! Invariants:
//! - A refused draw changes nothing; the state only ever moves forward by what passed.
//! - `Retry-After` is the whole second, rounded up and at least 1, at which the same draw
//!   passes (if nothing else draws meanwhile).
//! - A TAT at or before `now` means a full bucket, the same as no state at all, so state for a
//!   full bucket can be dropped without changing any answer.
//! - The arithmetic saturates: absurd quotas (4 billion per minute) cannot overflow.

/// Nanoseconds in a minute: the window `requests_per_minute` is counted over.
pub const MINUTE: u64 = 60_000_000_000;
const SECOND: u64 = 1_000_000_000;

/// A resolved `requests_per_minute` and `burst`, as GCRA parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    /// Nanoseconds per token (rounded up, so rounding never grants more than the rate).
    interval: u64,
    burst: u32,
}

/// A draw that passed: what the `RateLimit` header reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Passed {
    /// Whole tokens left after this draw.
    pub remaining: u32,
    /// Nanoseconds until the bucket is full again.
    pub full_in: u64,
}

/// A draw that was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// The draw passes this many nanoseconds from now.
    Wait(u64),
    /// The draw costs more than the burst: no wait makes it pass.
    Never,
}

impl Quota {
    /// `requests_per_minute` and `burst`, both at least 1 (the policy compiler sees to it).
    pub fn per_minute(requests_per_minute: u32, burst: u32) -> Self {
        Self {
            interval: MINUTE.div_ceil(u64::from(requests_per_minute.max(1))),
            burst: burst.max(1),
        }
    }

    pub fn burst(&self) -> u32 {
        self.burst
    }

    /// Nanoseconds one token takes to come back.
    pub fn interval(&self) -> u64 {
        self.interval
    }

    /// Nanoseconds a whole burst takes to come back.
    fn capacity(&self) -> u64 {
        self.interval.saturating_mul(u64::from(self.burst))
    }

    /// Draws `cost` tokens at `now` from a bucket whose state is `tat`: the new state and what
    /// is left, or why not (the state then stays `tat`).
    pub fn draw(&self, tat: u64, now: u64, cost: u32) -> Result<(u64, Passed), Refused> {
        if cost > self.burst {
            return Err(Refused::Never);
        }
        let new_tat = tat
            .max(now)
            .saturating_add(self.interval.saturating_mul(u64::from(cost)));
        let limit = now.saturating_add(self.capacity());
        if new_tat > limit {
            return Err(Refused::Wait(new_tat - limit));
        }
        let debt = new_tat - now;
        let remaining = (limit - new_tat) / self.interval;
        Ok((
            new_tat,
            Passed {
                remaining: u32::try_from(remaining).unwrap_or(u32::MAX),
                full_in: debt,
            },
        ))
    }

    /// Gives back what a draw of `cost` took (it passed, but the request was then refused for
    /// another reason, so it must draw nothing).
    pub fn refund(&self, tat: u64, cost: u32) -> u64 {
        tat.saturating_sub(self.interval.saturating_mul(u64::from(cost)))
    }

    /// Nanoseconds until a bucket in state `tat` is full.
    pub fn full_in(&self, tat: u64, now: u64) -> u64 {
        tat.saturating_sub(now)
    }
}

/// Nanoseconds as the whole seconds a client is told to wait: rounded up, at least 1.
pub fn whole_seconds(nanos: u64) -> u64 {
    nanos.div_ceil(SECOND).max(1)
}

/// Nanoseconds as whole seconds, rounded up, 0 allowed (`RateLimit`'s `t` of a full bucket).
pub fn seconds_up(nanos: u64) -> u64 {
    nanos.div_ceil(SECOND)
}

#[cfg(test)]
mod tests;
