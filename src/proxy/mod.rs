//! The Pingora `ProxyHttp` implementation: thin glue that calls the plain decision functions
//! in each phase and turns their answers into HTTP. `docs/phases.md` draws which module runs
//! in which phase.
//!
//! Invariants: the upstream never receives a request body before it is authorized (small
//! bodies are read in `request_filter`, larger ones held back in `request_body_filter`); the
//! client's credentials and any `X-Mcpwarden-*` it sent never reach the upstream; every answer
//! the gateway makes itself goes through `denial::reply`.

mod admit;
pub mod forward;
mod outcome;
pub mod request;
pub mod request_id;
pub mod response;
pub mod sessions;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::prelude::{HttpPeer, Session};
use pingora::proxy::{FailToProxy, ProxyHttp};
use pingora::upstreams::peer::HttpUpstreamRequestPolicy;
use pingora::{Error, ErrorSource, ErrorType, Result};

use crate::auth::Identity;
use crate::authorize;
use crate::denial::Denial;
use crate::limits::auth_failures::AuthFailures;
use crate::limits::response_cap::Cap;
use crate::limits::{Admission, Limiter, LocalLimiter};
use crate::mcp::jsonrpc::Id;
use crate::policy::Policy;
use crate::policy::store::Store;
use crate::telemetry::metrics::Metrics;
use crate::telemetry::usage::Usage;
use crate::telemetry::{Finished, Outcome, access_log};
use admit::client_ip;
use outcome::{final_status, outcome_of};
use request::Checked;
use request_id::RequestId;
use response::{ToolsFilter, cap_response};
use sessions::SessionSeal;

use crate::wire::MCP_SESSION_ID as SESSION_HEADER;

/// The error that closes a GET stream the response cap has ended (see
/// `upstream_response_body_filter`).
const CAP_ENDED_STREAM: ErrorType = ErrorType::Custom("response cap ended the stream");

/// The gateway: shared state every request reads.
pub struct Gateway<L = LocalLimiter> {
    pub store: Arc<Store>,
    pub metrics: Arc<Metrics>,
    /// Per-key rolling counts and anomaly scores, for `/usage`.
    pub usage: Arc<Usage>,
    /// Seals the session ids the upstream issues to the identity that received them.
    pub seal: Arc<SessionSeal>,
    /// Requests in flight across the process (drained on shutdown).
    pub inflight: Arc<AtomicUsize>,
    /// Per-key rate and concurrency state.
    pub limiter: Arc<L>,
    /// Failed authentications per client address.
    pub auth_failures: Arc<AuthFailures>,
}

/// Counts a request in flight for as long as its context lives.
pub struct InflightGuard(Arc<AtomicUsize>);

impl Drop for InflightGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// How the request body reaches the upstream.
#[derive(Debug, Default)]
enum BodyPlan {
    /// No body to check (GET, DELETE), or it was read and authorized in `request_filter`.
    #[default]
    Pass,
    /// Larger or chunked bodies: held here until complete, then authorized.
    Hold(BytesMut),
}

/// Per-request state.
pub struct Ctx {
    _inflight: InflightGuard,
    policy: Option<Arc<Policy>>,
    identity: Option<Identity>,
    /// The id errors about this request carry.
    id: Id,
    checked: Option<Checked>,
    body: BodyPlan,
    /// Set by a phase that refuses the request after `request_filter` (body filter), for
    /// `fail_to_proxy` to answer.
    denial: Option<Denial>,
    tools_filter: Option<ToolsFilter>,
    /// The response size cap, after `tools_filter`; `None` for a response without a body.
    cap: Option<Cap>,
    /// The cap's cut was counted (once per response).
    truncated: bool,
    /// The request body has been read to its end (so the connection may be kept).
    body_read: bool,
    /// The upstream's own session id, unsealed from the client's `Mcp-Session-Id`.
    upstream_session: Option<String>,
    /// The key's concurrency slot and bucket status, once the request is admitted. Dropped
    /// with the context, after the response (a whole SSE stream) has ended.
    admission: Option<Admission>,
    outcome: Outcome,
    /// The upstream's response status, once it answered.
    upstream_status: Option<u16>,
    started: std::time::Instant,
    /// Set first thing in `request_filter`; every answer carries it.
    request_id: Option<RequestId>,
    /// The `method` and `tool` labels of a body refused by policy (an admitted one has them
    /// in `checked`).
    refused_labels: Option<(&'static str, &'static str)>,
}

