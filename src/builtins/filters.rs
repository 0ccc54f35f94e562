//! Catalogue filters over lists, maps and numbers (docs/catalogue.md): `abs`, `batch`,
//! `column`, `filter`, `first`, `group_by`, `keys`, `last`, `map`, `merge`,
//! `number_format`, `reduce`, `reverse`, `round`, `slice`, `sort`, `sum`.
//!
//! Lists stay lists (re-indexed after `filter`, unlike Twig's kept PHP keys), maps
//! stay maps with their keys; Twig's `preserve_keys` parameters are accepted and
//! have nothing to do. Arrow functions are called through [`State::call`]
//! and every item costs one unit of fuel. The numeric helpers `php_round` and
//! `number_format` are shared with the functions module.

use super::typed::{type_error, ArgType, Arrow};
use super::{Registry, State};
use crate::error::{Error, ErrorKind};
use crate::value::{compare, Map, Number, Value};
use std::borrow::Cow;
use std::cmp::Ordering;
use std::sync::Arc;

/// Registers this module's builtins.
pub fn register(r: &mut Registry) {
    r.declare_filter("abs", &[], |_: &mut dyn State, n: Number| abs(n));
    r.declare_filter("batch", &["size", "fill?", "preserve_keys?"], batch);
    r.declare_filter(
        "column",
        &["name|key", "index?"],
        |_: &mut dyn State, v: &Value, name: &Value, index: &Value| column(v, name, index),
    );
    r.declare_filter("filter", &["arrow"], filter);
    r.declare_filter("first", &[], |_: &mut dyn State, v: &Value| {
        first_or_last(v, true)
    });
    r.declare_filter("last", &[], |_: &mut dyn State, v: &Value| {
        first_or_last(v, false)
    });
    r.declare_filter("group_by", &["key"], group_by);
    r.declare_filter("keys", &[], |_: &mut dyn State, v: &Value| keys(v));
    r.declare_filter("map", &["arrow"], map);
    r.declare_filter(
        "merge",
        &["other"],
        |s: &mut dyn State, left: &Value, right: &Value| {
            // merging a list with itself in a loop doubles it: every copied item costs fuel
            let n = left.len().unwrap_or(0) + right.len().unwrap_or(0);
            s.fuel(n as u64)?;
            merge(left, right)
        },
    );
    r.declare_filter(
        "number_format",
        &[
            "decimal|decimals?",
            "decimal_point|dec_point?",
            "thousand_sep|thousands_sep?",
        ],
        |s: &mut dyn State,
         PhpNumber(n): PhpNumber,
         decimals: Option<i64>,
         point: Option<Cow<str>>,
         sep: Option<Cow<str>>| {
            number_format_builtin("number_format", s, n, decimals, point, sep)
        },
    );
    r.declare_filter("reduce", &["arrow", "initial?"], reduce);
    r.declare_filter(
        "reverse",
        &["preserve_keys?"],
        |_: &mut dyn State, v: &Value, _preserve_keys: &Value| reverse(v),
    );
    r.declare_filter(
        "round",
        &["precision?", "method?"],
        |_: &mut dyn State,
         PhpNumber(n): PhpNumber,
         precision: Option<i64>,
         method: Option<Cow<str>>| { round_builtin("round", n, precision, method) },
    );
    r.declare_filter(
        "slice",
        &["start", "length?", "preserve_keys?"],
        |_: &mut dyn State, v: &Value, start: Option<i64>, length: Option<i64>, _keys: &Value| {
            slice(v, start.unwrap_or(0), length)
        },
    );
    r.declare_filter("sort", &["arrow?"], sort);
    r.declare_filter(
        "sum",
        &["key?"],
        |_: &mut dyn State, v: &Value, key: &Value| sum(v, key),
    );
}

/// A number with PHP's coercion of empty values (`null`, `''`, `false` → 0, `true` → 1),
/// the input of `round` and `number_format`.
pub(crate) struct PhpNumber(pub Number);

impl<'a> ArgType<'a> for PhpNumber {
    type Output = PhpNumber;
    fn from_arg(v: &'a Value) -> Result<PhpNumber, &'static str> {
        Number::from_arg(empty_as_zero(v)).map(PhpNumber)
    }
    fn type_name() -> &'static str {
        "number"
    }
}

