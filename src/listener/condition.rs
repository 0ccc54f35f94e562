//! The 18 condition operators (docs/listener.md "Workflows") over rendered operands: two numbers compare as
//! numbers, two dates as dates (instants), anything else as strings (byte order). Dates are
//! read by the templates' date parser (`builtins::dates`, as PHP reads them): `YYYY-MM-DD`,
//! optionally with `T` or a space and `HH:MM[:SS[.fraction]]`, optionally with `Z` or an
//! offset `±HH[:MM]`/`±HHMM`; dates without an offset are in the server's time zone, a time
//! in a daylight-saving gap moves forward by the gap and a repeated time is the earlier one. `greater_than_now`/`less_than_now`
//! are false when the left operand is not a date (or a number, read as a Unix timestamp).
//! The string operators (`contains`, `begins_with`, …) are case-sensitive; `is_empty` trims.

use super::config::Operator;
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use std::cmp::Ordering;

/// A date operand as a UTC instant.
pub fn parse_date(s: &str, tz: &Tz) -> Option<DateTime<Utc>> {
    crate::builtins::dates::parse_iso(s.trim())?.instant(tz)
}

fn number(s: &str) -> Option<f64> {
    let t = s.trim();
    if t.is_empty() {
        return None;
    }
    t.parse::<f64>().ok().filter(|f| f.is_finite())
}

/// Orders two operands: numbers, then dates, then strings.
pub fn compare(a: &str, b: &str, tz: &Tz) -> Ordering {
    if let (Some(x), Some(y)) = (number(a), number(b)) {
        return x.partial_cmp(&y).unwrap_or(Ordering::Equal);
    }
    if let (Some(x), Some(y)) = (parse_date(a, tz), parse_date(b, tz)) {
        return x.cmp(&y);
    }
    a.cmp(b)
}

fn versus_now(left: &str, tz: &Tz) -> Option<Ordering> {
    let now = crate::clock::now();
    if let Some(d) = parse_date(left, tz) {
        return Some(d.cmp(&now));
    }
    let n = number(left)?;
    n.partial_cmp(&(now.timestamp_millis() as f64 / 1000.0))
}

/// Evaluates `left op right [right2]`.
pub fn evaluate(op: Operator, left: &str, right: &str, right2: &str, tz: &Tz) -> bool {
    use Operator::*;
    match op {
        Equal => compare(left, right, tz) == Ordering::Equal,
        NotEqual => compare(left, right, tz) != Ordering::Equal,
        Greater => compare(left, right, tz) == Ordering::Greater,
        GreaterOrEqual => compare(left, right, tz) != Ordering::Less,
        Less => compare(left, right, tz) == Ordering::Less,
        LessOrEqual => compare(left, right, tz) != Ordering::Greater,
        GreaterThanNow => versus_now(left, tz) == Some(Ordering::Greater),
        LessThanNow => versus_now(left, tz) == Some(Ordering::Less),
        Between => {
            compare(left, right, tz) != Ordering::Less
                && compare(left, right2, tz) != Ordering::Greater
        }
        Contains => left.contains(right),
        NotContains => !left.contains(right),
        BeginsWith => left.starts_with(right),
        NotBeginsWith => !left.starts_with(right),
        EndsWith => left.ends_with(right),
        NotEndsWith => !left.ends_with(right),
        IsEmpty => left.trim().is_empty(),
        IsNotEmpty => !left.trim().is_empty(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    const TZ: Tz = chrono_tz::UTC;

    #[test]
    fn numbers_dates_strings() {
        assert!(evaluate(Operator::Greater, "10", "9", "", &TZ));
        assert!(evaluate(Operator::Less, "10", "9a", "", &TZ)); // strings: "1" < "9"
        assert!(evaluate(Operator::Equal, "1.0", "1", "", &TZ));
        assert!(evaluate(
            Operator::Less,
            "2024-01-02",
            "2024-01-10T00:00:00Z",
            "",
            &TZ
        ));
        assert!(evaluate(Operator::Between, "5", "1", "10", &TZ));
        assert!(!evaluate(Operator::Between, "11", "1", "10", &TZ));
        assert!(evaluate(
            Operator::GreaterThanNow,
            "2999-01-01",
            "",
            "",
            &TZ
        ));
        assert!(evaluate(
            Operator::LessThanNow,
            "2000-01-01 10:00",
            "",
            "",
            &TZ
        ));
        assert!(!evaluate(Operator::LessThanNow, "not a date", "", "", &TZ));
        assert!(evaluate(Operator::IsEmpty, "  ", "", "", &TZ));
    }

    /// One grammar with the `date` filter (Twig/PHP): fractions, offsets with or without a
    /// colon, and a time in the spring-forward gap moved forward (02:30 on 8 March 2026 in New
    /// York is 03:30 EDT, as PHP's `new DateTime` reads it).
    #[test]
    fn dates_are_read_as_the_templates_read_them() {
        let ny: Tz = chrono_tz::America::New_York;
        let at = |s: &str| parse_date(s, &ny).map(|d| d.to_rfc3339());
        let gap = Some("2026-03-08T07:30:00+00:00".to_string());
        assert_eq!(at("2026-03-08 02:30"), gap);
        assert_eq!(at("2026-03-08T02:30:00"), gap);
        assert_eq!(at("2026-03-08 03:30"), gap);
        // The repeated hour of the fall-back night: the earlier (EDT) instant.
        assert_eq!(
            at("2026-11-01 01:30"),
            Some("2026-11-01T05:30:00+00:00".into())
        );
        assert_eq!(
            at("2026-01-01 10:00:00.5"),
            Some("2026-01-01T15:00:00.500+00:00".into())
        );
        for s in [
            "2026-01-01 10:00:00+0200",
            "2026-01-01 10:00+02",
            "2026-01-01T10:00:00+02:00",
        ] {
            assert_eq!(at(s), Some("2026-01-01T08:00:00+00:00".into()), "{s}");
        }
        assert_eq!(at("2026-01-01T10:00:00Z"), at("2026-01-01 05:00"));
        assert!(evaluate(
            Operator::Equal,
            "2026-03-08 02:30",
            "2026-03-08T07:30:00Z",
            "",
            &ny
        ));
        // The same instants through the template's date filter.
        let engine = crate::Engine::new();
        let tpl = engine
            .compile(
                "t",
                "{{ '2026-03-08 02:30'|date('c', 'America/New_York') }} \
                 {{ '2026-01-01 10:00:00+0200'|date('c', 'UTC') }}",
            )
            .expect("compiles");
        assert_eq!(
            tpl.render(&serde_json::json!({})).expect("renders"),
            "2026-03-08T03:30:00-04:00 2026-01-01T08:00:00+00:00"
        );
        assert_eq!(parse_date("2026-13-01", &ny), None);
        assert_eq!(parse_date("today", &ny), None);
    }

    #[test]
    fn dates_without_offset_are_in_the_server_time_zone() {
        let berlin: Tz = chrono_tz::Europe::Berlin;
        // 00:30 in Berlin (winter, UTC+1) is 23:30 UTC the day before.
        assert!(evaluate(
            Operator::Less,
            "2024-01-01 00:30",
            "2023-12-31T23:45:00Z",
            "",
            &berlin
        ));
        assert!(!evaluate(
            Operator::Less,
            "2024-01-01 00:30",
            "2023-12-31T23:45:00Z",
            "",
            &TZ
        ));
    }
}
