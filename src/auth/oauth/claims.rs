//! The claim rules a token must meet, shared by JWT payloads and introspection answers.
//!
//! Invariants: `exp` is required and must be a JSON number (a string `exp` is refused, never
//! read as absent); `nbf`, when present, likewise; both are checked with [`LEEWAY_SECS`] of
//! clock skew either way. `aud` (a string or an array of strings) must contain the resource.
//! The client is `client_id` (RFC 9068) else `azp`; the workspace is the issuer's
//! `workspace_claim`; both are 1 to [`MAX_ID_BYTES`] bytes of visible ASCII, because they
//! become metric labels, log fields and upstream headers. Scopes come from `scope` (a
//! space-separated string) else `scp` (an array of strings, or a space-separated string as
//! some issuers send it), at most [`MAX_SCOPES`] of RFC 6749 scope characters. A claim that
//! appears twice is refused (RFC 7519 §4 allows that or last-wins; refusing cannot be
//! confused).

use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::Value;
use serde_json::value::RawValue;

use super::{Claims, Rejected};

/// Clock skew tolerated between this gateway and the issuer, on `exp` and `nbf` alike.
pub const LEEWAY_SECS: i64 = 30;
/// The longest `sub` accepted (it is only compared, never sent or logged).
pub const MAX_SUBJECT_BYTES: usize = 256;
/// The longest `client_id` or workspace accepted.
pub const MAX_ID_BYTES: usize = 128;
/// The most scopes one token may carry.
pub const MAX_SCOPES: usize = 64;
/// The longest single scope accepted.
pub const MAX_SCOPE_BYTES: usize = 128;

/// A JSON object's members, borrowed from its text, in order (a JWT has about a dozen, so a
/// scan beats hashing).
#[derive(Debug, Default)]
pub struct ClaimSet<'a> {
    members: Vec<(&'a str, &'a RawValue)>,
}

impl<'a> ClaimSet<'a> {
    /// Parses a JSON object; anything else (or a member name with escapes) is `Malformed`.
    pub fn parse(json: &'a [u8]) -> Result<Self, Rejected> {
        serde_json::from_slice(json).map_err(|_| Rejected::Malformed)
    }

    /// The raw value of `name`; a name present twice is refused.
    pub fn get(&self, name: &'static str) -> Result<Option<&'a RawValue>, Rejected> {
        let mut found = None;
        for (key, value) in &self.members {
            if *key == name {
                if found.is_some() {
                    return Err(Rejected::Claim(name));
                }
                found = Some(*value);
            }
        }
        Ok(found)
    }

    /// The value of the claim named at run time (the workspace claim).
    fn get_named(&self, name: &str) -> Result<Option<&'a RawValue>, Rejected> {
        let mut values = self
            .members
            .iter()
            .filter(|(k, _)| *k == name)
            .map(|(_, v)| *v);
        let first = values.next();
        if values.next().is_some() {
            return Err(Rejected::Claim("workspace"));
        }
        Ok(first)
    }

    /// A string claim, `None` when absent; any other type is refused as that claim.
    pub fn string(&self, name: &'static str) -> Result<Option<String>, Rejected> {
        self.get(name)?
            .map(|raw| parse_as::<String>(raw, name))
            .transpose()
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for ClaimSet<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Members<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for Members<'a> {
            type Value = ClaimSet<'a>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<Self::Value, M::Error> {
                let mut members = Vec::with_capacity(16);
                while let Some(entry) = map.next_entry::<&'de str, &'de RawValue>()? {
                    members.push(entry);
                }
                Ok(ClaimSet { members })
            }
        }
        deserializer.deserialize_map(Members(std::marker::PhantomData))
    }
}

fn parse_as<T: serde::de::DeserializeOwned>(
    raw: &RawValue,
    name: &'static str,
) -> Result<T, Rejected> {
    serde_json::from_str(raw.get()).map_err(|_| Rejected::Claim(name))
}

/// What the claims must say besides who the caller is.
#[derive(Debug, Clone, Copy)]
pub struct Expect<'c> {
    pub issuer: &'c str,
    pub resource: &'c str,
    /// JWTs must carry `iss`; an introspection answer may leave it out (RFC 7662 makes it
    /// optional: the endpoint itself vouches for its issuer). `aud` is required of both: the
    /// endpoint vouches that the token is live, not that it was issued for this resource.
    pub iss_required: bool,
}

