//! The positions store: how far each source has been delivered, kept in Promtail's
//! `positions.yaml` format so an existing file is picked up as it is.
//!
//! Beside Promtail's `positions:` map (path to quoted byte offset) the file holds an
//! `identities:` map (path to device, inode and head fingerprint), so a file renamed by
//! rotation, even while the agent was down, is recognised under its new name, and a
//! `sources:` map (path to the number of the source that read it), so a file resumed at its
//! own entry goes on as the same source and a disk buffer recognises the lines it already
//! holds. An entry without an identity (a migrated Promtail file) is trusted as Promtail
//! would trust it; Promtail ignores the two maps it does not know.
//!
//! A position moves only past lines every client has settled, in order: each source has a
//! finalizer (`delivery::finalizer`) that its reader issues lines to (before handing
//! them on) and acknowledgements settle.
//!
//! Two ways in, and no other:
//! - [`Positions`], the agent's: open the file, apply acknowledgements ([`Positions::run_acks`],
//!   the one channel that flows back from the clients), save ([`Positions::run_saver`]: soon
//!   after acknowledgements move a position, and every `sync_period`),
//!   report ([`Positions::snapshot`], [`Positions::oldest_outstanding`]), switch clients on a
//!   reload ([`Positions::reset_clients`]), and hand each job its [`PositionsView`];
//! - [`PositionsView`], the sources': look up where a file or cursor was delivered to, and
//!   open a source, getting the one handle ([`FilePosition`], [`CursorPosition`], or
//!   [`ReceiptPosition`] for a push source, which is never saved) through which it issues
//!   batches, reports renames and closes.
//!
//! The state behind both (`state`) and the file format (`file_format`) are private to this
//! module. It must not read log files or know about HTTP.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use crate::delivery::finalizer::MAX_CLIENTS;
use crate::model::ack::AckReceiver;

mod file_format;
mod key;
mod state;
#[cfg(test)]
mod tests;
mod view;

use file_format::{parse, render, write_atomically};
pub use key::{key_of, readable, readable_key};
use state::State;
pub use view::{CursorPosition, FilePosition, PositionsView, ReceiptPosition};

/// The store, as the agent holds it: the ack task and the saver update and persist it; jobs
/// get a [`PositionsView`] of it for their sources. A clone is one reference count: every
/// source handle holds one.
#[derive(Clone)]
pub struct Positions {
    shared: Arc<Shared>,
}

struct Shared {
    state: Mutex<State>,
    file: PathBuf,
    read_only: bool,
    /// Counts saves that found the file deleted by someone else.
    deleted: OnceLock<prometheus::IntCounter>,
    /// Counts saves that could not write the file.
    write_errors: OnceLock<prometheus::IntCounter>,
    /// Signalled when acknowledgements moved a saved position: the saver writes the file
    /// soon after, not only every `sync_period`.
    advanced: tokio::sync::Notify,
}

/// The least time between two saves prompted by acknowledgements. A kill -9 re-sends what was
/// acknowledged since the last save, so this bounds that window (plus the write itself); it
/// also bounds the writes to ten a second however often acknowledgements arrive.
pub const SAVE_AFTER_ACKS_WITHIN: std::time::Duration = std::time::Duration::from_millis(100);
/// Saves prompted by acknowledgements are spaced by at least this many times the last save's
/// duration, so a large file on a slow disk costs at most a twentieth of the saver's time.
const SAVE_SPACING_FACTOR: u32 = 20;

/// When the next save prompted by acknowledgements may start, after one that started at
/// `started` and took `took` (none yet: at once).
fn next_save_after_acks(
    last: Option<(tokio::time::Instant, std::time::Duration)>,
) -> Option<tokio::time::Instant> {
    let (started, took) = last?;
    Some(started + SAVE_AFTER_ACKS_WITHIN.max(took * SAVE_SPACING_FACTOR))
}

#[derive(Debug)]
pub struct PositionsError(pub String);

impl std::fmt::Display for PositionsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for PositionsError {}

