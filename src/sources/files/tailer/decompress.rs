//! Compressed files: Promtail's `decompression` block of a scrape config.
//!
//! Owns reading one archive (gzip, zlib or bzip2) once to its end and handing on its lines
//! through the tailer's line paths (`max_line_bytes`, `encoding`, invalid UTF-8), and the
//! archive's position. It must not follow the file: an archive is written once, then read
//! once, as Promtail's decompressor reads it (`targets/file/decompresser.go`):
//! - the position stored under the path is the **number of lines** handed on, not a byte
//!   offset (no offset into a compressed stream can be resumed without decompressing what
//!   precedes it); on a restart the archive is decompressed from its start and that many
//!   lines are skipped. A Promtail positions file is therefore resumed as Promtail would;
//! - lines end at `\n` and one trailing `\r` is dropped (Go's `bufio.ScanLines`, which the
//!   decompressor uses; the plain-file tailer keeps it); a last line without newline counts;
//! - `initial_delay` is waited before the first read;
//! - a file read to its end is not read again while the agent runs, even if it is rewritten
//!   in place; a restart reads what lies past the saved line count;
//! - every file of the job is taken as an archive; with `format` empty (a tailward extension)
//!   the format comes from each file's magic bytes, and a file without any is tailed as a
//!   plain file.
//!
//! Where it departs from Promtail: gzip and bzip2 files of several concatenated members
//! are read whole (Go's readers do that too; flate2's single-member reader would not);
//! a line longer than `max_line_bytes` is cut or dropped like any other line instead of
//! ending the file at 2 MB; a corrupt or truncated archive ships the lines decoded before
//! the damage, is logged and counted (`tailward_file_errors_total{reason="corrupt_archive"}`),
//! and is read again (past the lines already handed on) only if the file changes; an archive
//! that changed while it was read (gzip of logrotate `compress` still writing it) is not
//! counted, and is read on once it has been quiet for a poll. Positions only advance past
//! lines Loki acknowledged, as for plain files.
//!
//! Rotation: Promtail keys an archive by its path alone, so when logrotate shifts
//! `app.log.1.gz` to `app.log.2.gz` and compresses a new `app.log.1.gz`, it never reads the
//! new `.1.gz` while running (its reader of that path is done) and reads each name that is
//! new to it from line 1 again. Here an archive is known by its identity (device, inode,
//! head fingerprint, saved beside the line count as for plain files) and claimed by one
//! tailer of the job: a tailer whose path holds another file moves its archive's position
//! to the archive's new name, then reads the new file, past the lines its identity says
//! were handed on under another name. Different files with the same lines (`app.log.1`
//! and the `app.log.2.gz` made from it) are not told apart: a job that reads both ships
//! them twice, as Promtail does.
//!
//! Decompression is CPU work on a blocking thread (`spawn_blocking`), one chunk of
//! decompressed bytes at a time and at most two archives at once in the process, so memory
//! is bounded by the chunk, the decoders and `max_line_bytes`.

use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::time::{Duration, SystemTime};

use tokio::sync::watch;

use super::follow::Tailer;
use super::lines::{Newline, utf16_line_ends};
use super::open::{OpenError, open_regular};
use super::reader::READ_CHUNK;
use super::resume;
use super::rotation::find_by_inode;
use crate::config::{ArchiveFormat, ScrapeConfig};
use crate::delivery::file_identity::FileIdentity;
use crate::delivery::positions::FilePosition;
use crate::model::ack::{AckToken, SourceId};
use crate::model::entry::LineBatch;
use crate::sources::files::open_files::Slot;

/// A job's enabled `decompression` block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decompression {
    /// `None`: detect each file's format from its first bytes.
    pub format: Option<ArchiveFormat>,
    pub initial_delay: Duration,
}

