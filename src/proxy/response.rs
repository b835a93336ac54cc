//! On the way back: the `tools/list` filter as a small state machine over body chunks.
//!
//! A JSON result is held until complete (never more than `max_response_bytes`; past that it
//! becomes a -32005 error for the same id), then filtered. An SSE stream is split into events
//! and each event is filtered as it completes, so progress and other messages are not held.

use bytes::{Bytes, BytesMut};

use crate::mcp::jsonrpc::{self, Id};
use crate::mcp::{sse, tools_list};

#[derive(Debug)]
pub enum ToolsFilter {
    Json {
        held: BytesMut,
        limit: u64,
        id: Id,
        overflowed: bool,
    },
    Sse {
        splitter: sse::Splitter,
    },
}

impl ToolsFilter {
    /// The filter for a response of this `Content-Type`, or None when it is neither JSON nor
    /// SSE (such a body passes unchanged).
    pub fn for_content_type(content_type: &str, limit: u64, id: Id) -> Option<Self> {
        let media = content_type.split(';').next().unwrap_or("").trim();
        if media.eq_ignore_ascii_case("application/json") {
            Some(ToolsFilter::Json {
                held: BytesMut::new(),
                limit,
                id,
                overflowed: false,
            })
        } else if media.eq_ignore_ascii_case("text/event-stream") {
            Some(ToolsFilter::Sse {
                splitter: sse::Splitter::new(),
            })
        } else {
            None
        }
    }

    /// Takes one chunk of the upstream body and returns what the client gets now.
    pub fn push(&mut self, chunk: &[u8], end: bool, allowed: &dyn Fn(&str) -> bool) -> Bytes {
        match self {
            ToolsFilter::Json {
                held,
                limit,
                id,
                overflowed,
            } => {
                if !*overflowed {
                    if (held.len() + chunk.len()) as u64 > *limit {
                        *overflowed = true;
                        *held = BytesMut::new();
                    } else {
                        held.extend_from_slice(chunk);
                    }
                }
                if !end {
                    return Bytes::new();
                }
                if *overflowed {
                    let data = serde_json::json!({ "limitBytes": *limit });
                    let message = "response over the gateway's size limit";
                    return jsonrpc::error_response(id, -32005, message, Some(&data)).into();
                }
                let whole = std::mem::take(held).freeze();
                match tools_list::filter_json(&whole, allowed) {
                    Some(filtered) => filtered.into(),
                    None => whole,
                }
            }
            ToolsFilter::Sse { splitter } => {
                let mut events = Vec::new();
                splitter.push(chunk, &mut events);
                if end && let Some(rest) = splitter.finish() {
                    events.push(rest);
                }
                let mut out = BytesMut::new();
                for event in events {
                    match tools_list::filter_sse_event(&event, allowed) {
                        Some(filtered) => out.extend_from_slice(&filtered),
                        None => out.extend_from_slice(&event),
                    }
                }
                out.freeze()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIST: &str = r#"{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"search_deals"},{"name":"create_deal"}]}}"#;

    fn only_search(name: &str) -> bool {
        name == "search_deals"
    }

    #[test]
    fn a_json_list_is_filtered_once_complete() {
        let mut f = ToolsFilter::for_content_type("application/json", 1 << 20, Id::null()).unwrap();
        let (a, b) = LIST.split_at(30);
        assert!(f.push(a.as_bytes(), false, &only_search).is_empty());
        let out = f.push(b.as_bytes(), true, &only_search);
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["result"]["tools"].as_array().unwrap().len(), 1);
        assert_eq!(v["result"]["tools"][0]["name"], "search_deals");
    }

    #[test]
    fn a_json_list_over_the_limit_becomes_an_error_for_its_id() {
        let mut f = ToolsFilter::for_content_type("application/json", 20, Id::null()).unwrap();
        let out = f.push(LIST.as_bytes(), true, &only_search);
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["error"]["code"], -32005);
        assert_eq!(v["error"]["data"]["limitBytes"], 20);
    }

    #[test]
    fn sse_events_are_filtered_as_they_complete() {
        let mut f = ToolsFilter::for_content_type("text/event-stream", 0, Id::null()).unwrap();
        let stream = format!("id: 1\nevent: message\ndata: {LIST}\n\n");
        let (a, b) = stream.split_at(40);
        assert!(f.push(a.as_bytes(), false, &only_search).is_empty());
        let out = f.push(b.as_bytes(), false, &only_search);
        let text = String::from_utf8(out.to_vec()).unwrap();
        assert!(text.starts_with("id: 1\nevent: message\n"), "{text}");
        assert!(text.contains("search_deals") && !text.contains("create_deal"));
        assert!(text.ends_with("\n\n"));
    }

    #[test]
    fn other_content_types_are_not_filtered() {
        assert!(ToolsFilter::for_content_type("text/plain", 10, Id::null()).is_none());
    }
}