#[async_trait]
impl<L: Limiter> ProxyHttp for Gateway<L> {
    type CTX = Ctx;

    fn new_ctx(&self) -> Ctx {
        self.inflight.fetch_add(1, Ordering::AcqRel);
        Ctx {
            _inflight: InflightGuard(self.inflight.clone()),
            policy: None,
            identity: None,
            id: Id::null(),
            checked: None,
            body: BodyPlan::Pass,
            denial: None,
            tools_filter: None,
            cap: None,
            truncated: false,
            body_read: false,
            upstream_session: None,
            admission: None,
            outcome: Outcome::Ok,
            upstream_status: None,
            started: std::time::Instant::now(),
            request_id: None,
            refused_labels: None,
        }
    }

    /// Runs first, once per request: framing, credentials, session ownership, and — for
    /// bodies that fit the retry buffer — the JSON-RPC body. `Ok(true)` means answered here.
    async fn request_filter(&self, session: &mut Session, ctx: &mut Ctx) -> Result<bool> {
        ctx.request_id = Some(RequestId::of(&session.req_header().headers));
        let policy = self.store.current();
        ctx.policy = Some(policy.clone());
        if admit::serve_metadata(session, &policy).await? {
            return Ok(true);
        }
        match self.admit(session, ctx, &policy).await {
            Ok(()) => {
                if matches!(ctx.body, BodyPlan::Hold(_))
                    && request::expects_continue(&session.req_header().headers)
                {
                    // The gateway holds the whole body before the upstream sees any of it, so
                    // it answers for the body itself (`Expect` is not forwarded); waiting for
                    // the upstream's 100 would leave a refusal with no final answer to send.
                    session.write_continue_response().await?;
                }
                Ok(false)
            }
            Err(denial) => {
                self.send(session, ctx, &denial).await?;
                Ok(true)
            }
        }
    }

    async fn upstream_peer(&self, _session: &mut Session, ctx: &mut Ctx) -> Result<Box<HttpPeer>> {
        let upstream = &ctx.policy.as_ref().expect("set in request_filter").upstream;
        // The name is for TLS (SNI and the certificate check); plain HTTP needs no copy of it.
        let sni = if upstream.tls {
            upstream.host.clone()
        } else {
            String::new()
        };
        let mut peer = HttpPeer::new(upstream.addr, upstream.tls, sni);
        peer.options.connection_timeout = Some(upstream.connect_timeout);
        peer.options.total_connection_timeout = Some(upstream.connect_timeout);
        // An SSE stream may stay quiet this long before the gateway gives up on it (504 when
        // nothing came back at all). No pool idle timeout: it arms a timer per released
        // connection, and an upstream that closes an idle connection is noticed anyway.
        peer.options.read_timeout = Some(upstream.idle_timeout);
        // Never forward an upgrade handshake: a tunnel would bypass every JSON-RPC check.
        // (check_shape refuses `Upgrade:` already; this is the second lock.)
        peer.options.http_upstream_request_policy = HttpUpstreamRequestPolicy::deny_upgrades();
        Ok(Box::new(peer))
    }

    /// Holds back bodies too large for the retry buffer until they are complete and
    /// authorized; the upstream gets nothing of a refused body.
    async fn request_body_filter(
        &self,
        session: &mut Session,
        body: &mut Option<Bytes>,
        end_of_stream: bool,
        ctx: &mut Ctx,
    ) -> Result<()> {
        let BodyPlan::Hold(held) = &mut ctx.body else {
            return Ok(());
        };
        let limit = ctx
            .identity
            .as_ref()
            .map_or(0, |i| i.limits().max_request_bytes);
        if let Some(chunk) = body.take() {
            if (held.len() + chunk.len()) as u64 > limit {
                ctx.denial = Some(Denial::TooLarge { limit });
                return Error::e_explain(ErrorType::HTTPStatus(413), "request body over the limit");
            }
            held.extend_from_slice(&chunk);
        }
        if !end_of_stream {
            // An empty chunk tells Pingora "nothing to forward yet" without ending the body.
            *body = Some(Bytes::new());
            return Ok(());
        }
        let whole = std::mem::take(held).freeze();
        ctx.body = BodyPlan::Pass;
        let policy = ctx.policy.clone().expect("set in request_filter");
        if let Err(denial) = self.check_body(session, ctx, &policy, &whole) {
            ctx.denial = Some(denial);
            return Error::e_explain(ErrorType::HTTPStatus(403), "request refused by policy");
        }
        let cost = ctx.checked.as_ref().map_or(1, |c| c.cost);
        if let Err(denial) = self.limit(ctx, cost).await {
            ctx.denial = Some(denial);
            return Error::e_explain(ErrorType::HTTPStatus(429), "request over the key's limits");
        }
        *body = Some(whole);
        Ok(())
    }

