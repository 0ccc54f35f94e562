//! Operators on values with PHP 8 semantics (docs/language.md §2.3): arithmetic on numbers
//! and numeric strings, exact-int division, floor division, `%` with the sign of the
//! dividend, `**`, overflow to float, `~` concatenation, `..` ranges and `in`.

use super::{loose_eq, parse_numeric, Map, Number, Value};
use crate::error::{Error, ErrorKind};
use std::sync::Arc;

/// The arithmetic operators.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arith {
    /// `+`
    Add,
    /// `-`
    Sub,
    /// `*`
    Mul,
    /// `/`
    Div,
    /// `//`
    FloorDiv,
    /// `%`
    Rem,
    /// `**`
    Pow,
}

impl Arith {
    fn verb(self) -> (&'static str, &'static str) {
        match self {
            Arith::Add => ("add", "to"),
            Arith::Sub => ("subtract", "from"),
            Arith::Mul => ("multiply", "by"),
            Arith::Div | Arith::FloorDiv => ("divide", "by"),
            Arith::Rem => ("take the remainder of", "by"),
            Arith::Pow => ("raise", "to the power of"),
        }
    }
}

/// The leading number of a string (`"5 apples"` → 5), as PHP 8 reads leading-numeric strings.
fn leading_number(s: &str) -> Option<Number> {
    let t = s.trim_start_matches([' ', '\t', '\n', '\r', '\x0b', '\x0c']);
    let b = t.as_bytes();
    let mut i = 0;
    if matches!(b.first(), Some(b'+' | b'-')) {
        i = 1;
    }
    let ds = i;
    while i < b.len() && b[i].is_ascii_digit() {
        i += 1;
    }
    let mut end = i;
    if i < b.len() && b[i] == b'.' {
        let mut j = i + 1;
        while j < b.len() && b[j].is_ascii_digit() {
            j += 1;
        }
        if j > i + 1 || i > ds {
            end = j;
        }
    }
    if end == ds || (end == ds + 1 && b.get(ds) == Some(&b'.')) {
        return None;
    }
    if end < b.len() && (b[end] == b'e' || b[end] == b'E') {
        let mut j = end + 1;
        if matches!(b.get(j), Some(b'+' | b'-')) {
            j += 1;
        }
        let es = j;
        while j < b.len() && b[j].is_ascii_digit() {
            j += 1;
        }
        if j > es {
            end = j;
        }
    }
    parse_numeric(&t[..end])
}

/// The number an arithmetic operand stands for, or `None` (a type error).
pub fn to_number(v: &Value) -> Option<Number> {
    match v {
        Value::Str(s) | Value::Safe(s) => parse_numeric(s).or_else(|| leading_number(s)),
        other => other.as_number(),
    }
}

/// "cannot add a map to a number" (`1 + {}`): add/subtract name the right operand
/// first, the other operators the left one.
fn type_err(op: Arith, a: &Value, b: &Value) -> Error {
    let (verb, prep) = op.verb();
    let (first, second) = match op {
        Arith::Add | Arith::Sub => (b, a),
        _ => (a, b),
    };
    Error::new(
        ErrorKind::Type,
        format!(
            "cannot {verb} {} {prep} {}",
            describe(first),
            describe(second)
        ),
    )
}

fn describe(v: &Value) -> String {
    match v {
        Value::Str(s) | Value::Safe(s) if s.chars().count() <= 20 => format!("a string (\"{s}\")"),
        other => other.type_with_article().to_string(),
    }
}

/// `a op b` for the arithmetic operators.
pub fn arith(op: Arith, a: &Value, b: &Value) -> Result<Value, Error> {
    if let (Value::Int(x), Value::Int(y)) = (a, b) {
        return int_arith(op, *x, *y);
    }
    if op == Arith::Add {
        if let (Value::Map(_) | Value::List(_), Value::Map(_) | Value::List(_)) = (a, b) {
            return Ok(union(a, b));
        }
    }
    let bad = |v: &Value| matches!(v, Value::List(_) | Value::Map(_) | Value::Callable(_));
    if bad(a) || bad(b) {
        return Err(type_err(op, a, b));
    }
    let (Some(x), Some(y)) = (to_number(a), to_number(b)) else {
        return Err(type_err(op, a, b));
    };
    match (x, y) {
        (Number::Int(x), Number::Int(y)) => int_arith(op, x, y),
        _ => float_arith(op, x.as_f64(), y.as_f64()),
    }
}

