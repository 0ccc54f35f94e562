//! pest → AST. Whitespace control and the first-newline rule are applied to text
//! here; block tags are nested with a stack; expressions go through one PrattParser
//! that holds the whole precedence table (docs/language.md §2.3).

use super::ast::*;
use super::fast::FastTag;
use super::lex::{Kind, Token, Trim};
use super::Parsed;
use crate::error::{Error, ErrorKind};
use pest::iterators::Pair;
use pest::pratt_parser::{Assoc, Op, PrattParser};
use pest::Parser;
use std::sync::{Arc, OnceLock};

#[derive(pest_derive::Parser)]
#[grammar = "../grammar/flexie.pest"]
struct FlexieParser;

type R<T> = Result<T, Error>;

/// The precedence table, lowest first (docs/language.md §2.3).
fn pratt() -> &'static PrattParser<Rule> {
    static P: OnceLock<PrattParser<Rule>> = OnceLock::new();
    P.get_or_init(|| {
        use Assoc::*;
        PrattParser::new()
            // The ternary is a postfix holding both branches (see the grammar);
            // its else branch runs to the end, which makes it right-associative.
            .op(Op::infix(Rule::op_elvis, Right) | Op::postfix(Rule::ternary))
            .op(Op::infix(Rule::op_coalesce, Right))
            .op(Op::infix(Rule::op_or, Left))
            .op(Op::infix(Rule::op_xor, Left))
            .op(Op::infix(Rule::op_and, Left))
            .op(Op::infix(Rule::op_bor, Left))
            .op(Op::infix(Rule::op_bxor, Left))
            .op(Op::infix(Rule::op_band, Left))
            .op(Op::infix(Rule::op_eq, Left)
                | Op::infix(Rule::op_ne, Left)
                | Op::infix(Rule::op_lt, Left)
                | Op::infix(Rule::op_gt, Left)
                | Op::infix(Rule::op_le, Left)
                | Op::infix(Rule::op_ge, Left)
                | Op::infix(Rule::op_cmp, Left)
                | Op::infix(Rule::op_in, Left)
                | Op::infix(Rule::op_not_in, Left)
                | Op::infix(Rule::op_matches, Left)
                | Op::infix(Rule::op_starts, Left)
                | Op::infix(Rule::op_ends, Left)
                | Op::infix(Rule::op_has_some, Left)
                | Op::infix(Rule::op_has_every, Left))
            .op(Op::infix(Rule::op_range, Left))
            .op(Op::infix(Rule::op_add, Left) | Op::infix(Rule::op_sub, Left))
            .op(Op::infix(Rule::op_concat, Left))
            .op(Op::prefix(Rule::op_not))
            .op(Op::infix(Rule::op_mul, Left)
                | Op::infix(Rule::op_div, Left)
                | Op::infix(Rule::op_floordiv, Left)
                | Op::infix(Rule::op_mod, Left))
            .op(Op::postfix(Rule::test))
            .op(Op::infix(Rule::op_pow, Right))
            .op(Op::postfix(Rule::filter))
            .op(Op::prefix(Rule::op_neg) | Op::prefix(Rule::op_pos))
            .op(Op::postfix(Rule::attr)
                | Op::postfix(Rule::dyn_attr)
                | Op::postfix(Rule::subscript)
                | Op::postfix(Rule::call_args))
    })
}

/// Parser context: the source (for error locations), the depth limit, and the
/// offset of the code pest is parsing within the source.
#[derive(Clone, Copy)]
pub(super) struct Ctx<'s> {
    pub name: &'s str,
    pub src: &'s str,
    pub max_depth: usize,
    pub base: usize,
    /// The delimiter that closes the code being parsed (`}}`, `%}`, or none).
    pub closer: &'static str,
    /// Where that code ends in the source.
    pub code_end: usize,
    /// The names met so far (shared, not allocated again).
    pub names: &'s std::cell::RefCell<super::Names>,
}

impl Ctx<'_> {
    /// `name` as a shared `Arc<str>` (see [`super::Names`]).
    fn name(&self, name: &str) -> Arc<str> {
        super::Names::get(self.names, name)
    }
    fn span(&self, p: &Pair<Rule>) -> Span {
        Span::new(
            self.base + p.as_span().start(),
            self.base + p.as_span().end(),
        )
    }
    fn err(&self, kind: ErrorKind, msg: impl Into<String>, span: Span) -> Error {
        Error::new(kind, msg).with_location(self.name, self.src, span.range())
    }
    fn syntax(&self, msg: impl Into<String>, span: Span) -> Error {
        self.err(ErrorKind::Syntax, msg, span)
    }
    fn line_col(&self, pos: u32) -> (usize, usize) {
        let before = &self.src[..floor(self.src, pos as usize)];
        let line = before.matches('\n').count() + 1;
        let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        (line, col)
    }
}

fn floor(s: &str, mut i: usize) -> usize {
    i = i.min(s.len());
    while i > 0 && !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// Parses a whole template: the lexer splits it, pest parses each delimiter's code.
///
/// One pass over the tokens: each is parsed and nested at once (no list of parsed items in
/// between, so no statement is moved more than once). The errors are those of two passes: a
/// tag or print that does not parse is reported before a block that does not nest, so the
/// first nesting error waits until every token has parsed.
pub(super) fn template(cx: &Ctx) -> R<Parsed> {
    let tokens = super::lex::lex(cx.name, cx.src, cx.max_depth)?;
    let mut nest = Nest::new(tokens.len());
    let mut nest_err = None;
    for (i, t) in tokens.iter().enumerate() {
        let kind = match t.kind {
            Kind::Text | Kind::Verbatim => {
                let (a, b) = trimmed_text(cx, &tokens, i);
                if a >= b {
                    continue;
                }
                FlatKind::Text(a, b)
            }
            _ => flat_item(cx, t)?,
        };
        if nest_err.is_none() {
            if let Err(e) = nest.item(cx, kind, Span::new(t.start, t.end)) {
                nest_err = Some(e);
            }
        }
    }
    match nest_err {
        Some(e) => Err(e),
        None => nest.finish(cx),
    }
}

/// Parses a standalone expression.
pub(super) fn expression(cx: &Ctx) -> R<Expr> {
    super::lex::scan_code(cx.name, cx.src, 0, cx.max_depth, None)?;
    with_stack_for(cx.src, cx.max_depth, || {
        let pairs =
            FlexieParser::parse(Rule::expression_only, cx.src).map_err(|e| pest_error(cx, e))?;
        for top in pairs {
            for p in top.into_inner() {
                if p.as_rule() == Rule::expr {
                    return expr(cx, p);
                }
            }
        }
        Err(cx.syntax("expected an expression", Span::default()))
    })
}

/// Runs the pest parse of `code` and its conversion to the AST with enough stack for the
/// deepest nesting `code` can hold (each level takes at least one byte of it, and the lexer
/// already refused more than the depth limit): on a new segment when the thread has less left
/// (src/stack.rs). Without it pest stops with "stack limit reached" — a syntax error — well
/// before the depth limit on a small thread.
fn with_stack_for<T>(code: &str, max_depth: usize, f: impl FnOnce() -> R<T>) -> R<T> {
    /// Stack for one level of nesting (pest's rules and the conversion), with room to spare
    /// in a debug build; and for the parse's fixed part.
    const PER_LEVEL: usize = 6 * 1024;
    const BASE: usize = 96 * 1024;
    let levels = code.len().min(max_depth.saturating_mul(2));
    let need = BASE + levels * PER_LEVEL;
    stacker::maybe_grow(need, need.max(crate::stack::GROW), f)
}

// ───────────────────────── pest errors ─────────────────────────

fn label(r: Rule) -> Option<&'static str> {
    Some(match r {
        Rule::expr
        | Rule::term
        | Rule::literal
        | Rule::bool_lit
        | Rule::number
        | Rule::list
        | Rule::map
        | Rule::paren
        | Rule::named
        | Rule::arrow
        | Rule::op_not
        | Rule::op_neg
        | Rule::op_pos
        | Rule::string => "an expression",
        Rule::name => "a name",
        Rule::statement | Rule::unknown_tag => "a tag name",
        Rule::call_args => "\"(\"",
        Rule::EOI => "end of input",
        Rule::kw_in => "\"in\"",
        Rule::set_eq => "\"=\"",
        Rule::kw_as => "\"as\"",
        Rule::kw_import => "\"import\"",
        Rule::template_ref => "a snippet name or _self",
        Rule::filter_call => "a filter name",
        Rule::test_name => "a test name",
        Rule::map_entry | Rule::map_key => "a map key",
        Rule::macro_param => "a parameter name",
        Rule::import_item => "a macro name",
        Rule::arrow_params => "arrow function parameters",
        _ => {
            let s = format!("{r:?}");
            if s.starts_with("op_") || s == "infix" || s == "postfix" {
                return Some("an operator");
            }
            return None;
        }
    })
}

