//! [`Value`]: the dynamic value every template works on.
//!
//! A `Value` is small (24 bytes) and cheap to clone: strings, lists and maps are
//! reference counted, so passing context values around never copies them.
//! Maps keep insertion order. Semantics (truthiness, loose equality, ordering,
//! printing) follow PHP 8 as Twig 3 does; see `docs/language.md` §2.3 and §2.6.

mod compare;
mod convert;
mod map;
mod number;
mod ops;
mod print;
mod ser;

pub use compare::{compare, loose_eq, strict_eq};
pub use number::{parse_numeric, Number};
pub use ops::{arith, bitwise, contains, neg, pos, range, starts_with, to_number, Arith};
pub use print::{format_float, write_json, write_json_str, write_value};
pub(crate) use print::{write_json_styled, JsonStyle};

use std::any::Any;
use std::fmt;
use std::sync::Arc;

pub use map::{Entry, Iter, IterMut, Map};

/// `a == b` for the short strings of map keys and names: compared inline byte by byte up to
/// 16 bytes (a call to `memcmp` costs more than the comparison there), longer ones as usual.
#[inline]
pub(crate) fn same_text(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    if a.len() > 16 {
        return a == b;
    }
    a.iter().zip(b).all(|(x, y)| x == y)
}

/// Something the interpreter can call: an arrow function or a macro. Opaque to
/// everything but the interpreter, which downcasts it; builtins call it through
/// [`crate::builtins::State::call`].
#[derive(Clone)]
pub struct Callable {
    /// A name for messages (`"arrow function"`, `"macro greet"`).
    pub name: Arc<str>,
    /// The interpreter's own representation.
    pub inner: Arc<dyn Any + Send + Sync>,
}

impl fmt::Debug for Callable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<{}>", self.name)
    }
}

/// A template value.
#[derive(Clone, Debug, Default)]
pub enum Value {
    /// A missing variable, key or index. Prints as nothing; `is defined` is false.
    #[default]
    Undefined,
    /// `null`.
    Null,
    /// `true` or `false`.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A float (never NaN from JSON; arithmetic may produce infinities).
    Float(f64),
    /// A string that is escaped under autoescaping.
    Str(Arc<str>),
    /// A string marked safe (`raw`, output of `escape`): never escaped again.
    Safe(Arc<str>),
    /// A list (shared).
    List(Arc<Vec<Value>>),
    /// An ordered map with string keys (shared).
    Map(Arc<Map>),
    /// An arrow function or a macro, behind one `Arc` so that `Value` stays 24 bytes.
    Callable(Arc<Callable>),
}

// Every variant is at most 16 bytes (a fat `Arc` or an 8-byte scalar) plus the tag: a
// `Value` is copied on every variable read, so its size is part of the render speed.
const _: () = assert!(std::mem::size_of::<Value>() == 24);

impl Value {
    /// A plain (unsafe) string value.
    pub fn str(s: impl Into<Arc<str>>) -> Value {
        Value::Str(s.into())
    }
    /// A string marked safe for HTML output.
    pub fn safe(s: impl Into<Arc<str>>) -> Value {
        Value::Safe(s.into())
    }
    /// A list value.
    pub fn list(items: Vec<Value>) -> Value {
        Value::List(Arc::new(items))
    }
    /// A map value.
    pub fn map(map: Map) -> Value {
        Value::Map(Arc::new(map))
    }
    /// An empty map.
    pub fn empty_map() -> Value {
        Value::Map(Arc::new(Map::new()))
    }

