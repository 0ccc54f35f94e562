//! What the host lends the engine: record look-ups and a shared key/value store.
//!
//! Both are traits so a networked implementation can replace the in-process ones
//! (`records::JsonRecords`, `store::MemoryStore`). The listener installs them on
//! the engine; with none installed, the functions that need them fail with an
//! [`ErrorKind::Host`](crate::ErrorKind::Host) error naming the function.

pub mod records;
pub mod store;

pub use records::{JsonRecords, RecordSource};
pub use store::{MemoryStore, SharedStore, STORE_UNAVAILABLE};
