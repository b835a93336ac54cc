//! `/usage` as HTML: the usage report in one self-contained page (inline style and script, no
//! external asset, works offline), sortable by column and refreshing itself every 10 s.
//!
//! Invariants: every text from the report is HTML-escaped; every number cell carries its exact
//! value in `data-v` (what sorting reads), whatever the display rounds; the page references
//! nothing but `usage.json` and `metrics` beside it.

use std::fmt::Write;

use crate::policy::lifecycle::{EXPIRY_WARNING_DAYS, ROTATE_AFTER_DAYS};
use crate::telemetry::anomaly::SPIKE;
use crate::telemetry::usage::report::{KeyRow, Report, rfc3339};

const TEMPLATE: &str = include_str!("usage.html");
const DAY: i64 = 86_400;

/// Headers the page is served with: nothing may load from anywhere, inline code only.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; style-src 'unsafe-inline'; \
     script-src 'unsafe-inline'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

pub fn render(report: &Report) -> String {
    let now = report.generated_at;
    let mut rows = String::with_capacity(report.keys.len() * 700);
    for key in &report.keys {
        row(&mut rows, key, now);
    }
    let count = |f: &dyn Fn(&KeyRow) -> bool| report.keys.iter().filter(|k| f(k)).count();
    let spiking = count(&|k| k.anomaly_score > SPIKE);
    let expiring = count(&|k| {
        k.expires
            .is_some_and(|e| e - now <= EXPIRY_WARNING_DAYS * DAY)
    });
    let old = count(&|k| k.created.is_some_and(|c| now - c > ROTATE_AFTER_DAYS * DAY));
    let requests_hour: u64 = report.keys.iter().map(|k| k.requests.hour).sum();
    let policy = &report.policy;
    let reload_error = match &policy.last_error {
        Some(error) => format!(
            "<div class=\"error\"><strong>The last policy reload failed</strong>; generation {} \
             stays in force.<pre>{}</pre></div>\n",
            policy.generation,
            escape(error)
        ),
        None => String::new(),
    };
    let last_reload = policy.last_reload.map_or_else(
        || "never".to_owned(),
        |at| {
            let ok = if policy.last_error.is_none() {
                "<span class=\"reload-ok\">ok</span>"
            } else {
                "<span class=\"bad\">failed</span>"
            };
            format!("{} ({ok})", escape(&rfc3339(at)))
        },
    );
    TEMPLATE
        .replace("{{generated_at}}", &escape(&rfc3339(now)))
        .replace("{{key_count}}", &report.keys.len().to_string())
        .replace("{{requests_hour}}", &requests_hour.to_string())
        .replace("{{spiking}}", &spiking.to_string())
        .replace("{{expiring}}", &expiring.to_string())
        .replace("{{old}}", &old.to_string())
        .replace("{{generation}}", &policy.generation.to_string())
        .replace("{{last_reload}}", &last_reload)
        .replace("{{reload_error}}", &reload_error)
        .replace("{{rows}}", &rows)
}

fn row(out: &mut String, key: &KeyRow, now: i64) {
    let _ = write!(
        out,
        "<tr data-workspace=\"{ws}\" data-key=\"{id}\">\n<td>{ws}</td>\n<td>{id}</td>\n",
        ws = escape(&key.workspace),
        id = escape(&key.key),
    );
    let counts = [
        key.requests.minute,
        key.requests.hour,
        key.requests.day,
        key.denied,
        key.rate_limited,
        key.concurrency_limited,
        key.truncated,
    ];
    for n in counts {
        let class = if n == 0 { " class=\"zero\"" } else { "" };
        let _ = writeln!(out, "<td{class} data-v=\"{n}\">{n}</td>");
    }
    let _ = writeln!(
        out,
        "<td data-v=\"{b}\" title=\"{b} bytes\">{}</td>",
        bytes(key.bytes_out),
        b = key.bytes_out
    );
    match key.last_seen {
        Some(at) => {
            let _ = writeln!(
                out,
                "<td data-v=\"{at}\" title=\"{}\">{}</td>",
                rfc3339(at),
                ago(now - at)
            );
        }
        None => out.push_str("<td class=\"zero\" data-v=\"0\">never</td>\n"),
    }
    let score = key.anomaly_score;
    let class = if score > SPIKE { " class=\"bad\"" } else { "" };
    let _ = writeln!(out, "<td{class} data-v=\"{score}\">{score:.2}</td>");
    match key.created {
        Some(created) => {
            let days = (now - created) / DAY;
            let class = if now - created > ROTATE_AFTER_DAYS * DAY {
                " class=\"warn\""
            } else {
                ""
            };
            let _ = writeln!(
                out,
                "<td{class} data-v=\"{days}\" title=\"created {}\">{days} d</td>",
                rfc3339(created)
            );
        }
        None => out.push_str("<td class=\"zero\" data-v=\"-1\">unknown</td>\n"),
    }
    match key.expires {
        Some(expires) if expires <= now => {
            let _ = writeln!(
                out,
                "<td class=\"bad\" data-v=\"-1\" title=\"expired {}\">expired</td>",
                rfc3339(expires)
            );
        }
        Some(expires) => {
            let days = (expires - now) / DAY;
            let class = if expires - now <= EXPIRY_WARNING_DAYS * DAY {
                " class=\"warn\""
            } else {
                ""
            };
            let _ = writeln!(
                out,
                "<td{class} data-v=\"{days}\" title=\"expires {}\">{days} d</td>",
                rfc3339(expires)
            );
        }
        // Sorts after every dated key.
        None => out.push_str("<td class=\"zero\" data-v=\"1e9\">never</td>\n"),
    }
    out.push_str("</tr>\n");
}

