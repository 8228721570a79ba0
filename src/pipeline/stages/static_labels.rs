//! `static_labels`: adds fixed labels to every entry.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::StageError;
use crate::model::labels::is_valid_label_name;
use crate::pipeline::{PipelineEntry, Stage, Verdict};

#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(transparent)]
pub struct StaticLabelsConfig(pub BTreeMap<String, Option<String>>);

pub struct StaticLabelsStage {
    labels: Vec<(String, String)>,
}

impl StaticLabelsStage {
    pub fn new(cfg: &StaticLabelsConfig) -> Result<Self, StageError> {
        if cfg.0.is_empty() {
            return Err(StageError::new("", "expected at least one label"));
        }
        let mut labels = Vec::new();
        for (name, value) in &cfg.0 {
            if !is_valid_label_name(name) {
                return Err(StageError::new(
                    name.clone(),
                    format!("invalid label name {name:?}: expected [a-zA-Z_][a-zA-Z0-9_]*"),
                ));
            }
            // Promtail skips labels whose value is empty.
            match value.as_deref() {
                None | Some("") => {}
                Some(v) => labels.push((name.clone(), v.to_string())),
            }
        }
        Ok(Self { labels })
    }
}

impl Stage for StaticLabelsStage {
    fn process(&mut self, entry: &mut PipelineEntry) -> Verdict {
        for (k, v) in &self.labels {
            entry.labels.insert(k.clone(), v.clone());
        }
        Verdict::Keep
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::stages::testing::entry;

    #[test]
    fn adds_and_overrides_labels() {
        let cfg = StaticLabelsConfig(
            [
                ("env".to_string(), Some("prod".to_string())),
                ("job".to_string(), Some("b".to_string())),
            ]
            .into_iter()
            .collect(),
        );
        let mut s = StaticLabelsStage::new(&cfg).unwrap();
        let mut e = entry("x", &[("job", "a")]);
        s.process(&mut e);
        assert_eq!(e.labels.to_string(), r#"{env="prod", job="b"}"#);
    }
}
