//! The template lexer: splits the source into text, comments, `{{ }}` prints,
//! `{% %}` tags and verbatim blocks (as Twig's lexer does), bounding bracket and
//! operator nesting on the way. pest then parses only the code inside each delimiter.

use super::fast::{is_space, is_space_char, verbatim_candidate};
use crate::error::{Error, ErrorKind};

/// Whitespace control on one side of a delimiter.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Trim {
    No,
    /// `-`: all whitespace, newlines included.
    All,
    /// `~`: spaces and tabs only.
    Line,
}

/// What a lexed piece is.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Kind {
    Text,
    Comment,
    Print,
    Tag,
    /// The body of a verbatim block (already trimmed per its tags' markers).
    Verbatim,
}

/// One lexed piece: its whole span, and for prints and tags the span of the code inside.
#[derive(Clone, Debug)]
pub struct Token {
    pub kind: Kind,
    pub start: usize,
    pub end: usize,
    pub code: (usize, usize),
    pub ltrim: Trim,
    pub rtrim: Trim,
}

fn trim_at(b: &[u8], i: usize) -> Trim {
    match b.get(i) {
        Some(b'-') => Trim::All,
        Some(b'~') => Trim::Line,
        _ => Trim::No,
    }
}

fn syntax(name: &str, src: &str, msg: String, at: usize) -> Error {
    Error::new(ErrorKind::Syntax, msg).with_location(name, src, at..at + 2)
}

fn too_deep(name: &str, src: &str, pos: usize, max: usize) -> Error {
    Error::new(
        ErrorKind::Limit,
        format!("expression nesting exceeds the depth limit of {max}"),
    )
    .with_location(name, src, pos..pos + 1)
}

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Str(u8),
    /// `#{` at this position.
    Interp(usize),
    /// An opening bracket (`(`, `[` or `{`) at this position.
    Bracket(u8, usize),
}

/// A closing bracket that does not match the innermost open one: a clear error
/// here, instead of pest's list of what could have continued the expression.
fn mismatched(name: &str, src: &str, open: u8, open_at: usize, found: u8, at: usize) -> Error {
    let want = match open {
        b'(' => ')',
        b'[' => ']',
        _ => '}',
    };
    let before = &src[..open_at];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    Error::new(
        ErrorKind::Syntax,
        format!(
            "expected \"{want}\" to close \"{}\" opened at {line}:{col}, found `{}`",
            char::from(open),
            char::from(found)
        ),
    )
    .with_location(name, src, at..at + 1)
}

/// Scans code starting at `i` until the closer (`}}` when `tag` is false, `%}` when
/// true, or the end when `closer` is false), skipping strings and brackets. Fails when
/// brackets, interpolations, prefix-operator runs or ternaries nest deeper than `max`.
/// Returns the position of the closer (or the end of the source).
#[inline]
pub fn scan_code(
    name: &str,
    src: &str,
    i: usize,
    max: usize,
    tag: Option<bool>,
) -> Result<usize, Error> {
    match scan_plain(src.as_bytes(), i, tag) {
        Some(close) => Ok(close),
        None => scan_full(name, src, i, max, tag),
    }
}

