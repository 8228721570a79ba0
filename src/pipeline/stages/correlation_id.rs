//! `correlation_id`: a tailward extension that finds a request's correlation id in the
//! extracted map and attaches it as structured metadata `correlation_id`, so one LogQL query
//! (`{job=~".+"} | correlation_id="..."`) finds the nginx request and every app line it
//! caused. Never a label: ids are unique per request and would explode the index.
//!
//! ```yaml
//! - correlation_id: {}            # the default keys, length and characters
//! - correlation_id:
//!     sources: [request_id, trace_id]
//!     max_length: 64
//!     pattern: '^[0-9a-f]{32}$'
//! ```
//!
//! `sources` (default `correlation_id`, `extra_correlation_id`, `request_id`,
//! `x_correlation_id`, `http_x_correlation_id`, `trace_id`) are tried in order; the first
//! with a value (not empty, not nginx's `-`) that passes the checks is attached. The checks:
//! at most `max_length` bytes (default 128) and, without `pattern`, only ASCII letters,
//! digits and `-_.:/+=@`; with `pattern`, a regex the whole id must match. A value that
//! fails is not attached and is counted in
//! `tailward_correlation_id_invalid_total{job, reason="too_long"|"bad_characters"}`.
//! It must not change labels, the line or the extracted map.

use serde::{Deserialize, Serialize};

use super::StageError;
use crate::pipeline::{BuildContext, PipelineEntry, Stage, Verdict, value_as_string};

pub const DEFAULT_SOURCES: [&str; 6] = [
    "correlation_id",
    "extra_correlation_id",
    "request_id",
    "x_correlation_id",
    "http_x_correlation_id",
    "trace_id",
];
const DEFAULT_MAX_LENGTH: usize = 128;
const METADATA_NAME: &str = "correlation_id";

#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CorrelationIdConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sources: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_length: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pattern: Option<String>,
}

pub struct CorrelationIdStage {
    sources: Vec<String>,
    max_length: usize,
    pattern: Option<regex::Regex>,
    too_long: prometheus::IntCounter,
    bad_characters: prometheus::IntCounter,
}

impl CorrelationIdStage {
    pub fn new(cfg: &CorrelationIdConfig, ctx: &BuildContext) -> Result<Self, StageError> {
        let sources = match &cfg.sources {
            None => DEFAULT_SOURCES.iter().map(|s| s.to_string()).collect(),
            Some(list) if list.is_empty() => {
                return Err(StageError::new("sources", "expected at least one key"));
            }
            Some(list) => {
                if let Some(i) = list.iter().position(String::is_empty) {
                    return Err(StageError::new(
                        format!("sources[{i}]"),
                        "expected a non-empty extracted key",
                    ));
                }
                list.clone()
            }
        };
        let max_length = match cfg.max_length {
            None => DEFAULT_MAX_LENGTH,
            Some(0) => return Err(StageError::new("max_length", "expected at least 1")),
            Some(n) => n,
        };
        let pattern = match &cfg.pattern {
            None => None,
            Some(p) => Some(
                crate::pipeline::go::regex::compile(p)
                    .map_err(|e| StageError::new("pattern", format!("invalid regex: {e}")))?,
            ),
        };
        let invalid = &ctx.metrics.pipeline.invalid_correlation_ids;
        Ok(Self {
            sources,
            max_length,
            pattern,
            too_long: invalid.with_label_values(&[&ctx.job, "too_long"]),
            bad_characters: invalid.with_label_values(&[&ctx.job, "bad_characters"]),
        })
    }

    fn allowed(&self, id: &str) -> bool {
        match &self.pattern {
            Some(p) => p
                .find(id)
                .is_some_and(|m| m.start() == 0 && m.end() == id.len()),
            None => id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.:/+=@".contains(&b)),
        }
    }
}

