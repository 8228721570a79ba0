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
    /// Empty, or one per line: for sources whose lines arrive with their own timestamp and
    /// structured metadata (the push API). Lines without take `read_time` and no metadata.
    pub stamps: Vec<LineStamp>,
}

/// A line's own timestamp and Loki structured metadata, as a push source received them.
#[derive(Clone, Debug)]
pub struct LineStamp {
    pub timestamp: DateTime<FixedOffset>,
    pub structured_metadata: Vec<(String, String)>,
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
            stamps: Vec::new(),
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
            stamps: Vec::new(),
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

    /// Appends a line with its own timestamp and structured metadata. A batch holds either
    /// only stamped lines or none.
    pub fn push_stamped(&mut self, line: &str, ack: Option<AckToken>, stamp: LineStamp) {
        debug_assert_eq!(self.stamps.len(), self.lines.len(), "every line stamped");
        self.push(line, ack);
        self.stamps.push(stamp);
    }

    /// Line `i`'s timestamp and structured metadata: its stamp's, or the batch's read time.
    pub fn stamp(&self, i: usize) -> (DateTime<FixedOffset>, &[(String, String)]) {
        match self.stamps.get(i) {
            Some(s) => (s.timestamp, &s.structured_metadata),
            None => (self.read_time, &[]),
        }
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