/// The items of a list or map input with their keys; `null` is empty.
/// Strings, numbers and booleans are a type error naming `builtin`.
fn entries(builtin: &str, v: &Value) -> Result<Vec<(Value, Value)>, Error> {
    match v {
        Value::Undefined | Value::Null => Ok(Vec::new()),
        Value::List(l) => Ok(l
            .iter()
            .enumerate()
            .map(|(i, x)| (Value::from(i), x.clone()))
            .collect()),
        Value::Map(m) => Ok(m
            .iter()
            .map(|(k, x)| (Value::Str(k.clone()), x.clone()))
            .collect()),
        other => Err(type_error(builtin, "the input", "a list or a map", other)),
    }
}

/// Map key for a value used as a key (`group_by`, `column` index).
fn key_of(v: &Value) -> Arc<str> {
    match v {
        Value::Str(s) | Value::Safe(s) => s.clone(),
        Value::Bool(b) => Arc::from(if *b { "1" } else { "0" }),
        other => Arc::from(other.to_output()),
    }
}

/// PHP addition of two numbers; integer overflow becomes a float.
pub(crate) fn add_numbers(a: Number, b: Number) -> Number {
    match (a, b) {
        (Number::Int(x), Number::Int(y)) => match x.checked_add(y) {
            Some(s) => Number::Int(s),
            None => Number::Float(x as f64 + y as f64),
        },
        (x, y) => Number::Float(x.as_f64() + y.as_f64()),
    }
}

fn abs(n: Number) -> Value {
    match n {
        Number::Int(i) => i
            .checked_abs()
            .map_or(Value::Float((i as f64).abs()), Value::Int),
        Number::Float(f) => Value::Float(f.abs()),
    }
}

/// `batch`: chunks of `size` (a float is rounded up, as Twig); a map's chunks keep
/// its keys (Twig's `preserve_keys`), a list's are lists. `fill` pads the last chunk.
fn batch(
    state: &mut dyn State,
    input: &Value,
    size: Number,
    fill: &Value,
    preserve_keys: &Value,
) -> Result<Value, Error> {
    let items = entries("batch", input)?;
    let size = match size {
        Number::Float(f) if f.is_finite() => f.ceil() as i64,
        Number::Float(_) => 0,
        Number::Int(i) => i,
    };
    if size < 1 {
        return Err(Error::new(
            ErrorKind::InvalidArgument,
            format!("batch: size must be at least 1, got {size}"),
        ));
    }
    let size = usize::try_from(size).unwrap_or(usize::MAX);
    state.fuel(items.len() as u64)?;
    let keyed = matches!(input, Value::Map(_)) && !matches!(preserve_keys, Value::Bool(false));
    let missing = match items.len() % size {
        0 => 0,
        r => size - r,
    };
    if !fill.is_null() && missing > 0 {
        if missing > state.limits().max_range {
            return Err(Error::new(
                ErrorKind::Limit,
                format!(
                    "batch: filling {missing} items exceeds the range limit of {}",
                    state.limits().max_range
                ),
            ));
        }
        state.fuel(missing as u64)?;
    }
    let mut out: Vec<Value> = Vec::new();
    let chunks: Vec<&[(Value, Value)]> = items.chunks(size).collect();
    let n = chunks.len();
    // PHP appends after the largest integer key.
    let mut next_key = items
        .iter()
        .filter_map(|(k, _)| k.to_cow_str().parse::<i64>().ok())
        .max()
        .map_or(0, |m| m + 1);
    for (ci, chunk) in chunks.into_iter().enumerate() {
        let pad = if ci + 1 == n && !fill.is_null() {
            missing
        } else {
            0
        };
        if keyed {
            let mut m = Map::new();
            for (k, v) in chunk {
                m.insert(key_of(k), v.clone());
            }
            for _ in 0..pad {
                m.insert(Arc::from(next_key.to_string().as_str()), fill.clone());
                next_key += 1;
            }
            out.push(Value::map(m));
        } else {
            let mut l: Vec<Value> = chunk.iter().map(|(_, v)| v.clone()).collect();
            l.extend(std::iter::repeat_n(fill.clone(), pad));
            out.push(Value::list(l));
        }
    }
    Ok(Value::list(out))
}

