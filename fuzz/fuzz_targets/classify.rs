//! Untrusted bytes through every MCP parser: none may panic, and their invariants hold.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mcpwarden::mcp::{jsonrpc, sse, tools_list};

fuzz_target!(|data: &[u8]| {
    match jsonrpc::classify(data) {
        Ok(body) => {
            assert!(!body.messages().is_empty());
            assert!(body.messages().len() <= jsonrpc::MAX_BATCH);
            for m in body.messages() {
                if let Some(id) = &m.id {
                    // An echoed id must keep the error body valid JSON.
                    let err = jsonrpc::error_response(id, -32600, "x", None);
                    assert!(serde_json_valid(&err), "{}", id.as_raw());
                }
            }
        }
        Err(e) => {
            let err = jsonrpc::error_response(&e.id(), e.code(), &e.to_string(), None);
            assert!(serde_json_valid(&err));
        }
    }

    // Splitting at an arbitrary point gives the events of one push, and loses no byte.
    let cut = data.first().map_or(0, |&b| b as usize % (data.len() + 1));
    let (one, one_rest) = split(&[data]);
    let (two, two_rest) = split(&[&data[..cut], &data[cut..]]);
    assert_eq!(one, two);
    assert_eq!(one_rest, two_rest);
    let total: usize = one.iter().map(|e| e.len()).sum::<usize>() + one_rest.map_or(0, |r| r.len());
    assert_eq!(total, data.len());
    for event in &one {
        let _ = sse::data(event);
        let _ = tools_list::filter_sse_event(event, &|n| n.len() % 2 == 0);
    }

    if let Some(out) = tools_list::filter_json(data, &|n| n.len() % 2 == 0) {
        assert!(serde_json_valid(&out));
    }
});

fn split(chunks: &[&[u8]]) -> (Vec<bytes::Bytes>, Option<bytes::Bytes>) {
    let mut s = sse::Splitter::new();
    let mut out = Vec::new();
    for c in chunks {
        s.push(c, &mut out);
    }
    (out, s.finish())
}

fn serde_json_valid(bytes: &[u8]) -> bool {
    serde_json::from_slice::<serde_json::Value>(bytes).is_ok()
}
