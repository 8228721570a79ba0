//! Discovery: which files each job tails.
//!
//! Owns turning `static_configs` (+ `relabel_configs`) into targets, expanding their
//! `__path__` globs (`**`, `{a,b}`, classes) minus `__path_exclude__`, and noticing new files
//! (inotify on the directories, plus a full re-glob every `target_config.sync_period`). It
//! starts and stops one tailer per file; it must not read file contents.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use globset::{GlobBuilder, GlobMatcher};
use notify::{RecursiveMode, Watcher};
use tokio::sync::{mpsc, watch};

use crate::config::ScrapeConfig;
use crate::metrics::Metrics;
use crate::model::labels::LabelSet;
use crate::sources::files::tailer::TailerSet;
use crate::sources::relabel::Relabeler;
use crate::sources::targets_view::{DroppedView, TargetView, TargetsView};

/// Compiles a `__path__` pattern the way Promtail's doublestar reads it: `*` stays within one
/// path segment, `**` spans segments, `{a,b}` alternates.
pub fn compile_glob(pattern: &str) -> Result<GlobMatcher, String> {
    GlobBuilder::new(pattern)
        .literal_separator(true)
        .backslash_escape(true)
        .empty_alternates(true)
        .build()
        .map(|g| g.compile_matcher())
        .map_err(|e| format!("invalid glob pattern {pattern:?}: {e}"))
}

/// A set of files to tail, sharing labels.
pub struct Target {
    pub path_pattern: String,
    matcher: GlobMatcher,
    exclude: Option<GlobMatcher>,
    /// Labels after relabeling, without `__`-prefixed ones.
    pub labels: LabelSet,
    /// Labels before relabeling, for `/service-discovery`.
    pub discovered: BTreeMap<String, String>,
}

impl Target {
    /// A target of `pattern` (made absolute) minus `exclude`, for sources that discover
    /// targets of their own (Kubernetes).
    pub fn new(
        pattern: &str,
        exclude: Option<&str>,
        labels: LabelSet,
        discovered: BTreeMap<String, String>,
    ) -> Result<Target, String> {
        let path_pattern = absolute(pattern);
        Ok(Target {
            matcher: compile_glob(&path_pattern)?,
            exclude: exclude.map(|e| compile_glob(&absolute(e))).transpose()?,
            path_pattern,
            labels,
            discovered,
        })
    }

    /// What makes two targets the same one, as Promtail keys them: the pattern, the labels
    /// and the exclusion.
    pub fn dedup_key(&self) -> String {
        let mut key = self.path_pattern.clone();
        key.push(':');
        self.labels.render_into(&mut key);
        if let Some(e) = &self.exclude {
            key.push(':');
            key.push_str(e.glob().glob());
        }
        key
    }

    pub fn matches(&self, path: &Path) -> bool {
        self.matcher.is_match(path) && !self.exclude.as_ref().is_some_and(|e| e.is_match(path))
    }

    /// Expands the glob now.
    pub fn glob(&self) -> Vec<PathBuf> {
        self.glob_and_dirs().0
    }

    /// Expands the glob now; also returns the directories read to do so, where a new file
    /// or directory can add a match.
    pub fn glob_and_dirs(&self) -> (Vec<PathBuf>, Vec<PathBuf>) {
        self.glob_and_dirs_with(&mut DirListings::default())
    }

