use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::HeaderValue;
use jiff::Timestamp;

use super::{AccessLog, Format, HIGH_WATER};
use crate::auth::Identity;
use crate::auth::api_key::hash_hex;
use crate::policy::fixture;
use crate::telemetry::{Finished, Outcome};

/// A writer the test can read back.
#[derive(Clone, Default)]
struct Shared(Arc<Mutex<Vec<u8>>>);

impl Write for Shared {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Shared {
    fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}

fn at() -> Timestamp {
    "2026-12-04T20:31:00.123456Z".parse().unwrap()
}

fn finished<'a>(identity: Option<&'a Identity>, tool: &'static str) -> Finished<'a> {
    Finished {
        identity,
        method: "tools/call",
        tool,
        outcome: Outcome::Ok,
        status: 200,
        upstream_status: Some(200),
        duration: Duration::from_micros(12_345),
        bytes_in: 108,
        bytes_out: 75,
        truncated: false,
    }
}

/// A request id as the proxy hands it over (checked visible ASCII).
fn id(text: &str) -> HeaderValue {
    HeaderValue::from_str(text).unwrap()
}

fn one_line(format: Format, request: &Finished<'_>, request_id: &str) -> String {
    let out = Shared::default();
    let log = AccessLog::new(format, Box::new(out.clone()));
    log.record_at(at(), request, id(request_id));
    log.flush();
    out.text()
}

#[test]
fn a_text_line_names_the_request_in_the_layout_of_the_other_log_lines() {
    let (policy, keys) = fixture::policy();
    let full = Identity::from_key(policy.keys[&keys["full"].hash()].clone());
    let line = one_line(
        Format::Text,
        &finished(Some(&full), "search_deals"),
        "req-1",
    );
    assert_eq!(
        line,
        "2026-12-04T20:31:00.123456Z  INFO mcpwarden::access: request workspace=acme key=full \
         method=tools/call tool=search_deals outcome=ok status=200 duration_ms=12.345 \
         bytes_in=108 bytes_out=75 upstream_status=200 request_id=req-1\n"
    );
}

#[test]
fn a_json_line_has_every_field_with_its_type() {
    let (policy, keys) = fixture::policy();
    let full = Identity::from_key(policy.keys[&keys["full"].hash()].clone());
    let line = one_line(
        Format::Json,
        &finished(Some(&full), "search_deals"),
        "req-1",
    );
    assert!(
        line.ends_with("}\n") && line.matches('\n').count() == 1,
        "{line}"
    );
    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(
        v,
        serde_json::json!({
            "timestamp": "2026-12-04T20:31:00.123456Z",
            "level": "INFO",
            "fields": {
                "message": "request", "workspace": "acme", "key": "full",
                "method": "tools/call", "tool": "search_deals", "outcome": "ok",
                "status": 200, "duration_ms": 12.345, "bytes_in": 108, "bytes_out": 75,
                "upstream_status": 200, "request_id": "req-1"
            },
            "target": "mcpwarden::access"
        })
    );
}

#[test]
fn a_request_without_identity_or_upstream_answer_says_so() {
    let mut refused = finished(None, "");
    refused.method = "";
    refused.outcome = Outcome::Denied;
    refused.status = 401;
    refused.upstream_status = None;
    let text = one_line(Format::Text, &refused, "abc");
    assert!(
        text.contains("workspace=\"\" key=\"\" method=\"\" tool=\"\" outcome=denied status=401"),
        "{text}"
    );
    assert!(
        text.contains("upstream_status=\"\" request_id=abc\n"),
        "{text}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&one_line(Format::Json, &refused, "abc")).unwrap();
    let fields = &json["fields"];
    assert_eq!(fields["workspace"], serde_json::Value::Null);
    assert_eq!(fields["key"], serde_json::Value::Null);
    assert_eq!(fields["upstream_status"], serde_json::Value::Null);
    assert_eq!(fields["method"], "");
}

#[test]
fn a_client_chosen_tool_name_cannot_break_or_forge_a_line() {
    // A glob like `search_*` lets a client pick the rest of the name.
    let evil = "search_x\" outcome=ok\nfake line key=admin";
    for format in [Format::Text, Format::Json] {
        let line = one_line(format, &finished(None, evil), "id\"=x");
        assert_eq!(line.matches('\n').count(), 1, "{line}");
    }
    let json = one_line(Format::Json, &finished(None, evil), "id\"=x");
    let json: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(json["fields"]["tool"], evil);
    assert_eq!(json["fields"]["request_id"], "id\"=x");
    let text = one_line(Format::Text, &finished(None, evil), "id\"=x");
    assert!(
        text.contains(r#"tool="search_x\" outcome=ok\nfake line key=admin" outcome=ok"#),
        "{text}"
    );
    assert!(text.ends_with("request_id=\"id\\\"=x\"\n"), "{text}");
}

#[test]
fn lines_never_carry_the_key_or_its_hash() {
    let (policy, keys) = fixture::policy();
    let key = &keys["full"];
    let full = Identity::from_key(policy.keys[&key.hash()].clone());
    for format in [Format::Text, Format::Json] {
        let line = one_line(format, &finished(Some(&full), "search_deals"), "r");
        assert!(!line.contains(key.expose()), "{line}");
        assert!(!line.contains(&hash_hex(key.expose())), "{line}");
    }
}

#[test]
fn lines_wait_in_memory_until_a_flush_or_the_high_water_mark_and_come_out_in_order() {
    let out = Shared::default();
    let log = AccessLog::new(Format::Text, Box::new(out.clone()));
    let ids: Vec<String> = (0..10_000).map(|i| format!("r{i}")).collect();
    log.record_at(at(), &finished(None, "search_deals"), id(&ids[0]));
    assert_eq!(out.text(), "", "lines wait for the flush");
    let mut n = 1;
    while out.text().is_empty() {
        log.record_at(at(), &finished(None, "search_deals"), id(&ids[n]));
        n += 1;
    }
    assert_eq!(n, HIGH_WATER, "the entry that filled the batch wrote it");
    assert_eq!(
        out.text().lines().count(),
        n,
        "the line that filled the batch went with it"
    );
    log.record_at(at(), &finished(None, "search_deals"), id(&ids[n]));
    log.flush();
    let lines: Vec<String> = out.text().lines().map(str::to_owned).collect();
    assert_eq!(lines.len(), n + 1);
    for (i, line) in lines.iter().enumerate() {
        assert!(line.ends_with(&format!(" request_id=r{i}")), "{line}");
    }
}

#[test]
fn timestamps_stay_right_across_seconds_with_the_date_formatted_once_a_second() {
    let out = Shared::default();
    let log = AccessLog::new(Format::Text, Box::new(out.clone()));
    for at in [
        "2026-12-04T20:31:00.000007Z",
        "2026-12-04T20:31:00.999999Z",
        "2026-12-04T20:31:01.5Z",
        "2026-12-31T23:59:59.25Z",
        "2027-01-01T00:00:00Z",
    ] {
        log.record_at(at.parse().unwrap(), &finished(None, ""), id("r"));
    }
    log.flush();
    let stamps: Vec<String> = out
        .text()
        .lines()
        .map(|l| l.split(' ').next().unwrap().to_owned())
        .collect();
    assert_eq!(
        stamps,
        [
            "2026-12-04T20:31:00.000007Z",
            "2026-12-04T20:31:00.999999Z",
            "2026-12-04T20:31:01.500000Z",
            "2026-12-31T23:59:59.250000Z",
            "2027-01-01T00:00:00.000000Z",
        ]
    );
}
