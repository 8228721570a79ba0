//! `drop`: drops entries that meet every configured condition, counted in
//! `logentry_dropped_lines_total{reason}` under `drop_counter_reason` (default `drop_stage`).
//!
//! Conditions, all ANDed, checked cheapest first as Promtail's `drop.go` does:
//! - `longer_than`: the line is longer than this many bytes;
//! - `older_than`: the timestamp is before now minus this duration;
//! - `source` alone: every listed extracted key exists (whatever its value);
//! - `expression` alone: the regex matches somewhere in the line;
//! - `source` with `expression` or `value`: the string values of the listed keys that exist,
//!   joined with `separator` (default `;`), match the regex, or equal `value` exactly.
//!   A value without a string form (object, array, null) means no drop.
//!
//! As in Promtail, missing keys are left out of the join rather than preventing the drop, so
//! `source: [a, b]` with `value: x` drops an entry whose `a` is missing and `b` is `x`; and
//! `value` accepts a YAML number or boolean as its text (Promtail decodes this stage weakly).

use std::borrow::Cow;

use regex::Regex;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

use super::StageError;
use crate::model::units::{ByteSize, GoDuration};
use crate::pipeline::{PipelineEntry, Stage, Verdict, value_as_string};

const DEFAULT_DROP_REASON: &str = "drop_stage";

#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DropConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<DropSource>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub separator: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expression: Option<String>,
    #[serde(
        default,
        deserialize_with = "scalar_as_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub value: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub older_than: Option<GoDuration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub longer_than: Option<ByteSize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drop_counter_reason: Option<String>,
}

/// `source: key` or `source: [key, ...]`.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(untagged)]
pub enum DropSource {
    One(String),
    Many(Vec<String>),
}

/// Reads a string, number or boolean as text, as Go's weak decoding does.
fn scalar_as_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    match Option::<Value>::deserialize(d)? {
        None => Ok(None),
        Some(v @ (Value::String(_) | Value::Number(_) | Value::Bool(_))) => {
            Ok(value_as_string(&v).map(Cow::into_owned))
        }
        Some(other) => Err(serde::de::Error::custom(format!(
            "expected a string, number or boolean, got {other}"
        ))),
    }
}

/// What the line, or the joined source values, must satisfy.
enum ValueTest {
    /// `expression`: matches somewhere.
    Regex(Regex),
    /// `value`: equal as a whole (Promtail compiles it to `^QuoteMeta(value)$`).
    Equals(String),
}

impl ValueTest {
    fn accepts(&self, text: &str) -> bool {
        match self {
            ValueTest::Regex(re) => re.is_match(text),
            ValueTest::Equals(v) => text == v,
        }
    }
}

pub struct DropStage {
    longer_than: Option<usize>,
    older_than: Option<chrono::Duration>,
    sources: Vec<String>,
    separator: String,
    test: Option<ValueTest>,
    reason: Cow<'static, str>,
    /// Reused for joining source values.
    joined: String,
}

impl DropStage {
    pub fn new(cfg: &DropConfig) -> Result<Self, StageError> {
        if cfg.source.is_none()
            && cfg.expression.is_none()
            && cfg.older_than.is_none()
            && cfg.longer_than.is_none()
        {
            return Err(StageError::new(
                "",
                "expected at least one of source, expression, older_than or longer_than",
            ));
        }
        let sources = match &cfg.source {
            None => Vec::new(),
            Some(DropSource::One(s)) => vec![s.clone()],
            Some(DropSource::Many(list)) => list.clone(),
        };
        if cfg.source.is_some() && (sources.is_empty() || sources.iter().any(String::is_empty)) {
            return Err(StageError::new(
                "source",
                "expected an extracted key or a list of non-empty keys",
            ));
        }
        if cfg.value.is_some() && cfg.source.is_none() {
            return Err(StageError::new(
                "value",
                "value needs source: the extracted key(s) to compare",
            ));
        }
        if cfg.value.is_some() && cfg.expression.is_some() {
            return Err(StageError::new(
                "value",
                "value and expression cannot both be set",
            ));
        }
        let test = match (&cfg.expression, &cfg.value) {
            (Some(expr), _) => Some(ValueTest::Regex(
                crate::pipeline::go::regex::compile(expr).map_err(|e| {
                    StageError::new("expression", format!("invalid regular expression: {e}"))
                })?,
            )),
            (None, Some(value)) => Some(ValueTest::Equals(value.clone())),
            (None, None) => None,
        };
        let older_than = match cfg.older_than {
            None => None,
            Some(d) => Some(
                chrono::Duration::from_std(d.0)
                    .map_err(|_| StageError::new("older_than", "duration too large"))?,
            ),
        };
        let longer_than =
            match cfg.longer_than {
                None => None,
                Some(ByteSize(n)) => Some(usize::try_from(n).map_err(|_| {
                    StageError::new("longer_than", "size too large for this platform")
                })?),
            };
        let reason = match cfg.drop_counter_reason.as_deref() {
            None | Some("") | Some(DEFAULT_DROP_REASON) => Cow::Borrowed(DEFAULT_DROP_REASON),
            Some(r) => Cow::Owned(r.to_string()),
        };
        Ok(Self {
            longer_than,
            older_than,
            sources,
            separator: cfg.separator.clone().unwrap_or_else(|| ";".to_string()),
            test,
            reason,
            joined: String::new(),
        })
    }