/// PHP's coercion of an empty value to a number: `null`, `''` and `false` are 0
/// (`''|number_format`, `null|round`), `true` is 1; anything else is left as is.
pub(crate) fn empty_as_zero(v: &Value) -> &Value {
    static ZERO: Value = Value::Int(0);
    static ONE: Value = Value::Int(1);
    match v {
        Value::Undefined | Value::Null | Value::Bool(false) => &ZERO,
        Value::Str(s) | Value::Safe(s) if s.is_empty() => &ZERO,
        Value::Bool(true) => &ONE,
        other => other,
    }
}

fn column(input: &Value, key: &Value, index: &Value) -> Result<Value, Error> {
    let rows = entries("column", input)?;
    if index.is_null() {
        let out: Vec<Value> = rows
            .iter()
            .map(|(_, row)| row.get_item(key))
            .filter(|v| !v.is_undefined())
            .collect();
        return Ok(Value::list(out));
    }
    let mut out = Map::new();
    for (_, row) in &rows {
        let v = row.get_item(key);
        if v.is_undefined() {
            continue;
        }
        out.insert(key_of(&row.get_item(index)), v);
    }
    Ok(Value::map(out))
}

fn filter(state: &mut dyn State, input: &Value, Arrow(arrow): Arrow) -> Result<Value, Error> {
    let is_map = matches!(input, Value::Map(_));
    let mut list = Vec::new();
    let mut map = Map::new();
    for (k, v) in entries("filter", input)? {
        state.fuel(1)?;
        if state.call(arrow, &[v.clone(), k.clone()])?.is_truthy() {
            if is_map {
                map.insert(key_of(&k), v);
            } else {
                list.push(v);
            }
        }
    }
    Ok(if is_map {
        Value::map(map)
    } else {
        Value::list(list)
    })
}

fn map(state: &mut dyn State, input: &Value, Arrow(arrow): Arrow) -> Result<Value, Error> {
    let is_map = matches!(input, Value::Map(_));
    let mut list = Vec::new();
    let mut map = Map::new();
    for (k, v) in entries("map", input)? {
        state.fuel(1)?;
        let r = state.call(arrow, &[v, k.clone()])?;
        if is_map {
            map.insert(key_of(&k), r);
        } else {
            list.push(r);
        }
    }
    Ok(if is_map {
        Value::map(map)
    } else {
        Value::list(list)
    })
}

fn reduce(
    state: &mut dyn State,
    input: &Value,
    Arrow(arrow): Arrow,
    initial: &Value,
) -> Result<Value, Error> {
    let mut carry = match initial {
        Value::Undefined => Value::Null,
        v => v.clone(),
    };
    for (k, v) in entries("reduce", input)? {
        state.fuel(1)?;
        carry = state.call(arrow, &[carry, v, k])?;
    }
    Ok(carry)
}

fn first_or_last(v: &Value, first: bool) -> Value {
    let pick = |mut it: Box<dyn DoubleEndedIterator<Item = &Value> + '_>| {
        if first { it.next() } else { it.next_back() }
            .cloned()
            .unwrap_or(Value::Null)
    };
    match v {
        Value::Undefined | Value::Null => Value::Null,
        Value::List(l) => pick(Box::new(l.iter())),
        Value::Map(m) => pick(Box::new(m.values())),
        Value::Callable(_) => Value::Null,
        other => {
            let s = other.to_output();
            let c = if first {
                s.chars().next()
            } else {
                s.chars().next_back()
            };
            c.map_or(Value::str(""), |c| Value::str(c.to_string()))
        }
    }
}

fn group_by(state: &mut dyn State, input: &Value, key: &Value) -> Result<Value, Error> {
    let mut groups: indexmap::IndexMap<Arc<str>, Vec<Value>> = indexmap::IndexMap::new();
    for (_, item) in entries("group_by", input)? {
        state.fuel(1)?;
        let k = match item.get_item(key) {
            Value::Undefined | Value::Null => Arc::from(""),
            v => key_of(&v),
        };
        groups.entry(k).or_default().push(item);
    }
    Ok(Value::map(
        groups
            .into_iter()
            .map(|(k, v)| (k, Value::list(v)))
            .collect(),
    ))
}

fn keys(v: &Value) -> Value {
    match v {
        Value::List(l) => (0..l.len()).map(Value::from).collect(),
        Value::Map(m) => m.keys().map(|k| Value::Str(k.clone())).collect(),
        _ => Value::list(Vec::new()),
    }
}

