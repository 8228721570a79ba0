//! The zone of a parsed value, as Go's `time.parse` chooses it: `Z`/`UTC`, else a numeric
//! offset, else a zone abbreviation (looked up in the configured location, or Go's
//! fabricated zero-offset zone), else the configured location (UTC when none), with Go's
//! choice of offset for wall times in daylight-saving gaps and overlaps.
//!
//! Owns the instant a set of fields stands for. It must not read text.

use chrono::{
    DateTime, Datelike, FixedOffset, NaiveDate, NaiveDateTime, Offset, TimeDelta, TimeZone,
};
use chrono_tz::{OffsetName, Tz};

use super::ParseError;
use super::values::{Fields, atoi};

/// Turns parsed fields into an instant, choosing the zone as Go's `parse` does: `Z`/`UTC`,
/// else a numeric offset, else a zone abbreviation, else `location` (UTC when `None`).
pub(super) fn resolve(
    fields: &Fields<'_>,
    location: Option<Tz>,
) -> Result<DateTime<FixedOffset>, ParseError> {
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