    /// As [`Target::glob_and_dirs`], reading each directory once per `listings`: the
    /// targets of one round share their directories' listings (a thousand pod targets
    /// all read `/var/log/pods`).
    pub fn glob_and_dirs_with(&self, listings: &mut DirListings) -> (Vec<PathBuf>, Vec<PathBuf>) {
        let base = literal_base(&self.path_pattern);
        let unbounded = self.path_pattern.contains("**");
        let depth = Path::new(&self.path_pattern)
            .components()
            .count()
            .saturating_sub(base.components().count());
        let mut found = Vec::new();
        let mut dirs = Vec::new();
        if depth == 0 {
            // A literal path: Promtail tails it without globbing.
            if base.is_file() && self.matches(&base) {
                found.push(base);
            }
            return (found, dirs);
        }
        // Without `**` each level of the walk can only enter directories whose name matches
        // that segment of the pattern: `/var/log/pods/*<uid>/<container>/*.log` reads one
        // pod's directory, not every pod's.
        // A segment that is no glob of its own (an alternation across `/`) turns this off.
        let segments: Vec<GlobMatcher> = if unbounded {
            Vec::new()
        } else {
            Path::new(&self.path_pattern)
                .components()
                .skip(base.components().count())
                .map(|c| compile_glob(&c.as_os_str().to_string_lossy()).ok())
                .collect::<Option<Vec<_>>>()
                .unwrap_or_default()
        };
        walk(
            &base,
            if unbounded { usize::MAX } else { depth },
            &segments,
            listings,
            &mut dirs,
            &mut |p| {
                if self.matches(p) {
                    found.push(p.to_path_buf());
                }
            },
        );
        found.sort();
        (found, dirs)
    }

    /// The directories whose changes can add files to this target: those of `files`, those
    /// the glob read (`walked`, so a file in a new subdirectory is seen at once) and the
    /// literal base.
    pub fn watch_dirs(&self, files: &[PathBuf], walked: &[PathBuf]) -> BTreeSet<PathBuf> {
        let mut dirs: BTreeSet<PathBuf> = files
            .iter()
            .filter_map(|f| f.parent().map(Path::to_path_buf))
            .chain(walked.iter().cloned())
            .collect();
        let base = literal_base(&self.path_pattern);
        let base_dir = if base.is_dir() {
            base
        } else {
            base.parent().map(Path::to_path_buf).unwrap_or(base)
        };
        if base_dir.is_dir() {
            dirs.insert(base_dir);
        }
        dirs
    }
}

/// The longest leading part of `pattern` without glob syntax.
fn literal_base(pattern: &str) -> PathBuf {
    let mut base = PathBuf::new();
    for comp in Path::new(pattern).components() {
        let s = comp.as_os_str().to_string_lossy();
        if s.contains(['*', '?', '[', '{']) {
            break;
        }
        base.push(comp);
    }
    base
}

/// Directory listings read during one discovery round: name, and whether a directory or
/// a file (a symlink to a file counts as a file; one to a directory is not followed, as it
/// could loop).
#[derive(Default)]
pub struct DirListings {
    dirs: std::collections::HashMap<PathBuf, Option<Listing>>,
}

/// A directory's entries: (name, is a directory).
type Listing = Arc<[(std::ffi::OsString, bool)]>;

impl DirListings {
    fn list(&mut self, dir: &Path) -> Option<Listing> {
        if let Some(l) = self.dirs.get(dir) {
            return l.clone();
        }
        let listing = std::fs::read_dir(dir).ok().map(|entries| {
            entries
                .flatten()
                .filter_map(|entry| {
                    let ft = entry.file_type().ok()?;
                    if ft.is_dir() {
                        Some((entry.file_name(), true))
                    } else if ft.is_file() || (ft.is_symlink() && entry.path().is_file()) {
                        Some((entry.file_name(), false))
                    } else {
                        None
                    }
                })
                .collect::<Vec<_>>()
                .into()
        });
        self.dirs.insert(dir.to_path_buf(), listing.clone());
        listing
    }
}

/// Visits the files under `dir` down to `depth` levels; with `segments` (one matcher per
/// level) only directories whose name matches their level's segment are entered.
fn walk(
    dir: &Path,
    depth: usize,
    segments: &[GlobMatcher],
    listings: &mut DirListings,
    dirs: &mut Vec<PathBuf>,
    visit: &mut dyn FnMut(&Path),
) {
    if depth == 0 {
        return;
    }
    let Some(entries) = listings.list(dir) else {
        return;
    };
    dirs.push(dir.to_path_buf());
    for (name, is_dir) in entries.iter() {
        if *is_dir {
            if let Some(seg) = segments.first()
                && segments.len() > 1
                && !seg.is_match(name)
            {
                continue;
            }
            let rest = segments.get(1..).unwrap_or_default();
            walk(&dir.join(name), depth - 1, rest, listings, dirs, visit);
        } else {
            visit(&dir.join(name));
        }
    }
}

