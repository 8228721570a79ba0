//! Go `time` layouts and Promtail's timestamp formats, parsed the way Promtail parses them.
//!
//! Owns compiling a Go layout (`2006-01-02T15:04:05.999999999Z07:00`, `02/Jan/2006:15:04:05
//! -0700`, `Jan _2 15:04:05`, ...) once into chunks, as Go's `nextStdChunk` splits it, and
//! parsing values against it with `time.Parse`/`time.ParseInLocation` semantics; Promtail's
//! format names (`RFC3339`, `Unix`, `UnixMs`, ...) and its year-less layouts; and the dry-run
//! rendering of a timestamp. It must not know about stages, entries or labels.
//!
//! Where Go consults the host's `Local` zone for parsing (`time.Parse`), this module uses UTC
//! instead, so parsed instants never depend on the agent's own zone:
//! - a zone abbreviation other than `UTC`/`GMT±N` (e.g. `MST`) is given the offset it has in
//!   `location` when one is configured and that zone uses the abbreviation around the parsed
//!   time (first the zone in effect, then the zone's standard and summer abbreviations of
//!   that year); otherwise it gets offset 0, Go's "fabricated zone";
//! - a year-less layout takes its year from `now` in UTC (Promtail uses the host zone's month).
//!
//! `Unix*` timestamps are shown in the host zone, as Go's `time.Unix` shows them: only the
//! offset printed by `-dry-run` depends on it, never the instant.
//!
//! Year-less layouts resolve their zone in the year chosen, whereas Go resolves it in year 0
//! and then shifts the date; the two only differ for zone abbreviations and for offsets that
//! happen to match the location's local mean time in year 0.

use std::fmt::{self, Write as _};

use chrono::{
    DateTime, Datelike, FixedOffset, NaiveDate, NaiveDateTime, Offset, TimeDelta, TimeZone, Utc,
};
use chrono_tz::{OffsetName, Tz};

/// Promtail's named formats that are Go layouts, with the layout each stands for.
pub const NAMED_LAYOUTS: [(&str, &str); 10] = [
    ("ANSIC", "Mon Jan _2 15:04:05 2006"),
    ("UnixDate", "Mon Jan _2 15:04:05 MST 2006"),
    ("RubyDate", "Mon Jan 02 15:04:05 -0700 2006"),
    ("RFC822", "02 Jan 06 15:04 MST"),
    ("RFC822Z", "02 Jan 06 15:04 -0700"),
    ("RFC850", "Monday, 02-Jan-06 15:04:05 MST"),
    ("RFC1123", "Mon, 02 Jan 2006 15:04:05 MST"),
    ("RFC1123Z", "Mon, 02 Jan 2006 15:04:05 -0700"),
    ("RFC3339", "2006-01-02T15:04:05Z07:00"),
    ("RFC3339Nano", "2006-01-02T15:04:05.999999999Z07:00"),
];

/// The Go layout a Promtail format name stands for (`RFC3339` -> `2006-01-02T15:04:05Z07:00`).
pub fn named_layout(name: &str) -> Option<&'static str> {
    NAMED_LAYOUTS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, layout)| *layout)
}

/// Why a value did not parse. Carries no copy of the value, so failing (common when
/// fallback formats are configured) costs no allocation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParseError {
    /// The value does not have the layout's literal text at byte `at`.
    Literal { at: usize },
    /// The value at byte `at` cannot be read as the layout element `element` (e.g. `Jan`).
    Element { element: &'static str, at: usize },
    /// A field was read but its value is impossible (`month`, `day`, `hour`, ...).
    OutOfRange { field: &'static str },
    /// The value goes on after the layout ended.
    ExtraText { at: usize },
    /// A `Unix*` format value is not a (fractional) integer, or overflows.
    Number,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParseError::Literal { at } => {
                write!(
                    f,
                    "text at byte {at} does not match the layout's literal text"
                )
            }
            ParseError::Element { element, at } => {
                write!(f, "cannot parse the text at byte {at} as {element:?}")
            }
            ParseError::OutOfRange { field } => write!(f, "{field} out of range"),
            ParseError::ExtraText { at } => write!(f, "extra text from byte {at}"),
            ParseError::Number => f.write_str("expected a decimal integer in range"),
        }
    }
}

impl std::error::Error for ParseError {}

/// One element of a Go layout, as Go's `std*` constants name them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Std {
    LongMonth,
    Month,
    NumMonth,
    ZeroMonth,
    LongWeekDay,
    WeekDay,
    Day,
    UnderDay,
    ZeroDay,
    UnderYearDay,
    ZeroYearDay,
    Hour,
    Hour12,
    ZeroHour12,
    Minute,
    ZeroMinute,
    Second,
    ZeroSecond,
    LongYear,
    Year,
    PM,
    Pm,
    Tz,
    Iso8601Tz,
    Iso8601SecondsTz,
    Iso8601ShortTz,
    Iso8601ColonTz,
    Iso8601ColonSecondsTz,
    NumTz,
    NumSecondsTz,
    NumShortTz,
    NumColonTz,
    NumColonSecondsTz,
    /// `.000`: exactly this many digits.
    FracSecond0(usize),
    /// `.999`: any number of digits, or none.
    FracSecond9,
}

impl Std {
    /// The element as written in a layout, for error messages.
    fn text(self) -> &'static str {
        match self {
            Std::LongMonth => "January",
            Std::Month => "Jan",
            Std::NumMonth => "1",
            Std::ZeroMonth => "01",
            Std::LongWeekDay => "Monday",
            Std::WeekDay => "Mon",
            Std::Day => "2",
            Std::UnderDay => "_2",
            Std::ZeroDay => "02",
            Std::UnderYearDay => "__2",
            Std::ZeroYearDay => "002",
            Std::Hour => "15",
            Std::Hour12 => "3",
            Std::ZeroHour12 => "03",
            Std::Minute => "4",
            Std::ZeroMinute => "04",
            Std::Second => "5",
            Std::ZeroSecond => "05",
            Std::LongYear => "2006",
            Std::Year => "06",
            Std::PM => "PM",
            Std::Pm => "pm",
            Std::Tz => "MST",
            Std::Iso8601Tz => "Z0700",
            Std::Iso8601SecondsTz => "Z070000",
            Std::Iso8601ShortTz => "Z07",
            Std::Iso8601ColonTz => "Z07:00",
            Std::Iso8601ColonSecondsTz => "Z07:00:00",
            Std::NumTz => "-0700",
            Std::NumSecondsTz => "-070000",
            Std::NumShortTz => "-07",
            Std::NumColonTz => "-07:00",
            Std::NumColonSecondsTz => "-07:00:00",
            Std::FracSecond0(_) => ".000",
            Std::FracSecond9 => ".999",
        }
    }

    fn is_fraction(self) -> bool {
        matches!(self, Std::FracSecond0(_) | Std::FracSecond9)
    }
}

