//! Evaluating expressions. Variable and attribute paths are first resolved by
//! reference ([`lookup`]) so that printing `{{ team.name }}` clones nothing.

use super::{Scope, Vm};
use crate::compile::ir::{Expr, LoopField, Program};
use crate::error::{Error, ErrorKind};
use crate::syntax::ast::{BinOp, Span};
use crate::value::{self, compare, loose_eq, Arith, Map, Value};
use std::cmp::Ordering;
use std::sync::Arc;

static UNDEF: Value = Value::Undefined;

type R<T> = Result<T, Error>;

fn undefined_var(prog: &Program, name: &str, span: Span) -> Error {
    Error::new(
        ErrorKind::Undefined,
        format!("variable `{name}` is not defined"),
    )
    .with_location(&prog.name, &prog.source, span.range())
}

fn missing(prog: &Program, base: &Value, what: &str, span: Span) -> Error {
    let path = prog.source.get(span.range()).unwrap_or(what);
    let why = match base {
        Value::Map(_) => format!("the map has no key `{what}`"),
        Value::List(l) => format!("the list has no index {what} (length {})", l.len()),
        other => format!("cannot read `{what}` of {}", other.type_with_article()),
    };
    Error::new(
        ErrorKind::Undefined,
        format!("`{path}` is not defined: {why}"),
    )
    .with_location(&prog.name, &prog.source, span.range())
}

/// `m[k]`: small maps (the usual record or context) are scanned, which beats hashing.
#[inline]
pub(crate) fn map_get<'m>(m: &'m Map, k: &str) -> Option<&'m Value> {
    if m.len() <= 8 {
        m.iter()
            .find(|(key, _)| crate::value::same_text(key, k))
            .map(|(_, v)| v)
    } else {
        m.get(k)
    }
}

fn ctx_get<'s>(
    scope: &'s Scope,
    prog: &Program,
    name: &str,
    span: Span,
    strict: bool,
) -> R<Option<&'s Value>> {
    match map_get(&scope.ctx, name) {
        Some(v) => Ok(Some(v)),
        None if strict => Err(undefined_var(prog, name, span)),
        None => Ok(Some(&UNDEF)),
    }
}

/// An index within a length; negative indexes are missing keys (PHP arrays, as Twig).
fn list_index(len: usize, i: i64) -> Option<usize> {
    usize::try_from(i).ok().filter(|&i| i < len)
}

/// `base.name` by reference (`Some(None)`: missing; strings have no attributes).
fn attr_ref<'v>(base: &'v Value, name: &str) -> Option<Option<&'v Value>> {
    match base {
        Value::Map(m) => Some(map_get(m, name)),
        Value::List(l) => Some(
            name.parse::<i64>()
                .ok()
                .and_then(|i| list_index(l.len(), i))
                .and_then(|i| l.get(i)),
        ),
        _ => Some(None),
    }
}

/// Resolves a variable/attribute path by reference. `Ok(None)`: not a plain path.
pub(crate) fn lookup<'s>(scope: &'s Scope, prog: &Program, e: &Expr) -> R<Option<&'s Value>> {
    match e {
        Expr::Slot(s, name, span, strict) => match scope.slots.get(*s as usize) {
            Some(v) if !v.is_undefined() => Ok(Some(v)),
            _ => ctx_get(scope, prog, name, *span, *strict),
        },
        Expr::Ctx(name, span, strict) => ctx_get(scope, prog, name, *span, *strict),
        Expr::Attr(base, name, span, strict) => {
            let Some(b) = lookup(scope, prog, base)? else {
                return Ok(None);
            };
            match attr_ref(b, name) {
                None => Ok(None),
                Some(Some(v)) => Ok(Some(v)),
                Some(None) if *strict => Err(missing(prog, b, name, *span)),
                Some(None) => Ok(Some(&UNDEF)),
            }
        }
        // `base['name']`, `base[0]`: by reference when the key is a string constant on a map
        // or an integer constant on a list; other keys and string bases are evaluated (a key
        // made text, a string's characters walked and paid for).
        Expr::Item(base, key, span, strict) => {
            let Expr::Const(k) = &**key else {
                return Ok(None);
            };
            let Some(b) = lookup(scope, prog, base)? else {
                return Ok(None);
            };
            match item_ref(b, k) {
                None => Ok(None),
                Some(Some(v)) => Ok(Some(v)),
                Some(None) if *strict => Err(missing(prog, b, &k.to_cow_str(), *span)),
                Some(None) => Ok(Some(&UNDEF)),
            }
        }
        _ => Ok(None),
    }
}