/// Builds the targets of one scrape config: each static config's labels, relabeled; targets
/// without `__path__` or dropped by relabeling are counted and skipped.
pub fn targets_of(
    job: &ScrapeConfig,
    relabelers: &[Relabeler],
    metrics: &Metrics,
) -> Result<Vec<Target>, String> {
    discover(job, relabelers, metrics).map(|(targets, _)| targets)
}

/// As [`targets_of`], also returning the targets that were dropped and why.
pub fn discover(
    job: &ScrapeConfig,
    relabelers: &[Relabeler],
    metrics: &Metrics,
) -> Result<(Vec<Target>, Vec<DroppedView>), String> {
    let hostname = hostname();
    let mut targets = Vec::new();
    let mut dropped = Vec::new();
    for sc in &job.static_configs {
        let hosts: Vec<String> = if sc.targets.is_empty() {
            vec!["localhost".into()]
        } else {
            sc.targets.clone()
        };
        for host in hosts {
            let mut labels: BTreeMap<String, String> = sc.labels.clone();
            labels.insert("__address__".into(), host);
            let rules = Rules {
                job: &job.job_name,
                relabelers,
                metrics,
                hostname: &hostname,
            };
            if let Some(t) = rules.target(labels, &mut dropped)? {
                targets.push(t);
            }
        }
    }
    Ok((targets, dropped))
}

/// What turns a discovered label set into a target: the job's relabeling and the checks
/// Promtail makes after it (`__host__`, `__path__`). Shared by static configs and
/// discovery mechanisms ([`super::file_sd`]).
pub struct Rules<'a> {
    pub job: &'a str,
    pub relabelers: &'a [Relabeler],
    pub metrics: &'a Metrics,
    /// This host's name, for `__host__`.
    pub hostname: &'a str,
}

impl Rules<'_> {
    /// `labels` (with `__address__` and any `__meta_*`) relabeled into a target; `None`
    /// (recorded in `dropped` and counted) when relabeling drops it, `__host__` names
    /// another host or there is no `__path__`.
    pub fn target(
        &self,
        mut labels: BTreeMap<String, String>,
        dropped: &mut Vec<DroppedView>,
    ) -> Result<Option<Target>, String> {
        labels
            .entry("job".into())
            .or_insert_with(|| self.job.to_string());
        let discovered = labels.clone();
        let mut record_drop = |reason: &'static str| {
            self.metrics
                .files
                .targets_failed
                .with_label_values(&[reason])
                .inc();
            dropped.push(DroppedView {
                discovered: discovered.clone(),
                reason,
            });
        };
        if !apply_relabel(self.relabelers, &mut labels) {
            record_drop("dropped");
            return Ok(None);
        }
        if let Some(h) = labels.get("__host__")
            && h != self.hostname
        {
            record_drop("wrong_host");
            return Ok(None);
        }
        let Some(pattern) = labels
            .get("__path__")
            .filter(|p| !p.is_empty())
            .map(|p| absolute(p))
        else {
            tracing::info!(job = %self.job, labels = ?discovered, "no path for target (no __path__ label); skipping it");
            record_drop("no_path");
            return Ok(None);
        };
        let matcher = compile_glob(&pattern)?;
        let exclude = match labels.get("__path_exclude__").filter(|p| !p.is_empty()) {
            Some(p) => Some(compile_glob(&absolute(p))?),
            None => None,
        };
        let public = LabelSet::from_pairs(
            labels
                .iter()
                .filter(|(k, _)| !k.starts_with("__"))
                .map(|(k, v)| (k.clone(), v.clone())),
        );
        Ok(Some(Target {
            path_pattern: pattern,
            matcher,
            exclude,
            labels: public,
            discovered,
        }))
    }
}

