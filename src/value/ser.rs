//! Anything serde can serialize → [`Value`], in one pass (no intermediate `serde_json::Value`).
//!
//! A [`Value`] met inside the data (the whole context, or a field of a host struct) is not
//! taken apart and rebuilt: while [`Value::from_serialize`] runs, `Value`'s own `Serialize`
//! impl parks a clone of itself (a reference-count bump) in a thread-local slot and hands the
//! serializer only the slot's number, under a private newtype name that [`ValueSerializer`]
//! recognises. Outside `from_serialize` (e.g. `serde_json::to_string(&value)`) a `Value`
//! serializes as plain JSON data.

use super::{Map, Value};
use serde::ser::{self, Serialize};
use std::cell::{Cell, RefCell};
use std::fmt;
use std::sync::Arc;

/// The newtype name that marks a parked [`Value`]; no real type is named like this.
pub(super) const HANDLE: &str = "\u{1}flexscript::Value";

thread_local! {
    /// How many `from_serialize` calls are running on this thread (0 = plain serialization).
    static DEPTH: Cell<usize> = const { Cell::new(0) };
    /// Values parked by `Value::serialize` while `DEPTH > 0`, taken back by the serializer.
    static PARKED: RefCell<Vec<Value>> = const { RefCell::new(Vec::new()) };
}

/// True while a [`ValueSerializer`] runs on this thread.
pub(super) fn parking() -> bool {
    DEPTH.with(Cell::get) > 0
}

/// Parks a clone of `v`; returns its slot number.
pub(super) fn park(v: &Value) -> u64 {
    PARKED.with(|p| {
        let mut p = p.borrow_mut();
        p.push(v.clone());
        (p.len() - 1) as u64
    })
}

fn unpark(slot: u64) -> Option<Value> {
    PARKED.with(|p| p.borrow_mut().get_mut(slot as usize).map(std::mem::take))
}

/// Runs `f` with parking on; the parked values are dropped when the outermost call ends.
pub(super) fn with_parking<R>(f: impl FnOnce() -> R) -> R {
    struct Guard;
    impl Drop for Guard {
        fn drop(&mut self) {
            let d = DEPTH.with(|d| {
                d.set(d.get() - 1);
                d.get()
            });
            if d == 0 {
                PARKED.with(|p| p.borrow_mut().clear());
            }
        }
    }
    DEPTH.with(|d| d.set(d.get() + 1));
    let _guard = Guard;
    f()
}

/// A serialization failure (a map key that is not a string, a custom error of the data).
#[derive(Debug)]
pub struct SerError(String);

impl fmt::Display for SerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for SerError {}

impl ser::Error for SerError {
    fn custom<T: fmt::Display>(msg: T) -> SerError {
        SerError(msg.to_string())
    }
}

/// A map key and its hash under the conversion's hasher.
/// A map key made by the conversion.
type Key = Arc<str>;

/// What the conversions of one thread share: the keys and short strings already made.
///
/// Records of one shape (a list of objects with the same fields, the same context rendered
/// again) then share one `Arc<str>` per field instead of allocating, and freeing, a copy per
/// record. Sharing an `Arc<str>` is invisible to templates (strings compare by content).
///
/// The key cache is direct-mapped: a key has one slot, chosen from its length and end bytes,
/// and a key that meets another in its slot replaces it. A lookup is one comparison, hit or
/// miss, so data whose keys never repeat pays next to nothing; at most `SLOTS` keys of at
/// most `MAX_LEN` bytes stay alive per thread.
///
/// Short string values have a cache of the same kind (`strs`, strings up to `MAX_STR`
/// bytes): the same context converted again (a host rendering one record shape per request)
/// reuses their `Arc<str>` instead of allocating, and freeing, a copy per conversion.
pub(super) struct Keys {
    slots: [Option<Key>; Keys::SLOTS],
    strs: [Option<Arc<str>>; Keys::SLOTS],
}

thread_local! {
    /// The thread's [`Keys`], taken out while a conversion runs.
    static KEYS: Cell<Option<Box<Keys>>> = const { Cell::new(None) };
}

