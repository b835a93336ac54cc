//! The policy in force: an immutable snapshot behind an `ArcSwap`, replaced whole on reload.
//!
//! Invariants: a request loads the snapshot once and keeps it to the end, so a reload never
//! changes the rules under a request in flight; a reload that fails to compile changes
//! nothing but the failure count and the last error.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;

use super::{CompileError, Policy, compile_file};
use crate::telemetry::metrics::Metrics;

/// What the last reload did, for `/usage` and logs.
#[derive(Debug, Clone, Default)]
pub struct ReloadStatus {
    /// Unix seconds of the last reload attempt.
    pub last_reload: Option<i64>,
    /// The error of the last attempt, when it failed.
    pub last_error: Option<String>,
}

#[derive(Debug)]
pub struct Store {
    current: ArcSwap<Policy>,
    path: PathBuf,
    generation: AtomicU64,
    status: Mutex<ReloadStatus>,
    metrics: Arc<Metrics>,
}

impl Store {
    /// Loads the policy at `path`; start-up fails when it does not compile.
    pub fn open(path: &Path, metrics: Arc<Metrics>) -> Result<Self, CompileError> {
        let policy = compile_file(path)?;
        for warning in &policy.warnings {
            tracing::warn!("{warning}");
        }
        metrics.adopt(&policy);
        super::lifecycle::log(&policy, now());
        metrics.policy_reloads.with_label_values(&["success"]).inc();
        metrics.policy_last_reload_success.set(now() as f64);
        Ok(Self {
            current: ArcSwap::from_pointee(policy),
            path: path.to_owned(),
            generation: AtomicU64::new(1),
            status: Mutex::new(ReloadStatus {
                last_reload: Some(now()),
                last_error: None,
            }),
            metrics,
        })
    }

    /// The snapshot in force: one atomic load, kept for the request's lifetime.
    pub fn current(&self) -> Arc<Policy> {
        self.current.load_full()
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Increases by one with every successful reload.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Relaxed)
    }

    pub fn status(&self) -> ReloadStatus {
        self.status.lock().expect("not poisoned").clone()
    }

    /// Reads, compiles and swaps the policy, or keeps the old one and says why.
    pub fn reload(&self) -> Result<u64, CompileError> {
        let result = compile_file(&self.path);
        let mut status = self.status.lock().expect("not poisoned");
        status.last_reload = Some(now());
        match result {
            Ok(policy) => {
                let old = self.current.load();
                if policy.server != old.server {
                    tracing::warn!(
                        "policy reload: `server:` changed; it is read at start only and takes effect after a restart"
                    );
                }
                for warning in &policy.warnings {
                    tracing::warn!("{warning}");
                }
                // What the issuers' keys were fetched for carries over: a reload neither
                // refetches them nor forgets them while an issuer is unreachable.
                if let (Some(new), Some(old)) = (&policy.oauth, &old.oauth) {
                    new.inherit(old);
                }
                // Handles first, so no request of the new policy finds its key without them.
                self.metrics.adopt(&policy);
                super::lifecycle::log(&policy, now());
                self.current.store(Arc::new(policy));
                let generation = self.generation.fetch_add(1, Ordering::Relaxed) + 1;
                status.last_error = None;
                self.metrics
                    .policy_reloads
                    .with_label_values(&["success"])
                    .inc();
                self.metrics.policy_last_reload_success.set(now() as f64);
                tracing::info!(generation, "policy reloaded");
                Ok(generation)
            }
            Err(error) => {
                // A YAML error may quote the line it is about, and that line may hold a key.
                tracing::error!(
                    "policy reload refused, the last good policy stays in force:\n{}",
                    crate::telemetry::usage::report::redact(&error.to_string())
                );
                status.last_error = Some(error.to_string());
                self.metrics
                    .policy_reloads
                    .with_label_values(&["failure"])
                    .inc();
                Err(error)
            }
        }
    }
}

/// Unix seconds now.
pub fn now() -> i64 {
    jiff::Timestamp::now().as_second()
}
