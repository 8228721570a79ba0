//! `regex`: named capture groups of an RE2-style expression go into the extracted map.
//!
//! As in Promtail (regex.go: `extracted[name] = match[i]` for every named group of
//! `FindStringSubmatch`), a named group that did not take part in the match (an optional
//! group) is set to the empty string, so a later `labels` stage sets an empty value and a
//! template prints nothing, and an earlier value of that key is replaced. A line the
//! expression does not match changes nothing.

mod sequence;
mod trailing_group;

use std::borrow::Cow;

use regex::Regex;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use trailing_group::Matcher;

use super::StageError;
use crate::pipeline::extracted::InternedKey;
use crate::pipeline::{PipelineEntry, Stage, Verdict, value_as_string};

#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RegexConfig {
    pub expression: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

pub struct RegexStage {
    matcher: Matcher,
    source: Option<String>,
    /// (group index, name) of the named groups, resolved once.
    all_names: Vec<(usize, InternedKey)>,
    /// The groups written: all of them, or those later stages read (see
    /// [`Stage::restrict_writes`]). Empty: no later stage reads any, so the line is not
    /// matched at all (the stage writes nothing else).
    names: Vec<(usize, InternedKey)>,
    /// The groups found in the current line, reused from line to line.
    found: Vec<(InternedKey, String)>,
}

impl RegexStage {
    pub fn new(cfg: &RegexConfig) -> Result<Self, StageError> {
        if cfg.expression.is_empty() {
            return Err(StageError::new(
                "expression",
                "expected a regular expression",
            ));
        }
        let pattern = crate::pipeline::go::regex::translate(&cfg.expression);
        let regex = Regex::new(&pattern).map_err(|e| {
            // The user's own text makes the clearer message when it is invalid as written.
            let e = Regex::new(&cfg.expression).err().unwrap_or(e);
            StageError::new("expression", format!("invalid regular expression: {e}"))
        })?;
        let names: Vec<(usize, InternedKey)> = regex
            .capture_names()
            .enumerate()
            .filter_map(|(i, n)| n.map(|n| (i, InternedKey::new(n))))
            .collect();
        if names.is_empty() {
            return Err(StageError::new(
                "expression",
                "expected at least one named capture group such as (?P<level>\\w+)",
            ));
        }
        if matches!(cfg.source.as_deref(), Some("")) {
            return Err(StageError::new(
                "source",
                "expected a non-empty extracted key",
            ));
        }
        Ok(Self {
            matcher: Matcher::new(regex, &pattern),
            source: cfg.source.clone(),
            found: Vec::with_capacity(names.len()),
            all_names: names.clone(),
            names,
        })
    }
}

impl Stage for RegexStage {
    fn restrict_writes(&mut self, read_later: Option<&std::collections::HashSet<String>>) {
        self.names = match read_later {
            None => self.all_names.clone(),
            Some(keys) => self
                .all_names
                .iter()
                .filter(|(_, name)| keys.contains(name.as_str()))
                .copied()
                .collect(),
        };
    }

    fn process(&mut self, entry: &mut PipelineEntry) -> Verdict {
        if self.names.is_empty() {
            return Verdict::Keep;
        }
        let input: Cow<'_, str> = match &self.source {
            None => Cow::Borrowed(&entry.line),
            Some(key) => match entry.extracted.get(key).and_then(value_as_string) {
                Some(v) => v,
                // A missing or non-string source leaves the entry unchanged.
                None => return Verdict::Keep,
            },
        };
        if !self.matcher.captures_read(&input) {
            return Verdict::Keep;
        }
        // Values are copied out while `input` may still borrow the extracted map, and
        // inserted after.
        self.found.clear();
        for (i, name) in &self.names {
            let value = match self.matcher.get(*i) {
                Some((s, e)) => input[s..e].to_string(),
                None => String::new(),
            };
            self.found.push((*name, value));
        }
        entry.extracted.reserve(self.found.len());
        for (name, value) in self.found.drain(..) {
            entry.extracted.insert_interned(name, Value::String(value));
        }
        Verdict::Keep
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::stages::testing::entry;

    #[test]
    fn extracts_named_groups() {
        let mut s = RegexStage::new(&RegexConfig {
            expression: r"^(?P<ip>\S+) \S+ \S+ \[(?P<ts>[^\]]+)\] (?:unused)?".into(),
            source: None,
        })
        .unwrap();
        let mut e = entry("1.2.3.4 - - [10/Oct/2000:13:55:36 -0700] x", &[]);
        s.process(&mut e);
        assert_eq!(e.extracted["ip"], "1.2.3.4");
        assert_eq!(e.extracted["ts"], "10/Oct/2000:13:55:36 -0700");
    }

    #[test]
    fn writes_only_the_groups_later_stages_read_until_told_every_key_counts() {
        let mut s = RegexStage::new(&RegexConfig {
            expression: r"^(?P<ip>\S+) (?P<user>\S+) (?P<rest>.*)$".into(),
            source: None,
        })
        .unwrap();
        let read_later: std::collections::HashSet<String> = ["ip".to_string()].into();
        s.restrict_writes(Some(&read_later));
        let mut e = entry("1.2.3.4 bob GET /", &[]);
        s.process(&mut e);
        assert_eq!(e.extracted["ip"], "1.2.3.4");
        assert!(!e.extracted.contains_key("user"));
        assert!(!e.extracted.contains_key("rest"));
        s.restrict_writes(None);
        let mut e = entry("1.2.3.4 bob GET /", &[]);
        s.process(&mut e);
        assert_eq!(e.extracted["user"], "bob");
        assert_eq!(e.extracted["rest"], "GET /");
    }

