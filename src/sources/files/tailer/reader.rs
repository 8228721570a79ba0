//! One open file being read: into a buffer borrowed for each read (its size per tailer
//! starting small, growing while reads fill it), split into complete lines, each line stamped with its acknowledgement
//! token (source, end offset); an unfinished last line is held until its newline arrives or
//! the file has stayed at its end for `partial_line_wait`, and an over-long one is cut at
//! `max_line_bytes` with the rest skipped up to its newline. While a batch waits for room
//! downstream the file's size and lag gauges stay current.
//!
//! Owns the [`Reader`] of a file and its [`FilePosition`]: a reader is opened with the offset
//! it starts at, issues each batch to delivery before handing it on (one lock per batch,
//! none per line) and closes saying how far it handed on. Offsets stay byte offsets in the
//! file, whatever the encoding. It must not decide where a file starts ([`super::resume`]),
//! what became of its path ([`super::rotation`]) or what text a line becomes
//! ([`super::lines`]).

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::time::Instant;

use super::follow::Tailer;
use super::lines::{Newline, utf16_line_ends};
use super::read_buffers;
use crate::delivery::file_identity::FileIdentity;
use crate::delivery::positions::{FilePosition, readable_key};
use crate::model::ack::AckToken;
use crate::model::entry::LineBatch;

/// Bytes read per system call at most; also the most one batch holds. Reads of 64 KiB cost
/// no more CPU per byte than 256 KiB in the benchmarks, and each batch waiting in a
/// pipeline's input holds a quarter as much.
pub(super) const READ_CHUNK: usize = 64 * 1024;
/// A tailer's first read size; it doubles while reads fill it, up to [`READ_CHUNK`], so
/// quiet files read into small buffers.
const FIRST_READ_CHUNK: usize = 16 * 1024;
/// How often the size and lag gauges of a file are set while it is read without reaching its
/// end, or while reading waits for room downstream.
const REPORT_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// One open file being read.
pub(super) struct Reader {
    pub(super) file: File,
    pub(super) identity: FileIdentity,
    /// The file's name as positions know it (it changes when the file is rotated).
    pub(super) name: String,
    /// Where the next read starts.
    pub(super) cursor: u64,
    /// Bytes of an unfinished line, held until its newline arrives or the file has stayed at
    /// its end with it for `partial_line_wait`.
    pub(super) pending: Vec<u8>,
    /// When the held line was last known to be the file's unfinished last line: extended, or
    /// found at the end of the file. A line held at the edge of the read buffer while the
    /// tailer waits for room downstream is not quiet, however long the wait.
    pub(super) pending_since: Instant,
    /// Inside an over-long line that was already cut: discard up to its newline.
    pub(super) skipping: bool,
    /// This file's source in delivery: every line's token names it.
    pub(super) position: FilePosition,
    pub(super) last_growth: Instant,
    /// Rotated away or deleted: read until quiet, then close.
    pub(super) draining: bool,
    /// The last read found nothing more: the file is at its end, as far as the tailer knows.
    pub(super) at_eof: bool,
    /// When the size and lag gauges were last set.
    pub(super) reported_at: Instant,
}

impl Reader {
    /// End of the last line handed on.
    pub(super) fn handed_on(&self) -> u64 {
        self.cursor - self.pending.len() as u64
    }
}

pub(super) enum ReadOutcome {
    Lines,
    Eof,
    Closed,
}

