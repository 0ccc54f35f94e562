//! PHP relative date modifiers (`"+1 day"`, `"next monday"`, `"first day of next month"`…).
//!
//! The subset of PHP's relative formats this project supports, applied in PHP's order:
//! weekday moves first, then the collected `±N unit` offsets (years, months and days on
//! the wall-clock date — `2024-01-31 +1 month` is `2024-03-02` — hours, minutes and
//! seconds as elapsed time), then `first/last day of`, with `today`/`midnight`/`noon`/`H:i`
//! setting the time of day. `±N weekdays` counts business days (Monday–Friday); a weekday
//! name together with `next/this/last week` is that day of the shifted ISO week.

use super::datefmt::days_in_month;
use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveDateTime, NaiveTime, Weekday};
use chrono_tz::Tz;

/// How a weekday name moves the date.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum WeekdayMove {
    /// `monday`, `this monday`: today when it is that day, else the next one.
    This,
    /// `next monday`: strictly after today.
    Next,
    /// `last monday`, `previous monday`: strictly before today.
    Last,
}

/// A parsed modifier.
#[derive(Debug, Default)]
struct Relative {
    months: i64,
    days: i64,
    seconds: i64,
    /// Business days (`+3 weekdays`): Monday to Friday.
    weekdays: i64,
    weekday: Option<(Weekday, WeekdayMove)>,
    /// `next week`, `this week`…: a weekday name then means that day of the (shifted) ISO week.
    week_text: bool,
    time: Option<NaiveTime>,
    /// `Some(true)`: first day of the month; `Some(false)`: last day.
    first_last: Option<bool>,
}

/// Applies `modifier` to `dt`; `Err` carries a message without the builtin name.
pub fn apply(dt: &DateTime<Tz>, modifier: &str) -> Result<DateTime<Tz>, String> {
    let rel = parse(modifier)?;
    let tz = dt.timezone();
    let mut date = dt.date_naive();
    let mut time = dt.time();
    if let Some(t) = rel.time {
        time = t;
    }
    if let Some((wd, mv)) = rel.weekday {
        date = if rel.week_text {
            // "monday next week": the Monday of the week the offsets land in.
            let from = i64::from(date.weekday().num_days_from_monday());
            let to = i64::from(wd.num_days_from_monday());
            date.checked_add_signed(Duration::days(to - from))
                .ok_or("date out of range")?
        } else {
            move_to_weekday(date, wd, mv)
        };
    }
    let total_months = i64::from(date.year()) * 12 + i64::from(date.month0());
    let total_months = total_months
        .checked_add(rel.months)
        .ok_or("date out of range")?;
    let year = i32::try_from(total_months.div_euclid(12)).map_err(|_| "date out of range")?;
    let month = u32::try_from(total_months.rem_euclid(12) + 1).map_err(|_| "date out of range")?;
    let first = NaiveDate::from_ymd_opt(year, month, 1).ok_or("date out of range")?;
    date = match rel.first_last {
        Some(true) => first,
        Some(false) => first
            .checked_add_signed(Duration::days(i64::from(days_in_month(year, month)) - 1))
            .ok_or("date out of range")?,
        None => {
            // PHP normalises an overflowing day into the following month.
            let offset = (i64::from(date.day()) - 1)
                .checked_add(rel.days)
                .ok_or("date out of range")?;
            first
                .checked_add_signed(Duration::try_days(offset).ok_or("date out of range")?)
                .ok_or("date out of range")?
        }
    };
    if rel.weekdays != 0 {
        date = add_weekdays(date, rel.weekdays).ok_or("date out of range")?;
    }
    let local = super::dates::resolve_local(&tz, NaiveDateTime::new(date, time))
        .ok_or("date out of range")?;
    let shift = Duration::try_seconds(rel.seconds).ok_or("date out of range")?;
    local
        .checked_add_signed(shift)
        .ok_or_else(|| "date out of range".to_string())
}

/// Moves `n` business days (Monday–Friday) from `date`; a weekend start counts from the
/// Friday before (forward) or the Monday after (backward), as PHP does.
fn add_weekdays(date: NaiveDate, n: i64) -> Option<NaiveDate> {
    let is_weekend = |d: NaiveDate| d.weekday().number_from_monday() >= 6;
    let step = n.signum();
    let mut d = date;
    while is_weekend(d) {
        d = d.checked_add_signed(Duration::days(-step))?;
    }
    let weeks = (n / 5).checked_mul(7)?;
    d = d.checked_add_signed(Duration::try_days(weeks)?)?;
    for _ in 0..(n % 5).abs() {
        d = d.checked_add_signed(Duration::days(step))?;
        while is_weekend(d) {
            d = d.checked_add_signed(Duration::days(step))?;
        }
    }
    Some(d)
}

