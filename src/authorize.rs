//! (identity, JSON-RPC method and tool, policy) → allowed with a cost, or the scopes it lacks.
//!
//! Invariants: the first matching rule decides (`tools:` for `tools/call`, `methods:` for
//! everything else); no matching rule means denied; a rule's `feature` must be enabled for the
//! identity's workspace as well as its scopes held. A JSON-RPC response sent by the client (to
//! sampling, elicitation or roots) has no method and is allowed once authenticated.

use crate::auth::Identity;
use crate::policy::{Naming, Policy, Rule};

/// Why a message is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what} is not allowed for this key")]
pub struct Denied {
    /// `tool "x"` or `method "y"`, for the error message.
    pub what: String,
    /// Every scope the matching rule requires (empty when no rule matches).
    pub required_scopes: Vec<String>,
    /// The feature the workspace lacks, when that is the reason.
    pub missing_feature: Option<String>,
}

/// What decides a message: the first matching rule (`tools:` for a `tools/call` of a tool,
/// `methods:` for the rest), how it names the tool or method (for metric labels), and what
/// the message asked for.
#[derive(Debug, Clone, Copy)]
pub struct Lookup<'a> {
    pub rule: Option<&'a Rule>,
    pub naming: Naming,
    pub asked: Asked<'a>,
}

/// The name a message is decided on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Asked<'a> {
    /// The tool of a `tools/call`.
    Tool(&'a str),
    /// Any other method (and a `tools/call` without a tool name).
    Method(&'a str),
}

impl std::fmt::Display for Asked<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Asked::Tool(name) => write!(f, "tool \"{name}\""),
            Asked::Method(name) => write!(f, "method \"{name}\""),
        }
    }
}

/// Finds the rule that decides a message: one pass over the rules, shared by the decision
/// and the metric labels.
pub fn lookup<'a>(policy: &'a Policy, method: &'a str, tool: Option<&'a str>) -> Lookup<'a> {
    let (found, asked) = match (method, tool) {
        ("tools/call", Some(tool)) => (policy.tool_match(tool), Asked::Tool(tool)),
        _ => (policy.method_match(method), Asked::Method(method)),
    };
    Lookup {
        rule: found.map(|(rule, _)| rule),
        naming: found.map_or(Naming::None, |(_, naming)| naming),
        asked,
    }
}

/// Authorizes one message: `method` (None for a client's JSON-RPC response) and, for
/// `tools/call`, the tool name. Returns the tokens it draws from the key's bucket.
pub fn check(
    policy: &Policy,
    identity: &Identity,
    method: Option<&str>,
    tool: Option<&str>,
) -> Result<u32, Denied> {
    match method {
        None => Ok(1),
        Some(method) => decide(&lookup(policy, method, tool), identity),
    }
}

/// Authorizes the message `found` was looked up for.
pub fn decide(found: &Lookup<'_>, identity: &Identity) -> Result<u32, Denied> {
    // The message is built only for a refusal; an allowed call allocates nothing here.
    let denied = |required_scopes: Vec<String>, missing_feature| Denied {
        what: found.asked.to_string(),
        required_scopes,
        missing_feature,
    };
    let Some(rule) = found.rule else {
        return Err(denied(Vec::new(), None));
    };
    allows(rule, identity)
        .map_err(|missing_feature| denied(rule.requires.clone(), missing_feature))?;
    Ok(rule.cost)
}

/// True when `identity` may call `tool` (what `tools/list` filtering asks).
pub fn tool_allowed(policy: &Policy, identity: &Identity, tool: &str) -> bool {
    policy
        .tool_rule(tool)
        .is_some_and(|rule| allows(rule, identity).is_ok())
}

