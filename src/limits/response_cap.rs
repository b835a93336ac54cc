//! The response size cap (`max_response_bytes`) as a small state machine over body chunks:
//! plain bytes in, the bytes the client gets out.
//!
//! Invariants:
//! - Over a whole response it returns at most `limit` bytes. The one exception is the -32005
//!   error itself when the client's own id nearly fills the limit; the policy compiler keeps
//!   the limit at 1KB or more, so any reasonable id fits.
//! - What it returns is well-formed as far as the upstream's bytes are: the upstream's body
//!   unchanged; or a JSON response cut by [`repair`] or replaced by the -32005 error for the
//!   pending id; or, for SSE, whole events followed by at most one error event, after which
//!   nothing more passes.
//! - Where the upstream's chunks are cut never changes the concatenated output.
//! - It holds at most `limit` bytes: a body of unknown length only while it may still fit,
//!   an SSE event only while it may still fit what is left of the limit.
//! - A known `Content-Length` within the limit streams through untouched (and the header may
//!   be kept); in every other case the size may change and the caller sends it chunked.

mod repair;

use bytes::{Bytes, BytesMut};

use crate::mcp::jsonrpc::{self, Id};
use crate::mcp::sse::Splitter;

/// What the response's headers say about its body.
#[derive(Debug, Clone, Copy)]
pub struct Head<'a> {
    /// `Content-Type`, parameters included (empty when absent).
    pub content_type: &'a str,
    /// A `Content-Encoding` is present: the bytes cannot be read or cut.
    pub encoded: bool,
    /// `Content-Length`, when the body is framed by it.
    pub length: Option<u64>,
}

/// The cap for one response.
#[derive(Debug)]
pub struct Cap {
    limit: usize,
    id: Id,
    state: State,
    cut: bool,
}

#[derive(Debug)]
enum State {
    /// A known length within the limit: passed as it comes. `left` only guards the
    /// invariant should the upstream send more than it declared.
    Pass { left: usize },
    /// Held until complete; past the limit, cut (when `repair`) or replaced by the error.
    Hold { held: Vec<u8>, repair: bool },
    /// SSE: events pass as they complete while `sent + event ≤ limit − reserve`, where
    /// `reserve` is the length of the error event, so the replacement always fits.
    Stream {
        splitter: Splitter,
        sent: usize,
        reserve: usize,
    },
    /// A known length over the limit that cannot be cut: the error, without reading the body.
    Refuse,
    /// Cut: nothing more reaches the client.
    Done,
}

/// The message of the -32005 error.
const TOO_LARGE: &str = "response over the gateway's size limit";

/// The -32005 error for `id`, with `data.limitBytes`.
pub fn too_large(id: &Id, limit: u64) -> Vec<u8> {
    let data = serde_json::json!({ "limitBytes": limit });
    jsonrpc::error_response(id, -32005, TOO_LARGE, Some(&data))
}

/// The same error as an SSE `message` event.
pub fn too_large_event(id: &Id, limit: u64) -> Vec<u8> {
    let error = too_large(id, limit);
    let mut event = Vec::with_capacity(error.len() + 24);
    event.extend_from_slice(b"event: message\ndata: ");
    event.extend_from_slice(&error);
    event.extend_from_slice(b"\n\n");
    event
}

/// Makes room for `more` bytes in `held`, doubling as a `Vec` does but never past `limit`,
/// so a held body never allocates more than the limit.
fn grow(held: &mut Vec<u8>, more: usize, limit: usize) {
    let needed = held.len() + more;
    if needed > held.capacity() {
        let target = needed.max(held.capacity() * 2).min(limit);
        held.reserve_exact(target - held.len());
    }
}

/// `application/json` and `text/event-stream`, case-insensitive, parameters ignored.
fn media_is(content_type: &str, media: &str) -> bool {
    content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .eq_ignore_ascii_case(media)
}

impl Cap {
    /// The cap for a response with this head. `id` is the pending request's id (`null` for a
    /// GET stream or a batch); `tools_call` says the request was a single `tools/call`, whose
    /// text result may be cut rather than replaced.
    pub fn for_response(head: Head<'_>, limit: u64, id: Id, tools_call: bool) -> Cap {
        let limit = usize::try_from(limit).unwrap_or(usize::MAX);
        let fits = head
            .length
            .map(|n| usize::try_from(n).is_ok_and(|n| n <= limit));
        // The common case, a declared length within the limit, needs nothing else.
        let state = if fits == Some(true) {
            State::Pass { left: limit }
        } else {
            let json = !head.encoded && media_is(head.content_type, "application/json");
            let sse = !head.encoded && media_is(head.content_type, "text/event-stream");
            match fits {
                _ if sse => State::Stream {
                    splitter: Splitter::new(),
                    sent: 0,
                    reserve: too_large_event(&id, limit as u64).len(),
                },
                // A length over the limit: only a tools/call text result is worth reading.
                Some(false) if !(json && tools_call) => State::Refuse,
                _ => State::Hold {
                    held: Vec::new(),
                    repair: json && tools_call,
                },
            }
        };
        Cap {
            limit,
            id,
            state,
            cut: false,
        }
    }

