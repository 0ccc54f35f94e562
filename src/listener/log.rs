//! Where `flexscript serve` writes its log lines: standard error, through one process-wide
//! buffer.
//!
//! Contract: a warning or an error reaches stderr before the call that logged it returns;
//! info and debug lines (the per-request lines) are gathered and written out when
//! [`FLUSH_BYTES`] have piled up, at the latest [`FLUSH_EVERY`] after they were logged, and
//! when [`flush`] is called (the server calls it on the way out). Under load this turns one
//! `write(2)` per request into one per few hundred requests.

use std::io::Write;
use std::sync::{Mutex, MutexGuard, Once};
use std::time::Duration;
use tracing::{Level, Metadata};
use tracing_subscriber::fmt::MakeWriter;

/// Buffered bytes that trigger a write.
pub const FLUSH_BYTES: usize = 32 * 1024;
/// Longest time a buffered line waits.
pub const FLUSH_EVERY: Duration = Duration::from_millis(100);

/// A buffer of log lines in front of a sink.
pub struct LogBuffer {
    buf: Mutex<Vec<u8>>,
    sink: fn(&[u8]),
}

impl LogBuffer {
    /// An empty buffer in front of `sink`.
    pub const fn new(sink: fn(&[u8])) -> LogBuffer {
        LogBuffer {
            buf: Mutex::new(Vec::new()),
            sink,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Vec<u8>> {
        self.buf.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds `bytes`; writes everything out when `urgent` or when [`FLUSH_BYTES`] are reached.
    pub fn append(&self, bytes: &[u8], urgent: bool) {
        let mut buf = self.lock();
        buf.extend_from_slice(bytes);
        if urgent || buf.len() >= FLUSH_BYTES {
            (self.sink)(&buf);
            buf.clear();
        }
    }

    /// Writes out everything buffered.
    pub fn flush(&self) {
        let mut buf = self.lock();
        if !buf.is_empty() {
            (self.sink)(&buf);
            buf.clear();
        }
    }
}

fn to_stderr(bytes: &[u8]) {
    // Nowhere to report a failing stderr: the lines are dropped, as `eprintln!` would.
    let _ = std::io::stderr().write_all(bytes);
}

static STDERR: LogBuffer = LogBuffer::new(to_stderr);
static FLUSHER: Once = Once::new();

/// Writes out everything buffered for stderr.
pub fn flush() {
    STDERR.flush();
}

/// The [`MakeWriter`] of the serve command's subscriber. Creating it starts the thread that
/// writes out lines older than [`FLUSH_EVERY`].
#[derive(Clone, Copy, Debug)]
pub struct BufferedStderr;

impl BufferedStderr {
    pub fn new() -> BufferedStderr {
        FLUSHER.call_once(|| {
            let spawned = std::thread::Builder::new()
                .name("log-flush".into())
                .spawn(|| loop {
                    std::thread::sleep(FLUSH_EVERY);
                    flush();
                });
            if spawned.is_err() {
                eprintln!("warning: no log flushing thread; logs are written when 32 KiB pile up");
            }
        });
        BufferedStderr
    }
}

impl Default for BufferedStderr {
    fn default() -> Self {
        BufferedStderr::new()
    }
}

/// One log line being written into a [`LogBuffer`].
pub struct Line {
    to: &'static LogBuffer,
    urgent: bool,
}

impl Write for Line {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.to.append(bytes, self.urgent);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.to.flush();
        Ok(())
    }
}

/// Warnings and errors are written out at once.
fn urgent(level: &Level) -> bool {
    *level <= Level::WARN
}

impl<'a> MakeWriter<'a> for BufferedStderr {
    type Writer = Line;

    fn make_writer(&'a self) -> Line {
        Line {
            to: &STDERR,
            urgent: true,
        }
    }

    fn make_writer_for(&'a self, meta: &Metadata<'_>) -> Line {
        Line {
            to: &STDERR,
            urgent: urgent(meta.level()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    static SEEN: Mutex<Vec<u8>> = Mutex::new(Vec::new());
    fn record(bytes: &[u8]) {
        SEEN.lock().unwrap().extend_from_slice(bytes);
    }
    static TEST: LogBuffer = LogBuffer::new(record);

    fn seen() -> String {
        String::from_utf8(SEEN.lock().unwrap().clone()).unwrap()
    }

    #[test]
    fn lines_wait_until_flushed_urgent_or_many() {
        let mut info = Line {
            to: &TEST,
            urgent: false,
        };
        info.write_all(b"info 1\n").unwrap();
        info.write_all(b"info 2\n").unwrap();
        assert_eq!(seen(), "", "info lines wait");
        TEST.flush();
        assert_eq!(seen(), "info 1\ninfo 2\n");
        info.write_all(b"info 3\n").unwrap();
        let mut warn = Line {
            to: &TEST,
            urgent: true,
        };
        warn.write_all(b"warn\n").unwrap();
        assert_eq!(
            seen(),
            "info 1\ninfo 2\ninfo 3\nwarn\n",
            "a warning writes out, in order"
        );
        // A burst is written out without waiting for the timer.
        info.write_all(&vec![b'x'; FLUSH_BYTES]).unwrap();
        assert_eq!(seen().len(), 26 + FLUSH_BYTES);
        assert!(TEST.lock().is_empty());
        assert!(urgent(&Level::ERROR) && urgent(&Level::WARN));
        assert!(!urgent(&Level::INFO) && !urgent(&Level::DEBUG));
    }
}
