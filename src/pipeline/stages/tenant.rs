//! `tenant`: sets the reserved label `__tenant_id__`, which the client turns into the
//! `X-Scope-OrgID` header (and strips from the stream labels).
//!
//! Exactly one of `label` (an entry label), `source` (an extracted value, converted as
//! Promtail's `getString` does) or `value` (a fixed tenant). A missing or empty tenant
//! leaves the entry as it is, so the client's own `tenant_id` applies.

use serde::{Deserialize, Serialize};

use super::StageError;
use crate::model::labels::TENANT_LABEL;
use crate::pipeline::{PipelineEntry, Stage, Verdict, value_as_string};

#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TenantConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
}

pub struct TenantStage {
    from: TenantFrom,
}

enum TenantFrom {
    Label(String),
    Source(String),
    Value(String),
}

impl TenantStage {
    pub fn new(cfg: &TenantConfig) -> Result<Self, StageError> {
        // Promtail treats an empty string as not set.
        let set = |o: &Option<String>| o.as_deref().filter(|s| !s.is_empty()).map(str::to_string);
        let from = match (set(&cfg.label), set(&cfg.source), set(&cfg.value)) {
            (Some(l), None, None) => TenantFrom::Label(l),
            (None, Some(s), None) => TenantFrom::Source(s),
            (None, None, Some(v)) => TenantFrom::Value(v),
            (None, None, None) => {
                return Err(StageError::new(
                    "",
                    "expected one of label, source or value",
                ));
            }
            _ => {
                return Err(StageError::new(
                    "",
                    "label, source and value are exclusive: set only one",
                ));
            }
        };
        Ok(Self { from })
    }
}

impl Stage for TenantStage {
    fn process(&mut self, entry: &mut PipelineEntry) -> Verdict {
        let tenant = match &self.from {
            TenantFrom::Label(name) => entry.labels.get(name).map(str::to_string),
            TenantFrom::Source(key) => entry
                .extracted
                .get(key)
                .and_then(value_as_string)
                .map(|v| v.into_owned()),
            TenantFrom::Value(v) => {
                if entry.labels.get(TENANT_LABEL) == Some(v.as_str()) {
                    return Verdict::Keep;
                }
                Some(v.clone())
            }
        };
        if let Some(t) = tenant.filter(|t| !t.is_empty()) {
            entry.labels.insert(TENANT_LABEL.to_string(), t);
        }
        Verdict::Keep
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::stages::testing::entry;
    use serde_json::json;

    fn stage(yaml: &str) -> TenantStage {
        TenantStage::new(&crate::pipeline::go::yaml::from_str(yaml).unwrap()).unwrap()
    }

    #[test]
    fn value_sets_a_fixed_tenant() {
        let mut s = stage("{value: team-a}");
        let mut e = entry("x", &[("job", "app")]);
        assert_eq!(s.process(&mut e), Verdict::Keep);
        assert_eq!(e.labels.get(TENANT_LABEL), Some("team-a"));
    }

    #[test]
    fn source_reads_the_extracted_value_as_a_string() {
        let mut s = stage("{source: customer}");
        let mut e = entry("x", &[]);
        e.extracted.insert("customer".into(), json!(42));
        s.process(&mut e);
        assert_eq!(e.labels.get(TENANT_LABEL), Some("42"));
    }

    #[test]
    fn label_copies_an_entry_label() {
        let mut s = stage("{label: namespace}");
        let mut e = entry("x", &[("namespace", "prod")]);
        s.process(&mut e);
        assert_eq!(e.labels.get(TENANT_LABEL), Some("prod"));
    }

    #[test]
    fn missing_empty_or_non_string_source_leaves_the_tenant_alone() {
        let mut s = stage("{source: customer}");
        let mut e = entry("x", &[(TENANT_LABEL, "before")]);
        s.process(&mut e);
        e.extracted.insert("customer".into(), json!(""));
        s.process(&mut e);
        e.extracted.insert("customer".into(), json!({"id": 1}));
        s.process(&mut e);
        assert_eq!(e.labels.get(TENANT_LABEL), Some("before"));
        let mut by_label = stage("{label: namespace}");
        let mut no_label = entry("x", &[]);
        by_label.process(&mut no_label);
        assert_eq!(no_label.labels.get(TENANT_LABEL), None);
    }

    #[test]
    fn exactly_one_option_is_required() {
        for yaml in [
            "{}",
            "{value: ''}",
            "{value: a, source: b}",
            "{label: a, source: b}",
            "{label: a, value: b}",
        ] {
            let cfg: TenantConfig = crate::pipeline::go::yaml::from_str(yaml).unwrap();
            assert!(TenantStage::new(&cfg).is_err(), "{yaml}");
        }
        assert!(crate::pipeline::go::yaml::from_str::<TenantConfig>("{tenant: a}").is_err());
    }
}
