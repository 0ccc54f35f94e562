//! Catalogue functions (docs/catalogue.md): `cycle`, `random`, `attribute`, `min`, `max`,
//! `round`, `numberFormat`, `formatCurrency`, `jsonDecode`, `coalesce`, `contains`,
//! `addTag`, `removeTag`, `matchAnyTag`, `dump`. (`truncate`, `htmlToText` and
//! `extractEmails` live in the text module.)

use super::filters::{number_format, number_format_builtin, round_builtin, PhpNumber};
use super::typed::{convert_value, type_error, ArgType, Rest};
use super::{Registry, State};
use crate::error::{Error, ErrorKind};
use crate::value::{compare, loose_eq, write_json, Number, Value};
use rand::Rng;
use std::borrow::Cow;
use std::cmp::Ordering;

/// Registers this module's builtins.
pub fn register(r: &mut Registry) {
    r.declare_function(
        "cycle",
        &["values|list", "position|i"],
        |_: &mut dyn State, values: &Value, position: Option<i64>| {
            cycle(values, position.unwrap_or(0))
        },
    );
    r.declare_function(
        "random",
        &["values|list_or_max?", "max?"],
        |_: &mut dyn State, values: &Value, max: Option<i64>| random(values, max),
    );
    r.mark_non_deterministic("random");
    r.declare_function(
        "attribute",
        &["variable|object|obj", "attribute|key"],
        |_: &mut dyn State, v: &Value, attribute: &Value| match v.get_item(attribute) {
            Value::Undefined => Value::Null,
            v => v,
        },
    );
    r.declare_function(
        "min",
        &["value", "values..."],
        |_: &mut dyn State, value: &Value, Rest(values): Rest| {
            extreme(value, values, Ordering::Less)
        },
    );
    r.declare_function(
        "max",
        &["value", "values..."],
        |_: &mut dyn State, value: &Value, Rest(values): Rest| {
            extreme(value, values, Ordering::Greater)
        },
    );
    r.declare_function(
        "round",
        &["n", "precision?", "method?"],
        |_: &mut dyn State,
         PhpNumber(n): PhpNumber,
         precision: Option<i64>,
         method: Option<Cow<str>>| { round_builtin("round", n, precision, method) },
    );
    r.declare_function(
        "numberFormat",
        &["n", "decimals?", "dec_point?", "thousands_sep?"],
        |s: &mut dyn State,
         PhpNumber(n): PhpNumber,
         decimals: Option<i64>,
         point: Option<Cow<str>>,
         sep: Option<Cow<str>>| {
            number_format_builtin("numberFormat", s, n, decimals, point, sep)
        },
    );
    r.declare_function(
        "formatCurrency",
        &["amount", "symbol?", "decimals?"],
        format_currency,
    );
    r.declare_function("jsonDecode", &["text"], |_: &mut dyn State, v: &Value| {
        json_decode(v)
    });
    r.declare_function(
        "coalesce",
        &["values..."],
        |_: &mut dyn State, Rest(a): Rest| {
            a.iter()
                .find(|v| !v.is_null() && v.as_str() != Some(""))
                .cloned()
                .unwrap_or(Value::Null)
        },
    );
    r.declare_function(
        "contains",
        &["haystack", "needle"],
        |_: &mut dyn State, haystack: &Value, needle: &Value| contains(haystack, needle),
    );
    r.declare_function(
        "addTag",
        &["tags", "tag"],
        |_: &mut dyn State, Tags(tags): Tags, Tags(tag): Tags| add_tag(tags, tag),
    );
    r.declare_function(
        "removeTag",
        &["tags", "tag"],
        |_: &mut dyn State, Tags(tags): Tags, Tags(tag): Tags| remove_tag(tags, &tag),
    );
    r.declare_function(
        "matchAnyTag",
        &["tags", "candidates"],
        |_: &mut dyn State, Tags(tags): Tags, Tags(candidates): Tags| {
            let tags = tag_set(&tags);
            candidates.iter().any(|c| tags.contains(&tag_key(c)))
        },
    );
    r.declare_function("dump", &["value"], |s: &mut dyn State, v: &Value| {
        let mut out = String::new();
        write_json(&mut out, v, Some(0));
        s.check_size(out.len())?;
        Ok::<_, Error>(Value::str(out))
    });
}

