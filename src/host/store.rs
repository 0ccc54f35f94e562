//! The shared store behind `set_memory`, `memoryGet` and `incrementAndGet` (docs/catalogue.md "Host-backed functions").
//!
//! [`MemoryStore`] is in-process and concurrent (one short mutex section per call; values are
//! reference counted, so reads clone cheaply). Entries written with [`SharedStore::set`] expire
//! after their TTL: expired entries are invisible at once and purged lazily (on access) and in
//! periodic sweeps. Counters never expire. Growth is bounded by an entry count and an
//! approximate byte budget: when full, expired entries are purged first, then the live entry
//! that expires soonest is evicted; a new counter in a store full of counters is an error.

use crate::error::{Error, ErrorKind};
use crate::value::Value;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A concurrent key/value store shared by every endpoint of a server.
pub trait SharedStore: Send + Sync {
    /// The live value under `name`, if any (expired entries are gone).
    fn get(&self, name: &str) -> Option<Value>;
    /// [`SharedStore::get`] for a store that can be unreachable (a shared server): an
    /// [`ErrorKind::Host`] error whose message holds [`STORE_UNAVAILABLE`] then, so the caller
    /// can answer "retry later" instead of rendering without the value.
    fn try_get(&self, name: &str) -> Result<Option<Value>, Error> {
        Ok(self.get(name))
    }
    /// Writes `value` under `name` for `ttl`.
    fn set(&self, name: &str, value: Value, ttl: Duration);
    /// [`SharedStore::set`] for a store that can be unreachable (a shared server): an
    /// [`ErrorKind::Host`] error whose message holds [`STORE_UNAVAILABLE`] when the write was
    /// not made, so the caller fails (and answers "retry later") instead of losing it quietly.
    fn try_set(&self, name: &str, value: Value, ttl: Duration) -> Result<(), Error> {
        self.set(name, value, ttl);
        Ok(())
    }
    /// Atomically adds `by` to the counter `name` (missing = 0) and returns the new value.
    fn increment(&self, name: &str, by: i64) -> Result<i64, Error>;
    /// Removes `name`; true when a live entry was removed.
    fn remove(&self, name: &str) -> bool {
        let live = self.get(name).is_some();
        self.set(name, Value::Null, Duration::ZERO);
        live
    }
}

/// Part of the message of a store error meaning "unreachable now, retry later" (the listener
/// answers 503 with `Retry-After` for a render that failed with it).
pub const STORE_UNAVAILABLE: &str = "shared store unavailable";

/// Default maximum number of entries of a [`MemoryStore`].
pub const DEFAULT_MAX_ENTRIES: usize = 100_000;
/// Default byte budget (approximate) of a [`MemoryStore`].
pub const DEFAULT_MAX_BYTES: usize = 64 * 1024 * 1024;
/// Writes between two full sweeps of expired entries.
const SWEEP_EVERY: u64 = 1024;

#[derive(Debug)]
struct Entry {
    value: Value,
    /// `None`: never expires (counters).
    expires: Option<Instant>,
    bytes: usize,
}

impl Entry {
    fn live(&self, now: Instant) -> bool {
        self.expires.is_none_or(|t| t > now)
    }
}

#[derive(Debug, Default)]
struct Inner {
    map: HashMap<String, Entry>,
    bytes: usize,
    writes: u64,
}

impl Inner {
    fn remove(&mut self, name: &str) -> Option<Entry> {
        let e = self.map.remove(name)?;
        self.bytes = self.bytes.saturating_sub(e.bytes);
        Some(e)
    }

    fn insert(&mut self, name: &str, entry: Entry) {
        self.bytes = self.bytes.saturating_add(entry.bytes);
        if let Some(old) = self.map.insert(name.to_string(), entry) {
            self.bytes = self.bytes.saturating_sub(old.bytes);
        }
    }

    fn sweep(&mut self, now: Instant) {
        let before = self.map.len();
        self.map.retain(|_, e| e.live(now));
        if self.map.len() != before {
            self.bytes = self.map.values().map(|e| e.bytes).sum();
        }
    }

    /// Makes room for an entry of `bytes` bytes; false when only counters are left.
    fn make_room(
        &mut self,
        now: Instant,
        bytes: usize,
        max_entries: usize,
        max_bytes: usize,
    ) -> bool {
        let full =
            |i: &Inner| i.map.len() >= max_entries || i.bytes.saturating_add(bytes) > max_bytes;
        if !full(self) {
            return true;
        }
        self.sweep(now);
        while full(self) {
            let victim = self
                .map
                .iter()
                .filter_map(|(k, e)| e.expires.map(|t| (t, k)))
                .min()
                .map(|(_, k)| k.clone());
            match victim {
                Some(k) => {
                    self.remove(&k);
                }
                None => return false,
            }
        }
        true
    }
}

/// An in-process [`SharedStore`] with TTLs and bounded growth.
#[derive(Debug)]
pub struct MemoryStore {
    inner: Mutex<Inner>,
    max_entries: usize,
    max_bytes: usize,
}

impl Default for MemoryStore {
    fn default() -> MemoryStore {
        MemoryStore::with_limits(DEFAULT_MAX_ENTRIES, DEFAULT_MAX_BYTES)
    }
}

impl MemoryStore {
    /// A store with the default limits.
    pub fn new() -> MemoryStore {
        MemoryStore::default()
    }

