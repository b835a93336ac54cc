//! On the way back: the `tools/list` filter as a small state machine over body chunks, and
//! the header side of the response cap (`limits::response_cap`), which runs after it:
//! upstream bytes → [`ToolsFilter`] (for `tools/list`) → `Cap` → client.
//!
//! A JSON result is held until complete (never more than `max_response_bytes` of the
//! upstream's list; past that it becomes a -32005 error for the same id), then filtered. An
//! SSE stream is split into events and each event is filtered as it completes, so progress
//! and other messages are not held.
//!
//! Invariant: it fails closed. A result it cannot read (compressed, another media type, not
//! JSON) becomes a JSON-RPC error rather than passing unfiltered, since passing it would show
//! a key every tool name it may not call.

use bytes::{Bytes, BytesMut};
use pingora::Result;
use pingora::http::ResponseHeader;

use super::sessions::SessionSeal;
use crate::auth::Identity;
use crate::limits::response_cap::{Cap, Head, too_large, too_large_event};
use crate::mcp::jsonrpc::{self, Id};
use crate::mcp::{sse, tools_list};
use crate::wire;

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
        limit: u64,
        id: Id,
        overflowed: bool,
    },
    /// The upstream's answer cannot be filtered: the client gets an error instead.
    Refuse { id: Id },
}

const UNFILTERABLE: &str = "the upstream's tools/list result could not be filtered";

impl ToolsFilter {
    /// The filter for a response with this `Content-Type` and `Content-Encoding`.
    pub fn for_response(content_type: &str, encoded: bool, limit: u64, id: Id) -> Self {
        let media = content_type.split(';').next().unwrap_or("").trim();
        if encoded {
            ToolsFilter::Refuse { id }
        } else if media.eq_ignore_ascii_case("application/json") {
            ToolsFilter::Json {
                held: BytesMut::new(),
                limit,
                id,
                overflowed: false,
            }
        } else if media.eq_ignore_ascii_case("text/event-stream") {
            ToolsFilter::Sse {
                splitter: sse::Splitter::new(),
                limit,
                id,
                overflowed: false,
            }
        } else {
            ToolsFilter::Refuse { id }
        }
    }

    /// True when the response's own headers no longer describe the body (it becomes JSON).
    pub fn replaces_body(&self) -> bool {
        matches!(self, ToolsFilter::Refuse { .. })
    }

