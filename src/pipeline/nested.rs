//! Nested stages: a list of stages run as one stage of the list around it. The body of a
//! `match` (for the entries it selects) and of a `preset`, and the parsing that `docker` and
//! `cri` are made of: those two are written as lists of stage configs, built here like any
//! other list, so no stage builds or imports another.
//!
//! The inner stages run inside `process`, synchronously, and their verdicts are passed on:
//! - `Keep` moves to the next inner stage; after the last one the entry continues.
//! - `Drop` is returned as it is, so the pipeline counts it under the inner stage's reason.
//! - `Wait(d)`: the index of the waiting inner stage is remembered and `Wait(d)` returned.
//!   The pipeline asks again with the same entry after `d`; the entry then resumes at that
//!   inner stage without running earlier ones twice (and, in a `match`, without testing the
//!   selector again: earlier inner stages may have changed the labels).
//! - `Hold`: an inner stage kept the entry (multiline, cri). `Hold` is returned too, and
//!   `release` releases every inner stage in order, running what each hands out through the
//!   inner stages after it. `next_deadline` is the earliest of the inner ones.
//!   Inside `release` nothing can sleep and no verdict goes out, so:
//!   - an inner `Drop` is counted here, in `logentry_dropped_lines_total{reason}`;
//!   - an inner `Wait(d)` parks the entry, and every entry after it, in a queue that
//!     resumes at the waiting stage once `d` has passed (`next_deadline` includes it);
//!     new entries join the back of that queue so their order is kept. At `flush_all`
//!     (shutdown) waiting is skipped: the queued entries go out at once.
//!
//! Acknowledgements: an entry that runs through without being held continues at once, so it
//! can overtake a line of the same file still held by an inner stage. That is safe:
//! positions are finalized in order per file (see `positions`), so its acknowledgement
//! cannot move a position past the held line. Entries dropped inside `release` hand their
//! acknowledgement on through `take_consumed`.
//!
//! With `-inspect`, a list given an inspector ([`NestedStages::inspect_with`], as `preset`
//! does) reports each inner stage's changes, holds, drops and releases to it, nested lists
//! inside it included.
//!
//! Owns running the inner list and its work in flight. It must not decide which entries
//! enter (a `match` tests its selector before handing an entry in) and knows no stage.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;

use crate::metrics::Metrics;
use crate::model::ack::AckToken;
use crate::pipeline::inspect::{Inspector, Snapshot};
use crate::pipeline::stages::{StageConfig, StageError};
use crate::pipeline::{
    BuildContext, Extracted, PipelineEntry, PipelineError, Stage, Verdict, build_stages,
    next_deadline,
};

/// A list of stages run as one stage, and what it has in flight.
pub struct NestedStages {
    stages: Vec<Box<dyn Stage>>,
    /// Each stage's name as its config writes it, for `-inspect`.
    names: Vec<&'static str>,
    /// Present only with `-inspect`, once [`NestedStages::inspect_with`] is called.
    inspector: Option<Inspector>,
    /// The nested stage that answered `Wait` to the entry the pipeline will ask about again.
    resume_at: Option<usize>,
    /// Entries of `release` waiting for a nested stage, in order.
    waiting: VecDeque<Waiting>,
    /// Acknowledgements of entries dropped inside `release`, until `take_consumed`.
    consumed: Vec<AckToken>,
    metrics: Arc<Metrics>,
}

struct Waiting {
    entry: PipelineEntry,
    /// The nested stage to resume at.
    stage: usize,
    /// `None`: due now, queued only to keep its place behind a waiting entry.
    not_before: Option<Instant>,
}

impl NestedStages {
    pub fn new(stages: Vec<Box<dyn Stage>>, ctx: &BuildContext) -> Self {
        Self {
            stages,
            names: Vec::new(),
            inspector: None,
            resume_at: None,
            waiting: VecDeque::new(),
            consumed: Vec::new(),
            metrics: ctx.metrics.clone(),
        }
    }

