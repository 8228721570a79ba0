//! Every pipeline stage, one per file: its config struct (Promtail's keys, unknown keys
//! refused), a constructor that validates everything once, and `process`.
//!
//! This file only maps a `pipeline_stages` item (a one-key map such as `json: {...}`) to its
//! stage. Stages must not know about files, clients or each other: a stage made of others
//! (`docker`, `cri`'s parsing, `preset`, `match`) writes them as stage configs and runs them
//! as [`crate::pipeline::nested::NestedStages`]; what several stages share lives at the
//! pipeline level (e.g. [`crate::pipeline::label_sources`]), never in a sibling stage.

pub mod auth_event;
pub mod correlation_id;
pub mod cri;
pub mod decolorize;
pub mod docker;
pub mod drop;
pub mod geoip;
pub mod json;
pub mod labelallow;
pub mod labeldrop;
pub mod labels;
pub mod limit;
pub mod logfmt;
pub mod r#match;
pub mod metrics;
pub mod multiline;
pub mod nginx_access;
pub mod nginx_error;
pub mod output;
pub mod pack;
pub mod preset;
pub mod regex;
pub mod replace;
pub mod sampling;
pub mod static_labels;
pub mod structured_metadata;
pub mod syslog;
pub mod template;
pub mod tenant;
pub mod timestamp;

use serde::{Deserialize, Serialize};

use super::{BuildContext, Stage};

/// One `pipeline_stages` item.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StageConfig {
    Json(json::JsonConfig),
    Regex(regex::RegexConfig),
    Labels(labels::LabelsConfig),
    StaticLabels(static_labels::StaticLabelsConfig),
    Timestamp(timestamp::TimestampConfig),
    Output(output::OutputConfig),
    StructuredMetadata(structured_metadata::StructuredMetadataConfig),
    /// Deprecated alias of `structured_metadata`.
    NonIndexedLabels(structured_metadata::StructuredMetadataConfig),
    /// `docker: {}` or an empty `docker:`.
    Docker(docker::DockerConfig),
    /// `cri: {...}` or an empty `cri:`.
    Cri(Option<cri::CriConfig>),
    Multiline(multiline::MultilineConfig),
    Match(r#match::MatchConfig),
    Drop(drop::DropConfig),
    Sampling(sampling::SamplingConfig),
    Limit(limit::LimitConfig),
    Tenant(tenant::TenantConfig),
    #[serde(rename = "labelallow")]
    LabelAllow(labelallow::LabelAllowConfig),
    #[serde(rename = "labeldrop")]
    LabelDrop(labeldrop::LabelDropConfig),
    Logfmt(logfmt::LogfmtConfig),
    Replace(replace::ReplaceConfig),
    Template(template::TemplateConfig),
    Pack(pack::PackConfig),
    /// `decolorize:`, `decolorize: {}` or `decolorize: null`.
    Decolorize(decolorize::DecolorizeConfig),
    Metrics(metrics::MetricsConfig),
    #[serde(rename = "geoip")]
    GeoIp(geoip::GeoIpConfig),
    /// tailward: a built-in pipeline of `pipelines/`.
    Preset(preset::PresetConfig),
    /// tailward: a correlation id as structured metadata.
    CorrelationId(correlation_id::CorrelationIdConfig),
    /// tailward: nginx access lines of any `log_format`.
    NginxAccess(nginx_access::NginxAccessConfig),
    /// tailward: nginx error log records.
    NginxError(nginx_error::NginxErrorConfig),
    /// tailward: syslog headers (RFC3164, RFC5424, ISO8601).
    Syslog(syslog::SyslogConfig),
    /// tailward: normalised events of auth logs (sshd, sudo, su, PAM, ...).
    AuthEvent(auth_event::AuthEventConfig),
}

/// A stage config error: the key inside the stage's block (empty for the block itself) and
/// what was expected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StageError {
    pub key: String,
    pub message: String,
}

impl StageError {
    pub fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            message: message.into(),
        }
    }
}

