//! Per-key usage for `/usage`, `/usage.json` and the per-key gauges: rolling request counts
//! (last minute, hour, day), refusals, truncations, bytes, last seen, the anomaly score, and
//! the first call of a tool a key has never called.
//!
//! Invariants:
//! - Counting a request is one lock-free map load and lookup (by borrowed names) and atomics
//!   on the key's fixed record ([`record::KeyUsage`]); no lock, no allocation once the record
//!   exists. Records are made for every key of the policy when it loads, so a request makes
//!   one only when it races the reload that added its key.
//! - Only authenticated requests count, under the key that authenticated them.
//! - [`Usage::sync`] drops the record of a key that left the policy (a record a request made
//!   for a key while it was being removed goes at the next sync). OAuth clients get theirs on
//!   first use, at most [`super::MAX_OAUTH_CLIENTS`] of them (later ones share
//!   `oauth:other`), kept while their workspace takes tokens.
//! - Time is an injected [`Clock`]; scoring happens in [`Usage::tick`], once a second off the
//!   request path, which also logs a spike once (see [`super::anomaly`]).

pub mod name;
pub mod record;
pub mod report;
pub mod window;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use arc_swap::ArcSwap;

use super::Finished;
use super::anomaly::Change;
use crate::limits::Clock;
use crate::policy::{Policy, is_oauth_id};
use name::{Name, Named};
use record::{KeyUsage, Snapshot, TOOL_BITS};

/// aHash: names come from the policy, not from clients.
type Records = HashMap<Name, Arc<KeyUsage>, ahash::RandomState>;
type Tools = HashMap<Box<str>, usize, ahash::RandomState>;

pub struct Usage {
    /// Read on every request, replaced whole when the policy's keys change. A lock-free load
    /// rather than a sharded lock: a read lock is a write to a shared word, which two workers
    /// counting requests would bounce between their cores on every request.
    records: ArcSwap<Records>,
    /// Each `tool` label seen, and its bit in every key's tool set (grows to ~1000, then stops).
    tools: ArcSwap<Tools>,
    /// Set once [`super::MAX_OAUTH_CLIENTS`] clients have records, so that later clients'
    /// requests do not count the records again each time (cleared by [`Usage::sync`]).
    clients_full: AtomicBool,
    clock: Clock,
}

impl std::fmt::Debug for Usage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Usage").field("keys", &self.len()).finish()
    }
}

/// A key whose score crossed a threshold at a tick.
#[derive(Debug, Clone, PartialEq)]
pub struct Alert {
    pub workspace: Arc<str>,
    pub key: Arc<str>,
    pub change: Change,
}

impl Usage {
    pub fn new(clock: Clock) -> Self {
        Self {
            records: ArcSwap::default(),
            tools: ArcSwap::default(),
            clients_full: AtomicBool::new(false),
            clock,
        }
    }

    /// Counts a finished request under its key (nothing for an unauthenticated one).
    pub fn record(&self, request: &Finished<'_>) {
        let Some(identity) = request.identity else {
            return;
        };
        let now = self.clock.now();
        let tool = self.tool_bit(request.tool);
        let name = (identity.workspace(), identity.key_id());
        let records = self.records.load();
        let flagged = match records.get(&name as &dyn Named) {
            Some(record) => record.count(request, now, tool),
            None => {
                let name = super::client_label(name, || self.oauth_records(&records));
                match records.get(&name as &dyn Named) {
                    Some(shared) => shared.clone(),
                    None => self.insert(name, now),
                }
                .count(request, now, tool)
            }
        };
        if flagged {
            tracing::warn!(
                workspace = name.0,
                key = name.1,
                tool = request.tool,
                "key {}/{} called tool {:?} for the first time",
                name.0,
                name.1,
                request.tool
            );
        }
    }

    /// How many OAuth clients have records (a scan, made only while the cap is not reached).
    fn oauth_records(&self, records: &Records) -> usize {
        if self.clients_full.load(Ordering::Relaxed) {
            return super::MAX_OAUTH_CLIENTS;
        }
        let n = records.keys().filter(|n| is_oauth_id(&n.key)).count();
        if n >= super::MAX_OAUTH_CLIENTS {
            self.clients_full.store(true, Ordering::Relaxed);
        }
        n
    }

