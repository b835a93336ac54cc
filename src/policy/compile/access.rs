//! Who may do what: `tools:`/`methods:` rules, `workspaces:` and their keys.
//!
//! Invariants: a key hash appears once in the whole policy; key ids are unique within a
//! workspace; a key's scopes are a subset of its workspace's; every rule `feature` is one some
//! workspace enables. A rule that an earlier rule shadows entirely is a warning, not an error.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use serde_saphyr::Spanned;

use super::super::schema::{KeySpec, NamedMap, PolicySpec, RuleSpec, WorkspaceSpec};
use super::super::{Glob, Key, Rule, Workspace};
use super::limits::Partial;
use super::{Cx, positive};

/// Scopes and features: `[A-Za-z0-9:._/-]+`.
fn is_scope(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, ':' | '.' | '_' | '/' | '-'))
}

/// Key ids and workspace names (they become log fields, headers and metric labels):
/// `[A-Za-z0-9._-]+`.
fn is_name(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

/// A list of scopes (or features), each checked, as a set.
fn scope_set(cx: &mut Cx, items: &[Spanned<String>], path: &str, what: &str) -> BTreeSet<String> {
    let mut set = BTreeSet::new();
    for (i, s) in items.iter().enumerate() {
        if is_scope(&s.value) {
            set.insert(s.value.clone());
        } else {
            cx.error(
                s.referenced,
                &format!("{path}[{i}]"),
                format!(
                    "invalid {what} {:?}: use only A-Z a-z 0-9 : . _ / -",
                    s.value
                ),
            );
        }
    }
    set
}

/// Compiles one rule section and warns about rules that can never match.
pub(crate) fn rules(cx: &mut Cx, specs: &[Spanned<RuleSpec>], section: &str) -> Vec<Rule> {
    let mut out = Vec::with_capacity(specs.len());
    for (i, spec) in specs.iter().enumerate() {
        let path = format!("{section}[{i}]");
        let r = &spec.value;
        if r.patterns.0.is_empty() {
            cx.error(
                spec.referenced,
                &format!("{path}.match"),
                "at least one pattern is required",
            );
        }
        if r.patterns.0.iter().any(String::is_empty) {
            cx.error(
                spec.referenced,
                &format!("{path}.match"),
                "a pattern cannot be empty",
            );
        }
        let requires = scope_set(cx, &r.requires, &format!("{path}.requires"), "scope");
        let feature = r.feature.as_ref().and_then(|f| {
            if is_scope(&f.value) {
                Some(f.value.clone())
            } else {
                let m = format!(
                    "invalid feature {:?}: use only A-Z a-z 0-9 : . _ / -",
                    f.value
                );
                cx.error(f.referenced, &format!("{path}.feature"), m);
                None
            }
        });
        let cost = match &r.cost {
            None => 1,
            Some(c) => positive::<u32>(cx, c, &format!("{path}.cost")).unwrap_or(1),
        };
        out.push(Rule {
            patterns: r.patterns.0.iter().map(|p| Glob::new(p)).collect(),
            requires: requires.into_iter().collect(),
            feature,
            cost,
        });
    }
    for (i, rule) in out.iter().enumerate() {
        if let Some(shadowing) = shadowed_by(&out[..i], rule) {
            let earlier = shadowing
                .iter()
                .map(|&j| format!("{section}[{j}] ({})", show(&out[j])))
                .collect::<Vec<_>>()
                .join(" and ");
            let verb = if shadowing.len() == 1 {
                "matches"
            } else {
                "match"
            };
            cx.warn(
                specs[i].referenced,
                format!(
                    "{section}[{i}] ({}) can never match: {earlier} {verb} first",
                    show(rule)
                ),
            );
        }
    }
    out
}

/// The earlier rules that together cover every pattern of `rule`, if they do.
fn shadowed_by(earlier: &[Rule], rule: &Rule) -> Option<Vec<usize>> {
    if rule.patterns.is_empty() {
        return None;
    }
    let mut by = BTreeSet::new();
    for p in &rule.patterns {
        let j = earlier
            .iter()
            .position(|e| e.patterns.iter().any(|q| p.is_covered_by(q)))?;
        by.insert(j);
    }
    Some(by.into_iter().collect())
}

fn show(rule: &Rule) -> String {
    rule.patterns
        .iter()
        .map(|g| format!("{:?}", g.as_str()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The contract's `methods:` when the section is absent.
pub(crate) fn default_methods() -> Vec<Rule> {
    let rule = |patterns: &[&str], requires: &[&str]| Rule {
        patterns: patterns.iter().map(|p| Glob::new(p)).collect(),
        requires: requires.iter().map(|s| (*s).to_owned()).collect(),
        feature: None,
        cost: 1,
    };
    vec![
        rule(
            &[
                "initialize",
                "ping",
                "notifications/*",
                "tools/list",
                "resources/list",
                "resources/templates/list",
                "prompts/list",
                "completion/complete",
                "logging/setLevel",
                "server/discover",
                "subscriptions/listen",
                "tasks/get",
                "tasks/result",
                "tasks/list",
                "tasks/cancel",
            ],
            &[],
        ),
        rule(
            &[
                "resources/read",
                "resources/subscribe",
                "resources/unsubscribe",
                "prompts/get",
            ],
            &["crm:read"],
        ),
    ]
}

/// Every key, by the SHA-256 of the whole key string.
pub(crate) use super::super::KeyMap;

/// A tool rule whose `cost` is more than some key's `burst` can never pass for that key (429
/// every time). Not an error — that key may not be meant to call those tools — but worth a
/// line from `check`.
pub(crate) fn warn_costs_over_burst(cx: &mut Cx, rules: &[Spanned<RuleSpec>], keys: &KeyMap) {
    let Some(smallest) = keys
        .values()
        .min_by_key(|k| (k.limits.burst, &k.workspace.name, &k.id))
    else {
        return;
    };
    for (i, rule) in rules.iter().enumerate() {
        if let Some(cost) = &rule.value.cost
            && cost.value > u64::from(smallest.limits.burst)
        {
            cx.warn(
                cost.referenced,
                format!(
                    "tools[{i}].cost is {}, more than the burst of key {}/{} ({}): its calls to these tools will always be refused",
                    cost.value, smallest.workspace.name, smallest.id, smallest.limits.burst
                ),
            );
        }
    }
}

/// Workspaces in name order, and every key by its hash.
pub(crate) fn workspaces(
    cx: &mut Cx,
    spec: &Spanned<NamedMap<WorkspaceSpec>>,
    defaults: &Partial,
) -> (Vec<Arc<Workspace>>, KeyMap) {
    let mut out = Vec::with_capacity(spec.value.0.len());
    let mut keys = KeyMap::default();
    // Where each hash was first seen, to name it when it appears again.
    let mut seen_hashes: HashMap<[u8; 32], String> = HashMap::new();
    if spec.value.0.is_empty() {
        cx.error(
            spec.referenced,
            "workspaces",
            "at least one workspace is required",
        );
    }
    for (name, ws) in &spec.value.0 {
        let path = format!("workspaces.{}", name.value);
        if !is_name(&name.value) {
            cx.error(
                name.referenced,
                &path,
                "invalid workspace name: use only A-Z a-z 0-9 . _ -",
            );
        }
        let ws_limits = defaults.overlay(Partial::from_spec(
            cx,
            ws.limits.as_ref(),
            &format!("{path}.limits"),
        ));
        let workspace = Arc::new(Workspace {
            name: Arc::from(name.value.as_str()),
            scopes: scope_set(cx, &ws.scopes, &format!("{path}.scopes"), "scope"),
            features: scope_set(cx, &ws.features, &format!("{path}.features"), "feature"),
            limits: ws_limits.resolve(),
        });
        let key_specs = match &ws.keys {
            Some(k) if !k.value.is_empty() => &k.value[..],
            other => {
                let at = other.as_ref().map_or(name.referenced, |k| k.referenced);
                cx.error(at, &format!("{path}.keys"), "at least one key is required");
                &[]
            }
        };
        let mut ids: HashMap<&str, usize> = HashMap::new();
        for (i, k) in key_specs.iter().enumerate() {
            let kpath = format!("{path}.keys[{i}]");
            if let Some(first) = ids.insert(&k.value.id.value, i) {
                cx.error(
                    k.value.id.referenced,
                    &format!("{kpath}.id"),
                    format!(
                        "duplicate key id {:?} (also {path}.keys[{first}])",
                        k.value.id.value
                    ),
                );
            }
            let Some(key) = key(cx, &k.value, &kpath, &workspace, &ws_limits) else {
                continue;
            };
            let hash = decode_hash(&k.value.sha256.value).expect("checked by key()");
            if let Some(first) = seen_hashes.get(&hash) {
                cx.error(
                    k.value.sha256.referenced,
                    &format!("{kpath}.sha256"),
                    format!("this key hash is already used by {first}; a key hash appears once in the whole policy"),
                );
                continue;
            }
            seen_hashes.insert(hash, kpath);
            keys.insert(hash, Arc::new(key));
        }
        out.push(workspace);
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    (out, keys)
}

fn key(
    cx: &mut Cx,
    k: &KeySpec,
    path: &str,
    workspace: &Arc<Workspace>,
    ws_limits: &Partial,
) -> Option<Key> {
    let before = cx.diagnostics.len();
    if !is_name(&k.id.value) {
        cx.error(
            k.id.referenced,
            &format!("{path}.id"),
            format!(
                "invalid key id {:?}: use only A-Z a-z 0-9 . _ -",
                k.id.value
            ),
        );
    }
    if decode_hash(&k.sha256.value).is_none() {
        cx.error(
            k.sha256.referenced,
            &format!("{path}.sha256"),
            "expected exactly 64 lowercase hex digits (the output of `mcpwarden hash-key`)",
        );
    }
    let mut date = |d: &Option<Spanned<super::super::schema::DateSpec>>, field: &str| {
        let d = d.as_ref()?;
        d.value
            .parse()
            .map_err(|m| cx.error(d.referenced, &format!("{path}.{field}"), m))
            .ok()
    };
    let created = date(&k.created, "created");
    let expires = date(&k.expires, "expires");
    if let (Some(c), Some(e), Some(at)) = (created, expires, k.expires.as_ref())
        && e <= c
    {
        cx.error(
            at.referenced,
            &format!("{path}.expires"),
            "is not after created",
        );
    }
    let scopes = match &k.scopes {
        None => workspace.scopes.clone(),
        Some(list) => {
            let spath = format!("{path}.scopes");
            let set = scope_set(cx, list, &spath, "scope");
            for (i, s) in list.iter().enumerate() {
                if is_scope(&s.value) && !workspace.scopes.contains(&s.value) {
                    cx.error(
                        s.referenced,
                        &format!("{spath}[{i}]"),
                        format!(
                            "scope {:?} is not granted to workspace {}; a key's scopes narrow its workspace's, never widen them",
                            s.value, workspace.name
                        ),
                    );
                }
            }
            set
        }
    };
    let limits = ws_limits
        .overlay(Partial::from_spec(
            cx,
            k.limits.as_ref(),
            &format!("{path}.limits"),
        ))
        .resolve();
    (cx.diagnostics.len() == before).then(|| {
        Key::new(
            Arc::clone(workspace),
            &k.id.value,
            scopes,
            limits,
            created,
            expires,
        )
    })
}

/// 64 lowercase hex digits into 32 bytes.
fn decode_hash(text: &str) -> Option<[u8; 32]> {
    if text.len() != 64 || !text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return None;
    }
    let mut out = [0u8; 32];
    hex::decode_to_slice(text, &mut out).ok()?;
    Some(out)
}

/// Every rule's `feature` must be one that some workspace enables (else it is a typo, and
/// the tool would be denied to everyone).
pub(crate) fn check_features(cx: &mut Cx, spec: &PolicySpec, workspaces: &[Arc<Workspace>]) {
    let enabled: BTreeSet<&str> = workspaces
        .iter()
        .flat_map(|w| w.features.iter().map(String::as_str))
        .collect();
    let sections = [
        ("tools", Some(&spec.tools)),
        ("methods", spec.methods.as_ref()),
    ];
    for (section, rules) in sections {
        for (i, rule) in rules.into_iter().flatten().enumerate() {
            if let Some(f) = &rule.value.feature
                && is_scope(&f.value)
                && !enabled.contains(f.value.as_str())
            {
                cx.error(
                    f.referenced,
                    &format!("{section}[{i}].feature"),
                    format!("feature {:?} is not enabled by any workspace", f.value),
                );
            }
        }
    }
}
