use proptest::prelude::*;
use serde_json::{Value, json};

use super::*;

fn id(raw: &str) -> Id {
    let body = format!(r#"{{"jsonrpc":"2.0","id":{raw},"method":"ping"}}"#);
    jsonrpc::classify(body.as_bytes()).unwrap().first_id()
}

fn head(content_type: &str, length: Option<usize>) -> Head<'_> {
    Head {
        content_type,
        encoded: false,
        length: length.map(|n| n as u64),
    }
}

/// Feeds `body` cut at `cuts` (offsets, any order) and returns everything the client got.
fn run(cap: &mut Cap, body: &[u8], cuts: &[usize]) -> Vec<u8> {
    let mut cuts: Vec<usize> = cuts.iter().map(|&c| c.min(body.len())).collect();
    cuts.sort_unstable();
    cuts.push(body.len());
    let mut out = Vec::new();
    let mut from = 0;
    for (i, &to) in cuts.iter().enumerate() {
        let end = i + 1 == cuts.len();
        out.extend_from_slice(&cap.push(Bytes::copy_from_slice(&body[from..to]), end));
        from = to;
    }
    out
}

fn parse(out: &[u8]) -> Value {
    serde_json::from_slice(out).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(out)))
}

fn text_result(id: u64, text: &str) -> String {
    json!({"jsonrpc":"2.0","id":id,"result":{"content":[{"type":"text","text":text}],"isError":false}})
        .to_string()
}

#[test]
fn a_known_length_within_the_limit_streams_through_untouched() {
    let body = text_result(1, &"x".repeat(500));
    let mut cap = Cap::for_response(
        head("application/json", Some(body.len())),
        600,
        id("1"),
        true,
    );
    assert!(cap.keeps_length() && !cap.replaces_headers());
    let (a, b) = body.split_at(100);
    assert_eq!(cap.push(Bytes::from(a.to_owned()), false), a.as_bytes());
    assert_eq!(cap.push(Bytes::from(b.to_owned()), true), b.as_bytes());
    assert!(!cap.cut());
}

#[test]
fn a_known_length_over_the_limit_is_the_error_at_once_unless_a_tools_call() {
    let body = text_result(1, &"x".repeat(5000));
    let mut cap = Cap::for_response(
        head("application/json", Some(body.len())),
        1000,
        id("1"),
        false,
    );
    assert!(!cap.keeps_length() && cap.replaces_headers());
    let out = cap.push(Bytes::from(body[..10].to_owned()), false);
    let v = parse(&out);
    assert_eq!(v["id"], 1);
    assert_eq!(v["error"]["code"], -32005);
    assert_eq!(v["error"]["data"]["limitBytes"], 1000);
    assert!(cap.cut());
    assert!(
        cap.push(Bytes::from(body[10..].to_owned()), true)
            .is_empty()
    );
}

#[test]
fn a_tools_call_text_result_over_the_limit_is_cut_and_marked() {
    let body = text_result(1, &"x".repeat(5000));
    for length in [Some(body.len()), None] {
        let mut cap = Cap::for_response(head("application/json", length), 1000, id("1"), true);
        assert!(!cap.keeps_length() && !cap.replaces_headers());
        let out = run(&mut cap, body.as_bytes(), &[300, 700, 1200]);
        assert!(out.len() <= 1000 && out.len() > 900, "{}", out.len());
        let v = parse(&out);
        assert_eq!(v["id"], 1);
        let text = v["result"]["content"][0]["text"].as_str().unwrap();
        assert!(text.bytes().all(|b| b == b'x'));
        assert_eq!(v["result"]["_meta"]["mcpwarden/truncated"], true);
        assert!(cap.cut());
    }
}

#[test]
fn a_body_without_length_is_held_and_passes_unchanged_when_it_fits() {
    let body = text_result(1, "hello");
    let mut cap = Cap::for_response(head("application/json", None), 1000, id("1"), true);
    let (a, b) = body.split_at(10);
    assert!(cap.push(Bytes::from(a.to_owned()), false).is_empty());
    assert_eq!(cap.push(Bytes::from(b.to_owned()), true), body.as_bytes());
    assert!(!cap.cut());
}

