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
//!
//! Split as the work is: [`layout`] compiles a layout, [`values`] reads a value's fields,
//! [`zone`] picks the instant, [`timestamp`] maps Promtail's format names, [`format`]
//! renders the dry-run timestamp.

mod format;
mod layout;
#[cfg(test)]
mod tests;
mod timestamp;
mod values;
mod zone;

use std::fmt;

pub use format::{append_dry_run, format_dry_run};
pub use layout::GoLayout;
pub use timestamp::TimestampFormat;

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