    /// The result was over the limit and replaced by the -32005 error (the response cap's
    /// cut, counted as such).
    pub fn cut(&self) -> bool {
        match self {
            ToolsFilter::Json { overflowed, .. } | ToolsFilter::Sse { overflowed, .. } => {
                *overflowed
            }
            ToolsFilter::Refuse { .. } => false,
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
                    return too_large(id, *limit).into();
                }
                let whole = std::mem::take(held).freeze();
                match tools_list::filter_json(&whole, allowed) {
                    Some(filtered) => filtered.into(),
                    // No tools in it (an error answer, say): it shows nothing to hide.
                    None if serde_json::from_slice::<serde::de::IgnoredAny>(&whole).is_ok() => {
                        whole
                    }
                    None => jsonrpc::error_response(id, -32006, UNFILTERABLE, None).into(),
                }
            }
            ToolsFilter::Refuse { id } => {
                if end {
                    jsonrpc::error_response(id, -32006, UNFILTERABLE, None).into()
                } else {
                    Bytes::new()
                }
            }
            ToolsFilter::Sse {
                splitter,
                limit,
                id,
                overflowed,
            } => {
                if *overflowed {
                    return Bytes::new();
                }
                let mut events = Vec::new();
                splitter.push(chunk, &mut events);
                if splitter.buffered() as u64 > *limit {
                    // An event that never ends: answer for the pending id, end the stream.
                    *overflowed = true;
                    return too_large_event(id, *limit).into();
                }
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

/// Edits a response's headers as a plain `http::HeaderMap`, outside Pingora's
/// case-preserving map (whose insert parses the name and updates two maps each time; see
/// `forward::rewrite_request`). The client then receives header names in canonical case.
pub fn edit_headers(resp: &mut ResponseHeader, edit: impl FnOnce(&mut http::HeaderMap)) {
    let placeholder = ResponseHeader::from(http::Response::new(()).into_parts().0);
    let mut parts = http::response::Parts::from(std::mem::replace(resp, placeholder));
    edit(&mut parts.headers);
    *resp = ResponseHeader::from(parts);
}

/// Replaces the upstream's `Mcp-Session-Id` with the id sealed to `identity`: the client only
/// ever sees the sealed id (a non-ASCII id cannot be sealed, nor used by a client: it is
/// dropped).
pub fn seal_session_id(
    resp: &mut ResponseHeader,
    seal: &SessionSeal,
    identity: &Identity,
) -> Result<()> {
    let Some(upstream_id) = resp.headers.get(&wire::MCP_SESSION_ID) else {
        return Ok(());
    };
    let sealed = upstream_id
        .to_str()
        .ok()
        .map(|id| seal.seal(id, identity.workspace(), identity.session_owner()));
    resp.remove_header(&wire::MCP_SESSION_ID);
    if let Some(sealed) = sealed {
        resp.insert_header(wire::MCP_SESSION_ID.clone(), sealed)?;
    }
    Ok(())
}

/// Sets up the `tools/list` filter for a successful response and rewrites its headers: the
/// body changes size, so it is sent chunked; a body the filter replaces is labelled JSON,
/// without `Content-Encoding`.
pub fn filter_tools(resp: &mut ResponseHeader, limit: u64, id: Id) -> Result<ToolsFilter> {
    let content_type = resp
        .headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let encoded = resp.headers.contains_key(http::header::CONTENT_ENCODING);
    let filter = ToolsFilter::for_response(content_type, encoded, limit, id);
    if filter.replaces_body() {
        resp.insert_header(http::header::CONTENT_TYPE, "application/json")?;
        resp.remove_header(&http::header::CONTENT_ENCODING);
    }
    resp.remove_header(&http::header::CONTENT_LENGTH);
    resp.insert_header(http::header::TRANSFER_ENCODING, "chunked")?;
    Ok(filter)
}

/// Sets up the response cap from the response's headers as the client will get them (after
/// [`ToolsFilter`] changed them), and rewrites those headers for it: a body that may change
/// size loses `Content-Length` and is sent chunked; a body replaced by the error is labelled
/// JSON, without `Content-Encoding`. `None` for a response without a body (1xx, 204, 304).
pub fn cap_response(
    resp: &mut ResponseHeader,
    limit: u64,
    id: Id,
    tools_call: bool,
) -> Result<Option<Cap>> {
    if resp.status.is_informational() || matches!(resp.status.as_u16(), 204 | 304) {
        return Ok(None);
    }
    let headers = &resp.headers;
    let mut lengths = headers.get_all(http::header::CONTENT_LENGTH).iter();
    // A body framed by chunks, or with a length that does not parse, has no known length.
    let length = match (lengths.next(), lengths.next()) {
        (Some(n), None) if !headers.contains_key(http::header::TRANSFER_ENCODING) => {
            n.to_str().ok().and_then(|n| n.parse().ok())
        }
        _ => None,
    };
    let head = Head {
        content_type: headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or(""),
        encoded: headers.contains_key(http::header::CONTENT_ENCODING),
        length,
    };
    let cap = Cap::for_response(head, limit, id, tools_call);
    if cap.replaces_headers() {
        resp.insert_header(http::header::CONTENT_TYPE, "application/json")?;
        resp.remove_header(&http::header::CONTENT_ENCODING);
    }
    if !cap.keeps_length() {
        resp.remove_header(&http::header::CONTENT_LENGTH);
        resp.insert_header(http::header::TRANSFER_ENCODING, "chunked")?;
    }
    Ok(Some(cap))
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
        let mut f = ToolsFilter::for_response("application/json", false, 1 << 20, Id::null());
        let (a, b) = LIST.split_at(30);
        assert!(f.push(a.as_bytes(), false, &only_search).is_empty());
        let out = f.push(b.as_bytes(), true, &only_search);
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["result"]["tools"].as_array().unwrap().len(), 1);
        assert_eq!(v["result"]["tools"][0]["name"], "search_deals");
    }

