//! The interpreter: walks the compiled IR writing into one output `String`, with
//! slots for template variables, a loop stack for `loop.*`, and the sandbox limits
//! (fuel, output/string size, depth).

mod cost;
pub(crate) use crate::escape;
mod eval;
mod exec;
mod flat;

use crate::builtins::{Host, State};
use crate::compile::ir::{
    Arrow, BlockAt, BlockTable, ChainLink, Expr, IncludeCall, MacroRef, Node, ParentLink, Program,
    ResolvedChain,
};
use crate::error::{Error, ErrorKind};
use crate::escape::Escape;
use crate::limits::Limits;
use crate::loader::Library;
use crate::options::RenderOptions;
use crate::syntax::ast::Span;
use crate::value::{Map, Value};
use std::sync::Arc;

/// What every render of an engine shares: limits, host services, the template library.
pub struct Shared {
    pub limits: Limits,
    pub host: Host,
    pub library: Arc<Library>,
}

/// Appends the blocks of `prog`, at `level` of the `extends` chain (own definitions, then
/// those brought in by `use`).
fn add_blocks(table: &mut BlockTable, prog: &Program, level: usize) {
    for (i, b) in prog.blocks.iter().enumerate() {
        table
            .entry(b.name.clone())
            .or_default()
            .push(BlockAt::Level(level, i));
    }
    for (n, chain) in &prog.traits {
        table
            .entry(n.clone())
            .or_default()
            .extend(chain.iter().map(|(p, i)| BlockAt::Used(p.clone(), *i)));
    }
}

/// The table of `prog` alone, at level 0 (built on its first render, then shared).
fn table_for(prog: &Program) -> Arc<BlockTable> {
    prog.block_memo
        .own
        .get_or_init(|| {
            let mut t = BlockTable::default();
            add_blocks(&mut t, prog, 0);
            Arc::new(t)
        })
        .clone()
}

/// The table of a template with no blocks (shared: a render without blocks allocates none).
fn empty_table() -> Arc<BlockTable> {
    static EMPTY: std::sync::OnceLock<Arc<BlockTable>> = std::sync::OnceLock::new();
    EMPTY.get_or_init(Arc::default).clone()
}

/// The levels of an instance without blocks (shared, as [`empty_table`]).
fn no_levels() -> Levels {
    static EMPTY: std::sync::OnceLock<Levels> = std::sync::OnceLock::new();
    EMPTY.get_or_init(Arc::default).clone()
}

/// The templates of an instance's `extends` chain, by level (shared with the chain's memo).
type Levels = Arc<Vec<Arc<Program>>>;

/// The block table and levels a template instance starts with.
fn instance_blocks<'a>(prog: &Arc<Program>) -> Instance<'a> {
    if prog.blocks.is_empty() && prog.traits.is_empty() {
        Instance::Own(empty_table(), no_levels())
    } else {
        Instance::Own(table_for(prog), Arc::new(vec![prog.clone()]))
    }
}

/// A template the VM runs: borrowed for the whole render when it is the template `render`
/// was called with or a level of its resolved chain (switching to it touches no reference
/// count), shared otherwise (included, imported, loaded by a dynamic name, …).
#[derive(Clone)]
pub(crate) enum Prog<'a> {
    Pinned(&'a Program),
    Shared(Arc<Program>),
}

impl std::ops::Deref for Prog<'_> {
    type Target = Program;
    #[inline]
    fn deref(&self) -> &Program {
        match self {
            Prog::Pinned(p) => p,
            Prog::Shared(p) => p,
        }
    }
}

/// A template name in the chain of templates being rendered (for the depth-limit message):
/// borrowed like [`Prog::Pinned`], or shared.
#[derive(Clone)]
enum Name<'a> {
    Pinned(&'a str),
    Shared(Arc<str>),
}

impl std::ops::Deref for Name<'_> {
    type Target = str;
    fn deref(&self) -> &str {
        match self {
            Name::Pinned(n) => n,
            Name::Shared(n) => n,
        }
    }
}

/// The blocks of the template instance being rendered: the resolved chain of the template
/// `render` was called with, borrowed for the whole render (entering a level or a block of it
/// touches no reference count), or a table and the templates of its levels.
enum Instance<'a> {
    Chain(&'a ResolvedChain),
    Own(Arc<BlockTable>, Levels),
}

impl<'a> Instance<'a> {
    fn table(&self) -> &BlockTable {
        match self {
            Instance::Chain(rc) => &rc.table,
            Instance::Own(t, _) => t,
        }
    }

    fn levels(&self) -> &[Arc<Program>] {
        match self {
            Instance::Chain(rc) => &rc.levels,
            Instance::Own(_, l) => l,
        }
    }

    /// The name of the template at `level` of the chain.
    fn level_name(&self, level: usize) -> Option<Name<'a>> {
        match self {
            Instance::Chain(rc) => rc.levels.get(level).map(|p| Name::Pinned(&p.name)),
            Instance::Own(_, l) => l.get(level).map(|p| Name::Shared(p.name.clone())),
        }
    }

    /// The template at `level` of the chain.
    #[inline]
    fn level(&self, level: usize) -> Option<Prog<'a>> {
        match self {
            Instance::Chain(rc) => rc.levels.get(level).map(|p| Prog::Pinned(p)),
            Instance::Own(_, l) => l.get(level).map(|p| Prog::Shared(p.clone())),
        }
    }
}

