//! `syslog`: a tailward extension that parses the syslog header of a line as files under
//! /var/log hold them, sets the entry's timestamp from it and puts the header's parts into
//! the extracted map, so later stages only look at the message.
//!
//! ```yaml
//! - syslog:
//!     location: Europe/Berlin   # zone of headers without an offset; default: the host's
//!     source: line              # extracted key to parse; default: the log line
//! ```
//!
//! Forms, each with an optional `<PRI>` first:
//! - RFC3164 / BSD: `Feb  3 04:05:06 host prog[pid]: message`, the day padded with a space
//!   (syslogd, rsyslog's traditional format), a zero (`journalctl -o short`) or not at all
//!   (`Feb 3 04:05:06`, as some daemons and many test suites write it), with a fraction of a
//!   second after the time (`journalctl -o short-precise`: `Feb 03 04:05:06.123456`). The
//!   year is not written, so it is inferred from the entry's timestamp at this point (the read
//!   time, unless an earlier stage set one): the same year, or the year before when that would
//!   put the line more than a day in the future (a December line read in January: New Year
//!   rollover). The hostname may be missing (`Feb  3 04:05:06 prog: message`, or empty, as
//!   Debian writes after "last message repeated").
//! - ISO8601 / RFC3339 (rsyslog's high-precision format, `journalctl -o short-iso` and
//!   `short-iso-precise`): `2019-06-14T10:40:20.912+01:30 host prog[pid]: message`, with or
//!   without a fraction, the offset as `Z`, `+01:30` or `+0130`; without an offset the time is
//!   in `location`.
//! - `journalctl -o short-unix`: `1571042420.912134 host prog[pid]: message` (seconds since
//!   the epoch, ten digits or more).
//! - RFC5424: `<34>1 2003-10-11T22:14:15.003Z host app procid msgid [sd] message` (`-` is an
//!   absent value).
//! - No timestamp: `[host ]prog[pid]: message` (a tag with a pid is needed, so ordinary text
//!   is not taken for a tag), or after a `<PRI>` any tag, `<38>sshd: message`, as a program
//!   sends it to /dev/log. The entry keeps its timestamp.
//!
//! The tag is `prog[pid]:` or `prog:`; macOS's ASL files add the level, `prog[pid] <Notice>:`.
//!
//! Extracted: `hostname`, `program`, `pid`, `message` (what follows the header), and when
//! present `severity` and `facility` (names, from PRI), `msgid` and `structured_data`
//! (RFC5424). A line without a header it knows is left unchanged (later stages see no
//! `message`). It must not interpret the message: `auth_event` does that.

use chrono::{
    DateTime, Datelike, Duration, FixedOffset, Local, NaiveDate, NaiveDateTime, TimeZone,
};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::StageError;
use crate::pipeline::{PipelineEntry, Stage, Verdict, value_as_string};

#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SyslogConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// IANA zone of headers written without an offset; empty or `Local` is the host's zone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
}

/// The zone headers without an offset are in.
#[derive(Clone, Copy, Debug)]
enum Zone {
    Local,
    Named(Tz),
}

impl Zone {
    fn resolve(self, naive: NaiveDateTime) -> Option<DateTime<FixedOffset>> {
        // In a DST fold the earlier instant is taken; a time in a DST gap has no instant.
        match self {
            Zone::Local => Local
                .from_local_datetime(&naive)
                .earliest()
                .map(|t| t.fixed_offset()),
            Zone::Named(tz) => tz
                .from_local_datetime(&naive)
                .earliest()
                .map(|t| t.fixed_offset()),
        }
    }

    fn year_of(self, t: DateTime<FixedOffset>) -> i32 {
        match self {
            Zone::Local => t.with_timezone(&Local).year(),
            Zone::Named(tz) => t.with_timezone(&tz).year(),
        }
    }
}

pub struct SyslogStage {
    source: Option<String>,
    zone: Zone,
}

impl SyslogStage {
    pub fn new(cfg: &SyslogConfig) -> Result<Self, StageError> {
        let zone = match cfg.location.as_deref() {
            None | Some("") | Some("Local") => Zone::Local,
            Some(name) => Zone::Named(name.parse::<Tz>().map_err(|_| {
                StageError::new(
                    "location",
                    format!(
                        "invalid location {name:?}: expected an IANA time zone such as \
                         Europe/Berlin, or Local"
                    ),
                )
            })?),
        };
        if matches!(cfg.source.as_deref(), Some("")) {
            return Err(StageError::new(
                "source",
                "expected a non-empty extracted key",
            ));
        }
        Ok(Self {
            source: cfg.source.clone(),
            zone,
        })
    }
}

