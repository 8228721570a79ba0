//! Tests of layouts, value parsing, zones and formats together, against Go's results.

use chrono::{DateTime, FixedOffset, Utc};
use chrono_tz::Tz;

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
