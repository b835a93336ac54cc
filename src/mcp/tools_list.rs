//! Filters a `tools/list` result down to the tools one identity may call.
//!
//! Invariants:
//! - Only `result.tools` (tools removed) and `result.cacheScope` (set to `"private"`, since
//!   the list is now per identity) change. Every other value is copied as the upstream's raw
//!   JSON text, so numbers keep their exact digits (no f64 round trip) and key order is kept;
//!   insignificant whitespace is removed, so the output is compact, single-line JSON.
//! - Fail closed on ambiguity: a tool is kept only if it has a `name` and every `name` key
//!   it carries (JSON parsers differ on duplicates) is a string that `allowed` accepts; a
//!   repeated `tools` or `result` key is filtered in every occurrence.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;

use super::sse;

/// Body is one JSON-RPC response object or a batch array. For each response object whose
/// `result.tools` is an array, keeps only tools whose `name` passes `allowed`, and if
/// `result.cacheScope` is present sets it to `"private"`. Returns `None` if the body has no
/// such result (or is not JSON): callers then pass the original bytes.
pub fn filter_json(body: &[u8], allowed: &dyn Fn(&str) -> bool) -> Option<Vec<u8>> {
    let text = std::str::from_utf8(body).ok()?;
    let top: &RawValue = serde_json::from_str(text).ok()?;
    let mut out = Vec::with_capacity(body.len());
    let found = match top.get().as_bytes().first() {
        Some(b'{') => filter_response(top, allowed, &mut out)?,
        Some(b'[') => {
            let items: Vec<&RawValue> = serde_json::from_str(top.get()).ok()?;
            let mut found = false;
            out.push(b'[');
            for (i, item) in items.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                if item.get().starts_with('{') {
                    found |= filter_response(item, allowed, &mut out)?;
                } else {
                    minify(item.get(), &mut out);
                }
            }
            out.push(b']');
            found
        }
        _ => false,
    };
    found.then_some(out)
}

/// The same for one SSE event: its data is filtered as [`filter_json`] and written back as
/// one `data:` line. `None` when the event has no data or the data no `tools/list` result.
pub fn filter_sse_event(event: &[u8], allowed: &dyn Fn(&str) -> bool) -> Option<Vec<u8>> {
    let data = sse::data(event)?;
    let filtered = filter_json(data.as_bytes(), allowed)?;
    // filter_json copies valid UTF-8 input and escapes keys, so this never fails.
    let filtered = String::from_utf8(filtered).ok()?;
    Some(sse::with_data(event, &filtered))
}

/// Writes one response object; `Some(true)` when it held a `result.tools` array.
fn filter_response(
    raw: &RawValue,
    allowed: &dyn Fn(&str) -> bool,
    out: &mut Vec<u8>,
) -> Option<bool> {
    let RawObject(entries) = serde_json::from_str(raw.get()).ok()?;
    let mut found = false;
    write_object(&entries, out, |key, value, out| {
        if key == "result" && value.get().starts_with('{') {
            found |= filter_result(value, allowed, out)?;
        } else {
            minify(value.get(), out);
        }
        Some(())
    })?;
    Some(found)
}

/// Writes one `result` object; `Some(true)` when it held a `tools` array.
fn filter_result(
    raw: &RawValue,
    allowed: &dyn Fn(&str) -> bool,
    out: &mut Vec<u8>,
) -> Option<bool> {
    let RawObject(entries) = serde_json::from_str(raw.get()).ok()?;
    let has_tools = entries
        .iter()
        .any(|(k, v)| k == "tools" && v.get().starts_with('['));
    if !has_tools {
        minify(raw.get(), out);
        return Some(false);
    }
    write_object(&entries, out, |key, value, out| {
        if key == "tools" && value.get().starts_with('[') {
            let tools: Vec<&RawValue> = serde_json::from_str(value.get()).ok()?;
            out.push(b'[');
            let mut first = true;
            for tool in tools {
                if tool_allowed(tool, allowed)? {
                    if !first {
                        out.push(b',');
                    }
                    first = false;
                    minify(tool.get(), out);
                }
            }
            out.push(b']');
        } else if key == "cacheScope" {
            out.extend_from_slice(br#""private""#);
        } else {
            minify(value.get(), out);
        }
        Some(())
    })?;
    Some(true)
}

fn tool_allowed(tool: &RawValue, allowed: &dyn Fn(&str) -> bool) -> Option<bool> {
    if !tool.get().starts_with('{') {
        return Some(false);
    }
    let RawObject(entries) = serde_json::from_str(tool.get()).ok()?;
    let mut names = entries.iter().filter(|(k, _)| k == "name").peekable();
    if names.peek().is_none() {
        return Some(false);
    }
    Some(names.all(|(_, v)| {
        v.get().starts_with('"')
            && serde_json::from_str::<String>(v.get()).is_ok_and(|n| allowed(&n))
    }))
}

fn write_object<'a>(
    entries: &[(Cow<'a, str>, &'a RawValue)],
    out: &mut Vec<u8>,
    mut value: impl FnMut(&str, &'a RawValue, &mut Vec<u8>) -> Option<()>,
) -> Option<()> {
    out.push(b'{');
    for (i, (key, raw)) in entries.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        serde_json::to_writer(&mut *out, key.as_ref()).ok()?;
        out.push(b':');
        value(key, raw, out)?;
    }
    out.push(b'}');
    Some(())
}

/// Copies valid JSON text without its insignificant whitespace.
fn minify(json: &str, out: &mut Vec<u8>) {
    let (mut in_string, mut escaped) = (false, false);
    for &b in json.as_bytes() {
        if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
        } else if matches!(b, b' ' | b'\t' | b'\n' | b'\r') {
            continue;
        } else if b == b'"' {
            in_string = true;
        }
        out.push(b);
    }
}

/// An object's entries in order (duplicates kept), each value as borrowed raw JSON.
struct RawObject<'a>(Vec<(Cow<'a, str>, &'a RawValue)>);

struct Key<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object key")
            }
            fn visit_borrowed_str<E: de::Error>(self, key: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(key)))
            }
            fn visit_str<E: de::Error>(self, key: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(key.to_owned())))
            }
        }
        d.deserialize_str(V)
    }
}

impl<'de> Deserialize<'de> for RawObject<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawObject<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut entries = Vec::new();
                while let Some((Key(k), v)) = map.next_entry::<Key<'de>, &'de RawValue>()? {
                    entries.push((k, v));
                }
                Ok(RawObject(entries))
            }
        }
        d.deserialize_map(V)
    }
}

#[cfg(test)]
mod tests;
