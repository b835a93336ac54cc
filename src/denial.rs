//! The one place where a refusal becomes an HTTP status, headers and a JSON-RPC error body.
//!
//! Invariant: every answer the gateway produces itself says the same thing in the HTTP status
//! and in the JSON-RPC body, because clients differ in which of the two they read. The
//! gateway's own codes stay in -32000..-32019; -32020 is the MCP HeaderMismatch code.

use serde_json::{Value, json};

use crate::mcp::jsonrpc::{self, Id};
use crate::{auth, authorize, limits};

/// Something the gateway refuses, or an upstream failure it answers for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Denial {
    Auth(auth::Error),
    Forbidden(authorize::Denied),
    /// The body is not JSON (-32700).
    NotJson,
    /// The body is JSON but not a JSON-RPC request the gateway can authorize (-32600).
    InvalidRequest(&'static str),
    /// The request's framing is unsafe to forward (`Content-Length: +5`, CL with TE).
    BadFraming(&'static str),
    /// `Mcp-Method` / `Mcp-Name` disagree with the body.
    HeaderMismatch(&'static str),
    /// The body is over `max_request_bytes`.
    TooLarge {
        limit: u64,
    },
    /// An HTTP method MCP does not use.
    MethodNotAllowed,
    /// A session id the upstream issued to another identity.
    SessionNotFound,
    /// The key's rate or concurrency limit.
    Limited(limits::Denied),
    /// The client's address has spent its budget of failed authentications.
    AuthThrottled {
        retry_after: u64,
    },
    UpstreamUnreachable,
    UpstreamTimeout,
}

/// What goes on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
    /// The connection cannot carry another request (the request body was not read).
    pub close: bool,
}

/// What an answer says about OAuth when the policy has `oauth:` (RFC 6750 §3, RFC 9728 §5.1).
#[derive(Debug, Clone, Copy)]
pub struct Challenge<'a> {
    /// The URL of the protected-resource metadata, for `resource_metadata="…"`.
    pub resource_metadata: &'a str,
    /// A refused call could pass with a wider token (see `Identity::may_step_up_to`).
    pub step_up: bool,
}

/// Turns a denial into its reply, for the request's JSON-RPC `id` (null when there is none
/// or several); `oauth` adds the OAuth challenge parameters.
pub fn reply(denial: &Denial, id: &Id, oauth: Option<Challenge<'_>>) -> Reply {
    let (status, code, message, data): (u16, i32, String, Option<Value>) = match denial {
        Denial::Auth(e @ auth::Error::Conflict) => (400, -32001, e.to_string(), None),
        Denial::Auth(e) => (401, -32001, e.to_string(), None),
        Denial::Forbidden(d) => (
            403,
            -32003,
            match &d.missing_feature {
                Some(f) => format!("{d} (workspace feature \"{f}\" is not enabled)"),
                None => d.to_string(),
            },
            Some(json!({ "requiredScopes": d.required_scopes })),
        ),
        Denial::NotJson => (400, -32700, "parse error: body is not JSON".into(), None),
        Denial::InvalidRequest(why) => (400, -32600, format!("invalid request: {why}"), None),
        Denial::BadFraming(why) => (400, -32600, format!("bad request framing: {why}"), None),
        Denial::HeaderMismatch(why) => (400, -32020, format!("header mismatch: {why}"), None),
        Denial::TooLarge { limit } => (
            413,
            -32600,
            format!("request body over the limit of {limit} bytes"),
            Some(json!({ "limitBytes": limit })),
        ),
        Denial::MethodNotAllowed => (
            405,
            -32600,
            "HTTP method not allowed: MCP uses POST, GET and DELETE".into(),
            None,
        ),
        Denial::SessionNotFound => (404, -32001, "session not found".into(), None),
        Denial::Limited(d) => (
            429,
            -32004,
            d.to_string(),
            Some(json!({ "retryAfterSeconds": d.retry_after() })),
        ),
        Denial::AuthThrottled { retry_after } => (
            429,
            -32004,
            "too many failed authentications from this address".into(),
            Some(json!({ "retryAfterSeconds": retry_after })),
        ),
        Denial::UpstreamUnreachable => {
            (502, -32006, "upstream MCP server unreachable".into(), None)
        }
        Denial::UpstreamTimeout => (504, -32006, "upstream MCP server timed out".into(), None),
    };
    let mut headers = vec![("content-type", "application/json".to_owned())];
    match denial {
        Denial::Auth(auth::Error::Conflict) => {}
        Denial::Auth(e) => headers.push(("www-authenticate", unauthorized(*e, oauth))),
        // Step-up: a token whose scopes fall short may be exchanged for a wider one. A missing
        // workspace feature is not a matter of scope, so it gets no challenge.
        Denial::Forbidden(d) => {
            if let Some(oauth) = oauth.filter(|o| o.step_up && d.missing_feature.is_none()) {
                headers.push((
                    "www-authenticate",
                    format!(
                        "Bearer error=\"insufficient_scope\", scope=\"{}\", resource_metadata=\"{}\"",
                        d.required_scopes.join(" "),
                        oauth.resource_metadata
                    ),
                ));
            }
        }
        Denial::MethodNotAllowed => headers.push(("allow", "POST, GET, DELETE".to_owned())),
        Denial::Limited(d) => {
            headers.push(("retry-after", d.retry_after().to_string()));
            if let limits::Denied::Rate {
                requests_per_minute,
                retry_after,
            }
            | limits::Denied::OverBurst {
                requests_per_minute,
                retry_after,
                ..
            } = d
            {
                headers.push(("ratelimit-policy", rate_limit_policy(*requests_per_minute)));
                let value = crate::wire::rate_limit(0, *retry_after);
                headers.push(("ratelimit", value.to_str().unwrap_or_default().to_owned()));
            }
        }
        Denial::AuthThrottled { retry_after } => {
            headers.push(("retry-after", retry_after.to_string()))
        }
        _ => {}
    }
    headers.push(("cache-control", "no-store".to_owned()));
    Reply {
        status,
        headers,
        body: jsonrpc::error_response(id, code, &message, data.as_ref()),
        close: matches!(denial, Denial::TooLarge { .. } | Denial::BadFraming(_)),
    }
}

