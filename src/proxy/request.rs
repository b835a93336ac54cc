//! Decisions about a request, as plain functions over headers and bytes: is its framing safe
//! to forward, and what does its JSON-RPC body ask for.

use http::{HeaderMap, HeaderName};

use crate::auth::Identity;
use crate::authorize::{self, Asked};
use crate::denial::Denial;
use crate::mcp::jsonrpc::{self, Id};
use crate::policy::{Naming, Policy};
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

/// The client waits to be told to send its body (`Expect: 100-continue`).
pub fn expects_continue(headers: &HeaderMap) -> bool {
    headers
        .get(http::header::EXPECT)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"))
}

/// A body the gateway refuses (boxed: refusals are rare, and it is large): why, the id its
/// error carries, and the `method` and `tool` labels it is counted under (empty when the body
/// is not JSON-RPC).
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
    // A single request's rule is looked up once, for its labels and for its decision.
    let single = match parsed.messages() {
        [message] if !parsed.is_batch() => message
            .method()
            .map(|method| authorize::lookup(policy, method, message.tool())),
        _ => None,
    };
    // Labelled before the decision, so a refusal counts under the method and tool it asked for.
    let (method, tool) = match &single {
        _ if parsed.is_batch() => ("batch", ""),
        Some(found) => labels(found),
        None => ("response", ""),
    };
    let decided = check_mcp_headers(headers, &parsed).and_then(|()| {
        match &single {
            Some(found) => authorize::decide(found, identity),
            None => parsed.messages().iter().try_fold(0u32, |cost, message| {
                authorize::check(policy, identity, message.method(), message.tool())
                    .map(|c| cost.saturating_add(c))
            }),
        }
        .map_err(Denial::Forbidden)
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

/// Metric labels for one message: a name a policy rule matches, else `other`. Rules may be
/// globs, so an authenticated client could invent matching names (`search_<random>`): names
/// a rule names exactly are always labelled by name (the policy's text bounds them), while of
/// the names only a glob matches, the first [`LabelNames::CAP`] are labelled by name and later
/// new ones as `other`, so no client can grow the series without bound, nor push the
/// policy's own names into `other`.
fn labels(found: &authorize::Lookup<'_>) -> (&'static str, &'static str) {
    static NAMES: std::sync::LazyLock<LabelNames> =
        std::sync::LazyLock::new(|| LabelNames::new(LabelNames::CAP));
    match found.asked {
        Asked::Tool(tool) => ("tools/call", NAMES.label(found.naming, tool)),
        Asked::Method("tools/call") => ("tools/call", ""),
        Asked::Method(method) => (NAMES.label(found.naming, method), ""),
    }
}

/// The method and tool names metrics label by name.
///
/// Names are interned for the life of the process (leaked), so labelling a request allocates
/// nothing once its names are known: every name a policy rule names exactly (bounded by the
/// policies an operator writes), and at most [`LabelNames::CAP`] names that only a glob
/// matched (a few more if requests race for the last places).
pub struct LabelNames {
    seen: dashmap::DashSet<&'static str, ahash::RandomState>,
    /// Names interned because a glob matched them: the ones a client can choose.
    invented: std::sync::atomic::AtomicUsize,
    cap: usize,
}

impl LabelNames {
    pub const CAP: usize = 1000;

    pub fn new(cap: usize) -> Self {
        Self {
            seen: dashmap::DashSet::default(),
            invented: std::sync::atomic::AtomicUsize::new(0),
            cap,
        }
    }

    /// `name` when a rule matched it and it is known, written in the policy, or there is
    /// room for another invented name; else `other`.
    pub fn label(&self, naming: Naming, name: &str) -> &'static str {
        use std::sync::atomic::Ordering::Relaxed;
        if naming == Naming::None {
            return "other";
        }
        if let Some(known) = self.seen.get(name) {
            return *known;
        }
        let invented = naming == Naming::Glob;
        if invented && self.invented.load(Relaxed) >= self.cap {
            return "other";
        }
        // Two requests may intern the same new name at once; the loser's copy is the only
        // one ever wasted, and only once per name.
        let interned: &'static str = Box::leak(name.into());
        if self.seen.insert(interned) {
            if invented {
                self.invented.fetch_add(1, Relaxed);
            }
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
mod tests;
