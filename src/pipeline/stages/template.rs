//! `template`: sets an extracted value from a Go template.
//!
//! The template sees every string-convertible extracted value by name, `.Value` (the current
//! value of `source`, when it has one) and `.Entry` (the line), plus Promtail's function map
//! (see [`crate::pipeline::go::template`]). An empty result deletes `source`; an execution
//! error leaves it unchanged, as in Promtail. The template is parsed once at load, so a
//! template that does not parse is a config error.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::StageError;
use crate::pipeline::BuildContext;
use crate::pipeline::extracted::Extracted;
use crate::pipeline::go::template::{Template, TemplateData};
use crate::pipeline::{PipelineEntry, Stage, Verdict, value_as_string};

#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TemplateConfig {
    pub source: String,
    #[serde(default)]
    pub template: String,
}

pub struct TemplateStage {
    source: String,
    template: Template,
    /// Reused across lines for the rendered value.
    rendered: String,
    /// `tailward_template_errors_total` of this stage.
    errors: prometheus::IntCounter,
}

impl TemplateStage {
    pub fn new(cfg: &TemplateConfig, ctx: &BuildContext) -> Result<Self, StageError> {
        if cfg.source.is_empty() {
            return Err(StageError::new(
                "source",
                "template source value is required",
            ));
        }
        let template = Template::parse(&cfg.template)
            .map_err(|e| StageError::new("template", format!("invalid template: {e}")))?;
        Ok(Self {
            source: cfg.source.clone(),
            template,
            rendered: String::new(),
            errors: ctx
                .metrics
                .pipeline
                .template_errors
                .with_label_values(&[&ctx.job, "template"]),
        })
    }
}

/// Promtail's template data: the extracted map's strings, `Value` and `Entry`.
struct EntryData<'e> {
    extracted: &'e Extracted,
    source: &'e str,
    line: &'e str,
}

impl TemplateData for EntryData<'_> {
    fn field(&self, name: &str) -> Option<Cow<'_, str>> {
        match name {
            "Entry" => Some(Cow::Borrowed(self.line)),
            "Value" => self
                .extracted
                .get(self.source)
                .and_then(value_as_string)
                .or_else(|| self.extracted.get("Value").and_then(value_as_string)),
            _ => self.extracted.get(name).and_then(value_as_string),
        }
    }

    fn entries(&self) -> Vec<(String, String)> {
        let mut all: Vec<(String, String)> = self
            .extracted
            .iter()
            .filter(|(k, _)| *k != "Value" && *k != "Entry")
            .filter_map(|(k, v)| value_as_string(v).map(|s| (k.to_string(), s.into_owned())))
            .collect();
        for key in ["Value", "Entry"] {
            if let Some(v) = self.field(key) {
                all.push((key.to_string(), v.into_owned()));
            }
        }
        all
    }
}