impl Stage for SyslogStage {
    fn process(&mut self, entry: &mut PipelineEntry) -> Verdict {
        let owned_source;
        let input: &str = match &self.source {
            None => &entry.line,
            Some(key) => match entry.extracted.get(key).and_then(value_as_string) {
                Some(v) => {
                    owned_source = v.into_owned();
                    &owned_source
                }
                None => return Verdict::Keep,
            },
        };
        let Some(header) = parse(input, self.zone, entry.timestamp) else {
            return Verdict::Keep;
        };
        entry.timestamp = header.time;
        if let Some(pri) = header.priority {
            entry.extracted.insert(
                "severity".to_string(),
                Value::String(SEVERITIES[usize::from(pri % 8)].to_string()),
            );
            entry.extracted.insert(
                "facility".to_string(),
                Value::String(FACILITIES[usize::from(pri / 8)].to_string()),
            );
        }
        let fields = [
            ("hostname", header.hostname),
            ("program", header.program),
            ("pid", header.pid),
            ("msgid", header.msgid),
            ("structured_data", header.structured_data),
            ("message", Some(header.message)),
        ];
        for (name, value) in fields {
            if let Some(v) = value {
                entry
                    .extracted
                    .insert(name.to_string(), Value::String(v.to_string()));
            }
        }
        Verdict::Keep
    }
}

const SEVERITIES: [&str; 8] = [
    "emerg", "alert", "crit", "err", "warning", "notice", "info", "debug",
];
const FACILITIES: [&str; 24] = [
    "kern",
    "user",
    "mail",
    "daemon",
    "auth",
    "syslog",
    "lpr",
    "news",
    "uucp",
    "cron",
    "authpriv",
    "ftp",
    "ntp",
    "security",
    "console",
    "solaris-cron",
    "local0",
    "local1",
    "local2",
    "local3",
    "local4",
    "local5",
    "local6",
    "local7",
];

/// A parsed header; every text part borrows from the line.
#[derive(Debug, PartialEq)]
pub struct Header<'a> {
    pub time: DateTime<FixedOffset>,
    pub priority: Option<u8>,
    pub hostname: Option<&'a str>,
    pub program: Option<&'a str>,
    pub pid: Option<&'a str>,
    pub msgid: Option<&'a str>,
    pub structured_data: Option<&'a str>,
    pub message: &'a str,
}

/// Parses the header of `line`; `reference` is the time the year of an RFC3164 header is
/// inferred from.
fn parse(line: &str, zone: Zone, reference: DateTime<FixedOffset>) -> Option<Header<'_>> {
    let (priority, rest) = split_priority(line);
    if let Some(after_version) = rest.strip_prefix("1 ")
        && priority.is_some()
    {
        return parse_rfc5424(priority, after_version, zone);
    }
    let bytes = rest.as_bytes();
    let timed = if bytes.len() >= 11 && bytes[4] == b'-' && bytes[10] == b'T' {
        let end = rest.find(' ').unwrap_or(rest.len());
        parse_iso(&rest[..end], zone).map(|t| (t, &rest[end..]))
    } else if bytes.first().is_some_and(u8::is_ascii_digit) {
        parse_unix_time(rest)
    } else {
        parse_bsd_time(rest, zone, reference)
    };
    let Some((time, rest)) = timed else {
        return parse_untimed(priority, rest, reference);
    };
    let rest = rest.strip_prefix(' ')?;
    let (hostname, program, pid, message) = split_host_and_tag(rest);
    Some(Header {
        time,
        priority,
        hostname,
        program,
        pid,
        msgid: None,
        structured_data: None,
        message,
    })
}

fn split_priority(line: &str) -> (Option<u8>, &str) {
    let Some(rest) = line.strip_prefix('<') else {
        return (None, line);
    };
    let Some(end) = rest.find('>') else {
        return (None, line);
    };
    match rest[..end].parse::<u8>() {
        Ok(p) if end <= 3 && p < 192 => (Some(p), &rest[end + 1..]),
        _ => (None, line),
    }
}

