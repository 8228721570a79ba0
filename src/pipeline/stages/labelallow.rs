//! `labelallow`: keeps only the listed labels, removing every other one, the reserved
//! `__tenant_id__` included (as in Promtail: list it to keep a tenant set earlier).

use serde::{Deserialize, Serialize};

use super::StageError;
use crate::pipeline::{PipelineEntry, Stage, Verdict};

#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(transparent)]
pub struct LabelAllowConfig(pub Vec<String>);

pub struct LabelAllowStage {
    /// Sorted for binary search.
    allowed: Vec<String>,
}

impl LabelAllowStage {
    pub fn new(cfg: &LabelAllowConfig) -> Result<Self, StageError> {
        if cfg.0.is_empty() {
            return Err(StageError::new(
                "",
                "expected at least one label name to keep",
            ));
        }
        let mut allowed = cfg.0.clone();
        allowed.sort();
        allowed.dedup();
        Ok(Self { allowed })
    }
}

impl Stage for LabelAllowStage {
    fn process(&mut self, entry: &mut PipelineEntry) -> Verdict {
        entry.labels.retain(|name, _| {
            self.allowed
                .binary_search_by(|a| a.as_str().cmp(name))
                .is_ok()
        });
        Verdict::Keep
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::labels::TENANT_LABEL;
    use crate::pipeline::stages::testing::entry;

    #[test]
    fn keeps_only_listed_labels() {
        let mut s = LabelAllowStage::new(
            &crate::pipeline::go::yaml::from_str("[job, level, missing]").unwrap(),
        )
        .unwrap();
        let mut e = entry(
            "x",
            &[
                ("job", "app"),
                ("level", "info"),
                ("filename", "/a.log"),
                (TENANT_LABEL, "t"),
            ],
        );
        assert_eq!(s.process(&mut e), Verdict::Keep);
        assert_eq!(e.labels.to_string(), r#"{job="app", level="info"}"#);
    }

    #[test]
    fn empty_list_is_an_error() {
        assert!(LabelAllowStage::new(&LabelAllowConfig(vec![])).is_err());
    }
}
