//! File service discovery (Prometheus' `file_sd_configs`): targets listed in JSON or YAML
//! files, a list of `{targets: [...], labels: {...}}` groups each. Every target becomes a
//! label set with `__address__` (the target string), the group's labels and
//! `__meta_filepath` (the file, as the glob found it); relabeling and `__path__` then make
//! it a file target exactly as a static config's ([`discovery::Rules`]).
//!
//! Owns reading the target files, when (each change in a watched directory, and every
//! `refresh_interval`), and keeping a file's last good groups when it stops parsing (logged
//! and counted in `prometheus_sd_file_read_errors_total`). It hands each new target set to
//! [`discovery::run_with_updates`]; it must not start tailers itself.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use notify::{RecursiveMode, Watcher};
use serde::Deserialize;
use tokio::sync::{mpsc, watch};

use crate::config::ScrapeConfig;
use crate::metrics::Metrics;
use crate::model::labels::is_valid_label_name;
use crate::sources::files::discovery::{self, Rules, Target};
use crate::sources::relabel::Relabeler;
use crate::sources::targets_view::{DroppedView, TargetsView};

/// One target group of a file.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Group {
    #[serde(default)]
    pub targets: Vec<String>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

/// Reads one target file, JSON or YAML by its extension (in any case), strictly: unknown
/// keys, a null group and invalid label names are errors, as in Prometheus.
pub fn read_groups(path: &Path) -> Result<Vec<Group>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    let ext = path
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    let groups: Option<Vec<Option<Group>>> = match ext.as_str() {
        "json" => serde_json::from_str(&text).map_err(|e| e.to_string())?,
        "yml" | "yaml" => crate::config::yaml::from_str(&text).map_err(|e| e.to_string())?,
        other => return Err(format!("retrieval not possible for extension {other:?}")),
    };
    let mut out = Vec::new();
    for (i, g) in groups.unwrap_or_default().into_iter().enumerate() {
        let g = g.ok_or_else(|| format!("nil target group item found (group {i})"))?;
        if let Some(bad) = g.labels.keys().find(|k| !is_valid_label_name(k)) {
            return Err(format!("group {i}: {bad:?} is not a valid label name"));
        }
        out.push(g);
    }
    Ok(out)
}

/// The files a `files` entry names now: Go's `filepath.Glob` of the last path segment
/// (`*`, `?`, `[...]`), the directory taken literally.
pub fn expand(pattern: &str) -> Vec<PathBuf> {
    let path = Path::new(pattern);
    let Some(name) = path.file_name().map(|n| n.to_string_lossy().into_owned()) else {
        return Vec::new();
    };
    if !name.contains(['*', '?', '[']) {
        return if path.is_file() {
            vec![path.to_path_buf()]
        } else {
            Vec::new()
        };
    }
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
    let Ok(matcher) = globset::GlobBuilder::new(&name)
        .literal_separator(true)
        .build()
        .map(|g| g.compile_matcher())
    else {
        return Vec::new();
    };
    let Ok(entries) = std::fs::read_dir(dir.unwrap_or(Path::new("."))) else {
        return Vec::new();
    };
    let mut found: Vec<PathBuf> = entries
        .flatten()
        .filter(|e| matcher.is_match(e.file_name()))
        .map(|e| match dir {
            Some(d) => d.join(e.file_name()),
            None => PathBuf::from(e.file_name()),
        })
        .filter(|p| p.is_file())
        .collect();
    found.sort();
    found
}

/// One job's file discovery.
pub struct FileSd {
    job: ScrapeConfig,
    relabelers: Vec<Relabeler>,
    metrics: Arc<Metrics>,
    view: TargetsView,
    /// Each file's last good groups.
    groups: BTreeMap<PathBuf, Vec<Group>>,
    /// Targets last handed on, for `promtail_targets_active_total`.
    active: usize,
}

impl FileSd {
    pub fn new(
        job: &ScrapeConfig,
        relabelers: Vec<Relabeler>,
        metrics: Arc<Metrics>,
        view: TargetsView,
    ) -> Self {
        FileSd {
            job: job.clone(),
            relabelers,
            metrics,
            view,
            groups: BTreeMap::new(),
            active: 0,
        }
    }

    /// Reads the files now and builds the job's targets: its static configs' and its
    /// files'. Called at start; [`Self::run`] then keeps them current.
    pub fn discover(&mut self) -> Result<(Vec<Target>, Vec<DroppedView>), String> {
        self.refresh();
        let found = self.targets()?;
        self.active = found.0.len();
        Ok(found)
    }

