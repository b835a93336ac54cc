//! The usage report: what `/usage.json` serves and `/usage` renders, in the shape contract §4
//! fixes. Times are RFC 3339 UTC strings (`null` when unknown or never).
//!
//! Invariants: one row per key of the policy in force, in (workspace, key id) order, idle keys
//! with zeros; no key, hash or request content anywhere — the only free text, the last reload
//! error, has anything that looks like a key or a hash blanked out.

use serde::{Serialize, Serializer};

use super::Usage;
use super::record::SECOND;
use crate::policy::Policy;
use crate::policy::store::ReloadStatus;

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    #[serde(serialize_with = "time")]
    pub generated_at: i64,
    pub policy: PolicyState,
    pub keys: Vec<KeyRow>,
}

#[derive(Debug, Clone, Serialize)]
pub struct PolicyState {
    /// 1 at start, +1 with every successful reload.
    pub generation: u64,
    /// The last reload attempt (or the load at start).
    #[serde(serialize_with = "optional_time")]
    pub last_reload: Option<i64>,
    /// Why the last reload attempt failed; `None` once one succeeds.
    pub last_error: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct KeyRow {
    pub workspace: String,
    pub key: String,
    pub requests: Requests,
    pub denied: u64,
    pub rate_limited: u64,
    pub concurrency_limited: u64,
    pub truncated: u64,
    pub bytes_out: u64,
    #[serde(serialize_with = "optional_time")]
    pub last_seen: Option<i64>,
    pub anomaly_score: f64,
    #[serde(serialize_with = "optional_time")]
    pub created: Option<i64>,
    #[serde(serialize_with = "optional_time")]
    pub expires: Option<i64>,
}

#[derive(Debug, Clone, Copy, Serialize)]
pub struct Requests {
    pub minute: u64,
    pub hour: u64,
    pub day: u64,
}

impl Report {
    /// The report for `policy` as of `now` (Unix seconds).
    pub fn build(
        usage: &Usage,
        policy: &Policy,
        generation: u64,
        status: &ReloadStatus,
        now: i64,
    ) -> Self {
        // The policy's keys with their dates, then the OAuth clients met so far (no dates).
        let listed = policy
            .keys
            .values()
            .map(|k| (k.workspace.name.clone(), k.id.clone(), k.created, k.expires));
        let clients = usage
            .oauth_clients()
            .into_iter()
            .map(|(workspace, client)| (workspace, client, None, None));
        let mut keys: Vec<KeyRow> = listed
            .chain(clients)
            .map(|(workspace, key, created, expires)| {
                let s = usage.snapshot(&workspace, &key);
                KeyRow {
                    workspace: workspace.to_string(),
                    key: key.to_string(),
                    requests: Requests {
                        minute: s.minute,
                        hour: s.hour,
                        day: s.day,
                    },
                    denied: s.denied,
                    rate_limited: s.rate_limited,
                    concurrency_limited: s.concurrency_limited,
                    truncated: s.truncated,
                    bytes_out: s.bytes_out,
                    last_seen: s.idle_for.map(|idle| now - (idle / SECOND) as i64),
                    // Two decimals are all a reader uses, and they keep the JSON stable.
                    anomaly_score: (s.anomaly_score * 100.0).round() / 100.0,
                    created,
                    expires,
                }
            })
            .collect();
        keys.sort_unstable_by(|a, b| (&a.workspace, &a.key).cmp(&(&b.workspace, &b.key)));
        Self {
            generated_at: now,
            policy: PolicyState {
                generation,
                last_reload: status.last_reload,
                last_error: status.last_error.as_deref().map(redact),
            },
            keys,
        }
    }
}

/// Unix seconds as RFC 3339 UTC.
pub fn rfc3339(seconds: i64) -> String {
    jiff::Timestamp::from_second(seconds)
        .map(|t| t.to_string())
        .unwrap_or_default()
}

fn time<S: Serializer>(seconds: &i64, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&rfc3339(*seconds))
}

fn optional_time<S: Serializer>(seconds: &Option<i64>, s: S) -> Result<S::Ok, S::Error> {
    match seconds {
        Some(seconds) => time(seconds, s),
        None => s.serialize_none(),
    }
}

/// Blanks out what could be a key (`mcpw_…`) or a key hash (a run of 32 or more hex digits)
/// in an error message: a YAML error may quote the line it is about.
pub fn redact(text: &str) -> String {
    const BLANK: &str = "[redacted]";
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(c) = rest.chars().next() {
        let word_len = rest
            .find(|c: char| !c.is_ascii_alphanumeric() && c != '_')
            .unwrap_or(rest.len());
        let word = &rest[..word_len];
        if word_len == 0 {
            out.push(c);
            rest = &rest[c.len_utf8()..];
            continue;
        }
        if word.starts_with("mcpw_") {
            out.push_str(BLANK);
        } else {
            redact_hex_runs(word, &mut out);
        }
        rest = &rest[word_len..];
    }
    out
}

fn redact_hex_runs(word: &str, out: &mut String) {
    let mut start = 0;
    let bytes = word.as_bytes();
    while start < bytes.len() {
        let hex = bytes[start].is_ascii_hexdigit();
        let len = bytes[start..]
            .iter()
            .position(|b| b.is_ascii_hexdigit() != hex)
            .unwrap_or(bytes.len() - start);
        if hex && len >= 32 {
            out.push_str("[redacted]");
        } else {
            out.push_str(&word[start..start + len]);
        }
        start += len;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_hashes_are_blanked_out_of_errors() {
        let hash = "a".repeat(64);
        let key = "mcpw_0123456789abcdefghijABCDEFGHIJ012345";
        let text = format!("policy.yaml:3:9: sha256: {hash}; also {key}, deadbeef.");
        assert_eq!(
            redact(&text),
            "policy.yaml:3:9: sha256: [redacted]; also [redacted], deadbeef."
        );
        assert_eq!(redact("x=é1f"), "x=é1f");
    }

    #[test]
    fn times_are_rfc3339_utc() {
        assert_eq!(rfc3339(1_788_220_800), "2026-09-01T00:00:00Z");
    }
}
