//! Tailers: one per discovered path, reading complete lines from where delivery stopped.
//!
//! Owns opening files and knowing which file is which (device, inode and head fingerprint,
//! see [`FileIdentity`]), reading with one reused buffer, splitting at `\n` (a trailing `\r`
//! is kept, as Promtail does), and everything that happens to a file while it is read:
//! - rename + create (RotatingFileHandler, logrotate `create`): the old file is kept open and
//!   read until it has been quiet for `rotate_wait`, its position follows it to its new name,
//!   and the new file is read from 0;
//! - copytruncate: a size below the read offset, or a changed head, means the file was
//!   truncated: reading restarts at 0 and nothing read before is sent again;
//! - delete: the file is drained, then closed once quiet for `rotate_wait`;
//! - a restart across rotation: the remainder of the file last read under this path is found
//!   under its new name and read before the new file;
//! - an unfinished last line is shipped after `partial_line_wait` without growth; an
//!   over-long line is cut at `max_line_bytes` (truncated or dropped, counted); invalid UTF-8
//!   is replaced (counted).
//!
//! A job's `encoding` (anything but UTF-8) converts each line to UTF-8: UTF-16 lines end at
//! the two-byte unit of U+000A at an even file offset (reads are kept even, so a unit is
//! never split between two reads), other encodings at the byte `\n`; a byte order mark at
//! offset 0 is dropped; undecodable bytes are replaced (counted as invalid lines). UTF-8
//! files skip all of this. Offsets stay byte offsets in the file, whatever the encoding.
//! Per-path series (`path` label) are exported unless `target_config.per_file_metrics` is off.
//! A job with `decompression` enabled reads its files as archives instead ([`decompress`]).
//!
//! A tailer wakes when [`crate::sources::files::watch`] reports a change of its path (inotify), and polls
//! every 10 s (or `max_poll_frequency`, if longer) as a safety net; where events cannot be
//! trusted (inotify off or unavailable, events lost, a rotated file being drained under
//! another name, a path that is a symlink) it polls as Promtail does, from
//! `min_poll_frequency` backing off to `max_poll_frequency`.
//!
//! Open files are bounded by `target_config.max_open_files` ([`crate::sources::files::open_files`]): asked to
//! make room, a tailer whose file is idle (at its end, no unfinished line, not mid-rotation)
//! closes it and remembers its identity, offset, size and mtime. When a stat of the path
//! shows a change, it reopens the file by identity (the file at the path if it has the same
//! device and inode, else the file of that inode in the directory, i.e. rotated while
//! closed) and the usual checks follow: a changed head or a size below the offset is a
//! truncation, another file at the path a rotation (the old file is drained first). Limit:
//! lines appended to a closed file that is then deleted (or moved out of its directory)
//! before the tailer reopens it are lost, as the file can no longer be found.
//!
//! Each line carries an acknowledgement token (source, end offset). It must not know what
//! happens to lines after its output channel: nothing of stages, Loki or HTTP.

use std::collections::{HashMap, HashSet};
use std::fs::{File, Metadata};
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::{Notify, mpsc, watch};
use tokio::task::JoinHandle;

use crate::delivery::file_identity::FileIdentity;
use crate::delivery::positions::{FilePosition, PositionsView};
use crate::metrics::Metrics;
use crate::model::ack::AckToken;
use crate::model::entry::LineBatch;
use crate::model::labels::LabelSet;
use crate::sources::files::open_files::{OpenFiles, Slot};
use crate::sources::files::watch::{FileWatch, Registration};

mod decompress;
pub use decompress::Decompression;

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

/// Bytes read per system call at most; also the most one batch holds. Reads of 64 KiB cost
/// no more CPU per byte than 256 KiB in the benchmarks, and each batch waiting in a
/// pipeline's input holds a quarter as much.
const READ_CHUNK: usize = 64 * 1024;
/// A tailer's first read buffer; it doubles while reads fill it, up to [`READ_CHUNK`], so
/// thousands of quiet files do not each hold a large buffer.
const FIRST_READ_CHUNK: usize = 16 * 1024;

/// How a line ends in the file's encoding.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Newline {
    /// The byte `\n`: UTF-8, single-byte and ASCII-compatible multi-byte encodings.
    Byte,
    /// The unit `0A 00` at an even offset.
    Utf16Le,
    /// The unit `00 0A` at an even offset.
    Utf16Be,
}

impl Newline {
    fn of(encoding: Option<&'static encoding_rs::Encoding>) -> Self {
        match encoding {
            Some(e) if e == encoding_rs::UTF_16LE => Newline::Utf16Le,
            Some(e) if e == encoding_rs::UTF_16BE => Newline::Utf16Be,
            _ => Newline::Byte,
        }
    }

    /// Bytes of one newline; also the alignment of line starts.
    fn width(self) -> usize {
        match self {
            Newline::Byte => 1,
            Newline::Utf16Le | Newline::Utf16Be => 2,
        }
    }
}

/// Ends (one past the newline) of the UTF-16 lines in `chunk`, which starts at an even
/// file offset: a `0x0A` byte is a newline only as half of the unit U+000A.
fn utf16_line_ends(chunk: &[u8], big_endian: bool) -> impl Iterator<Item = usize> + '_ {
    memchr::memchr_iter(b'\n', chunk).filter_map(move |i| {
        if big_endian {
            (i % 2 == 1 && chunk[i - 1] == 0).then_some(i + 1)
        } else {
            (i % 2 == 0 && chunk.get(i + 1) == Some(&0)).then_some(i + 2)
        }
    })
}

/// Files (device, inode) a tailer of this set has open, so a rotated file that also matches
/// the glob under its new name is not read twice.
type Claims = Arc<Mutex<HashSet<(u64, u64)>>>;

