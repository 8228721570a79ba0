//! `logfmt`: parses `key=value` pairs from the line (or an extracted value) into the
//! extracted map, with go-logfmt's decoder rules.
//!
//! `mapping` maps an extracted name to the logfmt key to read (empty: the same name). The
//! decoder is go-logfmt's, byte for byte: records are lines (a trailing `\r` dropped);
//! garbage up to the first byte above space is skipped; a key runs to `=`, a space or the end
//! (a bare key has the value ""); a value is bare (ending at a space; `=` or `"` in it is an
//! error) or double-quoted (only when it contains a backslash is it unescaped, JSON-style,
//! where a control character or a bad escape is an error). A syntax error stops decoding:
//! values taken before it stay, as in Promtail. A line of 1 MiB or more is an error too
//! (go-logfmt's scanner limit).
//!
//! Deviation: when two extracted names map to the same logfmt key, both are set (Promtail
//! keeps one of them at random).

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::StageError;
use crate::pipeline::{PipelineEntry, Stage, Verdict, value_as_string};

#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LogfmtConfig {
    /// Extracted name → logfmt key (null or empty: the same name).
    #[serde(default)]
    pub mapping: BTreeMap<String, Option<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

pub struct LogfmtStage {
    /// logfmt key → extracted names to set from it.
    targets: HashMap<String, Vec<String>>,
    source: Option<String>,
}

impl LogfmtStage {
    pub fn new(cfg: &LogfmtConfig) -> Result<Self, StageError> {
        if cfg.mapping.is_empty() {
            return Err(StageError::new("mapping", "logfmt mapping is required"));
        }
        if matches!(cfg.source.as_deref(), Some("")) {
            return Err(StageError::new(
                "source",
                "expected a non-empty extracted key",
            ));
        }
        let mut targets: HashMap<String, Vec<String>> = HashMap::new();
        for (name, key) in &cfg.mapping {
            let key = match key.as_deref() {
                None | Some("") => name.clone(),
                Some(k) => k.to_string(),
            };
            targets.entry(key).or_default().push(name.clone());
        }
        Ok(Self {
            targets,
            source: cfg.source.clone(),
        })
    }
}

impl Stage for LogfmtStage {
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
        let targets = &self.targets;
        let extracted = &mut entry.extracted;
        // Promtail logs the syntax error and keeps what was decoded before it.
        let _ = decode(input, |key, value| {
            if let Some(names) = targets.get(key) {
                for name in names {
                    extracted.insert(name.clone(), Value::String(value.to_string()));
                }
            }
        });
        Verdict::Keep
    }
}

/// A logfmt syntax error (go-logfmt's `SyntaxError`).
#[derive(Debug, PartialEq, Eq)]
pub struct LogfmtError {
    pub line: usize,
    /// 1-based byte position in the line.
    pub pos: usize,
    pub msg: String,
}

/// go-logfmt's scanner refuses lines this long or longer.
const MAX_RECORD: usize = 1024 * 1024;

/// Calls `each(key, value)` for every pair, in order, until the end or the first error.
pub fn decode(input: &str, mut each: impl FnMut(&str, &str)) -> Result<(), LogfmtError> {
    let mut rest = input;
    let mut line_num = 0;
    while !rest.is_empty() {
        let (record, next) = match rest.find('\n') {
            Some(i) => (&rest[..i], &rest[i + 1..]),
            None => (rest, ""),
        };
        rest = next;
        line_num += 1;
        if record.len() >= MAX_RECORD {
            return Err(LogfmtError {
                line: line_num,
                pos: 0,
                msg: "token too long".into(),
            });
        }
        let record = record.strip_suffix('\r').unwrap_or(record);
        decode_record(record, line_num, &mut each)?;
    }
    Ok(())
}