/// The constant parent named by a body that is nothing but `{% extends 'name' %}`.
fn only_extends(prog: &Program) -> Option<&Arc<str>> {
    match prog.body.as_slice() {
        [Node::Extends(Expr::Const(Value::Str(n)), _)] => Some(n),
        _ => None,
    }
}

/// The chain of `prog` remembered for the rendering library, if any.
fn resolved_chain(lib: &Library, prog: &Program) -> Option<Arc<ResolvedChain>> {
    let link = prog.block_memo.chain.get()?;
    if link.library != lib.id {
        return None;
    }
    link.chain.upgrade()
}

/// How many child chains a template remembers its extended tables for.
const EXTENDED_MEMO: usize = 32;

/// `table` plus the blocks of `parent` at `level`: built once per child chain and kept in
/// `parent` (an `extends` chain renders without rebuilding its table at every level).
fn extend_table(table: &Arc<BlockTable>, parent: &Program, level: usize) -> Arc<BlockTable> {
    let memo = &parent.block_memo.extended;
    if let Ok(m) = memo.lock() {
        if let Some((_, t)) = m
            .iter()
            .find(|((k, l), _)| *l == level && Arc::ptr_eq(k, table))
        {
            return t.clone();
        }
    }
    let mut t = (**table).clone();
    add_blocks(&mut t, parent, level);
    let t = Arc::new(t);
    // Only tables without `use`d templates are kept: they hold no `Program`, so the memo
    // cannot make a reference cycle (the new table contains the key's entries).
    if t.values()
        .flatten()
        .all(|b| matches!(b, BlockAt::Level(..)))
    {
        if let Ok(mut m) = memo.lock() {
            if m.len() < EXTENDED_MEMO {
                m.push(((table.clone(), level), t.clone()));
            }
        }
    }
    t
}

/// What a frame runs: the names of its slots are those of the template's top level, of one
/// of its blocks or of one of its macros (of the frame's `program`).
#[derive(Clone, Copy)]
pub(crate) enum Frame {
    Template,
    Block(usize),
    Macro(usize),
}

impl Frame {
    /// The names of the slots of this frame of `p`.
    pub(crate) fn slot_names(self, p: &Program) -> &[Arc<str>] {
        match self {
            Frame::Template => &p.slot_names,
            Frame::Block(i) => p.blocks.get(i).map_or(&[], |b| &b.slot_names[..]),
            Frame::Macro(i) => p.macros.get(i).map_or(&[], |m| &m.slot_names[..]),
        }
    }
}

/// Position in one running `for` loop.
#[derive(Clone, Copy)]
pub(crate) struct LoopState {
    pub index0: usize,
    pub len: usize,
}

/// Variables visible to the running frame.
pub(crate) struct Scope {
    pub slots: Vec<Value>,
    pub ctx: Arc<Map>,
    pub loops: Vec<LoopState>,
    pub loop_base: usize,
}

/// An arrow function value: the arrow and the frame it was created in.
struct ArrowClosure {
    arrow: Arc<Arrow>,
    frame: u64,
}

/// One render in progress.
pub struct Vm<'a> {
    pub(crate) out: String,
    pub(crate) scope: Scope,
    pub(crate) program: Prog<'a>,
    /// What the running frame is in `program` (where its slot names are).
    frame: Frame,
    fuel: u64,
    depth: usize,
    /// How deep statements with a body (`if`, `for`, `with`, `apply`, `set` blocks) are nested
    /// in the running template: the stack is probed at every 8th level (src/vm/exec.rs).
    nest: u32,
    frame_id: u64,
    next_frame: u64,
    pub(crate) shared: &'a Shared,
    pub(crate) escape: Escape,
    env_allowed: bool,
    store_read_only: bool,
    /// Blocks of the template instance being rendered, and the templates of its `extends`
    /// chain by level (`BlockAt::Level`; no level while the instance's template has neither
    /// blocks nor a parent).
    inst: Instance<'a>,
    /// The block running now (its entry's index in `blocks`) and its level in that entry
    /// (for `parent()`).
    cur_block: Option<(usize, usize)>,
    /// Set by `extends`: rendered once the child's body is done.
    parent: Option<Arc<Program>>,
    /// Templates being rendered (includes and parents), for the depth-limit message.
    chain: Vec<Name<'a>>,
    /// Slot vectors of finished frames, emptied, for the next frames to reuse: the first
    /// `spare_len` (kept in place, so that keeping one allocates nothing).
    spare_slots: [Vec<Value>; SPARE_SLOTS],
    spare_len: usize,
}

/// How many slot vectors of finished frames a render keeps for reuse.
const SPARE_SLOTS: usize = 4;

fn context_map(ctx: &Value) -> Result<Arc<Map>, Error> {
    match ctx {
        Value::Map(m) => Ok(m.clone()),
        Value::Undefined | Value::Null => Ok(Arc::new(Map::new())),
        _ => Err(Error::new(
            ErrorKind::InvalidArgument,
            "context must be a JSON object",
        )),
    }
}

