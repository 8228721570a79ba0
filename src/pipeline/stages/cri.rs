//! `cri`: parses the CRI container log format (`<time> <stream> <flags> <content>`) and joins
//! partial lines.
//!
//! Owns Promtail's cri stage: the regex
//! `^(?s)(?P<time>\S+?) (?P<stream>stdout|stderr) (?P<flags>\S+?) (?P<content>.*)$`, the
//! `stream` label, the timestamp from `time` (RFC3339Nano) and `content` as the line, written
//! as the regex, labels, timestamp and output stages they are and built like any nested list
//! (see [`NestedStages`]); then partial lines. A line
//! whose `flags` is `P` is held per label set (the `stream` label included), appended to the
//! label set's earlier partial text with nothing in between (as current Promtail does; old
//! versions put `\n` there), and the held entry becomes the latest line's (its timestamp and
//! extracted map; its acknowledgement covers every line joined). The next line of that label set that is not partial
//! gets the held text in front of its own and goes on. When a partial line arrives while
//! `max_partial_lines` label sets are already held, every held entry (its own label set's
//! included) goes out as it is and the new line is held alone. With
//! `max_partial_line_size_truncate`, held and joined lines are cut to
//! `max_partial_line_size` bytes. A line the regex does not match passes through unchanged.
//! Partial lines have no timeout, as in Promtail. A partial line never completed before the
//! input ends (end of `-stdin`, shutdown, a reload that stops the job) is dropped, as
//! Promtail drops it (extensions.go `cri.Run`: a held `P` line only goes out with the next
//! `F` line of its stream or when the buffer overflows, and nothing is sent once the input
//! channel closes). Each such entry is counted in
//! `logentry_dropped_lines_total{reason="cri_partial_unfinished"}`, and its acknowledgement
//! is not handed on: positions stay before it, so a restarted agent reads the partial lines
//! again and joins them with the rest their container writes (Promtail, whose positions
//! follow reading, loses them). It must not parse the content.
//!
//! Deviations from Promtail: `max_partial_line_size: 0` turns truncation off (Promtail would
//! cut every joined line to nothing); truncation never splits a UTF-8 character (the cut
//! moves back to the character's start); entries flushed together go out oldest first
//! (Promtail's order is random).

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::time::Instant;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::StageError;
use crate::model::ack::AckToken;
use crate::model::labels::LabelSet;
use crate::model::units::ByteSize;
use crate::pipeline::nested::NestedStages;
use crate::pipeline::{BuildContext, PipelineEntry, Stage, Verdict};

/// Promtail's CRI expression, verbatim.
const CRI_EXPRESSION: &str =
    r"^(?s)(?P<time>\S+?) (?P<stream>stdout|stderr) (?P<flags>\S+?) (?P<content>.*)$";
const DEFAULT_MAX_PARTIAL_LINES: usize = 100;

#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct CriConfig {
    /// How many label sets may hold partial lines at once; 0 means the default, 100.
    pub max_partial_lines: usize,
    /// Byte limit of a held or joined line when `max_partial_line_size_truncate`; 0: none.
    pub max_partial_line_size: ByteSize,
    pub max_partial_line_size_truncate: bool,
}

/// The stages that parse a CRI line, as a config would list them.
fn parsing_stage_configs() -> Value {
    serde_json::json!([
        {"regex": {"expression": CRI_EXPRESSION}},
        {"labels": {"stream": null}},
        {"timestamp": {"source": "time", "format": "RFC3339Nano"}},
        {"output": {"source": "content"}},
    ])
}

pub struct CriStage {
    /// Regex, labels, timestamp and output: none of them holds or waits.
    parsing: NestedStages,
    max_partial_lines: usize,
    truncate_to: Option<usize>,
    /// The held entry of each label set with partial lines.
    partials: HashMap<LabelSet, HeldPartial>,
    /// Entries flushed while a line was processed, until `release` runs.
    ready: Vec<PipelineEntry>,
    next_hold_number: u64,
    /// Partial lines dropped at the end of input.
    unfinished: prometheus::IntCounter,
}

/// The drop reason of partial lines never completed.
const UNFINISHED_REASON: &str = "cri_partial_unfinished";

struct HeldPartial {
    entry: PipelineEntry,
    /// Orders entries flushed together, oldest held first.
    number: u64,
}