fn pest_error(cx: &Ctx, e: pest::error::Error<Rule>) -> Error {
    let pos = match e.location {
        pest::error::InputLocation::Pos(p) => p,
        pest::error::InputLocation::Span((s, _)) => s,
    } + cx.base;
    let mut labels: Vec<&str> = Vec::new();
    if let pest::error::ErrorVariant::ParsingError { positives, .. } = &e.variant {
        for r in positives {
            let l = if *r == Rule::EOI && !cx.closer.is_empty() {
                Some(if cx.closer == "}}" {
                    "\"}}\""
                } else {
                    "\"%}\""
                })
            } else {
                label(*r)
            };
            if let Some(l) = l {
                if !labels.contains(&l) {
                    labels.push(l);
                }
            }
        }
    }
    if labels.contains(&"an expression") {
        labels
            .retain(|l| *l != "an operator" && *l != "a name" && *l != "arrow function parameters");
    }
    let at_end = pos >= cx.code_end;
    let found = cx.src.get(pos..).and_then(|s| s.chars().next());
    let found = match found {
        _ if at_end && !cx.closer.is_empty() => format!("`{}`", cx.closer),
        None => "end of input".to_string(),
        Some(c) => format!(
            "`{}`",
            cx.src[pos..]
                .chars()
                .take(12)
                .collect::<String>()
                .split_whitespace()
                .next()
                .unwrap_or(&c.to_string())
        ),
    };
    let msg = if labels.is_empty() {
        format!("unexpected {found}")
    } else {
        format!("expected {}, found {found}", labels.join(" or "))
    };
    let end = floor(cx.src, pos + 1).max(pos);
    cx.syntax(msg, Span::new(pos, end))
}

// ───────────────────────── flat items ─────────────────────────

#[derive(Debug)]
enum Tag {
    Stmt(Stmt),
    Set(Arc<str>),
    EndSet,
    If(Expr),
    ElseIf(Expr),
    Else,
    EndIf,
    For(Option<Arc<str>>, Arc<str>, Expr),
    EndFor,
    With(Option<Box<Expr>>, bool),
    EndWith,
    Apply(Vec<FilterCall>),
    EndApply,
    Autoescape(EscapeName),
    EndAutoescape,
    Macro(Arc<str>, Vec<(Arc<str>, Option<Expr>)>),
    EndMacro,
    Block(Arc<str>, Option<Expr>),
    EndBlock(Option<(Arc<str>, Span)>),
    Embed(Box<IncludeTag>),
    EndEmbed,
    Guard(Arc<str>, Arc<str>),
    EndGuard,
    /// A tag that leaves nothing behind (`deprecated`, `flush`).
    Nothing,
}

impl Tag {
    /// Whether the tag ends the innermost block or its current branch (`else`, `elseif`,
    /// an end tag): it then takes that block's statements.
    fn ends_branch(&self) -> bool {
        matches!(
            self,
            Tag::EndSet
                | Tag::ElseIf(_)
                | Tag::Else
                | Tag::EndIf
                | Tag::EndFor
                | Tag::EndWith
                | Tag::EndApply
                | Tag::EndAutoescape
                | Tag::EndMacro
                | Tag::EndBlock(_)
                | Tag::EndEmbed
                | Tag::EndGuard
        )
    }
}

enum FlatKind {
    /// Text: a byte range of the source (trimmed in place; the AST keeps the range).
    Text(usize, usize),
    Comment,
    Print(Expr),
    Tag(Tag),
}

/// Parses a comment, print or tag token (text is trimmed by [`trimmed_text`]).
fn flat_item(cx: &Ctx, t: &Token) -> R<FlatKind> {
    let span = Span::new(t.start, t.end);
    let code = cx.src.get(t.code.0..t.code.1).unwrap_or("");
    let sub = Ctx {
        base: t.code.0,
        closer: if t.kind == Kind::Print { "}}" } else { "%}" },
        code_end: t.code.1,
        ..*cx
    };
    Ok(match t.kind {
        Kind::Text | Kind::Verbatim => FlatKind::Text(t.code.0, t.code.0 + code.len()),
        Kind::Comment => FlatKind::Comment,
        Kind::Print => {
            if let Some(e) = super::fast::path(code, t.code.0, cx.max_depth, cx.names) {
                return Ok(FlatKind::Print(e));
            }
            with_stack_for(code, cx.max_depth, || {
                let pairs =
                    FlexieParser::parse(Rule::print_code, code).map_err(|e| pest_error(&sub, e))?;
                let e = pairs
                    .flatten()
                    .find(|p| p.as_rule() == Rule::expr)
                    .ok_or_else(|| cx.syntax("expected an expression", span))?;
                Ok(FlatKind::Print(expr(&sub, e)?))
            })?
        }
        Kind::Tag
            if matches!(
                super::fast::verbatim_candidate(code),
                "verbatim" | "endverbatim"
            ) =>
        {
            FlatKind::Comment
        }
        Kind::Tag => {
            if let Some(ft) = super::fast::tag(code, t.code.0, cx.max_depth, cx.names) {
                let tag = match ft {
                    FastTag::If(e) => Tag::If(e),
                    FastTag::ElseIf(e) => Tag::ElseIf(e),
                    FastTag::For(k, v, e) => Tag::For(k, v, e),
                    FastTag::Keyword(k) => keyword_tag(k, span),
                };
                return Ok(FlatKind::Tag(tag));
            }
            with_stack_for(code, cx.max_depth, || {
                let pairs =
                    FlexieParser::parse(Rule::tag_code, code).map_err(|e| pest_error(&sub, e))?;
                let st = pairs
                    .into_iter()
                    .next()
                    .and_then(|p| p.into_inner().next())
                    .ok_or_else(|| cx.syntax("expected a tag", span))?;
                Ok(FlatKind::Tag(tag(&sub, st, span)?))
            })?
        }
    })
}

/// Twig removes no newline after `{% verbatim %}` or `{% endverbatim %}`.
fn verbatim_tag(cx: &Ctx, t: &Token) -> bool {
    t.kind == Kind::Tag
        && matches!(
            cx.src
                .get(t.code.0..t.code.1)
                .map(super::fast::verbatim_candidate),
            Some("verbatim" | "endverbatim")
        )
}

fn keyword_tag(k: &str, span: Span) -> Tag {
    match k {
        "endfor" => Tag::EndFor,
        "endif" => Tag::EndIf,
        "else" => Tag::Else,
        "endset" => Tag::EndSet,
        "endwith" => Tag::EndWith,
        "endapply" => Tag::EndApply,
        "endautoescape" => Tag::EndAutoescape,
        "endmacro" => Tag::EndMacro,
        "break" => Tag::Stmt(Stmt {
            kind: StmtKind::Break,
            span,
        }),
        _ => Tag::Stmt(Stmt {
            kind: StmtKind::Continue,
            span,
        }),
    }
}

/// What `-` trims on its right (`-}}` and the text after it): Twig's lexer skips PCRE `\s`
/// there (space, tab, LF, vertical tab, form feed, CR), not a NUL nor a non-ASCII space.
const TRIM_RIGHT_OF_DASH: [char; 6] = [' ', '\t', '\n', '\x0b', '\x0c', '\r'];

/// What `-` trims on its left (the text before `{{-`): Twig calls PHP's `rtrim` there, whose
/// set is space, tab, LF, CR, NUL and vertical tab (a form feed stays).
const TRIM_LEFT_OF_DASH: [char; 6] = [' ', '\t', '\n', '\r', '\0', '\x0b'];

fn trim_text_start(s: &str, t: Trim, first_newline: bool) -> &str {
    match t {
        Trim::All => s.trim_start_matches(TRIM_RIGHT_OF_DASH),
        Trim::Line => s.trim_start_matches([' ', '\t', '\0', '\x0b']),
        Trim::No if first_newline => s
            .strip_prefix("\r\n")
            .or_else(|| s.strip_prefix('\n'))
            .unwrap_or(s),
        Trim::No => s,
    }
}