/// `1.2 MB`-style, powers of 1000 as the policy's sizes are.
fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit < UNITS.len() - 1 {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// `42 s ago`, `5 min ago`, `3 h ago`, `2 d ago`.
fn ago(seconds: i64) -> String {
    let s = seconds.max(0);
    match s {
        0..60 => format!("{s} s ago"),
        60..3600 => format!("{} min ago", s / 60),
        3600..86_400 => format!("{} h ago", s / 3600),
        _ => format!("{} d ago", s / 86_400),
    }
}

/// Text for HTML content and quoted attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::usage::report::{PolicyState, Requests};

    /// A client id an authorization server with open registration would let anyone choose.
    const HOSTILE: &str = "oauth:<img src=x onerror=alert(1)>\"&'";

    fn page_with_key(key: &str) -> String {
        let now = 1_800_000_000;
        render(&Report {
            generated_at: now,
            policy: PolicyState {
                generation: 1,
                last_reload: Some(now),
                last_error: None,
            },
            keys: vec![KeyRow {
                workspace: "acme".into(),
                key: key.into(),
                requests: Requests {
                    minute: 1,
                    hour: 2,
                    day: 3,
                },
                denied: 0,
                rate_limited: 0,
                concurrency_limited: 0,
                truncated: 0,
                bytes_out: 10,
                last_seen: Some(now - 5),
                anomaly_score: 0.0,
                created: None,
                expires: None,
            }],
        })
    }

    /// The attributes of a start tag (`<tr a="1" b="2">`) as (name, value) pairs, or `None`
    /// when any attribute is not `name="value"` with nothing else between them.
    fn quoted_attributes(tag: &str) -> Option<Vec<(&str, &str)>> {
        let inner = tag.strip_prefix('<')?.strip_suffix('>')?;
        let (_, mut rest) = inner.split_once(' ').unwrap_or((inner, ""));
        let mut attributes = Vec::new();
        while !rest.is_empty() {
            let (name, after) = rest.split_once("=\"")?;
            let name_ok =
                !name.is_empty() && name.bytes().all(|b| b.is_ascii_lowercase() || b == b'-');
            let (value, after) = after.split_once('"')?;
            if !name_ok || value.contains(['<', '>']) {
                return None;
            }
            attributes.push((name, value));
            rest = after.strip_prefix(' ').unwrap_or(after);
        }
        Some(attributes)
    }

    #[test]
    fn a_hostile_client_id_is_text_and_never_markup() {
        let page = page_with_key(HOSTILE);
        assert!(!page.contains("<img"), "{page}");
        assert!(!page.contains("onerror=alert(1)>"), "{page}");
        let escaped = "oauth:&lt;img src=x onerror=alert(1)&gt;&quot;&amp;&#39;";
        let start = page.find("<tr data-workspace").expect("the key's row");
        let row = &page[start..start + page[start..].find("</tr>").unwrap()];
        // Every tag of the row, its own included, has only quoted attributes, and the id is
        // one attribute's whole value, and a cell's whole text.
        let mut tags = 0;
        for piece in row.split('<').skip(1) {
            let tag = format!("<{}>", piece.split_once('>').unwrap().0);
            if tag.starts_with("</") {
                continue;
            }
            let attributes = quoted_attributes(&tag).unwrap_or_else(|| panic!("{tag}"));
            tags += 1;
            if tag.starts_with("<tr") {
                assert_eq!(
                    attributes,
                    [("data-workspace", "acme"), ("data-key", escaped)]
                );
            }
        }
        assert_eq!(tags, 1 + 14, "{row}");
        assert!(row.contains(&format!("<td>{escaped}</td>")), "{row}");
    }

    #[test]
    fn text_is_escaped_and_sizes_and_ages_read_at_a_glance() {
        assert_eq!(
            escape("<a href='x'>&\"</a>"),
            "&lt;a href=&#39;x&#39;&gt;&amp;&quot;&lt;/a&gt;"
        );
        assert_eq!(bytes(999), "999 B");
        assert_eq!(bytes(1_234_567), "1.2 MB");
        assert_eq!(ago(59), "59 s ago");
        assert_eq!(ago(7200), "2 h ago");
        assert_eq!(ago(3 * 86_400 + 5), "3 d ago");
    }
}
