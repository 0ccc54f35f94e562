//! The shared store behind `set_memory`, `memoryGet` and `incrementAndGet`.
//! OWNER: catalogue helper (issue 3). The trait shape below is the contract.

use crate::error::Error;
use crate::value::Value;
use std::time::Duration;

/// A concurrent key/value store shared by every endpoint of a server.
pub trait SharedStore: Send + Sync {
    /// The live value under `name`, if any (expired entries are gone).
    fn get(&self, name: &str) -> Option<Value>;
    /// Writes `value` under `name` for `ttl`.
    fn set(&self, name: &str, value: Value, ttl: Duration);
    /// Atomically adds `by` to the counter `name` (missing = 0) and returns the new value.
    fn increment(&self, name: &str, by: i64) -> Result<i64, Error>;
}

/// An in-process [`SharedStore`]. (Stub: TTLs are honoured by the catalogue issue.)
#[derive(Debug, Default)]
pub struct MemoryStore {
    inner: std::sync::Mutex<std::collections::HashMap<String, Value>>,
}

impl MemoryStore {
    pub fn new() -> MemoryStore {
        MemoryStore::default()
    }
}

impl SharedStore for MemoryStore {
    fn get(&self, name: &str) -> Option<Value> {
        self.inner.lock().ok()?.get(name).cloned()
    }
    fn set(&self, name: &str, value: Value, _ttl: Duration) {
        if let Ok(mut m) = self.inner.lock() {
            m.insert(name.to_string(), value);
        }
    }
    fn increment(&self, name: &str, by: i64) -> Result<i64, Error> {
        let mut m = self
            .inner
            .lock()
            .map_err(|_| Error::new(crate::ErrorKind::Host, "store poisoned"))?;
        let cur = m.get(name).and_then(Value::as_i64).unwrap_or(0);
        let next = cur
            .checked_add(by)
            .ok_or_else(|| Error::new(crate::ErrorKind::Runtime, "counter overflow"))?;
        m.insert(name.to_string(), Value::Int(next));
        Ok(next)
    }
}