fn trim_text_end(s: &str, t: Trim) -> &str {
    match t {
        Trim::All => s.trim_end_matches(TRIM_LEFT_OF_DASH),
        Trim::Line => s.trim_end_matches([' ', '\t', '\0', '\x0b']),
        Trim::No => s,
    }
}

/// The byte range of text token `i` once trimmed by its neighbours' whitespace-control
/// markers and by the first-newline rule after a `%}` or `#}` (except after `{% verbatim %}`
/// and `{% endverbatim %}`: Twig removes no newline there).
fn trimmed_text(cx: &Ctx, tokens: &[Token], i: usize) -> (usize, usize) {
    let (prev_trim, prev_block) = match i.checked_sub(1).and_then(|j| tokens.get(j)) {
        Some(p) => (
            p.rtrim,
            matches!(p.kind, Kind::Tag | Kind::Comment) && !verbatim_tag(cx, p),
        ),
        None => (Trim::No, false),
    };
    let next_trim = tokens.get(i + 1).map_or(Trim::No, |n| n.ltrim);
    let Some(t) = tokens.get(i) else {
        return (0, 0);
    };
    let text = cx.src.get(t.code.0..t.code.1).unwrap_or("");
    let s = trim_text_start(text, prev_trim, prev_block);
    let start = t.code.0 + (text.len() - s.len());
    (start, start + trim_text_end(s, next_trim).len())
}

// ───────────────────────── nesting ─────────────────────────

enum Open {
    Root,
    If {
        done: Vec<(Expr, Vec<Stmt>)>,
        cond: Option<Expr>,
    },
    For {
        key: Option<Arc<str>>,
        value: Arc<str>,
        iter: Expr,
        main: Option<Vec<Stmt>>,
    },
    Set(Arc<str>),
    With(Option<Box<Expr>>, bool),
    Apply(Vec<FilterCall>),
    Autoescape(EscapeName),
    Macro(Arc<str>, Vec<(Arc<str>, Option<Expr>)>),
    Block(Arc<str>),
    Embed(Box<IncludeTag>),
    Guard {
        kind: Arc<str>,
        name: Arc<str>,
        main: Option<Vec<Stmt>>,
    },
}

struct Frame {
    open: Open,
    tag: &'static str,
    span: Span,
    /// Where the block's statements start in [`Nest::stmts`] while it is read.
    start: usize,
    /// The statements of the block (or of its branch) once read: moved out of
    /// [`Nest::stmts`] when an `else`, `elseif` or end tag reaches the block.
    body: Vec<Stmt>,
}

/// The blocks open while the template is read, innermost last, and the macros defined.
struct Nest {
    stack: Vec<Frame>,
    /// The statements read so far and not yet in a closed block: those of each open block
    /// follow those of the block around it. A block's statements are moved out when it
    /// closes (or switches branch) into a vector of exactly their number: no body grows.
    stmts: Vec<Stmt>,
    macros: Vec<Arc<Macro>>,
}

impl Nest {
    /// `tokens`: how many tokens the template has (at most as many statements).
    fn new(tokens: usize) -> Nest {
        let mut stack = Vec::with_capacity(4);
        stack.push(Frame {
            open: Open::Root,
            tag: "",
            span: Span::default(),
            start: 0,
            body: Vec::new(),
        });
        Nest {
            stack,
            stmts: Vec::with_capacity(tokens.min(4096)),
            macros: Vec::new(),
        }
    }

    /// Adds the next item (spanning `span`) to the innermost open block.
    fn item(&mut self, cx: &Ctx, kind: FlatKind, span: Span) -> R<()> {
        let stmt = match kind {
            FlatKind::Text(a, b) if a >= b => None,
            FlatKind::Text(a, b) => Some(StmtKind::Text(Span::new(a, b))),
            FlatKind::Comment => None,
            FlatKind::Print(e) => Some(StmtKind::Print(e)),
            FlatKind::Tag(tag) => {
                if tag.ends_branch() {
                    // the innermost block's statements, for the tag to take
                    if let Some(top) = self.stack.last_mut() {
                        let from = top.start.min(self.stmts.len());
                        top.body = self.stmts.drain(from..).collect();
                    }
                }
                let depth = self.stack.len();
                let stmt = handle_tag(cx, &mut self.stack, &mut self.macros, tag, span)?;
                if self.stack.len() > depth {
                    // a block opened: its statements start here
                    if let Some(top) = self.stack.last_mut() {
                        top.start = self.stmts.len();
                    }
                }
                stmt
            }
        };
        if let Some(kind) = stmt {
            self.stmts.push(Stmt { kind, span });
        }
        Ok(())
    }

    /// The template, once every block is closed.
    fn finish(self, cx: &Ctx) -> R<Parsed> {
        if self.stack.len() > 1 {
            if let Some(top) = self.stack.last() {
                let (l, c) = cx.line_col(top.span.start);
                let end = cx.src.len();
                return Err(cx.syntax(
                    format!(
                        "expected \"end{}\" to close \"{}\" opened at {l}:{c}",
                        top.tag, top.tag
                    ),
                    Span::new(end, end),
                ));
            }
        }
        Ok(Parsed {
            body: self.stmts,
            macros: self.macros,
        })
    }
}

fn open(
    cx: &Ctx,
    stack: &mut Vec<Frame>,
    open: Open,
    tag: &'static str,
    span: Span,
) -> R<Option<StmtKind>> {
    if stack.len() > cx.max_depth {
        return Err(cx.err(
            ErrorKind::Limit,
            format!("nesting depth exceeds the limit of {}", cx.max_depth),
            span,
        ));
    }
    stack.push(Frame {
        open,
        tag,
        span,
        start: 0,
        body: Vec::new(),
    });
    Ok(None)
}

fn close(cx: &Ctx, stack: &mut Vec<Frame>, tag: &str, span: Span) -> R<Frame> {
    match stack.last() {
        Some(top) if top.tag == tag => stack.pop().ok_or_else(|| cx.syntax("unbalanced", span)),
        Some(top) if !top.tag.is_empty() => {
            let (l, c) = cx.line_col(top.span.start);
            Err(cx.syntax(
                format!(
                    "expected \"end{}\" to close \"{}\" opened at {l}:{c}, found \"end{tag}\"",
                    top.tag, top.tag
                ),
                span,
            ))
        }
        _ => Err(cx.syntax(
            format!("unexpected \"end{tag}\": no \"{tag}\" is open"),
            span,
        )),
    }
}

