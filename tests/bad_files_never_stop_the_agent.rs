//! Whatever else a job's glob matches — a binary file, a file the agent may not read, a
//! directory, a FIFO, a symlink loop, files that vanish between the glob and the open, a tailed
//! file replaced by a FIFO — the agent keeps running, the other files of the job keep arriving
//! exactly once, errors are counted, and SIGTERM still stops it.
//!
//! The agent runs as `nobody` when the tests run as root, so a mode-000 file is unreadable to
//! it as it would be on a host.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::support::agent_process::{file_job_config, write_config};
use crate::support::numbered_lines::{Tally, append, number_of};
use crate::support::receiver::Receiver;
use crate::support::unprivileged_agent::{UnprivilegedAgent, hand_over_dir, running_as_root};
use crate::support::{eventually, wait_until, watch_for_stragglers};

struct Job {
    /// Held for its lifetime: the directory is deleted on drop.
    _dir: tempfile::TempDir,
    logs: PathBuf,
    receiver: Receiver,
    config: PathBuf,
}

/// A job tailing `<dir>/logs/*.log`; `target_extra` adds `target_config` keys (2 spaces).
async fn job(target_extra: &str) -> Job {
    let receiver = Receiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    hand_over_dir(dir.path());
    let logs = dir.path().join("logs");
    std::fs::create_dir(&logs).unwrap();
    let yaml = file_job_config(
        &receiver.url(),
        &dir.path().join("positions.yaml"),
        &format!("{}/*.log", logs.display()),
        "",
        "      - static_labels:\n          env: test\n",
    )
    .replace(
        "target_config:\n  sync_period: 500ms\n",
        &format!("target_config:\n  sync_period: 500ms\n{target_extra}"),
    );
    let config = write_config(dir.path(), &yaml);
    Job {
        _dir: dir,
        logs,
        receiver,
        config,
    }
}

/// Lines received from `file`.
fn lines_of(receiver: &Receiver, file: &Path) -> Vec<String> {
    let name = file.display().to_string();
    receiver
        .received()
        .into_iter()
        .filter(|e| e.labels.get("filename") == Some(&name))
        .map(|e| e.line)
        .collect()
}

/// Waits until `n` lines of `file` arrived (or `timeout`), then a little longer so late
/// repeats are seen, and tallies them against `0..n`.
async fn tally_of(receiver: &Receiver, file: &Path, n: usize, timeout: Duration) -> Tally {
    eventually(timeout, || lines_of(receiver, file).len() >= n).await;
    watch_for_stragglers(Duration::from_millis(500)).await;
    let lines = lines_of(receiver, file);
    Tally::of(lines.iter().map(String::as_str), 0..n, number_of)
}

fn wait_for_metric(agent: &UnprivilegedAgent, series: &str, at_least: f64) -> bool {
    wait_until(Duration::from_secs(10), || agent.metric(series) >= at_least)
}

/// The real user id of a process, from `/proc/<pid>/status`.
fn process_uid(pid: u32) -> u32 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap()
}

fn mkfifo(path: &Path) {
    let status = std::process::Command::new("mkfifo")
        .arg(path)
        .status()
        .expect("run mkfifo");
    assert!(status.success(), "mkfifo {}", path.display());
}

