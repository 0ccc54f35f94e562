//! Built-in filters, functions and tests, and the interface they share.
//!
//! Every builtin is a [`BuiltinFn`]: it receives the render [`State`] and its
//! arguments as one positional slice. The catalogue declares each builtin with typed,
//! named parameters (`declare_filter`, `declare_function`, `declare_test` in [`typed`]),
//! which convert that slice and build every wrong-type error in one place. For filters
//! and tests `args[0]` is the piped / tested value and `args[1..]` the declared
//! parameters; for functions
//! `args` are the declared parameters. The compiler resolves named arguments
//! against the declared [`Signature`] at compile time, so a builtin always sees
//! its parameters in declaration order; an omitted optional parameter arrives as
//! [`Value::Undefined`] (or is absent when it is past the end of the slice).
//! Tests return a boolean [`Value`].
//!
//! Module owners: `core` (the language's minimum set and every test of §2.4),
//! `filters`/`functions` (the catalogue), `dates`, `crypto`, `records`.

pub(crate) mod core;
pub(crate) mod crypto;
#[cfg(test)]
mod crypto_vectors;
pub(crate) mod datefmt;
pub(crate) mod datemod;
pub(crate) mod dates;
pub(crate) mod filters;
pub(crate) mod functions;
pub(crate) mod misc;
pub(crate) mod records;
#[cfg(test)]
mod teststate;
pub(crate) mod text;
pub(crate) mod typed;

pub use typed::{ArgType, Arrow, BuiltinBody, FunctionArgs, FunctionResult, HostFn, Rest};

use crate::error::Error;
use crate::host::{RecordSource, SharedStore};
use crate::limits::Limits;
use crate::value::Value;
use std::collections::HashMap;
use std::sync::Arc;

/// What a builtin can ask of the render it runs in.
pub trait State {
    /// Calls an arrow function or macro with positional arguments.
    fn call(&mut self, callee: &Value, args: &[Value]) -> Result<Value, Error>;
    /// Charges `n` units of fuel; fails when the budget is spent.
    fn fuel(&mut self, n: u64) -> Result<(), Error>;
    /// Fails when a string of `bytes` bytes would exceed the engine's size cap.
    fn check_size(&self, bytes: usize) -> Result<(), Error>;
    /// The engine's limits.
    fn limits(&self) -> &Limits;
    /// What the host lends: timezone, records, shared store.
    fn host(&self) -> &Host;
    /// True only when rendering a settings field (docs/listener.md "Responses"): `env()` works.
    fn env_allowed(&self) -> bool;
    /// True when the render may not write the shared store
    /// ([`RenderOptions::read_only_store`](crate::RenderOptions::read_only_store)).
    fn store_read_only(&self) -> bool {
        false
    }
}

/// Host services shared by every render of an engine.
#[derive(Clone)]
pub struct Host {
    /// The engine-wide timezone (default UTC).
    pub timezone: chrono_tz::Tz,
    /// Where `findOne`, `query`… look records up (none: those builtins fail with a host error).
    pub records: Option<Arc<dyn RecordSource>>,
    /// The shared store behind `memoryGet`, `incrementAndGet`… (none: a host error).
    pub store: Option<Arc<dyn SharedStore>>,
}

impl Default for Host {
    fn default() -> Host {
        Host {
            timezone: chrono_tz::UTC,
            records: None,
            store: None,
        }
    }
}

impl std::fmt::Debug for Host {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Host")
            .field("timezone", &self.timezone)
            .field("records", &self.records.is_some())
            .field("store", &self.store.is_some())
            .finish()
    }
}

/// The function behind a builtin (see the module docs for the argument layout).
pub type BuiltinFn = Arc<dyn Fn(&mut dyn State, &[Value]) -> Result<Value, Error> + Send + Sync>;

/// Declared parameters of a builtin, used to resolve named arguments at compile time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Signature {
    /// Parameter names in order (for filters and tests: without the piped value).
    pub params: Vec<&'static str>,
    /// How many leading parameters are required.
    pub required: usize,
    /// Whether extra positional arguments are accepted after `params`.
    pub variadic: bool,
    /// Other accepted names of parameters (`(alias, index in params)`).
    pub aliases: Vec<(&'static str, usize)>,
    /// The type of each parameter (`"integer"`, `"string"`, `"any"`…), as declared by a
    /// typed builtin (docs/templates.md's table); empty for an untyped one.
    pub types: Vec<&'static str>,
}