fn merge(left: &Value, right: &Value) -> Result<Value, Error> {
    let check = |what: &str, v: &Value| match v {
        Value::Undefined | Value::Null | Value::List(_) | Value::Map(_) => Ok(()),
        other => Err(type_error("merge", what, "a list or a map", other)),
    };
    check("the input", left)?;
    check("other", right)?;
    match (left, right) {
        (Value::List(x), Value::List(y)) => {
            Ok(x.iter().chain(y.iter()).cloned().collect::<Value>())
        }
        (Value::Map(_), _) | (_, Value::Map(_)) => {
            let mut out = Map::new();
            for v in [left, right] {
                for (k, item) in entries("merge", v)? {
                    out.insert(key_of(&k), item);
                }
            }
            Ok(Value::map(out))
        }
        (Value::List(_), _) => Ok(left.clone()),
        (_, Value::List(_)) => Ok(right.clone()),
        _ => Ok(Value::list(Vec::new())),
    }
}

fn reverse(v: &Value) -> Result<Value, Error> {
    Ok(match v {
        Value::Undefined | Value::Null => Value::Null,
        Value::List(l) => l.iter().rev().cloned().collect(),
        Value::Map(m) => Value::map(
            m.iter()
                .rev()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        ),
        Value::Callable(_) => {
            return Err(type_error(
                "reverse",
                "the input",
                "a list, a map or a string",
                v,
            ))
        }
        other => Value::str(other.to_output().chars().rev().collect::<String>()),
    })
}

/// Resolves PHP `array_slice`/`mb_substr` offsets into a range of `0..len`.
fn slice_range(len: usize, start: i64, length: Option<i64>) -> std::ops::Range<usize> {
    let len_i = i64::try_from(len).unwrap_or(i64::MAX);
    let from = if start < 0 {
        (len_i + start).max(0)
    } else {
        start.min(len_i)
    };
    let to = match length {
        None => len_i,
        Some(l) if l < 0 => (len_i + l).max(from),
        Some(l) => from.saturating_add(l).min(len_i),
    };
    let from = usize::try_from(from).unwrap_or(0);
    let to = usize::try_from(to).unwrap_or(0).max(from);
    from..to
}

fn slice(v: &Value, start: i64, length: Option<i64>) -> Result<Value, Error> {
    Ok(match v {
        Value::Undefined | Value::Null => Value::Null,
        Value::List(l) => {
            let r = slice_range(l.len(), start, length);
            l.get(r).unwrap_or(&[]).iter().cloned().collect()
        }
        Value::Map(m) => {
            let r = slice_range(m.len(), start, length);
            let (from, n) = (r.start, r.len());
            Value::map(
                m.iter()
                    .skip(from)
                    .take(n)
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
            )
        }
        Value::Callable(_) => {
            return Err(type_error(
                "slice",
                "the input",
                "a list, a map or a string",
                v,
            ))
        }
        other => {
            let s = other.to_output();
            let r = slice_range(s.chars().count(), start, length);
            Value::str(s.chars().skip(r.start).take(r.len()).collect::<String>())
        }
    })
}

/// A stable bottom-up merge sort with a fallible comparator. Unlike `slice::sort_by`
/// it never panics when the comparator is not a total order (user arrows, NaN).
pub(crate) fn merge_sort<T: Clone>(
    items: Vec<T>,
    cmp: &mut dyn FnMut(&T, &T) -> Result<Ordering, Error>,
) -> Result<Vec<T>, Error> {
    let n = items.len();
    let mut src = items;
    let mut width = 1;
    while width < n {
        let mut dst: Vec<T> = Vec::with_capacity(n);
        let mut i = 0;
        while i < n {
            let mid = (i + width).min(n);
            let end = (i + 2 * width).min(n);
            let (left, right) = (&src[i..mid], &src[mid..end]);
            let (mut a, mut b) = (0, 0);
            while let (Some(x), Some(y)) = (left.get(a), right.get(b)) {
                if cmp(y, x)? == Ordering::Less {
                    dst.push(y.clone());
                    b += 1;
                } else {
                    dst.push(x.clone());
                    a += 1;
                }
            }
            dst.extend_from_slice(left.get(a..).unwrap_or(&[]));
            dst.extend_from_slice(right.get(b..).unwrap_or(&[]));
            i = end;
        }
        src = dst;
        width = width.saturating_mul(2);
    }
    Ok(src)
}

