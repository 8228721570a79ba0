//! Two clients, one of them dead: with `queue.when_full: drop` the live Loki gets every line
//! while the dead client's queue drops (counted) what it cannot take; with a disk buffer on
//! the dead client (spill), the live Loki gets every line and the dead one gets them all once
//! it comes back. Under the default (`block`), Promtail's behaviour, the dead client holds
//! reading up for both, which is why the multi-client example uses the buffer.

use std::time::Duration;

use crate::support::agent_process::{AgentProcess, file_job_config, write_config};
use crate::support::numbered_lines::{Tally, append, number_of, settled_lines};
use crate::support::receiver::Receiver;

/// Far more than the dead client holds (a 16 KiB batch in hand, a 64 KiB queue), so its
/// policy is what is tested.
const LINES: usize = 4000;

/// The second client (`dead`), with its queue and `extra` keys (4-space indented).
fn second_client(url: &str, extra: &str) -> String {
    format!(
        "  - url: {url}\n    name: dead\n    batchwait: 100ms\n    batchsize: 16KiB\n    backoff_config:\n      min_period: 50ms\n      max_period: 200ms\n      max_retries: 0\n    queue:\n      max_bytes: 64KiB\n{extra}"
    )
}

fn lines_of(receiver: &Receiver) -> Vec<String> {
    receiver.received().into_iter().map(|e| e.line).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_when_full_drop_the_live_client_gets_every_line() {
    let live = Receiver::start().await;
    let dead = Receiver::start().await;
    dead.set_down(true).await;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    let cfg = file_job_config(
        &live.url(),
        &dir.path().join("positions.yaml"),
        &log.display().to_string(),
        &second_client(&dead.url(), "      when_full: drop\n      drop_after: 1s\n"),
        "      []",
    );
    let agent = AgentProcess::start(&write_config(dir.path(), &cfg), &[]);
    append(&log, 0, LINES);
    let got = settled_lines(
        &live,
        LINES,
        Duration::from_secs(30),
        Duration::from_millis(500),
    )
    .await;
    let tally = Tally::of(got.iter().map(String::as_str), 0..LINES, number_of);
    assert!(tally.exactly_once(), "live client: {tally}");
    let dropped = format!(
        "promtail_dropped_entries_total{{host=\"{}\",reason=\"queue_full\",tenant=\"\"}}",
        dead.addr()
    );
    assert!(
        agent.metric(&dropped) > 0.0,
        "the dead client dropped what it could not take:\n{}",
        agent.stderr_text()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_disk_buffer_on_the_dead_client_both_get_every_line() {
    let live = Receiver::start().await;
    let dead = Receiver::start().await;
    dead.set_down(true).await;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    let wal = dir.path().join("wal-dead");
    let cfg = file_job_config(
        &live.url(),
        &dir.path().join("positions.yaml"),
        &log.display().to_string(),
        &second_client(
            &dead.url(),
            &format!(
                "    wal:\n      enabled: true\n      dir: {}\n",
                wal.display()
            ),
        ),
        "      []",
    );
    let _agent = AgentProcess::start(&write_config(dir.path(), &cfg), &[]);
    append(&log, 0, LINES);
    let got = settled_lines(
        &live,
        LINES,
        Duration::from_secs(30),
        Duration::from_millis(500),
    )
    .await;
    let tally = Tally::of(got.iter().map(String::as_str), 0..LINES, number_of);
    assert!(
        tally.exactly_once(),
        "live client while the other is dead: {tally}"
    );
    assert!(lines_of(&dead).is_empty());
    // The dead Loki comes back: everything the buffer held arrives, once.
    dead.set_down(false).await;
    let got = settled_lines(
        &dead,
        LINES,
        Duration::from_secs(60),
        Duration::from_millis(500),
    )
    .await;
    let tally = Tally::of(got.iter().map(String::as_str), 0..LINES, number_of);
    assert!(tally.exactly_once(), "the client that came back: {tally}");
}
