//! PHP 8 comparison: loose `==`, ordering for `<`, `>`, `<=>` and sorting, strict `same as`.

use super::{parse_numeric, Number, Value};
use std::cmp::Ordering;

/// PHP 8 loose equality (`==`): numeric strings compare as numbers, `null == false == ""`,
/// `"abc" == 0` is false, lists and maps compare key by key.
pub fn loose_eq(a: &Value, b: &Value) -> bool {
    use Value::*;
    match (a, b) {
        (Undefined | Null, Undefined | Null) => true,
        (Bool(x), other) | (other, Bool(x)) => *x == other.is_truthy(),
        (Undefined | Null, Str(s) | Safe(s)) | (Str(s) | Safe(s), Undefined | Null) => s.is_empty(),
        (Undefined | Null, other) | (other, Undefined | Null) => !other.is_truthy(),
        (Int(x), Int(y)) => x == y,
        (Int(_) | Float(_), Int(_) | Float(_)) => num_cmp(num(a), num(b)) == Some(Ordering::Equal),
        (Int(_) | Float(_), Str(s) | Safe(s)) | (Str(s) | Safe(s), Int(_) | Float(_)) => {
            let n = if a.is_number() { a } else { b };
            match parse_numeric(s) {
                Some(sn) => num_cmp(num(n), sn) == Some(Ordering::Equal),
                None => n.to_output() == **s,
            }
        }
        (Str(x) | Safe(x), Str(y) | Safe(y)) => match (parse_numeric(x), parse_numeric(y)) {
            (Some(p), Some(q)) => num_cmp(p, q) == Some(Ordering::Equal),
            _ => x == y,
        },
        (List(x), List(y)) => {
            x.len() == y.len() && x.iter().zip(y.iter()).all(|(p, q)| loose_eq(p, q))
        }
        (Map(x), Map(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| loose_eq(v, w)))
        }
        (List(l), Map(m)) | (Map(m), List(l)) => {
            l.len() == m.len()
                && l.iter().enumerate().all(|(i, v)| {
                    m.get(i.to_string().as_str())
                        .is_some_and(|w| loose_eq(v, w))
                })
        }
        (Callable(x), Callable(y)) => std::sync::Arc::ptr_eq(&x.inner, &y.inner),
        _ => false,
    }
}

/// Strict equality (`same as`, PHP `===`): same type and same value; `1` is not `1.0`.
pub fn strict_eq(a: &Value, b: &Value) -> bool {
    use Value::*;
    match (a, b) {
        (Undefined | Null, Undefined | Null) => true,
        (Bool(x), Bool(y)) => x == y,
        (Int(x), Int(y)) => x == y,
        (Float(x), Float(y)) => x == y,
        (Str(x) | Safe(x), Str(y) | Safe(y)) => x == y,
        (List(x), List(y)) => {
            x.len() == y.len() && x.iter().zip(y.iter()).all(|(p, q)| strict_eq(p, q))
        }
        (Map(x), Map(y)) => {
            x.len() == y.len()
                && x.iter()
                    .zip(y.iter())
                    .all(|((k, v), (l, w))| k == l && strict_eq(v, w))
        }
        (Callable(x), Callable(y)) => std::sync::Arc::ptr_eq(&x.inner, &y.inner),
        _ => false,
    }
}

