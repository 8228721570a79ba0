//! `multiline`: joins the lines of one event (a stack trace, a wrapped message) into one entry.
//!
//! Owns the per-stream blocks (one per label set, as Promtail keys them by fingerprint), when
//! a block goes out, and what the joined entry carries. A line matching `firstline` ends the
//! stream's block and starts the next; other lines are appended with `\n`. The entry takes
//! its labels, extracted map, timestamp and structured metadata from the block's first line;
//! its acknowledgement covers every line of the block, so they settle together and positions
//! never pass a line still held. A block never mixes lines of two files (possible only when
//! `filename` was dropped from the labels before this stage): a line of another file sends
//! the block out first (a deviation from Promtail, which would interleave them). A block
//! goes out when a new first line arrives, when it reaches `max_lines`, once its stream has
//! been idle for `max_wait_time` (each line restarts the wait), and at shutdown or the end of
//! input (`release` with `flush_all`). It must not parse the line beyond `firstline`.
//!
//! As in Promtail: until a stream has seen its first `firstline` match, its lines pass
//! through one by one; once a block has gone out on `max_lines` or `max_wait_time`, later
//! non-matching lines start a new block that keeps the earlier first line's labels,
//! timestamp and extracted map; `max_lines: 0` means no line limit.
//!
//! Deviations from Promtail: an empty `firstline` is refused (it would make every line a
//! block of its own); the joined entry keeps the first line's structured metadata (Promtail
//! drops it); a block is timed by the arrival of its lines as this stage sees them, so a line
//! arriving after its block's `max_wait_time` starts a new block even if `release` has not
//! run yet; a stream whose block is empty and that has been idle for an hour is forgotten, so
//! memory stays bounded as label sets come and go (its next non-matching line passes through
//! on its own, as for a new stream).

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::time::{Duration, Instant};

use chrono::{DateTime, FixedOffset};
use regex::Regex;
use serde::{Deserialize, Serialize};

use super::StageError;
use crate::model::ack::AckToken;
use crate::model::labels::LabelSet;
use crate::model::units::GoDuration;
use crate::pipeline::{Extracted, PipelineEntry, Stage, Verdict};

const DEFAULT_MAX_WAIT: GoDuration = GoDuration::from_secs(3);
const DEFAULT_MAX_LINES: u64 = 128;

/// How long a stream with nothing held is remembered after its last line.
const FORGET_IDLE_STREAM_AFTER: Duration = Duration::from_secs(3600);

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MultilineConfig {
    /// RE2 expression matching the first line of a block.
    pub firstline: String,
    #[serde(default = "default_max_wait")]
    pub max_wait_time: GoDuration,
    #[serde(default = "default_max_lines")]
    pub max_lines: u64,
}

fn default_max_wait() -> GoDuration {
    DEFAULT_MAX_WAIT
}

fn default_max_lines() -> u64 {
    DEFAULT_MAX_LINES
}

pub struct MultilineStage {
    firstline: Regex,
    max_wait: Duration,
    /// Zero: no limit.
    max_lines: u64,
    streams: HashMap<LabelSet, Block>,
    /// Blocks that went out while a line was processed, in order, until `release` runs.
    ready: Vec<PipelineEntry>,
    /// No block is due before this; may be early (a later line pushed a deadline back), never
    /// late. `None` when nothing is held.
    earliest_deadline: Option<Instant>,
    /// Numbers blocks as they open, so blocks released together go out oldest first.
    next_block_number: u64,
}

/// One stream's block: what its entry will carry and the lines gathered so far.
struct Block {
    start: StartLine,
    lines: String,
    line_count: u64,
    ack: Option<AckToken>,
    /// When the block goes out if no line arrives; meaningful while `line_count > 0`.
    deadline: Instant,
    last_line_at: Instant,
    number: u64,
}

/// The parts of a block's first line that its joined entry carries.
struct StartLine {
    labels: LabelSet,
    extracted: Extracted,
    timestamp: DateTime<FixedOffset>,
    structured_metadata: Vec<(String, String)>,
}

impl StartLine {
    fn of(entry: &mut PipelineEntry) -> Self {
        Self {
            labels: entry.labels.clone(),
            extracted: entry.extracted.clone(),
            timestamp: entry.timestamp,
            structured_metadata: std::mem::take(&mut entry.structured_metadata),
        }
    }
}

