//! Standard input as a source (`-stdin`): one pipeline fed line by line, labelled as
//! Promtail labels its stdin target.
//!
//! It must not know stages or Loki; its lines carry no acknowledgement (nothing is resumed).

use std::sync::Arc;

use tokio::io::AsyncBufReadExt;
use tokio::sync::mpsc;

use crate::config::Config;
use crate::model::entry::LineBatch;
use crate::model::labels::LabelSet;
use crate::sources::files::discovery;

/// Promtail's stdin target labels: the first job's static labels (without `__` ones), or
/// `job="stdin"` and `hostname` when no scrape config exists.
pub fn labels(config: &Config) -> LabelSet {
    match config.scrape_configs.first() {
        Some(job) => {
            let mut labels = LabelSet::new();
            for sc in &job.static_configs {
                for (k, v) in &sc.labels {
                    if !k.starts_with("__") {
                        labels.insert(k.clone(), v.clone());
                    }
                }
            }
            labels
        }
        None => LabelSet::from_pairs([
            ("job", "stdin".to_string()),
            ("hostname", discovery::hostname()),
        ]),
    }
}

/// How long a stdin line may be, as the file tailer caps its lines
/// (`target_config.max_line_bytes`; over it a line is truncated or dropped, counted in
/// `tailward_long_lines_total`).
#[derive(Clone)]
pub struct LineCap {
    pub max_bytes: usize,
    pub truncate: bool,
    pub long_lines: prometheus::IntCounterVec,
}

impl LineCap {
    pub fn of(config: &Config, long_lines: prometheus::IntCounterVec) -> Self {
        let limit = config.limits_config.max_line_size.0;
        LineCap {
            max_bytes: config.target_config.max_line_bytes.0.max(1) as usize,
            truncate: limit == 0 || config.limits_config.max_line_size_truncate,
            long_lines,
        }
    }
}

/// Reads stdin line by line until it ends. As Promtail's stdin target: trailing `\r` and
/// `\n` are trimmed and empty lines skipped. A line is never held beyond `cap` bytes: the
/// rest of an over-long line is discarded as it arrives.
pub async fn read(out: mpsc::Sender<LineBatch>, labels: Arc<LabelSet>, cap: LineCap) {
    read_from(tokio::io::stdin(), out, labels, cap).await
}

async fn read_from(
    input: impl tokio::io::AsyncRead + Unpin,
    out: mpsc::Sender<LineBatch>,
    labels: Arc<LabelSet>,
    cap: LineCap,
) {
    let mut reader = tokio::io::BufReader::new(input);
    let mut line: Vec<u8> = Vec::new();
    // Lines read from one buffer fill go to the pipeline as one batch (a batch per line made
    // stdin half the speed of a file on the same lines, issue 21); sent once the buffer is
    // used up, so no line waits for more input.
    let mut pending: Option<LineBatch> = None;
    // The line in hand passed the cap: the rest of it, up to its newline, is not kept.
    let mut over = false;
    loop {
        let chunk = match reader.fill_buf().await {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(error = %e, "reading stdin failed");
                return;
            }
        };
        if chunk.is_empty() {
            // End of input: an unfinished last line still counts, as Promtail reads it.
            if !line.is_empty() || over {
                emit(&labels, &cap, &mut line, over, &mut pending);
            }
            let _ = send(&out, &mut pending).await;
            return;
        }
        let (taken, complete) = match memchr::memchr(b'\n', chunk) {
            Some(i) => (i + 1, true),
            None => (chunk.len(), false),
        };
        let body = &chunk[..if complete { taken - 1 } else { taken }];
        if !over {
            let room = cap.max_bytes.saturating_sub(line.len());
            if body.len() > room {
                line.extend_from_slice(&body[..room]);
                over = true;
            } else {
                line.extend_from_slice(body);
            }
        }
        reader.consume(taken);
        if complete {
            emit(&labels, &cap, &mut line, over, &mut pending);
            over = false;
        }
        if reader.buffer().is_empty() && !send(&out, &mut pending).await {
            return;
        }
    }
}