fn sort(state: &mut dyn State, input: &Value, arrow: Option<Arrow>) -> Result<Value, Error> {
    let items = entries("sort", input)?;
    let sorted = merge_sort(items, &mut |x: &(Value, Value), y: &(Value, Value)| {
        state.fuel(1)?;
        match &arrow {
            None => Ok(compare(&x.1, &y.1)),
            Some(f) => {
                let r = state.call(f.0, &[x.1.clone(), y.1.clone()])?;
                let n = r.as_f64().unwrap_or(0.0);
                Ok(n.partial_cmp(&0.0).unwrap_or(Ordering::Equal))
            }
        }
    })?;
    Ok(match input {
        Value::Map(_) => Value::map(sorted.into_iter().map(|(k, v)| (key_of(&k), v)).collect()),
        _ => sorted.into_iter().map(|(_, v)| v).collect(),
    })
}

fn sum(v: &Value, key: &Value) -> Result<Value, Error> {
    let mut total = Number::Int(0);
    for (_, item) in entries("sum", v)? {
        let x = if key.is_null() {
            item
        } else {
            item.get_item(key)
        };
        match x {
            Value::List(_) | Value::Map(_) | Value::Callable(_) => {
                return Err(type_error("sum", "each item", "a number", &x))
            }
            _ => {
                if let Some(n) = x.as_number() {
                    total = add_numbers(total, n);
                }
            }
        }
    }
    Ok(total.into())
}

/// Rounding method of `round`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RoundMethod {
    Common,
    Ceil,
    Floor,
}

/// `x` rounded to 15 significant digits, so that `1.955 * 100` (= 195.4999…) counts as
/// 195.5 — PHP's pre-rounding, which makes `round(1.955, 2)` give `1.96`.
fn pre_round(x: f64) -> f64 {
    format!("{x:.14e}").parse().unwrap_or(x)
}

/// PHP `round`/`ceil`/`floor` to `precision` decimals (negative: tens, hundreds…).
/// `Common` rounds half away from zero.
pub(crate) fn php_round(value: f64, precision: i64, method: RoundMethod) -> f64 {
    if !value.is_finite() {
        return value;
    }
    let places = precision.clamp(-400, 400) as i32;
    let pow = 10f64.powi(places.abs());
    let scaled = if places >= 0 {
        value * pow
    } else {
        value / pow
    };
    if !scaled.is_finite() || !pow.is_finite() || pow == 0.0 {
        return value;
    }
    // PHP's round(): a value beyond 15 digits at this precision is returned unchanged
    // (rounding it is pointless), so `number_format` keeps its digits.
    if matches!(method, RoundMethod::Common) && scaled.abs() >= 1e15 {
        return value;
    }
    let pre = pre_round(scaled);
    let r = match method {
        RoundMethod::Common => pre.round(),
        RoundMethod::Ceil => pre.ceil(),
        RoundMethod::Floor => pre.floor(),
    };
    let out = if places >= 0 { r / pow } else { r * pow };
    if out.is_finite() {
        out
    } else {
        value
    }
}

/// Rounds an integer to a negative precision exactly (`round(1250, -2)` → 1300).
fn round_int(i: i64, precision: i64, method: RoundMethod) -> Value {
    if precision >= 0 {
        return Value::Int(i);
    }
    let digits = u32::try_from(precision.unsigned_abs()).unwrap_or(u32::MAX);
    let Some(pow) = 10i128.checked_pow(digits) else {
        return Value::Int(0);
    };
    let x = i128::from(i);
    let floor = x.div_euclid(pow) * pow;
    let r = match method {
        RoundMethod::Floor => floor,
        RoundMethod::Ceil if floor == x => x,
        RoundMethod::Ceil => floor + pow,
        RoundMethod::Common => {
            let rem = x - floor;
            let half_up = if x >= 0 {
                rem * 2 >= pow
            } else {
                rem * 2 > pow
            };
            if half_up {
                floor + pow
            } else {
                floor
            }
        }
    };
    i64::try_from(r).map_or(Value::Float(r as f64), Value::Int)
}