    /// The response's headers no longer describe the body: it becomes the JSON error, so
    /// `Content-Type` becomes `application/json` and `Content-Encoding` goes.
    pub fn replaces_headers(&self) -> bool {
        matches!(self.state, State::Refuse)
    }

    /// The body passes unchanged, so `Content-Length` may stay.
    pub fn keeps_length(&self) -> bool {
        matches!(self.state, State::Pass { .. })
    }

    /// The cap changed the body (counted once per response by the caller). From then on
    /// nothing more reaches the client: the rest of the upstream's body is dropped.
    pub fn cut(&self) -> bool {
        self.cut
    }

    /// Takes one chunk of the upstream body (`end`: it is the last) and returns what the
    /// client gets now.
    pub fn push(&mut self, chunk: Bytes, end: bool) -> Bytes {
        match &mut self.state {
            State::Pass { left } => {
                if chunk.len() <= *left {
                    *left -= chunk.len();
                    return chunk;
                }
                let fits = chunk.slice(..*left);
                self.finish_with(Some(fits.to_vec()))
            }
            State::Refuse => self.finish_with(None),
            State::Done => Bytes::new(),
            State::Hold { held, repair } => {
                let room = self.limit - held.len();
                let fits = chunk.len() <= room;
                // Past the limit, the first `limit` bytes are all a cut can use.
                let take = &chunk[..chunk.len().min(room)];
                grow(held, take.len(), self.limit);
                held.extend_from_slice(take);
                if fits && !end {
                    return Bytes::new();
                }
                if fits {
                    let whole = std::mem::take(held);
                    self.state = State::Done;
                    return whole.into();
                }
                let cut = (*repair && repair::truncate(held, self.limit, &self.id))
                    .then(|| std::mem::take(held));
                self.finish_with(cut)
            }
            State::Stream { .. } => self.push_sse(&chunk, end),
        }
    }

    fn push_sse(&mut self, mut chunk: &[u8], end: bool) -> Bytes {
        let State::Stream {
            splitter,
            sent,
            reserve,
        } = &mut self.state
        else {
            unreachable!("called in the Stream state");
        };
        let budget = self.limit.saturating_sub(*reserve);
        let mut passed = Vec::new();
        let mut events = Vec::new();
        let mut overflow = false;
        loop {
            // Feed no more than could still fit, plus one byte to see that it does not, so
            // the splitter never holds more than the limit.
            let room = (budget - *sent).saturating_sub(splitter.buffered()) + 1;
            let (piece, rest) = chunk.split_at(chunk.len().min(room));
            chunk = rest;
            splitter.push(piece, &mut events);
            if end && chunk.is_empty() {
                events.extend(splitter.finish());
            }
            for event in events.drain(..) {
                if *sent + event.len() > budget {
                    overflow = true;
                    break;
                }
                *sent += event.len();
                passed.push(event);
            }
            // An event still incomplete that can no longer fit.
            overflow |= splitter.buffered() > budget - *sent;
            if overflow || chunk.is_empty() {
                break;
            }
        }
        if overflow {
            passed.push(too_large_event(&self.id, self.limit as u64).into());
            self.cut = true;
            self.state = State::Done;
        } else if end {
            self.state = State::Done;
        }
        // The common case, one event, goes out as the splitter's own bytes, without a copy.
        if passed.len() <= 1 {
            return passed.pop().unwrap_or_default();
        }
        let mut out = BytesMut::with_capacity(passed.iter().map(Bytes::len).sum());
        for event in passed {
            out.extend_from_slice(&event);
        }
        out.freeze()
    }

    /// Ends the body with `cut` (else the -32005 error) and drops whatever follows.
    fn finish_with(&mut self, cut: Option<Vec<u8>>) -> Bytes {
        self.cut = true;
        self.state = State::Done;
        cut.unwrap_or_else(|| too_large(&self.id, self.limit as u64))
            .into()
    }
}

#[cfg(test)]
mod tests;
