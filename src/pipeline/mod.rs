//! Pipelines: a job's `pipeline_stages`, run on each line in order, turning lines into entries.
//!
//! Owns the entry data model stages work on (labels, extracted map seeded with the labels,
//! timestamp, line, structured metadata), building stages from config once at load time (every
//! error names the stage and key), and running them. Stages live one per file in `stages/`.
//! A stage that panics on an entry fails for that entry only; the job keeps running (see
//! [`stage_panics`]). It must not know where lines come from (files, stdin) or where entries
//! go (Loki, stdout).

pub mod extracted;
pub mod go;
pub mod http_request;
pub mod inspect;
pub mod label_sources;
pub mod liveness;
pub mod load_warnings;
pub mod logql;
pub mod nested;
pub mod presets;
pub mod stage_panics;
pub mod stages;
pub mod task;
pub mod used_keys;

use std::borrow::Cow;
use std::collections::VecDeque;
use std::fmt;
use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, FixedOffset};
use serde_json::Value;

use crate::metrics::{Metrics, PipelineMetrics};
use crate::model::ack::AckToken;
use crate::model::entry::{Entry, LineBatch, Outgoing};
use crate::model::labels::LabelSet;
use stages::{StageConfig, StageError};

pub use extracted::Extracted;
use extracted::{Seed, seed_from_labels};
use inspect::{Inspector, Snapshot};
use stage_panics::StagePanics;

/// An entry on its way through the stages.
#[derive(Clone, Debug)]
pub struct PipelineEntry {
    pub labels: LabelSet,
    pub extracted: Extracted,
    pub timestamp: DateTime<FixedOffset>,
    pub line: String,
    pub structured_metadata: Vec<(String, String)>,
    pub ack: Option<AckToken>,
}

impl PipelineEntry {
    /// A new entry whose extracted map is seeded with its labels, as Promtail does.
    pub fn new(labels: LabelSet, line: String, timestamp: DateTime<FixedOffset>) -> Self {
        let seed = seed_from_labels(&labels);
        Self::with_seed(labels, seed, line, timestamp)
    }

    /// Like [`PipelineEntry::new`] with the labels' seed already built (shared by every line
    /// of a source).
    pub fn with_seed(
        labels: LabelSet,
        seed: Seed,
        line: String,
        timestamp: DateTime<FixedOffset>,
    ) -> Self {
        Self {
            labels,
            extracted: Extracted::new(seed),
            timestamp,
            line,
            structured_metadata: Vec::new(),
            ack: None,
        }
    }

    /// Sets a structured metadata pair, replacing an earlier value of the same name.
    pub fn set_structured_metadata(&mut self, name: &str, value: String) {
        match self.structured_metadata.iter_mut().find(|(k, _)| k == name) {
            Some(pair) => pair.1 = value,
            None => self.structured_metadata.push((name.to_string(), value)),
        }
    }

    pub fn into_entry(self) -> Entry {
        Entry {
            labels: self.labels,
            timestamp: self.timestamp,
            line: self.line,
            structured_metadata: self.structured_metadata,
        }
    }
}

/// Converts an extracted value to a string as Promtail's `getString` does: strings as they
/// are, numbers in their shortest form (`3`, `0.25`), booleans as `true`/`false`. Null,
/// objects and arrays have no string form (Promtail skips them).
pub fn value_as_string(v: &Value) -> Option<Cow<'_, str>> {
    match v {
        Value::String(s) => Some(Cow::Borrowed(s)),
        Value::Bool(b) => Some(Cow::Borrowed(if *b { "true" } else { "false" })),
        Value::Number(n) => Some(Cow::Owned(match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => i.to_string(),
            (None, Some(u)) => u.to_string(),
            _ => n.as_f64().map(|f| f.to_string()).unwrap_or_default(),
        })),
        Value::Null | Value::Array(_) | Value::Object(_) => None,
    }
}

/// What a stage decided about an entry.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    Keep,
    /// Drop the entry and count it in `logentry_dropped_lines_total{reason}`.
    Drop {
        reason: Cow<'static, str>,
    },
    /// The stage kept the entry to release later through [`Stage::release`] (multiline blocks,
    /// partial CRI lines). A holding stage carries the held entries' acknowledgements into
    /// what it releases, so positions never pass a line that has not gone out.
    Hold,
    /// Ask again after this long (a blocking rate limit): reading waits, nothing is lost.
    Wait(std::time::Duration),
}