fn move_to_weekday(date: NaiveDate, wd: Weekday, mv: WeekdayMove) -> NaiveDate {
    let today = i64::from(date.weekday().num_days_from_monday());
    let target = i64::from(wd.num_days_from_monday());
    let ahead = (target - today).rem_euclid(7);
    let delta = match mv {
        WeekdayMove::This => ahead,
        WeekdayMove::Next if ahead == 0 => 7,
        WeekdayMove::Next => ahead,
        WeekdayMove::Last if ahead == 0 => -7,
        WeekdayMove::Last => ahead - 7,
    };
    date.checked_add_signed(Duration::days(delta))
        .unwrap_or(date)
}

/// One lexical item of a modifier.
#[derive(Clone, Debug, PartialEq)]
enum Token {
    Number(i64),
    Word(String),
    Time(NaiveTime),
}

fn tokenize(s: &str) -> Result<Vec<Token>, String> {
    let chars: Vec<char> = s.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while let Some(&c) = chars.get(i) {
        if c.is_whitespace() || c == ',' {
            i += 1;
        } else if c == '+' || c == '-' || c.is_ascii_digit() {
            let start = i;
            i += 1;
            while chars.get(i).is_some_and(char::is_ascii_digit) {
                i += 1;
            }
            if chars.get(i) == Some(&':') {
                while chars
                    .get(i)
                    .is_some_and(|c| c.is_ascii_digit() || *c == ':')
                {
                    i += 1;
                }
                let text: String = chars.get(start..i).unwrap_or_default().iter().collect();
                let time = NaiveTime::parse_from_str(&text, "%H:%M:%S")
                    .or_else(|_| NaiveTime::parse_from_str(&text, "%H:%M"))
                    .map_err(|_| format!("invalid time \"{text}\""))?;
                tokens.push(Token::Time(time));
                continue;
            }
            let text: String = chars.get(start..i).unwrap_or_default().iter().collect();
            let n = match text.as_str() {
                "+" | "-" => {
                    return Err(format!("expected a number after \"{text}\""));
                }
                t => t
                    .parse::<i64>()
                    .map_err(|_| format!("number \"{t}\" is out of range"))?,
            };
            tokens.push(Token::Number(n));
        } else if c.is_alphabetic() {
            let start = i;
            while chars.get(i).is_some_and(|c| c.is_alphabetic()) {
                i += 1;
            }
            let word: String = chars.get(start..i).unwrap_or_default().iter().collect();
            tokens.push(Token::Word(word.to_lowercase()));
        } else {
            return Err(format!("unexpected character '{c}'"));
        }
    }
    Ok(tokens)
}

/// Seconds per unit for time units; `None` for calendar units.
enum Unit {
    Seconds(i64),
    Days(i64),
    Months(i64),
    Weekdays,
}

fn unit(word: &str) -> Option<Unit> {
    Some(match word {
        "sec" | "secs" | "second" | "seconds" => Unit::Seconds(1),
        "min" | "mins" | "minute" | "minutes" => Unit::Seconds(60),
        "hour" | "hours" => Unit::Seconds(3600),
        "day" | "days" => Unit::Days(1),
        "week" | "weeks" => Unit::Days(7),
        "fortnight" | "fortnights" => Unit::Days(14),
        "month" | "months" => Unit::Months(1),
        "year" | "years" => Unit::Months(12),
        "weekday" | "weekdays" => Unit::Weekdays,
        _ => return None,
    })
}

fn weekday(word: &str) -> Option<Weekday> {
    Some(match word {
        "monday" | "mon" => Weekday::Mon,
        "tuesday" | "tue" | "tues" => Weekday::Tue,
        "wednesday" | "wed" => Weekday::Wed,
        "thursday" | "thu" | "thur" | "thurs" => Weekday::Thu,
        "friday" | "fri" => Weekday::Fri,
        "saturday" | "sat" => Weekday::Sat,
        "sunday" | "sun" => Weekday::Sun,
        _ => return None,
    })
}

fn add_unit(rel: &mut Relative, n: i64, u: Unit) -> Result<(), String> {
    let overflow = || "offset is out of range".to_string();
    match u {
        Unit::Seconds(k) => {
            rel.seconds = n
                .checked_mul(k)
                .and_then(|v| rel.seconds.checked_add(v))
                .ok_or_else(overflow)?;
        }
        Unit::Days(k) => {
            rel.days = n
                .checked_mul(k)
                .and_then(|v| rel.days.checked_add(v))
                .ok_or_else(overflow)?;
        }
        Unit::Months(k) => {
            rel.months = n
                .checked_mul(k)
                .and_then(|v| rel.months.checked_add(v))
                .ok_or_else(overflow)?;
        }
        Unit::Weekdays => {
            rel.weekdays = rel.weekdays.checked_add(n).ok_or_else(overflow)?;
        }
    }
    Ok(())
}

