//! Prometheus' `file_sd_configs`: targets read from JSON or YAML files (a list of
//! `{targets: [...], labels: {...}}` groups), re-read on change and every `refresh_interval`.

use serde::{Deserialize, Serialize};

use crate::model::units::GoDuration;

impl super::ScrapeConfig {
    /// Whether Promtail's routing sends this job to the file target manager: any
    /// `static_configs` or file-tailing discovery wins over `journal`, `syslog`, `gelf`, ...
    pub fn tails_files(&self) -> bool {
        !self.static_configs.is_empty()
            || !self.file_sd_configs.is_empty()
            || !self.kubernetes_sd_configs.is_empty()
    }
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct FileSdConfig {
    /// Paths of target files; `*` only in the last path segment, which must end in `.json`,
    /// `.yml` or `.yaml` (Prometheus' rule).
    pub files: Vec<String>,
    /// A full re-read this often, besides the one each change to a watched directory
    /// triggers; Prometheus' default is 5m.
    pub refresh_interval: GoDuration,
}

impl Default for FileSdConfig {
    fn default() -> Self {
        Self {
            files: Vec::new(),
            refresh_interval: GoDuration::from_secs(300),
        }
    }
}

/// Prometheus' checks of one config: the failing key (`files[N]`) and what was expected.
pub fn check(config: &FileSdConfig) -> Result<(), (String, String)> {
    if config.files.is_empty() {
        return Err((
            "files".into(),
            "expected at least one file (file service discovery config must contain at least one path name)".into(),
        ));
    }
    for (i, f) in config.files.iter().enumerate() {
        check_file_pattern(f).map_err(|e| (format!("files[{i}]"), e))?;
    }
    Ok(())
}

/// Prometheus' check of a `files` entry: `^[^*]*(\*[^/]*)?\.(json|yml|yaml|JSON|YML|YAML)$`.
pub fn check_file_pattern(pattern: &str) -> Result<(), String> {
    let (stem, ext) = pattern.rsplit_once('.').unwrap_or_default();
    let ext_ok = matches!(ext, "json" | "yml" | "yaml" | "JSON" | "YML" | "YAML");
    let star_ok = match stem.find('*') {
        None => true,
        // No `/` after the first `*`: globbing only in the last path segment.
        Some(at) => !stem[at + 1..].contains('/'),
    };
    if ext_ok && star_ok {
        Ok(())
    } else {
        Err(format!(
            "path name {pattern:?} is not valid for file discovery: expected a .json, .yml or \
             .yaml file, with `*` only in the last path segment"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_sd_job_loads_and_bad_files_are_refused_with_their_key_path() {
        use crate::config::{Overrides, load_str};
        let config = load_str(
            "scrape_configs:\n  - job_name: sd\n    file_sd_configs:\n      - files: [/etc/t/*.json]\n",
            "FILE",
            &Overrides::default(),
        )
        .unwrap();
        let sd = &config.scrape_configs[0].file_sd_configs[0];
        assert_eq!(sd.refresh_interval.0, std::time::Duration::from_secs(300));
        assert!(config.scrape_configs[0].tails_files());
        for (yaml, path) in [
            (
                "files: [/etc/*/t.json]",
                "scrape_configs[0].file_sd_configs[0].files[0]",
            ),
            ("files: []", "scrape_configs[0].file_sd_configs[0].files"),
        ] {
            let err = load_str(
                &format!(
                    "scrape_configs:\n  - job_name: sd\n    file_sd_configs:\n      - {yaml}\n"
                ),
                "FILE",
                &Overrides::default(),
            )
            .unwrap_err();
            assert_eq!(err.key_path, path, "{err}");
        }
    }

    #[test]
    fn file_patterns_follow_prometheus_rule() {
        for ok in [
            "/etc/t/*.json",
            "targets.yml",
            "/a/b/x*y.YAML",
            "/a/t.yaml",
            "/etc/t/**.json",
        ] {
            assert!(check_file_pattern(ok).is_ok(), "{ok}");
        }
        for bad in ["/etc/*/t.json", "/etc/t/*.txt", "t", "/a/*.json.gz"] {
            assert!(check_file_pattern(bad).is_err(), "{bad}");
        }
    }
}
