//! A minimal [`State`] for the catalogue-b unit tests (no interpreter behind it).

use super::{Host, State};
use crate::error::{Error, ErrorKind};
use crate::limits::Limits;
use crate::value::Value;

/// Default limits, a default [`Host`] (UTC, no records, no store), `env()` off.
#[derive(Default)]
pub struct TestState {
    pub host: Host,
    pub limits: Limits,
    pub env_allowed: bool,
}

impl State for TestState {
    fn call(&mut self, _callee: &Value, _args: &[Value]) -> Result<Value, Error> {
        Err(Error::new(
            ErrorKind::Runtime,
            "TestState cannot call functions",
        ))
    }
    fn fuel(&mut self, _n: u64) -> Result<(), Error> {
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
