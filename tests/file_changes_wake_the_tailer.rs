//! Change detection: with polls and re-globs 30s apart, an appended line, a new file and a
//! file in a new directory still arrive at once, because inotify wakes the tailer (and
//! discovery); with inotify off
//! (`target_config.inotify: false`) the agent polls as Promtail does and lines still arrive.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::support::agent_process::{
    AgentProcess, file_job_config, has_inotify_watch, write_config,
};
use crate::support::numbered_lines::{Tally, append, number_of, settled_lines};
use crate::support::receiver::Receiver;

/// Longer than any test here waits for a line: a line that arrives came from an event.
const POLL: &str = "30s";

fn config(dir: &Path, receiver: &Receiver, glob: &str, poll: &str, inotify: bool) -> PathBuf {
    let yaml = file_job_config(
        &receiver.url(),
        &dir.join("positions.yaml"),
        glob,
        "",
        "      - static_labels:\n          env: test\n",
    )
    .replace(
        "min_poll_frequency: 25ms",
        &format!("min_poll_frequency: {poll}"),
    )
    .replace(
        "max_poll_frequency: 100ms",
        &format!("max_poll_frequency: {poll}"),
    )
    .replace(
        "target_config:\n  sync_period: 500ms",
        &format!("target_config:\n  sync_period: {POLL}\n  inotify: {inotify}"),
    );
    write_config(dir, &yaml)
}

/// Waits for `n` entries, but only until `deadline`: past it a poll could have found them.
async fn arrive_before(receiver: &Receiver, n: usize, deadline: Instant) -> usize {
    let left = deadline.saturating_duration_since(Instant::now());
    receiver.wait_for_entries(n, left).await.len()
}

#[tokio::test(flavor = "multi_thread")]
async fn appended_line_arrives_without_waiting_for_the_poll() {
    let receiver = Receiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    append(&log, 0, 10);
    let cfg = config(
        dir.path(),
        &receiver,
        &log.display().to_string(),
        POLL,
        true,
    );
    // The tailer's first poll after reading the file is 30s after it went to sleep, which
    // is after this instant.
    let started = Instant::now();
    let agent = AgentProcess::start(&cfg, &[]);
    receiver.wait_for_entries(10, Duration::from_secs(20)).await;
    append(&log, 10, 20);
    let got = arrive_before(&receiver, 20, started + Duration::from_secs(25)).await;
    let (_, stderr) = agent.terminate();
    assert_eq!(got, 20, "the appended lines waited for a poll:\n{stderr}");
    let lines: Vec<String> = receiver.received().into_iter().map(|e| e.line).collect();
    let tally = Tally::of(lines.iter().map(String::as_str), 0..20, number_of);
    assert!(tally.exactly_once(), "{tally}");
}

#[tokio::test(flavor = "multi_thread")]
async fn new_file_is_picked_up_without_waiting_for_the_sync_period() {
    let receiver = Receiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    std::fs::create_dir(&logs).unwrap();
    append(&logs.join("first.log"), 0, 10);
    let glob = format!("{}/*.log", logs.display());
    let cfg = config(dir.path(), &receiver, &glob, POLL, true);
    let started = Instant::now();
    let agent = AgentProcess::start(&cfg, &[]);
    receiver.wait_for_entries(10, Duration::from_secs(20)).await;
    append(&logs.join("second.log"), 10, 20);
    let got = arrive_before(&receiver, 20, started + Duration::from_secs(25)).await;
    let (_, stderr) = agent.terminate();
    assert_eq!(got, 20, "the new file waited for a re-glob:\n{stderr}");
}

#[tokio::test(flavor = "multi_thread")]
async fn file_in_a_new_directory_is_picked_up_without_waiting_for_the_sync_period() {
    let receiver = Receiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    std::fs::create_dir_all(logs.join("a")).unwrap();
    append(&logs.join("a/first.log"), 0, 10);
    let glob = format!("{}/*/*.log", logs.display());
    let cfg = config(dir.path(), &receiver, &glob, POLL, true);
    let started = Instant::now();
    let agent = AgentProcess::start(&cfg, &[]);
    receiver.wait_for_entries(10, Duration::from_secs(20)).await;
    std::fs::create_dir(logs.join("b")).unwrap();
    // The file must appear once the new directory is watched: before that, only a re-glob
    // could find it.
    assert!(
        agent.wait_until(Duration::from_secs(10), |a| has_inotify_watch(
            a.pid(),
            &logs.join("b")
        )),
        "the new directory was never watched:\n{}",
        agent.stderr_text()
    );
    append(&logs.join("b/second.log"), 10, 20);
    let got = arrive_before(&receiver, 20, started + Duration::from_secs(25)).await;
    let (_, stderr) = agent.terminate();
    assert_eq!(
        got, 20,
        "the file in the new directory waited for a re-glob:\n{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn without_inotify_appended_lines_arrive_by_polling() {
    let receiver = Receiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    append(&log, 0, 10);
    let cfg = config(
        dir.path(),
        &receiver,
        &log.display().to_string(),
        "100ms",
        false,
    );
    let agent = AgentProcess::start(&cfg, &[]);
    receiver.wait_for_entries(10, Duration::from_secs(20)).await;
    append(&log, 10, 20);
    let lines = settled_lines(
        &receiver,
        20,
        Duration::from_secs(20),
        Duration::from_millis(500),
    )
    .await;
    let (_, stderr) = agent.terminate();
    let tally = Tally::of(lines.iter().map(String::as_str), 0..20, number_of);
    assert!(tally.exactly_once(), "{tally}\n{stderr}");
    assert!(
        stderr.contains("target_config.inotify is off"),
        "the agent says it polls:\n{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn symlinked_file_is_polled_as_promtail_polls_because_its_writes_raise_no_event() {
    let receiver = Receiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    let pods = dir.path().join("pods");
    std::fs::create_dir(&logs).unwrap();
    std::fs::create_dir(&pods).unwrap();
    // As /var/log/containers/*.log link into /var/log/pods: the link's directory is watched,
    // the target's writes happen elsewhere.
    let target = pods.join("0.log");
    append(&target, 0, 10);
    std::os::unix::fs::symlink(&target, logs.join("app.log")).unwrap();
    // Promtail's own poll range; the safety net for event-watched files is 10 s.
    let cfg = config(
        dir.path(),
        &receiver,
        &logs.join("*.log").display().to_string(),
        "250ms",
        true,
    );
    let agent = AgentProcess::start(&cfg, &[]);
    receiver.wait_for_entries(10, Duration::from_secs(20)).await;
    let appended = Instant::now();
    append(&target, 10, 20);
    let got = arrive_before(&receiver, 20, appended + Duration::from_secs(5)).await;
    let (_, stderr) = agent.terminate();
    assert_eq!(
        got, 20,
        "the symlinked file's lines waited for the safety net:\n{stderr}"
    );
    let lines: Vec<String> = receiver.received().into_iter().map(|e| e.line).collect();
    let tally = Tally::of(lines.iter().map(String::as_str), 0..20, number_of);
    assert!(tally.exactly_once(), "{tally}");
}
