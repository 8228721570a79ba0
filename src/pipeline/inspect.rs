//! `-inspect`: for every entry and every stage, what the stage changed, written to stderr in
//! the shape of Promtail's inspector (`clients/pkg/logentry/stages/inspector.go`):
//!
//! ```text
//! [inspect: json stage]:
//! {stages.Entry}.Extracted["level"]:
//!     +: error
//! [inspect: labels stage]:
//! {stages.Entry}.Entry.Labels["level"]:
//!     +: error
//! [inspect: output stage]:
//! {stages.Entry}.Entry.Entry.Line:
//!     -: {"level":"error","msg":"disk full"}
//!     +: disk full
//! [inspect: static_labels stage]: none
//! ```
//!
//! Value lines start with a tab, and a header followed by changes ends in `]: ` with a
//! trailing space, as Promtail's does.
//!
//! A field a stage added is green (`+:`), one it removed red (`-:`), one it changed yellow
//! (`-:` old, `+:` new); the stage name is bold. Colour only when stderr is a terminal and
//! `NO_COLOR` is unset. Keys are listed sorted, extracted values first, then labels,
//! timestamp, line and structured metadata, the order Promtail's struct walk gives.
//!
//! Differences from Promtail, which inspects only stages that process one entry in place:
//! every stage is reported here. A stage that drops the entry says `dropped (reason "…")`,
//! one that holds it (multiline, cri partial lines) says `held`, and an entry it hands out
//! later is announced as `released` with its line before the next stage reports on it.
//! Each stage inside a `preset` is reported on its own, named after the preset
//! (`[inspect: preset nginx_access / nginx_access stage]:`, presets in presets nesting the
//! names further), and the preset itself is not reported; stages nested in a `match` are
//! reported together under the `match` stage. Timestamps
//! are printed as the dry-run prints them (`2024-01-02T03:04:05.123+0000`), not in Go's
//! `time.Time` default form.
//!
//! Owns the before/after comparison and its rendering. It must not change entries, and it
//! costs nothing when `-inspect` is off: the pipeline holds no inspector then.

use std::fmt::Write as _;
use std::io::{IsTerminal, Write};
use std::sync::{Arc, Mutex, PoisonError};

use chrono::{DateTime, FixedOffset};
use serde_json::Value;

use super::go::time::append_dry_run;
use super::{Extracted, PipelineEntry, Verdict, value_as_string};
use crate::model::labels::{LabelSet, quote_go_into};

/// Writes each stage's changes to an entry as the pipeline runs.
pub struct Inspector {
    /// Shared with the inspectors of nested stages ([`Inspector::nested`]).
    out: Arc<Mutex<Box<dyn Write + Send>>>,
    palette: Palette,
    /// What the names are prefixed with: the presets this inspector's stages are inside.
    prefix: String,
    /// Names of the pipeline's stages, by index, as written in the config.
    stage_names: Vec<String>,
    /// Stages that report their inner stages themselves: nothing is reported for them.
    reported_inside: Vec<bool>,
    /// One report, rendered before it is written in one piece (so reports of concurrent
    /// pipelines do not interleave mid-report).
    text: String,
}

/// An entry as it was before a stage ran.
pub struct Snapshot {
    labels: LabelSet,
    extracted: Extracted,
    timestamp: DateTime<FixedOffset>,
    line: String,
    structured_metadata: Vec<(String, String)>,
}

impl Snapshot {
    pub fn of(entry: &PipelineEntry) -> Self {
        Self {
            labels: entry.labels.clone(),
            extracted: entry.extracted.clone(),
            timestamp: entry.timestamp,
            line: entry.line.clone(),
            structured_metadata: entry.structured_metadata.clone(),
        }
    }
}

/// ANSI colours as fatih/color writes them, or nothing at all.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Palette {
    colour: bool,
}

#[derive(Clone, Copy)]
enum Paint {
    Red,
    Green,
    Yellow,
    Bold,
}

impl Palette {
    pub const PLAIN: Palette = Palette { colour: false };
    pub const ANSI: Palette = Palette { colour: true };