fn handle_tag(
    cx: &Ctx,
    stack: &mut Vec<Frame>,
    macros: &mut Vec<Arc<Macro>>,
    tag: Tag,
    span: Span,
) -> R<Option<StmtKind>> {
    Ok(match tag {
        Tag::Stmt(s) => Some(s.kind),
        Tag::If(c) => {
            return open(
                cx,
                stack,
                Open::If {
                    done: vec![],
                    cond: Some(c),
                },
                "if",
                span,
            )
        }
        Tag::ElseIf(c2) => {
            match stack.last_mut() {
                Some(Frame {
                    open: Open::If { done, cond },
                    body,
                    ..
                }) if cond.is_some() => {
                    if let Some(c) = cond.take() {
                        done.push((c, std::mem::take(body)));
                    }
                    *cond = Some(c2);
                }
                _ => return Err(cx.syntax("unexpected \"elseif\" outside of an \"if\"", span)),
            }
            None
        }
        Tag::Else => {
            match stack.last_mut() {
                Some(Frame {
                    open: Open::If { done, cond },
                    body,
                    ..
                }) if cond.is_some() => {
                    if let Some(c) = cond.take() {
                        done.push((c, std::mem::take(body)));
                    }
                }
                Some(Frame {
                    open: Open::For { main, .. } | Open::Guard { main, .. },
                    body,
                    ..
                }) if main.is_none() => *main = Some(std::mem::take(body)),
                _ => {
                    return Err(cx.syntax("unexpected \"else\" outside of \"if\" or \"for\"", span))
                }
            }
            None
        }
        Tag::EndIf => {
            let f = close(cx, stack, "if", span)?;
            let Open::If { mut done, cond } = f.open else {
                return Err(cx.syntax("unbalanced if", span));
            };
            match cond {
                Some(c) => {
                    done.push((c, f.body));
                    Some(StmtKind::If(done, None))
                }
                None => Some(StmtKind::If(done, Some(f.body))),
            }
        }
        Tag::For(key, value, iter) => {
            return open(
                cx,
                stack,
                Open::For {
                    key,
                    value,
                    iter,
                    main: None,
                },
                "for",
                span,
            )
        }
        Tag::EndFor => {
            let f = close(cx, stack, "for", span)?;
            let Open::For {
                key,
                value,
                iter,
                main,
            } = f.open
            else {
                return Err(cx.syntax("unbalanced for", span));
            };
            let (body, else_body) = match main {
                Some(m) => (m, Some(f.body)),
                None => (f.body, None),
            };
            Some(StmtKind::For(Box::new(ForLoop {
                key,
                value,
                iter,
                body,
                else_body,
            })))
        }
        Tag::Set(n) => return open(cx, stack, Open::Set(n), "set", span),
        Tag::EndSet => {
            let f = close(cx, stack, "set", span)?;
            let Open::Set(n) = f.open else {
                return Err(cx.syntax("unbalanced set", span));
            };
            Some(StmtKind::SetBlock(n, f.body))
        }
        Tag::With(e, only) => return open(cx, stack, Open::With(e, only), "with", span),
        Tag::EndWith => {
            let f = close(cx, stack, "with", span)?;
            let Open::With(e, only) = f.open else {
                return Err(cx.syntax("unbalanced with", span));
            };
            Some(StmtKind::With(e, only, f.body))
        }
        Tag::Apply(fs) => return open(cx, stack, Open::Apply(fs), "apply", span),
        Tag::EndApply => {
            let f = close(cx, stack, "apply", span)?;
            let Open::Apply(fs) = f.open else {
                return Err(cx.syntax("unbalanced apply", span));
            };
            Some(StmtKind::Apply(fs, f.body))
        }
        Tag::Autoescape(n) => return open(cx, stack, Open::Autoescape(n), "autoescape", span),
        Tag::EndAutoescape => {
            let f = close(cx, stack, "autoescape", span)?;
            let Open::Autoescape(n) = f.open else {
                return Err(cx.syntax("unbalanced autoescape", span));
            };
            Some(StmtKind::Autoescape(n, f.body))
        }
        Tag::Macro(name, params) => {
            if stack.iter().any(|f| matches!(f.open, Open::Macro(..))) {
                return Err(cx.syntax("a macro cannot be defined inside another macro", span));
            }
            return open(cx, stack, Open::Macro(name, params), "macro", span);
        }
        Tag::Nothing => None,
        Tag::Block(name, short) => {
            if stack.iter().any(|f| matches!(f.open, Open::Macro(..))) {
                return Err(cx.syntax("a block cannot be defined inside a macro", span));
            }
            match short {
                Some(e) => {
                    let espan = e.span;
                    Some(StmtKind::Block(
                        name,
                        vec![Stmt {
                            kind: StmtKind::Print(e),
                            span: espan,
                        }],
                    ))
                }
                None => return open(cx, stack, Open::Block(name), "block", span),
            }
        }
        Tag::EndBlock(given) => {
            let f = close(cx, stack, "block", span)?;
            let Open::Block(name) = f.open else {
                return Err(cx.syntax("unbalanced block", span));
            };
            if let Some((g, gspan)) = given {
                if g != name {
                    return Err(cx.syntax(
                        format!("expected endblock for block \"{name}\" (but \"{g}\" given)"),
                        gspan,
                    ));
                }
            }
            Some(StmtKind::Block(name, f.body))
        }
        Tag::Embed(tag) => return open(cx, stack, Open::Embed(tag), "embed", span),
        Tag::EndEmbed => {
            let f = close(cx, stack, "embed", span)?;
            let Open::Embed(tag) = f.open else {
                return Err(cx.syntax("unbalanced embed", span));
            };
            Some(StmtKind::Embed(tag, f.body))
        }
        Tag::Guard(kind, name) => {
            return open(
                cx,
                stack,
                Open::Guard {
                    kind,
                    name,
                    main: None,
                },
                "guard",
                span,
            )
        }
        Tag::EndGuard => {
            let f = close(cx, stack, "guard", span)?;
            let Open::Guard { kind, name, main } = f.open else {
                return Err(cx.syntax("unbalanced guard", span));
            };
            let (body, else_body) = match main {
                Some(m) => (m, f.body),
                None => (f.body, Vec::new()),
            };
            Some(StmtKind::Guard(Box::new(GuardTag {
                kind,
                name,
                body,
                else_body,
            })))
        }
        Tag::EndMacro => {
            let f = close(cx, stack, "macro", span)?;
            let Open::Macro(name, params) = f.open else {
                return Err(cx.syntax("unbalanced macro", span));
            };
            macros.push(Arc::new(Macro {
                name,
                params,
                body: f.body,
            }));
            None
        }
    })
}

// ───────────────────────── tags ─────────────────────────

fn names(cx: &Ctx, p: Pair<Rule>) -> R<Vec<(Arc<str>, Span)>> {
    p.into_inner()
        .map(|n| assignable(cx, n.as_str(), cx.span(&n)).map(|a| (a, cx.span(&n))))
        .collect()
}

/// A name a tag assigns to: never `true`, `false`, `null` or `none` (as Twig).
fn assignable(cx: &Ctx, n: &str, span: Span) -> R<Arc<str>> {
    if ["true", "false", "null", "none"]
        .iter()
        .any(|k| n.eq_ignore_ascii_case(k))
    {
        return Err(cx.syntax(format!("cannot assign a value to `{n}`"), span));
    }
    Ok(cx.name(n))
}

fn template_ref(p: Pair<Rule>) -> TemplateRef {
    match p.into_inner().next() {
        Some(inner) if inner.as_rule() == Rule::string => TemplateRef::Named(Arc::from(
            unescape(
                inner
                    .as_str()
                    .get(1..inner.as_str().len() - 1)
                    .unwrap_or(""),
            )
            .as_str(),
        )),
        _ => TemplateRef::SelfRef,
    }
}

