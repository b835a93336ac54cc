use super::*;
use crate::policy::fixture;

fn map(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut m = HeaderMap::new();
    for (k, v) in pairs {
        m.append(
            http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            v.parse().unwrap(),
        );
    }
    m
}

fn check_framing(headers: &HeaderMap) -> Result<Option<u64>, Denial> {
    check_shape(&http::Method::POST, headers)
}

#[test]
fn upgrades_and_bodies_on_get_or_delete_are_refused() {
    let ws = map(&[("upgrade", "websocket"), ("connection", "upgrade")]);
    assert!(check_shape(&http::Method::GET, &ws).is_err());
    for method in [http::Method::GET, http::Method::DELETE] {
        assert!(check_shape(&method, &map(&[("content-length", "5")])).is_err());
        assert!(check_shape(&method, &map(&[("transfer-encoding", "chunked")])).is_err());
        assert_eq!(
            check_shape(&method, &map(&[("content-length", "0")])),
            Ok(Some(0))
        );
        assert_eq!(check_shape(&method, &map(&[])), Ok(None));
    }
}

#[test]
fn repeated_mcp_headers_are_refused() {
    for name in ["mcp-session-id", "mcp-method", "mcp-name"] {
        let twice = map(&[(name, "a"), (name, "b")]);
        assert!(check_framing(&twice).is_err(), "{name}");
        assert!(check_framing(&map(&[(name, "a")])).is_ok(), "{name}");
    }
}

#[test]
fn plain_content_length_passes() {
    assert_eq!(
        check_framing(&map(&[("content-length", "42")])),
        Ok(Some(42))
    );
    assert_eq!(check_framing(&map(&[])), Ok(None));
}

#[test]
fn signed_spaced_or_conflicting_content_length_is_bad_framing() {
    for bad in ["+5", "-1", "5 ", "0x10", "", "99999999999999999999"] {
        let headers = map(&[("content-length", bad)]);
        assert!(check_framing(&headers).is_err(), "{bad:?}");
    }
    let twice = map(&[("content-length", "5"), ("content-length", "6")]);
    assert!(check_framing(&twice).is_err());
    let both = map(&[("content-length", "5"), ("transfer-encoding", "chunked")]);
    assert!(check_framing(&both).is_err());
}

fn who(id: &str) -> (Policy, Identity) {
    let (policy, keys) = fixture::policy();
    let headers = map(&[("x-api-key", keys[id].expose())]);
    let identity = crate::auth::ready(crate::auth::authenticate(&headers, &policy, 0)).unwrap();
    (policy, identity)
}

#[test]
fn a_batch_is_refused_whole_when_one_element_is_denied() {
    let (policy, reader) = who("reader");
    let body = br#"[{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"search_deals"}},
                    {"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"create_deal"}}]"#;
    let Refused { denial, id, .. } =
        *evaluate(&policy, &reader, &HeaderMap::new(), body).unwrap_err();
    assert!(matches!(denial, Denial::Forbidden(_)));
    assert_eq!(id, Id::null());
}

#[test]
fn a_batch_costs_the_sum_of_its_messages() {
    let (policy, full) = who("full");
    let body =
        br#"[{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"ask_pipeline"}},
                    {"jsonrpc":"2.0","method":"notifications/initialized"},
                    {"jsonrpc":"2.0","id":3,"method":"tools/list"}]"#;
    let checked = evaluate(&policy, &full, &HeaderMap::new(), body).unwrap();
    assert_eq!(checked.cost, 7);
    assert!(checked.lists_tools);
    assert_eq!(checked.method, "batch");
}

