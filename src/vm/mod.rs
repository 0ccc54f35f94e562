//! The interpreter: walks the compiled IR writing into one output `String`, with
//! slots for template variables, a loop stack for `loop.*`, and the sandbox limits
//! (fuel, output/string size, depth).

mod cost;
pub(crate) use crate::escape;
mod eval;
mod exec;

use crate::builtins::{Host, State};
use crate::compile::ir::{Arrow, Expr, MacroRef, Program};
use crate::error::{Error, ErrorKind};
use crate::escape::Escape;
use crate::limits::Limits;
use crate::options::RenderOptions;
use crate::syntax::ast::Span;
use crate::value::{Map, Value};
use std::collections::HashMap;
use std::sync::Arc;

/// Below this much remaining stack, macro calls and includes continue on a new segment.
const STACK_RED_ZONE: usize = 256 * 1024;
const STACK_GROW: usize = 4 * 1024 * 1024;

/// What every render of an engine shares: limits, host services, snippets.
pub struct Shared {
    pub limits: Limits,
    pub host: Host,
    pub snippets: Arc<HashMap<Arc<str>, Arc<Program>>>,
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
        self.scope.slots = saved_slots;
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
        let mut slots = vec![Value::Undefined; m.slots];
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

    /// Renders a snippet into the output with the given context.
    pub(crate) fn include(
        &mut self,
        prog: Arc<Program>,
        ctx: Arc<Map>,
        span: Span,
    ) -> Result<(), Error> {
        stacker::maybe_grow(STACK_RED_ZONE, STACK_GROW, || {
            self.include_inner(prog, ctx, span)
        })
    }

    fn include_inner(
        &mut self,
        prog: Arc<Program>,
        ctx: Arc<Map>,
        span: Span,
    ) -> Result<(), Error> {
        self.enter(span)?;
        let slots = vec![Value::Undefined; prog.slots];
        let names = prog.slot_names.clone();
        let r = self.with_frame(prog.clone(), names, slots, ctx, |vm| {
            vm.exec(&prog.body).map(|_| ())
        });
        self.depth -= 1;
        r
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
    vm.exec(&program.body)?;
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