    fn paint(self, paint: Paint, text: &str, out: &mut String) {
        if !self.colour {
            out.push_str(text);
            return;
        }
        out.push_str(match paint {
            Paint::Red => "\x1b[31m",
            Paint::Green => "\x1b[32m",
            Paint::Yellow => "\x1b[33m",
            Paint::Bold => "\x1b[1m",
        });
        out.push_str(text);
        out.push_str("\x1b[0m");
    }
}

impl Inspector {
    /// Reports to stderr, in colour when stderr is a terminal and `NO_COLOR` is not set.
    pub fn stderr() -> Self {
        let colour = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
        Self::new(
            Box::new(std::io::stderr()),
            if colour {
                Palette::ANSI
            } else {
                Palette::PLAIN
            },
        )
    }

    pub fn new(out: Box<dyn Write + Send>, palette: Palette) -> Self {
        Self {
            out: Arc::new(Mutex::new(out)),
            palette,
            prefix: String::new(),
            stage_names: Vec::new(),
            reported_inside: Vec::new(),
            text: String::new(),
        }
    }

    /// An inspector for the stages inside stage `index` (a preset), writing where this one
    /// writes, their names prefixed with `what` (`preset nginx_access`) after this one's
    /// prefix.
    pub fn nested(&self, what: &str) -> Self {
        let mut prefix = self.prefix.clone();
        prefix.push_str(what);
        prefix.push_str(" / ");
        Self {
            out: self.out.clone(),
            palette: self.palette,
            prefix,
            stage_names: Vec::new(),
            reported_inside: Vec::new(),
            text: String::new(),
        }
    }

    /// Names the stages reports refer to by index (the pipeline sets them when it takes the
    /// inspector).
    pub fn set_stage_names<S: Into<String>>(&mut self, names: Vec<S>) {
        self.stage_names = names.into_iter().map(Into::into).collect();
    }

    /// Marks the stages (by index) that report their inner stages themselves.
    pub fn set_reported_inside(&mut self, inside: Vec<bool>) {
        self.reported_inside = inside;
    }

    fn inside(&self, index: usize) -> bool {
        self.reported_inside.get(index).copied().unwrap_or(false)
    }

    /// Reports what stage `index` did to an entry that was `before` and is now `after`.
    pub fn report(
        &mut self,
        index: usize,
        before: &Snapshot,
        verdict: &Verdict,
        after: &PipelineEntry,
    ) {
        if self.inside(index) {
            return;
        }
        self.text.clear();
        self.header(index);
        match verdict {
            Verdict::Drop { reason } => {
                let _ = write!(self.text, "dropped (reason {reason:?})");
            }
            Verdict::Hold => self.text.push_str("held"),
            Verdict::Keep | Verdict::Wait(_) => {
                let mut diff = String::new();
                if write_diff(before, after, self.palette, &mut diff) {
                    self.text.push('\n');
                    self.text.push_str(&diff);
                } else {
                    self.palette.paint(Paint::Red, "none", &mut self.text);
                }
            }
        }
        self.flush();
    }

    /// Announces an entry that holding stage `index` hands out.
    pub fn report_release(&mut self, index: usize, released: &PipelineEntry) {
        if self.inside(index) {
            return;
        }
        self.text.clear();
        self.header(index);
        self.text.push_str("released\n\tline: ");
        self.text.push_str(&released.line);
        self.flush();
    }

    fn header(&mut self, index: usize) {
        self.text.push_str("[inspect: ");
        let name = self
            .stage_names
            .get(index)
            .map_or("unnamed", String::as_str);
        let mut full = String::with_capacity(self.prefix.len() + name.len());
        full.push_str(&self.prefix);
        full.push_str(name);
        self.palette.paint(Paint::Bold, &full, &mut self.text);
        self.text.push_str(" stage]: ");
    }

    fn flush(&mut self) {
        self.text.push('\n');
        // Inspection is a debugging aid: a closed stderr must not stop the pipeline.
        let mut out = self.out.lock().unwrap_or_else(PoisonError::into_inner);
        let _ = out.write_all(self.text.as_bytes());
        let _ = out.flush();
    }
}

