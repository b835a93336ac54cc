//! Decisions about a request, as plain functions over headers and bytes: is its framing safe
//! to forward, and what does its JSON-RPC body ask for.

use http::HeaderMap;

use crate::auth::Identity;
use crate::authorize;
use crate::denial::Denial;
use crate::mcp::jsonrpc::{self, Id};
use crate::policy::Policy;

/// What Pingora keeps for replay (its retry buffer); bodies up to this size are read and
/// authorized before the upstream is chosen, larger ones are held back in the body filter.
pub const RETRY_BUFFER: u64 = 64 * 1024;

/// A body that was read and authorized.
#[derive(Debug, Clone)]
pub struct Checked {
    /// The id errors about this request carry (`null` for a batch).
    pub id: Id,
    /// Tokens the request draws from the key's bucket.
    pub cost: u32,
    /// `method` metric label: the method when a policy rule matches it, else `other`;
    /// `batch` for a batch.
    pub method: String,
    /// `tool` metric label: the tool name when a rule matches it, `other` when none does,
    /// empty for methods other than `tools/call`.
    pub tool: String,
    /// The request includes `tools/list`, so its result is filtered on the way back.
    pub lists_tools: bool,
}

/// A `Content-Length` that is not plain digits (Pingora accepts `+5`), one that is repeated
/// with different values, or one next to `Transfer-Encoding`, is refused before anything is
/// read: two parsers could frame such a request differently (request smuggling).
/// Returns the declared length.
pub fn check_framing(headers: &HeaderMap) -> Result<Option<u64>, Denial> {
    let mut length = None;
    for value in headers.get_all(http::header::CONTENT_LENGTH) {
        let bytes = value.as_bytes();
        if bytes.is_empty() || bytes.len() > 19 || !bytes.iter().all(u8::is_ascii_digit) {
            return Err(Denial::BadFraming("Content-Length must be plain digits"));
        }
        let n: u64 = value
            .to_str()
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or(Denial::BadFraming("Content-Length must be plain digits"))?;
        if length.is_some_and(|m| m != n) {
            return Err(Denial::BadFraming("conflicting Content-Length headers"));
        }
        length = Some(n);
    }
    if length.is_some() && headers.contains_key(http::header::TRANSFER_ENCODING) {
        return Err(Denial::BadFraming(
            "Content-Length and Transfer-Encoding together",
        ));
    }
    Ok(length)
}

