//! `labels`: copies extracted values into stream labels.
//!
//! `labels: {name: source}`; an empty source means the label's own name. Values that have no
//! string form (null, objects, arrays) are skipped, as in Promtail, and so are values that
//! were not valid UTF-8 in the source (see [`label_sources::is_valid_label_value`]); the
//! other labels are still set. An empty string is a value like any other.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::StageError;
use crate::model::labels::LabelSet;
use crate::pipeline::{PipelineEntry, Stage, Verdict, label_sources, value_as_string};

/// Map of label name to extracted key (null or empty: the same name).
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(transparent)]
pub struct LabelsConfig(pub BTreeMap<String, Option<String>>);

pub struct LabelsStage {
    /// (label name, extracted key); the name is shared by every label set the stage builds.
    mapping: Vec<(Arc<str>, String)>,
    /// Recent results, so that lines of one source with the same values get the very same
    /// label set: no copy per line, and the client recognises it by pointer.
    recent: Vec<Option<RecentLabels>>,
}

/// How many (input labels, values) results the stage remembers, direct-mapped by hash: a
/// collision only costs rebuilding the set.
const RECENT_SLOTS: usize = 1024;

struct RecentLabels {
    /// Kept alive so its address cannot be reused by another set while cached.
    input: LabelSet,
    /// Each mapping's value, `None` where the extracted value was missing or had no string form.
    values: Vec<Option<String>>,
    output: LabelSet,
}

impl LabelsStage {
    pub fn new(cfg: &LabelsConfig) -> Result<Self, StageError> {
        Ok(Self {
            mapping: label_sources::resolve(&cfg.0, "label name")?
                .into_iter()
                .map(|(name, source)| (Arc::from(name), source))
                .collect(),
            recent: Vec::new(),
        })
    }

    /// The stage's result built without the cache.
    fn apply(&self, entry: &PipelineEntry) -> (LabelSet, Vec<Option<String>>) {
        let mut labels = entry.labels.clone();
        let mut values = Vec::with_capacity(self.mapping.len());
        for (name, source) in &self.mapping {
            let value = entry
                .extracted
                .get(source)
                .and_then(value_as_string)
                .filter(|v| label_sources::is_valid_label_value(v))
                .map(|v| v.into_owned());
            if let Some(value) = &value {
                labels.insert_shared_name(name, value);
            }
            values.push(value);
        }
        (labels, values)
    }

    /// The slot for the entry's input labels and values.
    fn slot(&self, entry: &PipelineEntry) -> usize {
        // FNV-1a: a few short values, and a weak hash only costs cache misses.
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        let mut mix = |bytes: &[u8]| {
            for b in bytes {
                hash ^= u64::from(*b);
                hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
            }
        };
        mix(&entry.labels.shared_address().to_le_bytes());
        for (_, source) in &self.mapping {
            match entry.extracted.get(source).and_then(value_as_string) {
                Some(v) => {
                    mix(&[1]);
                    mix(v.as_bytes());
                }
                None => mix(&[0]),
            }
        }
        (hash % RECENT_SLOTS as u64) as usize
    }

    fn matches(&self, recent: &RecentLabels, entry: &PipelineEntry) -> bool {
        recent.input.ptr_eq(&entry.labels)
            && self
                .mapping
                .iter()
                .zip(&recent.values)
                .all(|((_, source), cached)| {
                    let value = entry.extracted.get(source).and_then(value_as_string);
                    value.as_deref() == cached.as_deref()
                })
    }
}

