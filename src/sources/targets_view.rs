//! What discovery found and what is being tailed, per job: the data behind Promtail's
//! `/targets` and `/service-discovery` pages.
//!
//! Owns the shared snapshot. Discovery writes it, the server reads it; it must not start or
//! stop anything, nor read files beyond a `stat` for their size. Jobs that tail files
//! publish targets and files ([`TargetsView::set_targets`], [`TargetsView::set_files`]);
//! jobs that receive or discover other things (a syslog or gelf listener, the push API, a
//! container, a pod) publish [`SourceTargetView`]s ([`TargetsView::set_source_targets`]).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use crate::model::labels::LabelSet;

/// A static config target after relabeling, as discovered.
#[derive(Clone, Debug)]
pub struct TargetView {
    /// Labels before relabeling (with `__address__`, `__path__`, ...).
    pub discovered: BTreeMap<String, String>,
    /// Labels after relabeling, without `__`-prefixed ones.
    pub labels: LabelSet,
    pub path_pattern: String,
}

/// A target relabeling (or a missing `__path__`) dropped.
#[derive(Clone, Debug)]
pub struct DroppedView {
    pub discovered: BTreeMap<String, String>,
    pub reason: &'static str,
}

/// A target that is not a file pattern: a listener, a container, a pod.
#[derive(Clone, Debug)]
pub struct SourceTargetView {
    /// The kind, as Promtail names its target types: `syslog`, `gelf`, `push`, `docker`, ...
    pub kind: &'static str,
    /// What it is, in a few words: `tcp 0.0.0.0:1514`, a container's name, a pod's.
    pub description: String,
    /// Labels before relabeling (for a listener: its config `labels`; its messages add
    /// their own `__<kind>_*` labels, which vary per message).
    pub discovered: BTreeMap<String, String>,
    /// Labels after relabeling, without `__`-prefixed ones.
    pub labels: LabelSet,
    /// Whether it is receiving or reading now.
    pub ready: bool,
}

impl SourceTargetView {
    /// A listener (syslog, gelf, push API): its labels are its config `labels`, as
    /// Promtail's pages show them; each message adds and relabels its own.
    pub fn listener(
        kind: &'static str,
        description: String,
        labels: &BTreeMap<String, String>,
    ) -> Self {
        SourceTargetView {
            kind,
            description,
            discovered: labels.clone(),
            labels: LabelSet::from_pairs(
                labels
                    .iter()
                    .filter(|(k, v)| !k.starts_with("__") && !v.is_empty())
                    .map(|(k, v)| (k.clone(), v.clone())),
            ),
            ready: true,
        }
    }
}

#[derive(Clone, Debug, Default)]
pub struct JobView {
    pub targets: Vec<TargetView>,
    pub dropped: Vec<DroppedView>,
    /// Files being tailed, with their labels.
    pub files: BTreeMap<PathBuf, LabelSet>,
    /// Targets of a job that does not tail files.
    pub sources: Vec<SourceTargetView>,
}

/// Shared between discovery (writer) and the HTTP server (reader).
#[derive(Clone, Default)]
pub struct TargetsView {
    jobs: Arc<RwLock<BTreeMap<String, JobView>>>,
}

impl TargetsView {
    pub fn set_targets(&self, job: &str, targets: Vec<TargetView>, dropped: Vec<DroppedView>) {
        let mut jobs = self.jobs.write().unwrap_or_else(|p| p.into_inner());
        let view = jobs.entry(job.to_string()).or_default();
        view.targets = targets;
        view.dropped = dropped;
    }

    pub fn set_files(&self, job: &str, files: BTreeMap<PathBuf, LabelSet>) {
        let mut jobs = self.jobs.write().unwrap_or_else(|p| p.into_inner());
        jobs.entry(job.to_string()).or_default().files = files;
    }

    /// The targets of a job that does not tail files (replacing those it had).
    pub fn set_source_targets(&self, job: &str, targets: Vec<SourceTargetView>) {
        let mut jobs = self.jobs.write().unwrap_or_else(|p| p.into_inner());
        jobs.entry(job.to_string()).or_default().sources = targets;
    }

    /// Forgets a job (removed by a reload).
    pub fn remove_job(&self, job: &str) {
        let mut jobs = self.jobs.write().unwrap_or_else(|p| p.into_inner());
        jobs.remove(job);
    }

    pub fn snapshot(&self) -> BTreeMap<String, JobView> {
        self.jobs.read().unwrap_or_else(|p| p.into_inner()).clone()
    }
}
