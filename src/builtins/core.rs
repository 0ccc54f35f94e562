//! The language's minimum builtin set and every test of docs/language.md §2.4:
//! filters `upper lower length join default escape/e raw json_encode`, function
//! `range`, tests `defined null none empty even odd iterable sequence mapping string
//! number boolean divisible by, same as, true false`.

use super::text;
use super::typed::type_error;
use super::{Registry, State};
use crate::error::{Error, ErrorKind};
use crate::escape::escape;
use crate::escape::Strategy;
use crate::value::{self, strict_eq, Number, Value};
use std::borrow::Cow;

/// Registers the core builtins.
pub fn register(r: &mut Registry) {
    filters(r);
    tests(r);
    r.declare_function(
        "range",
        &["low", "high", "step?"],
        |st: &mut dyn State, low: &Value, high: &Value, step: &Value| {
            let max = st.limits().max_range;
            value::range(low, high, step, max)
        },
    );
}

fn string_filter(st: &mut dyn State, s: &str, f: fn(&str) -> String) -> Result<Value, Error> {
    let out = f(s);
    st.check_size(out.len())?;
    Ok(Value::str(out))
}

fn filters(r: &mut Registry) {
    r.declare_filter("upper", &[], |st: &mut dyn State, s: Cow<str>| {
        if s.is_ascii() {
            st.check_size(s.len())?;
            return Ok(text::ascii_mapped(&s, |i, b| b[i].to_ascii_uppercase()));
        }
        string_filter(st, &s, str::to_uppercase)
    });
    r.declare_filter("lower", &[], |st: &mut dyn State, s: Cow<str>| {
        if s.is_ascii() {
            st.check_size(s.len())?;
            return Ok(text::ascii_mapped(&s, |i, b| b[i].to_ascii_lowercase()));
        }
        string_filter(st, &s, str::to_lowercase)
    });
    r.declare_filter("length", &[], |_: &mut dyn State, v: &Value| {
        match v.len() {
            Some(n) => Value::from(n),
            None => Value::Int(v.to_output().chars().count() as i64),
        }
    });
    r.declare_filter(
        "join",
        &["glue|sep?", "and|last_sep?"],
        |st: &mut dyn State, v: &Value, sep: Option<Cow<str>>, last: Option<Cow<str>>| {
            let sep = sep.unwrap_or_default();
            let last = last.unwrap_or_else(|| sep.clone());
            let items: Vec<&Value> = v.iter_values().collect();
            let mut out = String::new();
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(if i + 1 == items.len() { &last } else { &sep });
                }
                value::write_value(&mut out, item);
                st.check_size(out.len())?;
            }
            Ok::<_, Error>(Value::str(out))
        },
    );
    r.declare_filter(
        "default",
        &["default|v?"],
        |_: &mut dyn State, v: &Value, d: &Value| {
            if !v.is_empty() {
                v.clone()
            } else if d.is_undefined() {
                Value::str("")
            } else {
                d.clone()
            }
        },
    );
    for name in ["escape", "e"] {
        r.declare_filter(
            name,
            &["strategy?", "charset?"],
            |st: &mut dyn State, v: &Value, strategy: Option<Cow<str>>, _charset: &Value| {
                let name = strategy.unwrap_or(Cow::Borrowed("html"));
                let strategy = Strategy::from_name(&name).ok_or_else(|| {
                    Error::new(
                        ErrorKind::InvalidArgument,
                        format!(
                            "escape: unknown strategy `{name}` (html, html_attr, js, css, url)"
                        ),
                    )
                })?;
                let s = match v {
                    Value::Int(_)
                    | Value::Float(_)
                    | Value::Null
                    | Value::Undefined
                    | Value::Bool(_) => return Ok(Value::safe(v.to_output())),
                    other => other.to_cow_str(),
                };
                let out = escape(&s, strategy);
                st.check_size(out.len())?;
                Ok::<_, Error>(Value::safe(out))
            },
        );
    }
    r.declare_filter("raw", &[], |_: &mut dyn State, v: &Value| match v {
        Value::Str(s) => Value::Safe(s.clone()),
        other => other.clone(),
    });
    // `flags` and `depth` are PHP's, which Twig passes on, in Twig's order; `pretty` is the
    // catalogue's own, and a boolean given first (`json_encode(true)`) is read as `pretty`.
    r.declare_filter(
        "json_encode",
        &["flags?", "depth?", "pretty?"],
        |st: &mut dyn State,
         v: &Value,
         flags: Option<&Value>,
         depth: Option<i64>,
         pretty: Option<bool>| {
            let mut flags = match flags {
                None | Some(Value::Bool(false)) => 0,
                Some(Value::Bool(true)) => 128,
                Some(Value::Int(f)) => *f,
                Some(other) => {
                    return Err(type_error(
                        "json_encode",
                        "flags",
                        "PHP JSON flags (an integer) or a boolean (pretty)",
                        other,
                    ))
                }
            };
            if pretty == Some(true) {
                flags |= 128;
            }
            let style = value::JsonStyle::from_flags(flags);
            let depth = usize::try_from(depth.unwrap_or(512)).unwrap_or(0);
            let mut out = String::new();
            let indent = style.pretty.then_some(0);
            if !value::write_json_styled(&mut out, v, &style, indent, depth) {
                // nested deeper than `depth`: PHP's json_encode returns false
                return Ok(Value::Bool(false));
            }
            st.check_size(out.len())?;
            Ok::<_, Error>(Value::str(out))
        },
    );
}

