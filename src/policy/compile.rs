//! Compiles a policy file's text into a runtime [`Policy`]: parse (`schema`), then give it
//! meaning — defaults, units, the upstream address, rules, workspaces, keys and their limits,
//! and the `oauth:` section.
//!
//! Invariants: either every problem in the file is reported (each as `file:line:col: path:
//! message`) and no `Policy` exists, or the `Policy` is complete and valid. Secrets read from
//! the environment (`${VAR}` in upstream headers and the OAuth client secret) never appear in
//! a diagnostic. `file` names the source and, for `oauth.issuers[].jwks_file`, the folder
//! relative paths start from.

mod access;
mod limits;
mod oauth;
#[cfg(test)]
mod tests;
mod upstream;

use std::fmt;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use serde_saphyr::{DefaultMessageFormatter, Location, MessageFormatter, Spanned};

use super::schema::{PolicySpec, ServerSpec};
use super::{Policy, Server};

/// One problem in a policy file, at the YAML node that causes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub file: String,
    /// 1-based; 0 when the problem has no place in the file (it could not be read).
    pub line: usize,
    pub col: usize,
    /// The dotted path of the node (`workspaces.acme.keys[1].expires`); empty when unknown.
    pub path: String,
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}: ", self.file, self.line, self.col)?;
        if !self.path.is_empty() {
            write!(f, "{}: ", self.path)?;
        }
        f.write_str(&self.message)
    }
}

/// Every problem found in a policy file, in file order.
#[derive(Debug, thiserror::Error)]
pub struct CompileError {
    pub diagnostics: Vec<Diagnostic>,
}

impl fmt::Display for CompileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.diagnostics.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{d}")?;
        }
        Ok(())
    }
}

/// Reads and compiles a policy file; a read error is one diagnostic at `0:0`.
pub fn compile_file(path: &Path) -> Result<Policy, CompileError> {
    let file = path.display().to_string();
    match std::fs::read_to_string(path) {
        Ok(text) => compile(&text, &file),
        Err(e) => Err(CompileError {
            diagnostics: vec![Diagnostic {
                file,
                line: 0,
                col: 0,
                path: String::new(),
                message: format!("cannot read the policy file: {e}"),
            }],
        }),
    }
}

/// Compiles policy text; `file` names the source in diagnostics, and its folder is where a
/// relative `jwks_file` is looked for.
pub fn compile(source: &str, file: &str) -> Result<Policy, CompileError> {
    compile_with_env(source, file, &|name| std::env::var(name).ok())
}

/// Where `${VAR}` values come from (the process environment, or a table in tests).
pub(crate) type Env<'a> = &'a dyn Fn(&str) -> Option<String>;

pub(crate) fn compile_with_env(source: &str, file: &str, env: Env) -> Result<Policy, CompileError> {
    let mut cx = Cx::new(file);
    // Default options keep serde-saphyr's budget and alias-expansion limits on, and refuse
    // duplicate keys.
    let spec: PolicySpec = match serde_saphyr::from_str(source) {
        Ok(spec) => spec,
        Err(e) => {
            let at = e.location().unwrap_or(Location::UNKNOWN);
            let message = DefaultMessageFormatter
                .format_message(&e)
                .chars()
                .map(|c| if c.is_control() { ' ' } else { c })
                .collect::<String>();
            cx.error(at, "", message);
            return Err(cx.into_error());
        }
    };

    if spec.version.value != 1 {
        cx.error(
            spec.version.referenced,
            "version",
            format!(
                "unsupported policy version {} (this gateway reads version 1)",
                spec.version.value
            ),
        );
    }
    let server = server(
        &mut cx,
        spec.server.as_ref().unwrap_or(&ServerSpec::default()),
    );
    let upstream = upstream::compile(&mut cx, &spec.upstream, env);
    let defaults = limits::Partial::from_spec(&mut cx, spec.limits.as_ref(), "limits");
    let tools = access::rules(&mut cx, &spec.tools, "tools");
    let methods = match &spec.methods {
        Some(rules) => access::rules(&mut cx, rules, "methods"),
        None => access::default_methods(),
    };
    let (workspaces, keys) = access::workspaces(&mut cx, &spec.workspaces, &defaults);
    access::check_features(&mut cx, &spec, &workspaces);
    access::warn_costs_over_burst(&mut cx, &spec.tools, &keys);
    let oauth = spec.oauth.as_ref().and_then(|section| {
        let inputs = oauth::Inputs {
            workspaces: &spec.workspaces.value,
            base_dir: Path::new(file).parent().unwrap_or(Path::new("")),
            public_url: spec.server.as_ref().and_then(|s| s.public_url.as_ref()),
            env,
        };
        oauth::compile(&mut cx, section, &inputs)
    });

    if !cx.diagnostics.is_empty() {
        return Err(cx.into_error());
    }
    let (Some(server), Some(upstream)) = (server, upstream) else {
        unreachable!("a section that failed to compile reported a diagnostic");
    };
    Ok(Policy {
        server,
        upstream,
        limits: defaults.resolve(),
        tools,
        methods,
        workspaces,
        keys,
        oauth,
        clients: Default::default(),
        warnings: cx.warnings,
    })
}

