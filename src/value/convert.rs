//! Conversions between [`Value`] and Rust / serde values.

use super::{Map, Value};
use crate::error::{Error, ErrorKind};
use serde::ser::{Serialize, SerializeMap, SerializeSeq, Serializer};
use std::sync::Arc;

impl Value {
    /// Converts anything serde can serialize (a `serde_json::Value`, a struct, a map…).
    ///
    /// One pass, no intermediate `serde_json::Value`; a [`Value`] inside the data (or the
    /// data itself) is shared, not copied (see `value/ser.rs`).
    pub fn from_serialize<T: Serialize + ?Sized>(v: &T) -> Result<Value, Error> {
        super::ser::with_keys(|keys| {
            super::ser::with_parking(|| v.serialize(super::ser::ValueSerializer { keys }))
        })
        .map_err(|e| {
            Error::new(
                ErrorKind::InvalidArgument,
                format!("cannot convert the context: {e}"),
            )
        })
    }

    /// The JSON form of this value (undefined and functions become `null`).
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            Value::Undefined | Value::Null | Value::Callable(_) => serde_json::Value::Null,
            Value::Bool(b) => serde_json::Value::Bool(*b),
            Value::Int(i) => serde_json::Value::from(*i),
            Value::Float(f) => serde_json::Number::from_f64(*f)
                .map_or(serde_json::Value::Null, serde_json::Value::Number),
            Value::Str(s) | Value::Safe(s) => serde_json::Value::String(s.to_string()),
            Value::List(l) => serde_json::Value::Array(l.iter().map(Value::to_json).collect()),
            Value::Map(m) => serde_json::Value::Object(
                m.iter()
                    .map(|(k, v)| (k.to_string(), v.to_json()))
                    .collect(),
            ),
        }
    }
}

impl From<serde_json::Value> for Value {
    fn from(v: serde_json::Value) -> Value {
        Value::from(&v)
    }
}

impl From<&serde_json::Value> for Value {
    fn from(v: &serde_json::Value) -> Value {
        match v {
            serde_json::Value::Null => Value::Null,
            serde_json::Value::Bool(b) => Value::Bool(*b),
            serde_json::Value::Number(n) => match n.as_i64() {
                Some(i) => Value::Int(i),
                None => Value::Float(n.as_f64().unwrap_or(f64::NAN)),
            },
            serde_json::Value::String(s) => Value::Str(Arc::from(s.as_str())),
            serde_json::Value::Array(a) => Value::list(a.iter().map(Value::from).collect()),
            serde_json::Value::Object(o) => Value::map(
                o.iter()
                    .map(|(k, v)| (Arc::from(k.as_str()), Value::from(v)))
                    .collect(),
            ),
        }
    }
}

impl From<Value> for serde_json::Value {
    fn from(v: Value) -> serde_json::Value {
        v.to_json()
    }
}

impl Serialize for Value {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if super::ser::parking() {
            // Inside `Value::from_serialize`: hand over a clone, not the data.
            return s.serialize_newtype_struct(super::ser::HANDLE, &super::ser::park(self));
        }
        match self {
            Value::Undefined | Value::Null | Value::Callable(_) => s.serialize_unit(),
            Value::Bool(b) => s.serialize_bool(*b),
            Value::Int(i) => s.serialize_i64(*i),
            Value::Float(f) => s.serialize_f64(*f),
            Value::Str(v) | Value::Safe(v) => s.serialize_str(v),
            Value::List(l) => {
                let mut seq = s.serialize_seq(Some(l.len()))?;
                for item in l.iter() {
                    seq.serialize_element(item)?;
                }
                seq.end()
            }
            Value::Map(m) => {
                let mut map = s.serialize_map(Some(m.len()))?;
                for (k, v) in m.iter() {
                    map.serialize_entry(&**k, v)?;
                }
                map.end()
            }
        }
    }
}

macro_rules! from_int {
    ($($t:ty),*) => {$(
        impl From<$t> for Value {
            fn from(v: $t) -> Value { Value::Int(v as i64) }
        }
    )*};
}
from_int!(i8, i16, i32, i64, u8, u16, u32);

impl From<u64> for Value {
    fn from(v: u64) -> Value {
        i64::try_from(v).map_or(Value::Float(v as f64), Value::Int)
    }
}
impl From<usize> for Value {
    fn from(v: usize) -> Value {
        i64::try_from(v).map_or(Value::Float(v as f64), Value::Int)
    }
}
impl From<f64> for Value {
    fn from(v: f64) -> Value {
        Value::Float(v)
    }
}
impl From<bool> for Value {
    fn from(v: bool) -> Value {
        Value::Bool(v)
    }
}
impl From<&str> for Value {
    fn from(v: &str) -> Value {
        Value::Str(Arc::from(v))
    }
}
impl From<String> for Value {
    fn from(v: String) -> Value {
        Value::Str(Arc::from(v))
    }
}
impl From<Arc<str>> for Value {
    fn from(v: Arc<str>) -> Value {
        Value::Str(v)
    }
}
impl From<Vec<Value>> for Value {
    fn from(v: Vec<Value>) -> Value {
        Value::list(v)
    }
}
impl From<Map> for Value {
    fn from(v: Map) -> Value {
        Value::map(v)
    }
}
impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(v: Option<T>) -> Value {
        v.map_or(Value::Null, Into::into)
    }
}
impl FromIterator<Value> for Value {
    fn from_iter<I: IntoIterator<Item = Value>>(iter: I) -> Value {
        Value::list(iter.into_iter().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_round_trip_keeps_key_order() {
        let j: serde_json::Value =
            serde_json::from_str(r#"{"z":1,"a":[true,null,1.5,"x"],"m":{"b":2,"a":1}}"#).unwrap();
        let v = Value::from(&j);
        assert_eq!(v.to_json(), j);
        assert_eq!(
            serde_json::to_string(&v).unwrap(),
            r#"{"z":1,"a":[true,null,1.5,"x"],"m":{"b":2,"a":1}}"#
        );
        assert_eq!(
            v.to_output(),
            r#"{"z":1,"a":[true,null,1.5,"x"],"m":{"b":2,"a":1}}"#
        );
    }
}
