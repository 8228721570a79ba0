//! The dry-run sink: entries printed to stdout in Promtail's `-dry-run` format instead of
//! being pushed: `<timestamp>\t<labels>\t<line>`, timestamp as Go's
//! `2006-01-02T15:04:05.999999999-0700`, labels as `{a="1", b="2"}`.
//!
//! Promtail writes through a `text/tabwriter` (tab width 8, padding 0, tab padding) flushed
//! after each line, so a cell whose width is a multiple of 8 runes is followed by no tab at
//! all. We reproduce that byte for byte, since users diff this output.
//!
//! With `-dry-run.extracted` (a tailward flag), each entry's line is followed by two more,
//! each starting with a tab (shown as `→` here):
//!
//! ```text
//! 2024-01-15T10:30:45.12+0100→{job="app"}→{"level":"info","cid":"abc"}
//! →structured_metadata: {correlation_id="abc"}
//! →extracted: {cid="abc", filename="/var/log/app.log", job="app", level="info"}
//! ```
//!
//! `structured_metadata` lists the entry's pairs in the order stages attached them,
//! `extracted` the extracted map as the last stage left it (labels it was seeded with
//! included), sorted by key; both `{}` when empty. Values are quoted as Go quotes label
//! values; a key that is not a valid label name (a JSON key such as `@timestamp`) is quoted
//! too. Values print as Go's `%v` prints them: numbers in their shortest form, booleans
//! `true`/`false`, null `<nil>`, objects and arrays as compact JSON. The first line stays
//! Promtail's, byte for byte.
//! It must not know about files or Loki.

use std::io::Write;

use tokio::task::JoinHandle;

use crate::client::queue::{self, QueueSender};
use crate::model::ack::AckSender;
use crate::model::entry::{Entry, Outgoing};
use crate::model::labels::{is_valid_label_name, quote_go_into};
use crate::pipeline::go::time::format_dry_run;
use crate::pipeline::take_extracted;

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
/// finalizer must not keep every line it issued. `show_extracted` (`-dry-run.extracted`)
/// prints each entry's structured metadata and extracted values after it.
pub fn spawn(acks: AckSender, show_extracted: bool) -> DryRunHandle {
    let (tx, mut rx) = queue::bounded(DRY_RUN_QUEUE_BYTES, None);
    let task = tokio::spawn(async move {
        let mut line = String::new();
        while let Some(batch) = rx.recv().await {
            let mut out = std::io::stdout().lock();
            let tokens: Vec<_> = batch.iter().filter_map(Outgoing::ack).collect();
            for item in batch {
                if let Outgoing::Entry { mut entry, .. } = item {
                    line.clear();
                    let extracted = take_extracted(&mut entry.structured_metadata);
                    render(&entry, &mut line);
                    if show_extracted {
                        render_extras(&entry.structured_metadata, &extracted, &mut line);
                    }
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

/// Appends the `-dry-run.extracted` lines of an entry (see the module docs).
pub fn render_extras(
    structured_metadata: &[(String, String)],
    extracted: &[(String, String)],
    out: &mut String,
) {
    out.push_str("\tstructured_metadata: ");
    render_pairs(structured_metadata, out);
    out.push_str("\n\textracted: ");
    render_pairs(extracted, out);
    out.push('\n');
}

fn render_pairs(pairs: &[(String, String)], out: &mut String) {
    out.push('{');
    for (i, (k, v)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        if is_valid_label_name(k) {
            out.push_str(k);
        } else {
            quote_go_into(k, out);
        }
        out.push('=');
        quote_go_into(v, out);
    }
    out.push('}');
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
    fn extras_list_metadata_in_order_and_quote_keys_that_are_not_label_names() {
        let mut out = String::new();
        render_extras(
            &[("trace".into(), "b".into()), ("cid".into(), "a\"1".into())],
            &[("@timestamp".into(), "t".into()), ("n".into(), "3".into())],
            &mut out,
        );
        assert_eq!(
            out,
            "\tstructured_metadata: {trace=\"b\", cid=\"a\\\"1\"}\n\textracted: {\"@timestamp\"=\"t\", n=\"3\"}\n"
        );
        let mut out = String::new();
        render_extras(&[], &[], &mut out);
        assert_eq!(out, "\tstructured_metadata: {}\n\textracted: {}\n");
    }

    #[test]
    fn cells_at_a_multiple_of_eight_get_no_tab() {
        let mut out = String::new();
        tabwriter_line("12345678\tx\t\ty", &mut out);
        assert_eq!(out, "12345678x\ty");
    }
}
