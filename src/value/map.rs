//! [`Map`]: the ordered, string-keyed map of [`Value`]s (JSON objects, PHP arrays with string
//! keys, a request's fields).
//!
//! Most maps a template meets are small: a record of a list, a request's query, a loop's
//! variables. A `Map` keeps its entries in insertion order in one vector and, while it has at
//! most [`Map::SMALL`] entries, finds a key by comparing it with each entry's (length first):
//! no hash is computed and no index is allocated, so building a small map is one allocation
//! and reading a key a few comparisons. Past `SMALL` entries the map keeps a hash index of
//! entry positions beside the vector (SipHash with keys drawn at random once per process, as
//! std's `HashMap` — untrusted keys cannot flood it), rebuilt after the rare operations that
//! move entries (removal, `retain`, sorting).
//!
//! The API follows `indexmap::IndexMap` (which this type replaced), so code reads the same:
//! `insert` keeps a replaced key's place, `shift_remove` keeps the order of the rest.

use super::{same_text, Value};
use hashbrown::{hash_table, HashTable};
use std::fmt;
use std::hash::{BuildHasher, RandomState};
use std::sync::{Arc, OnceLock};

/// An ordered map with string keys, as JSON objects and PHP arrays with string keys.
#[derive(Clone, Default)]
pub struct Map {
    entries: Vec<(Arc<str>, Value)>,
    /// Positions in `entries`, by key hash: only when there are more than `SMALL` entries.
    index: Option<HashTable<usize>>,
}

/// The process's hash keys for map indexes (drawn once, kept secret).
fn hash(key: &str) -> u64 {
    static STATE: OnceLock<RandomState> = OnceLock::new();
    STATE.get_or_init(RandomState::new).hash_one(key)
}

/// The index of `entries`, or `None` when they are few enough to be searched in order.
fn index_of(entries: &[(Arc<str>, Value)]) -> Option<HashTable<usize>> {
    if entries.len() <= Map::SMALL {
        return None;
    }
    let mut table = HashTable::with_capacity(entries.len());
    for (i, (k, _)) in entries.iter().enumerate() {
        table.insert_unique(hash(k), i, |&j| hash(&entries[j].0));
    }
    Some(table)
}

impl Map {
    /// The most entries a map searches in order, without a hash index.
    pub const SMALL: usize = 8;

    /// An empty map.
    pub const fn new() -> Map {
        Map {
            entries: Vec::new(),
            index: None,
        }
    }

    /// An empty map with room for `capacity` entries.
    pub fn with_capacity(capacity: usize) -> Map {
        Map {
            entries: Vec::with_capacity(capacity),
            index: None,
        }
    }

    /// The number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the map has no entry.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Removes every entry.
    pub fn clear(&mut self) {
        self.entries.clear();
        self.index = None;
    }

    /// Room for `additional` more entries.
    pub fn reserve(&mut self, additional: usize) {
        self.entries.reserve(additional);
    }

    /// The position of `key`.
    #[inline]
    pub fn get_index_of<Q: AsRef<str> + ?Sized>(&self, key: &Q) -> Option<usize> {
        let key = key.as_ref();
        match &self.index {
            None => self.entries.iter().position(|(k, _)| same_text(k, key)),
            Some(table) => table
                .find(hash(key), |&i| *self.entries[i].0 == *key)
                .copied(),
        }
    }

    /// The value of `key`.
    #[inline]
    pub fn get<Q: AsRef<str> + ?Sized>(&self, key: &Q) -> Option<&Value> {
        let i = self.get_index_of(key)?;
        Some(&self.entries[i].1)
    }

    /// The value of `key`, to change.
    pub fn get_mut<Q: AsRef<str> + ?Sized>(&mut self, key: &Q) -> Option<&mut Value> {
        let i = self.get_index_of(key)?;
        Some(&mut self.entries[i].1)
    }

    /// The stored key and the value of `key`.
    pub fn get_key_value<Q: AsRef<str> + ?Sized>(&self, key: &Q) -> Option<(&Arc<str>, &Value)> {
        let i = self.get_index_of(key)?;
        let (k, v) = &self.entries[i];
        Some((k, v))
    }

    /// Whether `key` has an entry.
    pub fn contains_key<Q: AsRef<str> + ?Sized>(&self, key: &Q) -> bool {
        self.get_index_of(key).is_some()
    }

