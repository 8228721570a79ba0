//! A client's optional disk buffer (write-ahead log): entries are written to segment files
//! before they count as accepted, read back by the client in order, replayed after a crash or
//! restart, and deleted only once Loki acknowledged them.
//!
//! Layout: `<dir>/<base>.wal` segment files, `<base>` being the segment's first byte in one
//! position space that grows across segments (20 digits, so names sort by position), and
//! `<dir>/acked` holding the position below which everything was acknowledged (so a restart
//! replays from there, not from the start of the oldest segment). A record is
//! `len: u32 LE | crc32(payload): u32 LE | payload`; the payload is the entry (labels,
//! timestamp, line, structured metadata), length-prefixed field by field, followed, when the
//! top bit of `len` is set, by the entry's acknowledgement token (source, first and last line
//! end: three u64 LE). Records of earlier versions have no token and are read as before.
//!
//! Positions and the buffer agree (issue 16 item 4): the pipeline's acknowledgements are
//! settled once entries are written, so positions move as soon as lines are in the buffer,
//! and the buffer replays what Loki has not acknowledged. Positions are saved a moment after
//! they move, so a kill -9 in that moment leaves lines both in the buffer and after the saved
//! position. On the restart the tailer reads them again under the same source (positions
//! keep each file's source number), and the writer, which collected the tokens of every
//! record it holds when it opened the directory, settles a line it already holds instead of
//! writing it twice: a line reaches Loki by the replay or by the file, never both.
//!
//! Faults: a record whose CRC does not match is skipped and counted; a length that cannot be
//! right, or a truncated tail, ends that segment (counted); the rest is replayed. A write that
//! fails (full disk, unwritable directory) is logged once per failure streak and counted,
//! the partial record is cut off, and the write is retried every second: reading pauses
//! meanwhile (the queue fills), nothing is lost, nothing crashes.
//!
//! File I/O is plain blocking I/O on the writer and client tasks (appends to the page cache;
//! reads only of what a restart replays or what fell out of the in-memory tail: the last
//! `TAIL_BYTES` of records written are handed to the reader as the entries they were made
//! from, once written, so the common case reads and decodes nothing). `fsync: always`
//! stalls one runtime worker per sync, which is why `periodic` is the default; a periodic
//! sync runs on a blocking thread, outside the state lock, so the reader goes on meanwhile.
//!
//! Owns the files and their bookkeeping. It must not batch or push, and it settles the
//! pipeline's acknowledgements only through the writer task, once the entries are written.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{BufReader, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use chrono::{DateTime, FixedOffset, TimeZone};
use tokio::sync::Notify;

use super::queue::QueueReceiver;
use super::recent::Recent;
use crate::config::{WalConfig, WalFsync, WalWhenFull};
use crate::metrics::Metrics;
use crate::model::ack::{AckSender, AckToken, SourceId, push_coalesced};
use crate::model::entry::{Entry, Outgoing};
use crate::model::labels::LabelSet;

/// The source id of tokens that name a WAL position rather than a file line; they never
/// leave the client.
const WAL_SOURCE: SourceId = SourceId(u64::MAX);
const HEADER: u64 = 8;
/// Set in a record's length: the payload ends with the entry's acknowledgement token.
const TAGGED: u32 = 1 << 31;
/// The token at the end of a tagged payload: source, first and last line end.
const TAG_LEN: usize = 24;
/// No entry is this large (Loki's own limits are far lower): a longer length is corruption.
const MAX_RECORD: u64 = 64 * 1024 * 1024;
/// Records handed to the client per read.
const READ_CHUNK: usize = 512;
/// The in-memory tail's bound, in record bytes: enough for the reader that keeps up (it
/// trails the writer by a chunk or two), small beside the RSS budget when it does not.
const TAIL_BYTES: u64 = 1024 * 1024;
const RETRY_IO_EVERY: Duration = Duration::from_secs(1);
/// Wake-ups are notifications; this only bounds a missed one.
const POLL_FALLBACK: Duration = Duration::from_millis(200);
/// How finely write times are kept for the age of the oldest unacknowledged record (its
/// gauge is in seconds): one mark per second of writing, not one per chunk.
const WRITTEN_AT_GRAIN: Duration = Duration::from_secs(1);

pub struct Wal {
    cfg: WalConfig,
    dir: PathBuf,
    host: String,
    metrics: Arc<Metrics>,
    /// Hot-path series, looked up once.
    written_records: prometheus::IntCounter,
    bytes_gauge: prometheus::IntGauge,
    segments_gauge: prometheus::IntGauge,
    state: Mutex<State>,
    written: Notify,
    freed: Notify,
}