/// `Mmm dd hh:mm:ss[.fraction]`, the day padded with a space or a zero, or unpadded.
fn parse_bsd_time(
    s: &str,
    zone: Zone,
    reference: DateTime<FixedOffset>,
) -> Option<(DateTime<FixedOffset>, &str)> {
    let b = s.as_bytes();
    if b.len() < 14 || b[3] != b' ' {
        return None;
    }
    let month = MONTHS.iter().position(|m| m.as_bytes() == &b[..3])? as u32 + 1;
    let digit = |i: usize| {
        b.get(i)
            .filter(|c| c.is_ascii_digit())
            .map(|c| u32::from(c - b'0'))
    };
    // ` 3`, `03`, `13`, or `3` followed by its space.
    let (day, at) = match (b[4], digit(4), digit(5)) {
        (b' ', _, Some(d)) => (d, 6),
        (_, Some(d1), Some(d2)) => (d1 * 10 + d2, 6),
        (_, Some(d), None) => (d, 5),
        _ => return None,
    };
    if b.get(at) != Some(&b' ') {
        return None;
    }
    let t = at + 1;
    if b.get(t + 2) != Some(&b':') || b.get(t + 5) != Some(&b':') {
        return None;
    }
    let two = |i: usize| Some(digit(i)? * 10 + digit(i + 1)?);
    let (hour, minute, second) = (two(t)?, two(t + 3)?, two(t + 6)?);
    let mut end = t + 8;
    let mut nanos = 0u32;
    if b.get(end) == Some(&b'.') {
        let digits = b[end + 1..]
            .iter()
            .take_while(|c| c.is_ascii_digit())
            .count();
        if digits == 0 {
            return None;
        }
        for (i, c) in b[end + 1..end + 1 + digits].iter().enumerate().take(9) {
            nanos += u32::from(c - b'0') * 10u32.pow(8 - i as u32);
        }
        end += 1 + digits;
    }
    let year = zone.year_of(reference);
    let at = |year: i32| {
        NaiveDate::from_ymd_opt(year, month, day)
            .and_then(|d| d.and_hms_nano_opt(hour, minute, second, nanos))
            .and_then(|n| zone.resolve(n))
    };
    // Feb 29 only exists in some years, so a failure in this year is retried in the last.
    let time = match at(year) {
        Some(t) if t <= reference + Duration::days(1) => t,
        _ => at(year - 1)?,
    };
    Some((time, &s[end..]))
}

/// `1571042420[.912134]`: seconds since the epoch (`journalctl -o short-unix`), in UTC.
fn parse_unix_time(s: &str) -> Option<(DateTime<FixedOffset>, &str)> {
    let b = s.as_bytes();
    let whole = b.iter().take_while(|c| c.is_ascii_digit()).count();
    if !(10..=12).contains(&whole) {
        return None;
    }
    let seconds: i64 = s[..whole].parse().ok()?;
    let mut end = whole;
    let mut nanos = 0u32;
    if b.get(end) == Some(&b'.') {
        let digits = b[end + 1..]
            .iter()
            .take_while(|c| c.is_ascii_digit())
            .count();
        for (i, c) in b[end + 1..end + 1 + digits].iter().enumerate().take(9) {
            nanos += u32::from(c - b'0') * 10u32.pow(8 - i as u32);
        }
        end += 1 + digits;
    }
    if b.get(end) != Some(&b' ') {
        return None;
    }
    let time = DateTime::from_timestamp(seconds, nanos)?.fixed_offset();
    Some((time, &s[end..]))
}

