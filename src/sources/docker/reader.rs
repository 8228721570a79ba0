//! One container's log, read through the Engine API for as long as the container exists:
//! followed while it runs, read to its end when it stops, resumed when it starts again (same
//! ID), ended when it is removed.
//!
//! Owns the container's position: the timestamp of each stream's last line ([`Cursor`]),
//! saved under Promtail's key `cursor-<container ID>` once that line is delivered (through
//! its [`CursorPosition`]). Docker's `since` includes lines at the given time, so lines up to
//! the saved ones are skipped by their exact timestamp: after a restart nothing is sent
//! twice. A value Promtail saved (whole seconds) resends that second, as Promtail itself
//! would. It must not discover containers nor know stages or Loki.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, FixedOffset};
use tokio::sync::{Notify, mpsc, watch};

use super::api::{self, ApiError, DockerApi};
use super::discovery::LOG_STREAM;
use super::frames::{Demuxer, Line, Problem, Stream};
use crate::delivery::positions::{CursorPosition, PositionsView};
use crate::metrics::DockerMetrics;
use crate::model::ack::AckToken;
use crate::model::entry::{LineBatch, LineStamp};
use crate::model::labels::LabelSet;
use crate::sources::relabel::{self, Relabeled, Relabeler};

/// Promtail's key for a container's position.
pub fn cursor_key(container_id: &str) -> String {
    format!("cursor-{container_id}")
}

/// Lines of one stream handed on in one batch at most: a chunk of Docker's answer rarely
/// holds more, and a batch this size keeps the pipeline busy without holding much.
const BATCH_LINES: usize = 1024;

/// Bytes of the answer already received that are taken before handing on.
const HAND_ON_BYTES: usize = 256 << 10;

/// Waits between attempts while the daemon cannot be reached.
const RETRY_MIN: Duration = Duration::from_millis(250);
const RETRY_MAX: Duration = Duration::from_secs(10);

/// Where one stream of a container's log was delivered to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Mark {
    /// Nothing yet.
    Start,
    /// Promtail's whole seconds: lines of that second may have been sent or not, so they are
    /// all sent.
    Second(i64),
    /// The exact timestamp of the stream's last line delivered: lines at or before it are
    /// skipped.
    Exact(i64, u32),
}

impl Mark {
    fn parse(text: &str) -> Option<Mark> {
        match text.split_once('.') {
            None => text.parse().ok().map(Mark::Second),
            Some((secs, nanos)) if nanos.len() == 9 => {
                Some(Mark::Exact(secs.parse().ok()?, nanos.parse().ok()?))
            }
            Some(_) => None,
        }
    }

    fn text(self) -> String {
        match self {
            Mark::Start => "0".into(),
            Mark::Second(s) => s.to_string(),
            Mark::Exact(s, n) => format!("{s}.{n:09}"),
        }
    }

    fn admits(self, ts: &DateTime<FixedOffset>) -> bool {
        match self {
            Mark::Start | Mark::Second(_) => true,
            Mark::Exact(s, n) => (ts.timestamp(), ts.timestamp_subsec_nanos()) > (s, n),
        }
    }
}

/// Where a container's log was delivered to, per stream. Docker stamps each stream's lines
/// in order, but its stdout and stderr copiers interleave in the log a little out of
/// timestamp order, so one timestamp cannot say which lines of the other stream are done.
/// Saved as `<stdout>,<stderr>` (each `<seconds>.<nanoseconds>`, Docker's `since` form), or
/// one value when they are equal (Promtail's whole seconds read as that).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cursor {
    pub stdout: Mark,
    pub stderr: Mark,
}

impl Cursor {
    /// Nothing read: the whole log is read, as Promtail does (`since=0`).
    pub const START: Cursor = Cursor {
        stdout: Mark::Start,
        stderr: Mark::Start,
    };

    pub fn parse(saved: &str) -> Option<Cursor> {
        let saved = saved.trim();
        match saved.split_once(',') {
            None => {
                let m = Mark::parse(saved)?;
                Some(Cursor {
                    stdout: m,
                    stderr: m,
                })
            }
            Some((out, err)) => Some(Cursor {
                stdout: Mark::parse(out)?,
                stderr: Mark::parse(err)?,
            }),
        }
    }

    pub fn text(self) -> String {
        if self.stdout == self.stderr {
            self.stdout.text()
        } else {
            format!("{},{}", self.stdout.text(), self.stderr.text())
        }
    }

    /// Docker's `since`: the earlier stream's mark. A stream with no line yet does not hold
    /// it back (a TTY container has no stderr).
    fn since(self) -> String {
        match (self.stdout, self.stderr) {
            (Mark::Start, m) | (m, Mark::Start) => m.text(),
            (a, b) => a.min(b).text(),
        }
    }

