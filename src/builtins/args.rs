//! Helpers to read builtin arguments with errors that name the builtin and the argument.

use crate::error::{Error, ErrorKind};
use crate::value::{Map, Number, Value};

/// Argument `i`, or `Undefined` when it was not given.
pub fn arg(args: &[Value], i: usize) -> &Value {
    static UNDEFINED: Value = Value::Undefined;
    args.get(i).unwrap_or(&UNDEFINED)
}

fn type_error(builtin: &str, what: &str, expected: &str, got: &Value) -> Error {
    Error::new(
        ErrorKind::Type,
        format!(
            "{builtin}: {what} must be {expected}, got {}",
            got.type_with_article()
        ),
    )
}

/// A string argument; `null`/undefined read as `""` (catalogue convention), numbers
/// and booleans are printed. Lists, maps and functions are a type error.
pub fn expect_string(builtin: &str, what: &str, v: &Value) -> Result<String, Error> {
    match v {
        Value::List(_) | Value::Map(_) | Value::Callable(_) => {
            Err(type_error(builtin, what, "a string", v))
        }
        other => Ok(other.to_output()),
    }
}

/// An optional string argument: `None` when undefined or null.
pub fn opt_string(builtin: &str, what: &str, v: &Value) -> Result<Option<String>, Error> {
    if v.is_null() {
        Ok(None)
    } else {
        expect_string(builtin, what, v).map(Some)
    }
}

/// A number (numbers and numeric strings; null reads as 0).
pub fn expect_number(builtin: &str, what: &str, v: &Value) -> Result<Number, Error> {
    match v {
        Value::List(_) | Value::Map(_) | Value::Callable(_) => {
            Err(type_error(builtin, what, "a number", v))
        }
        other => other
            .as_number()
            .ok_or_else(|| type_error(builtin, what, "a number", other)),
    }
}

/// An optional integer argument: `None` when undefined or null.
pub fn opt_i64(builtin: &str, what: &str, v: &Value) -> Result<Option<i64>, Error> {
    if v.is_null() {
        return Ok(None);
    }
    v.as_i64()
        .map(Some)
        .ok_or_else(|| type_error(builtin, what, "an integer", v))
}

/// An optional boolean argument (truthiness): `None` when undefined.
pub fn opt_bool(v: &Value) -> Option<bool> {
    (!v.is_undefined()).then(|| v.is_truthy())
}

/// A list argument.
pub fn expect_list<'a>(builtin: &str, what: &str, v: &'a Value) -> Result<&'a [Value], Error> {
    v.as_list()
        .ok_or_else(|| type_error(builtin, what, "a list", v))
}

/// A map argument.
pub fn expect_map<'a>(builtin: &str, what: &str, v: &'a Value) -> Result<&'a Map, Error> {
    v.as_map()
        .ok_or_else(|| type_error(builtin, what, "a map", v))
}