fn parse(modifier: &str) -> Result<Relative, String> {
    let tokens = tokenize(modifier)?;
    if tokens.is_empty() {
        return Err("the modifier is empty".into());
    }
    let mut rel = Relative::default();
    let mut i = 0;
    let word_at = |i: usize| match tokens.get(i) {
        Some(Token::Word(w)) => Some(w.as_str()),
        _ => None,
    };
    while let Some(tok) = tokens.get(i) {
        match tok {
            Token::Time(t) => {
                rel.time = Some(*t);
                i += 1;
            }
            Token::Number(n) => {
                let u = word_at(i + 1)
                    .and_then(unit)
                    .ok_or_else(|| format!("expected a unit (day, month…) after {n}"))?;
                add_unit(&mut rel, *n, u)?;
                i += 2;
            }
            Token::Word(w) => {
                let w = w.as_str();
                match w {
                    "now" => i += 1,
                    "today" | "midnight" => {
                        rel.time = Some(NaiveTime::MIN);
                        i += 1;
                    }
                    "noon" => {
                        rel.time = NaiveTime::from_hms_opt(12, 0, 0);
                        i += 1;
                    }
                    "tomorrow" | "yesterday" => {
                        rel.time = Some(NaiveTime::MIN);
                        add_unit(
                            &mut rel,
                            if w == "tomorrow" { 1 } else { -1 },
                            Unit::Days(1),
                        )?;
                        i += 1;
                    }
                    "ago" => {
                        let neg = |v: i64| v.checked_neg().ok_or("offset is out of range");
                        rel.months = neg(rel.months)?;
                        rel.days = neg(rel.days)?;
                        rel.seconds = neg(rel.seconds)?;
                        rel.weekdays = neg(rel.weekdays)?;
                        i += 1;
                    }
                    "first" | "last"
                        if word_at(i + 1) == Some("day") && word_at(i + 2) == Some("of") =>
                    {
                        rel.first_last = Some(w == "first");
                        i += 3;
                    }
                    "next" | "last" | "previous" | "this" => {
                        let next = word_at(i + 1)
                            .ok_or_else(|| format!("expected a unit or weekday after \"{w}\""))?;
                        if let Some(wd) = weekday(next) {
                            let mv = match w {
                                "next" => WeekdayMove::Next,
                                "this" => WeekdayMove::This,
                                _ => WeekdayMove::Last,
                            };
                            rel.weekday = Some((wd, mv));
                            rel.time = Some(NaiveTime::MIN);
                        } else if let Some(u) = unit(next) {
                            rel.week_text |= matches!(next, "week" | "weeks");
                            let n = match w {
                                "next" => 1,
                                "this" => 0,
                                _ => -1,
                            };
                            add_unit(&mut rel, n, u)?;
                        } else {
                            return Err(format!("unknown unit \"{next}\" after \"{w}\""));
                        }
                        i += 2;
                    }
                    other => {
                        if let Some(wd) = weekday(other) {
                            rel.weekday = Some((wd, WeekdayMove::This));
                            rel.time = Some(NaiveTime::MIN);
                        } else if let Some(u) = unit(other) {
                            // A bare unit counts as one: "day" = "+1 day".
                            add_unit(&mut rel, 1, u)?;
                        } else {
                            return Err(format!("unknown word \"{other}\""));
                        }
                        i += 1;
                    }
                }
            }
        }
    }
    Ok(rel)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn run(start: &str, m: &str) -> String {
        let naive = NaiveDateTime::parse_from_str(start, "%Y-%m-%d %H:%M:%S").unwrap();
        let dt = chrono_tz::UTC.from_local_datetime(&naive).single().unwrap();
        apply(&dt, m)
            .map(|d| d.format("%Y-%m-%d %H:%M:%S").to_string())
            .unwrap_or_else(|e| format!("ERR {e}"))
    }

    #[test]
    fn offsets() {
        let s = "2024-01-31 10:30:00";
        assert_eq!(run(s, "+1 day"), "2024-02-01 10:30:00");
        assert_eq!(run(s, "+1 month"), "2024-03-02 10:30:00");
        assert_eq!(
            run("2023-01-31 00:00:00", "+1 month"),
            "2023-03-03 00:00:00"
        );
        assert_eq!(run(s, "-2 hours"), "2024-01-31 08:30:00");
        assert_eq!(run(s, "+1 day +2 hours"), "2024-02-01 12:30:00");
        assert_eq!(run(s, "+1day"), "2024-02-01 10:30:00");
        assert_eq!(run(s, "1 fortnight"), "2024-02-14 10:30:00");
        assert_eq!(run(s, "3 days ago"), "2024-01-28 10:30:00");
        assert_eq!(run(s, "+90 sec"), "2024-01-31 10:31:30");
        assert_eq!(run("2024-02-29 00:00:00", "+1 year"), "2025-03-01 00:00:00");
        assert_eq!(
            run("2024-03-31 00:00:00", "-1 month"),
            "2024-03-02 00:00:00"
        );
        assert_eq!(run(s, "next month"), "2024-03-02 10:30:00");
        assert_eq!(run(s, "last year"), "2023-01-31 10:30:00");
    }

    #[test]
    fn words() {
        // 2024-04-10 is a Wednesday.
        let s = "2024-04-10 10:30:00";
        assert_eq!(run(s, "tomorrow"), "2024-04-11 00:00:00");
        assert_eq!(run(s, "yesterday noon"), "2024-04-09 12:00:00");
        assert_eq!(run(s, "midnight"), "2024-04-10 00:00:00");
        assert_eq!(run(s, "today"), "2024-04-10 00:00:00");
        assert_eq!(run(s, "next monday"), "2024-04-15 00:00:00");
        assert_eq!(run(s, "last friday"), "2024-04-05 00:00:00");
        assert_eq!(run(s, "wednesday"), "2024-04-10 00:00:00");
        assert_eq!(run(s, "next wednesday"), "2024-04-17 00:00:00");
        assert_eq!(run(s, "last wednesday"), "2024-04-03 00:00:00");
        assert_eq!(run(s, "first day of next month"), "2024-05-01 10:30:00");
        assert_eq!(run(s, "last day of this month"), "2024-04-30 10:30:00");
        assert_eq!(run(s, "first day of previous month"), "2024-03-01 10:30:00");
        assert_eq!(
            run("2024-03-31 00:00:00", "last day of previous month"),
            "2024-02-29 00:00:00"
        );
        assert_eq!(
            run("2024-01-31 09:00:00", "first day of next month midnight"),
            "2024-02-01 00:00:00"
        );
        assert_eq!(run(s, "tomorrow 14:15"), "2024-04-11 14:15:00");
        assert_eq!(run(s, "next monday +2 hours"), "2024-04-15 02:00:00");
        // Business days from Wednesday 2024-04-10, Saturday 04-13 and Sunday 04-14.
        assert_eq!(run(s, "+3 weekdays"), "2024-04-15 10:30:00");
        assert_eq!(run(s, "+5 weekdays"), "2024-04-17 10:30:00");
        assert_eq!(run(s, "+7 weekdays"), "2024-04-19 10:30:00");
        assert_eq!(run(s, "-3 weekdays"), "2024-04-05 10:30:00");
        assert_eq!(run(s, "2 weekdays ago"), "2024-04-08 10:30:00");
        assert_eq!(
            run("2024-04-13 09:00:00", "+1 weekday"),
            "2024-04-15 09:00:00"
        );
        assert_eq!(
            run("2024-04-14 09:00:00", "+5 weekdays"),
            "2024-04-19 09:00:00"
        );
        assert_eq!(
            run("2024-04-13 09:00:00", "-1 weekday"),
            "2024-04-12 09:00:00"
        );
        assert_eq!(
            run("2024-04-14 09:00:00", "-6 weekdays"),
            "2024-04-05 09:00:00"
        );
        assert!(run(s, "+9223372036854775807 weekdays").starts_with("ERR"));
        // A weekday with "… week" is that day of the shifted ISO week, as in PHP.
        assert_eq!(run(s, "monday next week"), "2024-04-15 00:00:00");
        assert_eq!(run(s, "sunday this week"), "2024-04-14 00:00:00");
        assert_eq!(run(s, "friday last week"), "2024-04-05 00:00:00");
        assert_eq!(run(s, "monday this week"), "2024-04-08 00:00:00");
    }

    #[test]
    fn errors() {
        let s = "2024-04-10 10:30:00";
        assert!(run(s, "").starts_with("ERR"));
        assert!(run(s, "+1 parsec").starts_with("ERR"));
        assert!(run(s, "banana").starts_with("ERR"));
        assert!(run(s, "+").starts_with("ERR"));
        assert!(run(s, "next").starts_with("ERR"));
        assert!(run(s, "+99999999999999999999 days").starts_with("ERR"));
        assert!(run(s, "+9223372036854775807 years").starts_with("ERR"));
        assert!(run(s, "+2000000000 days").starts_with("ERR"));
        assert!(run(s, "+9223372036854775807 days").starts_with("ERR"));
        assert!(run(s, "-9223372036854775808 days ago").starts_with("ERR"));
        assert!(run(s, "-9223372036854775808 seconds").starts_with("ERR"));
        assert!(run(s, "+9223372036854775807 days tomorrow").starts_with("ERR"));
        assert!(run(s, "25:99").starts_with("ERR"));
    }
}
