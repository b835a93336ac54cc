//! Upstream bytes through the response cap: it never panics, never passes more than the
//! limit, never depends on where the chunks are cut, and what it makes of a JSON body that
//! was well-formed is well-formed.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use mcpwarden::limits::response_cap::{Cap, Head};
use mcpwarden::mcp::jsonrpc::Id;

fuzz_target!(|data: &[u8]| {
    let Some((&control, body)) = data.split_first() else {
        return;
    };
    // The first byte picks the framing, the limit and where to cut the body in two.
    let content_type = if control & 1 == 0 { "application/json" } else { "text/event-stream" };
    let length = (control & 2 != 0).then_some(body.len() as u64);
    let limit = 1000 + u64::from(control >> 2) * 16;
    let cut = body.first().map_or(0, |&b| b as usize * body.len() / 256);
    let run = |chunks: &[&[u8]]| {
        let head = Head { content_type, encoded: false, length };
        let mut cap = Cap::for_response(head, limit, Id::null(), true);
        let mut out = Vec::new();
        for (i, chunk) in chunks.iter().enumerate() {
            let end = i + 1 == chunks.len();
            out.extend_from_slice(&cap.push(Bytes::copy_from_slice(chunk), end));
        }
        (out, cap.cut())
    };
    let (whole, cut_whole) = run(&[body]);
    let (split, cut_split) = run(&[&body[..cut], &body[cut..]]);
    assert_eq!(whole, split);
    assert_eq!(cut_whole, cut_split);
    assert!(whole.len() as u64 <= limit, "{} > {limit}", whole.len());
    let json = |b: &[u8]| serde_json::from_slice::<serde_json::Value>(b).is_ok();
    if cut_whole && content_type == "application/json" && json(body) {
        assert!(json(&whole), "{}", String::from_utf8_lossy(&whole));
    }
});
