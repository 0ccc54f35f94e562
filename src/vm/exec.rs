//! Executing statements: printing, `set`, `if`, `for` (with Twig's scope rule),
//! `with`, `apply`, `include`.

use super::escape::{escape_into, write_int};
use super::{LoopState, Vm};
use crate::compile::ir::{Call, Esc, Expr, For, Node, Strategy};
use crate::error::{Error, ErrorKind};
use crate::escape::Escape;
use crate::syntax::ast::Span;
use crate::value::{write_json_styled, write_value, JsonStyle, Map, Value};
use std::sync::Arc;

/// How a statement list ended.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flow {
    Normal,
    Break,
    Continue,
}

/// Writes a value with an optional escaping strategy (safe strings are never escaped).
pub(crate) fn write_out(out: &mut String, v: &Value, esc: Option<Strategy>) {
    match v {
        Value::Int(i) => write_int(out, *i),
        Value::Str(s) => match esc {
            Some(st) => escape_into(out, s, st),
            None => out.push_str(s),
        },
        Value::Safe(s) => out.push_str(s),
        Value::List(_) | Value::Map(_) if esc.is_some() => {
            let s = v.to_output();
            if let Some(st) = esc {
                escape_into(out, &s, st);
            }
        }
        other => write_value(out, other),
    }
}

/// `{{ x|json_encode|raw }}` with the builtin filters (not a host's) and no other arguments: the
/// `raw` call, the `json_encode` call and `x`.
fn json_raw(e: &Expr) -> Option<(&Call, &Call, &Expr)> {
    let Expr::Call(raw) = e else { return None };
    let [Expr::Call(json)] = raw.args.as_slice() else {
        return None;
    };
    let [x] = json.args.as_slice() else {
        return None;
    };
    crate::builtins::builtin_json_raw(&json.func, &raw.func).then_some((raw, json, x))
}