/// Parses and authorizes a POST body: every message of a batch is checked and counted; a
/// batch with any refused element is refused whole (with id `null`).
pub fn evaluate(
    policy: &Policy,
    identity: &Identity,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Checked, (Denial, Id)> {
    let parsed = jsonrpc::classify(body).map_err(|e| {
        let denial = match e {
            jsonrpc::ParseError::NotJson => Denial::NotJson,
            jsonrpc::ParseError::Invalid { reason, .. } => Denial::InvalidRequest(reason),
        };
        (denial, e.id())
    })?;
    let id = parsed.first_id();
    check_mcp_headers(headers, &parsed).map_err(|d| (d, id.clone()))?;
    let mut cost: u32 = 0;
    let mut lists_tools = false;
    for message in parsed.messages() {
        let c = authorize::check(policy, identity, message.method(), message.tool())
            .map_err(|d| (Denial::Forbidden(d), id.clone()))?;
        cost = cost.saturating_add(c);
        lists_tools |= message.method() == Some("tools/list");
    }
    let (method, tool) = if parsed.is_batch() {
        ("batch".to_owned(), String::new())
    } else {
        let message = &parsed.messages()[0];
        labels(policy, message.method(), message.tool())
    };
    Ok(Checked {
        id,
        cost,
        method,
        tool,
        lists_tools,
    })
}

/// Metric labels for one message, bounded by the policy's rules.
fn labels(policy: &Policy, method: Option<&str>, tool: Option<&str>) -> (String, String) {
    let Some(method) = method else {
        return ("response".to_owned(), String::new());
    };
    let method_label = if method == "tools/call" || policy.method_rule(method).is_some() {
        method.to_owned()
    } else {
        "other".to_owned()
    };
    let tool_label = match tool {
        Some(t) if policy.tool_rule(t).is_some() => t.to_owned(),
        Some(_) => "other".to_owned(),
        None => String::new(),
    };
    (method_label, tool_label)
}

/// `Mcp-Method` and `Mcp-Name`, when present, must agree with the body; otherwise a proxy
/// routing on headers and a server acting on the body would see different requests.
fn check_mcp_headers(headers: &HeaderMap, body: &jsonrpc::Body) -> Result<(), Denial> {
    let header = |name: &str| headers.get(name).map(|v| v.to_str().unwrap_or("\u{fffd}"));
    let method = header("mcp-method");
    let name = header("mcp-name");
    if method.is_none() && name.is_none() {
        return Ok(());
    }
    let [message] = body.messages() else {
        return Err(Denial::HeaderMismatch(
            "Mcp-Method/Mcp-Name cannot describe a batch",
        ));
    };
    if let Some(method) = method
        && message.method() != Some(method)
    {
        return Err(Denial::HeaderMismatch(
            "Mcp-Method differs from the body's method",
        ));
    }
    if let Some(name) = name
        && message.method() == Some("tools/call")
        && message.tool() != Some(name)
    {
        return Err(Denial::HeaderMismatch(
            "Mcp-Name differs from the body's params.name",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::fixture;

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for (k, v) in pairs {
            m.append(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        m
    }

    #[test]
    fn plain_content_length_passes() {
        assert_eq!(
            check_framing(&map(&[("content-length", "42")])),
            Ok(Some(42))
        );
        assert_eq!(check_framing(&map(&[])), Ok(None));
    }

    #[test]
    fn signed_spaced_or_conflicting_content_length_is_bad_framing() {
        for bad in ["+5", "-1", "5 ", "0x10", "", "99999999999999999999"] {
            let headers = map(&[("content-length", bad)]);
            assert!(check_framing(&headers).is_err(), "{bad:?}");
        }
        let twice = map(&[("content-length", "5"), ("content-length", "6")]);
        assert!(check_framing(&twice).is_err());
        let both = map(&[("content-length", "5"), ("transfer-encoding", "chunked")]);
        assert!(check_framing(&both).is_err());
    }

    fn who(id: &str) -> (Policy, Identity) {
        let (policy, keys) = fixture::policy();
        let headers = map(&[("x-api-key", keys[id].expose())]);
        let identity = crate::auth::authenticate(&headers, &policy, 0).unwrap();
        (policy, identity)
    }

    #[test]
    fn a_batch_is_refused_whole_when_one_element_is_denied() {
        let (policy, reader) = who("reader");
        let body = br#"[{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"search_deals"}},
                        {"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"create_deal"}}]"#;
        let (denial, id) = evaluate(&policy, &reader, &HeaderMap::new(), body).unwrap_err();
        assert!(matches!(denial, Denial::Forbidden(_)));
        assert_eq!(id, Id::null());
    }

    #[test]
    fn a_batch_costs_the_sum_of_its_messages() {
        let (policy, full) = who("full");
        let body =
            br#"[{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"ask_pipeline"}},
                        {"jsonrpc":"2.0","method":"notifications/initialized"},
                        {"jsonrpc":"2.0","id":3,"method":"tools/list"}]"#;
        let checked = evaluate(&policy, &full, &HeaderMap::new(), body).unwrap();
        assert_eq!(checked.cost, 7);
        assert!(checked.lists_tools);
        assert_eq!(checked.method, "batch");
    }

    #[test]
    fn labels_name_only_what_the_policy_knows() {
        let (policy, full) = who("full");
        let call = |name: &str| {
            format!(
                r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"name":"{name}"}}}}"#
            )
        };
        let checked = evaluate(
            &policy,
            &full,
            &HeaderMap::new(),
            call("search_deals").as_bytes(),
        );
        let checked = checked.unwrap();
        assert_eq!(
            (checked.method.as_str(), checked.tool.as_str()),
            ("tools/call", "search_deals")
        );
        let ping = br#"{"jsonrpc":"2.0","id":"p","method":"ping"}"#;
        let checked = evaluate(&policy, &full, &HeaderMap::new(), ping).unwrap();
        assert_eq!(
            (checked.method.as_str(), checked.tool.as_str()),
            ("ping", "")
        );
    }

    #[test]
    fn mcp_headers_must_agree_with_the_body() {
        let (policy, full) = who("full");
        let body =
            br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"search_deals"}}"#;
        let good = map(&[("mcp-method", "tools/call"), ("mcp-name", "search_deals")]);
        assert!(evaluate(&policy, &full, &good, body).is_ok());
        let wrong_name = map(&[("mcp-method", "tools/call"), ("mcp-name", "get_deal")]);
        let (denial, _) = evaluate(&policy, &full, &wrong_name, body).unwrap_err();
        assert!(matches!(denial, Denial::HeaderMismatch(_)));
        let wrong_method = map(&[("mcp-method", "tools/list")]);
        let (denial, _) = evaluate(&policy, &full, &wrong_method, body).unwrap_err();
        assert!(matches!(denial, Denial::HeaderMismatch(_)));
    }

    #[test]
    fn not_json_and_not_json_rpc_are_told_apart() {
        let (policy, full) = who("full");
        let (d, _) = evaluate(&policy, &full, &HeaderMap::new(), b"{nope").unwrap_err();
        assert_eq!(d, Denial::NotJson);
        let (d, id) = evaluate(
            &policy,
            &full,
            &HeaderMap::new(),
            br#"{"jsonrpc":"1.0","id":9,"method":"x"}"#,
        )
        .unwrap_err();
        assert!(matches!(d, Denial::InvalidRequest(_)));
        let _ = id;
    }
}