#[test]
fn labels_name_only_what_the_policy_knows() {
    let (policy, full) = who("full");
    let call = |name: &str| {
        format!(r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"name":"{name}"}}}}"#)
    };
    let checked = evaluate(
        &policy,
        &full,
        &HeaderMap::new(),
        call("search_deals").as_bytes(),
    );
    let checked = checked.unwrap();
    assert_eq!(
        (checked.method, checked.tool),
        ("tools/call", "search_deals")
    );
    let ping = br#"{"jsonrpc":"2.0","id":"p","method":"ping"}"#;
    let checked = evaluate(&policy, &full, &HeaderMap::new(), ping).unwrap();
    assert_eq!((checked.method, checked.tool), ("ping", ""));
    // A refusal is counted under the names it asked for (`other` for a tool no rule
    // matches), like an allowed call.
    let refused = evaluate(
        &policy,
        &full,
        &HeaderMap::new(),
        call("no_rule").as_bytes(),
    )
    .unwrap_err();
    assert_eq!((refused.method, refused.tool), ("tools/call", "other"));
    let (policy, reader) = who("reader");
    let refused = evaluate(
        &policy,
        &reader,
        &HeaderMap::new(),
        call("create_deal").as_bytes(),
    )
    .unwrap_err();
    assert!(matches!(refused.denial, Denial::Forbidden(_)));
    assert_eq!(refused.tool, "create_deal");
}

#[test]
fn invented_label_names_are_bounded_and_the_policys_own_names_always_kept() {
    let names = LabelNames::new(3);
    for i in 0..5 {
        names.label(Naming::Glob, &format!("invented_{i}"));
    }
    assert_eq!(names.label(Naming::Glob, "invented_1"), "invented_1");
    assert_eq!(names.label(Naming::Glob, "invented_4"), "other");
    assert_eq!(names.label(Naming::None, "invented_0"), "other");
    // The budget is spent, yet a name the policy writes out keeps its label.
    assert_eq!(names.label(Naming::Literal, "search_deals"), "search_deals");
    assert_eq!(names.label(Naming::Glob, "search_deals"), "search_deals");
}

#[test]
fn a_rule_names_a_name_exactly_or_by_glob() {
    use crate::policy::{Glob, Rule};
    let rule = Rule {
        patterns: vec![Glob::new("get_deal"), Glob::new("search_*")],
        requires: Vec::new(),
        feature: None,
        cost: 1,
    };
    assert_eq!(rule.naming("get_deal"), Naming::Literal);
    assert_eq!(rule.naming("search_deals"), Naming::Glob);
    assert_eq!(rule.naming("create_deal"), Naming::None);
}

#[test]
fn mcp_headers_must_agree_with_the_body() {
    let (policy, full) = who("full");
    let body =
        br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"search_deals"}}"#;
    let good = map(&[("mcp-method", "tools/call"), ("mcp-name", "search_deals")]);
    assert!(evaluate(&policy, &full, &good, body).is_ok());
    let wrong_name = map(&[("mcp-method", "tools/call"), ("mcp-name", "get_deal")]);
    let Refused { denial, .. } = *evaluate(&policy, &full, &wrong_name, body).unwrap_err();
    assert!(matches!(denial, Denial::HeaderMismatch(_)));
    let wrong_method = map(&[("mcp-method", "tools/list")]);
    let Refused { denial, .. } = *evaluate(&policy, &full, &wrong_method, body).unwrap_err();
    assert!(matches!(denial, Denial::HeaderMismatch(_)));
}

#[test]
fn not_json_and_not_json_rpc_are_told_apart() {
    let (policy, full) = who("full");
    let Refused { denial: d, .. } =
        *evaluate(&policy, &full, &HeaderMap::new(), b"{nope").unwrap_err();
    assert_eq!(d, Denial::NotJson);
    let Refused { denial: d, id, .. } = *evaluate(
        &policy,
        &full,
        &HeaderMap::new(),
        br#"{"jsonrpc":"1.0","id":9,"method":"x"}"#,
    )
    .unwrap_err();
    assert!(matches!(d, Denial::InvalidRequest(_)));
    // The id is still read from a message that is not valid JSON-RPC, so the error
    // answers it.
    assert_eq!(id.as_raw(), "9");
}
