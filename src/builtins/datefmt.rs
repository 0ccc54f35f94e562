//! PHP `date()` formatting of a zoned date-time (docs/catalogue.md "Behaviour notes (dates, security, host)").
//!
//! Supported letters: `d D j l N S w z W F m M n t L o Y y a A g G h H i s u v e I O P p T Z U c r`;
//! `\` makes the next character literal; every other character is copied as it is.

use chrono::{DateTime, Datelike, NaiveDate, Offset, Timelike};
use chrono_tz::{OffsetName, Tz};
use std::fmt::Write;

const DAYS: [&str; 7] = [
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
];
const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];

/// Formats `dt` with a PHP `date()` format string.
pub fn format(dt: &DateTime<Tz>, fmt: &str) -> String {
    let mut out = String::with_capacity(fmt.len() * 2);
    let mut chars = fmt.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(next) = chars.next() {
                out.push(next);
            }
            continue;
        }
        letter(&mut out, dt, c);
    }
    out
}

/// Writes the expansion of one format character.
fn letter(out: &mut String, dt: &DateTime<Tz>, c: char) {
    let day_name = DAYS
        .get(dt.weekday().num_days_from_monday() as usize)
        .copied()
        .unwrap_or("");
    let month_name = MONTHS.get(dt.month0() as usize).copied().unwrap_or("");
    let offset = dt.offset().fix().local_minus_utc();
    // `write!` into a String cannot fail.
    let _ = match c {
        'd' => write!(out, "{:02}", dt.day()),
        'D' => write!(out, "{}", day_name.get(..3).unwrap_or("")),
        'j' => write!(out, "{}", dt.day()),
        'l' => write!(out, "{day_name}"),
        'N' => write!(out, "{}", dt.weekday().number_from_monday()),
        'S' => write!(out, "{}", ordinal_suffix(dt.day())),
        'w' => write!(out, "{}", dt.weekday().num_days_from_sunday()),
        'z' => write!(out, "{}", dt.ordinal0()),
        'W' => write!(out, "{:02}", dt.iso_week().week()),
        'F' => write!(out, "{month_name}"),
        'm' => write!(out, "{:02}", dt.month()),
        'M' => write!(out, "{}", month_name.get(..3).unwrap_or("")),
        'n' => write!(out, "{}", dt.month()),
        't' => write!(out, "{}", days_in_month(dt.year(), dt.month())),
        'L' => write!(out, "{}", u8::from(is_leap(dt.year()))),
        'o' => write!(out, "{}", year4(dt.iso_week().year())),
        'Y' => write!(out, "{}", year4(dt.year())),
        'y' => write!(out, "{:02}", dt.year().rem_euclid(100)),
        'a' => write!(out, "{}", if dt.hour() < 12 { "am" } else { "pm" }),
        'A' => write!(out, "{}", if dt.hour() < 12 { "AM" } else { "PM" }),
        'g' => write!(out, "{}", hour12(dt.hour())),
        'G' => write!(out, "{}", dt.hour()),
        'h' => write!(out, "{:02}", hour12(dt.hour())),
        'H' => write!(out, "{:02}", dt.hour()),
        'i' => write!(out, "{:02}", dt.minute()),
        's' => write!(out, "{:02}", dt.second()),
        'u' => write!(out, "{:06}", micros(dt)),
        'v' => write!(out, "{:03}", micros(dt) / 1000),
        'e' => write!(out, "{}", dt.timezone().name()),
        'I' => write!(out, "{}", u8::from(is_dst(dt))),
        'O' => write_offset(out, offset, false),
        'P' => write_offset(out, offset, true),
        'p' if offset == 0 => write!(out, "Z"),
        'p' => write_offset(out, offset, true),
        'T' => match dt.offset().abbreviation() {
            Some(abbr) => write!(out, "{abbr}"),
            None => write_offset(out, offset, true),
        },
        'Z' => write!(out, "{offset}"),
        'U' => write!(out, "{}", dt.timestamp()),
        'c' => {
            out.push_str(&format(dt, "Y-m-d\\TH:i:sP"));
            Ok(())
        }
        'r' => {
            out.push_str(&format(dt, "D, d M Y H:i:s O"));
            Ok(())
        }
        other => {
            out.push(other);
            Ok(())
        }
    };
}

/// `+0200` or `+02:00`.
fn write_offset(out: &mut String, seconds: i32, colon: bool) -> std::fmt::Result {
    let sign = if seconds < 0 { '-' } else { '+' };
    let abs = seconds.unsigned_abs();
    let (h, m) = (abs / 3600, (abs % 3600) / 60);
    if colon {
        write!(out, "{sign}{h:02}:{m:02}")
    } else {
        write!(out, "{sign}{h:02}{m:02}")
    }
}

