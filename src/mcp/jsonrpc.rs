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

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
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

// ---------------------------------------------------------------------------------------
// The partial visitors. None of them fails on shape: shape problems are recorded and the
// rest of the value is still scanned, so the only serde errors are syntax errors (NotJson).

type Reason = &'static str;

enum Top<'a> {
    Single(RawMessage<'a>),
    Batch(Result<Vec<RawMessage<'a>>, Reason>),
    Other,
}

/// One element of a batch: an object, or something that is not.
enum Element<'a> {
    Object(RawMessage<'a>),
    Other,
}

/// The keys of a message the gateway reads, each as borrowed raw JSON.
#[derive(Default)]
struct RawMessage<'a> {
    jsonrpc: Option<&'a RawValue>,
    id: Option<&'a RawValue>,
    method: Option<&'a RawValue>,
    params: Option<Params<'a>>,
    has_result: bool,
    has_error: bool,
    duplicate: bool,
}

/// What `params` held, as far as `tools/call` cares.
enum Params<'a> {
    Object {
        name: Option<&'a RawValue>,
        duplicate_name: bool,
    },
    Other,
}

impl RawMessage<'_> {
    fn into_message(self) -> Result<Message, (Option<Id>, Reason)> {
        let id = match self.id {
            None => None,
            Some(raw) => match Id::from_raw(raw) {
                Some(id) => Some(id),
                None => return Err((None, "id must be a string, a number or null")),
            },
        };
        let fail = |reason| Err((id.clone(), reason));
        if self.duplicate {
            return fail("a message repeats one of jsonrpc, id, method, params, result, error");
        }
        match self.jsonrpc {
            Some(v) if v.get() == r#""2.0""# || string(v).as_deref() == Some("2.0") => {}
            _ => return fail(r#"jsonrpc must be "2.0""#),
        }
        let Some(method) = self.method else {
            return match (self.has_result, self.has_error, &id) {
                (true, false, Some(_)) | (false, true, Some(_)) => Ok(Message {
                    id,
                    kind: Kind::Response,
                }),
                (true, true, _) => fail("a response has result or error, not both"),
                _ => fail("a message needs a method, or an id and a result or error"),
            };
        };
        let Some(method) = string(method) else {
            return fail("method must be a string");
        };
        if self.has_result || self.has_error {
            return fail("a request has no result or error");
        }
        let Some(id) = id else {
            return Ok(Message {
                id: None,
                kind: Kind::Notification { method },
            });
        };
        let tool = if method == "tools/call" {
            match self.params {
                Some(Params::Object {
                    name: Some(name),
                    duplicate_name: false,
                }) => match string(name) {
                    Some(name) => Some(name),
                    None => return Err((Some(id), "tools/call needs params.name")),
                },
                Some(Params::Object {
                    duplicate_name: true,
                    ..
                }) => {
                    return Err((Some(id), "tools/call repeats params.name"));
                }
                _ => return Err((Some(id), "tools/call needs params.name")),
            }
        } else {
            None
        };
        Ok(Message {
            id: Some(id),
            kind: Kind::Request { method, tool },
        })
    }
}

/// The decoded string if `raw` is a JSON string.
fn string(raw: &RawValue) -> Option<String> {
    let text = raw.get();
    if !text.starts_with('"') {
        return None;
    }
    serde_json::from_str(text).ok()
}

/// The message keys the gateway reads, after unescaping.
enum Key {
    Jsonrpc,
    Id,
    Method,
    Params,
    Result,
    Error,
    Other,
}

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Key;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object key")
            }
            fn visit_str<E: de::Error>(self, key: &str) -> Result<Key, E> {
                Ok(match key {
                    "jsonrpc" => Key::Jsonrpc,
                    "id" => Key::Id,
                    "method" => Key::Method,
                    "params" => Key::Params,
                    "result" => Key::Result,
                    "error" => Key::Error,
                    _ => Key::Other,
                })
            }
        }
        d.deserialize_identifier(V)
    }
}

/// `true` when the key is `name`.
struct IsName(bool);

