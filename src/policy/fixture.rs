//! Hand-built policies for unit tests of the modules that read a `Policy`, so they do not
//! depend on the YAML compiler.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use super::{Glob, Key, Limits, Policy, Rule, Server, Upstream, Workspace};
use crate::auth::Identity;
use crate::auth::api_key::ApiKey;

pub fn rule(patterns: &[&str], requires: &[&str]) -> Rule {
    Rule {
        patterns: patterns.iter().map(|p| Glob::new(p)).collect(),
        requires: requires.iter().map(|s| s.to_string()).collect(),
        feature: None,
        cost: 1,
    }
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

/// A policy with workspace `acme` (all five scopes, feature `signal`) and workspace `beta`
/// (no features); returns it with the keys, by id: `full` (acme), `reader` (acme, crm:read),
/// `old` (acme, expired at 1000), `beta` (beta).
pub fn policy() -> (Policy, HashMap<&'static str, ApiKey>) {
    let all = [
        "crm:read",
        "crm:write",
        "signal:read",
        "pipeline:read",
        "pipeline:write",
    ];
    let acme = Arc::new(Workspace {
        name: "acme".into(),
        scopes: set(&all),
        features: set(&["signal"]),
        limits: Limits::default(),
    });
    let beta = Arc::new(Workspace {
        name: "beta".into(),
        scopes: set(&all),
        features: BTreeSet::new(),
        limits: Limits::default(),
    });
    let mut keys = super::KeyMap::default();
    let mut by_id = HashMap::new();
    type Spec<'a> = (&'static str, &'a Arc<Workspace>, &'a [&'a str], Option<i64>);
    let specs: [Spec; 4] = [
        ("full", &acme, &all, None),
        ("reader", &acme, &["crm:read"], None),
        ("old", &acme, &all, Some(1000)),
        ("beta", &beta, &all, None),
    ];
    for (id, ws, scopes, expires) in specs {
        let key = ApiKey::generate();
        keys.insert(
            key.hash(),
            Arc::new(Key::new(
                ws.clone(),
                id,
                set(scopes),
                Limits::default(),
                None,
                expires,
            )),
        );
        by_id.insert(id, key);
    }
    let mut signal = rule(&["get_signal_visitors"], &["signal:read"]);
    signal.feature = Some("signal".into());
    let mut ask = rule(&["ask_pipeline"], &["pipeline:read"]);
    ask.cost = 5;
    let policy = Policy {
        server: Server {
            listen: "127.0.0.1:8080".parse().unwrap(),
            admin_listen: "127.0.0.1:9090".parse().unwrap(),
            public_url: None,
            threads: None,
            shutdown_grace: Duration::from_secs(10),
        },
        upstream: Upstream {
            tls: false,
            host: "127.0.0.1".into(),
            port: 3001,
            authority: "127.0.0.1:3001".into(),
            host_header: http::HeaderValue::from_static("127.0.0.1:3001"),
            addr: "127.0.0.1:3001".parse().unwrap(),
            connect_timeout: Duration::from_secs(2),
            idle_timeout: Duration::from_secs(300),
            preserve_host: false,
            headers: Vec::new(),
        },
        limits: Limits::default(),
        tools: vec![
            signal,
            ask,
            rule(&["update_deal_stage"], &["pipeline:write"]),
            rule(&["search_*", "get_*", "list_*"], &["crm:read"]),
            rule(&["create_*", "update_*", "add_note"], &["crm:write"]),
        ],
        methods: vec![
            rule(
                &["initialize", "ping", "notifications/*", "tools/list"],
                &[],
            ),
            rule(&["resources/read", "prompts/get"], &["crm:read"]),
        ],
        workspaces: vec![acme, beta],
        keys,
        oauth: None,
        clients: Default::default(),
        warnings: Vec::new(),
    };
    (policy, by_id)
}

/// `p` taking tokens (an `oauth:` section; nothing is fetched until a token arrives).
pub fn with_oauth(mut p: Policy) -> Policy {
    use crate::auth::oauth::{Algorithm, Config, IssuerConfig, JwksSource, OAuth};
    let config = Config {
        resource: "https://mcp.example.com/mcp".into(),
        authorization_servers: vec!["https://auth.example.com".into()],
        scopes_supported: vec![],
        issuers: vec![IssuerConfig {
            issuer: "https://auth.example.com".into(),
            jwks: JwksSource::Uri("https://auth.example.com/jwks.json".into()),
            algorithms: vec![Algorithm::Rs256],
            workspace_claim: "org".into(),
            workspaces: None,
            introspection: None,
        }],
    };
    p.oauth = Some(Arc::new(OAuth::new(config).unwrap()));
    p
}

/// The identity a token of `client` would get in `workspace` of `p`.
pub fn client(p: &Policy, workspace: &str, client: &str) -> Identity {
    let claims = crate::auth::oauth::Claims {
        client_id: client.into(),
        workspace: workspace.into(),
        scopes: vec![],
        subject: None,
    };
    Identity::from_key(
        p.clients
            .get(p.workspace(workspace).unwrap(), &claims)
            .unwrap(),
    )
}
