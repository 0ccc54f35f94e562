//! Date builtins (docs/catalogue.md "Behaviour notes (dates, security, host)"): filters `date`, `date_modify`; functions `now`,
//! `date`, `dateAdd`, `daysBetween`.
//!
//! Inputs: Unix timestamps (integers, or strings of digits, or `@digits`), `"now"`, ISO 8601
//! (`2024-04-12`, `2024-04-12T10:00`, `…:00Z`, `…+02:00`) and `"Y-m-d H:i:s"`; anything else
//! is an error naming the builtin. `null`, undefined and `""` give `null` (a missing CRM field
//! prints as nothing instead of failing the whole render). A naive input (no offset) is read in
//! the call's timezone (the filter's `timezone`, else the engine's); output is in that timezone.

use super::typed::type_error;
use super::{datefmt, datemod, Registry, State};
use crate::error::{Error, ErrorKind};
use crate::value::Value;
use chrono::{
    DateTime, Duration, FixedOffset, LocalResult, NaiveDate, NaiveDateTime, NaiveTime, TimeZone,
    Utc,
};
use chrono_tz::Tz;
use std::borrow::Cow;

/// A date input before it is placed in a timezone.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum DateInput {
    /// A point in time (timestamp, `"now"`, a string with an offset).
    Instant(DateTime<Utc>),
    /// A wall-clock date-time without offset, read in the call's timezone.
    Naive(NaiveDateTime),
}

impl DateInput {
    /// The instant of the input, a naive one read in `tz` (see [`resolve_local`]); `None` for
    /// a wall-clock time that cannot be placed.
    pub(crate) fn instant(self, tz: &Tz) -> Option<DateTime<Utc>> {
        match self {
            DateInput::Instant(t) => Some(t),
            DateInput::Naive(n) => resolve_local(tz, n).map(|t| t.with_timezone(&Utc)),
        }
    }

    /// Places the input in `tz`.
    pub(crate) fn in_zone(self, name: &str, tz: &Tz) -> Result<DateTime<Tz>, Error> {
        match (self.instant(tz), self) {
            (Some(t), _) => Ok(t.with_timezone(tz)),
            (None, DateInput::Naive(n)) => Err(Error::new(
                ErrorKind::InvalidArgument,
                format!("{name}: the date {n} does not exist in {}", tz.name()),
            )),
            (None, DateInput::Instant(t)) => Ok(t.with_timezone(tz)),
        }
    }
}

/// The zoned date-time of a wall-clock time. Ambiguous times (the repeated hour when clocks
/// go back) take the earlier instant; times in a gap (clocks go forward) move forward by the
/// gap, as PHP does (02:30 on a spring-forward night in New York is 03:30 EDT).
pub(crate) fn resolve_local(tz: &Tz, naive: NaiveDateTime) -> Option<DateTime<Tz>> {
    match tz.from_local_datetime(&naive) {
        LocalResult::Single(dt) => Some(dt),
        LocalResult::Ambiguous(a, b) => Some(a.min(b)),
        LocalResult::None => {
            let before = naive.checked_sub_signed(Duration::hours(3))?;
            let offset = match tz.from_local_datetime(&before) {
                LocalResult::Single(dt) => *dt.offset(),
                LocalResult::Ambiguous(a, _) => *a.offset(),
                LocalResult::None => return None,
            };
            let utc = naive.checked_sub_signed(Duration::seconds(i64::from(
                chrono::Offset::fix(&offset).local_minus_utc(),
            )))?;
            Some(tz.from_utc_datetime(&utc))
        }
    }
}

/// Reads the date parameter `what` of `name`; `Ok(None)` for null, undefined and `""`.
pub(crate) fn parse_input(name: &str, what: &str, v: &Value) -> Result<Option<DateInput>, Error> {
    let out_of_range = || {
        Error::new(
            ErrorKind::InvalidArgument,
            format!("{name}: timestamp {} is out of range", v.to_output()),
        )
    };
    match v {
        Value::Undefined | Value::Null => Ok(None),
        Value::Int(secs) => DateTime::from_timestamp(*secs, 0)
            .map(|t| Some(DateInput::Instant(t)))
            .ok_or_else(out_of_range),
        Value::Float(f) if f.is_finite() && f.abs() < 1e15 => {
            let secs = f.floor();
            let nanos = ((f - secs) * 1e9).round().clamp(0.0, 999_999_999.0) as u32;
            DateTime::from_timestamp(secs as i64, nanos)
                .map(|t| Some(DateInput::Instant(t)))
                .ok_or_else(out_of_range)
        }
        Value::Float(_) => Err(out_of_range()),
        Value::Str(s) | Value::Safe(s) => parse_str(name, s),
        other => Err(type_error(
            name,
            what,
            "a string or a Unix timestamp",
            other,
        )),
    }
}

