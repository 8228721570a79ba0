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
//! waiting and acknowledgements included): both run as [`NestedStages`]. With `-inspect`
//! each of its stages is reported on its own (`[inspect: preset NAME / STAGE stage]:`).
//! `tailward preset show NAME` prints the YAML.
//! This stage must not know what any preset does.

use std::collections::BTreeMap;
use std::time::Instant;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::StageError;
use crate::model::ack::AckToken;
use crate::pipeline::inspect::Inspector;
use crate::pipeline::nested::NestedStages;
use crate::pipeline::{BuildContext, PipelineEntry, Stage, Verdict, presets};

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
    name: String,
    body: NestedStages,
}

impl PresetStage {
    pub fn new(cfg: &PresetConfig, ctx: &BuildContext) -> Result<Self, StageError> {
        let configs = presets::expand(&cfg.name, &cfg.parameters)
            .map_err(|e| StageError::new(e.key, e.message))?;
        let body = NestedStages::build("stages", &configs, ctx).map_err(|e| {
            StageError::new(e.key_path, format!("in preset {}: {}", cfg.name, e.message))
        })?;
        Ok(Self {
            name: cfg.name.clone(),
            body,
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

    /// `-inspect` reports each of the preset's stages, named `preset NAME / stage`.
    fn inspect_inside(&mut self, inspector: &Inspector) -> bool {
        self.body
            .inspect_with(inspector.nested(&format!("preset {}", self.name)));
        true
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::metrics::Metrics;
    use crate::pipeline::stages::testing::entry;

    fn auth_stage(metrics: &Arc<Metrics>) -> PresetStage {
        let cfg: PresetConfig = crate::pipeline::go::yaml::from_str(
            "{name: auth, parameters: {metric_prefix: cvd_, location: UTC}}",
        )
        .unwrap();
        PresetStage::new(&cfg, &BuildContext::new("auth", metrics.clone())).unwrap()
    }

    #[test]
    fn auth_counts_login_attempts_by_status_without_a_status_label_on_entries() {
        let metrics = Arc::new(Metrics::new());
        let mut stage = auth_stage(&metrics);
        let lines = [
            "Feb 20 08:35:22 h sshd[1]: Failed password for root from 192.0.2.1 port 1 ssh2",
            "Feb 20 08:35:23 h sshd[1]: message repeated 4 times: [ Failed password for root from 192.0.2.1 port 1 ssh2]",
            "Feb 20 08:35:24 h sshd[2]: Accepted publickey for ann from 192.0.2.2 port 2 ssh2",
            "Feb 20 08:35:25 h sshd[3]: Invalid user bob from 192.0.2.3",
            "Feb 20 08:35:26 h su[4]: FAILED su for root by ann",
        ];
        for line in lines {
            let mut e = entry(line, &[("job", "auth")]);
            assert_eq!(stage.process(&mut e), Verdict::Keep);
            assert!(e.labels.get("status").is_none(), "{}", e.labels);
            assert_eq!(e.line, line);
        }
        let exposition = metrics.render();
        for series in [
            r#"cvd_login_attempts_total{job="auth",program="sshd",status="failed"} 5"#,
            r#"cvd_login_attempts_total{job="auth",program="sshd",status="success"} 1"#,
            r#"cvd_login_attempts_total{job="auth",program="su",status="failed"} 1"#,
        ] {
            assert!(
                exposition.contains(series),
                "{series} missing in:\n{exposition}"
            );
        }
        assert_eq!(
            exposition
                .lines()
                .filter(|l| l.starts_with("cvd_login_attempts_total{"))
                .count(),
            3,
            "{exposition}"
        );
    }

    #[test]
    fn auth_attaches_event_user_and_source_ip_as_structured_metadata() {
        let metrics = Arc::new(Metrics::new());
        let mut stage = auth_stage(&metrics);
        let mut e = entry(
            "Feb 20 08:35:22 h sshd[1]: Failed password for root from 192.0.2.1 port 1 ssh2",
            &[("job", "auth")],
        );
        stage.process(&mut e);
        let mut metadata = e.structured_metadata.clone();
        metadata.sort();
        assert_eq!(
            metadata,
            [
                ("event".to_string(), "login_failure".to_string()),
                ("source_ip".to_string(), "192.0.2.1".to_string()),
                ("user".to_string(), "root".to_string()),
            ]
        );
        assert_eq!(e.labels.to_string(), r#"{job="auth", program="sshd"}"#);
    }
}