    /// Re-reads every file; whether any file's groups changed. A file that fails keeps its
    /// last good groups; one no longer found loses them.
    fn refresh(&mut self) -> bool {
        let mut seen = BTreeSet::new();
        let mut changed = false;
        for sd in &self.job.file_sd_configs {
            for pattern in &sd.files {
                for file in expand(pattern) {
                    if !seen.insert(file.clone()) {
                        continue;
                    }
                    match read_groups(&file) {
                        Ok(groups) => {
                            if self.groups.get(&file) != Some(&groups) {
                                changed = true;
                                self.groups.insert(file, groups);
                            }
                        }
                        Err(e) => {
                            self.metrics.file_sd.read_errors.inc();
                            tracing::error!(job = %self.job.job_name, file = %file.display(), error = %e, "error reading file_sd target file; keeping its last good targets");
                        }
                    }
                }
            }
        }
        let before = self.groups.len();
        self.groups.retain(|f, _| seen.contains(f));
        changed || self.groups.len() != before
    }

    /// The static configs' targets, then each file's, relabeled.
    fn targets(&self) -> Result<(Vec<Target>, Vec<DroppedView>), String> {
        let (mut targets, mut dropped) =
            discovery::discover(&self.job, &self.relabelers, &self.metrics)?;
        let hostname = discovery::hostname();
        let rules = Rules {
            job: &self.job.job_name,
            relabelers: &self.relabelers,
            metrics: &self.metrics,
            hostname: &hostname,
        };
        for (file, groups) in &self.groups {
            for group in groups {
                for address in &group.targets {
                    let mut labels = group.labels.clone();
                    labels.insert("__address__".into(), address.clone());
                    labels.insert("__meta_filepath".into(), file.display().to_string());
                    match rules.target(labels, &mut dropped) {
                        Ok(Some(t)) => targets.push(t),
                        Ok(None) => {}
                        Err(e) => {
                            tracing::warn!(job = %self.job.job_name, file = %file.display(), error = %e, "file_sd target skipped");
                        }
                    }
                }
            }
        }
        Ok((targets, dropped))
    }

    /// The directories whose changes may change the targets.
    fn dirs(&self) -> BTreeSet<PathBuf> {
        self.job
            .file_sd_configs
            .iter()
            .flat_map(|sd| sd.files.iter())
            .map(|f| match Path::new(f).parent() {
                Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
                _ => PathBuf::from("."),
            })
            .collect()
    }

    /// Re-reads on every change in the files' directories and every `refresh_interval`,
    /// sending each changed target set to `updates`, until `stop`.
    pub async fn run(
        mut self,
        updates: watch::Sender<Vec<Arc<Target>>>,
        mut stop: watch::Receiver<bool>,
    ) {
        let initial = self.active;
        let refresh = self
            .job
            .file_sd_configs
            .iter()
            .map(|sd| sd.refresh_interval.0)
            .filter(|d| !d.is_zero())
            .min()
            .unwrap_or(Duration::from_secs(300));
        // Only events on the target files count: other files in their directories (a
        // log written there, say) do not cause re-reads.
        let targets_files: Vec<globset::GlobMatcher> = self
            .job
            .file_sd_configs
            .iter()
            .flat_map(|sd| sd.files.iter())
            .filter_map(|f| {
                globset::GlobBuilder::new(f)
                    .literal_separator(true)
                    .build()
                    .ok()
                    .map(|g| g.compile_matcher())
            })
            .collect();
        let (event_tx, mut events) = mpsc::unbounded_channel::<()>();
        let mut watcher = match notify::recommended_watcher(
            move |res: notify::Result<notify::Event>| {
                if let Ok(ev) = res
                    && changes_content(&ev.kind)
                    && (ev.paths.is_empty()
                        || ev
                            .paths
                            .iter()
                            .any(|p| targets_files.iter().any(|m| m.is_match(p))))
                {
                    let _ = event_tx.send(());
                }
            },
        ) {
            Ok(w) => Some(w),
            Err(e) => {
                tracing::warn!(error = %e, "inotify unavailable; file_sd target files are re-read every refresh_interval only");
                None
            }
        };
        let mut watched = BTreeSet::new();
        // Once the directories are watched, one read catches what changed since `discover`.
        let mut first = true;
        loop {
            if let Some(w) = watcher.as_mut() {
                for dir in self.dirs() {
                    if !watched.contains(&dir) && w.watch(&dir, RecursiveMode::NonRecursive).is_ok()
                    {
                        watched.insert(dir);
                    }
                }
            }
            if *stop.borrow() {
                break;
            }
            if !std::mem::take(&mut first) {
                tokio::select! {
                    r = stop.changed() => {
                        if r.is_err() || *stop.borrow() {
                            break;
                        }
                    }
                    _ = tokio::time::sleep(refresh) => {}
                    Some(()) = events.recv() => {
                        // A writer's burst of events is one re-read.
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        while events.try_recv().is_ok() {}
                    }
                }
            }
            if !self.refresh() {
                continue;
            }
            match self.targets() {
                Ok((targets, dropped)) => {
                    discovery::publish(&self.view, &self.job.job_name, &targets, dropped);
                    let targets_active = &self.metrics.files.targets_active;
                    targets_active.add(targets.len() as f64 - self.active as f64);
                    self.active = targets.len();
                    if updates
                        .send(targets.into_iter().map(Arc::new).collect())
                        .is_err()
                    {
                        break;
                    }
                }
                Err(e) => {
                    tracing::error!(job = %self.job.job_name, error = %e, "file_sd targets not applied");
                }
            }
        }
        // The job's stop takes off the count it started with.
        self.metrics
            .files
            .targets_active
            .add(initial as f64 - self.active as f64);
    }
}

