//! Binds each MCP session id the upstream issues to the identity that received it.
//!
//! A leaked `Mcp-Session-Id` must be useless without its key: another identity presenting it
//! is answered 404, as if the session were unknown. Bindings live outside the policy (a
//! reload keeps them) in a lock-free map, and are dropped when the client DELETEs the session
//! or after [`IDLE_EXPIRY`] without use, so memory follows live sessions.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use dashmap::DashMap;

/// A binding unused for this long is forgotten (upstream servers expire sessions sooner).
pub const IDLE_EXPIRY_SECS: i64 = 24 * 3600;

#[derive(Debug)]
struct Owner {
    workspace: Arc<str>,
    key: Arc<str>,
    last_used: AtomicI64,
}

#[derive(Debug, Default)]
pub struct Sessions {
    owners: DashMap<Box<str>, Owner>,
}

/// What a request's session id means for this identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// Bound to this identity, or not known to the gateway (the upstream decides).
    Pass,
    /// Bound to another identity.
    Foreign,
}

impl Sessions {
    pub fn check(&self, session_id: &str, workspace: &str, key: &str, now: i64) -> Check {
        match self.owners.get(session_id) {
            None => Check::Pass,
            Some(owner) if &*owner.workspace == workspace && &*owner.key == key => {
                owner.last_used.store(now, Ordering::Relaxed);
                Check::Pass
            }
            Some(_) => Check::Foreign,
        }
    }

    /// Binds `session_id` to the identity, unless it is already bound.
    pub fn bind(&self, session_id: &str, workspace: &str, key: &str, now: i64) {
        self.owners
            .entry(session_id.into())
            .or_insert_with(|| Owner {
                workspace: workspace.into(),
                key: key.into(),
                last_used: AtomicI64::new(now),
            });
    }

    pub fn unbind(&self, session_id: &str) {
        self.owners.remove(session_id);
    }

    /// Forgets bindings idle for longer than [`IDLE_EXPIRY_SECS`].
    pub fn expire(&self, now: i64) {
        self.owners
            .retain(|_, owner| now - owner.last_used.load(Ordering::Relaxed) < IDLE_EXPIRY_SECS);
    }

    pub fn len(&self) -> usize {
        self.owners.len()
    }

    pub fn is_empty(&self) -> bool {
        self.owners.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_answers_only_to_the_identity_it_was_issued_to() {
        let s = Sessions::default();
        s.bind("abc", "acme", "full", 0);
        assert_eq!(s.check("abc", "acme", "full", 1), Check::Pass);
        assert_eq!(s.check("abc", "acme", "reader", 1), Check::Foreign);
        assert_eq!(s.check("abc", "beta", "full", 1), Check::Foreign);
        assert_eq!(s.check("unknown", "beta", "full", 1), Check::Pass);
    }

    #[test]
    fn binding_twice_keeps_the_first_owner() {
        let s = Sessions::default();
        s.bind("abc", "acme", "full", 0);
        s.bind("abc", "acme", "reader", 0);
        assert_eq!(s.check("abc", "acme", "reader", 1), Check::Foreign);
    }

    #[test]
    fn unbound_and_idle_sessions_are_forgotten() {
        let s = Sessions::default();
        s.bind("a", "acme", "full", 0);
        s.bind("b", "acme", "full", 0);
        s.unbind("a");
        assert_eq!(s.len(), 1);
        s.check("b", "acme", "full", 100);
        s.expire(100 + IDLE_EXPIRY_SECS - 1);
        assert_eq!(s.len(), 1);
        s.expire(100 + IDLE_EXPIRY_SECS);
        assert!(s.is_empty());
    }
}
