//! RFC 9728 protected-resource metadata: the document the gateway answers itself, the URL
//! a 401 points to (`resource_metadata="…"`), and which request paths serve the document.
//!
//! Invariants: the document is built once per policy, as bytes ready to send;
//! [`is_metadata_path`] neither allocates nor parses a URL, since it runs on every request
//! when `oauth:` is set. The resource identifier is taken as the compiler checked it: an
//! absolute URL without a fragment.

use bytes::Bytes;

use super::Config;

/// The well-known path suffix (RFC 9728 §3).
pub const WELL_KNOWN: &str = "/.well-known/oauth-protected-resource";

/// The metadata of one compiled `oauth:` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Metadata {
    resource: String,
    document: Bytes,
    url: String,
}

impl Metadata {
    pub fn new(config: &Config) -> Self {
        Self {
            resource: config.resource.clone(),
            document: document(config),
            url: url(&config.resource),
        }
    }

    /// The JSON document (`application/json`).
    pub fn document(&self) -> &Bytes {
        &self.document
    }

    /// Where clients fetch the document: the value of `resource_metadata="…"`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Whether a request for `request_path` (query included or not) is for the document.
    pub fn serves(&self, request_path: &str) -> bool {
        is_metadata_path(&self.resource, request_path)
    }
}

/// `{"resource", "authorization_servers", "scopes_supported", "bearer_methods_supported"}`.
/// `resource_name` is left out: it is for people, and the gateway has no name of its own to
/// give. Only the `Authorization` header carries tokens (no form body or query parameter).
pub fn document(config: &Config) -> Bytes {
    let doc = serde_json::json!({
        "resource": config.resource,
        "authorization_servers": config.authorization_servers,
        "scopes_supported": config.scopes_supported,
        "bearer_methods_supported": ["header"],
    });
    Bytes::from(serde_json::to_vec(&doc).expect("a JSON value serializes"))
}

/// The metadata URL for `resource` (RFC 9728 §3.1): the well-known suffix goes between the
/// authority and the path, and a path of just `/` is dropped, so
/// `https://mcp.example.com/mcp` → `https://mcp.example.com/.well-known/oauth-protected-resource/mcp`.
pub fn url(resource: &str) -> String {
    let (origin, path, query) = split(resource);
    let path = if path == "/" { "" } else { path };
    format!("{origin}{WELL_KNOWN}{path}{query}")
}

/// True for the paths that serve the document: the bare well-known path and the well-known
/// path followed by the resource's own path (`/.well-known/oauth-protected-resource/mcp`).
/// A query string on the request is ignored.
pub fn is_metadata_path(resource: &str, request_path: &str) -> bool {
    let path = request_path
        .split_once('?')
        .map_or(request_path, |(path, _)| path);
    let Some(rest) = path.strip_prefix(WELL_KNOWN) else {
        return false;
    };
    if rest.is_empty() {
        return true;
    }
    let (_, resource_path, _) = split(resource);
    resource_path != "/" && rest == resource_path
}

/// `scheme://authority`, the path (may be empty) and `?query` (may be empty) of an absolute
/// URL. Anything from a `#` on is dropped (the compiler refuses fragments anyway).
fn split(url: &str) -> (&str, &str, &str) {
    let url = url.split_once('#').map_or(url, |(before, _)| before);
    let authority_start = url.find("://").map_or(0, |i| i + 3);
    let path_start = url[authority_start..]
        .find(['/', '?'])
        .map_or(url.len(), |i| authority_start + i);
    let query_start = url[path_start..]
        .find('?')
        .map_or(url.len(), |i| path_start + i);
    (
        &url[..path_start],
        &url[path_start..query_start],
        &url[query_start..],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(resource: &str) -> Config {
        Config {
            resource: resource.to_owned(),
            authorization_servers: vec!["https://auth.example.com".to_owned()],
            scopes_supported: vec!["crm:read".to_owned(), "crm:write".to_owned()],
            issuers: Vec::new(),
        }
    }

    #[test]
    fn the_metadata_url_inserts_the_well_known_path_before_the_resource_path() {
        for (resource, expected) in [
            (
                "https://mcp.example.com/mcp",
                "https://mcp.example.com/.well-known/oauth-protected-resource/mcp",
            ),
            (
                "https://mcp.example.com",
                "https://mcp.example.com/.well-known/oauth-protected-resource",
            ),
            (
                "https://mcp.example.com/",
                "https://mcp.example.com/.well-known/oauth-protected-resource",
            ),
            (
                "http://127.0.0.1:8080/tenants/a/mcp",
                "http://127.0.0.1:8080/.well-known/oauth-protected-resource/tenants/a/mcp",
            ),
            (
                "https://mcp.example.com/mcp/",
                "https://mcp.example.com/.well-known/oauth-protected-resource/mcp/",
            ),
            (
                "https://mcp.example.com?x=1",
                "https://mcp.example.com/.well-known/oauth-protected-resource?x=1",
            ),
        ] {
            assert_eq!(url(resource), expected, "{resource}");
        }
    }

    #[test]
    fn the_document_has_the_four_fields_in_order_and_nothing_else() {
        let doc = document(&config("https://mcp.example.com/mcp"));
        assert_eq!(
            std::str::from_utf8(&doc).unwrap(),
            r#"{"resource":"https://mcp.example.com/mcp","authorization_servers":["https://auth.example.com"],"scopes_supported":["crm:read","crm:write"],"bearer_methods_supported":["header"]}"#
        );
    }

    #[test]
    fn an_empty_scope_list_is_still_an_array() {
        let mut c = config("https://mcp.example.com/mcp");
        c.scopes_supported.clear();
        let v: serde_json::Value = serde_json::from_slice(&document(&c)).unwrap();
        assert_eq!(v["scopes_supported"], serde_json::json!([]));
    }

    #[test]
    fn metadata_is_served_at_the_bare_path_and_with_the_resource_path_appended() {
        let r = "https://mcp.example.com/mcp";
        assert!(is_metadata_path(r, "/.well-known/oauth-protected-resource"));
        assert!(is_metadata_path(
            r,
            "/.well-known/oauth-protected-resource/mcp"
        ));
        assert!(is_metadata_path(
            r,
            "/.well-known/oauth-protected-resource/mcp?x=1"
        ));
        assert!(is_metadata_path(
            r,
            "/.well-known/oauth-protected-resource?"
        ));
        for other in [
            "/mcp",
            "/",
            "/.well-known/oauth-protected-resource/",
            "/.well-known/oauth-protected-resource/other",
            "/.well-known/oauth-protected-resource/mcp/",
            "/.well-known/oauth-protected-resourcex",
            "/.well-known/oauth-authorization-server",
            "/x/.well-known/oauth-protected-resource",
        ] {
            assert!(!is_metadata_path(r, other), "{other}");
        }
    }

    #[test]
    fn a_resource_without_a_path_serves_only_the_bare_path() {
        for r in ["https://mcp.example.com", "https://mcp.example.com/"] {
            assert!(is_metadata_path(r, "/.well-known/oauth-protected-resource"));
            assert!(!is_metadata_path(
                r,
                "/.well-known/oauth-protected-resource/"
            ));
        }
    }

    #[test]
    fn the_metadata_built_once_matches_the_plain_functions() {
        let c = config("https://mcp.example.com/mcp");
        let m = Metadata::new(&c);
        assert_eq!(m.url(), url(&c.resource));
        assert_eq!(m.document(), &document(&c));
        assert!(m.serves("/.well-known/oauth-protected-resource/mcp"));
        assert!(!m.serves("/mcp"));
    }
}
