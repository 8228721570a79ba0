//! Heroku's HTTPS drain body (`application/logplex-1`) read as Promtail reads it
//! (heroku/x `logplex/encoding`): octet-counted frames, `<length> <frame>`, each frame an
//! RFC 5424 header without structured data, `<PRI>VERSION TIMESTAMP HOSTNAME APP-NAME
//! PROCID MSGID MSG`, the message being the rest of the frame. Logplex ends every frame with
//! a newline inside its length; it is not part of the line.
//!
//! Owns that framing and header; it must not label or hand on messages ([`super`] does).

use chrono::{DateTime, FixedOffset};

/// heroku/x's longest frame.
pub const MAX_FRAME: usize = 10240;

/// One drained message.
#[derive(Debug, PartialEq)]
pub struct Message {
    pub timestamp: DateTime<FixedOffset>,
    pub hostname: String,
    pub app_name: String,
    pub proc_id: String,
    pub msg_id: String,
    pub message: String,
}

/// The messages of `body` up to the first frame that cannot be read, and that frame's
/// error: Promtail ships what came before a bad frame, then answers 400.
pub fn messages(body: &[u8]) -> (Vec<Message>, Option<String>) {
    let mut out = Vec::new();
    let mut rest = body;
    loop {
        // Whitespace between frames (a sender's trailing newline) carries nothing.
        while let [b' ' | b'\n' | b'\r' | b'\t', tail @ ..] = rest {
            rest = tail;
        }
        if rest.is_empty() {
            return (out, None);
        }
        let Some(space) = rest.iter().position(|&b| b == b' ') else {
            return (out, Some("bad frame: no length".into()));
        };
        let len = std::str::from_utf8(&rest[..space])
            .ok()
            .filter(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|d| d.parse::<usize>().ok());
        let Some(len) = len else {
            let shown = String::from_utf8_lossy(&rest[..space.min(20)]).into_owned();
            return (
                out,
                Some(format!("bad frame: length {shown:?} is not a number")),
            );
        };
        if len > MAX_FRAME {
            return (
                out,
                Some(format!(
                    "bad frame: length {len} over the limit of {MAX_FRAME}"
                )),
            );
        }
        let frame_start = space + 1;
        let Some(frame) = rest.get(frame_start..frame_start + len) else {
            return (
                out,
                Some(format!(
                    "bad frame: length {len} but only {} bytes follow",
                    rest.len() - frame_start
                )),
            );
        };
        rest = &rest[frame_start + len..];
        match decode(frame) {
            Ok(m) => out.push(m),
            Err(e) => return (out, Some(e)),
        }
    }
}

/// One frame's header and message.
fn decode(frame: &[u8]) -> Result<Message, String> {
    let text = String::from_utf8_lossy(frame);
    let text = text.trim_end_matches(['\n', '\r']);
    let rest = text
        .strip_prefix('<')
        .ok_or_else(|| format!("invalid frame {text:?}: expected <PRI>"))?;
    let close = rest
        .find('>')
        .filter(|&i| (1..=3).contains(&i) && rest[..i].bytes().all(|b| b.is_ascii_digit()))
        .ok_or_else(|| format!("invalid frame {text:?}: expected <PRI>"))?;
    let rest = &rest[close + 1..];
    let version_len = rest.bytes().take_while(u8::is_ascii_digit).count();
    if version_len == 0 {
        return Err(format!(
            "invalid frame {text:?}: expected a version after <PRI>"
        ));
    }
    let mut fields = rest[version_len..].trim_start_matches(' ').splitn(6, ' ');
    let mut next = |what: &str| {
        fields
            .next()
            .filter(|f| !f.is_empty())
            .ok_or_else(|| format!("invalid frame {text:?}: no {what}"))
    };
    let timestamp = next("timestamp")?;
    let timestamp = DateTime::parse_from_rfc3339(timestamp)
        .map_err(|e| format!("invalid frame {text:?}: timestamp {timestamp:?}: {e}"))?;
    let hostname = next("hostname")?.to_string();
    let app_name = next("app name")?.to_string();
    let proc_id = next("proc id")?.to_string();
    let msg_id = next("msg id")?.to_string();
    let message = fields.next().unwrap_or("").to_string();
    Ok(Message {
        timestamp,
        hostname,
        app_name,
        proc_id,
        msg_id,
        message,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The two frames of Heroku's HTTPS drain documentation ("Log Drains", HTTPS drains).
    const HEROKU_EXAMPLE: &str = "83 <40>1 2012-11-30T06:45:29+00:00 host app web.3 - State changed from starting to up\n119 <40>1 2012-11-30T06:45:26+00:00 host app web.3 - Starting process with command `bundle exec rackup config.ru -p 24405`\n";

    #[test]
    fn herokus_documented_drain_body_gives_two_messages() {
        let (m, err) = messages(HEROKU_EXAMPLE.as_bytes());
        assert_eq!(err, None);
        assert_eq!(m.len(), 2);
        assert_eq!(m[0].hostname, "host");
        assert_eq!(m[0].app_name, "app");
        assert_eq!(m[0].proc_id, "web.3");
        assert_eq!(m[0].msg_id, "-");
        assert_eq!(m[0].message, "State changed from starting to up");
        assert_eq!(m[0].timestamp.to_rfc3339(), "2012-11-30T06:45:29+00:00");
        assert_eq!(
            m[1].message,
            "Starting process with command `bundle exec rackup config.ru -p 24405`"
        );
    }

    #[test]
    fn router_frames_with_fractional_timestamps_keep_the_whole_message() {
        let frame = "<158>1 2024-05-01T10:20:30.123456+00:00 host heroku router - at=info method=GET path=\"/\" host=x.herokuapp.com status=200 bytes=123\n";
        let body = format!("{} {frame}", frame.len());
        let (m, err) = messages(body.as_bytes());
        assert_eq!(err, None);
        assert_eq!(m[0].app_name, "heroku");
        assert_eq!(m[0].proc_id, "router");
        assert!(m[0].message.starts_with("at=info method=GET path=\"/\""));
        assert_eq!(m[0].timestamp.timestamp_subsec_micros(), 123456);
    }

    #[test]
    fn a_bad_frame_stops_reading_but_keeps_what_came_before() {
        let good = "83 <40>1 2012-11-30T06:45:29+00:00 host app web.3 - State changed from starting to up\n";
        for (bad, says) in [
            ("x12 <40>1 ...", "not a number"),
            ("500 <40>1 short", "only"),
            ("99999 x", "over the limit"),
            ("10 nopriority", "expected <PRI>"),
            ("23 <40>1 yesterday h a p -", "timestamp"),
            ("nolength", "no length"),
        ] {
            let (m, err) = messages(format!("{good}{bad}").as_bytes());
            assert_eq!(m.len(), 1, "{bad}");
            let err = err.unwrap_or_default();
            assert!(err.contains(says), "{bad}: {err}");
        }
    }
}