/// The `WWW-Authenticate` of a 401: the realm, and with OAuth where to find the metadata
/// (and `error="invalid_token"` for a token that was presented and refused).
fn unauthorized(error: auth::Error, oauth: Option<Challenge<'_>>) -> String {
    let mut value = String::from("Bearer realm=\"mcpwarden\"");
    if let Some(oauth) = oauth {
        if matches!(error, auth::Error::BadToken | auth::Error::StaleToken) {
            value.push_str(", error=\"invalid_token\"");
        }
        value.push_str(", resource_metadata=\"");
        value.push_str(oauth.resource_metadata);
        value.push('"');
    }
    value
}

/// `RateLimit-Policy` (IETF httpapi draft): the key's quota over a 60-second window.
pub fn rate_limit_policy(requests_per_minute: u32) -> String {
    format!("\"default\";q={requests_per_minute};w=60")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The id of a request as the gateway would have classified it.
    fn id(raw: &str) -> Id {
        let body = format!(r#"{{"jsonrpc":"2.0","id":{raw},"method":"ping"}}"#);
        jsonrpc::classify(body.as_bytes()).unwrap().first_id()
    }

    fn body(reply: &Reply) -> Value {
        serde_json::from_slice(&reply.body).unwrap()
    }

    fn header<'a>(reply: &'a Reply, name: &str) -> Option<&'a str> {
        reply
            .headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    #[test]
    fn status_and_json_rpc_code_agree_with_the_contract() {
        let forbidden = Denial::Forbidden(authorize::Denied {
            what: "tool \"x\"".into(),
            required_scopes: vec!["crm:write".into()],
            missing_feature: None,
        });
        let table = [
            (Denial::Auth(auth::Error::Missing), 401, -32001),
            (Denial::Auth(auth::Error::Expired), 401, -32001),
            (Denial::Auth(auth::Error::Conflict), 400, -32001),
            (forbidden, 403, -32003),
            (Denial::NotJson, 400, -32700),
            (Denial::InvalidRequest("x"), 400, -32600),
            (Denial::HeaderMismatch("x"), 400, -32020),
            (Denial::TooLarge { limit: 10 }, 413, -32600),
            (Denial::SessionNotFound, 404, -32001),
            (Denial::UpstreamUnreachable, 502, -32006),
            (Denial::UpstreamTimeout, 504, -32006),
            (
                Denial::Limited(limits::Denied::Concurrency { limit: 3 }),
                429,
                -32004,
            ),
            (Denial::AuthThrottled { retry_after: 2 }, 429, -32004),
        ];
        for (denial, status, code) in table {
            let reply = reply(&denial, &id("7"), None);
            assert_eq!(reply.status, status, "{denial:?}");
            assert_eq!(body(&reply)["error"]["code"], code, "{denial:?}");
            assert_eq!(body(&reply)["id"], 7);
            assert_eq!(body(&reply)["jsonrpc"], "2.0");
            assert_eq!(header(&reply, "content-type"), Some("application/json"));
        }
    }

    #[test]
    fn unauthenticated_replies_carry_a_bearer_challenge() {
        let reply = reply(&Denial::Auth(auth::Error::Invalid), &Id::null(), None);
        assert_eq!(
            header(&reply, "www-authenticate"),
            Some("Bearer realm=\"mcpwarden\"")
        );
        assert_eq!(body(&reply)["id"], Value::Null);
    }

    #[test]
    fn forbidden_names_the_scopes_it_needs() {
        let denial = Denial::Forbidden(authorize::Denied {
            what: "tool \"create_deal\"".into(),
            required_scopes: vec!["crm:write".into()],
            missing_feature: None,
        });
        let b = body(&reply(&denial, &id("\"a\""), None));
        assert_eq!(b["id"], "a");
        assert_eq!(b["error"]["data"]["requiredScopes"], json!(["crm:write"]));
        assert!(
            b["error"]["message"]
                .as_str()
                .unwrap()
                .contains("create_deal")
        );
    }

    #[test]
    fn a_rate_limited_request_is_told_when_to_retry_in_headers_and_body() {
        let denial = Denial::Limited(limits::Denied::Rate {
            requests_per_minute: 100,
            retry_after: 3,
        });
        let reply = reply(&denial, &id("7"), None);
        assert_eq!(reply.status, 429);
        assert_eq!(header(&reply, "retry-after"), Some("3"));
        assert_eq!(header(&reply, "cache-control"), Some("no-store"));
        assert_eq!(
            header(&reply, "ratelimit-policy"),
            Some("\"default\";q=100;w=60")
        );
        assert_eq!(header(&reply, "ratelimit"), Some("\"default\";r=0;t=3"));
        assert_eq!(
            String::from_utf8(reply.body).unwrap(),
            r#"{"jsonrpc":"2.0","id":7,"error":{"code":-32004,"message":"rate limit exceeded: 100 requests per minute","data":{"retryAfterSeconds":3}}}"#
        );
    }

    #[test]
    fn a_concurrency_refusal_says_retry_in_one_second() {
        let denial = Denial::Limited(limits::Denied::Concurrency { limit: 10 });
        let reply = reply(&denial, &Id::null(), None);
        assert_eq!(header(&reply, "retry-after"), Some("1"));
        assert_eq!(header(&reply, "ratelimit"), None);
        assert_eq!(body(&reply)["error"]["data"]["retryAfterSeconds"], 1);
    }

    #[test]
    fn too_large_closes_the_connection() {
        assert!(reply(&Denial::TooLarge { limit: 1 }, &Id::null(), None).close);
        assert!(!reply(&Denial::NotJson, &Id::null(), None).close);
    }

    const METADATA: &str = "https://mcp.example.com/.well-known/oauth-protected-resource/mcp";

    fn oauth(step_up: bool) -> Option<Challenge<'static>> {
        Some(Challenge {
            resource_metadata: METADATA,
            step_up,
        })
    }

    #[test]
    fn with_oauth_a_401_says_where_the_metadata_is() {
        let missing = reply(
            &Denial::Auth(auth::Error::Missing),
            &Id::null(),
            oauth(false),
        );
        assert_eq!(
            header(&missing, "www-authenticate").unwrap(),
            format!("Bearer realm=\"mcpwarden\", resource_metadata=\"{METADATA}\"")
        );
        let bad = reply(
            &Denial::Auth(auth::Error::BadToken),
            &Id::null(),
            oauth(true),
        );
        assert_eq!(
            header(&bad, "www-authenticate").unwrap(),
            format!(
                "Bearer realm=\"mcpwarden\", error=\"invalid_token\", resource_metadata=\"{METADATA}\""
            )
        );
    }

    #[test]
    fn a_token_short_of_scope_is_challenged_to_step_up() {
        let denied = |feature: Option<&str>| {
            Denial::Forbidden(authorize::Denied {
                what: "tool \"create_deal\"".into(),
                required_scopes: vec!["crm:read".into(), "crm:write".into()],
                missing_feature: feature.map(String::from),
            })
        };
        let step_up = reply(&denied(None), &id("1"), oauth(true));
        assert_eq!(step_up.status, 403);
        assert_eq!(
            header(&step_up, "www-authenticate").unwrap(),
            format!(
                "Bearer error=\"insufficient_scope\", scope=\"crm:read crm:write\", resource_metadata=\"{METADATA}\""
            )
        );
        // No step-up where a wider token cannot help; a missing feature is no matter of scope.
        assert_eq!(
            header(
                &reply(&denied(None), &id("1"), oauth(false)),
                "www-authenticate"
            ),
            None
        );
        assert_eq!(
            header(
                &reply(&denied(Some("signal")), &id("1"), oauth(true)),
                "www-authenticate"
            ),
            None
        );
    }
}
