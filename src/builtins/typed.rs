//! Typed builtin parameters: every builtin of the catalogue, and every host closure,
//! declares its parameters here once — by name (the spec, see [`super::Signature::parse`])
//! and by type (the Rust types of its closure's parameters) — and this module converts
//! the positional slice the VM passes into those types. A value of the wrong type is a
//! type error built in one place ([`type_error`]): "`<builtin>`: `<parameter>` must be
//! `<type>`, got `<type of the value>`", where the piped value of a filter or test is
//! called "the input".
//!
//! Parameter types implement [`ArgType`]: `i64`, `f64`, `bool`, `String`, `&str`,
//! [`Cow<str>`](std::borrow::Cow) (strings borrowed, numbers printed), [`Number`],
//! `&Value` / [`Value`] (anything), `&[Value]` (a list), `&Map` (a map), [`Arrow`] (an
//! arrow function), `Vec<T>`, `Option<T>` (omitted or `null` → `None`) and [`Rest`] (the
//! remaining positional arguments of a variadic builtin). Named arguments are mapped onto
//! the declared names at compile time, so converting costs no allocation per call.
//!
//! The catalogue registers with [`Registry::declare_filter`] (and `declare_function`,
//! `declare_test`), whose closures also receive the render [`State`]:
//!
//! ```
//! use flexscript::builtins::{Registry, State};
//! use std::borrow::Cow;
//! let mut r = Registry::with_builtins();
//! r.declare_filter("shout", &["times?"], |_: &mut dyn State, s: Cow<str>, times: Option<i64>| {
//!     s.to_uppercase() + &"!".repeat(usize::try_from(times.unwrap_or(1)).unwrap_or(0).min(10))
//! });
//! assert!(r.get_filter("shout").is_some());
//! ```
//!
//! Hosts without a need for the state use [`Registry::add_filter`],
//! [`Registry::add_function`] and [`Registry::add_test`], whose parameters are named
//! `arg1`, `arg2`… (trailing `Option<_>` parameters are optional):
//!
//! ```
//! use flexscript::builtins::Registry;
//! let mut r = Registry::with_builtins();
//! r.add_filter("slug", |v: &str| v.to_lowercase().replace(' ', "-"));
//! r.add_function("clamp", |x: i64, lo: i64, hi: Option<i64>| x.max(lo).min(hi.unwrap_or(i64::MAX)));
//! r.add_test("long", |v: &str, n: Option<i64>| v.chars().count() as i64 > n.unwrap_or(10));
//! assert!(r.get_filter("slug").is_some() && r.get_function("clamp").is_some());
//! ```

use super::{Kind, Registry, Signature, State};
use crate::error::Error;
use crate::value::{Map, Number, Value};
use std::borrow::Cow;
use std::sync::Arc;

/// Argument `i`, or `Undefined` when it was not given.
pub(crate) fn arg(args: &[Value], i: usize) -> &Value {
    static UNDEFINED: Value = Value::Undefined;
    args.get(i).unwrap_or(&UNDEFINED)
}

/// The type error of `builtin`'s parameter `what` ("the input", "length"…): `expected`
/// is what it takes ("an integer"), `got` the value it was given. Every wrong-type error
/// of a builtin is built here (and by [`Error::type_mismatch`] underneath).
pub(crate) fn type_error(builtin: &str, what: &str, expected: &str, got: &Value) -> Error {
    Error::type_mismatch(builtin, what, expected, got.type_with_article())
}

/// Converts `v` as a parameter of type `T` inside a builtin's body (where a value's
/// type decides how another is read), with the same error as a declared parameter.
pub(crate) fn convert_value<'a, T: ArgType<'a>>(
    builtin: &str,
    what: &str,
    v: &'a Value,
) -> Result<T::Output, Error> {
    T::from_arg(v).map_err(|expected| type_error(builtin, what, expected, v))
}

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
    /// The type's name in docs/templates.md's parameter table (`"integer"`).
    fn type_name() -> &'static str {
        "any"
    }
    /// True for [`Rest`], which takes every argument from its position on.
    fn variadic() -> bool {
        false
    }
    /// Reads the parameter at position `i` of `args` (the one value there, omitted:
    /// `Undefined`); on failure, the offending value and what was expected.
    fn from_args_at(
        args: &'a [Value],
        i: usize,
    ) -> Result<Self::Output, (&'a Value, &'static str)> {
        let v = arg(args, i);
        Self::from_arg(v).map_err(|e| (v, e))
    }
}