/// Publishes a job's targets for `/targets` and `/service-discovery`.
pub fn publish(view: &TargetsView, job: &str, targets: &[Target], dropped: Vec<DroppedView>) {
    let targets = targets
        .iter()
        .map(|t| TargetView {
            discovered: t.discovered.clone(),
            labels: t.labels.clone(),
            path_pattern: t.path_pattern.clone(),
        })
        .collect();
    view.set_targets(job, targets, dropped);
}

/// Positions and the `filename` label use absolute paths; a relative pattern is taken from
/// the directory the agent runs in.
fn absolute(pattern: &str) -> String {
    if Path::new(pattern).is_absolute() {
        return pattern.to_string();
    }
    match std::env::current_dir() {
        Ok(cwd) => cwd.join(pattern).display().to_string(),
        Err(_) => pattern.to_string(),
    }
}

fn apply_relabel(rules: &[Relabeler], labels: &mut BTreeMap<String, String>) -> bool {
    rules.iter().all(|r| r.apply(labels))
}

pub fn hostname() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| {
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .ok()
                .map(|s| s.trim().to_string())
        })
        .unwrap_or_else(|| "localhost".into())
}

/// A file's labels: its target's plus `filename`.
fn file_labels(target: &Target, path: &Path) -> LabelSet {
    let mut labels = target.labels.clone();
    // Exact for UTF-8 names; others escaped, so two names keep two labels.
    labels.insert(
        "filename".into(),
        crate::delivery::positions::readable(path).into_owned(),
    );
    labels
}

/// New targets came: a tailed file whose labels are now different (or that no target
/// matches, which the next round stops) forgets its labels; its tailer is stopped, to be
/// started again with the new labels once it has finished.
fn relabel_tailed(
    targets: &[Arc<Target>],
    tailed: &mut BTreeMap<PathBuf, LabelSet>,
    tailers: &mut TailerSet,
    relabeled: &mut BTreeSet<PathBuf>,
) {
    tailed.retain(|path, labels| {
        let Some(target) = targets.iter().find(|t| t.matches(path)) else {
            return true;
        };
        let same = *labels == file_labels(target, path);
        if !same {
            tailers.stop(path);
            relabeled.insert(path.clone());
        }
        same
    });
}

/// The job whose files a discovery run reports to the `/targets` page.
pub struct Report {
    pub view: TargetsView,
    pub job: String,
}

/// Runs discovery for one job until `stop` turns true, then hands back its tailers so the
/// caller can wait for them.
pub async fn run(
    targets: Vec<Target>,
    sync_period: Duration,
    tailers: TailerSet,
    stop: watch::Receiver<bool>,
    report: Report,
) -> TailerSet {
    let targets = targets.into_iter().map(Arc::new).collect();
    run_with_updates(targets, None, sync_period, tailers, stop, report).await
}