fn tag(cx: &Ctx, p: Pair<Rule>, span: Span) -> R<Tag> {
    let rule = p.as_rule();
    let pspan = cx.span(&p);
    let inner: Vec<Pair<Rule>> = p
        .into_inner()
        .filter(|c| !is_keyword(c.as_rule()))
        .collect();
    let mut it = inner.into_iter();
    let stmt = |kind| Tag::Stmt(Stmt { kind, span });
    Ok(match rule {
        Rule::set_stmt => {
            let (Some(ns), Some(es)) = (it.next(), it.next()) else {
                return Err(cx.syntax("malformed set", span));
            };
            let targets = names(cx, ns)?;
            let values = es
                .into_inner()
                .map(|e| expr(cx, e))
                .collect::<R<Vec<_>>>()?;
            if targets.len() != values.len() {
                return Err(cx.syntax(
                    format!(
                        "set: {} names but {} value{}",
                        targets.len(),
                        values.len(),
                        if values.len() == 1 { "" } else { "s" }
                    ),
                    span,
                ));
            }
            stmt(StmtKind::Set(targets, values))
        }
        Rule::set_block => {
            let n = it.next().ok_or_else(|| cx.syntax("malformed set", span))?;
            Tag::Set(assignable(cx, n.as_str(), cx.span(&n))?)
        }
        Rule::endset => Tag::EndSet,
        Rule::if_stmt => Tag::If(expr_at(cx, it.next(), span)?),
        Rule::elseif_stmt => Tag::ElseIf(expr_at(cx, it.next(), span)?),
        Rule::else_stmt => Tag::Else,
        Rule::endif => Tag::EndIf,
        Rule::for_stmt => {
            let (Some(ns), Some(e)) = (it.next(), it.next()) else {
                return Err(cx.syntax("malformed for", span));
            };
            let mut ns = names(cx, ns)?;
            if ns.len() > 2 {
                return Err(cx.syntax("for: at most two names (key, value)", span));
            }
            let value = ns.pop().map(|n| n.0).unwrap_or_else(|| Arc::from("_"));
            let key = ns.pop().map(|n| n.0);
            Tag::For(key, value, expr(cx, e)?)
        }
        Rule::endfor => Tag::EndFor,
        Rule::break_stmt => stmt(StmtKind::Break),
        Rule::continue_stmt => stmt(StmtKind::Continue),
        Rule::with_stmt => {
            let mut e = None;
            let mut only = false;
            for c in it {
                match c.as_rule() {
                    Rule::expr => e = Some(Box::new(expr(cx, c)?)),
                    Rule::only => only = true,
                    _ => {}
                }
            }
            Tag::With(e, only)
        }
        Rule::endwith => Tag::EndWith,
        Rule::apply_stmt => {
            let chain = it
                .next()
                .ok_or_else(|| cx.syntax("apply: expected a filter", span))?;
            Tag::Apply(
                chain
                    .into_inner()
                    .map(|fc| filter_call(cx, fc))
                    .collect::<R<Vec<_>>>()?,
            )
        }
        Rule::endapply => Tag::EndApply,
        Rule::autoescape_stmt => {
            let strategy = match it.next() {
                None => Some(Arc::from("html")),
                Some(c) if c.as_rule() == Rule::bool_lit => {
                    if c.as_str().eq_ignore_ascii_case("true") {
                        Some(Arc::from("html"))
                    } else {
                        None
                    }
                }
                Some(c) => Some(Arc::from(
                    unescape(c.as_str().get(1..c.as_str().len() - 1).unwrap_or("")).as_str(),
                )),
            };
            Tag::Autoescape(strategy)
        }
        Rule::endautoescape => Tag::EndAutoescape,
        Rule::do_stmt => stmt(StmtKind::Do(expr_at(cx, it.next(), span)?)),
        Rule::include_stmt => {
            let name = expr_at(cx, it.next(), span)?;
            let (mut ignore_missing, mut with, mut only) = (false, None, false);
            for c in it {
                match c.as_rule() {
                    Rule::ignore_missing => ignore_missing = true,
                    Rule::expr => with = Some(expr(cx, c)?),
                    Rule::only => only = true,
                    _ => {}
                }
            }
            stmt(StmtKind::Include(Box::new(IncludeTag {
                name,
                ignore_missing,
                with,
                only,
            })))
        }
        Rule::macro_stmt => {
            let name = Arc::from(it.next().map_or("", |n| n.as_str()));
            let mut params = Vec::new();
            for mp in it {
                let mut mi = mp.into_inner();
                let pn = mi
                    .next()
                    .ok_or_else(|| cx.syntax("malformed macro", span))?;
                let pname = assignable(cx, pn.as_str(), cx.span(&pn))?;
                if &*pname == "varargs" {
                    return Err(cx.syntax(
                        format!("the argument `varargs` of macro `{name}` cannot be declared: `varargs` holds the extra arguments"),
                        cx.span(&pn),
                    ));
                }
                let default = match mi.next() {
                    Some(e) => Some(expr(cx, e)?),
                    None => None,
                };
                params.push((pname, default));
            }
            Tag::Macro(name, params)
        }
        Rule::endmacro => Tag::EndMacro,
        Rule::import_stmt => {
            let (Some(r), Some(alias)) = (it.next(), it.next()) else {
                return Err(cx.syntax("malformed import", span));
            };
            let alias = assignable(cx, alias.as_str(), cx.span(&alias))?;
            stmt(StmtKind::Import(template_ref(r), alias))
        }
        Rule::from_stmt => {
            let r = it.next().ok_or_else(|| cx.syntax("malformed from", span))?;
            let mut list = Vec::new();
            for item in it {
                let mut ii = item.into_inner().filter(|c| c.as_rule() == Rule::name);
                let n: Arc<str> = Arc::from(ii.next().map_or("", |n| n.as_str()));
                let alias = match ii.next() {
                    Some(a) => assignable(cx, a.as_str(), cx.span(&a))?,
                    None => n.clone(),
                };
                list.push((n, alias));
            }
            stmt(StmtKind::FromImport(template_ref(r), list))
        }
        Rule::extends_stmt => stmt(StmtKind::Extends(expr_at(cx, it.next(), span)?)),
        Rule::block_stmt => {
            let n = it.next().map_or("", |n| n.as_str());
            let short = match it.next() {
                Some(e) => Some(expr(cx, e)?),
                None => None,
            };
            Tag::Block(Arc::from(n), short)
        }
        Rule::endblock => Tag::EndBlock(it.next().map(|n| (Arc::from(n.as_str()), cx.span(&n)))),
        Rule::embed_stmt => {
            let name = expr_at(cx, it.next(), span)?;
            let (mut ignore_missing, mut with, mut only) = (false, None, false);
            for c in it {
                match c.as_rule() {
                    Rule::ignore_missing => ignore_missing = true,
                    Rule::expr => with = Some(expr(cx, c)?),
                    Rule::only => only = true,
                    _ => {}
                }
            }
            Tag::Embed(Box::new(IncludeTag {
                name,
                ignore_missing,
                with,
                only,
            }))
        }
        Rule::endembed => Tag::EndEmbed,
        Rule::use_stmt => {
            let name = expr_at(cx, it.next(), span)?;
            let mut renames = Vec::new();
            for item in it {
                let mut ii = item.into_inner().filter(|c| c.as_rule() == Rule::name);
                let Some(a) = ii.next() else {
                    return Err(cx.syntax("malformed use", span));
                };
                let b = ii.next().unwrap_or_else(|| a.clone());
                renames.push((Arc::from(a.as_str()), Arc::from(b.as_str())));
            }
            stmt(StmtKind::Use(Box::new(name), renames))
        }
        Rule::guard_stmt => {
            let (Some(k), Some(n)) = (it.next(), it.next()) else {
                return Err(cx.syntax("malformed guard", span));
            };
            let name: String = n.as_str().split_whitespace().collect::<Vec<_>>().join(" ");
            Tag::Guard(Arc::from(k.as_str()), Arc::from(name.as_str()))
        }
        Rule::endguard => Tag::EndGuard,
        Rule::deprecated_stmt | Rule::flush_stmt => Tag::Nothing,
        Rule::unknown_tag => {
            let n = it.next().map_or("", |n| n.as_str());
            return Err(cx.syntax(format!("unknown tag `{n}`"), pspan));
        }
        _ => return Err(cx.syntax("unexpected tag", span)),
    })
}

fn is_keyword(r: Rule) -> bool {
    matches!(
        r,
        Rule::kw_set
            | Rule::kw_endset
            | Rule::kw_if
            | Rule::kw_elseif
            | Rule::kw_else
            | Rule::kw_endif
            | Rule::kw_for
            | Rule::kw_in
            | Rule::set_eq
            | Rule::kw_endfor
            | Rule::kw_break
            | Rule::kw_continue
            | Rule::kw_with
            | Rule::kw_endwith
            | Rule::kw_only
            | Rule::kw_apply
            | Rule::kw_endapply
            | Rule::kw_autoescape
            | Rule::kw_endautoescape
            | Rule::kw_do
            | Rule::kw_include
            | Rule::kw_ignore
            | Rule::kw_missing
            | Rule::kw_macro
            | Rule::kw_endmacro
            | Rule::kw_import
            | Rule::kw_from
            | Rule::kw_as
            | Rule::kw_is
            | Rule::kw_extends
            | Rule::kw_block
            | Rule::kw_endblock
            | Rule::kw_embed
            | Rule::kw_endembed
            | Rule::kw_use
            | Rule::kw_guard
            | Rule::kw_endguard
            | Rule::kw_deprecated
            | Rule::kw_flush
    )
}

fn expr_at(cx: &Ctx, p: Option<Pair<Rule>>, span: Span) -> R<Expr> {
    match p {
        Some(p) => expr(cx, p),
        None => Err(cx.syntax("expected an expression", span)),
    }
}

fn filter_call(cx: &Ctx, p: Pair<Rule>) -> R<FilterCall> {
    let mut it = p.into_inner();
    let n = it
        .next()
        .ok_or_else(|| cx.syntax("expected a filter name", Span::default()))?;
    let args = match it.next() {
        Some(a) => call_args(cx, a)?,
        None => Vec::new(),
    };
    Ok(FilterCall {
        name: cx.name(n.as_str()),
        span: cx.span(&n),
        args,
    })
}

// ───────────────────────── expressions ─────────────────────────

/// An expression with the depth of its tree (bounded by `max_depth`).
type D = R<(Expr, usize)>;

fn expr(cx: &Ctx, p: Pair<Rule>) -> R<Expr> {
    pratt_expr(cx, p).map(|(e, _)| e)
}

fn deeper(cx: &Ctx, d: usize, span: Span) -> R<usize> {
    if d > cx.max_depth {
        Err(cx.err(
            ErrorKind::Limit,
            format!(
                "expression nesting exceeds the depth limit of {}",
                cx.max_depth
            ),
            span,
        ))
    } else {
        Ok(d + 1)
    }
}

