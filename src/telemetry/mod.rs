//! Metrics and logs.

pub mod inflight;
pub mod metrics;
