//! Reading a value against a compiled layout: Go's `time.parse` loop, element by element,
//! with Go's leniencies (a run of spaces matches any run, months and days in any letter
//! case, a fraction after the seconds even when the layout has none) and its range checks.
//!
//! Owns turning text into date and time fields; it must not choose a zone or an instant
//! (that is [`super::zone`]).

use super::ParseError;
use super::layout::{GoLayout, Std};

/// Fields read from a value; `zone_name` borrows from it.
pub(super) struct Fields<'v> {
    pub(super) year: i32,
    pub(super) month: u32,
    pub(super) day: u32,
    pub(super) hour: u32,
    pub(super) minute: u32,
    pub(super) second: u32,
    pub(super) nanosecond: u32,
    /// `Z` or `UTC` was read.
    pub(super) utc: bool,
    pub(super) offset: Option<i32>,
    pub(super) zone_name: Option<&'v str>,
}

impl GoLayout {
    /// Go's `parse` loop: reads every element, then validates the date.
    pub(super) fn read_fields<'v>(&self, value_str: &'v str) -> Result<Fields<'v>, ParseError> {
        let layout = self.layout.as_bytes();
        let full = value_str.as_bytes();
        let mut value = full;
        let at = |rest: &[u8]| full.len() - rest.len();

        let mut year: i64 = 0;
        let mut month: i64 = -1;
        let mut day: i64 = -1;
        let mut yday: i64 = -1;
        let mut hour: i64 = 0;
        let mut minute: i64 = 0;
        let mut second: i64 = 0;
        let mut nanosecond: i64 = 0;
        let mut am = false;
        let mut pm = false;
        let mut utc = false;
        let mut offset = None;
        let mut zone_name = None;

        for (index, chunk) in self.chunks.iter().enumerate() {
            value = skip(value, &layout[chunk.prefix_start..chunk.prefix_end])
                .ok_or(ParseError::Literal { at: at(value) })?;
            let element_error = ParseError::Element {
                element: chunk.std.text(),
                at: at(value),
            };
            let mut range_error: Option<&'static str> = None;
            let read: Option<&[u8]> = match chunk.std {
                Std::Year => value.get(..2).and_then(|digits| {
                    let two = atoi(digits)?;
                    // Go's pivot: 69..99 are 19xx, the rest 20xx.
                    year = if two >= 69 { two + 1900 } else { two + 2000 };
                    Some(&value[2..])
                }),
                Std::LongYear => match value.get(..4) {
                    Some(digits) if digits[0].is_ascii_digit() => atoi(digits).map(|y| {
                        year = y;
                        &value[4..]
                    }),
                    _ => None,
                },
                Std::Month => lookup(&SHORT_MONTHS, value).map(|(i, rest)| {
                    month = i as i64 + 1;
                    rest
                }),
                Std::LongMonth => lookup(&LONG_MONTHS, value).map(|(i, rest)| {
                    month = i as i64 + 1;
                    rest
                }),
                Std::NumMonth | Std::ZeroMonth => {
                    getnum(value, chunk.std == Std::ZeroMonth).map(|(m, rest)| {
                        if !(1..=12).contains(&m) {
                            range_error = Some("month");
                        }
                        month = m;
                        rest
                    })
                }
                Std::WeekDay => lookup(&SHORT_DAYS, value).map(|(_, rest)| rest),
                Std::LongWeekDay => lookup(&LONG_DAYS, value).map(|(_, rest)| rest),
                Std::Day | Std::UnderDay | Std::ZeroDay => {
                    if chunk.std == Std::UnderDay && value.first() == Some(&b' ') {
                        value = &value[1..];
                    }
                    // Any one or two digits; the date is validated once complete.
                    getnum(value, chunk.std == Std::ZeroDay).map(|(d, rest)| {
                        day = d;
                        rest
                    })
                }
                Std::UnderYearDay | Std::ZeroYearDay => {
                    for _ in 0..2 {
                        if chunk.std == Std::UnderYearDay && value.first() == Some(&b' ') {
                            value = &value[1..];
                        }
                    }
                    getnum3(value, chunk.std == Std::ZeroYearDay).map(|(d, rest)| {
                        yday = d;
                        rest
                    })
                }
                Std::Hour => getnum(value, false).map(|(h, rest)| {
                    if h >= 24 {
                        range_error = Some("hour");
                    }
                    hour = h;
                    rest
                }),
                Std::Hour12 | Std::ZeroHour12 => {
                    getnum(value, chunk.std == Std::ZeroHour12).map(|(h, rest)| {
                        if h > 12 {
                            range_error = Some("hour");
                        }
                        hour = h;
                        rest
                    })
                }
                Std::Minute | Std::ZeroMinute => {
                    getnum(value, chunk.std == Std::ZeroMinute).map(|(m, rest)| {
                        if m >= 60 {
                            range_error = Some("minute");
                        }
                        minute = m;
                        rest
                    })
                }
                Std::Second | Std::ZeroSecond => {
                    match getnum(value, chunk.std == Std::ZeroSecond) {
                        None => None,
                        Some((s, _)) if s >= 60 => {
                            range_error = Some("second");
                            Some(value)
                        }
                        Some((s, mut rest)) => {
                            second = s;
                            // Go accepts a fraction after the seconds even when the layout has
                            // none, unless the layout's next element is that fraction.
                            let next_is_fraction = self
                                .chunks
                                .get(index + 1)
                                .is_some_and(|next| next.std.is_fraction());
                            if rest.len() >= 2
                                && is_comma_or_period(rest[0])
                                && rest[1].is_ascii_digit()
                                && !next_is_fraction
                            {
                                let n =
                                    2 + rest[2..].iter().take_while(|c| c.is_ascii_digit()).count();
                                match parse_nanoseconds(rest, n) {
                                    Ok(ns) => nanosecond = ns,
                                    Err(e) => range_error = e,
                                }
                                rest = &rest[n..];
                            }
                            Some(rest)
                        }
                    }
                }
                Std::PM | Std::Pm => {
                    let (upper, lower) = if chunk.std == Std::PM {
                        (b"PM", b"AM")
                    } else {
                        (b"pm", b"am")
                    };
                    match value.get(..2) {
                        Some(p) if p == upper => {
                            pm = true;
                            Some(&value[2..])
                        }
                        Some(p) if p == lower => {
                            am = true;
                            Some(&value[2..])
                        }
                        _ => None,
                    }
                }
                Std::Iso8601Tz
                | Std::Iso8601SecondsTz
                | Std::Iso8601ShortTz
                | Std::Iso8601ColonTz
                | Std::Iso8601ColonSecondsTz
                    if value.first() == Some(&b'Z') =>
                {
                    utc = true;
                    Some(&value[1..])
                }
                Std::Iso8601Tz
                | Std::Iso8601SecondsTz
                | Std::Iso8601ShortTz
                | Std::Iso8601ColonTz
                | Std::Iso8601ColonSecondsTz
                | Std::NumTz
                | Std::NumSecondsTz
                | Std::NumShortTz
                | Std::NumColonTz
                | Std::NumColonSecondsTz => {
                    read_numeric_zone(value, chunk.std).map(|(zone, rest, out_of_range)| {
                        range_error = out_of_range;
                        offset = Some(zone);
                        rest
                    })
                }
                Std::Tz => {
                    if value.starts_with(b"UTC") {
                        utc = true;
                        Some(&value[3..])
                    } else {
                        zone_name_len(value).map(|n| {
                            zone_name = std::str::from_utf8(&value[..n]).ok();
                            &value[n..]
                        })
                    }
                }
                Std::FracSecond0(digits) => {
                    let n = 1 + digits;
                    if value.len() < n {
                        None
                    } else {
                        match parse_nanoseconds(value, n) {
                            Ok(ns) => {
                                nanosecond = ns;
                                Some(&value[n..])
                            }
                            Err(Some(field)) => {
                                range_error = Some(field);
                                Some(value)
                            }
                            Err(None) => None,
                        }
                    }
                }
                Std::FracSecond9 => {
                    if value.len() < 2
                        || !is_comma_or_period(value[0])
                        || !value[1].is_ascii_digit()
                    {
                        // The fraction is optional.
                        Some(value)
                    } else {
                        let n = 1 + value[1..].iter().take_while(|c| c.is_ascii_digit()).count();
                        match parse_nanoseconds(value, n) {
                            Ok(ns) => {
                                nanosecond = ns;
                                Some(&value[n..])
                            }
                            Err(Some(field)) => {
                                range_error = Some(field);
                                Some(value)
                            }
                            Err(None) => None,
                        }
                    }
                }
            };
            if let Some(field) = range_error {
                return Err(ParseError::OutOfRange { field });
            }
            value = read.ok_or(element_error)?;
        }
        value = skip(value, &layout[self.suffix_start..])
            .ok_or(ParseError::Literal { at: at(value) })?;
        if !value.is_empty() {
            return Err(ParseError::ExtraText { at: at(value) });
        }

        if pm && hour < 12 {
            hour += 12;
        } else if am && hour == 12 {
            hour = 0;
        }

        if yday >= 0 {
            let (m, d) = month_day_of_year(yday, year)?;
            if month >= 0 && month != m {
                return Err(ParseError::OutOfRange {
                    field: "day-of-year (does not match month)",
                });
            }
            if day >= 0 && day != d {
                return Err(ParseError::OutOfRange {
                    field: "day-of-year (does not match day)",
                });
            }
            month = m;
            day = d;
        } else {
            if month < 0 {
                month = 1;
            }
            if day < 0 {
                day = 1;
            }
        }
        if day < 1 || day > days_in(month, year) {
            return Err(ParseError::OutOfRange { field: "day" });
        }

        // Every field has been range-checked above, so these conversions cannot truncate.
        let narrow =
            |v: i64| u32::try_from(v).map_err(|_| ParseError::OutOfRange { field: "time" });
        Ok(Fields {
            year: i32::try_from(year).map_err(|_| ParseError::OutOfRange { field: "year" })?,
            month: narrow(month)?,
            day: narrow(day)?,
            hour: narrow(hour)?,
            minute: narrow(minute)?,
            second: narrow(second)?,
            nanosecond: narrow(nanosecond)?,
            utc,
            offset,
            zone_name,
        })
    }
}

