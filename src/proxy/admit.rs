//! What `request_filter` decides, in the contract's order — framing, the failed-auth budget,
//! credentials, session ownership, the body, the key's limits — and how a refusal is sent.
//! Each step is a plain function elsewhere (`request`, `auth`, `limits`, `denial`); this is
//! the glue that runs them against a Pingora session and keeps their results in `Ctx`.

use bytes::{Bytes, BytesMut};
use pingora::Result;
use pingora::http::ResponseHeader;
use pingora::prelude::Session;

use super::outcome::outcome_of;
use super::request::{self, RETRY_BUFFER};
use super::request_id;
use super::{BodyPlan, Ctx, Gateway, SESSION_HEADER};
use crate::auth;
use crate::denial::{self, Denial};
use crate::limits::Limiter;
use crate::policy::Policy;
use crate::policy::store::now;

impl<L: Limiter> Gateway<L> {
    /// Everything `request_filter` decides, in the contract's order. `Err` is the answer.
    pub(super) async fn admit(
        &self,
        session: &mut Session,
        ctx: &mut Ctx,
        policy: &Policy,
    ) -> Result<(), Denial> {
        let method = session.req_header().method.clone();
        let headers = &session.req_header().headers;
        let length = request::check_shape(&method, headers)?;
        let client_ip = client_ip(session);
        if let Some(retry_after) = client_ip.and_then(|ip| self.auth_failures.blocked(ip)) {
            return Err(Denial::AuthThrottled { retry_after });
        }
        let identity = auth::authenticate(headers, policy, now())
            .await
            .map_err(|e| {
                self.metrics
                    .auth_failures
                    .with_label_values(&[e.reason()])
                    .inc();
                let spent = match client_ip {
                    Some(ip) if e.spends_budget() => self.auth_failures.record(ip),
                    _ => None,
                };
                match spent {
                    Some(retry_after) => Denial::AuthThrottled { retry_after },
                    None => Denial::Auth(e),
                }
            })?;
        // From here on a refusal is counted under the caller's key.
        let identity = ctx.identity.insert(identity);
        if method != http::Method::POST
            && method != http::Method::GET
            && method != http::Method::DELETE
        {
            return Err(Denial::MethodNotAllowed);
        }
        // check_shape made sure the header is single and visible ASCII.
        if let Some(sid) = session.req_header().headers.get(&SESSION_HEADER) {
            let sid = sid.to_str().unwrap_or_default();
            let upstream_id = self
                .seal
                .open(sid, identity.workspace(), identity.session_owner())
                .ok_or(Denial::SessionNotFound)?;
            ctx.upstream_session = Some(upstream_id.to_owned());
        }
        if method != http::Method::POST {
            return self.limit(ctx, 1).await;
        }
        let limit = ctx
            .identity
            .as_ref()
            .expect("set above")
            .limits()
            .max_request_bytes;
        match length {
            Some(n) if n > limit => Err(Denial::TooLarge { limit }),
            Some(n) if n <= RETRY_BUFFER => {
                let body = read_whole_body(session, n).await?;
                ctx.body_read = true;
                self.check_body(session, ctx, policy, &body)?;
                self.limit(ctx, ctx.checked.as_ref().map_or(1, |c| c.cost))
                    .await
            }
            _ => {
                // Grows as chunks arrive; a large declared length reserves nothing up front.
                ctx.body = BodyPlan::Hold(BytesMut::with_capacity(RETRY_BUFFER as usize));
                Ok(())
            }
        }
    }

    pub(super) fn check_body(
        &self,
        session: &Session,
        ctx: &mut Ctx,
        policy: &Policy,
        body: &[u8],
    ) -> Result<(), Denial> {
        let identity = ctx.identity.as_ref().expect("authenticated first");
        match request::evaluate(policy, identity, &session.req_header().headers, body) {
            Ok(checked) => {
                ctx.id = checked.id.clone();
                ctx.checked = Some(checked);
                Ok(())
            }
            Err(refused) => {
                let refused = *refused;
                ctx.id = refused.id;
                ctx.refused_labels = Some((refused.method, refused.tool));
                Err(refused.denial)
            }
        }
    }