    fn admits(self, stream: Stream, ts: &DateTime<FixedOffset>) -> bool {
        match stream {
            Stream::Stdout => self.stdout.admits(ts),
            Stream::Stderr => self.stderr.admits(ts),
        }
    }

    fn advance(&mut self, stream: Stream, ts: &DateTime<FixedOffset>) {
        let mark = Mark::Exact(ts.timestamp(), ts.timestamp_subsec_nanos());
        match stream {
            Stream::Stdout => self.stdout = mark,
            Stream::Stderr => self.stderr = mark,
        }
    }
}

/// What every reader of a job shares.
pub struct ReaderSettings {
    pub job: String,
    pub relabelers: Vec<Relabeler>,
    pub metrics: DockerMetrics,
    pub max_line: usize,
}

/// A container to read: its ID and its frozen discovered labels.
pub struct ContainerSpec {
    pub id: String,
    pub discovered: BTreeMap<String, String>,
    pub api: DockerApi,
}

/// The stream labels of a container's lines on `stream`: its discovered labels with
/// `__meta_docker_container_log_stream`, relabeled, without `__` labels or empty values.
/// `None` when relabeling drops them or leaves none.
pub fn stream_labels(
    relabelers: &[Relabeler],
    discovered: &BTreeMap<String, String>,
    stream: Option<Stream>,
) -> Option<LabelSet> {
    let mut labels = discovered.clone();
    if let Some(stream) = stream {
        labels.insert(LOG_STREAM.into(), stream.name().into());
    }
    match relabel::stream_labels(relabelers, labels) {
        Relabeled::Labels(set) => Some(set),
        Relabeled::Dropped | Relabeled::NoLabels => None,
    }
}

/// One container's reader until the container is removed or `stop`.
pub struct ContainerReader {
    spec: ContainerSpec,
    settings: Arc<ReaderSettings>,
    out: mpsc::Sender<LineBatch>,
    position: CursorPosition,
    cursor: Cursor,
    seq: u64,
    /// The last line whose cursor delivery was told.
    noted: u64,
    stdout: Option<Arc<LabelSet>>,
    stderr: Option<Arc<LabelSet>>,
    /// `State.StartedAt` when the log was last read to its end with the container stopped:
    /// a wake-up finding the same start has nothing new to read.
    drained_start: Option<String>,
}

enum Ended {
    /// The container stopped and its log was read to the end.
    Stopped,
    Removed,
    /// The daemon failed; try again later.
    Failed(ApiError),
    Stop,
}

impl ContainerReader {
    pub fn open(
        spec: ContainerSpec,
        settings: Arc<ReaderSettings>,
        positions: &PositionsView,
        out: mpsc::Sender<LineBatch>,
    ) -> Self {
        let (position, saved) = positions.open_cursor(&cursor_key(&spec.id));
        let cursor = match saved.as_deref().map(|s| (s, Cursor::parse(s))) {
            None => Cursor::START,
            Some((_, Some(c))) => c,
            Some((text, None)) => {
                tracing::warn!(job = %settings.job, container = %spec.id, saved = %text, "saved docker position not understood; reading the container's log from the start");
                Cursor::START
            }
        };
        let label =
            |s| stream_labels(&settings.relabelers, &spec.discovered, Some(s)).map(Arc::new);
        ContainerReader {
            stdout: label(Stream::Stdout),
            stderr: label(Stream::Stderr),
            spec,
            settings,
            out,
            position,
            cursor,
            seq: 0,
            noted: 0,
            drained_start: None,
        }
    }

    /// Reads until the container is removed or `stop`; `wake` says the container may have
    /// started again (or been removed).
    pub async fn run(mut self, wake: Arc<Notify>, mut stop: watch::Receiver<bool>) {
        let mut retry = RETRY_MIN;
        loop {
            match self.read_once(&mut stop).await {
                Ended::Stop | Ended::Removed => break,
                Ended::Stopped => {
                    retry = RETRY_MIN;
                    tokio::select! {
                        _ = wake.notified() => {}
                        _ = stop.wait_for(|s| *s) => break,
                    }
                }
                Ended::Failed(e) => {
                    self.count(&e);
                    tracing::debug!(job = %self.settings.job, container = %self.spec.id, error = %e, "reading the container's log failed; trying again");
                    tokio::select! {
                        _ = tokio::time::sleep(retry) => {}
                        _ = stop.wait_for(|s| *s) => break,
                    }
                    retry = (retry * 2).min(RETRY_MAX);
                }
            }
        }
        self.position.close(self.seq);
    }

    fn count(&self, e: &ApiError) {
        let reason = match e {
            ApiError::Unreachable(_) => "unreachable",
            ApiError::Status(..) => "status",
            ApiError::Protocol(_) => "protocol",
        };
        self.settings
            .metrics
            .daemon_errors
            .with_label_values(&[reason])
            .inc();
    }