/// Finds the first layout element in `layout`, as Go's `nextStdChunk` does. Returns where the
/// literal prefix ends, the element, and where the rest of the layout starts.
fn next_std_chunk(layout: &[u8]) -> Option<(usize, Std, usize)> {
    let starts_lower = |i: usize| layout.get(i).is_some_and(u8::is_ascii_lowercase);
    let has = |i: usize, s: &[u8]| layout.len() >= i + s.len() && &layout[i..i + s.len()] == s;
    for i in 0..layout.len() {
        let found = match layout[i] {
            b'J' if has(i, b"Jan") => {
                if has(i, b"January") {
                    Some((i, Std::LongMonth, i + 7))
                } else if !starts_lower(i + 3) {
                    Some((i, Std::Month, i + 3))
                } else {
                    None
                }
            }
            b'M' if has(i, b"Mon") && has(i, b"Monday") => Some((i, Std::LongWeekDay, i + 6)),
            b'M' if has(i, b"Mon") && !starts_lower(i + 3) => Some((i, Std::WeekDay, i + 3)),
            b'M' if has(i, b"MST") => Some((i, Std::Tz, i + 3)),
            b'0' if layout.get(i + 1).is_some_and(|c| (b'1'..=b'6').contains(c)) => {
                let std = [
                    Std::ZeroMonth,
                    Std::ZeroDay,
                    Std::ZeroHour12,
                    Std::ZeroMinute,
                    Std::ZeroSecond,
                    Std::Year,
                ][usize::from(layout[i + 1] - b'1')];
                Some((i, std, i + 2))
            }
            b'0' if has(i, b"002") => Some((i, Std::ZeroYearDay, i + 3)),
            b'1' if has(i, b"15") => Some((i, Std::Hour, i + 2)),
            b'1' => Some((i, Std::NumMonth, i + 1)),
            b'2' if has(i, b"2006") => Some((i, Std::LongYear, i + 4)),
            b'2' => Some((i, Std::Day, i + 1)),
            // `_2006` is a literal `_` followed by the year.
            b'_' if has(i, b"_2006") => Some((i + 1, Std::LongYear, i + 5)),
            b'_' if has(i, b"_2") => Some((i, Std::UnderDay, i + 2)),
            b'_' if has(i, b"__2") => Some((i, Std::UnderYearDay, i + 3)),
            b'3' => Some((i, Std::Hour12, i + 1)),
            b'4' => Some((i, Std::Minute, i + 1)),
            b'5' => Some((i, Std::Second, i + 1)),
            b'P' if has(i, b"PM") => Some((i, Std::PM, i + 2)),
            b'p' if has(i, b"pm") => Some((i, Std::Pm, i + 2)),
            b'-' | b'Z' => {
                let numeric = layout[i] == b'-';
                [
                    (&b"070000"[..], Std::NumSecondsTz, Std::Iso8601SecondsTz),
                    (
                        b"07:00:00",
                        Std::NumColonSecondsTz,
                        Std::Iso8601ColonSecondsTz,
                    ),
                    (b"0700", Std::NumTz, Std::Iso8601Tz),
                    (b"07:00", Std::NumColonTz, Std::Iso8601ColonTz),
                    (b"07", Std::NumShortTz, Std::Iso8601ShortTz),
                ]
                .into_iter()
                .find(|(text, _, _)| has(i + 1, text))
                .map(|(text, num, iso)| (i, if numeric { num } else { iso }, i + 1 + text.len()))
            }
            b'.' | b',' => match layout.get(i + 1) {
                Some(&digit @ (b'0' | b'9')) => {
                    let end = i + 1 + layout[i + 1..].iter().take_while(|&&c| c == digit).count();
                    // Only a run of one digit that ends there is a fractional second.
                    if layout.get(end).is_some_and(u8::is_ascii_digit) {
                        None
                    } else if digit == b'0' {
                        Some((i, Std::FracSecond0(end - (i + 1)), end))
                    } else {
                        Some((i, Std::FracSecond9, end))
                    }
                }
                _ => None,
            },
            _ => None,
        };
        if found.is_some() {
            return found;
        }
    }
    None
}

#[derive(Clone, Debug)]
struct Chunk {
    /// Literal text before the element: `layout[prefix_start..prefix_end]`.
    prefix_start: usize,
    prefix_end: usize,
    std: Std,
}

/// A Go time layout, split into elements once.
#[derive(Clone, Debug)]
pub struct GoLayout {
    layout: Box<str>,
    chunks: Vec<Chunk>,
    /// Literal text after the last element.
    suffix_start: usize,
    /// Promtail treats a layout whose text contains neither `06` nor `2006` as year-less.
    yearless: bool,
}

/// Fields read from a value; `zone_name` borrows from it.
struct Fields<'v> {
    year: i32,
    month: u32,
    day: u32,
    hour: u32,
    minute: u32,
    second: u32,
    nanosecond: u32,
    /// `Z` or `UTC` was read.
    utc: bool,
    offset: Option<i32>,
    zone_name: Option<&'v str>,
}

impl GoLayout {
    /// Compiles `layout`. A layout without any date or time element is refused: it could
    /// only ever match its own literal text, which is always a configuration mistake.
    pub fn new(layout: &str) -> Result<Self, String> {
        let bytes = layout.as_bytes();
        let mut chunks = Vec::new();
        let mut rest = 0;
        while let Some((prefix_end, std, next)) = next_std_chunk(&bytes[rest..]) {
            chunks.push(Chunk {
                prefix_start: rest,
                prefix_end: rest + prefix_end,
                std,
            });
            rest += next;
        }
        if chunks.is_empty() {
            return Err(format!(
                "{layout:?} is neither a named format ({}, Unix, UnixMs, UnixUs, UnixNs) nor a \
                 Go layout (e.g. \"2006-01-02T15:04:05.000Z07:00\")",
                NAMED_LAYOUTS.map(|(name, _)| name).join(", ")
            ));
        }
        Ok(Self {
            layout: layout.into(),
            chunks,
            suffix_start: rest,
            yearless: !layout.contains("06"),
        })
    }

    pub fn as_str(&self) -> &str {
        &self.layout
    }

    /// True when Promtail fills in the year (the layout text has neither `06` nor `2006`).
    pub fn is_yearless(&self) -> bool {
        self.yearless
    }

