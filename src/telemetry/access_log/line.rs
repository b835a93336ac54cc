//! One access log line, in the layout of the gateway's other log lines (tracing's text and
//! JSON formats, target `mcpwarden::access`), so one parser reads both.
//!
//! Invariants: a line is written straight into the caller's buffer, without allocating and
//! without `core::fmt` (integers by hand: formatting machinery was two thirds of a line's
//! cost); it names the key by its id only, never the key, its hash, the body or tool
//! arguments; every value that could hold a client's bytes (a tool name a glob matched, the
//! request id) is escaped, so no client can end a line or forge a field.

use std::io::Write;

use jiff::Timestamp;

use super::{Entry, Format};

/// The target other log lines name their module by; `grep mcpwarden::access` finds these.
pub const TARGET: &str = "mcpwarden::access";

/// RFC 3339 UTC timestamps with microseconds, as tracing writes them. The date and time are
/// formatted once a second and reused.
#[derive(Debug, Default)]
pub struct Stamps {
    second: i64,
    /// `2026-12-04T20:31:00`, for `second`; empty before the first line.
    prefix: Vec<u8>,
}

impl Stamps {
    fn write(&mut self, out: &mut Vec<u8>, now: Timestamp) {
        let second = now.as_second();
        if second != self.second || self.prefix.is_empty() {
            self.second = second;
            self.prefix.clear();
            let whole = Timestamp::from_second(second).unwrap_or(now);
            let _ = write!(self.prefix, "{whole:.0}");
            self.prefix.pop(); // the `Z`
        }
        out.extend_from_slice(&self.prefix);
        out.push(b'.');
        padded(out, u64::try_from(now.subsec_microsecond()).unwrap_or(0), 6);
        out.push(b'Z');
    }
}

/// A field's value, as both layouts write it.
#[derive(Clone, Copy)]
enum Value<'a> {
    /// Bare in text when plain visible ASCII, else quoted and escaped; a JSON string.
    Text(&'a str),
    /// `""` in text, `null` in JSON.
    Missing,
    Int(u64),
    /// Microseconds, written as milliseconds with three decimals.
    Millis(u64),
}

/// Appends the line for `r` to `out`, with its newline.
pub fn write(out: &mut Vec<u8>, stamps: &mut Stamps, format: Format, r: &Entry) {
    let (workspace, key) = r
        .key
        .as_ref()
        .map_or((None, None), |k| (Some(&*k.workspace.name), Some(&*k.id)));
    let fields = [
        ("workspace", workspace.map_or(Value::Missing, Value::Text)),
        ("key", key.map_or(Value::Missing, Value::Text)),
        ("method", Value::Text(r.method)),
        ("tool", Value::Text(r.tool)),
        ("outcome", Value::Text(r.outcome.label())),
        ("status", Value::Int(u64::from(r.status))),
        (
            "duration_ms",
            Value::Millis(u64::try_from(r.duration.as_micros()).unwrap_or(u64::MAX)),
        ),
        ("bytes_in", Value::Int(r.bytes_in as u64)),
        ("bytes_out", Value::Int(r.bytes_out as u64)),
        (
            "upstream_status",
            r.upstream_status
                .map_or(Value::Missing, |s| Value::Int(u64::from(s))),
        ),
        (
            "request_id",
            Value::Text(std::str::from_utf8(r.request_id.as_bytes()).unwrap_or("\u{fffd}")),
        ),
    ];
    match format {
        Format::Text => {
            stamps.write(out, r.at);
            out.extend_from_slice(b"  INFO mcpwarden::access: request");
        }
        Format::Json => {
            out.extend_from_slice(b"{\"timestamp\":\"");
            stamps.write(out, r.at);
            out.extend_from_slice(b"\",\"level\":\"INFO\",\"fields\":{\"message\":\"request\"");
        }
    }
    for (name, value) in fields {
        match format {
            Format::Text => {
                out.push(b' ');
                out.extend_from_slice(name.as_bytes());
                out.push(b'=');
            }
            Format::Json => {
                out.extend_from_slice(b",\"");
                out.extend_from_slice(name.as_bytes());
                out.extend_from_slice(b"\":");
            }
        }
        match (value, format) {
            (Value::Text(v), Format::Text) => text(out, v),
            (Value::Text(v), Format::Json) => json(out, v),
            (Value::Missing, Format::Text) => out.extend_from_slice(b"\"\""),
            (Value::Missing, Format::Json) => out.extend_from_slice(b"null"),
            (Value::Int(n), _) => int(out, n),
            (Value::Millis(m), _) => millis(out, m),
        }
    }
    if format == Format::Json {
        out.extend_from_slice(b"},\"target\":\"mcpwarden::access\"}");
    }
    out.push(b'\n');
}

/// `n` in decimal.
fn int(out: &mut Vec<u8>, n: u64) {
    padded(out, n, 1);
}

/// `n` in decimal, zero-padded to at least `width` digits.
fn padded(out: &mut Vec<u8>, mut n: u64, width: usize) {
    let mut digits = [b'0'; 20];
    let mut start = digits.len();
    while n > 0 || digits.len() - start < width {
        start -= 1;
        digits[start] = b'0' + (n % 10) as u8;
        n /= 10;
    }
    out.extend_from_slice(&digits[start..]);
}

/// Microseconds as milliseconds with three decimals (`12.345`): exact, and a JSON number.
fn millis(out: &mut Vec<u8>, micros: u64) {
    int(out, micros / 1000);
    out.push(b'.');
    padded(out, micros % 1000, 3);
}

/// A text value: bare when it is plain visible ASCII, else quoted and escaped as a JSON
/// string is (`""` when empty).
fn text(out: &mut Vec<u8>, value: &str) {
    let plain = !value.is_empty()
        && value
            .bytes()
            .all(|b| (0x21..=0x7e).contains(&b) && !matches!(b, b'"' | b'\\' | b'='));
    if plain {
        out.extend_from_slice(value.as_bytes());
    } else {
        json(out, value);
    }
}

fn json(out: &mut Vec<u8>, value: &str) {
    serde_json::to_writer(out, value).expect("a string serializes");
}

#[cfg(test)]
mod tests {
    #[test]
    fn numbers_are_decimal_and_padded() {
        let mut out = Vec::new();
        for (n, width) in [(0, 1), (7, 1), (u64::MAX, 1), (7, 6), (123_456, 6), (45, 3)] {
            super::padded(&mut out, n, width);
            out.push(b' ');
        }
        super::millis(&mut out, 12_345);
        out.push(b' ');
        super::millis(&mut out, 7);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "0 7 18446744073709551615 000007 123456 045 12.345 0.007"
        );
    }
}