fn div_zero(op: Arith) -> Error {
    Error::new(
        ErrorKind::DivisionByZero,
        if op == Arith::Rem {
            "modulo by zero"
        } else {
            "division by zero"
        },
    )
}

fn int_arith(op: Arith, x: i64, y: i64) -> Result<Value, Error> {
    let f = |v: f64| Ok(Value::Float(v));
    match op {
        Arith::Add => Ok(x
            .checked_add(y)
            .map_or(Value::Float(x as f64 + y as f64), Value::Int)),
        Arith::Sub => Ok(x
            .checked_sub(y)
            .map_or(Value::Float(x as f64 - y as f64), Value::Int)),
        Arith::Mul => Ok(x
            .checked_mul(y)
            .map_or(Value::Float(x as f64 * y as f64), Value::Int)),
        Arith::Div => {
            if y == 0 {
                return Err(div_zero(op));
            }
            match (x.checked_rem(y), x.checked_div(y)) {
                (Some(0), Some(q)) => Ok(Value::Int(q)),
                _ => f(x as f64 / y as f64),
            }
        }
        Arith::FloorDiv => {
            if y == 0 {
                return Err(div_zero(op));
            }
            match x.checked_div_euclid(y) {
                Some(_) => {
                    let q = x / y;
                    let q = if (x % y != 0) && ((x < 0) != (y < 0)) {
                        q - 1
                    } else {
                        q
                    };
                    Ok(Value::Int(q))
                }
                None => f((x as f64 / y as f64).floor()),
            }
        }
        Arith::Rem => {
            if y == 0 {
                return Err(div_zero(op));
            }
            Ok(Value::Int(x.checked_rem(y).unwrap_or(0)))
        }
        Arith::Pow => {
            if y >= 0 {
                match u32::try_from(y).ok().and_then(|e| x.checked_pow(e)) {
                    Some(v) => Ok(Value::Int(v)),
                    None => f((x as f64).powf(y as f64)),
                }
            } else {
                f((x as f64).powf(y as f64))
            }
        }
    }
}

fn float_arith(op: Arith, x: f64, y: f64) -> Result<Value, Error> {
    Ok(Value::Float(match op {
        Arith::Add => x + y,
        Arith::Sub => x - y,
        Arith::Mul => x * y,
        Arith::Div => {
            if y == 0.0 {
                return Err(div_zero(op));
            }
            x / y
        }
        Arith::FloorDiv => {
            if y == 0.0 {
                return Err(div_zero(op));
            }
            let q = (x / y).floor();
            if q.is_finite() && q.abs() < 9.2e18 {
                return Ok(Value::Int(q as i64));
            }
            q
        }
        Arith::Rem => {
            // PHP `%` works on integers.
            let (a, b) = (x.trunc(), y.trunc());
            if b == 0.0 {
                return Err(div_zero(op));
            }
            if a.abs() < 9.2e18 && b.abs() < 9.2e18 {
                return int_arith(Arith::Rem, a as i64, b as i64);
            }
            a % b
        }
        Arith::Pow => x.powf(y),
    }))
}

/// PHP array union `+`: keys of the left side win.
fn union(a: &Value, b: &Value) -> Value {
    match (a, b) {
        (Value::List(x), Value::List(y)) => {
            let mut out: Vec<Value> = x.to_vec();
            out.extend(y.iter().skip(x.len()).cloned());
            Value::list(out)
        }
        _ => {
            let mut out = to_map(a);
            for (k, v) in to_map(b) {
                out.entry(k).or_insert(v);
            }
            Value::map(out)
        }
    }
}

fn to_map(v: &Value) -> Map {
    match v {
        Value::Map(m) => (**m).clone(),
        Value::List(l) => l
            .iter()
            .enumerate()
            .map(|(i, v)| (Arc::from(i.to_string().as_str()), v.clone()))
            .collect(),
        _ => Map::new(),
    }
}

