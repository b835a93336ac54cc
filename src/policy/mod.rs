//! The policy: what `policy.yaml` says (`schema`), compiled into an immutable runtime
//! [`Policy`] (`compile`), held in a [`store::Store`] that swaps it whole on reload.
//!
//! Invariant: a `Policy` that exists is valid. Nothing here is checked again at request time;
//! the key map, rule matchers, resolved limits and the upstream address are built once.

pub mod compile;
pub mod glob;
pub mod lifecycle;
pub mod schema;
pub mod store;
pub mod units;
pub mod watch;

#[cfg(test)]
pub mod fixture;

use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use http::{HeaderName, HeaderValue};

pub use compile::{CompileError, compile, compile_file};
pub use glob::Glob;

use crate::telemetry::metrics::KeySeries;

/// A compiled, immutable policy snapshot.
#[derive(Debug)]
pub struct Policy {
    pub server: Server,
    pub upstream: Upstream,
    /// The `limits:` defaults (already merged onto every workspace and key below).
    pub limits: Limits,
    /// `tools:` in file order; the first rule whose glob matches a tool name decides.
    pub tools: Vec<Rule>,
    /// `methods:` in file order (the contract's defaults when the section is absent).
    pub methods: Vec<Rule>,
    /// Workspaces by name, in name order.
    pub workspaces: Vec<Arc<Workspace>>,
    /// Every key, by the SHA-256 of the whole key string.
    pub keys: KeyMap,
    /// `oauth:`, when bearer tokens other than keys are accepted.
    pub oauth: Option<Arc<crate::auth::oauth::OAuth>>,
    /// The identities of OAuth clients met under this policy, built on first use.
    pub clients: crate::auth::clients::ClientKeys,
    /// Non-fatal findings (`check` prints them, `run` logs them): shadowed rules and the like.
    pub warnings: Vec<String>,
}

/// `server:` — read at start only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Server {
    pub listen: SocketAddr,
    pub admin_listen: SocketAddr,
    pub public_url: Option<String>,
    /// Proxy worker threads; `None` means the number of CPUs.
    pub threads: Option<usize>,
    pub shutdown_grace: Duration,
}

/// `upstream:` — the MCP server behind the gateway.
#[derive(Debug, Clone)]
pub struct Upstream {
    /// `https` when true.
    pub tls: bool,
    /// The host as written in the URL (SNI and the `Host` header).
    pub host: String,
    pub port: u16,
    /// `host[:port]` as it goes into `Host` (the port only when not the scheme's default).
    pub authority: String,
    /// `authority` as a header value, built once.
    pub host_header: HeaderValue,
    /// Resolved when the policy compiles.
    pub addr: SocketAddr,
    pub connect_timeout: Duration,
    pub idle_timeout: Duration,
    pub preserve_host: bool,
    /// `upstream.headers`, with `${VAR}` already read from the environment.
    pub headers: Vec<(HeaderName, HeaderValue)>,
}

/// Limits after resolution (key > workspace > defaults, field by field).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub requests_per_minute: u32,
    pub burst: u32,
    pub concurrent_connections: u32,
    pub max_response_bytes: u64,
    pub max_request_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            requests_per_minute: 100,
            burst: 100,
            concurrent_connections: 10,
            max_response_bytes: 5_000_000,
            max_request_bytes: 1_000_000,
        }
    }
}

/// One `tools:` or `methods:` rule.
#[derive(Debug, Clone)]
pub struct Rule {
    pub patterns: Vec<Glob>,
    /// Every one of these scopes is needed.
    pub requires: Vec<String>,
    /// The workspace must also have this feature.
    pub feature: Option<String>,
    /// Tokens drawn from the key's bucket (default 1).
    pub cost: u32,
}

impl Rule {
    pub fn matches(&self, name: &str) -> bool {
        self.patterns.iter().any(|g| g.matches(name))
    }

    /// How this rule matches `name`: as written in the policy, by a glob, or not at all.
    pub fn naming(&self, name: &str) -> Naming {
        let mut naming = Naming::None;
        for glob in self.patterns.iter().filter(|g| g.matches(name)) {
            if glob.is_literal() {
                return Naming::Literal;
            }
            naming = Naming::Glob;
        }
        naming
    }
}

/// The first rule that matches `name`, and how it matches it.
fn first_match<'a>(rules: &'a [Rule], name: &str) -> Option<(&'a Rule, Naming)> {
    rules.iter().find_map(|rule| match rule.naming(name) {
        Naming::None => None,
        naming => Some((rule, naming)),
    })
}

/// How a policy rule matches a method or tool name, which decides how the name is labelled
/// in metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Naming {
    /// No rule matches it.
    None,
    /// A rule names it exactly: the name is the policy's own text.
    Literal,
    /// Only a glob matches it, so the client chose the rest of it.
    Glob,
}

#[derive(Debug)]
pub struct Workspace {
    pub name: Arc<str>,
    pub scopes: BTreeSet<String>,
    pub features: BTreeSet<String>,
    /// Workspace limits merged onto the defaults.
    pub limits: Limits,
}

/// A key as the policy knows it: never the key itself, only what its hash unlocks.
#[derive(Debug)]
pub struct Key {
    pub workspace: Arc<Workspace>,
    pub id: Arc<str>,
    /// Effective scopes: the key's own list (a subset of the workspace's), else the workspace's.
    pub scopes: BTreeSet<String>,
    /// Key > workspace > defaults.
    pub limits: Limits,
    /// Seconds since the Unix epoch.
    pub created: Option<i64>,
    /// Seconds since the Unix epoch; from this instant on the key is refused.
    pub expires: Option<i64>,
    /// Header values every request of this key carries, built once here rather than per
    /// request.
    pub headers: KeyHeaders,
    /// The key's metric handles, set once when the metrics registry adopts this policy
    /// (before it is put in force), so counting a request looks nothing up.
    pub metrics: OnceLock<Arc<KeySeries>>,
}