const SHORT_MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];
const LONG_MONTHS: [&str; 12] = [
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
const SHORT_DAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
const LONG_DAYS: [&str; 7] = [
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
];

/// Go's `skip`: removes `prefix` from `value`, a run of spaces matching any run of spaces.
fn skip<'v>(mut value: &'v [u8], mut prefix: &[u8]) -> Option<&'v [u8]> {
    while let Some(&p) = prefix.first() {
        if p == b' ' {
            if value.first().is_some_and(|&c| c != b' ') {
                return None;
            }
            prefix = trim_spaces(prefix);
            value = trim_spaces(value);
            continue;
        }
        if value.first() != Some(&p) {
            return None;
        }
        prefix = &prefix[1..];
        value = &value[1..];
    }
    Some(value)
}

fn trim_spaces(s: &[u8]) -> &[u8] {
    let n = s.iter().take_while(|&&c| c == b' ').count();
    &s[n..]
}

/// Go's `lookup`: the first table entry that prefixes `value`, ignoring ASCII letter case.
fn lookup<'v>(table: &[&str], value: &'v [u8]) -> Option<(usize, &'v [u8])> {
    table.iter().enumerate().find_map(|(i, name)| {
        let n = name.len();
        (value.len() >= n && value[..n].eq_ignore_ascii_case(name.as_bytes()))
            .then(|| (i, &value[n..]))
    })
}