/// As [`run`], with targets that change while it runs (a discovery mechanism, `file_sd` or
/// Kubernetes, sends each new set through `updates`): files no target matches any more are stopped, new matches
/// started, and a file whose labels changed is read on by a new tailer with its new labels
/// (from where the old one stopped: nothing is read twice or skipped).
pub async fn run_with_updates(
    mut targets: Vec<Arc<Target>>,
    mut updates: Option<watch::Receiver<Vec<Arc<Target>>>>,
    sync_period: Duration,
    mut tailers: TailerSet,
    mut stop: watch::Receiver<bool>,
    report: Report,
) -> TailerSet {
    let (event_tx, mut event_rx) = mpsc::unbounded_channel::<()>();
    let mut watcher = match notify::recommended_watcher(
        move |res: notify::Result<notify::Event>| {
            if let Ok(ev) = res
                && matches!(
                    ev.kind,
                    notify::EventKind::Create(_)
                        | notify::EventKind::Modify(notify::event::ModifyKind::Name(_))
                )
            {
                let _ = event_tx.send(());
            }
        },
    ) {
        Ok(w) => Some(w),
        Err(e) => {
            tracing::warn!(error = %e, "inotify unavailable; new files are found every target_config.sync_period");
            None
        }
    };
    let mut watched: BTreeSet<PathBuf> = BTreeSet::new();
    // Every file the glob matches, kept across rounds: the job's files as the `/targets`
    // page and a reload's settle ([`crate::agent::jobs`]) see them. Labels are built once per file,
    // not every round for files whose tailer keeps running.
    let mut tailed: BTreeMap<PathBuf, LabelSet> = BTreeMap::new();
    // Files whose tailer was stopped for new labels: started again once it has finished.
    let mut relabeled: BTreeSet<PathBuf> = BTreeSet::new();
    loop {
        let mut seen: BTreeSet<PathBuf> = BTreeSet::new();
        let mut changed = false;
        let mut listings = DirListings::default();
        for target in targets.iter() {
            let (files, walked) = target.glob_and_dirs_with(&mut listings);
            if let Some(w) = watcher.as_mut() {
                for dir in target.watch_dirs(&files, &walked) {
                    if !watched.contains(&dir) {
                        match w.watch(&dir, RecursiveMode::NonRecursive) {
                            Ok(()) => {
                                watched.insert(dir);
                            }
                            Err(e) => {
                                tracing::debug!(dir = %dir.display(), error = %e, "cannot watch directory")
                            }
                        }
                    }
                }
            }
            for f in files {
                if !seen.insert(f.clone()) {
                    continue;
                }
                let labels = tailed.entry(f.clone()).or_insert_with(|| {
                    changed = true;
                    file_labels(target, &f)
                });
                if !tailers.is_running(&f) {
                    // Idempotent: a running tailer is kept, a finished one restarted, and a
                    // file still being read under an older name waits for a later round.
                    tailers.start(&f, Arc::new(labels.clone()));
                    relabeled.remove(&f);
                }
            }
        }
        tailed.retain(|p, _| {
            let kept = seen.contains(p);
            if !kept {
                tailers.stop(p);
                changed = true;
            }
            kept
        });
        if changed {
            report.view.set_files(&report.job, tailed.clone());
        }
        // A relabeled file waits only for its old tailer to finish, not a whole period.
        let next_round = if relabeled.is_empty() {
            sync_period
        } else {
            sync_period.min(Duration::from_millis(50))
        };
        let next_targets = async {
            match updates.as_mut() {
                Some(u) => u.changed().await.is_ok(),
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = tokio::time::sleep(next_round) => {}
            ok = next_targets => {
                match ok {
                    true => {
                        let new = updates.as_mut().map(|u| u.borrow_and_update().clone());
                        if let Some(new) = new {
                            targets = new;
                            relabel_tailed(&targets, &mut tailed, &mut tailers, &mut relabeled);
                        }
                    }
                    // The discovery mechanism ended (its job is stopping): keep the last set.
                    false => updates = None,
                }
            }
            Some(()) = event_rx.recv() => {
                // Coalesce bursts of events into one re-glob.
                tokio::time::sleep(Duration::from_millis(20)).await;
                while event_rx.try_recv().is_ok() {}
            }
            _ = stop.changed() => break,
        }
        if *stop.borrow() {
            break;
        }
    }
    tailers
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doublestar_and_alternates_match_like_doublestar() {
        let g = compile_glob("/var/log/**/*.{log,txt}").unwrap();
        assert!(g.is_match("/var/log/a.log"));
        assert!(g.is_match("/var/log/nginx/access.txt"));
        assert!(!g.is_match("/var/log/nginx/access.gz"));
        let single = compile_glob("/var/log/*.log").unwrap();
        assert!(!single.is_match("/var/log/nginx/access.log"));
    }

    #[test]
    fn literal_base_stops_at_first_glob_segment() {
        assert_eq!(literal_base("/var/log/**/*.log"), PathBuf::from("/var/log"));
        assert_eq!(literal_base("/a/b{c,d}/e"), PathBuf::from("/a"));
    }

    #[test]
    fn glob_walks_and_excludes() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("sub/deep")).unwrap();
        for f in ["a.log", "b.gz", "sub/c.log", "sub/deep/d.log"] {
            std::fs::write(dir.path().join(f), "x\n").unwrap();
        }
        let root = dir.path().display();
        let t = Target {
            path_pattern: format!("{root}/**/*.log"),
            matcher: compile_glob(&format!("{root}/**/*.log")).unwrap(),
            exclude: Some(compile_glob(&format!("{root}/sub/deep/*")).unwrap()),
            labels: LabelSet::new(),
            discovered: BTreeMap::new(),
        };
        let names: Vec<String> = t
            .glob()
            .iter()
            .map(|p| p.strip_prefix(dir.path()).unwrap().display().to_string())
            .collect();
        assert_eq!(names, vec!["a.log", "sub/c.log"]);
    }
    /// Whether job `j`'s files in `view` come to satisfy `want` within 5 s.
    async fn files_until(
        view: &TargetsView,
        want: impl Fn(&BTreeMap<PathBuf, LabelSet>) -> bool,
    ) -> bool {
        for _ in 0..500 {
            if view.snapshot().get("j").is_some_and(|j| want(&j.files)) {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        false
    }

    /// The job's files in the view (what a reload waits to be acknowledged before the
    /// successor job reads them) are every file matched, not only those started this round.
    #[tokio::test]
    async fn every_matched_file_stays_in_the_view_across_rounds() {
        use crate::delivery::positions::Positions;
        use crate::sources::files::tailer::{FileAccess, TailOptions};

        let dir = tempfile::tempdir().unwrap();
        let logs = dir.path().join("logs");
        std::fs::create_dir(&logs).unwrap();
        std::fs::write(logs.join("a.log"), "x\n").unwrap();
        let pattern = format!("{}/*.log", logs.display());
        let target = Target {
            path_pattern: pattern.clone(),
            matcher: compile_glob(&pattern).unwrap(),
            exclude: None,
            labels: LabelSet::new(),
            discovered: BTreeMap::new(),
        };
        let metrics = Arc::new(Metrics::new());
        let positions = Positions::open(&dir.path().join("pos.yaml"), false, 1, false).unwrap();
        let (lines, _rx) = mpsc::channel(16);
        let (stop_tx, stop_rx) = watch::channel(false);
        let tailers = TailerSet::new(
            positions.view(),
            lines,
            metrics.clone(),
            TailOptions::from_config(&crate::config::Config::default()),
            stop_rx.clone(),
            FileAccess::new(true, 0, &metrics),
        );
        let view = TargetsView::default();
        let report = Report {
            view: view.clone(),
            job: "j".into(),
        };
        let task = tokio::spawn(run(
            vec![target],
            Duration::from_millis(20),
            tailers,
            stop_rx,
            report,
        ));
        assert!(files_until(&view, |f| f.contains_key(&logs.join("a.log"))).await);
        // b.log is started on a later round, while a.log's tailer keeps running.
        std::fs::write(logs.join("b.log"), "y\n").unwrap();
        assert!(files_until(&view, |f| f.contains_key(&logs.join("b.log"))).await);
        let files = view.snapshot()["j"].files.clone();
        assert_eq!(
            files.keys().cloned().collect::<Vec<_>>(),
            vec![logs.join("a.log"), logs.join("b.log")]
        );
        assert_eq!(
            files[&logs.join("a.log")].get("filename"),
            Some(logs.join("a.log").to_str().unwrap())
        );
        // A file that left the glob leaves the view.
        std::fs::remove_file(logs.join("a.log")).unwrap();
        assert!(files_until(&view, |f| f.keys().eq([&logs.join("b.log")])).await);
        stop_tx.send(true).unwrap();
        task.await.unwrap().join().await;
    }
}