impl CriStage {
    pub fn new(cfg: &CriConfig, ctx: &BuildContext) -> Result<Self, StageError> {
        let truncate_to = match (
            cfg.max_partial_line_size_truncate,
            cfg.max_partial_line_size,
        ) {
            (true, ByteSize(size)) if size > 0 => Some(usize::try_from(size).map_err(|_| {
                StageError::new(
                    "max_partial_line_size",
                    format!("{size} bytes does not fit in memory on this platform"),
                )
            })?),
            _ => None,
        };
        Ok(Self {
            parsing: NestedStages::from_listed(parsing_stage_configs(), ctx)?,
            max_partial_lines: match cfg.max_partial_lines {
                0 => DEFAULT_MAX_PARTIAL_LINES,
                n => n,
            },
            truncate_to,
            partials: HashMap::new(),
            ready: Vec::new(),
            next_hold_number: 0,
            unfinished: ctx
                .metrics
                .pipeline
                .dropped_lines
                .with_label_values(&[UNFINISHED_REASON]),
        })
    }

    /// Moves every held entry to `ready`, oldest first.
    fn flush_partials(&mut self) {
        let mut held: Vec<HeldPartial> = self.partials.drain().map(|(_, h)| h).collect();
        held.sort_by_key(|h| h.number);
        self.ready.extend(held.into_iter().map(|h| h.entry));
    }

    /// Holds a partial line: appended to its label set's held text, becoming the held entry.
    fn hold(&mut self, entry: &mut PipelineEntry) {
        // As in Promtail, a full buffer is flushed even when this line's label set is in it.
        if self.partials.len() >= self.max_partial_lines {
            tracing::warn!(
                threshold = self.max_partial_lines,
                "cri stage: partial lines upperbound exceeded, flushing held partial lines"
            );
            self.flush_partials();
        }
        let truncate_to = self.truncate_to;
        match self.partials.entry(entry.labels.clone()) {
            Entry::Occupied(mut occupied) => {
                let held = occupied.get_mut();
                let mut line = std::mem::take(&mut held.entry.line);
                line.push_str(&entry.line);
                truncate(&mut line, truncate_to);
                // The latest line's entry is held from now on; the caller drops the older one.
                // Its token covers every line joined so far, so all of them settle together.
                let joined = AckToken::joined(held.entry.ack, entry.ack);
                std::mem::swap(&mut held.entry, entry);
                held.entry.line = line;
                held.entry.ack = joined;
            }
            Entry::Vacant(vacant) => {
                let mut line = std::mem::take(&mut entry.line);
                truncate(&mut line, truncate_to);
                let mut held = entry.clone();
                held.line = line;
                vacant.insert(HeldPartial {
                    entry: held,
                    number: self.next_hold_number,
                });
                self.next_hold_number += 1;
            }
        }
    }
}

/// Cuts `line` to at most `max` bytes, back to the start of a character it would split.
fn truncate(line: &mut String, max: Option<usize>) {
    if let Some(max) = max
        && line.len() > max
    {
        line.truncate(line.floor_char_boundary(max));
    }
}

impl Stage for CriStage {
    fn process(&mut self, entry: &mut PipelineEntry) -> Verdict {
        match self.parsing.process(entry) {
            Verdict::Keep => {}
            other => return other,
        }
        let is_partial = matches!(entry.extracted.get("flags"), Some(Value::String(f)) if f == "P");
        if is_partial {
            self.hold(entry);
            return Verdict::Hold;
        }
        // Most lines are full and nothing is held: skip hashing the labels then.
        if !self.partials.is_empty()
            && let Some(held) = self.partials.remove(&entry.labels)
        {
            let mut line = held.entry.line;
            line.push_str(&entry.line);
            truncate(&mut line, self.truncate_to);
            entry.line = line;
            entry.ack = AckToken::joined(held.entry.ack, entry.ack);
        }
        Verdict::Keep
    }

