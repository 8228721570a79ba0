//! `pack`: wraps the line and chosen extracted values (labels included, since the extracted
//! map is seeded with them) into a JSON object, the format LogQL's `| unpack` reverses.
//!
//! The line becomes `{"k1":"v1",...,"_entry":"<line>"}`: packed keys sorted, `_entry` last,
//! strings escaped as json-iterator escapes them (HTML-safe). Names that were packed are
//! removed from the labels. With `ingest_timestamp` (default true) the timestamp becomes the
//! time of packing; when an earlier stage of the list set the timestamp from the line, a
//! warning says so at load time (see [`crate::pipeline::load_warnings`]). Names whose value
//! has no string form (objects, null) are left out. An empty name is refused at load
//! (Promtail accepts it and never packs it).

use serde::{Deserialize, Serialize};

use super::StageError;
use crate::pipeline::go::json::{JsonFlavor, write_json_string};
use crate::pipeline::{PipelineEntry, Stage, Verdict, value_as_string};

#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PackConfig {
    #[serde(default)]
    pub labels: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingest_timestamp: Option<bool>,
}

/// The key LogQL's `unpack` restores the line from.
const ENTRY_KEY: &str = "_entry";

pub struct PackStage {
    /// Sorted, duplicate-free names to pack, each with its `"name":` prefix already escaped.
    names: Vec<(String, String)>,
    ingest_timestamp: bool,
}

impl PackStage {
    pub fn new(cfg: &PackConfig) -> Result<Self, StageError> {
        if let Some(i) = cfg.labels.iter().position(String::is_empty) {
            return Err(StageError::new(
                format!("labels[{i}]"),
                "expected a non-empty name",
            ));
        }
        let mut sorted = cfg.labels.clone();
        sorted.sort();
        sorted.dedup();
        let names = sorted
            .into_iter()
            .map(|name| {
                let mut prefix = String::new();
                write_json_string(&name, JsonFlavor::JsonIterator, &mut prefix);
                prefix.push(':');
                (name, prefix)
            })
            .collect();
        Ok(Self {
            names,
            ingest_timestamp: cfg.ingest_timestamp.unwrap_or(true),
        })
    }
}

impl Stage for PackStage {
    fn process(&mut self, entry: &mut PipelineEntry) -> Verdict {
        let mut packed = String::with_capacity(entry.line.len() + 16 * (self.names.len() + 1));
        packed.push('{');
        for (name, prefix) in &self.names {
            let Some(value) = entry.extracted.get(name).and_then(value_as_string) else {
                continue;
            };
            packed.push_str(prefix);
            write_json_string(&value, JsonFlavor::JsonIterator, &mut packed);
            packed.push(',');
            entry.labels.remove(name);
        }
        packed.push('"');
        packed.push_str(ENTRY_KEY);
        packed.push_str("\":");
        write_json_string(&entry.line, JsonFlavor::JsonIterator, &mut packed);
        packed.push('}');
        entry.line = packed;
        if self.ingest_timestamp {
            entry.timestamp = crate::model::clock::now();
        }
        Verdict::Keep
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::stages::testing::{entry, read_time};
    use serde_json::json;

    fn stage(labels: &[&str], ingest_timestamp: Option<bool>) -> PackStage {
        PackStage::new(&PackConfig {
            labels: labels.iter().map(|s| s.to_string()).collect(),
            ingest_timestamp,
        })
        .unwrap()
    }

    #[test]
    fn packs_sorted_keys_then_entry_and_removes_packed_labels() {
        let mut e = entry(
            "hello",
            &[("pod", "p-1"), ("container", "app"), ("job", "j")],
        );
        e.extracted.insert("level".into(), json!("info"));
        stage(&["pod", "level", "container", "pod"], Some(false)).process(&mut e);
        assert_eq!(
            e.line,
            r#"{"container":"app","level":"info","pod":"p-1","_entry":"hello"}"#
        );
        assert_eq!(e.labels.to_string(), r#"{job="j"}"#);
    }

    #[test]
    fn escapes_the_line_as_json_iterator_does() {
        let mut e = entry("say \"hi\" <b>&\n\u{8}", &[]);
        stage(&[], Some(false)).process(&mut e);
        assert_eq!(
            e.line,
            r#"{"_entry":"say \"hi\" \u003cb\u003e\u0026\n\u0008"}"#
        );
    }

    #[test]
    fn skips_missing_and_non_string_values_and_stringifies_numbers() {
        let mut e = entry("x", &[]);
        e.extracted.insert("n".into(), json!(3));
        e.extracted.insert("obj".into(), json!({"a": 1}));
        stage(&["n", "obj", "absent"], Some(false)).process(&mut e);
        assert_eq!(e.line, r#"{"n":"3","_entry":"x"}"#);
    }

    #[test]
    fn ingest_timestamp_defaults_to_now() {
        let mut e = entry("x", &[]);
        let before = crate::model::clock::now();
        stage(&[], None).process(&mut e);
        assert!(e.timestamp >= before, "timestamp not moved to now");
        let mut e = entry("x", &[]);
        stage(&[], Some(false)).process(&mut e);
        assert_eq!(e.timestamp, read_time());
    }

    #[test]
    fn empty_name_is_a_config_error() {
        let err = PackStage::new(&PackConfig {
            labels: vec!["a".into(), String::new()],
            ingest_timestamp: None,
        })
        .err()
        .unwrap();
        assert_eq!(err.key, "labels[1]");
    }
}
