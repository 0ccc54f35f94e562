//! The language's minimum builtin set and every test of docs/language.md §2.4:
//! filters `upper lower length join default escape/e raw json_encode`, function
//! `range`, tests `defined null none empty even odd iterable sequence mapping string
//! number boolean divisible by, same as, true false`.

use super::{arg, expect_string, opt_bool, Registry, State};
use crate::error::{Error, ErrorKind};
use crate::escape::escape;
use crate::escape::Strategy;
use crate::value::{self, strict_eq, write_json, Number, Value};

/// Registers the core builtins.
pub fn register(r: &mut Registry) {
    filters(r);
    tests(r);
    r.function("range", &["low", "high", "step?"], |st, a| {
        let max = st.limits().max_range;
        value::range(arg(a, 0), arg(a, 1), arg(a, 2), max)
    });
}

fn string_filter(
    st: &mut dyn State,
    name: &str,
    v: &Value,
    f: fn(&str) -> String,
) -> Result<Value, Error> {
    let s = expect_string(name, "the input", v)?;
    let out = f(&s);
    st.check_size(out.len())?;
    Ok(Value::str(out))
}

fn filters(r: &mut Registry) {
    r.filter("upper", &[], |st, a| {
        string_filter(st, "upper", arg(a, 0), str::to_uppercase)
    });
    r.filter("lower", &[], |st, a| {
        string_filter(st, "lower", arg(a, 0), str::to_lowercase)
    });
    r.filter("length", &[], |_, a| {
        let v = arg(a, 0);
        match v.len() {
            Some(n) => Ok(Value::from(n)),
            None => Ok(Value::Int(v.to_output().chars().count() as i64)),
        }
    });
    r.filter("join", &["glue|sep?", "and|last_sep?"], |st, a| {
        let sep = if arg(a, 1).is_null() {
            String::new()
        } else {
            expect_string("join", "the separator", arg(a, 1))?
        };
        let last = if arg(a, 2).is_null() {
            sep.clone()
        } else {
            expect_string("join", "the last separator", arg(a, 2))?
        };
        let items: Vec<&Value> = arg(a, 0).iter_values().collect();
        let mut out = String::new();
        for (i, item) in items.iter().enumerate() {
            if i > 0 {
                out.push_str(if i + 1 == items.len() { &last } else { &sep });
            }
            value::write_value(&mut out, item);
            st.check_size(out.len())?;
        }
        Ok(Value::str(out))
    });
    r.filter("default", &["default|v?"], |_, a| {
        let v = arg(a, 0);
        if v.is_empty() {
            let d = arg(a, 1);
            Ok(if d.is_undefined() {
                Value::str("")
            } else {
                d.clone()
            })
        } else {
            Ok(v.clone())
        }
    });
    let esc = |st: &mut dyn State, a: &[Value]| -> Result<Value, Error> {
        let name = if arg(a, 1).is_null() {
            "html".to_string()
        } else {
            expect_string("escape", "the strategy", arg(a, 1))?
        };
        let strategy = Strategy::from_name(&name).ok_or_else(|| {
            Error::new(
                ErrorKind::InvalidArgument,
                format!("escape: unknown strategy `{name}` (html, html_attr, js, css, url)"),
            )
        })?;
        let v = arg(a, 0);
        let s = match v {
            Value::Int(_) | Value::Float(_) | Value::Null | Value::Undefined | Value::Bool(_) => {
                return Ok(Value::safe(v.to_output()))
            }
            other => other.to_cow_str(),
        };
        let out = escape(&s, strategy);
        st.check_size(out.len())?;
        Ok(Value::safe(out))
    };
    r.filter("escape", &["strategy?", "charset?"], esc);
    r.filter("e", &["strategy?", "charset?"], esc);
    r.filter("raw", &[], |_, a| {
        Ok(match arg(a, 0) {
            Value::Str(s) => Value::Safe(s.clone()),
            other => other.clone(),
        })
    });
    r.filter("json_encode", &["pretty?"], |st, a| {
        let mut out = String::new();
        let pretty = opt_bool(arg(a, 1)).unwrap_or(false);
        write_json(&mut out, arg(a, 0), pretty.then_some(0));
        st.check_size(out.len())?;
        Ok(Value::str(out))
    });
}

/// The integer PHP's `%` sees (Twig's `even`/`odd`): floats and numeric strings are
/// truncated (`2.5` → 2), `null`/`false` are 0, a leading-numeric string counts.
fn int_test(name: &'static str, v: &Value) -> Result<i64, Error> {
    let n = match v {
        Value::List(_) | Value::Map(_) => None,
        other => other.as_number().or_else(|| crate::value::to_number(other)),
    };
    match n {
        Some(Number::Int(i)) => Ok(i),
        Some(Number::Float(f)) if f.is_finite() => Ok(f.trunc() as i64),
        _ => Err(Error::new(
            ErrorKind::Type,
            format!(
                "{name}: expected a number or a numeric string, got {}",
                v.type_with_article()
            ),
        )),
    }
}

fn tests(r: &mut Registry) {
    let b = |x: bool| Ok(Value::Bool(x));
    r.test("defined", &[], move |_, a| b(!arg(a, 0).is_undefined()));
    r.test("null", &[], move |_, a| b(arg(a, 0).is_null()));
    r.test("none", &[], move |_, a| b(arg(a, 0).is_null()));
    r.test("empty", &[], move |_, a| b(arg(a, 0).is_empty()));
    r.test("even", &[], move |_, a| {
        b(int_test("even", arg(a, 0))? % 2 == 0)
    });
    r.test("odd", &[], move |_, a| {
        b(int_test("odd", arg(a, 0))? % 2 != 0)
    });
    r.test("iterable", &[], move |_, a| {
        b(matches!(arg(a, 0), Value::List(_) | Value::Map(_)))
    });
    r.test("sequence", &[], move |_, a| {
        b(matches!(arg(a, 0), Value::List(_)))
    });
    r.test("mapping", &[], move |_, a| {
        b(matches!(arg(a, 0), Value::Map(_)))
    });
    r.test("string", &[], move |_, a| b(arg(a, 0).is_string()));
    r.test("number", &[], move |_, a| b(arg(a, 0).is_number()));
    r.test("boolean", &[], move |_, a| {
        b(matches!(arg(a, 0), Value::Bool(_)))
    });
    r.test("true", &[], move |_, a| {
        b(matches!(arg(a, 0), Value::Bool(true)))
    });
    r.test("false", &[], move |_, a| {
        b(matches!(arg(a, 0), Value::Bool(false)))
    });
    r.test("same as", &["other"], move |_, a| {
        b(strict_eq(arg(a, 0), arg(a, 1)))
    });
    r.test("divisible by", &["divisor"], move |_, a| {
        let x = int_test("divisible by", arg(a, 0))?;
        let d = int_test("divisible by", arg(a, 1))?;
        if d == 0 {
            return Err(Error::new(
                ErrorKind::DivisionByZero,
                "divisible by: division by zero",
            ));
        }
        b(x.checked_rem(d).unwrap_or(0) == 0)
    });
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
        let opts = RenderOptions {
            escape: Escape::Html,
            allow_env: false,
        };
        assert_eq!(
            t.render_with(&json!({"a": "<i>"}), opts).unwrap(),
            "&lt;i&gt;|<i>|&lt;i&gt;"
        );
    }
}
