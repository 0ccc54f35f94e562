//! The one error type of the engine: a kind, a message, and where it happened.
//!
//! Builtins create errors without a location ([`Error::new`]); the compiler and the
//! interpreter attach the template name, span and source on the way out
//! ([`Error::with_location`]), so that `Display` renders a snippet with a caret.

use std::fmt;
use std::ops::Range;
use std::sync::Arc;

/// What went wrong, coarsely.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The source does not parse.
    Syntax,
    /// A filter, function, test or argument name that does not exist.
    UnknownName,
    /// A value of the wrong type for an operation, filter or function.
    Type,
    /// An argument with an invalid value (wrong count, out of range, malformed).
    InvalidArgument,
    /// A missing variable, key or index in strict mode.
    Undefined,
    /// Division or modulo by zero.
    DivisionByZero,
    /// A sandbox limit was exceeded (fuel, output size, depth, range size).
    Limit,
    /// A record look-up or shared-store call without a host that provides it.
    Host,
    /// Any other runtime failure.
    Runtime,
    /// Reading input (files, contexts, configuration) failed.
    Io,
}

impl ErrorKind {
    /// A short lower-case name, used in messages and snapshots.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Syntax => "syntax error",
            ErrorKind::UnknownName => "unknown name",
            ErrorKind::Type => "type error",
            ErrorKind::InvalidArgument => "invalid argument",
            ErrorKind::Undefined => "undefined",
            ErrorKind::DivisionByZero => "division by zero",
            ErrorKind::Limit => "limit exceeded",
            ErrorKind::Host => "host error",
            ErrorKind::Runtime => "runtime error",
            ErrorKind::Io => "io error",
        }
    }
}

/// Where an error happened: template name, 1-based line and column, byte span.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Location {
    /// The template's name.
    pub name: Arc<str>,
    /// 1-based line.
    pub line: usize,
    /// 1-based column, in characters.
    pub column: usize,
    /// Byte range in the source.
    pub span: Range<usize>,
    /// The whole source line the span starts on (for the snippet).
    pub source_line: String,
}

/// An engine error: kind, message, optional location, an optional hint (printed under the
/// caret, e.g. "did you mean `upper`?") and an optional cause ([`std::error::Error::source`]).
///
/// One pointer wide (everything lives in one box), so `Result<T, Error>` stays small on the
/// render's hot paths.
#[derive(Clone)]
pub struct Error(Box<Inner>);

#[derive(Clone)]
struct Inner {
    kind: ErrorKind,
    message: String,
    hint: Option<String>,
    location: Option<Location>,
    source: Option<Arc<dyn std::error::Error + Send + Sync>>,
}

const _: () = assert!(std::mem::size_of::<Error>() == std::mem::size_of::<usize>());

impl PartialEq for Error {
    /// Kind, message, hint and location; the cause is not compared.
    fn eq(&self, other: &Error) -> bool {
        let (a, b) = (&self.0, &other.0);
        a.kind == b.kind && a.message == b.message && a.hint == b.hint && a.location == b.location
    }
}

impl Eq for Error {}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Error");
        d.field("kind", &self.0.kind)
            .field("message", &self.0.message);
        if let Some(h) = &self.0.hint {
            d.field("hint", h);
        }
        if let Some(l) = &self.0.location {
            d.field("location", l);
        }
        if let Some(s) = &self.0.source {
            d.field("source", s);
        }
        d.finish()
    }
}

impl Error {
    /// An error without a location; the interpreter adds one when it passes by.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Error {
        Error(Box::new(Inner {
            kind,
            message: message.into(),
            hint: None,
            location: None,
            source: None,
        }))
    }

    /// The one shape of every wrong-type error: "`who`: `what` must be `expected`, got
    /// `got`" (`got` is the value's type with its article, `Value::type_with_article`),
    /// e.g. "truncate: length must be an integer, got a string".
    pub fn type_mismatch(who: &str, what: &str, expected: &str, got: &str) -> Error {
        Error::new(
            ErrorKind::Type,
            format!("{who}: {what} must be {expected}, got {got}"),
        )
    }

    /// Adds a hint printed under the caret.
    pub fn with_hint(mut self, hint: impl Into<String>) -> Error {
        self.0.hint = Some(hint.into());
        self
    }

    /// Keeps `cause` as this error's [`source`](std::error::Error::source) (an I/O or
    /// parse error behind an `Io` error), so that callers can walk the chain.
    pub fn with_source(mut self, cause: impl std::error::Error + Send + Sync + 'static) -> Error {
        self.0.source = Some(Arc::new(cause));
        self
    }

    /// Attaches a location unless the error already has one.
    /// `span` is a byte range into `source`.
    pub fn with_location(mut self, name: &str, source: &str, span: Range<usize>) -> Error {
        if self.0.location.is_none() {
            self.0.location = Some(locate(name, source, span));
        }
        self
    }

    /// What went wrong, coarsely.
    pub fn kind(&self) -> ErrorKind {
        self.0.kind
    }
    /// The message, without location or hint.
    pub fn message(&self) -> &str {
        &self.0.message
    }
    /// The hint printed under the caret, if any.
    pub fn hint(&self) -> Option<&str> {
        self.0.hint.as_deref()
    }
    /// Where it happened, if known.
    pub fn location(&self) -> Option<&Location> {
        self.0.location.as_ref()
    }
    /// Template name, if located.
    pub fn name(&self) -> Option<&str> {
        self.0.location.as_ref().map(|l| &*l.name)
    }
    /// 1-based line, if located.
    pub fn line(&self) -> Option<usize> {
        self.0.location.as_ref().map(|l| l.line)
    }
    /// 1-based column (in characters), if located.
    pub fn column(&self) -> Option<usize> {
        self.0.location.as_ref().map(|l| l.column)
    }
    /// Byte span in the source, if located.
    pub fn span(&self) -> Option<Range<usize>> {
        self.0.location.as_ref().map(|l| l.span.clone())
    }
}

