//! One Prometheus registry and typed handles to every metric the gateway exports.
//!
//! Invariant: label values come from the policy (workspace, key id, rule-matched tool names)
//! or from fixed sets (outcome, reason, result, kind), never from raw request input, so a
//! client cannot grow the number of series.

use prometheus::core::Collector;

use super::Finished;
use prometheus::{Encoder, Gauge, IntCounterVec, Opts, Registry, TextEncoder};

pub struct Metrics {
    registry: Registry,
    pub requests: IntCounterVec,
    pub auth_failures: IntCounterVec,
    pub policy_reloads: IntCounterVec,
    pub policy_last_reload_success: Gauge,
    pub upstream_errors: IntCounterVec,
    pub rate_limited: IntCounterVec,
    pub responses_truncated: IntCounterVec,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new();
        let requests = counter_vec(
            &registry,
            "mcpwarden_requests_total",
            "Requests by key, JSON-RPC method, tool and outcome.",
            &["workspace", "key", "method", "tool", "outcome"],
        );
        let auth_failures = counter_vec(
            &registry,
            "mcpwarden_auth_failures_total",
            "Requests refused for want of a valid credential, by reason.",
            &["reason"],
        );
        let policy_reloads = counter_vec(
            &registry,
            "mcpwarden_policy_reloads_total",
            "Policy reloads by result.",
            &["result"],
        );
        let upstream_errors = counter_vec(
            &registry,
            "mcpwarden_upstream_errors_total",
            "Upstream failures by kind.",
            &["kind"],
        );
        let rate_limited = counter_vec(
            &registry,
            "mcpwarden_rate_limited_total",
            "Requests refused with 429 by key and limit (rate, concurrency).",
            &["workspace", "key", "limit"],
        );
        let policy_last_reload_success = Gauge::with_opts(Opts::new(
            "mcpwarden_policy_last_reload_success_timestamp_seconds",
            "When the policy last loaded successfully (Unix seconds).",
        ))
        .expect("valid metric");
        registry
            .register(Box::new(policy_last_reload_success.clone()))
            .expect("registered once");
        let responses_truncated = counter_vec(
            &registry,
            "mcpwarden_responses_truncated_total",
            "Responses the size cap cut or replaced, by key.",
            &["workspace", "key"],
        );
        // Fixed label sets are created up front so every series shows from the start.
        for result in ["success", "failure"] {
            policy_reloads.with_label_values(&[result]);
        }
        for reason in ["missing", "invalid", "expired", "bad_token", "conflict"] {
            auth_failures.with_label_values(&[reason]);
        }
        Self {
            registry,
            requests,
            auth_failures,
            policy_reloads,
            policy_last_reload_success,
            upstream_errors,
            rate_limited,
            responses_truncated,
        }
    }

    /// Counts a finished request.
    pub fn record(&self, request: &Finished<'_>) {
        let (workspace, key) = request
            .identity
            .map_or(("", ""), |i| (i.workspace(), i.key_id()));
        self.requests
            .with_label_values(&[
                workspace,
                key,
                request.method,
                request.tool,
                request.outcome.label(),
            ])
            .inc();
    }

    /// Adds a collector whose values are read at scrape time (gauges over live state).
    pub fn register(&self, collector: Box<dyn Collector>) {
        self.registry.register(collector).expect("registered once");
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut out)
            .expect("text encoding into a Vec cannot fail");
        String::from_utf8(out).expect("the text format is UTF-8")
    }
}

fn counter_vec(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let vec = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric");
    registry
        .register(Box::new(vec.clone()))
        .expect("registered once");
    vec
}