/// Checks `iss`, `exp`, `nbf` and `aud` at `now` (Unix seconds); `aud` is always required.
pub fn check_validity(set: &ClaimSet<'_>, expect: Expect<'_>, now: i64) -> Result<(), Rejected> {
    match set.string("iss")? {
        Some(iss) if iss != expect.issuer => return Err(Rejected::Claim("iss")),
        None if expect.iss_required => return Err(Rejected::Claim("iss")),
        _ => {}
    }
    let exp = numeric_date(set, "exp")?.ok_or(Rejected::Claim("exp"))?;
    if now >= exp.saturating_add(LEEWAY_SECS) {
        return Err(Rejected::Expired);
    }
    if let Some(nbf) = numeric_date(set, "nbf")?
        && now.saturating_add(LEEWAY_SECS) < nbf
    {
        return Err(Rejected::NotYetValid);
    }
    match set.get("aud")? {
        None => Err(Rejected::Claim("aud")),
        Some(raw) => match parse_as::<Value>(raw, "aud")? {
            Value::String(aud) if aud == expect.resource => Ok(()),
            Value::String(_) => Err(Rejected::Audience),
            Value::Array(auds) => {
                let mut found = false;
                for aud in &auds {
                    match aud {
                        Value::String(aud) => found |= aud == expect.resource,
                        _ => return Err(Rejected::Claim("aud")),
                    }
                }
                if found {
                    Ok(())
                } else {
                    Err(Rejected::Audience)
                }
            }
            _ => Err(Rejected::Claim("aud")),
        },
    }
}

/// A NumericDate (RFC 7519 §2): a JSON number of seconds, possibly fractional (floored).
pub fn numeric_date(set: &ClaimSet<'_>, name: &'static str) -> Result<Option<i64>, Rejected> {
    let Some(raw) = set.get(name)? else {
        return Ok(None);
    };
    let number: serde_json::Number = parse_as(raw, name)?;
    if let Some(n) = number.as_i64() {
        return Ok(Some(n));
    }
    // u64 beyond i64, or a fraction: `as` saturates, which is right for a far-future date.
    number
        .as_f64()
        .map(|f| Some(f.floor() as i64))
        .ok_or(Rejected::Claim(name))
}

/// The caller's identity: client, workspace and scopes, bounded.
pub fn identity(set: &ClaimSet<'_>, workspace_claim: &str) -> Result<Claims, Rejected> {
    let client_id = match set.string("client_id")? {
        Some(id) => id,
        None => set.string("azp")?.ok_or(Rejected::Claim("client_id"))?,
    };
    if !is_id(&client_id) {
        return Err(Rejected::Claim("client_id"));
    }
    let workspace = match set.get_named(workspace_claim)? {
        Some(raw) => parse_as::<String>(raw, "workspace")?,
        None => return Err(Rejected::Claim("workspace")),
    };
    if !is_id(&workspace) {
        return Err(Rejected::Claim("workspace"));
    }
    let subject = set.string("sub")?;
    if subject
        .as_ref()
        .is_some_and(|s| s.len() > MAX_SUBJECT_BYTES)
    {
        return Err(Rejected::Claim("sub"));
    }
    Ok(Claims {
        client_id,
        workspace,
        scopes: scopes(set)?,
        subject,
    })
}

/// Scopes from `scope`, else `scp`; none at all is an empty list (the token can then reach
/// only what needs no scope).
pub fn scopes(set: &ClaimSet<'_>) -> Result<Vec<String>, Rejected> {
    if let Some(raw) = set.get("scope")? {
        let scope: String = parse_as(raw, "scope")?;
        return split_scopes(&scope, "scope");
    }
    let Some(raw) = set.get("scp")? else {
        return Ok(Vec::new());
    };
    match parse_as::<Value>(raw, "scp")? {
        Value::String(scp) => split_scopes(&scp, "scp"),
        Value::Array(items) => {
            if items.len() > MAX_SCOPES {
                return Err(Rejected::Claim("scp"));
            }
            items
                .into_iter()
                .map(|item| match item {
                    Value::String(s) if is_scope(&s) => Ok(s),
                    _ => Err(Rejected::Claim("scp")),
                })
                .collect()
        }
        _ => Err(Rejected::Claim("scp")),
    }
}

fn split_scopes(value: &str, name: &'static str) -> Result<Vec<String>, Rejected> {
    let mut out = Vec::new();
    for scope in value.split(' ').filter(|s| !s.is_empty()) {
        if out.len() == MAX_SCOPES || !is_scope(scope) {
            return Err(Rejected::Claim(name));
        }
        out.push(scope.to_owned());
    }
    Ok(out)
}

/// RFC 6749 §3.3 scope-token: 1*( %x21 / %x23-5B / %x5D-7E ), bounded.
fn is_scope(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_SCOPE_BYTES
        && s.bytes()
            .all(|b| matches!(b, 0x21 | 0x23..=0x5B | 0x5D..=0x7E))
}

/// 1 to 128 bytes of visible ASCII.
fn is_id(s: &str) -> bool {
    !s.is_empty() && s.len() <= MAX_ID_BYTES && s.bytes().all(|b| b.is_ascii_graphic())
}
