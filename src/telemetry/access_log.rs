//! The access log: one line per request, on stderr with the other logs, text or JSON lines
//! as `--log-format` says; `--access-log off` (or `MCPWARDEN_ACCESS_LOG=off`) switches it off.
//!
//! Lines are gathered in memory and a thread of their own writes them in batches, every
//! [`FLUSH_EVERY`] and at exit, so a request costs a copy into a buffer (~140 ns), never a
//! write system call: at 10,000 requests a second that is 10 writes a second instead of
//! 10,000, and none on a request's path. The price: a line reaches stderr up to 100 ms after
//! its request ended, and a crash loses at most that much. Should stderr fall behind, the
//! request that finds [`HIGH_WATER`] bytes waiting writes them itself, which bounds memory.
//!
//! Invariants: nothing is allocated per request once the buffers have grown (two of them, in
//! turn: one gathers while the other is written); lines are written whole and in order.
//! Like the tracing subscriber, the log is process-wide: `init` once at start, then every
//! request's `logging` phase calls [`record`].

mod line;
#[cfg(test)]
mod tests;

use std::io::Write;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use jiff::Timestamp;

pub use line::TARGET;

use super::Finished;

/// How long a line may wait in memory.
pub const FLUSH_EVERY: Duration = Duration::from_millis(100);

/// Lines waiting past this are written by the request that adds one (1 MiB: ~4,000 lines,
/// 0.4 s of 10,000 requests a second).
pub const HIGH_WATER: usize = 1 << 20;

/// What each buffer starts with; they grow to what 100 ms of traffic needs, and keep it.
const INITIAL: usize = 64 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `2026-12-04T20:31:00.123456Z  INFO mcpwarden::access: request workspace=acme …`
    Text,
    /// `{"timestamp":…,"level":"INFO","fields":{"message":"request",…},"target":"mcpwarden::access"}`
    Json,
}

pub struct AccessLog {
    format: Format,
    pending: Mutex<Pending>,
    /// Held while a batch is written, which keeps batches in order.
    out: Mutex<Out>,
}

struct Pending {
    /// Lines not yet written.
    lines: Vec<u8>,
    stamps: line::Stamps,
}

struct Out {
    writer: Box<dyn Write + Send>,
    /// The batch being written; swapped with `pending`, so both keep their capacity.
    batch: Vec<u8>,
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
            pending: Mutex::new(Pending {
                lines: Vec::with_capacity(INITIAL),
                stamps: line::Stamps::default(),
            }),
            out: Mutex::new(Out {
                writer,
                batch: Vec::with_capacity(INITIAL),
            }),
        }
    }

    /// Logs a request that ends now.
    pub fn record(&self, request: &Finished<'_>, request_id: &[u8]) {
        self.record_at(Timestamp::now(), request, request_id);
    }

    pub fn record_at(&self, now: Timestamp, request: &Finished<'_>, request_id: &[u8]) {
        let full = {
            let mut pending = self.pending.lock().expect("not poisoned");
            let Pending { lines, stamps } = &mut *pending;
            line::write(lines, stamps, self.format, now, request, request_id);
            lines.len() >= HIGH_WATER
        };
        if full {
            self.flush();
        }
    }

    /// Writes every line gathered so far.
    pub fn flush(&self) {
        let mut out = self.out.lock().expect("not poisoned");
        let Out { writer, batch } = &mut *out;
        {
            let mut pending = self.pending.lock().expect("not poisoned");
            if pending.lines.is_empty() {
                return;
            }
            std::mem::swap(&mut pending.lines, batch);
        }
        // Nothing better to do with a broken stderr than to drop the lines.
        let _ = writer.write_all(batch).and_then(|()| writer.flush());
        batch.clear();
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
pub fn record(request: &Finished<'_>, request_id: &[u8]) {
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
