//! Which extracted keys the stages after a given stage may read, worked out once from the
//! configs when a pipeline is built, so that an extracting stage can skip writing values no
//! later stage reads (issue 21: the nginx regex wrote ten groups a line where the labels and
//! timestamp stages read three).
//!
//! Only stages whose reads are plain in their config are known; any other stage after a
//! point (templates, match selectors, metrics, pack, presets, ...) may read any key, and
//! then nothing is skipped there. It must not build or run stages.

use std::collections::HashSet;

use super::stages::StageConfig;

/// The keys `config` reads from the extracted map, or `None` when it may read any.
fn reads(config: &StageConfig) -> Option<Vec<String>> {
    let mapped = |map: &std::collections::BTreeMap<String, Option<String>>| {
        map.iter()
            .map(|(name, source)| match source.as_deref() {
                None | Some("") => name.clone(),
                Some(s) => s.to_owned(),
            })
            .collect()
    };
    Some(match config {
        StageConfig::Labels(c) => mapped(&c.0),
        StageConfig::StructuredMetadata(c) | StageConfig::NonIndexedLabels(c) => mapped(&c.0),
        StageConfig::Timestamp(c) => vec![c.source.clone()],
        StageConfig::Output(c) => vec![c.source.clone()],
        StageConfig::Regex(c) => c.source.iter().cloned().collect(),
        StageConfig::Json(c) => c.source.iter().cloned().collect(),
        StageConfig::StaticLabels(_) | StageConfig::LabelDrop(_) | StageConfig::LabelAllow(_) => {
            Vec::new()
        }
        _ => return None,
    })
}

/// For each stage of `configs`, the keys the stages after it may read (`None`: any key).
pub fn read_after(configs: &[StageConfig]) -> Vec<Option<HashSet<String>>> {
    let mut after: Option<HashSet<String>> = Some(HashSet::new());
    let mut out = vec![None; configs.len()];
    for (i, config) in configs.iter().enumerate().rev() {
        out[i] = after.clone();
        after = match (after, reads(config)) {
            (Some(mut keys), Some(read)) => {
                keys.extend(read);
                Some(keys)
            }
            _ => None,
        };
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn configs(json: &str) -> Vec<StageConfig> {
        serde_json::from_str(json).expect("stage configs")
    }

    fn sorted(keys: &Option<HashSet<String>>) -> Option<Vec<&str>> {
        keys.as_ref().map(|k| {
            let mut v: Vec<&str> = k.iter().map(String::as_str).collect();
            v.sort();
            v
        })
    }

    #[test]
    fn a_regex_followed_by_labels_and_timestamp_needs_only_their_sources() {
        let c = configs(
            r#"[{"regex": {"expression": "(?P<a>x)(?P<b>y)(?P<t>z)"}},
                {"labels": {"a": "", "renamed": "b2"}},
                {"timestamp": {"source": "t", "format": "RFC3339"}}]"#,
        );
        let after = read_after(&c);
        assert_eq!(sorted(&after[0]), Some(vec!["a", "b2", "t"]));
        assert_eq!(sorted(&after[1]), Some(vec!["t"]));
        assert_eq!(sorted(&after[2]), Some(vec![]));
    }

    #[test]
    fn a_stage_that_may_read_anything_keeps_every_key_before_it() {
        let c = configs(
            r#"[{"regex": {"expression": "(?P<a>x)"}},
                {"template": {"source": "out", "template": "{{ .a }}"}},
                {"labels": {"a": ""}}]"#,
        );
        let after = read_after(&c);
        assert_eq!(after[0], None);
        assert_eq!(sorted(&after[1]), Some(vec!["a"]));
    }

    #[test]
    fn a_second_regex_reads_its_source_key() {
        let c = configs(
            r#"[{"regex": {"expression": "(?P<msg>.*)"}},
                {"regex": {"source": "msg", "expression": "(?P<o>x)"}},
                {"labels": {"o": ""}}]"#,
        );
        assert_eq!(sorted(&read_after(&c)[0]), Some(vec!["msg", "o"]));
    }
}