impl Vm<'_> {
    /// Prints `{{ x|json_encode|raw }}` (see [`json_raw`]) with the JSON written straight into
    /// the output instead of into a string, a `Value` and its `raw` copy: the same bytes, and the
    /// same steps, fuel, size check and errors in the same order as evaluating the two calls
    /// (src/vm/eval.rs `Expr::Call`, src/builtins/core.rs `json_encode` and `raw`). Nothing is
    /// left in the output when it fails. Errors are returned without the print's location.
    fn print_json_raw(
        &mut self,
        raw: &Call,
        json: &Call,
        x: &Expr,
        st: Option<Strategy>,
    ) -> Result<(), Error> {
        // the piped argument, read as every call reads its arguments
        let v = self.call_arg(json, 0, x)?;
        self.burn(json.span)?;
        self.pay_call(std::slice::from_ref(&v), json.span)?;
        let start = self.out.len();
        // `json_encode` without arguments: no flags, depth 512
        if !write_json_styled(&mut self.out, &v, &JsonStyle::from_flags(0), None, 512) {
            // nested deeper than the depth: `json_encode` answers `false`, `raw` passes it on
            self.out.truncate(start);
            let f = Value::Bool(false);
            self.burn(raw.span)?;
            write_out(&mut self.out, &f, st);
            return Ok(());
        }
        let r = self.json_raw_fuel(raw, json, self.out.len() - start);
        if r.is_err() {
            self.out.truncate(start);
        }
        r
    }

    /// What evaluating `json_encode` and `raw` checks and pays after the JSON text (`len`
    /// bytes) is built, in their order: `json_encode`'s size check, the fuel of its result
    /// (`pay_shallow`), `raw`'s step, the fuel of its argument and of its result (both the
    /// same string).
    fn json_raw_fuel(&mut self, raw: &Call, json: &Call, len: usize) -> Result<(), Error> {
        crate::builtins::State::check_size(self, len).map_err(|e| self.loc(e, json.span))?;
        let units = len as u64 / super::cost::BYTES_PER_UNIT;
        let pay = |vm: &mut Self, span: Span| {
            if units > 0 {
                crate::builtins::State::fuel(vm, units).map_err(|e| vm.loc(e, span))
            } else {
                Ok(())
            }
        };
        pay(self, json.span)?;
        self.burn(raw.span)?;
        pay(self, raw.span)?;
        pay(self, raw.span)
    }

    fn strategy(&self, esc: Esc) -> Option<Strategy> {
        match esc {
            Esc::Auto => match self.escape {
                Escape::None => None,
                Escape::Html => Some(Strategy::Html),
            },
            Esc::Off => None,
            Esc::On(s) => Some(s),
        }
    }

    /// Executes a statement list.
    /// Runs `f` one statement level deeper; every 8th level first probes the stack (a new
    /// segment below the red zone), so bodies nested to the depth limit fit a small thread.
    #[inline]
    fn nested<T>(&mut self, f: impl FnOnce(&mut Self) -> T) -> T {
        self.nest += 1;
        let r = if self.nest % 8 == 0 {
            crate::stack::guard(|| f(self))
        } else {
            f(self)
        };
        self.nest -= 1;
        r
    }

    pub(crate) fn exec(&mut self, nodes: &[Node]) -> Result<Flow, Error> {
        for n in nodes {
            match n {
                Node::Text(t) => {
                    self.out.push_str(t.as_str());
                    self.check_out(Span::default())?;
                }
                Node::Print(Expr::Parent(ps), _, span) => {
                    // `{{ parent() }}`: the parent block renders straight into the output
                    // (what it prints is safe: escaping does not apply)
                    self.burn(*span)?;
                    let before = self.out.len();
                    self.render_parent(*ps)?;
                    self.parent_printed(before, *span)?;
                }
                Node::Print(e, esc, span) => {
                    self.burn(*span)?;
                    let before = self.out.len();
                    let st = self.strategy(*esc);
                    // Variables and attributes first (the common print); a call is never one.
                    match super::eval::lookup(&self.scope, &self.program, e) {
                        Ok(Some(v)) => write_out(&mut self.out, v, st),
                        Ok(None) => {
                            if let Some((raw, json, x)) = json_raw(e) {
                                self.print_json_raw(raw, json, x, st)
                                    .map_err(|err| self.loc(err, *span))?;
                            } else {
                                let v = self.eval(e).map_err(|err| self.loc(err, *span))?;
                                write_out(&mut self.out, &v, st);
                            }
                        }
                        Err(err) => return Err(self.loc(err, *span)),
                    }
                    self.check_out(*span)?;
                    let written = (self.out.len() - before) as u64 / super::cost::BYTES_PER_UNIT;
                    if written > 0 {
                        crate::builtins::State::fuel(self, written)
                            .map_err(|e| self.loc(e, *span))?;
                    }
                }
                Node::Block(body) => {
                    let f = self.nested(|vm| vm.exec(body))?;
                    if f != Flow::Normal {
                        return Ok(f);
                    }
                }
                Node::Set(assigns, span) => {
                    if let [(slot, e)] = assigns.as_slice() {
                        let v = self.eval(e).map_err(|e| self.loc(e, *span))?;
                        self.set(*slot, v);
                    } else {
                        let vals = assigns
                            .iter()
                            .map(|(_, e)| self.eval(e))
                            .collect::<Result<Vec<_>, _>>()
                            .map_err(|e| self.loc(e, *span))?;
                        for ((slot, _), v) in assigns.iter().zip(vals) {
                            self.set(*slot, v);
                        }
                    }
                }
                Node::SetBlock(slot, body) => {
                    let captured = self.nested(|vm| vm.capture(body))?;
                    self.set(*slot, Value::safe(captured));
                }
                Node::If(branches, else_body, span) => {
                    let mut taken = None;
                    for (c, body) in branches {
                        if self.eval_truthy(c).map_err(|e| self.loc(e, *span))? {
                            taken = Some(body);
                            break;
                        }
                    }
                    let body = taken.unwrap_or(else_body);
                    let f = self.nested(|vm| vm.exec(body))?;
                    if f != Flow::Normal {
                        return Ok(f);
                    }
                }
                Node::For(f) => {
                    // Only the `else` branch can pass a break/continue on: it
                    // belongs to the enclosing loop.
                    let f = self.nested(|vm| vm.exec_for(f))?;
                    if f != Flow::Normal {
                        return Ok(f);
                    }
                }
                Node::Break => return Ok(Flow::Break),
                Node::Continue => return Ok(Flow::Continue),
                Node::With(w) => {
                    let f =
                        self.nested(|vm| vm.exec_with(w.vars.as_ref(), w.only, &w.body, w.span))?;
                    if f != Flow::Normal {
                        return Ok(f);
                    }
                }
                Node::Apply(filters, body) => {
                    let mut v = Value::safe(self.nested(|vm| vm.capture(body))?);
                    for c in filters {
                        let mut args = Vec::with_capacity(c.args.len());
                        args.push(v);
                        for a in c.args.iter().skip(1) {
                            args.push(self.eval(a)?);
                        }
                        self.burn(c.span)?;
                        self.pay_call(&args, c.span)?;
                        v = (c.func)(self, &args).map_err(|e| self.loc(e, c.span))?;
                        self.pay_shallow([&v]).map_err(|e| self.loc(e, c.span))?;
                    }
                    write_value(&mut self.out, &v);
                    self.check_out(Span::default())?;
                }
                Node::Do(e, span) => {
                    self.eval(e).map_err(|e| self.loc(e, *span))?;
                }
                Node::Include(inc) => self.include(inc, None)?,
                Node::Embed(prog, inc) => {
                    if matches!(inc.ignore_missing, Expr::Const(Value::Bool(true))) {
                        // `ignore missing`: skip when the embedded template's parent is missing
                        let n = self.eval(&inc.name)?;
                        if self.load_template(&n, true, inc.span)?.is_none() {
                            continue;
                        }
                    }
                    self.include(inc, Some(prog))?
                }
                Node::Extends(e, span) => {
                    if let Expr::Const(Value::Str(n)) = e {
                        // a constant parent: found in the library once, then remembered
                        let p = self.constant_parent(n, *span)?;
                        self.set_parent(p);
                        continue;
                    }
                    let n = self.eval(e).map_err(|e| self.loc(e, *span))?;
                    if n.is_null() || matches!(n, Value::Bool(false)) {
                        continue;
                    }
                    if let Some(p) = self.load_template(&n, false, *span)? {
                        self.set_parent(p);
                    }
                }
                Node::BlockRef(name, own, span) => {
                    self.render_block_ref(name, *own, *span)?;
                }
            }
        }
        Ok(Flow::Normal)
    }

    /// After `{{ parent() }}` printed from `before` on: the print's output check and fuel.
    pub(crate) fn parent_printed(&mut self, before: usize, span: Span) -> Result<(), Error> {
        self.check_out(span)?;
        let written = (self.out.len() - before) as u64 / super::cost::BYTES_PER_UNIT;
        if written > 0 {
            crate::builtins::State::fuel(self, written).map_err(|e| self.loc(e, span))?;
        }
        Ok(())
    }

    fn set(&mut self, slot: u32, v: Value) {
        let v = if v.is_undefined() { Value::Null } else { v };
        if let Some(s) = self.scope.slots.get_mut(slot as usize) {
            *s = v;
        }
    }

    /// Renders `body` into a fresh buffer and returns it.
    fn capture(&mut self, body: &[Node]) -> Result<String, Error> {
        let saved = std::mem::take(&mut self.out);
        let r = self.exec(body);
        let captured = std::mem::replace(&mut self.out, saved);
        r?;
        Ok(captured)
    }

    /// Runs a loop; returns the flow of its `else` branch (the loop's own
    /// `break`/`continue` stop here).
    fn exec_for(&mut self, f: &For) -> Result<Flow, Error> {
        let seq = self.eval(&f.iter).map_err(|e| self.loc(e, f.span))?;
        let len = match &seq {
            Value::List(l) => l.len(),
            Value::Map(m) => m.len(),
            _ => 0,
        };
        if len == 0 {
            return self.exec(&f.else_body);
        }
        // Twig scope rule: variables first created inside the loop vanish after it.
        let fresh: Vec<u32> = f
            .assigned
            .iter()
            .filter(|(s, name)| {
                self.scope
                    .slots
                    .get(*s as usize)
                    .is_none_or(|v| v.is_undefined())
                    && !self.scope.ctx.contains_key(&**name)
            })
            .map(|(s, _)| *s)
            .collect();
        let vslot = f.value as usize;
        let old_value = self.scope.slots.get_mut(vslot).map(std::mem::take);
        let old_key = f
            .key
            .and_then(|k| self.scope.slots.get_mut(k as usize).map(std::mem::take));
        let level = self.scope.loop_base + f.level as usize;
        self.scope.loops.truncate(level);
        self.scope.loops.push(LoopState { index0: 0, len });
        let r = match &seq {
            Value::List(l) => self.run_list(f, l, level, vslot),
            Value::Map(m) => self.run_map(f, m, level, vslot),
            _ => Ok(()),
        };
        self.scope.loops.truncate(level);
        if let (Some(v), Some(slot)) = (old_value, self.scope.slots.get_mut(vslot)) {
            *slot = v;
        }
        if let (Some(k), Some(ks)) = (old_key, f.key) {
            if let Some(slot) = self.scope.slots.get_mut(ks as usize) {
                *slot = k;
            }
        }
        for s in fresh {
            if let Some(slot) = self.scope.slots.get_mut(s as usize) {
                *slot = Value::Undefined;
            }
        }
        r.map(|()| Flow::Normal)
    }

    fn run_list(&mut self, f: &For, l: &[Value], level: usize, vslot: usize) -> Result<(), Error> {
        for (i, item) in l.iter().enumerate() {
            self.burn(f.span)?;
            if let Some(ls) = self.scope.loops.get_mut(level) {
                ls.index0 = i;
            }
            if let Some(k) = f.key {
                if let Some(slot) = self.scope.slots.get_mut(k as usize) {
                    *slot = Value::Int(i as i64);
                }
            }
            if let Some(slot) = self.scope.slots.get_mut(vslot) {
                *slot = item.clone();
            }
            if self.exec(&f.body)? == Flow::Break {
                break;
            }
        }
        Ok(())
    }

    fn run_map(&mut self, f: &For, m: &Map, level: usize, vslot: usize) -> Result<(), Error> {
        for (i, (k, item)) in m.iter().enumerate() {
            self.burn(f.span)?;
            if let Some(ls) = self.scope.loops.get_mut(level) {
                ls.index0 = i;
            }
            if let Some(ks) = f.key {
                if let Some(slot) = self.scope.slots.get_mut(ks as usize) {
                    *slot = Value::Str(k.clone());
                }
            }
            if let Some(slot) = self.scope.slots.get_mut(vslot) {
                *slot = item.clone();
            }
            if self.exec(&f.body)? == Flow::Break {
                break;
            }
        }
        Ok(())
    }

    fn exec_with(
        &mut self,
        e: Option<&crate::compile::ir::Expr>,
        only: bool,
        body: &[Node],
        span: Span,
    ) -> Result<Flow, Error> {
        let vars = match e {
            Some(e) => match self.eval(e)? {
                Value::Map(m) => m,
                Value::Null | Value::Undefined => Arc::new(Map::new()),
                other => {
                    return Err(self.loc(
                        Error::new(
                            ErrorKind::Type,
                            format!("with: expects a map, got {}", other.type_with_article()),
                        ),
                        span,
                    ))
                }
            },
            None => Arc::new(Map::new()),
        };
        let saved_slots = self.scope.slots.clone();
        let saved_ctx = self.scope.ctx.clone();
        if only {
            self.scope
                .slots
                .iter_mut()
                .for_each(|s| *s = Value::Undefined);
            self.scope.ctx = vars.clone();
        } else if !vars.is_empty() {
            let mut merged = (*self.scope.ctx).clone();
            for (k, v) in vars.iter() {
                merged.insert(k.clone(), v.clone());
            }
            self.scope.ctx = Arc::new(merged);
        }
        let prog = self.program.clone();
        let names = self.frame.slot_names(&prog);
        for (i, n) in names.iter().enumerate() {
            if let Some(v) = vars.get(n) {
                if let Some(slot) = self.scope.slots.get_mut(i) {
                    *slot = v.clone();
                }
            }
        }
        let r = self.exec(body);
        self.scope.slots = saved_slots;
        self.scope.ctx = saved_ctx;
        r
    }
}