/// Runs `f` with the thread's [`Keys`] (fresh ones when a conversion runs inside another).
pub(super) fn with_keys<R>(f: impl FnOnce(&mut Keys) -> R) -> R {
    let mut keys = KEYS.take().unwrap_or_else(|| {
        Box::new(Keys {
            slots: Default::default(),
            strs: Default::default(),
        })
    });
    let r = f(&mut keys);
    KEYS.set(Some(keys));
    r
}

impl Keys {
    const SLOTS: usize = 32;
    /// Longer keys are made fresh each time (rarely repeated field names; a longer compare).
    const MAX_LEN: usize = 32;
    /// Longer string values are copied each time.
    const MAX_STR: usize = 16;

    /// The cache slot of a text of at most `MAX_LEN` bytes: from its length and end bytes.
    fn slot(b: &[u8]) -> usize {
        let end = |i: Option<&u8>| usize::from(i.copied().unwrap_or(0));
        (b.len() ^ end(b.first()).wrapping_mul(7) ^ end(b.last()).wrapping_mul(3)) % Self::SLOTS
    }

    /// The string value `s`, sharing an earlier `Arc<str>` of the same text.
    fn string(&mut self, s: &str) -> Arc<str> {
        if s.len() > Self::MAX_STR {
            return Arc::from(s);
        }
        let slot = &mut self.strs[Self::slot(s.as_bytes())];
        if let Some(a) = slot {
            if super::same_text(a, s) {
                return a.clone();
            }
        }
        let a: Arc<str> = Arc::from(s);
        *slot = Some(a.clone());
        a
    }

    /// The key `k`, reusing an earlier `Arc<str>` of the same text.
    fn get(&mut self, k: &str) -> Key {
        let b = k.as_bytes();
        if b.len() > Self::MAX_LEN {
            return Arc::from(k);
        }
        let slot = &mut self.slots[Self::slot(b)];
        if let Some(a) = slot {
            if super::same_text(a, k) {
                return a.clone();
            }
        }
        let key: Arc<str> = Arc::from(k);
        *slot = Some(key.clone());
        key
    }
}

/// A serde `Serializer` whose output is a [`Value`], with the same mapping as going through
/// `serde_json::Value` (non-finite floats become null, integers above `i64::MAX` floats, enum
/// variants with data `{variant: data}`).
pub struct ValueSerializer<'k> {
    /// The conversion's key cache.
    pub(super) keys: &'k mut Keys,
}

type R = Result<Value, SerError>;

fn float(f: f64) -> Value {
    if f.is_finite() {
        Value::Float(f)
    } else {
        Value::Null
    }
}

fn tagged(keys: &mut Keys, variant: &'static str, v: Value) -> Value {
    let mut m = Map::with_capacity(1);
    m.insert(keys.get(variant), v);
    Value::map(m)
}

/// `fn NAME(self, v: TYPE) -> R` for integer types: `Value::Int` when `v` fits in an i64,
/// else `Value::Float`.
macro_rules! int_fns {
    ($($name:ident: $ty:ty),*) => {$(
        fn $name(self, v: $ty) -> R {
            Ok(i64::try_from(v).map_or(Value::Float(v as f64), Value::Int))
        }
    )*};
}

impl<'k> ser::Serializer for ValueSerializer<'k> {
    type Ok = Value;
    type Error = SerError;
    type SerializeSeq = SeqSer<'k>;
    type SerializeTuple = SeqSer<'k>;
    type SerializeTupleStruct = SeqSer<'k>;
    type SerializeTupleVariant = VariantSeqSer<'k>;
    type SerializeMap = MapSer<'k>;
    type SerializeStruct = MapSer<'k>;
    type SerializeStructVariant = VariantMapSer<'k>;

