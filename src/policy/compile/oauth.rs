//! `oauth:` — the resource identifier, the authorization servers, the issuers (JWKS source,
//! pinned algorithms, workspace claim, optional RFC 7662 introspection) and the scopes the
//! metadata advertises, compiled into [`Config`] and then the runtime [`OAuth`].
//!
//! Invariants: every problem is a diagnostic at its node; at most one issuer introspects
//! (an opaque token names no issuer, so it must have exactly one place to go); `OAuth::new` runs only on a section
//! with none, and its refusal is reported at `oauth`. A `jwks_file` is read now, relative to
//! the policy file's folder, so it is reloaded with the policy. The client secret, read from
//! the environment (`${VAR}`), never appears in a diagnostic.

mod issuer;
mod url;

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use http::Uri;
use serde_saphyr::{Location, Spanned};

use super::super::schema::{NamedMap, OAuthSpec, WorkspaceSpec};
use super::{Cx, Env};
use crate::auth::oauth::{Config, IssuerConfig, OAuth};
use issuer::issuer_config;
use url::{Web, origin, web_url};

/// Where the compiler finds what `oauth:` refers to outside itself.
pub(crate) struct Inputs<'a> {
    pub workspaces: &'a NamedMap<WorkspaceSpec>,
    /// `jwks_file` paths are relative to this folder (the policy file's).
    pub base_dir: &'a Path,
    pub public_url: Option<&'a Spanned<String>>,
    pub env: Env<'a>,
}

pub(crate) fn compile(
    cx: &mut Cx,
    spec: &Spanned<OAuthSpec>,
    inputs: &Inputs,
) -> Option<Arc<OAuth>> {
    let before = cx.diagnostics.len();
    let at = spec.referenced;
    let spec = &spec.value;

    let resource = required(cx, &spec.resource, at, "oauth.resource").and_then(|r| {
        web_url(&r.value, Web::HttpsOrLoopback)
            .map_err(|m| cx.error(r.referenced, "oauth.resource", m))
            .ok()
            .map(|_| r.value.clone())
    });
    if let (Some(resource), Some(public)) = (&resource, inputs.public_url) {
        warn_other_origin(cx, resource, public);
    }
    let authorization_servers = authorization_servers(cx, spec, at);
    let issuers = issuers(cx, spec, at, inputs);
    let scopes_supported = scopes_supported(cx, spec, inputs.workspaces);

    if cx.diagnostics.len() != before {
        return None;
    }
    let config = Config {
        resource: resource?,
        authorization_servers,
        scopes_supported,
        issuers,
    };
    match OAuth::new(config) {
        Ok(oauth) => Some(Arc::new(oauth)),
        Err(m) => {
            cx.error(at, "oauth", m);
            None
        }
    }
}

/// The field's value, or a diagnostic at the enclosing node naming it.
fn required<'s, T>(
    cx: &mut Cx,
    field: &'s Option<T>,
    parent: Location,
    path: &str,
) -> Option<&'s T> {
    if field.is_none() {
        cx.error(parent, path, "required");
    }
    field.as_ref()
}

fn authorization_servers(cx: &mut Cx, spec: &OAuthSpec, at: Location) -> Vec<String> {
    let path = "oauth.authorization_servers";
    let Some(list) = required(cx, &spec.authorization_servers, at, path) else {
        return Vec::new();
    };
    if list.value.is_empty() {
        cx.error(list.referenced, path, "at least one is required");
    }
    let mut out: Vec<String> = Vec::with_capacity(list.value.len());
    for (i, server) in list.value.iter().enumerate() {
        let path = format!("{path}[{i}]");
        if let Err(m) = web_url(&server.value, Web::HttpsOrLoopback) {
            cx.error(server.referenced, &path, m);
        } else if out.contains(&server.value) {
            cx.error(server.referenced, &path, "listed twice");
        } else {
            out.push(server.value.clone());
        }
    }
    out
}

fn issuers(cx: &mut Cx, spec: &OAuthSpec, at: Location, inputs: &Inputs) -> Vec<IssuerConfig> {
    let Some(list) = required(cx, &spec.issuers, at, "oauth.issuers") else {
        return Vec::new();
    };
    if list.value.is_empty() {
        cx.error(list.referenced, "oauth.issuers", "at least one is required");
    }
    let mut seen: HashMap<&str, Location> = HashMap::new();
    let mut introspecting: Option<Location> = None;
    let mut out = Vec::with_capacity(list.value.len());
    for (i, entry) in list.value.iter().enumerate() {
        let path = format!("oauth.issuers[{i}]");
        if let Some(endpoint) = &entry.value.introspection_endpoint {
            match introspecting {
                None => introspecting = Some(endpoint.referenced),
                Some(first) => cx.error(
                    endpoint.referenced,
                    &format!("{path}.introspection_endpoint"),
                    format!(
                        "at most one issuer may introspect opaque tokens (an opaque token names no issuer, so it would be sent to each); the first is at line {}",
                        first.line()
                    ),
                ),
            }
        }
        if let Some(issuer) = &entry.value.issuer
            && let Some(first) = seen.insert(&issuer.value, issuer.referenced)
        {
            cx.error(
                issuer.referenced,
                &format!("{path}.issuer"),
                format!(
                    "issuer {:?} is listed twice (first at line {})",
                    issuer.value,
                    first.line()
                ),
            );
        }
        // One issuer may name any workspace; with several, each must say which it may, or an
        // administrator of one (or whoever can shape its workspace claim) could act in
        // another's workspaces.
        if list.value.len() > 1 && entry.value.workspaces.is_none() {
            cx.error(
                entry.referenced,
                &format!("{path}.workspaces"),
                "required when there is more than one issuer: list the workspaces this issuer's tokens may name",
            );
        }
        if let Some(issuer) = issuer_config(cx, &entry.value, entry.referenced, &path, inputs) {
            out.push(issuer);
        }
    }
    out
}

fn scopes_supported(
    cx: &mut Cx,
    spec: &OAuthSpec,
    workspaces: &NamedMap<WorkspaceSpec>,
) -> Vec<String> {
    // The union of the workspaces' scopes, in file order.
    let mut known: Vec<String> = Vec::new();
    for (_, ws) in &workspaces.0 {
        for s in &ws.scopes {
            if !known.contains(&s.value) {
                known.push(s.value.clone());
            }
        }
    }
    let Some(list) = &spec.scopes_supported else {
        return known;
    };
    let mut out: Vec<String> = Vec::with_capacity(list.len());
    for (i, scope) in list.iter().enumerate() {
        let path = format!("oauth.scopes_supported[{i}]");
        if !known.contains(&scope.value) {
            cx.error(
                scope.referenced,
                &path,
                format!("unknown scope {:?}: no workspace has it", scope.value),
            );
        } else if out.contains(&scope.value) {
            cx.error(scope.referenced, &path, "listed twice");
        } else {
            out.push(scope.value.clone());
        }
    }
    out
}

/// The audience and the metadata URL come from `resource`; `server.public_url` does not enter
/// them. A public URL on another origin is most likely a mistake, so it is pointed out.
fn warn_other_origin(cx: &mut Cx, resource: &str, public: &Spanned<String>) {
    let (Ok(r), Ok(p)) = (resource.parse::<Uri>(), public.value.parse::<Uri>()) else {
        return;
    };
    if origin(&r) != origin(&p) {
        cx.warn(
            public.referenced,
            format!(
                "server.public_url {:?} is on another origin than oauth.resource {resource:?}; clients are sent to the resource's",
                public.value
            ),
        );
    }
}