#[derive(Default)]
struct State {
    /// Set once the directory was read; until then nothing can be written or replayed.
    opened: bool,
    segments: VecDeque<Segment>,
    total_bytes: u64,
    /// Everything below was acknowledged.
    acked: u64,
    /// Everything below was deleted (acknowledged, or dropped when full).
    floor: u64,
    /// Where the next record goes.
    end: u64,
    /// End of the data found at startup: records below it are replays.
    replay_end: u64,
    active: Option<Active>,
    /// The writer has finished: once read to `end`, there is nothing more.
    closed: bool,
    /// A write or open failure is being retried (logged once per streak).
    failing: bool,
    unsynced: bool,
    /// The lines the buffer held when it was opened, by their tokens: taken by the writer.
    held: Held,
    /// When records were written, coarsely: (position of the first record written in that
    /// second, when). The front is the oldest unacknowledged record's second.
    written_at: VecDeque<(u64, std::time::Instant)>,
    /// The records written last, as the entries they were made from: the reader takes them
    /// from here instead of reading and decoding what was just written. Contiguous, in
    /// order, and only ever records already written; at most `TAIL_BYTES` of record bytes
    /// (older ones are read from disk, as is everything a restart replays).
    tail: VecDeque<TailRecord>,
    tail_bytes: u64,
}

struct TailRecord {
    at: u64,
    end: u64,
    entry: Entry,
}

struct Segment {
    base: u64,
    /// Bytes of whole records (for a segment found at startup: the file's size).
    len: u64,
    records: u64,
    path: PathBuf,
}

struct Active {
    /// Shared so that a sync runs without holding the state lock (the reader and the
    /// acknowledgements need it meanwhile).
    file: Arc<File>,
    base: u64,
}

