//! `structured_metadata` (alias `non_indexed_labels`): attaches Loki structured metadata.
//!
//! Like `labels`, but the pair rides as non-indexed metadata. A key missing from the extracted
//! map is taken from the stream labels, and that label is then removed from the stream, as in
//! Promtail: the way to move a high-cardinality label such as a correlation ID off the index.
//! As in Promtail (which shares `processLabelsConfigs` with `labels`), a value that was not
//! valid UTF-8 in the source is skipped (see [`label_sources::is_valid_label_value`]).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::StageError;
use crate::pipeline::{PipelineEntry, Stage, Verdict, label_sources, value_as_string};

#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(transparent)]
pub struct StructuredMetadataConfig(pub BTreeMap<String, Option<String>>);

pub struct StructuredMetadataStage {
    mapping: Vec<(String, String)>,
}

impl StructuredMetadataStage {
    pub fn new(cfg: &StructuredMetadataConfig) -> Result<Self, StageError> {
        Ok(Self {
            mapping: label_sources::resolve(&cfg.0, "structured metadata name")?,
        })
    }
}

impl Stage for StructuredMetadataStage {
    fn process(&mut self, entry: &mut PipelineEntry) -> Verdict {
        for (name, source) in &self.mapping {
            // Seeded label values are in the extracted map too; a label is moved only when
            // the extracted value is the label itself.
            let extracted = entry
                .extracted
                .get(source)
                .and_then(value_as_string)
                .filter(|v| label_sources::is_valid_label_value(v))
                .map(|v| v.into_owned());
            let from_label = entry.labels.get(source).map(str::to_string);
            match (extracted, from_label) {
                (Some(v), Some(l)) if v == l => {
                    entry.labels.remove(source);
                    entry.set_structured_metadata(name, v);
                }
                (Some(v), _) => entry.set_structured_metadata(name, v),
                (None, Some(l)) => {
                    entry.labels.remove(source);
                    entry.set_structured_metadata(name, l);
                }
                (None, None) => {}
            }
        }
        Verdict::Keep
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::stages::testing::entry;
    use serde_json::json;

    fn stage(pairs: &[(&str, Option<&str>)]) -> StructuredMetadataStage {
        StructuredMetadataStage::new(&StructuredMetadataConfig(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.map(str::to_string)))
                .collect(),
        ))
        .unwrap()
    }

    #[test]
    fn attaches_extracted_value() {
        let mut s = stage(&[("correlation_id", None)]);
        let mut e = entry("x", &[("job", "app")]);
        e.extracted
            .insert("correlation_id".into(), json!("abc-123"));
        s.process(&mut e);
        assert_eq!(
            e.structured_metadata,
            vec![("correlation_id".to_string(), "abc-123".to_string())]
        );
        assert_eq!(e.labels.to_string(), r#"{job="app"}"#);
    }

    #[test]
    fn moves_a_label_off_the_stream() {
        let mut s = stage(&[("trace", Some("trace_id"))]);
        let mut e = entry("x", &[("job", "app"), ("trace_id", "t1")]);
        s.process(&mut e);
        assert_eq!(
            e.structured_metadata,
            vec![("trace".to_string(), "t1".to_string())]
        );
        assert_eq!(e.labels.to_string(), r#"{job="app"}"#);
    }
}