fn decode_record(
    line: &str,
    line_num: usize,
    each: &mut impl FnMut(&str, &str),
) -> Result<(), LogfmtError> {
    let b = line.as_bytes();
    let err = |pos: usize, msg: String| LogfmtError {
        line: line_num,
        pos: pos + 1,
        msg,
    };
    let unexpected = |pos: usize| err(pos, format!("unexpected {:?}", b[pos] as char));
    let mut pos = 0;
    loop {
        // Garbage: everything up to the next byte above space.
        while pos < b.len() && b[pos] <= b' ' {
            pos += 1;
        }
        if pos >= b.len() {
            return Ok(());
        }
        let start = pos;
        while pos < b.len() && b[pos] > b' ' && b[pos] != b'=' && b[pos] != b'"' {
            pos += 1;
        }
        if pos < b.len() && b[pos] == b'"' {
            return Err(unexpected(pos));
        }
        let key = &line[start..pos];
        if key.is_empty() {
            // An '=' with no key before it.
            return Err(unexpected(pos));
        }
        if key.contains('\u{FFFD}') {
            return Err(err(pos, "invalid key".into()));
        }
        if pos >= b.len() || b[pos] != b'=' {
            each(key, "");
            continue;
        }
        pos += 1;
        if pos >= b.len() || b[pos] <= b' ' {
            each(key, "");
            continue;
        }
        if b[pos] == b'"' {
            let quote = pos;
            let mut escaped = false;
            let mut has_escape = false;
            let mut close = None;
            for (i, &c) in b.iter().enumerate().skip(quote + 1) {
                if escaped {
                    escaped = false;
                } else if c == b'\\' {
                    escaped = true;
                    has_escape = true;
                } else if c == b'"' {
                    close = Some(i);
                    break;
                }
            }
            let Some(close) = close else {
                return Err(err(b.len(), "unterminated quoted value".into()));
            };
            pos = close + 1;
            let raw = &line[quote + 1..close];
            let value = if has_escape {
                unquote(raw).ok_or_else(|| err(pos, "invalid quoted value".into()))?
            } else {
                Cow::Borrowed(raw)
            };
            each(key, &value);
            continue;
        }
        let start = pos;
        while pos < b.len() && b[pos] > b' ' {
            if b[pos] == b'=' || b[pos] == b'"' {
                return Err(unexpected(pos));
            }
            pos += 1;
        }
        each(key, &line[start..pos]);
    }
}

/// JSON-style unescaping of a quoted value's body (go-logfmt's `unquoteBytes`): `\" \\ \/
/// \' \b \f \n \r \t \uXXXX` (surrogate pairs joined, lone ones U+FFFD); any other escape or
/// a control character is invalid.
fn unquote(raw: &str) -> Option<Cow<'_, str>> {
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                let e = chars.next()?;
                match e {
                    '"' | '\\' | '/' | '\'' => out.push(e),
                    'b' => out.push('\u{8}'),
                    'f' => out.push('\u{c}'),
                    'n' => out.push('\n'),
                    'r' => out.push('\r'),
                    't' => out.push('\t'),
                    'u' => {
                        let first = hex4(&mut chars)?;
                        if (0xD800..0xE000).contains(&first) {
                            // A high surrogate may be followed by `\uDC00`-`\uDFFF`.
                            let mut ahead = chars.clone();
                            let pair = if ahead.next() == Some('\\') && ahead.next() == Some('u') {
                                hex4(&mut ahead).filter(|low| {
                                    (0xD800..0xDC00).contains(&first)
                                        && (0xDC00..0xE000).contains(low)
                                })
                            } else {
                                None
                            };
                            match pair {
                                Some(low) => {
                                    chars = ahead;
                                    let code = 0x10000 + ((first - 0xD800) << 10) + (low - 0xDC00);
                                    out.push(
                                        char::from_u32(code).unwrap_or(char::REPLACEMENT_CHARACTER),
                                    );
                                }
                                None => out.push(char::REPLACEMENT_CHARACTER),
                            }
                        } else {
                            out.push(char::from_u32(first).unwrap_or(char::REPLACEMENT_CHARACTER));
                        }
                    }
                    _ => return None,
                }
            }
            c if c < ' ' => return None,
            c => out.push(c),
        }
    }
    Some(Cow::Owned(out))
}