/// PHP pads `Y` to at least four digits (`-0055` for 56 BC in proleptic numbering).
fn year4(y: i32) -> String {
    if y < 0 {
        format!("-{:04}", y.unsigned_abs())
    } else {
        format!("{y:04}")
    }
}

fn hour12(h: u32) -> u32 {
    match h % 12 {
        0 => 12,
        x => x,
    }
}

fn micros(dt: &DateTime<Tz>) -> u32 {
    // Leap-second representation can exceed 999_999 µs; clamp like PHP shows them.
    (dt.nanosecond() / 1000).min(999_999)
}

/// English ordinal suffix of a day of the month.
fn ordinal_suffix(day: u32) -> &'static str {
    match (day % 10, day % 100) {
        (_, 11..=13) => "th",
        (1, _) => "st",
        (2, _) => "nd",
        (3, _) => "rd",
        _ => "th",
    }
}

/// Whether `dt` is in daylight saving time: its offset differs from the zone's
/// standard offset (the smaller of the January and July offsets of that year).
fn is_dst(dt: &DateTime<Tz>) -> bool {
    let tz = dt.timezone();
    let at = |m: u32| -> Option<i32> {
        let d = NaiveDate::from_ymd_opt(dt.year(), m, 1)?.and_hms_opt(0, 0, 0)?;
        Some(
            chrono::TimeZone::offset_from_utc_datetime(&tz, &d)
                .fix()
                .local_minus_utc(),
        )
    };
    match (at(1), at(7)) {
        (Some(jan), Some(jul)) => dt.offset().fix().local_minus_utc() > jan.min(jul),
        _ => false,
    }
}

/// Whether `year` is a leap year in the proleptic Gregorian calendar.
pub fn is_leap(year: i32) -> bool {
    NaiveDate::from_ymd_opt(year, 2, 29).is_some()
}

/// Number of days of `month` (1–12) in `year`.
pub fn days_in_month(year: i32, month: u32) -> u32 {
    (28..=31)
        .rev()
        .find(|d| NaiveDate::from_ymd_opt(year, month, *d).is_some())
        .unwrap_or(30)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(tz: Tz, y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> DateTime<Tz> {
        tz.with_ymd_and_hms(y, mo, d, h, mi, s).single().unwrap()
    }

    #[test]
    fn letters() {
        let dt = at(chrono_tz::UTC, 2024, 4, 2, 15, 4, 5);
        assert_eq!(format(&dt, "d D j l N S w z"), "02 Tue 2 Tuesday 2 nd 2 92");
        assert_eq!(
            format(&dt, "W F m M n t L o Y y"),
            "14 April 04 Apr 4 30 1 2024 2024 24"
        );
        assert_eq!(
            format(&dt, "a A g G h H i s u v"),
            "pm PM 3 15 03 15 04 05 000000 000"
        );
        assert_eq!(
            format(&dt, "e O P p T U"),
            "UTC +0000 +00:00 Z UTC 1712070245"
        );
        assert_eq!(format(&dt, "c"), "2024-04-02T15:04:05+00:00");
        assert_eq!(format(&dt, "r"), "Tue, 02 Apr 2024 15:04:05 +0000");
        assert_eq!(format(&dt, "\\Y\\m Y"), "Ym 2024");
        assert_eq!(format(&dt, "jS"), "2nd");
    }

    #[test]
    fn zones_and_iso_weeks() {
        let ny = at(chrono_tz::America::New_York, 2024, 7, 1, 0, 30, 0);
        assert_eq!(
            format(&ny, "T P O I Z e"),
            "EDT -04:00 -0400 1 -14400 America/New_York"
        );
        let ny_winter = at(chrono_tz::America::New_York, 2024, 1, 1, 0, 0, 0);
        assert_eq!(format(&ny_winter, "T I g a"), "EST 0 12 am");
        // 2021-01-03 belongs to ISO week 53 of 2020.
        let d = at(chrono_tz::UTC, 2021, 1, 3, 0, 0, 0);
        assert_eq!(format(&d, "o-W N"), "2020-53 7");
        for (day, s) in [
            (1, "st"),
            (11, "th"),
            (12, "th"),
            (13, "th"),
            (21, "st"),
            (22, "nd"),
            (23, "rd"),
            (31, "st"),
        ] {
            assert_eq!(ordinal_suffix(day), s);
        }
        assert_eq!(days_in_month(2023, 2), 28);
        assert_eq!(days_in_month(2024, 2), 29);
        assert_eq!(days_in_month(1900, 2), 28);
        assert_eq!(days_in_month(2000, 2), 29);
    }
}
