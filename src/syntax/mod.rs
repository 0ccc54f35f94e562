//! Source text → AST ([`ast`]), with the pest grammar in `grammar/flexie.pest`.

pub mod ast;
mod fast;
mod lex;
mod parse;

use crate::error::Error;
use ast::{Expr, Macro, Stmt};
use std::cell::RefCell;
use std::sync::Arc;

/// The names met by the parses of a thread (variables, attributes, filters…): a name met again
/// shares the `Arc<str>` made the first time instead of allocating another (`team` in
/// `team.name` and `team.score`, and the same names in the next template compiled).
/// Two-way set-associative: a name has one set of two slots, chosen from its length and end
/// bytes as the key cache of `src/value/ser.rs` chooses its slot; a lookup is at most two
/// comparisons, and a new name takes the first slot and moves the one there to the second
/// (whatever was in the second goes). Sharing an `Arc<str>` is invisible to the compiler
/// (names compare by text). The thread keeps at most 64 names alive.
#[derive(Default)]
pub(crate) struct Names {
    slots: [[Option<Arc<str>>; 2]; 32],
}

thread_local! {
    /// The thread's [`Names`], kept from one parse to the next.
    static NAMES: RefCell<Names> = const {
        RefCell::new(Names {
            slots: [const { [None, None] }; 32],
        })
    };
}

/// Runs `f` with the thread's [`Names`] (fresh ones while the thread's are being destroyed).
fn with_names<T>(f: impl Fn(&RefCell<Names>) -> T) -> T {
    NAMES
        .try_with(&f)
        .unwrap_or_else(|_| f(&RefCell::new(Names::default())))
}

impl Names {
    /// `name` as an `Arc<str>`, shared with an earlier one of the same text when cached.
    pub(crate) fn get(cell: &RefCell<Names>, name: &str) -> Arc<str> {
        let b = name.as_bytes();
        let (Some(&first), Some(&last)) = (b.first(), b.last()) else {
            return Arc::from(name);
        };
        let Ok(mut names) = cell.try_borrow_mut() else {
            return Arc::from(name);
        };
        let i =
            (b.len() ^ usize::from(first).wrapping_mul(7) ^ usize::from(last).wrapping_mul(3)) % 32;
        let set = &mut names.slots[i];
        for a in set.iter().flatten() {
            if crate::value::same_text(a, name) {
                return a.clone();
            }
        }
        let a: Arc<str> = Arc::from(name);
        set[1] = set[0].replace(a.clone());
        a
    }
}

/// A parsed template: its statements and the macros it defines.
#[derive(Debug)]
pub struct Parsed {
    pub body: Vec<Stmt>,
    pub macros: Vec<Arc<Macro>>,
}

/// Parses a template; `max_depth` bounds bracket, expression and block nesting.
pub fn parse_template(name: &str, src: &str, max_depth: usize) -> Result<Parsed, Error> {
    with_names(|names| parse::template(&whole(name, src, max_depth, names)))
}

/// Parses a standalone expression (no delimiters).
pub fn parse_expression(name: &str, src: &str, max_depth: usize) -> Result<Expr, Error> {
    with_names(|names| parse::expression(&whole(name, src, max_depth, names)))
}

/// The parse context of a whole source (a template or an expression without delimiters).
fn whole<'s>(
    name: &'s str,
    src: &'s str,
    max_depth: usize,
    names: &'s RefCell<Names>,
) -> parse::Ctx<'s> {
    parse::Ctx {
        name,
        src,
        max_depth,
        base: 0,
        closer: "",
        code_end: src.len(),
        names,
    }
}