/// One pipeline stage. Built once from its config (validating everything there), then asked
/// to process each entry in order.
pub trait Stage: Send {
    fn process(&mut self, entry: &mut PipelineEntry) -> Verdict;

    /// Hands out held entries that are due at `now` (or all of them when `flush_all`, at
    /// shutdown and at the end of stdin). Called after every `process` of this stage and
    /// whenever [`Stage::next_deadline`] passes. Released entries continue with the next
    /// stage.
    fn release(&mut self, _now: Instant, _flush_all: bool, _out: &mut Vec<PipelineEntry>) {}

    /// Hands on the acknowledgements of entries the stage dropped on purpose inside
    /// `release` (where no verdict can go out), so positions can move past them. Called
    /// after every `release`.
    fn take_consumed(&mut self, _consumed: &mut Vec<AckToken>) {}

    /// When the stage next wants `release` called even if no entry arrives.
    fn next_deadline(&self) -> Option<Instant> {
        None
    }

    /// `-inspect`: a stage made of other stages (a preset) that reports each of them itself,
    /// to an inspector it makes with [`Inspector::nested`], returns true; the pipeline then
    /// reports nothing for the stage as a whole. Called once, when the inspector is attached.
    fn inspect_inside(&mut self, _inspector: &Inspector) -> bool {
        false
    }

    /// The extracted keys later stages may read (`None`: any key), from
    /// [`used_keys::read_after`]: a stage that only writes extracted values may skip the
    /// others. Called once after the pipeline is built, and again with `None` when the
    /// extracted map is shown (`-inspect`, `-dry-run.extracted`, `tailward test`).
    fn restrict_writes(&mut self, _read_later: Option<&std::collections::HashSet<String>>) {}
}

/// What stages may use while they are built.
#[derive(Clone)]
pub struct BuildContext {
    pub job: String,
    /// The registry the `metrics` stage adds its series to, and the drop counters.
    pub metrics: Arc<Metrics>,
}

impl BuildContext {
    pub fn new(job: &str, metrics: Arc<Metrics>) -> Self {
        Self {
            job: job.to_string(),
            metrics,
        }
    }
}

/// A stage config error, located by job, stage index and key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PipelineError {
    /// e.g. `scrape_configs[1].pipeline_stages[0].regex.expression`
    pub key_path: String,
    pub message: String,
}

impl fmt::Display for PipelineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key_path, self.message)
    }
}

impl std::error::Error for PipelineError {}

/// Builds `configs` into stages; errors are located under `key_prefix`
/// (e.g. `scrape_configs[1].pipeline_stages`). Nested stage lists (`match`) use this too.
pub fn build_stages(
    key_prefix: &str,
    configs: &[StageConfig],
    ctx: &BuildContext,
) -> Result<Vec<Box<dyn Stage>>, PipelineError> {
    let mut stages = Vec::with_capacity(configs.len());
    for (i, cfg) in configs.iter().enumerate() {
        let stage = cfg.build(ctx).map_err(|StageError { key, message }| {
            let mut key_path = format!("{key_prefix}[{i}].{}", cfg.name());
            if !key.is_empty() {
                key_path.push('.');
                key_path.push_str(&key);
            }
            PipelineError { key_path, message }
        })?;
        stages.push(stage);
    }
    for (i, message) in load_warnings::warnings(configs) {
        let stage = format!("{key_prefix}[{i}].{}", configs[i].name());
        tracing::warn!(%stage, "{message}");
    }
    Ok(stages)
}

/// Where the stages put what they are done with, and the work a waiting stage left behind.
struct Outputs<'a> {
    metrics: &'a Metrics,
    panics: &'a mut StagePanics,
    done: &'a mut Vec<PipelineEntry>,
    consumed: &'a mut Vec<AckToken>,
    inspector: Option<&'a mut Inspector>,
    /// Entries still to run, in order, each from its stage: filled only when a stage answered
    /// `Wait` (the waiting entry first) or released entries behind it.
    queue: &'a mut VecDeque<Queued>,
}

impl<'a> Outputs<'a> {
    fn new(
        metrics: &'a Metrics,
        panics: &'a mut StagePanics,
        done: &'a mut Vec<PipelineEntry>,
        consumed: &'a mut Vec<AckToken>,
        inspector: Option<&'a mut Inspector>,
        queue: &'a mut VecDeque<Queued>,
    ) -> Self {
        Self {
            metrics,
            panics,
            done,
            consumed,
            inspector,
            queue,
        }
    }
}

