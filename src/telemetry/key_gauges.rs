//! Per-key series read when Prometheus scrapes: `mcpwarden_key_usage_anomaly_score`,
//! `mcpwarden_key_new_tools_total`, `mcpwarden_key_created_timestamp_seconds` and
//! `mcpwarden_key_expiry_timestamp_seconds`, all `{workspace,key}`.
//!
//! Invariants: the request path does nothing for these (they come from the policy and from
//! [`Usage`]); every key of the policy in force has a score and a new-tools series (0 when
//! idle), the timestamps only where the policy gives the date; a key that leaves the policy
//! loses its series with the next scrape.

use std::sync::Arc;

use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{GaugeVec, IntCounterVec, Opts};

use super::usage::Usage;
use crate::policy::store::Store;

const LABELS: &[&str] = &["workspace", "key"];

pub struct KeyGauges {
    store: Arc<Store>,
    usage: Arc<Usage>,
    /// Describe the families; fresh vectors are filled at each scrape.
    templates: Families,
}

struct Families {
    score: GaugeVec,
    new_tools: IntCounterVec,
    created: GaugeVec,
    expiry: GaugeVec,
}

fn families() -> Families {
    let gauge = |name: &str, help: &str| {
        GaugeVec::new(Opts::new(name, help), LABELS).expect("valid metric")
    };
    Families {
        score: gauge(
            "mcpwarden_key_usage_anomaly_score",
            "Requests in the last minute against the key's own baseline, in deviations; above 3 is a spike.",
        ),
        new_tools: IntCounterVec::new(
            Opts::new(
                "mcpwarden_key_new_tools_total",
                "Tools a key called for the first time after its warm-up hour.",
            ),
            LABELS,
        )
        .expect("valid metric"),
        created: gauge(
            "mcpwarden_key_created_timestamp_seconds",
            "When the key was created (the policy's `created`, Unix seconds).",
        ),
        expiry: gauge(
            "mcpwarden_key_expiry_timestamp_seconds",
            "When the key expires (the policy's `expires`, Unix seconds).",
        ),
    }
}

impl KeyGauges {
    pub fn new(store: Arc<Store>, usage: Arc<Usage>) -> Self {
        Self {
            store,
            usage,
            templates: families(),
        }
    }
}

impl Collector for KeyGauges {
    fn desc(&self) -> Vec<&Desc> {
        let t = &self.templates;
        [
            t.score.desc(),
            t.new_tools.desc(),
            t.created.desc(),
            t.expiry.desc(),
        ]
        .concat()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let f = families();
        for key in self.store.current().keys.values() {
            let labels = [&*key.workspace.name, &*key.id];
            let usage = self.usage.snapshot(labels[0], labels[1]);
            f.score.with_label_values(&labels).set(usage.anomaly_score);
            f.new_tools
                .with_label_values(&labels)
                .inc_by(usage.new_tools);
            if let Some(at) = key.created {
                f.created.with_label_values(&labels).set(at as f64);
            }
            if let Some(at) = key.expires {
                f.expiry.with_label_values(&labels).set(at as f64);
            }
        }
        for (workspace, client) in self.usage.oauth_clients() {
            let labels = [&*workspace, &*client];
            let usage = self.usage.snapshot(labels[0], labels[1]);
            f.score.with_label_values(&labels).set(usage.anomaly_score);
            f.new_tools
                .with_label_values(&labels)
                .inc_by(usage.new_tools);
        }
        [
            f.score.collect(),
            f.new_tools.collect(),
            f.created.collect(),
            f.expiry.collect(),
        ]
        .concat()
    }
}
