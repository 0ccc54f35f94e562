//! Fast paths for the most common delimiter contents, which skip pest entirely:
//! a plain variable path (`{{ team.name }}`), bare end tags (`{% endfor %}`),
//! `{% if path %}` and `{% for x in path %}`. They build exactly the AST the grammar
//! would; anything else goes to pest.

use super::ast::{Expr, ExprKind, Span};
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

/// `name(.name|.digits)*` starting at byte `base` of the source, or `None`.
pub(super) fn path(code: &str, base: usize, max_depth: usize) -> Option<Expr> {
    let lead = code.len() - code.trim_start().len();
    let t = code.trim();
    if t.is_empty() || t.len() > 200 {
        return None;
    }
    let mut parts = t.split('.');
    let first = parts.next()?;
    if !is_ident(first) || RESERVED.iter().any(|r| first.eq_ignore_ascii_case(r)) {
        return None;
    }
    let start = base + lead;
    let mut end = start + first.len();
    let mut e = Expr {
        kind: ExprKind::Name(Arc::from(first)),
        span: Span::new(start, end),
    };
    for (depth, seg) in parts.enumerate() {
        if depth >= max_depth
            || !(is_ident(seg) || (!seg.is_empty() && seg.bytes().all(|c| c.is_ascii_digit())))
        {
            return None;
        }
        end += 1 + seg.len();
        e = Expr {
            kind: ExprKind::Attr(Box::new(e), Arc::from(seg)),
            span: Span::new(start, end),
        };
    }
    Some(e)
}

/// Where the first ` in ` is in `s` (a byte scan: cheaper than a substring searcher here).
fn find_in(s: &str) -> Option<usize> {
    s.as_bytes().windows(4).position(|w| w == b" in ")
}

/// A common tag, or `None` to let pest parse it.
pub(super) fn tag(code: &str, base: usize, max_depth: usize) -> Option<FastTag> {
    let t = code.trim();
    // Every keyword is a lowercase word of 4 to 13 letters.
    if (4..=13).contains(&t.len()) && t.bytes().all(|c| c.is_ascii_lowercase()) {
        if let Some(k) = KEYWORDS.iter().find(|k| **k == t) {
            return Some(FastTag::Keyword(k));
        }
    }
    let lead = code.len() - code.trim_start().len();
    let (head, rest) = t.split_once(|c: char| c.is_ascii_whitespace())?;
    let rest_off = base + lead + (t.len() - rest.len());
    match head {
        "if" => path(rest, rest_off, max_depth).map(FastTag::If),
        "elseif" => path(rest, rest_off, max_depth).map(FastTag::ElseIf),
        "for" => {
            let at = find_in(rest)?;
            let (vars, seq) = (&rest[..at], &rest[at + 4..]);
            let seq_off = rest_off + at + 4;
            let (key, value) = match vars.split_once(',') {
                Some((k, v)) => (Some(k.trim()), v.trim()),
                None => (None, vars.trim()),
            };
            if !is_ident(value) || key.is_some_and(|k| !is_ident(k)) {
                return None;
            }
            let iter = path(seq, seq_off, max_depth)?;
            Some(FastTag::For(key.map(Arc::from), Arc::from(value), iter))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_tags() {
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
