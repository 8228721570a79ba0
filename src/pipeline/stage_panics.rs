//! Stage panics, caught per entry, so that one entry reaching a bug in a stage (hostile input
//! in a template, a parser's corner case) cannot stop its job for good.
//!
//! The pipeline runs every stage's `process` through [`StagePanics::process`]. A panic there
//! is that stage's failure for that entry, as when a stage cannot parse a line: the entry goes
//! on to the next stage as the stage left it, with its acknowledgement. Stages write their
//! results once they have computed them, so an entry a stage panicked on normally goes on
//! unchanged; restoring it for certain would take a copy of every entry before every stage,
//! which costs more than the rare panic is worth. The stage is kept and gets the next entry;
//! its own state is whatever the panic left. The panic is counted in
//! `tailward_stage_panics_total{job, stage}` and logged at most once per [`LOG_INTERVAL`] per
//! job, with how many went unlogged since. Stages nested in a `match` or `preset` are counted
//! under that stage. Only `process` is guarded: `release` only hands out entries a stage holds.
//!
//! While a stage runs, the process's panic hook does not print: the default hook would write
//! every such panic to stderr (with a backtrace when `RUST_BACKTRACE` is set), once per
//! hostile line. Its message goes to the rate-limited log instead. Panics anywhere else are
//! printed as before.
//!
//! Owns catching, counting and logging stage panics. It must not know what any stage does.

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::panic::{self, AssertUnwindSafe};
use std::sync::Once;
use std::time::{Duration, Instant};

use prometheus::IntCounterVec;

use super::{PipelineEntry, Stage, Verdict};
use crate::metrics::Metrics;

/// How often a job logs stage panics at most.
pub const LOG_INTERVAL: Duration = Duration::from_secs(60);

/// One job's stage panics: counted, and logged at most once per [`LOG_INTERVAL`].
pub struct StagePanics {
    job: String,
    stage_names: Vec<&'static str>,
    counter: IntCounterVec,
    last_logged: Option<Instant>,
    /// Panics since the last one logged.
    unlogged: u64,
}

impl StagePanics {
    /// `stage_names` names the stages by index, as the config writes them.
    pub fn new(job: &str, stage_names: Vec<&'static str>, metrics: &Metrics) -> Self {
        install_quiet_hook();
        Self {
            job: job.to_string(),
            stage_names,
            counter: metrics.pipeline.stage_panics.clone(),
            last_logged: None,
            unlogged: 0,
        }
    }

    /// Runs stage `index`'s `process`; a panic is counted and logged, and the entry goes on
    /// (`Keep`).
    pub fn process(
        &mut self,
        stage: &mut dyn Stage,
        index: usize,
        entry: &mut PipelineEntry,
    ) -> Verdict {
        let outcome = {
            let _quiet = QuietPanics::enter();
            panic::catch_unwind(AssertUnwindSafe(|| stage.process(entry)))
        };
        match outcome {
            Ok(verdict) => verdict,
            Err(payload) => {
                self.caught(index, payload.as_ref());
                Verdict::Keep
            }
        }
    }

    fn caught(&mut self, index: usize, payload: &(dyn Any + Send)) {
        let stage = self.stage_names.get(index).copied().unwrap_or("unnamed");
        self.counter.with_label_values(&[&self.job, stage]).inc();
        // The hook kept the message with its location; the payload alone is the fallback.
        let message = LAST_PANIC
            .with(|last| last.borrow_mut().take())
            .unwrap_or_else(|| payload_text(payload));
        let now = Instant::now();
        if self
            .last_logged
            .is_some_and(|at| now.duration_since(at) < LOG_INTERVAL)
        {
            self.unlogged += 1;
            return;
        }
        tracing::error!(
            job = %self.job,
            stage,
            stage_index = index,
            unlogged_since_last = self.unlogged,
            "a stage panicked on an entry; the entry went on as the stage left it and the job \
             keeps running: {message}"
        );
        self.last_logged = Some(now);
        self.unlogged = 0;
    }
}

fn payload_text(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic without a message".to_string()
    }
}

thread_local! {
    /// How many stage calls on this thread are running under [`QuietPanics`].
    static QUIET_DEPTH: Cell<u32> = const { Cell::new(0) };
    /// The message of the last panic the hook kept quiet on this thread.
    static LAST_PANIC: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Keeps the panic hook quiet on this thread while alive.
struct QuietPanics;

impl QuietPanics {
    fn enter() -> Self {
        QUIET_DEPTH.with(|depth| depth.set(depth.get() + 1));
        QuietPanics
    }
}

impl Drop for QuietPanics {
    fn drop(&mut self) {
        QUIET_DEPTH.with(|depth| depth.set(depth.get().saturating_sub(1)));
    }
}

/// Wraps the process's panic hook once: quiet (keeping the message) inside a stage call,
/// the previous hook everywhere else.
fn install_quiet_hook() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if QUIET_DEPTH.with(Cell::get) > 0 {
                LAST_PANIC.with(|last| *last.borrow_mut() = Some(info.to_string()));
            } else {
                previous(info);
            }
        }));
    });
}
