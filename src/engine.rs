//! [`Engine`], [`Template`] and [`Expression`]: the public API.
//!
//! `Engine::compile` parses (src/syntax) and compiles (src/compile) once; a
//! [`Template`] holds an `Arc` of the program and of what renders share (limits,
//! host, snippets), so it is cheap to clone and `Send + Sync`.

use crate::builtins::typed::{FunctionArgs, FunctionResult, HostFn};
use crate::builtins::{Host, Registry};
use crate::compile::{self, ir};
use crate::error::Error;
pub use crate::escape::Escape;
use crate::host::{RecordSource, SharedStore};
use crate::limits::Limits;
use crate::loader::{Library, Loader};
pub use crate::options::RenderOptions;
use crate::syntax;
use crate::value::Value;
use crate::vm::{self, Shared};
use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

/// Compiles templates; holds builtins, snippets, limits and host services.
#[derive(Clone)]
pub struct Engine {
    registry: Registry,
    limits: Limits,
    strict: bool,
    host: Host,
    snippets: Arc<HashMap<Arc<str>, Arc<ir::Program>>>,
    loader: Option<Arc<dyn Loader>>,
    /// Built on first use from the fields above; every `&mut self` method resets it,
    /// so templates compiled afterwards see the change (and its own cache).
    library: Arc<OnceLock<Arc<Library>>>,
}

impl Default for Engine {
    fn default() -> Engine {
        Engine::new()
    }
}

impl Engine {
    /// An engine with every builtin, default limits, non-strict, UTC.
    ///
    /// Cheap (well under a microsecond): the built-in tables are built once per process and
    /// shared; a host that adds a builtin gets its own copy of them then.
    pub fn new() -> Engine {
        Engine {
            registry: Registry::with_builtins(),
            limits: Limits::default(),
            strict: false,
            host: Host::default(),
            snippets: Arc::new(HashMap::new()),
            loader: None,
            library: Arc::default(),
        }
    }

    /// The library (snippets, loader, compiled-template cache) of the current settings.
    fn library(&self) -> Arc<Library> {
        self.library
            .get_or_init(|| {
                Arc::new(Library::new(
                    self.registry.clone(),
                    self.strict,
                    self.limits.max_depth,
                    (*self.snippets).clone(),
                    self.loader.clone(),
                ))
            })
            .clone()
    }

    /// Forgets the library: the next compile builds one from the new settings.
    fn changed(&mut self) {
        self.library = Arc::default();
    }

    fn shared(&self, library: Arc<Library>) -> Arc<Shared> {
        Arc::new(Shared {
            limits: self.limits.clone(),
            host: self.host.clone(),
            library,
        })
    }

    /// Registers a named snippet for `{% include %}` and `{% import %}` (compiled now;
    /// errors are returned). Templates compiled afterwards see it.
    pub fn add_snippet(&mut self, name: &str, source: &str) -> Result<(), Error> {
        let p = Arc::new(self.library().compile(name, source, &[])?);
        Arc::make_mut(&mut self.snippets).insert(Arc::from(name), p);
        self.changed();
        Ok(())
    }

    /// Sets where named templates come from (`extends`, `include`, `import`, `embed`,
    /// `use`, `source()`): a [`crate::FolderLoader`], a [`crate::MapLoader`] or your own.
    /// Snippets ([`Engine::add_snippet`]) are looked up first.
    pub fn set_loader(&mut self, loader: impl Loader + 'static) {
        self.loader = Some(Arc::new(loader));
        self.changed();
    }

    /// The named template `name` from the library (compiled once, then cached).
    /// A missing template is an error naming it, with a "did you mean" when close.
    pub fn get_template(&self, name: &str) -> Result<Template, Error> {
        let lib = self.library();
        match lib.get(name, &[])? {
            Some(program) => Ok(Template {
                program,
                shared: self.shared(lib),
            }),
            None => Err(lib.missing(name)),
        }
    }

    /// Every template name the library knows (snippets and the loader's), sorted.
    pub fn template_names(&self) -> Vec<String> {
        self.library().names()
    }