/// An entry waiting to continue at `stage`; `released_by` names the holding stage that let
/// it go, reported to the inspector when it continues.
pub struct Queued {
    stage: usize,
    entry: PipelineEntry,
    released_by: Option<usize>,
}

/// Runs `entry` through `stages[start..]` without awaiting: the common case costs no future
/// per line. Returns how long a stage asked to wait; the unfinished work is then in the
/// queue and [`resume`] continues it after the wait.
fn advance(
    stages: &mut [Box<dyn Stage>],
    start: usize,
    mut entry: PipelineEntry,
    out: &mut Outputs<'_>,
) -> Option<std::time::Duration> {
    let mut i = start;
    while i < stages.len() {
        let before = out.inspector.is_some().then(|| Snapshot::of(&entry));
        let verdict = out.panics.process(stages[i].as_mut(), i, &mut entry);
        if let Verdict::Wait(d) = verdict {
            // Reported once, when the stage has decided.
            out.queue.push_front(Queued {
                stage: i,
                entry,
                released_by: None,
            });
            return Some(d);
        }
        if let (Some(inspector), Some(before)) = (out.inspector.as_deref_mut(), before) {
            inspector.report(i, &before, &verdict, &entry);
        }
        match verdict {
            Verdict::Keep | Verdict::Wait(_) => i += 1,
            Verdict::Drop { reason } => {
                count_drop(&out.metrics.pipeline, &reason);
                out.consumed.extend(entry.ack);
                return None;
            }
            Verdict::Hold => {
                let mut released = Vec::new();
                stages[i].release(Instant::now(), false, &mut released);
                stages[i].take_consumed(out.consumed);
                return run_released(stages, i, released, out);
            }
        }
    }
    out.done.push(entry);
    None
}

/// Runs entries `holder` released through the stages after it, each entirely before the
/// next (as if they had arrived in that order), then whatever was queued behind them.
fn run_released(
    stages: &mut [Box<dyn Stage>],
    holder: usize,
    released: Vec<PipelineEntry>,
    out: &mut Outputs<'_>,
) -> Option<std::time::Duration> {
    for entry in released.into_iter().rev() {
        out.queue.push_front(Queued {
            stage: holder + 1,
            entry,
            released_by: Some(holder),
        });
    }
    resume(stages, out)
}

/// Continues queued work in order until it is done or a stage asks to wait.
fn resume(stages: &mut [Box<dyn Stage>], out: &mut Outputs<'_>) -> Option<std::time::Duration> {
    while let Some(q) = out.queue.pop_front() {
        if let (Some(inspector), Some(holder)) = (out.inspector.as_deref_mut(), q.released_by) {
            inspector.report_release(holder, &q.entry);
        }
        if let Some(wait) = advance(stages, q.stage, q.entry, out) {
            return Some(wait);
        }
    }
    None
}

/// Waits out each `Wait` a stage answered, continuing the queued work after it.
async fn wait_and_resume(
    stages: &mut [Box<dyn Stage>],
    mut wait: Option<std::time::Duration>,
    out: &mut Outputs<'_>,
) {
    while let Some(d) = wait {
        tokio::time::sleep(d).await;
        wait = resume(stages, out);
    }
}

/// Runs `entry` through `stages[start..]`, pushing finished entries to `done` and the
/// acknowledgements of dropped ones to `consumed`. Released entries of holding stages
/// continue from the stage after the one that held them.
pub async fn run_stages(
    stages: &mut [Box<dyn Stage>],
    start: usize,
    entry: PipelineEntry,
    metrics: &Metrics,
    done: &mut Vec<PipelineEntry>,
    consumed: &mut Vec<AckToken>,
) {
    let mut queue = VecDeque::new();
    let mut panics = StagePanics::new("", Vec::new(), metrics);
    let mut out = Outputs::new(metrics, &mut panics, done, consumed, None, &mut queue);
    let wait = advance(stages, start, entry, &mut out);
    wait_and_resume(stages, wait, &mut out).await;
}