    /// The entry at position `i`.
    pub fn get_index(&self, i: usize) -> Option<(&Arc<str>, &Value)> {
        self.entries.get(i).map(|(k, v)| (k, v))
    }

    /// The entry at position `i`, its value changeable.
    pub fn get_index_mut(&mut self, i: usize) -> Option<(&Arc<str>, &mut Value)> {
        self.entries.get_mut(i).map(|(k, v)| (&*k, v))
    }

    /// The first entry.
    pub fn first(&self) -> Option<(&Arc<str>, &Value)> {
        self.get_index(0)
    }

    /// The last entry.
    pub fn last(&self) -> Option<(&Arc<str>, &Value)> {
        self.entries.last().map(|(k, v)| (k, v))
    }

    /// Sets `key` to `value`: a new key goes last, an existing one keeps its place (its old
    /// value is returned).
    #[inline]
    pub fn insert(&mut self, key: Arc<str>, value: Value) -> Option<Value> {
        let Map { entries, index } = self;
        if let Some(table) = index {
            // One hash for the search and the insertion.
            let found = table.entry(
                hash(&key),
                |&i| *entries[i].0 == *key,
                |&j| hash(&entries[j].0),
            );
            return match found {
                hash_table::Entry::Occupied(e) => {
                    Some(std::mem::replace(&mut entries[*e.get()].1, value))
                }
                hash_table::Entry::Vacant(e) => {
                    e.insert(entries.len());
                    entries.push((key, value));
                    None
                }
            };
        }
        match entries.iter().position(|(k, _)| same_text(k, &key)) {
            Some(i) => Some(std::mem::replace(&mut entries[i].1, value)),
            None => {
                self.push(key, value);
                None
            }
        }
    }

    /// Appends an entry whose key is not in the map.
    #[inline]
    fn push(&mut self, key: Arc<str>, value: Value) {
        let Map { entries, index } = self;
        match index {
            Some(table) => {
                table.insert_unique(hash(&key), entries.len(), |&j| hash(&entries[j].0));
                entries.push((key, value));
            }
            None => {
                entries.push((key, value));
                if entries.len() > Map::SMALL {
                    *index = index_of(entries);
                }
            }
        }
    }

    /// Removes `key`, keeping the order of the other entries; returns its value.
    pub fn shift_remove<Q: AsRef<str> + ?Sized>(&mut self, key: &Q) -> Option<Value> {
        let i = self.get_index_of(key)?;
        let (k, v) = self.entries.remove(i);
        if self.entries.len() <= Map::SMALL {
            self.index = None;
        } else if let Some(table) = &mut self.index {
            // The positions after `i` move down by one: no key is hashed again.
            if let Ok(e) = table.find_entry(hash(&k), |&j| j == i) {
                e.remove();
            }
            for j in table.iter_mut() {
                if *j > i {
                    *j -= 1;
                }
            }
        }
        Some(v)
    }

    /// Keeps only the entries for which `keep` is true, in their order.
    pub fn retain(&mut self, mut keep: impl FnMut(&Arc<str>, &mut Value) -> bool) {
        self.entries.retain_mut(|(k, v)| keep(k, v));
        self.index = index_of(&self.entries);
    }

    /// Sorts the entries with `cmp` (stable).
    pub fn sort_by(
        &mut self,
        mut cmp: impl FnMut(&Arc<str>, &Value, &Arc<str>, &Value) -> std::cmp::Ordering,
    ) {
        self.entries
            .sort_by(|(ak, av), (bk, bv)| cmp(ak, av, bk, bv));
        self.index = index_of(&self.entries);
    }

