//! Prometheus relabeling of target labels (`relabel_configs`), as Promtail applies it before
//! a target's files are found.

use std::collections::BTreeMap;

use regex::Regex;

use crate::config::{RelabelAction, RelabelConfig};
use crate::model::labels::{LabelSet, is_valid_label_name};

/// What a job's relabeling makes of one stream's labels (a message's, a container's).
pub enum Relabeled {
    /// A rule dropped the stream.
    Dropped,
    /// Nothing is left once `__` labels and empty values go: Loki refuses such a stream
    /// (Promtail would send it anyway), so the sources count and drop it.
    NoLabels,
    Labels(LabelSet),
}

/// Runs `relabelers` over `labels` and keeps the stream's labels: no `__` ones, no empty
/// values (an empty value is no label, as in Prometheus' label builder).
pub fn stream_labels(relabelers: &[Relabeler], mut labels: BTreeMap<String, String>) -> Relabeled {
    if !relabelers.iter().all(|r| r.apply(&mut labels)) {
        return Relabeled::Dropped;
    }
    let set = LabelSet::from_pairs(
        labels
            .into_iter()
            .filter(|(k, v)| !k.starts_with("__") && !v.is_empty()),
    );
    if set.is_empty() {
        Relabeled::NoLabels
    } else {
        Relabeled::Labels(set)
    }
}

/// Cheap to clone (the regex is shared): a job hands its rules to whichever source it starts.
#[derive(Clone)]
pub struct Relabeler {
    source_labels: Vec<String>,
    separator: String,
    target_label: String,
    regex: Regex,
    modulus: u64,
    replacement: String,
    action: RelabelAction,
}

impl Relabeler {
    /// Validates one rule; errors are (key inside the rule, what was expected).
    pub fn new(cfg: &RelabelConfig) -> Result<Self, (String, String)> {
        // Prometheus anchors relabel regexes at both ends.
        let regex = Regex::new(&format!("^(?:{})$", cfg.regex)).map_err(|e| {
            (
                "regex".to_string(),
                format!("invalid regular expression: {e}"),
            )
        })?;
        let needs_target = matches!(
            cfg.action,
            RelabelAction::Replace
                | RelabelAction::Hashmod
                | RelabelAction::Lowercase
                | RelabelAction::Uppercase
                | RelabelAction::KeepEqual
                | RelabelAction::DropEqual
        );
        if needs_target && cfg.target_label.is_empty() {
            return Err((
                "target_label".into(),
                format!("expected a target_label for action {:?}", cfg.action),
            ));
        }
        if cfg.action == RelabelAction::Hashmod && cfg.modulus == 0 {
            return Err((
                "modulus".into(),
                "expected a modulus above 0 for action hashmod".into(),
            ));
        }
        if matches!(cfg.action, RelabelAction::Replace | RelabelAction::Hashmod)
            && !cfg.target_label.contains('$')
            && !is_valid_label_name(&cfg.target_label)
        {
            return Err((
                "target_label".into(),
                format!("invalid label name {:?}", cfg.target_label),
            ));
        }
        Ok(Self {
            source_labels: cfg.source_labels.clone(),
            separator: cfg.separator.clone(),
            target_label: cfg.target_label.clone(),
            regex,
            modulus: cfg.modulus,
            replacement: cfg.replacement.clone(),
            action: cfg.action,
        })
    }

    /// Applies the rule; `false` means the target is dropped.
    pub fn apply(&self, labels: &mut BTreeMap<String, String>) -> bool {
        let value = self
            .source_labels
            .iter()
            .map(|l| labels.get(l).map(String::as_str).unwrap_or(""))
            .collect::<Vec<_>>()
            .join(&self.separator);
        match self.action {
            RelabelAction::Keep => return self.regex.is_match(&value),
            RelabelAction::Drop => return !self.regex.is_match(&value),
            RelabelAction::KeepEqual => {
                return labels.get(&self.target_label).map(String::as_str) == Some(value.as_str());
            }
            RelabelAction::DropEqual => {
                return labels.get(&self.target_label).map(String::as_str) != Some(value.as_str());
            }
            RelabelAction::Replace => {
                if let Some(caps) = self.regex.captures(&value) {
                    let mut target = String::new();
                    caps.expand(&go_template(&self.target_label), &mut target);
                    let mut replaced = String::new();
                    caps.expand(&go_template(&self.replacement), &mut replaced);
                    if !is_valid_label_name(&target) {
                        return true;
                    }
                    if replaced.is_empty() {
                        labels.remove(&target);
                    } else {
                        labels.insert(target, replaced);
                    }
                }
            }
            RelabelAction::Lowercase => {
                labels.insert(self.target_label.clone(), value.to_lowercase());
            }
            RelabelAction::Uppercase => {
                labels.insert(self.target_label.clone(), value.to_uppercase());
            }
            RelabelAction::Hashmod => {
                let digest = stable_hash(&value);
                labels.insert(
                    self.target_label.clone(),
                    (digest % self.modulus).to_string(),
                );
            }
            RelabelAction::Labelmap => {
                let mapped: Vec<(String, String)> = labels
                    .iter()
                    .filter_map(|(k, v)| {
                        self.regex.captures(k).map(|caps| {
                            let mut name = String::new();
                            caps.expand(&go_template(&self.replacement), &mut name);
                            (name, v.clone())
                        })
                    })
                    .collect();
                labels.extend(mapped);
            }
            RelabelAction::Labeldrop => labels.retain(|k, _| !self.regex.is_match(k)),
            RelabelAction::Labelkeep => labels.retain(|k, _| self.regex.is_match(k)),
        }
        true
    }
}

