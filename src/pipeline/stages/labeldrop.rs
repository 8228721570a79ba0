//! `labeldrop`: removes the listed labels (exact names; absent ones are ignored).

use serde::{Deserialize, Serialize};

use super::StageError;
use crate::pipeline::{PipelineEntry, Stage, Verdict};

#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(transparent)]
pub struct LabelDropConfig(pub Vec<String>);

pub struct LabelDropStage {
    names: Vec<String>,
}

impl LabelDropStage {
    pub fn new(cfg: &LabelDropConfig) -> Result<Self, StageError> {
        if cfg.0.is_empty() {
            return Err(StageError::new(
                "",
                "expected at least one label name to drop",
            ));
        }
        Ok(Self {
            names: cfg.0.clone(),
        })
    }
}

impl Stage for LabelDropStage {
    fn process(&mut self, entry: &mut PipelineEntry) -> Verdict {
        for name in &self.names {
            entry.labels.remove(name);
        }
        Verdict::Keep
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::stages::testing::entry;

    #[test]
    fn removes_listed_labels_and_ignores_absent_ones() {
        let mut s = LabelDropStage::new(
            &crate::pipeline::go::yaml::from_str("[filename, missing]").unwrap(),
        )
        .unwrap();
        let mut e = entry("x", &[("job", "app"), ("filename", "/a.log")]);
        assert_eq!(s.process(&mut e), Verdict::Keep);
        assert_eq!(e.labels.to_string(), r#"{job="app"}"#);
    }

    #[test]
    fn empty_list_is_an_error() {
        assert!(LabelDropStage::new(&LabelDropConfig(vec![])).is_err());
    }
}