/// Computes line, column and the source line for a byte span (clamped to the source).
fn locate(name: &str, source: &str, span: Range<usize>) -> Location {
    let start = floor_char_boundary(source, span.start.min(source.len()));
    let end = floor_char_boundary(source, span.end.clamp(start, source.len()));
    let before = &source[..start];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = source[line_start..start].chars().count() + 1;
    let line_end = source[start..]
        .find('\n')
        .map_or(source.len(), |i| start + i);
    Location {
        name: Arc::from(name),
        line,
        column,
        span: start..end,
        source_line: source[line_start..line_end]
            .trim_end_matches('\r')
            .to_string(),
    }
}

/// How many characters of a long source line the snippet shows.
const WINDOW: usize = 100;

fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    while i > 0 && !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

impl fmt::Display for Error {
    /// Renders `error: message`, then (when located) the `--> name:line:col` line,
    /// the source line and a caret under the span, with the hint after the caret.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "error: {}", self.0.message)?;
        let Some(loc) = &self.0.location else {
            if let Some(hint) = &self.0.hint {
                write!(f, "\n  = {hint}")?;
            }
            return Ok(());
        };
        let num = loc.line.to_string();
        let pad = " ".repeat(num.len() + 1);
        write!(f, "\n{pad}--> {}:{}:{}", loc.name, loc.line, loc.column)?;
        let chars: Vec<char> = loc.source_line.chars().collect();
        let col = (loc.column - 1).min(chars.len());
        // characters of the span that lie on this line, at least one caret
        let mut bytes = 0;
        let span_chars = chars[col..]
            .iter()
            .take_while(|c| {
                bytes += c.len_utf8();
                bytes <= loc.span.len()
            })
            .count()
            .max(1);
        // long lines show a window around the error, marked with `…`
        let start = col.saturating_sub(WINDOW / 2);
        let end = (start + WINDOW)
            .max(col + span_chars.min(WINDOW / 2))
            .min(chars.len());
        let shown: String = chars[start..end].iter().collect();
        let (lead, trail) = (
            if start > 0 { "…" } else { "" },
            if end < chars.len() { "…" } else { "" },
        );
        write!(f, "\n{pad} |\n {num} | {lead}{shown}{trail}")?;
        let indent = " ".repeat(col - start + lead.chars().count());
        write!(
            f,
            "\n{pad} | {indent}{}",
            "^".repeat(span_chars.min(end.saturating_sub(col)).max(1))
        )?;
        if let Some(hint) = &self.0.hint {
            write!(f, " {hint}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0
            .source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_snippet_with_caret_and_hint() {
        let src = "{\"name\": \"{{ x | uper }}\"}";
        let start = src.find("uper").unwrap();
        let err = Error::new(ErrorKind::UnknownName, "unknown filter `uper`")
            .with_hint("did you mean `upper`?")
            .with_location("return_data", src, start..start + 4);
        assert_eq!(err.line(), Some(1));
        assert_eq!(err.column(), Some(18));
        assert_eq!(
            err.to_string(),
            "error: unknown filter `uper`\n  --> return_data:1:18\n   |\n 1 | {\"name\": \"{{ x | uper }}\"}\n   |                  ^^^^ did you mean `upper`?"
        );
    }

    #[test]
    fn long_lines_show_a_window_around_the_error() {
        let src = format!("{}{{{{ x | uper }}}}{}", "a".repeat(500), "b".repeat(500));
        let start = src.find("uper").unwrap();
        let err = Error::new(ErrorKind::UnknownName, "unknown filter `uper`").with_location(
            "t",
            &src,
            start..start + 4,
        );
        let text = err.to_string();
        let lines: Vec<&str> = text.lines().collect();
        assert!(
            lines[3].starts_with(" 1 | …aaa") && lines[3].ends_with("bbb…"),
            "{text}"
        );
        assert!(lines[3].chars().count() < 120);
        let caret = lines[4].find('^').unwrap();
        let under: String = lines[3].chars().skip(caret).take(4).collect();
        assert_eq!(under, "uper", "{text}");
    }

    #[test]
    fn location_clamps_out_of_range_spans() {
        let err = Error::new(ErrorKind::Runtime, "x").with_location("t", "ab\ncd", 40..50);
        assert_eq!(err.line(), Some(2));
        assert_eq!(err.column(), Some(3));
    }
}
