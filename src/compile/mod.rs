//! AST → executable IR ([`ir`]): resolves variables to slots, builtins to functions
//! (unknown names are compile errors with a "did you mean" hint), named arguments to
//! positions, `loop.*` to direct reads, macros and imports; folds constants.

pub mod ir;
mod names;
pub(crate) mod reads;

pub(crate) use names::closest;

use crate::builtins::{Builtin, Registry, Signature};
use crate::error::{Error, ErrorKind};
use crate::loader::Library;
use crate::syntax::ast::{self, Arg, BinOp, ExprKind, Span, StmtKind, TemplateRef, UnOp};
use crate::syntax::Parsed;
use crate::value::{self, Value};
use ir::*;
use std::collections::HashMap;
use std::sync::Arc;

/// What the compiler needs from the engine.
pub struct Env<'a> {
    pub registry: &'a Registry,
    /// Named templates for `import`, `from`, `use` (loaded while compiling).
    pub library: &'a Library,
    /// Templates whose compilation is in progress around this one (an import cycle is an
    /// error); this one is added when it loads another.
    pub chain: &'a [Arc<str>],
    pub strict: bool,
}

const OUTSIDE_BLOCKS: &str = "a template that extends another one cannot include content outside blocks: put it inside a `{% block %}`";

type R<T> = Result<T, Error>;

#[derive(Clone)]
enum Import {
    SelfRef,
    Snippet(Arc<Program>),
}

/// Names → slots of a frame: scanned while there are few (a frame holds a handful of names
/// most of the time: a scan of short strings beats a SipHash each; compared inline by
/// `value::same_text`, not through `memcmp`), hashed beyond.
#[derive(Default)]
struct SlotMap {
    few: Vec<(Arc<str>, u32)>,
    many: HashMap<Arc<str>, u32>,
}

impl SlotMap {
    /// Names kept in the scanned list.
    const FEW: usize = 16;

    fn get(&self, name: &str) -> Option<u32> {
        if self.many.is_empty() {
            self.few
                .iter()
                .find(|(n, _)| value::same_text(n, name))
                .map(|e| e.1)
        } else {
            self.many.get(name).copied()
        }
    }

    fn insert(&mut self, name: Arc<str>, slot: u32) {
        if self.many.is_empty() {
            if let Some(e) = self
                .few
                .iter_mut()
                .find(|(n, _)| value::same_text(n, &name))
            {
                e.1 = slot;
                return;
            }
            if self.few.len() < Self::FEW {
                self.few.push((name, slot));
                return;
            }
            self.many = self.few.drain(..).collect();
        }
        self.many.insert(name, slot);
    }
}

/// Per-frame (template body or macro) variable table.
#[derive(Default)]
struct Frame {
    slots: SlotMap,
    names: Vec<Arc<str>>,
    /// Number of enclosing `for` loops.
    loops: u32,
    /// Enclosing output captures (`set` blocks, `apply`), innermost last, each with
    /// the loop count where it opened: `break`/`continue` may not cross one.
    captures: Vec<(&'static str, u32)>,
    /// Slots assigned inside each enclosing loop.
    assigned: Vec<Vec<(u32, Arc<str>)>>,
    /// Arrow-function parameter scopes (innermost last).
    arrows: Vec<HashMap<Arc<str>, u32>>,
}

impl Frame {
    fn slot(&mut self, name: &Arc<str>) -> u32 {
        if let Some(s) = self.slots.get(name) {
            return s;
        }
        let s = self.names.len() as u32;
        self.names.push(name.clone());
        self.slots.insert(name.clone(), s);
        s
    }
    fn fresh(&mut self, name: &Arc<str>) -> u32 {
        let s = self.names.len() as u32;
        self.names.push(name.clone());
        s
    }
    fn assign(&mut self, name: &Arc<str>) -> u32 {
        let s = self.slot(name);
        if let Some(a) = self.assigned.last_mut() {
            if !a.iter().any(|(x, _)| *x == s) {
                a.push((s, name.clone()));
            }
        }
        s
    }
}

struct Cx<'a> {
    env: &'a Env<'a>,
    name: &'a str,
    source: &'a str,
    /// The program's source, shared by its text nodes ([`Text`]) and the program.
    shared_source: Arc<str>,
    /// Own macros: name → (index, parameter names).
    own_macros: HashMap<Arc<str>, (usize, Vec<Arc<str>>)>,
    imports: HashMap<Arc<str>, Import>,
    from_imports: HashMap<Arc<str>, (Import, Arc<str>)>,
    frame: Frame,
    esc: Vec<Esc>,
    blocks: Vec<BlockDef>,
    block_names: HashMap<Arc<str>, Span>,
    traits: Vec<(Arc<str>, BlockChain)>,
    /// Nesting of block definitions being compiled (`parent()` needs one).
    in_block: usize,
    /// The template extends or uses another one (`parent()` has a target).
    has_parent: bool,
    /// The parent template when `extends` names a constant.
    parent_const: Option<Arc<str>>,
    /// The template-level imports (what every block starts from).
    top_imports: Option<TopImports>,
    /// How many long expressions [`Cx::expr_mode`] is nested in (the stack is probed at
    /// every 8th).
    expr_depth: u32,
}

type TopImports = (
    HashMap<Arc<str>, Import>,
    HashMap<Arc<str>, (Import, Arc<str>)>,
);

impl<'a> Cx<'a> {
    fn new(env: &'a Env<'a>, name: &'a str, source: &'a str, shared_source: Arc<str>) -> Cx<'a> {
        Cx {
            env,
            name,
            source,
            shared_source,
            own_macros: HashMap::new(),
            imports: HashMap::new(),
            from_imports: HashMap::new(),
            frame: Frame::default(),
            // empty: `Esc::Auto` outside `autoescape` blocks
            esc: Vec::new(),
            blocks: Vec::new(),
            block_names: HashMap::new(),
            traits: Vec::new(),
            in_block: 0,
            has_parent: false,
            parent_const: None,
            top_imports: None,
            expr_depth: 0,
        }
    }
}

/// Compiles a parsed template into a [`Program`].
pub fn compile_template(env: &Env, name: &str, source: &str, parsed: &Parsed) -> R<Program> {
    compile_program(env, name, Arc::from(source), parsed)
}