impl Decompression {
    /// The job's decompression settings, `None` unless `decompression.enabled`.
    pub fn of_job(job: &ScrapeConfig) -> Result<Option<Self>, String> {
        let Some(d) = job.decompression.as_ref().filter(|d| d.enabled) else {
            return Ok(None);
        };
        let format = d.archive_format().map_err(|expected| {
            format!(
                "scrape config {:?}: decompression.format: {expected}",
                job.job_name
            )
        })?;
        Ok(Some(Self {
            format,
            initial_delay: d.initial_delay.0,
        }))
    }
}

/// Archives decompressed at once, process-wide: each pass holds a decoder (bzip2's is ~4 MB)
/// and a read buffer, so a directory of hundreds of archives is read a few at a time.
const CONCURRENT_PASSES: usize = 2;
static PASSES: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(CONCURRENT_PASSES);

/// Bytes needed to recognise every format's magic.
const MAGIC_LEN: usize = 4;

/// The archive format whose magic bytes `head` starts with: gzip `1f 8b`, zlib `78` with
/// one of the four standard level bytes (`01 5e 9c da`), bzip2 `BZh` and a block-size digit.
pub fn detect_format(head: &[u8]) -> Option<ArchiveFormat> {
    match head {
        [0x1f, 0x8b, ..] => Some(ArchiveFormat::Gzip),
        [0x78, 0x01 | 0x5e | 0x9c | 0xda, ..] => Some(ArchiveFormat::Zlib),
        [b'B', b'Z', b'h', b'1'..=b'9', ..] => Some(ArchiveFormat::Bzip2),
        _ => None,
    }
}

/// What the file at the path is, once enough of it is there to tell.
enum Sniffed {
    Archive(ArchiveFormat),
    /// Detection found no magic: a plain log.
    Plain,
    /// Stopped, or the file went away before it could be told.
    Nothing,
}

/// How one pass over an archive ended.
enum PassEnd {
    /// Read to its end.
    Complete,
    /// Damaged, or ended early (still being written?): lines before the damage went out.
    Corrupt(std::io::Error),
    /// Stopped, or the file could not be opened (logged).
    Stopped,
    /// The pipeline is gone: the agent is shutting down.
    Closed,
}

/// What a pass gives back: the tailer and the archive's position, which travel to the
/// blocking thread and back, how the pass ended, what the file was when read, and the last
/// line handed on.
struct Passed {
    tailer: Tailer,
    position: FilePosition,
    end: PassEnd,
    seen: Seen,
    last_shipped: u64,
}

/// The file a pass read, to tell whether it changed since.
#[derive(Clone, Copy, Default, PartialEq, Eq)]
struct Seen {
    ino: u64,
    len: u64,
    mtime: Option<SystemTime>,
}

impl Seen {
    fn of(meta: &std::fs::Metadata) -> Self {
        Seen {
            ino: meta.ino(),
            len: meta.len(),
            mtime: meta.modified().ok(),
        }
    }
}

/// Lines of one pass: how many the archive held so far, and the last one handed on.
struct LineCount {
    /// Lines seen from the start of the archive, skipped ones included.
    seen: u64,
    /// Lines already done before this pass (the saved position).
    skip: u64,
    /// Highest line number handed on with an acknowledgement token.
    last_shipped: u64,
}

/// An archive opened at the path and claimed for this tailer.
struct Archive {
    file: File,
    identity: FileIdentity,
    /// Lines of it already handed on, by an earlier run or under another name.
    skip: u64,
    /// The source of this archive that closed with lines still unacknowledged (its reader
    /// saw it renamed to this path), reopened to go on past them.
    continued: Option<FilePosition>,
}

/// What ended the reading of one archive.
enum ArchiveEnd {
    /// Read to its end (or given up as damaged); the tailer watches the path.
    Done,
    /// Another file is at the path now.
    Replaced,
    Stopped,
}