/// `base[key]` by reference, as [`Value::get_item`] reads it (`Some(None)`: missing), for the
/// keys and bases it reads without making a value; `None` for the others.
fn item_ref<'v>(base: &'v Value, key: &Value) -> Option<Option<&'v Value>> {
    match (base, key) {
        (Value::Map(m), Value::Str(k) | Value::Safe(k)) => Some(map_get(m, k)),
        (Value::List(l), Value::Int(i)) => Some(list_index(l.len(), *i).and_then(|i| l.get(i))),
        (Value::Map(_) | Value::List(_) | Value::Str(_) | Value::Safe(_), _) => None,
        _ => Some(None),
    }
}

impl Vm<'_> {
    pub(crate) fn eval_truthy(&mut self, e: &Expr) -> R<bool> {
        if let Some(v) = lookup(&self.scope, &self.program, e)? {
            return Ok(v.is_truthy());
        }
        Ok(self.eval(e)?.is_truthy())
    }

    /// Evaluates an expression to a value.
    pub(crate) fn eval(&mut self, e: &Expr) -> R<Value> {
        match e {
            Expr::Const(v) => Ok(v.clone()),
            Expr::Deep(inner) => crate::stack::guard(|| self.eval(inner)),
            Expr::Slot(..) | Expr::Ctx(..) => Ok(lookup(&self.scope, &self.program, e)?
                .cloned()
                .unwrap_or_default()),
            Expr::Attr(base, name, span, strict) => {
                if let Some(v) = lookup(&self.scope, &self.program, e)? {
                    return Ok(v.clone());
                }
                let b = self.eval(base)?;
                let v = b.get_attr(name);
                if v.is_undefined() && *strict {
                    return Err(missing(&self.program, &b, name, *span));
                }
                Ok(v)
            }
            Expr::Item(base, key, span, strict) => {
                if let Some(v) = lookup(&self.scope, &self.program, e)? {
                    return Ok(v.clone());
                }
                let b = self.eval(base)?;
                let k = self.eval(key)?;
                if matches!(b, Value::Str(_) | Value::Safe(_)) {
                    // a character index walks the string
                    self.pay_shallow([&b]).map_err(|e| self.loc(e, *span))?;
                }
                let v = b.get_item(&k);
                if v.is_undefined() && *strict {
                    return Err(missing(&self.program, &b, &k.to_cow_str(), *span));
                }
                Ok(v)
            }
            Expr::Slice(base, start, len, span) => {
                let b = self.eval(base)?;
                let s = match start {
                    Some(s) => self.eval(s)?,
                    None => Value::Null,
                };
                let l = match len {
                    Some(l) => self.eval(l)?,
                    None => Value::Null,
                };
                let v = slice(&b, &s, &l).map_err(|e| self.loc(e, *span))?;
                self.pay_shallow([&v]).map_err(|e| self.loc(e, *span))?;
                Ok(v)
            }
            Expr::LoopField(level, f) => Ok(self.loop_field(*level, *f)),
            Expr::LoopValue(level) => Ok(self.loop_value(*level)),
            Expr::Not(x) => Ok(Value::Bool(!self.eval_truthy(x)?)),
            Expr::Neg(x, span) => {
                let v = self.eval(x)?;
                value::neg(&v).map_err(|e| self.loc(e, *span))
            }
            Expr::Pos(x, span) => {
                let v = self.eval(x)?;
                value::pos(&v).map_err(|e| self.loc(e, *span))
            }
            Expr::And(a, b) => Ok(Value::Bool(self.eval_truthy(a)? && self.eval_truthy(b)?)),
            Expr::Or(a, b) => Ok(Value::Bool(self.eval_truthy(a)? || self.eval_truthy(b)?)),
            Expr::Bin(op, a, b, span) => {
                let x = self.eval(a)?;
                let y = self.eval(b)?;
                self.pay_operands(*op, &x, &y)
                    .map_err(|e| self.loc(e, *span))?;
                let v = self.binary(*op, &x, &y).map_err(|e| self.loc(e, *span))?;
                self.pay_shallow([&v]).map_err(|e| self.loc(e, *span))?;
                Ok(v)
            }
            Expr::MatchesConst(a, re) => {
                let x = self.eval(a)?;
                self.pay_shallow([&x])?;
                // as Twig (PHP's preg_match): 1 or 0
                Ok(Value::Int(i64::from(re.is_match(&x.to_cow_str()))))
            }
            Expr::Cond(c, a, b) => {
                if self.eval_truthy(c)? {
                    self.eval(a)
                } else {
                    match b {
                        Some(b) => self.eval(b),
                        None => Ok(Value::str("")),
                    }
                }
            }
            Expr::Elvis(a, b) => {
                let v = self.eval(a)?;
                if v.is_truthy() {
                    Ok(v)
                } else {
                    self.eval(b)
                }
            }
            Expr::Coalesce(a, b) => {
                let v = self.eval(a)?;
                if v.is_null() {
                    self.eval(b)
                } else {
                    Ok(v)
                }
            }
            Expr::List(items) => {
                let mut out = Vec::with_capacity(items.len());
                for i in items {
                    let v = self.eval(i)?;
                    self.check_nesting(&v)?;
                    out.push(v);
                }
                Ok(Value::list(out))
            }
            Expr::Map(entries) => {
                let mut m = Map::with_capacity(entries.len());
                for (k, v) in entries {
                    let k = self.eval(k)?;
                    let key: Arc<str> = match k {
                        Value::Str(s) | Value::Safe(s) => s,
                        other => Arc::from(other.to_output().as_str()),
                    };
                    let v = self.eval(v)?;
                    self.check_nesting(&v)?;
                    m.insert(key, v);
                }
                Ok(Value::map(m))
            }
            Expr::Interp(parts, span) => {
                let mut s = String::new();
                for p in parts {
                    let v = self.eval(p)?;
                    value::write_value(&mut s, &v);
                    if s.len() > self.shared.limits.max_output {
                        return Err(self.loc(self.size_error(), *span));
                    }
                }
                let v = Value::str(s);
                self.pay_shallow([&v]).map_err(|e| self.loc(e, *span))?;
                Ok(v)
            }
            Expr::Call(c) => {
                let v = self.with_call_args(c, |vm, args| {
                    vm.burn(c.span)?;
                    vm.pay_call(args, c.span)?;
                    (c.func)(vm, args).map_err(|e| vm.loc(e, c.span))
                })?;
                self.pay_shallow([&v]).map_err(|e| self.loc(e, c.span))?;
                Ok(v)
            }
            Expr::Test(c, negated) => {
                let v = self.with_call_args(c, |vm, args| {
                    vm.pay_call(args, c.span)?;
                    (c.func)(vm, args).map_err(|e| vm.loc(e, c.span))
                })?;
                Ok(Value::Bool(v.is_truthy() != *negated))
            }
            Expr::Defined(x, negated) => {
                let v = self.eval(x)?;
                Ok(Value::Bool(v.is_undefined() == *negated))
            }
            Expr::MacroCall(mref, args, span) => {
                let mut vals = Vec::with_capacity(args.len());
                for a in args {
                    vals.push(self.eval(a)?);
                }
                self.call_macro(mref, vals, *span)
            }
            Expr::Arrow(a) => Ok(self.arrow_value(a)),
            Expr::Include(..)
            | Expr::Source(..)
            | Expr::BlockCall(..)
            | Expr::BlockDefined(..)
            | Expr::Parent(..) => self.eval_library(e),
        }
    }

    /// The template-library expressions (`include()`, `source()`, `block()`,
    /// `parent()`), apart so that `eval`'s stack frame stays small.
    #[inline(never)]
    fn eval_library(&mut self, e: &Expr) -> R<Value> {
        match e {
            Expr::Include(inc) => {
                let s = self.capture_with(|vm| vm.include(inc, None))?;
                Ok(Value::safe(s))
            }
            Expr::Source(name, ignore, span) => {
                let n = self.eval(name)?;
                let ignore = match ignore {
                    Some(i) => self.eval(i)?.is_truthy(),
                    None => false,
                };
                let lib = self.shared.library.clone();
                match lib.source(&n.to_cow_str()) {
                    Ok(Some(src)) => Ok(Value::safe(src)),
                    Ok(None) if ignore => Ok(Value::safe(String::new())),
                    Ok(None) => Err(self.loc(lib.missing(&n.to_cow_str()), *span)),
                    Err(e) => Err(self.loc(e, *span)),
                }
            }
            Expr::BlockCall(name, tpl, span) => {
                let n: Arc<str> = Arc::from(&*self.eval(name)?.to_cow_str());
                let run = |vm: &mut Self| -> R<String> {
                    if !vm.has_block(&n) {
                        return Err(vm.loc(
                            Error::new(
                                ErrorKind::UnknownName,
                                format!("block `{n}` is not defined"),
                            ),
                            *span,
                        ));
                    }
                    vm.capture_with(|vm| vm.render_block(&n, 0, *span).map(|_| ()))
                };
                let s = match tpl {
                    Some(t) => {
                        let t = self.eval(t)?;
                        self.with_blocks_of(&t, *span, run)?
                    }
                    None => run(self)?,
                };
                Ok(Value::safe(s))
            }
            Expr::BlockDefined(name, tpl, negated, span) => {
                let n = self.eval(name)?.to_cow_str().into_owned();
                let found = match tpl {
                    Some(t) => {
                        let t = self.eval(t)?;
                        self.with_blocks_of(&t, *span, |vm| Ok(vm.has_block(&n)))?
                    }
                    None => self.has_block(&n),
                };
                Ok(Value::Bool(found != *negated))
            }
            Expr::Parent(span) => {
                let s = self.capture_with(|vm| vm.render_parent(*span))?;
                Ok(Value::safe(s))
            }
            _ => Ok(Value::Undefined),
        }
    }

    /// `parent()`: renders the next definition of the running block into the output.
    pub(crate) fn render_parent(&mut self, span: Span) -> R<()> {
        match self.render_parent_block(span) {
            Ok(true) => Ok(()),
            Err(Some(e)) => Err(e),
            Err(None) => Err(self.loc(
                Error::new(ErrorKind::Runtime, "`parent()` is only valid in a block"),
                span,
            )),
            Ok(false) => {
                let name = self.current_block_name().unwrap_or_default();
                Err(self.loc(
                    Error::new(
                        ErrorKind::UnknownName,
                        format!("block `{name}` has no parent definition to render"),
                    ),
                    span,
                ))
            }
        }
    }

    /// Bounds how deeply a template can nest lists and maps (deep values would
    /// overflow the stack when printed or dropped); the walk is paid with fuel.
    fn check_nesting(&mut self, v: &Value) -> R<()> {
        if !matches!(v, Value::List(_) | Value::Map(_)) {
            return Ok(());
        }
        let max = self.shared.limits.max_depth;
        let mut visited = 0u64;
        let depth = nesting(v, max + 1, &mut visited);
        crate::builtins::State::fuel(self, visited)?;
        if depth >= max {
            return Err(Error::new(
                ErrorKind::Limit,
                format!("value nesting exceeds the depth limit of {max}"),
            ));
        }
        Ok(())
    }

    fn loop_field(&self, level: u32, f: LoopField) -> Value {
        let Some(ls) = self.scope.loops.get(self.scope.loop_base + level as usize) else {
            return Value::Undefined;
        };
        let i = ls.index0 as i64;
        let n = ls.len as i64;
        match f {
            LoopField::Index => Value::Int(i + 1),
            LoopField::Index0 => Value::Int(i),
            LoopField::RevIndex => Value::Int(n - i),
            LoopField::RevIndex0 => Value::Int(n - i - 1),
            LoopField::First => Value::Bool(i == 0),
            LoopField::Last => Value::Bool(i == n - 1),
            LoopField::Length => Value::Int(n),
        }
    }

    fn loop_value(&self, level: u32) -> Value {
        let mut m = Map::new();
        for (k, f) in [
            ("index", LoopField::Index),
            ("index0", LoopField::Index0),
            ("revindex", LoopField::RevIndex),
            ("revindex0", LoopField::RevIndex0),
            ("first", LoopField::First),
            ("last", LoopField::Last),
            ("length", LoopField::Length),
        ] {
            m.insert(Arc::from(k), self.loop_field(level, f));
        }
        if level > 0 {
            let mut parent = Map::new();
            parent.insert(Arc::from("loop"), self.loop_value(level - 1));
            m.insert(Arc::from("parent"), Value::map(parent));
        }
        Value::map(m)
    }

    /// The argument values of a builtin call: a given argument that is missing is
    /// `null` (an omitted optional one stays undefined).
    /// Evaluates the arguments of a call and passes them to `f`: up to four in an array on
    /// the stack (most calls: no allocation), more in a vector.
    fn with_call_args<T>(
        &mut self,
        c: &crate::compile::ir::Call,
        f: impl FnOnce(&mut Self, &[Value]) -> R<T>,
    ) -> R<T> {
        let n = c.args.len();
        if n <= 4 {
            let mut args: [Value; 4] = Default::default();
            for (i, (a, slot)) in c.args.iter().zip(args.iter_mut()).enumerate() {
                *slot = self.call_arg(c, i, a)?;
            }
            return f(self, &args[..n]);
        }
        let mut args = Vec::with_capacity(n);
        for (i, a) in c.args.iter().enumerate() {
            args.push(self.call_arg(c, i, a)?);
        }
        f(self, &args)
    }

    /// Argument `i` of a call: an undefined value past `null_from` (not a constant) is `null`.
    pub(super) fn call_arg(
        &mut self,
        c: &crate::compile::ir::Call,
        i: usize,
        a: &Expr,
    ) -> R<Value> {
        let v = self.eval(a)?;
        if i >= c.null_from && v.is_undefined() && !matches!(a, Expr::Const(_)) {
            Ok(Value::Null)
        } else {
            Ok(v)
        }
    }

    /// Fuel for the arguments of a filter, function or test call (see `cost`).
    pub(crate) fn pay_call(&mut self, args: &[Value], span: Span) -> R<()> {
        self.pay_shallow(args).map_err(|e| self.loc(e, span))
    }

    /// Fuel for the operands of a binary operator: comparisons and membership
    /// walk nested lists and maps, the others read the top level.
    fn pay_operands(&mut self, op: BinOp, x: &Value, y: &Value) -> R<()> {
        match op {
            BinOp::Eq
            | BinOp::Ne
            | BinOp::Lt
            | BinOp::Gt
            | BinOp::Le
            | BinOp::Ge
            | BinOp::Cmp
            | BinOp::In
            | BinOp::NotIn => {
                self.pay_deep(x)?;
                self.pay_deep(y)
            }
            _ => self.pay_shallow([x, y]),
        }
    }

    fn binary(&mut self, op: BinOp, x: &Value, y: &Value) -> R<Value> {
        let cmp = |o: fn(Ordering) -> bool| Ok(Value::Bool(o(compare(x, y))));
        match op {
            BinOp::Eq => Ok(Value::Bool(loose_eq(x, y))),
            BinOp::Ne => Ok(Value::Bool(!loose_eq(x, y))),
            BinOp::Lt => cmp(|o| o == Ordering::Less),
            BinOp::Gt => cmp(|o| o == Ordering::Greater),
            BinOp::Le => cmp(|o| o != Ordering::Greater),
            BinOp::Ge => cmp(|o| o != Ordering::Less),
            BinOp::Cmp => Ok(Value::Int(match compare(x, y) {
                Ordering::Less => -1,
                Ordering::Equal => 0,
                Ordering::Greater => 1,
            })),
            BinOp::In => Ok(Value::Bool(value::contains(y, x))),
            BinOp::NotIn => Ok(Value::Bool(!value::contains(y, x))),
            BinOp::Matches => {
                let re = crate::pcre::compile(&y.to_cow_str())?;
                Ok(Value::Int(i64::from(re.is_match(&x.to_cow_str()))))
            }
            BinOp::StartsWith => Ok(Value::Bool(value::starts_with(x, y, false))),
            BinOp::EndsWith => Ok(Value::Bool(value::starts_with(x, y, true))),
            BinOp::HasSome | BinOp::HasEvery => {
                if !matches!(y, Value::Callable(_)) {
                    return Err(Error::new(
                        ErrorKind::Type,
                        format!(
                            "{}: expected an arrow function, got {}",
                            if op == BinOp::HasSome {
                                "has some"
                            } else {
                                "has every"
                            },
                            y.type_with_article()
                        ),
                    ));
                }
                let every = op == BinOp::HasEvery;
                for item in x.iter_values() {
                    let r = crate::builtins::State::call(self, y, std::slice::from_ref(item))?;
                    if r.is_truthy() != every {
                        return Ok(Value::Bool(!every));
                    }
                }
                Ok(Value::Bool(every))
            }
            BinOp::Range => value::range(x, y, &Value::Undefined, self.shared.limits.max_range),
            BinOp::Add => value::arith(Arith::Add, x, y),
            BinOp::Sub => value::arith(Arith::Sub, x, y),
            BinOp::Mul => value::arith(Arith::Mul, x, y),
            BinOp::Div => value::arith(Arith::Div, x, y),
            BinOp::FloorDiv => value::arith(Arith::FloorDiv, x, y),
            BinOp::Mod => value::arith(Arith::Rem, x, y),
            BinOp::Pow => value::arith(Arith::Pow, x, y),
            BinOp::Concat => {
                let (a, b) = (x.to_cow_str(), y.to_cow_str());
                let n = a.len() + b.len();
                if n > self.shared.limits.max_output {
                    return Err(self.size_error());
                }
                let mut s = String::with_capacity(n);
                s.push_str(&a);
                s.push_str(&b);
                Ok(Value::str(s))
            }
            BinOp::BAnd => value::bitwise("b-and", x, y),
            BinOp::BOr => value::bitwise("b-or", x, y),
            BinOp::BXor => value::bitwise("b-xor", x, y),
            BinOp::And => Ok(Value::Bool(x.is_truthy() && y.is_truthy())),
            BinOp::Or => Ok(Value::Bool(x.is_truthy() || y.is_truthy())),
            BinOp::Xor => Ok(Value::Bool(x.is_truthy() != y.is_truthy())),
        }
    }
}