impl<'a> ArgType<'a> for Value {
    type Output = Value;
    fn from_arg(v: &'a Value) -> Result<Value, &'static str> {
        Ok(v.clone())
    }
}

impl<'a> ArgType<'a> for &Value {
    type Output = &'a Value;
    /// Any value, borrowed (`Undefined` when omitted).
    fn from_arg(v: &'a Value) -> Result<&'a Value, &'static str> {
        Ok(v)
    }
}

impl<'a> ArgType<'a> for i64 {
    type Output = i64;
    /// Integers, integral floats and integer strings; `null` is 0.
    fn from_arg(v: &'a Value) -> Result<i64, &'static str> {
        v.as_i64().ok_or("an integer")
    }
    fn type_name() -> &'static str {
        "integer"
    }
}

impl<'a> ArgType<'a> for f64 {
    type Output = f64;
    /// Any number or numeric string; `null` is 0.
    fn from_arg(v: &'a Value) -> Result<f64, &'static str> {
        Number::from_arg(v).map(Number::as_f64)
    }
    fn type_name() -> &'static str {
        "number"
    }
}

impl<'a> ArgType<'a> for Number {
    type Output = Number;
    /// Any number or numeric string (PHP 8 rules); `null` is 0.
    fn from_arg(v: &'a Value) -> Result<Number, &'static str> {
        match v {
            Value::List(_) | Value::Map(_) | Value::Callable(_) => Err("a number"),
            _ => v.as_number().ok_or("a number"),
        }
    }
    fn type_name() -> &'static str {
        "number"
    }
}

impl<'a> ArgType<'a> for bool {
    type Output = bool;
    /// Truthiness of any value.
    fn from_arg(v: &'a Value) -> Result<bool, &'static str> {
        Ok(v.is_truthy())
    }
    fn type_name() -> &'static str {
        "boolean"
    }
}

impl<'a> ArgType<'a> for String {
    type Output = String;
    /// Strings; numbers and booleans are printed; `null` is `""`.
    fn from_arg(v: &'a Value) -> Result<String, &'static str> {
        Cow::<str>::from_arg(v).map(Cow::into_owned)
    }
    fn type_name() -> &'static str {
        "string"
    }
}

impl<'a> ArgType<'a> for Cow<'_, str> {
    type Output = Cow<'a, str>;
    /// Strings (borrowed); numbers and booleans are printed; `null` is `""`.
    fn from_arg(v: &'a Value) -> Result<Cow<'a, str>, &'static str> {
        match v {
            Value::List(_) | Value::Map(_) | Value::Callable(_) => Err("a string"),
            other => Ok(other.to_cow_str()),
        }
    }
    fn type_name() -> &'static str {
        "string"
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
    fn type_name() -> &'static str {
        "string"
    }
}

impl<'a> ArgType<'a> for &[Value] {
    type Output = &'a [Value];
    /// A list (borrowed).
    fn from_arg(v: &'a Value) -> Result<&'a [Value], &'static str> {
        v.as_list().ok_or("a list")
    }
    fn type_name() -> &'static str {
        "list"
    }
}

impl<'a> ArgType<'a> for &Map {
    type Output = &'a Map;
    /// A map (borrowed).
    fn from_arg(v: &'a Value) -> Result<&'a Map, &'static str> {
        v.as_map().ok_or("a map")
    }
    fn type_name() -> &'static str {
        "map"
    }
}

/// An arrow function (or macro) argument, called through [`State::call`].
#[derive(Clone, Copy, Debug)]
pub struct Arrow<'a>(pub &'a Value);

impl<'a> ArgType<'a> for Arrow<'_> {
    type Output = Arrow<'a>;
    fn from_arg(v: &'a Value) -> Result<Arrow<'a>, &'static str> {
        match v {
            Value::Callable(_) => Ok(Arrow(v)),
            _ => Err("an arrow function"),
        }
    }
    fn type_name() -> &'static str {
        "arrow"
    }
}

/// The remaining positional arguments of a variadic builtin (spec `"name..."` or `"..."`).
#[derive(Clone, Copy, Debug)]
pub struct Rest<'a>(pub &'a [Value]);

impl<'a> ArgType<'a> for Rest<'_> {
    type Output = Rest<'a>;
    fn from_arg(v: &'a Value) -> Result<Rest<'a>, &'static str> {
        Ok(Rest(std::slice::from_ref(v)))
    }
    fn type_name() -> &'static str {
        "any"
    }
    fn variadic() -> bool {
        true
    }
    fn from_args_at(args: &'a [Value], i: usize) -> Result<Rest<'a>, (&'a Value, &'static str)> {
        Ok(Rest(args.get(i..).unwrap_or(&[])))
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
    fn type_name() -> &'static str {
        T::type_name()
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
    fn type_name() -> &'static str {
        "list"
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
    /// For each parameter, its type's name (docs/templates.md's table).
    fn type_names() -> Vec<&'static str>;
    /// Whether the last parameter takes the remaining arguments ([`Rest`]).
    fn variadic() -> bool;
}

/// A host closure callable with the converted argument tuple `Args`, returning `R`.
pub trait HostFn<R, Args>: Send + Sync + 'static {
    /// Calls the closure.
    fn invoke(&self, args: Args) -> R;
}

