//! Printing values: PHP `echo` for scalars, compact JSON for lists and maps.

use super::Value;
use std::fmt::Write;

/// Appends the printed form of `v` (docs/language.md §2.6) to `out`.
pub fn write_value(out: &mut String, v: &Value) {
    match v {
        Value::Undefined | Value::Null | Value::Bool(false) => {}
        Value::Bool(true) => out.push('1'),
        Value::Int(i) => {
            let _ = write!(out, "{i}");
        }
        Value::Float(f) => format_float(out, *f),
        Value::Str(s) | Value::Safe(s) => out.push_str(s),
        Value::List(_) | Value::Map(_) => write_json(out, v, None),
        Value::Callable(_) => {}
    }
}

/// Appends a float the way PHP's `echo` prints it (`precision = 14`):
/// `3.0` → `3`, `0.1 + 0.2` → `0.3`, `1e25` → `1.0E+25`, `INF`, `NAN`.
pub fn format_float(out: &mut String, f: f64) {
    if f.is_nan() {
        out.push_str("NAN");
        return;
    }
    if f.is_infinite() {
        out.push_str(if f > 0.0 { "INF" } else { "-INF" });
        return;
    }
    if f == 0.0 {
        out.push_str(if f.is_sign_negative() { "-0" } else { "0" });
        return;
    }
    // 14 significant digits, rounded: d.ddddddddddddde<exp>
    let sci = format!("{:.13e}", f);
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let negative = mantissa.starts_with('-');
    let digits: String = mantissa.chars().filter(|c| c.is_ascii_digit()).collect();
    let digits = digits.trim_end_matches('0');
    let digits = if digits.is_empty() { "0" } else { digits };
    if negative {
        out.push('-');
    }
    if (-4..14).contains(&exp) {
        if exp < 0 {
            out.push_str("0.");
            for _ in 0..(-exp - 1) {
                out.push('0');
            }
            out.push_str(digits);
        } else {
            let int_len = exp as usize + 1;
            if digits.len() <= int_len {
                out.push_str(digits);
                for _ in digits.len()..int_len {
                    out.push('0');
                }
            } else {
                out.push_str(&digits[..int_len]);
                out.push('.');
                out.push_str(&digits[int_len..]);
            }
        }
    } else {
        out.push_str(&digits[..1]);
        out.push('.');
        out.push_str(if digits.len() > 1 { &digits[1..] } else { "0" });
        let _ = write!(out, "E{}{}", if exp < 0 { '-' } else { '+' }, exp.abs());
    }
}

/// A float as PHP's `json_encode` writes it (`serialize_precision = -1`): the shortest
/// round-trip digits; integral values without `.0` (`2.0` → `2`); exponent form when
/// the decimal point would sit more than 17 digits out or 4 zeros in (`1.0e+20`, `1.5e-7`).
pub fn write_json_float(out: &mut String, f: f64) {
    if !f.is_finite() {
        out.push('0');
        return;
    }
    if f.is_sign_negative() {
        out.push('-');
    }
    let a = f.abs();
    if a == 0.0 {
        out.push('0');
        return;
    }
    let e = format!("{a:e}");
    let (mant, exp) = e.split_once('e').unwrap_or((&e, "0"));
    let exp: i64 = exp.parse().unwrap_or(0);
    let digits: String = mant.chars().filter(|c| *c != '.').collect();
    let decpt = exp + 1;
    if !(-3..=17).contains(&decpt) {
        let (first, rest) = digits.split_at(1);
        let rest = if rest.is_empty() { "0" } else { rest };
        let sign = if exp < 0 { '-' } else { '+' };
        let _ = write!(out, "{first}.{rest}e{sign}{}", exp.unsigned_abs());
    } else if decpt <= 0 {
        out.push_str("0.");
        out.extend(std::iter::repeat_n('0', decpt.unsigned_abs() as usize));
        out.push_str(&digits);
    } else {
        let d = decpt as usize;
        if digits.len() <= d {
            out.push_str(&digits);
            out.extend(std::iter::repeat_n('0', d - digits.len()));
        } else {
            out.push_str(&digits[..d]);
            out.push('.');
            out.push_str(&digits[d..]);
        }
    }
}