impl<'a> Vm<'a> {
    /// A VM for `program` whose first frame has `slots` slots (at least `program.slots`).
    fn new(
        program: &'a Program,
        shared: &'a Shared,
        ctx: &Value,
        opts: RenderOptions,
        slots: usize,
    ) -> Result<Vm<'a>, Error> {
        Ok(Vm {
            out: String::new(),
            scope: Scope {
                slots: vec![Value::Undefined; slots.max(program.slots)],
                ctx: context_map(ctx)?,
                loops: Vec::new(),
                loop_base: 0,
            },
            frame: Frame::Template,
            program: Prog::Pinned(program),
            fuel: shared.limits.fuel,
            depth: 0,
            nest: 0,
            frame_id: 0,
            next_frame: 1,
            shared,
            escape: opts.escape,
            env_allowed: opts.allow_env,
            store_read_only: opts.read_only_store,
            inst: Instance::Own(empty_table(), no_levels()),
            cur_block: None,
            parent: None,
            chain: Vec::new(),
            spare_slots: Default::default(),
            spare_len: 0,
        })
    }

    /// Attaches the current program's location to an error.
    pub(crate) fn loc(&self, e: Error, span: Span) -> Error {
        e.with_location(&self.program.name, &self.program.source, span.range())
    }

    #[inline]
    pub(crate) fn burn(&mut self, span: Span) -> Result<(), Error> {
        if self.fuel == 0 {
            return Err(self.loc(self.fuel_error(), span));
        }
        self.fuel -= 1;
        Ok(())
    }

    /// Charges fuel for the top level of values an operation read or built (see [`cost`]).
    pub(crate) fn pay_shallow<'v>(
        &mut self,
        values: impl IntoIterator<Item = &'v Value>,
    ) -> Result<(), Error> {
        let n: u64 = values.into_iter().map(cost::shallow).sum();
        if n > 0 {
            State::fuel(self, n)?;
        }
        Ok(())
    }

    /// Charges fuel for a whole nested value an operation walks (see [`cost`]).
    pub(crate) fn pay_deep(&mut self, v: &Value) -> Result<(), Error> {
        let n = cost::deep(v, self.fuel);
        if n > 0 {
            State::fuel(self, n)?;
        }
        Ok(())
    }

    fn fuel_error(&self) -> Error {
        Error::new(
            ErrorKind::Limit,
            format!(
                "fuel exhausted: the render took more than {} evaluation steps (fuel limit)",
                self.shared.limits.fuel
            ),
        )
    }

    pub(crate) fn size_error(&self) -> Error {
        Error::new(
            ErrorKind::Limit,
            format!(
                "output exceeds the size limit of {} bytes",
                self.shared.limits.max_output
            ),
        )
    }

    #[inline]
    pub(crate) fn check_out(&self, span: Span) -> Result<(), Error> {
        if self.out.len() > self.shared.limits.max_output {
            return Err(self.loc(self.size_error(), span));
        }
        Ok(())
    }

    fn enter(&mut self, span: Span) -> Result<(), Error> {
        if self.depth >= self.shared.limits.max_depth {
            return Err(self.loc(
                Error::new(
                    ErrorKind::Limit,
                    format!(
                        "nesting depth exceeds the limit of {} (macro calls and includes)",
                        self.shared.limits.max_depth
                    ),
                ),
                span,
            ));
        }
        self.depth += 1;
        Ok(())
    }

    /// `n` undefined slots for a new frame (a vector of a finished frame when there is one).
    fn new_slots(&mut self, n: usize) -> Vec<Value> {
        if n == 0 {
            return Vec::new();
        }
        if self.spare_len == 0 {
            return vec![Value::Undefined; n];
        }
        self.spare_len -= 1;
        let mut v = std::mem::take(&mut self.spare_slots[self.spare_len]);
        v.resize(n, Value::Undefined);
        v
    }

    /// Runs `f` in a fresh frame (`slots`, `ctx`, `program`), restoring the caller's after.
    /// `ctx: None` keeps the caller's context (a block called from a frame that set no
    /// variable sees exactly that context: no copy, no reference count to touch);
    /// `program: None` keeps the running program (a block of the running template).
    fn with_frame<T>(
        &mut self,
        program: Option<Prog<'a>>,
        frame: Frame,
        slots: Vec<Value>,
        ctx: Option<Arc<Map>>,
        f: impl FnOnce(&mut Self) -> Result<T, Error>,
    ) -> Result<T, Error> {
        let saved_prog = program.map(|p| std::mem::replace(&mut self.program, p));
        let saved_kind = std::mem::replace(&mut self.frame, frame);
        let saved_slots = std::mem::replace(&mut self.scope.slots, slots);
        let saved_ctx = ctx.map(|c| std::mem::replace(&mut self.scope.ctx, c));
        let saved_base = self.scope.loop_base;
        let saved_frame = self.frame_id;
        self.scope.loop_base = self.scope.loops.len();
        self.frame_id = self.next_frame;
        self.next_frame += 1;
        let r = f(self);
        if let Some(p) = saved_prog {
            self.program = p;
        }
        self.frame = saved_kind;
        let mut used = std::mem::replace(&mut self.scope.slots, saved_slots);
        if used.capacity() > 0 && self.spare_len < SPARE_SLOTS {
            used.clear();
            self.spare_slots[self.spare_len] = used;
            self.spare_len += 1;
        }
        if let Some(c) = saved_ctx {
            self.scope.ctx = c;
        }
        self.scope.loops.truncate(self.scope.loop_base);
        self.scope.loop_base = saved_base;
        self.frame_id = saved_frame;
        r
    }

    /// Calls a macro with positional arguments (`Undefined` = not given).
    pub(crate) fn call_macro(
        &mut self,
        mref: &MacroRef,
        args: Vec<Value>,
        span: Span,
    ) -> Result<Value, Error> {
        // Deep (but legal) recursion must not overflow small thread stacks.
        crate::stack::guard(|| self.call_macro_inner(mref, args, span))
    }

    fn call_macro_inner(
        &mut self,
        mref: &MacroRef,
        args: Vec<Value>,
        span: Span,
    ) -> Result<Value, Error> {
        self.burn(span)?;
        let (prog, idx) = match mref {
            MacroRef::Local(i) => (self.program.clone(), *i),
            MacroRef::Imported(p, i) => (Prog::Shared(p.clone()), *i),
        };
        let Some(m) = prog.macros.get(idx) else {
            return Err(self.loc(Error::new(ErrorKind::Runtime, "unknown macro"), span));
        };
        if let Err(e) = self.enter(span) {
            return Err(e.with_hint(format!("while calling macro `{}`", m.name)));
        }
        let mut slots = self.new_slots(m.slots);
        let mut extra = Vec::new();
        for (i, a) in args.into_iter().enumerate() {
            if i < m.params.len() {
                if let Some(s) = slots.get_mut(i) {
                    *s = a;
                }
            } else {
                extra.push(a);
            }
        }
        if let Some(s) = slots.get_mut(m.varargs as usize) {
            *s = Value::list(extra);
        }
        let r = self.with_frame(
            Some(prog.clone()),
            Frame::Macro(idx),
            slots,
            Some(Arc::new(Map::new())),
            |vm| {
                for (i, d) in m.defaults.iter().enumerate() {
                    if vm.scope.slots.get(i).is_some_and(|v| v.is_undefined()) {
                        let v = match d {
                            Some(e) => vm.eval(e)?,
                            None => Value::Null,
                        };
                        vm.scope.slots[i] = v;
                    }
                }
                let saved = std::mem::take(&mut vm.out);
                let r = vm.exec(&m.body);
                let body = std::mem::replace(&mut vm.out, saved);
                r.map(|_| Value::safe(body))
            },
        );
        self.depth -= 1;
        r
    }

    /// Enters a template (include, parent, embed): the depth limit names the chain.
    #[inline]
    fn enter_template(&mut self, name: Name<'a>, span: Span) -> Result<(), Error> {
        if self.depth >= self.shared.limits.max_depth {
            return Err(self.template_depth_error(&name, span));
        }
        self.depth += 1;
        self.chain.push(name);
        Ok(())
    }

    /// The depth-limit error of entering template `name` (the chain named).
    #[cold]
    fn template_depth_error(&self, name: &str, span: Span) -> Error {
        let mut names: Vec<&str> = self.chain.iter().map(|n| &**n).collect();
        names.push(name);
        // Show the first cycle when there is one, else the last templates.
        let shown = match names
            .iter()
            .enumerate()
            .find_map(|(i, n)| names[..i].iter().position(|m| m == n).map(|j| (j, i)))
        {
            Some((j, i)) => format!("{} → …", names[j..=i].join(" → ")),
            None => {
                let from = names.len().saturating_sub(8);
                names[from..].join(" → ")
            }
        };
        self.loc(
            Error::new(
                ErrorKind::Limit,
                format!(
                    "nesting depth exceeds the limit of {} (includes, extends, macro calls): {shown}",
                    self.shared.limits.max_depth
                ),
            ),
            span,
        )
    }

    fn leave_template(&mut self) {
        self.depth -= 1;
        self.chain.pop();
    }

    /// Loads a template by name at render time; a list names candidates (the first
    /// that exists wins). `None`: missing and `ignore_missing`.
    pub(crate) fn load_template(
        &mut self,
        name: &Value,
        ignore_missing: bool,
        span: Span,
    ) -> Result<Option<Arc<Program>>, Error> {
        let lib = self.shared.library.clone();
        if let Value::Str(n) = name {
            // one name (the usual case): no list of candidates to build
            return match lib.get(n, &[]) {
                Ok(Some(p)) => Ok(Some(p)),
                Ok(None) if ignore_missing => Ok(None),
                Ok(None) => Err(self.loc(lib.missing(n), span)),
                Err(e) => Err(self.loc(e, span)),
            };
        }
        let names: Vec<Value> = match name {
            Value::List(l) => l.iter().cloned().collect(),
            Value::Map(m) => m.values().cloned().collect(),
            other => vec![other.clone()],
        };
        for n in &names {
            let key = n.to_cow_str();
            match lib.get(&key, &[]) {
                Ok(Some(p)) => return Ok(Some(p)),
                Ok(None) => {}
                // an invalid name among candidates is one that does not exist
                Err(e) if names.len() > 1 && e.kind() == ErrorKind::InvalidArgument => {}
                Err(e) => return Err(self.loc(e, span)),
            }
        }
        if ignore_missing {
            return Ok(None);
        }
        let e = match names.as_slice() {
            [one] => lib.missing(&one.to_cow_str()),
            _ => Error::new(
                ErrorKind::UnknownName,
                format!(
                    "none of the templates {} exists",
                    names
                        .iter()
                        .map(|n| format!("`{}`", n.to_cow_str()))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ),
        };
        Err(self.loc(e, span))
    }

    /// The parent named by the constant `extends` of the running template: remembered in the
    /// template after the first lookup, for as long as this library renders it.
    pub(crate) fn constant_parent(
        &mut self,
        name: &Arc<str>,
        span: Span,
    ) -> Result<Arc<Program>, Error> {
        let lib_id = self.shared.library.id;
        let prog = self.program.clone();
        if let Some(link) = prog.block_memo.parent.get() {
            if link.library == lib_id && link.name == *name {
                if let Some(p) = link.program.upgrade() {
                    return Ok(p);
                }
            }
        }
        let lib = self.shared.library.clone();
        let p = match lib.get(name, &[]) {
            Ok(Some(p)) => p,
            Ok(None) => return Err(self.loc(lib.missing(name), span)),
            Err(e) => return Err(self.loc(e, span)),
        };
        let _ = prog.block_memo.parent.set(ParentLink {
            library: lib_id,
            name: name.clone(),
            program: Arc::downgrade(&p),
        });
        Ok(p)
    }

    /// Renders a template instance (its own frame and blocks) with `ctx`.
    pub(crate) fn run_template(
        &mut self,
        prog: Arc<Program>,
        ctx: Arc<Map>,
        span: Span,
    ) -> Result<(), Error> {
        crate::stack::guard(|| {
            self.enter_template(Name::Shared(prog.name.clone()), span)?;
            let saved_inst = std::mem::replace(&mut self.inst, instance_blocks(&prog));
            let saved_cur = self.cur_block.take();
            let slots = self.new_slots(prog.slots);
            let r = self.with_frame(
                Some(Prog::Shared(prog.clone())),
                Frame::Template,
                slots,
                Some(ctx),
                |vm| vm.exec_template(&prog, None),
            );
            self.inst = saved_inst;
            self.cur_block = saved_cur;
            self.leave_template();
            r
        })
    }

    /// Runs a template's body in the current frame; when it extended another, the
    /// body's output is dropped and the parent renders with the child's variables.
    /// `pinned`: the resolved chain of `prog` when `render` found it (and keeps it alive for
    /// the whole render).
    pub(crate) fn exec_template(
        &mut self,
        prog: &Arc<Program>,
        pinned: Option<&'a ResolvedChain>,
    ) -> Result<(), Error> {
        // `prog` is level 0 of its instance: its whole chain may be known already
        let resolved = match pinned {
            None if self.inst.levels().len() <= 1 => resolved_chain(&self.shared.library, prog),
            _ => None,
        };
        if only_extends(prog).is_some() {
            // the body would only name the parent: nothing to run
            if let Some(rc) = pinned.filter(|rc| self.chain_fits(rc)) {
                return self.render_resolved(Instance::Chain(rc));
            }
            if let Some(rc) = resolved.as_ref().filter(|rc| self.chain_fits(rc)) {
                return self.render_resolved(Instance::Own(rc.table.clone(), rc.levels.clone()));
            }
        }
        let start = self.out.len();
        let saved_parent = self.parent.take();
        let r = self.exec(&prog.body);
        let parent = std::mem::replace(&mut self.parent, saved_parent);
        r?;
        let Some(parent) = parent else {
            return Ok(());
        };
        self.out.truncate(start);
        let is_parent_of =
            |rc: &ResolvedChain| rc.levels.get(1).is_some_and(|l| Arc::ptr_eq(l, &parent));
        if let Some(rc) = pinned {
            if is_parent_of(rc) && self.chain_fits(rc) {
                return self.render_resolved(Instance::Chain(rc));
            }
        } else if self.inst.levels().len() <= 1 {
            let rc = match resolved {
                Some(rc) => Some(rc),
                None => self.resolve_chain(prog, &parent),
            };
            if let Some(rc) = rc {
                if is_parent_of(&rc) && self.chain_fits(&rc) {
                    return self
                        .render_resolved(Instance::Own(rc.table.clone(), rc.levels.clone()));
                }
            }
        }
        if let Instance::Chain(rc) = self.inst {
            self.inst = Instance::Own(rc.table.clone(), rc.levels.clone());
        }
        if let Instance::Own(table, levels) = &mut self.inst {
            if levels.is_empty() {
                // `prog` started the instance without blocks: it is level 0
                *levels = Arc::new(vec![prog.clone()]);
                *table = table_for(prog);
            }
            *table = extend_table(table, &parent, levels.len());
            Arc::make_mut(levels).push(parent.clone());
        }
        let vars = self.inherited_ctx();
        self.enter_template(Name::Shared(parent.name.clone()), Span::default())?;
        let r = crate::stack::guard(|| {
            let slots = self.new_slots(parent.slots);
            self.with_frame(
                Some(Prog::Shared(parent.clone())),
                Frame::Template,
                slots,
                vars,
                |vm| vm.exec_template(&parent, None),
            )
        });
        self.leave_template();
        r
    }

    /// Whether entering every parent of `rc` stays within the depth limit (else the levels
    /// are entered one by one, and the one beyond the limit reports it).
    fn chain_fits(&self, rc: &ResolvedChain) -> bool {
        self.depth + rc.levels.len() - 1 <= self.shared.limits.max_depth
    }

    /// Resolves and remembers the chain of `prog` (level 0, whose body named `parent`) when
    /// every level is a constant and the levels between `prog` and the base have bodies that
    /// are nothing but their `extends` (their frames would set nothing the base could see).
    /// `None` (the chain renders level by level) otherwise, or when `prog` is not one of the
    /// library's templates (an `embed`, a template compiled apart).
    fn resolve_chain(
        &mut self,
        prog: &Arc<Program>,
        parent: &Arc<Program>,
    ) -> Option<Arc<ResolvedChain>> {
        if prog.block_memo.chain.get().is_some() {
            return None; // resolved (for another library), or known not to resolve
        }
        let lib = self.shared.library.clone();
        let rc = self.chain_levels(&lib, prog, parent).map(|levels| {
            let mut table = BlockTable::default();
            for (i, l) in levels.iter().enumerate() {
                add_blocks(&mut table, l, i);
            }
            let entries = levels
                .iter()
                .map(|l| {
                    l.blocks
                        .iter()
                        .map(|b| {
                            table
                                .get_index_of(&b.name)
                                .and_then(|e| u32::try_from(e).ok())
                                .unwrap_or(u32::MAX)
                        })
                        .collect()
                })
                .collect::<Vec<Vec<u32>>>();
            let flat = flat::flatten(&levels, &table, &entries);
            Arc::new(ResolvedChain {
                levels: Arc::new(levels),
                table: Arc::new(table),
                entries,
                flat,
            })
        });
        // A chain that does not resolve is remembered as such (an empty link): the next
        // renders go level by level without trying again.
        let link = ChainLink {
            library: lib.id,
            chain: rc
                .as_ref()
                .map_or_else(std::sync::Weak::new, Arc::downgrade),
        };
        if prog.block_memo.chain.set(link).is_ok() {
            if let (Some(rc), Ok(mut kept)) = (&rc, lib.chains.lock()) {
                kept.push(rc.clone());
            }
        }
        rc
    }

    /// The levels of the chain of `prog` (see [`Vm::resolve_chain`]).
    fn chain_levels(
        &self,
        lib: &Library,
        prog: &Arc<Program>,
        parent: &Arc<Program>,
    ) -> Option<Vec<Arc<Program>>> {
        if !lib.holds(prog) {
            return None;
        }
        let mut levels = vec![prog.clone(), parent.clone()];
        let mut last = parent.clone();
        while let Some(name) = only_extends(&last) {
            if levels.len() > self.shared.limits.max_depth {
                return None;
            }
            let next = lib.get(name, &[]).ok()??;
            if levels.iter().any(|l| Arc::ptr_eq(l, &next)) {
                return None; // a cycle: rendered level by level, it reports itself
            }
            levels.push(next.clone());
            last = next;
        }
        if last.body.iter().any(|n| matches!(n, Node::Extends(..))) {
            return None; // a level with more than its `extends` (or a dynamic one)
        }
        Some(levels)
    }

    /// Renders the base of a resolved chain (`inst`) with the variables of level 0 (the
    /// running frame): the levels between have nothing to run, so only their depth is counted.
    fn render_resolved(&mut self, inst: Instance<'a>) -> Result<(), Error> {
        let n = inst.levels().len();
        let Some(base) = n.checked_sub(1).and_then(|l| inst.level(l)) else {
            return Ok(());
        };
        let vars = self.inherited_ctx();
        // the flattened body of a chain borrowed for the render (src/vm/flat.rs)
        let flat = match &inst {
            Instance::Chain(rc) => {
                let rc: &'a ResolvedChain = rc;
                rc.flat.as_ref()
            }
            Instance::Own(..) => None,
        };
        let mut entered = 0;
        let mut r = Ok(());
        for l in 1..n {
            let Some(name) = inst.level_name(l) else {
                break;
            };
            r = self.enter_template(name, Span::default());
            if r.is_err() {
                break;
            }
            entered += 1;
        }
        self.inst = inst;
        if r.is_ok() {
            r = crate::stack::guard(|| {
                match flat {
                    // the child set no variable: the base runs in its slots
                    Some(f) if vars.is_none() && self.flat_fits(f) => {
                        self.run_flat_shared(base.clone(), f)
                    }
                    _ => {
                        let slots = self.new_slots(base.slots);
                        self.with_frame(Some(base.clone()), Frame::Template, slots, vars, |vm| {
                            match flat {
                                Some(f) if vm.flat_fits(f) => vm.run_flat(f),
                                _ => vm.exec(&base.body).map(|_| ()),
                            }
                        })
                    }
                }
            });
        }
        for _ in 0..entered {
            self.leave_template();
        }
        r
    }

    /// `include` (tag or function) and `embed`: renders into the output.
    pub(crate) fn include(
        &mut self,
        inc: &IncludeCall,
        embedded: Option<&Arc<Program>>,
    ) -> Result<(), Error> {
        let ignore = self.eval(&inc.ignore_missing)?.is_truthy();
        let prog = match embedded {
            Some(p) => p.clone(),
            None => {
                let n = self.eval(&inc.name)?;
                match self.load_template(&n, ignore, inc.span)? {
                    Some(p) => p,
                    None => return Ok(()),
                }
            }
        };
        let with_context = self.eval(&inc.with_context)?.is_truthy();
        let mut vars = if with_context {
            self.variables()
        } else {
            Map::new()
        };
        if let Some(w) = &inc.with {
            match self.eval(w)? {
                Value::Map(m) => {
                    for (k, v) in m.iter() {
                        vars.insert(k.clone(), v.clone());
                    }
                }
                Value::List(l) if l.is_empty() => {}
                Value::Null | Value::Undefined => {}
                other => {
                    return Err(self.loc(
                        Error::type_mismatch(
                            "include",
                            "the variables",
                            "a map",
                            other.type_with_article(),
                        ),
                        inc.span,
                    ))
                }
            }
        }
        self.run_template(prog, Arc::new(vars), inc.span)
    }

    /// `{% block name %}` of the running template (`own`: the index of its definition there):
    /// renders the most derived definition of `name`. In a resolved chain, the entry of a
    /// level's block is known (no name to hash).
    pub(crate) fn render_block_ref(
        &mut self,
        name: &Arc<str>,
        own: u32,
        span: Span,
    ) -> Result<bool, Error> {
        if let Instance::Chain(rc) = self.inst {
            let running: &Program = &self.program;
            // (the tag and the definition share the name's `Arc`: a cheap check that `own`
            // is this tag's block)
            let entry = rc
                .levels
                .iter()
                .position(|l| std::ptr::eq::<Program>(&**l, running))
                .filter(|_| {
                    running
                        .blocks
                        .get(own as usize)
                        .is_some_and(|b| Arc::ptr_eq(&b.name, name))
                })
                .and_then(|l| rc.entries.get(l)?.get(own as usize))
                .map(|&e| e as usize);
            if let Some(e) = entry {
                return self.render_entry(e, 0, span);
            }
        }
        self.render_block(name, 0, span)
    }

    /// Renders block `name` at `level` of the current table; false when there is none.
    pub(crate) fn render_block(
        &mut self,
        name: &Arc<str>,
        level: usize,
        span: Span,
    ) -> Result<bool, Error> {
        match self.inst.table().get_index_of(name) {
            Some(entry) => self.render_entry(entry, level, span),
            None => Ok(false),
        }
    }

    /// Renders the definition at `level` of entry `entry` of the current table; false when
    /// there is none.
    fn render_entry(&mut self, entry: usize, level: usize, span: Span) -> Result<bool, Error> {
        let found = match self
            .inst
            .table()
            .get_index(entry)
            .and_then(|(_, v)| v.get(level))
        {
            Some(BlockAt::Level(l, i)) => self.inst.level(*l).map(|p| (p, *i)),
            Some(BlockAt::Used(p, i)) => Some((Prog::Shared(p.clone()), *i)),
            None => None,
        };
        let Some((prog, idx)) = found else {
            return Ok(false);
        };
        let Some(def) = prog.blocks.get(idx) else {
            return Ok(false);
        };
        if let Err(e) = self.enter(span) {
            let name = self.inst.table().get_index(entry).map_or("", |(k, _)| &**k);
            return Err(e.with_hint(format!("while rendering block `{name}`")));
        }
        let vars = self.inherited_ctx();
        let saved_cur = self.cur_block.replace((entry, level));
        let check_stack = self.depth % 8 == 0;
        // A block of the running template (the base's own blocks in a resolved chain) runs
        // without swapping the program.
        let program = (!std::ptr::eq::<Program>(&*prog, &*self.program)).then(|| prog.clone());
        let run = || {
            let slots = self.new_slots(def.slots);
            self.with_frame(program, Frame::Block(idx), slots, vars, |vm| {
                vm.exec(&def.body).map(|_| ())
            })
        };
        // The remaining stack is checked at every eighth level of nesting: a block adds a few
        // frames, far less than the red zone (256 KiB) in seven levels, and the check (a call
        // into `stacker`) is a fair part of entering a block.
        let r = if check_stack {
            crate::stack::guard(run)
        } else {
            run()
        };
        self.cur_block = saved_cur;
        self.depth -= 1;
        r.map(|()| true)
    }

    /// `parent()`: renders the next definition of the running block; false when there is
    /// none. `Err(None)` when no block is running.
    pub(crate) fn render_parent_block(&mut self, span: Span) -> Result<bool, Option<Error>> {
        let Some((entry, level)) = self.cur_block else {
            return Err(None);
        };
        self.render_entry(entry, level + 1, span).map_err(Some)
    }

    /// The name of the running block (for messages).
    pub(crate) fn current_block_name(&self) -> Option<Arc<str>> {
        let (entry, _) = self.cur_block?;
        self.inst.table().get_index(entry).map(|(k, _)| k.clone())
    }

    /// Runs `f` with the blocks of template `tpl` (and its constant parents) instead
    /// of the current ones (`block(name, tpl)`).
    pub(crate) fn with_blocks_of<T>(
        &mut self,
        tpl: &Value,
        span: Span,
        f: impl FnOnce(&mut Self) -> Result<T, Error>,
    ) -> Result<T, Error> {
        let Some(mut prog) = self.load_template(tpl, false, span)? else {
            return Err(self.loc(self.shared.library.missing(&tpl.to_cow_str()), span));
        };
        let mut table = BlockTable::default();
        add_blocks(&mut table, &prog, 0);
        let mut levels = vec![prog.clone()];
        let mut hops = 0;
        while let Some(p) = prog.parent_name.clone() {
            hops += 1;
            if hops > self.shared.limits.max_depth {
                break;
            }
            match self.load_template(&Value::Str(p), false, span)? {
                Some(pp) => {
                    add_blocks(&mut table, &pp, levels.len());
                    levels.push(pp.clone());
                    prog = pp;
                }
                None => break,
            }
        }
        let saved = std::mem::replace(
            &mut self.inst,
            Instance::Own(Arc::new(table), Arc::new(levels)),
        );
        let saved_cur = self.cur_block.take();
        let r = f(self);
        self.inst = saved;
        self.cur_block = saved_cur;
        r
    }

    pub(crate) fn has_block(&self, name: &str) -> bool {
        self.inst.table().get(name).is_some_and(|v| !v.is_empty())
    }

    pub(crate) fn set_parent(&mut self, p: Arc<Program>) {
        self.parent = Some(p);
    }

    /// Runs `f` writing into a fresh buffer; returns what it wrote.
    pub(crate) fn capture_with(
        &mut self,
        f: impl FnOnce(&mut Self) -> Result<(), Error>,
    ) -> Result<String, Error> {
        let saved = std::mem::take(&mut self.out);
        let r = f(self);
        let captured = std::mem::replace(&mut self.out, saved);
        r.map(|()| captured)
    }

    /// The value of an arrow-function expression.
    pub(crate) fn arrow_value(&self, a: &Arc<Arrow>) -> Value {
        Value::Callable(Arc::new(crate::value::Callable {
            name: Arc::from("arrow function"),
            inner: Arc::new(ArrowClosure {
                arrow: a.clone(),
                frame: self.frame_id,
            }),
        }))
    }

    /// The context of a frame that sees the current variables (a block, a parent template):
    /// `None` when the running frame set no variable, so the new frame keeps the same context.
    fn inherited_ctx(&self) -> Option<Arc<Map>> {
        if self.scope.slots.iter().all(|v| v.is_undefined()) {
            None
        } else {
            Some(Arc::new(self.variables()))
        }
    }

    /// The current variables as a map (context keys overridden by template variables).
    pub(crate) fn variables(&self) -> Map {
        let mut m = (*self.scope.ctx).clone();
        for (i, v) in self.scope.slots.iter().enumerate() {
            if !v.is_undefined() {
                if let Some(n) = self.frame.slot_names(&self.program).get(i) {
                    m.insert(n.clone(), v.clone());
                }
            }
        }
        m
    }
}