impl Tailer {
    /// Opens a reader of `file` (known to delivery as `name`) at `offset`: from now on
    /// delivery tracks it as a source starting there. `resumes`: the positions entry whose
    /// saved offset `offset` is, when it is this file's (the source goes on as the one saved
    /// with it).
    pub(super) fn reader(
        &self,
        mut file: File,
        identity: FileIdentity,
        name: String,
        offset: u64,
        resumes: Option<&str>,
    ) -> Result<Reader, &'static str> {
        // UTF-16 lines start at even offsets; an odd one (tail_from_end mid-write) is not one.
        let aligned = offset - offset % Newline::of(self.opts.encoding).width() as u64;
        file.seek(SeekFrom::Start(aligned)).map_err(|_| "seek")?;
        let position = match resumes {
            Some(entry) if aligned == offset => {
                self.positions.resume_file(entry, &name, offset, identity)
            }
            _ => self.positions.open_file(&name, aligned, identity),
        };
        let offset = aligned;
        Ok(self.attach(file, identity, name, offset, position))
    }

    /// Opens a reader of `file` for `position`, the source of it that closed with lines still
    /// unacknowledged and was reopened ([`PositionsView::reopen_file`]), at `offset`, where
    /// that source stopped handing on.
    ///
    /// [`PositionsView::reopen_file`]: crate::delivery::positions::PositionsView::reopen_file
    pub(super) fn reader_continuing(
        &self,
        mut file: File,
        identity: FileIdentity,
        name: String,
        position: FilePosition,
        offset: u64,
    ) -> Result<Reader, &'static str> {
        if file.seek(SeekFrom::Start(offset)).is_err() {
            position.close(offset);
            return Err("seek");
        }
        position.identity_grew(identity);
        Ok(self.attach(file, identity, name, offset, position))
    }

    fn attach(
        &self,
        file: File,
        identity: FileIdentity,
        name: String,
        offset: u64,
        position: FilePosition,
    ) -> Reader {
        self.metrics.files.files_active.inc();
        tracing::info!(path = %readable_key(&name), offset, "tailing file");
        let now = Instant::now();
        Reader {
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
            reported_at: now,
        }
    }

    /// Closes the file, telling delivery how far it was handed on.
    pub(super) fn close(&self, r: Reader) {
        let handed_on = r.handed_on();
        r.position.close(handed_on);
        self.claims.release(&r.identity);
        self.metrics.files.files_active.dec();
        tracing::debug!(path = %readable_key(&r.name), "closed file");
    }

    /// Reads what is there (up to `read_size` bytes, which doubles while reads fill it) and
    /// hands its lines on. The read buffer is borrowed from [`read_buffers`] for the read
    /// and the split only, so a tailer waiting for room downstream holds none.
    pub(super) async fn read_some(
        &self,
        r: &mut Reader,
        read_size: &mut usize,
    ) -> std::io::Result<ReadOutcome> {
        if *read_size == 0 {
            *read_size = FIRST_READ_CHUNK;
        }
        let mut buf = read_buffers::take();
        if buf.len() < *read_size {
            buf.resize(*read_size, 0);
        }
        let read = self.read_split(r, &mut buf[..*read_size], read_size);
        read_buffers::give(buf);
        let Some(batch) = read? else {
            return Ok(ReadOutcome::Eof);
        };
        // Issued before it leaves: the position must wait for these lines from now on.
        r.position.issue(&batch);
        if !batch.is_empty() && self.send(r, batch).await.is_err() {
            return Ok(ReadOutcome::Closed);
        }
        Ok(ReadOutcome::Lines)
    }

    /// One read into `buf` split into a batch of lines; `None` at the file's end (or when
    /// it is no longer the file that was being read).
    fn read_split(
        &self,
        r: &mut Reader,
        buf: &mut [u8],
        read_size: &mut usize,
    ) -> std::io::Result<Option<LineBatch>> {
        if r.at_eof && !r.draining {
            // New data after a pause: make sure it is still the file we were reading before
            // reading on (a truncate and rewrite past our offset looks like growth).
            let meta = r.file.metadata()?;
            if meta.len() > r.cursor && !r.identity.matches(&r.file, &meta) {
                return Ok(None);
            }
        }
        let newline = Newline::of(self.opts.encoding);
        let mut n = r.file.read(buf)?;
        if n % 2 == 1 && newline != Newline::Byte {
            // Keep the cursor even: the odd byte is read again with the rest of its unit.
            r.file.seek(SeekFrom::Current(-1))?;
            n -= 1;
        }
        let now = Instant::now();
        if n == 0 {
            if !r.at_eof {
                // The held line's quiet time starts now that the file is seen at its end.
                r.pending_since = now;
            }
            r.at_eof = true;
            self.report_size(r, now);
            return Ok(None);
        }
        r.at_eof = false;
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
        if newline == Newline::Byte {
            // Sized once: grown by doubling, the spans of a full read were copied about nine
            // times; counting newlines costs a fraction of that.
            batch
                .lines
                .reserve_exact(memchr::memchr_iter(b'\n', chunk).count() + 1);
        }
        let (start, mut lines) = match newline {
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
                // Read, though cut (or dropped): its newline, when it comes, is skipped.
                lines += 1;
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
            *read_size = (n * 2).min(READ_CHUNK);
        }
        if now.duration_since(r.reported_at) >= REPORT_EVERY {
            // Catching up on a large backlog reaches no end for a while; the lag still shows.
            self.report_size(r, now);
        }
        Ok(Some(batch))
    }

    /// Hands `batch` on, waiting for room downstream as long as it takes (back-pressure), and
    /// meanwhile keeps the file's size and lag gauges current: a paused reader is exactly
    /// when the lag grows.
    async fn send(&self, r: &mut Reader, batch: LineBatch) -> Result<(), ()> {
        let send = self.out.send(batch);
        tokio::pin!(send);
        loop {
            tokio::select! {
                sent = &mut send => return sent.map_err(|_| ()),
                _ = tokio::time::sleep(REPORT_EVERY) => self.report_size(r, Instant::now()),
            }
        }
    }

    /// Sets the file's size and its lag behind what was handed on (per-path series only).
    fn report_size(&self, r: &mut Reader, now: Instant) {
        r.reported_at = now;
        if !self.opts.per_file_metrics {
            return;
        }
        let Ok(meta) = r.file.metadata() else {
            return;
        };
        let fm = &self.metrics.files;
        fm.file_bytes
            .with_label_values(&[&self.path_label])
            .set(meta.len() as f64);
        fm.file_lag_bytes
            .with_label_values(&[&self.path_label])
            .set(meta.len().saturating_sub(r.handed_on()) as f64);
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
    pub(super) async fn ship_pending(&self, r: &mut Reader) -> Result<(), ()> {
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
            let fm = &self.metrics.files;
            fm.read_lines.with_label_values(&[&self.path_label]).inc();
            fm.read_bytes
                .with_label_values(&[&self.path_label])
                .set(r.handed_on() as f64);
        }
        r.position.issue(&batch);
        self.send(r, batch).await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use crate::model::labels::LabelSet;
    use crate::sources::files::tailer::TailOptions;
    use crate::sources::files::tailer::test_harness::{append, collect, harness, opts};

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

    /// The value of the series `name{path="<path>"}`, if exported.
    fn series(
        h: &crate::sources::files::tailer::test_harness::Harness,
        name: &str,
        path: &std::path::Path,
    ) -> Option<f64> {
        let rendered = h.metrics.render();
        let prefix = format!("{name}{{path=\"{}\"}} ", path.display());
        rendered
            .lines()
            .find_map(|l| l.strip_prefix(prefix.as_str()))
            .and_then(|v| v.parse().ok())
    }

    fn numbered(i: usize) -> String {
        format!("line {i:06} of a file read under back-pressure\n")
    }

    /// Issue 16 items 2 and 5: while the tailer waited for room downstream (a slow or full
    /// client) longer than `partial_line_wait`, the line at the edge of its read buffer went
    /// out as a line of its own, and the rest of it as another.
    #[tokio::test]
    async fn a_line_at_the_read_buffer_edge_is_not_cut_by_back_pressure() {
        const LINES: usize = 30_000;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.log");
        let text: String = (0..LINES).map(numbered).collect();
        std::fs::write(&path, &text).unwrap();
        let mut h = harness(
            dir.path(),
            TailOptions {
                max_line_bytes: 1024,
                ..opts()
            },
        );
        h.set.start(&path, Arc::new(LabelSet::new()));
        // Nobody takes lines: 16 batches fill the channel and the tailer waits with a line
        // cut at its buffer's edge, for longer than partial_line_wait (300 ms).
        tokio::time::sleep(Duration::from_millis(900)).await;
        let got = collect(&mut h, LINES).await;
        let expected: Vec<String> = (0..LINES)
            .map(|i| numbered(i).trim_end().to_string())
            .collect();
        let lines: Vec<String> = got.iter().map(|(l, _)| l.clone()).collect();
        let cut: Vec<&String> = lines
            .iter()
            .filter(|l| l.len() != expected[0].len())
            .collect();
        assert!(
            cut.is_empty(),
            "lines cut in two: {:?}",
            &cut[..cut.len().min(4)]
        );
        assert_eq!(lines, expected);
        assert_eq!(got.last().map(|(_, end)| *end), Some(text.len() as u64));
    }

    /// Issue 16 item 7: the lag was set only when a read reached the end of the file, so a
    /// reader paused by back-pressure showed none while its file grew.
    #[tokio::test]
    async fn lag_is_reported_while_reading_waits_for_room() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.log");
        let text: String = (0..30_000).map(numbered).collect();
        std::fs::write(&path, &text).unwrap();
        let mut h = harness(
            dir.path(),
            TailOptions {
                max_line_bytes: 1024,
                ..opts()
            },
        );
        h.set.start(&path, Arc::new(LabelSet::new()));
        // The tailer is stuck on a full channel, far from the end of the file.
        let grown: String = (30_000..31_000).map(numbered).collect();
        append(&path, &grown);
        let size = (text.len() + grown.len()) as f64;
        let mut lag = None;
        for _ in 0..100 {
            lag = series(&h, "tailward_file_lag_bytes", &path);
            if lag.is_some_and(|l| l >= grown.len() as f64) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let lag = lag.expect("a lag series while reading is paused");
        assert!(
            lag >= grown.len() as f64 && lag < size,
            "lag {lag} of {size}"
        );
        assert_eq!(series(&h, "promtail_file_bytes_total", &path), Some(size));
        drop(h.rx);
    }

    /// Issue 16 item 9: a line cut at max_line_bytes was not counted as read, and the bytes
    /// of a last line shipped after partial_line_wait were not counted either.
    #[tokio::test]
    async fn read_counters_count_cut_lines_and_a_last_line_without_newline() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.log");
        std::fs::write(&path, format!("short\n{}", "x".repeat(200))).unwrap();
        let mut h = harness(dir.path(), opts());
        h.set.start(&path, Arc::new(LabelSet::new()));
        collect(&mut h, 2).await;
        assert_eq!(series(&h, "promtail_read_lines_total", &path), Some(2.0));
        append(&path, "rest of the long line\nnext\n");
        assert_eq!(collect(&mut h, 1).await[0].0, "next");
        assert_eq!(series(&h, "promtail_read_lines_total", &path), Some(3.0));

        let path = dir.path().join("b.log");
        std::fs::write(&path, "done\nno newline").unwrap();
        h.set.start(&path, Arc::new(LabelSet::new()));
        assert_eq!(collect(&mut h, 2).await[1], ("no newline".into(), 15));
        assert_eq!(series(&h, "promtail_read_bytes_total", &path), Some(15.0));
        assert_eq!(series(&h, "promtail_read_lines_total", &path), Some(2.0));
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
}
