//! Tailers: one per discovered path, reading complete lines from where delivery stopped.
//!
//! A tailer follows its path through everything that happens to a file while it is read:
//! - rename + create (RotatingFileHandler, logrotate `create`): the old file is kept open and
//!   read until it has been quiet for `rotate_wait`, its position follows it to its new name,
//!   and the new file is read from 0;
//! - copytruncate: a size below the read offset, or a changed head, means the file was
//!   truncated: reading restarts at 0 and nothing read before is sent again;
//! - delete: the file is drained, then closed once quiet for `rotate_wait`;
//! - a restart across rotation: the remainder of the file last read under this path is found
//!   under its new name and read before the new file;
//! - an unfinished last line is shipped once the file has stayed at its end with it for
//!   `partial_line_wait` (a line held at the edge of the read buffer while reading waits for
//!   room downstream is never shipped in pieces, nor is its position saved mid-line); an
//!   over-long line is cut at `max_line_bytes` (truncated or dropped, counted); invalid UTF-8
//!   is replaced (counted); a job's `encoding` converts each line to UTF-8.
//!
//! By concern:
//! - this module: the tailer set of one job (starting, stopping and claiming files, so a
//!   rotated file that also matches the glob is read once) and the options;
//! - `follow`: one tailer's loop over its path: opening, waking (inotify or polls), draining
//!   and closing;
//! - `reader`: one open file read with one reused buffer and split into lines (partial
//!   lines, over-long lines), each batch issued to delivery before it is handed on;
//! - `lines`: where a line ends in the file's encoding and what text it becomes;
//! - `rotation`: which file is which (device, inode and head fingerprint, see
//!   [`FileIdentity`]) and what became of the path: truncation, rename, delete, rotated
//!   files still to read;
//! - `resume`: where a file starts, from what delivery says of it;
//! - `read_buffers`: the read buffers tailers borrow for a round of reads;
//! - `parking`: closing idle files for `target_config.max_open_files` and reopening them;
//! - `decompress`: archives of a job with `decompression` enabled, read once.
//!
//! Delivery is reached only through a [`PositionsView`] and the [`FilePosition`] of each
//! open file (`crate::delivery::positions`). Per-path series (`path` label) are exported
//! unless `target_config.per_file_metrics` is off. Each line carries an acknowledgement token
//! (source, end offset). It must not know what happens to lines after its output channel:
//! nothing of stages, Loki or HTTP.
//!
//! [`FilePosition`]: crate::delivery::positions::FilePosition

use std::collections::{HashMap, HashSet};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use tokio::sync::{Notify, mpsc, watch};
use tokio::task::JoinHandle;

use crate::delivery::file_identity::FileIdentity;
use crate::delivery::positions::PositionsView;
use crate::metrics::Metrics;
use crate::model::entry::LineBatch;
use crate::model::labels::LabelSet;
use crate::sources::files::open_files::OpenFiles;
use crate::sources::files::watch::FileWatch;

mod decompress;
mod follow;
mod lines;
mod open;
mod parking;
mod read_buffers;
mod reader;
mod resume;
mod rotation;
#[cfg(test)]
mod test_harness;

pub use decompress::Decompression;
use follow::Tailer;

/// How often an idle file is checked: `min` after activity, doubling up to `max`.
#[derive(Clone, Copy, Debug)]
pub struct PollConfig {
    pub min: Duration,
    pub max: Duration,
}

/// How tailers read; from `global.file_watch_config`, `target_config` and `limits_config`.
#[derive(Clone, Copy, Debug)]
pub struct TailOptions {
    pub poll: PollConfig,
    pub rotate_wait: Duration,
    pub partial_line_wait: Duration,
    pub max_line_bytes: usize,
    /// Over-long lines are truncated (true) or dropped (false).
    pub truncate_long_lines: bool,
    pub tail_from_end: bool,
    pub ignore_older_than: Option<Duration>,
    /// The job's file encoding; `None` reads the files as UTF-8. Set per job (see
    /// [`crate::config::ScrapeConfig::file_encoding`]); `from_config` leaves it `None`.
    pub encoding: Option<&'static encoding_rs::Encoding>,
    /// Export the per-path series; off bounds their count (`target_config.per_file_metrics`).
    pub per_file_metrics: bool,
    /// The job's `decompression`, when enabled: its files are archives, read once. Set per
    /// job; `from_config` leaves it `None`.
    pub decompression: Option<Decompression>,
    /// Read a symlinked path's file outside the link's directory
    /// (`target_config.follow_symlinks_outside`).
    pub follow_symlinks_outside: bool,
}

impl TailOptions {
    pub fn from_config(config: &crate::config::Config) -> Self {
        let t = &config.target_config;
        let limit = config.limits_config.max_line_size.0 as usize;
        let cap = t.max_line_bytes.0.max(1) as usize;
        Self {
            poll: PollConfig {
                min: config.global.file_watch_config.min_poll_frequency.0,
                max: config.global.file_watch_config.max_poll_frequency.0,
            },
            rotate_wait: t.rotate_wait.0,
            partial_line_wait: t.partial_line_wait.0,
            // Lines within the cap reach the client, which applies `max_line_size` and counts
            // it as Promtail does; the cap only bounds memory for lines without an end.
            max_line_bytes: cap,
            truncate_long_lines: limit == 0 || config.limits_config.max_line_size_truncate,
            tail_from_end: t.tail_from_end,
            ignore_older_than: (!t.ignore_older_than.0.is_zero()).then_some(t.ignore_older_than.0),
            encoding: None,
            per_file_metrics: t.per_file_metrics,
            decompression: None,
            follow_symlinks_outside: t.follow_symlinks_outside,
        }
    }
}