    /// Steps 3 and 4 of the contract: the key's rate, then its concurrency. The slot is kept
    /// in the context until the request ends.
    pub(super) async fn limit(&self, ctx: &mut Ctx, cost: u32) -> Result<(), Denial> {
        let identity = ctx.identity.as_ref().expect("authenticated first");
        match self
            .limiter
            .admit(&identity.subject(), identity.limits(), cost)
            .await
        {
            Ok(admission) => {
                ctx.admission = Some(admission);
                Ok(())
            }
            Err(denied) => Err(Denial::Limited(denied)),
        }
    }

    pub(super) async fn send(
        &self,
        session: &mut Session,
        ctx: &mut Ctx,
        denial: &Denial,
    ) -> Result<u16> {
        ctx.outcome = outcome_of(denial);
        let challenge = ctx
            .policy
            .as_ref()
            .and_then(|p| p.oauth.as_ref())
            .map(|oauth| denial::Challenge {
                resource_metadata: oauth.metadata().url(),
                step_up: match (denial, &ctx.identity) {
                    (Denial::Forbidden(d), Some(identity)) => {
                        identity.may_step_up_to(&d.required_scopes)
                    }
                    _ => false,
                },
            });
        let reply = denial::reply(denial, &ctx.id, challenge);
        let mut header = ResponseHeader::build(reply.status, Some(reply.headers.len() + 3))?;
        for (name, value) in &reply.headers {
            header.insert_header(*name, value)?;
        }
        if let Some(id) = &ctx.request_id {
            header.insert_header(request_id::HEADER.clone(), id.value.clone())?;
        }
        header.insert_header("content-length", reply.body.len().to_string())?;
        // A refused POST whose body was not read: close rather than drain an unbounded body
        // from a client that was refused anyway.
        let unread_body = session.req_header().method == http::Method::POST && !ctx.body_read;
        if reply.close || unread_body {
            header.insert_header("connection", "close")?;
            session.set_keepalive(None);
        }
        session
            .write_response_header(Box::new(header), false)
            .await?;
        session
            .write_response_body(Some(Bytes::from(reply.body)), true)
            .await?;
        Ok(reply.status)
    }
}

/// Answers `GET /.well-known/oauth-protected-resource[/<resource path>]` with the RFC 9728
/// document, when the policy has `oauth:`. `false`: not such a request.
pub(super) async fn serve_metadata(session: &mut Session, policy: &Policy) -> Result<bool> {
    let Some(oauth) = &policy.oauth else {
        return Ok(false);
    };
    let req = session.req_header();
    if req.method != http::Method::GET || !oauth.metadata().serves(req.uri.path()) {
        return Ok(false);
    }
    let document = oauth.metadata().document();
    let mut header = ResponseHeader::build(200, Some(4))?;
    header.insert_header("content-type", "application/json")?;
    header.insert_header("content-length", document.len().to_string())?;
    // Public and the same for everyone; browser-based clients read it across origins.
    header.insert_header("cache-control", "public, max-age=300")?;
    header.insert_header("access-control-allow-origin", "*")?;
    session
        .write_response_header(Box::new(header), false)
        .await?;
    session
        .write_response_body(Some(document.clone()), true)
        .await?;
    Ok(true)
}

/// Reads a body small enough for Pingora's retry buffer, which then replays it to the
/// upstream. Answers `Expect: 100-continue` first, since the client waits for it.
async fn read_whole_body(session: &mut Session, length: u64) -> Result<Bytes, Denial> {
    const UNREADABLE: Denial = Denial::InvalidRequest("could not read the request body");
    if request::expects_continue(&session.req_header().headers) {
        session
            .write_continue_response()
            .await
            .map_err(|_| UNREADABLE)?;
    }
    session.enable_retry_buffering();
    // Usually the whole body comes in one chunk, kept as it is; more are joined.
    let mut body = Bytes::new();
    let mut joined: Option<BytesMut> = None;
    while let Some(chunk) = session.read_request_body().await.map_err(|_| UNREADABLE)? {
        match &mut joined {
            Some(all) => all.extend_from_slice(&chunk),
            None if body.is_empty() => body = chunk,
            None => {
                let mut all = BytesMut::with_capacity(length as usize);
                all.extend_from_slice(&body);
                all.extend_from_slice(&chunk);
                joined = Some(all);
            }
        }
    }
    Ok(joined.map_or(body, BytesMut::freeze))
}

pub(super) fn client_ip(session: &Session) -> Option<std::net::IpAddr> {
    session
        .client_addr()
        .and_then(|a| a.as_inet())
        .map(|a| a.ip())
}