impl Tailer {
    /// Reads the archive at the path once (see the module documentation), then watches the
    /// path: another archive there (rotation shifted names) is read in turn, past the lines
    /// its identity says were handed on under another name. Discovery sees a live tailer
    /// meanwhile and starts no other.
    pub(super) async fn run_decompressing(
        self,
        slot: Slot,
        d: Decompression,
        mut stop: watch::Receiver<bool>,
        mut shutdown: watch::Receiver<bool>,
    ) {
        if !d.initial_delay.is_zero() {
            tracing::info!(path = %self.path_label, delay = ?d.initial_delay, "waiting before decompressing");
            tokio::select! {
                _ = tokio::time::sleep(d.initial_delay) => {}
                _ = stop.changed() => return,
                _ = shutdown.changed() => return,
            }
        }
        let mut this = self;
        loop {
            let format = match this.sniff(d.format, &mut stop, &mut shutdown).await {
                Sniffed::Archive(f) => f,
                Sniffed::Plain => return this.run(slot, stop, shutdown).await,
                Sniffed::Nothing => return,
            };
            let Some(mut archive) = this.open_archive(&mut stop, &mut shutdown).await else {
                return;
            };
            let identity = archive.identity;
            let position = match archive.continued.take() {
                Some(position) => {
                    position.identity_grew(identity);
                    position
                }
                None => this.positions.open_file(&this.key, archive.skip, identity),
            };
            let Some((back, position, end, done)) = this
                .read_archive(format, archive, position, &mut stop, &mut shutdown)
                .await
            else {
                return;
            };
            this = back;
            let end = match end {
                ArchiveEnd::Done => this.watch_path(&identity, &mut stop, &mut shutdown).await,
                other => other,
            };
            this.release(position, done, &identity);
            // Per-path series go with the archive, as Promtail's cleanupMetrics does.
            let fm = &this.metrics.files;
            let _ = fm.read_bytes.remove_label_values(&[&this.path_label]);
            let _ = fm.file_bytes.remove_label_values(&[&this.path_label]);
            let _ = fm.read_lines.remove_label_values(&[&this.path_label]);
            if !matches!(end, ArchiveEnd::Replaced) {
                return;
            }
            tracing::info!(path = %this.path_label, "another archive at the path; reading it");
        }
    }

