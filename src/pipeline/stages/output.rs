//! `output`: replaces the line with an extracted value.

use serde::{Deserialize, Serialize};

use super::StageError;
use crate::pipeline::{PipelineEntry, Stage, Verdict, value_as_string};

#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct OutputConfig {
    pub source: String,
}

pub struct OutputStage {
    source: String,
}

impl OutputStage {
    pub fn new(cfg: &OutputConfig) -> Result<Self, StageError> {
        if cfg.source.is_empty() {
            return Err(StageError::new(
                "source",
                "expected the extracted key to output",
            ));
        }
        Ok(Self {
            source: cfg.source.clone(),
        })
    }
}

impl Stage for OutputStage {
    fn process(&mut self, entry: &mut PipelineEntry) -> Verdict {
        // A missing key or a value without a string form leaves the line unchanged.
        if let Some(v) = entry.extracted.get(&self.source).and_then(value_as_string) {
            entry.line = v.into_owned();
        }
        Verdict::Keep
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::stages::testing::entry;
    use serde_json::json;

    #[test]
    fn replaces_line_when_key_present() {
        let mut s = OutputStage::new(&OutputConfig {
            source: "msg".into(),
        })
        .unwrap();
        let mut e = entry("orig", &[]);
        s.process(&mut e);
        assert_eq!(e.line, "orig");
        e.extracted.insert("msg".into(), json!("hello"));
        s.process(&mut e);
        assert_eq!(e.line, "hello");
    }

    #[test]
    fn requires_source() {
        assert_eq!(
            OutputStage::new(&OutputConfig::default())
                .err()
                .unwrap()
                .key,
            "source"
        );
    }
}