/// Appends one line pair per changed field of `before` → `after` to `out`, lines separated
/// by `\n` without a trailing one. Returns whether anything changed.
pub fn write_diff(
    before: &Snapshot,
    after: &PipelineEntry,
    palette: Palette,
    out: &mut String,
) -> bool {
    let mut diff = Diff {
        palette,
        out,
        any: false,
    };
    diff.extracted(&before.extracted, &after.extracted);
    diff.labels(&before.labels, &after.labels);
    if before.timestamp != after.timestamp {
        let mut old = String::new();
        let mut new = String::new();
        append_dry_run(&before.timestamp, &mut old);
        append_dry_run(&after.timestamp, &mut new);
        diff.field(
            "{stages.Entry}.Entry.Entry.Timestamp",
            Some(&old),
            Some(&new),
        );
    }
    if before.line != after.line {
        diff.field(
            "{stages.Entry}.Entry.Entry.Line",
            Some(&before.line),
            Some(&after.line),
        );
    }
    diff.structured_metadata(&before.structured_metadata, &after.structured_metadata);
    diff.any
}

struct Diff<'a> {
    palette: Palette,
    out: &'a mut String,
    any: bool,
}

impl Diff<'_> {
    fn extracted(&mut self, before: &Extracted, after: &Extracted) {
        let mut keys: Vec<&str> = before.iter().map(|(k, _)| k).collect();
        keys.extend(
            after
                .iter()
                .map(|(k, _)| k)
                .filter(|k| !before.contains_key(k)),
        );
        keys.sort_unstable();
        for key in keys {
            let old = before.get(key);
            let new = after.get(key);
            if old == new {
                continue;
            }
            let old = old.map(display_value);
            let new = new.map(display_value);
            self.field(
                &keyed_path("{stages.Entry}.Extracted", key),
                old.as_deref(),
                new.as_deref(),
            );
        }
    }

    fn labels(&mut self, before: &LabelSet, after: &LabelSet) {
        if before == after {
            return;
        }
        let mut keys: Vec<&str> = before.iter().map(|(k, _)| k).collect();
        keys.extend(
            after
                .iter()
                .map(|(k, _)| k)
                .filter(|k| before.get(k).is_none()),
        );
        keys.sort_unstable();
        for key in keys {
            let (old, new) = (before.get(key), after.get(key));
            if old != new {
                self.field(&keyed_path("{stages.Entry}.Entry.Labels", key), old, new);
            }
        }
    }

    fn structured_metadata(&mut self, before: &[(String, String)], after: &[(String, String)]) {
        if before == after {
            return;
        }
        let find = |pairs: &'_ [(String, String)], key: &str| -> Option<String> {
            pairs.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone())
        };
        let mut keys: Vec<&str> = before.iter().map(|(k, _)| k.as_str()).collect();
        keys.extend(
            after
                .iter()
                .map(|(k, _)| k.as_str())
                .filter(|k| find(before, k).is_none()),
        );
        keys.sort_unstable();
        for key in keys {
            let (old, new) = (find(before, key), find(after, key));
            if old != new {
                self.field(
                    &keyed_path("{stages.Entry}.Entry.Entry.StructuredMetadata", key),
                    old.as_deref(),
                    new.as_deref(),
                );
            }
        }
    }

    /// One changed field: its path, then `-:` with the old value and `+:` with the new one,
    /// each present only if the field had or has a value.
    fn field(&mut self, path: &str, old: Option<&str>, new: Option<&str>) {
        let paint = match (old, new) {
            (Some(_), Some(_)) => Paint::Yellow,
            (Some(_), None) => Paint::Red,
            _ => Paint::Green,
        };
        if self.any {
            self.out.push('\n');
        }
        self.any = true;
        self.palette.paint(paint, &format!("{path}:"), self.out);
        if let Some(old) = old {
            self.out.push('\n');
            let paint = if new.is_some() {
                Paint::Yellow
            } else {
                Paint::Red
            };
            self.palette.paint(paint, &format!("\t-: {old}"), self.out);
        }
        if let Some(new) = new {
            self.out.push('\n');
            self.palette
                .paint(Paint::Green, &format!("\t+: {new}"), self.out);
        }
    }
}

/// `prefix["key"]`, the key quoted as Go quotes map keys in go-cmp paths.
fn keyed_path(prefix: &str, key: &str) -> String {
    let mut path = String::with_capacity(prefix.len() + key.len() + 4);
    path.push_str(prefix);
    path.push('[');
    quote_go_into(key, &mut path);
    path.push(']');
    path
}