    #[test]
    fn a_json_list_over_the_limit_becomes_an_error_for_its_id() {
        let mut f = ToolsFilter::for_response("application/json", false, 20, Id::null());
        let out = f.push(LIST.as_bytes(), true, &only_search);
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["error"]["code"], -32005);
        assert_eq!(v["error"]["data"]["limitBytes"], 20);
    }

    #[test]
    fn sse_events_are_filtered_as_they_complete() {
        let mut f = ToolsFilter::for_response("text/event-stream", false, 1 << 20, Id::null());
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
    fn what_cannot_be_filtered_becomes_an_error_not_the_full_list() {
        let refusals = [
            ToolsFilter::for_response("text/plain", false, 1 << 20, Id::null()),
            ToolsFilter::for_response("application/json", true, 1 << 20, Id::null()),
        ];
        for mut f in refusals {
            assert!(f.replaces_body());
            assert!(f.push(LIST.as_bytes(), false, &only_search).is_empty());
            let out = f.push(b"", true, &only_search);
            let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
            assert_eq!(v["error"]["code"], -32006);
            assert!(!String::from_utf8_lossy(&out).contains("create_deal"));
        }
        let mut f = ToolsFilter::for_response("application/json", false, 1 << 20, Id::null());
        let out = f.push(b"{\"tools\": [not json", true, &only_search);
        assert!(!String::from_utf8_lossy(&out).contains("not json"));
    }

    #[test]
    fn an_sse_event_that_never_ends_is_cut_at_the_limit() {
        let mut f = ToolsFilter::for_response("text/event-stream", false, 100, Id::null());
        let out = f.push(
            format!("data: {}", "x".repeat(200)).as_bytes(),
            false,
            &only_search,
        );
        let text = String::from_utf8(out.to_vec()).unwrap();
        assert!(text.contains("-32005") && text.ends_with("\n\n"), "{text}");
        assert!(f.push(b"more\n\n", true, &only_search).is_empty());
    }

    fn upstream_head(headers: &[(&str, &str)]) -> ResponseHeader {
        let mut resp = ResponseHeader::build(200, None).unwrap();
        for (name, value) in headers {
            resp.append_header(name.to_string(), *value).unwrap();
        }
        resp
    }

    fn header<'a>(resp: &'a ResponseHeader, name: &str) -> Option<&'a str> {
        resp.headers.get(name).map(|v| v.to_str().unwrap())
    }

    #[test]
    fn a_length_within_the_cap_keeps_its_headers() {
        let mut resp = upstream_head(&[
            ("content-type", "application/json"),
            ("content-length", "100"),
        ]);
        let cap = cap_response(&mut resp, 1000, Id::null(), true).unwrap();
        assert!(cap.unwrap().keeps_length());
        assert_eq!(header(&resp, "content-length"), Some("100"));
        assert_eq!(header(&resp, "transfer-encoding"), None);
    }

    #[test]
    fn a_body_that_may_change_is_sent_chunked_and_a_replaced_one_is_labelled_json() {
        let mut resp = upstream_head(&[
            ("content-type", "application/json"),
            ("content-length", "5000"),
        ]);
        cap_response(&mut resp, 1000, Id::null(), true).unwrap();
        assert_eq!(header(&resp, "content-length"), None);
        assert_eq!(header(&resp, "transfer-encoding"), Some("chunked"));
        let mut resp = upstream_head(&[
            ("content-type", "text/html"),
            ("content-encoding", "gzip"),
            ("content-length", "5000"),
        ]);
        let cap = cap_response(&mut resp, 1000, Id::null(), true)
            .unwrap()
            .unwrap();
        assert!(cap.replaces_headers());
        assert_eq!(header(&resp, "content-type"), Some("application/json"));
        assert_eq!(header(&resp, "content-encoding"), None);
        assert_eq!(header(&resp, "content-length"), None);
    }

    #[test]
    fn responses_without_a_body_are_not_capped() {
        let mut resp = ResponseHeader::build(204, None).unwrap();
        assert!(
            cap_response(&mut resp, 1000, Id::null(), false)
                .unwrap()
                .is_none()
        );
        assert_eq!(header(&resp, "transfer-encoding"), None);
    }

    #[test]
    fn a_filtered_sse_list_then_the_cap_never_passes_the_limit() {
        let mut filter = ToolsFilter::for_response("text/event-stream", false, 1000, Id::null());
        let mut cap = Cap::for_response(
            Head {
                content_type: "text/event-stream",
                encoded: false,
                length: None,
            },
            1000,
            Id::null(),
            false,
        );
        let list = format!("data: {LIST}\n\n");
        let mut out = Vec::new();
        for _ in 0..20 {
            let filtered = filter.push(list.as_bytes(), false, &only_search);
            out.extend_from_slice(&cap.push(filtered, false));
        }
        let text = String::from_utf8(out).unwrap();
        assert!(text.len() <= 1000, "{}", text.len());
        assert!(text.contains("search_deals") && !text.contains("create_deal"));
        assert!(text.ends_with("\n\n") && text.contains("-32005"));
        assert!(cap.cut() && !filter.cut());
    }
}