    /// The entry of `key`, to read or fill.
    pub fn entry(&mut self, key: Arc<str>) -> Entry<'_> {
        match self.get_index_of(&*key) {
            Some(i) => Entry::Occupied(&mut self.entries[i].1),
            None => Entry::Vacant(self, key),
        }
    }

    /// The entries in order.
    pub fn iter(&self) -> Iter<'_> {
        Iter(self.entries.iter())
    }

    /// The entries in order, values changeable.
    pub fn iter_mut(&mut self) -> IterMut<'_> {
        IterMut(self.entries.iter_mut())
    }

    /// The keys in order.
    pub fn keys(&self) -> impl DoubleEndedIterator<Item = &Arc<str>> + ExactSizeIterator + '_ {
        self.entries.iter().map(|(k, _)| k)
    }

    /// The values in order.
    pub fn values(&self) -> impl DoubleEndedIterator<Item = &Value> + ExactSizeIterator + '_ {
        self.entries.iter().map(|(_, v)| v)
    }

    /// The values in order, changeable.
    pub fn values_mut(
        &mut self,
    ) -> impl DoubleEndedIterator<Item = &mut Value> + ExactSizeIterator + '_ {
        self.entries.iter_mut().map(|(_, v)| v)
    }

    /// The values in order, taken out of the map.
    pub fn into_values(self) -> impl DoubleEndedIterator<Item = Value> + ExactSizeIterator {
        self.entries.into_iter().map(|(_, v)| v)
    }
}

/// A key's place in a [`Map`], from [`Map::entry`].
pub enum Entry<'a> {
    /// The key has a value.
    Occupied(&'a mut Value),
    /// The key is not in the map.
    Vacant(&'a mut Map, Arc<str>),
}

impl<'a> Entry<'a> {
    /// The value, after setting it to `value` if the key had none.
    pub fn or_insert(self, value: Value) -> &'a mut Value {
        self.or_insert_with(|| value)
    }

    /// The value, after setting it to `make()` if the key had none.
    pub fn or_insert_with(self, make: impl FnOnce() -> Value) -> &'a mut Value {
        match self {
            Entry::Occupied(v) => v,
            Entry::Vacant(map, key) => {
                map.push(key, make());
                let last = map.entries.len() - 1;
                &mut map.entries[last].1
            }
        }
    }
}

/// The entries of a [`Map`] in order: `(&key, &value)`.
#[derive(Clone)]
pub struct Iter<'a>(std::slice::Iter<'a, (Arc<str>, Value)>);

impl<'a> Iterator for Iter<'a> {
    type Item = (&'a Arc<str>, &'a Value);
    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        self.0.next().map(|(k, v)| (k, v))
    }
    fn size_hint(&self) -> (usize, Option<usize>) {
        self.0.size_hint()
    }
    fn nth(&mut self, n: usize) -> Option<Self::Item> {
        self.0.nth(n).map(|(k, v)| (k, v))
    }
}

impl DoubleEndedIterator for Iter<'_> {
    fn next_back(&mut self) -> Option<Self::Item> {
        self.0.next_back().map(|(k, v)| (k, v))
    }
}

impl ExactSizeIterator for Iter<'_> {}

/// The entries of a [`Map`] in order: `(&key, &mut value)`.
pub struct IterMut<'a>(std::slice::IterMut<'a, (Arc<str>, Value)>);

impl<'a> Iterator for IterMut<'a> {
    type Item = (&'a Arc<str>, &'a mut Value);
    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        self.0.next().map(|(k, v)| (&*k, v))
    }
    fn size_hint(&self) -> (usize, Option<usize>) {
        self.0.size_hint()
    }
}

impl DoubleEndedIterator for IterMut<'_> {
    fn next_back(&mut self) -> Option<Self::Item> {
        self.0.next_back().map(|(k, v)| (&*k, v))
    }
}

impl ExactSizeIterator for IterMut<'_> {}

impl<'a> IntoIterator for &'a Map {
    type Item = (&'a Arc<str>, &'a Value);
    type IntoIter = Iter<'a>;
    fn into_iter(self) -> Iter<'a> {
        self.iter()
    }
}

impl<'a> IntoIterator for &'a mut Map {
    type Item = (&'a Arc<str>, &'a mut Value);
    type IntoIter = IterMut<'a>;
    fn into_iter(self) -> IterMut<'a> {
        self.iter_mut()
    }
}

impl IntoIterator for Map {
    type Item = (Arc<str>, Value);
    type IntoIter = std::vec::IntoIter<(Arc<str>, Value)>;
    fn into_iter(self) -> Self::IntoIter {
        self.entries.into_iter()
    }
}

impl Extend<(Arc<str>, Value)> for Map {
    fn extend<I: IntoIterator<Item = (Arc<str>, Value)>>(&mut self, items: I) {
        let items = items.into_iter();
        self.reserve(items.size_hint().0);
        for (k, v) in items {
            self.insert(k, v);
        }
    }
}

