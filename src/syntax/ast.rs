//! The abstract syntax tree: what the parser produces and the compiler consumes.
//! Every expression and statement carries the byte span it came from.

use std::sync::Arc;

/// A byte range into the template source.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Span {
    pub start: u32,
    pub end: u32,
}

impl Span {
    pub fn new(start: usize, end: usize) -> Span {
        Span {
            start: start as u32,
            end: end as u32,
        }
    }
    /// The span covering both.
    pub fn to(self, other: Span) -> Span {
        Span {
            start: self.start.min(other.start),
            end: self.end.max(other.end),
        }
    }
    pub fn range(self) -> std::ops::Range<usize> {
        self.start as usize..self.end as usize
    }
}

/// Binary operators (docs/language.md §2.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BinOp {
    Or,
    Xor,
    And,
    BOr,
    BXor,
    BAnd,
    Eq,
    Ne,
    Lt,
    Gt,
    Le,
    Ge,
    Cmp,
    In,
    NotIn,
    Matches,
    StartsWith,
    EndsWith,
    HasSome,
    HasEvery,
    Range,
    Add,
    Sub,
    Concat,
    Mul,
    Div,
    FloorDiv,
    Mod,
    Pow,
}

/// Unary operators.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UnOp {
    Not,
    Neg,
    Pos,
}

/// A call argument: positional, named, with its span.
#[derive(Clone, Debug)]
pub struct Arg {
    pub name: Option<(Arc<str>, Span)>,
    pub value: Expr,
}

/// An expression node.
#[derive(Clone, Debug)]
pub struct Expr {
    pub kind: ExprKind,
    pub span: Span,
}

#[derive(Clone, Debug)]
pub enum ExprKind {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(Arc<str>),
    /// `"a #{b} c"`: parts concatenated.
    Interp(Vec<Expr>),
    List(Vec<Expr>),
    /// Keys are expressions (bare names already turned into string literals).
    Map(Vec<(Expr, Expr)>),
    Name(Arc<str>),
    /// `a.b` / `a.0`.
    Attr(Box<Expr>, Arc<str>),
    /// `a[k]`.
    Item(Box<Expr>, Box<Expr>),
    /// `a.(expr)`: attribute named by an expression.
    DynAttr(Box<Expr>, Box<Expr>),
    /// `a[start:length]`.
    Slice(Box<Expr>, Option<Box<Expr>>, Option<Box<Expr>>),
    Unary(UnOp, Box<Expr>),
    Binary(BinOp, Box<Expr>, Box<Expr>),
    /// `c ? a : b`; `c ? a` has `None` as else; `a ?: b` is `Elvis`.
    Cond(Box<Expr>, Box<Expr>, Option<Box<Expr>>),
    Elvis(Box<Expr>, Box<Expr>),
    Coalesce(Box<Expr>, Box<Expr>),
    /// `name(args)`.
    Call(Arc<str>, Span, Vec<Arg>),
    /// `callee(args)` on something that is not a plain name (`a.b()`, `m.macro()`).
    CallValue(Box<Expr>, Vec<Arg>),
    /// `value | name(args)` (the arguments a boxed slice, as in `Test`: it keeps an `Expr` at
    /// 64 bytes and a `Stmt` at 80, asserted below).
    Filter(Box<Expr>, Arc<str>, Span, Box<[Arg]>),
    /// `value is [not] name(args)`.
    Test(Box<Expr>, bool, Arc<str>, Span, Box<[Arg]>),
    /// `x => body`, `(a, b) => body`.
    Arrow(Vec<Arc<str>>, Box<Expr>),
}

/// A filter in an `apply` tag.
#[derive(Clone, Debug)]
pub struct FilterCall {
    pub name: Arc<str>,
    pub span: Span,
    pub args: Vec<Arg>,
}

/// What `import`/`from` refer to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TemplateRef {
    SelfRef,
    Named(Arc<str>),
}

/// A macro definition.
#[derive(Clone, Debug)]
pub struct Macro {
    pub name: Arc<str>,
    pub params: Vec<(Arc<str>, Option<Expr>)>,
    pub body: Vec<Stmt>,
}

/// Autoescape strategy of an `autoescape` block (`None` = `false`).
pub type EscapeName = Option<Arc<str>>;

/// A statement node.
#[derive(Clone, Debug)]
pub struct Stmt {
    pub kind: StmtKind,
    pub span: Span,
}

#[derive(Clone, Debug)]
pub enum StmtKind {
    /// Template text: its byte range in the source (after whitespace control), not a copy.
    Text(Span),
    Print(Expr),
    Set(Vec<(Arc<str>, Span)>, Vec<Expr>),
    SetBlock(Arc<str>, Vec<Stmt>),
    If(Vec<(Expr, Vec<Stmt>)>, Option<Vec<Stmt>>),
    For(Box<ForLoop>),
    Break,
    Continue,
    With(Option<Box<Expr>>, bool, Vec<Stmt>),
    Apply(Vec<FilterCall>, Vec<Stmt>),
    Autoescape(EscapeName, Vec<Stmt>),
    Do(Expr),
    Include(Box<IncludeTag>),
    Import(TemplateRef, Arc<str>),
    FromImport(TemplateRef, Vec<(Arc<str>, Arc<str>)>),
    /// `{% extends expr %}`.
    Extends(Expr),
    /// `{% block name %}…{% endblock %}`: a definition, rendered in place.
    Block(Arc<str>, Vec<Stmt>),
    /// `{% embed expr … %}…{% endembed %}`: the body holds the overriding blocks.
    Embed(Box<IncludeTag>, Vec<Stmt>),
    /// `{% use "tpl" with a as b %}`.
    Use(Box<Expr>, Vec<(Arc<str>, Arc<str>)>),
    /// `{% guard function x %}…{% else %}…{% endguard %}`.
    Guard(Box<GuardTag>),
}

// The large statements are boxed so that a `Stmt` stays small (80 bytes): the parser moves
// every statement into its block's body, and most statements are text and prints.

/// `{% for key, value in iter %}…{% else %}…{% endfor %}`.
#[derive(Clone, Debug)]
pub struct ForLoop {
    pub key: Option<Arc<str>>,
    pub value: Arc<str>,
    pub iter: Expr,
    pub body: Vec<Stmt>,
    pub else_body: Option<Vec<Stmt>>,
}

/// What `{% include %}` and `{% embed %}` name and pass.
#[derive(Clone, Debug)]
pub struct IncludeTag {
    pub name: Expr,
    pub ignore_missing: bool,
    pub with: Option<Expr>,
    pub only: bool,
}

/// `{% guard kind name %}…{% else %}…{% endguard %}`.
#[derive(Clone, Debug)]
pub struct GuardTag {
    /// `function`, `filter` or `test`.
    pub kind: Arc<str>,
    pub name: Arc<str>,
    pub body: Vec<Stmt>,
    pub else_body: Vec<Stmt>,
}

const _: () = assert!(std::mem::size_of::<Expr>() == 64);
const _: () = assert!(std::mem::size_of::<Stmt>() == 80);