/// Deterministic bytes covering every value: NULs, invalid UTF-8, control bytes, newlines.
fn binary_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.max(1);
    (0..len)
        .map(|_| {
            // xorshift64
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

fn stop_cleanly(agent: UnprivilegedAgent) {
    let (status, log) = agent.terminate_within(Duration::from_secs(10));
    assert!(
        status.is_some_and(|s| s.success()),
        "agent did not stop cleanly on SIGTERM ({status:?}):\n{log}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn binary_file_is_read_with_bytes_replaced_and_the_other_files_keep_arriving() {
    let job = job("").await;
    let good = job.logs.join("good.log");
    let binary = job.logs.join("binary.log");
    append(&good, 0, 100);
    std::fs::write(&binary, binary_bytes(64 * 1024, 7)).unwrap();
    let mut agent = UnprivilegedAgent::start(&job.config);
    assert_eq!(
        tally_of(&job.receiver, &good, 100, Duration::from_secs(20))
            .await
            .missing
            .len(),
        0,
        "good lines before more binary"
    );
    // More binary while running, then more good lines.
    {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&binary)
            .unwrap();
        f.write_all(&binary_bytes(64 * 1024, 11)).unwrap();
    }
    append(&good, 100, 200);
    let tally = tally_of(&job.receiver, &good, 200, Duration::from_secs(20)).await;
    assert!(tally.exactly_once(), "{tally}\n{}", agent.stderr_text());
    assert!(
        !lines_of(&job.receiver, &binary).is_empty(),
        "the binary file's lines were shipped"
    );
    assert!(
        agent.metric("tailward_invalid_utf8_lines_total") > 0.0,
        "invalid UTF-8 counted"
    );
    assert!(agent.alive());
    stop_cleanly(agent);
}

#[tokio::test(flavor = "multi_thread")]
async fn unreadable_file_is_counted_and_read_once_permission_is_granted() {
    let job = job("").await;
    let good = job.logs.join("good.log");
    let locked = job.logs.join("locked.log");
    append(&good, 0, 100);
    append(&locked, 0, 50);
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o000)).unwrap();
    let mut agent = UnprivilegedAgent::start(&job.config);
    if running_as_root() {
        let uid = process_uid(agent.pid().unwrap());
        assert_ne!(
            uid, 0,
            "the agent runs unprivileged, so mode 000 applies to it"
        );
    }
    let tally = tally_of(&job.receiver, &good, 100, Duration::from_secs(20)).await;
    assert!(tally.exactly_once(), "{tally}");
    assert!(
        wait_for_metric(
            &agent,
            "tailward_file_errors_total{reason=\"permission_denied\"}",
            1.0
        ),
        "permission error counted:\n{}",
        agent.stderr_text()
    );
    assert!(lines_of(&job.receiver, &locked).is_empty());

    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o644)).unwrap();
    let tally = tally_of(&job.receiver, &locked, 50, Duration::from_secs(20)).await;
    assert!(
        tally.exactly_once(),
        "locked file after chmod: {tally}\n{}",
        agent.stderr_text()
    );
    append(&good, 100, 150);
    let tally = tally_of(&job.receiver, &good, 150, Duration::from_secs(20)).await;
    assert!(tally.exactly_once(), "{tally}");
    assert!(agent.alive());
    stop_cleanly(agent);
}

#[tokio::test(flavor = "multi_thread")]
async fn directories_fifos_and_broken_symlinks_in_the_glob_are_skipped() {
    let job = job("").await;
    let logs = &job.logs;
    let good = logs.join("good.log");
    append(&good, 0, 100);
    std::fs::create_dir(logs.join("dir.log")).unwrap();
    mkfifo(&logs.join("fifo.log"));
    let link =
        |target: &str, name: &str| std::os::unix::fs::symlink(target, logs.join(name)).unwrap();
    link("self.log", "self.log");
    link("loop-b.log", "loop-a.log");
    link("loop-a.log", "loop-b.log");
    link("../missing", "dangling.log");
    link("dir.log", "to-dir.log");
    link("fifo.log", "to-fifo.log");
    let mut agent = UnprivilegedAgent::start(&job.config);
    let tally = tally_of(&job.receiver, &good, 100, Duration::from_secs(20)).await;
    assert!(tally.exactly_once(), "{tally}\n{}", agent.stderr_text());
    // Past a later glob, still only regular files are tailed: a file created now is found
    // only by one, which lists everything above again.
    let later = logs.join("later.log");
    append(&later, 0, 1);
    let globbed_again = eventually(Duration::from_secs(10), || {
        lines_of(&job.receiver, &later).len() == 1
    })
    .await;
    assert!(
        globbed_again,
        "later.log never found:\n{}",
        agent.stderr_text()
    );
    append(&good, 100, 200);
    let tally = tally_of(&job.receiver, &good, 200, Duration::from_secs(20)).await;
    assert!(tally.exactly_once(), "{tally}\n{}", agent.stderr_text());
    assert_eq!(
        agent.metric("promtail_files_active_total"),
        2.0,
        "only good.log and later.log are open:\n{}",
        agent.stderr_text()
    );
    assert!(agent.alive());
    stop_cleanly(agent);
}

