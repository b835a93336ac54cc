//! Decisions about a request, as plain functions over headers and bytes: is its framing safe
//! to forward, and what does its JSON-RPC body ask for.

use http::{HeaderMap, HeaderName};

use crate::auth::Identity;
use crate::authorize;
use crate::denial::Denial;
use crate::mcp::jsonrpc::{self, Id};
use crate::policy::Policy;
use crate::wire;

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
    pub method: &'static str,
    /// `tool` metric label: the tool name when a rule matches it, `other` when none does,
    /// empty for methods other than `tools/call`.
    pub tool: &'static str,
    /// The request includes `tools/list`, so its result is filtered on the way back.
    pub lists_tools: bool,
}

/// Refuses, before anything is read, a request whose shape could slip past the body checks:
/// - a `Content-Length` that is not plain digits (Pingora accepts `+5`), repeated with
///   different values, or next to `Transfer-Encoding` — two parsers could frame it
///   differently (request smuggling);
/// - a protocol upgrade (`Upgrade:`), which would turn the connection into a tunnel whose
///   bytes no JSON-RPC check sees;
/// - a body on GET or DELETE, which the gateway does not authorize;
/// - a repeated or non-ASCII `Mcp-Session-Id`, `Mcp-Method` or `Mcp-Name`, so the gateway and
///   the upstream cannot read different values.
///
/// Returns the declared body length.
pub fn check_shape(method: &http::Method, headers: &HeaderMap) -> Result<Option<u64>, Denial> {
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
    let chunked = headers.contains_key(http::header::TRANSFER_ENCODING);
    if length.is_some() && chunked {
        return Err(Denial::BadFraming(
            "Content-Length and Transfer-Encoding together",
        ));
    }
    if headers.contains_key(http::header::UPGRADE) {
        return Err(Denial::BadFraming("protocol upgrades are not proxied"));
    }
    if *method != http::Method::POST && (chunked || length.is_some_and(|n| n > 0)) {
        return Err(Denial::BadFraming("GET and DELETE carry no body"));
    }
    for name in [&wire::MCP_SESSION_ID, &wire::MCP_METHOD, &wire::MCP_NAME] {
        let mut values = headers.get_all(name).iter();
        if let Some(first) = values.next()
            && (values.next().is_some() || first.to_str().is_err())
        {
            return Err(Denial::BadFraming(
                "Mcp-Session-Id, Mcp-Method and Mcp-Name appear at most once, in visible ASCII",
            ));
        }
    }
    Ok(length)
}

/// A body the gateway refuses (boxed: refusals are rare, and it is large): why, the id its error carries, and the `method` and `tool`
/// labels it is counted under (empty when the body is not JSON-RPC).
#[derive(Debug)]
pub struct Refused {
    pub denial: Denial,
    pub id: Id,
    pub method: &'static str,
    pub tool: &'static str,
}

/// Parses and authorizes a POST body: every message of a batch is checked and counted; a
/// batch with any refused element is refused whole (with id `null`).
pub fn evaluate(
    policy: &Policy,
    identity: &Identity,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Checked, Box<Refused>> {
    let parsed = jsonrpc::classify(body).map_err(|e| {
        let denial = match e {
            jsonrpc::ParseError::NotJson => Denial::NotJson,
            jsonrpc::ParseError::Invalid { reason, .. } => Denial::InvalidRequest(reason),
        };
        Box::new(Refused {
            denial,
            id: e.id(),
            method: "",
            tool: "",
        })
    })?;
    let id = parsed.first_id();
    // Labelled before the decision, so a refusal counts under the method and tool it asked for.
    let (method, tool) = if parsed.is_batch() {
        ("batch", "")
    } else {
        let message = &parsed.messages()[0];
        labels(policy, message.method(), message.tool())
    };
    let decided = check_mcp_headers(headers, &parsed).and_then(|()| {
        let mut cost: u32 = 0;
        for message in parsed.messages() {
            let c = authorize::check(policy, identity, message.method(), message.tool())
                .map_err(Denial::Forbidden)?;
            cost = cost.saturating_add(c);
        }
        Ok(cost)
    });
    match decided {
        Ok(cost) => Ok(Checked {
            id,
            cost,
            method,
            tool,
            lists_tools: parsed
                .messages()
                .iter()
                .any(|m| m.method() == Some("tools/list")),
        }),
        Err(denial) => Err(Box::new(Refused {
            denial,
            id,
            method,
            tool,
        })),
    }
}

/// Metric labels for one message: a name a policy rule matches, else `other`. Rules are
/// globs, so an authenticated client could still invent matching names
/// (`notifications/<random>`); the first [`LabelNames::CAP`] distinct names are labelled by
/// name and later new ones as `other`, so no client can grow the series without bound.
fn labels(
    policy: &Policy,
    method: Option<&str>,
    tool: Option<&str>,
) -> (&'static str, &'static str) {
    static NAMES: std::sync::LazyLock<LabelNames> =
        std::sync::LazyLock::new(|| LabelNames::new(LabelNames::CAP));
    let Some(method) = method else {
        return ("response", "");
    };
    let method_label = if method == "tools/call" {
        "tools/call"
    } else {
        NAMES.label(policy.method_rule(method).is_some(), method)
    };
    let tool_label = tool.map_or("", |t| NAMES.label(policy.tool_rule(t).is_some(), t));
    (method_label, tool_label)
}

/// The set of method and tool names that metrics label by name, bounded.
///
/// Names are interned for the life of the process (leaked): at most [`LabelNames::CAP`] of
/// them, ever, so labelling a request allocates nothing.
pub struct LabelNames {
    seen: dashmap::DashSet<&'static str, ahash::RandomState>,
    cap: usize,
}

impl LabelNames {
    pub const CAP: usize = 1000;

    pub fn new(cap: usize) -> Self {
        Self {
            seen: dashmap::DashSet::default(),
            cap,
        }
    }

    /// `name` when a rule matched it and it is known or there is room; else `other`.
    pub fn label(&self, matched: bool, name: &str) -> &'static str {
        if !matched {
            return "other";
        }
        if let Some(known) = self.seen.get(name) {
            return *known;
        }
        if self.seen.len() >= self.cap {
            return "other";
        }
        // Two requests may intern the same new name at once; the loser's copy is the only
        // one ever wasted, and only once per name.
        let interned: &'static str = Box::leak(name.into());
        if self.seen.insert(interned) {
            interned
        } else {
            self.seen.get(name).map_or("other", |k| *k)
        }
    }
}

