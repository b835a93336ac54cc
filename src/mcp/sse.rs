//! Server-Sent Events: an incremental splitter into whole events, and reading and replacing
//! an event's `data:` lines.
//!
//! Invariants:
//! - Events are split as the SSE specification parses lines: a line ends at CRLF, LF or CR,
//!   and an empty line ends an event. An event is the bytes of its lines up to and including
//!   the empty line, unchanged; so a lone blank line (e.g. at the start of a stream) is an
//!   event of its own, and comments (`: keep-alive`) followed by a blank line are events.
//! - Where chunks are cut never changes the events emitted: a CR at the end of a chunk is
//!   held until the next byte shows whether it is CR or the first half of CRLF. The
//!   concatenation of every emitted event and [`Splitter::finish`] is the input.
//! - Bytes are scanned once; emitted events are split off the buffer without copying.
//!   The buffer is unbounded: callers cap it with [`Splitter::buffered`].

use bytes::{Bytes, BytesMut};

/// Splits a stream of SSE bytes into whole events.
#[derive(Debug, Default)]
pub struct Splitter {
    buf: BytesMut,
    /// Bytes of `buf` already scanned.
    scanned: usize,
    /// No byte other than line terminators since the last line ended.
    line_empty: bool,
    /// The last scanned byte was a CR; an LF right after it belongs to the same terminator.
    after_cr: bool,
    /// That CR ended an empty line: the event is complete, its last byte still unknown.
    cr_ends_event: bool,
}

impl Splitter {
    pub fn new() -> Self {
        Self {
            line_empty: true,
            ..Self::default()
        }
    }

    /// Appends `chunk` and moves every event it completes to `out`, each including its
    /// terminating blank line.
    pub fn push(&mut self, chunk: &[u8], out: &mut Vec<Bytes>) {
        self.buf.extend_from_slice(chunk);
        let mut i = self.scanned;
        while i < self.buf.len() {
            let b = self.buf[i];
            if self.after_cr {
                self.after_cr = false;
                if self.cr_ends_event {
                    self.cr_ends_event = false;
                    // Either this LF completes the blank line's CRLF, or the event ended
                    // at the CR and `b` starts the next one.
                    let end = if b == b'\n' { i + 1 } else { i };
                    out.push(self.buf.split_to(end).freeze());
                    self.line_empty = true;
                    i = 0;
                    continue;
                }
                if b == b'\n' {
                    i += 1;
                    continue;
                }
            }
            match b {
                b'\n' if self.line_empty => {
                    out.push(self.buf.split_to(i + 1).freeze());
                    i = 0;
                    continue;
                }
                b'\n' => self.line_empty = true,
                b'\r' => {
                    self.after_cr = true;
                    self.cr_ends_event = self.line_empty;
                    self.line_empty = true;
                }
                _ => {
                    self.line_empty = false;
                    // Skip the rest of the line in one search.
                    let rest = &self.buf[i + 1..];
                    i += rest
                        .iter()
                        .position(|&c| c == b'\n' || c == b'\r')
                        .unwrap_or(rest.len());
                }
            }
            i += 1;
        }
        self.scanned = i;
    }

    /// Bytes held for an event not yet complete.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// At the end of the stream: the bytes still held, if any. That is an event without its
    /// blank line (which clients discard), or a whole event whose blank line ended in CR.
    pub fn finish(&mut self) -> Option<Bytes> {
        let rest = std::mem::take(&mut self.buf).freeze();
        *self = Self::new();
        (!rest.is_empty()).then_some(rest)
    }
}

/// One line of an event: its content, and its terminator (empty for a last, unterminated line).
fn lines(event: &[u8]) -> impl Iterator<Item = (&[u8], &[u8])> {
    let mut rest = event;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let end = rest
            .iter()
            .position(|&c| c == b'\n' || c == b'\r')
            .unwrap_or(rest.len());
        let term = match &rest[end..] {
            [b'\r', b'\n', ..] => 2,
            [] => 0,
            _ => 1,
        };
        let (line, after) = rest.split_at(end);
        let (term, after) = after.split_at(term);
        rest = after;
        Some((line, term))
    })
}

/// The value of a `data` field line (one leading space stripped), or `None` for other lines.
fn data_value(line: &[u8]) -> Option<&[u8]> {
    let value = line.strip_prefix(b"data")?;
    if value.is_empty() {
        return Some(value);
    }
    let value = value.strip_prefix(b":")?;
    Some(value.strip_prefix(b" ").unwrap_or(value))
}

/// The event's `data:` lines joined with `'\n'`, decoded as UTF-8 (invalid sequences become
/// U+FFFD, as in a browser); `None` if it has no data line.
pub fn data(event: &[u8]) -> Option<String> {
    let mut joined: Option<Vec<u8>> = None;
    for (line, _) in lines(event) {
        if let Some(value) = data_value(line) {
            match &mut joined {
                None => joined = Some(value.to_vec()),
                Some(j) => {
                    j.push(b'\n');
                    j.extend_from_slice(value);
                }
            }
        }
    }
    joined.map(|j| {
        String::from_utf8(j).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
    })
}

/// The same event with its data lines replaced by `data: <line>` for each line of `data`,
/// where the first data line was (or before the blank line if there was none). Every other
/// line (`id:`, `event:`, `retry:`, comments) keeps its place and bytes; new lines end like
/// the first data line (else the event's first line, else LF).
pub fn with_data(event: &[u8], data: &str) -> Vec<u8> {
    let first_term = |pred: &dyn Fn(&[u8]) -> bool| {
        lines(event)
            .find(|(l, t)| pred(l) && !t.is_empty())
            .map(|(_, t)| t)
    };
    let term = first_term(&|l| data_value(l).is_some())
        .or_else(|| first_term(&|_| true))
        .unwrap_or(b"\n");
    let mut out = Vec::with_capacity(event.len() + data.len() + 16);
    let write_data = |out: &mut Vec<u8>, last_term: &[u8]| {
        let mut parts = data.split('\n').peekable();
        while let Some(part) = parts.next() {
            out.extend_from_slice(b"data: ");
            out.extend_from_slice(part.as_bytes());
            out.extend_from_slice(if parts.peek().is_some() {
                term
            } else {
                last_term
            });
        }
    };
    let mut written = false;
    for (line, t) in lines(event) {
        if data_value(line).is_some() {
            if !written {
                // An unterminated data line stays unterminated, so the event stays incomplete.
                write_data(&mut out, if t.is_empty() { t } else { term });
                written = true;
            }
        } else if line.is_empty() && !written {
            write_data(&mut out, term);
            written = true;
            out.extend_from_slice(t);
        } else {
            out.extend_from_slice(line);
            out.extend_from_slice(t);
        }
    }
    if !written {
        if !matches!(out.last(), None | Some(b'\n' | b'\r')) {
            out.extend_from_slice(term);
        }
        write_data(&mut out, b"");
    }
    out
}

#[cfg(test)]
mod tests;