/// `v[start:length]` for lists, maps and strings (characters); negative start counts
/// from the end, negative length stops that many from the end (Twig's `slice`).
pub(crate) fn slice(v: &Value, start: &Value, len: &Value) -> R<Value> {
    // A number or boolean is sliced as the string it prints as (Twig: `1.5[0:2]` is `1.`).
    if matches!(v, Value::Int(_) | Value::Float(_) | Value::Bool(_)) {
        return slice(&Value::str(v.to_output()), start, len);
    }
    let n = match v {
        Value::List(l) => l.len(),
        Value::Map(m) => m.len(),
        Value::Str(s) | Value::Safe(s) => s.chars().count(),
        Value::Null | Value::Undefined => return Ok(Value::Null),
        other => {
            return Err(Error::new(
                ErrorKind::Type,
                format!("cannot slice {}", other.type_with_article()),
            ))
        }
    } as i64;
    let int = |x: &Value, what: &str| -> R<Option<i64>> {
        if x.is_null() {
            return Ok(None);
        }
        x.as_i64()
            .map(Some)
            .ok_or_else(|| Error::type_mismatch("slice", what, "an integer", x.type_with_article()))
    };
    let s = int(start, "start")?.unwrap_or(0);
    let s = if s < 0 { (n + s).max(0) } else { s.min(n) };
    let e = match int(len, "length")? {
        None => n,
        Some(l) if l < 0 => (n + l).max(s),
        Some(l) => (s.saturating_add(l)).min(n),
    };
    let (s, e) = (s as usize, e.max(s) as usize);
    Ok(match v {
        Value::List(l) => Value::list(l.get(s..e).map(|x| x.to_vec()).unwrap_or_default()),
        Value::Map(m) => Value::map(
            m.iter()
                .skip(s)
                .take(e - s)
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        ),
        Value::Str(st) | Value::Safe(st) => {
            let out: String = st.chars().skip(s).take(e - s).collect();
            if v.is_safe() {
                Value::safe(out)
            } else {
                Value::str(out)
            }
        }
        _ => Value::Null,
    })
}

/// Nesting depth of lists and maps in `v`, counting at most `limit`; `visited`
/// counts the containers and items looked at.
fn nesting(v: &Value, limit: usize, visited: &mut u64) -> usize {
    if limit == 0 {
        return 0;
    }
    let items: Box<dyn Iterator<Item = &Value>> = match v {
        Value::List(l) => Box::new(l.iter()),
        Value::Map(m) => Box::new(m.values()),
        _ => return 0,
    };
    let mut deepest = 0;
    for item in items {
        *visited += 1;
        if matches!(item, Value::List(_) | Value::Map(_)) {
            deepest = deepest.max(nesting(item, limit - 1, visited));
            if deepest + 1 >= limit {
                break;
            }
        }
    }
    deepest + 1
}
