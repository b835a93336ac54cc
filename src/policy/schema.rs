//! What `policy.yaml` says, as serde types (`*Spec`), before any meaning is given to it.
//!
//! Invariants: every struct denies unknown fields (a typo must not silently disable a limit);
//! values the compiler may refuse carry their source location ([`Spanned`]) so each refusal
//! names its line and column; units are kept as written and parsed by the compiler, so one
//! bad value is one diagnostic rather than the end of the parse.

use std::fmt;
use std::marker::PhantomData;

use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
pub use serde_saphyr::Spanned;

pub use super::units::{ByteSize, DateSpec, DurationSpec};

/// The whole file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicySpec {
    pub version: Spanned<u64>,
    #[serde(default)]
    pub server: Option<ServerSpec>,
    pub upstream: UpstreamSpec,
    #[serde(default)]
    pub limits: Option<LimitsSpec>,
    #[serde(default)]
    pub tools: Vec<Spanned<RuleSpec>>,
    /// `None` when the section is absent: the contract's default rules apply.
    #[serde(default)]
    pub methods: Option<Vec<Spanned<RuleSpec>>>,
    pub workspaces: Spanned<NamedMap<WorkspaceSpec>>,
    #[serde(default)]
    pub oauth: Option<Spanned<OAuthSpec>>,
}

/// `server:` — read at start only.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSpec {
    pub listen: Option<Spanned<String>>,
    pub admin_listen: Option<Spanned<String>>,
    pub public_url: Option<Spanned<String>>,
    pub threads: Option<Spanned<u64>>,
    pub shutdown_grace: Option<Spanned<DurationSpec>>,
}

/// `upstream:` — the MCP server behind the gateway.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamSpec {
    pub url: Spanned<String>,
    pub connect_timeout: Option<Spanned<DurationSpec>>,
    pub idle_timeout: Option<Spanned<DurationSpec>>,
    #[serde(default)]
    pub preserve_host: bool,
    #[serde(default)]
    pub headers: NamedMap<Spanned<String>>,
}

/// `limits:` at any level; every field optional (resolution fills the gaps).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsSpec {
    pub requests_per_minute: Option<Spanned<u64>>,
    pub burst: Option<Spanned<u64>>,
    pub concurrent_connections: Option<Spanned<u64>>,
    pub max_response_bytes: Option<Spanned<ByteSize>>,
    pub max_request_bytes: Option<Spanned<ByteSize>>,
}

/// One `tools:` or `methods:` entry.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleSpec {
    #[serde(rename = "match")]
    pub patterns: Patterns,
    /// Required, even when empty: a rule open to any key should say so (`requires: []`).
    pub requires: Vec<Spanned<String>>,
    pub feature: Option<Spanned<String>>,
    pub cost: Option<Spanned<u64>>,
}

/// One workspace under `workspaces:`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkspaceSpec {
    #[serde(default)]
    pub scopes: Vec<Spanned<String>>,
    #[serde(default)]
    pub features: Vec<Spanned<String>>,
    pub limits: Option<LimitsSpec>,
    pub keys: Option<Spanned<Vec<Spanned<KeySpec>>>>,
}

/// One key under a workspace's `keys:`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeySpec {
    pub id: Spanned<String>,
    pub sha256: Spanned<String>,
    pub created: Option<Spanned<DateSpec>>,
    pub expires: Option<Spanned<DateSpec>>,
    pub scopes: Option<Vec<Spanned<String>>>,
    pub limits: Option<LimitsSpec>,
}

/// `oauth:` — OAuth 2.0 bearer tokens. Fields the compiler requires are still `Option` here,
/// so a missing one is a diagnostic among the others rather than the end of the parse.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OAuthSpec {
    pub resource: Option<Spanned<String>>,
    pub authorization_servers: Option<Spanned<Vec<Spanned<String>>>>,
    pub issuers: Option<Spanned<Vec<Spanned<IssuerSpec>>>>,
    /// `None`: the union of the workspaces' scopes.
    pub scopes_supported: Option<Vec<Spanned<String>>>,
}

/// One entry under `oauth.issuers`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IssuerSpec {
    pub issuer: Option<Spanned<String>>,
    pub jwks_uri: Option<Spanned<String>>,
    pub jwks_file: Option<Spanned<String>>,
    pub workspace_claim: Option<Spanned<String>>,
    /// `None`: `[RS256]`.
    pub algorithms: Option<Spanned<Vec<Spanned<String>>>>,
    /// The workspaces this issuer's tokens may name; required when there are several issuers.
    pub workspaces: Option<Spanned<Vec<Spanned<String>>>>,
    pub introspection_endpoint: Option<Spanned<String>>,
    pub client_id: Option<Spanned<String>>,
    /// May hold `${VAR}`, read from the environment when the policy compiles.
    pub client_secret: Option<Spanned<String>>,
}

/// `match:` — one glob or a list of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Patterns(pub Vec<String>);

impl<'de> Deserialize<'de> for Patterns {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Patterns;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a glob string or a list of glob strings")
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<Patterns, E> {
                Ok(Patterns(vec![v.to_owned()]))
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Patterns, A::Error> {
                let mut out = Vec::new();
                while let Some(p) = seq.next_element::<String>()? {
                    out.push(p);
                }
                Ok(Patterns(out))
            }
        }
        d.deserialize_any(V)
    }
}

/// A YAML mapping kept in file order, with the location of each key. (Duplicate keys are
/// refused by the YAML layer.)
#[derive(Debug)]
pub struct NamedMap<T>(pub Vec<(Spanned<String>, T)>);

impl<T> Default for NamedMap<T> {
    fn default() -> Self {
        Self(Vec::new())
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for NamedMap<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
            type Value = NamedMap<T>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a mapping")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<NamedMap<T>, A::Error> {
                let mut out = Vec::new();
                while let Some((k, v)) = map.next_entry::<Spanned<String>, T>()? {
                    out.push((k, v));
                }
                Ok(NamedMap(out))
            }
        }
        d.deserialize_map(V(PhantomData))
    }
}
