//! What a kill -9 costs: lines Loki had not acknowledged are sent again, and nothing Loki
//! acknowledged more than a moment before the kill (positions are written as
//! acknowledgements arrive, not only every `positions.sync_period`). With a disk buffer, a
//! line is in the buffer or read again from the file after the restart, never both.
//!
//! The statistical figure (20 trials of three kills while writing 2,000 lines/s) is
//! `benches/kill_trials.rs`; these tests pin the mechanisms it measures.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::support::agent_process::{AgentProcess, file_job_config, write_config};
use crate::support::numbered_lines::{Tally, append, number_of, settled_lines};
use crate::support::receiver::Receiver;

fn config(dir: &Path, receiver: &Receiver, client_extra: &str) -> PathBuf {
    let text = file_job_config(
        &receiver.url(),
        &dir.join("positions.yaml"),
        &dir.join("app.log").display().to_string(),
        client_extra,
        "      - static_labels:\n          env: test\n",
    )
    // Far longer than any test: a save seen here was prompted by acknowledgements.
    .replace(
        "positions:\n  filename: ",
        "positions:\n  sync_period: 1h\n  filename: ",
    )
    .replace("  sync_period: 200ms\n", "")
    .replace("max_retries: 20", "max_retries: 0");
    write_config(dir, &text)
}

fn saved_offset(dir: &Path) -> Option<u64> {
    let text = std::fs::read_to_string(dir.join("positions.yaml")).ok()?;
    let key = format!("{}: \"", dir.join("app.log").display());
    text.split(&key).nth(1)?.split('"').next()?.parse().ok()
}

/// Issue 16 item 3: with positions written only every `sync_period`, a kill re-sent up to
/// that much of what Loki had acknowledged (105% duplicates in the trials).
#[tokio::test(flavor = "multi_thread")]
async fn a_kill_after_delivery_resends_nothing_though_sync_period_is_an_hour() {
    const LINES: usize = 500;
    let receiver = Receiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), &receiver, "");
    let log = dir.path().join("app.log");
    append(&log, 0, LINES);
    let size = std::fs::metadata(&log).unwrap().len();
    let agent = AgentProcess::start(&cfg, &[]);
    receiver
        .wait_for_entries(LINES, Duration::from_secs(20))
        .await;
    assert!(
        agent.wait_until(Duration::from_secs(10), |_| saved_offset(dir.path())
            == Some(size)),
        "the acknowledged position is on disk long before sync_period: {:?}",
        std::fs::read_to_string(dir.path().join("positions.yaml"))
    );
    agent.kill_hard();
    let agent = AgentProcess::start(&cfg, &[]);
    append(&log, LINES, LINES + 10);
    let lines = settled_lines(
        &receiver,
        LINES + 10,
        Duration::from_secs(20),
        Duration::from_millis(500),
    )
    .await;
    let tally = Tally::of(lines.iter().map(String::as_str), 0..LINES + 10, number_of);
    assert!(tally.exactly_once(), "{tally}\n{}", agent.stderr_text());
}
