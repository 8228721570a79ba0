//! `json`: JMESPath expressions over a JSON line (or extracted `source`) into the extracted map.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::StageError;
use crate::pipeline::{PipelineEntry, Stage, Verdict};

#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct JsonConfig {
    pub expressions: BTreeMap<String, Option<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    #[serde(default)]
    pub drop_malformed: bool,
}

pub struct JsonStage {}

impl JsonStage {
    pub fn new(_cfg: &JsonConfig) -> Result<Self, StageError> {
        Err(StageError::new("", "the json stage is being written"))
    }
}

impl Stage for JsonStage {
    fn process(&mut self, _entry: &mut PipelineEntry) -> Verdict {
        Verdict::Keep
    }
}
