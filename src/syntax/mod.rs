//! Source text → AST ([`ast`]), with the pest grammar in `grammar/flexie.pest`.

pub mod ast;
mod fast;
mod lex;
mod parse;

use crate::error::Error;
use ast::{Expr, Macro, Stmt};
use std::sync::Arc;

/// A parsed template: its statements and the macros it defines.
#[derive(Debug)]
pub struct Parsed {
    pub body: Vec<Stmt>,
    pub macros: Vec<Arc<Macro>>,
}

/// Parses a template; `max_depth` bounds bracket, expression and block nesting.
pub fn parse_template(name: &str, src: &str, max_depth: usize) -> Result<Parsed, Error> {
    parse::template(&parse::Ctx {
        name,
        src,
        max_depth,
        base: 0,
        closer: "",
        code_end: src.len(),
    })
}

/// Parses a standalone expression (no delimiters).
pub fn parse_expression(name: &str, src: &str, max_depth: usize) -> Result<Expr, Error> {
    parse::expression(&parse::Ctx {
        name,
        src,
        max_depth,
        base: 0,
        closer: "",
        code_end: src.len(),
    })
}