/// Releases what holding stages have due (or everything, when `flush_all`) and runs it
/// through the rest of the stages.
pub async fn release_stages(
    stages: &mut [Box<dyn Stage>],
    now: Instant,
    flush_all: bool,
    metrics: &Metrics,
    done: &mut Vec<PipelineEntry>,
    consumed: &mut Vec<AckToken>,
) {
    let mut queue = VecDeque::new();
    let mut panics = StagePanics::new("", Vec::new(), metrics);
    let mut out = Outputs::new(metrics, &mut panics, done, consumed, None, &mut queue);
    release_all(stages, now, flush_all, &mut out).await;
}

/// Asks every holding stage, first to last, for what it has due and runs that on.
async fn release_all(
    stages: &mut [Box<dyn Stage>],
    now: Instant,
    flush_all: bool,
    out: &mut Outputs<'_>,
) {
    for i in 0..stages.len() {
        let mut released = Vec::new();
        stages[i].release(now, flush_all, &mut released);
        stages[i].take_consumed(out.consumed);
        let wait = run_released(stages, i, released, out);
        wait_and_resume(stages, wait, out).await;
    }
}

/// The earliest deadline of any stage in `stages`.
pub fn next_deadline(stages: &[Box<dyn Stage>]) -> Option<Instant> {
    stages.iter().filter_map(|s| s.next_deadline()).min()
}

/// Names under which a pipeline that shows its extracted values
/// ([`Pipeline::with_extracted_shown`]) hands them on, as structured metadata pairs
/// `("\0" + key, value)`: a name no stage can give (they are label names), taken back out by
/// the dry-run printer and `tailward test` ([`take_extracted`]) before anything else sees
/// the entry. Only those two turn it on; the agent refuses it without `-dry-run`, so such
/// pairs never reach a client.
pub const EXTRACTED_PREFIX: char = '\0';

/// Moves the extracted values a pipeline showed out of `structured_metadata`, sorted by
/// key; the real structured metadata stays, in its order.
pub fn take_extracted(structured_metadata: &mut Vec<(String, String)>) -> Vec<(String, String)> {
    if !structured_metadata
        .iter()
        .any(|(k, _)| k.starts_with(EXTRACTED_PREFIX))
    {
        return Vec::new();
    }
    let mut extracted = Vec::new();
    structured_metadata.retain(|(k, v)| match k.strip_prefix(EXTRACTED_PREFIX) {
        Some(key) => {
            extracted.push((key.to_string(), v.clone()));
            false
        }
        None => true,
    });
    extracted.sort();
    extracted
}

/// A job's stages, ready to run.
pub struct Pipeline {
    stages: Vec<Box<dyn Stage>>,
    /// Hand each finished entry's extracted values on ([`EXTRACTED_PREFIX`]).
    show_extracted: bool,
    /// Each stage's name as written in the config, for `-inspect` reports.
    stage_names: Vec<&'static str>,
    /// Present only with `-inspect`.
    inspector: Option<Inspector>,
    metrics: Arc<Metrics>,
    panics: StagePanics,
    /// The extracted-map seed of the last source seen, reused while batches share labels.
    seed_cache: Option<(Arc<LabelSet>, Seed)>,
    done: Vec<PipelineEntry>,
    consumed: Vec<AckToken>,
    /// Work left behind by a stage that asked to wait; empty between calls.
    queue: VecDeque<Queued>,
}

impl Pipeline {
    /// Builds every stage of `configs`. `key_prefix` locates the list in the config file,
    /// e.g. `scrape_configs[1].pipeline_stages`.
    pub fn build(
        key_prefix: &str,
        configs: &[StageConfig],
        ctx: &BuildContext,
    ) -> Result<Self, PipelineError> {
        let mut stages = build_stages(key_prefix, configs, ctx)?;
        for (stage, keys) in stages.iter_mut().zip(used_keys::read_after(configs)) {
            stage.restrict_writes(keys.as_ref());
        }
        let names = configs.iter().map(StageConfig::name).collect();
        Ok(Self::of_stages(stages, names, ctx))
    }

    /// A pipeline of built stages, named by index as the config writes them.
    fn of_stages(
        stages: Vec<Box<dyn Stage>>,
        stage_names: Vec<&'static str>,
        ctx: &BuildContext,
    ) -> Self {
        Self {
            stages,
            show_extracted: false,
            panics: StagePanics::new(&ctx.job, stage_names.clone(), &ctx.metrics),
            stage_names,
            inspector: None,
            metrics: ctx.metrics.clone(),
            seed_cache: None,
            done: Vec::new(),
            consumed: Vec::new(),
            queue: VecDeque::new(),
        }
    }