/// A builtin's closure: the render [`State`], then the converted argument tuple `Args`.
pub trait BuiltinBody<R, Args>: Send + Sync + 'static {
    /// Calls the closure.
    fn invoke(&self, state: &mut dyn State, args: Args) -> R;
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
    T::from_args_at(args, i).map_err(|(got, expected)| {
        let what = names.get(i).copied().unwrap_or("an argument");
        type_error(builtin, what, expected, got)
    })
}

macro_rules! tuple_impls {
    ($n:expr; $($t:ident $i:tt),*) => {
        impl<'a, $($t: ArgType<'a>),*> FunctionArgs<'a> for ($($t,)*) {
            type Output = ($($t::Output,)*);
            const ARITY: usize = $n;
            #[allow(unused_variables)]
            #[inline]
            fn from_args(builtin: &str, names: &[&str], args: &'a [Value])
                -> Result<Self::Output, Error> {
                Ok(($(convert::<$t>(builtin, names, args, $i)?,)*))
            }
            fn optional_flags() -> Vec<bool> {
                vec![$($t::optional()),*]
            }
            fn type_names() -> Vec<&'static str> {
                vec![$($t::type_name()),*]
            }
            fn variadic() -> bool {
                [$($t::variadic()),*].last().copied().unwrap_or(false)
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

        impl<F, R, $($t),*> BuiltinBody<R, ($($t,)*)> for F
        where
            F: Fn(&mut dyn State, $($t),*) -> R + Send + Sync + 'static,
        {
            #[allow(non_snake_case)]
            #[inline]
            fn invoke(&self, state: &mut dyn State, args: ($($t,)*)) -> R {
                let ($($t,)*) = args;
                self(state, $($t),*)
            }
        }
    };
}

tuple_impls!(0;);
tuple_impls!(1; A 0);
tuple_impls!(2; A 0, B 1);
tuple_impls!(3; A 0, B 1, C 2);
tuple_impls!(4; A 0, B 1, C 2, D 3);
tuple_impls!(5; A 0, B 1, C 2, D 3, E 4);
tuple_impls!(6; A 0, B 1, C 2, D 3, E 4, G 5);
tuple_impls!(7; A 0, B 1, C 2, D 3, E 4, G 5, H 6);

/// Parameter names of a derived signature: `arg1`… and `arg1?`… (the marker
/// form is what [`Signature::parse`] reads).
const NAMES: [&str; 7] = ["arg1", "arg2", "arg3", "arg4", "arg5", "arg6", "arg7"];
const OPTIONAL_NAMES: [&str; 7] = [
    "arg1?", "arg2?", "arg3?", "arg4?", "arg5?", "arg6?", "arg7?",
];

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

/// Names used in type errors, one per converted position: "the input" for the piped
/// value of a filter or test, then the declared parameter names (a variadic tail
/// without a name is "an argument").
fn message_names(sig: &Signature, arity: usize, piped: bool) -> Vec<&'static str> {
    let mut names = Vec::with_capacity(arity);
    if piped {
        names.push("the input");
    }
    names.extend(sig.params.iter().copied());
    names.resize(arity.max(names.len()), "an argument");
    names
}

