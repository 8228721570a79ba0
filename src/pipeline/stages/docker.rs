//! `docker`: parses Docker's json-file log lines (`{"log": ..., "stream": ..., "time": ...}`).
//!
//! Promtail's sugar, written as the stage list it stands for and built like any nested list
//! (see [`NestedStages`]): `json` (`output: log`, `stream: stream`, `timestamp: time`),
//! `labels` (`stream`), `timestamp` (`timestamp`, RFC3339Nano) and `output` (`output`). A
//! line that is not JSON passes through unchanged and keeps its timestamp (`fudge`, as the
//! timestamp stage does), as in Promtail. The config is `docker: {}` or an empty `docker:`;
//! Promtail ignores any keys given, this stage refuses them. It owns nothing but that list.

use std::time::Instant;

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::ser::{SerializeMap, Serializer};
use serde::{Deserialize, Serialize};

use super::StageError;
use crate::model::ack::AckToken;
use crate::pipeline::nested::NestedStages;
use crate::pipeline::{BuildContext, PipelineEntry, Stage, Verdict};

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

/// The stages `docker` stands for, as a config would list them.
fn stage_configs() -> serde_json::Value {
    serde_json::json!([
        {"json": {"expressions": {"output": "log", "stream": "stream", "timestamp": "time"}}},
        {"labels": {"stream": null}},
        {"timestamp": {"source": "timestamp", "format": "RFC3339Nano"}},
        {"output": {"source": "output"}},
    ])
}

pub struct DockerStage {
    body: NestedStages,
}

impl DockerStage {
    pub fn new(_cfg: &DockerConfig, ctx: &BuildContext) -> Result<Self, StageError> {
        Ok(Self {
            body: NestedStages::from_listed(stage_configs(), ctx)?,
        })
    }
}

impl Stage for DockerStage {
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::metrics::Metrics;
    use crate::pipeline::stages::testing::{entry, read_time};

    fn process(line: &str) -> PipelineEntry {
        let ctx = BuildContext::new("docker", Arc::new(Metrics::new()));
        let mut s = DockerStage::new(&DockerConfig, &ctx).unwrap();
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