/// Go's `$1`/`${1}` expansion is the regex crate's, except that the regex crate reads `$1x` as
/// a group named `1x`; Prometheus users write `${1}x` for that, so only bare `$N` followed by a
/// name character needs bracing to keep Go's meaning.
fn go_template(t: &str) -> String {
    let mut out = String::with_capacity(t.len() + 4);
    let bytes = t.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'$' && i + 1 < bytes.len() && bytes[i + 1].is_ascii_digit() {
            let start = i + 1;
            let mut end = start;
            while end < bytes.len() && bytes[end].is_ascii_digit() {
                end += 1;
            }
            out.push_str("${");
            out.push_str(&t[start..end]);
            out.push('}');
            i = end;
        } else {
            out.push(bytes[i] as char);
            i += 1;
        }
    }
    out
}

/// Prometheus hashmod takes the MD5 sum; file targets only need a shard that is stable across
/// restarts, which FNV-1a gives without a hashing dependency. Shard numbers therefore differ
/// from Prometheus' for the same input (documented in the README).
fn stable_hash(s: &str) -> u64 {
    let mut h: u64 = 0xcbf29ce484222325;
    for b in s.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x100000001b3);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn replace_with_capture_groups() {
        let r = Relabeler::new(&RelabelConfig {
            source_labels: vec!["__path__".into()],
            regex: "/var/log/(.*)\\.log".into(),
            target_label: "app".into(),
            ..RelabelConfig::default()
        })
        .unwrap();
        let mut l = labels(&[("__path__", "/var/log/nginx.log")]);
        assert!(r.apply(&mut l));
        assert_eq!(l["app"], "nginx");
    }

    #[test]
    fn stream_labels_keep_public_non_empty_labels_and_tell_drops_from_empty_streams() {
        let host = Relabeler::new(&RelabelConfig {
            source_labels: vec!["__syslog_message_hostname".into()],
            target_label: "host".into(),
            ..RelabelConfig::default()
        })
        .unwrap();
        let kept = stream_labels(
            std::slice::from_ref(&host),
            labels(&[
                ("__syslog_message_hostname", "web1"),
                ("app", ""),
                ("job", "s"),
            ]),
        );
        let Relabeled::Labels(set) = kept else {
            panic!("labels expected");
        };
        assert_eq!(set.get("host"), Some("web1"));
        assert_eq!(set.get("job"), Some("s"));
        assert_eq!(set.get("app"), None);
        assert!(set.get("__syslog_message_hostname").is_none());
        let only_meta = stream_labels(&[], labels(&[("__meta_x", "1"), ("empty", "")]));
        assert!(matches!(only_meta, Relabeled::NoLabels));
        let drop = Relabeler::new(&RelabelConfig {
            source_labels: vec!["job".into()],
            regex: "s".into(),
            action: RelabelAction::Drop,
            ..RelabelConfig::default()
        })
        .unwrap();
        let dropped = stream_labels(&[drop], labels(&[("job", "s")]));
        assert!(matches!(dropped, Relabeled::Dropped));
    }

    #[test]
    fn keep_and_drop_filter_targets() {
        let keep = Relabeler::new(&RelabelConfig {
            source_labels: vec!["job".into()],
            regex: "web".into(),
            action: RelabelAction::Keep,
            ..RelabelConfig::default()
        })
        .unwrap();
        assert!(keep.apply(&mut labels(&[("job", "web")])));
        assert!(!keep.apply(&mut labels(&[("job", "webx")])));
    }

    #[test]
    fn labeldrop_removes_matching_names() {
        let r = Relabeler::new(&RelabelConfig {
            regex: "tmp_.*".into(),
            action: RelabelAction::Labeldrop,
            ..RelabelConfig::default()
        })
        .unwrap();
        let mut l = labels(&[("tmp_a", "1"), ("job", "x")]);
        r.apply(&mut l);
        assert_eq!(l, labels(&[("job", "x")]));
    }

    #[test]
    fn invalid_regex_names_the_key() {
        let err = Relabeler::new(&RelabelConfig {
            regex: "(".into(),
            target_label: "x".into(),
            ..RelabelConfig::default()
        })
        .err()
        .unwrap();
        assert_eq!(err.0, "regex");
    }
}
