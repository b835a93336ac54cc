//! One Prometheus registry and typed handles to every metric the gateway exports
//! (`docs/metrics.md` lists them).
//!
//! Invariants: label values come from the policy (workspace, key id, rule-matched method and
//! tool names) or from fixed sets (outcome, reason, result, kind, limit), never from raw
//! request input, so a client cannot grow the number of series; requests without a valid
//! identity are counted with empty `workspace` and `key`. Per-key handles are resolved when a
//! policy is adopted, before it is put in force, and the series of a key that leaves the
//! policy are removed then. OAuth clients, which the policy does not list, get theirs on
//! their first request (bounded by [`super::MAX_OAUTH_CLIENTS`]) and keep them while the
//! policy takes tokens for their workspace.

mod families;
mod key_series;
#[cfg(test)]
mod tests;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use prometheus::core::Collector;
use prometheus::{Encoder, Gauge, IntCounterVec, Opts, Registry, TextEncoder};

use super::Finished;
use crate::policy::{Key, Policy};
use families::Families;
pub use key_series::KeySeries;

/// Key series by (workspace, key id).
type ByName = HashMap<(Arc<str>, Arc<str>), Arc<KeySeries>>;

pub struct Metrics {
    registry: Registry,
    families: Families,
    /// Requests without a valid identity.
    anonymous: KeySeries,
    /// The keys of the adopted policy.
    keys: Mutex<ByName>,
    /// OAuth clients, made on first use (see [`super::MAX_OAUTH_CLIENTS`]).
    clients: Mutex<ByName>,
    pub auth_failures: IntCounterVec,
    pub policy_reloads: IntCounterVec,
    pub policy_last_reload_success: Gauge,
    pub upstream_errors: IntCounterVec,
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
        let families = Families::new();
        for collector in families.collectors() {
            registry.register(collector).expect("registered once");
        }
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
        let policy_last_reload_success = Gauge::with_opts(Opts::new(
            "mcpwarden_policy_last_reload_success_timestamp_seconds",
            "When the policy last loaded successfully (Unix seconds).",
        ))
        .expect("valid metric");
        registry
            .register(Box::new(policy_last_reload_success.clone()))
            .expect("registered once");
        // Fixed label sets are created up front so every series shows from the start (and
        // `rate()` over them in an alert sees the first increase).
        for result in ["success", "failure"] {
            policy_reloads.with_label_values(&[result]);
        }
        for reason in ["missing", "invalid", "expired", "bad_token", "conflict"] {
            auth_failures.with_label_values(&[reason]);
        }
        for kind in ["connect", "timeout", "reset", "status_5xx"] {
            upstream_errors.with_label_values(&[kind]);
        }
        let anonymous = KeySeries::anonymous(&families);
        Self {
            registry,
            families,
            anonymous,
            keys: Mutex::default(),
            clients: Mutex::default(),
            auth_failures,
            policy_reloads,
            policy_last_reload_success,
            upstream_errors,
        }
    }

    /// Makes `policy` the one whose keys are counted: every key gets its handles (a key
    /// already known by workspace and id keeps its series and counts), and the series of keys
    /// and workspaces no longer in it are removed. Call it before the policy is put in force,
    /// so no request of it finds its key without handles. A policy is adopted by one registry.
    pub fn adopt(&self, policy: &Policy) {
        let mut keys = self.keys.lock().expect("not poisoned");
        let mut next = HashMap::with_capacity(policy.keys.len());
        for key in policy.keys.values() {
            let name = (key.workspace.name.clone(), key.id.clone());
            let series = keys
                .remove(&name)
                .unwrap_or_else(|| Arc::new(KeySeries::new(&self.families, &name.0, &name.1)));
            // Already set only when this very policy is adopted twice: same handles.
            let _ = key.metrics.set(series.clone());
            next.insert(name, series);
        }
        for gone in keys.values() {
            gone.retire(&self.families);
        }
        *keys = next;
        self.clients
            .lock()
            .expect("not poisoned")
            .retain(|(workspace, _), series| {
                let kept = policy.admits_clients_of(workspace);
                if !kept {
                    series.retire(&self.families);
                }
                kept
            });
        let workspaces: HashSet<&str> = policy.workspaces.iter().map(|w| &*w.name).collect();
        // Retired keys first, then their workspaces' histograms: a request still in flight
        // cannot bring a series back in between (see KeySeries::retire).
        self.families
            .retain_workspaces(|w| w.is_empty() || workspaces.contains(w));
    }

    /// Counts a finished request: `mcpwarden_requests_total`, `…_request_duration_seconds`,
    /// `…_response_bytes_total`, `…_rate_limited_total` and `…_responses_truncated_total`.
    pub fn record(&self, request: &Finished<'_>) {
        let series = match request.identity {
            None => &self.anonymous,
            Some(identity) => match identity.key().metrics.get() {
                Some(series) => series,
                None if identity.is_oauth() => &self.client_series(identity.key()),
                // A policy this registry never adopted (unit tests, `check`): not counted.
                None => return,
            },
        };
        series.count(request, &self.families);
    }

    /// The series of an OAuth client, made on its first request and then remembered in its
    /// identity so the next requests look nothing up.
    fn client_series(&self, key: &Key) -> Arc<KeySeries> {
        let mut clients = self.clients.lock().expect("not poisoned");
        let name = (key.workspace.name.clone(), key.id.clone());
        let series = match clients.get(&name) {
            // A client met before, under an earlier policy's identity.
            Some(series) => series.clone(),
            None => {
                let tracked = clients.len();
                let (workspace, id) = super::client_label((&name.0, &name.1), || tracked);
                clients
                    .entry((workspace.into(), id.into()))
                    .or_insert_with(|| Arc::new(KeySeries::new(&self.families, workspace, id)))
                    .clone()
            }
        };
        let _ = key.metrics.set(series.clone());
        series
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