fn lock(claims: &Claims) -> std::sync::MutexGuard<'_, HashSet<(u64, u64)>> {
    claims.lock().unwrap_or_else(|p| p.into_inner())
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
            claims: Arc::new(Mutex::new(HashSet::new())),
            running: HashMap::new(),
            access,
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
        if lock(&self.claims).contains(&(meta.dev(), meta.ino())) {
            return;
        }
        let path_label = path.display().to_string();
        if let Some(max_age) = self.opts.ignore_older_than {
            let old = meta
                .modified()
                .ok()
                .and_then(|m| SystemTime::now().duration_since(m).ok())
                .is_some_and(|age| age > max_age);
            if old && self.positions.saved(&path_label).is_none() {
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
            labels,
            positions: self.positions.clone(),
            out: self.out.clone(),
            metrics: self.metrics.clone(),
            opts: self.opts,
            claims: self.claims.clone(),
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

/// How often a tailer looks at its file when inotify reports its changes: only to catch an
/// event that never came (Filebeat scans every 10 s by default). Idle files cost next to nothing.
const EVENT_SAFETY_NET_POLL: Duration = Duration::from_secs(10);

struct Tailer {
    path: PathBuf,
    path_label: String,
    labels: Arc<LabelSet>,
    positions: PositionsView,
    out: mpsc::Sender<LineBatch>,
    metrics: Arc<Metrics>,
    opts: TailOptions,
    claims: Claims,
    /// Woken on changes of the path, and when asked to close the file to make room.
    wake: Arc<Notify>,
    watch: Registration,
}

/// A current file closed while idle to stay within `max_open_files`, with what is needed to
/// find it again and to tell whether it changed.
struct Parked {
    identity: FileIdentity,
    name: String,
    cursor: u64,
    position: FilePosition,
    len: u64,
    mtime: Option<SystemTime>,
    last_growth: Instant,
}

impl Parked {
    /// Did the path change since the file was closed (grew, shrank, rewritten, replaced,
    /// gone)? One stat; the file itself is checked when reopened.
    fn changed(&self, path: &Path) -> bool {
        match std::fs::metadata(path) {
            Ok(m) => {
                !self.identity.same_inode(&m)
                    || m.len() != self.len
                    || m.modified().ok() != self.mtime
            }
            Err(_) => true,
        }
    }
}

/// One open file being read.
struct Reader {
    file: File,
    identity: FileIdentity,
    /// The file's name as positions know it (it changes when the file is rotated).
    name: String,
    /// Where the next read starts.
    cursor: u64,
    /// Bytes of an unfinished line, held until its newline arrives or it goes quiet.
    pending: Vec<u8>,
    pending_since: Instant,
    /// Inside an over-long line that was already cut: discard up to its newline.
    skipping: bool,
    /// This file's source in delivery: every line's token names it.
    position: FilePosition,
    last_growth: Instant,
    /// Rotated away or deleted: read until quiet, then close.
    draining: bool,
    at_eof: bool,
}

impl Reader {
    /// End of the last line handed on.
    fn handed_on(&self) -> u64 {
        self.cursor - self.pending.len() as u64
    }
}

enum ReadOutcome {
    Lines,
    Eof,
    Closed,
}

/// What became of the path while its file was at EOF.
enum PathState {
    Same,
    Truncated,
    /// Another file is at the path now; ours was renamed (to the name given, if found).
    Replaced(Option<PathBuf>),
    Gone,
}

impl Tailer {
    async fn run(
        self,
        mut slot: Slot,
        mut stop: watch::Receiver<bool>,
        mut shutdown: watch::Receiver<bool>,
    ) {
        let mut buf = Vec::new();
        let mut readers: Vec<Reader> = Vec::new();
        let mut parked: Option<Parked> = None;
        let mut first_open = true;
        let mut rotated_at: Option<SystemTime> = None;
        let mut idle = self.opts.poll.min;
        let mut open_failures = 0u32;
        loop {
            if *shutdown.borrow() {
                break;
            }
            let stopping = *stop.borrow();
            if let Some(p) = &parked {
                if stopping {
                    break;
                }
                if !p.changed(&self.path) {
                    self.wait(idle, &mut idle, &readers, &mut stop, &mut shutdown)
                        .await;
                    continue;
                }
                if !self.acquire(&mut slot, &mut stop, &mut shutdown).await {
                    continue;
                }
                let Some(p) = parked.take() else { continue };
                match self.reopen(p) {
                    Ok(r) => readers.push(r),
                    Err(p) => {
                        self.metrics
                            .files
                            .file_events
                            .with_label_values(&["deleted"])
                            .inc();
                        tracing::info!(path = %self.path_label, "file deleted while closed for max_open_files");
                        self.close_parked(p);
                        slot.release(false);
                        if !self.path.exists() {
                            break;
                        }
                    }
                }
            }
            // A new current file is opened once every older one has been read to its end,
            // so a rotated file's remainder goes out before the new file.
            let has_current = readers.iter().any(|r| !r.draining);
            if !stopping && !has_current && readers.iter().all(|r| r.at_eof) {
                // A slot is only worth waiting for when there is a file to open.
                if !slot.held()
                    && self.path.exists()
                    && !self.acquire(&mut slot, &mut stop, &mut shutdown).await
                {
                    continue;
                }
                if slot.held() {
                    match self.open_current(first_open, &mut rotated_at, &mut readers) {
                        Ok(()) => open_failures = 0,
                        Err(reason) => {
                            open_failures += 1;
                            // Logged once, then every 100th retry: the file may come back.
                            if open_failures == 1 || open_failures.is_multiple_of(100) {
                                tracing::warn!(path = %self.path_label, reason, "cannot open file; will retry");
                                self.metrics
                                    .files
                                    .file_errors
                                    .with_label_values(&[reason])
                                    .inc();
                            }
                        }
                    }
                }
                first_open = false;
            }

            let mut progressed = false;
            for r in readers.iter_mut() {
                match self.read_some(r, &mut buf).await {
                    Ok(ReadOutcome::Lines) => progressed = true,
                    Ok(ReadOutcome::Eof) => {}
                    Ok(ReadOutcome::Closed) => {
                        self.close_all(&mut readers);
                        return;
                    }
                    Err(e) => {
                        tracing::warn!(path = %r.name, error = %e, "read failed; closing the file");
                        self.metrics
                            .files
                            .file_errors
                            .with_label_values(&["read"])
                            .inc();
                        r.draining = true;
                        r.at_eof = true;
                        r.last_growth = Instant::now() - self.opts.rotate_wait;
                    }
                }
            }

            if let Some(cur) = readers.iter_mut().find(|r| !r.draining && r.at_eof) {
                match self.path_state(cur) {
                    PathState::Same => {}
                    PathState::Truncated => {
                        self.restart_truncated(cur);
                        progressed = true;
                    }
                    PathState::Replaced(new_name) => {
                        self.metrics
                            .files
                            .file_events
                            .with_label_values(&["rotated"])
                            .inc();
                        tracing::info!(path = %self.path_label, renamed_to = ?new_name, "file rotated; draining the old file, reading the new one");
                        if let Some(n) = new_name {
                            cur.name = n.display().to_string();
                            cur.position.renamed(&cur.name);
                        }
                        rotated_at = cur.file.metadata().and_then(|m| m.modified()).ok();
                        cur.draining = true;
                        progressed = true;
                    }
                    PathState::Gone => {
                        self.metrics
                            .files
                            .file_events
                            .with_label_values(&["deleted"])
                            .inc();
                        tracing::info!(path = %self.path_label, "file deleted; draining it");
                        cur.draining = true;
                    }
                }
            }

            let now = Instant::now();
            for r in readers.iter_mut() {
                if !r.pending.is_empty()
                    && !r.skipping
                    && now.duration_since(r.pending_since) >= self.opts.partial_line_wait
                    && self.ship_pending(r).await.is_err()
                {
                    self.close_all(&mut readers);
                    return;
                }
            }
            let mut closed_any = false;
            let mut i = 0;
            while i < readers.len() {
                let r = &readers[i];
                let quiet = now.duration_since(r.last_growth) >= self.opts.rotate_wait;
                if r.at_eof && (r.draining || stopping) && (quiet || stopping) {
                    let mut r = readers.remove(i);
                    if !r.pending.is_empty()
                        && !r.skipping
                        && self.ship_pending(&mut r).await.is_err()
                    {
                        readers.push(r);
                        self.close_all(&mut readers);
                        return;
                    }
                    self.close(r);
                    closed_any = true;
                } else {
                    i += 1;
                }
            }
            if readers.is_empty() && (stopping || (closed_any && !self.path.exists())) {
                break;
            }

            if readers.is_empty() {
                slot.release(false);
            }

            if progressed {
                slot.touch();
                idle = self.opts.poll.min;
                continue;
            }
            if slot.close_requested() {
                match self.park(&mut readers, stopping) {
                    Some(p) => {
                        parked = Some(p);
                        slot.release(true);
                        // An idle tailer keeps no read buffer.
                        buf = Vec::new();
                    }
                    None => slot.decline(),
                }
            }
            self.wait(idle, &mut idle, &readers, &mut stop, &mut shutdown)
                .await;
        }
        if let Some(p) = parked.take() {
            self.close_parked(p);
        }
        self.close_all(&mut readers);
    }

    /// Sleeps until the path changes (or the tailer is asked to close its file), a deadline
    /// of a held line, or the next poll: `max_poll_frequency` when events are reliable, else
    /// `backoff` (Promtail's polling), which then doubles up to `max_poll_frequency`.
    async fn wait(
        &self,
        backoff: Duration,
        next_backoff: &mut Duration,
        readers: &[Reader],
        stop: &mut watch::Receiver<bool>,
        shutdown: &mut watch::Receiver<bool>,
    ) {
        // A symlinked path raises no event when its target is written (the watch is on the
        // link's directory), so such a path is polled as if inotify were off.
        let events = self.watch.events_reliable()
            && readers.iter().all(|r| !r.draining)
            && !std::fs::symlink_metadata(&self.path).is_ok_and(|m| m.file_type().is_symlink());
        let mut sleep = if events {
            self.opts.poll.max.max(EVENT_SAFETY_NET_POLL)
        } else {
            backoff
        };
        let now = Instant::now();
        for r in readers {
            if !r.pending.is_empty() && !r.skipping {
                let due = r.pending_since + self.opts.partial_line_wait;
                sleep = sleep.min(due.saturating_duration_since(now));
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(sleep) => {}
            _ = self.wake.notified() => {}
            _ = stop.changed() => {}
            _ = shutdown.changed() => {}
        }
        if !events {
            *next_backoff = (backoff * 2)
                .min(self.opts.poll.max)
                .max(self.opts.poll.min);
        }
    }

    /// Waits for an open-file slot; false when stopping or shutdown interrupted the wait.
    async fn acquire(
        &self,
        slot: &mut Slot,
        stop: &mut watch::Receiver<bool>,
        shutdown: &mut watch::Receiver<bool>,
    ) -> bool {
        tokio::select! {
            _ = slot.acquire() => true,
            _ = stop.changed() => false,
            _ = shutdown.changed() => false,
        }
    }

    /// Closes the current file if it is idle: at its end, no unfinished or over-long line
    /// held, no rotated file being drained.
    fn park(&self, readers: &mut Vec<Reader>, stopping: bool) -> Option<Parked> {
        let [r] = readers.as_slice() else {
            return None;
        };
        if stopping || r.draining || !r.at_eof || !r.pending.is_empty() || r.skipping {
            return None;
        }
        let meta = r.file.metadata().ok()?;
        if meta.len() != r.cursor {
            return None;
        }
        let r = readers.pop()?;
        tracing::debug!(path = %r.name, offset = r.cursor, "closing idle file (max_open_files)");
        Some(Parked {
            identity: r.identity,
            name: r.name,
            cursor: r.cursor,
            position: r.position,
            len: meta.len(),
            mtime: meta.modified().ok(),
            last_growth: r.last_growth,
        })
    }

    /// Reopens a closed file by identity: at the path if the same inode is still there,
    /// else under the name it was rotated to. Gives it back when it is gone.
    fn reopen(&self, p: Parked) -> Result<Reader, Parked> {
        let same = |m: &Metadata| p.identity.same_inode(m);
        let opened = match open_regular(&self.path) {
            Ok((file, meta)) if same(&meta) => Some(file),
            _ => find_by_inode(&self.path, &p.identity)
                .and_then(|q| open_regular(&q).ok())
                .filter(|(_, meta)| same(meta))
                .map(|(file, _)| file),
        };
        let Some(mut file) = opened else {
            return Err(p);
        };
        if file.seek(SeekFrom::Start(p.cursor)).is_err() {
            return Err(p);
        }
        tracing::debug!(path = %p.name, offset = p.cursor, "reopened idle file");
        Ok(Reader {
            file,
            identity: p.identity,
            name: p.name,
            cursor: p.cursor,
            pending: Vec::new(),
            pending_since: Instant::now(),
            skipping: false,
            position: p.position,
            last_growth: p.last_growth,
            draining: false,
            // As when it was closed: the next read checks it is still the same file.
            at_eof: true,
        })
    }

    fn close_parked(&self, p: Parked) {
        p.position.close(p.cursor);
        self.unclaim(&p.identity);
        self.metrics.files.files_active.dec();
    }

    /// Opens the file now at the path, resuming where delivery of that file stopped.
    /// Rotated files nobody has read yet are queued before it: on the first open after a
    /// start, the file last read under this path (found under its new name) and those
    /// rotated after it; after a rotation seen while running (`rotated_at`, the old file's
    /// last write), files rotated in between, when rotations came faster than our polls.
    fn open_current(
        &self,
        first_open: bool,
        rotated_at: &mut Option<SystemTime>,
        readers: &mut Vec<Reader>,
    ) -> Result<(), &'static str> {
        let (file, meta) = match open_regular(&self.path) {
            Ok(fm) => fm,
            Err(OpenError::Missing) => return Ok(()),
            Err(OpenError::Other(reason)) => return Err(reason),
        };
        let identity = FileIdentity::of(&file, &meta).map_err(|_| "read")?;
        // Another tailer of this job still reads this file under an older name.
        if !self.claim(&identity) {
            return Ok(());
        }
        let offset = match self.positions.saved(&self.path_label) {
            Some((saved, Some(saved_id))) if saved_id.matches(&file, &meta) => {
                saved.min(meta.len())
            }
            // A Promtail positions file: trusted as Promtail trusts it.
            Some((saved, None)) => {
                if saved <= meta.len() {
                    saved
                } else {
                    0
                }
            }
            Some((saved, Some(saved_id))) => {
                if first_open {
                    self.queue_unread_rotations(Some((saved, saved_id)), None, &identity, readers);
                }
                0
            }
            None => match self.positions.find(|id| id.matches(&file, &meta)) {
                Some(saved) => saved.min(meta.len()),
                None if self.opts.tail_from_end => meta.len(),
                None => 0,
            },
        };
        // Kept until a new file is really opened: the path may be missing for a moment
        // between a rename and the writer's reopen.
        if let Some(since) = rotated_at.take() {
            self.queue_unread_rotations(None, Some(since), &identity, readers);
        }
        match self.reader(file, identity, self.path_label.clone(), offset) {
            Ok(r) => {
                readers.push(r);
                Ok(())
            }
            Err(e) => {
                self.unclaim(&identity);
                Err(e)
            }
        }
    }

    /// Queues, oldest first, rotated siblings of the path (`app.log.1`, `app.log-2026...`)
    /// that must still be read: `predecessor` (offset and identity of the file last read under
    /// this path) and every sibling written since it, or since `since`. Siblings already
    /// open here, or fully read according to positions, add nothing.
    fn queue_unread_rotations(
        &self,
        predecessor: Option<(u64, FileIdentity)>,
        since: Option<SystemTime>,
        current: &FileIdentity,
        readers: &mut Vec<Reader>,
    ) {
        let Some(dir) = self.path.parent() else {
            return;
        };
        let Some(base) = self
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
        else {
            return;
        };
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        let mut found: Option<(u64, File, Metadata, PathBuf)> = None;
        let mut siblings: Vec<(SystemTime, File, Metadata, PathBuf)> = Vec::new();
        for entry in entries.flatten() {
            let p = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            if p == self.path || !is_rotated_name(&base, &name) {
                continue;
            }
            let Ok((file, meta)) = open_regular(&p) else {
                continue;
            };
            let inode = (meta.dev(), meta.ino());
            if inode == (current.dev, current.ino) || lock(&self.claims).contains(&inode) {
                continue;
            }
            match predecessor {
                Some((saved, id)) if id.matches(&file, &meta) => {
                    found = Some((saved, file, meta, p))
                }
                _ => {
                    if let Ok(mtime) = meta.modified() {
                        siblings.push((mtime, file, meta, p));
                    }
                }
            }
        }
        let mut since = since;
        if let Some((saved, file, meta, p)) = found {
            since = Some(meta.modified().unwrap_or(SystemTime::UNIX_EPOCH));
            self.queue_draining(file, &meta, p, saved, readers);
        }
        let Some(since) = since else { return };
        siblings.retain(|(mtime, ..)| *mtime >= since);
        siblings.sort_by_key(|(mtime, ..)| *mtime);
        for (_, file, meta, p) in siblings {
            let name = p.display().to_string();
            let start = match self.positions.saved(&name) {
                Some((off, Some(id))) if id.matches(&file, &meta) => off,
                _ => self
                    .positions
                    .find(|id| id.matches(&file, &meta))
                    .unwrap_or(0),
            };
            if start < meta.len() {
                self.queue_draining(file, &meta, p, start, readers);
            }
        }
    }

    fn queue_draining(
        &self,
        file: File,
        meta: &Metadata,
        p: PathBuf,
        start: u64,
        readers: &mut Vec<Reader>,
    ) {
        let name = p.display().to_string();
        let Ok(identity) = FileIdentity::of(&file, meta) else {
            return;
        };
        // A reader of this file that closed with lines still unacknowledged has read further
        // than the saved offset says; what it handed on is not read again.
        let start = self
            .positions
            .handed_on(|id| id.matches(&file, meta))
            .map_or(start, |handed_on| start.max(handed_on));
        if start >= meta.len() || !self.claim(&identity) {
            return;
        }
        tracing::info!(path = %self.path_label, rotated_to = %name, offset = start, "reading a rotated file not read to its end");
        match self.reader(file, identity, name, start.min(meta.len())) {
            Ok(mut r) => {
                r.draining = true;
                readers.push(r);
            }
            Err(_) => self.unclaim(&identity),
        }
    }

    fn reader(
        &self,
        mut file: File,
        identity: FileIdentity,
        name: String,
        offset: u64,
    ) -> Result<Reader, &'static str> {
        // UTF-16 lines start at even offsets; an odd one (tail_from_end mid-write) is not one.
        let offset = offset - offset % Newline::of(self.opts.encoding).width() as u64;
        file.seek(SeekFrom::Start(offset)).map_err(|_| "seek")?;
        let position = self.positions.open_file(&name, offset, identity);
        self.metrics.files.files_active.inc();
        tracing::info!(path = %name, offset, "tailing file");
        let now = Instant::now();
        Ok(Reader {
            file,
            identity,
            name,
            cursor: offset,
            pending: Vec::new(),
            pending_since: now,
            skipping: false,
            position,
            last_growth: now,
            draining: false,
            at_eof: false,
        })
    }

    /// Marks the file as read by this job; false when another tailer already reads it.
    /// Checking and marking are one step, so two tailers never both take a file.
    fn claim(&self, identity: &FileIdentity) -> bool {
        lock(&self.claims).insert((identity.dev, identity.ino))
    }

    fn unclaim(&self, identity: &FileIdentity) {
        lock(&self.claims).remove(&(identity.dev, identity.ino));
    }

    fn close(&self, r: Reader) {
        let handed_on = r.handed_on();
        r.position.close(handed_on);
        self.unclaim(&r.identity);
        self.metrics.files.files_active.dec();
        tracing::debug!(path = %r.name, "closed file");
    }

    fn close_all(&self, readers: &mut Vec<Reader>) {
        for r in readers.drain(..) {
            self.close(r);
        }
        // Per-path series go when the tailer stops, as in Promtail.
        let fm = &self.metrics.files;
        let _ = fm.read_bytes.remove_label_values(&[&self.path_label]);
        let _ = fm.file_bytes.remove_label_values(&[&self.path_label]);
        let _ = fm.read_lines.remove_label_values(&[&self.path_label]);
        let _ = fm.file_lag_bytes.remove_label_values(&[&self.path_label]);
    }

    async fn read_some(&self, r: &mut Reader, buf: &mut Vec<u8>) -> std::io::Result<ReadOutcome> {
        if buf.is_empty() {
            buf.resize(FIRST_READ_CHUNK, 0);
        }
        if r.at_eof && !r.draining {
            // New data after a pause: make sure it is still the file we were reading before
            // reading on (a truncate and rewrite past our offset looks like growth).
            let meta = r.file.metadata()?;
            if meta.len() > r.cursor && !r.identity.matches(&r.file, &meta) {
                return Ok(ReadOutcome::Eof);
            }
        }
        let newline = Newline::of(self.opts.encoding);
        let mut n = r.file.read(buf)?;
        if n % 2 == 1 && newline != Newline::Byte {
            // Keep the cursor even: the odd byte is read again with the rest of its unit.
            r.file.seek(SeekFrom::Current(-1))?;
            n -= 1;
        }
        if n == 0 {
            r.at_eof = true;
            if self.opts.per_file_metrics
                && let Ok(meta) = r.file.metadata()
            {
                let fm = &self.metrics.files;
                fm.file_bytes
                    .with_label_values(&[&self.path_label])
                    .set(meta.len() as f64);
                fm.file_lag_bytes
                    .with_label_values(&[&self.path_label])
                    .set(meta.len().saturating_sub(r.handed_on()) as f64);
            }
            return Ok(ReadOutcome::Eof);
        }
        r.at_eof = false;
        let now = Instant::now();
        r.last_growth = now;
        let chunk = &buf[..n];
        let chunk_offset = r.cursor;
        // The first line ending in this chunk starts at offset 0: it may open with a BOM.
        let first_at_file_start = r.handed_on() == 0;
        r.cursor += n as u64;
        let mut batch = LineBatch::with_capacity(
            self.labels.clone(),
            crate::model::clock::now(),
            n + r.pending.len(),
        );
        let (start, lines) = match newline {
            Newline::Byte => self.split_lines(
                r,
                &mut batch,
                chunk,
                chunk_offset,
                memchr::memchr_iter(b'\n', chunk).map(|nl| nl + 1),
                1,
                first_at_file_start,
            ),
            Newline::Utf16Le | Newline::Utf16Be => self.split_lines(
                r,
                &mut batch,
                chunk,
                chunk_offset,
                utf16_line_ends(chunk, newline == Newline::Utf16Be),
                2,
                first_at_file_start,
            ),
        };
        let max = self.opts.max_line_bytes;
        let rest = &chunk[start..];
        if !r.skipping && !rest.is_empty() {
            r.pending.extend_from_slice(rest);
            r.pending_since = now;
            if r.pending.len() > max {
                // No newline within max_line_bytes: cut it now rather than hold it all.
                let at_file_start = r.handed_on() == 0;
                let line = std::mem::take(&mut r.pending);
                self.push_line(&mut batch, &line, None, max, at_file_start);
                r.skipping = true;
            }
        }
        if self.opts.per_file_metrics {
            let fm = &self.metrics.files;
            fm.read_bytes
                .with_label_values(&[&self.path_label])
                .set(r.handed_on() as f64);
            if lines > 0 {
                fm.read_lines
                    .with_label_values(&[&self.path_label])
                    .inc_by(lines);
            }
        }
        if n == buf.len() && n < READ_CHUNK {
            // More is waiting: read more per call.
            buf.resize((n * 2).min(READ_CHUNK), 0);
        }
        // Issued before it leaves: the position must wait for these lines from now on.
        r.position.issue(&batch);
        if !batch.is_empty() && self.out.send(batch).await.is_err() {
            return Ok(ReadOutcome::Closed);
        }
        Ok(ReadOutcome::Lines)
    }

    /// Hands on the lines of `chunk` (read at `chunk_offset`) that end at `ends` (one past
    /// their newline of `newline_width` bytes), the first one joined to the pending bytes.
    /// Returns where the unfinished rest starts, and how many lines ended.
    #[allow(clippy::too_many_arguments)]
    fn split_lines(
        &self,
        r: &mut Reader,
        batch: &mut LineBatch,
        chunk: &[u8],
        chunk_offset: u64,
        ends: impl Iterator<Item = usize>,
        newline_width: usize,
        first_at_file_start: bool,
    ) -> (usize, u64) {
        let max = self.opts.max_line_bytes;
        // UTF-8 files: one validation of every complete line in the chunk instead of one per
        // line (splitting valid UTF-8 at newlines keeps it valid). Not for decoded encodings.
        let text = match self.opts.encoding {
            None => {
                let complete = memchr::memrchr(b'\n', chunk).map_or(0, |nl| nl + 1);
                std::str::from_utf8(&chunk[..complete]).ok()
            }
            Some(_) => None,
        };
        let mut start = 0usize;
        let mut lines = 0u64;
        let mut at_file_start = first_at_file_start;
        let source = r.position.id();
        for end in ends {
            // A line continuing a held unfinished one started in an earlier read.
            let previous = chunk_offset + start as u64 - r.pending.len() as u64;
            let token = Some(AckToken::line_after(
                source,
                previous,
                chunk_offset + end as u64,
            ));
            let segment_at = start..end - newline_width;
            let segment = &chunk[segment_at.clone()];
            start = end;
            let line_at_file_start = std::mem::replace(&mut at_file_start, false);
            if r.skipping {
                // The end of a line already cut at max_line_bytes.
                r.skipping = false;
                continue;
            }
            if r.pending.is_empty() {
                match text {
                    Some(text) if segment.len() <= max => batch.push(&text[segment_at], token),
                    _ => self.push_line(batch, segment, token, max, line_at_file_start),
                }
            } else {
                r.pending.extend_from_slice(segment);
                let line = std::mem::take(&mut r.pending);
                self.push_line(batch, &line, token, max, line_at_file_start);
                r.pending = line;
                r.pending.clear();
            }
            lines += 1;
        }
        (start, lines)
    }

    /// Ships the held unfinished line: it has been quiet for `partial_line_wait`, or its
    /// file is being closed.
    async fn ship_pending(&self, r: &mut Reader) -> Result<(), ()> {
        let mut batch = LineBatch::new(self.labels.clone(), crate::model::clock::now());
        let token = Some(AckToken::line_after(
            r.position.id(),
            r.handed_on(),
            r.cursor,
        ));
        let at_file_start = r.handed_on() == 0;
        let line = std::mem::take(&mut r.pending);
        self.push_line(
            &mut batch,
            &line,
            token,
            self.opts.max_line_bytes,
            at_file_start,
        );
        if self.opts.per_file_metrics {
            self.metrics
                .files
                .read_lines
                .with_label_values(&[&self.path_label])
                .inc();
        }
        r.position.issue(&batch);
        self.out.send(batch).await.map_err(|_| ())
    }

    /// Adds one line, cut to `max` bytes (at a character boundary) or dropped when longer,
    /// with invalid UTF-8 replaced. `at_file_start`: the line starts at offset 0 (only an
    /// encoded file's BOM is dropped there; UTF-8 lines are taken as they are).
    fn push_line(
        &self,
        batch: &mut LineBatch,
        bytes: &[u8],
        token: Option<AckToken>,
        max: usize,
        at_file_start: bool,
    ) {
        if let Some(encoding) = self.opts.encoding {
            self.push_decoded(batch, encoding, bytes, token, max, at_file_start);
            return;
        }
        let bytes = if bytes.len() > max {
            if !self.opts.truncate_long_lines {
                self.metrics
                    .files
                    .long_lines
                    .with_label_values(&["dropped"])
                    .inc();
                return;
            }
            self.metrics
                .files
                .long_lines
                .with_label_values(&["truncated"])
                .inc();
            let cut = match std::str::from_utf8(&bytes[..max]) {
                Ok(_) => max,
                // Stop before a character split by the cut; keep real invalid bytes.
                Err(e) if e.error_len().is_none() => e.valid_up_to(),
                Err(_) => max,
            };
            &bytes[..cut]
        } else {
            bytes
        };
        match std::str::from_utf8(bytes) {
            Ok(s) => batch.push(s, token),
            Err(_) => {
                self.count_invalid_line();
                batch.push(&String::from_utf8_lossy(bytes), token);
            }
        }
    }

    /// [`Self::push_line`] for a file in `encoding`: decoded to UTF-8 first, so `max`
    /// applies to the UTF-8 text, as the client's `max_line_size` does.
    fn push_decoded(
        &self,
        batch: &mut LineBatch,
        encoding: &'static encoding_rs::Encoding,
        bytes: &[u8],
        token: Option<AckToken>,
        max: usize,
        at_file_start: bool,
    ) {
        let bytes = match encoding_rs::Encoding::for_bom(bytes) {
            Some((bom_of, bom_len)) if at_file_start && bom_of == encoding => &bytes[bom_len..],
            _ => bytes,
        };
        let (text, had_errors) = encoding.decode_without_bom_handling(bytes);
        if had_errors {
            self.count_invalid_line();
        }
        let text: &str = &text;
        if text.len() <= max {
            batch.push(text, token);
            return;
        }
        if !self.opts.truncate_long_lines {
            self.metrics
                .files
                .long_lines
                .with_label_values(&["dropped"])
                .inc();
            return;
        }
        self.metrics
            .files
            .long_lines
            .with_label_values(&["truncated"])
            .inc();
        let mut cut = max;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        batch.push(&text[..cut], token);
    }

    /// Counts a line shipped with undecodable bytes replaced.
    fn count_invalid_line(&self) {
        if self.opts.per_file_metrics {
            self.metrics
                .files
                .invalid_utf8_lines
                .with_label_values(&[&self.path_label])
                .inc();
        }
    }

    fn path_state(&self, cur: &mut Reader) -> PathState {
        let Ok(ours) = cur.file.metadata() else {
            return PathState::Same;
        };
        // Our file was unlinked: whatever is at the path now (even on a recycled inode) is
        // another file.
        if ours.nlink() == 0 {
            return if self.path.exists() {
                PathState::Replaced(None)
            } else {
                PathState::Gone
            };
        }
        // Truncation is about the file we hold, whatever its name is now: checked first, so
        // a file truncated, rewritten and then rotated away is read again from its start.
        if ours.len() < cur.cursor {
            return PathState::Truncated;
        }
        match cur.identity.refreshed(&cur.file, &ours) {
            None => return PathState::Truncated,
            Some(grown) if grown != cur.identity => {
                cur.identity = grown;
                cur.position.identity_grew(grown);
            }
            Some(_) => {}
        }
        match std::fs::metadata(&self.path) {
            Ok(at_path) if cur.identity.same_inode(&at_path) => PathState::Same,
            Ok(_) => PathState::Replaced(find_by_inode(&self.path, &cur.identity)),
            Err(_) => PathState::Replaced(find_by_inode(&self.path, &cur.identity)).or_gone(),
        }
    }

    /// copytruncate: start over at 0 under a new source, so acks still in flight for the old
    /// content cannot move the new content's position.
    fn restart_truncated(&self, cur: &mut Reader) {
        self.metrics
            .files
            .file_events
            .with_label_values(&["truncated"])
            .inc();
        tracing::info!(path = %self.path_label, "file truncated; reading from the start");
        if cur.file.seek(SeekFrom::Start(0)).is_err() {
            cur.draining = true;
            return;
        }
        let identity = cur
            .file
            .metadata()
            .and_then(|m| FileIdentity::of(&cur.file, &m))
            .unwrap_or(cur.identity);
        let handed_on = cur.handed_on();
        let fresh = self.positions.open_file(&cur.name, 0, identity);
        std::mem::replace(&mut cur.position, fresh).close(handed_on);
        cur.identity = identity;
        cur.cursor = 0;
        cur.pending.clear();
        cur.skipping = false;
        cur.at_eof = false;
    }
}

impl PathState {
    /// The path is gone; the file may live on under another name.
    fn or_gone(self) -> PathState {
        match self {
            PathState::Replaced(Some(p)) => PathState::Replaced(Some(p)),
            _ => PathState::Gone,
        }
    }
}

enum OpenError {
    Missing,
    Other(&'static str),
}

/// Opens `path` if it is a regular file. Non-blocking, so a FIFO put where a log was cannot
/// hang the reader (the flag changes nothing for regular files).
fn open_regular(path: &Path) -> Result<(File, Metadata), OpenError> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => OpenError::Missing,
            std::io::ErrorKind::PermissionDenied => OpenError::Other("permission_denied"),
            _ => OpenError::Other("open"),
        })?;
    let meta = file.metadata().map_err(|_| OpenError::Other("stat"))?;
    if !meta.is_file() {
        return Err(OpenError::Other("not_a_regular_file"));
    }
    Ok((file, meta))
}