fn parse_str(name: &str, raw: &str) -> Result<Option<DateInput>, Error> {
    let s = raw.trim();
    if s.is_empty() {
        return Ok(None);
    }
    if s.eq_ignore_ascii_case("now") {
        return Ok(Some(DateInput::Instant(crate::clock::now())));
    }
    let digits = s.strip_prefix('@').unwrap_or(s);
    let unsigned = digits.strip_prefix('-').unwrap_or(digits);
    if !unsigned.is_empty() && unsigned.bytes().all(|b| b.is_ascii_digit()) {
        return digits
            .parse::<i64>()
            .ok()
            .and_then(|secs| DateTime::from_timestamp(secs, 0))
            .map(|t| Some(DateInput::Instant(t)))
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::InvalidArgument,
                    format!("{name}: timestamp {s} is out of range"),
                )
            });
    }
    parse_iso(s).map(Some).ok_or_else(|| {
        let shown: String = s.chars().take(60).collect();
        Error::new(
            ErrorKind::InvalidArgument,
            format!(
                "{name}: cannot read \"{shown}\" as a date (expected a Unix timestamp, \"now\", \
                 ISO 8601 such as 2024-04-12 or 2024-04-12T10:00:00Z, or \"Y-m-d H:i:s\")"
            ),
        )
    })
}

/// `YYYY-MM-DD`, optionally followed by `T` or a space and `HH:MM[:SS[.frac]]`, optionally
/// followed by `Z` or an offset `±HH[:MM]` / `±HHMM`. The one date grammar of the crate: the
/// listener's condition steps read their dates with it too.
pub(crate) fn parse_iso(s: &str) -> Option<DateInput> {
    let date_part = s.get(..10)?;
    let date = NaiveDate::parse_from_str(date_part, "%Y-%m-%d").ok()?;
    let rest = s.get(10..)?;
    if rest.is_empty() {
        return Some(DateInput::Naive(date.and_time(NaiveTime::MIN)));
    }
    let rest = rest
        .strip_prefix('T')
        .or_else(|| rest.strip_prefix('t'))
        .or_else(|| rest.strip_prefix(' '))?;
    let (time_text, offset) = split_offset(rest)?;
    let time = ["%H:%M:%S%.f", "%H:%M"]
        .iter()
        .find_map(|f| NaiveTime::parse_from_str(time_text, f).ok())?;
    let naive = date.and_time(time);
    match offset {
        None => Some(DateInput::Naive(naive)),
        Some(off) => {
            let dt = off.from_local_datetime(&naive).single()?;
            Some(DateInput::Instant(dt.with_timezone(&Utc)))
        }
    }
}

/// Splits `10:00:00+02:00` into the time and its offset (`Z` is UTC).
fn split_offset(rest: &str) -> Option<(&str, Option<FixedOffset>)> {
    if let Some(t) = rest.strip_suffix('Z').or_else(|| rest.strip_suffix('z')) {
        return Some((t.trim_end(), FixedOffset::east_opt(0)));
    }
    let Some(pos) = rest.rfind(['+', '-']) else {
        return Some((rest, None));
    };
    let (time, off) = (rest.get(..pos)?.trim_end(), rest.get(pos..)?);
    let sign = if off.starts_with('-') { -1 } else { 1 };
    let body = off.get(1..)?.replace(':', "");
    if !body.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let (h, m) = match body.len() {
        2 => (body.parse::<i32>().ok()?, 0),
        4 => (
            body.get(..2)?.parse::<i32>().ok()?,
            body.get(2..)?.parse::<i32>().ok()?,
        ),
        _ => return None,
    };
    if h > 23 || m > 59 {
        return None;
    }
    Some((
        time,
        Some(FixedOffset::east_opt(sign * (h * 3600 + m * 60))?),
    ))
}

/// The timezone argument (an IANA name), or the engine's.
fn zone(name: &str, state: &dyn State, tz: Option<Cow<str>>) -> Result<Tz, Error> {
    match tz {
        None => Ok(state.host().timezone),
        Some(tz) => tz.trim().parse::<Tz>().map_err(|_| {
            Error::new(
                ErrorKind::InvalidArgument,
                format!("{name}: unknown timezone \"{tz}\" (expected an IANA name such as Europe/Paris)"),
            )
        }),
    }
}

/// Longest expansion of one format character (`l`, `c` and `r` are the long ones).
const MAX_EXPANSION: usize = 32;

/// Formats and checks the result against the size cap (before building it).
fn render(state: &dyn State, dt: &DateTime<Tz>, fmt: &str) -> Result<Value, Error> {
    state.check_size(fmt.len().saturating_mul(MAX_EXPANSION))?;
    let out = datefmt::format(dt, fmt);
    state.check_size(out.len())?;
    Ok(Value::from(out))
}

