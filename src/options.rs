//! [`RenderOptions`]: what one render may do (escaping, `env()`, shared-store writes). A leaf shared by the
//! engine's API and the VM.

use crate::escape::Escape;

/// Per-render options.
///
/// `#[non_exhaustive]`: build with `RenderOptions::default()` and the `with_*` builders,
/// e.g. `RenderOptions::default().with_escape(Escape::Html)`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RenderOptions {
    /// How `{{ }}` output is escaped.
    pub escape: Escape,
    /// Allow `env(name)`: only for settings fields (docs/listener.md "Responses").
    pub allow_env: bool,
    /// Refuse writes to the shared store (`incrementAndGet` fails with a host error; reads
    /// work): a render whose only effects must be its output. The listener runs a new run's
    /// leading `store` / `condition` steps this way before journaling it (docs/state.md,
    /// "Leading steps").
    pub read_only_store: bool,
}

impl RenderOptions {
    /// How `{{ }}` output is escaped.
    pub const fn with_escape(mut self, escape: Escape) -> RenderOptions {
        self.escape = escape;
        self
    }
    /// Whether `env(name)` may read the environment (settings fields only).
    pub const fn with_env(mut self, allow: bool) -> RenderOptions {
        self.allow_env = allow;
        self
    }
    /// Whether the shared store is read-only for this render (`incrementAndGet` refused).
    pub const fn with_read_only_store(mut self, read_only: bool) -> RenderOptions {
        self.read_only_store = read_only;
        self
    }
}
