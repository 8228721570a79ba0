//! `replace`: rewrites every capture group of an RE2-style expression in the line (or in an
//! extracted value) with a rendered Go template.
//!
//! For each match and each capture group (named or not) that took part, the `replace`
//! template is rendered with `.Value` = the captured text and the extracted map's strings as
//! the other fields; the capture is replaced by the result (an empty result removes it). A
//! group nested inside one already replaced is rendered but not spliced in, as in Promtail.
//! Named groups also go into the extracted map: each gets the rendering of what it captured
//! in the first match. The result goes back to the line, or to `source` when set. An
//! execution error leaves everything unchanged.
//!
//! Deviation: Promtail parses `replace` for every line and silently skips lines when it does
//! not parse; here it is parsed once at load and a bad template is a config error (as in
//! Grafana Alloy).

use std::borrow::Cow;
use std::collections::HashMap;

use regex::Regex;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::StageError;
use crate::pipeline::BuildContext;
use crate::pipeline::extracted::Extracted;
use crate::pipeline::go::template::{Template, TemplateData};
use crate::pipeline::{PipelineEntry, Stage, Verdict, value_as_string};

#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ReplaceConfig {
    pub expression: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    #[serde(default)]
    pub replace: String,
}

pub struct ReplaceStage {
    regex: Regex,
    source: Option<String>,
    template: Template,
    /// (group index, name) of the named groups.
    names: Vec<(usize, String)>,
    /// Reused across captures for the rendered template.
    rendered: String,
    /// `tailward_template_errors_total` of this stage.
    errors: prometheus::IntCounter,
}

impl ReplaceStage {
    pub fn new(cfg: &ReplaceConfig, ctx: &BuildContext) -> Result<Self, StageError> {
        if cfg.expression.is_empty() {
            return Err(StageError::new(
                "expression",
                "expected a regular expression",
            ));
        }
        let regex = crate::pipeline::go::regex::compile(&cfg.expression).map_err(|e| {
            StageError::new("expression", format!("invalid regular expression: {e}"))
        })?;
        if matches!(cfg.source.as_deref(), Some("")) {
            return Err(StageError::new(
                "source",
                "expected a non-empty extracted key",
            ));
        }
        let template = Template::parse(&cfg.replace)
            .map_err(|e| StageError::new("replace", format!("invalid template: {e}")))?;
        let names = regex
            .capture_names()
            .enumerate()
            .filter_map(|(i, n)| n.map(|n| (i, n.to_string())))
            .collect();
        Ok(Self {
            regex,
            source: cfg.source.clone(),
            template,
            names,
            rendered: String::new(),
            errors: ctx
                .metrics
                .pipeline
                .template_errors
                .with_label_values(&[&ctx.job, "replace"]),
        })
    }
}

/// Promtail's replace data: the extracted map's strings with `Value` = the capture.
struct CaptureData<'e> {
    extracted: &'e Extracted,
    captured: &'e str,
}

impl TemplateData for CaptureData<'_> {
    fn field(&self, name: &str) -> Option<Cow<'_, str>> {
        if name == "Value" {
            return Some(Cow::Borrowed(self.captured));
        }
        self.extracted.get(name).and_then(value_as_string)
    }

    fn entries(&self) -> Vec<(String, String)> {
        let mut all: Vec<(String, String)> = self
            .extracted
            .iter()
            .filter(|(k, _)| *k != "Value")
            .filter_map(|(k, v)| value_as_string(v).map(|s| (k.to_string(), s.into_owned())))
            .collect();
        all.push(("Value".to_string(), self.captured.to_string()));
        all
    }
}