impl Block {
    /// Appends `entry`'s line, taking it rather than copying when it opens the block.
    fn append(&mut self, entry: &mut PipelineEntry, now: Instant, max_wait: Duration) {
        if self.line_count == 0 {
            self.lines = std::mem::take(&mut entry.line);
        } else {
            self.lines.push('\n');
            self.lines.push_str(&entry.line);
        }
        self.line_count += 1;
        self.ack = AckToken::joined(self.ack, entry.ack);
        self.last_line_at = now;
        self.deadline = now + max_wait;
    }

    /// The joined entry; the block is empty afterwards but keeps its first line.
    fn take_entry(&mut self) -> PipelineEntry {
        self.line_count = 0;
        PipelineEntry {
            labels: self.start.labels.clone(),
            extracted: self.start.extracted.clone(),
            timestamp: self.start.timestamp,
            line: std::mem::take(&mut self.lines),
            structured_metadata: self.start.structured_metadata.clone(),
            ack: self.ack.take(),
        }
    }
}

impl MultilineStage {
    pub fn new(cfg: &MultilineConfig) -> Result<Self, StageError> {
        if cfg.firstline.is_empty() {
            return Err(StageError::new(
                "firstline",
                "expected a regular expression matching the first line of a block, \
                 e.g. '^\\d{4}-\\d{2}-\\d{2}'",
            ));
        }
        let firstline = crate::pipeline::go::regex::compile(&cfg.firstline).map_err(|e| {
            StageError::new("firstline", format!("invalid regular expression: {e}"))
        })?;
        Ok(Self {
            firstline,
            max_wait: cfg.max_wait_time.0,
            max_lines: cfg.max_lines,
            streams: HashMap::new(),
            ready: Vec::new(),
            earliest_deadline: None,
            next_block_number: 0,
        })
    }

    /// [`Stage::process`] at a given instant.
    fn process_at(&mut self, entry: &mut PipelineEntry, now: Instant) -> Verdict {
        let is_first_line = self.firstline.is_match(&entry.line);
        let block = match self.streams.entry(entry.labels.clone()) {
            Entry::Occupied(occupied) => {
                let block = occupied.into_mut();
                // A block whose wait ran out goes out even if `release` has not run since.
                // So does one whose lines come from another file than this line (possible
                // only when `filename` was dropped from the labels): one acknowledgement
                // cannot cover lines of two files.
                let other_file = matches!(
                    (block.ack, entry.ack),
                    (Some(held), Some(new)) if held.source != new.source
                );
                if block.line_count > 0 && (is_first_line || block.deadline <= now || other_file) {
                    self.ready.push(block.take_entry());
                }
                if is_first_line {
                    block.start = StartLine::of(entry);
                }
                block
            }
            Entry::Vacant(_) if !is_first_line => return Verdict::Keep,
            Entry::Vacant(vacant) => vacant.insert(Block {
                start: StartLine::of(entry),
                lines: String::new(),
                line_count: 0,
                ack: None,
                deadline: now,
                last_line_at: now,
                number: 0,
            }),
        };
        if block.line_count == 0 {
            block.number = self.next_block_number;
            self.next_block_number += 1;
        }
        block.append(entry, now, self.max_wait);
        if block.line_count == self.max_lines {
            self.ready.push(block.take_entry());
        } else {
            let deadline = block.deadline;
            self.earliest_deadline =
                Some(self.earliest_deadline.map_or(deadline, |d| d.min(deadline)));
        }
        Verdict::Hold
    }

    /// Moves the blocks due at `now` (all when `flush_all`) to `out`, oldest first, and
    /// forgets streams idle long enough.
    fn release_due(&mut self, now: Instant, flush_all: bool, out: &mut Vec<PipelineEntry>) {
        let mut due: Vec<(u64, PipelineEntry)> = Vec::new();
        let mut earliest: Option<Instant> = None;
        self.streams.retain(|_, block| {
            if block.line_count > 0 {
                if flush_all || block.deadline <= now {
                    due.push((block.number, block.take_entry()));
                } else {
                    earliest = Some(earliest.map_or(block.deadline, |d| d.min(block.deadline)));
                }
            }
            block.line_count > 0
                || now.saturating_duration_since(block.last_line_at) < FORGET_IDLE_STREAM_AFTER
        });
        self.earliest_deadline = earliest;
        due.sort_by_key(|(number, _)| *number);
        out.extend(due.into_iter().map(|(_, entry)| entry));
    }
}