/// The Pratt parser recurses once per right-associative operator of a chain
/// (`a ?? b ?? c …`, `a ** b ** c …`): a chain longer than the depth limit is a
/// limit error before it is built, never a stack overflow.
fn check_right_chain(cx: &Ctx, p: &Pair<Rule>) -> R<()> {
    let mut n = 0usize;
    for op in p.clone().into_inner() {
        if matches!(
            op.as_rule(),
            Rule::op_pow | Rule::op_coalesce | Rule::op_elvis
        ) {
            n += 1;
            if n > cx.max_depth {
                return Err(cx.err(
                    ErrorKind::Limit,
                    format!(
                        "expression nesting exceeds the depth limit of {}",
                        cx.max_depth
                    ),
                    cx.span(&op),
                ));
            }
        }
    }
    Ok(())
}

fn pratt_expr(cx: &Ctx, p: Pair<Rule>) -> D {
    check_right_chain(cx, &p)?;
    pratt()
        .map_primary(|p| primary(cx, p))
        .map_prefix(|op, rhs: D| {
            let (rhs, d) = rhs?;
            let span = cx.span(&op).to(rhs.span);
            let d = deeper(cx, d, span)?;
            let kind = match op.as_rule() {
                Rule::op_not => ExprKind::Unary(UnOp::Not, Box::new(rhs)),
                Rule::op_neg => match rhs.kind {
                    ExprKind::Int(i) if i != i64::MIN => ExprKind::Int(-i),
                    ExprKind::Float(f) => ExprKind::Float(-f),
                    _ => ExprKind::Unary(UnOp::Neg, Box::new(rhs)),
                },
                _ => ExprKind::Unary(UnOp::Pos, Box::new(rhs)),
            };
            Ok((Expr { kind, span }, d))
        })
        .map_postfix(|lhs: D, op| {
            let (lhs, d) = lhs?;
            let span = lhs.span.to(cx.span(&op));
            let d = deeper(cx, d, span)?;
            if op.as_rule() == Rule::ternary {
                return ternary(cx, lhs, op, span, d);
            }
            Ok((postfix(cx, lhs, op, span)?, d))
        })
        .map_infix(|lhs: D, op, rhs: D| {
            let (lhs, d1) = lhs?;
            let (rhs, d2) = rhs?;
            let span = lhs.span.to(rhs.span);
            let d = deeper(cx, d1.max(d2), span)?;
            Ok((infix(cx, lhs, op, rhs, span)?, d))
        })
        .parse(p.into_inner())
}

fn infix(cx: &Ctx, l: Expr, op: Pair<Rule>, r: Expr, span: Span) -> R<Expr> {
    let (l, r) = (Box::new(l), Box::new(r));
    let o = match op.as_rule() {
        Rule::op_elvis => {
            return Ok(Expr {
                kind: ExprKind::Elvis(l, r),
                span,
            })
        }
        Rule::op_coalesce => {
            return Ok(Expr {
                kind: ExprKind::Coalesce(l, r),
                span,
            })
        }
        Rule::op_or => BinOp::Or,
        Rule::op_xor => BinOp::Xor,
        Rule::op_and => BinOp::And,
        Rule::op_bor => BinOp::BOr,
        Rule::op_bxor => BinOp::BXor,
        Rule::op_band => BinOp::BAnd,
        Rule::op_eq => BinOp::Eq,
        Rule::op_ne => BinOp::Ne,
        Rule::op_lt => BinOp::Lt,
        Rule::op_gt => BinOp::Gt,
        Rule::op_le => BinOp::Le,
        Rule::op_ge => BinOp::Ge,
        Rule::op_cmp => BinOp::Cmp,
        Rule::op_in => BinOp::In,
        Rule::op_not_in => BinOp::NotIn,
        Rule::op_matches => BinOp::Matches,
        Rule::op_starts => BinOp::StartsWith,
        Rule::op_ends => BinOp::EndsWith,
        Rule::op_has_some => BinOp::HasSome,
        Rule::op_has_every => BinOp::HasEvery,
        Rule::op_range => BinOp::Range,
        Rule::op_add => BinOp::Add,
        Rule::op_sub => BinOp::Sub,
        Rule::op_concat => BinOp::Concat,
        Rule::op_mul => BinOp::Mul,
        Rule::op_div => BinOp::Div,
        Rule::op_floordiv => BinOp::FloorDiv,
        Rule::op_mod => BinOp::Mod,
        Rule::op_pow => {
            // `-2 ** 2` is `-(2 ** 2)` as in Twig: a minus written right before the
            // left operand moves outside (a parenthesised `(-2) ** 2` stays).
            let signed = matches!(
                cx.src.as_bytes().get(l.span.start as usize),
                Some(b'-' | b'+')
            );
            if let (true, ExprKind::Unary(u @ (UnOp::Neg | UnOp::Pos), inner)) = (signed, &l.kind) {
                let (u, inner) = (*u, inner.clone());
                let inner_span = inner.span;
                let pow = Expr {
                    kind: ExprKind::Binary(BinOp::Pow, inner, r),
                    span: inner_span.to(span),
                };
                return Ok(Expr {
                    kind: ExprKind::Unary(u, Box::new(pow)),
                    span,
                });
            }
            if let (ExprKind::Int(_) | ExprKind::Float(_), Some(b'-')) =
                (&l.kind, cx.src.as_bytes().get(l.span.start as usize))
            {
                let l = *l;
                let pos = Expr {
                    kind: match l.kind {
                        ExprKind::Int(i) => ExprKind::Int(i.wrapping_neg()),
                        ExprKind::Float(f) => ExprKind::Float(-f),
                        k => k,
                    },
                    span: Span::new(l.span.start as usize + 1, l.span.end as usize),
                };
                let pow = Expr {
                    kind: ExprKind::Binary(BinOp::Pow, Box::new(pos), r),
                    span,
                };
                return Ok(Expr {
                    kind: ExprKind::Unary(UnOp::Neg, Box::new(pow)),
                    span,
                });
            }
            BinOp::Pow
        }
        _ => return Err(cx.syntax("unknown operator", cx.span(&op))),
    };
    Ok(Expr {
        kind: ExprKind::Binary(o, l, r),
        span,
    })
}

fn postfix(cx: &Ctx, lhs: Expr, op: Pair<Rule>, span: Span) -> R<Expr> {
    let l = Box::new(lhs);
    let kind = match op.as_rule() {
        Rule::attr => {
            let n = op.into_inner().next().map_or("", |n| n.as_str());
            ExprKind::Attr(l, cx.name(n))
        }
        Rule::subscript => {
            // `[start]`, or a slice `[start:len]` with both parts optional.
            let opt = |p: Option<Pair<Rule>>| -> R<Option<Box<Expr>>> {
                match p.and_then(|p| p.into_inner().next()) {
                    Some(e) => Ok(Some(Box::new(expr(cx, e)?))),
                    None => Ok(None),
                }
            };
            let mut parts = op.into_inner();
            let start = opt(parts.next())?;
            match (parts.next(), start) {
                (Some(_colon), start) => ExprKind::Slice(l, start, opt(parts.next())?),
                (None, Some(index)) => ExprKind::Item(l, index),
                (None, None) => {
                    let at = span.end.saturating_sub(1);
                    return Err(cx.syntax(
                        "expected an expression, found `]`",
                        Span::new(at as usize, span.end as usize),
                    ));
                }
            }
        }
        Rule::call_args => ExprKind::CallValue(l, call_args(cx, op)?),
        Rule::dyn_attr => {
            let e = op
                .into_inner()
                .next()
                .ok_or_else(|| cx.syntax("expected an expression", span))?;
            ExprKind::DynAttr(l, Box::new(expr(cx, e)?))
        }
        Rule::filter => {
            let fc = op
                .into_inner()
                .next()
                .ok_or_else(|| cx.syntax("expected a filter", span))?;
            let f = filter_call(cx, fc)?;
            ExprKind::Filter(l, f.name, f.span, f.args.into_boxed_slice())
        }
        Rule::test => {
            let mut negated = false;
            let mut name = None;
            let mut args = Vec::new();
            for c in op.into_inner() {
                match c.as_rule() {
                    Rule::test_not => negated = true,
                    Rule::test_name | Rule::test_two_name => {
                        let n: String = c.as_str().split_whitespace().collect::<Vec<_>>().join(" ");
                        name = Some((Arc::from(n.as_str()), cx.span(&c)));
                    }
                    Rule::call_args => args = call_args(cx, c)?,
                    Rule::test_one => args.push(Arg {
                        name: None,
                        value: pratt_expr(cx, c)?.0,
                    }),
                    _ => {}
                }
            }
            let (n, nspan) = name.ok_or_else(|| cx.syntax("expected a test name", span))?;
            ExprKind::Test(l, negated, n, nspan, args.into_boxed_slice())
        }
        _ => return Err(cx.syntax("unknown operator", cx.span(&op))),
    };
    Ok(Expr { kind, span })
}

