//! Host builtins from plain Rust closures with typed arguments.
//!
//! [`Registry::add_filter`], [`Registry::add_function`] and [`Registry::add_test`]
//! take a closure of up to four arguments whose types implement [`ArgType`]
//! (`i64`, `f64`, `bool`, `String`, `&str`, [`Value`], `Vec<T>`, `Option<T>`) and
//! whose result implements [`FunctionResult`] (anything `Into<Value>`, or
//! `Result<_, Error>`). The signature is derived from the arity: parameters are named
//! `arg1`, `arg2`…, and trailing `Option<_>` parameters are optional. A value of the
//! wrong type is a type error naming the builtin and the argument.
//!
//! ```
//! use flexscript::builtins::Registry;
//! let mut r = Registry::with_builtins();
//! r.add_filter("slug", |v: &str| v.to_lowercase().replace(' ', "-"));
//! r.add_function("clamp", |x: i64, lo: i64, hi: Option<i64>| x.max(lo).min(hi.unwrap_or(i64::MAX)));
//! r.add_test("long", |v: &str, n: Option<i64>| v.chars().count() as i64 > n.unwrap_or(10));
//! assert!(r.get_filter("slug").is_some() && r.get_function("clamp").is_some());
//! ```

use super::args::arg;
use super::Registry;
use crate::error::{Error, ErrorKind};
use crate::value::{Number, Value};

/// A Rust type a builtin argument converts to. `'a` is the lifetime of the
/// argument slice, so `&'a str` borrows the template's string without copying.
pub trait ArgType<'a> {
    /// The converted type (`Self` with the slice's lifetime).
    type Output;
    /// Converts, or returns what was expected (`"an integer"`).
    fn from_arg(v: &'a Value) -> Result<Self::Output, &'static str>;
    /// True for `Option<_>`: a trailing parameter of this type may be omitted.
    fn optional() -> bool {
        false
    }
}

