//! `mcpwarden check`: compile the policy, ask the OAuth issuers' endpoints whether they answer,
//! and print the one-screen summary, or every error as `FILE:LINE:COL: message` (exit 1).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use crate::auth::oauth::{Algorithm, JwksSource, OAuth};
use crate::policy::{self, Policy};

/// How long `check` waits for the issuers' endpoints, all together.
const PROBE_TIMEOUT: Duration = Duration::from_secs(30);

pub(super) fn check(path: &Path) -> i32 {
    let policy = match policy::compile_file(path) {
        Ok(policy) => policy,
        Err(e) => {
            eprintln!("{e}");
            return 1;
        }
    };
    if let Some(oauth) = &policy.oauth {
        let problems = probe(oauth);
        if !problems.is_empty() {
            let (line, col) = oauth_location(path);
            for problem in problems {
                eprintln!("{}:{line}:{col}: oauth: {problem}", path.display());
            }
            return 1;
        }
    }
    print!("{}", summary(path, &policy));
    for finding in policy::lifecycle::review(&policy, crate::policy::store::now()) {
        println!("warning: {finding}");
    }
    0
}

/// What the issuers' endpoints (JWKS, introspection) say, asked once on a small runtime of
/// its own; `check` has no other use for one.
fn probe(oauth: &OAuth) -> Vec<String> {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return vec![format!("cannot start a runtime to reach the issuers: {e}")],
    };
    runtime.block_on(async {
        tokio::time::timeout(PROBE_TIMEOUT, oauth.probe())
            .await
            .unwrap_or_else(|_| {
                vec![format!(
                    "the issuers' endpoints did not all answer within {} s",
                    PROBE_TIMEOUT.as_secs()
                )]
            })
    })
}

/// Where the `oauth:` section starts, for problems found after the policy compiled (the
/// compiled policy keeps no source locations); `0:0` if the file changed in between.
fn oauth_location(path: &Path) -> (u64, u64) {
    #[derive(serde::Deserialize)]
    struct Sections {
        oauth: Option<serde_saphyr::Spanned<serde::de::IgnoredAny>>,
    }
    std::fs::read_to_string(path)
        .ok()
        .and_then(|text| serde_saphyr::from_str::<Sections>(&text).ok())
        .and_then(|s| s.oauth)
        .map_or((0, 0), |o| (o.referenced.line(), o.referenced.column()))
}

/// The one-screen summary `check` prints.
pub fn summary(path: &Path, policy: &Policy) -> String {
    let l = &policy.limits;
    let mut out = format!(
        "{}: ok\n  upstream   {}://{} ({})\n  listen     {} (admin {})\n  limits     {} requests/min (burst {}), {} concurrent, responses ≤ {} B, requests ≤ {} B\n  tools      {} rules; methods {} rules\n  workspaces {}, keys {}\n",
        path.display(),
        if policy.upstream.tls { "https" } else { "http" },
        policy.upstream.authority,
        policy.upstream.addr,
        policy.server.listen,
        policy.server.admin_listen,
        l.requests_per_minute,
        l.burst,
        l.concurrent_connections,
        l.max_response_bytes,
        l.max_request_bytes,
        policy.tools.len(),
        policy.methods.len(),
        policy.workspaces.len(),
        policy.keys.len(),
    );
    for ws in &policy.workspaces {
        let mut ids: Vec<&str> = policy
            .keys
            .values()
            .filter(|k| Arc::ptr_eq(&k.workspace, ws))
            .map(|k| &*k.id)
            .collect();
        ids.sort_unstable();
        out.push_str(&format!(
            "    {}: {} keys ({}), {} requests/min\n",
            ws.name,
            ids.len(),
            ids.join(", "),
            ws.limits.requests_per_minute
        ));
    }
    if let Some(oauth) = &policy.oauth {
        out.push_str(&oauth_summary(oauth));
    }
    for warning in &policy.warnings {
        out.push_str(&format!("warning: {warning}\n"));
    }
    out
}

/// The `oauth:` lines of the summary: the resource and its metadata URL, the authorization
/// servers, one line per issuer, and the scopes advertised.
fn oauth_summary(oauth: &OAuth) -> String {
    let c = oauth.config();
    let mut out = format!(
        "  oauth      resource {}, metadata at {}\n    authorization servers: {}\n",
        c.resource,
        oauth.metadata().url(),
        c.authorization_servers.join(" "),
    );
    for issuer in &c.issuers {
        let keys = match &issuer.jwks {
            JwksSource::Uri(uri) => uri.clone(),
            JwksSource::File { path, .. } => format!("file {}", path.display()),
        };
        let algorithms: Vec<&str> = issuer
            .algorithms
            .iter()
            .map(|a| match a {
                Algorithm::Rs256 => "RS256",
                Algorithm::Es256 => "ES256",
                Algorithm::EdDsa => "EdDSA",
            })
            .collect();
        out.push_str(&format!(
            "    issuer {}: keys from {keys}, {}, workspace from claim {:?}",
            issuer.issuer,
            algorithms.join(" "),
            issuer.workspace_claim,
        ));
        if let Some(i) = &issuer.introspection {
            out.push_str(&format!(
                ", opaque tokens via {} as {}",
                i.endpoint, i.client_id
            ));
        }
        out.push('\n');
    }
    let scopes = if c.scopes_supported.is_empty() {
        "(none)".to_owned()
    } else {
        c.scopes_supported.join(" ")
    };
    out.push_str(&format!("    scopes supported: {scopes}\n"));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_oauth_section_is_located_for_problems_found_after_compiling() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.yaml");
        std::fs::write(&path, "version: 1\nworkspaces: {}\noauth:\n  resource: x\n").unwrap();
        assert_eq!(oauth_location(&path), (4, 3));
        std::fs::write(&path, "version: 1\n").unwrap();
        assert_eq!(oauth_location(&path), (0, 0));
    }
}