/// The compiler's notebook: diagnostics and warnings, with the file name.
pub(crate) struct Cx {
    file: String,
    diagnostics: Vec<Diagnostic>,
    warnings: Vec<String>,
}

impl Cx {
    fn new(file: &str) -> Self {
        Self {
            file: file.to_owned(),
            diagnostics: Vec::new(),
            warnings: Vec::new(),
        }
    }

    pub(crate) fn error(&mut self, at: Location, path: &str, message: impl Into<String>) {
        self.diagnostics.push(Diagnostic {
            file: self.file.clone(),
            line: usize::try_from(at.line()).unwrap_or(usize::MAX),
            col: usize::try_from(at.column()).unwrap_or(usize::MAX),
            path: path.to_owned(),
            message: message.into(),
        });
    }

    pub(crate) fn warn(&mut self, at: Location, message: impl fmt::Display) {
        self.warnings.push(format!(
            "{}:{}:{}: {message}",
            self.file,
            at.line(),
            at.column()
        ));
    }

    fn into_error(mut self) -> CompileError {
        // Stable: problems on the same node keep the order they were found in.
        self.diagnostics.sort_by_key(|d| (d.line, d.col));
        CompileError {
            diagnostics: self.diagnostics,
        }
    }
}

/// A `Spanned` integer that must fit `T` and be at least 1.
pub(crate) fn positive<T: TryFrom<u64>>(
    cx: &mut Cx,
    value: &Spanned<u64>,
    path: &str,
) -> Option<T> {
    if value.value == 0 {
        cx.error(value.referenced, path, "must be at least 1");
        return None;
    }
    match T::try_from(value.value) {
        Ok(v) => Some(v),
        Err(_) => {
            cx.error(
                value.referenced,
                path,
                format!("{} is too large", value.value),
            );
            None
        }
    }
}

fn server(cx: &mut Cx, spec: &ServerSpec) -> Option<Server> {
    let defaults = Server {
        listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
        admin_listen: SocketAddr::from(([127, 0, 0, 1], 9090)),
        public_url: None,
        threads: None,
        shutdown_grace: Duration::from_secs(10),
    };
    let before = cx.diagnostics.len();
    let addr = |cx: &mut Cx, v: &Option<Spanned<String>>, path: &str, default: SocketAddr| {
        let Some(v) = v else { return default };
        v.value.trim().parse().unwrap_or_else(|_| {
            cx.error(
                v.referenced,
                path,
                format!(
                    "invalid address {:?}: expected IP:PORT, like 127.0.0.1:8080 or [::]:8080",
                    v.value
                ),
            );
            default
        })
    };
    let listen = addr(cx, &spec.listen, "server.listen", defaults.listen);
    let admin_listen = addr(
        cx,
        &spec.admin_listen,
        "server.admin_listen",
        defaults.admin_listen,
    );
    if listen == admin_listen {
        let (at, path) = match (&spec.admin_listen, &spec.listen) {
            (Some(a), _) => (a.referenced, "server.admin_listen"),
            (None, Some(l)) => (l.referenced, "server.listen"),
            (None, None) => (Location::UNKNOWN, "server"),
        };
        cx.error(
            at,
            path,
            format!("listen and admin_listen are both {listen}; they need different addresses"),
        );
    }
    let public_url = spec.public_url.as_ref().and_then(|u| {
        upstream::check_public_url(&u.value)
            .map_err(|m| cx.error(u.referenced, "server.public_url", m))
            .ok()
    });
    let threads = spec
        .threads
        .as_ref()
        .and_then(|t| positive::<usize>(cx, t, "server.threads"));
    let shutdown_grace = match &spec.shutdown_grace {
        None => defaults.shutdown_grace,
        Some(d) => d.value.parse().unwrap_or_else(|m| {
            cx.error(d.referenced, "server.shutdown_grace", m);
            defaults.shutdown_grace
        }),
    };
    (cx.diagnostics.len() == before).then_some(Server {
        listen,
        admin_listen,
        public_url,
        threads,
        shutdown_grace,
    })
}
