//! The usage map's key, (workspace, key id), looked up by borrowed strings, so counting a
//! request clones no `Arc` (two reference counts every thread would bounce between cores).
//!
//! Invariant: a [`Name`] and the `(&str, &str)` it borrows as hash and compare alike (the
//! workspace, then the key id), which is what `Borrow` requires of them.

use std::borrow::Borrow;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

#[derive(Debug, Clone)]
pub struct Name {
    pub workspace: Arc<str>,
    pub key: Arc<str>,
}

/// Anything that names a key: a [`Name`], or borrowed `(workspace, key id)`.
pub trait Named {
    fn parts(&self) -> (&str, &str);
}

impl Named for Name {
    fn parts(&self) -> (&str, &str) {
        (&self.workspace, &self.key)
    }
}

impl Named for (&str, &str) {
    fn parts(&self) -> (&str, &str) {
        (self.0, self.1)
    }
}

impl<'a> Borrow<dyn Named + 'a> for Name {
    fn borrow(&self) -> &(dyn Named + 'a) {
        self
    }
}

impl Hash for dyn Named + '_ {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.parts().hash(state);
    }
}

impl PartialEq for dyn Named + '_ {
    fn eq(&self, other: &Self) -> bool {
        self.parts() == other.parts()
    }
}

impl Eq for dyn Named + '_ {}

impl Hash for Name {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.parts().hash(state);
    }
}

impl PartialEq for Name {
    fn eq(&self, other: &Self) -> bool {
        self.parts() == other.parts()
    }
}

impl Eq for Name {}