    fn serialize_bool(self, v: bool) -> R {
        Ok(Value::Bool(v))
    }
    // Integers: an `Int` when they fit in an i64, else a float (as `serde_json`).
    int_fns!(
        serialize_i8: i8,
        serialize_i16: i16,
        serialize_i32: i32,
        serialize_i64: i64,
        serialize_i128: i128,
        serialize_u8: u8,
        serialize_u16: u16,
        serialize_u32: u32,
        serialize_u64: u64,
        serialize_u128: u128
    );
    fn serialize_f32(self, v: f32) -> R {
        Ok(float(v.into()))
    }
    fn serialize_f64(self, v: f64) -> R {
        Ok(float(v))
    }
    fn serialize_char(self, v: char) -> R {
        Ok(Value::Str(Arc::from(v.encode_utf8(&mut [0; 4]) as &str)))
    }
    fn serialize_str(self, v: &str) -> R {
        Ok(Value::Str(self.keys.string(v)))
    }
    fn serialize_bytes(self, v: &[u8]) -> R {
        Ok(Value::list(
            v.iter().map(|b| Value::Int((*b).into())).collect(),
        ))
    }
    fn serialize_none(self) -> R {
        Ok(Value::Null)
    }
    fn serialize_some<T: ?Sized + Serialize>(self, value: &T) -> R {
        value.serialize(self)
    }
    fn serialize_unit(self) -> R {
        Ok(Value::Null)
    }
    fn serialize_unit_struct(self, _name: &'static str) -> R {
        Ok(Value::Null)
    }
    fn serialize_unit_variant(self, _name: &'static str, _i: u32, variant: &'static str) -> R {
        Ok(Value::Str(Arc::from(variant)))
    }
    fn serialize_newtype_struct<T: ?Sized + Serialize>(self, name: &'static str, value: &T) -> R {
        let v = value.serialize(self)?;
        if name == HANDLE {
            if let Value::Int(slot) = v {
                return unpark(slot as u64).ok_or_else(|| SerError("lost a parked value".into()));
            }
        }
        Ok(v)
    }
    fn serialize_newtype_variant<T: ?Sized + Serialize>(
        self,
        _name: &'static str,
        _i: u32,
        variant: &'static str,
        value: &T,
    ) -> R {
        let keys = &mut *self.keys;
        let v = value.serialize(ValueSerializer { keys: &mut *keys })?;
        Ok(tagged(keys, variant, v))
    }
    fn serialize_seq(self, len: Option<usize>) -> Result<SeqSer<'k>, SerError> {
        Ok(SeqSer {
            items: Vec::with_capacity(len.unwrap_or(0).min(4096)),
            keys: self.keys,
        })
    }
    fn serialize_tuple(self, len: usize) -> Result<SeqSer<'k>, SerError> {
        self.serialize_seq(Some(len))
    }
    fn serialize_tuple_struct(
        self,
        _name: &'static str,
        len: usize,
    ) -> Result<SeqSer<'k>, SerError> {
        self.serialize_seq(Some(len))
    }
    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        _i: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<VariantSeqSer<'k>, SerError> {
        Ok(VariantSeqSer(variant, self.serialize_seq(Some(len))?))
    }
    fn serialize_map(self, len: Option<usize>) -> Result<MapSer<'k>, SerError> {
        Ok(MapSer {
            map: Map::with_capacity(len.unwrap_or(0).min(4096)),
            key: None,
            keys: self.keys,
        })
    }
    fn serialize_struct(self, _name: &'static str, len: usize) -> Result<MapSer<'k>, SerError> {
        self.serialize_map(Some(len))
    }
    fn serialize_struct_variant(
        self,
        _name: &'static str,
        _i: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<VariantMapSer<'k>, SerError> {
        Ok(VariantMapSer(variant, self.serialize_map(Some(len))?))
    }
}

/// Builds a list.
pub struct SeqSer<'k> {
    items: Vec<Value>,
    keys: &'k mut Keys,
}

impl ser::SerializeSeq for SeqSer<'_> {
    type Ok = Value;
    type Error = SerError;
    fn serialize_element<T: ?Sized + Serialize>(&mut self, value: &T) -> Result<(), SerError> {
        self.items.push(value.serialize(ValueSerializer {
            keys: &mut *self.keys,
        })?);
        Ok(())
    }
    fn end(self) -> R {
        Ok(Value::list(self.items))
    }
}