    #[test]
    fn a_regex_none_of_whose_groups_is_read_later_leaves_the_entry_alone() {
        let mut s = RegexStage::new(&RegexConfig {
            expression: r"(?P<word>\w+)".into(),
            source: None,
        })
        .unwrap();
        s.restrict_writes(Some(&std::collections::HashSet::new()));
        let mut e = entry("hello", &[]);
        s.process(&mut e);
        assert!(!e.extracted.contains_key("word"));
    }

    #[test]
    fn reads_from_source_and_ignores_missing_source() {
        let mut s = RegexStage::new(&RegexConfig {
            expression: r"(?P<user>\w+)@".into(),
            source: Some("email".into()),
        })
        .unwrap();
        let mut e = entry("x", &[]);
        s.process(&mut e);
        assert!(!e.extracted.contains_key("user"));
        e.extracted
            .insert("email".into(), Value::String("bob@example.com".into()));
        s.process(&mut e);
        assert_eq!(e.extracted["user"], "bob");
    }

    /// Go's ASCII `\w`, an optional group that does not take part, and a trailing
    /// rest-of-line group with and without a newline in the input.
    #[test]
    fn go_semantics_and_trailing_groups() {
        let mut s = RegexStage::new(&RegexConfig {
            expression: r"^(?P<host>\S+) (?P<program>\w+)(?:\[(?P<pid>\d+)\])?: (?P<msg>.*)$"
                .into(),
            source: None,
        })
        .unwrap();
        let mut e = entry("hôte-1 sshd[42]: Accepted é", &[]);
        s.process(&mut e);
        assert_eq!(e.extracted["host"], "hôte-1");
        assert_eq!(e.extracted["program"], "sshd");
        assert_eq!(e.extracted["pid"], "42");
        assert_eq!(e.extracted["msg"], "Accepted é");
        let mut e = entry("web-1 CRON: x", &[]);
        s.process(&mut e);
        assert_eq!(e.extracted["pid"], "");
        assert_eq!(e.extracted["msg"], "x");
        // `.` stops at a newline and `$` needs the end: no match, nothing extracted.
        let mut e = entry("web-1 CRON: x\ny", &[]);
        s.process(&mut e);
        assert!(!e.extracted.contains_key("msg"));
        // Go's \w is ASCII: `é` is not a word character.
        let mut e = entry("web-1 sshé: x", &[]);
        s.process(&mut e);
        assert!(!e.extracted.contains_key("program"));
    }

    /// Promtail's regex.go sets every named group of `FindStringSubmatch`, and Go gives ""
    /// for a group that did not participate: the key is set to "" (replacing an earlier
    /// value), not left out. A line that does not match sets nothing.
    #[test]
    fn a_group_that_did_not_take_part_is_set_to_the_empty_string() {
        let mut s = RegexStage::new(&RegexConfig {
            expression: r"^(?P<a>\w+)(?: (?P<b>\d+))?(?:x(?P<c>y))?$".into(),
            source: None,
        })
        .unwrap();
        let mut e = entry("word", &[]);
        e.extracted.insert("b".into(), Value::from("earlier"));
        s.process(&mut e);
        assert_eq!(e.extracted["a"], "word");
        assert_eq!(e.extracted["b"], "");
        assert_eq!(e.extracted["c"], "");
        let mut e = entry("no match here!", &[]);
        s.process(&mut e);
        assert!(!e.extracted.contains_key("a"));
        assert!(!e.extracted.contains_key("b"));
    }

    /// The expression of Promtail's regex_test.go (`testRegexYamlSingleStageWithoutSource`)
    /// on a request without path and protocol: Go's `FindStringSubmatch` gives "" for the
    /// optional `path` and `protocol` groups, which regex.go stores.
    #[test]
    fn promtail_s_test_expression_sets_its_optional_groups_to_empty() {
        let mut s = RegexStage::new(&RegexConfig {
            expression: r#"^(?P<ip>\S+) (?P<identd>\S+) (?P<user>\S+) \[(?P<timestamp>[\w:/]+\s[+\-]\d{4})\] "(?P<action>\S+)\s?(?P<path>\S+)?\s?(?P<protocol>\S+)?" (?P<status>\d{3}|-) (?P<size>\d+|-)\s?"?(?P<referer>[^"]*)"?\s?"?(?P<useragent>[^"]*)?"?$"#.into(),
            source: None,
        })
        .unwrap();
        let mut e = entry(
            r#"11.11.11.11 - frank [25/Jan/2000:14:00:01 -0500] "GET" 400 0"#,
            &[],
        );
        s.process(&mut e);
        assert_eq!(e.extracted["action"], "GET");
        assert_eq!(e.extracted["path"], "");
        assert_eq!(e.extracted["protocol"], "");
        assert_eq!(e.extracted["status"], "400");
        assert_eq!(e.extracted["useragent"], "");
    }

    #[test]
    fn invalid_expression_is_a_config_error() {
        let err = RegexStage::new(&RegexConfig {
            expression: "(?P<a>[".into(),
            source: None,
        })
        .err()
        .unwrap();
        assert_eq!(err.key, "expression");
        assert!(err.message.contains("(?P<a>["), "{}", err.message);
        // Errors show the pattern as written, not its translation.
        let err = RegexStage::new(&RegexConfig {
            expression: r"(?P<a>\d+)(".into(),
            source: None,
        })
        .err()
        .unwrap();
        assert!(err.message.contains(r"(?P<a>\d+)("), "{}", err.message);
    }
}