impl Registry {
    /// Registers `f` as the builtin `name` of `kind`, its parameters named by `spec`
    /// (see [`Signature::parse`]) and typed by `Args`; `call` runs the converted call.
    fn declare<Args>(
        &mut self,
        kind: Kind,
        name: &str,
        spec: &[&'static str],
        call: impl Fn(&mut dyn State, &str, &[&'static str], &[Value]) -> Result<Value, Error>
            + Send
            + Sync
            + 'static,
    ) where
        Args: for<'a> FunctionArgs<'a>,
    {
        let mut sig = Signature::parse(spec);
        let piped = !matches!(kind, Kind::Function);
        let arity = <Args as FunctionArgs<'_>>::ARITY;
        let unnamed_rest = sig.variadic && spec.last() == Some(&"...");
        debug_assert_eq!(
            arity,
            usize::from(piped) + sig.params.len() + usize::from(unnamed_rest),
            "builtin `{name}`: the spec {spec:?} does not declare every parameter of its closure"
        );
        debug_assert_eq!(
            sig.variadic,
            <Args as FunctionArgs<'_>>::variadic(),
            "builtin `{name}`: a variadic spec needs a `Rest` last parameter (and only then)"
        );
        let mut types = <Args as FunctionArgs<'_>>::type_names();
        if piped && !types.is_empty() {
            types.remove(0);
        }
        types.truncate(sig.params.len());
        sig.types = types;
        let names = message_names(&sig, arity, piped);
        let builtin: Arc<str> = Arc::from(name);
        let func = move |st: &mut dyn State, args: &[Value]| call(st, &builtin, &names, args);
        match kind {
            Kind::Filter => self.filter(name, spec, func),
            Kind::Function => self.function(name, spec, func),
            Kind::Test => self.test(name, spec, func),
        }
        self.set_signature(kind, name, sig);
    }

    /// Declares a filter: `spec` names the parameters after the piped value (see
    /// [`Signature::parse`]), the closure takes the render [`State`], the piped value
    /// and one typed parameter per name (see the module docs), e.g.
    /// `r.declare_filter("repeat", &["times"], |_: &mut dyn State, s: Cow<str>, n: i64| s.repeat(n as usize))`.
    pub fn declare_filter<F, R, Args>(&mut self, name: &str, spec: &[&'static str], f: F)
    where
        F: BuiltinBody<R, Args> + for<'a> BuiltinBody<R, <Args as FunctionArgs<'a>>::Output>,
        R: FunctionResult,
        Args: for<'a> FunctionArgs<'a>,
    {
        self.declare::<Args>(Kind::Filter, name, spec, move |st, builtin, names, args| {
            let a = <Args as FunctionArgs<'_>>::from_args(builtin, names, args)?;
            f.invoke(st, a).into_result()
        });
    }

    /// Declares a function: like [`Registry::declare_filter`] without a piped value.
    pub fn declare_function<F, R, Args>(&mut self, name: &str, spec: &[&'static str], f: F)
    where
        F: BuiltinBody<R, Args> + for<'a> BuiltinBody<R, <Args as FunctionArgs<'a>>::Output>,
        R: FunctionResult,
        Args: for<'a> FunctionArgs<'a>,
    {
        self.declare::<Args>(
            Kind::Function,
            name,
            spec,
            move |st, builtin, names, args| {
                let a = <Args as FunctionArgs<'_>>::from_args(builtin, names, args)?;
                f.invoke(st, a).into_result()
            },
        );
    }

    /// Declares a test: like [`Registry::declare_filter`] (the tested value comes
    /// first); the result's truthiness is the answer.
    pub fn declare_test<F, R, Args>(&mut self, name: &str, spec: &[&'static str], f: F)
    where
        F: BuiltinBody<R, Args> + for<'a> BuiltinBody<R, <Args as FunctionArgs<'a>>::Output>,
        R: FunctionResult,
        Args: for<'a> FunctionArgs<'a>,
    {
        self.declare::<Args>(Kind::Test, name, spec, move |st, builtin, names, args| {
            let a = <Args as FunctionArgs<'_>>::from_args(builtin, names, args)?;
            Ok(Value::Bool(f.invoke(st, a).into_result()?.is_truthy()))
        });
    }

    /// Registers a host function from a typed closure, e.g.
    /// `r.add_function("double", |x: i64| x * 2)`.
    pub fn add_function<F, R, Args>(&mut self, name: &str, f: F)
    where
        F: HostFn<R, Args> + for<'a> HostFn<R, <Args as FunctionArgs<'a>>::Output>,
        R: FunctionResult,
        Args: for<'a> FunctionArgs<'a>,
    {
        let spec = derive_spec(&<Args as FunctionArgs<'_>>::optional_flags(), 0);
        self.declare::<Args>(
            Kind::Function,
            name,
            &spec,
            move |_, builtin, names, args| {
                let a = <Args as FunctionArgs<'_>>::from_args(builtin, names, args)?;
                f.invoke(a).into_result()
            },
        );
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
        self.declare::<Args>(Kind::Filter, name, &spec, move |_, builtin, names, args| {
            let a = <Args as FunctionArgs<'_>>::from_args(builtin, names, args)?;
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
        self.declare::<Args>(Kind::Test, name, &spec, move |_, builtin, names, args| {
            let a = <Args as FunctionArgs<'_>>::from_args(builtin, names, args)?;
            Ok(Value::Bool(f.invoke(a).into_result()?.is_truthy()))
        });
    }
}

#[cfg(test)]
mod tests {
    use super::super::Signature;
    use super::*;
    use crate::error::ErrorKind;

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
            "ERR pad: arg1 must be an integer, got a string"
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

    #[test]
    fn declared_builtins_convert_and_name_their_parameters() {
        let mut r = Registry::default();
        r.declare_filter(
            "pad",
            &["width", "fill?"],
            |_: &mut dyn State, s: Cow<str>, width: i64, fill: Option<Cow<str>>| {
                let fill = fill.unwrap_or(Cow::Borrowed(" "));
                format!("{}{s}", fill.repeat(usize::try_from(width).unwrap_or(0)))
            },
        );
        r.declare_function(
            "count",
            &["first", "rest..."],
            |_: &mut dyn State, first: &Value, Rest(rest): Rest| {
                i64::from(!first.is_undefined()) + rest.len() as i64
            },
        );
        r.declare_function(
            "apply",
            &["arrow"],
            |st: &mut dyn State, Arrow(f): Arrow| st.call(f, &[]),
        );
        let out = |res: Result<Value, Error>| match res {
            Ok(v) => v.to_output(),
            Err(e) => format!("ERR {}", e.message()),
        };
        assert_eq!(
            out(run(&r, "filter", "pad", &[Value::Int(7), Value::Int(2)])),
            "  7"
        );
        assert_eq!(
            out(run(
                &r,
                "filter",
                "pad",
                &[Value::str("x"), Value::Int(1), Value::Null]
            )),
            " x"
        );
        assert_eq!(
            out(run(
                &r,
                "filter",
                "pad",
                &[Value::list(vec![]), Value::Int(1)]
            )),
            "ERR pad: the input must be a string, got a list"
        );
        assert_eq!(
            out(run(
                &r,
                "filter",
                "pad",
                &[Value::str("x"), Value::str("wide")]
            )),
            "ERR pad: width must be an integer, got a string"
        );
        assert_eq!(
            out(run(
                &r,
                "filter",
                "pad",
                &[Value::str("x"), Value::Int(1), Value::list(vec![])]
            )),
            "ERR pad: fill must be a string, got a list"
        );
        let ints: Vec<Value> = (0..4).map(Value::Int).collect();
        assert_eq!(out(run(&r, "function", "count", &ints)), "4");
        assert_eq!(out(run(&r, "function", "count", &[])), "0");
        assert_eq!(
            out(run(&r, "function", "apply", &[Value::Int(1)])),
            "ERR apply: arrow must be an arrow function, got a number"
        );
        let sig = &r.filters.get("pad").expect("pad").signature;
        assert_eq!(
            (sig.params.clone(), sig.types.clone(), sig.required),
            (vec!["width", "fill"], vec!["integer", "string"], 1)
        );
        let sig = &r.functions.get("count").expect("count").signature;
        assert!(sig.variadic && sig.types == ["any", "any"]);
    }

    #[test]
    #[cfg(debug_assertions)]
    #[should_panic(expected = "does not declare every parameter")]
    fn a_spec_that_misses_a_parameter_is_caught_at_registration() {
        let mut r = Registry::default();
        r.declare_filter("bad", &[], |_: &mut dyn State, _s: Cow<str>, _n: i64| 0);
    }

    /// The example of docs/catalogue.md "Host filters, functions and tests from typed closures".
    #[test]
    fn declared_host_filter_with_named_arguments() {
        let mut engine = crate::Engine::new();
        engine.registry_mut().declare_filter(
            "pad",
            &["width", "fill?"],
            |_: &mut dyn State, s: Cow<str>, width: i64, fill: Option<Cow<str>>| {
                format!(
                    "{}{s}",
                    fill.as_deref()
                        .unwrap_or(" ")
                        .repeat(width.clamp(0, 100) as usize)
                )
            },
        );
        engine
            .registry_mut()
            .add_function("clamp", |x: i64, lo: i64, hi: Option<i64>| {
                x.max(lo).min(hi.unwrap_or(i64::MAX))
            });
        let render = |src: &str| {
            engine
                .compile("t", src)
                .and_then(|t| t.render(&serde_json::json!({})))
                .unwrap_or_else(|e| format!("ERR {}", e.message()))
        };
        assert_eq!(render(r#"{{ "x"|pad(fill: "*", width: 2) }}"#), "**x");
        assert_eq!(
            render(r#"{{ "x"|pad(width: "wide") }}"#),
            "ERR pad: width must be an integer, got a string"
        );
        assert_eq!(render("{{ clamp(5, arg2: 7) }}"), "7");
    }
}
