//! The units that travel down the one-way flow: raw lines from a tailer, and finished entries
//! from a pipeline to the clients.
//!
//! Owns the shapes only. It must not hold behaviour of the tailer, stages or client.

use std::sync::Arc;

use chrono::{DateTime, FixedOffset};

use crate::model::ack::AckToken;
use crate::model::labels::LabelSet;

/// A finished log entry as Loki receives it.
#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    /// Stream labels; may still hold the reserved `__tenant_id__`, which the client strips.
    pub labels: LabelSet,
    pub timestamp: DateTime<FixedOffset>,
    pub line: String,
    /// Loki structured metadata (non-indexed labels), in the order stages attached them.
    pub structured_metadata: Vec<(String, String)>,
}

/// What a pipeline hands to the clients: an entry to ship, or an acknowledgement for input the
/// pipeline consumed on purpose without shipping (dropped and counted) so positions can still
/// move past it once everything before it is delivered.
#[derive(Clone, Debug)]
pub enum Outgoing {
    Entry { entry: Entry, ack: Option<AckToken> },
    Consumed { ack: AckToken },
}

impl Outgoing {
    pub fn ack(&self) -> Option<AckToken> {
        match self {
            Outgoing::Entry { ack, .. } => *ack,
            Outgoing::Consumed { ack } => Some(*ack),
        }
    }
}

/// A chunk of complete lines read from one source, in order.
///
/// Lines are stored back to back in one string with their end positions, so a tailer read
/// becomes one allocation however many lines it holds.
#[derive(Debug)]
pub struct LineBatch {
    /// Target labels (after relabeling) plus `filename`; shared by every line of the source.
    pub labels: Arc<LabelSet>,
    pub text: String,
    pub lines: Vec<LineSpan>,
    pub read_time: DateTime<FixedOffset>,
    /// Each line's own timestamp, for sources whose lines carry one (Docker's log stream);
    /// empty when every line takes `read_time`.
    pub timestamps: Vec<DateTime<FixedOffset>>,
}

/// One line inside a [`LineBatch`]: its byte range in `text` and where it ends in the source.
#[derive(Clone, Copy, Debug)]
pub struct LineSpan {
    pub start: u32,
    pub end: u32,
    pub ack: Option<AckToken>,
}

impl LineBatch {
    pub fn new(labels: Arc<LabelSet>, read_time: DateTime<FixedOffset>) -> Self {
        Self {
            labels,
            text: String::new(),
            lines: Vec::new(),
            read_time,
            timestamps: Vec::new(),
        }
    }

    /// An empty batch with room for `text_bytes` of lines: a batch filled by growing would
    /// hold up to twice what it carries while it waits in the pipeline's input.
    pub fn with_capacity(
        labels: Arc<LabelSet>,
        read_time: DateTime<FixedOffset>,
        text_bytes: usize,
    ) -> Self {
        Self {
            labels,
            text: String::with_capacity(text_bytes),
            lines: Vec::new(),
            read_time,
            timestamps: Vec::new(),
        }
    }

    /// Appends a line (without its newline).
    pub fn push(&mut self, line: &str, ack: Option<AckToken>) {
        let start = self.text.len() as u32;
        self.text.push_str(line);
        self.lines.push(LineSpan {
            start,
            end: self.text.len() as u32,
            ack,
        });
    }

    /// Appends a line with its own timestamp. A batch either gives every line its own or
    /// none: lines pushed with [`Self::push`] before would take the wrong one.
    pub fn push_at(&mut self, line: &str, ack: Option<AckToken>, timestamp: DateTime<FixedOffset>) {
        debug_assert_eq!(self.timestamps.len(), self.lines.len());
        self.push(line, ack);
        self.timestamps.push(timestamp);
    }

    /// Line `index`'s timestamp: its own, or the batch's read time.
    pub fn timestamp_of(&self, index: usize) -> DateTime<FixedOffset> {
        self.timestamps
            .get(index)
            .copied()
            .unwrap_or(self.read_time)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, Option<AckToken>)> {
        self.lines
            .iter()
            .map(|s| (&self.text[s.start as usize..s.end as usize], s.ack))
    }

    pub fn len(&self) -> usize {
        self.lines.len()
    }

    pub fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }
}
