//! flexscript: Flexie Scripting — a Twig-like template and expression language —
//! and the listener runtime that serves dynamic endpoints.
//!
//! ```
//! let engine = flexscript::Engine::new();
//! let tpl = engine.compile("hello", "Hello {{ name }}!").unwrap();
//! let _out = tpl.render(&serde_json::json!({"name": "World"})).unwrap();
//! ```

pub mod builtins;
mod compile;
#[cfg(feature = "listener")]
pub mod detect;
mod engine;
pub mod error;
mod escape;
pub mod host;
pub mod limits;
mod options;
mod pcre;
mod syntax;
pub mod value;
mod vm;

pub use engine::{Engine, Escape, Expression, RenderOptions, Template};
pub use error::{Error, ErrorKind};
pub use limits::Limits;
pub use value::Value;
#[cfg(feature = "listener")]
pub mod listener;

/// The README's Rust examples compile and run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
mod readme_doctests {}

/// The Rust examples of the catalogue (host builtins from typed closures) run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../docs/catalogue.md")]
mod catalogue_doctests {}

/// The Rust examples of the language reference run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../docs/language.md")]
mod language_doctests {}