    /// Builds `configs` into nested stages; errors are located under `key_prefix`.
    pub fn build(
        key_prefix: &str,
        configs: &[StageConfig],
        ctx: &BuildContext,
    ) -> Result<Self, PipelineError> {
        let mut nested = Self::new(build_stages(key_prefix, configs, ctx)?, ctx);
        nested.names = configs.iter().map(StageConfig::name).collect();
        Ok(nested)
    }

    /// Reports each inner stage to `inspector` from now on (`-inspect`).
    pub fn inspect_with(&mut self, mut inspector: Inspector) {
        inspector.set_stage_names(self.names.clone());
        let inside = self
            .stages
            .iter_mut()
            .map(|stage| stage.inspect_inside(&inspector))
            .collect();
        inspector.set_reported_inside(inside);
        self.inspector = Some(inspector);
    }

    /// Runs inner stage `i`, reporting it when inspected (a `Wait` is reported once the
    /// stage has decided).
    fn run_one(&mut self, i: usize, entry: &mut PipelineEntry) -> Verdict {
        let Some(inspector) = self.inspector.as_mut() else {
            return self.stages[i].process(entry);
        };
        let before = Snapshot::of(entry);
        let verdict = self.stages[i].process(entry);
        if !matches!(verdict, Verdict::Wait(_)) {
            inspector.report(i, &before, &verdict, entry);
        }
        verdict
    }

    fn report_release(&mut self, holder: usize, entry: &PipelineEntry) {
        if let Some(inspector) = self.inspector.as_mut() {
            inspector.report_release(holder, entry);
        }
    }

    /// Builds a stage list this crate writes as a config would (`docker`'s stages, `cri`'s
    /// parsing). The list is fixed, so a failure is a bug; it is reported as a config error
    /// of the stage that lists it rather than a panic.
    pub fn from_listed(list: serde_json::Value, ctx: &BuildContext) -> Result<Self, StageError> {
        let configs: Vec<StageConfig> = serde_json::from_value(list)
            .map_err(|e| StageError::new("", format!("built-in stage list: {e}")))?;
        Self::build("stages", &configs, ctx).map_err(|e| StageError::new(e.key_path, e.message))
    }

    /// True while the pipeline is to ask again about an entry that waited at an inner stage:
    /// that entry resumes inside, whatever a caller would decide about a new one.
    pub fn is_resuming(&self) -> bool {
        self.resume_at.is_some()
    }

    fn process_from(&mut self, entry: &mut PipelineEntry, start: usize) -> Verdict {
        let mut i = start;
        while i < self.stages.len() {
            match self.run_one(i, entry) {
                Verdict::Keep => i += 1,
                Verdict::Drop { reason } => return Verdict::Drop { reason },
                Verdict::Wait(d) => {
                    self.resume_at = Some(i);
                    return Verdict::Wait(d);
                }
                Verdict::Hold => return Verdict::Hold,
            }
        }
        Verdict::Keep
    }

    fn release_all(&mut self, now: Instant, flush_all: bool, out: &mut Vec<PipelineEntry>) {
        self.drain_waiting(now, flush_all, out);
        for k in 0..self.stages.len() {
            let mut released = Vec::new();
            self.stages[k].release(now, flush_all, &mut released);
            self.stages[k].take_consumed(&mut self.consumed);
            for entry in released {
                self.report_release(k, &entry);
                self.continue_released(entry, k + 1, now, flush_all, out);
            }
        }
    }