/// Go's `getnum`: one or two digits (`fixed`: exactly two).
fn getnum(s: &[u8], fixed: bool) -> Option<(i64, &[u8])> {
    let first = *s.first().filter(|c| c.is_ascii_digit())?;
    match s.get(1).filter(|c| c.is_ascii_digit()) {
        Some(&second) => Some((
            i64::from(first - b'0') * 10 + i64::from(second - b'0'),
            &s[2..],
        )),
        None if fixed => None,
        None => Some((i64::from(first - b'0'), &s[1..])),
    }
}

/// Go's `getnum3`: one to three digits (`fixed`: exactly three).
fn getnum3(s: &[u8], fixed: bool) -> Option<(i64, &[u8])> {
    let n = s.iter().take(3).take_while(|c| c.is_ascii_digit()).count();
    if n == 0 || (fixed && n != 3) {
        return None;
    }
    let v = s[..n]
        .iter()
        .fold(0i64, |acc, c| acc * 10 + i64::from(c - b'0'));
    Some((v, &s[n..]))
}

/// Go's `time.atoi`: an optional sign, then only digits (none at all reads as 0).
pub(super) fn atoi(s: &[u8]) -> Option<i64> {
    let (negative, digits) = match s.first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let mut x: i64 = 0;
    for &c in digits {
        if !c.is_ascii_digit() {
            return None;
        }
        x = x.checked_mul(10)?.checked_add(i64::from(c - b'0'))?;
    }
    Some(if negative { -x } else { x })
}

fn is_comma_or_period(c: u8) -> bool {
    c == b'.' || c == b','
}

/// Go's `parseNanoseconds`: `value[..n]` is a separator and digits; digits past the ninth
/// are ignored. `Err(None)` is a syntax error, `Err(Some(field))` a range error.
fn parse_nanoseconds(value: &[u8], n: usize) -> Result<i64, Option<&'static str>> {
    if !is_comma_or_period(value[0]) {
        return Err(None);
    }
    let n = n.min(10);
    let ns = atoi(&value[1..n]).ok_or(None)?;
    if ns < 0 {
        return Err(Some("fractional second"));
    }
    Ok(ns * 10i64.pow((10 - n) as u32))
}

