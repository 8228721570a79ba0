//! Syslog message parsing: RFC 5424 and RFC 3164 (BSD), best effort, as Promtail's go-syslog
//! parsers run.
//!
//! Owns turning one framed message (no framing bytes, no trailing newline) into its fields.
//! It never fails outright: a message whose header breaks off keeps what was read and
//! carries the reason, so the caller can count it and still ship a line. It must not know
//! connections, labels or metrics.

use chrono::{DateTime, Datelike, FixedOffset, NaiveDate, TimeZone, Utc};

/// Which header grammar the job's senders use (`syslog_format`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Rfc5424,
    Rfc3164,
}

/// A parsed message. Fields that were absent (or `-`, RFC 5424's nil value) are `None`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Message {
    pub facility: u8,
    pub severity: u8,
    pub timestamp: Option<DateTime<FixedOffset>>,
    pub hostname: Option<String>,
    pub app_name: Option<String>,
    pub proc_id: Option<String>,
    pub msg_id: Option<String>,
    /// SD-ID with its parameters, in the order sent.
    pub structured_data: Vec<(String, Vec<(String, String)>)>,
    /// MSG; `None` when the message has none.
    pub message: Option<String>,
}

/// What parsing one frame gave.
#[derive(Debug, PartialEq)]
pub enum Parsed {
    Ok(Message),
    /// The header broke off after a valid PRI: the fields read so far, and as `message`
    /// the whole frame, so what the sender wrote still reaches Loki.
    Partial(Message, &'static str),
    /// Not even a PRI: nothing to label the frame with.
    Invalid(&'static str),
}

/// Parses `frame` as `format`; an RFC 3164 stamp, which has no year, is taken as the latest
/// such time not more than a month after `now`.
pub fn parse(frame: &[u8], format: Format, now: DateTime<Utc>) -> Parsed {
    let mut c = Cursor { s: frame, i: 0 };
    let Some(pri) = c.pri() else {
        return Parsed::Invalid("expecting a priority value within angle brackets");
    };
    let mut m = Message {
        facility: pri / 8,
        severity: pri % 8,
        ..Message::default()
    };
    let result = match format {
        Format::Rfc5424 => rfc5424(&mut c, &mut m),
        Format::Rfc3164 => rfc3164(&mut c, &mut m, now),
    };
    match result {
        Ok(()) => Parsed::Ok(m),
        Err(why) => {
            m.message = Some(String::from_utf8_lossy(frame).into_owned());
            Parsed::Partial(m, why)
        }
    }
}

struct Cursor<'a> {
    s: &'a [u8],
    i: usize,
}

impl<'a> Cursor<'a> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn eat(&mut self, b: u8) -> bool {
        if self.peek() == Some(b) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    fn rest(&self) -> &'a [u8] {
        &self.s[self.i.min(self.s.len())..]
    }

    /// `<` 1-3 digits `>`, at most 191 (facility 23, severity 7).
    fn pri(&mut self) -> Option<u8> {
        if !self.eat(b'<') {
            return None;
        }
        let start = self.i;
        while self.peek().is_some_and(|b| b.is_ascii_digit()) && self.i - start < 3 {
            self.i += 1;
        }
        let digits = &self.s[start..self.i];
        // RFC 5424: no leading zeros, except the value 0 itself.
        if digits.is_empty() || (digits.len() > 1 && digits[0] == b'0') || !self.eat(b'>') {
            return None;
        }
        let v: u16 = std::str::from_utf8(digits).ok()?.parse().ok()?;
        (v <= 191).then_some(v as u8)
    }

    /// Up to the next space (or the end), at most `max` printable ASCII characters.
    fn token(&mut self, max: usize) -> Result<&'a [u8], &'static str> {
        let start = self.i;
        while let Some(b) = self.peek() {
            if b == b' ' {
                break;
            }
            if !(33..=126).contains(&b) {
                return Err("expecting printable ASCII in a header field");
            }
            self.i += 1;
        }
        let t = &self.s[start..self.i];
        if t.is_empty() {
            return Err("expecting a header field, found nothing");
        }
        if t.len() > max {
            return Err("a header field is longer than RFC 5424 allows");
        }
        Ok(t)
    }

