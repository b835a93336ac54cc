use proptest::prelude::*;

use super::*;

fn split_all(chunks: &[&[u8]]) -> (Vec<Bytes>, Option<Bytes>) {
    let mut s = Splitter::new();
    let mut out = Vec::new();
    for c in chunks {
        s.push(c, &mut out);
    }
    (out, s.finish())
}

fn events(body: &[u8]) -> Vec<Bytes> {
    split_all(&[body]).0
}

#[test]
fn lf_events_are_split_at_blank_lines() {
    let (ev, rest) = split_all(&[b"event: message\ndata: {\"a\":1}\n\ndata: 2\n\ndata: partial"]);
    assert_eq!(
        ev,
        vec![
            Bytes::from_static(b"event: message\ndata: {\"a\":1}\n\n"),
            Bytes::from_static(b"data: 2\n\n")
        ]
    );
    assert_eq!(rest.as_deref(), Some(&b"data: partial"[..]));
}

#[test]
fn crlf_events_split_across_chunks() {
    let body = b"id: 1\r\ndata: a\r\n\r\ndata: b\r\n\r\n";
    for cut in 0..=body.len() {
        let (ev, rest) = split_all(&[&body[..cut], &body[cut..]]);
        assert_eq!(
            ev,
            vec![
                Bytes::from_static(b"id: 1\r\ndata: a\r\n\r\n"),
                Bytes::from_static(b"data: b\r\n\r\n")
            ],
            "cut at {cut}"
        );
        assert_eq!(rest, None);
    }
}

#[test]
fn cr_only_events_are_split() {
    let (ev, rest) = split_all(&[b"data: a\r\rdata: b\r\r"]);
    assert_eq!(ev, vec![Bytes::from_static(b"data: a\r\r")]);
    // The last CR might still be followed by LF, so it waits for more bytes or the end.
    assert_eq!(rest.as_deref(), Some(&b"data: b\r\r"[..]));
}

#[test]
fn a_blank_line_cr_waits_for_a_possible_lf() {
    let mut s = Splitter::new();
    let mut out = Vec::new();
    s.push(b"data: a\r\n\r", &mut out);
    assert!(out.is_empty());
    assert_eq!(s.buffered(), 10);
    s.push(b"\ndata: b", &mut out);
    assert_eq!(out, vec![Bytes::from_static(b"data: a\r\n\r\n")]);
    assert_eq!(s.buffered(), 7);
}

#[test]
fn mixed_line_endings_follow_the_spec() {
    assert_eq!(
        events(b"data: a\r\n\nx"),
        vec![Bytes::from_static(b"data: a\r\n\n")]
    );
    assert_eq!(
        events(b"data: a\n\r\nx"),
        vec![Bytes::from_static(b"data: a\n\r\n")]
    );
    // LF then CR: the CR ends an empty line, and the next byte decides it is CR, not CRLF.
    assert_eq!(
        events(b"data: a\n\rx"),
        vec![Bytes::from_static(b"data: a\n\r")]
    );
}

#[test]
fn comments_and_priming_events_are_events() {
    let ev = events(b": keep-alive\n\nid: 0\ndata:\n\n\n");
    assert_eq!(
        ev,
        vec![
            Bytes::from_static(b": keep-alive\n\n"),
            Bytes::from_static(b"id: 0\ndata:\n\n"),
            Bytes::from_static(b"\n")
        ]
    );
    assert_eq!(data(&ev[1]).as_deref(), Some(""));
    assert_eq!(data(&ev[0]), None);
}

#[test]
fn finish_resets_the_splitter() {
    let mut s = Splitter::new();
    let mut out = Vec::new();
    s.push(b"data: x", &mut out);
    assert_eq!(s.finish().as_deref(), Some(&b"data: x"[..]));
    assert_eq!(s.finish(), None);
    s.push(b"\n", &mut out);
    assert_eq!(out, vec![Bytes::from_static(b"\n")]);
}

#[test]
fn data_joins_lines_and_strips_one_space() {
    assert_eq!(
        data(b"event: message\ndata: a\ndata:  b\ndata:c\ndata\n\n").as_deref(),
        Some("a\n b\nc\n")
    );
    assert_eq!(
        data(b"id: 3\r\ndata: {\"x\":1}\r\n\r\n").as_deref(),
        Some("{\"x\":1}")
    );
    assert_eq!(data(b"datax: 1\ndata : 2\n\n"), None);
    assert_eq!(data(b"data: \xff\n\n").as_deref(), Some("\u{fffd}"));
}

#[test]
fn with_data_keeps_other_lines_and_line_endings() {
    let ev = b"id: 7\r\nevent: message\r\ndata: old1\r\n: note\r\ndata: old2\r\nretry: 5\r\n\r\n";
    assert_eq!(
        with_data(ev, "new"),
        b"id: 7\r\nevent: message\r\ndata: new\r\n: note\r\nretry: 5\r\n\r\n".to_vec()
    );
    assert_eq!(
        with_data(b"data: x\n\n", "a\nb"),
        b"data: a\ndata: b\n\n".to_vec()
    );
    assert_eq!(with_data(b"data: x\r\r", "y"), b"data: y\r\r".to_vec());
}

#[test]
fn with_data_adds_data_to_an_event_without_any() {
    assert_eq!(
        with_data(b"event: message\n\n", "y"),
        b"event: message\ndata: y\n\n".to_vec()
    );
    assert_eq!(
        with_data(b"event: message", "y"),
        b"event: message\ndata: y".to_vec()
    );
    assert_eq!(with_data(b"data: x", "y"), b"data: y".to_vec());
}

#[test]
fn with_data_then_data_round_trips() {
    let ev = b"event: message\ndata: 1\n\n";
    assert_eq!(
        data(&with_data(ev, "{\"a\":[1,2]}")).as_deref(),
        Some("{\"a\":[1,2]}")
    );
}

fn sse_bytes() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        Just(b"\n".to_vec()),
        Just(b"\r".to_vec()),
        Just(b"\r\n".to_vec()),
        Just(b"data: ".to_vec()),
        Just(b": c".to_vec()),
        Just(b"id: 1".to_vec()),
        proptest::collection::vec(any::<u8>(), 0..4),
    ];
    proptest::collection::vec(piece, 0..40).prop_map(|ps| ps.concat())
}

proptest! {
    #[test]
    fn any_split_of_a_body_emits_the_same_events(
        body in sse_bytes(),
        cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..8),
    ) {
        let one_shot = split_all(&[&body]);
        let mut at: Vec<usize> = cuts.iter().map(|c| c.index(body.len() + 1)).collect();
        at.sort_unstable();
        let mut chunks = Vec::new();
        let mut prev = 0;
        for a in at {
            chunks.push(&body[prev..a]);
            prev = a;
        }
        chunks.push(&body[prev..]);
        let chunked = split_all(&chunks);
        prop_assert_eq!(&chunked, &one_shot);
        // Nothing is lost or changed, and every event ends with a blank line.
        let mut joined: Vec<u8> = one_shot.0.iter().flat_map(|e| e.to_vec()).collect();
        joined.extend(one_shot.1.iter().flat_map(|e| e.to_vec()));
        prop_assert_eq!(joined, body);
        for e in &one_shot.0 {
            prop_assert!(e.ends_with(b"\n") || e.ends_with(b"\r"));
        }
    }

    #[test]
    fn byte_at_a_time_equals_one_shot(body in sse_bytes()) {
        let chunks: Vec<&[u8]> = body.chunks(1).collect();
        prop_assert_eq!(split_all(&chunks), split_all(&[&body]));
    }
}
