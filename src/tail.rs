//! Tailers: one per file, reading complete lines from the saved position onward.
//!
//! Owns opening files, reading with one reused buffer, splitting at `\n` (a trailing `\r` is
//! kept, as Promtail does), holding back an unfinished last line, replacing invalid UTF-8
//! (counted), noticing truncation and replacement of the file, and the per-file metrics. Each
//! line carries an acknowledgement token (source, end offset). It must not know what happens
//! to lines after its output channel: nothing of stages, Loki or HTTP.

use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

use crate::ack::{AckToken, SourceId};
use crate::entry::LineBatch;
use crate::labels::LabelSet;
use crate::metrics::Metrics;
use crate::positions::Positions;

/// How often an idle file is checked: `min` after activity, doubling up to `max`.
#[derive(Clone, Copy, Debug)]
pub struct PollConfig {
    pub min: Duration,
    pub max: Duration,
}

/// Bytes read per system call; also the most one batch holds.
const READ_CHUNK: usize = 256 * 1024;

/// The tailers of one job.
pub struct TailerSet {
    positions: Positions,
    out: mpsc::Sender<LineBatch>,
    metrics: Arc<Metrics>,
    poll: PollConfig,
    shutdown: watch::Receiver<bool>,
    running: HashMap<PathBuf, watch::Sender<bool>>,
    tasks: JoinSet<()>,
}

impl TailerSet {
    pub fn new(
        positions: Positions,
        out: mpsc::Sender<LineBatch>,
        metrics: Arc<Metrics>,
        poll: PollConfig,
        shutdown: watch::Receiver<bool>,
    ) -> Self {
        Self {
            positions,
            out,
            metrics,
            poll,
            shutdown,
            running: HashMap::new(),
            tasks: JoinSet::new(),
        }
    }

    /// Starts tailing `path` unless it already is.
    pub fn start(&mut self, path: &Path, labels: Arc<LabelSet>) {
        if self.running.contains_key(path) {
            return;
        }
        let (stop_tx, stop_rx) = watch::channel(false);
        let tailer = Tailer {
            path: path.to_path_buf(),
            path_label: path.display().to_string(),
            labels,
            positions: self.positions.clone(),
            out: self.out.clone(),
            metrics: self.metrics.clone(),
            poll: self.poll,
        };
        let shutdown = self.shutdown.clone();
        self.tasks.spawn(tailer.run(stop_rx, shutdown));
        self.running.insert(path.to_path_buf(), stop_tx);
    }

    /// Stops tailing `path` (it left the glob) and forgets its position, as Promtail does.
    pub fn stop(&mut self, path: &Path) {
        if let Some(tx) = self.running.remove(path) {
            let _ = tx.send(true);
            self.positions.remove(&path.display().to_string());
        }
    }

    pub fn len(&self) -> usize {
        self.running.len()
    }

    pub fn is_empty(&self) -> bool {
        self.running.is_empty()
    }

    /// Waits for every tailer to finish (after shutdown was signalled).
    pub async fn join(mut self) {
        while self.tasks.join_next().await.is_some() {}
    }
}

struct Tailer {
    path: PathBuf,
    path_label: String,
    labels: Arc<LabelSet>,
    positions: Positions,
    out: mpsc::Sender<LineBatch>,
    metrics: Arc<Metrics>,
    poll: PollConfig,
}

/// An open file and where we are in it.
struct OpenFile {
    file: File,
    dev: u64,
    ino: u64,
    offset: u64,
    source: SourceId,
}