#[tokio::test(flavor = "multi_thread")]
async fn files_vanishing_between_glob_and_open_leave_the_others_undisturbed() {
    let job = job("  rotate_wait: 500ms\n").await;
    let good = job.logs.join("good.log");
    append(&good, 0, 1);
    let mut agent = UnprivilegedAgent::start(&job.config);
    let logs = job.logs.clone();
    let churn = std::thread::spawn(move || {
        let until = Instant::now() + Duration::from_millis(2500);
        let mut i = 0usize;
        while Instant::now() < until {
            let p = logs.join(format!("churn-{}.log", i % 50));
            std::fs::write(&p, format!("churn {i}\n")).unwrap();
            // From gone before discovery lists it to gone after a tailer opened it.
            std::thread::sleep(Duration::from_micros((i as u64 * 397) % 3000));
            std::fs::remove_file(&p).unwrap();
            i += 1;
        }
        i
    });
    let writer_path = good.clone();
    let writer = std::thread::spawn(move || {
        for k in 1..400 {
            append(&writer_path, k, k + 1);
            // Spread over the churn, so good.log changes while files come and go.
            std::thread::sleep(Duration::from_millis(6));
        }
    });
    let churned = churn.join().unwrap();
    writer.join().unwrap();
    let tally = tally_of(&job.receiver, &good, 400, Duration::from_secs(20)).await;
    assert!(
        tally.exactly_once(),
        "{tally} (after {churned} files came and went)\n{}",
        agent.stderr_text()
    );
    // Once the vanished files are past rotate_wait, only good.log is held open.
    assert!(
        wait_for_metric_at_most(&agent, "promtail_files_active_total", 1.0),
        "files of vanished paths still open: {}\n{}",
        agent.metric("promtail_files_active_total"),
        agent.stderr_text()
    );
    let leaked = open_deleted_files(&mut agent);
    assert!(leaked.is_empty(), "deleted files held open: {leaked:?}");
    assert!(agent.alive());
    stop_cleanly(agent);
}

fn wait_for_metric_at_most(agent: &UnprivilegedAgent, series: &str, at_most: f64) -> bool {
    wait_until(Duration::from_secs(10), || agent.metric(series) <= at_most)
}

/// Descriptors of the agent pointing at deleted files.
fn open_deleted_files(agent: &mut UnprivilegedAgent) -> Vec<String> {
    let Some(pid) = agent.pid() else {
        return Vec::new();
    };
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|entries| {
            entries
                .flatten()
                .filter_map(|e| std::fs::read_link(e.path()).ok())
                .map(|t| t.display().to_string())
                .filter(|t| t.ends_with("(deleted)"))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread")]
async fn tailed_files_replaced_by_fifos_do_not_block_the_agent() {
    let job = job("  rotate_wait: 500ms\n").await;
    let good = job.logs.join("good.log");
    append(&good, 0, 50);
    // Several, so that some tailer notices the replacement before discovery (which re-globs
    // on the directory event and drops the FIFO from the job) stops it.
    let victims: Vec<PathBuf> = (0..VICTIMS)
        .map(|k| job.logs.join(format!("victim-{k}.log")))
        .collect();
    for v in &victims {
        append(v, 0, 10);
    }
    let mut agent = UnprivilegedAgent::start(&job.config);
    for v in &victims {
        let tally = tally_of(&job.receiver, v, 10, Duration::from_secs(20)).await;
        assert!(tally.exactly_once(), "{}: {tally}", v.display());
    }
    // Atomically, as a tool replacing a log with a named pipe would: each tailer sees another
    // file at its path and reopens the path.
    for (k, v) in victims.iter().enumerate() {
        let fifo = job.logs.join(format!("fifo-{k}.tmp"));
        mkfifo(&fifo);
        std::fs::rename(&fifo, v).unwrap();
        // Apart, so that tailers and discovery meet the replacements in varying order.
        std::thread::sleep(Duration::from_millis(7));
    }
    // good.log is written to once every victim has been dealt with (its tailer stopped
    // when discovery dropped the FIFO, past rotate_wait), so that a tailer stuck on a FIFO
    // would be stuck by then.
    assert!(
        wait_for_metric_at_most(&agent, "promtail_files_active_total", 1.0),
        "victims still tailed: {}\n{}",
        agent.metric("promtail_files_active_total"),
        agent.stderr_text()
    );
    append(&good, 50, 100);
    let tally = tally_of(&job.receiver, &good, 100, Duration::from_secs(20)).await;
    assert!(tally.exactly_once(), "{tally}\n{}", agent.stderr_text());
    assert!(agent.alive());
    stop_cleanly(agent);
}

const VICTIMS: usize = 20;
