//! Classifies a JSON-RPC request body: which messages it holds, their ids, methods and, for
//! `tools/call`, tool names; and builds the gateway's own JSON-RPC error bodies.
//!
//! Invariants:
//! - One pass over the body with borrowed, partial visitors: `arguments`, `result` and every
//!   other value the gateway does not decide on are skipped by serde_json's iterative
//!   `ignore_value` (no tree, no recursion), so a 200 KB `tools/call` costs one scan.
//! - The gateway and the upstream must never disagree on a message's `method`, `id` or tool
//!   `name`: a message that repeats any of the keys `jsonrpc`, `id`, `method`, `params`,
//!   `result`, `error` (or `params.name` of a `tools/call`) is refused as Invalid, rather
//!   than picking first or last as different JSON parsers do. Keys are compared after
//!   unescaping, so `"m\u0065thod"` counts as `method`.
//! - Syntax errors always win over shape errors: a body that is not JSON is NotJson (-32700)
//!   even if an earlier element was already known to be invalid. Bodies must be UTF-8
//!   (RFC 8259 §8.1), including inside skipped strings.
//! - Nesting depth is bounded by serde_json's recursion limit (128) where values are
//!   visited; skipped values are scanned iteratively and cannot exhaust the stack.
//! - A batch holds at most [`MAX_BATCH`] messages.
//! - Ids are kept as the client's raw JSON text and echoed verbatim (`1.0`, `-0`, `"a\"b"`,
//!   integers beyond 64 bits).

mod visit;

use visit::Top;

use serde_json::value::RawValue;

/// The largest batch accepted. Every element is authorized and rate-counted, so a bound keeps
/// one request's work (and the memory of its classification, ~100 bytes a message) small;
/// 1,000 is far above what any MCP client batches (the 2025-06-18 revision dropped batching).
pub const MAX_BATCH: usize = 1000;

/// A JSON-RPC id exactly as the client sent it (number text, string with its escapes, or
/// null), echoed back verbatim.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Id(Box<str>);

impl Id {
    /// The `null` id, for errors about a body whose id is unknown, or a whole batch.
    pub fn null() -> Id {
        Id("null".into())
    }

    /// The id's JSON text, ready to be written into a JSON document.
    pub fn as_raw(&self) -> &str {
        &self.0
    }

    /// Accepts the raw text of a string, number or null; refuses objects, arrays and bools.
    fn from_raw(raw: &RawValue) -> Option<Id> {
        let text = raw.get();
        match text.as_bytes().first() {
            Some(b'"' | b'-' | b'0'..=b'9' | b'n') => Some(Id(text.into())),
            _ => None,
        }
    }
}

/// What one message is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Has `method` and `id`; `tool` is `params.name` of a `tools/call`.
    Request {
        method: String,
        tool: Option<String>,
    },
    /// Has `method` and no `id`.
    Notification { method: String },
    /// Has `id` and `result` or `error` and no `method`: a client's reply to a server request
    /// (sampling, elicitation, roots).
    Response,
}

/// One classified message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    /// `None` for notifications.
    pub id: Option<Id>,
    pub kind: Kind,
}

impl Message {
    /// The method of a request or notification.
    pub fn method(&self) -> Option<&str> {
        match &self.kind {
            Kind::Request { method, .. } | Kind::Notification { method } => Some(method),
            Kind::Response => None,
        }
    }

    /// The tool name of a `tools/call` request.
    pub fn tool(&self) -> Option<&str> {
        match &self.kind {
            Kind::Request { tool, .. } => tool.as_deref(),
            _ => None,
        }
    }
}

/// A classified body: one message, or a batch (a JSON array) of them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Body {
    Single(Message),
    Batch(Vec<Message>),
}

impl Body {
    pub fn messages(&self) -> &[Message] {
        match self {
            Body::Single(m) => std::slice::from_ref(m),
            Body::Batch(ms) => ms,
        }
    }

    pub fn is_batch(&self) -> bool {
        matches!(self, Body::Batch(_))
    }

    /// The id an error about the whole body carries: a single message's id, else `null`.
    pub fn first_id(&self) -> Id {
        match self {
            Body::Single(Message { id: Some(id), .. }) => id.clone(),
            _ => Id::null(),
        }
    }
}

/// Why a body is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// Not UTF-8 JSON, trailing garbage, or nested beyond the recursion limit (-32700).
    #[error("parse error: the body is not JSON")]
    NotJson,
    /// JSON, but not a JSON-RPC 2.0 message or batch (-32600). `id` is the single message's
    /// id when it was readable, else `null` (always `null` for a batch).
    #[error("invalid request: {reason}")]
    Invalid { id: Id, reason: &'static str },
}

impl ParseError {
    pub fn code(&self) -> i32 {
        match self {
            ParseError::NotJson => -32700,
            ParseError::Invalid { .. } => -32600,
        }
    }

    pub fn id(&self) -> Id {
        match self {
            ParseError::NotJson => Id::null(),
            ParseError::Invalid { id, .. } => id.clone(),
        }
    }
}

/// Classifies a request body. See the module docs for the rules.
pub fn classify(body: &[u8]) -> Result<Body, ParseError> {
    let text = std::str::from_utf8(body).map_err(|_| ParseError::NotJson)?;
    let parsed: Top<'_> = serde_json::from_str(text).map_err(|_| ParseError::NotJson)?;
    let invalid = |id: Option<Id>, reason| ParseError::Invalid {
        id: id.unwrap_or_else(Id::null),
        reason,
    };
    match parsed {
        Top::Single(raw) => raw
            .into_message()
            .map(Body::Single)
            .map_err(|(id, r)| invalid(id, r)),
        Top::Batch(Err(reason)) => Err(invalid(None, reason)),
        Top::Batch(Ok(raws)) => raws
            .into_iter()
            .map(|raw| raw.into_message().map_err(|(_, r)| invalid(None, r)))
            .collect::<Result<Vec<_>, _>>()
            .map(Body::Batch),
        Top::Other => Err(invalid(
            None,
            "a body is a JSON object or an array of objects",
        )),
    }
}

/// `{"jsonrpc":"2.0","id":<id>,"error":{"code":..,"message":..,"data":..}}`, with no `data`
/// key when `data` is `None`.
pub fn error_response(
    id: &Id,
    code: i32,
    message: &str,
    data: Option<&serde_json::Value>,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(64 + id.as_raw().len() + message.len());
    out.extend_from_slice(br#"{"jsonrpc":"2.0","id":"#);
    out.extend_from_slice(id.as_raw().as_bytes());
    out.extend_from_slice(br#","error":{"code":"#);
    out.extend_from_slice(code.to_string().as_bytes());
    out.extend_from_slice(br#","message":"#);
    // Serializing a str or a Value into a Vec cannot fail (Value keys are always strings).
    serde_json::to_writer(&mut out, message).expect("a str serializes");
    if let Some(data) = data {
        out.extend_from_slice(br#","data":"#);
        serde_json::to_writer(&mut out, data).expect("a Value serializes");
    }
    out.extend_from_slice(b"}}");
    out
}

#[cfg(test)]
mod tests;