impl State for Vm<'_> {
    fn call(&mut self, callee: &Value, args: &[Value]) -> Result<Value, Error> {
        let Value::Callable(c) = callee else {
            return Err(Error::new(
                ErrorKind::Type,
                format!(
                    "expected an arrow function, got {}",
                    callee.type_with_article()
                ),
            ));
        };
        let Some(closure) = c.inner.downcast_ref::<ArrowClosure>() else {
            return Err(Error::new(
                ErrorKind::Type,
                format!("{} cannot be called here", c.name),
            ));
        };
        if closure.frame != self.frame_id {
            return Err(Error::new(
                ErrorKind::Runtime,
                "an arrow function can only be called where it is written",
            ));
        }
        State::fuel(self, 1)?;
        let arrow = closure.arrow.clone();
        let mut saved = Vec::with_capacity(arrow.params.len());
        for (i, &s) in arrow.params.iter().enumerate() {
            let v = args.get(i).cloned().unwrap_or(Value::Null);
            if let Some(slot) = self.scope.slots.get_mut(s as usize) {
                saved.push(std::mem::replace(slot, v));
            }
        }
        let r = self.eval(&arrow.body);
        for (&s, v) in arrow.params.iter().zip(saved) {
            if let Some(slot) = self.scope.slots.get_mut(s as usize) {
                *slot = v;
            }
        }
        r
    }
    fn fuel(&mut self, n: u64) -> Result<(), Error> {
        if self.fuel < n {
            self.fuel = 0;
            return Err(self.fuel_error());
        }
        self.fuel -= n;
        Ok(())
    }
    fn check_size(&self, bytes: usize) -> Result<(), Error> {
        if bytes > self.shared.limits.max_output {
            return Err(Error::new(
                ErrorKind::Limit,
                format!(
                    "a string of {bytes} bytes exceeds the size limit of {} bytes",
                    self.shared.limits.max_output
                ),
            ));
        }
        Ok(())
    }
    fn limits(&self) -> &Limits {
        &self.shared.limits
    }
    fn host(&self) -> &Host {
        &self.shared.host
    }
    fn env_allowed(&self) -> bool {
        self.env_allowed
    }
    fn store_read_only(&self) -> bool {
        self.store_read_only
    }
}