impl Stage for CorrelationIdStage {
    fn process(&mut self, entry: &mut PipelineEntry) -> Verdict {
        let mut found = None;
        for key in &self.sources {
            let Some(value) = entry.extracted.get(key).and_then(value_as_string) else {
                continue;
            };
            let id = value.trim();
            if id.is_empty() || id == "-" {
                continue;
            }
            if id.len() > self.max_length {
                self.too_long.inc();
                continue;
            }
            if !self.allowed(id) {
                self.bad_characters.inc();
                continue;
            }
            found = Some(id.to_string());
            break;
        }
        if let Some(id) = found {
            entry.set_structured_metadata(METADATA_NAME, id);
        }
        Verdict::Keep
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Metrics;
    use crate::pipeline::stages::testing::entry;
    use serde_json::{Value, json};
    use std::sync::Arc;

    fn build(yaml: &str) -> (CorrelationIdStage, BuildContext) {
        let ctx = BuildContext::new("app", Arc::new(Metrics::new()));
        let cfg: CorrelationIdConfig = crate::pipeline::go::yaml::from_str(yaml).unwrap();
        (CorrelationIdStage::new(&cfg, &ctx).unwrap(), ctx)
    }

    fn run(stage: &mut CorrelationIdStage, pairs: &[(&str, Value)]) -> PipelineEntry {
        let mut e = entry("line", &[("job", "app")]);
        for (k, v) in pairs {
            e.extracted.insert(k.to_string(), v.clone());
        }
        stage.process(&mut e);
        e
    }

    fn metadata(e: &PipelineEntry) -> Option<&str> {
        e.structured_metadata
            .iter()
            .find(|(k, _)| k == "correlation_id")
            .map(|(_, v)| v.as_str())
    }

    #[test]
    fn first_default_key_with_a_value_becomes_metadata_never_a_label() {
        let (mut s, _) = build("{}");
        let e = run(
            &mut s,
            &[
                ("request_id", json!("-")),
                ("http_x_correlation_id", json!("9f1c2d3e")),
                ("trace_id", json!("later")),
            ],
        );
        assert_eq!(metadata(&e), Some("9f1c2d3e"));
        assert_eq!(e.labels.to_string(), r#"{job="app"}"#);
        let e = run(&mut s, &[("extra_correlation_id", json!("abc-1"))]);
        assert_eq!(metadata(&e), Some("abc-1"));
        assert_eq!(metadata(&run(&mut s, &[])), None);
    }

    #[test]
    fn invalid_ids_are_counted_by_reason_and_the_next_key_is_tried() {
        let (mut s, ctx) = build("max_length: 8");
        let e = run(
            &mut s,
            &[
                ("correlation_id", json!("0123456789")),
                ("request_id", json!("a b")),
                ("trace_id", json!("ok-1")),
            ],
        );
        assert_eq!(metadata(&e), Some("ok-1"));
        let text = ctx.metrics.render();
        assert!(
            text.contains(
                r#"tailward_correlation_id_invalid_total{job="app",reason="too_long"} 1"#
            ),
            "{text}"
        );
        assert!(text.contains(
            r#"tailward_correlation_id_invalid_total{job="app",reason="bad_characters"} 1"#
        ));
    }

    #[test]
    fn configured_sources_and_pattern_replace_the_defaults() {
        let (mut s, _) = build("sources: [rid]\npattern: '[0-9a-f]{4}'");
        assert_eq!(
            metadata(&run(&mut s, &[("rid", json!("beef"))])),
            Some("beef")
        );
        assert_eq!(metadata(&run(&mut s, &[("rid", json!("beef0"))])), None);
        assert_eq!(
            metadata(&run(&mut s, &[("correlation_id", json!("beef"))])),
            None
        );
    }

    #[test]
    fn config_errors_name_the_key() {
        let ctx = BuildContext::new("app", Arc::new(Metrics::new()));
        for (yaml, key) in [
            ("sources: []", "sources"),
            ("sources: [a, '']", "sources[1]"),
            ("max_length: 0", "max_length"),
            ("pattern: '('", "pattern"),
        ] {
            let cfg: CorrelationIdConfig = crate::pipeline::go::yaml::from_str(yaml).unwrap();
            let err = CorrelationIdStage::new(&cfg, &ctx).err().unwrap();
            assert_eq!(err.key, key, "{yaml}");
        }
        assert!(crate::pipeline::go::yaml::from_str::<CorrelationIdConfig>("source: [a]").is_err());
    }
}