    /// Reports every stage's changes to every entry to `inspector` (`-inspect`).
    pub fn with_inspector(mut self, mut inspector: Inspector) -> Self {
        self.write_every_key();
        inspector.set_stage_names(self.stage_names.clone());
        let inside = self
            .stages
            .iter_mut()
            .map(|stage| stage.inspect_inside(&inspector))
            .collect();
        inspector.set_reported_inside(inside);
        self.inspector = Some(inspector);
        self
    }

    /// Hands each finished entry's extracted values on with its structured metadata
    /// ([`EXTRACTED_PREFIX`]), for `-dry-run.extracted` and `tailward test`.
    pub fn with_extracted_shown(mut self) -> Self {
        self.write_every_key();
        self.show_extracted = true;
        self
    }

    /// Undoes [`Stage::restrict_writes`]: the extracted map is shown, so every key counts.
    fn write_every_key(&mut self) {
        for stage in &mut self.stages {
            stage.restrict_writes(None);
        }
    }

    /// Runs one entry through every stage; finished entries and the acknowledgements of
    /// dropped ones are appended to `out`.
    pub async fn run(&mut self, entry: PipelineEntry, out: &mut Vec<Outgoing>) {
        self.run_entry(entry).await;
        self.drain_into(out);
    }

    async fn run_entry(&mut self, entry: PipelineEntry) {
        let mut outputs = Outputs::new(
            &self.metrics,
            &mut self.panics,
            &mut self.done,
            &mut self.consumed,
            self.inspector.as_mut(),
            &mut self.queue,
        );
        if let Some(wait) = advance(&mut self.stages, 0, entry, &mut outputs) {
            wait_and_resume(&mut self.stages, Some(wait), &mut outputs).await;
        }
    }

    /// Runs every line of `batch`, appending what continues to `out`. Dropped lines still
    /// hand their acknowledgement on, so positions can move past them.
    pub async fn run_batch(&mut self, batch: &LineBatch, out: &mut Vec<Outgoing>) {
        if self.stages.is_empty() && self.inspector.is_none() && !self.show_extracted {
            // Nothing reads or writes the extracted map: lines become entries directly.
            out.reserve(batch.len());
            for (i, (line, ack)) in batch.iter().enumerate() {
                let (timestamp, metadata) = batch.stamp(i);
                out.push(Outgoing::Entry {
                    entry: Entry {
                        labels: (*batch.labels).clone(),
                        timestamp,
                        line: line.to_string(),
                        structured_metadata: metadata.to_vec(),
                    },
                    ack,
                });
            }
            return;
        }
        let seed = match &self.seed_cache {
            Some((labels, seed)) if Arc::ptr_eq(labels, &batch.labels) => seed.clone(),
            _ => {
                let seed = seed_from_labels(&batch.labels);
                self.seed_cache = Some((batch.labels.clone(), seed.clone()));
                seed
            }
        };
        out.reserve(batch.len());
        for (i, (line, ack)) in batch.iter().enumerate() {
            let (timestamp, metadata) = batch.stamp(i);
            let mut entry = PipelineEntry::with_seed(
                (*batch.labels).clone(),
                seed.clone(),
                line.to_string(),
                timestamp,
            );
            entry.structured_metadata = metadata.to_vec();
            entry.ack = ack;
            self.run_entry(entry).await;
            // Per line, so a dropped line's acknowledgement keeps its place among the entries.
            self.drain_into(out);
        }
    }

    /// Releases what holding stages have due at `now`, or everything when `flush_all`.
    pub async fn release(&mut self, now: Instant, flush_all: bool, out: &mut Vec<Outgoing>) {
        let mut outputs = Outputs::new(
            &self.metrics,
            &mut self.panics,
            &mut self.done,
            &mut self.consumed,
            self.inspector.as_mut(),
            &mut self.queue,
        );
        release_all(&mut self.stages, now, flush_all, &mut outputs).await;
        self.drain_into(out);
    }

    pub fn next_deadline(&self) -> Option<Instant> {
        next_deadline(&self.stages)
    }

