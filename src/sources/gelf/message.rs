//! One GELF payload: decompressed (gzip, zlib, or none, told apart by their first bytes as
//! go-gelf does), decoded from JSON, and written back out as the line Promtail ships: the
//! message re-serialised the way Go's `encoding/json` writes go-gelf's `Message` struct
//! (fixed fields in struct order, `_` extras sorted by key, HTML characters escaped).
//!
//! Owns the payload's format; it must not know sockets, chunks or labels.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::io::Read;

use serde_json::Value;

/// A decoded GELF message, with go-gelf's zero values for absent fields.
#[derive(Debug, Default, PartialEq)]
pub struct Message {
    pub version: String,
    pub host: String,
    pub short_message: String,
    pub full_message: String,
    /// Seconds since the epoch, with fractions; 0 when absent.
    pub timestamp: f64,
    /// Syslog severity; 0 when absent (so `emergency`, as in Promtail).
    pub level: i32,
    pub facility: String,
    /// The `_`-prefixed additional fields.
    pub extra: BTreeMap<String, Value>,
}

/// Why a payload was not a message.
#[derive(Debug, PartialEq, Eq)]
pub enum DecodeError {
    /// Decompressed, it is longer than the limit.
    TooLong,
    Malformed(String),
}

/// Decodes a whole (reassembled) payload; the decompressed form may be at most `limit` bytes.
pub fn decode(payload: &[u8], limit: usize) -> Result<Message, DecodeError> {
    let json = decompress(payload, limit)?;
    // Go's decoder reads the first JSON value and ignores what follows; invalid UTF-8
    // becomes U+FFFD there too.
    let text = String::from_utf8_lossy(&json);
    let value = serde_json::Deserializer::from_str(&text)
        .into_iter::<Value>()
        .next()
        .ok_or_else(|| DecodeError::Malformed("empty payload".into()))?
        .map_err(|e| DecodeError::Malformed(format!("invalid JSON: {e}")))?;
    let Value::Object(fields) = value else {
        return Err(DecodeError::Malformed(
            "payload is not a JSON object".into(),
        ));
    };
    let mut m = Message::default();
    for (key, value) in fields {
        if key.starts_with('_') {
            m.extra.insert(key, value);
            continue;
        }
        let ok = match key.as_str() {
            "version" => take_string(value, &mut m.version),
            "host" => take_string(value, &mut m.host),
            "short_message" => take_string(value, &mut m.short_message),
            "full_message" => take_string(value, &mut m.full_message),
            "facility" => take_string(value, &mut m.facility),
            "timestamp" => value.as_f64().map(|t| m.timestamp = t).is_some(),
            // Go converts the float to int32, dropping the fraction.
            "level" => value.as_f64().map(|l| m.level = l as i32).is_some(),
            // Other fields are not GELF's; go-gelf drops them.
            _ => true,
        };
        if !ok {
            return Err(DecodeError::Malformed(format!(
                "invalid type for field {key}"
            )));
        }
    }
    Ok(m)
}

fn take_string(value: Value, into: &mut String) -> bool {
    match value {
        Value::String(s) => {
            *into = s;
            true
        }
        _ => false,
    }
}

fn decompress(payload: &[u8], limit: usize) -> Result<Cow<'_, [u8]>, DecodeError> {
    let bounded = |reader: &mut dyn Read, what: &str| -> Result<Cow<'_, [u8]>, DecodeError> {
        let mut out = Vec::new();
        reader
            .take(limit as u64 + 1)
            .read_to_end(&mut out)
            .map_err(|e| DecodeError::Malformed(format!("{what}: {e}")))?;
        if out.len() > limit {
            return Err(DecodeError::TooLong);
        }
        Ok(Cow::Owned(out))
    };
    match payload {
        [0x1f, 0x8b, ..] => bounded(&mut flate2::read::MultiGzDecoder::new(payload), "gzip"),
        [0x78, b1, ..] if (0x78 * 256 + *b1 as u32).is_multiple_of(31) => {
            bounded(&mut flate2::read::ZlibDecoder::new(payload), "zlib")
        }
        _ if payload.len() > limit => Err(DecodeError::TooLong),
        _ => Ok(Cow::Borrowed(payload)),
    }
}

impl Message {
    /// The line Promtail ships: go-gelf's `MarshalJSONBuf` (struct fields in order, empty
    /// `full_message`, zero `level` and empty `facility` left out, then the extras sorted).
    pub fn write_line(&self, out: &mut String) {
        out.push_str("{\"version\":");
        go_string(&self.version, out);
        out.push_str(",\"host\":");
        go_string(&self.host, out);
        out.push_str(",\"short_message\":");
        go_string(&self.short_message, out);
        if !self.full_message.is_empty() {
            out.push_str(",\"full_message\":");
            go_string(&self.full_message, out);
        }
        out.push_str(",\"timestamp\":");
        go_float(self.timestamp, out);
        if self.level != 0 {
            out.push_str(",\"level\":");
            out.push_str(&self.level.to_string());
        }
        if !self.facility.is_empty() {
            out.push_str(",\"facility\":");
            go_string(&self.facility, out);
        }
        for (k, v) in &self.extra {
            out.push(',');
            go_string(k, out);
            out.push(':');
            go_value(v, out);
        }
        out.push('}');
    }
}