/// Unary minus.
pub fn neg(v: &Value) -> Result<Value, Error> {
    match v {
        Value::Int(i) => Ok(i
            .checked_neg()
            .map_or(Value::Float(-(*i as f64)), Value::Int)),
        Value::Float(f) => Ok(Value::Float(-f)),
        other => arith(Arith::Mul, other, &Value::Int(-1)).map_err(|_| {
            Error::new(
                ErrorKind::Type,
                format!("cannot negate {}", other.type_with_article()),
            )
        }),
    }
}

/// Unary plus: the number the value stands for.
pub fn pos(v: &Value) -> Result<Value, Error> {
    match to_number(v) {
        Some(n) if !matches!(v, Value::List(_) | Value::Map(_)) => Ok(n.into()),
        _ => Err(Error::new(
            ErrorKind::Type,
            format!("cannot use {} as a number", v.type_with_article()),
        )),
    }
}

/// The bitwise operators `b-and`, `b-or`, `b-xor` on integers.
pub fn bitwise(op: &str, a: &Value, b: &Value) -> Result<Value, Error> {
    let int = |v: &Value| {
        to_number(v)
            .filter(|_| !matches!(v, Value::List(_) | Value::Map(_)))
            .map(|n| match n {
                Number::Int(i) => i,
                Number::Float(f) => f as i64,
            })
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::Type,
                    format!("{op}: expected integers, got {}", v.type_with_article()),
                )
            })
    };
    let (x, y) = (int(a)?, int(b)?);
    Ok(Value::Int(match op {
        "b-and" => x & y,
        "b-or" => x | y,
        _ => x ^ y,
    }))
}

/// `needle in haystack`: substring for strings, loose membership in list/map values.
pub fn contains(haystack: &Value, needle: &Value) -> bool {
    match haystack {
        Value::List(l) => l.iter().any(|v| loose_eq(v, needle)),
        Value::Map(m) => m.values().any(|v| loose_eq(v, needle)),
        Value::Str(h) | Value::Safe(h) => match needle {
            Value::Str(_) | Value::Safe(_) | Value::Int(_) | Value::Float(_) => {
                h.contains(&*needle.to_cow_str())
            }
            _ => false,
        },
        _ => false,
    }
}

/// `a starts with b` / `a ends with b` on strings.
pub fn starts_with(a: &Value, b: &Value, end: bool) -> bool {
    // As Twig: false unless both sides are strings.
    if !a.is_string() || !b.is_string() {
        return false;
    }
    let (a, b) = (a.to_cow_str(), b.to_cow_str());
    if end {
        a.ends_with(&*b)
    } else {
        a.starts_with(&*b)
    }
}

