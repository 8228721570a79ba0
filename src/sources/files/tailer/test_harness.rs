//! The tail test harness, shared by the unit tests of every tailer module and of
//! [`super::decompress`]: a tailer set over a temporary directory whose lines are collected
//! and acknowledged at once, as a client that delivers at once would.
//!
//! Owns only test scaffolding; it must not assert anything itself beyond "lines arrive".

use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};

use super::{FileAccess, PollConfig, TailOptions, TailerSet};
use crate::delivery::positions::{Positions, PositionsView};
use crate::metrics::Metrics;
use crate::model::entry::LineBatch;

/// Fast polls, short waits and a 64-byte line cap: what the unit tests are tuned to.
pub(super) fn opts() -> TailOptions {
    TailOptions {
        poll: PollConfig {
            min: Duration::from_millis(10),
            max: Duration::from_millis(40),
        },
        rotate_wait: Duration::from_millis(200),
        partial_line_wait: Duration::from_millis(300),
        max_line_bytes: 64,
        truncate_long_lines: true,
        tail_from_end: false,
        ignore_older_than: None,
        encoding: None,
        per_file_metrics: true,
        decompression: None,
        follow_symlinks_outside: true,
    }
}

/// A tailer set whose every line is acknowledged as soon as it is collected.
pub(super) struct Harness {
    pub(super) set: TailerSet,
    pub(super) rx: mpsc::Receiver<LineBatch>,
    /// The store, as the agent holds it (`pos.yaml` in the directory, never saved).
    pub(super) positions: Positions,
    /// What the tailers see of it.
    pub(super) view: PositionsView,
    pub(super) acks: crate::model::ack::AckSender,
    pub(super) metrics: Arc<Metrics>,
    _stop: watch::Sender<bool>,
}

pub(super) fn harness(dir: &Path, opts: TailOptions) -> Harness {
    harness_with(dir, opts, true, 0)
}

/// A harness with inotify on or off and at most `max_open_files` open (0: no bound).
pub(super) fn harness_with(
    dir: &Path,
    opts: TailOptions,
    inotify: bool,
    max_open_files: usize,
) -> Harness {
    let positions = Positions::open(&dir.join("pos.yaml"), false, 1, false).unwrap();
    let (tx, rx) = mpsc::channel(16);
    let (stop_tx, stop_rx) = watch::channel(false);
    let (factory, ack_rx) = crate::model::ack::channel();
    tokio::spawn(positions.clone().run_acks(ack_rx));
    let metrics = Arc::new(Metrics::new());
    Harness {
        set: TailerSet::new(
            positions.view(),
            tx,
            metrics.clone(),
            opts,
            stop_rx,
            FileAccess::new(inotify, max_open_files, &metrics),
        ),
        rx,
        view: positions.view(),
        positions,
        acks: factory.for_client(0),
        metrics,
        _stop: stop_tx,
    }
}

/// Collects `n` lines with their acknowledgement offsets, acknowledging them.
pub(super) async fn collect(h: &mut Harness, n: usize) -> Vec<(String, u64)> {
    let mut got = Vec::new();
    while got.len() < n {
        let b = tokio::time::timeout(Duration::from_secs(5), h.rx.recv())
            .await
            .expect("lines arrive")
            .expect("channel open");
        let mut tokens = Vec::new();
        for (line, ack) in b.iter() {
            got.push((line.to_string(), ack.map(|a| a.offset).unwrap_or(0)));
            tokens.extend(ack);
        }
        h.acks.settle(tokens);
    }
    got
}

/// Fails if a batch arrives within `wait`.
pub(super) async fn nothing_more(rx: &mut mpsc::Receiver<LineBatch>, wait: Duration) {
    if let Ok(Some(b)) = tokio::time::timeout(wait, rx.recv()).await {
        let lines: Vec<&str> = b.iter().map(|(l, _)| l).collect();
        panic!("unexpected lines: {lines:?}");
    }
}

pub(super) fn append(path: &Path, text: &str) {
    append_bytes(path, text.as_bytes());
}

pub(super) fn append_bytes(path: &Path, bytes: &[u8]) {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap()
        .write_all(bytes)
        .unwrap();
}