/// [`scan_code`] byte by byte (out of line: the common case is [`scan_plain`]).
#[inline(never)]
fn scan_full(
    name: &str,
    src: &str,
    mut i: usize,
    max: usize,
    tag: Option<bool>,
) -> Result<usize, Error> {
    let b = src.as_bytes();
    let mut stack: Vec<Mode> = Vec::new();
    let mut depth = 0usize;
    let mut prefix_run = 0usize;
    let mut ternaries = 0usize;
    let mut string_starts: Vec<usize> = Vec::new();
    while i < b.len() {
        let c = b[i];
        if let Some(Mode::Str(q)) = stack.last().copied() {
            if c == b'\\' {
                i += 1;
            } else if c == q {
                stack.pop();
                string_starts.pop();
            } else if q == b'"' && c == b'#' && b.get(i + 1) == Some(&b'{') {
                depth += 1;
                if depth > max {
                    return Err(too_deep(name, src, i, max));
                }
                stack.push(Mode::Interp(i));
                i += 1;
            }
            i += 1;
            continue;
        }
        let word = |j: usize| {
            b.get(j)
                .is_some_and(|x| x.is_ascii_alphanumeric() || *x == b'_')
        };
        let is_not =
            c == b'n' && src[i..].starts_with("not") && !word(i + 3) && !(i > 0 && word(i - 1));
        if is_not || c == b'-' || c == b'+' {
            prefix_run += 1;
            if prefix_run + depth + ternaries > max {
                return Err(too_deep(name, src, i, max));
            }
            if is_not {
                i += 3;
                continue;
            }
        } else if c == b'?'
            && !matches!(b.get(i + 1), Some(b'?' | b':'))
            && !(i > 0 && b[i - 1] == b'?')
        {
            ternaries += 1;
            if depth + ternaries > max {
                return Err(too_deep(name, src, i, max));
            }
        } else if !is_space(c) {
            prefix_run = 0;
        }
        match c {
            b'"' | b'\'' => {
                stack.push(Mode::Str(c));
                string_starts.push(i);
            }
            b'(' | b'[' | b'{' => {
                depth += 1;
                if depth > max {
                    return Err(too_deep(name, src, i, max));
                }
                stack.push(Mode::Bracket(c, i));
            }
            b')' | b']' | b'}' => match stack.last().copied() {
                None => {
                    if c == b'}' && tag == Some(false) && b.get(i + 1) == Some(&b'}') {
                        return Ok(i);
                    }
                }
                Some(Mode::Bracket(open, _))
                    if matches!((open, c), (b'(', b')') | (b'[', b']') | (b'{', b'}')) =>
                {
                    stack.pop();
                    depth = depth.saturating_sub(1);
                }
                Some(Mode::Interp(_)) if c == b'}' => {
                    stack.pop();
                    depth = depth.saturating_sub(1);
                }
                Some(Mode::Bracket(open, at)) => {
                    return Err(mismatched(name, src, open, at, c, i));
                }
                Some(Mode::Interp(at)) => {
                    return Err(mismatched(name, src, b'{', at + 1, c, i));
                }
                Some(Mode::Str(_)) => {}
            },
            b'%' if stack.is_empty() && tag == Some(true) && b.get(i + 1) == Some(&b'}') => {
                return Ok(i)
            }
            _ => {}
        }
        i += 1;
    }
    if let (Some(Mode::Str(_)), Some(&at)) = (stack.last(), string_starts.last()) {
        return Err(
            Error::new(ErrorKind::Syntax, "unclosed string literal").with_location(
                name,
                src,
                at..at + 1,
            ),
        );
    }
    Ok(i)
}

/// The bytes of plain code for [`scan_plain`]: 1 for a name's byte, a dot or the grammar's
/// whitespace, 2 for `n` (which may begin `not`), 0 for anything else (the closers too). One
/// load per byte instead of a chain of range tests.
const PLAIN: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut c = 0;
    while c < 256 {
        let b = c as u8;
        if b.is_ascii_alphanumeric() || b == b'_' || b == b'.' || is_space(b) {
            t[c] = 1;
        }
        c += 1;
    }
    t[b'n' as usize] = 2;
    t
};

/// The common case of [`scan_code`]: code made only of names, digits, dots and the grammar's
/// whitespace up to
/// its closer (`team.name`, `for team in teams`, `endfor`). Nothing there nests nor opens a
/// string, so the closer is the first `}}` (or `%}`); `None` sends anything else, and a `not`
/// (a prefix operator, bounded by the depth limit), to the full scan.
fn scan_plain(b: &[u8], from: usize, tag: Option<bool>) -> Option<usize> {
    let close = match tag {
        Some(true) => b'%',
        Some(false) => b'}',
        None => return None,
    };
    let rest = b.get(from..)?;
    for (k, &c) in rest.iter().enumerate() {
        match PLAIN[usize::from(c)] {
            1 => {}
            2 if rest[k..].starts_with(b"not") => return None,
            2 => {}
            _ => {
                let j = from + k;
                return (c == close && b.get(j + 1) == Some(&b'}')).then_some(j);
            }
        }
    }
    None
}