impl Stage for LabelsStage {
    fn process(&mut self, entry: &mut PipelineEntry) -> Verdict {
        if self.recent.is_empty() {
            self.recent.resize_with(RECENT_SLOTS, || None);
        }
        let slot = self.slot(entry);
        if let Some(recent) = &self.recent[slot]
            && self.matches(recent, entry)
        {
            entry.labels = recent.output.clone();
            return Verdict::Keep;
        }
        let (output, values) = self.apply(entry);
        let input = std::mem::replace(&mut entry.labels, output.clone());
        self.recent[slot] = Some(RecentLabels {
            input,
            values,
            output,
        });
        Verdict::Keep
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::labels::LabelSet;
    use crate::pipeline::stages::testing::entry;
    use serde_json::{Value, json};

    fn stage(yaml: &[(&str, Option<&str>)]) -> LabelsStage {
        let cfg = LabelsConfig(
            yaml.iter()
                .map(|(k, v)| (k.to_string(), v.map(str::to_string)))
                .collect(),
        );
        LabelsStage::new(&cfg).unwrap()
    }

    #[test]
    fn copies_strings_numbers_and_bools_skips_objects() {
        let mut s = stage(&[
            ("level", None),
            ("code", Some("status")),
            ("obj", None),
            ("ok", None),
        ]);
        let mut e = entry("x", &[]);
        e.extracted.insert("level".into(), json!("info"));
        e.extracted.insert("status".into(), json!(200));
        e.extracted.insert("obj".into(), json!({"a": 1}));
        e.extracted.insert("ok".into(), json!(true));
        assert_eq!(s.process(&mut e), Verdict::Keep);
        assert_eq!(
            e.labels.to_string(),
            r#"{code="200", level="info", ok="true"}"#
        );
    }

    /// Lines of one source with the same values share one label set; different values,
    /// missing values or another source's labels never get a cached result.
    #[test]
    fn equal_values_reuse_one_label_set_and_others_do_not() {
        let mut s = stage(&[("level", None), ("code", Some("status"))]);
        let source = LabelSet::from_pairs([("job", "app")]);
        let run = |s: &mut LabelsStage, labels: &LabelSet, level: Option<&str>, status: Value| {
            let mut e = entry("x", &[]);
            e.labels = labels.clone();
            if let Some(level) = level {
                e.extracted.insert("level".into(), json!(level));
            }
            e.extracted.insert("status".into(), status);
            s.process(&mut e);
            e.labels
        };
        let a = run(&mut s, &source, Some("info"), json!(200));
        let b = run(&mut s, &source, Some("info"), json!(200));
        assert!(a.ptr_eq(&b));
        assert_eq!(a.to_string(), r#"{code="200", job="app", level="info"}"#);
        let c = run(&mut s, &source, Some("info"), json!("200"));
        assert_eq!(c, a, "a number and its string form give the same labels");
        let d = run(&mut s, &source, Some("warn"), json!(200));
        assert_eq!(d.to_string(), r#"{code="200", job="app", level="warn"}"#);
        let missing = run(&mut s, &source, None, json!(200));
        assert_eq!(missing.to_string(), r#"{code="200", job="app"}"#);
        let missing_again = run(&mut s, &source, None, json!(200));
        assert!(missing.ptr_eq(&missing_again));
        let other = LabelSet::from_pairs([("job", "other")]);
        let o = run(&mut s, &other, Some("info"), json!(200));
        assert_eq!(o.to_string(), r#"{code="200", job="other", level="info"}"#);
        // Values that look alike when concatenated stay apart.
        let mut t = stage(&[("a", None), ("b", None)]);
        let pair = |t: &mut LabelsStage, a: &str, b: &str| {
            let mut e = entry("x", &[]);
            e.labels = source.clone();
            e.extracted.insert("a".into(), json!(a));
            e.extracted.insert("b".into(), json!(b));
            t.process(&mut e);
            e.labels.to_string()
        };
        assert_eq!(pair(&mut t, "ab", "c"), r#"{a="ab", b="c", job="app"}"#);
        assert_eq!(pair(&mut t, "a", "bc"), r#"{a="a", b="bc", job="app"}"#);
        assert_eq!(pair(&mut t, "ab", "c"), r#"{a="ab", b="c", job="app"}"#);
    }

    /// Promtail's labels.go skips a value failing `model.LabelValue.IsValid` (not UTF-8) and
    /// sets the others; bytes that were not UTF-8 reach the stages as U+FFFD.
    #[test]
    fn a_value_that_was_not_utf8_is_skipped_and_the_others_are_set() {
        let mut s = stage(&[("user", None), ("level", None), ("empty", None)]);
        let source = String::from_utf8_lossy(b"b\xffob").into_owned();
        let mut e = entry("x", &[("job", "app")]);
        e.extracted.insert("user".into(), json!(source));
        e.extracted.insert("level".into(), json!("info"));
        e.extracted.insert("empty".into(), json!(""));
        s.process(&mut e);
        assert_eq!(
            e.labels.to_string(),
            r#"{empty="", job="app", level="info"}"#
        );
        // The same values again, through the cache, give the same set.
        let mut again = entry("x", &[("job", "app")]);
        again.labels = LabelSet::from_pairs([("job", "app")]);
        again.extracted.insert("user".into(), json!(source));
        again.extracted.insert("level".into(), json!("info"));
        again.extracted.insert("empty".into(), json!(""));
        s.process(&mut again);
        assert_eq!(again.labels, e.labels);
    }

    #[test]
    fn rejects_invalid_label_name() {
        let cfg = LabelsConfig([("bad-name".to_string(), None)].into_iter().collect());
        let err = LabelsStage::new(&cfg).err().unwrap();
        assert_eq!(err.key, "bad-name");
        assert!(err.message.contains("invalid label name"));
    }
}
