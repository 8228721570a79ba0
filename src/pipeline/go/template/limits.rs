//! What one execution of a template may use, so that a hostile log line costs a bounded
//! amount of memory and time: every value a function returns, and the output as a whole,
//! stay within [`MAX_OUTPUT`]; every step of the execution (a node, a `range` iteration, a
//! function call, and the bytes copied or scanned along the way) comes out of a budget of
//! [`MAX_STEPS`]. Going over either is an execution error for that entry, like any other.
//!
//! Go's `text/template` has neither limit; no template a log pipeline needs comes near them
//! (a step is a node or a call, or 64 bytes of data). Owns the limits and their accounting;
//! it must not know what is being executed.

use std::borrow::Cow;
use std::cell::Cell;

use super::{ExecError, TemplateData, Value};

/// The most bytes a function may return, and a template may write, in one execution: the
/// 16 MiB the README promises.
pub(super) const MAX_OUTPUT: usize = 16 << 20;

/// The most steps one execution may take.
pub(super) const MAX_STEPS: u64 = 1_000_000;

/// Bytes of data copied or scanned that count as one step.
const BYTES_PER_STEP: u64 = 64;

/// The steps one execution has left. Shared by reference (the data's `entries` are counted
/// where they are read, behind `&self`), so it counts in a `Cell`.
pub(super) struct Budget {
    left: Cell<u64>,
}

impl Budget {
    pub(super) fn new() -> Self {
        Self {
            left: Cell::new(MAX_STEPS),
        }
    }

    /// Takes `steps` from the budget, or fails once it is spent.
    pub(super) fn spend(&self, steps: u64) -> Result<(), ExecError> {
        let left = self.left.get();
        if steps > left || left == 0 {
            self.left.set(0);
            return Err(ExecError(format!(
                "execution takes more than {MAX_STEPS} steps"
            )));
        }
        self.left.set(left - steps);
        Ok(())
    }

    /// Takes the steps for `bytes` of data work.
    pub(super) fn spend_bytes(&self, bytes: u64) -> Result<(), ExecError> {
        self.spend(bytes / BYTES_PER_STEP)
    }

    /// Like [`Budget::spend_bytes`] where no error can be returned: an overdraft leaves the
    /// budget empty, and the next [`Budget::spend`] fails.
    fn spend_bytes_later(&self, bytes: u64) {
        let steps = bytes / BYTES_PER_STEP;
        let left = self.left.get();
        self.left.set(left.saturating_sub(steps));
    }
}

/// Fails when `len` bytes would be over [`MAX_OUTPUT`]; `what` names the producer.
pub(super) fn check_len(what: &str, len: usize) -> Result<(), ExecError> {
    if len > MAX_OUTPUT {
        return Err(ExecError(format!(
            "{what}: result of {len} bytes exceeds the 16 MiB limit"
        )));
    }
    Ok(())
}

/// What an element of a list or map weighs besides its text: about the memory a value
/// takes, so that a list's weight is close to its size in memory.
pub(super) const ELEMENT_BYTES: u64 = 32;

/// Roughly how many bytes of work copying or scanning `v` is: its string bytes, and
/// [`ELEMENT_BYTES`] per element.
pub(super) fn work_bytes(v: &Value<'_>) -> u64 {
    match v {
        Value::Str(s) => s.len() as u64,
        Value::List(l) => l.iter().map(|e| ELEMENT_BYTES + work_bytes(e)).sum(),
        Value::Map(m) => m
            .iter()
            .map(|(k, e)| ELEMENT_BYTES + k.len() as u64 + work_bytes(e))
            .sum(),
        _ => 8,
    }
}

/// The entry's data with every full read (`entries`: printing, ranging over or testing `.`
/// itself) charged to the budget by its size.
pub(super) struct Metered<'d> {
    pub(super) data: &'d dyn TemplateData,
    pub(super) budget: &'d Budget,
}

impl TemplateData for Metered<'_> {
    fn field(&self, name: &str) -> Option<Cow<'_, str>> {
        self.data.field(name)
    }

    fn entries(&self) -> Vec<(String, String)> {
        let entries = self.data.entries();
        let bytes: u64 = entries
            .iter()
            .map(|(k, v)| 16 + (k.len() + v.len()) as u64)
            .sum();
        self.budget.spend_bytes_later(bytes);
        entries
    }
}