fn modify(name: &str, dt: &DateTime<Tz>, m: &str) -> Result<DateTime<Tz>, Error> {
    datemod::apply(dt, m).map_err(|e| {
        let shown: String = m.chars().take(60).collect();
        Error::new(
            ErrorKind::InvalidArgument,
            format!("{name}: cannot apply modifier \"{shown}\": {e}"),
        )
    })
}

/// Filter `date(format = "F j, Y H:i", timezone = null)`.
fn date_filter(
    state: &mut dyn State,
    date: &Value,
    format: Option<Cow<str>>,
    timezone: Option<Cow<str>>,
) -> Result<Value, Error> {
    let tz = zone("date", state, timezone)?;
    let fmt = format.unwrap_or(Cow::Borrowed("F j, Y H:i"));
    match parse_input("date", "the input", date)? {
        None => Ok(Value::Null),
        Some(input) => render(state, &input.in_zone("date", &tz)?, &fmt),
    }
}

/// Function `date(value, format = "Y-m-d H:i:s")`.
fn date_function(
    state: &mut dyn State,
    value: &Value,
    format: Option<Cow<str>>,
) -> Result<Value, Error> {
    let tz = state.host().timezone;
    let fmt = format.unwrap_or(Cow::Borrowed("Y-m-d H:i:s"));
    match parse_input("date", "value", value)? {
        None => Ok(Value::Null),
        Some(input) => render(state, &input.in_zone("date", &tz)?, &fmt),
    }
}

/// Filter `date_modify(modifier)`: a naive input gives a naive `Y-m-d H:i:s` result (so a later
/// `date(…, timezone)` reads it the same way); any other input an ISO 8601 string with offset.
fn date_modify(state: &mut dyn State, date: &Value, modifier: Cow<str>) -> Result<Value, Error> {
    let tz = state.host().timezone;
    let Some(input) = parse_input("date_modify", "the input", date)? else {
        return Ok(Value::Null);
    };
    let dt = modify(
        "date_modify",
        &input.in_zone("date_modify", &tz)?,
        &modifier,
    )?;
    let fmt = match input {
        DateInput::Naive(_) => "Y-m-d H:i:s",
        DateInput::Instant(_) => "Y-m-d\\TH:i:sP",
    };
    render(state, &dt, fmt)
}

/// Function `now(format = "Y-m-d H:i:s")`.
fn now(state: &mut dyn State, format: Option<Cow<str>>) -> Result<Value, Error> {
    let tz = state.host().timezone;
    let fmt = format.unwrap_or(Cow::Borrowed("Y-m-d H:i:s"));
    render(state, &crate::clock::now().with_timezone(&tz), &fmt)
}

/// Function `dateAdd(value, modifier, format = "Y-m-d H:i:s")`.
fn date_add(
    state: &mut dyn State,
    value: &Value,
    modifier: Cow<str>,
    format: Option<Cow<str>>,
) -> Result<Value, Error> {
    let tz = state.host().timezone;
    let fmt = format.unwrap_or(Cow::Borrowed("Y-m-d H:i:s"));
    let Some(input) = parse_input("dateAdd", "value", value)? else {
        return Ok(Value::Null);
    };
    let dt = modify("dateAdd", &input.in_zone("dateAdd", &tz)?, &modifier)?;
    render(state, &dt, &fmt)
}

/// Function `daysBetween(a, b)`: whole days from `a` to `b` on the engine's wall clock
/// (truncated toward zero, negative when `b` is earlier); `null` when either is missing.
fn days_between(state: &mut dyn State, a: &Value, b: &Value) -> Result<Value, Error> {
    let tz = state.host().timezone;
    let (Some(a), Some(b)) = (
        parse_input("daysBetween", "a", a)?,
        parse_input("daysBetween", "b", b)?,
    ) else {
        return Ok(Value::Null);
    };
    let a = a.in_zone("daysBetween", &tz)?.naive_local();
    let b = b.in_zone("daysBetween", &tz)?.naive_local();
    Ok(Value::Int(b.signed_duration_since(a).num_days()))
}