/// Where the first `{` at or after `from` is, eight bytes at a time (src/swar.rs: the texts
/// between delimiters are short, and `str::find`'s searcher cost more in its setup per call than
/// in its scan).
fn find_brace(b: &[u8], from: usize) -> Option<usize> {
    crate::swar::find(b, from, |x| crate::swar::eq(x, b'{'), |c| c == b'{')
}

/// Splits a template into tokens.
pub fn lex(name: &str, src: &str, max: usize) -> Result<Vec<Token>, Error> {
    let b = src.as_bytes();
    // At most a text and a delimiter per run of `{` (and the text after the last one): sized
    // once instead of grown. Two delimiters never share a run (one ends with `}` before the
    // next begins), so counting the ends of runs (a `{` not followed by `{`) bounds them, and
    // `{{` counts once, not twice, which keeps a small template's vector small.
    // (counted in chunks into bytes, which vectorises to compares and a subtract per 16
    // bytes; a `usize` count widens every byte first)
    let next = b.get(1..).unwrap_or_default();
    let runs: usize = b
        .chunks(255)
        .zip(next.chunks(255))
        .map(|(c, n)| {
            let ends = c
                .iter()
                .zip(n)
                .fold(0u8, |k, (&x, &y)| k + u8::from(x == b'{' && y != b'{'));
            usize::from(ends)
        })
        .sum::<usize>()
        + usize::from(b.last() == Some(&b'{'));
    let mut out = Vec::with_capacity(2 * runs + 1);
    let mut i = 0;
    let mut text_start = 0;
    while let Some(at) = find_brace(b, i) {
        let kind = match b.get(at + 1) {
            Some(b'{') => Kind::Print,
            Some(b'%') => Kind::Tag,
            Some(b'#') => Kind::Comment,
            _ => {
                i = at + 1;
                continue;
            }
        };
        if at > text_start {
            out.push(Token {
                kind: Kind::Text,
                start: text_start,
                end: at,
                code: (text_start, at),
                ltrim: Trim::No,
                rtrim: Trim::No,
            });
        }
        let ltrim = trim_at(b, at + 2);
        let code_start = at + 2 + usize::from(ltrim != Trim::No);
        let (close, end) = match kind {
            Kind::Comment => {
                let Some(j) = src[at + 2..].find("#}") else {
                    return Err(syntax(
                        name,
                        src,
                        "unclosed comment: expected \"#}\"".into(),
                        at,
                    ));
                };
                (at + 2 + j, at + 2 + j + 2)
            }
            _ => {
                let is_tag = kind == Kind::Tag;
                let j = scan_code(name, src, code_start, max, Some(is_tag))?;
                if j >= b.len() {
                    let (open, close) = if is_tag { ("{%", "%}") } else { ("{{", "}}") };
                    return Err(syntax(
                        name,
                        src,
                        format!("expected \"{close}\" to close \"{open}\""),
                        at,
                    ));
                }
                (j, j + 2)
            }
        };
        let rtrim = if close > code_start.max(at + 2) {
            trim_at(b, close - 1)
        } else {
            Trim::No
        };
        let code_end = if rtrim != Trim::No { close - 1 } else { close };
        let mut tok = Token {
            kind,
            start: at,
            end,
            code: (code_start, code_end.max(code_start)),
            ltrim,
            rtrim,
        };
        i = end;
        if kind == Kind::Tag && verbatim_candidate(&src[tok.code.0..tok.code.1]) == "verbatim" {
            let (body_end, close_tok) = find_endverbatim(name, src, at, end, max)?;
            out.push(Token {
                kind: Kind::Tag,
                ..tok.clone()
            });
            out.push(Token {
                kind: Kind::Verbatim,
                start: end,
                end: body_end,
                code: (end, body_end),
                ltrim: Trim::No,
                rtrim: Trim::No,
            });
            i = close_tok.end;
            tok = close_tok;
        }
        out.push(tok);
        text_start = i;
    }
    if text_start < src.len() {
        out.push(Token {
            kind: Kind::Text,
            start: text_start,
            end: src.len(),
            code: (text_start, src.len()),
            ltrim: Trim::No,
            rtrim: Trim::No,
        });
    }
    Ok(out)
}