fn cycle(values: &Value, pos: i64) -> Result<Value, Error> {
    let items: Vec<&Value> = match values {
        Value::List(_) | Value::Map(_) => values.iter_values().collect(),
        other => return Ok(other.clone()),
    };
    if items.is_empty() {
        return Err(Error::new(
            ErrorKind::InvalidArgument,
            "cycle: the list of values must not be empty",
        ));
    }
    let len = i64::try_from(items.len()).unwrap_or(i64::MAX);
    let i = usize::try_from(pos.rem_euclid(len)).unwrap_or(0);
    Ok(items.get(i).map_or(Value::Null, |v| (*v).clone()))
}

/// Twig `random`: no argument → an integer in `0..=2147483647`; an integer `n` →
/// `0..=n` (or `n..=0`); two integers → that range; a string → one of its characters;
/// a list or map → one of its items.
fn random(values: &Value, max: Option<i64>) -> Result<Value, Error> {
    let range = |lo: i64, hi: i64| {
        let (lo, hi) = if lo <= hi { (lo, hi) } else { (hi, lo) };
        Value::Int(crate::clock::with_rng(|r| r.gen_range(lo..=hi)))
    };
    match values {
        Value::Undefined | Value::Null => {
            let hi = max.unwrap_or(2_147_483_647);
            Ok(range(0, hi))
        }
        Value::Int(_) | Value::Float(_) => {
            let lo = values.as_f64().unwrap_or(0.0) as i64;
            match max {
                Some(hi) => Ok(range(lo, hi)),
                None => Ok(range(0, lo)),
            }
        }
        Value::List(_) | Value::Map(_) => {
            let items: Vec<&Value> = values.iter_values().collect();
            if items.is_empty() {
                return Err(Error::new(
                    ErrorKind::InvalidArgument,
                    "random: cannot pick from an empty list",
                ));
            }
            let i = crate::clock::with_rng(|r| r.gen_range(0..items.len()));
            Ok(items.get(i).map_or(Value::Null, |v| (*v).clone()))
        }
        Value::Callable(_) => Err(type_error(
            "random",
            "values",
            "a list, a string or a number",
            values,
        )),
        other => {
            let chars: Vec<char> = other.to_output().chars().collect();
            if chars.is_empty() {
                return Ok(Value::str(""));
            }
            let i = crate::clock::with_rng(|r| r.gen_range(0..chars.len()));
            Ok(chars
                .get(i)
                .map_or(Value::str(""), |c| Value::str(c.to_string())))
        }
    }
}

/// `min`/`max`: over the arguments, or over the items of a single list or map
/// argument; PHP ordering; the first of equal extremes wins; `null` when empty.
fn extreme(value: &Value, values: &[Value], want: Ordering) -> Value {
    let items: Vec<&Value> = match (value, values) {
        (Value::List(_) | Value::Map(_), []) => value.iter_values().collect(),
        _ => std::iter::once(value).chain(values).collect(),
    };
    let mut best: Option<&Value> = None;
    for v in items {
        match best {
            Some(b) if compare(v, b) != want => {}
            _ => best = Some(v),
        }
    }
    best.cloned().unwrap_or(Value::Null)
}

