//! `preset`: a tailward extension that runs one of the built-in pipelines of `pipelines/`
//! (embedded in the binary) as if its stages were written here.
//!
//! ```yaml
//! pipeline_stages:
//!   - preset: python_traceback            # defaults
//!   - preset:
//!       name: nginx_access
//!       parameters:
//!         log_format: '$remote_addr - $remote_user [$time_local] "$request" $status ...'
//! ```
//!
//! The preset's stages are expanded and built once at load time; an error inside them is
//! located as `preset.stages[i].<stage>.<key>` and names the preset. At run time the stages
//! behave exactly as the same list nested in a `match` that selects every entry (holding,
//! waiting and acknowledgements included). `tailward preset show NAME` prints the YAML.
//! This stage must not know what any preset does.

use std::collections::BTreeMap;
use std::time::Instant;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::StageError;
use super::r#match::MatchStage;
use crate::ack::AckToken;
use crate::pipeline::{BuildContext, PipelineEntry, Stage, Verdict, build_stages, presets};

/// `preset: NAME` or `preset: {name: NAME, parameters: {...}}`.
#[derive(Clone, Debug, Serialize)]
pub struct PresetConfig {
    pub name: String,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub parameters: BTreeMap<String, Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PresetBlock {
    name: String,
    #[serde(default)]
    parameters: BTreeMap<String, Value>,
}

impl<'de> Deserialize<'de> for PresetConfig {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // Deserialized through a value so a bad block gets the block's own error message
        // (untagged enums only say that nothing matched).
        let value = Value::deserialize(d)?;
        if let Value::String(name) = value {
            return Ok(Self {
                name,
                parameters: BTreeMap::new(),
            });
        }
        let block: PresetBlock = match serde_json::from_value(value) {
            Ok(b) => b,
            Err(e) => {
                return Err(serde::de::Error::custom(format!(
                    "expected a preset name or {{name, parameters}}: {e}"
                )));
            }
        };
        Ok(Self {
            name: block.name,
            parameters: block.parameters,
        })
    }
}

pub struct PresetStage {
    body: MatchStage,
}

impl PresetStage {
    pub fn new(cfg: &PresetConfig, ctx: &BuildContext) -> Result<Self, StageError> {
        let configs = presets::expand(&cfg.name, &cfg.parameters)
            .map_err(|e| StageError::new(e.key, e.message))?;
        let stages = build_stages("stages", &configs, ctx).map_err(|e| {
            StageError::new(e.key_path, format!("in preset {}: {}", cfg.name, e.message))
        })?;
        Ok(Self {
            body: MatchStage::unconditional(stages, ctx),
        })
    }
}

impl Stage for PresetStage {
    fn process(&mut self, entry: &mut PipelineEntry) -> Verdict {
        self.body.process(entry)
    }

    fn release(&mut self, now: Instant, flush_all: bool, out: &mut Vec<PipelineEntry>) {
        self.body.release(now, flush_all, out);
    }

    fn take_consumed(&mut self, consumed: &mut Vec<AckToken>) {
        self.body.take_consumed(consumed);
    }

    fn next_deadline(&self) -> Option<Instant> {
        self.body.next_deadline()
    }
}
