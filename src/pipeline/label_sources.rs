//! `name: source` maps, as `labels` and `structured_metadata` read them: each key a name to
//! set (a valid label name), each value the extracted key to take it from, empty meaning the
//! name itself.
//!
//! Owns validating such a map once at load, and which values may be set. It must not read
//! entries.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::model::labels::is_valid_label_name;
use crate::pipeline::stages::StageError;

/// Resolves a `name: source` map as `labels` and `structured_metadata` read it: every name a
/// valid label name, an empty source meaning the name itself. `what` names the map's keys in
/// errors.
pub fn resolve(
    map: &BTreeMap<String, Option<String>>,
    what: &str,
) -> Result<Vec<(String, String)>, StageError> {
    if map.is_empty() {
        return Err(StageError::new("", format!("expected at least one {what}")));
    }
    map.iter()
        .map(|(name, source)| {
            if !is_valid_label_name(name) {
                return Err(StageError::new(
                    name.clone(),
                    format!("invalid {what} {name:?}: expected [a-zA-Z_][a-zA-Z0-9_]*"),
                ));
            }
            let source = match source.as_deref() {
                None | Some("") => name.clone(),
                Some(s) => s.to_string(),
            };
            Ok((name.clone(), source))
        })
        .collect()
}

/// Whether `value` may become a label or structured metadata value. Promtail's labels and
/// structured_metadata stages skip a value that is not valid UTF-8
/// (`model.LabelValue.IsValid`, labels.go `processLabelsConfigs`), keeping the other labels.
/// Here every line is UTF-8 by the time stages see it: bytes that were not are read as
/// U+FFFD, the replacement character, so a value holding one is what Promtail would have
/// skipped. (A U+FFFD written as such in the source, valid UTF-8 Promtail keeps, is skipped
/// too; it is nearly always the trace of an earlier lossy conversion.)
pub fn is_valid_label_value(value: &str) -> bool {
    !value.contains('\u{FFFD}')
}

/// Which of its fields a parsing stage attaches as structured metadata: `false` (none, the
/// default), `true` (the stage's documented default set) or a list of field names.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(untagged)]
pub enum MetadataFields {
    Defaults(bool),
    Names(Vec<String>),
}

impl Default for MetadataFields {
    fn default() -> Self {
        MetadataFields::Defaults(false)
    }
}

impl MetadataFields {
    /// The names to attach, `defaults` standing for `true`; every name must be a valid label
    /// name (the error names the offending one).
    pub fn resolve(&self, defaults: &[&str]) -> Result<Vec<String>, StageError> {
        let names: Vec<String> = match self {
            MetadataFields::Defaults(false) => Vec::new(),
            MetadataFields::Defaults(true) => defaults.iter().map(|n| n.to_string()).collect(),
            MetadataFields::Names(names) => names.clone(),
        };
        for (i, name) in names.iter().enumerate() {
            if !is_valid_label_name(name) {
                return Err(StageError::new(
                    format!("structured_metadata[{i}]"),
                    format!(
                        "invalid structured metadata name {name:?}: expected [a-zA-Z_][a-zA-Z0-9_]*"
                    ),
                ));
            }
        }
        Ok(names)
    }
}