/// Registers this module's builtins.
pub fn register(r: &mut Registry) {
    r.declare_filter("date", &["format?", "timezone?"], date_filter);
    r.declare_filter("date_modify", &["modifier"], date_modify);
    r.declare_function("date", &["value|date", "format?"], date_function);
    r.declare_function("now", &["format?"], now);
    r.mark_non_deterministic("now");
    r.declare_function("dateAdd", &["value", "modifier", "format?"], date_add);
    r.declare_function("daysBetween", &["a", "b"], days_between);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::builtins::teststate::TestState;

    crate::builtins::teststate::shims!(
        date_filter => filter "date",
        date_modify => filter "date_modify",
        date_function => function "date",
        now => function "now",
        date_add => function "dateAdd",
        days_between => function "daysBetween",
    );

    fn call(f: fn(&mut dyn State, &[Value]) -> Result<Value, Error>, args: &[Value]) -> String {
        let mut st = TestState::default();
        match f(&mut st, args) {
            Ok(v) => v.to_output(),
            Err(e) => format!("ERR {}", e.message()),
        }
    }
    fn s(x: &str) -> Value {
        Value::from(x)
    }

    #[test]
    fn documented_examples() {
        assert_eq!(
            call(date_function, &[s("2024-04-12"), s("M j, Y")]),
            "Apr 12, 2024"
        );
        assert_eq!(
            call(date_add, &[s("2024-01-31"), s("+1 day"), s("Y-m-d")]),
            "2024-02-01"
        );
        assert_eq!(
            call(date_filter, &[s("2024-04-12 09:05:00")]),
            "April 12, 2024 09:05"
        );
    }

    #[test]
    fn inputs() {
        assert_eq!(call(date_function, &[Value::Int(0)]), "1970-01-01 00:00:00");
        assert_eq!(call(date_function, &[s("86400"), s("Y-m-d")]), "1970-01-02");
        assert_eq!(call(date_function, &[s("@86400"), s("U")]), "86400");
        assert_eq!(
            call(date_function, &[s("2024-04-12T10:00:00+02:00")]),
            "2024-04-12 08:00:00"
        );
        assert_eq!(
            call(date_function, &[s("2024-04-12T10:00:00.250Z"), s("v")]),
            "250"
        );
        assert_eq!(
            call(date_function, &[s("2024-04-12T10:00-0130")]),
            "2024-04-12 11:30:00"
        );
        assert_eq!(
            call(date_function, &[s("2024-04-12 10:00")]),
            "2024-04-12 10:00:00"
        );
        assert_eq!(call(date_function, &[Value::Null]), "");
        assert_eq!(call(date_function, &[s("")]), "");
        assert!(call(date_function, &[s("yesterday-ish")]).starts_with("ERR date: cannot read"));
        assert!(call(date_function, &[s("2024-13-01")]).starts_with("ERR date:"));
        assert!(call(date_function, &[s("2024-02-30")]).starts_with("ERR date:"));
        assert!(call(date_function, &[Value::Bool(true)])
            .starts_with("ERR date: value must be a string or a Unix timestamp, got a boolean"));
        assert!(call(date_function, &[Value::Int(i64::MAX)]).starts_with("ERR date: timestamp"));
        assert!(call(date_function, &[Value::Float(f64::NAN)]).starts_with("ERR date: timestamp"));
    }

    #[test]
    fn timezones() {
        let ny = s("America/New_York");
        assert_eq!(
            call(
                date_filter,
                &[s("2024-07-01T12:00:00Z"), s("H:i T"), ny.clone()]
            ),
            "08:00 EDT"
        );
        // Naive input is read in the per-call timezone; a gap moves forward.
        assert_eq!(
            call(date_filter, &[s("2024-03-10 02:30:00"), s("c"), ny.clone()]),
            "2024-03-10T03:30:00-04:00"
        );
        // Ambiguous hour takes the earlier instant.
        assert_eq!(
            call(
                date_filter,
                &[s("2024-11-03 01:30:00"), s("T U"), ny.clone()]
            ),
            "EDT 1730611800"
        );
        assert!(
            call(date_filter, &[s("2024-01-01"), s("Y"), s("Mars/Base")])
                .starts_with("ERR date: unknown timezone")
        );
    }

    #[test]
    fn modify_and_between() {
        assert_eq!(
            call(date_modify, &[s("2024-01-31"), s("+1 month")]),
            "2024-03-02 00:00:00"
        );
        assert_eq!(
            call(date_modify, &[s("2024-01-31T10:00:00Z"), s("-1 day")]),
            "2024-01-30T10:00:00+00:00"
        );
        assert!(call(date_modify, &[s("2024-01-31"), s("soon")]).starts_with("ERR date_modify:"));
        assert_eq!(
            call(days_between, &[s("2024-01-01"), s("2024-03-01")]),
            "60"
        );
        assert_eq!(
            call(days_between, &[s("2024-03-01"), s("2024-01-01")]),
            "-60"
        );
        assert_eq!(
            call(
                days_between,
                &[s("2024-01-01 23:00"), s("2024-01-02 01:00")]
            ),
            "0"
        );
        assert_eq!(call(days_between, &[Value::Null, s("2024-01-02")]), "");
        assert!(call(now, &[s("Y")]).parse::<i32>().is_ok_and(|y| y >= 2024));
    }
}