/// [`compile_template`] with the source already shared (an `embed` shares its template's).
fn compile_program(env: &Env, name: &str, source: Arc<str>, parsed: &Parsed) -> R<Program> {
    let text = Arc::clone(&source);
    let mut cx = Cx::new(env, name, &text, source);
    for (i, m) in parsed.macros.iter().enumerate() {
        let params = m.params.iter().map(|p| p.0.clone()).collect();
        cx.own_macros.insert(m.name.clone(), (i, params));
    }
    for s in &parsed.body {
        if let StmtKind::Extends(e) = &s.kind {
            cx.has_parent = true;
            if let ExprKind::Str(n) = &e.kind {
                cx.parent_const = Some(n.clone());
            }
        }
    }
    cx.collect_imports(&parsed.body)?;
    for m in &parsed.macros {
        cx.collect_imports(&m.body)?;
    }
    cx.top_imports = Some((cx.imports.clone(), cx.from_imports.clone()));
    let mut macros = Vec::new();
    for m in &parsed.macros {
        macros.push(cx.compile_macro(m)?);
    }
    names::declare(&parsed.body, &mut |n| {
        cx.frame.slot(n);
    });
    // `extends` (one, at the top level) and `use` come first.
    let mut parent: Option<&ast::Expr> = None;
    for s in &parsed.body {
        match &s.kind {
            StmtKind::Extends(e) => {
                if parent.is_some() {
                    return Err(cx.err(
                        ErrorKind::Syntax,
                        "multiple extends tags are forbidden",
                        s.span,
                    ));
                }
                parent = Some(e);
            }
            StmtKind::Use(e, renames) => cx.use_template(e, renames, s.span)?,
            _ => {}
        }
    }
    cx.has_parent |= parent.is_some();
    let body = if parent.is_some() {
        cx.child_body(&parsed.body)?
    } else {
        cx.stmts(&parsed.body)?
    };
    let parent_name = cx.parent_const.clone();
    let macro_index = parsed
        .macros
        .iter()
        .enumerate()
        .map(|(i, m)| (m.name.clone(), i))
        .collect();
    Ok(Program {
        name: Arc::from(name),
        source: cx.shared_source,
        body,
        slots: cx.frame.names.len(),
        slot_names: Arc::new(cx.frame.names),
        macros,
        macro_index,
        block_index: cx
            .blocks
            .iter()
            .enumerate()
            .map(|(i, b)| (b.name.clone(), i))
            .collect(),
        blocks: cx.blocks,
        traits: cx.traits,
        parent_name,
        size_hint: Default::default(),
        block_memo: Default::default(),
    })
}

/// Compiles a standalone expression; returns it with the number of slots it needs.
pub fn compile_expression(env: &Env, name: &str, source: &str, e: &ast::Expr) -> R<(Expr, usize)> {
    let mut cx = Cx::new(env, name, source, Arc::from(""));
    let e = cx.expr(e)?;
    Ok((e, cx.frame.names.len()))
}