/// `X-Mcpwarden-Workspace`, `-Key`, `-Scopes` (space-separated) and `RateLimit-Policy`.
#[derive(Debug, Clone)]
pub struct KeyHeaders {
    pub workspace: HeaderValue,
    pub key: HeaderValue,
    pub scopes: HeaderValue,
    pub rate_limit_policy: HeaderValue,
}

/// How the key ids of OAuth clients begin (`oauth:<client_id>`); policy key ids cannot
/// contain `:`, so the two never collide.
pub const OAUTH_PREFIX: &str = "oauth:";

impl Key {
    /// A key with its header values. Workspace names, key ids and scopes are visible ASCII
    /// (the compiler checks them), so they are valid header values.
    pub fn new(
        workspace: Arc<Workspace>,
        id: &str,
        scopes: BTreeSet<String>,
        limits: Limits,
        created: Option<i64>,
        expires: Option<i64>,
    ) -> Self {
        Self::build(workspace, id, scopes, limits, created, expires)
            .expect("checked by the compiler")
    }

    /// The identity of OAuth client `client_id` of `workspace`, holding `scopes` (already
    /// narrowed to the workspace's). Its limits are the workspace's; it has no dates (the
    /// token's own expiry is checked per request). `None` when the client id cannot be a
    /// header value.
    pub fn oauth_client(
        workspace: &Arc<Workspace>,
        client_id: &str,
        scopes: BTreeSet<String>,
    ) -> Option<Self> {
        let id = format!("{OAUTH_PREFIX}{client_id}");
        let limits = workspace.limits;
        Self::build(workspace.clone(), &id, scopes, limits, None, None)
    }

    fn build(
        workspace: Arc<Workspace>,
        id: &str,
        scopes: BTreeSet<String>,
        limits: Limits,
        created: Option<i64>,
        expires: Option<i64>,
    ) -> Option<Self> {
        let value = |s: &str| HeaderValue::from_str(s).ok();
        let headers = KeyHeaders {
            workspace: value(&workspace.name)?,
            key: value(id)?,
            scopes: value(&join_scopes(&scopes))?,
            rate_limit_policy: value(&crate::denial::rate_limit_policy(
                limits.requests_per_minute,
            ))?,
        };
        Some(Self {
            workspace,
            id: id.into(),
            scopes,
            limits,
            created,
            expires,
            headers,
            metrics: OnceLock::new(),
        })
    }

    /// True for the identity of an OAuth client rather than a key of the policy.
    pub fn is_oauth(&self) -> bool {
        is_oauth_id(&self.id)
    }
}

/// True when `key_id` names an OAuth client (`oauth:<client_id>`).
pub fn is_oauth_id(key_id: &str) -> bool {
    key_id.starts_with(OAUTH_PREFIX)
}

/// Keys by their SHA-256.
pub type KeyMap = HashMap<[u8; 32], Arc<Key>, DigestHasher>;

/// Hashes a SHA-256 digest by taking its first 8 bytes: the digest is already uniformly
/// distributed, so hashing it again (SipHash, on every request) buys nothing. Flooding is not
/// a concern: the map's entries come from the policy, and a lookup of a chosen digest costs
/// no more than any other miss.
#[derive(Debug, Clone, Copy, Default)]
pub struct DigestHasher(u64);

impl std::hash::BuildHasher for DigestHasher {
    type Hasher = DigestHasher;

    fn build_hasher(&self) -> DigestHasher {
        DigestHasher(0)
    }
}

impl std::hash::Hasher for DigestHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // A `[u8; 32]` hashes as its length, then its bytes in one write.
        if let Some(head) = bytes.first_chunk::<8>() {
            self.0 = u64::from_le_bytes(*head);
        }
    }
}

/// Scopes space-separated, in their set's order.
pub fn join_scopes(scopes: &BTreeSet<String>) -> String {
    scopes
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .join(" ")
}

impl Policy {
    /// The first `tools:` rule that matches `tool`.
    pub fn tool_rule(&self, tool: &str) -> Option<&Rule> {
        self.tools.iter().find(|r| r.matches(tool))
    }

    /// The workspace named `name`.
    pub fn workspace(&self, name: &str) -> Option<&Arc<Workspace>> {
        self.workspaces
            .binary_search_by(|w| (*w.name).cmp(name))
            .ok()
            .map(|i| &self.workspaces[i])
    }

    /// True while OAuth client state of `workspace` (buckets, usage, metric series) is worth
    /// keeping: `oauth:` is set and the workspace exists. (Keys of the policy are kept while
    /// they are in `keys`.)
    pub fn admits_clients_of(&self, workspace: &str) -> bool {
        self.oauth.is_some() && self.workspace(workspace).is_some()
    }

    /// The first `methods:` rule that matches `method`.
    pub fn method_rule(&self, method: &str) -> Option<&Rule> {
        self.methods.iter().find(|r| r.matches(method))
    }

    /// The first `tools:` rule that matches `tool`, and how it names it, in one pass.
    pub fn tool_match(&self, tool: &str) -> Option<(&Rule, Naming)> {
        first_match(&self.tools, tool)
    }

    /// The first `methods:` rule that matches `method`, and how it names it, in one pass.
    pub fn method_match(&self, method: &str) -> Option<(&Rule, Naming)> {
        first_match(&self.methods, method)
    }
}
