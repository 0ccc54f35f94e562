//! Pre-passes over the AST (names a frame assigns, imports) and "did you mean" hints.

use crate::syntax::ast::{Stmt, StmtKind};
use std::sync::Arc;

/// Calls `f` for every name a statement list assigns (`set`, `for` variables),
/// without entering macros (they have their own frame).
pub fn declare(body: &[Stmt], f: &mut dyn FnMut(&Arc<str>)) {
    for s in body {
        match &s.kind {
            StmtKind::Set(targets, _) => targets.iter().for_each(|(n, _)| f(n)),
            StmtKind::SetBlock(n, b) => {
                f(n);
                declare(b, f);
            }
            StmtKind::If(branches, else_body) => {
                for (_, b) in branches {
                    declare(b, f);
                }
                if let Some(b) = else_body {
                    declare(b, f);
                }
            }
            StmtKind::For(l) => {
                if let Some(k) = &l.key {
                    f(k);
                }
                f(&l.value);
                declare(&l.body, f);
                if let Some(b) = &l.else_body {
                    declare(b, f);
                }
            }
            StmtKind::With(_, _, b) | StmtKind::Apply(_, b) | StmtKind::Autoescape(_, b) => {
                declare(b, f)
            }
            StmtKind::Guard(g) => {
                declare(&g.body, f);
                declare(&g.else_body, f);
            }
            _ => {}
        }
    }
}

/// Calls `f` for every `import` / `from … import` statement, not entering blocks
/// (their imports are their own).
pub fn imports(body: &[Stmt], f: &mut dyn FnMut(&Stmt)) {
    for s in body {
        match &s.kind {
            StmtKind::Import(..) | StmtKind::FromImport(..) => f(s),
            StmtKind::SetBlock(_, b)
            | StmtKind::With(_, _, b)
            | StmtKind::Apply(_, b)
            | StmtKind::Autoescape(_, b) => imports(b, f),
            StmtKind::Guard(g) => {
                imports(&g.body, f);
                imports(&g.else_body, f);
            }
            StmtKind::If(branches, else_body) => {
                for (_, b) in branches {
                    imports(b, f);
                }
                if let Some(b) = else_body {
                    imports(b, f);
                }
            }
            StmtKind::For(l) => {
                imports(&l.body, f);
                if let Some(b) = &l.else_body {
                    imports(b, f);
                }
            }
            _ => {}
        }
    }
}

/// Levenshtein distance between two strings (in characters).
pub fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// The closest candidate to `name`, if any is close enough to be a likely typo.
pub fn closest<'a>(name: &str, candidates: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    let limit = (name.chars().count() / 3).max(2);
    candidates
        .map(|c| (levenshtein(&name.to_lowercase(), &c.to_lowercase()), c))
        .filter(|(d, _)| *d <= limit)
        .min_by(|a, b| a.0.cmp(&b.0).then(a.1.cmp(b.1)))
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestions() {
        assert_eq!(levenshtein("uper", "upper"), 1);
        let names = ["upper", "lower", "length"];
        assert_eq!(closest("uper", names.iter().copied()), Some("upper"));
        assert_eq!(closest("zzzzzz", names.iter().copied()), None);
    }
}