#[test]
fn what_cannot_be_cut_becomes_the_error_for_the_pending_id() {
    let image = json!({"jsonrpc":"2.0","id":"a","result":{"content":[{"type":"image","data":"A".repeat(3000)}]}}).to_string();
    let batch = format!("[{}]", text_result(1, &"x".repeat(3000)));
    let list = json!({"jsonrpc":"2.0","id":"a","result":{"tools":[{"name":"x".repeat(3000)}]}})
        .to_string();
    for (body, tools_call) in [(&image, true), (&batch, true), (&list, false)] {
        let mut cap = Cap::for_response(
            head("application/json", None),
            1000,
            id(r#""a""#),
            tools_call,
        );
        let out = run(&mut cap, body.as_bytes(), &[500]);
        let v = parse(&out);
        assert_eq!(v["id"], "a");
        assert_eq!(v["error"]["code"], -32005);
        assert!(cap.cut());
    }
}

#[test]
fn encoded_bodies_pass_within_the_limit_and_are_refused_over_it() {
    let gzip = Head {
        content_type: "application/json",
        encoded: true,
        length: Some(100),
    };
    let cap = Cap::for_response(gzip, 1000, id("1"), true);
    assert!(cap.keeps_length());
    let mut cap = Cap::for_response(
        Head {
            length: Some(5000),
            ..gzip
        },
        1000,
        id("1"),
        true,
    );
    assert!(
        cap.replaces_headers(),
        "a cut compressed body is never sent"
    );
    let out = cap.push(Bytes::from_static(b"\x1f\x8b..."), false);
    assert_eq!(parse(&out)["error"]["code"], -32005);
    let mut cap = Cap::for_response(
        Head {
            length: None,
            ..gzip
        },
        1000,
        id("1"),
        true,
    );
    assert!(!cap.replaces_headers());
    let out = run(&mut cap, &[0x1f; 3000], &[10]);
    assert_eq!(parse(&out)["error"]["code"], -32005);
}

#[test]
fn other_media_types_are_held_but_never_cut() {
    let mut cap = Cap::for_response(head("text/plain", None), 1000, id("1"), true);
    assert_eq!(run(&mut cap, b"short", &[2]), b"short");
    let mut cap = Cap::for_response(head("text/plain", None), 1000, id("1"), true);
    let out = run(&mut cap, "y".repeat(2000).as_bytes(), &[999, 1000, 1001]);
    assert_eq!(parse(&out)["error"]["code"], -32005);
}

const PRIMING: &str = "id: 0\nretry: 3000\ndata: \n\n";

#[test]
fn sse_events_pass_as_they_complete() {
    let mut cap = Cap::for_response(head("text/event-stream", None), 1000, id("3"), true);
    assert!(!cap.keeps_length());
    assert_eq!(
        cap.push(Bytes::from_static(PRIMING.as_bytes()), false),
        PRIMING
    );
    assert_eq!(
        cap.push(Bytes::from_static(b": keep-alive\n\nda"), false),
        ": keep-alive\n\n"
    );
    assert_eq!(
        cap.push(Bytes::from_static(b"ta: {}\r\n\r\n"), true),
        "data: {}\r\n\r\n"
    );
    assert!(!cap.cut());
}

#[test]
fn the_sse_event_that_would_cross_the_limit_becomes_the_error_and_ends_the_stream() {
    let big = format!(
        "event: message\ndata: {}\n\n",
        text_result(3, &"x".repeat(2000))
    );
    let stream = format!("{PRIMING}{big}data: after\n\n");
    let mut cap = Cap::for_response(head("text/event-stream", None), 1000, id("3"), true);
    let out = run(&mut cap, stream.as_bytes(), &[PRIMING.len() + 10]);
    let out = String::from_utf8(out).unwrap();
    let error = String::from_utf8(too_large_event(&id("3"), 1000)).unwrap();
    assert_eq!(out, format!("{PRIMING}{error}"));
    assert!(out.len() <= 1000);
    assert!(cap.cut());
}

#[test]
fn an_sse_event_that_never_ends_is_cut_before_the_end_of_the_stream() {
    let mut cap = Cap::for_response(head("text/event-stream", None), 1000, Id::null(), false);
    assert!(
        cap.push(Bytes::from(format!("data: {}", "x".repeat(700))), false)
            .is_empty()
    );
    let out = cap.push(Bytes::from("x".repeat(700)), false);
    assert!(String::from_utf8_lossy(&out).contains("-32005"));
    assert!(cap.cut());
    assert!(cap.push(Bytes::from_static(b"\n\n"), true).is_empty());
}

#[test]
fn a_limit_smaller_than_the_error_still_answers_with_the_error() {
    let mut cap = Cap::for_response(head("application/json", None), 10, id("1"), false);
    let out = run(
        &mut cap,
        b"{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{}}",
        &[],
    );
    assert_eq!(parse(&out)["error"]["code"], -32005);
}

/// One character of a JSON string, and how it is written: raw, escaped by serde, or as
/// `\uXXXX` (a surrogate pair above U+FFFF).
fn json_char() -> impl Strategy<Value = (char, bool)> {
    let c = prop_oneof![
        4 => proptest::char::range('a', 'z'),
        1 => Just('"'),
        1 => Just('\\'),
        1 => Just('\n'),
        1 => Just('\u{1}'),
        1 => Just('é'),
        1 => Just('€'),
        1 => Just('😀'),
    ];
    (c, any::<bool>())
}

fn json_string(chars: &[(char, bool)]) -> (String, String) {
    let mut literal = String::from("\"");
    let mut text = String::new();
    for &(c, as_u) in chars {
        text.push(c);
        if as_u {
            let mut units = [0u16; 2];
            for u in c.encode_utf16(&mut units) {
                literal.push_str(&format!("\\u{u:04x}"));
            }
        } else {
            let quoted = serde_json::to_string(&c.to_string()).unwrap();
            literal.push_str(&quoted[1..quoted.len() - 1]);
        }
    }
    literal.push('"');
    (literal, text)
}

/// A `tools/call` text result in one of the shapes upstreams write.
fn result_body(literal: &str, shape: u8) -> String {
    match shape {
        0 => format!(
            r#"{{"jsonrpc":"2.0","id":5,"result":{{"content":[{{"type":"text","text":{literal}}}],"isError":false}}}}"#
        ),
        1 => format!(r#"{{"result":{{"content":[{{"text":{literal},"type":"text"}}]}},"id":5}}"#),
        2 => format!(
            "{{\n  \"jsonrpc\": \"2.0\",\n  \"id\": 5,\n  \"result\": {{\n    \"content\": [\n      {{ \"type\": \"text\", \"annotations\": {{\"a\": [1, {{}}]}}, \"text\": {literal} }}\n    ]\n  }}\n}}"
        ),
        _ => format!(
            r#"{{"jsonrpc":"2.0","id":5,"result":{{"content":[{{"type":"text","text":"first"}},{{"type":"text","text":{literal}}}]}}}}"#
        ),
    }
}

fn cuts() -> impl Strategy<Value = Vec<usize>> {
    proptest::collection::vec(0usize..4000, 0..8)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn json_output_is_the_same_for_any_split_and_never_over_the_limit(
        chars in proptest::collection::vec(json_char(), 0..600),
        shape in 0u8..4,
        limit in 250usize..1500,
        tools_call in any::<bool>(),
        known_length in any::<bool>(),
        cuts in cuts(),
    ) {
        let (literal, text) = json_string(&chars);
        let body = result_body(&literal, shape);
        let length = known_length.then_some(body.len());
        let new = || Cap::for_response(head("application/json", length), limit as u64, id("5"), tools_call);
        let whole = run(&mut new(), body.as_bytes(), &[]);
        prop_assert_eq!(&run(&mut new(), body.as_bytes(), &cuts), &whole);
        prop_assert!(whole.len() <= limit);
        if body.len() <= limit {
            prop_assert_eq!(whole, body.as_bytes());
            return Ok(());
        }
        let v = parse(&whole);
        prop_assert_eq!(&v["id"], 5);
        if tools_call {
            let content = v["result"]["content"].as_array().unwrap();
            let cut = content.last().unwrap()["text"].as_str().unwrap();
            prop_assert!(text.starts_with(cut), "{:?} is not a prefix", cut);
            prop_assert_eq!(&v["result"]["_meta"]["mcpwarden/truncated"], true);
            prop_assert_eq!(&content.last().unwrap()["type"], "text");
        } else {
            prop_assert_eq!(&v["error"]["code"], -32005);
        }
    }
}

/// An SSE event: `id`/`event` lines, comments, and a JSON message on one or several `data:`
/// lines, every line ended by `term`.
fn sse_event() -> impl Strategy<Value = String> {
    let term = prop_oneof![Just("\n"), Just("\r\n"), Just("\r")];
    let kind = 0u8..4;
    let size = 0usize..300;
    (term, kind, size, any::<bool>()).prop_map(|(term, kind, size, pretty)| {
        let message = json!({"jsonrpc":"2.0","method":"notifications/progress","params":{"note":"n".repeat(size)}});
        let data = if pretty {
            serde_json::to_string_pretty(&message).unwrap()
        } else {
            message.to_string()
        };
        let mut event = String::new();
        match kind {
            0 => event.push_str(": keep-alive"),
            1 => event.push_str("id: 0\nretry: 3000\ndata: ".replace('\n', term).as_str()),
            _ => {
                event.push_str(&format!("id: {size}{term}event: message"));
                for line in data.split('\n') {
                    event.push_str(&format!("{term}data: {line}"));
                }
            }
        }
        event.push_str(term);
        event.push_str(term);
        event
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn sse_output_is_the_same_for_any_split_and_never_over_the_limit(
        events in proptest::collection::vec(sse_event(), 0..12),
        limit in 300usize..3000,
        cuts in cuts(),
    ) {
        let stream = events.concat();
        let new = || Cap::for_response(head("text/event-stream", None), limit as u64, id("9"), true);
        let whole = run(&mut new(), stream.as_bytes(), &[]);
        prop_assert_eq!(&run(&mut new(), stream.as_bytes(), &cuts), &whole);
        prop_assert!(whole.len() <= limit);
        // The events that fit pass whole, in order; the first that does not is the error.
        let error = too_large_event(&id("9"), limit as u64);
        let budget = limit - error.len();
        let mut expected = Vec::new();
        let mut over = false;
        for event in &events {
            if expected.len() + event.len() > budget {
                over = true;
                break;
            }
            expected.extend_from_slice(event.as_bytes());
        }
        if over {
            expected.extend_from_slice(&error);
        }
        prop_assert_eq!(whole, expected);
    }
}

/// Bytes that matter to the tokenizer and the splitter, and some that do not.
fn noise() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        Just(&b"{"[..]),
        Just(&b"}"[..]),
        Just(&b"["[..]),
        Just(&b"]"[..]),
        Just(&b"\""[..]),
        Just(&b"\\"[..]),
        Just(&b":"[..]),
        Just(&b","[..]),
        Just(&b"\n"[..]),
        Just(&b"\r"[..]),
        Just(&b"\"result\":{\"content\":[{\"text\":\""[..]),
        Just(&b"\\ud83d"[..]),
        Just(&"é".as_bytes()[..1]),
        Just(&b"data: "[..]),
        Just(&b"x"[..]),
    ];
    proptest::collection::vec(piece, 0..400).prop_map(|ps| ps.concat())
}

proptest! {
    #[test]
    fn arbitrary_bodies_never_pass_the_limit_and_split_the_same(
        body in noise(),
        media in prop_oneof![Just("application/json"), Just("text/event-stream"), Just("text/plain")],
        limit in 200usize..600,
        cuts in cuts(),
    ) {
        let new = || Cap::for_response(head(media, None), limit as u64, id("1"), true);
        let whole = run(&mut new(), &body, &[]);
        prop_assert_eq!(&run(&mut new(), &body, &cuts), &whole);
        prop_assert!(whole.len() <= limit);
    }
}