    /// Reads the log from the cursor while the container runs, then once more to its end.
    async fn read_once(&mut self, stop: &mut watch::Receiver<bool>) -> Ended {
        let api = self.spec.api.clone();
        loop {
            let inspect = match api.inspect(&self.spec.id).await {
                Ok(i) => i,
                Err(e) if e.is_not_found() => return Ended::Removed,
                Err(e) => return Ended::Failed(e),
            };
            let running = inspect.state.running || inspect.state.restarting;
            if !running && self.drained_start.as_deref() == Some(inspect.state.started_at.as_str())
            {
                return Ended::Stopped;
            }
            let body = match api.logs(&self.spec.id, &self.cursor.since()).await {
                Ok(b) => b,
                Err(e) if e.is_not_found() => return Ended::Removed,
                Err(e) => return Ended::Failed(e),
            };
            self.settings.metrics.followed.inc();
            let ended = self.follow(body, inspect.config.tty, stop).await;
            self.settings.metrics.followed.dec();
            match ended {
                Ok(true) => return Ended::Stop,
                Ok(false) if running => {
                    // The stream ended: the container stopped (or the daemon ended the
                    // stream). Read again to the end with it stopped, so nothing written
                    // last is missed.
                    continue;
                }
                Ok(false) => {
                    self.drained_start = Some(inspect.state.started_at);
                    return Ended::Stopped;
                }
                Err(e) => return Ended::Failed(e),
            }
        }
    }

    /// Follows one logs answer to its end (`Ok(false)`) or `stop` (`Ok(true)`).
    async fn follow(
        &mut self,
        mut body: hyper::body::Incoming,
        tty: bool,
        stop: &mut watch::Receiver<bool>,
    ) -> Result<bool, ApiError> {
        let mut demuxer = Demuxer::new(tty, self.settings.max_line);
        let mut pending = Pending {
            floor: self.cursor,
            order: None,
            full: Vec::new(),
            stdout: None,
            stderr: None,
        };
        let metrics = self.settings.metrics.clone();
        let mut count = |p: Problem| match p {
            Problem::BadTimestamp => metrics.parsing_errors.inc(),
            Problem::Truncated => metrics.truncated.inc(),
        };
        loop {
            let mut chunk = tokio::select! {
                c = api::next_chunk(&mut body) => c,
                _ = stop.wait_for(|s| *s) => {
                    return Ok(true);
                }
            };
            let mut taken = 0usize;
            // What the daemon already sent goes on in one hand-over (Docker writes a frame
            // at a time): up to a batch, so a backlog is not handed on line by line.
            loop {
                match chunk {
                    None => {
                        demuxer.finish(&mut |line| self.take(line, &mut pending));
                        self.hand_on(&mut pending).await;
                        return Ok(false);
                    }
                    Some(Err(e)) => {
                        // What was complete before the break is delivered; the rest is read
                        // again from the cursor.
                        self.hand_on(&mut pending).await;
                        return Err(ApiError::Unreachable(format!("log stream broke: {e}")));
                    }
                    Some(Ok(bytes)) => {
                        taken += bytes.len();
                        let result = demuxer.feed(
                            &bytes,
                            &mut |line| self.take(line, &mut pending),
                            &mut count,
                        );
                        if let Err(e) = result {
                            self.hand_on(&mut pending).await;
                            return Err(ApiError::Protocol(e));
                        }
                    }
                }
                if taken >= HAND_ON_BYTES {
                    break;
                }
                match tokio::time::timeout(Duration::ZERO, api::next_chunk(&mut body)).await {
                    Ok(next) => chunk = next,
                    Err(_) => break,
                }
            }
            self.hand_on(&mut pending).await;
        }
    }

    /// Takes one line into the batch of its stream.
    fn take(&mut self, line: Line<'_>, pending: &mut Pending) {
        // Only what the answer repeats from before `since` is skipped: within one answer a
        // line may come after a line of the other stream stamped later.
        if !pending.floor.admits(line.stream, &line.timestamp) {
            return;
        }
        self.cursor.advance(line.stream, &line.timestamp);
        self.seq += 1;
        let token = AckToken::line(self.position.id(), self.seq);
        let labels = match line.stream {
            Stream::Stdout => &self.stdout,
            Stream::Stderr => &self.stderr,
        };
        let Some(labels) = labels else {
            // Relabeling dropped the stream: counted, and its position moves past it.
            self.settings
                .metrics
                .dropped
                .with_label_values(&["docker", "no_labels"])
                .inc();
            return;
        };
        let batch = match line.stream {
            Stream::Stdout => &mut pending.stdout,
            Stream::Stderr => &mut pending.stderr,
        };
        let batch =
            batch.get_or_insert_with(|| LineBatch::new(labels.clone(), crate::model::clock::now()));
        batch.push_stamped(
            line.text,
            Some(token),
            LineStamp {
                timestamp: line.timestamp,
                structured_metadata: Vec::new(),
            },
        );
        pending
            .order
            .get_or_insert_with(|| LineBatch::new(labels.clone(), line.timestamp))
            .push("", Some(token));
        if batch.len() >= BATCH_LINES {
            pending.full.extend(pending.stdout.take());
            pending.full.extend(pending.stderr.take());
        }
    }

