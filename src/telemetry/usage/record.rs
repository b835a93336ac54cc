//! One key's usage: rolling request counts, refusal and byte totals, the tools it has called,
//! and its anomaly detector.
//!
//! Invariants:
//! - Fixed size (about 1.4 KB), allocated once when the key enters the policy or first calls.
//! - [`KeyUsage::count`] is atomics only: no lock, no allocation. The detector's lock is taken
//!   by the once-a-second tick and by readers, never by a request.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use super::super::anomaly::{Change, Detector, WARMUP_MINUTES};
use super::super::{Finished, Outcome};
use super::window::Window;

pub const SECOND: u64 = 1_000_000_000;
pub const MINUTE: u64 = 60 * SECOND;
pub const HOUR: u64 = 60 * MINUTE;

/// Tools tracked per key: one bit each. The `tool` label names at most ~1000 tools (the
/// request path's cap) plus `other`, so 1024 bits (128 bytes) hold them all.
pub const TOOL_BITS: usize = 1024;

pub struct KeyUsage {
    /// Clock nanoseconds when the record was made: the warm-up counts from here.
    born: u64,
    /// One-second slots: the last minute.
    minute: Window<60>,
    /// One-minute slots: the last hour, and the per-minute counts the baseline folds.
    hour: Window<60>,
    /// One-hour slots: the last day.
    day: Window<24>,
    denied: AtomicU64,
    rate_limited: AtomicU64,
    concurrency_limited: AtomicU64,
    truncated: AtomicU64,
    bytes_out: AtomicU64,
    /// Clock nanoseconds of the last request, plus one (0: never).
    last_seen: AtomicU64,
    tools: [AtomicU64; TOOL_BITS / 64],
    new_tools: AtomicU64,
    detector: Mutex<Detector>,
}

/// A key's numbers at one instant.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Snapshot {
    pub minute: u64,
    pub hour: u64,
    pub day: u64,
    pub denied: u64,
    pub rate_limited: u64,
    pub concurrency_limited: u64,
    pub truncated: u64,
    pub bytes_out: u64,
    /// Nanoseconds since the last request, if there was one.
    pub idle_for: Option<u64>,
    pub anomaly_score: f64,
    pub new_tools: u64,
}

impl KeyUsage {
    pub fn new(now: u64) -> Self {
        Self {
            born: now,
            minute: Window::default(),
            hour: Window::default(),
            day: Window::default(),
            denied: AtomicU64::new(0),
            rate_limited: AtomicU64::new(0),
            concurrency_limited: AtomicU64::new(0),
            truncated: AtomicU64::new(0),
            bytes_out: AtomicU64::new(0),
            last_seen: AtomicU64::new(0),
            tools: std::array::from_fn(|_| AtomicU64::new(0)),
            new_tools: AtomicU64::new(0),
            detector: Mutex::new(Detector::new(now / MINUTE)),
        }
    }

    /// Counts one finished request of this key at `now`; `tool` is the tool's bit, when the
    /// request called one. True when the key called that tool for the first time after its
    /// warm-up.
    pub fn count(&self, request: &Finished<'_>, now: u64, tool: Option<usize>) -> bool {
        let second = now / SECOND;
        self.minute.add(second);
        self.hour.add(second / 60);
        self.day.add(second / 3600);
        let counter = match request.outcome {
            Outcome::Denied => Some(&self.denied),
            Outcome::RateLimited { concurrency: false } => Some(&self.rate_limited),
            Outcome::RateLimited { concurrency: true } => Some(&self.concurrency_limited),
            _ => None,
        };
        if let Some(counter) = counter {
            counter.fetch_add(1, Ordering::Relaxed);
        }
        if request.truncated {
            self.truncated.fetch_add(1, Ordering::Relaxed);
        }
        if request.bytes_out > 0 {
            self.bytes_out
                .fetch_add(request.bytes_out as u64, Ordering::Relaxed);
        }
        // A plain store, not fetch_max: two requests finishing in the same microsecond may
        // leave the earlier one's time, which no reader can tell apart.
        self.last_seen.store(now + 1, Ordering::Relaxed);
        let Some(bit) = tool else {
            return false;
        };
        let (word, mask) = (&self.tools[bit / 64], 1u64 << (bit % 64));
        // A load first: the tool is almost always known, and a read keeps the line shared.
        if word.load(Ordering::Relaxed) & mask != 0 {
            return false;
        }
        let first_call = word.fetch_or(mask, Ordering::Relaxed) & mask == 0;
        let flagged = first_call && self.warm(now);
        if flagged {
            self.new_tools.fetch_add(1, Ordering::Relaxed);
        }
        flagged
    }

    /// The warm-up is over (the same hour the anomaly score waits).
    pub fn warm(&self, now: u64) -> bool {
        now.saturating_sub(self.born) >= WARMUP_MINUTES * MINUTE
    }

    /// Folds completed minutes into the baseline and scores the last minute.
    pub fn tick(&self, now: u64) -> Option<Change> {
        let second = now / SECOND;
        let current = self.minute.sum(second);
        self.detector.lock().expect("not poisoned").update(
            second / 60,
            |m| self.hour.at(m),
            current,
        )
    }

    pub fn snapshot(&self, now: u64) -> Snapshot {
        let second = now / SECOND;
        let last = self.last_seen.load(Ordering::Relaxed);
        Snapshot {
            minute: self.minute.sum(second),
            hour: self.hour.sum(second / 60),
            day: self.day.sum(second / 3600),
            denied: self.denied.load(Ordering::Relaxed),
            rate_limited: self.rate_limited.load(Ordering::Relaxed),
            concurrency_limited: self.concurrency_limited.load(Ordering::Relaxed),
            truncated: self.truncated.load(Ordering::Relaxed),
            bytes_out: self.bytes_out.load(Ordering::Relaxed),
            idle_for: (last > 0).then(|| now.saturating_sub(last - 1)),
            anomaly_score: self.score(),
            new_tools: self.new_tools.load(Ordering::Relaxed),
        }
    }

    /// The score as of the last tick.
    pub fn score(&self) -> f64 {
        self.detector.lock().expect("not poisoned").score()
    }
}
