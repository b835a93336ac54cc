//! The introspection cache: the checked outcome of each answer, keyed by the token's SHA-256.
//!
//! Invariants: valid outcomes (the caller's [`Claims`]) and refusals live in two maps, each
//! of at most [`MAX_ENTRIES`]; when one is full its expired entries go, and if none had, all
//! of its entries do, never the other map's. So a flood of made-up tokens, whose refusals are
//! cheap to produce for anyone, can never evict the answers of the tokens in real use. An
//! entry is served only before its `until` (Unix seconds). Neither the token nor the answer
//! is kept: an entry weighs at most the bounded identity of [`Claims`].

use std::collections::HashMap;
use std::sync::Mutex;

use super::super::{Claims, Rejected};

/// The most entries each map holds (two maps: valid outcomes and refusals).
pub const MAX_ENTRIES: usize = 10_000;

/// What the cache keeps of an answer: the outcome of the rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// Active, and its claims met the rules: who the caller is.
    Valid(Claims),
    /// Inactive, or active but refused by the rules: why.
    Refused(Rejected),
}

impl Answer {
    pub fn into_result(self) -> Result<Claims, Rejected> {
        match self {
            Answer::Valid(claims) => Ok(claims),
            Answer::Refused(why) => Err(why),
        }
    }
}

type Map<T> = Mutex<HashMap<[u8; 32], (T, i64)>>;

#[derive(Default)]
pub struct Cache {
    valid: Map<Claims>,
    refused: Map<Rejected>,
}

impl Cache {
    /// The live outcome for `key` at `now`, if any (a valid one first).
    pub fn get(&self, key: &[u8; 32], now: i64) -> Option<Answer> {
        if let Some(claims) = live(&self.valid, key, now) {
            return Some(Answer::Valid(claims));
        }
        live(&self.refused, key, now).map(Answer::Refused)
    }

    /// Keeps `answer` for `key` until `until` (nothing when that is not after `now`).
    pub fn put(&self, key: [u8; 32], answer: Answer, until: i64, now: i64) {
        if until <= now {
            return;
        }
        match answer {
            Answer::Valid(claims) => insert(&self.valid, key, claims, until, now),
            Answer::Refused(why) => insert(&self.refused, key, why, until, now),
        }
    }

    #[cfg(test)]
    pub fn lens(&self) -> (usize, usize) {
        (
            self.valid.lock().unwrap().len(),
            self.refused.lock().unwrap().len(),
        )
    }
}

fn live<T: Clone>(map: &Map<T>, key: &[u8; 32], now: i64) -> Option<T> {
    let entries = map.lock().unwrap_or_else(|e| e.into_inner());
    entries
        .get(key)
        .filter(|(_, until)| now < *until)
        .map(|(value, _)| value.clone())
}

fn insert<T>(map: &Map<T>, key: [u8; 32], value: T, until: i64, now: i64) {
    let mut entries = map.lock().unwrap_or_else(|e| e.into_inner());
    if entries.len() >= MAX_ENTRIES && !entries.contains_key(&key) {
        entries.retain(|_, (_, until)| now < *until);
        if entries.len() >= MAX_ENTRIES {
            entries.clear();
        }
    }
    entries.insert(key, (value, until));
}

#[cfg(test)]
mod tests {
    use sha2::{Digest, Sha256};

    use super::*;

    fn key(i: usize) -> [u8; 32] {
        Sha256::digest(i.to_le_bytes()).into()
    }

    const INACTIVE: Answer = Answer::Refused(Rejected::Inactive);

    fn valid() -> Answer {
        Answer::Valid(Claims {
            client_id: "app-1".to_owned(),
            workspace: "acme".to_owned(),
            scopes: vec!["crm:read".to_owned()],
            subject: None,
        })
    }

    #[test]
    fn each_map_is_bounded_dropping_expired_answers_first_then_all() {
        let cache = Cache::default();
        let now = 1_000;
        for i in 0..MAX_ENTRIES {
            // Half of them expire at now + 5.
            let until = if i % 2 == 0 { now + 5 } else { now + 50 };
            cache.put(key(i), INACTIVE, until, now);
        }
        cache.put(key(MAX_ENTRIES), INACTIVE, now + 50, now + 10);
        assert!(cache.get(&key(1), now + 10).is_some(), "live answers stay");
        assert!(cache.get(&key(0), now).is_none(), "expired ones went");
        assert_eq!(cache.lens(), (0, MAX_ENTRIES / 2 + 1));

        let cache = Cache::default();
        for i in 0..MAX_ENTRIES {
            cache.put(key(i), valid(), now + 50, now + 10);
        }
        assert_eq!(cache.lens(), (MAX_ENTRIES, 0));
        cache.put(key(MAX_ENTRIES + 1), valid(), now + 50, now + 10);
        assert_eq!(cache.lens(), (1, 0), "full of live answers: cleared");
    }

    #[test]
    fn a_flood_of_refusals_never_evicts_a_valid_answer() {
        let cache = Cache::default();
        let now = 1_000;
        cache.put(key(usize::MAX), valid(), now + 60, now);
        for i in 0..=2 * MAX_ENTRIES {
            cache.put(key(i), INACTIVE, now + 10, now);
        }
        assert_eq!(cache.get(&key(usize::MAX), now + 1), Some(valid()));
        assert!(cache.lens().1 <= MAX_ENTRIES);
    }

    #[test]
    fn an_answer_is_served_only_before_its_until() {
        let cache = Cache::default();
        cache.put(key(1), valid(), 1_060, 1_000);
        cache.put(key(2), INACTIVE, 1_000, 1_000);
        assert_eq!(cache.get(&key(1), 1_059), Some(valid()));
        assert_eq!(cache.get(&key(1), 1_060), None);
        assert_eq!(cache.get(&key(2), 1_000), None, "already over: not kept");
    }
}