    /// The type name used in error messages: `null`, `boolean`, `number`,
    /// `string`, `list`, `map`, `function` (`undefined` for a missing value).
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Undefined => "undefined",
            Value::Null => "null",
            Value::Bool(_) => "boolean",
            Value::Int(_) | Value::Float(_) => "number",
            Value::Str(_) | Value::Safe(_) => "string",
            Value::List(_) => "list",
            Value::Map(_) => "map",
            Value::Callable(_) => "function",
        }
    }

    /// `a` or `an` plus the type name, for messages: "cannot add a map to a number".
    pub fn type_with_article(&self) -> &'static str {
        match self {
            Value::Undefined => "an undefined value",
            Value::Null => "null",
            Value::Bool(_) => "a boolean",
            Value::Int(_) | Value::Float(_) => "a number",
            Value::Str(_) | Value::Safe(_) => "a string",
            Value::List(_) => "a list",
            Value::Map(_) => "a map",
            Value::Callable(_) => "a function",
        }
    }

    /// True for a missing variable, key or index.
    pub fn is_undefined(&self) -> bool {
        matches!(self, Value::Undefined)
    }
    /// True for `null` and undefined.
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Undefined | Value::Null)
    }
    /// True for integers and floats.
    pub fn is_number(&self) -> bool {
        matches!(self, Value::Int(_) | Value::Float(_))
    }
    /// True for strings, safe or not.
    pub fn is_string(&self) -> bool {
        matches!(self, Value::Str(_) | Value::Safe(_))
    }
    /// True for strings marked safe.
    pub fn is_safe(&self) -> bool {
        matches!(self, Value::Safe(_))
    }

    /// Truthiness as PHP: `false`, `null`, `0`, `0.0`, `""`, `"0"`, `[]`, `{}` are falsy.
    pub fn is_truthy(&self) -> bool {
        match self {
            Value::Undefined | Value::Null => false,
            Value::Bool(b) => *b,
            Value::Int(i) => *i != 0,
            Value::Float(f) => *f != 0.0,
            Value::Str(s) | Value::Safe(s) => !(s.is_empty() || &**s == "0"),
            Value::List(l) => !l.is_empty(),
            Value::Map(m) => !m.is_empty(),
            Value::Callable(_) => true,
        }
    }

    /// Twig's `empty` test: `""`, `[]`, `{}`, `null`, undefined, `false` (not `0`, not `"0"`).
    pub fn is_empty(&self) -> bool {
        match self {
            Value::Undefined | Value::Null => true,
            Value::Bool(b) => !*b,
            Value::Str(s) | Value::Safe(s) => s.is_empty(),
            Value::List(l) => l.is_empty(),
            Value::Map(m) => m.is_empty(),
            _ => false,
        }
    }

    /// The string slice of a string value.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) | Value::Safe(s) => Some(s),
            _ => None,
        }
    }
    /// The items, for a list.
    pub fn as_list(&self) -> Option<&[Value]> {
        match self {
            Value::List(l) => Some(l),
            _ => None,
        }
    }
    /// The entries, for a map.
    pub fn as_map(&self) -> Option<&Map> {
        match self {
            Value::Map(m) => Some(m),
            _ => None,
        }
    }
    /// The boolean, for a boolean.
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Bool(b) => Some(*b),
            _ => None,
        }
    }

    /// The number this value stands for: numbers, numeric strings (PHP 8 rules),
    /// booleans (0/1) and null (0). `None` for anything else.
    pub fn as_number(&self) -> Option<Number> {
        match self {
            Value::Int(i) => Some(Number::Int(*i)),
            Value::Float(f) => Some(Number::Float(*f)),
            Value::Bool(b) => Some(Number::Int(*b as i64)),
            Value::Undefined | Value::Null => Some(Number::Int(0)),
            Value::Str(s) | Value::Safe(s) => parse_numeric(s),
            _ => None,
        }
    }

    /// An integer when the value is an integer, an integral float or an integer string.
    pub fn as_i64(&self) -> Option<i64> {
        match self.as_number()? {
            Number::Int(i) => Some(i),
            Number::Float(f) if f.fract() == 0.0 && f.abs() < 9.2e18 => Some(f as i64),
            Number::Float(_) => None,
        }
    }

    /// A float for any numeric value.
    pub fn as_f64(&self) -> Option<f64> {
        self.as_number().map(Number::as_f64)
    }

    /// The printed form of the value (docs/language.md §2.6): null and false print as
    /// nothing, true as `1`, floats as PHP, lists and maps as compact JSON.
    pub fn to_output(&self) -> String {
        let mut s = String::new();
        write_value(&mut s, self);
        s
    }

    /// Like [`Value::to_output`] but borrows when the value already is a string.
    pub fn to_cow_str(&self) -> std::borrow::Cow<'_, str> {
        match self {
            Value::Str(s) | Value::Safe(s) => std::borrow::Cow::Borrowed(s),
            other => std::borrow::Cow::Owned(other.to_output()),
        }
    }

    /// Items of a list, values of a map, nothing for anything else (Twig's iteration).
    pub fn iter_values(&self) -> Box<dyn Iterator<Item = &Value> + '_> {
        match self {
            Value::List(l) => Box::new(l.iter()),
            Value::Map(m) => Box::new(m.values()),
            _ => Box::new(std::iter::empty()),
        }
    }

    /// Number of items of a list or map, characters of a string, 0 for null.
    pub fn len(&self) -> Option<usize> {
        match self {
            Value::Undefined | Value::Null => Some(0),
            Value::Str(s) | Value::Safe(s) => Some(s.chars().count()),
            Value::List(l) => Some(l.len()),
            Value::Map(m) => Some(m.len()),
            _ => None,
        }
    }

    /// `a.key` / `a[key]`: key of a map, index of a list. Undefined when missing, as Twig
    /// on PHP arrays: a negative index is a missing key, and a string has no items
    /// (slices and `first`/`last` reach characters).
    pub fn get_item(&self, key: &Value) -> Value {
        match self {
            Value::Map(m) => match key {
                Value::Str(k) | Value::Safe(k) => m.get(&**k).cloned().unwrap_or_default(),
                Value::Int(i) => m.get(i.to_string().as_str()).cloned().unwrap_or_default(),
                Value::Bool(b) => m
                    .get(if *b { "1" } else { "0" })
                    .cloned()
                    .unwrap_or_default(),
                Value::Float(f) if f.fract() == 0.0 => m
                    .get((*f as i64).to_string().as_str())
                    .cloned()
                    .unwrap_or_default(),
                _ => Value::Undefined,
            },
            Value::List(l) => match key.as_index() {
                Some(i) => index(l.len(), i).map(|i| l[i].clone()).unwrap_or_default(),
                None => Value::Undefined,
            },
            _ => Value::Undefined,
        }
    }

    /// `a.name`: like [`Value::get_item`] with a string key.
    pub fn get_attr(&self, name: &str) -> Value {
        match self {
            Value::Map(m) => m.get(name).cloned().unwrap_or_default(),
            Value::List(_) => match name.parse::<i64>() {
                Ok(i) => self.get_item(&Value::Int(i)),
                Err(_) => Value::Undefined,
            },
            _ => Value::Undefined,
        }
    }

    /// An integer usable as an index: integers, integral floats, integer strings.
    fn as_index(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            Value::Float(f) if f.fract() == 0.0 => Some(*f as i64),
            Value::Str(s) | Value::Safe(s) => s.parse().ok(),
            Value::Bool(b) => Some(*b as i64),
            _ => None,
        }
    }
}

/// An index within a length; negative indexes are missing keys (PHP arrays).
fn index(len: usize, i: i64) -> Option<usize> {
    usize::try_from(i).ok().filter(|&i| i < len)
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_cow_str())
    }
}

impl PartialEq for Value {
    /// Strict equality (`same as`), not PHP's loose `==`.
    fn eq(&self, other: &Value) -> bool {
        strict_eq(self, other)
    }
}
