//! `mcpwarden_inflight_requests{workspace,key}`, read from the limiter when Prometheus scrapes.
//!
//! Invariants: the request path does nothing for this gauge (the limiter's own counters are
//! the truth); every key of the policy in force has a series, 0 when idle, and a key that
//! leaves the policy loses its series with the next scrape. An OAuth client has a series
//! while it has something in flight.

use std::sync::Arc;

use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{IntGaugeVec, Opts};

use crate::limits::{Limiter, Subject};
use crate::policy::is_oauth_id;
use crate::policy::store::Store;

pub struct Inflight<L> {
    store: Arc<Store>,
    limiter: Arc<L>,
    /// Describes the family; a fresh vector is filled at each scrape.
    template: IntGaugeVec,
}

fn gauge() -> IntGaugeVec {
    IntGaugeVec::new(
        Opts::new(
            "mcpwarden_inflight_requests",
            "Requests and streams in flight, by key.",
        ),
        &["workspace", "key"],
    )
    .expect("valid metric")
}

impl<L: Limiter> Inflight<L> {
    pub fn new(store: Arc<Store>, limiter: Arc<L>) -> Self {
        Self {
            store,
            limiter,
            template: gauge(),
        }
    }
}

impl<L: Limiter> Collector for Inflight<L> {
    fn desc(&self) -> Vec<&Desc> {
        self.template.desc()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let values = gauge();
        for key in self.store.current().keys.values() {
            let n = self.limiter.inflight(&Subject::of_key(key));
            values
                .with_label_values(&[&*key.workspace.name, &*key.id])
                .set(i64::from(n));
        }
        // OAuth clients are not listed in the policy: those with something in flight.
        self.limiter.each_busy(&mut |subject, n| {
            if is_oauth_id(&subject.key) {
                values
                    .with_label_values(&[&*subject.workspace, &*subject.key])
                    .set(i64::from(n));
            }
        });
        values.collect()
    }
}
