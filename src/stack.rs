//! Stack probes for the engine's recursion (the parser, the compiler, the VM): below a red
//! zone the recursion continues on a new stack segment (`stacker`), so templates nested up to
//! the depth limit (src/limits.rs) compile and render on any thread, however small its stack.

/// Below this much remaining stack, the next levels run on a new segment.
pub(crate) const RED_ZONE: usize = 256 * 1024;
/// The size of such a segment.
pub(crate) const GROW: usize = 4 * 1024 * 1024;

/// Runs `f`, on a new stack segment when less than [`RED_ZONE`] is left.
#[inline]
pub(crate) fn guard<R>(f: impl FnOnce() -> R) -> R {
    stacker::maybe_grow(RED_ZONE, GROW, f)
}

/// Whether at least [`RED_ZONE`] of stack is left (also when the limit is unknown). A hot
/// caller calls itself directly when it is, and [`grown`] only when not: its result is then
/// returned straight, not through a closure's.
#[inline]
pub(crate) fn enough() -> bool {
    stacker::remaining_stack().is_none_or(|left| left >= RED_ZONE)
}

/// Runs `f` on a new stack segment of [`GROW`] bytes.
#[cold]
#[inline(never)]
pub(crate) fn grown<R>(f: impl FnOnce() -> R) -> R {
    stacker::grow(GROW, f)
}