fn hex4(chars: &mut std::str::Chars<'_>) -> Option<u32> {
    let mut code = 0;
    for _ in 0..4 {
        code = code * 16 + chars.next()?.to_digit(16)?;
    }
    Some(code)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::stages::testing::entry;
    use serde_json::json;

    fn pairs(input: &str) -> (Vec<(String, String)>, Result<(), LogfmtError>) {
        let mut got = Vec::new();
        let r = decode(input, |k, v| got.push((k.to_string(), v.to_string())));
        (got, r)
    }

    fn kv(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn stage(mapping: &[(&str, Option<&str>)], source: Option<&str>) -> LogfmtStage {
        LogfmtStage::new(&LogfmtConfig {
            mapping: mapping
                .iter()
                .map(|(k, v)| (k.to_string(), v.map(str::to_string)))
                .collect(),
            source: source.map(str::to_string),
        })
        .unwrap()
    }

    #[test]
    fn decodes_bare_quoted_and_empty_values() {
        let (got, r) = pairs(r#"a=1 b="two words" c= d e="" f=x=y"#);
        assert_eq!(
            got,
            kv(&[
                ("a", "1"),
                ("b", "two words"),
                ("c", ""),
                ("d", ""),
                ("e", "")
            ])
        );
        let e = r.unwrap_err();
        assert_eq!((e.pos, e.msg.as_str()), (32, "unexpected '='"));
    }

    #[test]
    fn unescapes_only_values_with_backslashes() {
        let (got, r) = pairs("m=\"say \\\"hi\\\"\\n\\u00e9\\ud83d\\ude00\" raw=\"tab\tin\"");
        assert!(r.is_ok());
        assert_eq!(got, kv(&[("m", "say \"hi\"\né😀"), ("raw", "tab\tin")]));
        let (_, r) = pairs(r#"m="bad \q""#);
        assert_eq!(r.unwrap_err().msg, "invalid quoted value");
        let (_, r) = pairs("m=\"ctl\t\\n\"");
        assert_eq!(r.unwrap_err().msg, "invalid quoted value");
    }

    #[test]
    fn syntax_errors_stop_decoding() {
        assert_eq!(
            pairs(r#"a="open"#).1.unwrap_err().msg,
            "unterminated quoted value"
        );
        assert_eq!(pairs(r#"=x"#).1.unwrap_err().msg, "unexpected '='");
        assert_eq!(pairs(r#"k"ey=1"#).1.unwrap_err().msg, "unexpected '\"'");
        let (got, r) = pairs(r#"{"invalid":"logfmt"}"#);
        assert!(got.is_empty() && r.is_err());
    }

    #[test]
    fn records_are_lines_and_crlf_is_accepted() {
        let (got, r) = pairs("\n\ta=1\r\n  b=2\n");
        assert!(r.is_ok());
        assert_eq!(got, kv(&[("a", "1"), ("b", "2")]));
    }

    #[test]
    fn promtail_pipeline_example_keeps_values_before_the_error() {
        let line = "\n\t\ttime=2012-11-01T22:08:41+00:00 app=loki\tlevel=WARN duration=125 message=\"this is a log line\" extra=\"user=foo\"\"\n\t";
        let mut e = entry(line, &[]);
        stage(
            &[
                ("out", Some("message")),
                ("app", None),
                ("duration", None),
                ("unknown", None),
            ],
            None,
        )
        .process(&mut e);
        assert_eq!(e.extracted["out"], "this is a log line");
        assert_eq!(e.extracted["app"], "loki");
        assert_eq!(e.extracted["duration"], "125");
        assert!(!e.extracted.contains_key("unknown"));
        assert!(!e.extracted.contains_key("level"));

        let mut e = entry(line, &[]);
        stage(&[("extra", None)], None).process(&mut e);
        stage(&[("user", None)], Some("extra")).process(&mut e);
        assert_eq!(e.extracted["extra"], "user=foo");
        assert_eq!(e.extracted["user"], "foo");
    }

    #[test]
    fn missing_or_non_string_source_changes_nothing() {
        let mut e = entry("app=x", &[]);
        stage(&[("app", None)], Some("log")).process(&mut e);
        assert!(!e.extracted.contains_key("app"));
        e.extracted.insert("log".into(), json!(null));
        stage(&[("app", None)], Some("log")).process(&mut e);
        assert!(!e.extracted.contains_key("app"));
    }

    #[test]
    fn two_names_can_read_the_same_key() {
        let mut e = entry("level=info", &[]);
        stage(&[("a", Some("level")), ("b", Some("level"))], None).process(&mut e);
        assert_eq!(
            (&e.extracted["a"], &e.extracted["b"]),
            (&json!("info"), &json!("info"))
        );
    }

    #[test]
    fn config_errors_name_the_key() {
        let err = LogfmtStage::new(&LogfmtConfig::default()).err().unwrap();
        assert_eq!(err.key, "mapping");
        let err = LogfmtStage::new(&LogfmtConfig {
            mapping: [("a".to_string(), None)].into_iter().collect(),
            source: Some(String::new()),
        })
        .err()
        .unwrap();
        assert_eq!(err.key, "source");
    }
}
