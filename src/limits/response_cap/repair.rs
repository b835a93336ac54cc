//! Cuts an oversized `tools/call` result down to fit: from the first bytes of a JSON-RPC
//! response, a well-formed response whose text content is cut and marked
//! `"_meta":{"mcpwarden/truncated":true}`.
//!
//! Invariants:
//! - One forward scan of the prefix by a byte-level tokenizer that follows only the
//!   containers on the path `result.content[N].text` (depth ≤ 4; deeper ones are counted, not
//!   stored). No tree is built and no value is copied; a second scan over the kept text finds
//!   the boundary.
//! - The text cut is the last `result.content[N].text` string the prefix reaches, whether the
//!   prefix ends inside it or after it, as long as no later content item has started (a
//!   body just over the limit is cut like one far over it). Everything after the cut is
//!   dropped; `id` and `jsonrpc` are added back from the request if they had not come yet.
//! - The answer is the prefix up to a character boundary inside that text — never inside an
//!   escape, a `\uXXXX` surrogate pair or a UTF-8 sequence — followed by the bytes that close
//!   it, and is at most `limit` bytes long. Given a prefix of valid JSON, it is valid JSON.
//! - Whatever cannot be closed with certainty gets `None` (the caller answers with the
//!   -32005 error instead): a batch, no such text (an image item last, a `tools/call`
//!   error), a key on the path before the text that repeats or is written with escapes
//!   (parsers differ on both), a `result._meta` or top-level `error` before the text, an item
//!   whose `type` is not `"text"`.
//! - Known loss: keys the upstream writes after `content` (rmcp: `structuredContent`,
//!   `isError`) are past the cut and dropped with the rest; the answer is a plain text
//!   result.

use crate::mcp::jsonrpc::Id;

/// The text to cut, and what the closing bytes need.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Cut {
    /// Offset of the text's first byte (just after its opening quote).
    text_start: usize,
    /// Offset of its closing quote, when the prefix holds it.
    text_end: Option<usize>,
    /// The content item already has `"type":"text"`.
    has_type: bool,
    has_id: bool,
    has_jsonrpc: bool,
}

/// Cuts `prefix` (the first bytes of a response longer than `limit`), in place, to a
/// well-formed response of at most `limit` bytes; `false` (and `prefix` unchanged) when that
/// cannot be done safely.
pub(super) fn truncate(prefix: &mut Vec<u8>, limit: usize, id: &Id) -> bool {
    let Some(cut) = locate(prefix) else {
        return false;
    };
    let tail = closing(&cut, id);
    let Some(room) = limit.checked_sub(cut.text_start + tail.len()) else {
        return false;
    };
    let text = &prefix[cut.text_start..cut.text_end.unwrap_or(prefix.len())];
    let text_end = cut.text_start + safe_end(text, room);
    // Shorter than before: no reallocation.
    prefix.truncate(text_end);
    prefix.extend_from_slice(&tail);
    true
}

