//! Metrics, usage and logs: every sink reads the same [`Finished`] record of a request, built
//! once in the proxy's logging phase.
//!
//! Invariant: a record carries the caller's identity only when it authenticated, and never
//! the credential, its hash, the body or tool arguments.

pub mod access_log;
pub mod anomaly;
pub mod inflight;
pub mod key_gauges;
pub mod metrics;
pub mod usage;

use std::time::Duration;

use crate::auth::Identity;
use crate::policy::is_oauth_id;

/// OAuth clients counted under their own name (metric series, usage records) per process.
/// Tokens are signed, so client ids are not a client's free choice, but an authorization
/// server with open registration can mint many; past this many, new ones share one name.
pub const MAX_OAUTH_CLIENTS: usize = 1_000;

/// The name OAuth clients past [`MAX_OAUTH_CLIENTS`] share.
pub const OTHER_OAUTH_CLIENT: &str = "oauth:other";

/// The (workspace, key) an identity is counted under: its own, except an OAuth client met
/// when `tracked()` (the OAuth clients already counted) has reached [`MAX_OAUTH_CLIENTS`].
pub fn client_label<'a>(
    (workspace, key): (&'a str, &'a str),
    tracked: impl FnOnce() -> usize,
) -> (&'a str, &'a str) {
    if is_oauth_id(key) && tracked() >= MAX_OAUTH_CLIENTS {
        (workspace, OTHER_OAUTH_CLIENT)
    } else {
        (workspace, key)
    }
}

/// How a request ended, as the `outcome` label counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Outcome {
    #[default]
    Ok,
    /// Refused: no valid credential, a forbidden method or tool, a malformed request.
    Denied,
    /// Refused with 429: the key's rate (`concurrency: false`) or concurrency limit, or the
    /// client address's failed-authentication budget.
    RateLimited { concurrency: bool },
    /// The request body was over `max_request_bytes`, or the response was cut to
    /// `max_response_bytes`.
    TooLarge,
    /// The upstream could not be reached, timed out, or failed mid-response.
    UpstreamError,
}

impl Outcome {
    /// The `outcome` label of `mcpwarden_requests_total`.
    pub fn label(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Denied => "denied",
            Outcome::RateLimited { .. } => "rate_limited",
            Outcome::TooLarge => "too_large",
            Outcome::UpstreamError => "upstream_error",
        }
    }
}

/// What one request did, at its end.
#[derive(Debug, Clone, Copy)]
pub struct Finished<'a> {
    /// `None` when the request had no valid credential.
    pub identity: Option<&'a Identity>,
    /// The `method` label: a rule-matched method name, `other`, `batch`, or empty for a GET
    /// or DELETE and for requests refused before their body was read.
    pub method: &'static str,
    /// The `tool` label: a rule-matched tool name, `other`, or empty.
    pub tool: &'static str,
    pub outcome: Outcome,
    /// The status the client received (0 when it received none: it went away first).
    pub status: u16,
    /// The upstream's status, when the request reached it.
    pub upstream_status: Option<u16>,
    pub duration: Duration,
    /// Request body bytes read from the client.
    pub bytes_in: usize,
    /// Response body bytes sent to the client.
    pub bytes_out: usize,
    /// The response cap cut or replaced the response body.
    pub truncated: bool,
}

#[cfg(test)]
impl<'a> Finished<'a> {
    /// A request as the unit tests count it: a `tools/call` of `tool` (no method when `tool`
    /// is empty) answered 200 by the upstream and the gateway, in 1 ms, 10 bytes in, 100 out.
    pub(crate) fn sample(
        identity: Option<&'a Identity>,
        tool: &'static str,
        outcome: Outcome,
    ) -> Self {
        Self {
            identity,
            method: if tool.is_empty() { "" } else { "tools/call" },
            tool,
            outcome,
            status: 200,
            upstream_status: Some(200),
            duration: std::time::Duration::from_millis(1),
            bytes_in: 10,
            bytes_out: 100,
            truncated: false,
        }
    }
}