/// Renders a compiled program with a context (a map value).
pub fn render(
    program: &Arc<Program>,
    shared: &Shared,
    ctx: &Value,
    opts: RenderOptions,
) -> Result<String, Error> {
    use std::sync::atomic::Ordering::Relaxed;
    // The resolved chain of `program`, if any, lives as long as the render: its levels and
    // blocks are entered by reference.
    let pinned = resolved_chain(&shared.library, program);
    // the slots the flattened body will run in, allocated once (src/vm/flat.rs)
    let slots = match pinned.as_deref() {
        Some(ResolvedChain {
            flat: Some(f),
            levels,
            ..
        }) => f.slots.max(levels.last().map_or(0, |b| b.slots)),
        _ => 0,
    };
    let mut vm = Vm::new(program, shared, ctx, opts, slots)?;
    let hint = program.size_hint.load(Relaxed).max(program.source.len());
    vm.out.reserve(hint.min(shared.limits.max_output));
    vm.chain.push(Name::Pinned(&program.name));
    if let Some(rc) = pinned.as_deref() {
        if vm.flat_at_top(program, rc) {
            // the child only extends and its chain runs flattened: nothing else to set up
            vm.run_chain_at_top(rc)?;
            program.size_hint.store(vm.out.len(), Relaxed);
            return Ok(vm.out);
        }
    }
    // A child whose body only names the parent of a resolved chain gets the chain's table
    // and levels in `exec_template`: its own would be built and dropped unused (two
    // allocations per render). Rendered level by level, it starts without blocks, which
    // `exec_template` handles (it becomes level 0 when its parent is entered).
    if only_extends(program).is_none() || pinned.is_none() {
        vm.inst = instance_blocks(program);
    }
    vm.exec_template(program, pinned.as_deref())?;
    program.size_hint.store(vm.out.len(), Relaxed);
    Ok(vm.out)
}

/// Evaluates a compiled standalone expression.
pub fn eval_expression(
    program: &Arc<Program>,
    expr: &Expr,
    shared: &Shared,
    ctx: &Value,
    opts: RenderOptions,
) -> Result<Value, Error> {
    let mut vm = Vm::new(program, shared, ctx, opts, 0)?;
    vm.eval(expr)
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod perf;