/// Shared body of the `round` filter and function.
pub(crate) fn round_builtin(
    name: &str,
    n: Number,
    precision: Option<i64>,
    method: Option<Cow<str>>,
) -> Result<Value, Error> {
    let precision = precision.unwrap_or(0);
    let method = match method {
        None => RoundMethod::Common,
        Some(m) => match &*m {
            "common" => RoundMethod::Common,
            "ceil" => RoundMethod::Ceil,
            "floor" => RoundMethod::Floor,
            other => {
                return Err(Error::new(
                    ErrorKind::InvalidArgument,
                    format!(
                        "{name}: method must be \"common\", \"ceil\" or \"floor\", got \"{other}\""
                    ),
                ))
            }
        },
    };
    Ok(match n {
        Number::Int(i) => round_int(i, precision, method),
        Number::Float(f) => Value::Float(php_round(f, precision, method)),
    })
}

/// Most decimals `number_format` accepts (PHP has no cap; this keeps strings small).
const MAX_DECIMALS: i64 = 1000;

/// PHP `number_format`: round half away from zero to `decimals`, group the integer
/// part by thousands. Never prints `-0`.
pub(crate) fn number_format(n: Number, decimals: i64, point: &str, sep: &str) -> String {
    let decimals = decimals.clamp(-400, MAX_DECIMALS);
    let (negative, digits) = match n {
        Number::Int(i) if decimals >= 0 => (i < 0, i.unsigned_abs().to_string()),
        Number::Int(i) => match round_int(i, decimals, RoundMethod::Common) {
            Value::Int(r) => (r < 0, r.unsigned_abs().to_string()),
            other => {
                let f = other.as_f64().unwrap_or(0.0);
                (f < 0.0, format!("{:.0}", f.abs()))
            }
        },
        Number::Float(f) => {
            let r = php_round(f, decimals, RoundMethod::Common);
            let places = usize::try_from(decimals.max(0)).unwrap_or(0);
            (r < 0.0, format!("{:.*}", places, r.abs()))
        }
    };
    let (int_part, frac_part) = match digits.split_once('.') {
        Some((i, f)) => (i.to_string(), f.to_string()),
        None => (digits, String::new()),
    };
    let places = usize::try_from(decimals.max(0)).unwrap_or(0);
    let mut frac = frac_part;
    while frac.len() < places {
        frac.push('0');
    }
    let is_zero = int_part.bytes().all(|b| b == b'0') && frac.bytes().all(|b| b == b'0');
    let mut out = String::with_capacity(int_part.len() * 2 + frac.len() + 2);
    if negative && !is_zero {
        out.push('-');
    }
    let len = int_part.len();
    for (i, c) in int_part.chars().enumerate() {
        if i > 0 && (len - i) % 3 == 0 {
            out.push_str(sep);
        }
        out.push(c);
    }
    if places > 0 {
        out.push_str(point);
        out.push_str(&frac);
    }
    out
}

/// Shared body of the `number_format` filter and the `numberFormat` function (an
/// omitted or `null` point or separator is PHP's default, `.` and `,`).
pub(crate) fn number_format_builtin(
    name: &str,
    state: &mut dyn State,
    n: Number,
    decimals: Option<i64>,
    point: Option<Cow<str>>,
    sep: Option<Cow<str>>,
) -> Result<Value, Error> {
    let decimals = decimals.unwrap_or(0);
    if decimals > MAX_DECIMALS {
        return Err(Error::new(
            ErrorKind::InvalidArgument,
            format!("{name}: decimals must be at most {MAX_DECIMALS}, got {decimals}"),
        ));
    }
    let point = point.unwrap_or(Cow::Borrowed("."));
    let sep = sep.unwrap_or(Cow::Borrowed(","));
    let out = number_format(n, decimals, &point, &sep);
    state.check_size(out.len())?;
    Ok(Value::str(out))
}

#[cfg(test)]
pub(crate) mod test_support {
    //! Helpers of the builtins' unit tests; the test [`State`](super::super::State) is
    //! `teststate`'s.
    use crate::error::Error;
    use crate::value::Value;

    pub use super::super::teststate::{arrow, TestState};

    /// Calls a built-in by kind and name.
    pub fn call(kind: &str, name: &str, args: &[Value]) -> Result<Value, Error> {
        super::super::teststate::call_in(&super::super::Registry::with_builtins(), kind, name, args)
    }