impl Stage for TemplateStage {
    fn process(&mut self, entry: &mut PipelineEntry) -> Verdict {
        self.rendered.clear();
        let data = EntryData {
            extracted: &entry.extracted,
            source: &self.source,
            line: &entry.line,
        };
        if self.template.execute(&data, &mut self.rendered).is_err() {
            self.errors.inc();
            return Verdict::Keep;
        }
        if self.rendered.is_empty() {
            entry.extracted.remove(&self.source);
        } else {
            entry
                .extracted
                .insert(self.source.clone(), Value::String(self.rendered.clone()));
        }
        Verdict::Keep
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::stages::testing::entry;
    use serde_json::json;

    fn stage(source: &str, template: &str) -> TemplateStage {
        TemplateStage::new(
            &TemplateConfig {
                source: source.into(),
                template: template.into(),
            },
            &crate::pipeline::stages::testing::ctx(),
        )
        .unwrap()
    }

    fn run(source: &str, template: &str, extracted: &[(&str, Value)]) -> PipelineEntry {
        let mut e = entry("the line", &[]);
        for (k, v) in extracted {
            e.extracted.insert(k.to_string(), v.clone());
        }
        assert_eq!(stage(source, template).process(&mut e), Verdict::Keep);
        e
    }

    #[test]
    fn value_is_the_source_and_result_overwrites_it() {
        let e = run("some", "{{ .Value }} appended", &[("some", json!("value"))]);
        assert_eq!(e.extracted["some"], "value appended");
    }

    #[test]
    fn creates_a_missing_source() {
        let e = run("missing", "newval", &[("notmissing", json!("value"))]);
        assert_eq!(e.extracted["missing"], "newval");
    }

    #[test]
    fn reads_other_keys_and_prints_no_value_for_missing_ones() {
        let e = run(
            "message",
            "{{.Value}} in module {{.module}}",
            &[("message", json!("warn for app loki"))],
        );
        assert_eq!(
            e.extracted["message"],
            "warn for app loki in module <no value>"
        );
        let e = run(
            "missing",
            "{{ .level }} for app {{ .app | ToUpper }}",
            &[("level", json!("warn")), ("app", json!("loki"))],
        );
        assert_eq!(e.extracted["missing"], "warn for app LOKI");
    }

    #[test]
    fn numbers_and_bools_are_strings_and_objects_are_skipped() {
        let e = run(
            "out",
            "{{ .n }} {{ .ok }} {{ .obj }}",
            &[
                ("n", json!(3)),
                ("ok", json!(true)),
                ("obj", json!({"a": 1})),
            ],
        );
        assert_eq!(e.extracted["out"], "3 true <no value>");
    }

    #[test]
    fn entry_is_the_line() {
        let e = run("out", "{{ .Entry | ToUpper }}", &[]);
        assert_eq!(e.extracted["out"], "THE LINE");
    }

    #[test]
    fn empty_result_deletes_the_key() {
        let e = run("testval", "", &[("testval", json!("WOOOOO"))]);
        assert!(!e.extracted.contains_key("testval"));
        let e = run("testval", "{{ if .nope }}x{{ end }}", &[]);
        assert!(!e.extracted.contains_key("testval"));
    }

    #[test]
    fn execution_error_leaves_the_key_unchanged() {
        // ToLower of a missing .Value is an error in Go: nothing is set.
        let e = run("testval", "{{ .Value | ToLower }}", &[]);
        assert!(!e.extracted.contains_key("testval"));
        let e = run(
            "testval",
            r#"{{ regexReplaceAll "\\K" .Value "x" }}"#,
            &[("testval", json!("keep me"))],
        );
        assert_eq!(e.extracted["testval"], "keep me");
    }

    #[test]
    fn failed_executions_are_counted_the_budget_included() {
        let ctx = crate::pipeline::stages::testing::ctx();
        let counted = || {
            ctx.metrics
                .pipeline
                .template_errors
                .with_label_values(&["test", "template"])
                .get()
        };
        let mut ok = TemplateStage::new(
            &TemplateConfig {
                source: "a".into(),
                template: "{{ .Entry }}".into(),
            },
            &ctx,
        )
        .unwrap();
        ok.process(&mut entry("line", &[]));
        assert_eq!(counted(), 0);
        let mut spin = TemplateStage::new(
            &TemplateConfig {
                source: "a".into(),
                template: "{{ range 1000000 }}{{ range 1000000 }}{{ end }}{{ end }}".into(),
            },
            &ctx,
        )
        .unwrap();
        let mut e = entry("line", &[]);
        spin.process(&mut e);
        assert!(!e.extracted.contains_key("a"));
        assert_eq!(counted(), 1, "the step budget ends it as a counted error");
    }

    #[test]
    fn template_sees_labels_through_the_extracted_seed() {
        let mut e = entry("x", &[("app", "loki")]);
        stage("out", "{{ .app }}").process(&mut e);
        assert_eq!(e.extracted["out"], "loki");
    }

    #[test]
    fn config_errors_name_the_key() {
        let err = TemplateStage::new(
            &TemplateConfig {
                source: String::new(),
                template: "x".into(),
            },
            &crate::pipeline::stages::testing::ctx(),
        )
        .err()
        .unwrap();
        assert_eq!(err.key, "source");
        let err = TemplateStage::new(
            &TemplateConfig {
                source: "a".into(),
                template: "{{ if }}".into(),
            },
            &crate::pipeline::stages::testing::ctx(),
        )
        .err()
        .unwrap();
        assert_eq!(err.key, "template");
        assert!(err.message.contains("invalid template"), "{}", err.message);
    }
}
