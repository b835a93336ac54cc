use super::*;

fn only(names: &'static [&'static str]) -> impl Fn(&str) -> bool {
    move |n| names.contains(&n)
}

fn filtered(body: &str, allowed: &dyn Fn(&str) -> bool) -> String {
    String::from_utf8(filter_json(body.as_bytes(), allowed).expect("a tools/list result")).unwrap()
}

#[test]
fn tools_the_identity_may_not_call_are_removed() {
    let body = r#"{"jsonrpc":"2.0","id":2,"result":{"tools":[{"name":"search","inputSchema":{"type":"object"}},{"name":"delete_repo"},{"name":"fs.read"}]}}"#;
    assert_eq!(
        filtered(body, &only(&["search", "fs.read"])),
        r#"{"jsonrpc":"2.0","id":2,"result":{"tools":[{"name":"search","inputSchema":{"type":"object"}},{"name":"fs.read"}]}}"#
    );
    assert_eq!(
        filtered(body, &only(&[])),
        r#"{"jsonrpc":"2.0","id":2,"result":{"tools":[]}}"#
    );
}

#[test]
fn cache_scope_becomes_private_and_key_order_is_kept() {
    let body = r#"{"result":{"cacheScope":"public","tools":[{"name":"a"}],"nextCursor":"c"},"id":"x","jsonrpc":"2.0"}"#;
    assert_eq!(
        filtered(body, &|_| true),
        r#"{"result":{"cacheScope":"private","tools":[{"name":"a"}],"nextCursor":"c"},"id":"x","jsonrpc":"2.0"}"#
    );
}

#[test]
fn other_values_keep_their_exact_text() {
    let body = "{\"id\":1,\"result\":{\"tools\":[{\"name\":\"a\",\"inputSchema\":{\"maximum\":1e400,\"default\":123456789012345678901234567890,\"x\":1.50,\"s\":\"\\u00e9 \\n\"}}],\n \"_meta\": {\"k\": [1, 2]}}}";
    assert_eq!(
        filtered(body, &|_| true),
        "{\"id\":1,\"result\":{\"tools\":[{\"name\":\"a\",\"inputSchema\":{\"maximum\":1e400,\"default\":123456789012345678901234567890,\"x\":1.50,\"s\":\"\\u00e9 \\n\"}}],\"_meta\":{\"k\":[1,2]}}}"
    );
}

#[test]
fn a_batch_is_filtered_per_response() {
    let body = r#"[{"id":1,"result":{"tools":[{"name":"a"},{"name":"b"}]}},{"id":2,"result":{"content":[]}},3]"#;
    assert_eq!(
        filtered(body, &only(&["b"])),
        r#"[{"id":1,"result":{"tools":[{"name":"b"}]}},{"id":2,"result":{"content":[]}},3]"#
    );
}

#[test]
fn bodies_without_a_tools_list_are_left_alone() {
    for body in [
        r#"{"jsonrpc":"2.0","id":1,"result":{"content":[{"type":"text","text":"hi"}]}}"#,
        r#"{"jsonrpc":"2.0","id":1,"result":{"tools":"not an array","cacheScope":"public"}}"#,
        r#"{"jsonrpc":"2.0","id":1,"error":{"code":-1,"message":"x"}}"#,
        r#"[1,2]"#,
        "not json",
        r#"{"result":{"tools":[]}} trailing"#,
    ] {
        assert_eq!(filter_json(body.as_bytes(), &|_| false), None, "{body}");
    }
}

#[test]
fn tools_without_a_string_name_are_removed() {
    let body = r#"{"result":{"tools":[{"title":"no name"},{"name":7},"x",{"name":"ok"}]}}"#;
    assert_eq!(
        filtered(body, &|_| true),
        r#"{"result":{"tools":[{"name":"ok"}]}}"#
    );
}

#[test]
fn a_tool_with_duplicate_names_must_pass_with_every_name() {
    let body =
        r#"{"result":{"tools":[{"name":"ok","name":"secret"},{"name":"ok","n\u0061me":"ok"}]}}"#;
    assert_eq!(
        filtered(body, &only(&["ok"])),
        r#"{"result":{"tools":[{"name":"ok","n\u0061me":"ok"}]}}"#
    );
}

#[test]
fn repeated_tools_and_result_keys_are_all_filtered() {
    let body = r#"{"result":{"tools":[{"name":"a"}],"tools":[{"name":"b"}]},"result":{"tools":[{"name":"b"}]}}"#;
    assert_eq!(
        filtered(body, &only(&["a"])),
        r#"{"result":{"tools":[{"name":"a"}],"tools":[]},"result":{"tools":[]}}"#
    );
}

#[test]
fn escaped_tool_names_are_matched_unescaped() {
    let body = r#"{"result":{"tools":[{"name":"s\u0065cret"},{"name":"fs\/read"}]}}"#;
    assert_eq!(
        filtered(body, &only(&["fs/read"])),
        r#"{"result":{"tools":[{"name":"fs\/read"}]}}"#
    );
}

#[test]
fn an_sse_message_event_is_filtered_into_one_data_line() {
    let event = b"event: message\r\nid: 5\r\ndata: {\"jsonrpc\":\"2.0\",\"id\":1,\r\ndata:  \"result\":{\"tools\":[{\"name\":\"a\"},{\"name\":\"b\"}]}}\r\n\r\n";
    let out = filter_sse_event(event, &only(&["a"])).unwrap();
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "event: message\r\nid: 5\r\ndata: {\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"tools\":[{\"name\":\"a\"}]}}\r\n\r\n"
    );
}

#[test]
fn sse_events_without_a_tools_list_are_left_alone() {
    assert_eq!(filter_sse_event(b": keep-alive\n\n", &|_| false), None);
    assert_eq!(filter_sse_event(b"id: 1\ndata:\n\n", &|_| false), None);
    assert_eq!(
        filter_sse_event(b"data: {\"id\":1,\"result\":{}}\n\n", &|_| false),
        None
    );
}