/// An extracted value as Go's `%v` prints it: strings bare, numbers and booleans in their
/// usual form, null as `<nil>`; objects and arrays as compact JSON.
pub fn display_value(v: &Value) -> String {
    match value_as_string(v) {
        Some(s) => s.into_owned(),
        None if v.is_null() => "<nil>".to_string(),
        None => v.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::pipeline::stages::testing::entry;

    /// A writer whose bytes the test reads back.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Captured {
        fn text(&self) -> String {
            String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
        }
    }

    fn diff_of(before: &PipelineEntry, after: &PipelineEntry) -> String {
        let mut out = String::new();
        write_diff(&Snapshot::of(before), after, Palette::PLAIN, &mut out);
        out
    }

    #[test]
    fn added_extracted_value_and_label_are_plus_lines_in_promtail_paths() {
        let before = entry("x", &[("job", "app")]);
        let mut after = before.clone();
        after
            .extracted
            .insert("level".into(), Value::String("error".into()));
        after.labels.insert("level".into(), "error".into());
        assert_eq!(
            diff_of(&before, &after),
            "{stages.Entry}.Extracted[\"level\"]:\n\t+: error\n\
             {stages.Entry}.Entry.Labels[\"level\"]:\n\t+: error"
        );
    }

    #[test]
    fn changed_fields_show_old_and_new_and_removed_ones_only_old() {
        let mut before = entry("old line", &[("job", "app"), ("env", "dev")]);
        before.set_structured_metadata("trace_id", "a".into());
        let mut after = before.clone();
        after.line = "new line".into();
        after.labels.remove("env");
        after.extracted.insert("n".into(), Value::from(3));
        after.timestamp = DateTime::parse_from_rfc3339("2024-05-06T07:08:09.5Z").unwrap();
        after.set_structured_metadata("trace_id", "b".into());
        assert_eq!(
            diff_of(&before, &after),
            "{stages.Entry}.Extracted[\"n\"]:\n\t+: 3\n\
             {stages.Entry}.Entry.Labels[\"env\"]:\n\t-: dev\n\
             {stages.Entry}.Entry.Entry.Timestamp:\n\t-: 2024-01-02T03:04:05.123456789+0000\n\t+: 2024-05-06T07:08:09.5+0000\n\
             {stages.Entry}.Entry.Entry.Line:\n\t-: old line\n\t+: new line\n\
             {stages.Entry}.Entry.Entry.StructuredMetadata[\"trace_id\"]:\n\t-: a\n\t+: b"
        );
    }

    #[test]
    fn removing_a_seeded_extracted_value_is_reported() {
        let before = entry("x", &[("job", "app")]);
        let mut after = before.clone();
        after.extracted.remove("job");
        assert_eq!(
            diff_of(&before, &after),
            "{stages.Entry}.Extracted[\"job\"]:\n\t-: app"
        );
    }

    #[test]
    fn unchanged_entry_reports_none() {
        let captured = Captured::default();
        let mut inspector = Inspector::new(Box::new(captured.clone()), Palette::PLAIN);
        inspector.set_stage_names(vec!["static_labels"]);
        let e = entry("x", &[("job", "app")]);
        inspector.report(0, &Snapshot::of(&e), &Verdict::Keep, &e);
        assert_eq!(captured.text(), "[inspect: static_labels stage]: none\n");
    }

    #[test]
    fn report_has_header_then_diff_and_drop_and_hold_are_named() {
        let captured = Captured::default();
        let mut inspector = Inspector::new(Box::new(captured.clone()), Palette::PLAIN);
        inspector.set_stage_names(vec!["output", "drop", "multiline"]);
        let before = entry("a", &[]);
        let mut after = before.clone();
        after.line = "b".into();
        inspector.report(0, &Snapshot::of(&before), &Verdict::Keep, &after);
        let drop = Verdict::Drop {
            reason: "drop_stage".into(),
        };
        inspector.report(1, &Snapshot::of(&after), &drop, &after);
        inspector.report(2, &Snapshot::of(&after), &Verdict::Hold, &after);
        inspector.report_release(2, &after);
        assert_eq!(
            captured.text(),
            "[inspect: output stage]: \n{stages.Entry}.Entry.Entry.Line:\n\t-: a\n\t+: b\n\
             [inspect: drop stage]: dropped (reason \"drop_stage\")\n\
             [inspect: multiline stage]: held\n\
             [inspect: multiline stage]: released\n\tline: b\n"
        );
    }

    #[test]
    fn colour_wraps_name_and_changes_in_ansi_codes() {
        let captured = Captured::default();
        let mut inspector = Inspector::new(Box::new(captured.clone()), Palette::ANSI);
        inspector.set_stage_names(vec!["labels"]);
        let before = entry("x", &[]);
        let mut after = before.clone();
        after.labels.insert("a".into(), "1".into());
        inspector.report(0, &Snapshot::of(&before), &Verdict::Keep, &after);
        assert_eq!(
            captured.text(),
            "[inspect: \x1b[1mlabels\x1b[0m stage]: \n\
             \x1b[32m{stages.Entry}.Entry.Labels[\"a\"]:\x1b[0m\n\
             \x1b[32m\t+: 1\x1b[0m\n"
        );
    }

    fn inspected_pipeline(stages_yaml: &str) -> (crate::pipeline::Pipeline, Captured) {
        use crate::metrics::Metrics;
        use crate::pipeline::stages::StageConfig;
        use crate::pipeline::{BuildContext, Pipeline};
        // Through JSON, whose enum form (a one-key map) is the config file's.
        let value: serde_json::Value = crate::pipeline::go::yaml::from_str(stages_yaml).unwrap();
        let configs: Vec<StageConfig> = serde_json::from_value(value).unwrap();
        let ctx = BuildContext::new("test", Arc::new(Metrics::new()));
        let captured = Captured::default();
        let pipeline = Pipeline::build("pipeline_stages", &configs, &ctx)
            .unwrap()
            .with_inspector(Inspector::new(Box::new(captured.clone()), Palette::PLAIN));
        (pipeline, captured)
    }

    #[tokio::test]
    async fn pipeline_reports_every_stage_for_every_entry_in_order() {
        let (mut pipeline, captured) = inspected_pipeline(
            "- json: {expressions: {level: level}}\n- labels: {level: \"\"}\n- drop: {source: level, value: debug}\n",
        );
        let mut out = Vec::new();
        pipeline
            .run(entry(r#"{"level":"info"}"#, &[("job", "a")]), &mut out)
            .await;
        pipeline
            .run(entry(r#"{"level":"debug"}"#, &[("job", "a")]), &mut out)
            .await;
        assert_eq!(
            captured.text(),
            "[inspect: json stage]: \n{stages.Entry}.Extracted[\"level\"]:\n\t+: info\n\
             [inspect: labels stage]: \n{stages.Entry}.Entry.Labels[\"level\"]:\n\t+: info\n\
             [inspect: drop stage]: none\n\
             [inspect: json stage]: \n{stages.Entry}.Extracted[\"level\"]:\n\t+: debug\n\
             [inspect: labels stage]: \n{stages.Entry}.Entry.Labels[\"level\"]:\n\t+: debug\n\
             [inspect: drop stage]: dropped (reason \"drop_stage\")\n"
        );
    }

    #[tokio::test]
    async fn held_entries_are_reported_held_then_released_into_later_stages() {
        let (mut pipeline, captured) = inspected_pipeline(
            "- multiline: {firstline: '^start'}\n- static_labels: {block: \"yes\"}\n",
        );
        let mut out = Vec::new();
        for line in ["start one", "  more", "start two"] {
            pipeline.run(entry(line, &[]), &mut out).await;
        }
        assert_eq!(
            captured.text(),
            "[inspect: multiline stage]: held\n\
             [inspect: multiline stage]: held\n\
             [inspect: multiline stage]: held\n\
             [inspect: multiline stage]: released\n\tline: start one\n  more\n\
             [inspect: static_labels stage]: \n{stages.Entry}.Entry.Labels[\"block\"]:\n\t+: yes\n"
        );
    }

    #[test]
    fn values_print_as_go_prints_them() {
        assert_eq!(display_value(&Value::String("s".into())), "s");
        assert_eq!(display_value(&serde_json::json!(0.25)), "0.25");
        assert_eq!(display_value(&Value::Bool(true)), "true");
        assert_eq!(display_value(&Value::Null), "<nil>");
        assert_eq!(display_value(&serde_json::json!({"a": 1})), "{\"a\":1}");
    }
}