    /// Parses and compiles `source` once; the [`Template`] renders many times.
    pub fn compile(&self, name: &str, source: &str) -> Result<Template, Error> {
        let lib = self.library();
        Ok(Template {
            program: Arc::new(lib.compile(name, source, &[])?),
            shared: self.shared(lib),
        })
    }
    /// Compiles a single expression (no delimiters), e.g. a step's `expression` field.
    pub fn compile_expression(&self, name: &str, source: &str) -> Result<Expression, Error> {
        let e = syntax::parse_expression(name, source, self.limits.max_depth)?;
        let lib = self.library();
        let env = compile::Env {
            registry: &self.registry,
            library: &lib,
            chain: &[],
            strict: self.strict,
        };
        let (expr, slots) = compile::compile_expression(&env, name, source, &e)?;
        Ok(Expression {
            program: Arc::new(ir::Program {
                name: Arc::from(name),
                source: Arc::from(source),
                body: Vec::new(),
                slots,
                slot_names: Arc::new(vec![Arc::from(""); slots]),
                ..ir::Program::empty(name, source)
            }),
            expr: Arc::new(expr),
            shared: self.shared(lib),
        })
    }
    /// Sets the sandbox limits of every template compiled and rendered afterwards.
    pub fn set_limits(&mut self, limits: Limits) {
        self.limits = limits;
        self.changed();
    }
    /// The sandbox limits.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }
    /// Strict mode: a missing variable, key or index is an error (applies to
    /// templates compiled afterwards).
    pub fn set_strict(&mut self, strict: bool) {
        self.strict = strict;
        self.changed();
    }
    /// The timezone of naive dates and of `date` output (default UTC).
    pub fn set_timezone(&mut self, tz: chrono_tz::Tz) {
        self.host.timezone = tz;
    }
    /// The record source behind `findOne`, `findMany`, `query`….
    pub fn set_records(&mut self, records: Arc<dyn RecordSource>) {
        self.host.records = Some(records);
    }
    /// The shared store behind `memoryGet`, `memorySet`, `incrementAndGet`.
    pub fn set_store(&mut self, store: Arc<dyn SharedStore>) {
        self.host.store = Some(store);
    }
    /// The builtins, to add or replace filters, functions and tests.
    pub fn registry_mut(&mut self) -> &mut Registry {
        self.changed();
        &mut self.registry
    }

    /// Adds (or replaces) a filter from a plain Rust closure with typed arguments;
    /// the first argument is the piped value.
    ///
    /// ```
    /// let mut engine = flexscript::Engine::new();
    /// engine.add_filter("slug", |v: &str| v.to_lowercase().replace(' ', "-"));
    /// let out = engine.compile("t", "{{ 'Hello World' | slug }}").unwrap().render(&()).unwrap();
    /// assert_eq!(out, "hello-world");
    /// ```
    pub fn add_filter<F, R, Args>(&mut self, name: &str, f: F)
    where
        F: HostFn<R, Args> + for<'a> HostFn<R, <Args as FunctionArgs<'a>>::Output>,
        R: FunctionResult,
        Args: for<'a> FunctionArgs<'a>,
    {
        self.changed();
        self.registry.add_filter(name, f);
    }

    /// Adds (or replaces) a function from a plain Rust closure with typed arguments;
    /// trailing `Option` parameters are optional.
    ///
    /// ```
    /// let mut engine = flexscript::Engine::new();
    /// engine.add_function("clamp", |x: i64, lo: i64, hi: Option<i64>| x.max(lo).min(hi.unwrap_or(i64::MAX)));
    /// let out = engine.compile("t", "{{ clamp(15, 0, 10) }} {{ clamp(-3, 0) }}").unwrap().render(&()).unwrap();
    /// assert_eq!(out, "10 0");
    /// ```
    pub fn add_function<F, R, Args>(&mut self, name: &str, f: F)
    where
        F: HostFn<R, Args> + for<'a> HostFn<R, <Args as FunctionArgs<'a>>::Output>,
        R: FunctionResult,
        Args: for<'a> FunctionArgs<'a>,
    {
        self.changed();
        self.registry.add_function(name, f);
    }

