//! Warnings about a stage list that is valid but probably not what its author meant, given
//! when the list is built (agent start and reload) and logged by [`crate::pipeline::build_stages`].
//!
//! - `pack` with `ingest_timestamp: true` (its default) sets the entry's timestamp to the
//!   time of packing, replacing what an earlier stage set from the line (`timestamp`,
//!   `syslog`, `cri`, `docker`, or a preset or `match` holding one). Promtail does the same,
//!   silently; the warning names both stages and the fix, `ingest_timestamp: false`.
//!
//! Owns deciding what to warn about from stage configs. It must not build stages or refuse
//! a config: a warning never stops anything.

use super::presets;
use super::stages::StageConfig;

/// `(index of the stage warned about, message)` for the list `configs`.
pub fn warnings(configs: &[StageConfig]) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut timestamp_set_by: Option<(usize, &'static str)> = None;
    for (i, cfg) in configs.iter().enumerate() {
        if let StageConfig::Pack(pack) = cfg
            && pack.ingest_timestamp.unwrap_or(true)
            && let Some((at, name)) = timestamp_set_by
        {
            out.push((
                i,
                format!(
                    "pack replaces the timestamp stage {at} ({name}) set with the time of packing \
                     (ingest_timestamp defaults to true); set ingest_timestamp: false to keep it"
                ),
            ));
        }
        if sets_timestamp(cfg) {
            timestamp_set_by = Some((i, cfg.name()));
        }
    }
    out
}

/// Whether the stage may set the entry's timestamp from the line.
fn sets_timestamp(cfg: &StageConfig) -> bool {
    match cfg {
        StageConfig::Timestamp(_)
        | StageConfig::Syslog(_)
        | StageConfig::Cri(_)
        | StageConfig::Docker(_) => true,
        StageConfig::Match(m) => m.stages.iter().any(sets_timestamp),
        StageConfig::Preset(p) => presets::expand(&p.name, &p.parameters)
            .map(|stages| stages.iter().any(sets_timestamp))
            .unwrap_or(false),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn configs(yaml: &str) -> Vec<StageConfig> {
        let value: serde_json::Value = crate::pipeline::go::yaml::from_str(yaml).unwrap();
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn pack_after_a_stage_that_set_the_timestamp_is_warned_about() {
        let w = warnings(&configs(
            "- json: {expressions: {ts: ts}}\n- timestamp: {source: ts, format: RFC3339}\n- pack: {labels: [a]}\n",
        ));
        assert_eq!(w.len(), 1);
        assert_eq!(w[0].0, 2);
        assert!(w[0].1.contains("stage 1 (timestamp)"), "{}", w[0].1);
        assert!(w[0].1.contains("ingest_timestamp: false"), "{}", w[0].1);
        for yaml in [
            "- preset: nginx_access\n- pack: {}\n",
            "- cri: {}\n- pack: {}\n",
            "- match: {selector: '{a=\"b\"}', stages: [{timestamp: {source: t, format: Unix}}]}\n- pack: {}\n",
        ] {
            assert_eq!(warnings(&configs(yaml)).len(), 1, "{yaml}");
        }
    }

    #[test]
    fn no_warning_without_an_earlier_timestamp_or_with_ingest_timestamp_false() {
        for yaml in [
            "- pack: {labels: [a]}\n- timestamp: {source: ts, format: RFC3339}\n",
            "- timestamp: {source: ts, format: RFC3339}\n- pack: {ingest_timestamp: false}\n",
            "- json: {expressions: {a: a}}\n- pack: {}\n",
        ] {
            assert!(warnings(&configs(yaml)).is_empty(), "{yaml}");
        }
    }
}