    /// Hands on what was taken, in order, waiting while the pipeline is full: this stream is
    /// not read further until it is taken (back-pressure).
    async fn hand_on(&mut self, pending: &mut Pending) {
        // The cursor after the last line taken: saved once it and every line before it are
        // settled (a crash then resends at most what was handed on since).
        if self.seq > self.noted {
            self.position.note_cursor(self.seq, &self.cursor.text());
            self.noted = self.seq;
        }
        // Delivery tracks a source's lines in the order they are issued, and the streams'
        // batches interleave: every line is issued, in order, before any batch is sent.
        if let Some(order) = pending.order.take() {
            self.position.issue(&order);
        }
        let batches: Vec<LineBatch> = pending
            .full
            .drain(..)
            .chain(pending.stdout.take())
            .chain(pending.stderr.take())
            .collect();
        for batch in batches {
            let n = batch.len() as u64;
            if self.out.send(batch).await.is_err() {
                return;
            }
            self.settings.metrics.entries.inc_by(n);
        }
    }
}

/// Lines taken from the answer and not yet handed on.
struct Pending {
    /// The cursor this answer started from.
    floor: Cursor,
    /// The acknowledgement tokens of every line taken, across both streams, in order.
    order: Option<LineBatch>,
    full: Vec<LineBatch>,
    stdout: Option<LineBatch>,
    stderr: Option<LineBatch>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::RelabelConfig;

    #[test]
    fn cursors_read_promtails_seconds_and_keep_nanoseconds_per_stream() {
        let promtail = Cursor::parse("1700000000").unwrap();
        assert_eq!(promtail.stdout, Mark::Second(1_700_000_000));
        assert_eq!(promtail.stderr, Mark::Second(1_700_000_000));
        assert_eq!(promtail.since(), "1700000000");
        assert!(Cursor::parse("yesterday").is_none());
        let ts = DateTime::parse_from_rfc3339("2026-12-07T23:07:41.480305764Z").unwrap();
        let later = DateTime::parse_from_rfc3339("2026-12-07T23:07:41.480305765Z").unwrap();
        assert!(
            promtail.admits(Stream::Stdout, &ts),
            "Promtail's second is sent again"
        );
        let mut c = Cursor::START;
        assert_eq!(c.since(), "0");
        c.advance(Stream::Stderr, &later);
        assert_eq!(
            c.since(),
            "1796684861.480305765",
            "no stdout yet: stderr's mark"
        );
        c.advance(Stream::Stdout, &ts);
        assert_eq!(c.text(), "1796684861.480305764,1796684861.480305765");
        assert_eq!(
            c.since(),
            "1796684861.480305764",
            "the earlier stream's mark"
        );
        assert_eq!(Cursor::parse(&c.text()), Some(c));
        assert!(
            !c.admits(Stream::Stdout, &ts),
            "the saved line itself is not sent again"
        );
        assert!(c.admits(Stream::Stdout, &later));
        assert!(!c.admits(Stream::Stderr, &later));
        c.advance(Stream::Stdout, &later);
        assert_eq!(
            c.text(),
            "1796684861.480305765",
            "one value when both are equal"
        );
    }

    #[test]
    fn stream_labels_relabel_the_log_stream_and_drop_meta_labels() {
        let rules = [
            RelabelConfig {
                source_labels: vec!["__meta_docker_container_name".into()],
                regex: "/(.*)".into(),
                target_label: "container".into(),
                ..RelabelConfig::default()
            },
            RelabelConfig {
                source_labels: vec![LOG_STREAM.into()],
                target_label: "stream".into(),
                ..RelabelConfig::default()
            },
        ];
        let relabelers: Vec<Relabeler> = rules.iter().map(|r| Relabeler::new(r).unwrap()).collect();
        let discovered = BTreeMap::from([
            (
                "__meta_docker_container_name".to_string(),
                "/web".to_string(),
            ),
            ("__address__".to_string(), ":80".to_string()),
        ]);
        let labels = stream_labels(&relabelers, &discovered, Some(Stream::Stderr)).unwrap();
        assert_eq!(labels.get("container"), Some("web"));
        assert_eq!(labels.get("stream"), Some("stderr"));
        assert_eq!(labels.iter().count(), 2);
        assert!(
            stream_labels(&[], &discovered, Some(Stream::Stdout)).is_none(),
            "no label left"
        );
    }
}