impl Tailer {
    async fn run(self, mut stop: watch::Receiver<bool>, mut shutdown: watch::Receiver<bool>) {
        let fm = &self.metrics.files;
        fm.files_active.inc();
        let mut buf = vec![0u8; READ_CHUNK];
        // Bytes of an unfinished last line, held until its newline arrives.
        let mut pending: Vec<u8> = Vec::new();
        let mut current: Option<OpenFile> = None;
        let mut idle = self.poll.min;
        loop {
            if *stop.borrow() || *shutdown.borrow() {
                break;
            }
            if current.is_none() {
                let start = self.positions.get(&self.path_label);
                current = self.open(start);
                pending.clear();
            }
            let mut progressed = false;
            if let Some(of) = current.as_mut() {
                match self.read_some(of, &mut buf, &mut pending).await {
                    Ok(ReadOutcome::Lines) => progressed = true,
                    Ok(ReadOutcome::Eof) => {
                        if let Some(next) = self.check_replaced_or_truncated(of) {
                            self.positions
                                .unregister(of.source, of.offset - pending.len() as u64);
                            current = next;
                            pending.clear();
                            progressed = true;
                        }
                    }
                    Ok(ReadOutcome::Closed) => break,
                    Err(e) => {
                        tracing::warn!(path = %self.path_label, error = %e, "read failed; reopening");
                        self.positions
                            .unregister(of.source, of.offset - pending.len() as u64);
                        current = None;
                    }
                }
            }
            if progressed {
                idle = self.poll.min;
                continue;
            }
            tokio::select! {
                _ = tokio::time::sleep(idle) => {}
                _ = stop.changed() => {}
                _ = shutdown.changed() => {}
            }
            idle = (idle * 2).min(self.poll.max).max(self.poll.min);
        }
        if let Some(of) = current {
            self.positions
                .unregister(of.source, of.offset - pending.len() as u64);
        }
        fm.files_active.dec();
        // Per-path series go when the tailer stops, as in Promtail.
        let _ = fm.read_bytes.remove_label_values(&[&self.path_label]);
        let _ = fm.file_bytes.remove_label_values(&[&self.path_label]);
        let _ = fm.read_lines.remove_label_values(&[&self.path_label]);
    }

    fn open(&self, saved: u64) -> Option<OpenFile> {
        let mut file = match File::open(&self.path) {
            Ok(f) => f,
            Err(e) => {
                tracing::debug!(path = %self.path_label, error = %e, "cannot open");
                return None;
            }
        };
        let meta = file.metadata().ok()?;
        // A saved offset past the end means the file was truncated while we were away.
        let offset = if saved <= meta.len() { saved } else { 0 };
        if file.seek(SeekFrom::Start(offset)).is_err() {
            return None;
        }
        let source = self.positions.register(&self.path_label, offset);
        tracing::info!(path = %self.path_label, offset, "tailing file");
        Some(OpenFile {
            file,
            dev: meta.dev(),
            ino: meta.ino(),
            offset,
            source,
        })
    }

    async fn read_some(
        &self,
        of: &mut OpenFile,
        buf: &mut [u8],
        pending: &mut Vec<u8>,
    ) -> std::io::Result<ReadOutcome> {
        let n = of.file.read(buf)?;
        if n == 0 {
            self.update_size_gauge(of);
            return Ok(ReadOutcome::Eof);
        }
        let chunk = &buf[..n];
        let read_time = crate::clock::now();
        let mut batch = LineBatch::new(self.labels.clone(), read_time);
        let mut line_start = 0usize;
        // `of.offset` is the file cursor: where `chunk[0]` sits. Pending bytes precede it.
        let chunk_offset = of.offset;
        let mut lines = 0u64;
        for nl in memchr::memchr_iter(b'\n', chunk) {
            let end_offset = chunk_offset + nl as u64 + 1;
            let token = Some(AckToken {
                source: of.source,
                offset: end_offset,
            });
            if pending.is_empty() {
                self.push_line(&mut batch, &chunk[line_start..nl], token);
            } else {
                pending.extend_from_slice(&chunk[line_start..nl]);
                let joined = std::mem::take(pending);
                self.push_line(&mut batch, &joined, token);
            }
            line_start = nl + 1;
            lines += 1;
        }
        pending.extend_from_slice(&chunk[line_start..]);
        of.offset = chunk_offset + n as u64;
        let fm = &self.metrics.files;
        // Like Promtail's Tell(): what was handed on, not counting the held-back partial line.
        fm.read_bytes
            .with_label_values(&[&self.path_label])
            .set((of.offset - pending.len() as u64) as f64);
        if lines > 0 {
            fm.read_lines
                .with_label_values(&[&self.path_label])
                .inc_by(lines);
            if self.out.send(batch).await.is_err() {
                return Ok(ReadOutcome::Closed);
            }
        }
        Ok(ReadOutcome::Lines)
    }

