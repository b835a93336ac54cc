//! A rolling count in fixed memory: `N` slots of one width each (a second, a minute, an hour),
//! each slot one `AtomicU64` holding the slot's epoch (high 32 bits) and its count (low 32).
//!
//! Invariants:
//! - Counting is one compare-and-swap on one word, never a lock and never an allocation; a
//!   slot from an earlier lap of the ring is reset by the same swap that counts into it, so
//!   no count is lost between a reset and an increment.
//! - A count whose epoch is older than the slot's (a thread that read the clock, then waited a
//!   whole lap) goes into the newer slot rather than wiping it: totals stay exact.
//! - [`Window::sum`] covers the current slot and the `N - 1` before it, so "the last minute" of
//!   a ring of 60 one-second slots spans between 59 and 60 seconds.
//!
//! Epochs are slot numbers since the clock's start; 32 bits of seconds last 136 years, and a
//! slot saturates at 2^32 - 1 (4.3 billion requests of one key in one slot).

use std::sync::atomic::{AtomicU64, Ordering};

const COUNT_BITS: u32 = 32;
const COUNT_MASK: u64 = (1 << COUNT_BITS) - 1;

pub struct Window<const N: usize> {
    slots: [AtomicU64; N],
}

impl<const N: usize> Default for Window<N> {
    fn default() -> Self {
        Self {
            slots: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }
}

fn epoch_of(word: u64) -> u64 {
    word >> COUNT_BITS
}

fn count_of(word: u64) -> u64 {
    word & COUNT_MASK
}

impl<const N: usize> Window<N> {
    /// Counts one event in slot `epoch`.
    pub fn add(&self, epoch: u64) {
        let epoch = epoch & COUNT_MASK;
        let slot = &self.slots[(epoch % N as u64) as usize];
        let _ = slot.fetch_update(Ordering::AcqRel, Ordering::Acquire, |word| {
            Some(if epoch_of(word) < epoch {
                (epoch << COUNT_BITS) | 1
            } else if count_of(word) < COUNT_MASK {
                word + 1
            } else {
                word
            })
        });
    }

    /// Events in slot `epoch` and the `N - 1` slots before it.
    pub fn sum(&self, epoch: u64) -> u64 {
        let oldest = epoch.saturating_sub(N as u64 - 1);
        self.slots
            .iter()
            .map(|s| s.load(Ordering::Acquire))
            .filter(|&w| (oldest..=epoch).contains(&epoch_of(w)))
            .map(count_of)
            .sum()
    }

    /// Events in slot `epoch` alone, while the ring still holds it (0 once overwritten).
    pub fn at(&self, epoch: u64) -> u64 {
        let word = self.slots[(epoch % N as u64) as usize].load(Ordering::Acquire);
        if epoch_of(word) == epoch {
            count_of(word)
        } else {
            0
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_within_the_window_and_forgets_what_falls_out() {
        let w = Window::<60>::default();
        for second in 0..60 {
            w.add(second);
        }
        assert_eq!(w.sum(59), 60);
        // Slot 0 falls out at second 60; second 60 reuses its slot.
        w.add(60);
        assert_eq!(w.sum(60), 60);
        assert_eq!(w.at(0), 0);
        assert_eq!(w.at(60), 1);
        assert_eq!(w.sum(60 + 59), 1);
        assert_eq!(w.sum(60 + 60), 0);
    }

    #[test]
    fn an_idle_lap_leaves_nothing_behind() {
        let w = Window::<24>::default();
        for _ in 0..5 {
            w.add(3);
        }
        assert_eq!(w.sum(3), 5);
        assert_eq!(w.sum(3 + 24 * 7), 0);
        w.add(3 + 24 * 7);
        assert_eq!(w.sum(3 + 24 * 7), 1);
    }

    #[test]
    fn a_late_count_goes_into_the_newer_slot_instead_of_wiping_it() {
        let w = Window::<60>::default();
        w.add(70);
        w.add(70);
        w.add(10); // same slot, one lap older
        assert_eq!(w.at(70), 3);
        assert_eq!(w.sum(70), 3);
    }

    #[test]
    fn concurrent_counts_are_exact() {
        let w = std::sync::Arc::new(Window::<60>::default());
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let w = w.clone();
                std::thread::spawn(move || {
                    for i in 0..10_000u64 {
                        w.add(100 + i % 3);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(w.sum(102), 40_000);
    }
}
