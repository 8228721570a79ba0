//! `labels`: copies extracted values into stream labels.
//!
//! `labels: {name: source}`; an empty source means the label's own name. Values that have no
//! string form (null, objects, arrays) are skipped, as in Promtail.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::StageError;
use crate::labels::is_valid_label_name;
use crate::pipeline::{PipelineEntry, Stage, Verdict, value_as_string};

/// Map of label name to extracted key (null or empty: the same name).
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(transparent)]
pub struct LabelsConfig(pub BTreeMap<String, Option<String>>);

pub struct LabelsStage {
    /// (label name, extracted key)
    mapping: Vec<(String, String)>,
}

impl LabelsStage {
    pub fn new(cfg: &LabelsConfig) -> Result<Self, StageError> {
        Ok(Self {
            mapping: name_to_source(&cfg.0, "label name")?,
        })
    }
}

/// Resolves a `name: source` map as `labels` and `structured_metadata` read it: every name a
/// valid label name, an empty source meaning the name itself. `what` names the map's keys in
/// errors.
pub(super) fn name_to_source(
    map: &BTreeMap<String, Option<String>>,
    what: &str,
) -> Result<Vec<(String, String)>, StageError> {
    if map.is_empty() {
        return Err(StageError::new("", format!("expected at least one {what}")));
    }
    map.iter()
        .map(|(name, source)| {
            if !is_valid_label_name(name) {
                return Err(StageError::new(
                    name.clone(),
                    format!("invalid {what} {name:?}: expected [a-zA-Z_][a-zA-Z0-9_]*"),
                ));
            }
            let source = match source.as_deref() {
                None | Some("") => name.clone(),
                Some(s) => s.to_string(),
            };
            Ok((name.clone(), source))
        })
        .collect()
}

impl Stage for LabelsStage {
    fn process(&mut self, entry: &mut PipelineEntry) -> Verdict {
        for (name, source) in &self.mapping {
            if let Some(value) = entry.extracted.get(source).and_then(value_as_string) {
                entry.labels.insert(name.clone(), value.into_owned());
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

    #[test]
    fn rejects_invalid_label_name() {
        let cfg = LabelsConfig([("bad-name".to_string(), None)].into_iter().collect());
        let err = LabelsStage::new(&cfg).err().unwrap();
        assert_eq!(err.key, "bad-name");
        assert!(err.message.contains("invalid label name"));
    }
}