/// Tuples and tuple structs are lists: their serializers are [`SeqSer`]'s.
macro_rules! as_seq {
    ($($trait:ident::$add:ident),*) => {$(
        impl ser::$trait for SeqSer<'_> {
            type Ok = Value;
            type Error = SerError;
            fn $add<T: ?Sized + Serialize>(&mut self, value: &T) -> Result<(), SerError> {
                ser::SerializeSeq::serialize_element(self, value)
            }
            fn end(self) -> R {
                ser::SerializeSeq::end(self)
            }
        }
    )*};
}

as_seq!(
    SerializeTuple::serialize_element,
    SerializeTupleStruct::serialize_field
);

/// Builds `{variant: [..]}`.
pub struct VariantSeqSer<'k>(&'static str, SeqSer<'k>);

impl ser::SerializeTupleVariant for VariantSeqSer<'_> {
    type Ok = Value;
    type Error = SerError;
    fn serialize_field<T: ?Sized + Serialize>(&mut self, value: &T) -> Result<(), SerError> {
        ser::SerializeSeq::serialize_element(&mut self.1, value)
    }
    fn end(self) -> R {
        let SeqSer { items, keys } = self.1;
        Ok(tagged(keys, self.0, Value::list(items)))
    }
}

/// Builds a map; keys must serialize as strings, numbers or booleans (as `serde_json`).
pub struct MapSer<'k> {
    map: Map,
    key: Option<Key>,
    keys: &'k mut Keys,
}

impl ser::SerializeMap for MapSer<'_> {
    type Ok = Value;
    type Error = SerError;
    fn serialize_key<T: ?Sized + Serialize>(&mut self, key: &T) -> Result<(), SerError> {
        self.key = Some(key.serialize(KeySerializer {
            keys: &mut *self.keys,
        })?);
        Ok(())
    }
    fn serialize_value<T: ?Sized + Serialize>(&mut self, value: &T) -> Result<(), SerError> {
        let key = self
            .key
            .take()
            .ok_or_else(|| SerError("a map value without a key".into()))?;
        let v = value.serialize(ValueSerializer {
            keys: &mut *self.keys,
        })?;
        self.map.insert(key, v);
        Ok(())
    }
    fn end(self) -> R {
        Ok(Value::map(self.map))
    }
}

impl ser::SerializeStruct for MapSer<'_> {
    type Ok = Value;
    type Error = SerError;
    fn serialize_field<T: ?Sized + Serialize>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), SerError> {
        let v = value.serialize(ValueSerializer {
            keys: &mut *self.keys,
        })?;
        self.map.insert(self.keys.get(key), v);
        Ok(())
    }
    fn end(self) -> R {
        Ok(Value::map(self.map))
    }
}

/// Builds `{variant: {..}}`.
pub struct VariantMapSer<'k>(&'static str, MapSer<'k>);

impl ser::SerializeStructVariant for VariantMapSer<'_> {
    type Ok = Value;
    type Error = SerError;
    fn serialize_field<T: ?Sized + Serialize>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), SerError> {
        ser::SerializeStruct::serialize_field(&mut self.1, key, value)
    }
    fn end(self) -> R {
        let MapSer { map, keys, .. } = self.1;
        Ok(tagged(keys, self.0, Value::map(map)))
    }
}

/// Map keys: strings as they are; numbers and booleans as their decimal text (as `serde_json`).
struct KeySerializer<'k> {
    keys: &'k mut Keys,
}

fn key_error() -> SerError {
    SerError("key must be a string".into())
}

type K = Result<Key, SerError>;

/// `fn NAME(self, v: TYPE) -> K` for number types: the decimal text of `v`.
macro_rules! key_text_fns {
    ($($name:ident: $ty:ty),*) => {$(
        fn $name(self, v: $ty) -> K {
            Ok(Arc::from(v.to_string()))
        }
    )*};
}