    fn earliest_deadline(&self) -> Option<Instant> {
        let waiting = self
            .waiting
            .front()
            .map(|w| w.not_before.unwrap_or_else(Instant::now));
        match (next_deadline(&self.stages), waiting) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Runs the queue from the front while its head is due; a head that must wait again
    /// stays at the front.
    fn drain_waiting(&mut self, now: Instant, flush_all: bool, out: &mut Vec<PipelineEntry>) {
        while let Some(front) = self.waiting.front() {
            if !flush_all && front.not_before.is_some_and(|t| t > now) {
                break;
            }
            let Some(w) = self.waiting.pop_front() else {
                break;
            };
            if let Some(again) = self.run_released(w.entry, w.stage, now, flush_all, out) {
                self.waiting.push_front(again);
                break;
            }
        }
    }

    /// An entry handed out by nested stage `start - 1`: queued behind waiting entries, or
    /// run through the rest now.
    fn continue_released(
        &mut self,
        entry: PipelineEntry,
        start: usize,
        now: Instant,
        flush_all: bool,
        out: &mut Vec<PipelineEntry>,
    ) {
        if !self.waiting.is_empty() {
            self.waiting.push_back(Waiting {
                entry,
                stage: start,
                not_before: None,
            });
            return;
        }
        if let Some(w) = self.run_released(entry, start, now, flush_all, out) {
            self.waiting.push_back(w);
        }
    }

    /// Runs an entry from `start` to the end of the nested stages, pushing it to `out` when
    /// it gets through. Returns it when a stage asks it to wait.
    fn run_released(
        &mut self,
        mut entry: PipelineEntry,
        start: usize,
        now: Instant,
        flush_all: bool,
        out: &mut Vec<PipelineEntry>,
    ) -> Option<Waiting> {
        let mut i = start;
        while i < self.stages.len() {
            match self.run_one(i, &mut entry) {
                Verdict::Keep => i += 1,
                Verdict::Drop { reason } => {
                    self.metrics
                        .pipeline
                        .dropped_lines
                        .with_label_values(&[reason.as_ref()])
                        .inc();
                    self.consumed.extend(entry.ack);
                    return None;
                }
                // At shutdown nothing may wait any more.
                Verdict::Wait(_) if flush_all => i += 1,
                Verdict::Wait(d) => {
                    return Some(Waiting {
                        entry,
                        stage: i,
                        not_before: Some(now + d),
                    });
                }
                Verdict::Hold => {
                    let mut released = Vec::new();
                    self.stages[i].release(now, false, &mut released);
                    self.stages[i].take_consumed(&mut self.consumed);
                    for r in released {
                        self.report_release(i, &r);
                        self.continue_released(r, i + 1, now, flush_all, out);
                    }
                    return None;
                }
            }
        }
        out.push(entry);
        None
    }
}

/// Moves the entry out of the pipeline's slot, leaving an empty one the pipeline discards
/// after `Hold`.
fn take_entry(entry: &mut PipelineEntry) -> PipelineEntry {
    let empty = PipelineEntry {
        labels: Default::default(),
        extracted: Extracted::default(),
        timestamp: entry.timestamp,
        line: String::new(),
        structured_metadata: Vec::new(),
        ack: None,
    };
    std::mem::replace(entry, empty)
}

impl Stage for NestedStages {
    fn process(&mut self, entry: &mut PipelineEntry) -> Verdict {
        // After `Wait` the pipeline asks again with the same entry (the `Verdict::Wait`
        // contract), so a pending resume point belongs to this entry.
        let start = match self.resume_at.take() {
            Some(stage) => stage,
            None => {
                if !self.waiting.is_empty() {
                    self.waiting.push_back(Waiting {
                        entry: take_entry(entry),
                        stage: 0,
                        not_before: None,
                    });
                    return Verdict::Hold;
                }
                0
            }
        };
        self.process_from(entry, start)
    }

    fn release(&mut self, now: Instant, flush_all: bool, out: &mut Vec<PipelineEntry>) {
        self.release_all(now, flush_all, out);
    }

    fn take_consumed(&mut self, consumed: &mut Vec<AckToken>) {
        consumed.append(&mut self.consumed);
    }

    fn next_deadline(&self) -> Option<Instant> {
        self.earliest_deadline()
    }
}