/// `Mcp-Method` and `Mcp-Name`, when present, must agree with the body; otherwise a proxy
/// routing on headers and a server acting on the body would see different requests.
fn check_mcp_headers(headers: &HeaderMap, body: &jsonrpc::Body) -> Result<(), Denial> {
    let header = |name: &HeaderName| headers.get(name).map(|v| v.to_str().unwrap_or("\u{fffd}"));
    let method = header(&wire::MCP_METHOD);
    let name = header(&wire::MCP_NAME);
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

    fn check_framing(headers: &HeaderMap) -> Result<Option<u64>, Denial> {
        check_shape(&http::Method::POST, headers)
    }

    #[test]
    fn upgrades_and_bodies_on_get_or_delete_are_refused() {
        let ws = map(&[("upgrade", "websocket"), ("connection", "upgrade")]);
        assert!(check_shape(&http::Method::GET, &ws).is_err());
        for method in [http::Method::GET, http::Method::DELETE] {
            assert!(check_shape(&method, &map(&[("content-length", "5")])).is_err());
            assert!(check_shape(&method, &map(&[("transfer-encoding", "chunked")])).is_err());
            assert_eq!(
                check_shape(&method, &map(&[("content-length", "0")])),
                Ok(Some(0))
            );
            assert_eq!(check_shape(&method, &map(&[])), Ok(None));
        }
    }

    #[test]
    fn repeated_mcp_headers_are_refused() {
        for name in ["mcp-session-id", "mcp-method", "mcp-name"] {
            let twice = map(&[(name, "a"), (name, "b")]);
            assert!(check_framing(&twice).is_err(), "{name}");
            assert!(check_framing(&map(&[(name, "a")])).is_ok(), "{name}");
        }
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
        let Refused { denial, id, .. } =
            *evaluate(&policy, &reader, &HeaderMap::new(), body).unwrap_err();
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
            (checked.method, checked.tool),
            ("tools/call", "search_deals")
        );
        let ping = br#"{"jsonrpc":"2.0","id":"p","method":"ping"}"#;
        let checked = evaluate(&policy, &full, &HeaderMap::new(), ping).unwrap();
        assert_eq!((checked.method, checked.tool), ("ping", ""));
        // A refusal is counted under the names it asked for (`other` for a tool no rule
        // matches), like an allowed call.
        let refused = evaluate(
            &policy,
            &full,
            &HeaderMap::new(),
            call("no_rule").as_bytes(),
        )
        .unwrap_err();
        assert_eq!((refused.method, refused.tool), ("tools/call", "other"));
        let (policy, reader) = who("reader");
        let refused = evaluate(
            &policy,
            &reader,
            &HeaderMap::new(),
            call("create_deal").as_bytes(),
        )
        .unwrap_err();
        assert!(matches!(refused.denial, Denial::Forbidden(_)));
        assert_eq!(refused.tool, "create_deal");
    }

    #[test]
    fn label_names_are_bounded() {
        let names = LabelNames::new(3);
        for i in 0..5 {
            names.label(true, &format!("invented_{i}"));
        }
        assert_eq!(names.label(true, "invented_1"), "invented_1");
        assert_eq!(names.label(true, "invented_4"), "other");
        assert_eq!(names.label(false, "invented_0"), "other");
    }

    #[test]
    fn mcp_headers_must_agree_with_the_body() {
        let (policy, full) = who("full");
        let body =
            br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"search_deals"}}"#;
        let good = map(&[("mcp-method", "tools/call"), ("mcp-name", "search_deals")]);
        assert!(evaluate(&policy, &full, &good, body).is_ok());
        let wrong_name = map(&[("mcp-method", "tools/call"), ("mcp-name", "get_deal")]);
        let Refused { denial, .. } = *evaluate(&policy, &full, &wrong_name, body).unwrap_err();
        assert!(matches!(denial, Denial::HeaderMismatch(_)));
        let wrong_method = map(&[("mcp-method", "tools/list")]);
        let Refused { denial, .. } = *evaluate(&policy, &full, &wrong_method, body).unwrap_err();
        assert!(matches!(denial, Denial::HeaderMismatch(_)));
    }

    #[test]
    fn not_json_and_not_json_rpc_are_told_apart() {
        let (policy, full) = who("full");
        let Refused { denial: d, .. } =
            *evaluate(&policy, &full, &HeaderMap::new(), b"{nope").unwrap_err();
        assert_eq!(d, Denial::NotJson);
        let Refused { denial: d, id, .. } = *evaluate(
            &policy,
            &full,
            &HeaderMap::new(),
            br#"{"jsonrpc":"1.0","id":9,"method":"x"}"#,
        )
        .unwrap_err();
        assert!(matches!(d, Denial::InvalidRequest(_)));
        // The id is still read from a message that is not valid JSON-RPC, so the error
        // answers it.
        assert_eq!(id.as_raw(), "9");
    }
}