/// Finds `{% endverbatim %}` after `from`: returns where the body ends and the end tag.
/// Without one, the error names where the verbatim tag (at `open`) was opened and points at
/// the end of the source, like every other unclosed block.
fn find_endverbatim(
    name: &str,
    src: &str,
    open: usize,
    from: usize,
    max: usize,
) -> Result<(usize, Token), Error> {
    let b = src.as_bytes();
    let mut i = from;
    while let Some(off) = src[i..].find("{%") {
        let at = i + off;
        let ltrim = trim_at(b, at + 2);
        let code_start = at + 2 + usize::from(ltrim != Trim::No);
        if src[code_start..]
            .trim_start_matches(is_space_char)
            .starts_with("endverbatim")
        {
            let j = scan_code(name, src, code_start, max, Some(true))?;
            if j < b.len() {
                let rtrim = if j > code_start {
                    trim_at(b, j - 1)
                } else {
                    Trim::No
                };
                let code_end = if rtrim != Trim::No { j - 1 } else { j };
                return Ok((
                    at,
                    Token {
                        kind: Kind::Tag,
                        start: at,
                        end: j + 2,
                        code: (code_start, code_end),
                        ltrim,
                        rtrim,
                    },
                ));
            }
        }
        i = at + 2;
    }
    let before = &src[..open];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    Err(Error::new(
        ErrorKind::Syntax,
        format!("expected \"endverbatim\" to close \"verbatim\" opened at {line}:{col}"),
    )
    .with_location(name, src, src.len()..src.len()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_and_bounds_nesting() {
        let toks = lex("t", "a{{ \"}}\" -}}b{# x #}{% if {a:{b:1}} %}", 128).unwrap();
        let kinds: Vec<Kind> = toks.iter().map(|t| t.kind).collect();
        assert_eq!(
            kinds,
            [
                Kind::Text,
                Kind::Print,
                Kind::Text,
                Kind::Comment,
                Kind::Tag
            ]
        );
        assert_eq!(toks[1].rtrim, Trim::All);
        let deep = format!("{{{{ {}1{} }}}}", "(".repeat(5000), ")".repeat(5000));
        assert_eq!(lex("t", &deep, 128).unwrap_err().kind(), ErrorKind::Limit);
        assert!(lex("t", "{{ x ", 128).is_err());
    }

    /// The shortcut for plain code finds the closer the full scan finds, or leaves the code
    /// to it.
    #[test]
    fn plain_code_scans_like_the_full_scan() {
        let mut taken = 0;
        for src in [
            " team.name }}",
            " for team in teams %}x",
            "endfor%}",
            " a } }}",
            " a % %}",
            " not a }}",
            " a.b }",
            " if x\n\t %}",
            "\u{b}if\u{c}x\u{b}%}",
            " endfor\u{c} }}",
            " cannot }}",
            " a }} b }}",
            " a %} %}",
            " a",
            "",
        ] {
            for tag in [Some(true), Some(false), None] {
                let full = scan_full("t", src, 0, 2, tag).ok();
                if let Some(plain) = scan_plain(src.as_bytes(), 0, tag) {
                    taken += 1;
                    assert_eq!(Some(plain), full, "{src:?} {tag:?}");
                }
            }
        }
        assert!(taken >= 6);
    }

    #[test]
    fn find_brace_finds_the_first_brace() {
        crate::swar::tests::agrees_with_a_byte_loop(
            &[b'{', b'z', b'|', 0xfb, 0, 0x7a, b'a'],
            200,
            find_brace,
            |c| c == b'{',
        );
    }
}
