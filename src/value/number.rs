//! Numbers and PHP 8 numeric strings.

/// An integer or a float.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Number {
    /// An integer.
    Int(i64),
    /// A float.
    Float(f64),
}

impl Number {
    /// The number as a float.
    pub fn as_f64(self) -> f64 {
        match self {
            Number::Int(i) => i as f64,
            Number::Float(f) => f,
        }
    }
}

impl From<Number> for super::Value {
    fn from(n: Number) -> super::Value {
        match n {
            Number::Int(i) => super::Value::Int(i),
            Number::Float(f) => super::Value::Float(f),
        }
    }
}

/// Parses a PHP 8 numeric string: optional surrounding whitespace, optional sign,
/// digits with an optional fraction and exponent (`"12"`, `" 1.5 "`, `"1e3"`, `".5"`).
/// Integers that overflow become floats. Hex, octal and `"1_000"` are not numeric.
pub fn parse_numeric(s: &str) -> Option<Number> {
    let t = s.trim_matches(|c: char| matches!(c, ' ' | '\t' | '\n' | '\r' | '\x0b' | '\x0c'));
    let b = t.as_bytes();
    if b.is_empty() {
        return None;
    }
    let mut i = 0;
    if b[0] == b'+' || b[0] == b'-' {
        i = 1;
    }
    let int_start = i;
    while i < b.len() && b[i].is_ascii_digit() {
        i += 1;
    }
    let int_digits = i - int_start;
    let mut is_float = false;
    let mut frac_digits = 0;
    if i < b.len() && b[i] == b'.' {
        is_float = true;
        i += 1;
        let fs = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        frac_digits = i - fs;
    }
    if int_digits == 0 && frac_digits == 0 {
        return None;
    }
    if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
        let mut j = i + 1;
        if j < b.len() && (b[j] == b'+' || b[j] == b'-') {
            j += 1;
        }
        let es = j;
        while j < b.len() && b[j].is_ascii_digit() {
            j += 1;
        }
        if j == es {
            return None;
        }
        is_float = true;
        i = j;
    }
    if i != b.len() {
        return None;
    }
    if !is_float {
        if let Ok(v) = t.parse::<i64>() {
            return Some(Number::Int(v));
        }
    }
    t.parse::<f64>().ok().map(Number::Float)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numeric_strings() {
        assert_eq!(parse_numeric("12"), Some(Number::Int(12)));
        assert_eq!(parse_numeric(" 12 "), Some(Number::Int(12)));
        assert_eq!(parse_numeric("-1.5"), Some(Number::Float(-1.5)));
        assert_eq!(parse_numeric("1e1"), Some(Number::Float(10.0)));
        assert_eq!(parse_numeric(".5"), Some(Number::Float(0.5)));
        assert_eq!(parse_numeric("1."), Some(Number::Float(1.0)));
        assert_eq!(
            parse_numeric("99999999999999999999"),
            Some(Number::Float(1e20))
        );
        for bad in ["", " ", "abc", "1a", "0x1A", "1e", ".", "-", "1_000", "e5"] {
            assert_eq!(parse_numeric(bad), None, "{bad:?}");
        }
    }
}
