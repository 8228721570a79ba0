//! Promtail's `timestamp` formats: the named Go layouts (`RFC3339`, ...), any other Go
//! layout, and the `Unix`, `UnixMs`, `UnixUs`, `UnixNs` epochs, read as Promtail's
//! `convertDateLayout` reads a `format`.
//!
//! Owns the choice of parser per format and Promtail's epoch arithmetic (float scaling of
//! fractions, Go's wrapping multiplication). It must not know about the stage's config.

use chrono::{DateTime, FixedOffset, Utc};
use chrono_tz::Tz;

use super::layout::GoLayout;
use super::{NAMED_LAYOUTS, ParseError, named_layout};

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