impl Wal {
    /// Nothing is touched on disk here: the writer task opens the directory, and retries
    /// while it cannot.
    pub fn new(cfg: &WalConfig, dir: PathBuf, host: &str, metrics: Arc<Metrics>) -> Arc<Self> {
        for event in [
            "written",
            "replayed",
            "corrupt",
            "dropped_oldest",
            "already_held",
        ] {
            metrics.client.wal_records.with_label_values(&[host, event]);
        }
        Arc::new(Self {
            cfg: cfg.clone(),
            dir,
            host: host.to_string(),
            written_records: metrics
                .client
                .wal_records
                .with_label_values(&[host, "written"]),
            bytes_gauge: metrics.client.wal_bytes.with_label_values(&[host]),
            segments_gauge: metrics.client.wal_segments.with_label_values(&[host]),
            metrics,
            state: Mutex::new(State::default()),
            written: Notify::new(),
            freed: Notify::new(),
        })
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn count(&self, event: &str, n: u64) {
        self.metrics
            .client
            .wal_records
            .with_label_values(&[&self.host, event])
            .inc_by(n);
    }

    fn io_failed(&self, st: &mut State, operation: &str, error: &std::io::Error) {
        self.metrics
            .client
            .wal_errors
            .with_label_values(&[&self.host, operation])
            .inc();
        if !st.failing {
            tracing::error!(
                dir = %self.dir.display(),
                operation,
                error = %error,
                "disk buffer (WAL) I/O failed; reading pauses and the operation is retried every second"
            );
        }
        st.failing = true;
    }

    fn publish(&self, st: &State) {
        self.bytes_gauge.set(st.total_bytes as i64);
        self.segments_gauge.set(st.segments.len() as i64);
    }

    /// Reads the directory: segments left by an earlier run, and the acknowledged position.
    fn open(&self, st: &mut State) -> std::io::Result<()> {
        create_private_dir(&self.dir)?;
        let mut found = Vec::new();
        for entry in std::fs::read_dir(&self.dir)? {
            let entry = entry?;
            let name = entry.file_name();
            let Some(base) = name
                .to_str()
                .and_then(|n| n.strip_suffix(".wal"))
                .and_then(|n| n.parse::<u64>().ok())
            else {
                continue;
            };
            let meta = entry.metadata()?;
            let len = meta.len();
            found.push((
                Segment {
                    base,
                    len,
                    records: scan_records(&entry.path(), len, &mut st.held),
                    path: entry.path(),
                },
                meta.modified().ok(),
            ));
        }
        found.sort_by_key(|(s, _)| s.base);
        let acked = read_acked(&self.dir.join("acked")).unwrap_or(0);
        // Replayed records were written at the latest when their segment last was: their
        // age counts from there (a lower bound; an earlier run kept no finer record).
        let replay_written = found
            .iter()
            .filter(|(s, _)| s.base + s.len > acked)
            .filter_map(|(_, mtime)| mtime.and_then(|m| m.elapsed().ok()))
            .max()
            .and_then(|age| std::time::Instant::now().checked_sub(age));
        let found: Vec<Segment> = found.into_iter().map(|(s, _)| s).collect();
        st.segments = found.into();
        st.total_bytes = st.segments.iter().map(|s| s.len).sum();
        st.end = st.segments.back().map_or(acked, |s| s.base + s.len);
        st.floor = st.segments.front().map_or(st.end, |s| s.base);
        st.acked = acked.clamp(st.floor, st.end);
        st.replay_end = st.end;
        st.opened = true;
        if st.end > st.acked {
            st.written_at.push_back((
                st.acked,
                replay_written.unwrap_or_else(std::time::Instant::now),
            ));
        }
        if st.end > st.acked {
            tracing::info!(
                dir = %self.dir.display(),
                bytes = st.end - st.acked,
                "disk buffer (WAL) holds unacknowledged entries from an earlier run; replaying them"
            );
        }
        self.publish(st);
        Ok(())
    }

    /// Appends one record, waiting while the buffer is full (`when_full: block`) or a write
    /// keeps failing.
    /// Appends framed records (back to back in `records`, `sizes` their lengths) in order,
    /// waiting for room when the buffer is full and retrying failed writes. Records that
    /// share a segment go out in one write: a write per record was most of the disk
    /// buffer's cost.
    async fn append_run(&self, records: &[u8], sizes: &[u64], entries: &mut VecDeque<Entry>) {
        let (mut done, mut offset) = (0usize, 0usize);
        while done < sizes.len() {
            let freed = self.freed.notified();
            let (appended, retry_after) = {
                let mut st = self.state();
                match self.try_append_run(&mut st, &records[offset..], &sizes[done..], entries) {
                    Ok(n) => (n, POLL_FALLBACK),
                    Err(n) => (n, RETRY_IO_EVERY),
                }
            };
            if appended > 0 {
                self.written.notify_waiters();
                offset += sizes[done..done + appended].iter().sum::<u64>() as usize;
                done += appended;
                continue;
            }
            tokio::select! {
                _ = freed => {}
                _ = tokio::time::sleep(retry_after) => {}
            }
        }
    }

    /// Appends as many of `records` as fit, in one write per segment. `Ok(n)`: the first `n`
    /// went in (fewer than all: full, wait for room); `Err(n)`: an I/O failure after the
    /// first `n`, retry later. Each record is placed exactly as if written alone: a segment
    /// rolls once it holds `segment_size`, and the bound `max_size` holds per record.
    fn try_append_run(
        &self,
        st: &mut State,
        records: &[u8],
        sizes: &[u64],
        entries: &mut VecDeque<Entry>,
    ) -> Result<usize, usize> {
        let mut done = 0usize;
        let mut offset = 0usize;
        let outcome = loop {
            let Some(&first) = sizes.get(done) else {
                break Ok(done);
            };
            if !st.opened
                && let Err(e) = self.open(st)
            {
                self.io_failed(st, "open", &e);
                break Err(done);
            }
            let max = self.cfg.max_size.0.max(1);
            let mut full = false;
            while st.total_bytes > 0 && st.total_bytes + first > max {
                match self.cfg.when_full {
                    WalWhenFull::Block => {
                        full = true;
                        break;
                    }
                    WalWhenFull::DropOldest => {
                        // The active segment is never dropped: a buffer of one segment blocks.
                        if st.segments.len() < 2 {
                            full = true;
                            break;
                        }
                        self.drop_oldest(st);
                    }
                }
            }
            if full {
                break Ok(done);
            }
            // Several segments fit in the bound, so acknowledged ones can be deleted while the
            // active one fills.
            let segment_size = self.cfg.segment_size.0.min(max / 4).max(1);
            let roll = match &st.active {
                None => true,
                Some(a) => st.end - a.base >= segment_size,
            };
            if roll && let Err(e) = self.start_segment(st) {
                self.io_failed(st, "open", &e);
                break Err(done);
            }
            let Some(active) = st.active.as_mut() else {
                break Err(done);
            };
            // The records after the first that still go into this segment within the bound.
            let good = st.end - active.base;
            let (mut count, mut len) = (1usize, first);
            while let Some(&next) = sizes.get(done + count) {
                if good + len >= segment_size || st.total_bytes + len + next > max {
                    break;
                }
                len += next;
                count += 1;
            }
            let run = &records[offset..offset + len as usize];
            let mut file: &File = &active.file;
            if let Err(e) = file.write_all(run) {
                // Cut off what part of the run got written, so the segment stays readable.
                let _ = file.set_len(good);
                let _ = file.seek(SeekFrom::Start(good));
                self.io_failed(st, "write", &e);
                break Err(done);
            }
            if st.failing {
                tracing::info!(dir = %self.dir.display(), "disk buffer (WAL) writes work again");
                st.failing = false;
            }
            let now = std::time::Instant::now();
            if st
                .written_at
                .back()
                .is_none_or(|(_, at)| now.duration_since(*at) >= WRITTEN_AT_GRAIN)
            {
                let at = st.end;
                st.written_at.push_back((at, now));
            }
            st.end += len;
            st.total_bytes += len;
            st.unsynced = true;
            if let Some(seg) = st.segments.back_mut() {
                seg.len += len;
                seg.records += count as u64;
            }
            self.written_records.inc_by(count as u64);
            // Written: the reader may take them from memory now.
            let mut at = st.end - len;
            for &size in &sizes[done..done + count] {
                let Some(entry) = entries.pop_front() else {
                    break;
                };
                st.tail.push_back(TailRecord {
                    at,
                    end: at + size,
                    entry,
                });
                st.tail_bytes += size;
                at += size;
            }
            while st.tail_bytes > TAIL_BYTES
                && let Some(old) = st.tail.pop_front()
            {
                st.tail_bytes -= old.end - old.at;
            }
            done += count;
            offset += len as usize;
        };
        self.publish(st);
        outcome
    }

    fn start_segment(&self, st: &mut State) -> std::io::Result<()> {
        if let Some(old) = st.active.take()
            && self.cfg.fsync != WalFsync::Never
        {
            old.file.sync_data()?;
        }
        let path = self.dir.join(format!("{:020}.wal", st.end));
        let file = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .mode(0o600)
            .open(&path)?;
        // `mode` applies only to a file created now; a segment left by an older version
        // keeps its mode otherwise.
        file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
        if let Ok(d) = File::open(&self.dir) {
            let _ = d.sync_all();
        }
        st.segments.push_back(Segment {
            base: st.end,
            len: 0,
            records: 0,
            path,
        });
        st.active = Some(Active {
            file: Arc::new(file),
            base: st.end,
        });
        Ok(())
    }

    fn drop_oldest(&self, st: &mut State) {
        let Some(seg) = st.segments.pop_front() else {
            return;
        };
        let unacked = seg.base + seg.len > st.acked;
        if let Err(e) = std::fs::remove_file(&seg.path) {
            self.io_failed(st, "delete", &e);
        }
        st.total_bytes -= seg.len;
        st.floor = st.segments.front().map_or(st.end, |s| s.base);
        st.acked = st.acked.max(st.floor);
        trim_written_at(st);
        if unacked {
            tracing::warn!(
                entries = seg.records,
                "disk buffer (WAL) full: dropped its oldest segment (when_full: drop_oldest)"
            );
            self.count("dropped_oldest", seg.records);
        }
        self.publish(st);
    }

    /// Syncs the active segment outside the state lock, so the reader and the
    /// acknowledgements go on meanwhile; a write during the sync marks it unsynced again.
    fn sync(&self) {
        let file = {
            let mut st = self.state();
            if !st.unsynced {
                return;
            }
            st.unsynced = false;
            st.active.as_ref().map(|a| a.file.clone())
        };
        let Some(file) = file else {
            return;
        };
        if let Err(e) = file.sync_data() {
            let mut st = self.state();
            st.unsynced = true;
            self.io_failed(&mut st, "sync", &e);
        }
    }

    /// Everything below `position` was delivered (or dropped on purpose, counted): segments
    /// wholly below it are deleted.
    pub fn acknowledge(&self, position: u64) {
        let mut st = self.state();
        if position <= st.acked {
            return;
        }
        st.acked = position;
        let mut deleted = false;
        while let Some(seg) = st.segments.front() {
            if seg.base + seg.len > position {
                break;
            }
            let Some(seg) = st.segments.pop_front() else {
                break;
            };
            // A wholly acknowledged active segment goes too; the next write starts another.
            if st.active.as_ref().is_some_and(|a| a.base == seg.base) {
                st.active = None;
            }
            if let Err(e) = std::fs::remove_file(&seg.path) {
                self.io_failed(&mut st, "delete", &e);
            }
            st.total_bytes -= seg.len;
            deleted = true;
        }
        st.floor = st.segments.front().map_or(st.end, |s| s.base);
        trim_written_at(&mut st);
        if let Err(e) = write_acked(&self.dir, position) {
            self.io_failed(&mut st, "write", &e);
        }
        self.publish(&st);
        drop(st);
        if deleted {
            self.freed.notify_waiters();
        }
    }

    /// When the oldest record Loki has not acknowledged was written (to the second), if any:
    /// lines held here are settled for positions, so only the buffer knows they wait.
    pub fn oldest_unacknowledged(&self) -> Option<std::time::Instant> {
        let st = self.state();
        if st.end <= st.acked {
            return None;
        }
        st.written_at.front().map(|(_, at)| *at)
    }
}

/// Forgets the write times of records now acknowledged (or dropped): the front mark is the
/// second of the oldest record still waiting.
fn trim_written_at(st: &mut State) {
    if st.acked >= st.end {
        st.written_at.clear();
        return;
    }
    while st.written_at.get(1).is_some_and(|(at, _)| *at <= st.acked) {
        st.written_at.pop_front();
    }
}

/// The tokens of the records a buffer holds, by source: runs of lines as (first line end,
/// last line end), sorted and merged where one run follows on from the other.
#[derive(Default)]
struct Held(std::collections::HashMap<SourceId, Vec<(u64, u64)>>);

impl Held {
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn insert(&mut self, t: AckToken) {
        let runs = self.0.entry(t.source).or_default();
        let i = runs.partition_point(|(from, _)| *from <= t.from);
        runs.insert(i, (t.from, t.offset));
        // Merge around the new run: its predecessor, then what it now reaches.
        let mut at = i.saturating_sub(1);
        while at + 1 < runs.len() {
            let (from, to) = runs[at];
            let (next_from, next_to) = runs[at + 1];
            if next_from <= to.saturating_add(1) {
                runs[at] = (from, to.max(next_to));
                runs.remove(at + 1);
            } else if at + 1 > i {
                break;
            } else {
                at += 1;
            }
        }
    }

