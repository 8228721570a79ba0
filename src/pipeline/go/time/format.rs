//! Formatting instants: the dry-run timestamp, Go's
//! `Format("2006-01-02T15:04:05.999999999-0700")`, as Promtail prints it.

use std::fmt::Write as _;

use chrono::{DateTime, Datelike, FixedOffset};

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