impl Stage for ReplaceStage {
    fn process(&mut self, entry: &mut PipelineEntry) -> Verdict {
        let owned_source;
        let input: &str = match &self.source {
            None => &entry.line,
            Some(key) => match entry.extracted.get(key).and_then(value_as_string) {
                Some(v) => {
                    owned_source = v.into_owned();
                    &owned_source
                }
                // A missing or non-string source leaves the entry unchanged.
                None => return Verdict::Keep,
            },
        };
        let mut result = String::with_capacity(input.len());
        let mut end_of_last_replaced = 0;
        // What each captured text rendered to (later captures of the same text win).
        let mut rendered_by_capture: HashMap<&str, String> = HashMap::new();
        let mut first_match: Option<Vec<Option<(usize, usize)>>> = None;
        for caps in self.regex.captures_iter(input) {
            if first_match.is_none() {
                first_match = Some(
                    (0..caps.len())
                        .map(|i| caps.get(i).map(|m| (m.start(), m.end())))
                        .collect(),
                );
            }
            for group in caps.iter().skip(1).flatten() {
                let captured = group.as_str();
                self.rendered.clear();
                let data = CaptureData {
                    extracted: &entry.extracted,
                    captured,
                };
                if self.template.execute(&data, &mut self.rendered).is_err() {
                    self.errors.inc();
                    return Verdict::Keep;
                }
                if end_of_last_replaced == 0 || end_of_last_replaced <= group.start() {
                    result.push_str(&input[end_of_last_replaced..group.start()]);
                    result.push_str(&self.rendered);
                    end_of_last_replaced = group.end();
                }
                rendered_by_capture.insert(captured, self.rendered.clone());
            }
        }
        let Some(first_match) = first_match else {
            return Verdict::Keep;
        };
        result.push_str(&input[end_of_last_replaced..]);
        // Promtail looks a named group up by its text in the first match ("" when the group
        // did not take part there).
        let named: Vec<(String, String)> = self
            .names
            .iter()
            .filter_map(|(i, name)| {
                let text = first_match[*i].map_or("", |(s, e)| &input[s..e]);
                rendered_by_capture
                    .get(text)
                    .map(|v| (name.clone(), v.clone()))
            })
            .collect();
        match &self.source {
            Some(key) => entry.extracted.insert(key.clone(), Value::String(result)),
            None => entry.line = result,
        }
        for (name, value) in named {
            entry.extracted.insert(name, Value::String(value));
        }
        Verdict::Keep
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::stages::testing::entry;
    use serde_json::json;

    const ACCESS_LINE: &str = r#"11.11.11.11 - frank [25/Jan/2000:14:00:01 -0500] "GET /1986.js HTTP/1.1" 200 932 "-" "Mozilla/5.0 (Windows; U; Windows NT 5.1; de; rv:1.9.1.7) Gecko/20091221 Firefox/3.5.7 GTB6""#;

    const STATUS_TEMPLATE: &str = r#"{{ if eq .Value "200" }}{{ Replace .Value "200" "HttpStatusOk" -1 }}{{ else }}{{ .Value | ToUpper }}{{ end }}"#;

    fn stage(expression: &str, source: Option<&str>, replace: &str) -> ReplaceStage {
        ReplaceStage::new(
            &ReplaceConfig {
                expression: expression.into(),
                source: source.map(str::to_string),
                replace: replace.into(),
            },
            &crate::pipeline::stages::testing::ctx(),
        )
        .unwrap()
    }

    fn run_line(expression: &str, replace: &str, line: &str) -> PipelineEntry {
        let mut e = entry(line, &[]);
        assert_eq!(
            stage(expression, None, replace).process(&mut e),
            Verdict::Keep
        );
        e
    }

    #[test]
    fn replaces_the_capture_in_the_line() {
        let e = run_line(r"11.11.11.11 - (\S+) .*", "dummy", ACCESS_LINE);
        assert_eq!(e.line, ACCESS_LINE.replace("frank", "dummy"));
    }

    #[test]
    fn word_class_is_ascii_as_in_go() {
        // Go's \w stops at "é"; a Unicode \w would take the whole word.
        let e = run_line(r"(\w+)", "x", "café");
        assert_eq!(e.line, "xé");
    }

    #[test]
    fn empty_replacement_removes_the_capture() {
        let e = run_line(r"11.11.11.11 - (\S+\s)", "", ACCESS_LINE);
        assert_eq!(e.line, ACCESS_LINE.replace("frank ", ""));
    }

    #[test]
    fn adjacent_captures_are_all_replaced() {
        let e = run_line("(a|b|c)", "", "abc");
        assert_eq!(e.line, "");
    }

    #[test]
    fn templated_replacement_of_unnamed_groups() {
        let expr = r#"^(\S+) (\S+) (\S+) \[([\w:/]+\s[+\-]\d{4})\] "(\S+)\s?(\S+)?\s?(\S+)?" (\d{3}|-) (\d+|-)\s?"?([^"]*)"?\s?"?([^"]*)?"?$"#;
        let e = run_line(expr, STATUS_TEMPLATE, ACCESS_LINE);
        assert_eq!(
            e.line,
            r#"11.11.11.11 - FRANK [25/JAN/2000:14:00:01 -0500] "GET /1986.JS HTTP/1.1" HttpStatusOk 932 "-" "MOZILLA/5.0 (WINDOWS; U; WINDOWS NT 5.1; DE; RV:1.9.1.7) GECKO/20091221 FIREFOX/3.5.7 GTB6""#
        );
    }

    #[test]
    fn nested_groups_extract_their_rendering_but_only_the_outer_is_spliced() {
        let expr = r#"(?P<ip_user>^(?P<ip>\S+) (?P<identd>\S+) (?P<user>\S+)) \[(?P<timestamp>[\w:/]+\s[+\-]\d{4})\] "(?P<action_path>(?P<action>\S+)\s?(?P<path>\S+)?)\s?(?P<protocol>\S+)?" (?P<status>\d{3}|-) (\d+|-)\s?"?(?P<referer>[^"]*)"?\s?"?(?P<useragent>[^"]*)?"?$"#;
        let e = run_line(expr, STATUS_TEMPLATE, ACCESS_LINE);
        assert!(
            e.line.starts_with("11.11.11.11 - FRANK [25/JAN/2000"),
            "{}",
            e.line
        );
        assert_eq!(e.extracted["ip_user"], "11.11.11.11 - FRANK");
        assert_eq!(e.extracted["action_path"], "GET /1986.JS");
        assert_eq!(e.extracted["user"], "FRANK");
        assert_eq!(e.extracted["status"], "HttpStatusOk");
        assert_eq!(e.extracted["path"], "/1986.JS");
    }

    #[test]
    fn source_is_rewritten_in_the_extracted_map_not_the_line() {
        let mut e = entry("line stays", &[]);
        e.extracted.insert(
            "msg".into(),
            json!(r#"11.11.11.11 - "POST /loki/api/push/ HTTP/1.1" 200"#),
        );
        stage(r#"\S+ - "POST (\S+) .*"#, Some("msg"), "/loki/api/v1/push/").process(&mut e);
        assert_eq!(e.line, "line stays");
        assert_eq!(
            e.extracted["msg"],
            r#"11.11.11.11 - "POST /loki/api/v1/push/ HTTP/1.1" 200"#
        );
    }

    #[test]
    fn missing_source_or_no_match_changes_nothing() {
        let mut e = entry("abc", &[]);
        stage("(b)", Some("nope"), "x").process(&mut e);
        assert_eq!(e.line, "abc");
        assert!(!e.extracted.contains_key("nope"));
        let e = run_line("(z)", "x", "abc");
        assert_eq!(e.line, "abc");
    }

    #[test]
    fn template_sees_extracted_values() {
        let mut e = entry("user=bob", &[]);
        e.extracted.insert("env".into(), json!("prod"));
        stage("user=(\\w+)", None, "{{ .Value }}@{{ .env }}").process(&mut e);
        assert_eq!(e.line, "user=bob@prod");
    }

    #[test]
    fn every_match_is_replaced() {
        let e = run_line(r"(\d+)", "N", "a1 b22 c333");
        assert_eq!(e.line, "aN bN cN");
    }

    #[test]
    fn execution_error_changes_nothing() {
        let e = run_line("(?P<word>\\w+)", "{{ .missing | ToUpper }}", "abc");
        assert_eq!(e.line, "abc");
        assert!(!e.extracted.contains_key("word"));
    }

    #[test]
    fn config_errors_name_the_key() {
        let cases = [
            ("", None, "x", "expression"),
            ("(?P<ts[0-9]+).*", None, "x", "expression"),
            ("(a)", Some(""), "x", "source"),
            ("(a)", None, "{{ nosuch }}", "replace"),
        ];
        for (expression, source, replace, key) in cases {
            let err = ReplaceStage::new(
                &ReplaceConfig {
                    expression: expression.into(),
                    source: source.map(str::to_string),
                    replace: replace.into(),
                },
                &crate::pipeline::stages::testing::ctx(),
            )
            .err()
            .unwrap();
            assert_eq!(err.key, key, "{expression}");
        }
    }
}
