//! The anomaly score of a key: its requests in the last minute against its own baseline, an
//! exponentially weighted mean and variance of its per-minute counts over about an hour.
//!
//! `score = max(0, (last minute − mean) / deviation)`, where the deviation is the larger of the
//! baseline's standard deviation, Poisson noise (√mean) and one request: a perfectly even key
//! would otherwise have a deviation of 0, and one extra request would look infinite. Around 0
//! is usual; above [`SPIKE`] is a spike. A minute with fewer than [`MIN_SPIKE_REQUESTS`]
//! requests scores at most [`SPIKE`]: against a deviation of one request, a quiet key waking
//! up (4 requests after an idle hour) would otherwise be a spike.
//!
//! Invariants:
//! - Plain arithmetic over counts and minute numbers: no clock, no I/O. The caller feeds each
//!   completed minute once, in order, and asks for the score with the current count.
//! - Until [`WARMUP_MINUTES`] minutes are folded in, the score is 0: a new key (or any key
//!   after a restart) is not flagged for existing.
//! - A spike is reported once, when the score first passes [`SPIKE`]; the next is reported
//!   only after the score has come back to [`CALM`] (hysteresis), so a score hovering around 3
//!   cannot flood the log.
//! - Once warm, a minute beyond the spike threshold enters the baseline clamped to it, so a
//!   sustained spike (a leaked key at work) keeps scoring high for tens of minutes instead of
//!   teaching the baseline in one.

/// Above this, a key's use is a spike worth a look (about three deviations above its usual).
pub const SPIKE: f64 = 3.0;
/// Fewest requests in a minute that can be a spike, whatever the key's usual: a handful of
/// requests is not worth a look.
pub const MIN_SPIKE_REQUESTS: u64 = 10;
/// A spike is over once the score is back at or below this.
pub const CALM: f64 = 1.0;
/// Minutes of history before a key is scored, and before a new tool is flagged.
pub const WARMUP_MINUTES: u64 = 60;
/// Weight of each new minute once warm: a time constant of an hour.
const ALPHA: f64 = 1.0 / 60.0;
/// Minutes folded at most after a gap (a day); older ones would weigh nothing anyway.
const MAX_FOLD: u64 = 24 * 60;

/// The exponentially weighted mean and variance of a key's per-minute request counts.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Baseline {
    mean: f64,
    var: f64,
    /// Minutes folded in so far.
    minutes: u64,
}

impl Baseline {
    pub fn warm(&self) -> bool {
        self.minutes >= WARMUP_MINUTES
    }

    pub fn mean(&self) -> f64 {
        self.mean
    }

    /// The deviation a score divides by (see the module doc).
    pub fn deviation(&self) -> f64 {
        self.var.sqrt().max(self.mean.sqrt()).max(1.0)
    }

    /// Folds in one completed minute's count. The first minutes are averaged equally (weight
    /// 1/n), later ones with weight [`ALPHA`], so the warm-up hour is a plain average.
    pub fn observe(&mut self, count: u64) {
        let mut x = count as f64;
        if self.warm() {
            x = x.min(self.mean + SPIKE * self.deviation());
        }
        self.minutes += 1;
        let weight = (1.0 / self.minutes as f64).max(ALPHA);
        let diff = x - self.mean;
        let step = weight * diff;
        self.mean += step;
        self.var = (1.0 - weight) * (self.var + diff * step);
    }

    /// How far `current` (requests in the last minute) is above the usual, in deviations; 0
    /// while warming up or when below the mean, at most [`SPIKE`] below
    /// [`MIN_SPIKE_REQUESTS`].
    pub fn score(&self, current: u64) -> f64 {
        if !self.warm() {
            return 0.0;
        }
        let score = ((current as f64 - self.mean) / self.deviation()).max(0.0);
        if current < MIN_SPIKE_REQUESTS {
            score.min(SPIKE)
        } else {
            score
        }
    }
}

/// What changed at an update.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Change {
    /// The score passed [`SPIKE`].
    Spike {
        score: f64,
        /// Requests in the last minute.
        current: u64,
        /// The baseline's mean, requests a minute.
        usual: f64,
    },
    /// The score came back to [`CALM`] after a spike.
    Calm,
}

/// One key's baseline, its last score and whether a spike is under way.
#[derive(Debug, Clone)]
pub struct Detector {
    baseline: Baseline,
    /// The last minute folded in (the minute the key's record was made, at first: a partial
    /// minute is never folded).
    folded: u64,
    spiking: bool,
    score: f64,
}

impl Detector {
    /// A detector for a key first seen during minute `minute`.
    pub fn new(minute: u64) -> Self {
        Self {
            baseline: Baseline::default(),
            folded: minute,
            spiking: false,
            score: 0.0,
        }
    }

    pub fn score(&self) -> f64 {
        self.score
    }

    pub fn baseline(&self) -> &Baseline {
        &self.baseline
    }

    /// Folds every minute completed before `minute` (`count_at` gives a minute's count), then
    /// scores `current`, the requests in the last minute.
    pub fn update(
        &mut self,
        minute: u64,
        count_at: impl Fn(u64) -> u64,
        current: u64,
    ) -> Option<Change> {
        let first = (self.folded + 1).max(minute.saturating_sub(MAX_FOLD));
        for m in first..minute {
            self.baseline.observe(count_at(m));
        }
        self.folded = self.folded.max(minute.saturating_sub(1));
        self.score = self.baseline.score(current);
        if !self.spiking && self.score > SPIKE {
            self.spiking = true;
            Some(Change::Spike {
                score: self.score,
                current,
                usual: self.baseline.mean(),
            })
        } else if self.spiking && self.score <= CALM {
            self.spiking = false;
            Some(Change::Calm)
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests;