    /// Whether every line `t` covers is in a record held.
    fn covers(&self, t: &AckToken) -> bool {
        let Some(runs) = self.0.get(&t.source) else {
            return false;
        };
        let i = runs.partition_point(|(from, _)| *from <= t.from);
        i > 0 && runs[i - 1].1 >= t.offset
    }

    /// `t` was not held: once reading is past everything held of its source, that source
    /// need not be looked up again.
    fn passed(&mut self, t: &AckToken) {
        if let Some(runs) = self.0.get(&t.source)
            && runs.last().is_none_or(|(_, to)| t.from > *to)
        {
            self.0.remove(&t.source);
        }
    }
}

/// Takes the client's queue and writes it to the WAL; the pipeline's acknowledgements are
/// settled once their entries are written (and synced, with `fsync: always`).
pub async fn run_writer(wal: Arc<Wal>, mut input: QueueReceiver, acks: AckSender) {
    // Opened before anything arrives, so what an earlier run left is replayed at once.
    loop {
        {
            let mut st = wal.state();
            if st.opened {
                break;
            }
            match wal.open(&mut st) {
                Ok(()) => break,
                Err(e) => wal.io_failed(&mut st, "open", &e),
            }
        }
        tokio::time::sleep(RETRY_IO_EVERY).await;
    }
    wal.written.notify_waiters();
    let mut held = std::mem::take(&mut wal.state().held);
    let already_held = wal
        .metrics
        .client
        .wal_records
        .with_label_values(&[&wal.host, "already_held"]);
    // The chunk's records, framed, their sizes and the entries they were made from (for the
    // in-memory tail): appended together.
    let mut records = Vec::new();
    let mut sizes = Vec::new();
    let mut entries = VecDeque::new();
    let mut last_sync = tokio::time::Instant::now();
    loop {
        let chunk = if wal.cfg.fsync == WalFsync::Periodic {
            tokio::select! {
                chunk = input.recv() => chunk,
                _ = tokio::time::sleep(wal.cfg.fsync_period.0) => {
                    sync_off_runtime(&wal).await;
                    last_sync = tokio::time::Instant::now();
                    continue;
                }
            }
        } else {
            input.recv().await
        };
        let Some(chunk) = chunk else { break };
        let mut tokens = Vec::new();
        records.clear();
        sizes.clear();
        entries.clear();
        for item in chunk {
            match item {
                Outgoing::Consumed { ack } => push_coalesced(&mut tokens, ack),
                Outgoing::Entry { entry, ack } => {
                    if let Some(t) = ack.filter(|_| !held.is_empty()) {
                        if held.covers(&t) {
                            // Read again after a crash, and already here: settled, not
                            // written, so it is not delivered twice.
                            if already_held.get() == 0 {
                                tracing::info!(
                                    dir = %wal.dir.display(),
                                    "disk buffer (WAL) already holds lines read again after a restart; they are sent once, from the buffer"
                                );
                            }
                            already_held.inc();
                            push_coalesced(&mut tokens, t);
                            continue;
                        }
                        held.passed(&t);
                    }
                    // Framed in place: the header is filled in once the payload is there.
                    let start = records.len();
                    records.extend_from_slice(&[0u8; HEADER as usize]);
                    encode(&entry, &mut records);
                    let mut tagged = 0;
                    if let Some(t) = ack {
                        records.extend_from_slice(&t.source.0.to_le_bytes());
                        records.extend_from_slice(&t.from.to_le_bytes());
                        records.extend_from_slice(&t.offset.to_le_bytes());
                        tagged = TAGGED;
                    }
                    let payload = &records[start + HEADER as usize..];
                    let len = (payload.len() as u32 | tagged).to_le_bytes();
                    let crc = crc32fast::hash(payload).to_le_bytes();
                    records[start..start + 4].copy_from_slice(&len);
                    records[start + 4..start + HEADER as usize].copy_from_slice(&crc);
                    sizes.push((records.len() - start) as u64);
                    entries.push_back(entry);
                    if let Some(ack) = ack {
                        push_coalesced(&mut tokens, ack);
                    }
                }
            }
        }
        // Settled below only once every record of the chunk is in the buffer.
        wal.append_run(&records, &sizes, &mut entries).await;
        match wal.cfg.fsync {
            WalFsync::Always => wal.sync(),
            WalFsync::Periodic if last_sync.elapsed() >= wal.cfg.fsync_period.0 => {
                sync_off_runtime(&wal).await;
                last_sync = tokio::time::Instant::now();
            }
            _ => {}
        }
        acks.settle(tokens);
    }
    wal.sync();
    wal.state().closed = true;
    wal.written.notify_waiters();
}

/// A periodic sync on a blocking thread: the runtime's workers (the reader, the pusher) go
/// on while the kernel writes the segment out; the writer waits, its queue filling.
async fn sync_off_runtime(wal: &Arc<Wal>) {
    let w = wal.clone();
    if tokio::task::spawn_blocking(move || w.sync()).await.is_err() {
        wal.sync();
    }
}

/// The client's side: records in order, as entries whose token is their WAL position.
pub struct WalReader {
    wal: Arc<Wal>,
    /// The next record's position, once the WAL is open.
    next: Option<u64>,
    file: Option<(u64, BufReader<File>)>,
    buf: Vec<u8>,
    labels: RecentLabels,
}

impl WalReader {
    pub fn new(wal: Arc<Wal>) -> Self {
        Self {
            wal,
            next: None,
            file: None,
            buf: Vec::new(),
            labels: RecentLabels::default(),
        }
    }

