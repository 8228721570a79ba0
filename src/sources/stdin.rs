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

pub async fn read(out: mpsc::Sender<LineBatch>, labels: Arc<LabelSet>) {
    let mut reader = tokio::io::BufReader::new(tokio::io::stdin());
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match reader.read_until(b'\n', &mut buf).await {
            Ok(0) => return,
            Ok(_) => {
                if buf.last() == Some(&b'\n') {
                    buf.pop();
                }
                let mut batch = LineBatch::new(labels.clone(), crate::model::clock::now());
                batch.push(&String::from_utf8_lossy(&buf), None);
                if out.send(batch).await.is_err() {
                    return;
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "reading stdin failed");
                return;
            }
        }
    }
}