#[cfg(test)]
mod json_raw_tests {
    //! The fused `{{ x|json_encode|raw }}` print against the evaluated calls: an engine whose
    //! `json_encode` and `raw` are wrappers of the builtin closures (so not fused) must render
    //! the same text, or fail with the same error, under every fuel and size limit.
    use crate::builtins::{builtin_json_raw, Registry};
    use crate::{Engine, Escape, Limits, RenderOptions};
    use serde_json::json;

    fn engines() -> (Engine, Engine) {
        let fused = Engine::new();
        let mut slow = Engine::new();
        let builtins = Registry::with_builtins();
        for (name, spec) in [
            ("json_encode", &["flags?", "depth?", "pretty?"][..]),
            ("raw", &[][..]),
        ] {
            let f = builtins.get_filter(name).unwrap().func.clone();
            slow.registry_mut()
                .filter(name, spec, move |st, args| f(st, args));
        }
        (fused, slow)
    }

    fn render(
        e: &mut Engine,
        src: &str,
        ctx: &serde_json::Value,
        limits: Limits,
        escape: Escape,
        strict: bool,
    ) -> Result<String, String> {
        e.set_limits(limits);
        e.set_strict(strict);
        let t = e.compile("t", src).map_err(|e| format!("compile: {e}"))?;
        t.render_with(ctx, RenderOptions::default().with_escape(escape))
            .map_err(|e| format!("{:?} {e}", e.kind()))
    }

