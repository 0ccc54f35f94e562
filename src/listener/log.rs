//! Where `flexscript serve` writes its log lines: standard error, through one process-wide
//! buffer.
//!
//! Contract: a warning or an error reaches stderr before the call that logged it returns;
//! info and debug lines (the per-request lines) are gathered and written out when
//! [`FLUSH_BYTES`] have piled up, at the latest [`FLUSH_EVERY`] after they were logged, and
//! when [`flush`] is called (the server calls it on the way out). Under load this turns one
//! `write(2)` per request into one per few hundred requests.
//!
//! [`Timestamp`] writes each line's time as tracing's default timer does, formatting the date
//! and the time of day once per second (per thread) instead of once per line.
//!
//! [`LineFields`] formats the fields of an event as tracing's default does (`name=value`,
//! strings quoted), faster, and keeps every event on one line: control characters in any field
//! (`%`-displayed errors included) are escaped, so request-derived text cannot forge log lines.
//!
//! [`request_line`] writes the per-request line of `src/listener/server.rs` straight into the
//! buffer, the same text as that `tracing::info!` through [`LineFormat`] (a test compares the
//! two), without the event dispatch and field visitors; the server takes that path only when
//! `serve` installed the plain-text format ([`set_direct`]) and the filter lets the line through.

use std::cell::RefCell;
use std::fmt::{self, Write as _};
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard, Once};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tracing::field::{Field, Visit};
use tracing::Subscriber;
use tracing::{Level, Metadata};
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::format::{self, FormatEvent, Writer};
use tracing_subscriber::fmt::time::FormatTime;
use tracing_subscriber::fmt::FmtContext;
use tracing_subscriber::fmt::{FormatFields, MakeWriter};
use tracing_subscriber::registry::LookupSpan;

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

    fn write_out(&self, buf: &mut Vec<u8>) {
        if !buf.is_empty() {
            (self.sink)(buf);
            buf.clear();
        }
    }

    /// Adds `bytes`; writes everything out when `urgent` or when [`FLUSH_BYTES`] are reached.
    pub fn append(&self, bytes: &[u8], urgent: bool) {
        let mut buf = self.lock();
        buf.extend_from_slice(bytes);
        if urgent || buf.len() >= FLUSH_BYTES {
            self.write_out(&mut buf);
        }
    }

    /// Writes out everything buffered.
    pub fn flush(&self) {
        self.write_out(&mut self.lock());
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
    /// The writer; the first call starts the flushing thread.
    pub fn new() -> BufferedStderr {
        FLUSHER.call_once(|| {
            let spawned = std::thread::Builder::new()
                .name("log-flush".into())
                .spawn(|| loop {
                    std::thread::sleep(FLUSH_EVERY);
                    flush();
                });
            if spawned.is_err() {
                eprintln!(
                    "warning: no log flushing thread; logs are written when {} KiB pile up",
                    FLUSH_BYTES / 1024
                );
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

/// The timer of the serve command's subscriber: `2026-12-05T06:19:00.123456Z` (UTC,
/// microseconds), the text of tracing's default `SystemTime` timer.
#[derive(Clone, Copy, Debug, Default)]
pub struct Timestamp;

/// Seconds since the epoch from which the default timer writes a year above 9999 (it then
/// writes `+YYYYY`: left to it).
const YEAR_10000: u64 = 253_402_300_800;

thread_local! {
    /// The last second formatted on this thread and its `YYYY-MM-DDTHH:MM:SS` text.
    static SECOND: RefCell<(u64, String)> = const { RefCell::new((u64::MAX, String::new())) };
}

/// Writes the time `since_epoch` as [`Timestamp`] does.
fn write_time(w: &mut impl fmt::Write, since_epoch: Duration) -> fmt::Result {
    let secs = since_epoch.as_secs();
    SECOND.with(|cell| {
        let mut cell = cell.borrow_mut();
        if cell.0 != secs {
            let t = chrono::DateTime::from_timestamp(secs as i64, 0).unwrap_or_default();
            cell.1.clear();
            write!(cell.1, "{}", t.format("%Y-%m-%dT%H:%M:%S"))?;
            cell.0 = secs;
        }
        w.write_str(&cell.1)
    })?;
    let mut fraction = *b".000000Z";
    let mut micros = since_epoch.subsec_micros();
    for digit in fraction[1..7].iter_mut().rev() {
        *digit = b'0' + (micros % 10) as u8;
        micros /= 10;
    }
    // ASCII only.
    w.write_str(std::str::from_utf8(&fraction).unwrap_or_default())
}

impl FormatTime for Timestamp {
    fn format_time(&self, w: &mut Writer<'_>) -> fmt::Result {
        match SystemTime::now().duration_since(UNIX_EPOCH) {
            Ok(d) if d.as_secs() < YEAR_10000 => write_time(w, d),
            // A clock before 1970 or after 9999: the default timer's own text.
            _ => tracing_subscriber::fmt::time::SystemTime.format_time(w),
        }
    }
}

/// The event formatter of the serve command's text logs, used with [`LineFields`]: the text of
/// tracing's default (`Full`) format with [`Timestamp`] and no target, built in one string and
/// handed to the writer at once instead of piece by piece through the formatting machinery.
/// Events inside spans and coloured output (a terminal) go to the default format itself.
#[derive(Debug)]
pub struct LineFormat {
    full: format::Format<format::Full, Timestamp>,
}

impl LineFormat {
    /// The formatter (its fallback configured as `serve` configures the default format).
    pub fn new() -> LineFormat {
        LineFormat {
            full: format::Format::default()
                .with_timer(Timestamp)
                .with_target(false),
        }
    }
}

impl Default for LineFormat {
    fn default() -> Self {
        LineFormat::new()
    }
}

thread_local! {
    /// The line being built on this thread (kept to reuse its allocation).
    static LINE: RefCell<String> = const { RefCell::new(String::new()) };
}

/// The default format's level column: the name right-aligned in five characters.
fn level_text(level: &Level) -> &'static str {
    match *level {
        Level::TRACE => "TRACE ",
        Level::DEBUG => "DEBUG ",
        Level::INFO => " INFO ",
        Level::WARN => " WARN ",
        Level::ERROR => "ERROR ",
    }
}

impl<S, N> FormatEvent<S, N> for LineFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> fmt::Result {
        if writer.has_ansi_escapes() || ctx.event_scope().is_some() {
            return self.full.format_event(ctx, writer, event);
        }
        let mut build = |line: &mut String| -> fmt::Result {
            line.clear();
            if Timestamp.format_time(&mut Writer::new(line)).is_err() {
                line.push_str("<unknown time>");
            }
            line.push(' ');
            line.push_str(level_text(event.metadata().level()));
            let mut v = LineVisitor {
                out: &mut *line,
                first: true,
                result: Ok(()),
            };
            event.record(&mut v);
            v.result?;
            line.push('\n');
            writer.write_str(line)
        };
        // A field's `Debug` that logs would find the buffer taken: it gets its own.
        LINE.with(|cell| match cell.try_borrow_mut() {
            Ok(mut line) => build(&mut line),
            Err(_) => build(&mut String::new()),
        })
    }
}

/// Whether the process-wide subscriber is `serve`'s plain-text one ([`LineFormat`] writing to
/// [`BufferedStderr`], no colours), so that [`request_line`] writes what it would.
static DIRECT: AtomicBool = AtomicBool::new(false);

/// Declares (once the subscriber is installed) whether [`request_line`] may be used.
pub fn set_direct(on: bool) {
    DIRECT.store(on, Ordering::Relaxed);
}

/// Whether [`request_line`] writes what the installed subscriber would (see [`set_direct`]).
pub fn direct() -> bool {
    DIRECT.load(Ordering::Relaxed)
}

/// Appends ` name=value` for a string field, as [`LineVisitor`] records it.
fn push_str_field(line: &mut String, name: &str, value: &str) {
    line.push(' ');
    line.push_str(name);
    line.push('=');
    if plain(value) {
        line.push('"');
        line.push_str(value);
        line.push('"');
    } else {
        let _ = write!(OneLine(line), "{value:?}");
    }
}

/// The fields of the per-request line after the level: what [`LineFormat`] writes for
/// `info!(endpoint, method = %method, status, duration_ms, run_id, "request")`.
fn request_fields(
    line: &mut String,
    endpoint: &str,
    method: &str,
    status: u16,
    micros: u64,
    run_id: &str,
) {
    line.push_str("request");
    push_str_field(line, "endpoint", endpoint);
    line.push_str(" method=");
    // `%method`: its `Display`, escaped as `record_debug` escapes it
    let _ = OneLine(line).write_str(method);
    line.push_str(" status=");
    line.push_str(decimal(u64::from(status), false, &mut [0; 21]));
    line.push_str(" duration_ms=");
    millis_text(line, micros);
    push_str_field(line, "run_id", run_id);
    line.push('\n');
}

/// Writes the per-request line into the stderr buffer (an info line: written out with the
/// next batch). Only when [`direct`] and the filter enables the server's info lines.
pub fn request_line(endpoint: &str, method: &str, status: u16, micros: u64, run_id: &str) {
    let build = |line: &mut String| {
        line.clear();
        if Timestamp.format_time(&mut Writer::new(line)).is_err() {
            line.push_str("<unknown time>");
        }
        line.push(' ');
        line.push_str(level_text(&Level::INFO));
        request_fields(line, endpoint, method, status, micros, run_id);
        STDERR.append(line.as_bytes(), false);
    };
    LINE.with(|cell| match cell.try_borrow_mut() {
        Ok(mut line) => build(&mut line),
        Err(_) => build(&mut String::new()),
    })
}

/// The field formatter of the serve command's subscriber (see the module documentation).
#[derive(Clone, Copy, Debug, Default)]
pub struct LineFields;

impl<'w> FormatFields<'w> for LineFields {
    fn format_fields<R: RecordFields>(&self, writer: Writer<'w>, fields: R) -> fmt::Result {
        let mut v = LineVisitor {
            out: writer,
            first: true,
            result: Ok(()),
        };
        fields.record(&mut v);
        v.result
    }
}

struct LineVisitor<W: fmt::Write> {
    out: W,
    first: bool,
    result: fmt::Result,
}

impl<W: fmt::Write> LineVisitor<W> {
    /// Writes the separator and `name=` (nothing for the message); `false` to skip the field.
    fn start(&mut self, field: &Field) -> bool {
        if self.result.is_err() || field.name().starts_with("log.") {
            return false;
        }
        if !std::mem::take(&mut self.first) {
            self.result = self.out.write_char(' ');
        }
        let name = field.name();
        if name != "message" {
            let name = name.strip_prefix("r#").unwrap_or(name);
            self.result = self
                .result
                .and_then(|_| self.out.write_str(name))
                .and_then(|_| self.out.write_char('='));
        }
        true
    }
}

/// Text that needs no escaping, inside quotes or out: printable ASCII without `"` and `\`.
fn plain(s: &str) -> bool {
    // Every byte looked at, without an early exit, so that the loop is vectorised (a run id
    // is 32 bytes).
    s.bytes().fold(true, |ok, b| {
        ok & ((0x20..0x7f).contains(&b) & (b != b'"') & (b != b'\\'))
    })
}

/// `n` in decimal (after a `-` when `negative`), as `{}` writes it, without the formatting
/// machinery: the per-request line has a status and often other integers.
/// Writes `micros / 1000.0` as `{:?}` writes that float (`0.0`, `0.412`, `12.5`), from the
/// integer: a number of whole microseconds has at most three decimals, and while the floats
/// near it are far closer together than 0.001 (below 10^9 ms, 11.5 days) the float nearest
/// `micros / 1000` prints as exactly those decimals (a test compares the two). Longer
/// durations take the float formatter.
fn millis_text(line: &mut String, micros: u64) {
    if micros >= 1_000_000_000_000 {
        let _ = write!(line, "{:?}", micros as f64 / 1000.0);
        return;
    }
    line.push_str(decimal(micros / 1000, false, &mut [0; 21]));
    let mut frac = micros % 1000;
    line.push('.');
    if frac == 0 {
        line.push('0');
        return;
    }
    let mut digits = [b'0'; 3];
    for d in digits.iter_mut().rev() {
        *d = b'0' + (frac % 10) as u8;
        frac /= 10;
    }
    let end = 3 - digits.iter().rev().take_while(|&&d| d == b'0').count();
    // ASCII digits only.
    line.push_str(std::str::from_utf8(&digits[..end]).unwrap_or_default());
}

fn decimal(mut n: u64, negative: bool, buf: &mut [u8; 21]) -> &str {
    let mut at = buf.len();
    loop {
        at -= 1;
        buf[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    if negative {
        at -= 1;
        buf[at] = b'-';
    }
    // Only ASCII digits and `-` were written.
    std::str::from_utf8(&buf[at..]).unwrap_or_default()
}

/// `{:?}` of `v` from ryu, for `1e-4 <= |v| < 1e16` with more than 25 bits after the binary
/// point (a request's duration in milliseconds, measured in nanoseconds, nearly always is);
/// `None` for the rest, left to `{:?}`. Both write the shortest digits that read back as `v`
/// (the closest such digits), in plain decimal notation with at least one digit after the point
/// (`0.25`, `0.000123`) in that range; outside it `{:?}` switches to an exponent at other bounds
/// than ryu. They differ only on an exact tie between two shortest candidates (ryu rounds
/// half to even, `{:?}` up: `835733985643676.25`), which needs the exact decimal expansion of
/// `v` to have at most 18 significant digits; a value with more than 25 fractional bits has
/// at least 19 (its expansion is an odd multiple of 5^26 over a power of ten), so it has none.
/// A test compares the two.
fn float_text(v: f64, buf: &mut ryu::Buffer) -> Option<&str> {
    // Scaling by a power of two is exact: a fraction left means more than 25 fractional bits.
    ((1e-4..1e16).contains(&v.abs()) && (v * 33_554_432.0).fract() != 0.0)
        .then(|| buf.format_finite(v))
}

/// Escapes control characters (C0, DEL, C1) as it writes: one event, one line.
struct OneLine<'a, W: fmt::Write>(&'a mut W);

impl<W: fmt::Write> fmt::Write for OneLine<'_, W> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let clean = |c: char| !(c.is_control());
        if s.chars().all(clean) {
            return self.0.write_str(s);
        }
        for c in s.chars() {
            if clean(c) {
                self.0.write_char(c)?;
            } else {
                write!(self.0, "{}", c.escape_default())?;
            }
        }
        Ok(())
    }
}

impl<W: fmt::Write> Visit for LineVisitor<W> {
    fn record_str(&mut self, field: &Field, value: &str) {
        if !self.start(field) {
            return;
        }
        self.result = match (field.name() == "message", plain(value)) {
            (true, true) => self.out.write_str(value),
            (false, true) => self
                .out
                .write_char('"')
                .and_then(|_| self.out.write_str(value))
                .and_then(|_| self.out.write_char('"')),
            (true, false) => write!(OneLine(&mut self.out), "{value}"),
            (false, false) => write!(OneLine(&mut self.out), "{value:?}"),
        };
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        if self.start(field) {
            self.result = self.out.write_str(decimal(value, false, &mut [0; 21]));
        }
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        if self.start(field) {
            self.result =
                self.out
                    .write_str(decimal(value.unsigned_abs(), value < 0, &mut [0; 21]));
        }
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        // `{:?}` of a float is digits, `.`, `-`, `e`, `inf` or `NaN`: nothing to escape.
        if self.start(field) {
            self.result = match float_text(value, &mut ryu::Buffer::new()) {
                Some(text) => self.out.write_str(text),
                None => write!(self.out, "{value:?}"),
            };
        }
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        if self.start(field) {
            self.result = self.out.write_str(if value { "true" } else { "false" });
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if self.start(field) {
            self.result = write!(OneLine(&mut self.out), "{value:?}");
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

    thread_local! {
        /// What the subscribers of [`formatted`] and [`tracing_formatted`] write (per thread:
        /// the subscriber writes on the thread of the event, and tests run side by side).
        static OUT: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    struct Capture;
    impl Write for Capture {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            OUT.with(|o| o.borrow_mut().extend_from_slice(b));
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// [`bare`]'s builder: default fields and format without time, writing to [`Capture`].
    type Bare = tracing_subscriber::fmt::SubscriberBuilder<
        tracing_subscriber::fmt::format::DefaultFields,
        tracing_subscriber::fmt::format::Format<tracing_subscriber::fmt::format::Full, ()>,
        tracing_subscriber::filter::LevelFilter,
        fn() -> Capture,
    >;

    /// The subscriber `serve` uses, without time, target and level, writing to [`OUT`].
    fn bare() -> Bare {
        tracing_subscriber::fmt()
            .with_writer((|| Capture) as fn() -> Capture)
            .with_ansi(false)
            .without_time()
            .with_target(false)
            .with_level(false)
    }

    /// Runs `event` under `subscriber` and returns what it wrote.
    fn captured(
        subscriber: impl tracing::Subscriber + Send + Sync,
        event: impl FnOnce(),
    ) -> String {
        OUT.with(|o| o.borrow_mut().clear());
        tracing::subscriber::with_default(subscriber, event);
        OUT.with(|o| String::from_utf8(o.borrow().clone()).unwrap())
    }

    /// Formats one event through a real subscriber using [`LineFields`], as `serve` does.
    fn formatted(event: impl FnOnce()) -> String {
        captured(bare().fmt_fields(LineFields).finish(), event)
    }

    /// Formats one event with tracing's own field formatter.
    fn tracing_formatted(event: impl FnOnce()) -> String {
        captured(bare().finish(), event)
    }

    #[test]
    fn fields_read_as_the_default_format_and_stay_on_one_line() {
        let line = formatted(|| {
            tracing::info!(
                endpoint = "orders",
                method = %"GET",
                status = 200u16,
                duration_ms = 0.25,
                ok = true,
                delta = -3i64,
                "request"
            )
        });
        assert_eq!(
            line,
            "request endpoint=\"orders\" method=GET status=200 duration_ms=0.25 ok=true delta=-3\n"
        );
        // request-derived text cannot start a new line or smuggle terminal escapes
        let line = formatted(|| {
            tracing::warn!(
                error = %"bad\ninjected INFO line\u{1b}[31m",
                name = "quote\"d\nname",
                "step \"x\" failed"
            )
        });
        assert_eq!(line.lines().count(), 1, "{line}");
        assert_eq!(
            line,
            "step \"x\" failed error=bad\\ninjected INFO line\\u{1b}[31m name=\"quote\\\"d\\nname\"\n"
        );
        let line = formatted(|| tracing::info!("dynamic {}", "message\nsplit"));
        assert_eq!(line, "dynamic message\\nsplit\n");
    }

    #[test]
    fn the_direct_request_line_reads_as_the_formatted_event() {
        let cases: &[(&str, &str, u16, u64, &str)] = &[
            (
                "bench",
                "GET",
                200,
                380_711,
                "01a2472acf0d7fb5b41170b728bc7812",
            ),
            ("-", "POST", 404, 4, "-"),
            ("orders", "PATCH", 503, 12_500, "-"),
            ("quote\"d\nname\u{1b}[31m", "PURGE", 0, 1, "r\\1"),
            ("é", "X-CUSTOM", u16::MAX, u64::MAX, ""),
            ("x", "GET", 200, 250, "-"),
            ("x", "GET", 200, 0, "-"),
            ("x", "GET", 200, 123_456_789_012, "-"),
            ("x", "GET", 200, (1 << 53) - 1, "-"),
            ("x", "GET", 200, 1 << 53, "-"),
        ];
        for &(endpoint, method, status, micros, run_id) in cases {
            // What src/listener/server.rs gives tracing when the direct line is off.
            let duration_ms = micros as f64 / 1000.0;
            let want = formatted(|| {
                tracing::info!(
                    endpoint,
                    method = %method,
                    status,
                    duration_ms,
                    run_id,
                    "request"
                )
            });
            let mut got = String::new();
            request_fields(&mut got, endpoint, method, status, micros, run_id);
            assert_eq!(got, want);
        }
        // Off until `serve` installs its text format.
        assert!(!direct());
    }

    #[test]
    fn numbers_read_as_the_default_format() {
        for u in [
            0u64,
            7,
            10,
            99,
            200,
            404,
            65_535,
            1 << 40,
            u64::MAX - 1,
            u64::MAX,
        ] {
            assert_eq!(decimal(u, false, &mut [0; 21]), u.to_string());
        }
        for i in [
            0i64,
            -1,
            9,
            -10,
            12_345,
            -98_765,
            i64::MAX,
            i64::MIN,
            i64::MIN + 1,
        ] {
            assert_eq!(
                decimal(i.unsigned_abs(), i < 0, &mut [0; 21]),
                i.to_string()
            );
        }
        // through the subscriber, against tracing's own field formatter
        for (u, i, f) in [
            (0u64, 0i64, 0.0f64),
            (200, -1, 0.25),
            (u64::MAX, i64::MIN, -0.0),
            (404, i64::MAX, 0.29306699999999997),
            (1, -42, f64::NAN),
            (65_535, 7, f64::INFINITY),
            (10, -10, f64::NEG_INFINITY),
            (3, 3, 1e-7),
            (3, 3, 1.5e300),
            (3, 3, 123_456_789.0),
        ] {
            let ours =
                formatted(|| tracing::info!(status = u, delta = i, duration_ms = f, "request"));
            let theirs = tracing_formatted(|| {
                tracing::info!(status = u, delta = i, duration_ms = f, "request")
            });
            assert_eq!(ours, theirs);
        }
    }

    /// The lines of `events` through the serve command's text subscriber, with [`LineFormat`]
    /// or with tracing's default format configured alike, each without its timestamp (checked
    /// for its shape).
    fn serve_lines(ours: bool, ansi: bool, events: &dyn Fn()) -> Vec<String> {
        static OUT: Mutex<Vec<u8>> = Mutex::new(Vec::new());
        struct Capture;
        impl Write for Capture {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                OUT.lock().unwrap().extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let builder = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new("trace"))
            .with_writer(|| Capture)
            .with_timer(Timestamp)
            .with_target(false)
            .with_ansi(ansi)
            .fmt_fields(LineFields);
        OUT.lock().unwrap().clear();
        if ours {
            let s = builder.event_format(LineFormat::new()).finish();
            tracing::subscriber::with_default(s, events);
        } else {
            tracing::subscriber::with_default(builder.finish(), events);
        }
        let out = String::from_utf8(OUT.lock().unwrap().clone()).unwrap();
        out.lines()
            .map(|l| {
                let l = l.strip_prefix("\u{1b}[2m").unwrap_or(l);
                let (time, rest) = l.split_at("2026-12-05T06:18:02.000007Z".len());
                assert!(time.ends_with('Z') && time.as_bytes()[10] == b'T', "{l}");
                rest.to_string()
            })
            .collect()
    }

    #[test]
    fn line_format_writes_the_default_format() {
        let events = || {
            tracing::info!(
                endpoint = "bench",
                method = %"GET",
                status = 200u16,
                duration_ms = 0.268982,
                run_id = "01a2468660407d5a8bb67a5a73141969",
                "request"
            );
            tracing::info!(endpoint = "-", method = %"POST", status = 404u16, duration_ms = 1e-7, run_id = "-", "request");
            tracing::warn!(error = %"bad\ninjected\u{1b}[31m", name = "quote\"d", "step \"x\" failed");
            tracing::error!("request handler panicked");
            tracing::debug!(
                n = -3i64,
                ok = false,
                f = f64::NAN,
                "debug {}",
                "line\nsplit"
            );
            tracing::trace!(v = ?vec![1, 2], "trace");
            tracing::info!(r#type = "raw name", "raw");
            tracing::info!("");
            let span = tracing::info_span!("run", id = "r1", step = 2u64);
            let _in = span.enter();
            tracing::info!(endpoint = "in a span", "request");
            let inner = tracing::debug_span!("inner");
            let _inner = inner.enter();
            tracing::warn!("nested");
        };
        for ansi in [false, true] {
            let ours = serve_lines(true, ansi, &events);
            let theirs = serve_lines(false, ansi, &events);
            assert_eq!(ours.len(), 10);
            assert_eq!(ours, theirs, "ansi {ansi}");
        }
        assert_eq!(
            serve_lines(true, false, &events)[0],
            "  INFO request endpoint=\"bench\" method=GET status=200 duration_ms=0.268982 run_id=\"01a2468660407d5a8bb67a5a73141969\""
        );
    }

    #[test]
    fn millis_text_is_the_debug_text_of_the_milliseconds() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(5);
        let check = |micros: u64| {
            let mut got = String::new();
            millis_text(&mut got, micros);
            assert_eq!(got, format!("{:?}", micros as f64 / 1000.0), "{micros}");
        };
        (0..2_000_000).for_each(check);
        for _ in 0..1_000_000 {
            check(rng.gen_range(0..1_000_000_000_000));
            check(rng.gen_range(0..u64::MAX));
        }
        for m in [
            999_999_999_999,
            1_000_000_000_000,
            1 << 53,
            (1 << 53) + 1,
            u64::MAX,
        ] {
            check(m);
        }
    }

    #[test]
    fn float_text_is_the_debug_text() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(4);
        let check = |v: f64| {
            let mut buf = ryu::Buffer::new();
            if let Some(text) = float_text(v, &mut buf) {
                assert_eq!(text, format!("{v:?}"), "{v:e}");
                true
            } else {
                false
            }
        };
        let mut covered = 0;
        for v in [
            1e-4,
            0.00010000000000000002,
            9.999999999999999e-5,
            1e16,
            9999999999999998.0,
            0.25,
            0.29306699999999997,
            1.0,
            12.0,
            0.1,
            0.3,
            1e15,
            123456789.0,
            -0.5,
            -1e-4,
            5e-324,
            f64::MAX,
            f64::MIN_POSITIVE,
            0.0,
            -0.0,
            f64::NAN,
            f64::INFINITY,
        ] {
            covered += usize::from(check(v));
        }
        for _ in 0..300_000 {
            // any bit pattern, and request durations: whole nanoseconds as milliseconds
            covered += usize::from(check(f64::from_bits(rng.gen())));
            let d = std::time::Duration::from_nanos(rng.gen_range(0..10_000_000_000));
            covered += usize::from(check(d.as_secs_f64() * 1000.0));
            covered += usize::from(check(rng.gen_range(1e-4..1e16)));
            covered += usize::from(check(10f64.powf(rng.gen_range(-4.5..16.5))));
            covered += usize::from(check(-10f64.powf(rng.gen_range(-4.5..16.5))));
        }
        assert!(covered > 600_000, "{covered}");
        // ties and short expansions go to `{:?}` (the first is the tie the random values found:
        // exactly ...676.25, where ryu writes ...676.2 and `{:?}` ...676.3)
        let tie = 835_733_985_643_676.0 + 0.25;
        assert_eq!(format!("{tie:?}"), "835733985643676.3");
        assert_eq!(ryu::Buffer::new().format_finite(tie), "835733985643676.2");
        for v in [tie, 0.25, 1.5, 1234.125, 2f64.powi(-25) * 3.0] {
            assert!(float_text(v, &mut ryu::Buffer::new()).is_none(), "{v}");
        }
    }

    #[test]
    fn timestamps_read_as_rfc_3339_with_microseconds() {
        use chrono::{SecondsFormat, TimeZone, Utc};
        for (secs, nanos) in [
            (0u64, 0u32),
            (1_796_451_482, 123_456_789),
            (1_796_451_482, 999_999_999),
            (1_796_451_483, 1_000),
            (1_796_451_482, 5),
            (951_782_400, 42_000), // 2000-02-29
            (YEAR_10000 - 1, 999_999_000),
        ] {
            let mut out = String::new();
            write_time(&mut out, Duration::new(secs, nanos)).unwrap();
            let want = Utc
                .timestamp_opt(secs as i64, nanos / 1000 * 1000)
                .unwrap()
                .to_rfc3339_opts(SecondsFormat::Micros, true);
            assert_eq!(out, want);
        }
        // the same second again (cached text), then the next one
        let mut out = String::new();
        write_time(&mut out, Duration::new(1_796_451_482, 7_000)).unwrap();
        write_time(&mut out, Duration::new(1_796_451_483, 0)).unwrap();
        assert_eq!(
            out,
            "2026-12-05T06:18:02.000007Z2026-12-05T06:18:03.000000Z"
        );
        // the live timer writes the same shape
        let mut live = String::new();
        Timestamp.format_time(&mut Writer::new(&mut live)).unwrap();
        assert_eq!(live.len(), "2026-12-05T06:18:02.000007Z".len(), "{live}");
        assert!(live.ends_with('Z') && live.as_bytes()[10] == b'T', "{live}");
    }
}