    fn release(&mut self, _now: Instant, flush_all: bool, out: &mut Vec<PipelineEntry>) {
        if flush_all && !self.partials.is_empty() {
            // The input ended: what is still partial never gets its end. Dropped without
            // its acknowledgement, so positions stay before it (see the module docs).
            self.unfinished.inc_by(self.partials.len() as u64);
            self.partials.clear();
        }
        out.append(&mut self.ready);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::metrics::Metrics;
    use crate::model::ack::{AckToken, SourceId};
    use crate::pipeline::stages::testing::{entry, read_time};

    fn ctx() -> BuildContext {
        BuildContext::new("cri", Arc::new(Metrics::new()))
    }

    fn stage(max_partial_lines: usize, size: u64, truncate: bool) -> CriStage {
        CriStage::new(
            &CriConfig {
                max_partial_lines,
                max_partial_line_size: ByteSize(size),
                max_partial_line_size_truncate: truncate,
            },
            &ctx(),
        )
        .unwrap()
    }

    /// Runs `(labels, line)` pairs as the pipeline does, releasing after each held line.
    fn run(s: &mut CriStage, input: &[(&[(&str, &str)], &str)]) -> Vec<PipelineEntry> {
        let mut out = Vec::new();
        for (labels, line) in input {
            let mut e = entry(line, labels);
            match s.process(&mut e) {
                Verdict::Keep => out.push(e),
                Verdict::Hold => s.release(Instant::now(), false, &mut out),
                other => panic!("unexpected verdict {other:?}"),
            }
        }
        out
    }

    fn lines(entries: &[PipelineEntry]) -> Vec<&str> {
        entries.iter().map(|e| e.line.as_str()).collect()
    }

    const FOO_BAR: &[(&str, &str)] = &[("foo", "bar")];
    const FOO_BAR2: &[(&str, &str)] = &[("foo", "bar2")];

    #[test]
    fn full_line_sets_stream_label_timestamp_and_content() {
        let mut s = stage(0, 0, false);
        let out = run(
            &mut s,
            &[(
                &[],
                "2019-01-01T01:00:00.000000001Z stderr F message\nmessage2",
            )],
        );
        assert_eq!(lines(&out), ["message\nmessage2"]);
        assert_eq!(out[0].labels.to_string(), r#"{stream="stderr"}"#);
        assert_eq!(
            out[0]
                .timestamp
                .to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
            "2019-01-01T01:00:00.000000001Z"
        );
        assert_eq!(out[0].extracted["flags"], "F");
    }

    #[test]
    fn invalid_line_passes_unchanged_and_bad_time_keeps_read_time() {
        let mut s = stage(0, 0, false);
        let out = run(
            &mut s,
            &[(&[], "i'm invalid!!!"), (&[], "3242 stderr F message")],
        );
        assert_eq!(lines(&out), ["i'm invalid!!!", "message"]);
        assert!(out[0].labels.is_empty());
        assert_eq!(out[0].timestamp, read_time());
        assert_eq!(out[1].labels.to_string(), r#"{stream="stderr"}"#);
        assert_eq!(out[1].timestamp, read_time());
    }

    #[test]
    fn partial_lines_join_per_stream_until_full_line() {
        let mut s = stage(0, 0, false);
        let out = run(
            &mut s,
            &[
                (
                    FOO_BAR,
                    "2019-05-07T18:57:50.904275087+00:00 stdout P partial line 1 ",
                ),
                (
                    FOO_BAR2,
                    "2019-05-07T18:57:50.904275087+00:00 stdout P partial line 2 ",
                ),
                (
                    FOO_BAR,
                    "2019-05-07T18:57:55.904275087+00:00 stdout F log finished",
                ),
                (
                    FOO_BAR2,
                    "2019-05-07T18:57:55.904275087+00:00 stdout F another full log",
                ),
            ],
        );
        assert_eq!(
            lines(&out),
            [
                "partial line 1 log finished",
                "partial line 2 another full log"
            ]
        );
        assert_eq!(out[0].labels.get("foo"), Some("bar"));
        assert_eq!(out[1].labels.get("foo"), Some("bar2"));
    }

    #[test]
    fn stdout_and_stderr_of_one_source_are_separate_streams() {
        let mut s = stage(0, 0, false);
        let out = run(
            &mut s,
            &[
                (&[], "2019-05-07T18:57:50Z stdout P out-"),
                (&[], "2019-05-07T18:57:50Z stderr F err"),
                (&[], "2019-05-07T18:57:51Z stdout F end"),
            ],
        );
        assert_eq!(lines(&out), ["err", "out-end"]);
    }

    #[test]
    fn joined_entry_carries_the_full_lines_timestamp_and_ack() {
        let mut s = stage(0, 0, false);
        let mut p = entry("2019-05-07T18:57:50Z stdout P a", &[]);
        p.ack = Some(AckToken::line(SourceId(3), 10));
        let mut f = entry("2019-05-07T18:57:55Z stdout F b", &[]);
        f.ack = Some(AckToken::line(SourceId(3), 20));
        assert_eq!(s.process(&mut p), Verdict::Hold);
        assert_eq!(s.process(&mut f), Verdict::Keep);
        assert_eq!(f.line, "ab");
        assert_eq!(f.timestamp.to_rfc3339(), "2019-05-07T18:57:55+00:00");
        assert_eq!(f.ack.map(|a| (a.from, a.offset)), Some((10, 20)));
    }

    #[test]
    fn held_entry_is_the_latest_partial_line_and_carries_its_ack() {
        let mut s = stage(0, 0, false);
        for (line, offset) in [
            ("2019-05-07T18:57:50Z stdout P a", 10),
            ("2019-05-07T18:57:51Z stdout P b", 20),
        ] {
            let mut e = entry(line, &[]);
            e.ack = Some(AckToken::line(SourceId(3), offset));
            assert_eq!(s.process(&mut e), Verdict::Hold);
        }
        let mut f = entry("2019-05-07T18:57:52Z stdout F c", &[]);
        f.ack = Some(AckToken::line(SourceId(3), 30));
        assert_eq!(s.process(&mut f), Verdict::Keep);
        assert_eq!(f.line, "abc");
        assert_eq!(f.timestamp.to_rfc3339(), "2019-05-07T18:57:52+00:00");
        assert_eq!(f.ack.map(|a| (a.from, a.offset)), Some((10, 30)));
    }

    #[test]
    fn single_stream_keeps_joining_past_max_partial_lines() {
        let mut s = stage(3, 0, false);
        let out = run(
            &mut s,
            &[
                (FOO_BAR, "2019-05-07T18:57:50Z stdout P partial line 1 "),
                (FOO_BAR, "2019-05-07T18:57:50Z stdout P partial line 2 "),
                (FOO_BAR, "2019-05-07T18:57:50Z stdout P partial line 3 "),
                (FOO_BAR, "2019-05-07T18:57:50Z stdout P partial line 4 "),
                (FOO_BAR, "2019-05-07T18:57:55Z stdout F log finished"),
                (FOO_BAR, "2019-05-07T18:57:55Z stdout F another full log"),
            ],
        );
        assert_eq!(
            lines(&out),
            [
                "partial line 1 partial line 2 partial line 3 partial line 4 log finished",
                "another full log"
            ]
        );
    }

    #[test]
    fn more_streams_than_max_partial_lines_flushes_all_held_entries() {
        let mut s = stage(3, 0, false);
        let l12: &[(&str, &str)] = &[("label1", "val1"), ("label2", "val2")];
        let l1: &[(&str, &str)] = &[("label1", "val1")];
        let l3: &[(&str, &str)] = &[("label1", "val3")];
        let l4: &[(&str, &str)] = &[("label1", "val4")];
        let out = run(
            &mut s,
            &[
                (l12, "2019-05-07T18:57:50Z stdout P partial line 1 "),
                (l1, "2019-05-07T18:57:50Z stdout P partial line 2 "),
                (l12, "2019-05-07T18:57:50Z stdout P partial line 3 "),
                (l3, "2019-05-07T18:57:50Z stdout P partial line 4 "),
                (l4, "2019-05-07T18:57:50Z stdout P partial line 5 "),
                (l12, "2019-05-07T18:57:55Z stdout F log finished"),
                (l3, "2019-05-07T18:57:55Z stdout F another full log"),
                (l4, "2019-05-07T18:57:55Z stdout F yet an another full log"),
            ],
        );
        assert_eq!(
            lines(&out),
            [
                "partial line 1 partial line 3 ",
                "partial line 2 ",
                "partial line 4 ",
                "log finished",
                "another full log",
                "partial line 5 yet an another full log",
            ]
        );
    }

    #[test]
    fn truncation_cuts_held_and_joined_lines() {
        let mut s = stage(0, 11, true);
        let out = run(
            &mut s,
            &[
                (FOO_BAR, "2019-05-07T18:57:50Z stdout P partial line 1 "),
                (FOO_BAR2, "2019-05-07T18:57:50Z stdout P partial"),
                (FOO_BAR, "2019-05-07T18:57:55Z stdout F log finished"),
                (FOO_BAR2, "2019-05-07T18:57:55Z stdout F full"),
                (
                    FOO_BAR2,
                    "2019-05-07T18:57:55Z stdout F a full line longer than 11",
                ),
            ],
        );
        assert_eq!(
            lines(&out),
            ["partial lin", "partialfull", "a full line longer than 11"]
        );
    }

    #[test]
    fn truncation_never_splits_a_character_and_is_off_without_the_flag_or_a_size() {
        let mut s = stage(0, 4, true);
        let out = run(
            &mut s,
            &[
                (&[], "2019-05-07T18:57:50Z stdout P abcπ"),
                (&[], "2019-05-07T18:57:50Z stdout F π"),
            ],
        );
        // Both the held "abcπ" and the joined "abcπ" are 5 bytes: cut before the π.
        assert_eq!(lines(&out), ["abc"]);
        for mut s in [stage(0, 4, false), stage(0, 0, true)] {
            let out = run(
                &mut s,
                &[
                    (&[], "2019-05-07T18:57:50Z stdout P abcdef"),
                    (&[], "2019-05-07T18:57:50Z stdout F gh"),
                ],
            );
            assert_eq!(lines(&out), ["abcdefgh"]);
        }
    }

    /// Promtail's cri stage (extensions.go `cri.Run`) only sends a held partial line with
    /// the next full line of its stream or on overflow; once its input closes nothing more is
    /// sent, so a partial line never completed is lost. Here it is dropped, counted, and its
    /// acknowledgement kept back so positions do not pass it.
    #[test]
    fn partial_lines_never_completed_are_dropped_at_the_end_of_input() {
        let metrics = Arc::new(Metrics::new());
        let mut s = CriStage::new(
            &CriConfig::default(),
            &BuildContext::new("cri", metrics.clone()),
        )
        .unwrap();
        let out = run(
            &mut s,
            &[
                (FOO_BAR, "2019-05-07T18:57:49Z stdout F done"),
                (FOO_BAR2, "2019-05-07T18:57:50Z stdout P second stream"),
                (FOO_BAR, "2019-05-07T18:57:50Z stdout P first"),
            ],
        );
        assert_eq!(lines(&out), ["done"]);
        let mut out = Vec::new();
        s.release(Instant::now(), false, &mut out);
        assert!(out.is_empty());
        s.release(Instant::now(), true, &mut out);
        assert!(out.is_empty(), "{:?}", lines(&out));
        let mut consumed = Vec::new();
        s.take_consumed(&mut consumed);
        assert!(consumed.is_empty());
        assert!(
            metrics
                .render()
                .contains(r#"logentry_dropped_lines_total{reason="cri_partial_unfinished"} 2"#),
            "{}",
            metrics.render()
        );
        // The stage goes on: a new stream's partial line is joined as before.
        let out = run(
            &mut s,
            &[
                (FOO_BAR, "2019-05-07T18:57:51Z stdout P a"),
                (FOO_BAR, "2019-05-07T18:57:52Z stdout F b"),
            ],
        );
        assert_eq!(lines(&out), ["ab"]);
    }

    #[test]
    fn config_reads_promtail_keys_and_defaults() {
        let cfg: CriConfig = serde_json::from_value(serde_json::json!({
            "max_partial_lines": 7,
            "max_partial_line_size": "1KiB",
            "max_partial_line_size_truncate": true,
        }))
        .unwrap();
        let s = CriStage::new(&cfg, &ctx()).unwrap();
        assert_eq!(s.max_partial_lines, 7);
        assert_eq!(s.truncate_to, Some(1024));
        let s = CriStage::new(&CriConfig::default(), &ctx()).unwrap();
        assert_eq!(s.max_partial_lines, 100);
        assert_eq!(s.truncate_to, None);
        let unknown =
            serde_json::from_value::<CriConfig>(serde_json::json!({"max_partial_line": 1}));
        assert!(unknown.is_err());
    }
}