    /// A value from JSON text (test data only).
    pub fn j(s: &str) -> Value {
        Value::from(serde_json::from_str::<serde_json::Value>(s).unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::test_support::{arrow, call, j};
    use super::*;

    fn f(name: &str, args: &[Value]) -> String {
        match call("filter", name, args) {
            Ok(v) => crate::value::Value::to_output(&v),
            Err(e) => format!("ERR {}", e.message()),
        }
    }

    #[test]
    fn rounding() {
        assert_eq!(php_round(3.146, 2, RoundMethod::Common), 3.15);
        assert_eq!(php_round(1.955, 2, RoundMethod::Common), 1.96);
        assert_eq!(php_round(-2.5, 0, RoundMethod::Common), -3.0);
        assert_eq!(php_round(1.1, 2, RoundMethod::Ceil), 1.1);
        assert_eq!(php_round(1234.5678, -2, RoundMethod::Common), 1200.0);
        assert_eq!(f("round", &[Value::Int(1250), Value::Int(-2)]), "1300");
        assert_eq!(f("round", &[Value::Int(-1250), Value::Int(-2)]), "-1300");
        assert_eq!(
            f(
                "round",
                &[Value::Int(-1250), Value::Int(-2), Value::str("floor")]
            ),
            "-1300"
        );
        assert_eq!(
            f(
                "round",
                &[Value::Float(2.7), Value::Int(0), Value::str("floor")]
            ),
            "2"
        );
        assert!(f("round", &[Value::Int(1), Value::Int(0), Value::str("up")]).starts_with("ERR"));
    }

    #[test]
    fn number_formatting() {
        assert_eq!(
            number_format(Number::Float(1234.5), 2, ".", ","),
            "1,234.50"
        );
        assert_eq!(
            number_format(Number::Int(1234567), 0, ".", " "),
            "1 234 567"
        );
        assert_eq!(number_format(Number::Float(-0.4), 0, ".", ","), "0");
        assert_eq!(
            number_format(Number::Float(-1234.567), 1, ",", "."),
            "-1.234,6"
        );
        assert_eq!(number_format(Number::Int(999), 2, ".", ","), "999.00");
        assert_eq!(number_format(Number::Int(1550), -2, ".", ","), "1,600");
        assert_eq!(number_format(Number::Float(0.5), 0, ".", ","), "1");
    }

    #[test]
    fn collections() {
        assert_eq!(f("batch", &[j("[1,2,3]"), Value::Int(2)]), "[[1,2],[3]]");
        assert_eq!(
            f("batch", &[j("[1,2,3]"), Value::Int(2), Value::str("x")]),
            r#"[[1,2],[3,"x"]]"#
        );
        assert!(f("batch", &[j("[1]"), Value::Int(0)]).contains("at least 1"));
        assert!(f(
            "batch",
            &[j("[1]"), Value::Int(1_000_000_000), Value::Int(0)]
        )
        .contains("range limit"));
        assert_eq!(
            f(
                "column",
                &[j(r#"[{"a":1},{"b":2},{"a":3}]"#), Value::str("a")]
            ),
            "[1,3]"
        );
        assert_eq!(f("first", &[Value::str("été")]), "é");
        assert_eq!(f("last", &[j(r#"{"a":1,"b":2}"#)]), "2");
        assert_eq!(f("keys", &[j(r#"{"a":1,"b":2}"#)]), r#"["a","b"]"#);
        assert_eq!(f("merge", &[j("[1]"), j("[2]")]), "[1,2]");
        assert_eq!(
            f("merge", &[j(r#"{"a":1,"b":2}"#), j(r#"{"a":3,"c":4}"#)]),
            r#"{"a":3,"b":2,"c":4}"#
        );
        assert!(f("merge", &[Value::str("x"), j("[]")]).contains("merge: the input must be"));
        assert_eq!(f("reverse", &[Value::str("abç")]), "çba");
        assert_eq!(
            f("slice", &[j("[1,2,3,4]"), Value::Int(-3), Value::Int(2)]),
            "[2,3]"
        );
        assert_eq!(
            f(
                "slice",
                &[Value::str("héllo"), Value::Int(1), Value::Int(-1)]
            ),
            "éll"
        );
        assert_eq!(f("sum", &[j("[1,2.5,\"3\"]")]), "6.5");
        assert_eq!(f("sum", &[j(r#"[{"n":1},{"n":2}]"#), Value::str("n")]), "3");
        assert_eq!(
            f(
                "group_by",
                &[
                    j(r#"[{"t":"a","v":1},{"t":"b"},{"t":"a","v":2}]"#),
                    Value::str("t")
                ]
            ),
            r#"{"a":[{"t":"a","v":1},{"t":"a","v":2}],"b":[{"t":"b"}]}"#
        );
        assert_eq!(f("abs", &[Value::Int(-5)]), "5");
        assert!(
            f("abs", &[Value::str("x")]).contains("abs: the input must be a number, got a string")
        );
    }

    #[test]
    fn arrows() {
        let gt1 = arrow(|a| Value::Bool(a.first().and_then(Value::as_i64).unwrap_or(0) > 1));
        assert_eq!(f("filter", &[j("[1,2,3]"), gt1.clone()]), "[2,3]");
        assert_eq!(f("filter", &[j(r#"{"a":1,"b":2}"#), gt1]), r#"{"b":2}"#);
        let double = arrow(|a| Value::Int(a.first().and_then(Value::as_i64).unwrap_or(0) * 2));
        assert_eq!(f("map", &[j("[1,2]"), double]), "[2,4]");
        let add = arrow(|a| {
            let x = a.first().and_then(Value::as_i64).unwrap_or(0);
            let y = a.get(1).and_then(Value::as_i64).unwrap_or(0);
            Value::Int(x + y)
        });
        assert_eq!(f("reduce", &[j("[1,2,3]"), add, Value::Int(10)]), "16");
        let desc = arrow(|a| {
            let x = a.first().and_then(Value::as_i64).unwrap_or(0);
            let y = a.get(1).and_then(Value::as_i64).unwrap_or(0);
            Value::Int((y - x).signum())
        });
        assert_eq!(f("sort", &[j("[3,1,2]"), desc]), "[3,2,1]");
        assert_eq!(
            f("sort", &[j(r#"["b","10","9","a"]"#)]),
            r#"["9","10","a","b"]"#
        );
        assert!(f("map", &[j("[1]"), Value::Int(1)]).contains("arrow function"));
    }

    /// Every registered builtin, called with awkward values in every position,
    /// returns a value or an error and never panics.
    #[test]
    fn no_panics_on_awkward_arguments() {
        use super::test_support::TestState;
        let values = [
            Value::Undefined,
            Value::Null,
            Value::Bool(true),
            Value::Int(i64::MIN),
            Value::Int(-1),
            Value::Int(0),
            Value::Int(i64::MAX),
            Value::Float(f64::NAN),
            Value::Float(-1e308),
            Value::Float(2.5),
            Value::str(""),
            Value::str("%'"),
            Value::str("%1$s%2$-'x9.3f%c%"),
            Value::str("<a b='>'<!--<é\r\n日本"),
            Value::str("ceil"),
            j("[3, \"a\", null, [1], {\"k\": 2}]"),
            j("{\"k\": [1, {\"k\": null}], \"\": true}"),
            arrow(|a| a.first().cloned().unwrap_or_default()),
        ];
        // Every builtin of the registry (derived, so a new builtin is covered without
        // touching this test), with the fixed arguments; a panic fails the test.
        let r = Registry::with_builtins();
        let mut st = TestState::default();
        for (kind, name) in r.names() {
            let b = match kind {
                "filter" => r.get_filter(name),
                "function" => r.get_function(name),
                _ => r.get_test(name),
            }
            .expect("listed names are registered");
            {
                for x in &values {
                    for y in &values {
                        for z in [&Value::Undefined, &Value::Int(-3), &Value::str("floor")] {
                            st.fuel_used = 0;
                            let _ = (b.func)(&mut st, &[x.clone(), y.clone(), z.clone()]);
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn merge_sort_is_stable_and_total() {
        let v: Vec<(i32, i32)> = vec![(2, 0), (1, 1), (2, 2), (1, 3), (0, 4)];
        let s = merge_sort(v, &mut |a, b| Ok(a.0.cmp(&b.0))).unwrap_or_default();
        assert_eq!(s, vec![(0, 4), (1, 1), (1, 3), (2, 0), (2, 2)]);
        // an inconsistent comparator must not panic
        let w: Vec<i32> = (0..100).collect();
        let r = merge_sort(w, &mut |_, _| Ok(Ordering::Less));
        assert_eq!(r.map(|x| x.len()).unwrap_or(0), 100);
    }
}
