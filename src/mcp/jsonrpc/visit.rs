//! The partial visitors behind [`super::classify`]. None of them fails on shape: shape
//! problems are recorded and the rest of the value is still scanned, so the only serde errors
//! are syntax errors (NotJson). Only the keys the gateway decides on are read, as borrowed raw
//! JSON; everything else is skipped with `IgnoredAny`.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;

use super::{Id, Kind, MAX_BATCH, Message};

pub(super) type Reason = &'static str;

pub(super) enum Top<'a> {
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
pub(super) struct RawMessage<'a> {
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
    pub(super) fn into_message(self) -> Result<Message, (Option<Id>, Reason)> {
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
    let inner = text.strip_prefix('"')?.strip_suffix('"')?;
    // The parser has checked the token (no raw control characters, escapes well formed), so
    // without a backslash its text is the string itself: the usual method and tool names.
    if !inner.contains('\\') {
        return Some(inner.to_owned());
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