    /// A store holding at most `max_entries` entries and about `max_bytes` bytes of values.
    pub fn with_limits(max_entries: usize, max_bytes: usize) -> MemoryStore {
        MemoryStore {
            inner: Mutex::new(Inner::default()),
            max_entries: max_entries.max(1),
            max_bytes: max_bytes.max(1),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // No code path panics while holding the lock, and every update leaves the map
        // consistent, so a poisoned lock is still safe to use.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Removes every expired entry now (the listener may call this on a timer).
    pub fn purge_expired(&self) {
        self.lock().sweep(Instant::now());
    }

    /// Number of live entries.
    pub fn len(&self) -> usize {
        let now = Instant::now();
        self.lock().map.values().filter(|e| e.live(now)).count()
    }

    /// True when no live entry is stored.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Approximate heap size of a value, for the byte budget.
fn approx_bytes(v: &Value) -> usize {
    match v {
        Value::Str(s) | Value::Safe(s) => 16 + s.len(),
        Value::List(l) => 24 + l.iter().map(approx_bytes).sum::<usize>(),
        Value::Map(m) => {
            24 + m
                .iter()
                .map(|(k, v)| 16 + k.len() + approx_bytes(v))
                .sum::<usize>()
        }
        _ => 16,
    }
}

impl SharedStore for MemoryStore {
    fn get(&self, name: &str) -> Option<Value> {
        let now = Instant::now();
        let mut inner = self.lock();
        match inner.map.get(name) {
            Some(e) if e.live(now) => Some(e.value.clone()),
            Some(_) => {
                inner.remove(name);
                None
            }
            None => None,
        }
    }

    fn set(&self, name: &str, value: Value, ttl: Duration) {
        let now = Instant::now();
        let mut inner = self.lock();
        inner.remove(name);
        inner.writes = inner.writes.wrapping_add(1);
        if inner.writes % SWEEP_EVERY == 0 {
            inner.sweep(now);
        }
        if ttl.is_zero() {
            return;
        }
        let bytes = name.len() + approx_bytes(&value);
        if bytes > self.max_bytes || !inner.make_room(now, bytes, self.max_entries, self.max_bytes)
        {
            tracing::warn!(name, "shared store is full; value not stored");
            return;
        }
        // A TTL too large for the clock (`checked_add` fails) never expires.
        let expires = now.checked_add(ttl);
        inner.insert(
            name,
            Entry {
                value,
                expires,
                bytes,
            },
        );
    }

    fn increment(&self, name: &str, by: i64) -> Result<i64, Error> {
        let now = Instant::now();
        let mut inner = self.lock();
        let current = match inner.map.get(name) {
            Some(e) if e.live(now) => match &e.value {
                Value::Int(i) => *i,
                other => other.as_i64().ok_or_else(|| {
                    Error::new(
                        ErrorKind::InvalidArgument,
                        format!(
                            "incrementAndGet: \"{name}\" holds {}, not an integer",
                            other.type_with_article()
                        ),
                    )
                })?,
            },
            _ => 0,
        };
        let next = current.checked_add(by).ok_or_else(|| {
            Error::new(
                ErrorKind::Runtime,
                format!("incrementAndGet: counter \"{name}\" would overflow"),
            )
        })?;
        let bytes = name.len() + 16;
        let exists = inner.remove(name).is_some();
        if !exists && !inner.make_room(now, bytes, self.max_entries, self.max_bytes) {
            return Err(Error::new(
                ErrorKind::Host,
                format!("incrementAndGet: the shared store is full; cannot create \"{name}\""),
            ));
        }
        inner.insert(
            name,
            Entry {
                value: Value::Int(next),
                expires: None,
                bytes,
            },
        );
        Ok(next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn ttl_hides_and_purges() {
        let s = MemoryStore::new();
        s.set("a", Value::from("x"), Duration::from_millis(30));
        s.set("b", Value::from("y"), Duration::from_secs(60));
        assert_eq!(s.get("a").map(|v| v.to_output()), Some("x".into()));
        std::thread::sleep(Duration::from_millis(50));
        assert!(s.get("a").is_none());
        assert_eq!(s.len(), 1);
        s.set("b", Value::Null, Duration::ZERO);
        assert!(s.get("b").is_none());
        assert!(s.is_empty());
    }

    #[test]
    fn counters_are_atomic_and_permanent() {
        let s = Arc::new(MemoryStore::new());
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let s = Arc::clone(&s);
                std::thread::spawn(move || {
                    for _ in 0..1000 {
                        let _ = s.increment("hits", 1);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(s.increment("hits", 0).unwrap(), 8000);
        s.set("n", Value::from("41"), Duration::from_millis(10));
        assert_eq!(s.increment("n", 1).unwrap(), 42);
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(s.get("n").and_then(|v| v.as_i64()), Some(42));
        s.set("word", Value::from("abc"), Duration::from_secs(5));
        assert!(s.increment("word", 1).is_err());
        assert!(s.increment("hits", i64::MAX).is_err());
    }

    #[test]
    fn bounded() {
        let s = MemoryStore::with_limits(3, 1 << 20);
        s.set("soon", Value::Int(1), Duration::from_secs(10));
        s.set("late", Value::Int(2), Duration::from_secs(1000));
        s.increment("c", 1).unwrap();
        s.set("new", Value::Int(3), Duration::from_secs(100));
        assert!(
            s.get("soon").is_none(),
            "the soonest-expiring entry is evicted"
        );
        assert!(s.get("late").is_some() && s.get("new").is_some());
        let counters = MemoryStore::with_limits(2, 1 << 20);
        counters.increment("a", 1).unwrap();
        counters.increment("b", 1).unwrap();
        assert!(counters.increment("c", 1).is_err());
        counters.set("v", Value::Int(1), Duration::from_secs(5));
        assert!(counters.get("v").is_none());
        let small = MemoryStore::with_limits(10, 100);
        small.set("big", Value::from("x".repeat(200)), Duration::from_secs(5));
        assert!(small.get("big").is_none());
    }
}
