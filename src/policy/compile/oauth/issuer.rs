//! One entry of `oauth.issuers`: the exact `iss`, where its keys come from (`jwks_uri`, or a
//! `jwks_file` read now), the pinned algorithms, the workspace claim and optional RFC 7662
//! introspection.
//!
//! Invariants: exactly one key source; the URLs fetched from are https (plain http only to a
//! loopback host); algorithms are only RS256, ES256 and EdDSA; the introspection fields come
//! all together or not at all, and the client secret (from `${VAR}`) appears in no
//! diagnostic or warning.

use std::path::Path;

use serde_saphyr::{Location, Spanned};

use super::super::super::schema::IssuerSpec;
use super::super::{Cx, Env, upstream};
use super::url::{Web, web_url};
use super::{Inputs, required};
use crate::auth::oauth::{Algorithm, IntrospectionConfig, IssuerConfig, JwksSource};

/// A JWK set is a few kilobytes; anything near this is not one.
const MAX_JWKS_FILE_BYTES: u64 = 1 << 20;

pub(super) fn issuer_config(
    cx: &mut Cx,
    spec: &IssuerSpec,
    at: Location,
    path: &str,
    inputs: &Inputs,
) -> Option<IssuerConfig> {
    let issuer = required(cx, &spec.issuer, at, &format!("{path}.issuer")).and_then(|i| {
        let text = &i.value;
        let fine = !text.is_empty() && text.trim() == text;
        if !fine {
            cx.error(
                i.referenced,
                &format!("{path}.issuer"),
                "must be the exact, non-empty `iss` value (no surrounding spaces)",
            );
        }
        fine.then(|| text.clone())
    });
    let jwks = jwks(cx, spec, at, path, inputs.base_dir);
    let workspace_claim = required(
        cx,
        &spec.workspace_claim,
        at,
        &format!("{path}.workspace_claim"),
    )
    .and_then(|c| {
        let fine = !c.value.is_empty() && c.value.trim() == c.value;
        if !fine {
            cx.error(
                c.referenced,
                &format!("{path}.workspace_claim"),
                "must be a claim name (non-empty, no surrounding spaces)",
            );
        }
        fine.then(|| c.value.clone())
    });
    let algorithms = algorithms(cx, spec, path);
    let workspaces = workspaces(cx, spec, path, inputs);
    let introspection = introspection(cx, spec, at, path, inputs.env);
    Some(IssuerConfig {
        issuer: issuer?,
        jwks: jwks?,
        algorithms: algorithms?,
        workspace_claim: workspace_claim?,
        workspaces: workspaces?,
        introspection: introspection?,
    })
}

/// `workspaces:`: names of workspaces of the policy, each once. `Some(None)` when absent.
fn workspaces(
    cx: &mut Cx,
    spec: &IssuerSpec,
    path: &str,
    inputs: &Inputs,
) -> Option<Option<Vec<String>>> {
    let Some(list) = &spec.workspaces else {
        return Some(None);
    };
    let before = cx.diagnostics.len();
    let mut out: Vec<String> = Vec::with_capacity(list.value.len());
    for (i, name) in list.value.iter().enumerate() {
        let at = format!("{path}.workspaces[{i}]");
        if !inputs
            .workspaces
            .0
            .iter()
            .any(|(w, _)| w.value == name.value)
        {
            cx.error(
                name.referenced,
                &at,
                format!("unknown workspace {:?}", name.value),
            );
        } else if out.contains(&name.value) {
            cx.error(
                name.referenced,
                &at,
                format!("workspace {:?} is listed twice", name.value),
            );
        }
        out.push(name.value.clone());
    }
    (cx.diagnostics.len() == before).then_some(Some(out))
}

fn jwks(
    cx: &mut Cx,
    spec: &IssuerSpec,
    at: Location,
    path: &str,
    base_dir: &Path,
) -> Option<JwksSource> {
    match (&spec.jwks_uri, &spec.jwks_file) {
        (None, None) => {
            cx.error(
                at,
                &format!("{path}.jwks_uri"),
                "jwks_uri or jwks_file is required",
            );
            None
        }
        (Some(_), Some(file)) => {
            cx.error(
                file.referenced,
                &format!("{path}.jwks_file"),
                "give jwks_uri or jwks_file, not both",
            );
            None
        }
        (Some(uri), None) => {
            let field = format!("{path}.jwks_uri");
            fetched_url(cx, uri, &field)?;
            Some(JwksSource::Uri(uri.value.clone()))
        }
        (None, Some(file)) => {
            let resolved = base_dir.join(&file.value);
            match read_jwks(&resolved) {
                Ok(json) => Some(JwksSource::File {
                    path: resolved,
                    json,
                }),
                Err(m) => {
                    cx.error(file.referenced, &format!("{path}.jwks_file"), m);
                    None
                }
            }
        }
    }
}