    /// Parses `value` as Go's `time.ParseInLocation(layout, value, location)` does, or as
    /// `time.Parse` when `location` is `None`, with Promtail's year for year-less layouts:
    /// `now`'s year, the previous one for a December value in January, the next one for a
    /// January value in December.
    pub fn parse(
        &self,
        value: &str,
        location: Option<Tz>,
        now: DateTime<Utc>,
    ) -> Result<DateTime<FixedOffset>, String> {
        self.try_parse(value, location, now)
            .map_err(|e| format!("parsing time {value:?} as {:?}: {e}", self.layout))
    }

    /// [`GoLayout::parse`] without allocating on failure.
    pub fn try_parse(
        &self,
        value: &str,
        location: Option<Tz>,
        now: DateTime<Utc>,
    ) -> Result<DateTime<FixedOffset>, ParseError> {
        let mut fields = self.read_fields(value)?;
        if self.yearless {
            // Go parses year 0 and Promtail adds years with AddDate, which turns 29 February
            // (year 0 is leap) into 1 March in a common year.
            fields.year = match (fields.month, now.month()) {
                (12, 1) => now.year() - 1,
                (1, 12) => now.year() + 1,
                _ => now.year(),
            };
            if fields.month == 2 && fields.day == 29 && !is_leap(i64::from(fields.year)) {
                fields.month = 3;
                fields.day = 1;
            }
        }
        resolve(&fields, location)
    }