impl Cx<'_> {
    /// The source text of a text statement.
    fn text(&self, t: Span) -> &str {
        self.source.get(t.range()).unwrap_or("")
    }

    fn err(&self, kind: ErrorKind, msg: impl Into<String>, span: Span) -> Error {
        Error::new(kind, msg).with_location(self.name, self.source, span.range())
    }

    fn collect_imports(&mut self, body: &[ast::Stmt]) -> R<()> {
        let mut found = Vec::new();
        names::imports(body, &mut |s| found.push(s.clone()));
        for s in found {
            match &s.kind {
                StmtKind::Import(r, alias) => {
                    let imp = self.import_target(r, s.span)?;
                    self.imports.insert(alias.clone(), imp);
                }
                StmtKind::FromImport(r, list) => {
                    let imp = self.import_target(r, s.span)?;
                    for (n, alias) in list {
                        self.check_macro_exists(&imp, n, s.span)?;
                        self.from_imports
                            .insert(alias.clone(), (imp.clone(), n.clone()));
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }

    fn import_target(&self, r: &TemplateRef, span: Span) -> R<Import> {
        match r {
            TemplateRef::SelfRef => Ok(Import::SelfRef),
            TemplateRef::Named(n) if **n == *self.name => Ok(Import::SelfRef),
            TemplateRef::Named(n) => Ok(Import::Snippet(self.load(n, span)?)),
        }
    }

    /// A named template from the library, compiled now (errors located at `span`).
    fn load(&self, n: &str, span: Span) -> R<Arc<Program>> {
        let located = |e: Error| e.with_location(self.name, self.source, span.range());
        // the templates being compiled, this one last (an import cycle is an error)
        let mut chain = Vec::with_capacity(self.env.chain.len() + 1);
        chain.extend_from_slice(self.env.chain);
        chain.push(Arc::from(self.name));
        match self.env.library.get(n, &chain).map_err(located)? {
            Some(p) => Ok(p),
            None => Err(located(self.env.library.missing(n))),
        }
    }

    /// `{% use "tpl" with a as b %}`: the template's blocks (and its own traits)
    /// become this template's, below its own definitions.
    fn use_template(
        &mut self,
        e: &ast::Expr,
        renames: &[(Arc<str>, Arc<str>)],
        span: Span,
    ) -> R<()> {
        let ExprKind::Str(n) = &e.kind else {
            return Err(self.err(
                ErrorKind::Syntax,
                "the template of a `use` tag must be a constant string",
                e.span,
            ));
        };
        let p = self.load(n, e.span)?;
        if p.parent_name.is_some() || p.body.iter().any(|n| matches!(n, Node::Extends(..))) {
            return Err(self.err(
                ErrorKind::Syntax,
                format!("template `{n}` cannot be used as a trait: it extends another template"),
                e.span,
            ));
        }
        // The used template's effective blocks: own (then what its `parent()` reaches
        // among its traits), else its traits'.
        let mut mine: Vec<(Arc<str>, BlockChain)> = Vec::new();
        let mut own: Vec<(&Arc<str>, &usize)> = p.block_index.iter().collect();
        own.sort_by_key(|(_, i)| **i);
        for (b, i) in own {
            let mut chain = vec![(p.clone(), *i)];
            if let Some((_, c)) = p.traits.iter().find(|(n, _)| n == b) {
                chain.extend(c.iter().cloned());
            }
            mine.push((b.clone(), chain));
        }
        for (b, c) in &p.traits {
            if !p.block_index.contains_key(b) {
                mine.push((b.clone(), c.clone()));
            }
        }
        // `with a as b`, applied as Twig does (so `with a` alone, or `a as a`, drops `a`).
        for (from, to) in renames {
            let Some(pos) = mine.iter().position(|(n, _)| n == from) else {
                return Err(self.err(
                    ErrorKind::UnknownName,
                    format!("block `{from}` is not defined in trait `{n}`"),
                    span,
                ));
            };
            let (_, chain) = mine.remove(pos);
            if to != from {
                mine.retain(|(n, _)| n != to);
                mine.push((to.clone(), chain));
            }
        }
        for (b, chain) in mine {
            match self.traits.iter_mut().find(|(n, _)| *n == b) {
                Some(slot) => slot.1 = chain,
                None => self.traits.push((b, chain)),
            }
        }
        self.has_parent = true;
        Ok(())
    }

    /// The body of a template that extends another: only definitions and code
    /// without output (`set`, `import`, …) remain; block tags only define.
    fn child_body(&mut self, body: &[ast::Stmt]) -> R<Vec<Node>> {
        let mut out = Vec::new();
        for s in body {
            match &s.kind {
                StmtKind::Text(t) if self.text(*t).trim().is_empty() => {}
                StmtKind::Block(name, b) => self.block_def(name, b, s.span)?,
                StmtKind::Extends(e) => out.push(Node::Extends(self.expr(e)?, s.span)),
                _ => {
                    check_child(self.source, s, false)
                        .map_err(|(m, sp)| self.err(ErrorKind::Syntax, m, sp))?;
                    if let Some(n) = self.stmt(s)? {
                        out.push(n);
                    }
                }
            }
        }
        Ok(out)
    }

    /// Compiles a block definition in its own frame.
    fn block_def(&mut self, name: &Arc<str>, body: &[ast::Stmt], span: Span) -> R<()> {
        if let Some(first) = self.block_names.get(name) {
            let line = self.source[..(first.start as usize).min(self.source.len())]
                .matches('\n')
                .count()
                + 1;
            return Err(self.err(
                ErrorKind::Syntax,
                format!("the block `{name}` has already been defined on line {line}"),
                span,
            ));
        }
        self.block_names.insert(name.clone(), span);
        // A block sees the template's imports and its own, not an enclosing block's.
        let saved_imports = (self.imports.clone(), self.from_imports.clone());
        if let Some((i, f)) = &self.top_imports {
            (self.imports, self.from_imports) = (i.clone(), f.clone());
        }
        self.collect_imports(body)?;
        let outer = std::mem::take(&mut self.frame);
        names::declare(body, &mut |n| {
            self.frame.slot(n);
        });
        self.in_block += 1;
        let r = self.stmts(body);
        self.in_block -= 1;
        let frame = std::mem::replace(&mut self.frame, outer);
        (self.imports, self.from_imports) = saved_imports;
        self.blocks.push(BlockDef {
            name: name.clone(),
            slots: frame.names.len(),
            slot_names: Arc::new(frame.names),
            body: r?,
        });
        Ok(())
    }

    fn check_macro_exists(&self, imp: &Import, n: &str, span: Span) -> R<()> {
        self.find_macro(imp, n, span).map(|_| ())
    }

    /// Finds macro `n` in `imp` or, as Twig does, in the templates it extends.
    fn find_macro(&self, imp: &Import, n: &str, span: Span) -> R<(MacroRef, Vec<Arc<str>>)> {
        let mut prog = match imp {
            Import::SelfRef => {
                if let Some((i, ps)) = self.own_macros.get(n) {
                    return Ok((MacroRef::Local(*i), ps.clone()));
                }
                match &self.parent_const {
                    Some(p) => Some(self.load(p, span)?),
                    None => None,
                }
            }
            Import::Snippet(p) => Some(p.clone()),
        };
        let mut hops = 0;
        while let Some(p) = prog {
            if let Some(&i) = p.macro_index.get(n) {
                let ps = p
                    .macros
                    .get(i)
                    .map(|m| m.params.clone())
                    .unwrap_or_default();
                return Ok((MacroRef::Imported(p, i), ps));
            }
            hops += 1;
            prog = match &p.parent_name {
                Some(pn) if hops < self.env.library.max_depth => Some(self.load(pn, span)?),
                _ => None,
            };
        }
        Err(self.err(ErrorKind::UnknownName, format!("unknown macro `{n}`"), span))
    }

    fn compile_macro(&mut self, m: &ast::Macro) -> R<MacroDef> {
        let outer = std::mem::take(&mut self.frame);
        let mut defaults = Vec::new();
        for (p, _) in &m.params {
            self.frame.fresh(p);
            self.frame
                .slots
                .insert(p.clone(), self.frame.names.len() as u32 - 1);
        }
        let varargs = self.frame.slot(&Arc::from("varargs"));
        names::declare(&m.body, &mut |n| {
            self.frame.slot(n);
        });
        for (_, d) in &m.params {
            defaults.push(match d {
                Some(e) => Some(self.expr(e)?),
                None => None,
            });
        }
        let body = self.stmts(&m.body)?;
        let frame = std::mem::replace(&mut self.frame, outer);
        Ok(MacroDef {
            name: m.name.clone(),
            params: m.params.iter().map(|p| p.0.clone()).collect(),
            defaults,
            varargs,
            slots: frame.names.len(),
            slot_names: Arc::new(frame.names),
            body,
        })
    }

    // ───────────────────────── statements ─────────────────────────

    /// Compiles the body of an output capture (`set` block, `apply`): a `break` or
    /// `continue` inside it must belong to a loop that is also inside it.
    fn capture_body(&mut self, tag: &'static str, body: &[ast::Stmt]) -> R<Vec<Node>> {
        self.frame.captures.push((tag, self.frame.loops));
        let r = self.stmts(body);
        self.frame.captures.pop();
        r
    }

    /// Compiles a body (each nested block's body is one more level of this recursion: the
    /// stack is probed here, src/stack.rs).
    fn stmts(&mut self, body: &[ast::Stmt]) -> R<Vec<Node>> {
        if crate::stack::enough() {
            self.stmts_here(body)
        } else {
            crate::stack::grown(|| self.stmts_here(body))
        }
    }

    fn stmts_here(&mut self, body: &[ast::Stmt]) -> R<Vec<Node>> {
        let mut out = Vec::with_capacity(body.len());
        for s in body {
            if let Some(n) = self.stmt(s)? {
                // merge adjacent text
                if let (Node::Text(b), Some(Node::Text(a))) = (&n, out.last_mut()) {
                    a.append(b);
                    continue;
                }
                out.push(n);
            }
        }
        Ok(out)
    }

    // Inlined into its two callers: returned through memory, each node was written by this
    // function in pieces and read back at once by the caller, a load the CPU cannot forward
    // from the pending stores (a fifth of `stmts`' time in a profile of `compile/teams`;
    // compile 4-5 % faster in an alternated A/B, benches/README.md).
    #[inline(always)]
    fn stmt(&mut self, s: &ast::Stmt) -> R<Option<Node>> {
        Ok(Some(match &s.kind {
            StmtKind::Text(t) => Node::Text(Text::new(&self.shared_source, t.range())),
            StmtKind::Print(e) => {
                let esc = self.esc.last().copied().unwrap_or(Esc::Auto);
                let compiled = safe_literals(e, self.expr(e)?);
                Node::Print(compiled, esc, e.span)
            }
            StmtKind::Set(targets, values) => {
                let mut out = Vec::new();
                let vals = values.iter().map(|v| self.expr(v)).collect::<R<Vec<_>>>()?;
                for ((n, _), v) in targets.iter().zip(vals) {
                    out.push((self.frame.assign(n), v));
                }
                Node::Set(out, s.span)
            }
            StmtKind::SetBlock(n, body) => {
                let body = self.capture_body("set", body)?;
                Node::SetBlock(self.frame.assign(n), body)
            }
            StmtKind::If(branches, else_body) => {
                let mut bs = Vec::new();
                for (c, b) in branches {
                    bs.push((self.expr(c)?, self.stmts(b)?));
                }
                let eb = match else_body {
                    Some(b) => self.stmts(b)?,
                    None => Vec::new(),
                };
                Node::If(bs, eb, s.span)
            }
            StmtKind::For(l) => {
                let ast::ForLoop {
                    key,
                    value,
                    iter,
                    body,
                    else_body,
                } = &**l;
                let iter = self.expr(iter)?;
                let key = key.as_ref().map(|k| self.frame.slot(k));
                let value = self.frame.slot(value);
                let level = self.frame.loops;
                self.frame.loops += 1;
                self.frame.assigned.push(Vec::new());
                let body = self.stmts(body);
                let assigned = self.frame.assigned.pop().unwrap_or_default();
                self.frame.loops -= 1;
                let body = body?;
                // Outer loops see these assignments too.
                if let Some(outer) = self.frame.assigned.last_mut() {
                    for a in &assigned {
                        if !outer.iter().any(|(x, _)| *x == a.0) {
                            outer.push(a.clone());
                        }
                    }
                }
                let else_body = match else_body {
                    Some(b) => self.stmts(b)?,
                    None => Vec::new(),
                };
                Node::For(Box::new(For {
                    key,
                    value,
                    iter,
                    body,
                    else_body,
                    assigned,
                    level,
                    span: s.span,
                }))
            }
            StmtKind::Break | StmtKind::Continue => {
                if self.frame.loops == 0 {
                    return Err(self.err(
                        ErrorKind::Syntax,
                        "break/continue outside of a for loop",
                        s.span,
                    ));
                }
                if let Some(&(tag, _)) = self
                    .frame
                    .captures
                    .last()
                    .filter(|(_, at)| *at == self.frame.loops)
                {
                    let word = if matches!(s.kind, StmtKind::Break) {
                        "break"
                    } else {
                        "continue"
                    };
                    return Err(self.err(
                        ErrorKind::Syntax,
                        format!(
                            "`{word}` cannot jump out of `{{% {tag} %}}`: it would cut the captured output short; close it with `{{% end{tag} %}}` first"
                        ),
                        s.span,
                    ));
                }
                if matches!(s.kind, StmtKind::Break) {
                    Node::Break
                } else {
                    Node::Continue
                }
            }
            StmtKind::With(e, only, body) => {
                // a non-map error points at the expression, not at the block
                let span = e.as_ref().map_or(s.span, |e| e.span);
                let e = match e {
                    Some(e) => Some(self.expr(e)?),
                    None => None,
                };
                Node::With(Box::new(ir::With {
                    vars: e,
                    only: *only,
                    body: self.stmts(body)?,
                    span,
                }))
            }
            StmtKind::Apply(filters, body) => {
                let body = self.capture_body("apply", body)?;
                let mut calls = Vec::new();
                for f in filters {
                    let placeholder = ast::Expr {
                        kind: ExprKind::Null,
                        span: f.span,
                    };
                    match self.filter(&placeholder, &f.name, f.span, &f.args)? {
                        Expr::Call(c) => calls.push(*c),
                        _ => {
                            return Err(self.err(
                                ErrorKind::Syntax,
                                format!("filter `{}` cannot be used in apply", f.name),
                                f.span,
                            ))
                        }
                    }
                }
                Node::Apply(calls, body)
            }
            StmtKind::Autoescape(strategy, body) => {
                let esc = match strategy {
                    None => Esc::Off,
                    Some(n) => Esc::On(Strategy::from_name(n).ok_or_else(|| {
                        self.err(
                            ErrorKind::InvalidArgument,
                            format!(
                                "unknown escaping strategy `{n}` (html, html_attr, js, css, url)"
                            ),
                            s.span,
                        )
                    })?),
                };
                self.esc.push(esc);
                let body = self.stmts(body);
                self.esc.pop();
                return Ok(Some(Node::Block(body?)));
            }
            StmtKind::Do(e) => Node::Do(self.expr(e)?, s.span),
            StmtKind::Include(inc) => Node::Include(Box::new(IncludeCall {
                name: self.expr(&inc.name)?,
                with: match &inc.with {
                    Some(w) => Some(self.expr(w)?),
                    None => None,
                },
                with_context: Expr::Const(Value::Bool(!inc.only)),
                ignore_missing: Expr::Const(Value::Bool(inc.ignore_missing)),
                span: s.span,
            })),
            StmtKind::Import(..) | StmtKind::FromImport(..) | StmtKind::Use(..) => {
                return Ok(None)
            }
            StmtKind::Extends(_) => {
                return Err(self.err(
                    ErrorKind::Syntax,
                    "`extends` must be at the top level of a template (not inside a block, macro or other tag)",
                    s.span,
                ))
            }
            StmtKind::Block(name, body) => {
                self.block_def(name, body, s.span)?;
                // `block_def` pushed this block last (after the blocks nested in it)
                let own = u32::try_from(self.blocks.len().saturating_sub(1)).unwrap_or(u32::MAX);
                Node::BlockRef(name.clone(), own, s.span)
            }
            StmtKind::Embed(tag, body) => {
                let ast::IncludeTag {
                    name,
                    ignore_missing,
                    with,
                    only,
                } = &**tag;
                let mut sub = vec![ast::Stmt {
                    kind: StmtKind::Extends(name.clone()),
                    span: s.span,
                }];
                sub.extend(body.iter().cloned());
                let parsed = Parsed {
                    body: sub,
                    macros: Vec::new(),
                };
                let prog = compile_program(self.env, self.name, self.shared_source.clone(), &parsed)?;
                Node::Embed(
                    Arc::new(prog),
                    Box::new(IncludeCall {
                        // checked first with `ignore missing`
                        name: if *ignore_missing {
                            self.expr(name)?
                        } else {
                            Expr::Const(Value::Null)
                        },
                        with: match with {
                            Some(w) => Some(self.expr(w)?),
                            None => None,
                        },
                        with_context: Expr::Const(Value::Bool(!*only)),
                        ignore_missing: Expr::Const(Value::Bool(*ignore_missing)),
                        span: s.span,
                    }),
                )
            }
            StmtKind::Guard(g) => {
                let ast::GuardTag {
                    kind,
                    name,
                    body,
                    else_body,
                    ..
                } = &**g;
                let r = self.env.registry;
                let exists = match &**kind {
                    "function" => {
                        r.functions.contains_key(name)
                            || matches!(&**name, "include" | "source" | "block" | "parent")
                    }
                    "filter" => r.filters.contains_key(name),
                    _ => r.tests.contains_key(name) || &**name == "defined",
                };
                Node::Block(self.stmts(if exists { body } else { else_body })?)
            }
        }))
    }

    // ───────────────────────── expressions ─────────────────────────

    fn expr(&mut self, e: &ast::Expr) -> R<Expr> {
        self.expr_mode(e, self.env.strict)
    }

    /// Compiles with strictness `strict` for missing names (false under `defined`, `??`, `default`).
    fn expr_mode(&mut self, e: &ast::Expr, strict: bool) -> R<Expr> {
        // An expression shorter than this holds fewer levels of nesting than that (each level
        // takes a byte of source at least): those levels fit in the stack's red zone, so
        // short expressions — nearly all — go straight on, with no count and no probe.
        const SHORT: u32 = 32;
        if e.span.end.saturating_sub(e.span.start) < SHORT {
            return self.expr_here(e, strict);
        }
        self.long_expr(e, strict)
    }

    /// A long expression: one more level counted; every 8th level probes the stack
    /// (src/stack.rs) and is wrapped in [`Expr::Deep`], so that evaluating it probes too.
    #[inline(never)]
    fn long_expr(&mut self, e: &ast::Expr, strict: bool) -> R<Expr> {
        self.expr_depth += 1;
        let r = if self.expr_depth % 8 == 0 {
            crate::stack::guard(|| self.expr_here(e, strict)).map(|e| match e {
                Expr::Const(_) => e,
                e => Expr::Deep(Box::new(e)),
            })
        } else {
            self.expr_here(e, strict)
        };
        self.expr_depth -= 1;
        r
    }

    fn expr_here(&mut self, e: &ast::Expr, strict: bool) -> R<Expr> {
        let span = e.span;
        Ok(match &e.kind {
            ExprKind::Null => Expr::Const(Value::Null),
            ExprKind::Bool(b) => Expr::Const(Value::Bool(*b)),
            ExprKind::Int(i) => Expr::Const(Value::Int(*i)),
            ExprKind::Float(f) => Expr::Const(Value::Float(*f)),
            ExprKind::Str(s) => Expr::Const(Value::Str(s.clone())),
            ExprKind::Interp(parts) => {
                let parts = parts
                    .iter()
                    .map(|p| self.expr_mode(p, strict))
                    .collect::<R<Vec<_>>>()?;
                Expr::Interp(parts, span)
            }
            ExprKind::List(items) => {
                let items = items
                    .iter()
                    .map(|p| self.expr_mode(p, strict))
                    .collect::<R<Vec<_>>>()?;
                if items.iter().all(|i| matches!(i, Expr::Const(_))) {
                    Expr::Const(Value::list(
                        items
                            .into_iter()
                            .map(|i| match i {
                                Expr::Const(v) => v,
                                _ => Value::Null,
                            })
                            .collect(),
                    ))
                } else {
                    Expr::List(items)
                }
            }
            ExprKind::Map(entries) => {
                let mut out = Vec::new();
                for (k, v) in entries {
                    out.push((self.expr_mode(k, strict)?, self.expr_mode(v, strict)?));
                }
                Expr::Map(out)
            }
            ExprKind::Name(n) if &**n == "_self" => Expr::Const(Value::str(self.name)),
            ExprKind::Name(n) => self.name(n, span, strict),
            ExprKind::DynAttr(base, key) => Expr::Item(
                Box::new(self.expr_mode(base, strict)?),
                Box::new(self.expr(key)?),
                span,
                strict,
            ),
            ExprKind::Attr(base, attr) => {
                if let Some(level) = self.loop_ref(base) {
                    if let Some(f) = LoopField::from_name(attr) {
                        return Ok(Expr::LoopField(level, f));
                    }
                    if &**attr == "parent" {
                        return Ok(if level > 0 {
                            Expr::Map(vec![(
                                Expr::Const(Value::str("loop")),
                                Expr::LoopValue(level - 1),
                            )])
                        } else {
                            Expr::Const(Value::empty_map())
                        });
                    }
                }
                if let ExprKind::Attr(inner, p) = &base.kind {
                    if &**p == "parent" && self.loop_ref(inner).is_some() {
                        // loop.parent.x: variables are flat within a frame
                        return Ok(self.name(attr, span, strict));
                    }
                }
                Expr::Attr(
                    Box::new(self.expr_mode(base, strict)?),
                    attr.clone(),
                    span,
                    strict,
                )
            }
            ExprKind::Item(base, key) => Expr::Item(
                Box::new(self.expr_mode(base, strict)?),
                Box::new(self.expr(key)?),
                span,
                strict,
            ),
            ExprKind::Slice(base, start, len) => Expr::Slice(
                Box::new(self.expr_mode(base, strict)?),
                self.opt_box(start)?,
                self.opt_box(len)?,
                span,
            ),
            ExprKind::Unary(op, inner) => {
                let inner = self.expr_mode(inner, strict)?;
                let folded = match (&inner, op) {
                    (Expr::Const(v), UnOp::Not) => Some(Value::Bool(!v.is_truthy())),
                    (Expr::Const(v), UnOp::Neg) => value::neg(v).ok(),
                    (Expr::Const(v), UnOp::Pos) => value::pos(v).ok(),
                    _ => None,
                };
                if let Some(v) = folded {
                    return Ok(Expr::Const(v));
                }
                match op {
                    UnOp::Not => Expr::Not(Box::new(inner)),
                    UnOp::Neg => Expr::Neg(Box::new(inner), span),
                    UnOp::Pos => Expr::Pos(Box::new(inner), span),
                }
            }
            ExprKind::Binary(op, l, r) => self.binary(*op, l, r, span, strict)?,
            ExprKind::Cond(c, a, b) => Expr::Cond(
                Box::new(self.expr_mode(c, strict)?),
                Box::new(self.expr_mode(a, strict)?),
                self.opt_box(b)?,
            ),
            ExprKind::Elvis(a, b) => Expr::Elvis(
                Box::new(self.expr_mode(a, strict)?),
                Box::new(self.expr_mode(b, strict)?),
            ),
            ExprKind::Coalesce(a, b) => Expr::Coalesce(
                Box::new(self.expr_mode(a, false)?),
                Box::new(self.expr_mode(b, strict)?),
            ),
            ExprKind::Call(name, nspan, args) => self.call(name, *nspan, args, span)?,
            ExprKind::CallValue(callee, args) => self.call_value(callee, args, span)?,
            ExprKind::Filter(input, name, nspan, args) => self.filter(input, name, *nspan, args)?,
            ExprKind::Test(input, negated, name, nspan, args) => {
                if &**name == "defined" {
                    if let ExprKind::Call(f, _, args) = &input.kind {
                        if &**f == "block" && !self.from_imports.contains_key(f) {
                            let (n, t) = self.block_args(args, span)?;
                            return Ok(Expr::BlockDefined(n, t, *negated, span));
                        }
                        if &**f == "attribute" && (2..=3).contains(&args.len()) {
                            // `attribute(x, key) is defined` asks whether the key exists
                            let (b, k) = (&args[0].value, &args[1].value);
                            return Ok(Expr::Defined(
                                Box::new(Expr::Item(
                                    Box::new(self.expr_mode(b, false)?),
                                    Box::new(self.expr(k)?),
                                    span,
                                    false,
                                )),
                                *negated,
                            ));
                        }
                    }
                    if !definable(input) {
                        return Err(self.err(
                            ErrorKind::Syntax,
                            "the `defined` test only works with variables, attributes, items, macros and blocks",
                            input.span,
                        ));
                    }
                    return Ok(Expr::Defined(
                        Box::new(self.expr_mode(input, false)?),
                        *negated,
                    ));
                }
                if let Some((n, nspan)) = args.iter().find_map(|a| a.name.as_ref()) {
                    // Twig's parser reads a test's arguments as positional only: a named one
                    // fails its compilation (docs/language.md, "Tests").
                    return Err(self.err(
                        ErrorKind::Syntax,
                        format!(
                            "a test takes positional arguments only: write the value of `{n}` without `{n}:`"
                        ),
                        *nspan,
                    ));
                }
                let b = self.lookup(&self.env.registry.tests, "test", name, *nspan)?;
                let args = self.args(&b, "test", input, args, *nspan)?;
                Expr::Test(
                    Box::new(Call {
                        func: b.func.clone(),
                        args,
                        span,
                        null_from: 1,
                    }),
                    *negated,
                )
            }
            ExprKind::Arrow(..) => {
                return Err(self.err(
                    ErrorKind::Syntax,
                    "an arrow function can only be a filter, function or test argument (or follow `has some`/`has every`)",
                    span,
                ))
            }
        })
    }

    /// Compiles a call argument, where an arrow function is allowed.
    fn arg_expr(&mut self, e: &ast::Expr) -> R<Expr> {
        let ExprKind::Arrow(params, body) = &e.kind else {
            return self.expr(e);
        };
        let mut scope = HashMap::new();
        let mut slots = Vec::new();
        for p in params {
            let s = self.frame.fresh(p);
            scope.insert(p.clone(), s);
            slots.push(s);
        }
        self.frame.arrows.push(scope);
        let body = self.expr(body);
        self.frame.arrows.pop();
        Ok(Expr::Arrow(Arc::new(Arrow {
            params: slots,
            body: body?,
        })))
    }

    fn opt_box(&mut self, e: &Option<Box<ast::Expr>>) -> R<Option<Box<Expr>>> {
        Ok(match e {
            Some(e) => Some(Box::new(self.expr(e)?)),
            None => None,
        })
    }

    fn name(&mut self, n: &Arc<str>, span: Span, strict: bool) -> Expr {
        for scope in self.frame.arrows.iter().rev() {
            if let Some(&s) = scope.get(n) {
                return Expr::Slot(s, n.clone(), span, strict);
            }
        }
        if &**n == "loop" && self.frame.loops > 0 {
            return Expr::LoopValue(self.frame.loops - 1);
        }
        match self.frame.slots.get(n) {
            Some(s) => Expr::Slot(s, n.clone(), span, strict),
            None => Expr::Ctx(n.clone(), span, strict),
        }
    }

    /// The loop level `e` refers to: `loop` → innermost, `X.parent.loop` → one out.
    fn loop_ref(&self, e: &ast::Expr) -> Option<u32> {
        match &e.kind {
            ExprKind::Name(n) if &**n == "loop" && self.frame.loops > 0 => {
                if self.frame.arrows.iter().any(|s| s.contains_key("loop")) {
                    return None;
                }
                Some(self.frame.loops - 1)
            }
            ExprKind::Attr(inner, l) if &**l == "loop" => match &inner.kind {
                ExprKind::Attr(base, p) if &**p == "parent" => {
                    self.loop_ref(base).and_then(|lv| lv.checked_sub(1))
                }
                _ => None,
            },
            _ => None,
        }
    }

    fn binary(
        &mut self,
        op: BinOp,
        l: &ast::Expr,
        r: &ast::Expr,
        span: Span,
        strict: bool,
    ) -> R<Expr> {
        let a = self.expr_mode(l, strict)?;
        let b = if matches!(op, BinOp::HasSome | BinOp::HasEvery) {
            self.arg_expr(r)?
        } else {
            self.expr_mode(r, strict)?
        };
        match op {
            BinOp::And => return Ok(Expr::And(Box::new(a), Box::new(b))),
            BinOp::Or => return Ok(Expr::Or(Box::new(a), Box::new(b))),
            BinOp::Matches => {
                if let Expr::Const(Value::Str(p)) = &b {
                    let re = crate::pcre::compile(p)
                        .map_err(|e| e.with_location(self.name, self.source, r.span.range()))?;
                    return Ok(Expr::MatchesConst(Box::new(a), Arc::new(re)));
                }
            }
            _ => {}
        }
        if let (Expr::Const(x), Expr::Const(y)) = (&a, &b) {
            if let Some(v) = fold(op, x, y) {
                return Ok(Expr::Const(v));
            }
        }
        Ok(Expr::Bin(op, Box::new(a), Box::new(b), span))
    }

    // ───────────────────────── calls ─────────────────────────

    fn lookup(
        &self,
        table: &HashMap<Arc<str>, Builtin>,
        what: &str,
        name: &str,
        span: Span,
    ) -> R<Builtin> {
        if let Some(b) = table.get(name) {
            return Ok(b.clone());
        }
        let mut e = Error::new(ErrorKind::UnknownName, format!("unknown {what} `{name}`"));
        if let Some(s) = names::closest(name, table.keys().map(|k| &**k)) {
            e = e.with_hint(format!("did you mean `{s}`?"));
        }
        Err(e.with_location(self.name, self.source, span.range()))
    }

    /// Maps call arguments to the builtin's declared positions.
    fn args(
        &mut self,
        b: &Builtin,
        what: &str,
        input: &ast::Expr,
        args: &[Arg],
        span: Span,
    ) -> R<Vec<Expr>> {
        let lenient_input = what == "filter" && &*b.name == "default";
        let first = self.expr_mode(input, self.env.strict && !lenient_input)?;
        let mut out = vec![first];
        out.extend(self.map_args(&b.signature, &format!("{what} `{}`", b.name), args, span)?);
        Ok(out)
    }

    fn map_args(&mut self, sig: &Signature, who: &str, args: &[Arg], span: Span) -> R<Vec<Expr>> {
        let mut slots: Vec<Option<Expr>> = Vec::new();
        let mut extra = Vec::new();
        let mut seen_named = false;
        for (i, a) in args.iter().enumerate() {
            let v = self.arg_expr(&a.value)?;
            match &a.name {
                None => {
                    if seen_named {
                        return Err(self.err(
                            ErrorKind::InvalidArgument,
                            format!("{who}: positional argument after a named one"),
                            a.value.span,
                        ));
                    }
                    if i < sig.params.len() {
                        slots.push(Some(v));
                    } else if sig.variadic {
                        extra.push(v);
                    } else {
                        return Err(self.err(
                            ErrorKind::InvalidArgument,
                            format!("{who}: too many arguments (at most {})", sig.params.len()),
                            a.value.span,
                        ));
                    }
                }
                Some((n, nspan)) => {
                    seen_named = true;
                    let Some(pos) = sig.position(n) else {
                        let valid = if sig.params.is_empty() {
                            "it takes no named arguments".to_string()
                        } else {
                            format!("its arguments: {}", sig.params.join(", "))
                        };
                        let mut e = Error::new(
                            ErrorKind::UnknownName,
                            format!("{who} has no argument `{n}` ({valid})"),
                        );
                        if let Some(s) = names::closest(n, sig.params.iter().copied()) {
                            e = e.with_hint(format!("did you mean `{s}`?"));
                        }
                        return Err(e.with_location(self.name, self.source, nspan.range()));
                    };
                    if slots.len() <= pos {
                        slots.resize(pos + 1, None);
                    }
                    if slots[pos].is_some() {
                        return Err(self.err(
                            ErrorKind::InvalidArgument,
                            format!("{who}: argument `{n}` given twice"),
                            *nspan,
                        ));
                    }
                    slots[pos] = Some(v);
                }
            }
        }
        for (i, p) in sig.params.iter().enumerate().take(sig.required) {
            if slots.get(i).is_none_or(|s| s.is_none()) {
                return Err(self.err(
                    ErrorKind::InvalidArgument,
                    format!("{who}: missing argument `{p}`"),
                    span,
                ));
            }
        }
        let mut out: Vec<Expr> = slots
            .into_iter()
            .map(|s| s.unwrap_or(Expr::Const(Value::Undefined)))
            .collect();
        out.extend(extra);
        Ok(out)
    }

    fn filter(&mut self, input: &ast::Expr, name: &Arc<str>, nspan: Span, args: &[Arg]) -> R<Expr> {
        let b = self.lookup(&self.env.registry.filters, "filter", name, nspan)?;
        let args = self.args(&b, "filter", input, args, nspan)?;
        let span = input.span.to(nspan);
        Ok(Expr::Call(Box::new(Call {
            func: b.func.clone(),
            args,
            span,
            null_from: 1,
        })))
    }

    fn block_args(&mut self, args: &[Arg], span: Span) -> R<(Box<Expr>, Option<Box<Expr>>)> {
        let sig = Signature::parse(&["name", "template?"]);
        let mut v = self.map_args(&sig, "function `block`", args, span)?;
        v.resize(2, Expr::Const(Value::Undefined));
        let t = v
            .pop()
            .filter(|e| !matches!(e, Expr::Const(Value::Undefined)));
        let n = v.pop().unwrap_or(Expr::Const(Value::Null));
        Ok((Box::new(n), t.map(Box::new)))
    }

    /// `include()`, `source()`, `block()`, `parent()`: functions of the template library.
    fn library_call(&mut self, name: &str, args: &[Arg], span: Span) -> R<Option<Expr>> {
        Ok(Some(match name {
            "include" => {
                let sig = Signature::parse(&[
                    "template",
                    "variables?",
                    "with_context?",
                    "ignore_missing?",
                    "sandboxed?",
                ]);
                let mut v = self
                    .map_args(&sig, "function `include`", args, span)?
                    .into_iter();
                let mut next = || v.next().unwrap_or(Expr::Const(Value::Undefined));
                let name = next();
                let with = Some(next());
                let or = |e: Expr, d: bool| match e {
                    Expr::Const(Value::Undefined) => Expr::Const(Value::Bool(d)),
                    e => e,
                };
                let with_context = or(next(), true);
                let ignore_missing = or(next(), false);
                Expr::Include(Box::new(IncludeCall {
                    name,
                    with,
                    with_context,
                    ignore_missing,
                    span,
                }))
            }
            "source" => {
                let sig = Signature::parse(&["name", "ignore_missing?"]);
                let mut v = self.map_args(&sig, "function `source`", args, span)?;
                v.resize(2, Expr::Const(Value::Undefined));
                let im = v
                    .pop()
                    .filter(|e| !matches!(e, Expr::Const(Value::Undefined)));
                let n = v.pop().unwrap_or(Expr::Const(Value::Null));
                Expr::Source(Box::new(n), im.map(Box::new), span)
            }
            "block" => {
                let (n, t) = self.block_args(args, span)?;
                Expr::BlockCall(n, t, span)
            }
            "parent" => {
                if self.in_block == 0 {
                    return Err(self.err(
                        ErrorKind::Syntax,
                        "calling `parent()` outside of a block is forbidden",
                        span,
                    ));
                }
                if !self.has_parent {
                    return Err(self.err(
                        ErrorKind::Syntax,
                        "calling `parent()` on a template that does not extend nor `use` another template is forbidden",
                        span,
                    ));
                }
                if !args.is_empty() {
                    return Err(self.err(
                        ErrorKind::InvalidArgument,
                        "function `parent` takes no arguments",
                        span,
                    ));
                }
                Expr::Parent(span)
            }
            _ => return Ok(None),
        }))
    }

    fn call(&mut self, name: &Arc<str>, nspan: Span, args: &[Arg], span: Span) -> R<Expr> {
        if let Some((imp, mname)) = self.from_imports.get(name).cloned() {
            return self.macro_call(&imp, &mname, args, span);
        }
        if let Some(e) = self.library_call(name, args, span)? {
            return Ok(e);
        }
        if let Some(b) = self.env.registry.functions.get(name).cloned() {
            let args = self.map_args(&b.signature, &format!("function `{name}`"), args, span)?;
            return Ok(Expr::Call(Box::new(Call {
                func: b.func.clone(),
                args,
                span,
                null_from: 0,
            })));
        }
        self.lookup(&self.env.registry.functions, "function", name, nspan)
            .map(|_| Expr::Const(Value::Null))
    }

    fn call_value(&mut self, callee: &ast::Expr, args: &[Arg], span: Span) -> R<Expr> {
        if let ExprKind::Attr(base, mname) = &callee.kind {
            if let ExprKind::Name(alias) = &base.kind {
                let imp = if &**alias == "_self" {
                    Some(Import::SelfRef)
                } else {
                    self.imports.get(alias).cloned()
                };
                if let Some(imp) = imp {
                    self.check_macro_exists(&imp, mname, callee.span)?;
                    return self.macro_call(&imp, mname, args, span);
                }
            }
        }
        let text = self.source.get(callee.span.range()).unwrap_or("value");
        Err(self.err(
            ErrorKind::Syntax,
            format!("cannot call `{text}`: templates cannot call methods"),
            callee.span,
        ))
    }

    fn macro_call(&mut self, imp: &Import, mname: &Arc<str>, args: &[Arg], span: Span) -> R<Expr> {
        let (mref, params) = self.find_macro(imp, mname, span)?;
        // Map named arguments by hand (macro parameter names are not 'static).
        let mut slots: Vec<Option<Expr>> = vec![None; params.len()];
        let mut extra = Vec::new();
        let mut positional = 0;
        for a in args {
            // A macro runs in its own frame, where the caller's arrow could not see
            // the variables it closes over: arrows stay with filters and functions.
            if let ExprKind::Arrow(..) = a.value.kind {
                return Err(self.err(
                    ErrorKind::Syntax,
                    format!(
                        "an arrow function cannot be passed to macro `{mname}`: macros take values; apply the filter (e.g. `|map(x => …)`) before the call and pass its result"
                    ),
                    a.value.span,
                ));
            }
            let v = self.expr(&a.value)?;
            match &a.name {
                None => {
                    if positional < params.len() {
                        slots[positional] = Some(v);
                    } else {
                        extra.push(v);
                    }
                    positional += 1;
                }
                Some((n, nspan)) => {
                    match params.iter().position(|p| p == n) {
                        Some(i) if slots[i].is_some() => {
                            return Err(self.err(
                                ErrorKind::InvalidArgument,
                                format!("macro `{mname}`: argument `{n}` given twice"),
                                *nspan,
                            ))
                        }
                        Some(i) => slots[i] = Some(v),
                        None => {
                            let valid = params.iter().map(|p| &**p).collect::<Vec<_>>().join(", ");
                            return Err(self.err(
                            ErrorKind::UnknownName,
                            format!("macro `{mname}` has no argument `{n}` (its arguments: {valid})"),
                            *nspan,
                        ));
                        }
                    }
                }
            }
        }
        let mut out: Vec<Expr> = slots
            .into_iter()
            .map(|s| s.unwrap_or(Expr::Const(Value::Undefined)))
            .collect();
        out.extend(extra);
        Ok(Expr::MacroCall(mref, out, span))
    }
}

/// Folds a binary operator over constants (never folds errors: they happen at runtime).
fn fold(op: BinOp, x: &Value, y: &Value) -> Option<Value> {
    use value::Arith;
    let arith = |o| value::arith(o, x, y).ok();
    match op {
        BinOp::Add => arith(Arith::Add),
        BinOp::Sub => arith(Arith::Sub),
        BinOp::Mul => arith(Arith::Mul),
        BinOp::Div => arith(Arith::Div),
        BinOp::FloorDiv => arith(Arith::FloorDiv),
        BinOp::Mod => arith(Arith::Rem),
        BinOp::Pow => arith(Arith::Pow),
        BinOp::Concat
            if !matches!(x, Value::List(_) | Value::Map(_))
                && !matches!(y, Value::List(_) | Value::Map(_)) =>
        {
            let mut s = x.to_output();
            s.push_str(&y.to_cow_str());
            Some(Value::str(s))
        }
        BinOp::Eq => Some(Value::Bool(value::loose_eq(x, y))),
        BinOp::Ne => Some(Value::Bool(!value::loose_eq(x, y))),
        _ => None,
    }
}

/// Refuses output in the top level of a template that extends another (Twig does):
/// text other than whitespace, prints, includes; and a block definition nested in a
/// tag that does not capture its output (`if`, `for`, …).
fn check_child(source: &str, s: &ast::Stmt, nested: bool) -> Result<(), (String, Span)> {
    let all = |b: &[ast::Stmt]| b.iter().try_for_each(|s| check_child(source, s, true));
    match &s.kind {
        StmtKind::Text(t) if !source.get(t.range()).unwrap_or("").trim().is_empty() => {
            Err((OUTSIDE_BLOCKS.to_string(), s.span))
        }
        StmtKind::Print(_) | StmtKind::Include(_) | StmtKind::Embed(..) => {
            Err((OUTSIDE_BLOCKS.to_string(), s.span))
        }
        StmtKind::Block(..) if nested => Err((
            "a block definition cannot be nested under tags that do not capture output (`if`, `for`, `with`…)".to_string(),
            s.span,
        )),
        StmtKind::If(branches, else_body) => {
            for (_, b) in branches {
                all(b)?;
            }
            else_body.as_deref().map_or(Ok(()), all)
        }
        StmtKind::For(l) => {
            all(&l.body)?;
            l.else_body.as_deref().map_or(Ok(()), all)
        }
        StmtKind::With(_, _, b) | StmtKind::Autoescape(_, b) => all(b),
        StmtKind::Guard(g) => {
            all(&g.body)?;
            all(&g.else_body)
        }
        _ => Ok(()),
    }
}

/// Whether `x is defined` makes sense on this expression (as Twig: names, attribute
/// and item access, macro calls, `block()`, `x|default`, literals).
fn definable(e: &ast::Expr) -> bool {
    match &e.kind {
        ExprKind::Name(_)
        | ExprKind::Attr(..)
        | ExprKind::Item(..)
        | ExprKind::DynAttr(..)
        | ExprKind::CallValue(..)
        | ExprKind::Call(..)
        | ExprKind::Null
        | ExprKind::Bool(_)
        | ExprKind::Int(_)
        | ExprKind::Float(_)
        | ExprKind::Str(_)
        | ExprKind::List(_)
        | ExprKind::Map(_) => true,
        ExprKind::Filter(_, n, _, _) => &**n == "default",
        _ => false,
    }
}

/// Twig's escaper leaves string literals alone: a printed literal, or a literal
/// branch of a conditional, is marked safe (`{{ c ? "<br>" : x }}` escapes only `x`).
fn safe_literals(ast: &ast::Expr, e: Expr) -> Expr {
    match (&ast.kind, e) {
        (ExprKind::Str(_), Expr::Const(Value::Str(s))) => Expr::Const(Value::Safe(s)),
        (ExprKind::Cond(_, a, b), Expr::Cond(c, x, y)) => Expr::Cond(
            c,
            Box::new(safe_literals(a, *x)),
            match (b, y) {
                (Some(b), Some(y)) => Some(Box::new(safe_literals(b, *y))),
                (_, y) => y,
            },
        ),
        (ExprKind::Elvis(a, b), Expr::Elvis(x, y)) => Expr::Elvis(
            Box::new(safe_literals(a, *x)),
            Box::new(safe_literals(b, *y)),
        ),
        (ExprKind::Coalesce(a, b), Expr::Coalesce(x, y)) => Expr::Coalesce(
            Box::new(safe_literals(a, *x)),
            Box::new(safe_literals(b, *y)),
        ),
        (_, e) => e,
    }
}
