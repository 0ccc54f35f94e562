//! flexscript: Flexie Scripting — a Twig-like template and expression language —
//! and the listener runtime that serves dynamic endpoints.
//!
//! ```
//! let engine = flexscript::Engine::new();
//! let tpl = engine.compile("hello", "Hello {{ name }}!").unwrap();
//! let _out = tpl.render(&serde_json::json!({"name": "World"})).unwrap();
//! ```
//!
//! The crate root re-exports what a host needs: [`Engine`] compiles, [`Template`] and
//! [`Expression`] run, [`Value`] is the data, [`Error`] says what went wrong, [`Limits`] and
//! [`RenderOptions`] bound and shape a render, [`host`] lends records and a shared store, and
//! [`builtins`] lets a host write its own filters, functions and tests. With the default
//! features the crate also holds the HTTP listener (`listener`, `detect`); see
//! docs/architecture.md.

// No `unsafe` but in src/state/wal_vfs.rs (SQLite's VFS, a C interface), which allows it.
#![deny(unsafe_code)]
#![deny(missing_docs)]

pub mod builtins;
pub mod clock;
mod compile;
#[cfg(feature = "listener")]
pub mod detect;
mod engine;
mod error;
mod escape;
pub mod host;
mod limits;
pub mod loader;
mod options;
mod pcre;
mod stack;
mod swar;
mod syntax;
pub mod value;
mod vm;

pub use engine::{Engine, Escape, Expression, RenderOptions, Template};
pub use error::{Error, ErrorKind, Location};
pub use limits::Limits;
pub use loader::{FolderLoader, Loader, MapLoader};
pub use value::{Map, Value};
#[cfg(feature = "listener")]
pub mod listener;
#[cfg(feature = "listener")]
pub mod state;

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