/// Where a rotated file went: a name in the same directory with the same inode.
fn find_by_inode(path: &Path, identity: &FileIdentity) -> Option<PathBuf> {
    let dir = path.parent()?;
    std::fs::read_dir(dir)
        .ok()?
        .flatten()
        .find(|e| {
            e.metadata()
                .is_ok_and(|m| m.dev() == identity.dev && m.ino() == identity.ino)
                && e.path() != path
        })
        .map(|e| e.path())
}

/// Names rotation gives `base`: `base.1`, `base-20261127`, `base.1.log`; never compressed
/// ones, which are separate (decompression) targets.
fn is_rotated_name(base: &str, name: &str) -> bool {
    let Some(rest) = name.strip_prefix(base) else {
        return false;
    };
    let compressed = [".gz", ".bz2", ".xz", ".zst", ".z", ".zip"];
    rest.starts_with(['.', '-', '_']) && !compressed.iter().any(|c| rest.ends_with(c))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::delivery::positions::Positions;
    use std::io::Write;

    fn opts() -> TailOptions {
        TailOptions {
            poll: PollConfig {
                min: Duration::from_millis(10),
                max: Duration::from_millis(40),
            },
            rotate_wait: Duration::from_millis(200),
            partial_line_wait: Duration::from_millis(300),
            max_line_bytes: 64,
            truncate_long_lines: true,
            tail_from_end: false,
            ignore_older_than: None,
            encoding: None,
            per_file_metrics: true,
            decompression: None,
        }
    }

    /// A tailer set whose every line is acknowledged as soon as it is collected, as a client
    /// that delivers at once would.
    struct Harness {
        set: TailerSet,
        rx: mpsc::Receiver<LineBatch>,
        /// The store, as the agent holds it (`pos.yaml` in the directory, never saved).
        positions: Positions,
        /// What the tailers see of it.
        view: PositionsView,
        acks: crate::model::ack::AckSender,
        metrics: Arc<Metrics>,
        _stop: watch::Sender<bool>,
    }

    fn harness(dir: &Path, opts: TailOptions) -> Harness {
        harness_with(dir, opts, true, 0)
    }

    /// A harness with inotify on or off and at most `max_open_files` open (0: no bound).
    fn harness_with(
        dir: &Path,
        opts: TailOptions,
        inotify: bool,
        max_open_files: usize,
    ) -> Harness {
        let positions = Positions::open(&dir.join("pos.yaml"), false, 1, false).unwrap();
        let (tx, rx) = mpsc::channel(16);
        let (stop_tx, stop_rx) = watch::channel(false);
        let (factory, ack_rx) = crate::model::ack::channel();
        tokio::spawn(positions.clone().run_acks(ack_rx));
        let metrics = Arc::new(Metrics::new());
        Harness {
            set: TailerSet::new(
                positions.view(),
                tx,
                metrics.clone(),
                opts,
                stop_rx,
                FileAccess::new(inotify, max_open_files, &metrics),
            ),
            rx,
            view: positions.view(),
            positions,
            acks: factory.for_client(0),
            metrics,
            _stop: stop_tx,
        }
    }

    async fn collect(h: &mut Harness, n: usize) -> Vec<(String, u64)> {
        let mut got = Vec::new();
        while got.len() < n {
            let b = tokio::time::timeout(Duration::from_secs(5), h.rx.recv())
                .await
                .expect("lines arrive")
                .expect("channel open");
            let mut tokens = Vec::new();
            for (line, ack) in b.iter() {
                got.push((line.to_string(), ack.map(|a| a.offset).unwrap_or(0)));
                tokens.extend(ack);
            }
            h.acks.settle(tokens);
        }
        got
    }

    async fn nothing_more(rx: &mut mpsc::Receiver<LineBatch>, wait: Duration) {
        if let Ok(Some(b)) = tokio::time::timeout(wait, rx.recv()).await {
            let lines: Vec<&str> = b.iter().map(|(l, _)| l).collect();
            panic!("unexpected lines: {lines:?}");
        }
    }

    fn append(path: &Path, text: &str) {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
    }

    #[tokio::test]
    async fn reads_lines_with_end_offsets_and_holds_partial_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.log");
        std::fs::write(&path, "one\ntwo\r\nthr").unwrap();
        let mut h = harness(dir.path(), opts());
        h.set.start(&path, Arc::new(LabelSet::new()));
        let got = collect(&mut h, 2).await;
        assert_eq!(got, vec![("one".into(), 4), ("two\r".into(), 9)]);
        append(&path, "ee\n");
        let got = collect(&mut h, 1).await;
        assert_eq!(got, vec![("three".into(), 15)]);
    }

    #[tokio::test]
    async fn tokens_of_consecutive_lines_merge_into_one_even_across_reads() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.log");
        std::fs::write(&path, "one\ntwo\r\nthr").unwrap();
        let mut h = harness(dir.path(), opts());
        h.set.start(&path, Arc::new(LabelSet::new()));
        let mut tokens = Vec::new();
        let b = tokio::time::timeout(Duration::from_secs(5), h.rx.recv())
            .await
            .unwrap()
            .unwrap();
        b.iter()
            .for_each(|(_, ack)| crate::model::ack::push_coalesced(&mut tokens, ack.unwrap()));
        // "thr" waits for its newline in a later read; its line still follows "two\r\n".
        append(&path, "ee\n");
        let b = tokio::time::timeout(Duration::from_secs(5), h.rx.recv())
            .await
            .unwrap()
            .unwrap();
        b.iter()
            .for_each(|(_, ack)| crate::model::ack::push_coalesced(&mut tokens, ack.unwrap()));
        assert_eq!(
            tokens
                .iter()
                .map(|t| (t.from, t.offset))
                .collect::<Vec<_>>(),
            vec![(1, 15)],
            "one token covers the three lines"
        );
        h.acks.settle(tokens);
        let key = path.display().to_string();
        for _ in 0..100 {
            if h.positions.get(&key) == 15 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(
            h.positions.get(&key),
            15,
            "settling the one token commits all three"
        );
    }

    #[tokio::test]
    async fn unfinished_last_line_ships_after_partial_line_wait() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.log");
        std::fs::write(&path, "done\nno newline").unwrap();
        let mut h = harness(dir.path(), opts());
        h.set.start(&path, Arc::new(LabelSet::new()));
        assert_eq!(collect(&mut h, 1).await, vec![("done".into(), 5)]);
        let got = collect(&mut h, 1).await;
        assert_eq!(got, vec![("no newline".into(), 15)]);
    }

    #[tokio::test]
    async fn line_completed_within_the_wait_is_not_split() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.log");
        std::fs::write(&path, "first ha").unwrap();
        let mut h = harness(dir.path(), opts());
        h.set.start(&path, Arc::new(LabelSet::new()));
        tokio::time::sleep(Duration::from_millis(100)).await;
        append(&path, "lf\n");
        assert_eq!(collect(&mut h, 1).await, vec![("first half".into(), 11)]);
    }

    #[tokio::test]
    async fn invalid_utf8_is_replaced_not_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.log");
        std::fs::write(&path, b"ok \xff\xfe end\n").unwrap();
        let mut h = harness(dir.path(), opts());
        h.set.start(&path, Arc::new(LabelSet::new()));
        let got = collect(&mut h, 1).await;
        assert_eq!(got[0].0, "ok \u{fffd}\u{fffd} end");
    }

    #[tokio::test]
    async fn over_long_line_is_truncated_at_a_character_and_the_rest_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.log");
        let long = "é".repeat(100); // 200 bytes, no newline yet
        std::fs::write(&path, format!("short\n{long}")).unwrap();
        let mut h = harness(dir.path(), opts());
        h.set.start(&path, Arc::new(LabelSet::new()));
        let got = collect(&mut h, 2).await;
        assert_eq!(got[0].0, "short");
        assert_eq!(got[1].0, "é".repeat(32));
        append(&path, &format!("{}\nnext\n", "é".repeat(10)));
        assert_eq!(collect(&mut h, 1).await[0].0, "next");
    }

    #[tokio::test]
    async fn over_long_line_is_dropped_when_truncation_is_off() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.log");
        std::fs::write(&path, format!("{}\nkept\n", "x".repeat(500))).unwrap();
        let mut h = harness(
            dir.path(),
            TailOptions {
                truncate_long_lines: false,
                ..opts()
            },
        );
        h.set.start(&path, Arc::new(LabelSet::new()));
        assert_eq!(collect(&mut h, 1).await[0].0, "kept");
    }

    #[tokio::test]
    async fn copytruncate_reads_new_content_from_the_start_without_resending() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.log");
        std::fs::write(&path, "aaaa\nbbbb\n").unwrap();
        let mut h = harness(dir.path(), opts());
        h.set.start(&path, Arc::new(LabelSet::new()));
        collect(&mut h, 2).await;
        std::fs::write(&path, "c\n").unwrap();
        assert_eq!(collect(&mut h, 1).await, vec![("c".into(), 2)]);
    }

    #[tokio::test]
    async fn truncate_and_regrow_past_the_offset_is_caught_by_the_fingerprint() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.log");
        std::fs::write(&path, "aaaa\n").unwrap();
        let mut h = harness(dir.path(), opts());
        h.set.start(&path, Arc::new(LabelSet::new()));
        collect(&mut h, 1).await;
        // Within one poll: truncated and rewritten longer than before.
        std::fs::write(&path, "new1\nnew2\nnew3\n").unwrap();
        let got = collect(&mut h, 3).await;
        assert_eq!(
            got.iter().map(|(l, _)| l.as_str()).collect::<Vec<_>>(),
            vec!["new1", "new2", "new3"]
        );
    }

    #[tokio::test]
    async fn rename_and_create_drains_the_old_file_then_reads_the_new_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("app.log");
        std::fs::write(&path, "old 1\n").unwrap();
        let mut h = harness(dir.path(), opts());
        h.set.start(&path, Arc::new(LabelSet::new()));
        collect(&mut h, 1).await;
        // The writer appends once more to its open file after the rename, then reopens.
        let mut old = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        std::fs::rename(&path, dir.path().join("app.log.1")).unwrap();
        std::fs::write(&path, "new 1\n").unwrap();
        old.write_all(b"old 2\n").unwrap();
        let mut got: Vec<String> = collect(&mut h, 2)
            .await
            .into_iter()
            .map(|(l, _)| l)
            .collect();
        got.sort();
        assert_eq!(got, vec!["new 1", "old 2"]);
        // The old file's position now lives under its new name; the path is the new file's.
        tokio::time::sleep(Duration::from_millis(400)).await;
        let rotated = dir.path().join("app.log.1").display().to_string();
        assert_eq!(
            h.view.saved(&path.display().to_string()).map(|(o, _)| o),
            Some(6)
        );
        assert_eq!(h.view.saved(&rotated).map(|(o, _)| o), Some(12));
        // A glob that also matches the rotated name does not read it again.
        h.set
            .start(&dir.path().join("app.log.1"), Arc::new(LabelSet::new()));
        nothing_more(&mut h.rx, Duration::from_millis(300)).await;
    }

    #[tokio::test]
    async fn a_rotated_file_closed_before_its_lines_were_acknowledged_is_not_read_again() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("app.log");
        std::fs::write(&path, "old 1\nold 2\n").unwrap();
        let mut h = harness(dir.path(), opts());
        h.set.start(&path, Arc::new(LabelSet::new()));
        // Read and handed on, but a slow client has not acknowledged them yet.
        let first = tokio::time::timeout(Duration::from_secs(5), h.rx.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(first.len(), 2);
        // Quiet for longer than rotate_wait, so the old file closes as soon as it is seen
        // rotated, before the new file is opened and its rotated siblings are looked for.
        tokio::time::sleep(Duration::from_millis(400)).await;
        std::fs::rename(&path, dir.path().join("app.log.1")).unwrap();
        std::fs::write(&path, "new 1\n").unwrap();
        let mut got = Vec::new();
        while let Ok(Some(b)) = tokio::time::timeout(Duration::from_millis(800), h.rx.recv()).await
        {
            got.extend(b.iter().map(|(l, _)| l.to_string()));
        }
        assert_eq!(
            got,
            vec!["new 1"],
            "the rotated file's lines went out twice"
        );
    }

    #[tokio::test]
    async fn deleted_file_is_drained_and_closed_after_rotate_wait() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.log");
        std::fs::write(&path, "x\n").unwrap();
        let mut h = harness(dir.path(), opts());
        h.set.start(&path, Arc::new(LabelSet::new()));
        collect(&mut h, 1).await;
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        std::fs::remove_file(&path).unwrap();
        f.write_all(b"after delete\n").unwrap();
        drop(f);
        assert_eq!(collect(&mut h, 1).await[0].0, "after delete");
        tokio::time::sleep(Duration::from_millis(600)).await;
        assert!(h.set.paths().is_empty(), "tailer closed the deleted file");
        let fds = std::fs::read_dir("/proc/self/fd")
            .unwrap()
            .flatten()
            .filter(|e| {
                std::fs::read_link(e.path())
                    .is_ok_and(|t| t.to_string_lossy().contains("(deleted)"))
            });
        assert_eq!(fds.count(), 0, "no deleted file held open");
    }

    fn encoded(encoding: &'static encoding_rs::Encoding) -> TailOptions {
        TailOptions {
            encoding: Some(encoding),
            ..opts()
        }
    }

    fn append_bytes(path: &Path, bytes: &[u8]) {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .unwrap()
            .write_all(bytes)
            .unwrap();
    }

    fn utf16(text: &str, big_endian: bool) -> Vec<u8> {
        text.encode_utf16()
            .flat_map(|u| {
                if big_endian {
                    u.to_be_bytes()
                } else {
                    u.to_le_bytes()
                }
            })
            .collect()
    }

    #[tokio::test]
    async fn utf16le_with_bom_is_split_at_newline_units_even_across_appends() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.log");
        // U+010A (0A 01) and U+0A05 (05 0A) hold a 0x0A byte that is no newline.
        let mut content = vec![0xFF, 0xFE];
        content.extend(utf16("one\r\ntwo \u{10a}\u{a05}é\n😀 three\n", false));
        // Offsets: BOM 2, "one\r\n" 10 -> 12, "two Ċਅé\n" 16 -> 28, "😀 three\n" 18 -> 46.
        assert_eq!(content.len(), 46);
        // The first write ends inside the newline unit after "two Ċਅé": 0A written, 00 not.
        append_bytes(&path, &content[..27]);
        let mut h = harness(dir.path(), encoded(encoding_rs::UTF_16LE));
        h.set.start(&path, Arc::new(LabelSet::new()));
        assert_eq!(collect(&mut h, 1).await, vec![("one\r".into(), 12)]);
        nothing_more(&mut h.rx, Duration::from_millis(100)).await;
        append_bytes(&path, &content[27..]);
        assert_eq!(
            collect(&mut h, 2).await,
            vec![("two \u{10a}\u{a05}é".into(), 28), ("😀 three".into(), 46)]
        );
        let invalid = &h.metrics.files.invalid_utf8_lines;
        let path_label = path.display().to_string();
        assert_eq!(invalid.with_label_values(&[&path_label]).get(), 0);
    }

    #[tokio::test]
    async fn utf16be_with_bom_is_split_at_newline_units() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.log");
        // U+0A05 is 0A 05 in big endian: a 0x0A byte at an even offset, not a newline.
        let mut content = vec![0xFE, 0xFF];
        content.extend(utf16("a\u{a05}\nb\r\n", true));
        std::fs::write(&path, &content).unwrap();
        let mut h = harness(dir.path(), encoded(encoding_rs::UTF_16BE));
        h.set.start(&path, Arc::new(LabelSet::new()));
        assert_eq!(
            collect(&mut h, 2).await,
            vec![("a\u{a05}".into(), 8), ("b\r".into(), 14)]
        );
    }

    #[tokio::test]
    async fn bom_is_kept_when_not_at_the_start_of_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.log");
        let mut content = utf16("x\n", false);
        content.extend([0xFF, 0xFE]);
        content.extend(utf16("y\n", false));
        std::fs::write(&path, &content).unwrap();
        let mut h = harness(dir.path(), encoded(encoding_rs::UTF_16LE));
        h.set.start(&path, Arc::new(LabelSet::new()));
        let got = collect(&mut h, 2).await;
        assert_eq!(got[0].0, "x");
        assert_eq!(got[1].0, "\u{feff}y");
    }

    #[tokio::test]
    async fn windows_1252_bytes_are_converted_to_utf8() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.log");
        std::fs::write(&path, b"caf\xe9\r\n\x80 5\n").unwrap();
        let mut h = harness(dir.path(), encoded(encoding_rs::WINDOWS_1252));
        h.set.start(&path, Arc::new(LabelSet::new()));
        assert_eq!(
            collect(&mut h, 2).await,
            vec![("café\r".into(), 6), ("€ 5".into(), 10)]
        );
    }

    #[tokio::test]
    async fn undecodable_bytes_are_replaced_and_counted() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.log");
        // Shift_JIS: 82 A0 is あ; a lone lead byte 82 before the newline is an error.
        std::fs::write(&path, b"\x82\xa0\nok \x82\n").unwrap();
        let mut h = harness(dir.path(), encoded(encoding_rs::SHIFT_JIS));
        h.set.start(&path, Arc::new(LabelSet::new()));
        let got = collect(&mut h, 2).await;
        assert_eq!(got[0].0, "あ");
        assert_eq!(got[1].0, "ok \u{fffd}");
        let path_label = path.display().to_string();
        let invalid = &h.metrics.files.invalid_utf8_lines;
        assert_eq!(invalid.with_label_values(&[&path_label]).get(), 1);
    }

    #[tokio::test]
    async fn lag_is_file_size_minus_read_offset() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.log");
        std::fs::write(&path, "done\nunfinished").unwrap();
        let mut h = harness(
            dir.path(),
            TailOptions {
                partial_line_wait: Duration::from_secs(30),
                ..opts()
            },
        );
        h.set.start(&path, Arc::new(LabelSet::new()));
        collect(&mut h, 1).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        let rendered = h.metrics.render();
        let series = format!("tailward_file_lag_bytes{{path=\"{}\"}} ", path.display());
        let lag = rendered
            .lines()
            .find_map(|l| l.strip_prefix(series.as_str()))
            .unwrap_or_else(|| panic!("no lag series in:\n{rendered}"));
        // "unfinished" (10 bytes) is held: read up to 5 of 15 bytes.
        assert_eq!(lag, "10");
    }

    #[tokio::test]
    async fn no_per_path_series_when_per_file_metrics_is_off() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.log");
        std::fs::write(&path, b"bad \xff\nshort\n").unwrap();
        let mut h = harness(
            dir.path(),
            TailOptions {
                per_file_metrics: false,
                ..opts()
            },
        );
        h.set.start(&path, Arc::new(LabelSet::new()));
        collect(&mut h, 2).await;
        append(&path, "unfinished");
        // Past partial_line_wait, so the held line was shipped too, and EOF was seen.
        assert_eq!(collect(&mut h, 1).await[0].0, "unfinished");
        tokio::time::sleep(Duration::from_millis(100)).await;
        let rendered = h.metrics.render();
        assert!(
            rendered.contains("promtail_files_active_total 1"),
            "the file is tailed: {rendered}"
        );
        let per_path: Vec<&str> = rendered.lines().filter(|l| l.contains("path=\"")).collect();
        assert!(per_path.is_empty(), "per-path series: {per_path:?}");
    }

    #[test]
    fn rotated_names_exclude_compressed_ones() {
        assert!(is_rotated_name("app.log", "app.log.1"));
        assert!(is_rotated_name("app.log", "app.log-20261127"));
        assert!(!is_rotated_name("app.log", "app.log.2.gz"));
        assert!(!is_rotated_name("app.log", "app.logger"));
    }

    /// Polls every 10s at most: a line arriving within that came from an inotify wake-up.
    fn slow_poll() -> TailOptions {
        TailOptions {
            poll: PollConfig {
                min: Duration::from_secs(10),
                max: Duration::from_secs(10),
            },
            ..opts()
        }
    }

    async fn arrives_within(h: &mut Harness, within: Duration) -> Option<String> {
        let b = tokio::time::timeout(within, h.rx.recv()).await.ok()??;
        let line = b.iter().next().map(|(l, _)| l.to_string());
        let tokens: Vec<AckToken> = b.iter().filter_map(|(_, a)| a).collect();
        h.acks.settle(tokens);
        line
    }

    #[tokio::test]
    async fn appended_line_arrives_without_waiting_for_the_poll() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.log");
        std::fs::write(&path, "first\n").unwrap();
        let mut h = harness(dir.path(), slow_poll());
        h.set.start(&path, Arc::new(LabelSet::new()));
        assert_eq!(collect(&mut h, 1).await[0].0, "first");
        // The tailer is asleep until its next poll, 10s away.
        tokio::time::sleep(Duration::from_millis(100)).await;
        append(&path, "second\n");
        let got = arrives_within(&mut h, Duration::from_secs(5)).await;
        assert_eq!(got.as_deref(), Some("second"));
    }

    #[tokio::test]
    async fn without_inotify_appended_lines_are_found_by_polling() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.log");
        std::fs::write(&path, "first\n").unwrap();
        let polling = TailOptions {
            poll: PollConfig {
                min: Duration::from_millis(10),
                max: Duration::from_secs(10),
            },
            ..opts()
        };
        let mut h = harness_with(dir.path(), polling, false, 0);
        h.set.start(&path, Arc::new(LabelSet::new()));
        assert_eq!(collect(&mut h, 1).await[0].0, "first");
        append(&path, "second\n");
        // Polls back off from min_poll_frequency: the next one is well within 5s.
        let got = arrives_within(&mut h, Duration::from_secs(5)).await;
        assert_eq!(got.as_deref(), Some("second"));
        // And with a slow poll and no inotify, nothing wakes the tailer early.
        let path_b = dir.path().join("b.log");
        std::fs::write(&path_b, "b1\n").unwrap();
        let mut slow = harness_with(dir.path(), slow_poll(), false, 0);
        slow.set.start(&path_b, Arc::new(LabelSet::new()));
        assert_eq!(collect(&mut slow, 1).await[0].0, "b1");
        tokio::time::sleep(Duration::from_millis(100)).await;
        append(&path_b, "b2\n");
        nothing_more(&mut slow.rx, Duration::from_secs(1)).await;
    }

    fn open_descriptors_of(dir: &Path) -> usize {
        std::fs::read_dir("/proc/self/fd")
            .unwrap()
            .flatten()
            .filter(|e| std::fs::read_link(e.path()).is_ok_and(|t| t.starts_with(dir)))
            .count()
    }

    #[tokio::test]
    async fn idle_files_are_closed_over_the_bound_and_reopened_by_identity() {
        let dir = tempfile::tempdir().unwrap();
        let logs = dir.path().join("logs");
        std::fs::create_dir(&logs).unwrap();
        let names = ["a.log", "b.log", "c.log"];
        for n in names {
            std::fs::write(logs.join(n), format!("{n} 1\n")).unwrap();
        }
        let mut h = harness_with(dir.path(), opts(), true, 1);
        for n in names {
            h.set.start(&logs.join(n), Arc::new(LabelSet::new()));
        }
        let mut got: Vec<String> = collect(&mut h, 3).await.into_iter().map(|l| l.0).collect();
        got.sort();
        assert_eq!(got, vec!["a.log 1", "b.log 1", "c.log 1"]);
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(open_descriptors_of(&logs) <= 1, "at most one log file open");
        assert!(h.metrics.files.idle_file_closes.get() >= 2);

        // Appends to closed files: each is reopened where it stopped.
        for n in names {
            append(&logs.join(n), &format!("{n} 2\n"));
        }
        let got = collect(&mut h, 3).await;
        let mut lines: Vec<&str> = got.iter().map(|(l, _)| l.as_str()).collect();
        lines.sort();
        assert_eq!(lines, vec!["a.log 2", "b.log 2", "c.log 2"]);
        assert!(
            got.iter().all(|(_, end)| *end == 16),
            "offsets continue: {got:?}"
        );

        // Rotated while closed: the rest of the old file, then the new one, once each.
        tokio::time::sleep(Duration::from_millis(200)).await;
        let a = logs.join("a.log");
        append(&a, "a.log 3\n");
        std::fs::rename(&a, logs.join("a.log.1")).unwrap();
        std::fs::write(&a, "new a 1\n").unwrap();
        let got = collect(&mut h, 2).await;
        let lines: Vec<&str> = got.iter().map(|(l, _)| l.as_str()).collect();
        assert_eq!(lines, vec!["a.log 3", "new a 1"]);
        nothing_more(&mut h.rx, Duration::from_millis(500)).await;
        assert!(
            open_descriptors_of(&logs) <= 2,
            "the bound holds (plus a drain)"
        );
    }

    #[tokio::test]
    async fn a_file_truncated_while_closed_is_read_from_the_start() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.log");
        let b = dir.path().join("b.log");
        std::fs::write(&a, "aaaa 1\naaaa 2\n").unwrap();
        std::fs::write(&b, "b 1\n").unwrap();
        let mut h = harness_with(dir.path(), opts(), true, 1);
        h.set.start(&a, Arc::new(LabelSet::new()));
        h.set.start(&b, Arc::new(LabelSet::new()));
        collect(&mut h, 3).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        // copytruncate while closed, regrown to the same size.
        std::fs::write(&a, "zzzz 1\nzzzz 2\n").unwrap();
        let got = collect(&mut h, 2).await;
        let lines: Vec<&str> = got.iter().map(|(l, _)| l.as_str()).collect();
        assert_eq!(lines, vec!["zzzz 1", "zzzz 2"]);
        nothing_more(&mut h.rx, Duration::from_millis(300)).await;
    }

    #[tokio::test]
    async fn a_file_deleted_while_closed_ends_its_tailer_and_a_new_one_is_read_from_0() {
        let dir = tempfile::tempdir().unwrap();
        let logs = dir.path().join("logs");
        std::fs::create_dir(&logs).unwrap();
        let (a, b) = (logs.join("a.log"), logs.join("b.log"));
        std::fs::write(&a, "a 1\n").unwrap();
        std::fs::write(&b, "b 1\n").unwrap();
        let mut h = harness_with(dir.path(), opts(), true, 1);
        h.set.start(&a, Arc::new(LabelSet::new()));
        h.set.start(&b, Arc::new(LabelSet::new()));
        collect(&mut h, 2).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        let closed_before = h.metrics.files.idle_file_closes.get();
        assert!(closed_before >= 1);
        std::fs::remove_file(&a).unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(h.set.paths(), vec![b.clone()], "a's tailer ended");
        assert!(open_descriptors_of(&logs) <= 1);
        // Recreated: a new file, read from its start.
        std::fs::write(&a, "new a 1\n").unwrap();
        h.set.start(&a, Arc::new(LabelSet::new()));
        assert_eq!(collect(&mut h, 1).await, vec![("new a 1".into(), 8)]);
    }
}
