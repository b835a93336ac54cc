//! Limit resolution: key > workspace > `limits:` > built-in defaults, field by field.
//!
//! Invariants: `burst`, when no level sets it, equals the *resolved* `requests_per_minute`
//! (so a workspace that raises the rate raises the burst with it); `max_response_bytes` is
//! at least [`MIN_RESPONSE_BYTES`].

use serde_saphyr::Spanned;

use super::super::Limits;
use super::super::schema::{ByteSize, LimitsSpec};
use super::{Cx, positive};

/// The smallest `max_response_bytes` (1KB): the response cap answers with a -32005 error of
/// about 150 bytes plus the request's id, which must fit under the limit it reports.
pub(crate) const MIN_RESPONSE_BYTES: u64 = 1000;

/// What one level of the file says; `None` means "inherit".
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Partial {
    pub requests_per_minute: Option<u32>,
    pub burst: Option<u32>,
    pub concurrent_connections: Option<u32>,
    pub max_response_bytes: Option<u64>,
    pub max_request_bytes: Option<u64>,
}

impl Partial {
    /// Reads one `limits:` block, reporting every bad field under `path`.
    pub(crate) fn from_spec(cx: &mut Cx, spec: Option<&LimitsSpec>, path: &str) -> Self {
        let Some(spec) = spec else {
            return Self::default();
        };
        let count = |cx: &mut Cx, field: &Option<Spanned<u64>>, name: &str| {
            field
                .as_ref()
                .and_then(|v| positive::<u32>(cx, v, &format!("{path}.{name}")))
        };
        let size = |cx: &mut Cx, field: &Option<Spanned<ByteSize>>, name: &str, min: u64| {
            let v = field.as_ref()?;
            let at = format!("{path}.{name}");
            match v.value.parse() {
                Ok(0) if min == 1 => {
                    cx.error(v.referenced, &at, "must be at least 1 byte");
                    None
                }
                Ok(n) if n < min => {
                    cx.error(v.referenced, &at, format!("must be at least {min} bytes"));
                    None
                }
                Ok(n) => Some(n),
                Err(m) => {
                    cx.error(v.referenced, &at, m);
                    None
                }
            }
        };
        Self {
            requests_per_minute: count(cx, &spec.requests_per_minute, "requests_per_minute"),
            burst: count(cx, &spec.burst, "burst"),
            concurrent_connections: count(
                cx,
                &spec.concurrent_connections,
                "concurrent_connections",
            ),
            max_response_bytes: size(
                cx,
                &spec.max_response_bytes,
                "max_response_bytes",
                MIN_RESPONSE_BYTES,
            ),
            max_request_bytes: size(cx, &spec.max_request_bytes, "max_request_bytes", 1),
        }
    }

    /// `upper`'s fields where it sets them, else ours.
    pub(crate) fn overlay(self, upper: Self) -> Self {
        Self {
            requests_per_minute: upper.requests_per_minute.or(self.requests_per_minute),
            burst: upper.burst.or(self.burst),
            concurrent_connections: upper.concurrent_connections.or(self.concurrent_connections),
            max_response_bytes: upper.max_response_bytes.or(self.max_response_bytes),
            max_request_bytes: upper.max_request_bytes.or(self.max_request_bytes),
        }
    }

    /// Fills what no level set from [`Limits::default`]; burst follows the resolved rate.
    pub(crate) fn resolve(self) -> Limits {
        let d = Limits::default();
        let requests_per_minute = self.requests_per_minute.unwrap_or(d.requests_per_minute);
        Limits {
            requests_per_minute,
            burst: self.burst.unwrap_or(requests_per_minute),
            concurrent_connections: self
                .concurrent_connections
                .unwrap_or(d.concurrent_connections),
            max_response_bytes: self.max_response_bytes.unwrap_or(d.max_response_bytes),
            max_request_bytes: self.max_request_bytes.unwrap_or(d.max_request_bytes),
        }
    }
}