impl ser::Serializer for KeySerializer<'_> {
    type Ok = Key;
    type Error = SerError;
    type SerializeSeq = ser::Impossible<Key, SerError>;
    type SerializeTuple = ser::Impossible<Key, SerError>;
    type SerializeTupleStruct = ser::Impossible<Key, SerError>;
    type SerializeTupleVariant = ser::Impossible<Key, SerError>;
    type SerializeMap = ser::Impossible<Key, SerError>;
    type SerializeStruct = ser::Impossible<Key, SerError>;
    type SerializeStructVariant = ser::Impossible<Key, SerError>;

    fn serialize_bool(self, v: bool) -> K {
        Ok(self.keys.get(if v { "true" } else { "false" }))
    }
    // Numbers: their decimal text.
    key_text_fns!(
        serialize_i8: i8,
        serialize_i16: i16,
        serialize_i32: i32,
        serialize_i64: i64,
        serialize_u8: u8,
        serialize_u16: u16,
        serialize_u32: u32,
        serialize_u64: u64,
        serialize_f32: f32,
        serialize_f64: f64
    );
    fn serialize_char(self, v: char) -> K {
        Ok(self.keys.get(v.encode_utf8(&mut [0; 4])))
    }
    fn serialize_str(self, v: &str) -> K {
        Ok(self.keys.get(v))
    }
    fn serialize_bytes(self, _v: &[u8]) -> K {
        Err(key_error())
    }
    fn serialize_none(self) -> K {
        Err(key_error())
    }
    fn serialize_some<T: ?Sized + Serialize>(self, _value: &T) -> K {
        Err(key_error())
    }
    fn serialize_unit(self) -> K {
        Err(key_error())
    }
    fn serialize_unit_struct(self, _name: &'static str) -> K {
        Err(key_error())
    }
    fn serialize_unit_variant(self, _name: &'static str, _i: u32, variant: &'static str) -> K {
        Ok(self.keys.get(variant))
    }
    fn serialize_newtype_struct<T: ?Sized + Serialize>(self, name: &'static str, value: &T) -> K {
        let key = value.serialize(KeySerializer {
            keys: &mut *self.keys,
        })?;
        if name != HANDLE {
            return Ok(key);
        }
        // A parked `Value` used as a key: a string, a number or a boolean, as text.
        match key.parse().ok().and_then(unpark) {
            Some(Value::Str(s) | Value::Safe(s)) => Ok(s),
            Some(v @ (Value::Int(_) | Value::Float(_) | Value::Bool(_))) => {
                Ok(Arc::from(v.to_json().to_string()))
            }
            _ => Err(key_error()),
        }
    }
    fn serialize_newtype_variant<T: ?Sized + Serialize>(
        self,
        _name: &'static str,
        _i: u32,
        _variant: &'static str,
        _value: &T,
    ) -> K {
        Err(key_error())
    }
    fn serialize_seq(self, _len: Option<usize>) -> Result<Self::SerializeSeq, SerError> {
        Err(key_error())
    }
    fn serialize_tuple(self, _len: usize) -> Result<Self::SerializeTuple, SerError> {
        Err(key_error())
    }
    fn serialize_tuple_struct(
        self,
        _name: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeTupleStruct, SerError> {
        Err(key_error())
    }
    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        _i: u32,
        _variant: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeTupleVariant, SerError> {
        Err(key_error())
    }
    fn serialize_map(self, _len: Option<usize>) -> Result<Self::SerializeMap, SerError> {
        Err(key_error())
    }
    fn serialize_struct(
        self,
        _name: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeStruct, SerError> {
        Err(key_error())
    }
    fn serialize_struct_variant(
        self,
        _name: &'static str,
        _i: u32,
        _variant: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeStructVariant, SerError> {
        Err(key_error())
    }
}

#[cfg(test)]
mod tests {
    use super::super::Value;
    use serde::Serialize;
    use serde_json::json;

    fn same_as_json<T: Serialize>(v: &T) {
        let direct = Value::from_serialize(v).expect("serializes");
        let via = Value::from(serde_json::to_value(v).expect("to json"));
        assert_eq!(direct.to_json(), via.to_json());
    }

    #[derive(Serialize)]
    enum E {
        Unit,
        New(i32),
        Tuple(i32, bool),
        Struct { a: Option<u8> },
    }

    #[derive(Serialize)]
    struct Host<'a> {
        name: &'a str,
        tags: Vec<char>,
        big: u64,
        nan: f64,
        unit: (),
        e: Vec<E>,
        keyed: std::collections::BTreeMap<i32, bool>,
        bytes: serde_bytes_like::Bytes,
        inner: Value,
    }

    mod serde_bytes_like {
        pub struct Bytes(pub Vec<u8>);
        impl serde::Serialize for Bytes {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_bytes(&self.0)
            }
        }
    }

    #[test]
    fn the_direct_serializer_maps_data_as_serde_json_does() {
        same_as_json(&json!({"a": [1, 2.5, "x", null, true, {"b": {}}], "c": -3}));
        same_as_json(&Host {
            name: "Zoë",
            tags: vec!['a', 'ß'],
            big: u64::MAX,
            nan: f64::NAN,
            unit: (),
            e: vec![
                E::Unit,
                E::New(4),
                E::Tuple(1, false),
                E::Struct { a: None },
            ],
            keyed: [(1, true), (-2, false)].into_iter().collect(),
            bytes: serde_bytes_like::Bytes(vec![0, 255]),
            inner: Value::from(json!({"k": [1, "two"]})),
        });
    }

    #[test]
    fn every_integer_width_maps_as_serde_json_does() {
        same_as_json(&(
            i8::MIN,
            i16::MIN,
            i32::MIN,
            i64::MIN,
            u8::MAX,
            u16::MAX,
            u32::MAX,
            u64::MAX,
            (i64::MAX as u64) + 1,
        ));
        same_as_json(
            &[(u64::MAX, 1i128), (7, -1)]
                .into_iter()
                .collect::<std::collections::BTreeMap<u64, i128>>(),
        );
        same_as_json(
            &[(i8::MIN, 1u128)]
                .into_iter()
                .collect::<std::collections::BTreeMap<i8, u128>>(),
        );
    }

    #[test]
    fn a_value_is_passed_through_not_copied() {
        let ctx = Value::from(json!({"teams": [{"name": "a"}]}));
        let back = Value::from_serialize(&ctx).expect("serializes");
        match (&ctx, &back) {
            (Value::Map(a), Value::Map(b)) => assert!(std::sync::Arc::ptr_eq(a, b)),
            _ => panic!("not maps"),
        }
        // Outside from_serialize a Value is plain JSON data.
        assert_eq!(
            serde_json::to_string(&ctx).expect("json"),
            r#"{"teams":[{"name":"a"}]}"#
        );
    }

    #[test]
    fn a_value_can_be_a_map_key() {
        let m: std::collections::BTreeMap<i32, Value> = [(1, Value::from("x"))].into();
        struct Keys(Vec<(Value, i32)>);
        impl Serialize for Keys {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                use serde::ser::SerializeMap;
                let mut m = s.serialize_map(None)?;
                for (k, v) in &self.0 {
                    m.serialize_entry(k, v)?;
                }
                m.end()
            }
        }
        let keys = Keys(vec![(Value::from("a"), 1), (Value::Int(7), 2)]);
        let v = Value::from_serialize(&keys).expect("string and number keys");
        assert_eq!(v.to_json(), json!({"a": 1, "7": 2}));
        assert_eq!(
            Value::from_serialize(&m).expect("map").to_json(),
            json!({"1": "x"})
        );
        let bad = Keys(vec![(Value::list(vec![]), 1)]);
        assert!(Value::from_serialize(&bad).is_err());
    }

    #[test]
    fn short_strings_are_shared_and_every_string_kept() {
        // Short strings met again share one `Arc<str>` (here two conversions of one context);
        // strings sharing a cache slot, long strings and the empty string keep their text.
        let data = json!({"a": ["Jiangsu", "Beijing", "ab", "ba", "", "x".repeat(40)]});
        let s = |v: &Value, i: usize| match v.get_attr("a").iter_values().nth(i) {
            Some(Value::Str(s)) => s.clone(),
            _ => panic!("a string"),
        };
        let (v, w) = (Value::from_serialize(&data), Value::from_serialize(&data));
        let (v, w) = (v.expect("serializes"), w.expect("serializes"));
        assert!(std::sync::Arc::ptr_eq(&s(&v, 0), &s(&w, 0)));
        assert!(std::sync::Arc::ptr_eq(&s(&v, 1), &s(&w, 1)));
        assert_eq!(v.to_json(), data);
        assert_eq!(w.to_json(), data);
        let many: Vec<String> = (0..100).map(|i| format!("s{i}")).collect();
        let m = Value::from_serialize(&many).expect("serializes");
        assert_eq!(m.to_json(), json!(many));
    }

    #[test]
    fn records_of_one_shape_share_their_keys() {
        let data = json!({"teams": [{"name": "a", "score": 1}, {"name": "b", "score": 2}]});
        let v = Value::from_serialize(&data).expect("serializes");
        let teams = v.get_attr("teams");
        let keys: Vec<Vec<std::sync::Arc<str>>> = teams
            .iter_values()
            .map(|t| t.as_map().expect("map").keys().cloned().collect())
            .collect();
        assert!(std::sync::Arc::ptr_eq(&keys[0][0], &keys[1][0]));
        assert!(std::sync::Arc::ptr_eq(&keys[0][1], &keys[1][1]));
        assert_eq!(v.to_json(), data);
    }

    #[test]
    fn every_key_is_found_again_however_the_cache_fares() {
        // More keys than cache slots, keys sharing a slot, keys too long for the cache, a
        // repeated key (keeps its first place, takes the last value), an empty key: every key
        // is found again by hashing (maps above 8 entries are hashed, not scanned).
        struct Pairs(Vec<(String, i64)>);
        impl Serialize for Pairs {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                use serde::ser::SerializeMap;
                let mut m = s.serialize_map(Some(self.0.len()))?;
                for (k, v) in &self.0 {
                    m.serialize_entry(k, v)?;
                }
                m.end()
            }
        }
        let mut pairs: Vec<(String, i64)> = (0..200).map(|i| (format!("k{i}"), i)).collect();
        pairs.push(("x".repeat(40), -1));
        pairs.push((String::new(), -2));
        pairs.push(("k7".into(), 700));
        let v = Value::from_serialize(&Pairs(pairs)).expect("serializes");
        let m = v.as_map().expect("map");
        assert_eq!(m.len(), 202);
        for i in (0..200).filter(|&i| i != 7) {
            assert_eq!(m.get(format!("k{i}").as_str()), Some(&Value::Int(i)));
        }
        assert_eq!(m.get_index_of("k7"), Some(7));
        assert_eq!(m.get("k7"), Some(&Value::Int(700)));
        assert_eq!(m.get("x".repeat(40).as_str()), Some(&Value::Int(-1)));
        assert_eq!(m.get(""), Some(&Value::Int(-2)));
        // Nested maps built in the same conversion use the same hasher; lookups still work.
        let data: serde_json::Value = (0..20)
            .map(|i| (format!("r{i}"), json!({"id": i, "name": format!("n{i}")})))
            .collect::<serde_json::Map<_, _>>()
            .into();
        let v = Value::from_serialize(&data).expect("serializes");
        for i in 0..20 {
            let r = v.as_map().and_then(|m| m.get(format!("r{i}").as_str()));
            assert_eq!(r.map(|r| r.get_attr("id")), Some(Value::Int(i)));
        }
        assert_eq!(v.to_json(), data);
    }

    #[test]
    fn a_map_key_that_is_not_a_string_is_an_error() {
        let m: std::collections::HashMap<Vec<u8>, i32> = [(vec![1], 1)].into_iter().collect();
        let e = Value::from_serialize(&m).expect_err("list keys");
        assert!(e.to_string().contains("key must be a string"), "{e}");
    }
}