/// The integer PHP's `%` sees (Twig's `even`/`odd`): floats and numeric strings are
/// truncated (`2.5` → 2), `null`/`false` are 0, a leading-numeric string counts.
fn int_test(name: &str, what: &str, v: &Value) -> Result<i64, Error> {
    let n = match v {
        Value::List(_) | Value::Map(_) => None,
        other => other.as_number().or_else(|| crate::value::to_number(other)),
    };
    match n {
        Some(Number::Int(i)) => Ok(i),
        Some(Number::Float(f)) if f.is_finite() => Ok(f.trunc() as i64),
        _ => Err(type_error(name, what, "a number or a numeric string", v)),
    }
}

fn tests(r: &mut Registry) {
    type Check = fn(&Value) -> bool;
    let checks: [(&str, Check); 12] = [
        ("defined", |v| !v.is_undefined()),
        ("null", Value::is_null),
        ("none", Value::is_null),
        ("empty", Value::is_empty),
        ("iterable", |v| matches!(v, Value::List(_) | Value::Map(_))),
        ("sequence", |v| matches!(v, Value::List(_))),
        ("mapping", |v| matches!(v, Value::Map(_))),
        ("string", Value::is_string),
        ("number", Value::is_number),
        ("boolean", |v| matches!(v, Value::Bool(_))),
        ("true", |v| matches!(v, Value::Bool(true))),
        ("false", |v| matches!(v, Value::Bool(false))),
    ];
    for (name, check) in checks {
        r.declare_test(name, &[], move |_: &mut dyn State, v: &Value| check(v));
    }
    r.declare_test("even", &[], |_: &mut dyn State, v: &Value| {
        Ok::<_, Error>(int_test("even", "the input", v)? % 2 == 0)
    });
    r.declare_test("odd", &[], |_: &mut dyn State, v: &Value| {
        Ok::<_, Error>(int_test("odd", "the input", v)? % 2 != 0)
    });
    r.declare_test(
        "same as",
        &["other"],
        |_: &mut dyn State, v: &Value, other: &Value| strict_eq(v, other),
    );
    r.declare_test(
        "divisible by",
        &["divisor"],
        |_: &mut dyn State, v: &Value, divisor: &Value| {
            let x = int_test("divisible by", "the input", v)?;
            let d = int_test("divisible by", "divisor", divisor)?;
            if d == 0 {
                return Err(Error::new(
                    ErrorKind::DivisionByZero,
                    "divisible by: division by zero",
                ));
            }
            Ok(x.checked_rem(d).unwrap_or(0) == 0)
        },
    );
}

#[cfg(test)]
mod tests {
    use crate::{Engine, Escape, RenderOptions};
    use serde_json::json;

    fn render(src: &str, ctx: serde_json::Value) -> String {
        Engine::new()
            .compile("t", src)
            .unwrap()
            .render(&ctx)
            .unwrap()
    }

    #[test]
    fn core_filters() {
        assert_eq!(
            render("{{ 'abc'|upper }}{{ 'ÀB'|lower }}", json!({})),
            "ABCàb"
        );
        assert_eq!(
            render("{{ xs|length }} {{ 'héé'|length }}", json!({"xs": [1, 2]})),
            "2 3"
        );
        assert_eq!(
            render("{{ ['a','b','c']|join(', ', ' and ') }}", json!({})),
            "a, b and c"
        );
        assert_eq!(
            render("{{ missing|default('x') }}{{ ''|default }}", json!({})),
            "x"
        );
        assert_eq!(
            render("{{ {'a': [1, 'x/y']}|json_encode }}", json!({})),
            r#"{"a":[1,"x/y"]}"#
        );
        assert_eq!(
            render("{{ '<b>'|e }}{{ 'a b'|escape('url') }}", json!({})),
            "&lt;b&gt;a%20b"
        );
        assert_eq!(render("{{ range(1, 5, 2)|join(',') }}", json!({})), "1,3,5");
    }

    #[test]
    fn core_tests() {
        let src = "{{ 4 is even }}{{ 3 is odd }}{{ x is defined ? 'y' : 'n' }}{{ 9 is divisible by(3) }}{{ 1 is same as(1.0) ? 'y' : 'n' }}{{ [] is empty }}{{ 0 is empty ? 'y' : 'n' }}";
        assert_eq!(render(src, json!({})), "11n1n1n");
    }

    #[test]
    fn raw_and_autoescape() {
        let t = Engine::new()
            .compile("t", "{{ a }}|{{ a|raw }}|{{ a|e }}")
            .unwrap();
        let opts = RenderOptions::default().with_escape(Escape::Html);
        assert_eq!(
            t.render_with(&json!({"a": "<i>"}), opts).unwrap(),
            "&lt;i&gt;|<i>|&lt;i&gt;"
        );
    }
}