    #[test]
    fn only_the_builtin_filters_are_fused() {
        let (mut fused, mut slow) = engines();
        let f = |e: &mut Engine, n: &str| e.registry_mut().get_filter(n).unwrap().func.clone();
        let (json, raw) = (f(&mut fused, "json_encode"), f(&mut fused, "raw"));
        assert!(builtin_json_raw(&json, &raw));
        assert!(!builtin_json_raw(&raw, &json));
        let (json, raw) = (f(&mut slow, "json_encode"), f(&mut slow, "raw"));
        assert!(!builtin_json_raw(&json, &raw));
    }

    #[test]
    fn fused_print_matches_the_calls() {
        let (mut fused, mut slow) = engines();
        let mut deep = json!(1);
        for _ in 0..600 {
            deep = json!([deep]);
        }
        let long = "ab\"<&>\u{e9}\u{1F600}\n\\/".repeat(200);
        let ctx = json!({
            "s": "ann", "q": "a\"b<c>&'d\\e/f\u{0001}\u{2028}é😀", "n": 42, "f": 1.5,
            "z": 2.0, "neg": -0.0, "big": 1e300, "t": true, "nul": null, "e": "",
            "list": [1, "x", null, [2, {"k": "v"}]], "map": {"a": 1, "b": {"c": [true]}},
            "empty": [], "emptymap": {}, "long": long, "deep": deep,
            "__headers": {"__jwt_data": [{"user": "ann"}]},
        });
        let templates = [
            "{{ s|json_encode|raw }}",
            "{\"user\": {{ __headers.__jwt_data[0].user|json_encode|raw }}, \"ref\": {{ ref|default('')|json_encode|raw }}}",
            "{{ q|json_encode|raw }}|{{ n|json_encode|raw }}|{{ f|json_encode|raw }}|{{ z|json_encode|raw }}",
            "{{ neg|json_encode|raw }}{{ big|json_encode|raw }}{{ t|json_encode|raw }}{{ nul|json_encode|raw }}",
            "{{ e|json_encode|raw }}{{ list|json_encode|raw }}{{ map|json_encode|raw }}{{ empty|json_encode|raw }}{{ emptymap|json_encode|raw }}",
            "{{ missing|json_encode|raw }}{{ map.nope|json_encode|raw }}",
            "{{ long|json_encode|raw }}{{ long|json_encode|raw }}",
            "{{ deep|json_encode|raw }}",
            "{% for x in list %}{{ x|json_encode|raw }},{% endfor %}",
            "{% autoescape 'html' %}{{ q|json_encode|raw }}{% endautoescape %}",
            "{{ q|json_encode(8)|raw }}{{ map|json_encode(true)|raw }}",
            "{{ q|json_encode|upper|raw }}{{ q|raw|json_encode }}{{ q|json_encode }}",
            "{{ (list|json_encode|raw) ~ 'x' }}",
        ];
        let base = Limits::default();
        for src in templates {
            for escape in [Escape::None, Escape::Html] {
                for strict in [false, true] {
                    let mut limits = vec![base.clone()];
                    for fuel in 0..40 {
                        limits.push(Limits {
                            fuel,
                            ..base.clone()
                        });
                    }
                    for fuel in [50, 60, 70, 80, 100, 150] {
                        limits.push(Limits {
                            fuel,
                            ..base.clone()
                        });
                    }
                    for max_output in [0, 1, 4, 5, 6, 10, 50, 100, 1000, 4000, 4700, 9000] {
                        limits.push(Limits {
                            max_output,
                            ..base.clone()
                        });
                    }
                    for l in limits {
                        let a = render(&mut fused, src, &ctx, l.clone(), escape, strict);
                        let b = render(&mut slow, src, &ctx, l.clone(), escape, strict);
                        assert_eq!(a, b, "{src} under {l:?}, {escape:?}, strict {strict}");
                    }
                }
            }
        }
        // the bench endpoint's answer, as the listener renders it
        let a = render(
            &mut fused,
            templates[1],
            &ctx,
            base.clone(),
            Escape::None,
            false,
        );
        assert_eq!(a.unwrap(), r#"{"user": "ann", "ref": ""}"#);
    }
}