/// `cond ? then` or `cond ? then : else`; the depth is the deepest branch's.
fn ternary(cx: &Ctx, cond: Expr, op: Pair<Rule>, span: Span, d: usize) -> D {
    let mut parts = op.into_inner();
    let then = parts
        .next()
        .ok_or_else(|| cx.syntax("malformed ternary", span))?;
    let (then, dt) = pratt_expr(cx, then)?;
    let (otherwise, de) = match parts.next().and_then(|e| e.into_inner().next()) {
        Some(e) => {
            let (e, de) = pratt_expr(cx, e)?;
            (Some(Box::new(e)), de)
        }
        None => (None, 0),
    };
    let span = match &otherwise {
        Some(e) => span.to(e.span),
        None => span,
    };
    let d = deeper(cx, d.max(dt).max(de), span)?;
    let kind = ExprKind::Cond(Box::new(cond), Box::new(then), otherwise);
    Ok((Expr { kind, span }, d))
}

fn call_args(cx: &Ctx, p: Pair<Rule>) -> R<Vec<Arg>> {
    let mut out = Vec::new();
    for a in p.into_inner() {
        match a.as_rule() {
            Rule::named_arg => {
                let mut it = a.into_inner();
                let (Some(n), Some(e)) = (it.next(), it.next()) else {
                    return Err(cx.syntax("malformed argument", Span::default()));
                };
                out.push(Arg {
                    name: Some((Arc::from(n.as_str()), cx.span(&n))),
                    value: expr(cx, e)?,
                });
            }
            _ => out.push(Arg {
                name: None,
                value: expr(cx, a)?,
            }),
        }
    }
    Ok(out)
}

fn primary(cx: &Ctx, p: Pair<Rule>) -> D {
    let span = cx.span(&p);
    let s = p.as_str();
    let mk = |kind| Ok((Expr { kind, span }, 1));
    match p.as_rule() {
        Rule::paren => {
            let inner = p
                .into_inner()
                .next()
                .ok_or_else(|| cx.syntax("expected an expression", span))?;
            // The span covers the parentheses (`(-2) ** 2` is not `-(2 ** 2)`).
            pratt_expr(cx, inner).map(|(mut e, d)| {
                e.span = span;
                (e, d)
            })
        }
        Rule::number => {
            if s.contains(['.', 'e', 'E']) {
                mk(ExprKind::Float(s.parse().unwrap_or(f64::NAN)))
            } else {
                match s.parse::<i64>() {
                    Ok(i) => mk(ExprKind::Int(i)),
                    Err(_) => mk(ExprKind::Float(s.parse().unwrap_or(f64::INFINITY))),
                }
            }
        }
        Rule::string => string(cx, p).map(|e| (e, 1)),
        Rule::list => {
            let items = p.into_inner().map(|e| expr(cx, e)).collect::<R<Vec<_>>>()?;
            mk(ExprKind::List(items))
        }
        Rule::map => {
            let mut entries = Vec::new();
            for entry in p.into_inner() {
                let espan = cx.span(&entry);
                let mut it = entry.into_inner();
                let key = it
                    .next()
                    .and_then(|k| k.into_inner().next())
                    .ok_or_else(|| cx.syntax("expected a map key", espan))?;
                let kspan = cx.span(&key);
                let value = it.next();
                let key_expr = match key.as_rule() {
                    Rule::name => Expr {
                        kind: ExprKind::Str(Arc::from(key.as_str())),
                        span: kspan,
                    },
                    Rule::string => string(cx, key.clone())?,
                    Rule::number => primary(cx, key.clone())?.0,
                    _ => primary(cx, key.clone())?.0,
                };
                let value = match value {
                    Some(v) => expr(cx, v)?,
                    None if key.as_rule() == Rule::name => Expr {
                        kind: ExprKind::Name(Arc::from(key.as_str())),
                        span: kspan,
                    },
                    None => {
                        return Err(
                            cx.syntax("expected \":\" and a value after this map key", kspan)
                        )
                    }
                };
                entries.push((key_expr, value));
            }
            mk(ExprKind::Map(entries))
        }
        Rule::named => {
            let mut it = p.into_inner();
            let n = it
                .next()
                .ok_or_else(|| cx.syntax("expected a name", span))?;
            let name = n.as_str();
            match it.next() {
                None => {
                    // The name's own span (the `named` rule may end with whitespace).
                    let is = |k: &str| name.eq_ignore_ascii_case(k);
                    let kind = if is("true") {
                        ExprKind::Bool(true)
                    } else if is("false") {
                        ExprKind::Bool(false)
                    } else if is("null") || is("none") {
                        ExprKind::Null
                    } else {
                        ExprKind::Name(cx.name(name))
                    };
                    Ok((
                        Expr {
                            kind,
                            span: cx.span(&n),
                        },
                        1,
                    ))
                }
                Some(a) if a.as_rule() == Rule::call_args => mk(ExprKind::Call(
                    cx.name(name),
                    cx.span(&n),
                    call_args(cx, a)?,
                )),
                Some(body) => {
                    let b = body
                        .into_inner()
                        .next()
                        .ok_or_else(|| cx.syntax("expected an expression", span))?;
                    mk(ExprKind::Arrow(
                        vec![assignable(cx, name, cx.span(&n))?],
                        Box::new(expr(cx, b)?),
                    ))
                }
            }
        }
        Rule::arrow => {
            let mut it = p.into_inner();
            let (Some(ps), Some(body)) = (it.next(), it.next()) else {
                return Err(cx.syntax("malformed arrow function", span));
            };
            let params = ps
                .into_inner()
                .map(|n| assignable(cx, n.as_str(), cx.span(&n)))
                .collect::<R<Vec<_>>>()?;
            mk(ExprKind::Arrow(params, Box::new(expr(cx, body)?)))
        }
        _ => Err(cx.syntax("expected an expression", span)),
    }
}

fn string(cx: &Ctx, p: Pair<Rule>) -> R<Expr> {
    let span = cx.span(&p);
    let inner = p
        .into_inner()
        .next()
        .ok_or_else(|| cx.syntax("malformed string", span))?;
    let mut parts: Vec<Expr> = Vec::new();
    for part in inner.into_inner() {
        match part.as_rule() {
            Rule::sq_part | Rule::dq_part => parts.push(Expr {
                kind: ExprKind::Str(Arc::from(unescape(part.as_str()).as_str())),
                span: cx.span(&part),
            }),
            Rule::interp => {
                let e = part
                    .into_inner()
                    .next()
                    .ok_or_else(|| cx.syntax("expected an expression", span))?;
                parts.push(expr(cx, e)?);
            }
            _ => {}
        }
    }
    let kind = match parts.len() {
        0 => ExprKind::Str(Arc::from("")),
        1 if matches!(parts[0].kind, ExprKind::Str(_)) => parts.remove(0).kind,
        _ => ExprKind::Interp(parts),
    };
    Ok(Expr { kind, span })
}

/// Resolves `\\ \" \' \n \r \t`; any other backslash sequence is kept as written.
fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('t') => out.push('\t'),
            Some(c @ ('\\' | '"' | '\'' | '#')) => out.push(c),
            Some(other) => {
                out.push('\\');
                out.push(other);
            }
            None => out.push('\\'),
        }
    }
    out
}

#[cfg(test)]
mod fast_paths {
    use super::*;

    fn names() -> std::cell::RefCell<super::super::Names> {
        Default::default()
    }

