//! Catalogue functions (docs/catalogue.md): `cycle`, `random`, `attribute`, `min`, `max`,
//! `round`, `numberFormat`, `formatCurrency`, `jsonDecode`, `coalesce`, `contains`,
//! `addTag`, `removeTag`, `matchAnyTag`, `dump`. (`truncate`, `htmlToText` and
//! `extractEmails` live in the text module.)

use super::args::{arg, expect_number, expect_string, opt_i64};
use super::filters::{number_format, number_format_builtin, round_builtin};
use super::{Registry, State};
use crate::error::{Error, ErrorKind};
use crate::value::{compare, loose_eq, write_json, Value};
use rand::Rng;
use std::cmp::Ordering;

/// Registers this module's builtins.
pub fn register(r: &mut Registry) {
    r.function("cycle", &["values|list", "position|i"], |_, a| {
        cycle(arg(a, 0), arg(a, 1))
    });
    r.function("random", &["values|list_or_max?", "max?"], |_, a| {
        random(arg(a, 0), arg(a, 1))
    });
    r.mark_non_deterministic("random");
    r.function("attribute", &["object|obj", "attribute|key"], |_, a| {
        Ok(match arg(a, 0).get_item(arg(a, 1)) {
            Value::Undefined => Value::Null,
            v => v,
        })
    });
    r.function("min", &["value", "values..."], |_, a| {
        Ok(extreme(a, Ordering::Less))
    });
    r.function("max", &["value", "values..."], |_, a| {
        Ok(extreme(a, Ordering::Greater))
    });
    r.function("round", &["n", "precision?", "method?"], |_, a| {
        round_builtin("round", arg(a, 0), arg(a, 1), arg(a, 2))
    });
    r.function(
        "numberFormat",
        &["n", "decimals?", "dec_point?", "thousands_sep?"],
        |s, a| number_format_builtin("numberFormat", s, a),
    );
    r.function(
        "formatCurrency",
        &["amount", "symbol?", "decimals?"],
        format_currency,
    );
    r.function("jsonDecode", &["text"], |_, a| json_decode(arg(a, 0)));
    r.function("coalesce", &["..."], |_, a| {
        Ok(a.iter()
            .find(|v| !v.is_null() && v.as_str() != Some(""))
            .cloned()
            .unwrap_or(Value::Null))
    });
    r.function("contains", &["haystack", "needle"], |_, a| {
        contains(arg(a, 0), arg(a, 1)).map(Value::Bool)
    });
    r.function("addTag", &["tags", "tag"], |_, a| {
        add_tag(arg(a, 0), arg(a, 1))
    });
    r.function("removeTag", &["tags", "tag"], |_, a| {
        remove_tag(arg(a, 0), arg(a, 1))
    });
    r.function("matchAnyTag", &["tags", "candidates"], |_, a| {
        let tags = tag_set(&tag_list("matchAnyTag", "tags", arg(a, 0))?);
        let candidates = tag_list("matchAnyTag", "candidates", arg(a, 1))?;
        Ok(Value::Bool(
            candidates.iter().any(|c| tags.contains(&tag_key(c))),
        ))
    });
    r.function("dump", &["value"], |s, a| {
        let mut out = String::new();
        write_json(&mut out, arg(a, 0), Some(0));
        s.check_size(out.len())?;
        Ok(Value::str(out))
    });
}

fn cycle(values: &Value, position: &Value) -> Result<Value, Error> {
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
    let pos = opt_i64("cycle", "position", position)?.unwrap_or(0);
    let len = i64::try_from(items.len()).unwrap_or(i64::MAX);
    let i = usize::try_from(pos.rem_euclid(len)).unwrap_or(0);
    Ok(items.get(i).map_or(Value::Null, |v| (*v).clone()))
}

/// Twig `random`: no argument → an integer in `0..=2147483647`; an integer `n` →
/// `0..=n` (or `n..=0`); two integers → that range; a string → one of its characters;
/// a list or map → one of its items.
fn random(values: &Value, max: &Value) -> Result<Value, Error> {
    let range = |lo: i64, hi: i64| {
        let (lo, hi) = if lo <= hi { (lo, hi) } else { (hi, lo) };
        Value::Int(crate::clock::with_rng(|r| r.gen_range(lo..=hi)))
    };
    match values {
        Value::Undefined | Value::Null => {
            let hi = opt_i64("random", "max", max)?.unwrap_or(2_147_483_647);
            Ok(range(0, hi))
        }
        Value::Int(_) | Value::Float(_) => {
            let lo = expect_number("random", "min", values)?.as_f64() as i64;
            match opt_i64("random", "max", max)? {
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
        Value::Callable(_) => Err(Error::new(
            ErrorKind::Type,
            "random: the argument must be a list, a string or a number, got a function",
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
fn extreme(args: &[Value], want: Ordering) -> Value {
    let items: Vec<&Value> = match args {
        [single @ (Value::List(_) | Value::Map(_))] => single.iter_values().collect(),
        _ => args.iter().collect(),
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
fn format_currency(state: &mut dyn State, a: &[Value]) -> Result<Value, Error> {
    let n = expect_number("formatCurrency", "amount", arg(a, 0))?;
    let symbol = match arg(a, 1) {
        Value::Undefined => "$".to_string(),
        v => expect_string("formatCurrency", "symbol", v)?,
    };
    let decimals = opt_i64("formatCurrency", "decimals", arg(a, 2))?.unwrap_or(2);
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
        Value::Callable(_) => Err(Error::new(
            ErrorKind::Type,
            "jsonDecode: text must be a string, got a function",
        )),
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
        Value::Callable(_) => Err(Error::new(
            ErrorKind::Type,
            "contains: haystack must be a string or a list, got a function",
        )),
        other => {
            let n = expect_string("contains", "needle", needle)?;
            Ok(other.to_output().contains(n.as_str()))
        }
    }
}

/// Tags as strings: a list (items printed), a comma-separated string, or `null` (none).
fn tag_list(name: &str, what: &str, v: &Value) -> Result<Vec<String>, Error> {
    match v {
        Value::Undefined | Value::Null => Ok(Vec::new()),
        Value::List(l) => l
            .iter()
            .filter(|t| !t.is_null())
            .map(|t| expect_string(name, what, t))
            .collect(),
        Value::Map(_) | Value::Callable(_) => Err(Error::new(
            ErrorKind::Type,
            format!(
                "{name}: {what} must be a list of tags or a string, got {}",
                v.type_with_article()
            ),
        )),
        other => Ok(other
            .to_output()
            .split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(String::from)
            .collect()),
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
fn add_tag(tags: &Value, tag: &Value) -> Result<Value, Error> {
    let mut out = tag_list("addTag", "tags", tags)?;
    let mut seen = tag_set(&out);
    for t in tag_list("addTag", "tag", tag)? {
        if seen.insert(tag_key(&t)) {
            out.push(t);
        }
    }
    Ok(out.into_iter().map(Value::from).collect())
}

/// `removeTag(tags, tag)`: the tags without any equal to `tag` (case-insensitive).
fn remove_tag(tags: &Value, tag: &Value) -> Result<Value, Error> {
    let remove = tag_set(&tag_list("removeTag", "tag", tag)?);
    Ok(tag_list("removeTag", "tags", tags)?
        .into_iter()
        .filter(|t| !remove.contains(&tag_key(t)))
        .map(Value::from)
        .collect())
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
