//! The sandbox limits every render runs under (docs/language.md §5).

/// Limits set on the engine; each exceeded limit is an [`ErrorKind::Limit`](crate::ErrorKind::Limit)
/// error that names it.
///
/// `#[non_exhaustive]`: start from `Limits::default()` and set fields or use the `with_*`
/// builders, e.g. `Limits::default().with_fuel(20_000)`.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
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

impl Limits {
    /// Evaluation steps per render.
    pub fn with_fuel(mut self, fuel: u64) -> Limits {
        self.fuel = fuel;
        self
    }
    /// Bytes of output (and of any single string).
    pub fn with_max_output(mut self, bytes: usize) -> Limits {
        self.max_output = bytes;
        self
    }
    /// Nesting depth.
    pub fn with_max_depth(mut self, depth: usize) -> Limits {
        self.max_depth = depth;
        self
    }
    /// Items a range may have.
    pub fn with_max_range(mut self, items: usize) -> Limits {
        self.max_range = items;
        self
    }
}