/// The bytes that close the string, the content item, the array, `result` and the response.
fn closing(cut: &Cut, id: &Id) -> Vec<u8> {
    let mut tail = Vec::with_capacity(96 + id.as_raw().len());
    tail.push(b'"');
    if !cut.has_type {
        tail.extend_from_slice(br#","type":"text""#);
    }
    tail.extend_from_slice(br#"}],"_meta":{"mcpwarden/truncated":true}}"#);
    if !cut.has_id {
        tail.extend_from_slice(br#","id":"#);
        tail.extend_from_slice(id.as_raw().as_bytes());
    }
    if !cut.has_jsonrpc {
        tail.extend_from_slice(br#","jsonrpc":"2.0""#);
    }
    tail.push(b'}');
    tail
}

/// The keys that matter on the path, as bits of [`Frame::seen`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Key {
    Result = 1,
    Id = 2,
    Jsonrpc = 4,
    Content = 8,
    Text = 16,
    Type = 32,
    Other = 0,
}

/// One open container on the path (depth 1: the response, 2: `result`, 3: `content`, 4: an
/// item of `content`).
#[derive(Debug, Clone, Copy, Default)]
struct Frame {
    on_path: bool,
    object: bool,
    /// In an object, the next string is a key.
    expect_key: bool,
    /// The key whose value is being read.
    key: Option<Key>,
    seen: u8,
    /// The item's `type` was the string `"text"`.
    type_text: bool,
}

const PATH_DEPTH: usize = 4;

/// Scans `p` for the text to cut (see the module docs).
fn locate(p: &[u8]) -> Option<Cut> {
    let mut frames = [Frame::default(); PATH_DEPTH];
    let mut depth = 0usize;
    let mut cut = None;
    // Something seen rules out cutting any text that starts after it.
    let mut poisoned = false;
    let mut i = 0;
    while i < p.len() {
        match p[i] {
            b'"' => {
                let start = i + 1;
                let end = string_end(p, start);
                if (1..=PATH_DEPTH).contains(&depth) && frames[depth - 1].on_path {
                    let top = frames[0].seen;
                    let frame = &mut frames[depth - 1];
                    if frame.object && frame.expect_key {
                        let Some(end) = end else { break };
                        let key = classify(depth, &p[start..end]).unwrap_or_else(|| {
                            poisoned = true;
                            Key::Other
                        });
                        poisoned |= frame.seen & key as u8 != 0;
                        frame.seen |= key as u8;
                        frame.key = Some(key);
                        frame.expect_key = false;
                    } else if depth == PATH_DEPTH && frame.key == Some(Key::Type) {
                        frame.type_text = end.is_some_and(|e| &p[start..e] == b"text");
                    } else if depth == PATH_DEPTH && frame.key == Some(Key::Text) {
                        let other_type = frame.seen & Key::Type as u8 != 0 && !frame.type_text;
                        if !poisoned && !other_type {
                            cut = Some(Cut {
                                text_start: start,
                                text_end: end,
                                has_type: frame.type_text,
                                has_id: top & Key::Id as u8 != 0,
                                has_jsonrpc: top & Key::Jsonrpc as u8 != 0,
                            });
                        }
                    }
                }
                match end {
                    Some(end) => i = end + 1,
                    None => break,
                }
                continue;
            }
            open @ (b'{' | b'[') => {
                depth += 1;
                if depth <= PATH_DEPTH {
                    let object = open == b'{';
                    let on_path = match depth {
                        // A batch (or anything but an object) is never cut.
                        1 if !object => return None,
                        1 => true,
                        _ => {
                            let parent = frames[depth - 2];
                            parent.on_path
                                && match depth {
                                    2 => object && parent.key == Some(Key::Result),
                                    3 => !object && parent.key == Some(Key::Content),
                                    _ => object && !parent.object,
                                }
                        }
                    };
                    if depth == PATH_DEPTH && on_path {
                        // A later content item: the text before it is no longer last.
                        cut = None;
                    }
                    frames[depth - 1] = Frame {
                        on_path,
                        object,
                        expect_key: object,
                        ..Frame::default()
                    };
                }
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            b',' if (1..=PATH_DEPTH).contains(&depth) => {
                let frame = &mut frames[depth - 1];
                frame.expect_key = frame.object;
                frame.key = None;
            }
            _ => {}
        }
        i += 1;
    }
    cut
}

/// The index of the quote that closes the string whose first byte is at `start`, or `None`
/// when `p` ends inside it.
fn string_end(p: &[u8], mut start: usize) -> Option<usize> {
    loop {
        let at = start
            + p.get(start..)?
                .iter()
                .position(|&b| b == b'"' || b == b'\\')?;
        if p[at] == b'"' {
            return Some(at);
        }
        start = at + 2;
    }
}

/// A key at `depth` on the path; `None` when it rules out cutting a text after it (escaped,
/// so it could be any key; or a key whose presence rules out a cut).
fn classify(depth: usize, key: &[u8]) -> Option<Key> {
    if key.contains(&b'\\') {
        return None;
    }
    Some(match (depth, key) {
        (1, b"result") => Key::Result,
        (1, b"id") => Key::Id,
        (1, b"jsonrpc") => Key::Jsonrpc,
        (1, b"error") | (2, b"_meta") => return None,
        (2, b"content") => Key::Content,
        (4, b"text") => Key::Text,
        (4, b"type") => Key::Type,
        _ => Key::Other,
    })
}

/// The largest `n ≤ max` such that `text[..n]` is whole characters and whole escapes; a
/// character or escape that `text` does not hold entirely is left out.
fn safe_end(text: &[u8], max: usize) -> usize {
    let mut at = 0;
    while let Some(n) = unit_len(&text[at..]) {
        if at + n > max {
            break;
        }
        at += n;
    }
    at
}

/// The length of the character or escape `rest` starts with, if `rest` holds all of it.
fn unit_len(rest: &[u8]) -> Option<usize> {
    let n = match *rest.first()? {
        b'\\' => match rest.get(1)? {
            b'u' => {
                let high = hex4(rest.get(2..6)?)?;
                if !(0xD800..0xDC00).contains(&high) {
                    6
                } else if rest.len() < 12 {
                    // The low half may be next: wait for it rather than split the pair.
                    return None;
                } else if rest[6] == b'\\'
                    && rest[7] == b'u'
                    && hex4(&rest[8..12]).is_some_and(|low| (0xDC00..0xE000).contains(&low))
                {
                    12
                } else {
                    6
                }
            }
            _ => 2,
        },
        0xC0..=0xDF => 2,
        0xE0..=0xEF => 3,
        0xF0..=0xF7 => 4,
        _ => 1,
    };
    (rest.len() >= n).then_some(n)
}

fn hex4(digits: &[u8]) -> Option<u32> {
    std::str::from_utf8(digits)
        .ok()
        .and_then(|d| u32::from_str_radix(d, 16).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id7() -> Id {
        crate::mcp::jsonrpc::classify(br#"{"jsonrpc":"2.0","id":7,"method":"ping"}"#)
            .unwrap()
            .first_id()
    }

    fn cut(json: &str, limit: usize) -> Option<serde_json::Value> {
        let mut out = json.as_bytes().to_vec();
        if !truncate(&mut out, limit, &id7()) {
            assert_eq!(out, json.as_bytes(), "unchanged when refused");
            return None;
        }
        assert!(out.len() <= limit, "{} > {limit}", out.len());
        Some(serde_json::from_slice(&out).unwrap_or_else(|e| {
            panic!("{e}: {}", String::from_utf8_lossy(&out));
        }))
    }

    const RMCP: &str = r#"{"jsonrpc":"2.0","id":7,"result":{"content":[{"type":"text","text":"0123456789abcdefghij"}],"isError":false}}"#;

    #[test]
    fn a_text_result_is_cut_and_marked() {
        // 68 bytes up to the text, 42 to close it: 10 bytes of text fit in 120.
        let v = cut(&RMCP[..85], 120).unwrap();
        let text = v["result"]["content"][0]["text"].as_str().unwrap();
        assert_eq!(text, "0123456789");
        assert_eq!(v["result"]["_meta"]["mcpwarden/truncated"], true);
        assert_eq!(v["result"]["content"][0]["type"], "text");
        assert_eq!(v["id"], 7);
    }

    #[test]
    fn missing_type_id_and_jsonrpc_are_added() {
        let json = r#"{"result":{"content":[{"text":"abcdefghijklmnopqrstuvwxyz"#;
        let v = cut(json, 200).unwrap();
        assert_eq!(v["result"]["content"][0]["type"], "text");
        assert_eq!(v["id"], 7);
        assert_eq!(v["jsonrpc"], "2.0");
        assert_eq!(
            v["result"]["content"][0]["text"],
            "abcdefghijklmnopqrstuvwxyz"
        );
    }

    #[test]
    fn the_cut_never_splits_an_escape_a_pair_or_a_character() {
        let json =
            r#"{"id":7,"result":{"content":[{"type":"text","text":"ab\n\u00e9\ud83d\ude00é😀\"x"#;
        for limit in 0..json.len() + 100 {
            if let Some(v) = cut(json, limit) {
                let text = v["result"]["content"][0]["text"].as_str().unwrap();
                assert!("ab\né😀é😀\"x".starts_with(text), "{limit}: {text:?}");
            }
        }
    }

    #[test]
    fn cuts_it_cannot_close_safely_are_refused() {
        let refused = [
            // A batch.
            r#"[{"id":7,"result":{"content":[{"type":"text","text":"abc"#,
            // No text item last.
            r#"{"id":7,"result":{"content":[{"type":"image","data":"abc"#,
            r#"{"id":7,"result":{"content":[{"type":"text","text":"a"},{"type":"image","data":"b"#,
            // A text field of an item that is not text.
            r#"{"id":7,"result":{"content":[{"type":"image","text":"abc"#,
            // _meta already there.
            r#"{"id":7,"result":{"_meta":{},"content":[{"type":"text","text":"abc"#,
            // Repeated or escaped keys on the path.
            r#"{"id":7,"result":{"content":[]},"result":{"content":[{"text":"abc"#,
            r#"{"id":7,"result":{"content":[{"type":"text","type":"text","text":"abc"#,
            r#"{"id":7,"result":{"content":[{"t\u0065xt":"abc"#,
            // An error response, and text outside result.content.
            r#"{"id":7,"error":{},"result":{"content":[{"text":"abc"#,
            r#"{"id":7,"result":{"other":[{"text":"abc"#,
            r#"{"id":7,"result":{"content":[{"x":{"text":"abc"#,
        ];
        for json in refused {
            assert_eq!(cut(json, 1000), None, "{json}");
        }
    }

    #[test]
    fn a_prefix_that_ends_after_the_text_still_cuts_it() {
        let v = cut(&RMCP[..RMCP.len() - 5], 1000).unwrap();
        assert_eq!(v["result"]["content"][0]["text"], "0123456789abcdefghij");
        assert_eq!(v["result"]["_meta"]["mcpwarden/truncated"], true);
        // What comes after the text is dropped, a repeated key with it.
        let json = r#"{"id":7,"result":{"content":[{"text":"a","text":"b"#;
        let v = cut(json, 1000).unwrap();
        assert_eq!(v["result"]["content"][0]["text"], "a");
    }

    #[test]
    fn a_later_item_is_cut_and_earlier_ones_kept() {
        let json = r#"{"jsonrpc":"2.0","id":7,"result":{"content":[{"type":"image","data":"AA=="},{"type":"text","text":"abc"#;
        let v = cut(json, 1000).unwrap();
        assert_eq!(v["result"]["content"][0]["data"], "AA==");
        assert_eq!(v["result"]["content"][1]["text"], "abc");
    }

    #[test]
    fn too_small_a_limit_is_refused_and_the_smallest_that_fits_keeps_an_empty_text() {
        let json = r#"{"id":7,"result":{"content":[{"type":"text","text":"abc"#;
        let smallest = (0..200).find(|&l| cut(json, l).is_some()).unwrap();
        // The prefix up to the text, a quote and `}],"_meta":{…}}`, `,"jsonrpc":"2.0"}`.
        assert_eq!(smallest, json.len() - 3 + 58);
        let v = cut(json, smallest).unwrap();
        assert_eq!(v["result"]["content"][0]["text"], "");
    }
}
