//! [`RenderOptions`]: what one render may do (escaping, `env()`). A leaf shared by the
//! engine's API and the VM.

use crate::escape::Escape;

/// Per-render options.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RenderOptions {
    pub escape: Escape,
    /// Allow `env(name)`: only for settings fields (docs/listener.md "Responses").
    pub allow_env: bool,
}