    /// The next records, or `None` once the writer finished and everything was read.
    pub async fn recv(&mut self) -> Option<Vec<Outgoing>> {
        let wal = self.wal.clone();
        loop {
            let written = wal.written.notified();
            match self.read_some() {
                // Moved on to another segment, or read only corrupt records: read on.
                Read_::Records(items) if items.is_empty() => continue,
                Read_::Records(items) => return Some(items),
                Read_::Finished => return None,
                Read_::Wait => {}
            }
            tokio::select! {
                _ = written => {}
                _ = tokio::time::sleep(POLL_FALLBACK) => {}
            }
        }
    }

    fn read_some(&mut self) -> Read_ {
        let (segment, limit, replay_end) = {
            let mut st = self.wal.state();
            if !st.opened {
                return if st.closed {
                    Read_::Finished
                } else {
                    Read_::Wait
                };
            }
            // A segment deleted once acknowledged (or dropped when full) frees its space only
            // when its last descriptor closes: on a full disk, the writer's next segment
            // needs that space.
            if self
                .file
                .as_ref()
                .is_some_and(|(b, _)| !st.segments.iter().any(|s| s.base == *b))
            {
                self.file = None;
            }
            let next = self.next.get_or_insert(st.acked);
            if *next < st.floor {
                *next = st.floor;
            }
            let mut next = *next;
            // What fell below the reader (dropped when full) is not sent.
            while st.tail.front().is_some_and(|r| r.at < next) {
                if let Some(old) = st.tail.pop_front() {
                    st.tail_bytes -= old.end - old.at;
                }
            }
            if st.tail.front().is_some_and(|r| r.at == next) {
                let mut items = Vec::with_capacity(st.tail.len().min(READ_CHUNK));
                while items.len() < READ_CHUNK && st.tail.front().is_some_and(|r| r.at == next) {
                    let Some(r) = st.tail.pop_front() else {
                        break;
                    };
                    st.tail_bytes -= r.end - r.at;
                    items.push(Outgoing::Entry {
                        entry: r.entry,
                        ack: Some(AckToken::line_after(WAL_SOURCE, r.at, r.end)),
                    });
                    next = r.end;
                }
                self.next = Some(next);
                return Read_::Records(items);
            }
            // The segment holding `next`: the last one starting at or before it.
            let seg = st
                .segments
                .iter()
                .rev()
                .find(|s| s.base <= next && next < s.base + s.len.max(1));
            match seg {
                Some(s) if next < s.base + s.len => (
                    Some((s.base, s.path.clone())),
                    s.base + s.len,
                    st.replay_end,
                ),
                _ => {
                    // Past the end of every segment: a later segment may exist (a sealed
                    // segment ended early, e.g. a truncated tail).
                    if let Some(later) = st.segments.iter().find(|s| s.base > next) {
                        self.next = Some(later.base);
                        return Read_::Records(Vec::new());
                    }
                    return if st.closed && next >= st.end {
                        Read_::Finished
                    } else {
                        Read_::Wait
                    };
                }
            }
        };
        let Some((base, path)) = segment else {
            return Read_::Wait;
        };
        let mut next = self.next.unwrap_or(base);
        if self.file.as_ref().is_none_or(|(b, _)| *b != base) {
            match File::open(&path) {
                Ok(f) => self.file = Some((base, BufReader::new(f))),
                Err(_) => {
                    // Deleted under us (dropped when full): the floor moves past it.
                    self.file = None;
                    return Read_::Wait;
                }
            }
        }
        let Some((_, reader)) = self.file.as_mut() else {
            return Read_::Wait;
        };
        if reader.seek(SeekFrom::Start(next - base)).is_err() {
            self.file = None;
            return Read_::Wait;
        }
        let mut items = Vec::new();
        let mut corrupt = 0u64;
        let mut replayed = 0u64;
        while next < limit && items.len() < READ_CHUNK {
            let mut header = [0u8; HEADER as usize];
            let framed = reader
                .read_exact(&mut header)
                .is_ok()
                .then(|| frame(&header));
            let record = match framed {
                Some((len, tagged, crc)) if len <= MAX_RECORD && next + HEADER + len <= limit => {
                    self.buf.resize(len as usize, 0);
                    (reader.read_exact(&mut self.buf).is_ok() && crc32fast::hash(&self.buf) == crc)
                        .then_some((next + HEADER + len, tagged))
                }
                _ => None,
            };
            let Some((end, tagged)) = record else {
                // A flipped bit (in the length, the CRC or the payload) or a record cut
                // short: skip to the next place a whole record with a matching CRC starts.
                corrupt += 1;
                next = resync(reader, base, next + 1, limit).unwrap_or(limit);
                if reader.seek(SeekFrom::Start(next - base)).is_err() {
                    next = limit;
                }
                continue;
            };
            if next < replay_end {
                replayed += 1;
            }
            match entry_bytes(&self.buf, tagged).and_then(|b| decode_with(b, &mut self.labels)) {
                // Records follow each other, so a set's tokens merge into one.
                Some(entry) => items.push(Outgoing::Entry {
                    entry,
                    ack: Some(AckToken::line_after(WAL_SOURCE, next, end)),
                }),
                None => corrupt += 1,
            }
            next = end;
        }
        self.next = Some(next);
        if corrupt > 0 {
            tracing::warn!(
                segment = %path.display(),
                records = corrupt,
                "disk buffer (WAL): corrupt records skipped"
            );
            self.wal.count("corrupt", corrupt);
        }
        if replayed > 0 {
            self.wal.count("replayed", replayed);
        }
        Read_::Records(items)
    }
}

enum Read_ {
    Records(Vec<Outgoing>),
    Wait,
    Finished,
}

/// The position a settled set of WAL tokens acknowledges: the end of its last record.
pub fn acknowledged_position(tokens: &[AckToken]) -> Option<u64> {
    tokens
        .iter()
        .filter(|t| t.source == WAL_SOURCE)
        .map(|t| t.offset)
        .max()
}

/// The directory of client `index`'s WAL: its own `wal.dir`, or the top-level one's
/// `client-<index>`.
pub fn dir_for(
    index: usize,
    own: Option<&WalConfig>,
    top: Option<&WalConfig>,
) -> Option<(WalConfig, PathBuf)> {
    match (own, top) {
        (Some(own), _) if own.enabled => Some((own.clone(), PathBuf::from(&own.dir))),
        (Some(_), _) => None,
        (None, Some(top)) if top.enabled => Some((
            top.clone(),
            Path::new(&top.dir).join(format!("client-{index}")),
        )),
        _ => None,
    }
}

/// The first position in `from..limit` of segment `base` where a whole record with a
/// matching CRC starts (only read after corruption was found).
fn resync(reader: &mut BufReader<File>, base: u64, from: u64, limit: u64) -> Option<u64> {
    if from >= limit {
        return None;
    }
    reader.seek(SeekFrom::Start(from - base)).ok()?;
    let mut rest = Vec::new();
    reader.take(limit - from).read_to_end(&mut rest).ok()?;
    let h = HEADER as usize;
    (0..rest.len().saturating_sub(h)).find_map(|i| {
        let (len, tagged, crc) = frame(rest[i..i + h].try_into().ok()?);
        let payload = rest.get(i + h..i + h + len as usize)?;
        (len <= MAX_RECORD
            && crc32fast::hash(payload) == crc
            && entry_bytes(payload, tagged).and_then(decode).is_some())
        .then_some(from + i as u64)
    })
}

/// A record header's payload length, whether the payload ends with a token, and its CRC.
fn frame(header: &[u8; HEADER as usize]) -> (u64, bool, u32) {
    let raw = u32::from_le_bytes([header[0], header[1], header[2], header[3]]);
    let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
    (u64::from(raw & !TAGGED), raw & TAGGED != 0, crc)
}

/// The entry's part of a payload.
fn entry_bytes(payload: &[u8], tagged: bool) -> Option<&[u8]> {
    if tagged {
        payload.get(..payload.len().checked_sub(TAG_LEN)?)
    } else {
        Some(payload)
    }
}

/// The token at the end of a tagged payload.
fn tag(payload: &[u8]) -> Option<AckToken> {
    let tail = payload.get(payload.len().checked_sub(TAG_LEN)?..)?;
    let word = |i: usize| Some(u64::from_le_bytes(tail.get(i..i + 8)?.try_into().ok()?));
    Some(AckToken {
        source: SourceId(word(0)?),
        from: word(8)?,
        offset: word(16)?,
    })
}

/// Counts the records of a segment found at startup (up to the first length that cannot be
/// right) and adds the tokens of those whose CRC matches to `held`: a damaged record is
/// replayed by no one, so a line in it must be sent again when it is read again.
fn scan_records(path: &Path, len: u64, held: &mut Held) -> u64 {
    let Ok(f) = File::open(path) else {
        return 0;
    };
    let mut f = BufReader::new(f);
    let mut at = 0u64;
    let mut n = 0u64;
    let mut header = [0u8; HEADER as usize];
    let mut payload = Vec::new();
    while at + HEADER <= len && f.read_exact(&mut header).is_ok() {
        let (rec, tagged, crc) = frame(&header);
        if rec > MAX_RECORD || at + HEADER + rec > len {
            break;
        }
        payload.resize(rec as usize, 0);
        if f.read_exact(&mut payload).is_err() {
            break;
        }
        n += 1;
        at += HEADER + rec;
        if tagged
            && crc32fast::hash(&payload) == crc
            && let Some(t) = tag(&payload)
        {
            held.insert(t);
        }
    }
    n
}

fn read_acked(path: &Path) -> Option<u64> {
    let bytes = std::fs::read(path).ok()?;
    Some(u64::from_le_bytes(bytes.get(..8)?.try_into().ok()?))
}

fn write_acked(dir: &Path, position: u64) -> std::io::Result<()> {
    let tmp = dir.join("acked.tmp");
    {
        let mut f = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(&position.to_le_bytes())?;
    }
    std::fs::rename(&tmp, dir.join("acked"))
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u32).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

fn encode(entry: &Entry, out: &mut Vec<u8>) {
    out.extend_from_slice(&(entry.labels.len() as u32).to_le_bytes());
    for (k, v) in entry.labels.iter() {
        put_str(out, k);
        put_str(out, v);
    }
    out.extend_from_slice(&entry.timestamp.timestamp().to_le_bytes());
    out.extend_from_slice(&entry.timestamp.timestamp_subsec_nanos().to_le_bytes());
    out.extend_from_slice(&entry.timestamp.offset().local_minus_utc().to_le_bytes());
    put_str(out, &entry.line);
    out.extend_from_slice(&(entry.structured_metadata.len() as u32).to_le_bytes());
    for (k, v) in &entry.structured_metadata {
        put_str(out, k);
        put_str(out, v);
    }
}

struct Cursor<'a>(&'a [u8]);

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }

    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }

    fn str(&mut self) -> Option<String> {
        let n = self.u32()? as usize;
        String::from_utf8(self.take(n)?.to_vec()).ok()
    }
}

