//! The identities of OAuth clients: one [`Key`] per (workspace, client, scopes), built the
//! first time a token presents that combination under a policy and reused after, so the
//! request path treats a token exactly like a key (limits, metrics, headers) without
//! building header values per request.
//!
//! Invariants: an entry belongs to one policy snapshot (its workspace and limits are that
//! snapshot's), so a reload starts afresh; the map holds at most [`CAPACITY`] entries and is
//! emptied when full — entries are cheap to rebuild, and limit state lives outside it, keyed
//! by (workspace, key id), so emptying it changes nothing a client can see.

use std::collections::BTreeSet;
use std::sync::Arc;

use dashmap::DashMap;

use super::oauth::Claims;
use crate::policy::{Key, Workspace};

/// Entries kept before the map is emptied.
pub const CAPACITY: usize = 10_000;

#[derive(Debug, Default)]
pub struct ClientKeys {
    keys: DashMap<Box<str>, Arc<Key>, ahash::RandomState>,
}

impl ClientKeys {
    /// The identity `claims` give within `workspace`: the token's scopes narrowed to the
    /// workspace's (a token cannot widen what its workspace may do). `None` when the client
    /// id cannot be carried in a header.
    pub fn get(&self, workspace: &Arc<Workspace>, claims: &Claims) -> Option<Arc<Key>> {
        let scopes: BTreeSet<String> = claims
            .scopes
            .iter()
            .filter(|s| workspace.scopes.contains(*s))
            .cloned()
            .collect();
        let name = entry_name(&workspace.name, &claims.client_id, &scopes);
        if let Some(key) = self.keys.get(name.as_str()) {
            return Some(key.clone());
        }
        let key = Arc::new(Key::oauth_client(workspace, &claims.client_id, scopes)?);
        if self.keys.len() >= CAPACITY {
            self.keys.clear();
        }
        self.keys.insert(name.into_boxed_str(), key.clone());
        Some(key)
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

/// Workspace, client and scopes joined by a byte none of them can hold (they are visible
/// ASCII: the verifier and the compiler check it).
fn entry_name(workspace: &str, client: &str, scopes: &BTreeSet<String>) -> String {
    let mut name = String::with_capacity(workspace.len() + client.len() + 16 * scopes.len());
    name.push_str(workspace);
    name.push('\n');
    name.push_str(client);
    for scope in scopes {
        name.push('\n');
        name.push_str(scope);
    }
    name
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::Limits;

    fn workspace() -> Arc<Workspace> {
        Arc::new(Workspace {
            name: "acme".into(),
            scopes: ["crm:read", "crm:write"].map(String::from).into(),
            features: BTreeSet::new(),
            limits: Limits {
                requests_per_minute: 7,
                ..Limits::default()
            },
        })
    }

    fn claims(client: &str, scopes: &[&str]) -> Claims {
        Claims {
            client_id: client.into(),
            workspace: "acme".into(),
            scopes: scopes.iter().map(|s| s.to_string()).collect(),
            subject: None,
        }
    }

    #[test]
    fn a_token_cannot_widen_its_workspace() {
        let keys = ClientKeys::default();
        let key = keys
            .get(
                &workspace(),
                &claims("app", &["crm:read", "admin", "pipeline:write"]),
            )
            .unwrap();
        assert_eq!(&*key.id, "oauth:app");
        assert!(key.is_oauth());
        assert_eq!(key.scopes, BTreeSet::from(["crm:read".to_string()]));
        assert_eq!(key.headers.scopes, "crm:read");
        assert_eq!(key.limits.requests_per_minute, 7);
        assert_eq!(key.expires, None);
    }

    #[test]
    fn the_same_client_and_scopes_share_one_identity() {
        let keys = ClientKeys::default();
        let ws = workspace();
        let a = keys.get(&ws, &claims("app", &["crm:read"])).unwrap();
        let b = keys
            .get(&ws, &claims("app", &["crm:read", "unknown"]))
            .unwrap();
        let c = keys.get(&ws, &claims("app", &["crm:write"])).unwrap();
        assert!(Arc::ptr_eq(&a, &b));
        assert!(!Arc::ptr_eq(&a, &c));
        assert_eq!(a.id, c.id, "one client, one key id: its limits are shared");
        assert_eq!(keys.len(), 2);
    }

    #[test]
    fn the_map_is_bounded() {
        let keys = ClientKeys::default();
        let ws = workspace();
        for i in 0..CAPACITY + 5 {
            keys.get(&ws, &claims(&format!("c{i}"), &[])).unwrap();
        }
        assert!(keys.len() <= CAPACITY);
    }

    #[test]
    fn a_client_id_that_cannot_be_a_header_has_no_identity() {
        assert!(
            ClientKeys::default()
                .get(&workspace(), &claims("a\nb", &[]))
                .is_none()
        );
    }
}
