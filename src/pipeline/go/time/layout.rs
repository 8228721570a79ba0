//! Go layouts compiled once: a layout such as `02/Jan/2006:15:04:05 -0700` split into literal
//! text and elements (`02`, `Jan`, `2006`, `-0700`, ...) exactly as Go's `nextStdChunk`
//! splits it, including its special cases (`Jan` but not `January`-like words, `_2006`,
//! fractional seconds only after `.` or `,`).
//!
//! Owns the chunk list and the entry points that parse a value against it; reading the
//! value's fields is [`super::values`], choosing its zone [`super::zone`].

use chrono::{DateTime, Datelike, FixedOffset, Utc};
use chrono_tz::Tz;

use super::values::is_leap;
use super::zone::resolve;
use super::{NAMED_LAYOUTS, ParseError};

/// One element of a Go layout, as Go's `std*` constants name them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Std {
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
    pub(super) fn text(self) -> &'static str {
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

    pub(super) fn is_fraction(self) -> bool {
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
pub(super) struct Chunk {
    /// Literal text before the element: `layout[prefix_start..prefix_end]`.
    pub(super) prefix_start: usize,
    pub(super) prefix_end: usize,
    pub(super) std: Std,
}

/// A Go time layout, split into elements once.
#[derive(Clone, Debug)]
pub struct GoLayout {
    pub(super) layout: Box<str>,
    pub(super) chunks: Vec<Chunk>,
    /// Literal text after the last element.
    pub(super) suffix_start: usize,
    /// Promtail treats a layout whose text contains neither `06` nor `2006` as year-less.
    pub(super) yearless: bool,
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
}
