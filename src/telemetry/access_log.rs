//! The access log: one line per request, on stderr with the other logs, text or JSON lines
//! as `--log-format` says; `--access-log off` (or `MCPWARDEN_ACCESS_LOG=off`) switches it off.
//!
//! A request only copies what its line needs into memory (an [`Entry`]: numbers, label
//! names, a shared handle on its key, its id; no formatting, no allocation once the buffers
//! have grown); a thread of its own formats the gathered entries and writes them in batches,
//! every [`FLUSH_EVERY`] and at exit. At 10,000 requests a second that is 10 writes a second
//! instead of 10,000, and neither formatting nor a write on a request's path. The price: a
//! line reaches stderr up to 100 ms after its request ended, and a crash loses at most that
//! much. Should stderr fall behind, the request that finds [`HIGH_WATER`] entries waiting
//! writes them itself, which bounds memory.
//!
//! Invariants: lines are written whole and in order (two entry buffers, in turn: one gathers
//! while the other is formatted and written); the log is process-wide, like the tracing
//! subscriber: `init` once at start, then every request's `logging` phase calls [`record`].

mod line;
#[cfg(test)]
mod tests;

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use http::HeaderValue;
use jiff::Timestamp;

pub use line::TARGET;

use super::{Finished, Outcome};
use crate::policy::Key;

/// How long a line may wait in memory.
pub const FLUSH_EVERY: Duration = Duration::from_millis(100);

/// Entries waiting past this many are written by the request that adds one (~0.4 s of
/// 10,000 requests a second; about 140 bytes each).
pub const HIGH_WATER: usize = 4096;

/// Entries each buffer has room for at first; they grow to what 100 ms of traffic needs, and
/// keep it.
const INITIAL: usize = 512;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `2026-12-04T20:31:00.123456Z  INFO mcpwarden::access: request workspace=acme …`
    Text,
    /// `{"timestamp":…,"level":"INFO","fields":{"message":"request",…},"target":"mcpwarden::access"}`
    Json,
}

pub struct AccessLog {
    format: Format,
    /// Entries not yet written.
    pending: Mutex<Vec<Entry>>,
    /// Held while a batch is formatted and written, which keeps batches in order.
    out: Mutex<Out>,
}

/// One request's line, not yet formatted.
#[derive(Debug)]
pub struct Entry {
    at: Timestamp,
    /// The caller's key: shared with the policy, so the line names it without a copy.
    key: Option<Arc<Key>>,
    method: &'static str,
    tool: &'static str,
    outcome: Outcome,
    status: u16,
    upstream_status: Option<u16>,
    duration: Duration,
    bytes_in: usize,
    bytes_out: usize,
    request_id: HeaderValue,
}

struct Out {
    writer: Box<dyn Write + Send>,
    /// The batch being written; swapped with `pending`, so both keep their capacity.
    batch: Vec<Entry>,
    /// The batch's lines.
    text: Vec<u8>,
    stamps: line::Stamps,
}

impl std::fmt::Debug for AccessLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AccessLog({:?})", self.format)
    }
}

impl AccessLog {
    pub fn new(format: Format, writer: Box<dyn Write + Send>) -> Self {
        Self {
            format,
            pending: Mutex::new(Vec::with_capacity(INITIAL)),
            out: Mutex::new(Out {
                writer,
                batch: Vec::with_capacity(INITIAL),
                text: Vec::with_capacity(INITIAL * 256),
                stamps: line::Stamps::default(),
            }),
        }
    }

    /// Logs a request that ends now.
    pub fn record(&self, request: &Finished<'_>, request_id: HeaderValue) {
        self.record_at(Timestamp::now(), request, request_id);
    }

    pub fn record_at(&self, at: Timestamp, request: &Finished<'_>, request_id: HeaderValue) {
        let entry = Entry {
            at,
            key: request.identity.map(|i| i.shared_key().clone()),
            method: request.method,
            tool: request.tool,
            outcome: request.outcome,
            status: request.status,
            upstream_status: request.upstream_status,
            duration: request.duration,
            bytes_in: request.bytes_in,
            bytes_out: request.bytes_out,
            request_id,
        };
        let full = {
            let mut pending = self.pending.lock().expect("not poisoned");
            pending.push(entry);
            pending.len() >= HIGH_WATER
        };
        if full {
            self.flush();
        }
    }

    /// Writes every line gathered so far.
    pub fn flush(&self) {
        let mut out = self.out.lock().expect("not poisoned");
        let Out {
            writer,
            batch,
            text,
            stamps,
        } = &mut *out;
        {
            let mut pending = self.pending.lock().expect("not poisoned");
            if pending.is_empty() {
                return;
            }
            std::mem::swap(&mut *pending, batch);
        }
        for entry in batch.drain(..) {
            line::write(text, stamps, self.format, &entry);
        }
        // Nothing better to do with a broken stderr than to drop the lines.
        let _ = writer.write_all(text).and_then(|()| writer.flush());
        text.clear();
    }
}

static LOG: OnceLock<AccessLog> = OnceLock::new();

/// Switches the access log on, to stderr, in `format`; a second call changes nothing.
pub fn init(format: Format) {
    if LOG
        .set(AccessLog::new(format, Box::new(std::io::stderr())))
        .is_err()
    {
        return;
    }
    let spawned = std::thread::Builder::new()
        .name("mcpwarden-access-log".into())
        .spawn(|| {
            loop {
                std::thread::sleep(FLUSH_EVERY);
                flush();
            }
        });
    if let Err(e) = spawned {
        tracing::warn!("access log lines will be written in batches only: {e}");
    }
}

/// Logs a finished request, when the access log is on.
pub fn record(request: &Finished<'_>, request_id: HeaderValue) {
    if let Some(log) = LOG.get() {
        log.record(request, request_id);
    }
}

/// Writes what is gathered; called before the process exits.
pub fn flush() {
    if let Some(log) = LOG.get() {
        log.flush();
    }
}