/// A header without a timestamp: `[host ]prog[pid]: message`, or any tag after a `<PRI>`.
/// The entry's timestamp (`reference`) stays.
fn parse_untimed(
    priority: Option<u8>,
    s: &str,
    reference: DateTime<FixedOffset>,
) -> Option<Header<'_>> {
    let first_end = s.find(' ').unwrap_or(s.len());
    let first = &s[..first_end];
    let (hostname, tagged) =
        if first.ends_with("]:") || (priority.is_some() && first.ends_with(':')) {
            (None, s)
        } else {
            let rest = s[first_end..].strip_prefix(' ')?;
            let second = rest.split(' ').next().unwrap_or("");
            if !second.ends_with("]:") || first.is_empty() || first.contains([':', '[', ']']) {
                return None;
            }
            (Some(first), rest)
        };
    let (program, pid, message) = split_tag(tagged);
    program?;
    if pid.is_none() && priority.is_none() {
        return None;
    }
    Some(Header {
        time: reference,
        priority,
        hostname,
        program,
        pid,
        msgid: None,
        structured_data: None,
        message,
    })
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// `2019-06-14T10:40:20[.fraction][Z|±hh:mm|±hhmm]`.
fn parse_iso(s: &str, zone: Zone) -> Option<DateTime<FixedOffset>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t);
    }
    if let Ok(t) = DateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f%z") {
        return Some(t);
    }
    let naive = NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f").ok()?;
    zone.resolve(naive)
}

/// After the time: `[host ]tag[pid]: message`. A first word that is already a tag (ends
/// with `:` or `]:`) means the host is missing.
fn split_host_and_tag(s: &str) -> (Option<&str>, Option<&str>, Option<&str>, &str) {
    let (hostname, rest) = if let Some(rest) = s.strip_prefix(' ') {
        // An empty hostname field (two spaces).
        (None, rest)
    } else {
        let first_end = s.find(' ').unwrap_or(s.len());
        if s[..first_end].ends_with(':') {
            (None, s)
        } else {
            (
                Some(&s[..first_end]),
                s[first_end..].strip_prefix(' ').unwrap_or(""),
            )
        }
    };
    let (program, pid, message) = split_tag(rest);
    (
        hostname.filter(|h| !h.is_empty() && *h != "-"),
        program,
        pid,
        message,
    )
}

/// `prog[pid]: message`, `prog: message`, `prog[pid] <Level>: message` (macOS), or a message
/// without a tag.
fn split_tag(s: &str) -> (Option<&str>, Option<&str>, &str) {
    let word_end = s.find(' ').unwrap_or(s.len());
    let word = &s[..word_end];
    let (tag, message) = match word.strip_suffix(':') {
        Some(tag) => (
            tag,
            s[word_end..].strip_prefix(' ').unwrap_or(&s[word_end..]),
        ),
        None => match macos_level(word, &s[word_end..]) {
            Some(message) => (word, message),
            None => return (None, None, s),
        },
    };
    if let Some(open) = tag.find('[')
        && let Some(pid) = tag[open + 1..].strip_suffix(']')
        && open > 0
    {
        return (Some(&tag[..open]), Some(pid), message);
    }
    if tag.is_empty() {
        return (None, None, s);
    }
    (Some(tag), None, message)
}

/// After a `prog[pid]` tag, ` <Notice>: message` as macOS's ASL writes its files: the message.
fn macos_level<'a>(tag: &str, after: &'a str) -> Option<&'a str> {
    if !tag.ends_with(']') {
        return None;
    }
    let r = after.strip_prefix(" <")?;
    let (level, message) = r.split_once(">:")?;
    if level.is_empty() || !level.bytes().all(|b| b.is_ascii_alphabetic()) {
        return None;
    }
    Some(message.strip_prefix(' ').unwrap_or(message))
}

/// After `<PRI>1 `: `TIMESTAMP HOSTNAME APP-NAME PROCID MSGID SD [MSG]`.
fn parse_rfc5424(priority: Option<u8>, s: &str, zone: Zone) -> Option<Header<'_>> {
    let mut rest = s;
    let mut next = || {
        let end = rest.find(' ').unwrap_or(rest.len());
        let word = &rest[..end];
        rest = rest.get(end + 1..).unwrap_or("");
        word
    };
    let time_text = next();
    let hostname = nil(next());
    let program = nil(next());
    let pid = nil(next());
    let msgid = nil(next());
    // A nil timestamp leaves nothing to time the entry by: the line is not taken as syslog.
    let time = parse_iso(time_text, zone)?;
    let (structured_data, message) = split_structured_data(rest)?;
    // A UTF-8 message starts with a byte order mark.
    let message = message.strip_prefix('\u{feff}').unwrap_or(message);
    Some(Header {
        time,
        priority,
        hostname,
        program,
        pid,
        msgid,
        structured_data,
        message,
    })
}

fn nil(s: &str) -> Option<&str> {
    (s != "-" && !s.is_empty()).then_some(s)
}