impl Signature {
    /// Parses a compact spec: `["length", "suffix?"]` — `?` marks an optional
    /// parameter, a trailing `"..."` (alone, or as `"name..."`) makes the builtin
    /// variadic, `"character_mask|chars?"` gives a parameter a second accepted name.
    pub fn parse(spec: &[&'static str]) -> Signature {
        let mut params = Vec::new();
        let mut required = 0;
        let mut variadic = false;
        let mut aliases = Vec::new();
        for p in spec {
            let (p, optional) = match p.strip_suffix('?') {
                Some(n) => (n, true),
                None => (*p, false),
            };
            if let Some(name) = p.strip_suffix("...") {
                variadic = true;
                if !name.is_empty() {
                    params.push(name);
                }
                continue;
            }
            let mut names = p.split('|');
            let name = names.next().unwrap_or(p);
            for alias in names {
                aliases.push((alias, params.len()));
            }
            params.push(name);
            if !optional {
                required = params.len();
            }
        }
        Signature {
            params,
            required,
            variadic,
            aliases,
            types: Vec::new(),
        }
    }

    /// The position of the parameter called `name` (or one of its aliases).
    pub fn position(&self, name: &str) -> Option<usize> {
        self.params
            .iter()
            .position(|p| *p == name)
            .or_else(|| self.aliases.iter().find(|(a, _)| *a == name).map(|a| a.1))
    }
}

/// One registered builtin.
#[derive(Clone)]
pub struct Builtin {
    /// The name templates call it by.
    pub name: Arc<str>,
    /// Its declared parameters.
    pub signature: Signature,
    /// The code.
    pub func: BuiltinFn,
    /// False for a builtin whose result may differ between two calls with the same arguments
    /// (`random`, `now`, …); see [`Registry::mark_non_deterministic`].
    pub deterministic: bool,
}

/// The `json_encode` and `raw` filters of the shared builtin tables ([`Registry::with_builtins`]),
/// set when those are built: the VM prints `{{ x|json_encode|raw }}` straight into its output
/// when both calls are these very closures (src/vm/exec.rs), and not when a host replaced either.
static JSON_RAW: std::sync::OnceLock<(BuiltinFn, BuiltinFn)> = std::sync::OnceLock::new();

/// Whether `json` and `raw` are the builtin `json_encode` and `raw` filters (see [`JSON_RAW`]).
pub(crate) fn builtin_json_raw(json: &BuiltinFn, raw: &BuiltinFn) -> bool {
    JSON_RAW
        .get()
        .is_some_and(|(j, r)| Arc::ptr_eq(j, json) && Arc::ptr_eq(r, raw))
}

/// The three namespaces of builtins (filters, functions, tests).
///
/// Cheap to clone: the tables are shared behind one `Arc` and copied only when a host adds or
/// replaces a builtin (copy-on-write). Every [`Registry::with_builtins`] shares one table set
/// built on first use, so `Engine::new()` costs a reference-count bump, not ~200 insertions.
#[derive(Clone, Default)]
pub struct Registry {
    tables: Arc<Tables>,
}

/// The tables behind a [`Registry`]; read inside the crate through `Deref`.
#[derive(Clone, Default)]
#[doc(hidden)]
pub struct Tables {
    pub(crate) filters: HashMap<Arc<str>, Builtin>,
    pub(crate) functions: HashMap<Arc<str>, Builtin>,
    pub(crate) tests: HashMap<Arc<str>, Builtin>,
}

impl std::ops::Deref for Registry {
    type Target = Tables;
    fn deref(&self) -> &Tables {
        &self.tables
    }
}

impl Registry {
    /// Every built-in of the language and the catalogue (shared, see the type's docs).
    pub fn with_builtins() -> Registry {
        static BUILTINS: std::sync::OnceLock<Registry> = std::sync::OnceLock::new();
        BUILTINS.get_or_init(Registry::build_builtins).clone()
    }

    fn build_builtins() -> Registry {
        let mut r = Registry::default();
        core::register(&mut r);
        filters::register(&mut r);
        functions::register(&mut r);
        text::register(&mut r);
        dates::register(&mut r);
        crypto::register(&mut r);
        records::register(&mut r);
        misc::register(&mut r);
        let shared = |name: &str| r.tables.filters.get(name).map(|b| b.func.clone());
        if let (Some(json), Some(raw)) = (shared("json_encode"), shared("raw")) {
            let _ = JSON_RAW.set((json, raw));
        }
        r
    }

