//! Fast paths for the most common delimiter contents, which skip pest entirely:
//! a plain variable path (`{{ team.name }}`), bare end tags (`{% endfor %}`),
//! `{% if path %}` and `{% for x in path %}`. They build exactly the AST the grammar
//! would; anything else goes to pest.

use super::ast::{Expr, ExprKind, Span};
use super::Names;
use std::cell::RefCell;
use std::sync::Arc;

/// A tag recognised without pest.
pub(super) enum FastTag {
    Keyword(&'static str),
    If(Expr),
    ElseIf(Expr),
    For(Option<Arc<str>>, Arc<str>, Expr),
}

const KEYWORDS: [&str; 10] = [
    "endfor",
    "endif",
    "else",
    "endset",
    "endwith",
    "endapply",
    "endautoescape",
    "endmacro",
    "break",
    "continue",
];

/// Names the grammar reads as literals or operators, never as a variable.
const RESERVED: [&str; 5] = ["true", "false", "null", "none", "not"];

fn is_ident(s: &str) -> bool {
    let mut b = s.bytes();
    matches!(b.next(), Some(c) if c.is_ascii_alphabetic() || c == b'_')
        && b.all(|c| c.is_ascii_alphanumeric() || c == b'_')
}

/// The grammar's whitespace (`WHITESPACE` in grammar/flexie.pest: space, tab, CR, LF, vertical
/// tab, form feed): nothing else (not a NUL, not a non-ASCII space) may be trimmed, or the fast
/// path would accept what pest reads differently or refuses.
pub(super) const fn is_space(c: u8) -> bool {
    /// Bit `c` set for each of those bytes (all below 64): one shift and test.
    const SPACES: u64 = 1 << b' ' | 1 << b'\t' | 1 << b'\r' | 1 << b'\n' | 1 << 0x0B | 1 << 0x0C;
    c < 64 && SPACES >> c & 1 != 0
}

/// [`is_space`] for a `char`.
pub(super) fn is_space_char(c: char) -> bool {
    u8::try_from(c).is_ok_and(is_space)
}

/// `s` without the grammar's whitespace at either end, and how many bytes went at the start
/// (a byte scan: those bytes never occur inside a multi-byte character).
pub(super) fn trim(s: &str) -> (usize, &str) {
    let b = s.as_bytes();
    let Some(start) = b.iter().position(|&c| !is_space(c)) else {
        return (s.len(), "");
    };
    let end = b
        .iter()
        .rposition(|&c| !is_space(c))
        .map_or(start, |e| e + 1);
    (start, s.get(start..end).unwrap_or(""))
}

/// Whether `c` may be part of a name (an ASCII letter, digit or `_`), by one table load.
fn is_word(c: u8) -> bool {
    /// 1 for the bytes of a name.
    const WORD: [u8; 256] = {
        let mut t = [0u8; 256];
        let mut c = 0;
        while c < 256 {
            let b = c as u8;
            if b.is_ascii_alphanumeric() || b == b'_' {
                t[c] = 1;
            }
            c += 1;
        }
        t
    };
    WORD[usize::from(c)] != 0
}

/// Where the name bytes starting at `from` end.
fn word_end(b: &[u8], from: usize) -> usize {
    let mut i = from;
    while i < b.len() && is_word(b[i]) {
        i += 1;
    }
    i
}

/// `code` [`trim`]med when it may be `verbatim` or `endverbatim` (at least 8 bytes ending
/// with `m`), else `""`: the verbatim checks of every tag look at its last bytes first.
pub(super) fn verbatim_candidate(code: &str) -> &str {
    let b = code.as_bytes();
    let mut end = b.len();
    while end > 0 && is_space(b[end - 1]) {
        end -= 1;
    }
    if end < 8 || b[end - 1] != b'm' {
        return "";
    }
    trim(code).1
}

/// `name(.name|.digits)*` starting at byte `base` of the source, or `None`: one scan over the
/// bytes, each name shared through `names`.
pub(super) fn path(
    code: &str,
    base: usize,
    max_depth: usize,
    names: &RefCell<Names>,
) -> Option<Expr> {
    let b = code.as_bytes();
    let mut lead = 0;
    while lead < b.len() && is_space(b[lead]) {
        lead += 1;
    }
    let mut stop = b.len();
    while stop > lead && is_space(b[stop - 1]) {
        stop -= 1;
    }
    if stop == lead || stop - lead > 200 {
        return None;
    }
    let (b, t) = (&b[..stop], &code[..stop]);
    // a name's bytes, not starting with a digit
    let first_end = word_end(b, lead);
    let first = &t[lead..first_end];
    if first_end == lead
        || b[lead].is_ascii_digit()
        || ((3..=5).contains(&first.len())
            && RESERVED.iter().any(|r| first.eq_ignore_ascii_case(r)))
    {
        return None;
    }
    let start = base + lead;
    let mut e = Expr {
        kind: ExprKind::Name(Names::get(names, first)),
        span: Span::new(start, base + first_end),
    };
    let mut i = first_end;
    let mut depth = 0;
    while i < b.len() {
        if b[i] != b'.' || depth >= max_depth {
            return None;
        }
        let end = word_end(b, i + 1);
        let seg = &t[i + 1..end];
        // a name, or digits only
        if end == i + 1 || (b[i + 1].is_ascii_digit() && !seg.bytes().all(|c| c.is_ascii_digit())) {
            return None;
        }
        e = Expr {
            kind: ExprKind::Attr(Box::new(e), Names::get(names, seg)),
            span: Span::new(start, base + end),
        };
        i = end;
        depth += 1;
    }
    Some(e)
}

/// Where the first ` in ` is in `s` (a byte scan: cheaper than a substring searcher here).
fn find_in(s: &str) -> Option<usize> {
    s.as_bytes().windows(4).position(|w| w == b" in ")
}

/// A common tag, or `None` to let pest parse it.
pub(super) fn tag(
    code: &str,
    base: usize,
    max_depth: usize,
    names: &RefCell<Names>,
) -> Option<FastTag> {
    let (lead, t) = trim(code);
    // Every keyword is a lowercase word of 4 to 13 letters.
    if (4..=13).contains(&t.len()) && t.bytes().all(|c| c.is_ascii_lowercase()) {
        if let Some(k) = KEYWORDS.iter().find(|k| **k == t) {
            return Some(FastTag::Keyword(k));
        }
    }
    let at = t.bytes().position(is_space)?;
    let (head, rest) = (&t[..at], &t[at + 1..]);
    let rest_off = base + lead + at + 1;
    match head {
        "if" => path(rest, rest_off, max_depth, names).map(FastTag::If),
        "elseif" => path(rest, rest_off, max_depth, names).map(FastTag::ElseIf),
        "for" => {
            let at = find_in(rest)?;
            let (vars, seq) = (&rest[..at], &rest[at + 4..]);
            let seq_off = rest_off + at + 4;
            let (key, value) = match vars.split_once(',') {
                Some((k, v)) => (Some(trim(k).1), trim(v).1),
                None => (None, trim(vars).1),
            };
            if !is_ident(value) || key.is_some_and(|k| !is_ident(k)) {
                return None;
            }
            let iter = path(seq, seq_off, max_depth, names)?;
            let name = |n| Names::get(names, n);
            Some(FastTag::For(key.map(name), name(value), iter))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_tags() {
        let n = RefCell::new(Names::default());
        let path = |code, base, depth| super::path(code, base, depth, &n);
        let tag = |code, base, depth| super::tag(code, base, depth, &n);
        let e = path(" team.name ", 10, 128).unwrap();
        assert_eq!(e.span, Span::new(11, 20));
        assert!(path("a.b()", 0, 128).is_none());
        assert!(path("true", 0, 128).is_none());
        assert!(path("a + b", 0, 128).is_none());
        assert!(matches!(
            tag(" endfor ", 0, 128),
            Some(FastTag::Keyword("endfor"))
        ));
        assert!(matches!(
            tag("for k, v in m.items", 0, 128),
            Some(FastTag::For(Some(_), _, _))
        ));
        assert!(tag("for x in 1..3", 0, 128).is_none());
        assert!(matches!(tag("if loop.first", 0, 128), Some(FastTag::If(_))));
    }
}