/// Appends `v` as JSON. `indent: None` is compact; `Some(0)` pretty-prints with
/// 4-space indentation (PHP `JSON_PRETTY_PRINT`). `/` and non-ASCII stay as they are.
/// Floats use the shortest round-trip form (`3.0`, `0.30000000000000004`).
pub fn write_json(out: &mut String, v: &Value, indent: Option<usize>) {
    let style = JsonStyle {
        pretty: indent.is_some(),
        ..JsonStyle::default()
    };
    write_json_styled(out, v, &style, indent, usize::MAX);
}

/// The PHP `json_encode` flags that change what [`write_json_styled`] writes (the others are
/// accepted and ignored: `/` and non-ASCII characters are always written as they are).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct JsonStyle {
    /// `JSON_PRETTY_PRINT` (128): 4-space indentation.
    pub pretty: bool,
    /// `JSON_FORCE_OBJECT` (16): lists are written as objects keyed `"0"`, `"1"`, ….
    pub force_object: bool,
    /// `JSON_HEX_TAG` (1), `JSON_HEX_AMP` (2), `JSON_HEX_APOS` (4), `JSON_HEX_QUOT` (8):
    /// `<` `>`, `&`, `'`, `"` in strings are written `\u003C`-style.
    pub hex: u8,
    /// `JSON_PRESERVE_ZERO_FRACTION` (1024): `2.0` is written `2.0`, not `2`.
    pub zero_fraction: bool,
}

impl JsonStyle {
    /// The style of PHP `json_encode` flags (a bit set).
    pub(crate) fn from_flags(flags: i64) -> JsonStyle {
        JsonStyle {
            pretty: flags & 128 != 0,
            force_object: flags & 16 != 0,
            hex: (flags & 0b1111) as u8,
            zero_fraction: flags & 1024 != 0,
        }
    }
}

/// Appends `v` as JSON in `style`, `indent` levels deep when pretty. Lists and maps may
/// nest `depth` levels (PHP's `depth`: `[1]` needs 1, `[[1]]` 2); false when deeper, with
/// `out` left partly written (PHP's `json_encode` then returns `false`).
pub(crate) fn write_json_styled(
    out: &mut String,
    v: &Value,
    style: &JsonStyle,
    indent: Option<usize>,
    depth: usize,
) -> bool {
    let inner = indent.map(|n| n + 1);
    match v {
        Value::Undefined | Value::Null | Value::Callable(_) => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Int(i) => {
            let _ = write!(out, "{i}");
        }
        Value::Float(f) => {
            let start = out.len();
            write_json_float(out, *f);
            if style.zero_fraction && f.is_finite() && !out[start..].contains(['.', 'e']) {
                out.push_str(".0");
            }
        }
        Value::Str(s) | Value::Safe(s) => write_json_str_hex(out, s, style.hex),
        Value::List(_) | Value::Map(_) if depth == 0 => return false,
        Value::List(l) if !style.force_object => {
            if l.is_empty() {
                out.push_str("[]");
                return true;
            }
            out.push('[');
            for (i, item) in l.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                newline(out, inner);
                if !write_json_styled(out, item, style, inner, depth - 1) {
                    return false;
                }
            }
            newline(out, indent);
            out.push(']');
        }
        Value::List(l) => {
            let entries = l
                .iter()
                .enumerate()
                .map(|(i, item)| (std::borrow::Cow::Owned(i.to_string()), item));
            return write_json_object(out, entries, l.is_empty(), style, indent, depth);
        }
        Value::Map(m) => {
            let entries = m
                .iter()
                .map(|(k, item)| (std::borrow::Cow::Borrowed(&**k), item));
            return write_json_object(out, entries, m.is_empty(), style, indent, depth);
        }
    }
    true
}

