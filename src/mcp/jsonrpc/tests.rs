use super::*;

fn one(body: &str) -> Message {
    match classify(body.as_bytes()) {
        Ok(Body::Single(m)) => m,
        other => panic!("expected one message from {body}, got {other:?}"),
    }
}

fn invalid(body: &str) -> (Id, &'static str) {
    match classify(body.as_bytes()) {
        Err(ParseError::Invalid { id, reason }) => (id, reason),
        other => panic!("expected Invalid from {body}, got {other:?}"),
    }
}

fn not_json(body: &[u8]) {
    assert_eq!(
        classify(body),
        Err(ParseError::NotJson),
        "{}",
        String::from_utf8_lossy(body)
    );
}

#[test]
fn tools_call_request_carries_method_and_tool() {
    let m = one(
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"search","arguments":{"q":"x"}}}"#,
    );
    assert_eq!(m.id.as_ref().map(Id::as_raw), Some("1"));
    assert_eq!(m.method(), Some("tools/call"));
    assert_eq!(m.tool(), Some("search"));
}

#[test]
fn params_may_come_before_method() {
    let m = one(
        r#"{"params":{"arguments":{},"name":"a"},"method":"tools/call","id":"x","jsonrpc":"2.0"}"#,
    );
    assert_eq!(m.tool(), Some("a"));
}