impl<'de> Deserialize<'de> for IsName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = IsName;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object key")
            }
            fn visit_str<E: de::Error>(self, key: &str) -> Result<IsName, E> {
                Ok(IsName(key == "name"))
            }
        }
        d.deserialize_identifier(V)
    }
}

fn read_message<'de, A: MapAccess<'de>>(mut map: A) -> Result<RawMessage<'de>, A::Error> {
    let mut m = RawMessage::default();
    fn put<'de, T, A: MapAccess<'de>>(
        map: &mut A,
        slot: &mut Option<T>,
        dup: &mut bool,
    ) -> Result<(), A::Error>
    where
        T: Deserialize<'de>,
    {
        let value = map.next_value::<T>()?;
        *dup |= slot.is_some();
        *slot = Some(value);
        Ok(())
    }
    while let Some(key) = map.next_key::<Key>()? {
        match key {
            Key::Jsonrpc => put(&mut map, &mut m.jsonrpc, &mut m.duplicate)?,
            Key::Id => put(&mut map, &mut m.id, &mut m.duplicate)?,
            Key::Method => put(&mut map, &mut m.method, &mut m.duplicate)?,
            Key::Params => put(&mut map, &mut m.params, &mut m.duplicate)?,
            Key::Result | Key::Error => {
                map.next_value::<IgnoredAny>()?;
                let seen = if matches!(key, Key::Result) {
                    &mut m.has_result
                } else {
                    &mut m.has_error
                };
                m.duplicate |= *seen;
                *seen = true;
            }
            Key::Other => {
                map.next_value::<IgnoredAny>()?;
            }
        }
    }
    Ok(m)
}

/// Implements `deserialize_any` for a type that only cares about objects (and, for `Top`,
/// arrays): every other JSON value maps to `$other` after being consumed.
macro_rules! scalar_visits {
    ($other:expr) => {
        fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
            Ok($other)
        }
        fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
            Ok($other)
        }
        fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
            Ok($other)
        }
        fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
            Ok($other)
        }
        fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
            Ok($other)
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok($other)
        }
    };
}

fn drain_seq<'de, A: SeqAccess<'de>>(mut seq: A) -> Result<(), A::Error> {
    while seq.next_element::<IgnoredAny>()?.is_some() {}
    Ok(())
}

impl<'de> Deserialize<'de> for Params<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Params<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("params")
            }
            scalar_visits!(Params::Other);
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
                drain_seq(seq)?;
                Ok(Params::Other)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let (mut name, mut duplicate_name) = (None, false);
                while let Some(IsName(is_name)) = map.next_key()? {
                    if is_name {
                        duplicate_name |= name.is_some();
                        name = Some(map.next_value::<&RawValue>()?);
                    } else {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
                Ok(Params::Object {
                    name,
                    duplicate_name,
                })
            }
        }
        d.deserialize_any(V)
    }
}

impl<'de> Deserialize<'de> for Element<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Element<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON-RPC message")
            }
            scalar_visits!(Element::Other);
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
                drain_seq(seq)?;
                Ok(Element::Other)
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                read_message(map).map(Element::Object)
            }
        }
        d.deserialize_any(V)
    }
}

impl<'de> Deserialize<'de> for Top<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Top<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON-RPC message or batch")
            }
            scalar_visits!(Top::Other);
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                read_message(map).map(Top::Single)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut messages = Vec::new();
                let mut problem = None;
                // After the first problem, keep scanning (a later syntax error still makes the
                // body NotJson) but stop keeping messages.
                while problem.is_none() {
                    match seq.next_element::<Element<'de>>()? {
                        None => break,
                        Some(_) if messages.len() == MAX_BATCH => {
                            problem = Some("a batch holds at most 1000 messages");
                        }
                        Some(Element::Object(m)) => messages.push(m),
                        Some(Element::Other) => problem = Some("a batch element is not an object"),
                    }
                }
                drain_seq(seq)?;
                Ok(Top::Batch(match problem {
                    Some(reason) => Err(reason),
                    None if messages.is_empty() => Err("an empty batch is not a request"),
                    None => Ok(messages),
                }))
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests;