impl FromIterator<(Arc<str>, Value)> for Map {
    fn from_iter<I: IntoIterator<Item = (Arc<str>, Value)>>(items: I) -> Map {
        let mut map = Map::new();
        map.extend(items);
        map
    }
}

impl<const N: usize> From<[(Arc<str>, Value); N]> for Map {
    fn from(items: [(Arc<str>, Value); N]) -> Map {
        items.into_iter().collect()
    }
}

impl std::ops::Index<usize> for Map {
    type Output = Value;
    /// The value at position `i` (panics when out of range, as a slice).
    fn index(&self, i: usize) -> &Value {
        &self.entries[i].1
    }
}

impl std::ops::IndexMut<usize> for Map {
    fn index_mut(&mut self, i: usize) -> &mut Value {
        &mut self.entries[i].1
    }
}

impl fmt::Debug for Map {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl serde::Serialize for Map {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(Some(self.len()))?;
        for (k, v) in self {
            m.serialize_entry(&**k, v)?;
        }
        m.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(i: usize) -> Arc<str> {
        Arc::from(format!("k{i}"))
    }

    #[test]
    fn small_and_indexed_maps_keep_order_and_find_every_key() {
        for n in [0, 1, Map::SMALL, Map::SMALL + 1, 40] {
            let mut m = Map::new();
            for i in 0..n {
                assert!(m.insert(key(i), Value::Int(i as i64)).is_none());
            }
            assert_eq!(m.index.is_some(), n > Map::SMALL, "{n} entries");
            // Replacing keeps the place.
            if n > 0 {
                assert!(matches!(
                    m.insert(key(0), Value::Int(-1)),
                    Some(Value::Int(0))
                ));
                assert_eq!(&**m.first().unwrap().0, "k0");
            }
            for i in 1..n {
                assert!(matches!(m.get(&*key(i)), Some(Value::Int(x)) if *x == i as i64));
                assert_eq!(m.get_index_of(&format!("k{i}")), Some(i));
            }
            assert!(m.get("k999").is_none());
            let order: Vec<String> = m.keys().map(|k| k.to_string()).collect();
            let want: Vec<String> = (0..n).map(|i| format!("k{i}")).collect();
            assert_eq!(order, want);
        }
    }

    #[test]
    fn removing_retaining_and_sorting_keep_the_index_true() {
        let mut m: Map = (0..20).map(|i| (key(i), Value::Int(i as i64))).collect();
        assert!(matches!(m.shift_remove("k3"), Some(Value::Int(3))));
        assert!(m.shift_remove("k3").is_none());
        assert_eq!(m.get_index_of("k4"), Some(3));
        for (i, k) in m.keys().enumerate() {
            assert_eq!(m.get_index_of(&**k), Some(i), "{k} after a removal");
        }
        m.retain(|_, v| matches!(v, Value::Int(x) if *x % 2 == 0));
        assert_eq!(m.len(), 10);
        assert!(m.index.is_some());
        m.retain(|_, v| matches!(v, Value::Int(x) if *x < 10));
        assert_eq!(m.len(), 5);
        assert!(m.index.is_none());
        m.sort_by(|a, _, b, _| b.cmp(a));
        let order: Vec<&str> = m.keys().map(|k| &**k).collect();
        assert_eq!(order, ["k8", "k6", "k4", "k2", "k0"]);
        for (i, k) in ["k8", "k6", "k4", "k2", "k0"].iter().enumerate() {
            assert_eq!(m.get_index_of(*k), Some(i));
        }
        let big: Map = (0..30).map(|i| (key(i), Value::Null)).collect();
        let mut sorted = big.clone();
        sorted.sort_by(|a, _, b, _| b.cmp(a));
        assert_eq!(sorted.get_index_of("k29"), Some(7));
        assert_eq!(sorted.get_index_of("k0"), Some(29));
    }

    #[test]
    fn entries_fill_once() {
        let mut m = Map::new();
        for _ in 0..3 {
            for i in 0..12 {
                if let Value::Int(n) = m.entry(key(i)).or_insert(Value::Int(0)) {
                    *n += 1;
                }
            }
        }
        assert_eq!(m.len(), 12);
        assert!(m.values().all(|v| matches!(v, Value::Int(3))));
    }
}
