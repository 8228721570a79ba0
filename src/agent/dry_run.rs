//! The dry-run sink: entries printed to stdout in Promtail's `-dry-run` format instead of
//! being pushed: `<timestamp>\t<labels>\t<line>`, timestamp as Go's
//! `2006-01-02T15:04:05.999999999-0700`, labels as `{a="1", b="2"}`.
//!
//! Promtail writes through a `text/tabwriter` (tab width 8, padding 0, tab padding) flushed
//! after each line, so a cell whose width is a multiple of 8 runes is followed by no tab at
//! all. We reproduce that byte for byte, since users diff this output.
//! It must not know about files or Loki.

use std::io::Write;

use tokio::task::JoinHandle;

use crate::client::queue::{self, QueueSender};
use crate::model::ack::AckSender;
use crate::model::entry::{Entry, Outgoing};
use crate::pipeline::go::time::format_dry_run;

/// Output goes to a terminal or a pipe; a few MiB in flight is plenty.
const DRY_RUN_QUEUE_BYTES: u64 = 4 * 1024 * 1024;

pub struct DryRunHandle {
    tx: QueueSender,
    task: JoinHandle<()>,
}

impl DryRunHandle {
    pub fn sender(&self) -> QueueSender {
        self.tx.clone()
    }

    pub async fn finish(self) {
        drop(self.tx);
        let _ = self.task.await;
    }
}

/// `acks` settles what was printed: positions are not saved in a dry run, but each file's
/// finalizer must not keep every line it issued.
pub fn spawn(acks: AckSender) -> DryRunHandle {
    let (tx, mut rx) = queue::bounded(DRY_RUN_QUEUE_BYTES, None);
    let task = tokio::spawn(async move {
        let mut line = String::new();
        while let Some(batch) = rx.recv().await {
            let mut out = std::io::stdout().lock();
            let tokens: Vec<_> = batch.iter().filter_map(Outgoing::ack).collect();
            for item in batch {
                if let Outgoing::Entry { entry, .. } = item {
                    line.clear();
                    render(&entry, &mut line);
                    if let Err(e) = out.write_all(line.as_bytes()) {
                        tracing::error!(error = %e, "writing dry-run output failed");
                        return;
                    }
                }
            }
            let _ = out.flush();
            acks.settle(tokens);
        }
    });
    DryRunHandle { tx, task }
}

/// Appends one entry's dry-run line (with its newline) to `out`.
pub fn render(entry: &Entry, out: &mut String) {
    let mut raw = String::new();
    raw.push_str(&format_dry_run(&entry.timestamp));
    raw.push('\t');
    entry.labels.render_into(&mut raw);
    raw.push('\t');
    raw.push_str(&entry.line);
    tabwriter_line(&raw, out);
    out.push('\n');
}

/// One line through Go's tabwriter(minwidth 0, tabwidth 8, padding 0, padchar '\t'): every
/// tab-terminated cell is padded with tabs to the next multiple of 8 runes; one already at a
/// multiple gets none.
fn tabwriter_line(raw: &str, out: &mut String) {
    let mut cells = raw.split('\t').peekable();
    while let Some(cell) = cells.next() {
        out.push_str(cell);
        if cells.peek().is_some() && cell.chars().count() % 8 != 0 {
            out.push('\t');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::labels::LabelSet;
    use chrono::DateTime;

    #[test]
    fn renders_promtail_dry_run_line() {
        let entry = Entry {
            labels: LabelSet::from_pairs([("job", "app"), ("level", "info")]),
            timestamp: DateTime::parse_from_rfc3339("2024-01-15T10:30:45.120+01:00").unwrap(),
            line: "hello".into(),
            structured_metadata: vec![],
        };
        let mut out = String::new();
        render(&entry, &mut out);
        assert_eq!(
            out,
            "2024-01-15T10:30:45.12+0100\t{job=\"app\", level=\"info\"}\thello\n"
        );
    }

    #[test]
    fn cells_at_a_multiple_of_eight_get_no_tab() {
        let mut out = String::new();
        tabwriter_line("12345678\tx\t\ty", &mut out);
        assert_eq!(out, "12345678x\ty");
    }
}