impl StageConfig {
    /// The stage's name as written in the config.
    pub fn name(&self) -> &'static str {
        match self {
            StageConfig::Json(_) => "json",
            StageConfig::Regex(_) => "regex",
            StageConfig::Labels(_) => "labels",
            StageConfig::StaticLabels(_) => "static_labels",
            StageConfig::Timestamp(_) => "timestamp",
            StageConfig::Output(_) => "output",
            StageConfig::StructuredMetadata(_) => "structured_metadata",
            StageConfig::NonIndexedLabels(_) => "non_indexed_labels",
            StageConfig::Docker(_) => "docker",
            StageConfig::Cri(_) => "cri",
            StageConfig::Multiline(_) => "multiline",
            StageConfig::Match(_) => "match",
            StageConfig::Drop(_) => "drop",
            StageConfig::Sampling(_) => "sampling",
            StageConfig::Limit(_) => "limit",
            StageConfig::Tenant(_) => "tenant",
            StageConfig::LabelAllow(_) => "labelallow",
            StageConfig::LabelDrop(_) => "labeldrop",
            StageConfig::Logfmt(_) => "logfmt",
            StageConfig::Replace(_) => "replace",
            StageConfig::Template(_) => "template",
            StageConfig::Pack(_) => "pack",
            StageConfig::Decolorize(_) => "decolorize",
            StageConfig::Metrics(_) => "metrics",
            StageConfig::GeoIp(_) => "geoip",
            StageConfig::Preset(_) => "preset",
            StageConfig::NginxAccess(_) => "nginx_access",
            StageConfig::NginxError(_) => "nginx_error",
            StageConfig::CorrelationId(_) => "correlation_id",
            StageConfig::Syslog(_) => "syslog",
            StageConfig::AuthEvent(_) => "auth_event",
        }
    }

    pub fn build(&self, ctx: &BuildContext) -> Result<Box<dyn Stage>, StageError> {
        Ok(match self {
            StageConfig::Json(c) => Box::new(json::JsonStage::new(c)?),
            StageConfig::Regex(c) => Box::new(regex::RegexStage::new(c)?),
            StageConfig::Labels(c) => Box::new(labels::LabelsStage::new(c)?),
            StageConfig::StaticLabels(c) => Box::new(static_labels::StaticLabelsStage::new(c)?),
            StageConfig::Timestamp(c) => Box::new(timestamp::TimestampStage::new(c)?),
            StageConfig::Output(c) => Box::new(output::OutputStage::new(c)?),
            StageConfig::StructuredMetadata(c) | StageConfig::NonIndexedLabels(c) => {
                Box::new(structured_metadata::StructuredMetadataStage::new(c)?)
            }
            StageConfig::Docker(c) => Box::new(docker::DockerStage::new(c, ctx)?),
            StageConfig::Cri(c) => {
                Box::new(cri::CriStage::new(&c.clone().unwrap_or_default(), ctx)?)
            }
            StageConfig::Multiline(c) => Box::new(multiline::MultilineStage::new(c)?),
            StageConfig::Match(c) => Box::new(r#match::MatchStage::new(c, ctx)?),
            StageConfig::Drop(c) => Box::new(drop::DropStage::new(c)?),
            StageConfig::Sampling(c) => Box::new(sampling::SamplingStage::new(c)?),
            StageConfig::Limit(c) => Box::new(limit::LimitStage::new(c, ctx)?),
            StageConfig::Tenant(c) => Box::new(tenant::TenantStage::new(c)?),
            StageConfig::LabelAllow(c) => Box::new(labelallow::LabelAllowStage::new(c)?),
            StageConfig::LabelDrop(c) => Box::new(labeldrop::LabelDropStage::new(c)?),
            StageConfig::Logfmt(c) => Box::new(logfmt::LogfmtStage::new(c)?),
            StageConfig::Replace(c) => Box::new(replace::ReplaceStage::new(c, ctx)?),
            StageConfig::Template(c) => Box::new(template::TemplateStage::new(c, ctx)?),
            StageConfig::Pack(c) => Box::new(pack::PackStage::new(c)?),
            StageConfig::Decolorize(c) => Box::new(decolorize::DecolorizeStage::new(c)?),
            StageConfig::Metrics(c) => Box::new(metrics::MetricsStage::new(c, ctx)?),
            StageConfig::GeoIp(c) => Box::new(geoip::GeoIpStage::new(c)?),
            StageConfig::Preset(c) => Box::new(preset::PresetStage::new(c, ctx)?),
            StageConfig::CorrelationId(c) => {
                Box::new(correlation_id::CorrelationIdStage::new(c, ctx)?)
            }
            StageConfig::NginxAccess(c) => Box::new(nginx_access::NginxAccessStage::new(c, ctx)?),
            StageConfig::NginxError(c) => Box::new(nginx_error::NginxErrorStage::new(c, ctx)?),
            StageConfig::Syslog(c) => Box::new(syslog::SyslogStage::new(c)?),
            StageConfig::AuthEvent(c) => Box::new(auth_event::AuthEventStage::new(c, ctx)?),
        })
    }
}

/// Test support shared by the stage unit tests.
#[cfg(test)]
pub(crate) mod testing {
    use chrono::{DateTime, FixedOffset};

    use crate::model::labels::LabelSet;
    use crate::pipeline::PipelineEntry;

    pub fn read_time() -> DateTime<FixedOffset> {
        DateTime::parse_from_rfc3339("2024-01-02T03:04:05.123456789Z").unwrap()
    }

    /// A build context with a registry of its own, for stages built alone.
    pub fn ctx() -> crate::pipeline::BuildContext {
        crate::pipeline::BuildContext::new(
            "test",
            std::sync::Arc::new(crate::metrics::Metrics::new()),
        )
    }

    pub fn entry(line: &str, labels: &[(&str, &str)]) -> PipelineEntry {
        PipelineEntry::new(
            LabelSet::from_pairs(labels.iter().copied()),
            line.to_string(),
            read_time(),
        )
    }
}