/// What every tailer of the agent shares: the inotify watcher and the open-file bound.
#[derive(Clone)]
pub struct FileAccess {
    pub watch: Arc<FileWatch>,
    pub open_files: Arc<OpenFiles>,
}

impl FileAccess {
    /// `inotify` and `max_open_files` as in `target_config` (0 = no bound).
    pub fn new(inotify: bool, max_open_files: usize, metrics: &Arc<Metrics>) -> Self {
        Self {
            watch: FileWatch::new(inotify, metrics.clone()),
            open_files: OpenFiles::new(max_open_files, metrics.clone()),
        }
    }
}

/// Files (device, inode) a tailer of this set has open, so a rotated file that also matches
/// the glob under its new name is not read twice.
#[derive(Clone, Default)]
struct Claims(Arc<Mutex<HashSet<(u64, u64)>>>);

impl Claims {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashSet<(u64, u64)>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Does a tailer of this set hold the file with this device and inode?
    fn held(&self, dev: u64, ino: u64) -> bool {
        self.lock().contains(&(dev, ino))
    }

    /// Marks the file as read by this job; false when another tailer already reads it.
    /// Checking and marking are one step, so two tailers never both take a file.
    fn claim(&self, identity: &FileIdentity) -> bool {
        self.lock().insert((identity.dev, identity.ino))
    }

    fn release(&self, identity: &FileIdentity) {
        self.lock().remove(&(identity.dev, identity.ino));
    }
}

/// The tailers of one job.
pub struct TailerSet {
    positions: PositionsView,
    out: mpsc::Sender<LineBatch>,
    metrics: Arc<Metrics>,
    opts: TailOptions,
    shutdown: watch::Receiver<bool>,
    claims: Claims,
    running: HashMap<PathBuf, Running>,
    access: FileAccess,
    /// When this job's tailing began: a path never read before that had files rotated away
    /// from it since, before its first look, reads them (see `Tailer::open_current`).
    started: SystemTime,
}

struct Running {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl TailerSet {
    pub fn new(
        positions: PositionsView,
        out: mpsc::Sender<LineBatch>,
        metrics: Arc<Metrics>,
        opts: TailOptions,
        shutdown: watch::Receiver<bool>,
        access: FileAccess,
    ) -> Self {
        Self {
            positions,
            out,
            metrics,
            opts,
            shutdown,
            claims: Claims::default(),
            running: HashMap::new(),
            access,
            started: SystemTime::now(),
        }
    }

    /// Is a tailer running for `path`?
    pub fn is_running(&self, path: &Path) -> bool {
        self.running
            .get(path)
            .is_some_and(|r| !r.task.is_finished())
    }

    /// Starts tailing `path` unless it already is (or its file is still being read under an
    /// older name: then a later call starts it).
    pub fn start(&mut self, path: &Path, labels: Arc<LabelSet>) {
        if let Some(r) = self.running.get(path) {
            if !r.task.is_finished() {
                return;
            }
            self.running.remove(path);
        }
        let Ok(meta) = std::fs::metadata(path) else {
            return;
        };
        if !meta.is_file() {
            return;
        }
        if self.claims.held(meta.dev(), meta.ino()) {
            return;
        }
        let key = crate::delivery::positions::key_of(path);
        let path_label = crate::delivery::positions::readable(path).into_owned();
        if let Some(max_age) = self.opts.ignore_older_than {
            let old = meta
                .modified()
                .ok()
                .and_then(|m| SystemTime::now().duration_since(m).ok())
                .is_some_and(|age| age > max_age);
            if old && self.positions.saved(&key).is_none() {
                return;
            }
        }
        let (stop_tx, stop_rx) = watch::channel(false);
        let wake = Arc::new(Notify::new());
        let slot = self.access.open_files.slot(wake.clone());
        let tailer = Tailer {
            watch: self.access.watch.register(path, wake.clone()),
            wake,
            path: path.to_path_buf(),
            path_label,
            key,
            labels,
            positions: self.positions.clone(),
            out: self.out.clone(),
            metrics: self.metrics.clone(),
            opts: self.opts,
            claims: self.claims.clone(),
            job_started: self.started,
        };
        let task = match self.opts.decompression {
            // An archive is read once, a bounded number at a time (see `decompress`); the
            // slot serves a file that turns out to be plain.
            Some(d) => {
                tokio::spawn(tailer.run_decompressing(slot, d, stop_rx, self.shutdown.clone()))
            }
            None => tokio::spawn(tailer.run(slot, stop_rx, self.shutdown.clone())),
        };
        self.running.insert(
            path.to_path_buf(),
            Running {
                stop: stop_tx,
                task,
            },
        );
    }

    /// `path` left the glob: its tailer drains what is open, then closes.
    pub fn stop(&mut self, path: &Path) {
        if let Some(r) = self.running.get(path) {
            let _ = r.stop.send(true);
        }
    }

    /// Paths with a live tailer.
    pub fn paths(&self) -> Vec<PathBuf> {
        self.running
            .iter()
            .filter(|(_, r)| !r.task.is_finished())
            .map(|(p, _)| p.clone())
            .collect()
    }

    /// Waits for every tailer to finish (after shutdown was signalled).
    pub async fn join(self) {
        for (_, r) in self.running {
            let _ = r.task.await;
        }
    }
}
