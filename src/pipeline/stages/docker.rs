//! `docker`: parses Docker's json-file log lines (`{"log": ..., "stream": ..., "time": ...}`).
//!
//! Promtail's sugar, built from the stages themselves: `json` (`output: log`,
//! `stream: stream`, `timestamp: time`), `labels` (`stream`), `timestamp` (`timestamp`,
//! RFC3339Nano) and `output` (`output`). A line that is not JSON passes through unchanged and
//! keeps its timestamp (`fudge`, as the timestamp stage does), as in Promtail. The config is
//! `docker: {}` or an empty `docker:`; Promtail ignores any keys given, this stage refuses
//! them. It owns nothing but the composition.

use std::collections::BTreeMap;

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::ser::{SerializeMap, Serializer};
use serde::{Deserialize, Serialize};

use super::StageError;
use super::json::{JsonConfig, JsonStage};
use super::labels::{LabelsConfig, LabelsStage};
use super::output::{OutputConfig, OutputStage};
use super::timestamp::{TimestampConfig, TimestampStage};
use crate::pipeline::{PipelineEntry, Stage, Verdict};

/// No options: read from `{}` or nothing, written as `{}`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DockerConfig;

impl<'de> Deserialize<'de> for DockerConfig {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct NoOptions;
        impl<'de> Visitor<'de> for NoOptions {
            type Value = DockerConfig;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an empty map: the docker stage takes no options")
            }
            fn visit_unit<E: de::Error>(self) -> Result<DockerConfig, E> {
                Ok(DockerConfig)
            }
            fn visit_none<E: de::Error>(self) -> Result<DockerConfig, E> {
                Ok(DockerConfig)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<DockerConfig, A::Error> {
                match map.next_key::<String>()? {
                    None => Ok(DockerConfig),
                    Some(key) => Err(de::Error::custom(format!(
                        "unknown key `{key}`: the docker stage takes no options, write `docker: {{}}`"
                    ))),
                }
            }
        }
        d.deserialize_any(NoOptions)
    }
}

impl Serialize for DockerConfig {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_map(Some(0))?.end()
    }
}

pub struct DockerStage {
    json: JsonStage,
    labels: LabelsStage,
    timestamp: TimestampStage,
    output: OutputStage,
}

impl DockerStage {
    pub fn new(_cfg: &DockerConfig) -> Result<Self, StageError> {
        let expressions: BTreeMap<String, Option<String>> = [
            ("output", "log"),
            ("stream", "stream"),
            ("timestamp", "time"),
        ]
        .into_iter()
        .map(|(key, path)| (key.to_string(), Some(path.to_string())))
        .collect();
        Ok(Self {
            json: JsonStage::new(&JsonConfig {
                expressions,
                ..JsonConfig::default()
            })?,
            labels: LabelsStage::new(&LabelsConfig(
                [("stream".to_string(), None)].into_iter().collect(),
            ))?,
            timestamp: TimestampStage::new(&TimestampConfig {
                source: "timestamp".into(),
                format: "RFC3339Nano".into(),
                ..TimestampConfig::default()
            })?,
            output: OutputStage::new(&OutputConfig {
                source: "output".into(),
            })?,
        })
    }
}

impl Stage for DockerStage {
    fn process(&mut self, entry: &mut PipelineEntry) -> Verdict {
        let stages: [&mut dyn Stage; 4] = [
            &mut self.json,
            &mut self.labels,
            &mut self.timestamp,
            &mut self.output,
        ];
        for stage in stages {
            match stage.process(entry) {
                Verdict::Keep => {}
                other => return other,
            }
        }
        Verdict::Keep
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::stages::testing::{entry, read_time};

    fn process(line: &str) -> PipelineEntry {
        let mut s = DockerStage::new(&DockerConfig).unwrap();
        let mut e = entry(line, &[("job", "docker")]);
        assert_eq!(s.process(&mut e), Verdict::Keep);
        e
    }

    #[test]
    fn log_stream_and_time_become_line_label_and_timestamp() {
        let e = process(
            r#"{"log":"level=info msg=\"Adding target\" key=\"{job=\\\"x\\\"}\"\n","stream":"stderr","time":"2019-04-30T02:12:41.8443515Z"}"#,
        );
        assert_eq!(
            e.line,
            "level=info msg=\"Adding target\" key=\"{job=\\\"x\\\"}\"\n"
        );
        assert_eq!(e.labels.to_string(), r#"{job="docker", stream="stderr"}"#);
        assert_eq!(
            e.timestamp
                .to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
            "2019-04-30T02:12:41.844351500Z"
        );
    }

    #[test]
    fn invalid_time_keeps_read_time_but_still_sets_line_and_stream() {
        let e = process(r#"{"log":"log message\n","stream":"stderr","time":"hi!"}"#);
        assert_eq!(e.line, "log message\n");
        assert_eq!(e.labels.get("stream"), Some("stderr"));
        assert_eq!(e.timestamp, read_time());
    }

    #[test]
    fn non_json_line_passes_unchanged() {
        let e = process("i'm not json!");
        assert_eq!(e.line, "i'm not json!");
        assert_eq!(e.labels.to_string(), r#"{job="docker"}"#);
        assert_eq!(e.timestamp, read_time());
    }

    #[test]
    fn config_accepts_empty_map_or_nothing_and_refuses_keys() {
        let parse = serde_json::from_value::<DockerConfig>;
        assert_eq!(parse(serde_json::json!({})).unwrap(), DockerConfig);
        assert_eq!(parse(serde_json::Value::Null).unwrap(), DockerConfig);
        let err = parse(serde_json::json!({"log": "x"})).unwrap_err();
        assert!(err.to_string().contains("unknown key `log`"), "{err}");
        assert_eq!(serde_json::to_string(&DockerConfig).unwrap(), "{}");
    }
}