    /// Strips credentials and forged identity headers, then says who is calling.
    async fn upstream_request_filter(
        &self,
        session: &mut Session,
        req: &mut RequestHeader,
        ctx: &mut Ctx,
    ) -> Result<()> {
        let client_ip = client_ip(session);
        forward::rewrite_request(
            req,
            &ctx.policy.as_ref().expect("set in request_filter").upstream,
            ctx.identity.as_ref().expect("authenticated"),
            client_ip,
            forward::Strip {
                expect: ctx.body_read || matches!(ctx.body, BodyPlan::Hold(_)),
            },
            |headers| {
                // The client's id unsealed (it was checked as visible ASCII on the way in).
                let session = ctx.upstream_session.as_deref();
                if let Some(value) = session.and_then(|id| http::HeaderValue::from_str(id).ok()) {
                    headers.insert(SESSION_HEADER.clone(), value);
                }
                // The client's own id passes through as it came; a replaced one is replaced.
                if let Some(id) = ctx.request_id.as_ref().filter(|id| id.generated) {
                    headers.insert(request_id::HEADER.clone(), id.value.clone());
                }
            },
        )?;
        Ok(())
    }

    /// Seals a new session id to its identity, and prepares `tools/list` filtering and the
    /// response cap (which decide here whether the headers still describe the body).
    async fn upstream_response_filter(
        &self,
        _session: &mut Session,
        resp: &mut ResponseHeader,
        ctx: &mut Ctx,
    ) -> Result<()> {
        ctx.upstream_status = Some(resp.status.as_u16());
        if resp.status.is_server_error() {
            self.metrics
                .upstream_errors
                .with_label_values(&["status_5xx"])
                .inc();
        }
        let identity = ctx.identity.as_ref().expect("authenticated");
        response::seal_session_id(resp, &self.seal, identity)?;
        let limit = identity.limits().max_response_bytes;
        if ctx.checked.as_ref().is_some_and(|c| c.lists_tools) && resp.status.is_success() {
            ctx.tools_filter = Some(response::filter_tools(resp, limit, ctx.id.clone())?);
        }
        let tools_call = ctx
            .checked
            .as_ref()
            .is_some_and(|c| c.method == "tools/call");
        ctx.cap = cap_response(resp, limit, ctx.id.clone(), tools_call)?;
        Ok(())
    }

    /// Tells the client how its key's bucket stands (`RateLimit-Policy`, `RateLimit`), and
    /// the request's id (in place of any the upstream sent).
    async fn response_filter(
        &self,
        _session: &mut Session,
        resp: &mut ResponseHeader,
        ctx: &mut Ctx,
    ) -> Result<()> {
        response::edit_headers(resp, |headers| {
            if let Some(id) = &ctx.request_id {
                headers.insert(request_id::HEADER.clone(), id.value.clone());
            }
            if let (Some(admission), Some(identity)) = (&ctx.admission, &ctx.identity) {
                let policy = identity.headers().rate_limit_policy.clone();
                headers.insert(crate::wire::RATELIMIT_POLICY.clone(), policy);
                let rate = admission.rate;
                let left = crate::wire::rate_limit(rate.remaining, rate.reset);
                headers.insert(crate::wire::RATELIMIT.clone(), left);
            }
        });
        Ok(())
    }

