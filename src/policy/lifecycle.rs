//! Key lifecycle: which keys are old enough to rotate, about to expire, or expired already.
//! `run` logs the findings when a policy loads and on every reload; `check` prints them.
//!
//! Invariants: plain arithmetic over the policy's `created`/`expires` and a given `now`; a key
//! without `created` has no known age and is never called old; findings come in (workspace,
//! key id) order.

use std::fmt;

use super::Policy;

/// A key older than this should be rotated.
pub const ROTATE_AFTER_DAYS: i64 = 90;
/// A key expiring within this many days should have its successor issued.
pub const EXPIRY_WARNING_DAYS: i64 = 14;

const DAY: i64 = 86_400;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub workspace: String,
    pub key: String,
    pub kind: Kind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Created more than [`ROTATE_AFTER_DAYS`] ago (`created`, whole days of age).
    Old { created: i64, days: i64 },
    /// Expires within [`EXPIRY_WARNING_DAYS`] (`expires`, whole days left).
    Expiring { expires: i64, days: i64 },
    /// Already refused as expired.
    Expired { expires: i64 },
}

/// What `policy`'s keys need, at `now` (Unix seconds).
pub fn review(policy: &Policy, now: i64) -> Vec<Finding> {
    let mut findings = Vec::new();
    for key in policy.keys.values() {
        let mut add = |kind| {
            findings.push(Finding {
                workspace: key.workspace.name.to_string(),
                key: key.id.to_string(),
                kind,
            });
        };
        match key.expires {
            Some(expires) if expires <= now => add(Kind::Expired { expires }),
            Some(expires) if expires - now <= EXPIRY_WARNING_DAYS * DAY => add(Kind::Expiring {
                expires,
                days: (expires - now) / DAY,
            }),
            _ => {}
        }
        if let Some(created) = key.created
            && now - created > ROTATE_AFTER_DAYS * DAY
        {
            add(Kind::Old {
                created,
                days: (now - created) / DAY,
            });
        }
    }
    findings.sort_by(|a, b| (&a.workspace, &a.key).cmp(&(&b.workspace, &b.key)));
    findings
}

/// Logs each finding as a warning (at start and on reload).
pub fn log(policy: &Policy, now: i64) {
    for f in review(policy, now) {
        tracing::warn!(workspace = %f.workspace, key = %f.key, "{f}");
    }
}

fn date(seconds: i64) -> String {
    jiff::Timestamp::from_second(seconds)
        .map(|t| t.to_zoned(jiff::tz::TimeZone::UTC).date().to_string())
        .unwrap_or_default()
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (ws, key) = (&self.workspace, &self.key);
        match self.kind {
            Kind::Old { created, days } => write!(
                f,
                "key {ws}/{key} was created {} ({days} days ago, more than {ROTATE_AFTER_DAYS}): rotate it",
                date(created)
            ),
            Kind::Expiring { expires, days } => write!(
                f,
                "key {ws}/{key} expires {} (in {days} days): issue its successor and move its client over",
                date(expires)
            ),
            Kind::Expired { expires } => write!(
                f,
                "key {ws}/{key} expired {} and is refused: remove it from the policy",
                date(expires)
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::policy::Key;
    use crate::policy::fixture;

    const NOW: i64 = 1_800_000_000;

    fn with_dates(dates: &[(&str, Option<i64>, Option<i64>)]) -> Policy {
        let (mut policy, _) = fixture::policy();
        let ws = policy.workspaces[0].clone();
        policy.keys = dates
            .iter()
            .enumerate()
            .map(|(i, (id, created, expires))| {
                let key = Key::new(
                    ws.clone(),
                    id,
                    Default::default(),
                    ws.limits,
                    *created,
                    *expires,
                );
                ([i as u8; 32], Arc::new(key))
            })
            .collect();
        policy
    }

    #[test]
    fn old_expiring_and_expired_keys_are_found_and_nothing_else() {
        let policy = with_dates(&[
            ("fresh", Some(NOW - 10 * DAY), Some(NOW + 100 * DAY)),
            ("undated", None, None),
            ("at-90-days", Some(NOW - 90 * DAY), None),
            ("old", Some(NOW - 91 * DAY - 5), None),
            ("expiring", None, Some(NOW + 14 * DAY)),
            ("later", None, Some(NOW + 14 * DAY + 1)),
            ("gone", Some(NOW - 200 * DAY), Some(NOW)),
        ]);
        let found: Vec<(String, Kind)> = review(&policy, NOW)
            .into_iter()
            .map(|f| (f.key, f.kind))
            .collect();
        assert_eq!(
            found,
            [
                (
                    "expiring".into(),
                    Kind::Expiring {
                        expires: NOW + 14 * DAY,
                        days: 14
                    }
                ),
                ("gone".into(), Kind::Expired { expires: NOW }),
                (
                    "gone".into(),
                    Kind::Old {
                        created: NOW - 200 * DAY,
                        days: 200
                    }
                ),
                (
                    "old".into(),
                    Kind::Old {
                        created: NOW - 91 * DAY - 5,
                        days: 91
                    }
                ),
            ]
        );
    }

    #[test]
    fn findings_name_the_key_the_date_and_what_to_do() {
        let policy = with_dates(&[("ci", Some(1_788_220_800), Some(1_788_220_800 + 200 * DAY))]);
        let now = 1_788_220_800 + 195 * DAY + 3600;
        let text: Vec<String> = review(&policy, now).iter().map(|f| f.to_string()).collect();
        assert_eq!(
            text,
            [
                "key acme/ci expires 2027-03-20 (in 4 days): issue its successor and move its client over",
                "key acme/ci was created 2026-09-01 (195 days ago, more than 90): rotate it",
            ]
        );
    }
}