    fn cx(code: &str) -> Ctx<'_> {
        Ctx {
            name: "t",
            src: code,
            max_depth: 128,
            base: 0,
            closer: "%}",
            code_end: code.len(),
            names: Box::leak(Box::new(names())),
        }
    }

    /// What pest makes of `{{ code }}`.
    fn pest_print(code: &str) -> Result<String, Error> {
        let cx = cx(code);
        let pairs = FlexieParser::parse(Rule::print_code, code).map_err(|e| pest_error(&cx, e))?;
        let e = pairs
            .flatten()
            .find(|p| p.as_rule() == Rule::expr)
            .ok_or_else(|| cx.syntax("expected an expression", Span::default()))?;
        Ok(format!("{:?}", expr(&cx, e)?))
    }

    /// What pest makes of `{% code %}`.
    fn pest_tag(code: &str) -> Result<String, Error> {
        let cx = cx(code);
        let span = Span::new(0, code.len());
        let pairs = FlexieParser::parse(Rule::tag_code, code).map_err(|e| pest_error(&cx, e))?;
        let st = pairs
            .into_iter()
            .next()
            .and_then(|p| p.into_inner().next())
            .ok_or_else(|| cx.syntax("expected a tag", span))?;
        Ok(format!("{:?}", tag(&cx, st, span)?))
    }

    /// The fast paths build exactly what pest builds (names, nesting and spans), and leave
    /// everything else to pest.
    #[test]
    fn fast_paths_build_what_pest_builds() {
        let prints = [
            "a",
            " team.name ",
            "loop.first",
            "  a.b.c.d  ",
            "a.0",
            "x.1.y",
            "_x",
            "a1.b_2",
            "nullable",
            "trueish.x",
            "nothing",
            "notes.x",
            "\tyear\n",
            "\u{b}x\u{b}",
            "\u{c}a.b\u{c}",
        ];
        for code in prints {
            let fast = super::super::fast::path(code, 0, 128, &names()).map(|e| format!("{e:?}"));
            assert_eq!(
                fast.as_deref(),
                Some(pest_print(code).unwrap().as_str()),
                "{code:?}"
            );
        }
        for code in [
            "true", "NULL", "none.x", "not x", "a.b()", "a .b", "a\n.b", "1", "a..b", "a.",
        ] {
            assert!(
                super::super::fast::path(code, 0, 128, &names()).is_none(),
                "{code:?}"
            );
        }
        let tags = [
            "endfor",
            " endif ",
            "else",
            "break",
            "continue",
            "endset",
            "endwith",
            "endapply",
            "endautoescape",
            "endmacro",
            "if loop.first",
            "if  x ",
            "elseif a.b",
            "for x in xs",
            "for k, v in m.items",
            "for k,v in m",
            "for  x  in  a.b ",
            "for item in data.0.rows",
            "endfor\u{c}",
            "\u{b}endif",
            "if\u{c}x",
            "elseif\u{b}a.b\u{c}",
            "for x in \u{c}xs",
            "for\u{b}k,\u{c}v in m",
        ];
        for code in tags {
            assert_eq!(
                fast_tag(code).as_deref(),
                Some(pest_tag(code).unwrap().as_str()),
                "{code:?}"
            );
        }
        for code in [
            "for x in 1..3",
            "for a, b, c in xs",
            "for x in xs if x",
            "if a == 1",
            "elseif not a",
            "Endfor",
            "endblock",
            "endfor x",
            "set x = 1",
            // only the grammar's whitespace (space, tab, CR, LF, VT, FF) is skipped
            "endfor\u{0}",
            "if\u{a0}x",
            "for x in\u{a0}xs",
            "for\u{85}x in xs",
        ] {
            assert!(
                super::super::fast::tag(code, 0, 128, &names()).is_none(),
                "{code:?}"
            );
        }
        for code in ["\u{0}a", "a\u{a0}", "\u{a0}a", "a.b\u{85}"] {
            assert!(
                super::super::fast::path(code, 0, 128, &names()).is_none(),
                "{code:?}"
            );
        }
    }

    /// What a fast path builds, as text (`None` when it declines).
    fn fast_print(code: &str) -> Option<String> {
        super::super::fast::path(code, 0, 128, &names()).map(|e| format!("{e:?}"))
    }

    /// What the tag fast path builds, as text (`None` when it declines).
    fn fast_tag(code: &str) -> Option<String> {
        let span = Span::new(0, code.len());
        super::super::fast::tag(code, 0, 128, &names()).map(|t| {
            format!(
                "{:?}",
                match t {
                    FastTag::If(e) => Tag::If(e),
                    FastTag::ElseIf(e) => Tag::ElseIf(e),
                    FastTag::For(k, v, e) => Tag::For(k, v, e),
                    FastTag::Keyword(k) => keyword_tag(k, span),
                }
            )
        })
    }

    /// Differential test on a corpus: the code of every `{{ }}` and `{% %}` of every fixture
    /// under tests/fixtures (and of some variants of it: other spacing, names cut short) gives
    /// the AST pest gives whenever a fast path takes it.
    #[test]
    fn fast_paths_agree_with_pest_on_the_fixtures() {
        fn files(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
            for e in std::fs::read_dir(dir).expect("fixture dir").flatten() {
                let p = e.path();
                if p.is_dir() {
                    files(&p, out);
                } else if p.extension().is_some_and(|x| x == "test") {
                    out.push(p);
                }
            }
        }
        let mut paths = Vec::new();
        files(
            &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures"),
            &mut paths,
        );
        assert!(paths.len() > 500, "{} fixtures", paths.len());
        let (mut codes, mut taken) = (0, 0);
        for path in paths {
            let src = std::fs::read_to_string(&path).expect("fixture");
            let b = src.as_bytes();
            let mut i = 0;
            while let Some(off) = src[i..].find('{') {
                let at = i + off;
                i = at + 1;
                let tag = match b.get(at + 1) {
                    Some(b'{') => false,
                    Some(b'%') => true,
                    _ => continue,
                };
                let from = at + 2 + usize::from(matches!(b.get(at + 2), Some(b'-' | b'~')));
                let Ok(end) = super::super::lex::scan_code("t", &src, from, 128, Some(tag)) else {
                    continue;
                };
                let Some(code) = src.get(from..end) else {
                    continue;
                };
                let code = code.strip_suffix(['-', '~']).unwrap_or(code);
                let t = code.trim();
                let mut variants = vec![
                    code.to_string(),
                    t.to_string(),
                    format!("\t{t}\n"),
                    t.replacen(' ', "  ", 1),
                    t.replacen(' ', "\n", 1),
                    t.replacen(' ', "\u{c}", 1),
                    t.replacen(' ', "\u{b}", 1),
                    format!("\u{b}{t}\u{c}"),
                    t.replacen('.', " .", 1),
                    t.replacen('.', "..", 1),
                ];
                variants.extend((1..t.len()).filter_map(|n| t.get(..n).map(str::to_string)));
                for v in variants {
                    codes += 1;
                    let (fast, pest) = if tag {
                        (fast_tag(&v), pest_tag(&v).ok())
                    } else {
                        (fast_print(&v), pest_print(&v).ok())
                    };
                    if let Some(f) = fast {
                        taken += 1;
                        assert_eq!(Some(f), pest, "{}: {v:?}", path.display());
                    }
                }
            }
        }
        assert!(
            codes > 10_000 && taken > 1_000,
            "{codes} codes, {taken} fast"
        );
    }
}

#[cfg(test)]
mod perf {
    use super::*;

    #[test]
    #[ignore]
    fn pest_call_cost() {
        for (rule, code) in [
            (Rule::tag_code, "endfor"),
            (Rule::tag_code, "for row in table"),
            (Rule::print_code, " cell "),
            (Rule::print_code, " team.name "),
        ] {
            let n = 20000;
            let t = std::time::Instant::now();
            for _ in 0..n {
                std::hint::black_box(FlexieParser::parse(rule, code).map(|p| p.count()).ok());
            }
            let parse = t.elapsed().as_secs_f64() / n as f64 * 1e9;
            let names = Default::default();
            let cx = Ctx {
                name: "t",
                src: code,
                max_depth: 128,
                base: 0,
                closer: "}}",
                code_end: code.len(),
                names: &names,
            };
            let t = std::time::Instant::now();
            for _ in 0..n {
                if let Ok(pairs) = FlexieParser::parse(rule, code) {
                    if let Some(e) = pairs.flatten().find(|p| p.as_rule() == Rule::expr) {
                        std::hint::black_box(expr(&cx, e).ok());
                    }
                }
            }
            let conv = t.elapsed().as_secs_f64() / n as f64 * 1e9;
            println!("{code:?}: pest {parse:.0}ns, pest+ast {conv:.0}ns");
        }
    }
}

/// The sets `-` trims on either side (a NUL cannot sit in a fixture file).
#[cfg(test)]
mod dash_trim {
    #[test]
    fn dash_trims_nul_on_its_left_only() {
        let engine = crate::Engine::new();
        let t = engine.compile(
            "t",
            "a \0{{- x -}}\0 b|c\u{b}\0 {%- if 1 -%}\0 d{% endif %}",
        );
        let out = t.unwrap().render(&serde_json::json!({"x": "X"})).unwrap();
        assert_eq!(out, "aX\0 b|c\0 d");
    }
}