/// `Err(Some(feature))` when the workspace lacks the rule's feature, `Err(None)` when a scope
/// is missing.
fn allows(rule: &Rule, identity: &Identity) -> Result<(), Option<String>> {
    if let Some(feature) = &rule.feature
        && !identity.has_feature(feature)
    {
        return Err(Some(feature.clone()));
    }
    if rule.requires.iter().all(|scope| identity.has_scope(scope)) {
        Ok(())
    } else {
        Err(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::{authenticate, ready};
    use crate::policy::fixture;

    fn identity(id: &str) -> (Policy, Identity) {
        let (policy, keys) = fixture::policy();
        let mut headers = http::HeaderMap::new();
        headers.insert("x-api-key", keys[id].expose().parse().unwrap());
        let identity = ready(authenticate(&headers, &policy, 0)).unwrap();
        (policy, identity)
    }

    #[test]
    fn authorization_table() {
        // (key, method, tool, expected cost or required scopes)
        type Case<'a> = (
            &'a str,
            &'a str,
            Option<&'a str>,
            Result<u32, &'a [&'a str]>,
        );
        let cases: &[Case] = &[
            ("full", "tools/call", Some("search_deals"), Ok(1)),
            ("full", "tools/call", Some("ask_pipeline"), Ok(5)),
            ("full", "tools/call", Some("create_deal"), Ok(1)),
            ("full", "tools/call", Some("update_deal_stage"), Ok(1)),
            ("reader", "tools/call", Some("search_deals"), Ok(1)),
            ("reader", "tools/call", Some("get_deal"), Ok(1)),
            (
                "reader",
                "tools/call",
                Some("create_deal"),
                Err(&["crm:write"]),
            ),
            // update_deal_stage matches its own rule before `update_*`.
            (
                "reader",
                "tools/call",
                Some("update_deal_stage"),
                Err(&["pipeline:write"]),
            ),
            (
                "reader",
                "tools/call",
                Some("ask_pipeline"),
                Err(&["pipeline:read"]),
            ),
            ("reader", "tools/list", None, Ok(1)),
            ("reader", "initialize", None, Ok(1)),
            ("reader", "notifications/initialized", None, Ok(1)),
            ("reader", "resources/read", None, Ok(1)),
            ("full", "tools/call", Some("drop_database"), Err(&[])),
            ("full", "sampling/createMessage", None, Err(&[])),
            ("full", "tools/call", Some("search.deals"), Err(&[])),
        ];
        for (key, method, tool, expected) in cases {
            let (policy, id) = identity(key);
            let got = check(&policy, &id, Some(method), *tool);
            match expected {
                Ok(cost) => assert_eq!(got, Ok(*cost), "{key} {method} {tool:?}"),
                Err(scopes) => {
                    let denied =
                        got.expect_err(&format!("{key} {method} {tool:?} should be denied"));
                    assert_eq!(denied.required_scopes, *scopes, "{key} {method} {tool:?}");
                }
            }
        }
    }

    #[test]
    fn a_tool_needs_its_feature_as_well_as_its_scope() {
        let (policy, acme) = identity("full");
        assert_eq!(
            check(
                &policy,
                &acme,
                Some("tools/call"),
                Some("get_signal_visitors")
            ),
            Ok(1)
        );
        // Workspace `beta` holds signal:read but has not enabled the `signal` feature.
        let (policy, beta) = identity("beta");
        let denied = check(
            &policy,
            &beta,
            Some("tools/call"),
            Some("get_signal_visitors"),
        )
        .unwrap_err();
        assert_eq!(denied.missing_feature.as_deref(), Some("signal"));
        assert_eq!(denied.required_scopes, ["signal:read"]);
    }

    #[test]
    fn a_client_response_has_no_method_and_passes() {
        let (policy, id) = identity("reader");
        assert_eq!(check(&policy, &id, None, None), Ok(1));
    }

    #[test]
    fn tool_allowed_matches_check() {
        let (policy, id) = identity("reader");
        assert!(tool_allowed(&policy, &id, "search_deals"));
        assert!(!tool_allowed(&policy, &id, "create_deal"));
        assert!(!tool_allowed(&policy, &id, "unknown_tool"));
    }
}