    /// The filter called `name`, if any.
    pub fn get_filter(&self, name: &str) -> Option<&Builtin> {
        self.tables.filters.get(name)
    }
    /// The function called `name`, if any.
    pub fn get_function(&self, name: &str) -> Option<&Builtin> {
        self.tables.functions.get(name)
    }
    /// The test called `name`, if any.
    pub fn get_test(&self, name: &str) -> Option<&Builtin> {
        self.tables.tests.get(name)
    }
    /// The names of every filter, function and test, sorted within each kind, each with
    /// its kind (`"filter"`, `"function"`, `"test"`).
    pub fn names(&self) -> Vec<(&'static str, &str)> {
        let mut out = Vec::new();
        for (kind, table) in [
            ("filter", &self.tables.filters),
            ("function", &self.tables.functions),
            ("test", &self.tables.tests),
        ] {
            let mut names: Vec<&str> = table.keys().map(|k| &**k).collect();
            names.sort_unstable();
            out.extend(names.into_iter().map(|n| (kind, n)));
        }
        out
    }

    /// Marks the function `name` as non-deterministic: two calls with the same arguments may
    /// answer differently (randomness, the clock, the shared store). The determinism fuzz target
    /// skips expressions that call one (fuzz/README.md). A later registration under the same name
    /// starts deterministic again.
    pub fn mark_non_deterministic(&mut self, name: &str) {
        if let Some(b) = Arc::make_mut(&mut self.tables).functions.get_mut(name) {
            b.deterministic = false;
        }
    }

    /// The names of the non-deterministic functions, sorted.
    pub fn non_deterministic(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self
            .tables
            .functions
            .values()
            .filter(|b| !b.deterministic)
            .map(|b| &*b.name)
            .collect();
        names.sort_unstable();
        names
    }

    /// Registers (or replaces) a filter.
    pub fn filter<F>(&mut self, name: &str, spec: &[&'static str], f: F)
    where
        F: Fn(&mut dyn State, &[Value]) -> Result<Value, Error> + Send + Sync + 'static,
    {
        insert(
            &mut Arc::make_mut(&mut self.tables).filters,
            name,
            spec,
            Arc::new(f),
        );
    }

    /// Registers (or replaces) a function.
    pub fn function<F>(&mut self, name: &str, spec: &[&'static str], f: F)
    where
        F: Fn(&mut dyn State, &[Value]) -> Result<Value, Error> + Send + Sync + 'static,
    {
        insert(
            &mut Arc::make_mut(&mut self.tables).functions,
            name,
            spec,
            Arc::new(f),
        );
    }

    /// Registers (or replaces) a test.
    pub fn test<F>(&mut self, name: &str, spec: &[&'static str], f: F)
    where
        F: Fn(&mut dyn State, &[Value]) -> Result<Value, Error> + Send + Sync + 'static,
    {
        insert(
            &mut Arc::make_mut(&mut self.tables).tests,
            name,
            spec,
            Arc::new(f),
        );
    }
}

/// The namespace of a builtin.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Filter,
    Function,
    Test,
}

impl Registry {
    /// Replaces the declared signature of a registered builtin.
    pub(crate) fn set_signature(&mut self, kind: Kind, name: &str, sig: Signature) {
        let t = Arc::make_mut(&mut self.tables);
        let table = match kind {
            Kind::Filter => &mut t.filters,
            Kind::Function => &mut t.functions,
            Kind::Test => &mut t.tests,
        };
        if let Some(b) = table.get_mut(name) {
            b.signature = sig;
        }
    }
}

fn insert(
    map: &mut HashMap<Arc<str>, Builtin>,
    name: &str,
    spec: &[&'static str],
    func: BuiltinFn,
) {
    let name: Arc<str> = Arc::from(name);
    map.insert(
        name.clone(),
        Builtin {
            name,
            signature: Signature::parse(spec),
            func,
            deterministic: true,
        },
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_clock_randomness_and_the_store_are_marked_non_deterministic() {
        let r = Registry::with_builtins();
        assert_eq!(
            r.non_deterministic(),
            [
                "encrypt",
                "incrementAndGet",
                "jwtEncode",
                "now",
                "random",
                "signUrl",
                "uniqueId",
                "uuid"
            ]
        );
        assert!(r.get_function("upper").is_none_or(|b| b.deterministic));
        let mut r = r.clone();
        r.function("now", &[], |_, _| Ok(Value::Int(0)));
        assert!(!r.non_deterministic().contains(&"now"));
    }

    #[test]
    fn signature_spec() {
        let s = Signature::parse(&["length", "suffix?"]);
        assert_eq!(
            (s.params.clone(), s.required, s.variadic),
            (vec!["length", "suffix"], 1, false)
        );
        let v = Signature::parse(&["type", "field", "value", "..."]);
        assert_eq!((v.required, v.variadic), (3, true));
    }
}