/// `formatCurrency(amount, symbol = "$", decimals = 2)`: the symbol, then the
/// formatted absolute amount; a negative amount gets its `-` before the symbol.
fn format_currency(
    state: &mut dyn State,
    n: Number,
    symbol: Option<Cow<str>>,
    decimals: Option<i64>,
) -> Result<Value, Error> {
    let symbol = symbol.unwrap_or(Cow::Borrowed("$"));
    let decimals = decimals.unwrap_or(2);
    if !(0..=100).contains(&decimals) {
        return Err(Error::new(
            ErrorKind::InvalidArgument,
            format!("formatCurrency: decimals must be between 0 and 100, got {decimals}"),
        ));
    }
    let text = number_format(n, decimals, ".", ",");
    let out = match text.strip_prefix('-') {
        Some(abs) => format!("-{symbol}{abs}"),
        None => format!("{symbol}{text}"),
    };
    state.check_size(out.len())?;
    Ok(Value::str(out))
}

/// `jsonDecode(text)`: the decoded value, or `null` for invalid JSON (including
/// nesting deeper than 128 levels). Lists and maps pass through unchanged.
fn json_decode(v: &Value) -> Result<Value, Error> {
    match v {
        Value::List(_) | Value::Map(_) => Ok(v.clone()),
        Value::Undefined | Value::Null => Ok(Value::Null),
        Value::Callable(_) => Err(type_error("jsonDecode", "text", "a string", v)),
        other => {
            let text = other.to_output();
            Ok(serde_json::from_str::<serde_json::Value>(&text)
                .map(Value::from)
                .unwrap_or(Value::Null))
        }
    }
}

/// `contains(haystack, needle)`: substring test for strings (case-sensitive), loose
/// membership for lists and map values; `false` for `null`.
fn contains(haystack: &Value, needle: &Value) -> Result<bool, Error> {
    match haystack {
        Value::Undefined | Value::Null => Ok(false),
        Value::List(_) | Value::Map(_) => Ok(haystack.iter_values().any(|v| loose_eq(v, needle))),
        Value::Callable(_) => Err(type_error(
            "contains",
            "haystack",
            "a string or a list",
            haystack,
        )),
        other => {
            let n = convert_value::<Cow<str>>("contains", "needle", needle)?;
            Ok(other.to_cow_str().contains(&*n))
        }
    }
}

/// Tags as strings: a list (items printed, `null` items skipped), a comma-separated
/// string, or `null` (none).
struct Tags(Vec<String>);

impl<'a> ArgType<'a> for Tags {
    type Output = Tags;
    fn from_arg(v: &'a Value) -> Result<Tags, &'static str> {
        Self::from_args_at(std::slice::from_ref(v), 0).map_err(|(_, e)| e)
    }
    fn type_name() -> &'static str {
        "tags"
    }
    /// A bad item of a list is named as the value that was wrong.
    fn from_args_at(args: &'a [Value], i: usize) -> Result<Tags, (&'a Value, &'static str)> {
        const WANT: &str = "a list of tags or a string";
        let v = super::typed::arg(args, i);
        let tags = match v {
            Value::Undefined | Value::Null => Ok(Vec::new()),
            Value::List(l) => l
                .iter()
                .filter(|t| !t.is_null())
                .map(|t| match t {
                    Value::List(_) | Value::Map(_) | Value::Callable(_) => Err((t, WANT)),
                    other => Ok(other.to_output()),
                })
                .collect(),
            Value::Map(_) | Value::Callable(_) => Err((v, WANT)),
            other => Ok(other
                .to_output()
                .split(',')
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .map(String::from)
                .collect()),
        };
        tags.map(Tags)
    }
}

/// What makes two tags the same: trimmed, case-insensitive.
fn tag_key(t: &str) -> String {
    t.trim().to_lowercase()
}

/// The tags' keys as a set: lookups stay linear however many tags there are.
fn tag_set(tags: &[String]) -> std::collections::HashSet<String> {
    tags.iter().map(|t| tag_key(t)).collect()
}

/// `addTag(tags, tag)`: the tags plus each new tag not already present (case-insensitive).
fn add_tag(mut out: Vec<String>, tag: Vec<String>) -> Value {
    let mut seen = tag_set(&out);
    for t in tag {
        if seen.insert(tag_key(&t)) {
            out.push(t);
        }
    }
    out.into_iter().map(Value::from).collect()
}

