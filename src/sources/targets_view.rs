//! What discovery found and what is being tailed, per job: the data behind Promtail's
//! `/targets` and `/service-discovery` pages.
//!
//! Owns the shared snapshot. Discovery writes it, the server reads it; it must not start or
//! stop anything, nor read files beyond a `stat` for their size.

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

#[derive(Clone, Debug, Default)]
pub struct JobView {
    pub targets: Vec<TargetView>,
    pub dropped: Vec<DroppedView>,
    /// Files being tailed, with their labels.
    pub files: BTreeMap<PathBuf, LabelSet>,
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

    /// Forgets a job (removed by a reload).
    pub fn remove_job(&self, job: &str) {
        let mut jobs = self.jobs.write().unwrap_or_else(|p| p.into_inner());
        jobs.remove(job);
    }

    pub fn snapshot(&self) -> BTreeMap<String, JobView> {
        self.jobs.read().unwrap_or_else(|p| p.into_inner()).clone()
    }
}