/// PHP 8 ordering, as used by `<`, `>`, `<=`, `>=`, `<=>` and `sort`:
/// numbers numerically, numeric strings as numbers, other strings byte-wise,
/// booleans and null by truthiness, lists and maps by size then item by item,
/// and a list or map is greater than any scalar. Uncomparable pairs (NaN) give `Greater`.
pub fn compare(a: &Value, b: &Value) -> Ordering {
    use Value::*;
    match (a, b) {
        (Undefined | Null, Undefined | Null) => Ordering::Equal,
        (Bool(_), _) | (_, Bool(_)) => a.is_truthy().cmp(&b.is_truthy()),
        (Undefined | Null, Str(s) | Safe(s)) => "".cmp(&**s),
        (Str(s) | Safe(s), Undefined | Null) => (**s).cmp(""),
        (Undefined | Null, _) | (_, Undefined | Null) => a.is_truthy().cmp(&b.is_truthy()),
        (Int(x), Int(y)) => x.cmp(y),
        (Int(_) | Float(_), Int(_) | Float(_)) => {
            num_cmp(num(a), num(b)).unwrap_or(Ordering::Greater)
        }
        (Int(_) | Float(_), Str(s) | Safe(s)) => match parse_numeric(s) {
            Some(sn) => num_cmp(num(a), sn).unwrap_or(Ordering::Greater),
            None => a.to_output().as_str().cmp(&**s),
        },
        (Str(s) | Safe(s), Int(_) | Float(_)) => match parse_numeric(s) {
            Some(sn) => num_cmp(sn, num(b)).unwrap_or(Ordering::Greater),
            None => (**s).cmp(b.to_output().as_str()),
        },
        (Str(x) | Safe(x), Str(y) | Safe(y)) => match (parse_numeric(x), parse_numeric(y)) {
            (Some(p), Some(q)) => num_cmp(p, q).unwrap_or(Ordering::Greater),
            _ => x.as_bytes().cmp(y.as_bytes()),
        },
        (List(x), List(y)) => x.len().cmp(&y.len()).then_with(|| {
            x.iter()
                .zip(y.iter())
                .map(|(p, q)| compare(p, q))
                .find(|o| *o != Ordering::Equal)
                .unwrap_or(Ordering::Equal)
        }),
        (Map(x), Map(y)) => x.len().cmp(&y.len()).then_with(|| {
            for (k, v) in x.iter() {
                match y.get(k) {
                    Some(w) => match compare(v, w) {
                        Ordering::Equal => {}
                        o => return o,
                    },
                    None => return Ordering::Greater,
                }
            }
            Ordering::Equal
        }),
        (List(_) | Map(_), _) => Ordering::Greater,
        (_, List(_) | Map(_)) => Ordering::Less,
        _ => Ordering::Equal,
    }
}

fn num(v: &Value) -> Number {
    match v {
        Value::Int(i) => Number::Int(*i),
        Value::Float(f) => Number::Float(*f),
        _ => Number::Int(0),
    }
}

fn num_cmp(a: Number, b: Number) -> Option<Ordering> {
    match (a, b) {
        (Number::Int(x), Number::Int(y)) => Some(x.cmp(&y)),
        (x, y) => x.as_f64().partial_cmp(&y.as_f64()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(x: &str) -> Value {
        Value::str(x)
    }

    #[test]
    fn php8_loose_equality() {
        assert!(loose_eq(&s("1"), &s("01")));
        assert!(loose_eq(&s("10"), &s("1e1")));
        assert!(loose_eq(&Value::Int(100), &s("1e2")));
        assert!(loose_eq(&Value::Null, &Value::Bool(false)));
        assert!(loose_eq(&Value::Null, &s("")));
        assert!(!loose_eq(&s("abc"), &Value::Int(0)));
        assert!(!loose_eq(&Value::Null, &s("0")));
        assert!(loose_eq(&Value::Null, &Value::Int(0)));
        assert!(loose_eq(&Value::Int(1), &Value::Float(1.0)));
        assert!(!loose_eq(&s("abc"), &s("ABC")));
        assert!(loose_eq(
            &Value::list(vec![Value::Int(1)]),
            &Value::list(vec![s("1")])
        ));
    }

    #[test]
    fn php8_ordering() {
        assert_eq!(compare(&s("10"), &s("9")), Ordering::Greater);
        assert_eq!(compare(&s("abc"), &s("abd")), Ordering::Less);
        assert_eq!(compare(&Value::Int(2), &Value::Float(2.5)), Ordering::Less);
        assert_eq!(
            compare(&Value::list(vec![]), &Value::Int(5)),
            Ordering::Greater
        );
    }

    #[test]
    fn strict() {
        assert!(!strict_eq(&Value::Int(1), &Value::Float(1.0)));
        assert!(strict_eq(&s("a"), &Value::safe("a")));
    }
}