    /// Go's `parse` loop: reads every element, then validates the date.
    fn read_fields<'v>(&self, value_str: &'v str) -> Result<Fields<'v>, ParseError> {
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
fn atoi(s: &[u8]) -> Option<i64> {
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

fn is_leap(year: i64) -> bool {
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

/// Turns parsed fields into an instant, choosing the zone as Go's `parse` does: `Z`/`UTC`,
/// else a numeric offset, else a zone abbreviation, else `location` (UTC when `None`).
fn resolve(fields: &Fields<'_>, location: Option<Tz>) -> Result<DateTime<FixedOffset>, ParseError> {
    let wall = NaiveDate::from_ymd_opt(fields.year, fields.month, fields.day)
        .and_then(|date| {
            date.and_hms_nano_opt(fields.hour, fields.minute, fields.second, fields.nanosecond)
        })
        .ok_or(ParseError::OutOfRange { field: "date" })?;
    if fields.utc {
        return Ok(wall.and_utc().fixed_offset());
    }
    if let Some(offset) = fields.offset {
        return at_fixed_offset(wall, offset);
    }
    if let Some(name) = fields.zone_name {
        if let Some(tz) = location
            && let Some(offset) = abbreviation_offset(tz, name, wall)
        {
            let instant = wall
                .checked_sub_signed(TimeDelta::seconds(i64::from(offset)))
                .ok_or(ParseError::OutOfRange { field: "date" })?;
            return Ok(in_zone(tz, instant));
        }
        // Go's fabricated zone: offset 0, except that `GMT+N` means N hours.
        let offset = match name.strip_prefix("GMT") {
            Some(hours) if !hours.is_empty() => atoi(hours.as_bytes()).unwrap_or(0) * 3600,
            _ => 0,
        };
        return at_fixed_offset(wall, i32::try_from(offset).unwrap_or(0));
    }
    match location {
        Some(tz) => go_date_in(tz, wall),
        None => Ok(wall.and_utc().fixed_offset()),
    }
}

fn at_fixed_offset(wall: NaiveDateTime, offset: i32) -> Result<DateTime<FixedOffset>, ParseError> {
    let zone = FixedOffset::east_opt(offset).ok_or(ParseError::OutOfRange {
        field: "time zone offset",
    })?;
    zone.from_local_datetime(&wall)
        .single()
        .ok_or(ParseError::OutOfRange { field: "date" })
}

/// The instant `utc` shown with the offset `tz` has then.
fn in_zone(tz: Tz, utc: NaiveDateTime) -> DateTime<FixedOffset> {
    let offset = tz.offset_from_utc_datetime(&utc).fix();
    DateTime::from_naive_utc_and_offset(utc, offset)
}

/// Go's `time.Date(..., loc)`: a wall time in a gap or overlap gets the offset Go picks (it
/// looks up the offset at the wall time read as UTC, then corrects it once), not chrono's.
fn go_date_in(tz: Tz, wall: NaiveDateTime) -> Result<DateTime<FixedOffset>, ParseError> {
    let out_of_range = ParseError::OutOfRange { field: "date" };
    let guess = tz.offset_from_utc_datetime(&wall).fix().local_minus_utc();
    let offset = if guess == 0 {
        0
    } else {
        let utc = wall
            .checked_sub_signed(TimeDelta::seconds(i64::from(guess)))
            .ok_or(out_of_range)?;
        tz.offset_from_utc_datetime(&utc).fix().local_minus_utc()
    };
    let instant = wall
        .checked_sub_signed(TimeDelta::seconds(i64::from(offset)))
        .ok_or(out_of_range)?;
    Ok(in_zone(tz, instant))
}

/// The offset `tz` gives the abbreviation `name` around the wall time `wall`, as Go's
/// `Location.lookupName` does: first a period named `name` in effect at that time, then
/// any period of that name (here: around the wall time, or on 1 January or 1 July of its
/// year, which covers a zone's standard and summer names).
fn abbreviation_offset(tz: Tz, name: &str, wall: NaiveDateTime) -> Option<i32> {
    let day = TimeDelta::days(1);
    let near = [
        wall.checked_sub_signed(day),
        Some(wall),
        wall.checked_add_signed(day),
    ];
    let mut candidates = near
        .into_iter()
        .flatten()
        .map(|t| tz.offset_from_utc_datetime(&t));
    let in_effect = candidates.clone().find_map(|candidate| {
        if candidate.abbreviation() != Some(name) {
            return None;
        }
        let utc = wall.checked_sub_signed(TimeDelta::seconds(i64::from(
            candidate.fix().local_minus_utc(),
        )))?;
        let actual = tz.offset_from_utc_datetime(&utc);
        (actual.abbreviation() == Some(name)).then(|| actual.fix().local_minus_utc())
    });
    if in_effect.is_some() {
        return in_effect;
    }
    let year = wall.year();
    let seasons = [(1, 1), (7, 1)]
        .into_iter()
        .filter_map(|(m, d)| NaiveDate::from_ymd_opt(year, m, d))
        .map(|date| tz.offset_from_utc_datetime(&date.and_time(chrono::NaiveTime::MIN)));
    candidates
        .by_ref()
        .chain(seasons)
        .find(|candidate| candidate.abbreviation() == Some(name))
        .map(|candidate| candidate.fix().local_minus_utc())
}

/// A Promtail `timestamp` format: a named format, a custom Go layout, or a Unix epoch.
#[derive(Clone, Debug)]
pub enum TimestampFormat {
    /// `ANSIC`, `RFC3339`, ...: Promtail uses `time.Parse`, so `location` never applies.
    Named(GoLayout),
    /// Any other Go layout: `time.ParseInLocation` when a location is configured.
    Custom(GoLayout),
    /// Seconds, optionally with a `.fraction`.
    Unix,
    UnixMs,
    UnixUs,
    UnixNs,
}

impl TimestampFormat {
    /// Reads a `format`/`fallback_formats` entry as Promtail's `convertDateLayout` does.
    pub fn new(format: &str) -> Result<Self, String> {
        // Go would take `rfc3339` or `unixms` as a layout that never matches; the name in the
        // wrong case is the likelier intent.
        let mut known = ["Unix", "UnixMs", "UnixUs", "UnixNs"]
            .into_iter()
            .chain(NAMED_LAYOUTS.iter().map(|(name, _)| *name));
        if let Some(name) = known.find(|name| name.eq_ignore_ascii_case(format) && *name != format)
        {
            return Err(format!(
                "unknown format {format:?}: format names are case-sensitive, did you mean {name:?}?"
            ));
        }
        Ok(match format {
            "Unix" => TimestampFormat::Unix,
            "UnixMs" => TimestampFormat::UnixMs,
            "UnixUs" => TimestampFormat::UnixUs,
            "UnixNs" => TimestampFormat::UnixNs,
            _ => match named_layout(format) {
                Some(layout) => TimestampFormat::Named(GoLayout::new(layout)?),
                None => TimestampFormat::Custom(GoLayout::new(format)?),
            },
        })
    }

    /// True when parsing reads `now` (a year-less custom layout).
    pub fn needs_now(&self) -> bool {
        matches!(self, TimestampFormat::Custom(layout) if layout.is_yearless())
    }

    pub fn parse(
        &self,
        value: &str,
        location: Option<Tz>,
        now: DateTime<Utc>,
    ) -> Result<DateTime<FixedOffset>, ParseError> {
        match self {
            TimestampFormat::Named(layout) => layout.try_parse(value, None, now),
            TimestampFormat::Custom(layout) => layout.try_parse(value, location, now),
            // Go's time.Unix returns the instant in the host's Local zone, which is what
            // Promtail's dry-run output then prints.
            TimestampFormat::Unix => parse_unix_seconds(value).map(in_local_zone),
            TimestampFormat::UnixMs => parse_unix_scaled(value, 1_000_000).map(in_local_zone),
            TimestampFormat::UnixUs => parse_unix_scaled(value, 1_000).map(in_local_zone),
            TimestampFormat::UnixNs => parse_unix_scaled(value, 1).map(in_local_zone),
        }
    }
}

fn in_local_zone(t: DateTime<FixedOffset>) -> DateTime<FixedOffset> {
    t.with_timezone(&chrono::Local).fixed_offset()
}

/// Go's `strconv.ParseInt(s, 10, 64)`: optional sign, at least one digit, nothing else.
fn parse_go_int(s: &str) -> Result<i64, ParseError> {
    let digits = s.strip_prefix(['+', '-']).unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|c| c.is_ascii_digit()) {
        return Err(ParseError::Number);
    }
    s.parse::<i64>().map_err(|_| ParseError::Number)
}

/// Promtail's `Unix`: integer seconds, or `seconds.fraction` when there is exactly one dot.
fn parse_unix_seconds(value: &str) -> Result<DateTime<FixedOffset>, ParseError> {
    let (seconds, nanoseconds) = match value.split_once('.') {
        Some((whole, fraction)) if !fraction.contains('.') => {
            let seconds = parse_go_int(whole)?;
            let digits = parse_go_int(fraction)?;
            // Promtail scales by 10^(9 - len(fraction)) in float64 arithmetic, which is exact
            // up to nine digits and truncates beyond.
            let scale = 9 - fraction.len() as i32;
            let nanoseconds = if scale >= 0 {
                digits
                    .checked_mul(10i64.pow(scale as u32))
                    .ok_or(ParseError::Number)?
            } else {
                (digits as f64 * (1.0 / 10f64.powi(-scale))) as i64
            };
            (seconds, nanoseconds)
        }
        _ => (parse_go_int(value)?, 0),
    };
    // Like Go's time.Unix, a nanosecond count outside [0, 1e9) carries into the seconds.
    let seconds = seconds
        .checked_add(nanoseconds.div_euclid(1_000_000_000))
        .ok_or(ParseError::Number)?;
    let nanoseconds = nanoseconds.rem_euclid(1_000_000_000) as u32;
    DateTime::from_timestamp(seconds, nanoseconds)
        .map(|t| t.fixed_offset())
        .ok_or(ParseError::Number)
}

/// `UnixMs`/`UnixUs`/`UnixNs`: an integer times `nanos_per_unit`, wrapping on overflow as
/// Go's int64 multiplication does.
fn parse_unix_scaled(
    value: &str,
    nanos_per_unit: i64,
) -> Result<DateTime<FixedOffset>, ParseError> {
    let units = parse_go_int(value)?;
    Ok(DateTime::from_timestamp_nanos(units.wrapping_mul(nanos_per_unit)).fixed_offset())
}

/// Renders `ts` as Go's `ts.Format("2006-01-02T15:04:05.999999999-0700")`, Promtail's dry-run
/// timestamp: fraction trimmed of trailing zeros (and dropped when zero), offset as `+0000`.
pub fn format_dry_run(ts: &DateTime<FixedOffset>) -> String {
    let mut out = String::with_capacity(35);
    append_dry_run(ts, &mut out);
    out
}

/// [`format_dry_run`] into a reused buffer.
pub fn append_dry_run(ts: &DateTime<FixedOffset>, out: &mut String) {
    let year = ts.year();
    if year < 0 {
        out.push('-');
    }
    // Writing to a String cannot fail.
    let _ = write!(
        out,
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
        year.unsigned_abs(),
        ts.month(),
        ts.day(),
        chrono::Timelike::hour(ts),
        chrono::Timelike::minute(ts),
        chrono::Timelike::second(ts),
    );
    // chrono keeps a leap second as a nanosecond count past 1e9; Go has no leap seconds.
    let nanoseconds = chrono::Timelike::nanosecond(ts) % 1_000_000_000;
    if nanoseconds != 0 {
        let _ = write!(out, ".{nanoseconds:09}");
        while out.ends_with('0') {
            out.pop();
        }
    }
    // Go prints whole minutes of offset, dropping any seconds.
    let minutes = ts.offset().local_minus_utc() / 60;
    let sign = if minutes < 0 { '-' } else { '+' };
    let minutes = minutes.abs();
    let _ = write!(out, "{sign}{:02}{:02}", minutes / 60, minutes % 60);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(rfc3339: &str) -> DateTime<FixedOffset> {
        DateTime::parse_from_rfc3339(rfc3339).unwrap()
    }

    fn now(rfc3339: &str) -> DateTime<Utc> {
        at(rfc3339).with_timezone(&Utc)
    }

    /// A `now` that year-less layouts do not get to see in these tests.
    fn mid_2024() -> DateTime<Utc> {
        now("2024-06-15T12:00:00Z")
    }

    fn parse(layout: &str, value: &str) -> Result<DateTime<FixedOffset>, ParseError> {
        GoLayout::new(layout)
            .unwrap()
            .try_parse(value, None, mid_2024())
    }

    fn parse_in(layout: &str, value: &str, zone: Tz) -> Result<DateTime<FixedOffset>, ParseError> {
        GoLayout::new(layout)
            .unwrap()
            .try_parse(value, Some(zone), mid_2024())
    }

    fn format(name: &str, value: &str) -> Result<DateTime<FixedOffset>, ParseError> {
        TimestampFormat::new(name)
            .unwrap()
            .parse(value, None, mid_2024())
    }

    /// Asserts the instant, shown in the host's zone as Go's `time.Unix` shows it.
    fn assert_local(actual: DateTime<FixedOffset>, expected: &str) {
        let expected = at(expected);
        assert_eq!(actual, expected);
        assert_eq!(
            *actual.offset(),
            *expected.with_timezone(&chrono::Local).offset()
        );
    }

    /// Asserts both the instant and the offset it is shown with.
    fn assert_same(actual: DateTime<FixedOffset>, expected: &str) {
        let expected = at(expected);
        assert_eq!(actual, expected);
        assert_eq!(actual.offset(), expected.offset());
    }

    #[test]
    fn every_named_layout_parses_its_go_example() {
        let cases = [
            ("ANSIC", "Mon Jan  2 15:04:05 2006", "2006-01-02T15:04:05Z"),
            (
                "UnixDate",
                "Mon Jan  2 15:04:05 UTC 2006",
                "2006-01-02T15:04:05Z",
            ),
            (
                "RubyDate",
                "Mon Jan 02 15:04:05 -0700 2006",
                "2006-01-02T15:04:05-07:00",
            ),
            ("RFC822", "02 Jan 06 15:04 GMT", "2006-01-02T15:04:00Z"),
            (
                "RFC822Z",
                "02 Jan 06 15:04 -0700",
                "2006-01-02T15:04:00-07:00",
            ),
            (
                "RFC850",
                "Monday, 02-Jan-06 15:04:05 UTC",
                "2006-01-02T15:04:05Z",
            ),
            (
                "RFC1123",
                "Mon, 02 Jan 2006 15:04:05 GMT",
                "2006-01-02T15:04:05Z",
            ),
            (
                "RFC1123Z",
                "Mon, 02 Jan 2006 15:04:05 -0700",
                "2006-01-02T15:04:05-07:00",
            ),
            (
                "RFC3339",
                "2012-11-01T22:08:41-04:00",
                "2012-11-01T22:08:41-04:00",
            ),
            (
                "RFC3339Nano",
                "2019-10-01T01:02:03.4Z",
                "2019-10-01T01:02:03.4Z",
            ),
            // ISO 8601 from a real bunyan log.
            (
                "RFC3339Nano",
                "2023-03-24T14:26:16.243Z",
                "2023-03-24T14:26:16.243Z",
            ),
        ];
        for (name, value, expected) in cases {
            let parsed = format(name, value).unwrap_or_else(|e| panic!("{name} {value}: {e}"));
            assert_same(parsed, expected);
        }
        assert_eq!(NAMED_LAYOUTS.len(), 10);
    }

    #[test]
    fn named_layouts_refuse_values_of_another_shape() {
        assert!(format("RFC3339", "2012-11-01 22:08:41").is_err());
        assert!(format("RFC1123Z", "Mon, 02 Jan 2006 15:04:05 GMT").is_err());
        assert!(format("ANSIC", "Mon Jan  2 15:04:05 2006 extra").is_err());
    }

    #[test]
    fn rfc3339_accepts_a_fraction_and_rfc3339nano_none() {
        assert_same(
            format("RFC3339", "2024-01-15T10:30:45.123456789+01:00").unwrap(),
            "2024-01-15T10:30:45.123456789+01:00",
        );
        assert_same(
            format("RFC3339Nano", "2024-01-15T10:30:45Z").unwrap(),
            "2024-01-15T10:30:45Z",
        );
    }

    #[test]
    fn unix_seconds_with_and_without_fraction() {
        assert_local(
            format("Unix", "1562708916").unwrap(),
            "2019-07-09T21:48:36Z",
        );
        assert_local(
            format("Unix", "1562708916.414123").unwrap(),
            "2019-07-09T21:48:36.414123Z",
        );
        assert_local(
            format("Unix", "1562708916.000000123").unwrap(),
            "2019-07-09T21:48:36.000000123Z",
        );
        // Digits past nanoseconds are truncated, as Promtail's float scaling does.
        assert_local(
            format("Unix", "1562708916.1234567891").unwrap(),
            "2019-07-09T21:48:36.123456789Z",
        );
        assert_eq!(
            format("Unix", "1562708916.").unwrap_err(),
            ParseError::Number
        );
        assert_eq!(format("Unix", "1.2.3").unwrap_err(), ParseError::Number);
        assert_eq!(format("Unix", "12ab").unwrap_err(), ParseError::Number);
    }

    #[test]
    fn unix_ms_us_ns_are_integers() {
        assert_local(
            format("UnixMs", "1562708916414").unwrap(),
            "2019-07-09T21:48:36.414Z",
        );
        assert_local(
            format("UnixUs", "1562708916414123").unwrap(),
            "2019-07-09T21:48:36.414123Z",
        );
        assert_local(
            format("UnixNs", "1562708916000000123").unwrap(),
            "2019-07-09T21:48:36.000000123Z",
        );
        assert_eq!(
            format("UnixMs", "1562708916.414").unwrap_err(),
            ParseError::Number
        );
        assert_eq!(format("UnixNs", "").unwrap_err(), ParseError::Number);
    }

    #[test]
    fn unix_formats_ignore_the_location() {
        let unix = TimestampFormat::new("Unix").unwrap();
        let parsed = unix
            .parse("1562708916", Some(chrono_tz::America::New_York), mid_2024())
            .unwrap();
        assert_local(parsed, "2019-07-09T21:48:36Z");
    }

    #[test]
    fn fixed_fraction_needs_exactly_its_digits() {
        let layout = "2006-01-02 15:04:05.000";
        assert_same(
            parse(layout, "2024-01-15 10:30:45.123").unwrap(),
            "2024-01-15T10:30:45.123Z",
        );
        assert!(parse(layout, "2024-01-15 10:30:45.12").is_err());
        assert!(parse(layout, "2024-01-15 10:30:45").is_err());
        assert!(parse(layout, "2024-01-15 10:30:45.1234").is_err());
    }

    #[test]
    fn comma_fraction_parses_python_logging_timestamps() {
        // Python's logging asctime, from a real log.
        let layout = "2006-01-02 15:04:05,000";
        assert_same(
            parse(layout, "2025-09-26 21:12:39,384").unwrap(),
            "2025-09-26T21:12:39.384Z",
        );
        // Go accepts either separator in the value, whatever the layout says.
        assert_same(
            parse(layout, "2025-09-26 21:12:39.384").unwrap(),
            "2025-09-26T21:12:39.384Z",
        );
    }

    #[test]
    fn nines_fraction_is_optional_and_takes_any_digits() {
        let layout = "2006-01-02 15:04:05.999";
        assert_same(
            parse(layout, "2024-01-15 10:30:45").unwrap(),
            "2024-01-15T10:30:45Z",
        );
        assert_same(
            parse(layout, "2024-01-15 10:30:45.5").unwrap(),
            "2024-01-15T10:30:45.5Z",
        );
        assert_same(
            parse(layout, "2024-01-15 10:30:45.123456789").unwrap(),
            "2024-01-15T10:30:45.123456789Z",
        );
    }

    #[test]
    fn fraction_after_seconds_is_accepted_without_one_in_the_layout() {
        assert_same(
            parse("2006-01-02 15:04:05", "2024-01-15 10:30:45.123456").unwrap(),
            "2024-01-15T10:30:45.123456Z",
        );
        assert_same(
            parse("2006-01-02 15:04:05", "2024-01-15 10:30:45,5").unwrap(),
            "2024-01-15T10:30:45.5Z",
        );
    }

    #[test]
    fn iso8601_zone_accepts_z_and_offsets() {
        let layout = "2006-01-02T15:04:05Z07:00";
        assert_same(
            parse(layout, "2024-01-15T10:30:45Z").unwrap(),
            "2024-01-15T10:30:45Z",
        );
        assert_same(
            parse(layout, "2024-01-15T10:30:45+05:30").unwrap(),
            "2024-01-15T10:30:45+05:30",
        );
        assert!(parse(layout, "2024-01-15T10:30:45+0530").is_err());
        // A real auth log line: microseconds and no zone, then milliseconds and +01:30.
        let layout = "2006-01-02T15:04:05.999999Z07:00";
        assert!(parse(layout, "2019-06-14T10:40:20.912134").is_err());
        assert_same(
            parse(layout, "2019-06-14T13:01:15.412+01:30").unwrap(),
            "2019-06-14T13:01:15.412+01:30",
        );
    }

    #[test]
    fn numeric_zone_parses_nginx_time_local() {
        let layout = "02/Jan/2006:15:04:05 -0700";
        assert_same(
            parse(layout, "07/Dec/2016:11:05:07 +0100").unwrap(),
            "2016-12-07T11:05:07+01:00",
        );
        assert_same(
            parse(layout, "29/May/2017:19:02:48 -0000").unwrap(),
            "2017-05-29T19:02:48Z",
        );
        // Only the Z forms accept a literal Z.
        assert!(parse(layout, "07/Dec/2016:11:05:07 Z").is_err());
        assert_same(
            parse("02/Jan/2006:15:04:05 Z0700", "07/Dec/2016:11:05:07 Z").unwrap(),
            "2016-12-07T11:05:07Z",
        );
    }

    #[test]
    fn short_and_seconds_offsets() {
        assert_same(
            parse("2006-01-02 15:04 -07", "2024-01-15 10:30 +09").unwrap(),
            "2024-01-15T10:30:00+09:00",
        );
        assert_same(
            parse("2006-01-02 15:04 -07:00:00", "2024-01-15 10:30 -03:30:00").unwrap(),
            "2024-01-15T10:30:00-03:30",
        );
    }

    #[test]
    fn zone_abbreviation_without_location_is_utc_or_fabricated_zero() {
        let layout = "2006-01-02 15:04:05 MST";
        assert_same(
            parse(layout, "2024-01-15 10:30:45 UTC").unwrap(),
            "2024-01-15T10:30:45Z",
        );
        assert_same(
            parse(layout, "2024-01-15 10:30:45 EST").unwrap(),
            "2024-01-15T10:30:45Z",
        );
        assert_same(
            parse(layout, "2024-01-15 10:30:45 GMT+3").unwrap(),
            "2024-01-15T10:30:45+03:00",
        );
        assert!(parse(layout, "2024-01-15 10:30:45 Europe").is_err());
    }

    #[test]
    fn zone_abbreviation_of_the_location_takes_its_offset() {
        let layout = "2006-01-02 15:04:05 MST";
        let new_york = chrono_tz::America::New_York;
        assert_same(
            parse_in(layout, "2024-01-15 10:30:45 EST", new_york).unwrap(),
            "2024-01-15T10:30:45-05:00",
        );
        assert_same(
            parse_in(layout, "2024-07-15 10:30:45 EDT", new_york).unwrap(),
            "2024-07-15T10:30:45-04:00",
        );
        // The standard-time name in summer still means standard time.
        assert_eq!(
            parse_in(layout, "2024-07-15 10:30:45 EST", new_york).unwrap(),
            at("2024-07-15T10:30:45-05:00"),
        );
        // An abbreviation the location does not use is Go's fabricated zone at offset 0.
        assert_same(
            parse_in(layout, "2024-01-15 10:30:45 CET", new_york).unwrap(),
            "2024-01-15T10:30:45Z",
        );
    }

    #[test]
    fn under_day_accepts_space_padding_of_syslog() {
        let layout = "Jan _2 15:04:05";
        // Real syslog timestamps: a padded single-digit day, and a two-digit day.
        assert_same(
            parse(layout, "Jun  2 19:08:43").unwrap(),
            "2024-06-02T19:08:43Z",
        );
        assert_same(
            parse(layout, "Jun 14 15:16:01").unwrap(),
            "2024-06-14T15:16:01Z",
        );
        assert_same(
            parse(layout, "Jun 2 19:08:43").unwrap(),
            "2024-06-02T19:08:43Z",
        );
        // `02` wants two digits.
        assert!(parse("Jan 02 15:04:05", "Jun  2 19:08:43").is_err());
    }

    #[test]
    fn yearless_layout_takes_the_year_of_now() {
        let layout = GoLayout::new("Jan _2 15:04:05").unwrap();
        assert!(layout.is_yearless());
        let parsed = layout
            .try_parse("Nov  3 09:23:38", None, now("2023-11-03T10:00:00Z"))
            .unwrap();
        assert_same(parsed, "2023-11-03T09:23:38Z");
    }

    #[test]
    fn yearless_december_value_in_january_is_last_year() {
        let layout = GoLayout::new("Jan _2 15:04:05").unwrap();
        let parsed = layout
            .try_parse("Dec 31 23:59:58", None, now("2024-01-01T00:00:05Z"))
            .unwrap();
        assert_same(parsed, "2023-12-31T23:59:58Z");
    }

    #[test]
    fn yearless_january_value_in_december_is_next_year() {
        let layout = GoLayout::new("Jan _2 15:04:05").unwrap();
        let parsed = layout
            .try_parse("Jan  1 00:00:01", None, now("2023-12-31T23:59:59Z"))
            .unwrap();
        assert_same(parsed, "2024-01-01T00:00:01Z");
    }

    #[test]
    fn yearless_february_29_becomes_march_1_in_a_common_year() {
        let layout = GoLayout::new("Jan _2 15:04:05").unwrap();
        let common = layout
            .try_parse("Feb 29 12:00:00", None, now("2023-03-10T00:00:00Z"))
            .unwrap();
        assert_same(common, "2023-03-01T12:00:00Z");
        let leap = layout
            .try_parse("Feb 29 12:00:00", None, now("2024-03-10T00:00:00Z"))
            .unwrap();
        assert_same(leap, "2024-02-29T12:00:00Z");
    }

    #[test]
    fn layouts_with_a_year_ignore_now() {
        let layout = GoLayout::new("2006/01/02 15:04:05").unwrap();
        assert!(!layout.is_yearless());
        // nginx error log timestamp.
        let parsed = layout
            .try_parse("2016/10/25 14:49:34", None, now("2030-01-01T00:00:00Z"))
            .unwrap();
        assert_same(parsed, "2016-10-25T14:49:34Z");
    }

    #[test]
    fn location_applies_to_values_without_zone() {
        let layout = "2006-01-02 15:04:05";
        assert_same(
            parse_in(layout, "2019-07-22 20:29:32", chrono_tz::America::New_York).unwrap(),
            "2019-07-22T20:29:32-04:00",
        );
        assert_same(
            parse_in(layout, "2019-01-22 20:29:32", chrono_tz::America::New_York).unwrap(),
            "2019-01-22T20:29:32-05:00",
        );
        assert_same(
            parse(layout, "2019-07-22 20:29:32").unwrap(),
            "2019-07-22T20:29:32Z",
        );
    }

    #[test]
    fn location_does_not_override_a_zone_in_the_value() {
        let layout = "02/Jan/2006:15:04:05 -0700";
        assert_same(
            parse_in(
                layout,
                "07/Dec/2016:11:05:07 +0100",
                chrono_tz::America::New_York,
            )
            .unwrap(),
            "2016-12-07T11:05:07+01:00",
        );
        assert_same(
            parse_in(
                "2006-01-02T15:04:05Z07:00",
                "2016-12-07T11:05:07Z",
                chrono_tz::Asia::Tokyo,
            )
            .unwrap(),
            "2016-12-07T11:05:07Z",
        );
    }

    #[test]
    fn wall_times_in_dst_gaps_and_overlaps_resolve_as_go_does() {
        let layout = "2006-01-02 15:04:05";
        let new_york = chrono_tz::America::New_York;
        let berlin = chrono_tz::Europe::Berlin;
        // Gaps: New York moves back to standard time, Berlin forward to summer time.
        assert_same(
            parse_in(layout, "2024-03-10 02:30:00", new_york).unwrap(),
            "2024-03-10T01:30:00-05:00",
        );
        assert_same(
            parse_in(layout, "2024-03-31 02:30:00", berlin).unwrap(),
            "2024-03-31T03:30:00+02:00",
        );
        // Overlaps: New York takes summer time, Berlin standard time.
        assert_same(
            parse_in(layout, "2024-11-03 01:30:00", new_york).unwrap(),
            "2024-11-03T01:30:00-04:00",
        );
        assert_same(
            parse_in(layout, "2024-10-27 02:30:00", berlin).unwrap(),
            "2024-10-27T02:30:00+01:00",
        );
    }

    #[test]
    fn named_formats_ignore_the_location_custom_layouts_use_it() {
        let value = "Mon, 15 Jan 2024 10:30:45 EST";
        let new_york = Some(chrono_tz::America::New_York);
        let named = TimestampFormat::new("RFC1123").unwrap();
        assert_same(
            named.parse(value, new_york, mid_2024()).unwrap(),
            "2024-01-15T10:30:45Z",
        );
        let custom = TimestampFormat::new("Mon, 02 Jan 2006 15:04:05 MST").unwrap();
        assert_same(
            custom.parse(value, new_york, mid_2024()).unwrap(),
            "2024-01-15T10:30:45-05:00",
        );
    }

    #[test]
    fn am_pm_marks_adjust_the_hour() {
        let layout = "2006-01-02 3:04PM";
        assert_same(
            parse(layout, "2024-01-15 12:30AM").unwrap(),
            "2024-01-15T00:30:00Z",
        );
        assert_same(
            parse(layout, "2024-01-15 12:30PM").unwrap(),
            "2024-01-15T12:30:00Z",
        );
        assert_same(
            parse(layout, "2024-01-15 1:05PM").unwrap(),
            "2024-01-15T13:05:00Z",
        );
        assert!(parse(layout, "2024-01-15 1:05pm").is_err());
        assert_same(
            parse("2006-01-02 03:04pm", "2024-01-15 01:05pm").unwrap(),
            "2024-01-15T13:05:00Z",
        );
    }

    #[test]
    fn long_names_and_case_insensitive_months() {
        assert_same(
            parse("Monday, January 2 2006", "Monday, March 4 2024").unwrap(),
            "2024-03-04T00:00:00Z",
        );
        assert_same(
            parse("02 Jan 2006", "04 MAR 2024").unwrap(),
            "2024-03-04T00:00:00Z",
        );
        // The weekday is checked for syntax only.
        assert_same(
            parse("Mon 2006-01-02", "Fri 2024-03-04").unwrap(),
            "2024-03-04T00:00:00Z",
        );
        assert!(parse("Mon 2006-01-02", "Xyz 2024-03-04").is_err());
    }

    #[test]
    fn two_digit_year_pivots_at_69() {
        assert_same(
            parse("02 Jan 06", "01 Jan 69").unwrap(),
            "1969-01-01T00:00:00Z",
        );
        assert_same(
            parse("02 Jan 06", "01 Jan 68").unwrap(),
            "2068-01-01T00:00:00Z",
        );
    }

    #[test]
    fn day_of_year_elements() {
        assert_same(
            parse("2006-002", "2024-060").unwrap(),
            "2024-02-29T00:00:00Z",
        );
        assert_same(
            parse("2006-002", "2023-060").unwrap(),
            "2023-03-01T00:00:00Z",
        );
        assert_same(
            parse("2006 __2", "2023   5").unwrap(),
            "2023-01-05T00:00:00Z",
        );
        assert_eq!(
            parse("2006-002", "2023-366").unwrap_err(),
            ParseError::OutOfRange {
                field: "day-of-year"
            }
        );
    }

    #[test]
    fn out_of_range_fields_are_errors() {
        let layout = "2006-01-02 15:04:05";
        let field = |value| match parse(layout, value) {
            Err(ParseError::OutOfRange { field }) => field,
            other => panic!("{value}: {other:?}"),
        };
        assert_eq!(field("2024-13-01 00:00:00"), "month");
        assert_eq!(field("2023-02-29 00:00:00"), "day");
        assert_eq!(field("2024-04-31 00:00:00"), "day");
        assert_eq!(field("2024-01-01 24:00:00"), "hour");
        assert_eq!(field("2024-01-01 00:60:00"), "minute");
        assert_eq!(field("2024-01-01 00:00:60"), "second");
        assert!(parse(layout, "2024-02-29 00:00:00").is_ok());
    }

    #[test]
    fn literal_mismatch_and_extra_text_report_the_byte() {
        let layout = "2006-01-02 15:04:05";
        assert_eq!(
            parse(layout, "2024/01/02 00:00:00").unwrap_err(),
            ParseError::Literal { at: 4 }
        );
        assert_eq!(
            parse(layout, "2024-01-02 00:00:00 x").unwrap_err(),
            ParseError::ExtraText { at: 19 }
        );
        assert_eq!(
            parse(layout, "2024-Jan-02 00:00:00").unwrap_err(),
            ParseError::Element {
                element: "01",
                at: 5
            }
        );
        let message = GoLayout::new(layout)
            .unwrap()
            .parse("2024/01/02 00:00:00", None, mid_2024())
            .unwrap_err();
        assert!(message.contains("\"2024/01/02 00:00:00\""), "{message}");
        assert!(message.contains("byte 4"), "{message}");
    }

    #[test]
    fn spaces_in_the_layout_match_any_run_of_spaces() {
        assert_same(
            parse("2006-01-02 15:04:05", "2024-01-02    00:00:00").unwrap(),
            "2024-01-02T00:00:00Z",
        );
        assert!(parse("2006-01-02 15:04:05", "2024-01-0200:00:00").is_err());
    }

    #[test]
    fn tokenizer_follows_go_special_cases() {
        // `_2006` is a literal underscore and the year.
        assert_same(
            parse("log_2006-01-02", "log_2024-05-06").unwrap(),
            "2024-05-06T00:00:00Z",
        );
        // `Month` is literal text: `Mon` followed by a lower-case letter is not a weekday.
        assert_same(
            parse("Month 01 2006", "Month 05 2024").unwrap(),
            "2024-05-01T00:00:00Z",
        );
        // A fraction must end its run of digits, otherwise `.00` is literal.
        assert_same(parse("2006.01", "2024.05").unwrap(), "2024-05-01T00:00:00Z");
    }

    #[test]
    fn layout_without_elements_is_refused() {
        let err = GoLayout::new("epoch").unwrap_err();
        assert!(err.contains("\"epoch\""), "{err}");
        assert!(err.contains("RFC3339"), "{err}");
        assert!(TimestampFormat::new("unix_ms").is_err());
    }

    #[test]
    fn format_name_in_the_wrong_case_is_refused() {
        let err = TimestampFormat::new("rfc3339").unwrap_err();
        assert!(err.contains("did you mean \"RFC3339\""), "{err}");
        assert!(
            TimestampFormat::new("unixms")
                .unwrap_err()
                .contains("\"UnixMs\"")
        );
        assert!(matches!(
            TimestampFormat::new("RFC3339").unwrap(),
            TimestampFormat::Named(_)
        ));
        assert!(matches!(
            TimestampFormat::new("UnixUs").unwrap(),
            TimestampFormat::UnixUs
        ));
    }

    #[test]
    fn needs_now_only_for_yearless_custom_layouts() {
        assert!(TimestampFormat::new("Jan _2 15:04:05").unwrap().needs_now());
        assert!(!TimestampFormat::new("2006-01-02").unwrap().needs_now());
        assert!(!TimestampFormat::new("RFC822").unwrap().needs_now());
        assert!(!TimestampFormat::new("UnixMs").unwrap().needs_now());
    }

    #[test]
    fn dry_run_format_drops_a_zero_fraction() {
        assert_eq!(
            format_dry_run(&at("2024-01-15T10:30:45Z")),
            "2024-01-15T10:30:45+0000"
        );
    }

    #[test]
    fn dry_run_format_trims_trailing_zeros() {
        assert_eq!(
            format_dry_run(&at("2024-01-15T10:30:45.123000000Z")),
            "2024-01-15T10:30:45.123+0000"
        );
        assert_eq!(
            format_dry_run(&at("2024-01-15T10:30:45.000000001Z")),
            "2024-01-15T10:30:45.000000001+0000"
        );
    }

    #[test]
    fn dry_run_format_prints_negative_and_half_hour_offsets() {
        assert_eq!(
            format_dry_run(&at("2006-01-02T15:04:05.5-07:00")),
            "2006-01-02T15:04:05.5-0700"
        );
        assert_eq!(
            format_dry_run(&at("2019-06-14T13:01:15.412+05:30")),
            "2019-06-14T13:01:15.412+0530"
        );
    }

    #[test]
    fn dry_run_format_appends_to_a_buffer() {
        let mut out = String::from("ts=");
        append_dry_run(&at("0987-03-04T05:06:07Z"), &mut out);
        assert_eq!(out, "ts=0987-03-04T05:06:07+0000");
    }
}