/// Appends the entries of a map (or of a list written as an object) as a JSON object.
fn write_json_object<'a>(
    out: &mut String,
    entries: impl Iterator<Item = (std::borrow::Cow<'a, str>, &'a Value)>,
    empty: bool,
    style: &JsonStyle,
    indent: Option<usize>,
    depth: usize,
) -> bool {
    if empty {
        out.push_str("{}");
        return true;
    }
    let inner = indent.map(|n| n + 1);
    out.push('{');
    for (i, (k, item)) in entries.enumerate() {
        if i > 0 {
            out.push(',');
        }
        newline(out, inner);
        write_json_str_hex(out, &k, style.hex);
        out.push(':');
        if indent.is_some() {
            out.push(' ');
        }
        if !write_json_styled(out, item, style, inner, depth - 1) {
            return false;
        }
    }
    newline(out, indent);
    out.push('}');
    true
}

fn newline(out: &mut String, indent: Option<usize>) {
    if let Some(n) = indent {
        out.push('\n');
        for _ in 0..n {
            out.push_str("    ");
        }
    }
}

/// Appends a JSON string literal.
pub fn write_json_str(out: &mut String, s: &str) {
    write_json_str_hex(out, s, 0)
}

/// Appends a JSON string literal; `hex` holds the `JSON_HEX_*` bits of [`JsonStyle`].
fn write_json_str_hex(out: &mut String, s: &str, hex: u8) {
    out.push('"');
    let mut start = 0;
    for (i, b) in s.bytes().enumerate() {
        let esc: &str = match b {
            b'"' if hex & 8 != 0 => "\\u0022",
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0x08 => "\\b",
            0x0c => "\\f",
            0..=0x1f => "",
            b'<' if hex & 1 != 0 => "\\u003C",
            b'>' if hex & 1 != 0 => "\\u003E",
            b'&' if hex & 2 != 0 => "\\u0026",
            b'\'' if hex & 4 != 0 => "\\u0027",
            _ => continue,
        };
        out.push_str(&s[start..i]);
        if esc.is_empty() {
            let _ = write!(out, "\\u{:04x}", b);
        } else {
            out.push_str(esc);
        }
        start = i + 1;
    }
    out.push_str(&s[start..]);
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::value::Map;

    fn float(f: f64) -> String {
        let mut s = String::new();
        format_float(&mut s, f);
        s
    }

    #[test]
    fn php_float_echo() {
        assert_eq!(float(3.0), "3");
        assert_eq!(float(0.1 + 0.2), "0.3");
        assert_eq!(float(1.0 / 3.0), "0.33333333333333");
        assert_eq!(float(-2.5), "-2.5");
        assert_eq!(float(1e25), "1.0E+25");
        assert_eq!(float(1e14), "1.0E+14");
        assert_eq!(float(1e13), "10000000000000");
        assert_eq!(float(0.0001), "0.0001");
        assert_eq!(float(0.00001), "1.0E-5");
        assert_eq!(float(1.5e-7), "1.5E-7");
        assert_eq!(float(1234.5), "1234.5");
        assert_eq!(float(f64::INFINITY), "INF");
        assert_eq!(float(-0.0), "-0");
    }

    #[test]
    fn json_compact_and_pretty() {
        let mut m = Map::new();
        m.insert(
            "a/b".into(),
            Value::list(vec![Value::Int(1), Value::Float(2.0), Value::str("é\n")]),
        );
        m.insert("e".into(), Value::empty_map());
        let v = Value::map(m);
        let mut s = String::new();
        write_json(&mut s, &v, None);
        assert_eq!(s, r#"{"a/b":[1,2,"é\n"],"e":{}}"#);
        let mut p = String::new();
        write_json(&mut p, &v, Some(0));
        assert_eq!(
            p,
            "{\n    \"a/b\": [\n        1,\n        2,\n        \"é\\n\"\n    ],\n    \"e\": {}\n}"
        );
    }
}