    /// The record of a key that has none yet: one whose request raced the reload that added
    /// it (records for the policy's keys are made by [`Usage::sync`]).
    fn insert(&self, (workspace, key): (&str, &str), now: u64) -> Arc<KeyUsage> {
        let name = Name {
            workspace: workspace.into(),
            key: key.into(),
        };
        let fresh = Arc::new(KeyUsage::new(now));
        self.records.rcu(|records| {
            let mut records = Records::clone(records);
            records.entry(name.clone()).or_insert_with(|| fresh.clone());
            records
        });
        // A sync may have dropped it again already (the key left the policy): then the count
        // goes into a record nobody reads, which is what a removed key's counts deserve.
        self.records.load().get(&name).cloned().unwrap_or(fresh)
    }

    /// The tool's bit, assigning one on its first sight; `None` for no tool (or, past 1024
    /// distinct labels, which the request path's label cap never reaches, an untracked one).
    fn tool_bit(&self, tool: &str) -> Option<usize> {
        if tool.is_empty() {
            return None;
        }
        if let Some(&bit) = self.tools.load().get(tool) {
            return Some(bit);
        }
        self.tools.rcu(|tools| {
            let mut tools = Tools::clone(tools);
            if tools.len() < TOOL_BITS && !tools.contains_key(tool) {
                let bit = tools.len();
                tools.insert(tool.into(), bit);
            }
            tools
        });
        self.tools.load().get(tool).copied()
    }

    /// Makes a record for every key of `policy` and drops those of keys it no longer has.
    pub fn sync(&self, policy: &Policy) {
        let now = self.clock.now();
        self.clients_full.store(false, Ordering::Relaxed);
        self.records.rcu(|old| {
            let mut records =
                Records::with_capacity_and_hasher(policy.keys.len(), ahash::RandomState::default());
            for key in policy.keys.values() {
                let name = Name {
                    workspace: key.workspace.name.clone(),
                    key: key.id.clone(),
                };
                let record = old
                    .get(&name)
                    .cloned()
                    .unwrap_or_else(|| Arc::new(KeyUsage::new(now)));
                records.insert(name, record);
            }
            // OAuth clients have no entry in the policy: theirs are made on first use and
            // kept while the policy still takes tokens for their workspace.
            records.extend(
                old.iter()
                    .filter(|(n, _)| is_oauth_id(&n.key) && policy.admits_clients_of(&n.workspace))
                    .map(|(n, r)| (n.clone(), r.clone())),
            );
            records
        });
    }

    /// Scores every key (run once a second); logs and returns the spikes that began and
    /// ended since the last tick.
    pub fn tick(&self) -> Vec<Alert> {
        let now = self.clock.now();
        let alerts: Vec<Alert> = self
            .records
            .load_full()
            .iter()
            .filter_map(|(name, record)| {
                record.tick(now).map(|change| Alert {
                    workspace: name.workspace.clone(),
                    key: name.key.clone(),
                    change,
                })
            })
            .collect();
        for alert in &alerts {
            log(alert);
        }
        alerts
    }

    /// A key's numbers now; zeros for a key without a record.
    pub fn snapshot(&self, workspace: &str, key: &str) -> Snapshot {
        let now = self.clock.now();
        self.records
            .load()
            .get(&(workspace, key) as &dyn Named)
            .map(|r| r.snapshot(now))
            .unwrap_or_default()
    }

    /// The OAuth clients with a record, as (workspace, `oauth:<client_id>`): the policy does
    /// not list them, so reports and gauges take them from here.
    pub fn oauth_clients(&self) -> Vec<(Arc<str>, Arc<str>)> {
        self.records
            .load()
            .keys()
            .filter(|n| is_oauth_id(&n.key))
            .map(|n| (n.workspace.clone(), n.key.clone()))
            .collect()
    }

    /// Keys with a record (for tests and the memory figure).
    pub fn len(&self) -> usize {
        self.records.load().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn log(alert: &Alert) {
    let (workspace, key) = (&*alert.workspace, &*alert.key);
    match alert.change {
        Change::Spike {
            score,
            current,
            usual,
        } => tracing::warn!(
            workspace,
            key,
            score,
            "usage spike: key {workspace}/{key} made {current} requests in the last minute, \
             against {usual:.1} usually (anomaly score {score:.1}, above {})",
            super::anomaly::SPIKE
        ),
        Change::Calm => tracing::info!(
            workspace,
            key,
            "usage of key {workspace}/{key} is back to its usual"
        ),
    }
}

#[cfg(test)]
mod tests;
