//! The per-key and per-workspace metric families, their names, help texts and buckets: what
//! `/metrics` shows of traffic.
//!
//! Invariant: every family here is labelled only by policy names (workspace, key id, rule-
//! matched method and tool) and fixed sets (outcome, limit), so its series are bounded by the
//! policy, never by what clients send.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use prometheus::{Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, Opts};

/// The `outcome` label values, in the order of [`super::key_series::Row`]'s counters.
pub const OUTCOMES: [&str; 5] = [
    "ok",
    "denied",
    "rate_limited",
    "too_large",
    "upstream_error",
];

/// The `limit` label values of `mcpwarden_rate_limited_total`, by `concurrency as usize`.
pub const LIMITS: [&str; 2] = ["rate", "concurrency"];

/// Request durations in seconds: from a 1 ms answer to a minute-long tool call. Longer ones
/// (SSE streams held open for hours) all land in `+Inf`, which is what a stream is.
const DURATION_BUCKETS: [f64; 15] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

/// The label sets of a request: one counter per outcome, and its workspace's duration
/// histogram for its method.
#[derive(Debug)]
pub struct Row {
    pub outcomes: [IntCounter; 5],
    pub duration: Histogram,
}

pub struct Families {
    pub requests: IntCounterVec,
    pub duration: HistogramVec,
    pub response_bytes: IntCounterVec,
    pub truncated: IntCounterVec,
    pub rate_limited: IntCounterVec,
    /// Which `(workspace, method)` histograms exist, so a workspace that leaves the policy
    /// loses all of its series (the crate cannot remove by partial label match).
    histograms: Mutex<HashMap<Box<str>, HashSet<Box<str>>>>,
    /// Counts for requests that end after their key left the policy: registered nowhere.
    pub detached: Arc<Row>,
}

impl Families {
    pub fn new() -> Self {
        let counters = |name: &str, help: &str, labels: &[&str]| {
            IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric")
        };
        let duration = HistogramVec::new(
            HistogramOpts::new(
                "mcpwarden_request_duration_seconds",
                "Time from a request's arrival to the end of its response, by workspace and method.",
            )
            .buckets(DURATION_BUCKETS.to_vec()),
            &["workspace", "method"],
        )
        .expect("valid metric");
        let detached = Arc::new(Row {
            outcomes: std::array::from_fn(|_| {
                IntCounter::new("detached", "counts nowhere").expect("valid metric")
            }),
            duration: Histogram::with_opts(HistogramOpts::new("detached", "counts nowhere"))
                .expect("valid metric"),
        });
        Self {
            requests: counters(
                "mcpwarden_requests_total",
                "Requests by key, JSON-RPC method, tool and outcome.",
                &["workspace", "key", "method", "tool", "outcome"],
            ),
            duration,
            response_bytes: counters(
                "mcpwarden_response_bytes_total",
                "Response body bytes sent to clients, by key.",
                &["workspace", "key"],
            ),
            truncated: counters(
                "mcpwarden_responses_truncated_total",
                "Responses the size cap cut or replaced, by key.",
                &["workspace", "key"],
            ),
            rate_limited: counters(
                "mcpwarden_rate_limited_total",
                "Requests refused with 429 by key and limit (rate, concurrency).",
                &["workspace", "key", "limit"],
            ),
            histograms: Mutex::default(),
            detached,
        }
    }

    /// Every family, for registering.
    pub fn collectors(&self) -> [Box<dyn prometheus::core::Collector>; 5] {
        [
            Box::new(self.requests.clone()),
            Box::new(self.duration.clone()),
            Box::new(self.response_bytes.clone()),
            Box::new(self.truncated.clone()),
            Box::new(self.rate_limited.clone()),
        ]
    }

    /// The series of one label set, created at zero (formatting and hashing happen here,
    /// once per key, method and tool, never per request).
    pub fn row(&self, workspace: &str, key: &str, method: &str, tool: &str) -> Row {
        let outcomes = OUTCOMES.map(|outcome| {
            self.requests
                .with_label_values(&[workspace, key, method, tool, outcome])
        });
        self.histograms
            .lock()
            .expect("not poisoned")
            .entry(workspace.into())
            .or_default()
            .insert(method.into());
        Row {
            outcomes,
            duration: self.duration.with_label_values(&[workspace, method]),
        }
    }

    /// Removes the duration histograms of every workspace `keep` refuses.
    pub fn retain_workspaces(&self, keep: impl Fn(&str) -> bool) {
        let mut histograms = self.histograms.lock().expect("not poisoned");
        histograms.retain(|workspace, methods| {
            if keep(workspace) {
                return true;
            }
            for method in methods.iter() {
                let _ = self
                    .duration
                    .remove_label_values(&[&**workspace, &**method]);
            }
            false
        });
    }
}
