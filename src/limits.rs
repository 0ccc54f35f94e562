//! The sandbox limits every render runs under (docs/language.md §5).

/// Limits set on the engine; each exceeded limit is an [`ErrorKind::Limit`](crate::ErrorKind::Limit)
/// error that names it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Evaluation steps per render (loop iterations, calls and output count).
    pub fuel: u64,
    /// Bytes of output, and the cap on any single string a template builds.
    pub max_output: usize,
    /// Nesting depth of macros, includes and expressions (also in the parser).
    pub max_depth: usize,
    /// Items a range (or any generated list) may have.
    pub max_range: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            fuel: 1_000_000,
            max_output: 8 * 1024 * 1024,
            max_depth: 128,
            max_range: 100_000,
        }
    }
}