/// Reads a numeric zone offset for element `std`: (offset seconds, rest, range error).
fn read_numeric_zone(value: &[u8], std: Std) -> Option<(i32, &[u8], Option<&'static str>)> {
    // (sign, hours, minutes, seconds, rest) as Go slices them; missing parts read as "00".
    let (sign, hh, mm, ss, rest): (u8, &[u8], &[u8], &[u8], &[u8]) = match std {
        Std::Iso8601ColonTz | Std::NumColonTz => {
            if value.len() < 6 || value[3] != b':' {
                return None;
            }
            (value[0], &value[1..3], &value[4..6], b"00", &value[6..])
        }
        Std::Iso8601ShortTz | Std::NumShortTz => {
            if value.len() < 3 {
                return None;
            }
            (value[0], &value[1..3], b"00", b"00", &value[3..])
        }
        Std::Iso8601ColonSecondsTz | Std::NumColonSecondsTz => {
            if value.len() < 9 || value[3] != b':' || value[6] != b':' {
                return None;
            }
            (
                value[0],
                &value[1..3],
                &value[4..6],
                &value[7..9],
                &value[9..],
            )
        }
        Std::Iso8601SecondsTz | Std::NumSecondsTz => {
            if value.len() < 7 {
                return None;
            }
            (
                value[0],
                &value[1..3],
                &value[3..5],
                &value[5..7],
                &value[7..],
            )
        }
        _ => {
            if value.len() < 5 {
                return None;
            }
            (value[0], &value[1..3], &value[3..5], b"00", &value[5..])
        }
    };
    let (h, _) = getnum(hh, true)?;
    let (m, _) = getnum(mm, true)?;
    let (s, _) = getnum(ss, true)?;
    // Go compares with > rather than >=: some people write offsets of 24 hours or 60 minutes.
    let range_error = if s > 60 {
        Some("time zone offset second")
    } else if m > 60 {
        Some("time zone offset minute")
    } else if h > 24 {
        Some("time zone offset hour")
    } else {
        None
    };
    let magnitude = i32::try_from((h * 60 + m) * 60 + s).ok()?;
    let zone = match sign {
        b'+' => magnitude,
        b'-' => -magnitude,
        _ => return None,
    };
    Some((zone, rest, range_error))
}

/// Go's `parseTimeZone`: the length of the zone abbreviation starting `value`, if any.
fn zone_name_len(value: &[u8]) -> Option<usize> {
    if value.len() < 3 {
        return None;
    }
    if value.starts_with(b"ChST") || value.starts_with(b"MeST") {
        return Some(4);
    }
    if value.starts_with(b"GMT") {
        return Some(3 + signed_hours_len(&value[3..]).unwrap_or(0));
    }
    if value[0] == b'+' || value[0] == b'-' {
        return signed_hours_len(value);
    }
    let upper = value
        .iter()
        .take(6)
        .take_while(|c| c.is_ascii_uppercase())
        .count();
    match upper {
        3 => Some(3),
        4 if value[3] == b'T' || value.starts_with(b"WITA") => Some(4),
        5 if value[4] == b'T' => Some(5),
        _ => None,
    }
}

/// Go's `parseSignedOffset`: the length of `+N`/`-N` with N at most 23.
fn signed_hours_len(value: &[u8]) -> Option<usize> {
    if !matches!(value.first(), Some(b'+' | b'-')) {
        return None;
    }
    let digits = value[1..].iter().take_while(|c| c.is_ascii_digit()).count();
    if digits == 0 {
        return None;
    }
    let hours = value[1..1 + digits].iter().try_fold(0u64, |acc, c| {
        acc.checked_mul(10)?.checked_add(u64::from(c - b'0'))
    })?;
    (hours <= 23).then_some(1 + digits)
}

pub(super) fn is_leap(year: i64) -> bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

fn days_in(month: i64, year: i64) -> i64 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Go's day-of-year conversion: (month, day) of `yday` in `year`.
fn month_day_of_year(mut yday: i64, year: i64) -> Result<(i64, i64), ParseError> {
    const DAYS_BEFORE: [i64; 13] = [0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334, 365];
    if is_leap(year) {
        if yday == 31 + 29 {
            return Ok((2, 29));
        }
        if yday > 31 + 29 {
            yday -= 1;
        }
    }
    if !(1..=365).contains(&yday) {
        return Err(ParseError::OutOfRange {
            field: "day-of-year",
        });
    }
    let mut month = (yday - 1) / 31 + 1;
    if DAYS_BEFORE[month as usize] < yday {
        month += 1;
    }
    Ok((month, yday - DAYS_BEFORE[month as usize - 1]))
}
