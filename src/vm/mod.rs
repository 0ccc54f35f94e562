//! The interpreter: walks the compiled IR writing into one output `String`, with
//! slots for template variables, a loop stack for `loop.*`, and the sandbox limits
//! (fuel, output/string size, depth).

mod cost;
pub(crate) use crate::escape;
mod eval;
mod exec;

use crate::builtins::{Host, State};
use crate::compile::ir::{
    Arrow, BlockAt, BlockTable, Expr, IncludeCall, MacroRef, ParentLink, Program,
};
use crate::error::{Error, ErrorKind};
use crate::escape::Escape;
use crate::limits::Limits;
use crate::loader::Library;
use crate::options::RenderOptions;
use crate::syntax::ast::Span;
use crate::value::{Map, Value};
use std::sync::Arc;

/// Below this much remaining stack, macro calls and includes continue on a new segment.
const STACK_RED_ZONE: usize = 256 * 1024;
const STACK_GROW: usize = 4 * 1024 * 1024;

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

/// The block table and levels a template instance starts with.
fn instance_blocks(prog: &Arc<Program>) -> (Arc<BlockTable>, Vec<Arc<Program>>) {
    if prog.blocks.is_empty() && prog.traits.is_empty() {
        (empty_table(), Vec::new())
    } else {
        (table_for(prog), vec![prog.clone()])
    }
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
    pub(crate) program: Arc<Program>,
    pub(crate) names: Arc<Vec<Arc<str>>>,
    fuel: u64,
    depth: usize,
    frame_id: u64,
    next_frame: u64,
    pub(crate) shared: &'a Shared,
    pub(crate) escape: Escape,
    env_allowed: bool,
    /// Blocks of the template instance being rendered.
    blocks: Arc<BlockTable>,
    /// The templates of the instance's `extends` chain, by level (`BlockAt::Level`); empty
    /// while the instance's template has neither blocks nor a parent.
    levels: Vec<Arc<Program>>,
    /// The block running now and its level in the table (for `parent()`).
    cur_block: Option<(Arc<str>, usize)>,
    /// Set by `extends`: rendered once the child's body is done.
    parent: Option<Arc<Program>>,
    /// Templates being rendered (includes and parents), for the depth-limit message.
    chain: Vec<Arc<str>>,
    /// Slot vectors of finished frames, emptied, for the next frames to reuse.
    spare_slots: Vec<Vec<Value>>,
}

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
    fn new(
        program: Arc<Program>,
        shared: &'a Shared,
        ctx: &Value,
        opts: RenderOptions,
    ) -> Result<Vm<'a>, Error> {
        Ok(Vm {
            out: String::new(),
            scope: Scope {
                slots: vec![Value::Undefined; program.slots],
                ctx: context_map(ctx)?,
                loops: Vec::new(),
                loop_base: 0,
            },
            names: program.slot_names.clone(),
            program,
            fuel: shared.limits.fuel,
            depth: 0,
            frame_id: 0,
            next_frame: 1,
            shared,
            escape: opts.escape,
            env_allowed: opts.allow_env,
            blocks: empty_table(),
            levels: Vec::new(),
            cur_block: None,
            parent: None,
            chain: Vec::new(),
            spare_slots: Vec::new(),
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
    pub(crate) fn pay_shallow(&mut self, values: &[&Value]) -> Result<(), Error> {
        let n: u64 = values.iter().map(|v| cost::shallow(v)).sum();
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
        match self.spare_slots.pop() {
            Some(mut v) => {
                v.resize(n, Value::Undefined);
                v
            }
            None => vec![Value::Undefined; n],
        }
    }

    /// Runs `f` in a fresh frame (`slots`, `ctx`, `program`), restoring the caller's after.
    fn with_frame<T>(
        &mut self,
        program: Arc<Program>,
        names: Arc<Vec<Arc<str>>>,
        slots: Vec<Value>,
        ctx: Arc<Map>,
        f: impl FnOnce(&mut Self) -> Result<T, Error>,
    ) -> Result<T, Error> {
        let saved_prog = std::mem::replace(&mut self.program, program);
        let saved_names = std::mem::replace(&mut self.names, names);
        let saved_slots = std::mem::replace(&mut self.scope.slots, slots);
        let saved_ctx = std::mem::replace(&mut self.scope.ctx, ctx);
        let saved_base = self.scope.loop_base;
        let saved_frame = self.frame_id;
        self.scope.loop_base = self.scope.loops.len();
        self.frame_id = self.next_frame;
        self.next_frame += 1;
        let r = f(self);
        self.program = saved_prog;
        self.names = saved_names;
        let mut used = std::mem::replace(&mut self.scope.slots, saved_slots);
        if used.capacity() > 0 && self.spare_slots.len() < 8 {
            used.clear();
            self.spare_slots.push(used);
        }
        self.scope.ctx = saved_ctx;
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
        stacker::maybe_grow(STACK_RED_ZONE, STACK_GROW, || {
            self.call_macro_inner(mref, args, span)
        })
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
            MacroRef::Imported(p, i) => (p.clone(), *i),
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
        let names = m.slot_names.clone();
        let r = self.with_frame(prog.clone(), names, slots, Arc::new(Map::new()), |vm| {
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
        });
        self.depth -= 1;
        r
    }

    /// Enters a template (include, parent, embed): the depth limit names the chain.
    fn enter_template(&mut self, name: &Arc<str>, span: Span) -> Result<(), Error> {
        if self.depth >= self.shared.limits.max_depth {
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
            return Err(self.loc(
                Error::new(
                    ErrorKind::Limit,
                    format!(
                        "nesting depth exceeds the limit of {} (includes, extends, macro calls): {shown}",
                        self.shared.limits.max_depth
                    ),
                ),
                span,
            ));
        }
        self.depth += 1;
        self.chain.push(name.clone());
        Ok(())
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
        stacker::maybe_grow(STACK_RED_ZONE, STACK_GROW, || {
            self.enter_template(&prog.name, span)?;
            let (table, levels) = instance_blocks(&prog);
            let saved_blocks = std::mem::replace(&mut self.blocks, table);
            let saved_levels = std::mem::replace(&mut self.levels, levels);
            let saved_cur = self.cur_block.take();
            let slots = self.new_slots(prog.slots);
            let names = prog.slot_names.clone();
            let r = self.with_frame(prog.clone(), names, slots, ctx, |vm| {
                vm.exec_template(&prog)
            });
            self.blocks = saved_blocks;
            self.levels = saved_levels;
            self.cur_block = saved_cur;
            self.leave_template();
            r
        })
    }

    /// Runs a template's body in the current frame; when it extended another, the
    /// body's output is dropped and the parent renders with the child's variables.
    pub(crate) fn exec_template(&mut self, prog: &Arc<Program>) -> Result<(), Error> {
        let start = self.out.len();
        let saved_parent = self.parent.take();
        let r = self.exec(&prog.body);
        let parent = std::mem::replace(&mut self.parent, saved_parent);
        r?;
        let Some(parent) = parent else {
            return Ok(());
        };
        self.out.truncate(start);
        if self.levels.is_empty() {
            // `prog` started the instance without blocks: it is level 0
            self.levels.push(prog.clone());
            self.blocks = table_for(prog);
        }
        self.blocks = extend_table(&self.blocks, &parent, self.levels.len());
        self.levels.push(parent.clone());
        let vars = self.variables_arc();
        self.enter_template(&parent.name, Span::default())?;
        let r = stacker::maybe_grow(STACK_RED_ZONE, STACK_GROW, || {
            let slots = self.new_slots(parent.slots);
            let names = parent.slot_names.clone();
            self.with_frame(parent.clone(), names, slots, vars, |vm| {
                vm.exec_template(&parent)
            })
        });
        self.leave_template();
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

    /// Renders block `name` at `level` of the current table; false when there is none.
    pub(crate) fn render_block(
        &mut self,
        name: &Arc<str>,
        level: usize,
        span: Span,
    ) -> Result<bool, Error> {
        let found = match self.blocks.get(name).and_then(|v| v.get(level)) {
            Some(BlockAt::Level(l, i)) => self.levels.get(*l).map(|p| (p.clone(), *i)),
            Some(BlockAt::Used(p, i)) => Some((p.clone(), *i)),
            None => None,
        };
        let Some((prog, idx)) = found else {
            return Ok(false);
        };
        let Some(def) = prog.blocks.get(idx) else {
            return Ok(false);
        };
        if let Err(e) = self.enter(span) {
            return Err(e.with_hint(format!("while rendering block `{name}`")));
        }
        let vars = self.variables_arc();
        let saved_cur = self.cur_block.replace((name.clone(), level));
        let r = stacker::maybe_grow(STACK_RED_ZONE, STACK_GROW, || {
            let slots = self.new_slots(def.slots);
            self.with_frame(prog.clone(), def.slot_names.clone(), slots, vars, |vm| {
                vm.exec(&def.body).map(|_| ())
            })
        });
        self.cur_block = saved_cur;
        self.depth -= 1;
        r.map(|()| true)
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
        let saved = std::mem::replace(&mut self.blocks, Arc::new(table));
        let saved_levels = std::mem::replace(&mut self.levels, levels);
        let saved_cur = self.cur_block.take();
        let r = f(self);
        self.blocks = saved;
        self.levels = saved_levels;
        self.cur_block = saved_cur;
        r
    }

    pub(crate) fn has_block(&self, name: &str) -> bool {
        self.blocks.get(name).is_some_and(|v| !v.is_empty())
    }

    pub(crate) fn current_block(&self) -> Option<(Arc<str>, usize)> {
        self.cur_block.clone()
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

    /// The current variables, without a copy when the frame set none.
    pub(crate) fn variables_arc(&self) -> Arc<Map> {
        if self.scope.slots.iter().all(|v| v.is_undefined()) {
            self.scope.ctx.clone()
        } else {
            Arc::new(self.variables())
        }
    }

    /// The current variables as a map (context keys overridden by template variables).
    pub(crate) fn variables(&self) -> Map {
        let mut m = (*self.scope.ctx).clone();
        for (i, v) in self.scope.slots.iter().enumerate() {
            if !v.is_undefined() {
                if let Some(n) = self.names.get(i) {
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
}

/// Renders a compiled program with a context (a map value).
pub fn render(
    program: &Arc<Program>,
    shared: &Shared,
    ctx: &Value,
    opts: RenderOptions,
) -> Result<String, Error> {
    use std::sync::atomic::Ordering::Relaxed;
    let mut vm = Vm::new(program.clone(), shared, ctx, opts)?;
    let hint = program.size_hint.load(Relaxed).max(program.source.len());
    vm.out.reserve(hint.min(shared.limits.max_output));
    (vm.blocks, vm.levels) = instance_blocks(program);
    vm.chain.push(program.name.clone());
    vm.exec_template(program)?;
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
    let mut vm = Vm::new(program.clone(), shared, ctx, opts)?;
    vm.eval(expr)
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod perf;
