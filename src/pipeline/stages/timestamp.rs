//! `timestamp`: sets the entry's timestamp from an extracted value.

use serde::{Deserialize, Serialize};

use super::StageError;
use crate::pipeline::{PipelineEntry, Stage, Verdict};

#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TimestampConfig {
    pub source: String,
    pub format: String,
    #[serde(default)]
    pub fallback_formats: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action_on_failure: Option<String>,
}

pub struct TimestampStage {}

impl TimestampStage {
    pub fn new(_cfg: &TimestampConfig) -> Result<Self, StageError> {
        Err(StageError::new("", "the timestamp stage is being written"))
    }
}

impl Stage for TimestampStage {
    fn process(&mut self, _entry: &mut PipelineEntry) -> Verdict {
        Verdict::Keep
    }
}