    fn space(&mut self) -> Result<(), &'static str> {
        if self.eat(b' ') {
            Ok(())
        } else {
            Err("expecting a space between header fields")
        }
    }
}

/// `-` is RFC 5424's nil value.
fn field(t: &[u8]) -> Option<String> {
    (t != b"-").then(|| String::from_utf8_lossy(t).into_owned())
}

/// MSG: the rest, without RFC 5424's optional byte order mark; `None` when empty.
fn msg(rest: &[u8]) -> Option<String> {
    let rest = rest.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(rest);
    (!rest.is_empty()).then(|| String::from_utf8_lossy(rest).into_owned())
}

fn rfc5424(c: &mut Cursor<'_>, m: &mut Message) -> Result<(), &'static str> {
    let version = c.token(3)?;
    if version[0] == b'0' || !version.iter().all(u8::is_ascii_digit) {
        return Err("expecting a version value in the range 1-999");
    }
    c.space()?;
    let ts = c.token(64)?;
    if ts != b"-" {
        m.timestamp = Some(
            std::str::from_utf8(ts)
                .ok()
                .and_then(rfc3339)
                .ok_or("expecting a RFC 3339 timestamp or the nil value")?,
        );
    }
    c.space()?;
    m.hostname = field(c.token(255)?);
    c.space()?;
    m.app_name = field(c.token(48)?);
    c.space()?;
    m.proc_id = field(c.token(128)?);
    c.space()?;
    m.msg_id = field(c.token(32)?);
    c.space()?;
    structured_data(c, m)?;
    if c.peek().is_none() {
        return Ok(());
    }
    c.space()?;
    m.message = msg(c.rest());
    Ok(())
}

/// STRUCTURED-DATA: `-`, or one or more `[SD-ID *(SP PARAM-NAME="value")]`.
fn structured_data(c: &mut Cursor<'_>, m: &mut Message) -> Result<(), &'static str> {
    if c.eat(b'-') {
        return Ok(());
    }
    if c.peek() != Some(b'[') {
        return Err("expecting a structured data section or the nil value");
    }
    while c.eat(b'[') {
        let id = sd_name(c)?;
        let mut params = Vec::new();
        loop {
            if c.eat(b']') {
                break;
            }
            c.space()?;
            let name = sd_name(c)?;
            if !c.eat(b'=') || !c.eat(b'"') {
                return Err("expecting =\" after a structured data parameter name");
            }
            let mut value = Vec::new();
            loop {
                match c.peek() {
                    None => return Err("unterminated structured data parameter value"),
                    Some(b'"') => {
                        c.i += 1;
                        break;
                    }
                    Some(b'\\') => {
                        c.i += 1;
                        match c.peek() {
                            // RFC 5424 6.3.3: only these three are escapes; any other
                            // backslash is kept as it is.
                            Some(e @ (b'"' | b'\\' | b']')) => {
                                value.push(e);
                                c.i += 1;
                            }
                            _ => value.push(b'\\'),
                        }
                    }
                    Some(b) => {
                        value.push(b);
                        c.i += 1;
                    }
                }
            }
            params.push((name, String::from_utf8_lossy(&value).into_owned()));
        }
        m.structured_data.push((id, params));
    }
    Ok(())
}

/// SD-NAME: 1-32 printable ASCII characters except `=`, space, `]` and `"`.
fn sd_name(c: &mut Cursor<'_>) -> Result<String, &'static str> {
    let start = c.i;
    while let Some(b) = c.peek() {
        if !(33..=126).contains(&b) || matches!(b, b'=' | b']' | b'"') {
            break;
        }
        c.i += 1;
    }
    let n = &c.s[start..c.i];
    if n.is_empty() || n.len() > 32 {
        return Err("expecting a structured data name of 1 to 32 characters");
    }
    Ok(String::from_utf8_lossy(n).into_owned())
}

/// RFC 3339 with up to nanoseconds; chrono's parser takes what RFC 5424 allows (and a
/// little more, such as a lower-case `t`), which best effort does not mind.
fn rfc3339(s: &str) -> Option<DateTime<FixedOffset>> {
    DateTime::parse_from_rfc3339(s).ok()
}

const MONTHS: [&[u8; 3]; 12] = [
    b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov", b"Dec",
];

/// `Mmm dd hh:mm:ss HOSTNAME TAG[PID]: MSG`, as go-syslog's rfc3164 machine reads it. An RFC
/// 3339 stamp in place of `Mmm dd hh:mm:ss` is also read (rsyslog's and syslog-ng's
/// high-precision format), where Promtail refuses the message.
fn rfc3164(c: &mut Cursor<'_>, m: &mut Message, now: DateTime<Utc>) -> Result<(), &'static str> {
    m.timestamp =
        Some(bsd_timestamp(c, now).ok_or("expecting a Stamp timestamp (Mmm dd hh:mm:ss)")?);
    c.space()?;
    m.hostname = Some(String::from_utf8_lossy(c.token(255)?).into_owned());
    if c.peek().is_none() {
        return Ok(());
    }
    c.space()?;
    let rest = c.rest();
    // TAG: up to 32 alphanumeric characters (in practice anything up to `[`, `:` or a space).
    let tag_len = rest
        .iter()
        .position(|&b| matches!(b, b'[' | b':' | b' '))
        .unwrap_or(rest.len());
    let mut after = tag_len;
    let mut proc_id = None;
    if rest.get(tag_len) == Some(&b'[')
        && let Some(close) = rest[tag_len..].iter().position(|&b| b == b']')
    {
        proc_id = Some(&rest[tag_len + 1..tag_len + close]);
        after = tag_len + close + 1;
    }
    if tag_len > 0 && rest.get(after) == Some(&b':') {
        m.app_name = Some(String::from_utf8_lossy(&rest[..tag_len]).into_owned());
        m.proc_id = proc_id
            .filter(|p| !p.is_empty())
            .map(|p| String::from_utf8_lossy(p).into_owned());
        after += 1;
        if rest.get(after) == Some(&b' ') {
            after += 1;
        }
        m.message = msg(&rest[after..]);
    } else {
        // No `TAG:`: everything after the hostname is the content.
        m.message = msg(rest);
    }
    Ok(())
}

fn bsd_timestamp(c: &mut Cursor<'_>, now: DateTime<Utc>) -> Option<DateTime<FixedOffset>> {
    let rest = c.rest();
    if rest.first().is_some_and(u8::is_ascii_digit) {
        let end = rest.iter().position(|&b| b == b' ').unwrap_or(rest.len());
        let t = rfc3339(std::str::from_utf8(&rest[..end]).ok()?)?;
        c.i += end;
        return Some(t);
    }
    // "Mmm dd hh:mm:ss": 15 bytes, the day space-padded.
    let s = rest.get(..15)?;
    let month = MONTHS.iter().position(|m| &s[..3] == *m)? as u32 + 1;
    if s[3] != b' ' || s[6] != b' ' || s[9] != b':' || s[12] != b':' {
        return None;
    }
    let num = |b: &[u8]| -> Option<u32> { std::str::from_utf8(b).ok()?.trim_start().parse().ok() };
    let day = num(&s[4..6])?;
    let (h, mi, sec) = (num(&s[7..9])?, num(&s[10..12])?, num(&s[13..15])?);
    let at = |year: i32| {
        NaiveDate::from_ymd_opt(year, month, day)
            .and_then(|d| d.and_hms_opt(h, mi, sec))
            .map(|n| Utc.from_utc_datetime(&n))
    };
    // A December message read in January is last year's (Promtail gives every one year 0).
    let year = now.year();
    let t = match at(year) {
        Some(t) if t > now + chrono::Duration::days(31) => at(year - 1)?,
        Some(t) => t,
        // 29 February of a year that has none: the last year that had one.
        None => at(year - 1)
            .or_else(|| at(year - 2))
            .or_else(|| at(year - 3))
            .or_else(|| at(year - 4))?,
    };
    c.i += 15;
    Some(t.fixed_offset())
}

/// go-syslog's severity names, as Promtail's `__syslog_message_severity`.
pub fn severity_name(severity: u8) -> &'static str {
    match severity {
        0 => "emergency",
        1 => "alert",
        2 => "critical",
        3 => "error",
        4 => "warning",
        5 => "notice",
        6 => "informational",
        _ => "debug",
    }
}

/// go-syslog's facility names, as Promtail's `__syslog_message_facility`.
pub fn facility_name(facility: u8) -> &'static str {
    const NAMES: [&str; 24] = [
        "kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news", "uucp", "cron",
        "authpriv", "ftp", "ntp", "security", "console", "cron2", "local0", "local1", "local2",
        "local3", "local4", "local5", "local6", "local7",
    ];
    NAMES.get(facility as usize).copied().unwrap_or("local7")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fixed "now" for the year of RFC 3164 stamps.
    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-12-07T16:00:00Z")
            .unwrap()
            .to_utc()
    }

    fn ok(frame: &str) -> Message {
        match parse(frame.as_bytes(), Format::Rfc5424, now()) {
            Parsed::Ok(m) => m,
            other => panic!("{frame}: {other:?}"),
        }
    }

    fn sd(pairs: &[(&str, &[(&str, &str)])]) -> Vec<(String, Vec<(String, String)>)> {
        pairs
            .iter()
            .map(|(id, ps)| {
                (
                    id.to_string(),
                    ps.iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect(),
                )
            })
            .collect()
    }

    /// RFC 5424 section 6.5's examples, field by field.
    #[test]
    fn rfc5424_examples() {
        let t = |s: &str| Some(DateTime::parse_from_rfc3339(s).unwrap());
        let cases: Vec<(&str, Message)> = vec![
            (
                "<34>1 2003-10-11T22:14:15.003Z mymachine.example.com su - ID47 - \u{feff}'su root' failed for lonvick on /dev/pts/8",
                Message {
                    facility: 4,
                    severity: 2,
                    timestamp: t("2003-10-11T22:14:15.003Z"),
                    hostname: Some("mymachine.example.com".into()),
                    app_name: Some("su".into()),
                    proc_id: None,
                    msg_id: Some("ID47".into()),
                    structured_data: vec![],
                    message: Some("'su root' failed for lonvick on /dev/pts/8".into()),
                },
            ),
            (
                "<165>1 2003-08-24T05:14:15.000003-07:00 192.0.2.1 myproc 8710 - - %% It's time to make the do-nuts.",
                Message {
                    facility: 20,
                    severity: 5,
                    timestamp: t("2003-08-24T05:14:15.000003-07:00"),
                    hostname: Some("192.0.2.1".into()),
                    app_name: Some("myproc".into()),
                    proc_id: Some("8710".into()),
                    msg_id: None,
                    structured_data: vec![],
                    message: Some("%% It's time to make the do-nuts.".into()),
                },
            ),
            (
                "<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 [exampleSDID@32473 iut=\"3\" eventSource=\"Application\" eventID=\"1011\"] \u{feff}An application event log entry...",
                Message {
                    facility: 20,
                    severity: 5,
                    timestamp: t("2003-10-11T22:14:15.003Z"),
                    hostname: Some("mymachine.example.com".into()),
                    app_name: Some("evntslog".into()),
                    proc_id: None,
                    msg_id: Some("ID47".into()),
                    structured_data: sd(&[(
                        "exampleSDID@32473",
                        &[
                            ("iut", "3"),
                            ("eventSource", "Application"),
                            ("eventID", "1011"),
                        ],
                    )]),
                    message: Some("An application event log entry...".into()),
                },
            ),
            (
                "<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 [exampleSDID@32473 iut=\"3\" eventSource=\"Application\" eventID=\"1011\"][examplePriority@32473 class=\"high\"]",
                Message {
                    facility: 20,
                    severity: 5,
                    timestamp: t("2003-10-11T22:14:15.003Z"),
                    hostname: Some("mymachine.example.com".into()),
                    app_name: Some("evntslog".into()),
                    proc_id: None,
                    msg_id: Some("ID47".into()),
                    structured_data: sd(&[
                        (
                            "exampleSDID@32473",
                            &[
                                ("iut", "3"),
                                ("eventSource", "Application"),
                                ("eventID", "1011"),
                            ],
                        ),
                        ("examplePriority@32473", &[("class", "high")]),
                    ]),
                    message: None,
                },
            ),
            (
                r#"<0>1 - - - - - [a x="q\"u\]o\\te\n"]"#,
                Message {
                    structured_data: sd(&[("a", &[("x", r#"q"u]o\te\n"#)])]),
                    ..Message::default()
                },
            ),
        ];
        for (frame, want) in cases {
            assert_eq!(ok(frame), want, "{frame}");
        }
        assert_eq!(severity_name(5), "notice");
        assert_eq!(facility_name(20), "local4");
    }

    #[test]
    fn a_broken_header_keeps_its_priority_and_the_whole_frame() {
        let frame = "<13>1 yesterday host app - - - hello";
        match parse(frame.as_bytes(), Format::Rfc5424, now()) {
            Parsed::Partial(m, _) => {
                assert_eq!((m.facility, m.severity), (1, 5));
                assert_eq!(m.message.as_deref(), Some(frame));
            }
            other => panic!("{other:?}"),
        }
        for bad in ["", "hello", "<>1 -", "<192>1 -", "<013>1 -", "<1"] {
            assert!(
                matches!(
                    parse(bad.as_bytes(), Format::Rfc5424, now()),
                    Parsed::Invalid(_)
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn rfc3164_tag_pid_and_stamp_in_the_given_year() {
        let m = match parse(
            b"<13>Dec  7 15:34:22 myhost sshd[42]: Accepted key",
            Format::Rfc3164,
            now(),
        ) {
            Parsed::Ok(m) => m,
            other => panic!("{other:?}"),
        };
        assert_eq!(m.hostname.as_deref(), Some("myhost"));
        assert_eq!(m.app_name.as_deref(), Some("sshd"));
        assert_eq!(m.proc_id.as_deref(), Some("42"));
        assert_eq!(m.message.as_deref(), Some("Accepted key"));
        assert_eq!(
            m.timestamp.unwrap().to_rfc3339(),
            "2026-12-07T15:34:22+00:00"
        );
        let m = match parse(
            b"<13>2026-12-07T15:34:22.5+01:00 h app: x",
            Format::Rfc3164,
            now(),
        ) {
            Parsed::Ok(m) => m,
            other => panic!("{other:?}"),
        };
        assert_eq!(m.app_name.as_deref(), Some("app"));
        assert_eq!(m.proc_id, None);
        assert_eq!(m.message.as_deref(), Some("x"));
        assert!(matches!(
            parse(b"<13>Foo  7 15:34:22 h a: x", Format::Rfc3164, now()),
            Parsed::Partial(..)
        ));
        let stamp = |frame: &[u8], now: DateTime<Utc>| match parse(frame, Format::Rfc3164, now) {
            Parsed::Ok(m) => m.timestamp.unwrap().to_rfc3339(),
            other => panic!("{other:?}"),
        };
        let january = DateTime::parse_from_rfc3339("2027-01-01T00:00:05Z")
            .unwrap()
            .to_utc();
        assert_eq!(
            stamp(b"<13>Dec 31 23:59:58 h a: x", january),
            "2026-12-31T23:59:58+00:00",
            "last year's"
        );
        assert_eq!(
            stamp(b"<13>Jan  1 00:00:09 h a: x", january),
            "2027-01-01T00:00:09+00:00",
            "a sender's clock a little ahead"
        );
        assert_eq!(
            stamp(b"<13>Feb 29 12:00:00 h a: x", now()),
            "2024-02-29T12:00:00+00:00"
        );
    }

    proptest::proptest! {
        #[test]
        fn no_input_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..300), prefix in 0usize..4) {
            // Prefixes that get past the PRI, so the header grammars are exercised too.
            let mut frame = [&b""[..], b"<13>", b"<165>1 ", b"<13>Dec  7 15:34:22 "][prefix].to_vec();
            frame.extend(bytes);
            let _ = parse(&frame, Format::Rfc5424, now());
            let _ = parse(&frame, Format::Rfc3164, now());
        }
    }
}