    /// Runs each chunk through the `tools/list` filter, then the response cap; a cut marks
    /// the request truncated (counted once, when it ends).
    fn upstream_response_body_filter(
        &self,
        session: &mut Session,
        body: &mut Option<Bytes>,
        end_of_stream: bool,
        ctx: &mut Ctx,
    ) -> Result<Option<std::time::Duration>> {
        if let Some(filter) = ctx.tools_filter.as_mut() {
            let policy = ctx.policy.as_ref().expect("set in request_filter");
            let identity = ctx.identity.as_ref().expect("authenticated");
            let allowed = |tool: &str| authorize::tool_allowed(policy, identity, tool);
            let chunk = body.take().unwrap_or_default();
            *body = Some(filter.push(&chunk, end_of_stream, &allowed));
        }
        let Some(cap) = ctx.cap.as_mut() else {
            return Ok(None);
        };
        let chunk = body.take().unwrap_or_default();
        if cap.cut() && !chunk.is_empty() && session.req_header().method == http::Method::GET {
            // A GET stream may never end by itself: once cut, close it at the next event so
            // the client reconnects instead of waiting on a stream that passes nothing.
            return Error::e_explain(CAP_ENDED_STREAM, "the response cap ended a GET stream");
        }
        *body = Some(cap.push(chunk, end_of_stream));
        let cut = cap.cut() || ctx.tools_filter.as_ref().is_some_and(ToolsFilter::cut);
        if cut {
            ctx.truncated = true;
            ctx.outcome = Outcome::TooLarge;
        }
        Ok(None)
    }

    /// Answers what failed after `request_filter`: a refused held-back body, or the upstream.
    /// A final answer can still be sent while only an interim `100 Continue` went out.
    async fn fail_to_proxy(&self, session: &mut Session, e: &Error, ctx: &mut Ctx) -> FailToProxy {
        let refused = ctx.denial.take();
        if let Some(denial) = &refused {
            // Counted as what was decided, even when it can no longer be sent.
            ctx.outcome = outcome_of(denial);
        }
        let denial = refused
            .or_else(|| forward::upstream_failure(e))
            .or_else(|| forward::client_fault(e));
        let error_code = match (&denial, final_status(session).is_none()) {
            (Some(denial), true) => {
                if let Some(kind) = forward::failure_kind(denial) {
                    self.metrics
                        .upstream_errors
                        .with_label_values(&[kind])
                        .inc();
                }
                // A refused body may not have been read to its end.
                session.set_keepalive(None);
                self.send(session, ctx, denial).await.unwrap_or(0)
            }
            _ => {
                if e.esource() == &ErrorSource::Upstream {
                    if let Some(kind) = forward::mid_response_kind(e, ctx.upstream_status) {
                        self.metrics
                            .upstream_errors
                            .with_label_values(&[kind])
                            .inc();
                    }
                    ctx.outcome = Outcome::UpstreamError;
                }
                0
            }
        };
        FailToProxy {
            error_code,
            can_reuse_downstream: false,
        }
    }

    /// A client that goes away mid-stream (closing an SSE stream) is normal for MCP, not an
    /// error worth a log line; nor is a GET stream the response cap closed.
    fn suppress_error_log(&self, _session: &Session, _ctx: &Ctx, e: &Error) -> bool {
        let client_gone = e.esource() == &ErrorSource::Downstream
            && matches!(
                e.etype(),
                ErrorType::ConnectionClosed | ErrorType::ReadError | ErrorType::WriteError
            );
        // Counted in mcpwarden_responses_truncated_total already.
        client_gone || e.etype() == &CAP_ENDED_STREAM
    }

    /// The request's one record, for every telemetry sink: metrics and the access log.
    async fn logging(&self, session: &mut Session, _e: Option<&Error>, ctx: &mut Ctx) {
        let (method, tool) = match (&ctx.checked, &ctx.refused_labels) {
            (Some(c), _) => (c.method, c.tool),
            (None, Some((method, tool))) => (*method, *tool),
            (None, None) => ("", ""),
        };
        let finished = Finished {
            identity: ctx.identity.as_ref(),
            method,
            tool,
            outcome: ctx.outcome,
            status: final_status(session).unwrap_or(0),
            upstream_status: ctx.upstream_status,
            duration: ctx.started.elapsed(),
            bytes_in: session.body_bytes_read(),
            bytes_out: session.body_bytes_sent(),
            truncated: ctx.truncated,
        };
        self.metrics.record(&finished);
        self.usage.record(&finished);
        let id = ctx.request_id.take().unwrap_or_else(RequestId::generate);
        access_log::record(&finished, id.value);
    }
}