/// The file's text, when it is (on its face) a JWK set; parsing the keys is the runtime's.
fn read_jwks(path: &Path) -> Result<String, String> {
    let shown = path.display();
    let size = std::fs::metadata(path)
        .map_err(|e| format!("cannot read {shown}: {e}"))?
        .len();
    if size > MAX_JWKS_FILE_BYTES {
        return Err(format!(
            "{shown} is {size} bytes; a JWK set is at most {MAX_JWKS_FILE_BYTES}"
        ));
    }
    let json = std::fs::read_to_string(path).map_err(|e| format!("cannot read {shown}: {e}"))?;
    let is_set = serde_json::from_str::<serde_json::Value>(&json)
        .is_ok_and(|v| v.get("keys").is_some_and(serde_json::Value::is_array));
    if !is_set {
        return Err(format!(
            "{shown} is not a JWK set (a JSON object with a \"keys\" array)"
        ));
    }
    Ok(json)
}

fn algorithms(cx: &mut Cx, spec: &IssuerSpec, path: &str) -> Option<Vec<Algorithm>> {
    let Some(list) = &spec.algorithms else {
        return Some(vec![Algorithm::Rs256]);
    };
    let before = cx.diagnostics.len();
    if list.value.is_empty() {
        cx.error(
            list.referenced,
            &format!("{path}.algorithms"),
            "at least one is required (leave the field out for [RS256])",
        );
    }
    let mut out = Vec::with_capacity(list.value.len());
    for (i, name) in list.value.iter().enumerate() {
        let field = format!("{path}.algorithms[{i}]");
        let alg = match name.value.as_str() {
            "RS256" => Algorithm::Rs256,
            "ES256" => Algorithm::Es256,
            "EdDSA" => Algorithm::EdDsa,
            other => {
                cx.error(
                    name.referenced,
                    &field,
                    format!(
                        "unknown algorithm {other:?}: expected RS256, ES256 or EdDSA (`none` and HMAC are never accepted)"
                    ),
                );
                continue;
            }
        };
        if out.contains(&alg) {
            cx.error(name.referenced, &field, "listed twice");
        }
        out.push(alg);
    }
    (cx.diagnostics.len() == before).then_some(out)
}

/// `Some(None)` without introspection, `Some(Some(_))` with all three fields, `None` after a
/// diagnostic.
fn introspection(
    cx: &mut Cx,
    spec: &IssuerSpec,
    at: Location,
    path: &str,
    env: Env,
) -> Option<Option<IntrospectionConfig>> {
    let (endpoint, id, secret) = (
        &spec.introspection_endpoint,
        &spec.client_id,
        &spec.client_secret,
    );
    if endpoint.is_none() && id.is_none() && secret.is_none() {
        return Some(None);
    }
    let before = cx.diagnostics.len();
    for (field, name) in [
        (endpoint, "introspection_endpoint"),
        (id, "client_id"),
        (secret, "client_secret"),
    ] {
        if field.is_none() {
            cx.error(
                at,
                &format!("{path}.{name}"),
                "required with the other introspection fields (introspection_endpoint, client_id and client_secret go together)",
            );
        }
    }
    if let Some(e) = endpoint {
        let field = format!("{path}.introspection_endpoint");
        fetched_url(cx, e, &field);
    }
    if let Some(id) = id
        && id.value.trim().is_empty()
    {
        cx.error(
            id.referenced,
            &format!("{path}.client_id"),
            "must not be empty",
        );
    }
    let secret = secret.as_ref().and_then(|s| {
        let field = format!("{path}.client_secret");
        if !s.value.contains("${") {
            cx.warn(
                s.referenced,
                format!("{field}: the secret is written in the policy file; use ${{VAR}} to read it from the environment"),
            );
        }
        match upstream::substitute(&s.value, env) {
            Ok(v) if v.is_empty() => {
                cx.error(s.referenced, &field, "is empty");
                None
            }
            Ok(v) => Some(v),
            Err(m) => {
                cx.error(s.referenced, &field, m);
                None
            }
        }
    });
    if cx.diagnostics.len() != before {
        return None;
    }
    Some(Some(IntrospectionConfig {
        endpoint: endpoint.as_ref()?.value.clone(),
        client_id: id.as_ref()?.value.clone(),
        client_secret: secret?,
    }))
}

/// Checks a URL the gateway itself fetches from (`jwks_uri`, `introspection_endpoint`):
/// https, or plain http to a loopback host only. Beyond loopback, whoever answers a plain-http
/// JWKS fetch can mint tokens, and an introspection call would show the client secret and
/// the token to anyone on the path; an in-cluster authorization server is reached over TLS
/// (terminated by a sidecar or the cluster's ingress) instead.
fn fetched_url(cx: &mut Cx, url: &Spanned<String>, field: &str) -> Option<()> {
    match web_url(&url.value, Web::Fetched) {
        Err(m) => {
            cx.error(url.referenced, field, m);
            None
        }
        Ok(_) => Some(()),
    }
}
