//! Catalogue builtins: filters (see catalogue.md).

use super::Registry;

/// Registers this module's builtins.
pub fn register(_r: &mut Registry) {}