/// Sends the lines gathered so far; false once the pipeline is gone.
async fn send(out: &mpsc::Sender<LineBatch>, pending: &mut Option<LineBatch>) -> bool {
    match pending.take() {
        Some(batch) => out.send(batch).await.is_ok(),
        None => true,
    }
}

/// Adds the line in hand (truncated or dropped when `over` the cap) to the pending batch.
fn emit(
    labels: &Arc<LabelSet>,
    cap: &LineCap,
    line: &mut Vec<u8>,
    over: bool,
    pending: &mut Option<LineBatch>,
) {
    if over {
        let action = if cap.truncate { "truncated" } else { "dropped" };
        cap.long_lines.with_label_values(&[action]).inc();
        if !cap.truncate {
            line.clear();
            return;
        }
    }
    while matches!(line.last(), Some(b'\r' | b'\n')) {
        line.pop();
    }
    if line.is_empty() {
        return;
    }
    let text = match std::str::from_utf8(line) {
        Ok(t) => std::borrow::Cow::Borrowed(t),
        // A cut inside a character leaves its first bytes: drop those, keep real bad bytes.
        Err(e) if over && e.error_len().is_none() => {
            std::borrow::Cow::Owned(String::from_utf8_lossy(&line[..e.valid_up_to()]).into_owned())
        }
        Err(_) => String::from_utf8_lossy(line),
    };
    pending
        .get_or_insert_with(|| LineBatch::new(labels.clone(), crate::model::clock::now()))
        .push(&text, None);
    line.clear();
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn lines_of(input: &[u8], max_bytes: usize, truncate: bool) -> (Vec<String>, u64) {
        let long_lines =
            prometheus::IntCounterVec::new(prometheus::Opts::new("l", "l"), &["action"]).unwrap();
        let cap = LineCap {
            max_bytes,
            truncate,
            long_lines: long_lines.clone(),
        };
        let (tx, mut rx) = mpsc::channel(1024);
        read_from(input, tx, Arc::new(LabelSet::new()), cap).await;
        let mut got = Vec::new();
        while let Ok(b) = rx.try_recv() {
            got.extend(b.iter().map(|(l, _)| l.to_string()));
        }
        let counted = long_lines.with_label_values(&["truncated"]).get()
            + long_lines.with_label_values(&["dropped"]).get();
        (got, counted)
    }

    #[tokio::test]
    async fn lines_read_at_once_reach_the_pipeline_as_one_batch() {
        let long_lines =
            prometheus::IntCounterVec::new(prometheus::Opts::new("l", "l"), &["action"]).unwrap();
        let cap = LineCap {
            max_bytes: 100,
            truncate: true,
            long_lines,
        };
        let (tx, mut rx) = mpsc::channel(1024);
        read_from(&b"a\nb\nc\n"[..], tx, Arc::new(LabelSet::new()), cap).await;
        let mut batches = Vec::new();
        while let Ok(b) = rx.try_recv() {
            batches.push(b.iter().map(|(l, _)| l.to_string()).collect::<Vec<_>>());
        }
        assert_eq!(batches, [vec!["a", "b", "c"]]);
    }

    #[tokio::test]
    async fn crlf_is_trimmed_and_empty_lines_skipped_as_promtail_does() {
        let (got, _) = lines_of(b"a\r\n\r\n\nb\r\r\nc", 100, true).await;
        assert_eq!(got, ["a", "b", "c"]);
    }

    #[tokio::test]
    async fn an_over_long_line_is_truncated_or_dropped_and_counted_without_holding_it() {
        let mut input = b"short\n".to_vec();
        input.extend(std::iter::repeat_n(b'x', 100_000));
        input.extend(b"\nafter\n");
        let (got, counted) = lines_of(&input, 10, true).await;
        assert_eq!(got, ["short", "xxxxxxxxxx", "after"]);
        assert_eq!(counted, 1);
        let (got, counted) = lines_of(&input, 10, false).await;
        assert_eq!(got, ["short", "after"]);
        assert_eq!(counted, 1);
    }
}