impl Positions {
    /// Reads `file` if it exists. A corrupt file is an error unless `ignore_invalid`, in
    /// which case it is replaced on the next save, as Promtail does.
    pub fn open(
        file: &Path,
        ignore_invalid: bool,
        clients: usize,
        read_only: bool,
    ) -> Result<Self, PositionsError> {
        if clients > MAX_CLIENTS {
            return Err(PositionsError(format!(
                "{clients} clients configured; at most {MAX_CLIENTS} are supported"
            )));
        }
        let loaded = match std::fs::read_to_string(file) {
            Ok(text) => match parse(&text) {
                Ok(maps) => maps,
                Err(e) if ignore_invalid => {
                    tracing::warn!(file = %file.display(), error = %e, "ignoring invalid positions file");
                    Default::default()
                }
                Err(e) => {
                    return Err(PositionsError(format!(
                        "invalid positions file {}: {e} (set positions.ignore_invalid_yaml: true to start over)",
                        file.display()
                    )));
                }
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Default::default(),
            Err(e) => {
                return Err(PositionsError(format!(
                    "cannot read positions file {}: {e}",
                    file.display()
                )));
            }
        };
        Ok(Self {
            shared: Arc::new(Shared {
                state: Mutex::new(State::new(loaded, clients)),
                file: file.to_path_buf(),
                read_only,
                deleted: OnceLock::new(),
                advanced: tokio::sync::Notify::new(),
                write_errors: OnceLock::new(),
            }),
        })
    }

    /// A store of one client that starts from `positions_yaml` (a positions file's text, as
    /// if read at start) and is never saved: unit tests of sources run against it.
    #[cfg(test)]
    pub(crate) fn in_memory(positions_yaml: &str) -> Self {
        let loaded = parse(positions_yaml).expect("valid positions text");
        Self {
            shared: Arc::new(Shared {
                state: Mutex::new(State::new(loaded, 1)),
                file: PathBuf::new(),
                read_only: true,
                deleted: OnceLock::new(),
                advanced: tokio::sync::Notify::new(),
                write_errors: OnceLock::new(),
            }),
        }
    }

    /// Counts, in `counter`, each time the file turns out deleted while running.
    pub fn with_deletion_counter(self, counter: prometheus::IntCounter) -> Self {
        // Set once, right after opening; a second counter would count the same deletions.
        let _ = self.shared.deleted.set(counter);
        self
    }

    /// Counts, in `counter`, each save that cannot write the file.
    pub fn with_write_error_counter(self, counter: prometheus::IntCounter) -> Self {
        let _ = self.shared.write_errors.set(counter);
        self
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A poisoned lock means a panic elsewhere already; the map itself is still usable.
        self.shared.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// What a job's sources may ask of this store (see [`PositionsView`]).
    pub fn view(&self) -> PositionsView {
        PositionsView::of(self.clone())
    }

    /// The saved offset of `path` (0 if none).
    pub fn get(&self, path: &str) -> u64 {
        self.state()
            .saved
            .get(path)
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    }

    /// Whether every tailer that read `path` has had all it handed on acknowledged (a job
    /// stopped by a reload is settled before its successor reads the same file).
    pub fn settled(&self, path: &str) -> bool {
        !self.state().sources.values().any(|s| s.path == path)
    }

    /// When the oldest line not yet settled by every client was issued, over all sources.
    pub fn oldest_outstanding(&self) -> Option<std::time::Instant> {
        self.state()
            .sources
            .values()
            .filter_map(|s| s.finalizer.oldest_outstanding())
            .min()
    }

    /// Keeps `gauge` at the age of the oldest unacknowledged line (0 when none) until `stop`:
    /// the oldest of the lines positions wait for and of `elsewhere` (lines settled for
    /// positions but not yet delivered, as in a disk buffer).
    pub async fn run_age_gauge(
        self,
        gauge: prometheus::Gauge,
        mut stop: tokio::sync::watch::Receiver<bool>,
        elsewhere: impl Fn() -> Option<std::time::Instant> + Send + 'static,
    ) {
        loop {
            let oldest = match (self.oldest_outstanding(), elsewhere()) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            let age = oldest.map_or(0.0, |t| t.elapsed().as_secs_f64());
            gauge.set(age);
            tokio::select! {
                _ = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
                _ = stop.changed() => return,
            }
        }
    }

    /// Switches to `clients` clients (a reload changed them), once no tailer runs. Sources
    /// still waiting for acknowledgements are forgotten: their files resume from the saved,
    /// acknowledged offset, so those lines are read again rather than lost. Returns how many.
    pub fn reset_clients(&self, clients: usize) -> usize {
        let mut st = self.state();
        let unsettled = st.sources.len();
        st.sources.clear();
        st.current.clear();
        st.clients = clients.min(MAX_CLIENTS);
        unsettled
    }

    /// Applies settled acknowledgements until the channel closes; tells the saver when they
    /// moved a position.
    pub async fn run_acks(self, mut rx: AckReceiver) {
        while let Some(ack) = rx.recv().await {
            let advanced = {
                let mut st = self.state();
                st.settle(ack);
                // What else is waiting goes in under the same lock, and prompts one save.
                while let Ok(ack) = rx.try_recv() {
                    st.settle(ack);
                }
                st.dirty
            };
            if advanced {
                self.shared.advanced.notify_one();
            }
        }
    }

    /// Writes the file if anything changed (never in read-only mode).
    pub fn save(&self) -> Result<(), PositionsError> {
        let Shared {
            file,
            read_only,
            deleted,
            write_errors,
            ..
        } = &*self.shared;
        if *read_only {
            return Ok(());
        }
        let text = {
            let mut st = self.state();
            st.prune_vanished();
            let exists = file.exists();
            if !st.dirty && exists {
                return Ok(());
            }
            if !exists && st.written {
                if let Some(c) = deleted.get() {
                    c.inc();
                }
                tracing::warn!(
                    file = %file.display(),
                    "positions file was deleted while running; writing it again from memory"
                );
            }
            st.dirty = false;
            render(&st.saved, &st.identities, &st.source_ids)
        };
        match write_atomically(file, text.as_bytes()) {
            Ok(()) => {
                self.state().written = true;
                Ok(())
            }
            Err(e) => {
                self.state().dirty = true;
                if let Some(c) = write_errors.get() {
                    c.inc();
                }
                Err(PositionsError(format!(
                    "cannot write the positions file {}: {e}",
                    file.display()
                )))
            }
        }
    }

    /// Saves soon after acknowledgements move a position (at once after a quiet spell, then
    /// at most every [`SAVE_AFTER_ACKS_WITHIN`]), and every `period` in any case (renames,
    /// new files, a file deleted by someone else), until `stop` fires. Logs failures and
    /// keeps going; after a failure, acknowledgements do not prompt another try before
    /// `period`, so a full disk is not hammered.
    pub async fn run_saver(
        self,
        period: std::time::Duration,
        mut stop: tokio::sync::watch::Receiver<bool>,
    ) {
        use tokio::time::{Instant, sleep_until};
        let mut periodic = Instant::now() + period;
        let mut last: Option<(Instant, std::time::Duration)> = None;
        // A file that cannot be written fails at every sync; said once until it recovers.
        let mut failing = false;
        loop {
            tokio::select! {
                _ = sleep_until(periodic) => {}
                _ = self.shared.advanced.notified() => {
                    if let Some(at) = next_save_after_acks(last) {
                        tokio::select! {
                            _ = sleep_until(at) => {}
                            _ = stop.changed() => return,
                        }
                    }
                }
                _ = stop.changed() => return,
            }
            let started = Instant::now();
            // A save renders, writes and fsyncs the file: not on a runtime worker.
            let store = self.clone();
            let saved = tokio::task::spawn_blocking(move || store.save())
                .await
                .unwrap_or_else(|e| Err(PositionsError(format!("saving task failed: {e}"))));
            let took = started.elapsed();
            last = Some((started, took));
            periodic = Instant::now() + period;
            match saved {
                Err(e) => {
                    // Acknowledgements do not prompt another try before `period`.
                    last = Some((started, took.max(period / SAVE_SPACING_FACTOR)));
                    if !failing {
                        failing = true;
                        tracing::error!(error = %e, "cannot write the positions file; positions are kept in memory and saved once it can be written (retrying every sync)");
                    } else {
                        tracing::debug!(error = %e, "positions file still cannot be written");
                    }
                }
                Ok(()) if failing => {
                    failing = false;
                    tracing::info!(file = %self.shared.file.display(), "positions file written again");
                }
                Ok(()) => {}
            }
        }
    }

    pub fn snapshot(&self) -> BTreeMap<String, String> {
        self.state().saved.clone()
    }
}