/// `removeTag(tags, tag)`: the tags without any equal to `tag` (case-insensitive).
fn remove_tag(tags: Vec<String>, tag: &[String]) -> Value {
    let remove = tag_set(tag);
    tags.into_iter()
        .filter(|t| !remove.contains(&tag_key(t)))
        .map(Value::from)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::filters::test_support::{call, j};
    use super::*;

    fn f(name: &str, args: &[Value]) -> String {
        match call("function", name, args) {
            Ok(v) => v.to_output(),
            Err(e) => format!("ERR {}", e.message()),
        }
    }

    #[test]
    fn functions() {
        assert_eq!(f("cycle", &[j(r#"["a","b"]"#), Value::Int(3)]), "b");
        assert_eq!(f("cycle", &[j(r#"["a","b"]"#), Value::Int(-1)]), "b");
        assert!(f("cycle", &[j("[]"), Value::Int(0)]).contains("must not be empty"));
        assert_eq!(f("random", &[j("[7]")]), "7");
        assert_eq!(f("random", &[Value::Int(0)]), "0");
        assert_eq!(f("random", &[Value::Int(5), Value::Int(5)]), "5");
        assert_eq!(f("random", &[Value::str("é")]), "é");
        assert_eq!(
            f("attribute", &[j(r#"{"a":{"b":1}}"#), Value::str("a")]),
            r#"{"b":1}"#
        );
        assert_eq!(
            f("max", &[Value::Int(1), Value::Int(3), Value::Int(2)]),
            "3"
        );
        assert_eq!(f("min", &[j("[4, 2, 8]")]), "2");
        assert_eq!(f("max", &[j(r#"["apple","pear"]"#)]), "pear");
        assert_eq!(f("max", &[]), "");
        assert_eq!(f("round", &[Value::Float(3.146), Value::Int(2)]), "3.15");
        assert_eq!(
            f("numberFormat", &[Value::Float(1234.5), Value::Int(2)]),
            "1,234.50"
        );
        assert_eq!(
            f("formatCurrency", &[Value::Int(2500), Value::str("€")]),
            "€2,500.00"
        );
        assert_eq!(f("formatCurrency", &[Value::Float(-5.5)]), "-$5.50");
        assert_eq!(
            f("jsonDecode", &[Value::str(r#"{"a":[1,2]}"#)]),
            r#"{"a":[1,2]}"#
        );
        assert_eq!(f("jsonDecode", &[Value::str("{bad")]), "");
        let deep = "[".repeat(1000) + &"]".repeat(1000);
        assert_eq!(
            call("function", "jsonDecode", &[Value::str(deep)])
                .map(|v| v.is_null())
                .ok(),
            Some(true)
        );
        assert_eq!(
            f(
                "coalesce",
                &[Value::Null, Value::str(""), Value::Int(0), Value::Int(1)]
            ),
            "0"
        );
        assert_eq!(
            f("contains", &[Value::str("hello"), Value::str("ell")]),
            "1"
        );
        assert_eq!(f("contains", &[j("[1,2]"), Value::str("2")]), "1");
        assert_eq!(f("contains", &[Value::Null, Value::str("x")]), "");
        assert_eq!(
            f("addTag", &[j(r#"["vip"]"#), Value::str("VIP")]),
            r#"["vip"]"#
        );
        assert_eq!(f("addTag", &[Value::Null, Value::str("new")]), r#"["new"]"#);
        assert_eq!(
            f("removeTag", &[j(r#"["a","B"]"#), Value::str("b")]),
            r#"["a"]"#
        );
        assert_eq!(
            f(
                "matchAnyTag",
                &[j(r#"["Lead","vip"]"#), j(r#"["x","LEAD"]"#)]
            ),
            "1"
        );
        assert_eq!(
            f("dump", &[j(r#"{"a":[1]}"#)]),
            "{\n    \"a\": [\n        1\n    ]\n}"
        );
    }
}
