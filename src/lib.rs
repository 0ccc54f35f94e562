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
pub mod detect;
mod engine;
pub mod error;
pub mod host;
pub mod limits;
pub mod loader;
mod syntax;
pub mod value;
mod vm;

pub use engine::{Engine, Escape, Expression, RenderOptions, Template};
pub use error::{Error, ErrorKind};
pub use limits::Limits;
pub use loader::{FolderLoader, Loader, MapLoader};
pub use value::Value;
pub mod listener;
pub mod state;

/// The README's Rust examples compile and run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
mod readme_doctests {}
