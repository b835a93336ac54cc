//! One key's metric handles: resolved once, then counting a request is a map lookup on two
//! short strings and a few atomic adds — no formatting, no allocation, no lock.
//!
//! Invariants: the rows (one per method and tool the key has used) only grow, by copy-on-
//! write under `grow`, so readers never wait; once the key is retired (it left the policy) its
//! series are gone from the registry and stay gone, even for requests still in flight.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use ahash::RandomState;
use arc_swap::ArcSwap;
use prometheus::IntCounter;

use super::families::{Families, LIMITS, OUTCOMES, Row};
use crate::telemetry::{Finished, Outcome};

/// Rows (method and tool pairs with series of their own) one key may have; later new pairs
/// share the `other`/`other` row. Ordinary use is a few dozen.
pub const MAX_ROWS: usize = 256;
const OTHER: &str = "other";

/// Method → tool → row.
type Rows = HashMap<Box<str>, HashMap<Box<str>, Arc<Row>, RandomState>, RandomState>;

pub struct KeySeries {
    workspace: Arc<str>,
    key: Arc<str>,
    response_bytes: IntCounter,
    /// `None` for requests without an identity: no limits or cap apply to them.
    limited: Option<Limited>,
    rows: ArcSwap<Rows>,
    /// Held while a row is added or the key retired; `true` once retired.
    grow: Mutex<bool>,
}

struct Limited {
    truncated: IntCounter,
    /// By [`LIMITS`]: rate, concurrency.
    rate_limited: [IntCounter; 2],
}

impl std::fmt::Debug for KeySeries {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "KeySeries({}/{})", self.workspace, self.key)
    }
}

/// The index of an outcome in [`OUTCOMES`] and [`Row::outcomes`].
pub(super) fn slot(outcome: Outcome) -> usize {
    match outcome {
        Outcome::Ok => 0,
        Outcome::Denied => 1,
        Outcome::RateLimited { .. } => 2,
        Outcome::TooLarge => 3,
        Outcome::UpstreamError => 4,
    }
}

impl KeySeries {
    /// A key of the policy: its per-key series exist from now on, at zero.
    pub(super) fn new(families: &Families, workspace: &str, key: &str) -> Self {
        let limited = Limited {
            truncated: families.truncated.with_label_values(&[workspace, key]),
            rate_limited: LIMITS.map(|limit| {
                families
                    .rate_limited
                    .with_label_values(&[workspace, key, limit])
            }),
        };
        Self::with(families, workspace, key, Some(limited))
    }

    /// Requests without a valid identity: empty `workspace` and `key` labels.
    pub(super) fn anonymous(families: &Families) -> Self {
        Self::with(families, "", "", None)
    }

    fn with(families: &Families, workspace: &str, key: &str, limited: Option<Limited>) -> Self {
        Self {
            workspace: workspace.into(),
            key: key.into(),
            response_bytes: families.response_bytes.with_label_values(&[workspace, key]),
            limited,
            rows: ArcSwap::default(),
            grow: Mutex::new(false),
        }
    }

    /// Counts one finished request of this key.
    pub(super) fn count(&self, request: &Finished<'_>, families: &Families) {
        let rows = self.rows.load();
        match rows.get(request.method).and_then(|t| t.get(request.tool)) {
            Some(row) => count_row(row, request),
            None => count_row(
                &self.add_row(request.method, request.tool, families),
                request,
            ),
        }
        self.response_bytes.inc_by(request.bytes_out as u64);
        if let Some(limited) = &self.limited {
            if request.truncated {
                limited.truncated.inc();
            }
            if let Outcome::RateLimited { concurrency } = request.outcome {
                limited.rate_limited[usize::from(concurrency)].inc();
            }
        }
    }

    /// The first request of a method and tool for this key: creates its series (or, for a
    /// retired key, counts nowhere). Past [`MAX_ROWS`] rows of its own, a key's new method and
    /// tool pairs share one row labelled `other`/`other`, so a key inventing names (under a
    /// glob its rules allow) cannot grow its series without bound.
    fn add_row(&self, method: &str, tool: &str, families: &Families) -> Arc<Row> {
        let retired = self.grow.lock().expect("not poisoned");
        if *retired {
            return families.detached.clone();
        }
        let rows = self.rows.load();
        if let Some(row) = rows.get(method).and_then(|t| t.get(tool)) {
            return row.clone();
        }
        let mut next = Rows::clone(&rows);
        let made = next.values().flat_map(|tools| tools.values()).count();
        let row = if made < MAX_ROWS {
            Arc::new(families.row(&self.workspace, &self.key, method, tool))
        } else {
            // The shared row, made once (its labels are not a pair the request path makes:
            // a method labelled `other` carries no tool).
            next.entry(OTHER.into())
                .or_default()
                .entry(OTHER.into())
                .or_insert_with(|| Arc::new(families.row(&self.workspace, &self.key, OTHER, OTHER)))
                .clone()
        };
        // The pair maps to its row from now on, so its next requests take no lock.
        next.entry(method.into())
            .or_default()
            .insert(tool.into(), row.clone());
        self.rows.store(Arc::new(next));
        row
    }

    /// The key left the policy: removes every series it has from the registry.
    pub(super) fn retire(&self, families: &Families) {
        let mut retired = self.grow.lock().expect("not poisoned");
        *retired = true;
        let (workspace, key) = (&*self.workspace, &*self.key);
        for (method, tools) in self.rows.load().iter() {
            for tool in tools.keys() {
                for outcome in OUTCOMES {
                    let _ = families
                        .requests
                        .remove_label_values(&[workspace, key, method, tool, outcome]);
                }
            }
        }
        // From now on every request still in flight finds no row and counts nowhere, not
        // even in its workspace's histogram: nothing of a revoked key shows after revocation.
        self.rows.store(Arc::default());
        let _ = families
            .response_bytes
            .remove_label_values(&[workspace, key]);
        if self.limited.is_some() {
            let _ = families.truncated.remove_label_values(&[workspace, key]);
            for limit in LIMITS {
                let _ = families
                    .rate_limited
                    .remove_label_values(&[workspace, key, limit]);
            }
        }
    }
}

fn count_row(row: &Row, request: &Finished<'_>) {
    row.outcomes[slot(request.outcome)].inc();
    row.duration.observe(request.duration.as_secs_f64());
}