/// Prometheus re-reads on any event but a bare chmod; reads (ours too) change nothing.
fn changes_content(kind: &notify::EventKind) -> bool {
    use notify::EventKind;
    use notify::event::{AccessKind, AccessMode, ModifyKind};
    match kind {
        EventKind::Modify(ModifyKind::Metadata(_)) => false,
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
        EventKind::Access(_) => false,
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_and_yaml_groups_read_strictly() {
        let dir = tempfile::tempdir().unwrap();
        let json = dir.path().join("t.json");
        std::fs::write(
            &json,
            r#"[{"targets":["localhost"],"labels":{"__path__":"/var/log/a.log","env":"prod"}},{"labels":{"x":"y"}}]"#,
        )
        .unwrap();
        let groups = read_groups(&json).unwrap();
        assert_eq!(groups.len(), 2);
        assert_eq!(groups[0].targets, ["localhost"]);
        assert_eq!(groups[0].labels["env"], "prod");
        assert!(groups[1].targets.is_empty());
        let yaml = dir.path().join("t.YML");
        std::fs::write(
            &yaml,
            "- targets: [a, b]\n  labels:\n    __path__: /var/log/*.log\n    port: 80\n",
        )
        .unwrap();
        let groups = read_groups(&yaml).unwrap();
        assert_eq!(groups[0].targets, ["a", "b"]);
        assert_eq!(groups[0].labels["port"], "80");
        for (name, text) in [
            ("unknown.json", r#"[{"targets":[],"lables":{}}]"#),
            ("null.yaml", "- targets: [a]\n-\n"),
            (
                "badlabel.json",
                r#"[{"targets":["a"],"labels":{"a-b":"c"}}]"#,
            ),
            ("broken.json", r#"[{"targets":["a"]"#),
            ("notalist.yml", "targets: [a]\n"),
        ] {
            let p = dir.path().join(name);
            std::fs::write(&p, text).unwrap();
            assert!(read_groups(&p).is_err(), "{name}");
        }
    }

    #[test]
    fn globs_expand_in_the_last_segment_only() {
        let dir = tempfile::tempdir().unwrap();
        for f in ["a.json", "b.json", "c.yml"] {
            std::fs::write(dir.path().join(f), "[]").unwrap();
        }
        std::fs::create_dir(dir.path().join("sub.json")).unwrap();
        let got = expand(&format!("{}/*.json", dir.path().display()));
        assert_eq!(got, [dir.path().join("a.json"), dir.path().join("b.json")]);
        assert_eq!(
            expand(&format!("{}/c.yml", dir.path().display())),
            [dir.path().join("c.yml")]
        );
        assert!(expand(&format!("{}/none.yml", dir.path().display())).is_empty());
    }

    #[test]
    fn malformed_file_keeps_last_good_targets_and_is_counted() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("t.json");
        let log = dir.path().join("a.log");
        std::fs::write(
            &file,
            format!(
                r#"[{{"targets":["h"],"labels":{{"__path__":"{}","env":"a"}}}}]"#,
                log.display()
            ),
        )
        .unwrap();
        let job: ScrapeConfig = crate::config::yaml::from_str(&format!(
            "job_name: j\nfile_sd_configs:\n  - files: ['{}/*.json']\n",
            dir.path().display()
        ))
        .unwrap();
        let metrics = Arc::new(Metrics::new());
        let mut sd = FileSd::new(&job, Vec::new(), metrics.clone(), TargetsView::default());
        let (targets, _) = sd.discover().unwrap();
        assert_eq!(targets.len(), 1);
        assert_eq!(targets[0].labels.get("env"), Some("a"));
        assert_eq!(
            targets[0]
                .discovered
                .get("__meta_filepath")
                .map(String::as_str),
            Some(file.to_str().unwrap())
        );
        assert_eq!(targets[0].discovered["__address__"], "h");
        std::fs::write(&file, "[{").unwrap();
        assert!(!sd.refresh());
        assert_eq!(metrics.file_sd.read_errors.get(), 1);
        assert_eq!(sd.targets().unwrap().0[0].labels.get("env"), Some("a"));
        std::fs::remove_file(&file).unwrap();
        assert!(sd.refresh());
        assert!(sd.targets().unwrap().0.is_empty());
    }
}