fn decode(bytes: &[u8]) -> Option<Entry> {
    decode_with(bytes, &mut RecentLabels::default())
}

/// Label sets of recently read records by their encoded bytes: records of one stream carry
/// the same bytes, and handing them one shared set spares a set per record and lets the
/// batcher find the stream by pointer.
#[derive(Default)]
struct RecentLabels {
    sets: Recent<(Vec<u8>, LabelSet), RECENT_LABEL_SETS>,
}

const RECENT_LABEL_SETS: usize = 16;

impl RecentLabels {
    fn get_or_decode(&mut self, encoded: &[u8], n: u32) -> Option<LabelSet> {
        if let Some((_, set)) = self.sets.find(|(bytes, _)| bytes == encoded) {
            return Some(set.clone());
        }
        let mut c = Cursor(encoded);
        let mut labels = LabelSet::new();
        for _ in 0..n {
            let k = c.str()?;
            let v = c.str()?;
            labels.insert(k, v);
        }
        self.sets.remember((encoded.to_vec(), labels.clone()));
        Some(labels)
    }
}

fn decode_with(bytes: &[u8], recent: &mut RecentLabels) -> Option<Entry> {
    let mut c = Cursor(bytes);
    let n = c.u32()?;
    let labels_start = c.0;
    for _ in 0..2 * n {
        let len = c.u32()? as usize;
        c.take(len)?;
    }
    let encoded = &labels_start[..labels_start.len() - c.0.len()];
    let labels = recent.get_or_decode(encoded, n)?;
    let secs = i64::from_le_bytes(c.take(8)?.try_into().ok()?);
    let nanos = c.u32()?;
    let offset = i32::from_le_bytes(c.take(4)?.try_into().ok()?);
    let timestamp: DateTime<FixedOffset> = FixedOffset::east_opt(offset)?
        .timestamp_opt(secs, nanos)
        .single()?;
    let line = c.str()?;
    let m = c.u32()?;
    let mut structured_metadata = Vec::new();
    for _ in 0..m {
        let k = c.str()?;
        let v = c.str()?;
        structured_metadata.push((k, v));
    }
    c.0.is_empty().then_some(Entry {
        labels,
        timestamp,
        line,
        structured_metadata,
    })
}

/// The buffer holds log lines, some from root-only files such as auth.log: whatever the
/// umask, its directory is 0700 and its files 0600, as the positions file is.
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
}

#[cfg(test)]
mod tests;
