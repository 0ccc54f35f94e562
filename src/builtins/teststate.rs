//! The one [`State`] of the builtins' unit tests (no interpreter behind it): arrows are Rust
//! closures ([`arrow`]), fuel is counted against the limits, `env()` is off unless a test
//! turns it on.

use super::{Host, Registry, State};
use crate::error::{Error, ErrorKind};
use crate::limits::Limits;
use crate::value::{Callable, Value};
use std::sync::Arc;

type Body = dyn Fn(&[Value]) -> Value + Send + Sync;
struct TestFn(Box<Body>);

/// A callable value backed by a Rust closure.
pub fn arrow(f: impl Fn(&[Value]) -> Value + Send + Sync + 'static) -> Value {
    Value::Callable(Arc::new(Callable {
        name: Arc::from("arrow function"),
        inner: Arc::new(TestFn(Box::new(f))),
    }))
}

/// Default limits, a default [`Host`] (UTC, no records, no store), `env()` off, a fuel counter.
#[derive(Default)]
pub struct TestState {
    pub host: Host,
    pub limits: Limits,
    pub env_allowed: bool,
    pub fuel_used: u64,
}

impl State for TestState {
    fn call(&mut self, callee: &Value, args: &[Value]) -> Result<Value, Error> {
        match callee {
            Value::Callable(c) => match c.inner.downcast_ref::<TestFn>() {
                Some(f) => Ok((f.0)(args)),
                None => Err(Error::new(ErrorKind::Type, "not a test function")),
            },
            _ => Err(Error::new(ErrorKind::Type, "not callable")),
        }
    }
    fn fuel(&mut self, n: u64) -> Result<(), Error> {
        self.fuel_used += n;
        if self.fuel_used > self.limits.fuel {
            return Err(Error::new(ErrorKind::Limit, "fuel exhausted"));
        }
        Ok(())
    }
    fn check_size(&self, bytes: usize) -> Result<(), Error> {
        if bytes > self.limits.max_output {
            return Err(Error::new(ErrorKind::Limit, "string size limit exceeded"));
        }
        Ok(())
    }
    fn limits(&self) -> &Limits {
        &self.limits
    }
    fn host(&self) -> &Host {
        &self.host
    }
    fn env_allowed(&self) -> bool {
        self.env_allowed
    }
}

/// Calls the registered builtin `name` of `kind` (`"filter"`, `"function"`, `"test"`)
/// the way the VM does: one positional slice, converted by its declaration.
pub fn call_builtin(
    kind: &str,
    name: &str,
    st: &mut dyn State,
    args: &[Value],
) -> Result<Value, Error> {
    let r = super::Registry::with_builtins();
    let b = match kind {
        "filter" => r.get_filter(name),
        "function" => r.get_function(name),
        _ => r.get_test(name),
    }
    .ok_or_else(|| Error::new(ErrorKind::UnknownName, format!("no {kind} `{name}`")))?;
    (b.func)(st, args)
}

/// Test shims with the old `fn(&mut dyn State, &[Value])` shape over registered builtins:
/// `shims!(find_one => function "findOne", …)`.
macro_rules! shims {
    ($($f:ident => $kind:ident $name:literal),* $(,)?) => {
        $(
            fn $f(st: &mut dyn State, a: &[Value]) -> Result<Value, Error> {
                crate::builtins::teststate::call_builtin(stringify!($kind), $name, st, a)
            }
        )*
    };
}
pub(crate) use shims;

/// Calls the builtin `name` of `kind` (`"filter"`, `"function"`, else a test) of `r` with a
/// fresh [`TestState`].
pub fn call_in(r: &Registry, kind: &str, name: &str, args: &[Value]) -> Result<Value, Error> {
    let table = match kind {
        "filter" => &r.filters,
        "function" => &r.functions,
        _ => &r.tests,
    };
    let b = table
        .get(name)
        .ok_or_else(|| Error::new(ErrorKind::UnknownName, name.to_string()))?;
    (b.func)(&mut TestState::default(), args)
}