    /// Adds (or replaces) a test from a plain Rust closure; the result's truthiness is the answer.
    ///
    /// ```
    /// let mut engine = flexscript::Engine::new();
    /// engine.add_test("shouting", |v: &str| !v.is_empty() && v == v.to_uppercase());
    /// let out = engine.compile("t", "{{ 'HEY' is shouting ? 'yes' : 'no' }}").unwrap().render(&()).unwrap();
    /// assert_eq!(out, "yes");
    /// ```
    pub fn add_test<F, R, Args>(&mut self, name: &str, f: F)
    where
        F: HostFn<R, Args> + for<'a> HostFn<R, <Args as FunctionArgs<'a>>::Output>,
        R: FunctionResult,
        Args: for<'a> FunctionArgs<'a>,
    {
        self.changed();
        self.registry.add_test(name, f);
    }
}

/// A compiled template: `Send + Sync`, cheap to clone, renders without re-parsing.
#[derive(Clone)]
pub struct Template {
    program: Arc<ir::Program>,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Template {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Template")
            .field("name", &self.program.name)
            .finish_non_exhaustive()
    }
}

impl Template {
    /// The name given at compile time (used in error locations).
    pub fn name(&self) -> &str {
        &self.program.name
    }
    /// Renders with `ctx` (anything serde can serialize; a JSON object's keys become variables).
    pub fn render(&self, ctx: &impl serde::Serialize) -> Result<String, Error> {
        self.render_with(ctx, RenderOptions::default())
    }
    /// Renders with `ctx` under `opts` (escaping, `env()`).
    pub fn render_with(
        &self,
        ctx: &impl serde::Serialize,
        opts: RenderOptions,
    ) -> Result<String, Error> {
        self.render_value(&Value::from_serialize(ctx)?, opts)
    }
    /// The constant attribute paths of the context variable `root` this template reads, or
    /// `None` when it may read `root` otherwise (see `compile::reads`).
    #[cfg_attr(not(feature = "listener"), allow(dead_code))]
    pub(crate) fn attr_paths(&self, root: &str) -> Option<Vec<Vec<Arc<str>>>> {
        crate::compile::reads::attr_paths(&self.program, root)
    }
    /// Renders with a context already converted to a [`Value`] (no conversion cost).
    pub fn render_value(&self, ctx: &Value, opts: RenderOptions) -> Result<String, Error> {
        vm::render(&self.program, &self.shared, ctx, opts)
    }
}

/// A compiled expression that evaluates to a typed [`Value`].
#[derive(Clone)]
pub struct Expression {
    program: Arc<ir::Program>,
    expr: Arc<ir::Expr>,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Expression {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Expression")
            .field("name", &self.program.name)
            .field("source", &self.program.source)
            .finish_non_exhaustive()
    }
}

impl Expression {
    /// Evaluates the expression with the variables of `ctx` (a map).
    pub fn eval(&self, ctx: &Value, opts: RenderOptions) -> Result<Value, Error> {
        vm::eval_expression(&self.program, &self.expr, &self.shared, ctx, opts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engines_share_the_builtins_until_a_host_adds_one() {
        let mut a = Engine::new();
        let b = Engine::new();
        assert!(std::ptr::eq(
            a.registry.get_filter("upper").expect("upper"),
            b.registry.get_filter("upper").expect("upper")
        ));
        a.add_filter("shout", |v: &str| v.to_uppercase() + "!");
        assert!(a.registry.get_filter("shout").is_some());
        assert!(b.registry.get_filter("shout").is_none());
        assert!(Engine::new().registry.get_filter("shout").is_none());
        let out = a
            .compile("t", "{{ 'hi' | shout }}")
            .and_then(|t| t.render(&()));
        assert_eq!(out.expect("renders"), "HI!");
        assert!(b.compile("t", "{{ 'hi' | shout }}").is_err());
    }

    #[test]
    fn render_takes_a_value_without_converting_it() {
        let t = Engine::new().compile("t", "{{ a.b }}").expect("compiles");
        let ctx = Value::from(serde_json::json!({"a": {"b": "x"}}));
        assert_eq!(t.render(&ctx).expect("renders"), "x");
        assert_eq!(
            t.render_value(&ctx, RenderOptions::default())
                .expect("renders"),
            "x"
        );
    }
}