    fn should_drop(&mut self, entry: &PipelineEntry) -> bool {
        if let Some(max) = self.longer_than
            && entry.line.len() <= max
        {
            return false;
        }
        if let Some(age) = self.older_than
            && entry.timestamp >= chrono::Utc::now() - age
        {
            return false;
        }
        match (&self.test, self.sources.is_empty()) {
            (None, false) => self
                .sources
                .iter()
                .all(|key| entry.extracted.contains_key(key)),
            (Some(test), true) => test.accepts(&entry.line),
            (Some(test), false) => {
                self.joined.clear();
                let mut first = true;
                for key in &self.sources {
                    let Some(v) = entry.extracted.get(key) else {
                        continue;
                    };
                    let Some(s) = value_as_string(v) else {
                        return false;
                    };
                    if !first {
                        self.joined.push_str(&self.separator);
                    }
                    self.joined.push_str(&s);
                    first = false;
                }
                test.accepts(&self.joined)
            }
            (None, true) => true,
        }
    }
}

impl Stage for DropStage {
    fn process(&mut self, entry: &mut PipelineEntry) -> Verdict {
        if self.should_drop(entry) {
            Verdict::Drop {
                reason: self.reason.clone(),
            }
        } else {
            Verdict::Keep
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::stages::testing::entry;
    use serde_json::json;

    fn stage(yaml: &str) -> DropStage {
        DropStage::new(&crate::pipeline::go::yaml::from_str(yaml).unwrap()).unwrap()
    }

    fn drops(s: &mut DropStage, e: &mut PipelineEntry) -> bool {
        matches!(s.process(e), Verdict::Drop { .. })
    }

    #[test]
    fn source_alone_drops_when_every_key_exists() {
        let mut s = stage("{source: [app, level]}");
        let mut e = entry("x", &[]);
        e.extracted.insert("app".into(), json!("web"));
        assert!(!drops(&mut s, &mut e));
        e.extracted.insert("level".into(), Value::Null);
        assert!(drops(&mut s, &mut e));
    }

    #[test]
    fn expression_alone_matches_anywhere_in_the_line() {
        let mut s = stage("{expression: '.*debug.*'}");
        assert!(drops(&mut s, &mut entry("a debug line", &[])));
        assert!(!drops(&mut s, &mut entry("an info line", &[])));
        let mut unanchored = stage("{expression: 'ug l'}");
        assert!(drops(&mut unanchored, &mut entry("a debug line", &[])));
    }

    #[test]
    fn expression_classes_mean_what_they_mean_in_go() {
        // Go's \d is ASCII: Arabic-Indic digits are not digits to Promtail.
        let mut s = stage(r"{expression: '^\d+$'}");
        assert!(drops(&mut s, &mut entry("123", &[])));
        assert!(!drops(&mut s, &mut entry("١٢٣", &[])));
    }

    #[test]
    fn value_is_an_exact_match_of_the_source() {
        let mut s = stage("{source: level, value: 'de.ug'}");
        let mut e = entry("x", &[]);
        e.extracted.insert("level".into(), json!("debug"));
        assert!(!drops(&mut s, &mut e), "value is literal, not a regex");
        e.extracted.insert("level".into(), json!("de.ug"));
        assert!(drops(&mut s, &mut e));
        e.extracted.insert("level".into(), json!("de.ug2"));
        assert!(!drops(&mut s, &mut e), "value must match whole");
    }

    #[test]
    fn numeric_value_compares_as_text() {
        let mut s = stage("{source: status, value: 200}");
        let mut e = entry("x", &[]);
        e.extracted.insert("status".into(), json!(200));
        assert!(drops(&mut s, &mut e));
        e.extracted.insert("status".into(), json!("500"));
        assert!(!drops(&mut s, &mut e));
    }

    #[test]
    fn several_sources_are_joined_with_the_separator() {
        let mut s = stage("{source: [app, level], separator: '|', expression: '^web\\|error$'}");
        let mut e = entry("x", &[("app", "web")]);
        e.extracted.insert("level".into(), json!("error"));
        assert!(drops(&mut s, &mut e));
        let mut default_sep = stage("{source: [app, level], value: 'web;error'}");
        assert!(drops(&mut default_sep, &mut e));
    }

    #[test]
    fn missing_source_keys_are_left_out_of_the_join() {
        let mut s = stage("{source: [a, b], value: x}");
        let mut e = entry("line", &[]);
        e.extracted.insert("b".into(), json!("x"));
        assert!(drops(&mut s, &mut e));
    }

    #[test]
    fn source_without_string_form_is_kept() {
        let mut s = stage("{source: obj, expression: '.*'}");
        let mut e = entry("x", &[]);
        e.extracted.insert("obj".into(), json!({"a": 1}));
        assert!(!drops(&mut s, &mut e));
    }

    #[test]
    fn longer_than_counts_bytes_strictly() {
        let mut s = stage("{longer_than: 8B}");
        assert!(!drops(&mut s, &mut entry("12345678", &[])));
        assert!(drops(&mut s, &mut entry("123456789", &[])));
        let mut kb = stage("{longer_than: 1KB}");
        assert!(!drops(&mut kb, &mut entry(&"a".repeat(1000), &[])));
        assert!(drops(&mut kb, &mut entry(&"a".repeat(1001), &[])));
    }

    #[test]
    fn older_than_compares_with_now() {
        let mut s = stage("{older_than: 1h}");
        let mut old = entry("x", &[]);
        old.timestamp = crate::model::clock::now() - chrono::Duration::hours(2);
        assert!(drops(&mut s, &mut old));
        let mut recent = entry("x", &[]);
        recent.timestamp = crate::model::clock::now() - chrono::Duration::minutes(30);
        assert!(!drops(&mut s, &mut recent));
    }

    #[test]
    fn all_conditions_must_hold() {
        let mut s = stage("{longer_than: 5, expression: err}");
        assert!(drops(&mut s, &mut entry("an error", &[])));
        assert!(!drops(&mut s, &mut entry("err", &[])), "short");
        assert!(
            !drops(&mut s, &mut entry("a long warning", &[])),
            "no match"
        );
    }

    #[test]
    fn reason_defaults_to_drop_stage_and_can_be_set() {
        let mut s = stage("{expression: x}");
        assert_eq!(
            s.process(&mut entry("x", &[])),
            Verdict::Drop {
                reason: "drop_stage".into()
            }
        );
        let mut custom = stage("{expression: x, drop_counter_reason: too_noisy}");
        assert_eq!(
            custom.process(&mut entry("x", &[])),
            Verdict::Drop {
                reason: "too_noisy".into()
            }
        );
    }

    #[test]
    fn config_errors_name_their_key() {
        let cases = [
            ("{separator: ','}", ""),
            ("{expression: x, value: y, source: a}", "value"),
            ("{value: y, longer_than: 1}", "value"),
            ("{expression: '(x'}", "expression"),
            ("{source: []}", "source"),
        ];
        for (yaml, key) in cases {
            let cfg: DropConfig = crate::pipeline::go::yaml::from_str(yaml).unwrap();
            assert_eq!(DropStage::new(&cfg).err().unwrap().key, key, "{yaml}");
        }
        assert!(
            crate::pipeline::go::yaml::from_str::<DropConfig>("{longer_than: 8 parsecs}").is_err()
        );
        assert!(crate::pipeline::go::yaml::from_str::<DropConfig>("{older_than: 5}").is_err());
        assert!(crate::pipeline::go::yaml::from_str::<DropConfig>("{expresion: x}").is_err());
    }
}
