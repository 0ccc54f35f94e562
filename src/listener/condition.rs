//! The 18 condition operators (docs/listener.md "Workflows") over rendered operands: two numbers compare as
//! numbers, two dates as dates (instants), anything else as strings (byte order). Dates are
//! RFC 3339, `YYYY-MM-DD HH:MM[:SS]`, `YYYY-MM-DDTHH:MM[:SS]` or `YYYY-MM-DD` (midnight);
//! dates without an offset are in the server's time zone. `greater_than_now`/`less_than_now`
//! are false when the left operand is not a date (or a number, read as a Unix timestamp).
//! The string operators (`contains`, `begins_with`, …) are case-sensitive; `is_empty` trims.

use super::config::Operator;
use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;
use std::cmp::Ordering;

/// A date operand as a UTC instant.
pub fn parse_date(s: &str, tz: &Tz) -> Option<DateTime<Utc>> {
    let s = s.trim();
    if let Ok(d) = DateTime::parse_from_rfc3339(s) {
        return Some(d.with_timezone(&Utc));
    }
    let naive = [
        "%Y-%m-%d %H:%M:%S",
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%d %H:%M",
        "%Y-%m-%dT%H:%M",
    ]
    .iter()
    .find_map(|f| NaiveDateTime::parse_from_str(s, f).ok())
    .or_else(|| {
        NaiveDate::parse_from_str(s, "%Y-%m-%d")
            .ok()
            .and_then(|d| d.and_hms_opt(0, 0, 0))
    })?;
    tz.from_local_datetime(&naive)
        .earliest()
        .map(|d| d.with_timezone(&Utc))
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