    /// Opens the archive at the path and claims it, waiting while another tailer of the
    /// job still holds it under its previous name (that tailer moves its position here
    /// first); `None` when stopped or the file is gone.
    async fn open_archive(
        &self,
        stop: &mut watch::Receiver<bool>,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Option<Archive> {
        loop {
            let (file, meta) = match open_regular(&self.path, self.opts.follow_symlinks_outside) {
                Ok(fm) => fm,
                Err(OpenError::Missing) => return None,
                Err(OpenError::Other(reason)) => {
                    tracing::warn!(path = %self.path_label, reason, "cannot open archive");
                    self.metrics
                        .files
                        .file_errors
                        .with_label_values(&[reason])
                        .inc();
                    return None;
                }
            };
            let identity = FileIdentity::of(&file, &meta).ok()?;
            if self.claims.claim(&identity) {
                // As for plain files: what a closed source of this archive handed on is
                // neither read again nor taken as delivered before it is.
                let (skip, continued) = match self
                    .positions
                    .reopen_file(&self.key, |id| id.matches(&file, &meta))
                {
                    Some((position, lines)) => (lines, Some(position)),
                    None => (
                        resume::archive_lines_done(&self.positions, &self.key, &file, &meta),
                        None,
                    ),
                };
                return Some(Archive {
                    file,
                    identity,
                    skip,
                    continued,
                });
            }
            drop(file);
            tokio::select! {
                _ = tokio::time::sleep(self.opts.poll.max) => {}
                _ = stop.changed() => {}
                _ = shutdown.changed() => {}
            }
            if *stop.borrow() || *shutdown.borrow() {
                return None;
            }
        }
    }

    /// The archive's file leaves this tailer: its position follows it if rotation gave it
    /// another name, acknowledgements still in flight settle, and another tailer may take it.
    fn release(&self, position: FilePosition, done: u64, identity: &FileIdentity) {
        if let Some(new_name) = find_by_inode(&self.path, identity) {
            tracing::info!(path = %self.path_label, renamed_to = %new_name.display(), "archive renamed; its position follows it");
            position.renamed(&crate::delivery::positions::key_of(&new_name));
        }
        position.close(done);
        self.claims.release(identity);
    }

    /// Reads the claimed archive to its end (see [`Self::pass`]), again past the lines
    /// handed on while it changes (still being written), or until it is damaged for good.
    /// Gives the tailer back with how it ended and the last line handed on; `None` when a
    /// decompression thread failed (logged) and the tailer is lost.
    async fn read_archive(
        self,
        format: ArchiveFormat,
        archive: Archive,
        mut position: FilePosition,
        stop: &mut watch::Receiver<bool>,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Option<(Tailer, FilePosition, ArchiveEnd, u64)> {
        let Archive {
            mut file,
            identity,
            skip,
            ..
        } = archive;
        let mut done = skip;
        let mut this = self;
        let end = loop {
            let passed = this
                .pass(format, &file, position, done, stop, shutdown)
                .await?;
            this = passed.tailer;
            position = passed.position;
            let seen = passed.seen;
            done = done.max(passed.last_shipped);
            let e = match passed.end {
                PassEnd::Complete => {
                    // A fingerprint grown to the whole head tells this archive apart better.
                    if let Some(grown) = file
                        .metadata()
                        .ok()
                        .and_then(|m| identity.refreshed(&file, &m))
                    {
                        position.identity_grew(grown);
                    }
                    break ArchiveEnd::Done;
                }
                PassEnd::Stopped | PassEnd::Closed => break ArchiveEnd::Stopped,
                PassEnd::Corrupt(e) => e,
            };
            let now = file.metadata().ok().map(|m| Seen::of(&m));
            if let Some(now) = now.filter(|now| *now != seen) {
                // Written to while read (gzip of logrotate `compress` at work): not damage,
                // the rest comes once it is quiet.
                tracing::debug!(path = %this.path_label, error = %e, "archive changed while read; reading on once it is complete");
                match this
                    .wait_until_quiet(&file, &identity, now, stop, shutdown)
                    .await
                {
                    Some(end) => break end,
                    None => continue,
                }
            }
            tracing::warn!(path = %this.path_label, error = %e, "corrupt or truncated archive; lines before the damage were shipped; reading again only if the file changes");
            this.metrics
                .files
                .file_errors
                .with_label_values(&["corrupt_archive"])
                .inc();
            drop(file);
            match this.wait_for_change(&identity, seen, stop, shutdown).await {
                Ok(reopened) => file = reopened,
                Err(end) => break end,
            }
        };
        Some((this, position, end, done))
    }

    /// Waits until the file at the path is sure to be text or an archive (enough bytes to
    /// tell its format, or, when detecting, a newline showing it is text), then tells it.
    async fn sniff(
        &self,
        configured: Option<ArchiveFormat>,
        stop: &mut watch::Receiver<bool>,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Sniffed {
        loop {
            let mut head = [0u8; MAGIC_LEN];
            let mut got = 0;
            match open_regular(&self.path, self.opts.follow_symlinks_outside) {
                Ok((mut file, _)) => {
                    while got < MAGIC_LEN {
                        match file.read(&mut head[got..]) {
                            Ok(0) | Err(_) => break,
                            Ok(n) => got += n,
                        }
                    }
                }
                Err(OpenError::Missing) => return Sniffed::Nothing,
                Err(OpenError::Other(reason)) => {
                    tracing::warn!(path = %self.path_label, reason, "cannot open archive");
                    self.metrics
                        .files
                        .file_errors
                        .with_label_values(&[reason])
                        .inc();
                    return Sniffed::Nothing;
                }
            }
            let head = &head[..got];
            if got == MAGIC_LEN || (configured.is_none() && head.contains(&b'\n')) {
                return match configured.or_else(|| detect_format(head)) {
                    Some(f) => Sniffed::Archive(f),
                    None => {
                        tracing::info!(path = %self.path_label, "no compression magic bytes; tailing as a plain file");
                        Sniffed::Plain
                    }
                };
            }
            // Too short to be any archive yet: being created.
            tokio::select! {
                _ = tokio::time::sleep(self.opts.poll.max) => {}
                _ = stop.changed() => return Sniffed::Nothing,
                _ = shutdown.changed() => return Sniffed::Nothing,
            }
            if *stop.borrow() || *shutdown.borrow() {
                return Sniffed::Nothing;
            }
        }
    }

    /// One pass over `file` from its start on a blocking thread, skipping the first `skip`
    /// lines (done before). Gives the tailer and the archive's position back with how the
    /// pass ended (see [`Passed`]); `None` when the thread failed (logged) and the tailer is
    /// lost.
    async fn pass(
        self,
        format: ArchiveFormat,
        file: &File,
        position: FilePosition,
        skip: u64,
        stop: &watch::Receiver<bool>,
        shutdown: &watch::Receiver<bool>,
    ) -> Option<Passed> {
        let unread = |tailer, position, end| Passed {
            tailer,
            position,
            end,
            seen: Seen::default(),
            last_shipped: skip,
        };
        // Never closed, so acquiring fails only if it were; then read without a permit.
        let _permit = PASSES.acquire().await.ok();
        if *stop.borrow() || *shutdown.borrow() {
            return Some(unread(self, position, PassEnd::Stopped));
        }
        let opened = file.try_clone().and_then(|mut f| {
            f.seek(SeekFrom::Start(0))?;
            let meta = f.metadata()?;
            Ok((f, meta))
        });
        let (file, meta) = match opened {
            Ok(fm) => fm,
            Err(e) => return Some(unread(self, position, PassEnd::Corrupt(e))),
        };
        let seen = Seen::of(&meta);
        let fm = &self.metrics.files;
        fm.files_active.inc();
        if self.opts.per_file_metrics {
            fm.file_bytes
                .with_label_values(&[&self.path_label])
                .set(meta.len() as f64);
        }
        tracing::info!(path = %self.path_label, ?format, skip_lines = skip, "decompressing file");
        let (stop, shutdown) = (stop.clone(), shutdown.clone());
        let task = tokio::task::spawn_blocking(move || {
            let mut count = LineCount {
                seen: 0,
                skip,
                last_shipped: skip,
            };
            let end = self.decompress(file, format, &position, &mut count, &stop, &shutdown);
            (self, position, end, count)
        });
        match task.await {
            Ok((tailer, position, end, count)) => {
                tailer.metrics.files.files_active.dec();
                if let PassEnd::Complete = end {
                    tracing::info!(path = %tailer.path_label, lines = count.seen, "archive read to its end");
                }
                Some(Passed {
                    tailer,
                    position,
                    end,
                    seen,
                    last_shipped: count.last_shipped,
                })
            }
            Err(e) => {
                tracing::error!(error = %e, "decompression thread failed");
                None
            }
        }
    }

    /// Sleeps one poll; then `Some(end)` when stopped or another file is at the path.
    async fn poll_once(
        &self,
        identity: &FileIdentity,
        stop: &mut watch::Receiver<bool>,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Option<ArchiveEnd> {
        tokio::select! {
            _ = tokio::time::sleep(self.opts.poll.max) => {}
            _ = stop.changed() => {}
            _ = shutdown.changed() => {}
        }
        if *stop.borrow() || *shutdown.borrow() {
            return Some(ArchiveEnd::Stopped);
        }
        match std::fs::metadata(&self.path) {
            Ok(at_path) if !identity.same_inode(&at_path) => Some(ArchiveEnd::Replaced),
            // Gone: discovery stops this tailer when the glob no longer lists the path.
            _ => None,
        }
    }

    /// After a complete read: waits until stopped or another file is at the path.
    async fn watch_path(
        &self,
        identity: &FileIdentity,
        stop: &mut watch::Receiver<bool>,
        shutdown: &mut watch::Receiver<bool>,
    ) -> ArchiveEnd {
        loop {
            if let Some(end) = self.poll_once(identity, stop, shutdown).await {
                return end;
            }
        }
    }

    /// After damage: waits, holding no descriptor (a damaged archive may stay as it is for
    /// good), until the archive at the path changes (`Ok`: reopened, to read again), another
    /// file is there, or the tailer is stopped.
    async fn wait_for_change(
        &self,
        identity: &FileIdentity,
        seen: Seen,
        stop: &mut watch::Receiver<bool>,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Result<File, ArchiveEnd> {
        loop {
            if let Some(end) = self.poll_once(identity, stop, shutdown).await {
                return Err(end);
            }
            match std::fs::metadata(&self.path) {
                Ok(meta) if identity.same_inode(&meta) && Seen::of(&meta) != seen => {}
                _ => continue,
            }
            match open_regular(&self.path, self.opts.follow_symlinks_outside) {
                Ok((file, meta)) if identity.same_inode(&meta) => return Ok(file),
                Ok(_) => return Err(ArchiveEnd::Replaced),
                Err(_) => {}
            }
        }
    }

    /// While the archive is being written: waits until `file` stays as `last` for one poll
    /// (`None`: read on), another file is at the path, or the tailer is stopped.
    async fn wait_until_quiet(
        &self,
        file: &File,
        identity: &FileIdentity,
        mut last: Seen,
        stop: &mut watch::Receiver<bool>,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Option<ArchiveEnd> {
        loop {
            if let Some(end) = self.poll_once(identity, stop, shutdown).await {
                return Some(end);
            }
            match file.metadata() {
                Ok(meta) if Seen::of(&meta) == last => return None,
                Ok(meta) => last = Seen::of(&meta),
                Err(_) => return Some(ArchiveEnd::Done),
            }
        }
    }

    /// Decompresses `file` chunk by chunk, splitting lines as the tailer does and sending
    /// one batch per chunk. Runs on a blocking thread: it blocks on the pipeline when that
    /// is full, and checks for stop between chunks.
    fn decompress(
        &self,
        file: File,
        format: ArchiveFormat,
        position: &FilePosition,
        count: &mut LineCount,
        stop: &watch::Receiver<bool>,
        shutdown: &watch::Receiver<bool>,
    ) -> PassEnd {
        let input = BufReader::new(file);
        let mut reader: Box<dyn Read> = match format {
            // Multi-member readers: `gzip` and `bzip2` append members, and Go reads them all.
            ArchiveFormat::Gzip => Box::new(flate2::read::MultiGzDecoder::new(input)),
            ArchiveFormat::Zlib => Box::new(flate2::read::ZlibDecoder::new(input)),
            ArchiveFormat::Bzip2 => Box::new(bzip2::read::MultiBzDecoder::new(input)),
        };
        let source = position.id();
        let newline = Newline::of(self.opts.encoding);
        let mut splitter = Splitter::new(newline, self.opts.max_line_bytes);
        let mut buf = vec![0u8; READ_CHUNK];
        // Bytes at the start of `buf` left from the last read (half a UTF-16 unit).
        let mut carried = 0usize;
        loop {
            if *stop.borrow() || *shutdown.borrow() {
                return PassEnd::Stopped;
            }
            let n = match reader.read(&mut buf[carried..]) {
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return PassEnd::Corrupt(e),
            };
            let mut batch = LineBatch::new(self.labels.clone(), crate::model::clock::now());
            if n == 0 {
                // The last line needs no newline, as for Go's scanner at EOF.
                let mut rest = std::mem::take(&mut splitter.pending);
                rest.extend_from_slice(&buf[..carried]);
                if !rest.is_empty() {
                    self.hand_on(&mut batch, &mut splitter, &rest, source, count);
                }
                position.issue(&batch);
                if !batch.is_empty() && self.out.blocking_send(batch).is_err() {
                    return PassEnd::Closed;
                }
                return PassEnd::Complete;
            }
            let avail = carried + n;
            let usable = avail - avail % newline.width();
            let chunk = &buf[..usable];
            let mut start = 0;
            let mut each_line = |end: usize| {
                let segment = &chunk[start..end - newline.width()];
                start = end;
                if splitter.pending.is_empty() {
                    self.hand_on(&mut batch, &mut splitter, segment, source, count);
                } else {
                    let mut line = std::mem::take(&mut splitter.pending);
                    splitter.append(&mut line, segment);
                    self.hand_on(&mut batch, &mut splitter, &line, source, count);
                    line.clear();
                    splitter.pending = line;
                }
            };
            match newline {
                Newline::Byte => memchr::memchr_iter(b'\n', chunk).for_each(|i| each_line(i + 1)),
                Newline::Utf16Le => utf16_line_ends(chunk, false).for_each(&mut each_line),
                Newline::Utf16Be => utf16_line_ends(chunk, true).for_each(&mut each_line),
            }
            let rest = &chunk[start..];
            let mut pending = std::mem::take(&mut splitter.pending);
            splitter.append(&mut pending, rest);
            splitter.pending = pending;
            buf.copy_within(usable..avail, 0);
            carried = avail - usable;
            if self.opts.per_file_metrics {
                self.metrics
                    .files
                    .read_bytes
                    .with_label_values(&[&self.path_label])
                    // Promtail's decompressor reports its position, a line count, here too.
                    .set(count.seen.max(count.skip) as f64);
            }
            position.issue(&batch);
            if !batch.is_empty() && self.out.blocking_send(batch).is_err() {
                return PassEnd::Closed;
            }
        }
    }

    /// Counts one complete line and, past the saved position, hands it on with its line
    /// number as acknowledgement token.
    fn hand_on(
        &self,
        batch: &mut LineBatch,
        splitter: &mut Splitter,
        line: &[u8],
        source: SourceId,
        count: &mut LineCount,
    ) {
        count.seen += 1;
        let at_file_start = count.seen == 1;
        splitter.overlong = false;
        if count.seen <= count.skip {
            return;
        }
        let line = splitter.newline.strip_cr(line);
        let before = batch.len();
        let token = AckToken::line(source, count.seen);
        self.push_line(
            batch,
            line,
            Some(token),
            self.opts.max_line_bytes,
            at_file_start,
        );
        if batch.len() > before {
            count.last_shipped = count.seen;
            if self.opts.per_file_metrics {
                self.metrics
                    .files
                    .read_lines
                    .with_label_values(&[&self.path_label])
                    .inc();
            }
        }
    }
}

/// The unfinished line of a pass, kept within a bound.
struct Splitter {
    newline: Newline,
    pending: Vec<u8>,
    /// The most bytes of one line kept: past it the line is cut anyway, and enough of it is
    /// kept that its UTF-8 form still exceeds `max_line_bytes` (a UTF-16 unit of two bytes
    /// may decode to one), so it is counted as cut.
    keep: usize,
    /// The current line already reached `keep`: its further bytes are dropped.
    overlong: bool,
}

impl Splitter {
    fn new(newline: Newline, max_line_bytes: usize) -> Self {
        Self {
            newline,
            pending: Vec::new(),
            keep: max_line_bytes.saturating_mul(2).saturating_add(4),
            overlong: false,
        }
    }

    /// Appends `bytes` of the current line to `line`, up to `keep`.
    fn append(&mut self, line: &mut Vec<u8>, bytes: &[u8]) {
        if self.overlong {
            return;
        }
        let room = self.keep.saturating_sub(line.len());
        if bytes.len() > room {
            // `keep` is even, so a UTF-16 line is never cut inside a unit.
            line.extend_from_slice(&bytes[..room]);
            self.overlong = true;
        } else {
            line.extend_from_slice(bytes);
        }
    }
}

impl Newline {
    /// `line` without one trailing carriage return, as Go's `bufio.ScanLines` drops it.
    fn strip_cr(self, line: &[u8]) -> &[u8] {
        let cr: &[u8] = match self {
            Newline::Byte => b"\r",
            Newline::Utf16Le => b"\r\0",
            Newline::Utf16Be => b"\0\r",
        };
        line.strip_suffix(cr).unwrap_or(line)
    }
}

#[cfg(test)]
mod tests;