impl<'a> ArgType<'a> for Value {
    type Output = Value;
    fn from_arg(v: &'a Value) -> Result<Value, &'static str> {
        Ok(v.clone())
    }
}

impl<'a> ArgType<'a> for i64 {
    type Output = i64;
    /// Integers, integral floats and integer strings; `null` is 0.
    fn from_arg(v: &'a Value) -> Result<i64, &'static str> {
        v.as_i64().ok_or("an integer")
    }
}

impl<'a> ArgType<'a> for f64 {
    type Output = f64;
    /// Any number or numeric string; `null` is 0.
    fn from_arg(v: &'a Value) -> Result<f64, &'static str> {
        match v {
            Value::List(_) | Value::Map(_) | Value::Callable(_) => Err("a number"),
            _ => v.as_number().map(Number::as_f64).ok_or("a number"),
        }
    }
}

impl<'a> ArgType<'a> for bool {
    type Output = bool;
    /// Truthiness of any value.
    fn from_arg(v: &'a Value) -> Result<bool, &'static str> {
        Ok(v.is_truthy())
    }
}

impl<'a> ArgType<'a> for String {
    type Output = String;
    /// Strings; numbers and booleans are printed; `null` is `""`.
    fn from_arg(v: &'a Value) -> Result<String, &'static str> {
        match v {
            Value::List(_) | Value::Map(_) | Value::Callable(_) => Err("a string"),
            other => Ok(other.to_output()),
        }
    }
}

impl<'a> ArgType<'a> for &str {
    type Output = &'a str;
    /// Strings only (borrowed); `null` is `""`.
    fn from_arg(v: &'a Value) -> Result<&'a str, &'static str> {
        match v {
            Value::Str(s) | Value::Safe(s) => Ok(s),
            Value::Undefined | Value::Null => Ok(""),
            _ => Err("a string"),
        }
    }
}

impl<'a, T: ArgType<'a>> ArgType<'a> for Option<T> {
    type Output = Option<T::Output>;
    /// `None` for `null` or an omitted argument.
    fn from_arg(v: &'a Value) -> Result<Self::Output, &'static str> {
        if v.is_null() {
            Ok(None)
        } else {
            T::from_arg(v).map(Some)
        }
    }
    fn optional() -> bool {
        true
    }
}

impl<'a, T: ArgType<'a>> ArgType<'a> for Vec<T> {
    type Output = Vec<T::Output>;
    /// A list (each item converted); `null` is empty.
    fn from_arg(v: &'a Value) -> Result<Self::Output, &'static str> {
        match v {
            Value::Undefined | Value::Null => Ok(Vec::new()),
            Value::List(l) => l
                .iter()
                .map(|x| T::from_arg(x).map_err(|_| "a list of the right item type"))
                .collect(),
            _ => Err("a list"),
        }
    }
}

/// A tuple of [`ArgType`]s read from a builtin's positional arguments.
pub trait FunctionArgs<'a> {
    /// The tuple of converted values.
    type Output;
    /// Number of parameters.
    const ARITY: usize;
    /// Converts `args`; `names[i]` names argument `i` in error messages.
    fn from_args(builtin: &str, names: &[&str], args: &'a [Value]) -> Result<Self::Output, Error>;
    /// For each parameter, whether it is an `Option`.
    fn optional_flags() -> Vec<bool>;
}

/// A host closure callable with the converted argument tuple `Args`, returning `R`.
pub trait HostFn<R, Args>: Send + Sync + 'static {
    /// Calls the closure.
    fn invoke(&self, args: Args) -> R;
}

/// What a host closure may return: a value, or a `Result` of one.
pub trait FunctionResult {
    /// Converts into the builtin's result.
    fn into_result(self) -> Result<Value, Error>;
}

impl<T: Into<Value>> FunctionResult for T {
    fn into_result(self) -> Result<Value, Error> {
        Ok(self.into())
    }
}

impl<T: Into<Value>> FunctionResult for Result<T, Error> {
    fn into_result(self) -> Result<Value, Error> {
        self.map(Into::into)
    }
}

fn convert<'a, T: ArgType<'a>>(
    builtin: &str,
    names: &[&str],
    args: &'a [Value],
    i: usize,
) -> Result<T::Output, Error> {
    let v = arg(args, i);
    T::from_arg(v).map_err(|expected| {
        let what = names.get(i).copied().unwrap_or("an argument");
        Error::new(
            ErrorKind::Type,
            format!(
                "{builtin}: {what} must be {expected}, got {}",
                v.type_with_article()
            ),
        )
    })
}

macro_rules! tuple_impls {
    ($n:expr; $($t:ident $i:tt),*) => {
        impl<'a, $($t: ArgType<'a>),*> FunctionArgs<'a> for ($($t,)*) {
            type Output = ($($t::Output,)*);
            const ARITY: usize = $n;
            #[allow(unused_variables)]
            fn from_args(builtin: &str, names: &[&str], args: &'a [Value])
                -> Result<Self::Output, Error> {
                Ok(($(convert::<$t>(builtin, names, args, $i)?,)*))
            }
            fn optional_flags() -> Vec<bool> {
                vec![$($t::optional()),*]
            }
        }

        impl<F, R, $($t),*> HostFn<R, ($($t,)*)> for F
        where
            F: Fn($($t),*) -> R + Send + Sync + 'static,
        {
            #[allow(non_snake_case)]
            fn invoke(&self, args: ($($t,)*)) -> R {
                let ($($t,)*) = args;
                self($($t),*)
            }
        }
    };
}

tuple_impls!(0;);
tuple_impls!(1; A 0);
tuple_impls!(2; A 0, B 1);
tuple_impls!(3; A 0, B 1, C 2);
tuple_impls!(4; A 0, B 1, C 2, D 3);

/// Parameter names of a derived signature: `arg1`… and `arg1?`… (the marker
/// form is what [`super::Signature::parse`] reads).
const NAMES: [&str; 4] = ["arg1", "arg2", "arg3", "arg4"];
const OPTIONAL_NAMES: [&str; 4] = ["arg1?", "arg2?", "arg3?", "arg4?"];

/// The spec of the parameters `flags[skip..]`: trailing optional ones get `?`.
fn derive_spec(flags: &[bool], skip: usize) -> Vec<&'static str> {
    let params = flags.get(skip..).unwrap_or(&[]);
    let first_trailing_optional = params
        .iter()
        .rposition(|o| !o)
        .map_or(0, |last_required| last_required + 1);
    params
        .iter()
        .enumerate()
        .filter_map(|(i, _)| {
            let table = if i >= first_trailing_optional {
                &OPTIONAL_NAMES
            } else {
                &NAMES
            };
            table.get(i).copied()
        })
        .collect()
}

/// Names used in error messages: for filters and tests the first is the input.
fn message_names(arity: usize, piped: bool) -> Vec<&'static str> {
    const FN_NAMES: [&str; 4] = ["argument 1", "argument 2", "argument 3", "argument 4"];
    const FILTER_NAMES: [&str; 4] = ["the input", "argument 1", "argument 2", "argument 3"];
    let table = if piped { &FILTER_NAMES } else { &FN_NAMES };
    table.iter().take(arity).copied().collect()
}

impl Registry {
    /// Registers a host function from a typed closure, e.g.
    /// `r.add_function("double", |x: i64| x * 2)`.
    pub fn add_function<F, R, Args>(&mut self, name: &str, f: F)
    where
        F: HostFn<R, Args> + for<'a> HostFn<R, <Args as FunctionArgs<'a>>::Output>,
        R: FunctionResult,
        Args: for<'a> FunctionArgs<'a>,
    {
        let spec = derive_spec(&<Args as FunctionArgs<'_>>::optional_flags(), 0);
        let names = message_names(<Args as FunctionArgs<'_>>::ARITY, false);
        let builtin: std::sync::Arc<str> = std::sync::Arc::from(name);
        self.function(name, &spec, move |_, args| {
            let a = <Args as FunctionArgs<'_>>::from_args(&builtin, &names, args)?;
            f.invoke(a).into_result()
        });
    }

    /// Registers a host filter from a typed closure whose first argument is the
    /// piped value, e.g. `r.add_filter("slug", |v: &str| v.replace(' ', "-"))`.
    pub fn add_filter<F, R, Args>(&mut self, name: &str, f: F)
    where
        F: HostFn<R, Args> + for<'a> HostFn<R, <Args as FunctionArgs<'a>>::Output>,
        R: FunctionResult,
        Args: for<'a> FunctionArgs<'a>,
    {
        let spec = derive_spec(&<Args as FunctionArgs<'_>>::optional_flags(), 1);
        let names = message_names(<Args as FunctionArgs<'_>>::ARITY, true);
        let builtin: std::sync::Arc<str> = std::sync::Arc::from(name);
        self.filter(name, &spec, move |_, args| {
            let a = <Args as FunctionArgs<'_>>::from_args(&builtin, &names, args)?;
            f.invoke(a).into_result()
        });
    }

    /// Registers a host test from a typed closure whose first argument is the tested
    /// value; the result's truthiness is the answer, e.g.
    /// `r.add_test("positive", |x: f64| x > 0.0)`.
    pub fn add_test<F, R, Args>(&mut self, name: &str, f: F)
    where
        F: HostFn<R, Args> + for<'a> HostFn<R, <Args as FunctionArgs<'a>>::Output>,
        R: FunctionResult,
        Args: for<'a> FunctionArgs<'a>,
    {
        let spec = derive_spec(&<Args as FunctionArgs<'_>>::optional_flags(), 1);
        let names = message_names(<Args as FunctionArgs<'_>>::ARITY, true);
        let builtin: std::sync::Arc<str> = std::sync::Arc::from(name);
        self.test(name, &spec, move |_, args| {
            let a = <Args as FunctionArgs<'_>>::from_args(&builtin, &names, args)?;
            Ok(Value::Bool(f.invoke(a).into_result()?.is_truthy()))
        });
    }
}

#[cfg(test)]
mod tests {
    use super::super::Signature;
    use super::*;

    use super::super::teststate::call_in as run;

    #[test]
    fn typed_filters_functions_tests() {
        let mut r = Registry::default();
        r.add_filter("slug", |v: &str| v.to_lowercase().replace(' ', "-"));
        r.add_filter("pad", |v: String, n: i64, c: Option<String>| {
            let c = c.unwrap_or_else(|| " ".into());
            format!("{}{v}", c.repeat(usize::try_from(n).unwrap_or(0)))
        });
        r.add_function("answer", || 42);
        r.add_function("sum", |xs: Vec<f64>| xs.iter().sum::<f64>());
        r.add_function("div", |a: i64, b: i64| -> Result<i64, Error> {
            a.checked_div(b)
                .ok_or_else(|| Error::new(ErrorKind::DivisionByZero, "div: by zero"))
        });
        r.add_test("positive", |x: f64| x > 0.0);

        let out = |res: Result<Value, Error>| match res {
            Ok(v) => v.to_output(),
            Err(e) => format!("ERR {}", e.message()),
        };
        assert_eq!(
            out(run(&r, "filter", "slug", &[Value::str("Acme Ltd")])),
            "acme-ltd"
        );
        assert_eq!(out(run(&r, "filter", "slug", &[Value::Null])), "");
        assert_eq!(
            out(run(&r, "filter", "slug", &[Value::Int(3)])),
            "ERR slug: the input must be a string, got a number"
        );
        assert_eq!(
            out(run(&r, "filter", "pad", &[Value::str("x"), Value::Int(2)])),
            "  x"
        );
        assert_eq!(
            out(run(
                &r,
                "filter",
                "pad",
                &[Value::str("x"), Value::Int(1), Value::str("*")]
            )),
            "*x"
        );
        assert_eq!(
            out(run(
                &r,
                "filter",
                "pad",
                &[Value::str("x"), Value::str("a")]
            )),
            "ERR pad: argument 1 must be an integer, got a string"
        );
        assert_eq!(out(run(&r, "function", "answer", &[])), "42");
        let xs = Value::list(vec![Value::Int(1), Value::Float(2.5)]);
        assert_eq!(out(run(&r, "function", "sum", &[xs])), "3.5");
        assert_eq!(
            out(run(&r, "function", "div", &[Value::Int(1), Value::Int(0)])),
            "ERR div: by zero"
        );
        assert_eq!(out(run(&r, "test", "positive", &[Value::Int(2)])), "1");
        assert_eq!(out(run(&r, "test", "positive", &[Value::Int(-2)])), "");
    }

    #[test]
    fn typed_builtins_through_the_engine() {
        let mut engine = crate::Engine::new();
        let r = engine.registry_mut();
        r.add_filter("slug", |v: &str| v.to_lowercase().replace(' ', "-"));
        r.add_filter("repeat", |v: String, n: Option<i64>| {
            v.repeat(usize::try_from(n.unwrap_or(2)).unwrap_or(0).min(10))
        });
        r.add_function("hypot", |a: f64, b: f64| (a * a + b * b).sqrt());
        r.add_test("shouting", |v: &str| !v.is_empty() && v == v.to_uppercase());
        let render = |src: &str| {
            engine
                .compile("t", src)
                .and_then(|t| t.render(&serde_json::json!({"name": "Acme Ltd"})))
                .unwrap_or_else(|e| format!("ERR {e}"))
        };
        assert_eq!(render("{{ name|slug }}"), "acme-ltd");
        assert_eq!(
            render("{{ 'ab'|repeat }}|{{ 'ab'|repeat(3) }}|{{ 'ab'|repeat(arg1: 1) }}"),
            "abab|ababab|ab"
        );
        assert_eq!(render("{{ hypot(3, 4) }}"), "5");
        assert_eq!(
            render("{{ 'HEY' is shouting ? 'y' : 'n' }}{{ name is shouting ? 'y' : 'n' }}"),
            "yn"
        );
        assert!(render("{{ [1]|slug }}").contains("slug: the input must be a string, got a list"));
    }

    #[test]
    fn derived_signatures() {
        let mut r = Registry::default();
        r.add_filter("pad", |v: String, n: i64, c: Option<String>| {
            format!("{v}{n}{}", c.unwrap_or_default())
        });
        r.add_function("f", |_a: Option<i64>, _b: i64, _c: Option<bool>| 0);
        let sig = |s: &Signature| (s.params.clone(), s.required, s.variadic);
        assert_eq!(
            r.filters.get("pad").map(|b| sig(&b.signature)),
            Some((vec!["arg1", "arg2"], 1, false))
        );
        assert_eq!(
            r.functions.get("f").map(|b| sig(&b.signature)),
            Some((vec!["arg1", "arg2", "arg3"], 2, false))
        );
    }
}