/// A JSON value as Go writes the `interface{}` it decoded into: numbers are float64, map
/// keys sorted.
fn go_value(v: &Value, out: &mut String) {
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => go_float(n.as_f64().unwrap_or(0.0), out),
        Value::String(s) => go_string(s, out),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                go_value(item, out);
            }
            out.push(']');
        }
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                go_string(k, out);
                out.push(':');
                go_value(&map[k], out);
            }
            out.push('}');
        }
    }
}

/// Go's float64 encoding: shortest digits, plain between 1e-6 and 1e21, else exponent
/// form with a sign and at least two digits for a positive exponent (`1e+21`, `1e-7`).
fn go_float(f: f64, out: &mut String) {
    let abs = f.abs();
    if abs == 0.0 || (1e-6..1e21).contains(&abs) {
        out.push_str(&format!("{f}"));
        return;
    }
    let e = format!("{f:e}");
    match e.split_once('e') {
        Some((mantissa, exp)) => {
            out.push_str(mantissa);
            out.push('e');
            match exp.strip_prefix('-') {
                Some(digits) => {
                    out.push('-');
                    out.push_str(digits);
                }
                None => {
                    out.push('+');
                    if exp.len() < 2 {
                        out.push('0');
                    }
                    out.push_str(exp);
                }
            }
        }
        None => out.push_str(&e),
    }
}

/// Go's JSON string encoding with HTML escaping on, as `json.Marshal` does.
fn go_string(s: &str, out: &mut String) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '<' | '>' | '&' | '\u{0}'..='\u{1f}' => {
                let b = c as u32;
                out.push_str("\\u00");
                out.push(HEX[(b >> 4) as usize] as char);
                out.push(HEX[(b & 0xf) as usize] as char);
            }
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            _ => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn line(payload: &[u8]) -> String {
        let mut out = String::new();
        decode(payload, 1 << 20).unwrap().write_line(&mut out);
        out
    }

    const DOCKER: &str = r#"{"version":"1.1","host":"web-1","short_message":"GET / <200>","timestamp":1700000000.123,"level":6,"_container_name":"app","_command":"nginx -g","_created":"2024","_tag":"abc","_image_id":"sha256:1"}"#;

    #[test]
    fn line_is_gos_reserialisation_with_sorted_extras_and_html_escapes() {
        assert_eq!(
            line(DOCKER.as_bytes()),
            r#"{"version":"1.1","host":"web-1","short_message":"GET / \u003c200\u003e","timestamp":1700000000.123,"level":6,"_command":"nginx -g","_container_name":"app","_created":"2024","_image_id":"sha256:1","_tag":"abc"}"#
        );
    }

    #[test]
    fn absent_fields_take_go_zero_values_and_omitempty() {
        assert_eq!(
            line(br#"{"short_message":"hi","facility":"","full_message":"","x":1}"#),
            r#"{"version":"","host":"","short_message":"hi","timestamp":0}"#
        );
        let m = decode(br#"{"short_message":"hi","level":3.9}"#, 1024).unwrap();
        assert_eq!(m.level, 3);
    }

    #[test]
    fn numbers_and_nested_extras_are_written_as_go_writes_float64_and_maps() {
        assert_eq!(
            line(br#"{"short_message":"m","_n":42,"_big":1e21,"_small":0.0000001,"_f":1.5,"_o":{"z":1,"a":[true,null,"\u2028"]}}"#),
            r#"{"version":"","host":"","short_message":"m","timestamp":0,"_big":1e+21,"_f":1.5,"_n":42,"_o":{"a":[true,null,"\u2028"],"z":1},"_small":1e-7}"#
        );
        let mut s = String::new();
        go_float(1.5e300, &mut s);
        assert_eq!(s, "1.5e+300");
    }

    #[test]
    fn gzip_and_zlib_payloads_decode_like_plain_ones() {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(DOCKER.as_bytes()).unwrap();
        let mut zl = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        zl.write_all(DOCKER.as_bytes()).unwrap();
        let plain = line(DOCKER.as_bytes());
        assert_eq!(line(&gz.finish().unwrap()), plain);
        assert_eq!(line(&zl.finish().unwrap()), plain);
    }

    #[test]
    fn wrong_types_garbage_and_bombs_are_refused() {
        for bad in [
            &br#"{"short_message":1}"#[..],
            br#"{"level":"high"}"#,
            br#"{"host":null}"#,
            br#"[1,2]"#,
            b"\x1f\x8bnot gzip at all",
            b"\x78\x9cnot zlib",
            b"garbage",
            b"",
        ] {
            assert!(
                matches!(decode(bad, 1024), Err(DecodeError::Malformed(_))),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(format!(r#"{{"short_message":"{}"}}"#, "a".repeat(5000)).as_bytes())
            .unwrap();
        assert_eq!(
            decode(&gz.finish().unwrap(), 4096),
            Err(DecodeError::TooLong)
        );
    }

    #[test]
    fn trailing_bytes_after_the_object_are_ignored_as_go_does() {
        let m = decode(b"{\"short_message\":\"a\"}\n\0\0", 1024).unwrap();
        assert_eq!(m.short_message, "a");
    }
}
