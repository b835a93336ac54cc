//! `/usage` as a browser gets it: one well-formed, self-contained document with every key's
//! row and numbers, served under a strict Content-Security-Policy.

use crate::common::blocking;
use crate::common::upstream::Mode;
use crate::gateway::setup_with;
use crate::usage::{LIMITS, get, known_sequence, row, usage_json};

/// A tag-balance check: every element is closed in order (void elements excepted), attribute
/// quotes balance, and script and style contents are skipped.
fn assert_well_formed(html: &str) {
    const VOID: &[&str] = &["meta", "link", "br", "hr", "img", "input", "col", "wbr"];
    assert!(html.starts_with("<!DOCTYPE html>"), "no doctype");
    let mut open: Vec<String> = Vec::new();
    let mut rest = html;
    while let Some(at) = rest.find('<') {
        rest = &rest[at + 1..];
        if let Some(after) = rest.strip_prefix("!") {
            rest = &after[after.find('>').expect("unclosed declaration") + 1..];
            continue;
        }
        let end = rest.find('>').expect("unclosed tag");
        let tag = &rest[..end];
        assert_eq!(
            tag.matches('"').count() % 2,
            0,
            "unbalanced quotes in <{tag}>"
        );
        rest = &rest[end + 1..];
        if let Some(name) = tag.strip_prefix('/') {
            let top = open
                .pop()
                .unwrap_or_else(|| panic!("</{name}> closes nothing"));
            assert_eq!(top, name.trim(), "</{name}> closes <{top}>");
            continue;
        }
        let name: String = tag
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric())
            .collect();
        assert!(!name.is_empty(), "bad tag <{tag}>");
        if tag.ends_with('/') || VOID.contains(&name.as_str()) {
            continue;
        }
        if name == "script" || name == "style" {
            let close = format!("</{name}>");
            rest = &rest[rest.find(&close).expect("unclosed script or style")..];
        }
        open.push(name);
    }
    assert!(open.is_empty(), "never closed: {open:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_usage_page_is_one_well_formed_self_contained_document_with_every_key() {
    let s = setup_with(Mode::Stateless, "", LIMITS).await;
    known_sequence(&s).await;
    let admin = s.gw.admin;
    let (page, usage) = blocking(move || (get(admin, "/usage"), usage_json(admin))).await;
    assert_eq!(page.status, 200);
    assert_eq!(
        page.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    let csp = page.header("content-security-policy").unwrap();
    assert!(csp.starts_with("default-src 'none'"), "{csp}");
    let html = page.text();
    assert_well_formed(&html);

    // Nothing from elsewhere: no absolute URL in src/href, no @import, no url().
    let lower = html.to_ascii_lowercase();
    for attr in ["src=", "href="] {
        for (at, _) in lower.match_indices(attr) {
            let value = lower[at + attr.len()..].trim_start_matches(['"', '\'']);
            assert!(
                !value.starts_with("http:")
                    && !value.starts_with("https:")
                    && !value.starts_with("//"),
                "external reference: {}",
                &html[at..at + 60.min(html.len() - at)]
            );
        }
    }
    assert!(!lower.contains("@import") && !lower.contains("url("));
    assert!(!lower.contains("http://") && !lower.contains("https://"));

    // Each key's row, with its numbers in column order.
    for k in usage["keys"].as_array().unwrap() {
        let (ws, key) = (k["workspace"].as_str().unwrap(), k["key"].as_str().unwrap());
        let start = html
            .find(&format!("<tr data-workspace=\"{ws}\" data-key=\"{key}\">"))
            .unwrap_or_else(|| panic!("no row for {ws}/{key}"));
        let row = &html[start..start + html[start..].find("</tr>").unwrap()];
        let numbers: Vec<u64> = row
            .match_indices("data-v=\"")
            .map(|(at, m)| &row[at + m.len()..])
            .map(|v| &v[..v.find('"').unwrap()])
            .take(8)
            .map(|v| v.parse().unwrap())
            .collect();
        let expected: Vec<u64> = [
            &k["requests"]["minute"],
            &k["requests"]["hour"],
            &k["requests"]["day"],
            &k["denied"],
            &k["rate_limited"],
            &k["concurrency_limited"],
            &k["truncated"],
            &k["bytes_out"],
        ]
        .iter()
        .map(|v| v.as_u64().unwrap())
        .collect();
        assert_eq!(numbers, expected, "{ws}/{key}");
        assert!(row.contains(&format!("<td>{key}</td>")), "{row}");
    }
    let full = row(&usage, "acme", "full");
    assert!(full["requests"]["day"].as_u64().unwrap() > 0);
    assert!(html.contains(
        "<td class=\"bad\" data-v=\"-1\" title=\"expired 2020-01-01T00:00:00Z\">expired</td>"
    ));
}