/// `low..high` and `range(low, high, step)`: numbers, or single letters.
/// Fails when the step is zero or the range has more than `max` items.
pub fn range(low: &Value, high: &Value, step: &Value, max: usize) -> Result<Value, Error> {
    let too_big = || {
        Error::new(
            ErrorKind::Limit,
            format!("range: more than {max} items (range size limit)"),
        )
    };
    let step_n = if step.is_undefined() || step.is_null() {
        Number::Int(1)
    } else {
        to_number(step)
            .filter(|_| !matches!(step, Value::List(_) | Value::Map(_)))
            .ok_or_else(|| {
                Error::type_mismatch("range", "step", "a number", step.type_with_article())
            })?
    };
    if step_n.as_f64() == 0.0 {
        return Err(Error::new(
            ErrorKind::InvalidArgument,
            "range: step cannot be 0",
        ));
    }
    let letter = |v: &Value| match v.as_str() {
        Some(s) if s.chars().count() == 1 && parse_numeric(s).is_none() => s.chars().next(),
        _ => None,
    };
    if let (Some(a), Some(b)) = (letter(low), letter(high)) {
        let step = step_n.as_f64().abs().max(1.0) as u32;
        let (a, b) = (a as u32, b as u32);
        let n = (a.abs_diff(b) / step) as usize + 1;
        if n > max {
            return Err(too_big());
        }
        let mut out = Vec::with_capacity(n);
        let mut c = a;
        for _ in 0..n {
            if let Some(ch) = char::from_u32(c) {
                out.push(Value::str(ch.to_string()));
            }
            c = if a <= b {
                c + step
            } else {
                c.saturating_sub(step)
            };
        }
        return Ok(Value::list(out));
    }
    let num = |v: &Value, what: &str| {
        to_number(v)
            .filter(|_| !matches!(v, Value::List(_) | Value::Map(_)))
            .ok_or_else(|| {
                Error::type_mismatch("range", what, "a number or a letter", v.type_with_article())
            })
    };
    let (a, b) = (num(low, "low")?, num(high, "high")?);
    match (a, b, step_n) {
        (Number::Int(a), Number::Int(b), Number::Int(s)) => {
            let s = s.unsigned_abs() as u128;
            let n = (a.abs_diff(b) as u128 / s) + 1;
            if n > max as u128 {
                return Err(too_big());
            }
            let mut out = Vec::with_capacity(n as usize);
            let mut c = a as i128;
            for _ in 0..n {
                out.push(Value::Int(c as i64));
                c = if a <= b { c + s as i128 } else { c - s as i128 };
            }
            Ok(Value::list(out))
        }
        _ => {
            let (a, b, s) = (a.as_f64(), b.as_f64(), step_n.as_f64().abs());
            if !(a.is_finite() && b.is_finite() && s.is_finite()) {
                return Err(Error::new(
                    ErrorKind::InvalidArgument,
                    "range: bounds must be finite",
                ));
            }
            let n = ((a - b).abs() / s).floor() + 1.0;
            if n > max as f64 {
                return Err(too_big());
            }
            let out = (0..n as usize)
                .map(|i| {
                    let d = s * i as f64;
                    Value::Float(if a <= b { a + d } else { a - d })
                })
                .collect();
            Ok(Value::list(out))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(op: Arith, x: Value, y: Value) -> Value {
        arith(op, &x, &y).unwrap()
    }

    #[test]
    fn php_arithmetic() {
        assert_eq!(a(Arith::Add, Value::str("3"), Value::Int(4)), Value::Int(7));
        assert_eq!(a(Arith::Div, Value::Int(6), Value::Int(3)), Value::Int(2));
        assert_eq!(
            a(Arith::Div, Value::Int(7), Value::Int(2)),
            Value::Float(3.5)
        );
        assert_eq!(
            a(Arith::FloorDiv, Value::Int(-7), Value::Int(2)),
            Value::Int(-4)
        );
        assert_eq!(a(Arith::Rem, Value::Int(-7), Value::Int(3)), Value::Int(-1));
        assert_eq!(
            a(Arith::Pow, Value::Int(2), Value::Int(10)),
            Value::Int(1024)
        );
        assert_eq!(
            a(Arith::Add, Value::Int(i64::MAX), Value::Int(1)),
            Value::Float(i64::MAX as f64 + 1.0)
        );
        assert_eq!(
            arith(Arith::Div, &Value::Int(1), &Value::Int(0))
                .unwrap_err()
                .kind(),
            ErrorKind::DivisionByZero
        );
        let e = arith(Arith::Add, &Value::Int(1), &Value::empty_map()).unwrap_err();
        assert_eq!(e.message(), "cannot add a map to a number");
        assert!(arith(Arith::Add, &Value::str("abc"), &Value::Int(1)).is_err());
        assert_eq!(
            a(Arith::Add, Value::str("5 apples"), Value::Int(1)),
            Value::Int(6)
        );
    }

    #[test]
    fn ranges_and_membership() {
        let r = range(&Value::Int(1), &Value::Int(3), &Value::Undefined, 10).unwrap();
        assert_eq!(r.to_output(), "[1,2,3]");
        let r = range(&Value::str("a"), &Value::str("c"), &Value::Undefined, 10).unwrap();
        assert_eq!(r.to_output(), r#"["a","b","c"]"#);
        let r = range(&Value::Int(3), &Value::Int(1), &Value::Undefined, 10).unwrap();
        assert_eq!(r.to_output(), "[3,2,1]");
        assert!(range(&Value::Int(0), &Value::Int(1000), &Value::Undefined, 10).is_err());
        assert!(range(&Value::Int(0), &Value::Int(1), &Value::Int(0), 10).is_err());
        assert!(contains(&Value::str("hello"), &Value::str("ell")));
        assert!(contains(
            &Value::list(vec![Value::Int(1)]),
            &Value::str("1")
        ));
    }
}