    fn drain_into(&mut self, out: &mut Vec<Outgoing>) {
        for ack in self.consumed.drain(..) {
            out.push(Outgoing::Consumed { ack });
        }
        for mut done in self.done.drain(..) {
            if self.show_extracted {
                let shown: Vec<(String, String)> = done
                    .extracted
                    .iter()
                    .map(|(k, v)| {
                        let mut name = String::with_capacity(k.len() + 1);
                        name.push(EXTRACTED_PREFIX);
                        name.push_str(k);
                        (name, inspect::display_value(v))
                    })
                    .collect();
                done.structured_metadata.extend(shown);
            }
            let ack = done.ack;
            out.push(Outgoing::Entry {
                entry: done.into_entry(),
                ack,
            });
        }
    }
}

fn count_drop(m: &PipelineMetrics, reason: &str) {
    m.dropped_lines.with_label_values(&[reason]).inc();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ack::SourceId;

    fn pipeline(stages: serde_json::Value) -> Pipeline {
        let configs: Vec<StageConfig> = serde_json::from_value(stages).unwrap();
        let ctx = BuildContext::new("job", Arc::new(Metrics::new()));
        Pipeline::build("pipeline_stages", &configs, &ctx).unwrap()
    }

    fn shipped(out: &[Outgoing]) -> Vec<(String, String, String, Option<AckToken>)> {
        out.iter()
            .map(|o| match o {
                Outgoing::Entry { entry, ack } => (
                    entry.labels.to_string(),
                    entry.timestamp.to_rfc3339(),
                    entry.line.clone(),
                    *ack,
                ),
                Outgoing::Consumed { ack } => {
                    ("consumed".into(), String::new(), String::new(), Some(*ack))
                }
            })
            .collect()
    }

    #[tokio::test]
    async fn a_pipeline_without_stages_ships_what_a_pipeline_of_no_op_stages_ships() {
        let labels = Arc::new(LabelSet::from_pairs([
            ("job", "app"),
            ("filename", "/a.log"),
        ]));
        let read_time = DateTime::parse_from_rfc3339("2026-11-28T05:00:00+01:00").unwrap();
        let mut batch = LineBatch::new(labels, read_time);
        batch.push("first", Some(AckToken::line_after(SourceId(3), 0, 6)));
        batch.push("", Some(AckToken::line_after(SourceId(3), 6, 7)));
        batch.push("third ünicode", None);
        let mut empty = Vec::new();
        pipeline(serde_json::json!([]))
            .run_batch(&batch, &mut empty)
            .await;
        let mut no_op = Vec::new();
        pipeline(serde_json::json!([{"labeldrop": ["not_there"]}]))
            .run_batch(&batch, &mut no_op)
            .await;
        assert_eq!(shipped(&empty), shipped(&no_op));
        assert_eq!(
            shipped(&empty)[0],
            (
                r#"{filename="/a.log", job="app"}"#.to_string(),
                "2026-11-28T05:00:00+01:00".to_string(),
                "first".to_string(),
                Some(AckToken::line_after(SourceId(3), 0, 6)),
            )
        );
        assert_eq!(empty.len(), 3);
    }

    #[tokio::test]
    async fn the_extracted_map_shown_keeps_groups_no_later_stage_reads_and_labels_still_get_theirs()
    {
        let stages = serde_json::json!([
            {"regex": {"expression": "^(?P<level>\\w+) (?P<rest>.*)$"}},
            {"labels": {"level": ""}},
        ]);
        let labels = Arc::new(LabelSet::from_pairs([("job", "app")]));
        let read_time = DateTime::parse_from_rfc3339("2026-11-28T05:00:00+01:00").unwrap();
        let mut batch = LineBatch::new(labels, read_time);
        batch.push("warn disk almost full", None);
        let extracted_names = |out: &[Outgoing]| -> Vec<String> {
            match &out[0] {
                Outgoing::Entry { entry, .. } => {
                    assert_eq!(entry.labels.to_string(), r#"{job="app", level="warn"}"#);
                    let mut names: Vec<String> = entry
                        .structured_metadata
                        .iter()
                        .filter_map(|(k, _)| k.strip_prefix(EXTRACTED_PREFIX).map(str::to_owned))
                        .collect();
                    names.sort();
                    names
                }
                Outgoing::Consumed { .. } => panic!("entry dropped"),
            }
        };
        let mut shipping = Vec::new();
        pipeline(stages.clone())
            .run_batch(&batch, &mut shipping)
            .await;
        // Shipping: the label from the group the labels stage reads.
        extracted_names(&shipping);
        let mut shown = Vec::new();
        pipeline(stages)
            .with_extracted_shown()
            .run_batch(&batch, &mut shown)
            .await;
        assert_eq!(extracted_names(&shown), ["job", "level", "rest"]);
    }

    /// Panics on lines containing "boom", as a stage with a bug reached by hostile input.
    struct PanicsOnBoom;

    impl Stage for PanicsOnBoom {
        fn process(&mut self, entry: &mut PipelineEntry) -> Verdict {
            if entry.line.contains("boom") {
                panic!("stage bug reached by {:?}", entry.line);
            }
            entry.line.push_str(" seen");
            Verdict::Keep
        }
    }

    /// Marks every line it sees, to show the stages after a panicking one still run.
    struct Marks;

    impl Stage for Marks {
        fn process(&mut self, entry: &mut PipelineEntry) -> Verdict {
            entry.line.push_str(" marked");
            Verdict::Keep
        }
    }

    fn lines(out: &[Outgoing]) -> Vec<&str> {
        out.iter()
            .filter_map(|o| match o {
                Outgoing::Entry { entry, .. } => Some(entry.line.as_str()),
                Outgoing::Consumed { .. } => None,
            })
            .collect()
    }

    #[tokio::test]
    async fn a_stage_panic_fails_that_entry_only_and_the_job_keeps_running() {
        let metrics = Arc::new(Metrics::new());
        let ctx = BuildContext::new("app", metrics.clone());
        let mut pipeline = Pipeline::of_stages(
            vec![Box::new(PanicsOnBoom), Box::new(Marks)],
            vec!["template", "output"],
            &ctx,
        );
        let labels = Arc::new(LabelSet::from_pairs([("job", "app")]));
        let read_time = DateTime::parse_from_rfc3339("2026-11-28T05:00:00+01:00").unwrap();
        let mut batch = LineBatch::new(labels, read_time);
        batch.push("before", Some(AckToken::line_after(SourceId(1), 0, 7)));
        batch.push("boom", Some(AckToken::line_after(SourceId(1), 7, 12)));
        batch.push("after", Some(AckToken::line_after(SourceId(1), 12, 18)));
        let mut out = Vec::new();
        pipeline.run_batch(&batch, &mut out).await;
        // The entry goes on as the panicking stage left it, through the stages after it.
        assert_eq!(
            lines(&out),
            ["before seen marked", "boom marked", "after seen marked"]
        );
        let acks: Vec<_> = out
            .iter()
            .map(|o| match o {
                Outgoing::Entry { ack, .. } => *ack,
                Outgoing::Consumed { ack } => Some(*ack),
            })
            .collect();
        assert_eq!(acks[1], Some(AckToken::line_after(SourceId(1), 7, 12)));
        // And the next batch still runs.
        let mut later = LineBatch::new(Arc::new(LabelSet::from_pairs([("job", "app")])), read_time);
        later.push("boom again", None);
        later.push("fine", None);
        let mut out = Vec::new();
        pipeline.run_batch(&later, &mut out).await;
        assert_eq!(lines(&out), ["boom again marked", "fine seen marked"]);
        let exposition = metrics.render();
        assert!(
            exposition.contains(r#"tailward_stage_panics_total{job="app",stage="template"} 2"#),
            "{exposition}"
        );
    }

    #[tokio::test]
    async fn a_printf_precision_from_the_log_line_cannot_stop_the_job() {
        let mut p = pipeline(serde_json::json!([
            {"regex": {"expression": r"prec=(?P<prec>\d+)"}},
            {"template": {"source": "out", "template": r#"{{ printf "%.*f" (atoi .prec) 1.5 }}"#}},
            {"output": {"source": "out"}},
        ]));
        let labels = Arc::new(LabelSet::from_pairs([("job", "app")]));
        let read_time = DateTime::parse_from_rfc3339("2026-11-28T05:00:00+01:00").unwrap();
        let mut batch = LineBatch::new(labels, read_time);
        for line in ["prec=70000", "prec=2000000", "prec=2"] {
            batch.push(line, None);
        }
        let mut out = Vec::new();
        p.run_batch(&batch, &mut out).await;
        let lines = lines(&out);
        // Go prints every digit asked for up to its bound of 10^6, and `%!(BADPREC)` past it.
        assert_eq!(lines[0].len(), "1.".len() + 70000);
        assert!(lines[0].starts_with("1.5000"), "{}", &lines[0][..10]);
        assert_eq!(lines[1], "%!(BADPREC)1.500000");
        assert_eq!(lines[2], "1.50");
    }
}