    fn push_line(&self, batch: &mut LineBatch, bytes: &[u8], token: Option<AckToken>) {
        match std::str::from_utf8(bytes) {
            Ok(s) => batch.push(s, token),
            Err(_) => {
                self.metrics
                    .files
                    .invalid_utf8_lines
                    .with_label_values(&[&self.path_label])
                    .inc();
                batch.push(&String::from_utf8_lossy(bytes), token);
            }
        }
    }

    fn update_size_gauge(&self, of: &OpenFile) {
        if let Ok(meta) = of.file.metadata() {
            self.metrics
                .files
                .file_bytes
                .with_label_values(&[&self.path_label])
                .set(meta.len() as f64);
        }
    }

    /// At EOF: has the path been replaced by a new file, or the file truncated? Returns the
    /// file to continue with. The old file was drained to EOF before this is called.
    fn check_replaced_or_truncated(&self, of: &mut OpenFile) -> Option<Option<OpenFile>> {
        let now = std::fs::metadata(&self.path);
        match now {
            Ok(meta) if meta.dev() != of.dev || meta.ino() != of.ino => {
                tracing::info!(path = %self.path_label, "file replaced; reading the new file from the start");
                Some(self.open(0))
            }
            Ok(meta) if meta.len() < of.offset => {
                tracing::info!(path = %self.path_label, "file truncated; reading from the start");
                if of.file.seek(SeekFrom::Start(0)).is_err() {
                    return Some(None);
                }
                // Lines of the old content still in flight no longer matter: the new
                // source takes over the path's position from 0.
                let source = self.positions.register(&self.path_label, 0);
                self.positions.unregister(of.source, of.offset);
                of.source = source;
                of.offset = 0;
                None
            }
            _ => None,
        }
    }
}

enum ReadOutcome {
    Lines,
    Eof,
    Closed,
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    async fn collect(rx: &mut mpsc::Receiver<LineBatch>, n: usize) -> Vec<(String, u64)> {
        let mut got = Vec::new();
        while got.len() < n {
            let b = tokio::time::timeout(Duration::from_secs(5), rx.recv())
                .await
                .expect("lines arrive")
                .expect("channel open");
            for (line, ack) in b.iter() {
                got.push((line.to_string(), ack.map(|a| a.offset).unwrap_or(0)));
            }
        }
        got
    }

    fn set(dir: &Path) -> (TailerSet, mpsc::Receiver<LineBatch>, watch::Sender<bool>) {
        let positions = Positions::open(&dir.join("pos.yaml"), false, 1, false).unwrap();
        let (tx, rx) = mpsc::channel(16);
        let (stop_tx, stop_rx) = watch::channel(false);
        let poll = PollConfig {
            min: Duration::from_millis(10),
            max: Duration::from_millis(50),
        };
        (
            TailerSet::new(positions, tx, Arc::new(Metrics::new()), poll, stop_rx),
            rx,
            stop_tx,
        )
    }

    #[tokio::test]
    async fn reads_lines_with_end_offsets_and_holds_partial_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.log");
        std::fs::write(&path, "one\ntwo\r\nthr").unwrap();
        let (mut tailers, mut rx, _stop) = set(dir.path());
        tailers.start(&path, Arc::new(LabelSet::new()));
        let got = collect(&mut rx, 2).await;
        assert_eq!(got, vec![("one".into(), 4), ("two\r".into(), 9)]);
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        f.write_all(b"ee\n").unwrap();
        let got = collect(&mut rx, 1).await;
        assert_eq!(got, vec![("three".into(), 15)]);
    }

    #[tokio::test]
    async fn invalid_utf8_is_replaced_not_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.log");
        std::fs::write(&path, b"ok \xff\xfe end\n").unwrap();
        let (mut tailers, mut rx, _stop) = set(dir.path());
        tailers.start(&path, Arc::new(LabelSet::new()));
        let got = collect(&mut rx, 1).await;
        assert_eq!(got[0].0, "ok \u{fffd}\u{fffd} end");
    }

    #[tokio::test]
    async fn truncated_file_is_read_again_from_start() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.log");
        std::fs::write(&path, "aaaa\nbbbb\n").unwrap();
        let (mut tailers, mut rx, _stop) = set(dir.path());
        tailers.start(&path, Arc::new(LabelSet::new()));
        collect(&mut rx, 2).await;
        std::fs::write(&path, "c\n").unwrap();
        let got = collect(&mut rx, 1).await;
        assert_eq!(got, vec![("c".into(), 2)]);
    }
}