/// `-` or `[id k="v"]...`, then the message; `\]` inside a value does not close an element.
fn split_structured_data(s: &str) -> Option<(Option<&str>, &str)> {
    if let Some(rest) = s.strip_prefix('-') {
        return Some((None, rest.strip_prefix(' ').unwrap_or(rest)));
    }
    if !s.starts_with('[') {
        return None;
    }
    let bytes = s.as_bytes();
    let mut i = 0;
    while i < bytes.len() && bytes[i] == b'[' {
        let mut in_quotes = false;
        i += 1;
        loop {
            match bytes.get(i)? {
                b'\\' if in_quotes => i += 1,
                b'"' => in_quotes = !in_quotes,
                b']' if !in_quotes => break,
                _ => {}
            }
            i += 1;
        }
        i += 1;
    }
    let rest = &s[i..];
    Some((Some(&s[..i]), rest.strip_prefix(' ').unwrap_or(rest)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::stages::testing::entry;

    fn utc() -> Zone {
        Zone::Named(Tz::UTC)
    }

    fn at(s: &str) -> DateTime<FixedOffset> {
        DateTime::parse_from_rfc3339(s).unwrap()
    }

    #[test]
    fn bsd_header_with_host_program_and_pid() {
        let h = parse(
            "Feb 21 21:54:44 localhost sshd[3402]: Accepted publickey for vagrant",
            utc(),
            at("2024-06-01T00:00:00Z"),
        )
        .unwrap();
        assert_eq!(h.time, at("2024-02-21T21:54:44Z"));
        assert_eq!(h.hostname, Some("localhost"));
        assert_eq!(h.program, Some("sshd"));
        assert_eq!(h.pid, Some("3402"));
        assert_eq!(h.message, "Accepted publickey for vagrant");
    }

    #[test]
    fn bsd_year_rolls_back_over_new_year() {
        let h = parse(
            "Dec 31 23:59:59 host CRON[1]: x",
            utc(),
            at("2025-01-01T00:00:05Z"),
        )
        .unwrap();
        assert_eq!(h.time, at("2024-12-31T23:59:59Z"));
        // A line a few hours ahead of the reference (clock skew) keeps the year.
        let h = parse(
            "Jan  1 03:00:00 host CRON[1]: x",
            utc(),
            at("2025-01-01T00:00:05Z"),
        )
        .unwrap();
        assert_eq!(h.time, at("2025-01-01T03:00:00Z"));
    }

    #[test]
    fn bsd_leap_day_read_in_a_later_year_takes_the_leap_year() {
        let h = parse("Feb 29 12:00:00 h p: x", utc(), at("2025-01-10T00:00:00Z")).unwrap();
        assert_eq!(h.time, at("2024-02-29T12:00:00Z"));
    }

    #[test]
    fn bsd_time_is_in_the_location() {
        let zone = Zone::Named("America/New_York".parse().unwrap());
        let h = parse(
            "Jul  4 12:00:00 h sudo: x",
            zone,
            at("2024-08-01T00:00:00Z"),
        )
        .unwrap();
        assert_eq!(h.time.to_rfc3339(), "2024-07-04T12:00:00-04:00");
        assert_eq!(h.program, Some("sudo"));
        assert_eq!(h.pid, None);
    }

    #[test]
    fn missing_or_empty_hostname_and_missing_tag() {
        let r = at("2024-03-01T00:00:00Z");
        let h = parse(
            "Feb 22 10:21:43  sshd[1332]: last message repeated 2 times",
            utc(),
            r,
        )
        .unwrap();
        assert_eq!(
            (h.hostname, h.program, h.pid),
            (None, Some("sshd"), Some("1332"))
        );
        assert_eq!(h.message, "last message repeated 2 times");
        let h = parse("Feb 22 10:21:43 kernel: boot", utc(), r).unwrap();
        assert_eq!((h.hostname, h.program), (None, Some("kernel")));
        let h = parse("Feb 22 10:21:43 host just text", utc(), r).unwrap();
        assert_eq!(
            (h.hostname, h.program, h.message),
            (Some("host"), None, "just text")
        );
    }

    #[test]
    fn bsd_day_unpadded_zero_padded_and_with_a_fraction() {
        let r = at("2024-12-01T00:00:00Z");
        for (line, time) in [
            ("Nov 2 15:40:14 h sshd[1]: x", "2024-11-02T15:40:14Z"),
            ("Nov  2 15:40:14 h sshd[1]: x", "2024-11-02T15:40:14Z"),
            ("Nov 02 15:40:14 h sshd[1]: x", "2024-11-02T15:40:14Z"),
            ("Nov 12 15:40:14 h sshd[1]: x", "2024-11-12T15:40:14Z"),
            (
                "Nov 02 15:40:14.123456 h sshd[1]: x",
                "2024-11-02T15:40:14.123456Z",
            ),
            (
                "Nov 02 15:40:14.1234567891 h sshd[1]: x",
                "2024-11-02T15:40:14.123456789Z",
            ),
        ] {
            let h = parse(line, utc(), r).unwrap_or_else(|| panic!("{line}"));
            assert_eq!(h.time, at(time), "{line}");
            assert_eq!(
                (h.hostname, h.program, h.pid, h.message),
                (Some("h"), Some("sshd"), Some("1"), "x"),
                "{line}"
            );
        }
        for line in [
            "Nov  2 15:40:14.",
            "Nov 2  15:40:14 h p: x",
            "Nov 123 15:40:14 h p: x",
            "Nov 2 5:40:14 h p: x",
        ] {
            assert_eq!(parse(line, utc(), r), None, "{line}");
        }
    }

    #[test]
    fn journald_short_iso_and_short_unix() {
        let r = at("2030-01-01T00:00:00Z");
        let h = parse("2024-11-02T16:40:14+0100 h sshd[1]: x", utc(), r).unwrap();
        assert_eq!(h.time, at("2024-11-02T15:40:14Z"));
        let h = parse("1730562014.25 h sshd[1]: x", utc(), r).unwrap();
        assert_eq!(h.time, at("2024-11-02T15:40:14.25Z"));
        assert_eq!((h.hostname, h.program), (Some("h"), Some("sshd")));
        assert_eq!(parse("12345 h sshd[1]: x", utc(), r), None);
    }

    #[test]
    fn tags_without_a_timestamp_and_with_a_macos_level() {
        let r = at("2024-06-01T00:00:00Z");
        let h = parse("sshd[7]: Accepted", utc(), r).unwrap();
        assert_eq!(h.time, r);
        assert_eq!(
            (h.hostname, h.program, h.pid),
            (None, Some("sshd"), Some("7"))
        );
        let h = parse("web1 sshd[7]: Accepted", utc(), r).unwrap();
        assert_eq!((h.hostname, h.program), (Some("web1"), Some("sshd")));
        let h = parse("<38>sudo: bob : TTY=x", utc(), r).unwrap();
        assert_eq!(
            (h.priority, h.program, h.message),
            (Some(38), Some("sudo"), "bob : TTY=x")
        );
        // Ordinary text is not taken for a tag.
        for line in ["Error: something", "sudo: bob : TTY=x", "a b c", ""] {
            assert_eq!(parse(line, utc(), r), None, "{line}");
        }
        let h = parse("Nov  2 15:40:14 mbp sshd[7] <Notice>: Accepted", utc(), r).unwrap();
        assert_eq!(
            (h.hostname, h.program, h.pid),
            (Some("mbp"), Some("sshd"), Some("7"))
        );
        assert_eq!(h.message, "Accepted");
    }

    #[test]
    fn program_with_parenthesised_module() {
        let h = parse(
            "Jun 14 15:16:01 combo sshd(pam_unix)[19939]: authentication failure; x",
            utc(),
            at("2005-07-01T00:00:00Z"),
        )
        .unwrap();
        assert_eq!(h.program, Some("sshd(pam_unix)"));
        assert_eq!(h.pid, Some("19939"));
    }

    #[test]
    fn iso_header_with_and_without_offset() {
        let h = parse(
            "2019-06-14T13:01:15.412+01:30 localhost pam: user nobody logged out.",
            utc(),
            at("2030-01-01T00:00:00Z"),
        )
        .unwrap();
        assert_eq!(h.time, at("2019-06-14T13:01:15.412+01:30"));
        assert_eq!(h.program, Some("pam"));
        let zone = Zone::Named("Etc/GMT+2".parse().unwrap());
        let h = parse(
            "2019-06-14T10:40:20.912134 localhost sudo: pam_unix(sudo-i:session): x",
            zone,
            at("2030-01-01T00:00:00Z"),
        )
        .unwrap();
        assert_eq!(h.time, at("2019-06-14T10:40:20.912134-02:00"));
        assert_eq!(h.message, "pam_unix(sudo-i:session): x");
    }

    #[test]
    fn rfc5424_with_structured_data_and_nil_values() {
        let h = parse(
            r#"<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 [exampleSDID@32473 iut="3" eventSource="App\]lication"] An application event"#,
            utc(),
            at("2030-01-01T00:00:00Z"),
        )
        .unwrap();
        assert_eq!(h.priority, Some(165));
        assert_eq!(h.time, at("2003-10-11T22:14:15.003Z"));
        assert_eq!(h.hostname, Some("mymachine.example.com"));
        assert_eq!(h.program, Some("evntslog"));
        assert_eq!(h.pid, None);
        assert_eq!(h.msgid, Some("ID47"));
        assert_eq!(
            h.structured_data,
            Some(r#"[exampleSDID@32473 iut="3" eventSource="App\]lication"]"#)
        );
        assert_eq!(h.message, "An application event");
        let h = parse(
            "<38>1 2024-05-01T10:00:00+02:00 host sshd 812 - - Accepted password for a",
            utc(),
            at("2030-01-01T00:00:00Z"),
        )
        .unwrap();
        assert_eq!(
            (h.program, h.pid, h.structured_data),
            (Some("sshd"), Some("812"), None)
        );
        assert_eq!(h.message, "Accepted password for a");
    }

    #[test]
    fn lines_without_a_header_are_left_alone() {
        let mut s = SyslogStage::new(&SyslogConfig::default()).unwrap();
        let mut e = entry("Strange line with : but not otherwise parseable", &[]);
        let before = e.timestamp;
        assert_eq!(s.process(&mut e), Verdict::Keep);
        assert_eq!(e.timestamp, before);
        assert!(!e.extracted.contains_key("message"));
        assert!(parse("Feb 30 10:00:00 h p: x", utc(), at("2024-03-01T00:00:00Z")).is_none());
        assert!(parse("<13>1 - h p - - - x", utc(), at("2024-03-01T00:00:00Z")).is_none());
    }

    #[test]
    fn stage_sets_timestamp_fields_and_priority_names() {
        let mut s = SyslogStage::new(&SyslogConfig {
            location: Some("UTC".into()),
            source: None,
        })
        .unwrap();
        let mut e = entry("<38>Jan  2 03:04:05 web sshd[9]: hello", &[]);
        s.process(&mut e);
        assert_eq!(e.timestamp, at("2024-01-02T03:04:05Z"));
        assert_eq!(e.extracted["hostname"], "web");
        assert_eq!(e.extracted["program"], "sshd");
        assert_eq!(e.extracted["pid"], "9");
        assert_eq!(e.extracted["message"], "hello");
        assert_eq!(e.extracted["facility"], "auth");
        assert_eq!(e.extracted["severity"], "info");
    }

    proptest::proptest! {
        /// Any text, and header-like pieces glued together: no panic.
        #[test]
        fn any_line_is_parsed_without_panicking(
            line in ".{0,80}",
            pieces in proptest::collection::vec(proptest::sample::select(&[
                "<38>", "<999>", "1 ", "Nov", " ", "  ", "2", "02", "15:40:14", ".", "123456",
                "2024-11-02T15:40:14", "+0100", "Z", "1730562014", "host", "sshd", "[7]",
                ":", " <Notice>:", "-", "[a=\"b\"]", "é",
            ][..]), 0..14),
        ) {
            let r = at("2024-06-01T00:00:00Z");
            let _ = parse(&line, utc(), r);
            let glued: String = pieces.concat();
            let _ = parse(&glued, utc(), r);
            let _ = parse(&format!("{glued}{line}"), Zone::Local, r);
        }
    }

    #[test]
    fn config_errors_name_the_key() {
        let err = SyslogStage::new(&SyslogConfig {
            location: Some("Mars/Olympus".into()),
            source: None,
        })
        .err()
        .unwrap();
        assert_eq!(err.key, "location");
        let err: Result<SyslogConfig, _> = crate::pipeline::go::yaml::from_str("{locaton: UTC}");
        assert!(err.is_err());
    }
}