impl Stage for MultilineStage {
    fn process(&mut self, entry: &mut PipelineEntry) -> Verdict {
        self.process_at(entry, Instant::now())
    }

    fn release(&mut self, now: Instant, flush_all: bool, out: &mut Vec<PipelineEntry>) {
        out.append(&mut self.ready);
        // Scanning every stream after every line would cost O(streams) per line; the cached
        // earliest deadline says when a scan can find something.
        if flush_all || self.earliest_deadline.is_some_and(|d| d <= now) {
            self.release_due(now, flush_all, out);
        }
    }

    fn next_deadline(&self) -> Option<Instant> {
        self.earliest_deadline
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ack::SourceId;
    use crate::pipeline::stages::testing::{entry, read_time};
    use serde_json::json;

    /// tstack/lnav `test/log2src/python/python-example.0` (via /work/shared/data/multiline).
    const PYTHON_EXAMPLE: &[&str] = &[
        "2025-09-26 21:12:39,384 DEBUG debug message: initializing demo π",
        "2025-09-26 21:12:39,385 INFO info message:",
        "processing started -- log_example.py",
        "2025-09-26 21:12:39,385 WARNING warning message:",
        "low disk space",
        "2025-09-26 21:12:39,385 ERROR error message: failed to open resource",
        "2025-09-26 21:12:39,385 ERROR exception message: caught unexpected error",
        "Traceback (most recent call last):",
        "  File \"/path/to/log_example.py\", line 25, in main",
        "    1 / 0",
        "    ~~^~~",
        "ZeroDivisionError: division by zero",
    ];

    fn config(firstline: &str, max_wait_ms: u64, max_lines: u64) -> MultilineConfig {
        MultilineConfig {
            firstline: firstline.into(),
            max_wait_time: GoDuration::from_millis(max_wait_ms),
            max_lines,
        }
    }

    fn stage(firstline: &str) -> MultilineStage {
        MultilineStage::new(&config(firstline, 3000, 128)).unwrap()
    }

    /// Feeds `lines` of the stream `labels` at `now`, returning what went out (released
    /// right after each line, as the pipeline does) and each line's verdict.
    fn feed(
        s: &mut MultilineStage,
        labels: &[(&str, &str)],
        lines: &[&str],
        now: Instant,
    ) -> (Vec<PipelineEntry>, Vec<Verdict>) {
        let mut out = Vec::new();
        let mut verdicts = Vec::new();
        for line in lines {
            let mut e = entry(line, labels);
            let verdict = s.process_at(&mut e, now);
            if verdict == Verdict::Keep {
                out.push(e);
            }
            verdicts.push(verdict);
            s.release(now, false, &mut out);
        }
        (out, verdicts)
    }

    fn lines(entries: &[PipelineEntry]) -> Vec<&str> {
        entries.iter().map(|e| e.line.as_str()).collect()
    }

    fn flush_all(s: &mut MultilineStage, now: Instant) -> Vec<PipelineEntry> {
        let mut out = Vec::new();
        s.release(now, true, &mut out);
        out
    }

    #[test]
    fn firstline_match_flushes_previous_block_joined_with_newlines() {
        let mut s = stage(r"^\[\d+\]");
        let now = Instant::now();
        let (out, verdicts) = feed(
            &mut s,
            &[],
            &["[1] start", "  detail a", "  detail b", "[2] next"],
            now,
        );
        assert!(verdicts.iter().all(|v| *v == Verdict::Hold));
        assert_eq!(lines(&out), ["[1] start\n  detail a\n  detail b"]);
        assert_eq!(lines(&flush_all(&mut s, now)), ["[2] next"]);
    }

    #[test]
    fn python_traceback_block_comes_out_as_one_entry() {
        let mut s = stage(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2},\d{3} ");
        let now = Instant::now();
        let input = PYTHON_EXAMPLE;
        let (mut out, _) = feed(&mut s, &[], input, now);
        out.extend(flush_all(&mut s, now));
        let traceback: Vec<&PipelineEntry> = out
            .iter()
            .filter(|e| e.line.contains("Traceback"))
            .collect();
        assert_eq!(traceback.len(), 1);
        assert!(
            traceback[0]
                .line
                .starts_with("2025-09-26 21:12:39,385 ERROR exception")
        );
        assert!(
            traceback[0]
                .line
                .ends_with("ZeroDivisionError: division by zero")
        );
        // Every input line is in exactly one entry, in order.
        let joined: Vec<&str> = out.iter().flat_map(|e| e.line.split('\n')).collect();
        assert_eq!(joined, input);
        let first_lines = input.iter().filter(|l| s.firstline.is_match(l)).count();
        assert_eq!(out.len(), first_lines);
    }

    #[test]
    fn lines_before_any_firstline_pass_through_one_by_one() {
        let mut s = stage("^START");
        let now = Instant::now();
        let (out, verdicts) = feed(&mut s, &[], &["orphan 1", "orphan 2", "START x", "y"], now);
        assert_eq!(
            verdicts,
            [Verdict::Keep, Verdict::Keep, Verdict::Hold, Verdict::Hold]
        );
        assert_eq!(lines(&out), ["orphan 1", "orphan 2"]);
        assert_eq!(lines(&flush_all(&mut s, now)), ["START x\ny"]);
    }

    #[test]
    fn streams_with_different_labels_have_separate_blocks() {
        let mut s = stage("^START");
        let now = Instant::now();
        let a = [("file", "a")];
        let b = [("file", "b")];
        feed(&mut s, &a, &["START a1"], now);
        feed(&mut s, &b, &["START b1", "b continued"], now);
        feed(&mut s, &a, &["a continued"], now);
        let (out, _) = feed(&mut s, &a, &["START a2"], now);
        assert_eq!(lines(&out), ["START a1\na continued"]);
        assert_eq!(out[0].labels.get("file"), Some("a"));
        let rest = flush_all(&mut s, now);
        assert_eq!(lines(&rest), ["START b1\nb continued", "START a2"]);
    }

    #[test]
    fn a_line_of_another_file_sends_the_block_out_first() {
        let mut s = stage("^START");
        let now = Instant::now();
        let mut lines = Vec::new();
        for (line, source, offset) in [("START a", 1, 8), ("more a", 1, 15), ("more b", 2, 7)] {
            let mut e = entry(line, &[("job", "x")]);
            e.ack = Some(AckToken::line(SourceId(source), offset));
            lines.push(e);
        }
        for e in &mut lines {
            assert_eq!(s.process_at(e, now), Verdict::Hold);
        }
        let out = flush_all(&mut s, now);
        let got: Vec<_> = out
            .iter()
            .map(|e| {
                let ack = e.ack.map(|a| (a.source.0, a.from, a.offset));
                (e.line.as_str(), ack)
            })
            .collect();
        assert_eq!(
            got,
            [
                ("START a\nmore a", Some((1, 8, 15))),
                ("more b", Some((2, 7, 7)))
            ]
        );
    }

    #[test]
    fn entry_takes_labels_timestamp_and_extracted_from_first_line_and_ack_of_all_lines() {
        let mut s = stage("^START");
        let now = Instant::now();
        let mut first = entry("START", &[("job", "x")]);
        first.extracted.insert("from".into(), json!("first"));
        first.timestamp = DateTime::parse_from_rfc3339("2020-01-01T00:00:00Z").unwrap();
        first.ack = Some(AckToken::line(SourceId(1), 6));
        first.set_structured_metadata("trace", "abc".into());
        let mut second = entry("more", &[("job", "x")]);
        second.extracted.insert("from".into(), json!("second"));
        second.ack = Some(AckToken::line(SourceId(1), 11));
        assert_eq!(s.process_at(&mut first, now), Verdict::Hold);
        assert_eq!(s.process_at(&mut second, now), Verdict::Hold);
        let out = flush_all(&mut s, now);
        assert_eq!(out.len(), 1);
        let e = &out[0];
        assert_eq!(e.line, "START\nmore");
        assert_eq!(e.extracted["from"], "first");
        assert_eq!(e.timestamp.to_rfc3339(), "2020-01-01T00:00:00+00:00");
        assert_eq!(e.labels.to_string(), r#"{job="x"}"#);
        assert_eq!(e.structured_metadata, [("trace".into(), "abc".into())]);
        assert_eq!(e.ack.map(|a| (a.from, a.offset)), Some((6, 11)));
    }

    #[test]
    fn block_goes_out_at_max_lines_and_rest_continues_with_first_line_start() {
        let mut s = MultilineStage::new(&config("^START", 3000, 3)).unwrap();
        let now = Instant::now();
        let mut first = entry("START", &[]);
        first.timestamp = DateTime::parse_from_rfc3339("2020-01-01T00:00:00Z").unwrap();
        s.process_at(&mut first, now);
        let (out, _) = feed(&mut s, &[], &["l2", "l3", "l4", "l5"], now);
        assert_eq!(lines(&out), ["START\nl2\nl3"]);
        let rest = flush_all(&mut s, now);
        assert_eq!(lines(&rest), ["l4\nl5"]);
        assert_eq!(rest[0].timestamp, first.timestamp);
        assert_ne!(rest[0].timestamp, read_time());
    }

    #[test]
    fn max_lines_zero_means_no_limit() {
        let mut s = MultilineStage::new(&config("^START", 3000, 0)).unwrap();
        let now = Instant::now();
        let body: Vec<String> = (0..500).map(|i| format!("line {i}")).collect();
        feed(&mut s, &[], &["START"], now);
        let refs: Vec<&str> = body.iter().map(String::as_str).collect();
        let (out, _) = feed(&mut s, &[], &refs, now);
        assert!(out.is_empty());
        assert_eq!(flush_all(&mut s, now)[0].line.lines().count(), 501);
    }

    #[test]
    fn idle_block_goes_out_after_max_wait_and_each_line_restarts_the_wait() {
        let mut s = MultilineStage::new(&config("^START", 1000, 128)).unwrap();
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        feed(&mut s, &[], &["START"], t0);
        assert_eq!(s.next_deadline(), Some(t0 + ms(1000)));
        feed(&mut s, &[], &["second"], t0 + ms(800));
        let mut out = Vec::new();
        // The first deadline passed, but the second line pushed the block's back.
        s.release(t0 + ms(1000), false, &mut out);
        assert!(out.is_empty());
        assert_eq!(s.next_deadline(), Some(t0 + ms(1800)));
        s.release(t0 + ms(1799), false, &mut out);
        assert!(out.is_empty());
        // The last line goes out at its deadline (Promtail #4936).
        s.release(t0 + ms(1800), false, &mut out);
        assert_eq!(lines(&out), ["START\nsecond"]);
        assert_eq!(s.next_deadline(), None);
    }

    #[test]
    fn line_after_an_expired_wait_starts_a_new_block_even_before_release() {
        let mut s = MultilineStage::new(&config("^START", 1000, 128)).unwrap();
        let t0 = Instant::now();
        let mut held = entry("START", &[]);
        s.process_at(&mut held, t0);
        let mut late = entry("late", &[]);
        s.process_at(&mut late, t0 + Duration::from_secs(2));
        let mut out = Vec::new();
        s.release(t0 + Duration::from_secs(2), false, &mut out);
        assert_eq!(lines(&out), ["START"]);
        assert_eq!(lines(&flush_all(&mut s, t0)), ["late"]);
    }

    #[test]
    fn flush_all_releases_every_stream_oldest_block_first() {
        let mut s = stage("^START");
        let now = Instant::now();
        feed(&mut s, &[("s", "1")], &["START one"], now);
        feed(&mut s, &[("s", "2")], &["START two"], now);
        feed(&mut s, &[("s", "3")], &["START three"], now);
        feed(&mut s, &[("s", "1")], &["one more"], now);
        let out = flush_all(&mut s, now);
        assert_eq!(
            lines(&out),
            ["START one\none more", "START two", "START three"]
        );
        assert!(flush_all(&mut s, now).is_empty());
        assert_eq!(s.next_deadline(), None);
    }

    #[test]
    fn idle_streams_with_nothing_held_are_forgotten() {
        let mut s = MultilineStage::new(&config("^START", 1000, 128)).unwrap();
        let t0 = Instant::now();
        feed(&mut s, &[("s", "old")], &["START"], t0);
        let mut out = Vec::new();
        s.release(t0 + Duration::from_secs(1), false, &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(s.streams.len(), 1);
        let later = t0 + FORGET_IDLE_STREAM_AFTER + Duration::from_secs(1);
        feed(&mut s, &[("s", "new")], &["START"], later);
        s.release(later + Duration::from_secs(1), false, &mut out);
        assert_eq!(s.streams.len(), 1);
        let (passed, verdicts) = feed(&mut s, &[("s", "old")], &["continuation"], later);
        assert_eq!(verdicts, [Verdict::Keep]);
        assert_eq!(lines(&passed), ["continuation"]);
    }

    #[tokio::test]
    async fn released_blocks_continue_through_the_later_stages_of_a_pipeline() {
        use crate::metrics::Metrics;
        use crate::model::entry::Outgoing;
        use crate::pipeline::stages::StageConfig;
        use crate::pipeline::{BuildContext, Pipeline};

        let configs: Vec<StageConfig> = serde_json::from_value(json!([
            {"multiline": {"firstline": "^START", "max_wait_time": "1s"}},
            {"regex": {"expression": "(?s)^START (?P<id>\\d+).*\\n(?P<tail>[^\\n]*)$"}},
            {"output": {"source": "tail"}},
        ]))
        .unwrap();
        let ctx = BuildContext::new("test", std::sync::Arc::new(Metrics::new()));
        let mut pipeline = Pipeline::build("pipeline_stages", &configs, &ctx).unwrap();
        let mut out = Vec::new();
        for (line, offset) in [
            ("START 1", 8),
            ("a", 10),
            ("last of 1", 20),
            ("START 2", 28),
        ] {
            let mut e = entry(line, &[]);
            e.ack = Some(AckToken::line(SourceId(1), offset));
            pipeline.run(e, &mut out).await;
        }
        // The deadline may be early (a later line pushed it back); releasing at it is safe.
        for _ in 0..3 {
            if let Some(deadline) = pipeline.next_deadline() {
                pipeline.release(deadline, false, &mut out).await;
            }
        }
        let sent: Vec<(String, Option<u64>)> = out
            .into_iter()
            .map(|o| match o {
                Outgoing::Entry { entry, ack } => (entry.line, ack.map(|a| a.offset)),
                Outgoing::Consumed { ack } => (String::new(), Some(ack.offset)),
            })
            .collect();
        assert_eq!(
            sent,
            [
                ("last of 1".to_string(), Some(20)),
                ("START 2".to_string(), Some(28))
            ]
        );
        assert_eq!(pipeline.next_deadline(), None);
    }

    #[test]
    fn refuses_missing_empty_and_invalid_firstline() {
        let err = MultilineStage::new(&config("", 1000, 1)).err().unwrap();
        assert_eq!(err.key, "firstline");
        let err = MultilineStage::new(&config("(unclosed", 1000, 1))
            .err()
            .unwrap();
        assert_eq!(err.key, "firstline");
        assert!(err.message.contains("invalid regular expression"));
        let missing = serde_json::from_value::<MultilineConfig>(json!({"max_lines": 3}));
        assert!(missing.unwrap_err().to_string().contains("firstline"));
    }

    #[test]
    fn config_defaults_are_three_seconds_and_128_lines() {
        let cfg: MultilineConfig = serde_json::from_value(json!({"firstline": "^x"})).unwrap();
        assert_eq!(cfg.max_wait_time.0, Duration::from_secs(3));
        assert_eq!(cfg.max_lines, 128);
        let cfg: MultilineConfig = serde_json::from_value(
            json!({"firstline": "^x", "max_wait_time": "250ms", "max_lines": 7}),
        )
        .unwrap();
        assert_eq!(cfg.max_wait_time.0, Duration::from_millis(250));
        assert_eq!(cfg.max_lines, 7);
        let unknown =
            serde_json::from_value::<MultilineConfig>(json!({"firstline": "^x", "max_line": 7}));
        assert!(unknown.is_err());
    }
}
