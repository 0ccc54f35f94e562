//! [`Engine`], [`Template`] and [`Expression`]: the public API.
//!
//! STUB CONTRACT — the engine helper replaces the bodies; the signatures are fixed.
//! Until then `compile` keeps the source and `render` returns it unchanged.

use crate::builtins::{Host, Registry};
use crate::error::Error;
use crate::host::{RecordSource, SharedStore};
use crate::limits::Limits;
use crate::value::Value;
use std::sync::Arc;

/// Output escaping strategy of a render (language.md §4).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Escape {
    /// Print values as they are (every field but `return_html`).
    #[default]
    None,
    /// HTML-escape `{{ }}` output unless it is marked safe.
    Html,
}

/// Per-render options.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RenderOptions {
    pub escape: Escape,
    /// Allow `env(name)`: only for settings fields (listener.md §6).
    pub allow_env: bool,
}

/// Compiles templates; holds builtins, snippets, limits and host services.
#[derive(Clone)]
pub struct Engine {
    registry: Registry,
    limits: Limits,
    strict: bool,
    host: Host,
}

impl Default for Engine {
    fn default() -> Engine {
        Engine::new()
    }
}

impl Engine {
    /// An engine with every builtin, default limits, non-strict, UTC.
    pub fn new() -> Engine {
        Engine {
            registry: Registry::with_builtins(),
            limits: Limits::default(),
            strict: false,
            host: Host::default(),
        }
    }
    /// Registers a named snippet for `{% include %}` (compiled now; errors are returned).
    pub fn add_snippet(&mut self, _name: &str, _source: &str) -> Result<(), Error> {
        Ok(())
    }
    /// Parses and compiles `source` once; the [`Template`] renders many times.
    pub fn compile(&self, name: &str, source: &str) -> Result<Template, Error> {
        Ok(Template {
            name: Arc::from(name),
            source: Arc::from(source),
        })
    }
    /// Compiles a single expression (no delimiters), e.g. a step's `expression` field.
    pub fn compile_expression(&self, name: &str, source: &str) -> Result<Expression, Error> {
        Ok(Expression {
            _name: Arc::from(name),
            source: Arc::from(source),
        })
    }
    pub fn set_limits(&mut self, limits: Limits) {
        self.limits = limits;
    }
    pub fn limits(&self) -> &Limits {
        &self.limits
    }
    /// Strict mode: a missing variable, key or index is an error.
    pub fn set_strict(&mut self, strict: bool) {
        self.strict = strict;
    }
    pub fn set_timezone(&mut self, tz: chrono_tz::Tz) {
        self.host.timezone = tz;
    }
    pub fn set_records(&mut self, records: Arc<dyn RecordSource>) {
        self.host.records = Some(records);
    }
    pub fn set_store(&mut self, store: Arc<dyn SharedStore>) {
        self.host.store = Some(store);
    }
    /// The builtins, to add or replace filters, functions and tests.
    pub fn registry_mut(&mut self) -> &mut Registry {
        &mut self.registry
    }
}

/// A compiled template: `Send + Sync`, cheap to clone, renders without re-parsing.
#[derive(Clone, Debug)]
pub struct Template {
    name: Arc<str>,
    source: Arc<str>,
}

impl Template {
    pub fn name(&self) -> &str {
        &self.name
    }
    /// Renders with `ctx` (anything serde can serialize; a JSON object's keys become variables).
    pub fn render(&self, ctx: &impl serde::Serialize) -> Result<String, Error> {
        self.render_with(ctx, RenderOptions::default())
    }
    pub fn render_with(
        &self,
        ctx: &impl serde::Serialize,
        opts: RenderOptions,
    ) -> Result<String, Error> {
        self.render_value(&Value::from_serialize(ctx)?, opts)
    }
    /// Renders with a context already converted to a [`Value`] (no conversion cost).
    pub fn render_value(&self, _ctx: &Value, _opts: RenderOptions) -> Result<String, Error> {
        Ok(self.source.to_string())
    }
}

/// A compiled expression that evaluates to a typed [`Value`].
#[derive(Clone, Debug)]
pub struct Expression {
    _name: Arc<str>,
    source: Arc<str>,
}

impl Expression {
    pub fn eval(&self, _ctx: &Value, _opts: RenderOptions) -> Result<Value, Error> {
        Ok(Value::str(self.source.to_string()))
    }
}