#[test]
fn tool_names_with_dots_slashes_and_unicode_are_kept_exactly() {
    for name in ["github.create_issue", "fs/read", "日本語.ツール", "a\"b\\c"] {
        let body = serde_json::json!({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":name}});
        let m = one(&body.to_string());
        assert_eq!(m.tool(), Some(name));
    }
}

#[test]
fn escaped_tool_names_and_methods_are_unescaped() {
    let m = one(
        r#"{"jsonrpc":"2.0","id":1,"method":"tools\/c\u0061ll","params":{"name":"\u0073ecret"}}"#,
    );
    assert_eq!(m.method(), Some("tools/call"));
    assert_eq!(m.tool(), Some("secret"));
}

#[test]
fn a_raw_control_character_in_a_name_is_not_json() {
    // Names are taken verbatim when they hold no escape; the parser must have refused these.
    for body in [
        "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/\tcall\",\"params\":{\"name\":\"x\"}}",
        "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"a\nb\"}}",
    ] {
        assert!(
            matches!(classify(body.as_bytes()), Err(ParseError::NotJson)),
            "{body:?}"
        );
    }
}

#[test]
fn tools_call_without_name_is_invalid() {
    for params in [
        r#"{}"#,
        r#"{"name":3}"#,
        r#"{"name":null}"#,
        r#"["x"]"#,
        r#""x""#,
    ] {
        let body = format!(r#"{{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{params}}}"#);
        let (id, reason) = invalid(&body);
        assert_eq!(id.as_raw(), "9");
        assert_eq!(reason, "tools/call needs params.name");
    }
    let (_, reason) = invalid(r#"{"jsonrpc":"2.0","id":9,"method":"tools/call"}"#);
    assert_eq!(reason, "tools/call needs params.name");
}

#[test]
fn other_methods_ignore_params_name() {
    let m = one(r#"{"jsonrpc":"2.0","id":1,"method":"prompts/get","params":{"name":5}}"#);
    assert_eq!(m.method(), Some("prompts/get"));
    assert_eq!(m.tool(), None);
}

#[test]
fn ids_are_echoed_verbatim() {
    for id in [
        "1.0",
        "-0",
        r#""a\"b""#,
        "null",
        "123456789012345678901234567890",
        "1e400",
        r#""\u00e9""#,
        "0",
    ] {
        let m = one(&format!(
            r#"{{"jsonrpc":"2.0","id": {id} ,"method":"ping"}}"#
        ));
        assert_eq!(m.id.as_ref().map(Id::as_raw), Some(id));
        let err = error_response(m.id.as_ref().unwrap(), -32003, "no", None);
        let text = String::from_utf8(err).unwrap();
        assert!(text.contains(&format!(r#""id":{id},"#)), "{text}");
    }
}

#[test]
fn object_array_and_bool_ids_are_invalid_with_null_id() {
    for id in ["{}", "[1]", "true", "false"] {
        let (got, reason) = invalid(&format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"ping"}}"#));
        assert_eq!(got, Id::null());
        assert_eq!(reason, "id must be a string, a number or null");
    }
}

#[test]
fn message_without_id_is_a_notification() {
    let m = one(r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#);
    assert_eq!(m.id, None);
    assert_eq!(
        m.kind,
        Kind::Notification {
            method: "notifications/initialized".into()
        }
    );
    assert_eq!(
        classify(br#"{"jsonrpc":"2.0","method":"x"}"#)
            .unwrap()
            .first_id(),
        Id::null()
    );
}

#[test]
fn client_replies_to_server_requests_are_responses() {
    let m = one(r#"{"jsonrpc":"2.0","id":"s-1","result":{"content":{"type":"text"}}}"#);
    assert_eq!(m.kind, Kind::Response);
    assert_eq!(m.method(), None);
    let m = one(r#"{"jsonrpc":"2.0","id":4,"error":{"code":-1,"message":"no"}}"#);
    assert_eq!(m.kind, Kind::Response);
}

#[test]
fn responses_need_an_id_and_exactly_one_of_result_or_error() {
    invalid(r#"{"jsonrpc":"2.0","result":{}}"#);
    invalid(r#"{"jsonrpc":"2.0","id":1,"result":{},"error":{}}"#);
    invalid(r#"{"jsonrpc":"2.0","id":1}"#);
}

#[test]
fn a_method_with_a_result_is_invalid() {
    invalid(r#"{"jsonrpc":"2.0","id":1,"method":"ping","result":{}}"#);
}

#[test]
fn jsonrpc_version_is_required() {
    for body in [
        r#"{"id":1,"method":"ping"}"#,
        r#"{"jsonrpc":"1.0","id":1,"method":"ping"}"#,
        r#"{"jsonrpc":2.0,"id":1,"method":"ping"}"#,
    ] {
        let (id, reason) = invalid(body);
        assert_eq!(id.as_raw(), "1");
        assert_eq!(reason, r#"jsonrpc must be "2.0""#);
    }
    one(r#"{"jsonrpc":"2\u002e0","id":1,"method":"ping"}"#);
}

#[test]
fn non_string_method_is_invalid() {
    let (_, reason) = invalid(r#"{"jsonrpc":"2.0","id":1,"method":["tools/call"]}"#);
    assert_eq!(reason, "method must be a string");
}

#[test]
fn duplicate_method_name_id_or_params_keys_are_invalid() {
    for body in [
        r#"{"jsonrpc":"2.0","id":1,"method":"ping","method":"tools/call"}"#,
        r#"{"jsonrpc":"2.0","id":1,"method":"ping","m\u0065thod":"tools/call"}"#,
        r#"{"jsonrpc":"2.0","id":1,"id":2,"method":"ping"}"#,
        r#"{"jsonrpc":"2.0","jsonrpc":"2.0","id":1,"method":"ping"}"#,
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a"},"params":{"name":"b"}}"#,
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a","name":"b"}}"#,
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a","n\u0061me":"b"}}"#,
        r#"{"jsonrpc":"2.0","id":1,"result":{},"result":{}}"#,
    ] {
        invalid(body);
    }
}

#[test]
fn unknown_and_nested_duplicate_keys_are_left_to_the_upstream() {
    let m = one(
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","x":1,"x":2,"params":{"name":"a","arguments":{"name":"b","name":"c"},"_meta":{}}}"#,
    );
    assert_eq!(m.tool(), Some("a"));
}

#[test]
fn batch_with_a_notification_is_classified_per_element() {
    let body = br#"[{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a"}},
                    {"jsonrpc":"2.0","method":"notifications/cancelled","params":{}},
                    {"jsonrpc":"2.0","id":"r","result":{}}]"#;
    let b = classify(body).unwrap();
    assert!(b.is_batch());
    assert_eq!(b.first_id(), Id::null());
    let ms = b.messages();
    assert_eq!(ms.len(), 3);
    assert_eq!(ms[0].tool(), Some("a"));
    assert_eq!(
        ms[1].kind,
        Kind::Notification {
            method: "notifications/cancelled".into()
        }
    );
    assert_eq!(ms[2].kind, Kind::Response);
}

#[test]
fn a_batch_with_one_bad_element_is_invalid_with_null_id() {
    let (id, reason) = invalid(
        r#"[{"jsonrpc":"2.0","id":1,"method":"ping"},{"jsonrpc":"2.0","id":2,"method":"tools/call"}]"#,
    );
    assert_eq!(id, Id::null());
    assert_eq!(reason, "tools/call needs params.name");
    invalid(r#"[{"jsonrpc":"2.0","id":1,"method":"ping"}, 3]"#);
}

#[test]
fn empty_and_oversized_batches_are_invalid() {
    invalid("[]");
    let msg = r#"{"jsonrpc":"2.0","method":"x"}"#;
    let at_limit = format!("[{}]", vec![msg; MAX_BATCH].join(","));
    assert_eq!(
        classify(at_limit.as_bytes()).unwrap().messages().len(),
        MAX_BATCH
    );
    let over = format!("[{}]", vec![msg; MAX_BATCH + 1].join(","));
    assert_eq!(invalid(&over).1, "a batch holds at most 1000 messages");
}

#[test]
fn bodies_that_are_not_objects_or_arrays_are_invalid() {
    for body in ["1", r#""x""#, "null", "true"] {
        invalid(body);
    }
}

#[test]
fn unparsable_bodies_are_not_json() {
    not_json(b"");
    not_json(b"{");
    not_json(b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"} x");
    not_json(b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}{}");
    not_json(b"\xef\xbb\xbf{}");
    not_json(b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\",\"x\":\"\xff\"}");
    not_json(b"{'a':1}");
    // A syntax error after an element already known to be invalid still makes it NotJson.
    not_json(b"[3, {]");
}

#[test]
fn surrounding_whitespace_is_accepted() {
    one(" \r\n\t{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}\n ");
}

#[test]
fn deep_nesting_inside_skipped_values_does_not_overflow_the_stack() {
    let deep = format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"name":"a","arguments":{}{}}}}}"#,
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    assert_eq!(one(&deep).tool(), Some("a"));
    not_json("[".repeat(100_000).as_bytes());
}

#[test]
fn a_big_arguments_payload_is_classified() {
    let payload = "x".repeat(200 * 1024);
    let body = format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"name":"upload","arguments":{{"payload":"{payload}"}}}}}}"#
    );
    assert_eq!(one(&body).tool(), Some("upload"));
}

#[test]
fn error_codes_match_json_rpc() {
    assert_eq!(ParseError::NotJson.code(), -32700);
    assert_eq!(ParseError::NotJson.id(), Id::null());
    let e = classify(br#"{"jsonrpc":"2.0","id":"q","method":3}"#).unwrap_err();
    assert_eq!((e.code(), e.id().as_raw()), (-32600, r#""q""#));
}

#[test]
fn error_response_is_json_rpc_with_optional_data() {
    let id = one(r#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"a"}}"#)
        .id
        .unwrap();
    let data = serde_json::json!({"retryAfterSeconds":3});
    let body = error_response(&id, -32004, "rate limit \"exceeded\"", Some(&data));
    assert_eq!(
        String::from_utf8(body).unwrap(),
        r#"{"jsonrpc":"2.0","id":7,"error":{"code":-32004,"message":"rate limit \"exceeded\"","data":{"retryAfterSeconds":3}}}"#
    );
    let body = error_response(&Id::null(), -32700, "parse error", None);
    assert_eq!(
        String::from_utf8(body).unwrap(),
        r#"{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"parse error"}}"#
    );
}

proptest::proptest! {
    /// Whatever the name, and however a client escapes it, the gateway reads the name the
    /// upstream will: names without escapes are taken as they stand, the others decoded.
    #[test]
    fn any_tool_name_is_read_as_the_upstream_reads_it(name in ".{0,40}", escape_all in proptest::bool::ANY) {
        let quoted = if escape_all {
            let mut q = String::from("\"");
            for unit in name.encode_utf16() {
                q.push_str(&format!("\\u{unit:04x}"));
            }
            q.push('"');
            q
        } else {
            serde_json::to_string(&name).unwrap()
        };
        let body = format!(r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"name":{quoted}}}}}"#);
        let m = one(&body);
        proptest::prop_assert_eq!(m.tool(), Some(name.as_str()));
    }
}
