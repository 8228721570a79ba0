//! A restart across rotation: while the agent is stopped, its file is rotated away by rename
//! (twice, with lines written to each new file). The restarted agent finds the remainder of the
//! file it was reading under its new name, reads the files rotated while it was down, then the
//! new file: every line exactly once, whether the glob names only the live file or also the
//! rotated names.

use std::path::Path;
use std::time::Duration;

use crate::support::agent_process::{AgentProcess, file_job_config, write_config};
use crate::support::numbered_lines::{Tally, append, number_of, settled_lines};
use crate::support::receiver::Receiver;

fn config(dir: &Path, receiver: &Receiver, glob: &str) -> std::path::PathBuf {
    write_config(
        dir,
        &file_job_config(
            &receiver.url(),
            &dir.join("positions.yaml"),
            glob,
            "",
            "      - static_labels:\n          env: test\n",
        ),
    )
}

/// `app.log` -> `app.log.1` -> `app.log.2`, as logrotate's `create` or RotatingFileHandler do.
fn rotate(dir: &Path) {
    let log = dir.join("app.log");
    let first = dir.join("app.log.1");
    if first.exists() {
        std::fs::rename(&first, dir.join("app.log.2")).unwrap();
    }
    std::fs::rename(&log, &first).unwrap();
}

/// Delivers 0..100, stops; then, while stopped: 100..150 appended to the file the agent was
/// reading, rotate, 150..200 to the new file, rotate, 200..250 to the newest; restarts.
async fn restart_after_two_rotations(glob_rotated_names: bool) {
    let receiver = Receiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    let glob = if glob_rotated_names {
        format!("{}*", log.display())
    } else {
        log.display().to_string()
    };
    let cfg = config(dir.path(), &receiver, &glob);
    append(&log, 0, 100);
    let agent = AgentProcess::start(&cfg, &[]);
    receiver
        .wait_for_entries(100, Duration::from_secs(20))
        .await;
    let (status, first_run) = agent.terminate();
    assert!(status.success(), "{first_run}");

    append(&log, 100, 150);
    rotate(dir.path());
    append(&log, 150, 200);
    rotate(dir.path());
    append(&log, 200, 250);

    let agent = AgentProcess::start(&cfg, &[]);
    let lines = settled_lines(
        &receiver,
        250,
        Duration::from_secs(20),
        Duration::from_millis(1500),
    )
    .await;
    let (_, second_run) = agent.terminate();
    let tally = Tally::of(lines.iter().map(String::as_str), 0..250, number_of);
    assert!(
        tally.exactly_once(),
        "{tally}\nsecond run:\n{second_run}\npositions after the first run were those of:\n{first_run}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn restart_after_two_rotations_reads_every_line_once_with_the_live_file_glob() {
    restart_after_two_rotations(false).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn restart_after_two_rotations_reads_every_line_once_with_rotated_names_in_the_glob() {
    restart_after_two_rotations(true).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn lines_undelivered_at_stop_are_sent_from_the_rotated_file_after_restart() {
    let receiver = Receiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    // Retrying forever: a batch given up on is settled (as in Promtail) and its position
    // moves on; one still being retried at shutdown is not.
    let cfg = std::fs::read_to_string(config(dir.path(), &receiver, &log.display().to_string()))
        .unwrap()
        .replace("max_retries: 20", "max_retries: 0");
    let cfg = write_config(dir.path(), &cfg);
    append(&log, 0, 50);
    let agent = AgentProcess::start(&cfg, &[]);
    receiver.wait_for_entries(50, Duration::from_secs(20)).await;
    // Loki goes away: the next lines are read but never acknowledged, so the saved position
    // stays at 50 lines.
    receiver.set_down(true).await;
    append(&log, 50, 100);
    assert!(agent.wait_until(Duration::from_secs(10), |a| {
        a.metric("promtail_read_lines_total") >= 100.0
    }));
    let (_, first_run) = agent.terminate();
    receiver.set_down(false).await;

    rotate(dir.path());
    append(&log, 100, 150);
    let agent = AgentProcess::start(&cfg, &[]);
    let lines = settled_lines(
        &receiver,
        150,
        Duration::from_secs(20),
        Duration::from_millis(1500),
    )
    .await;
    let (_, second_run) = agent.terminate();
    let tally = Tally::of(lines.iter().map(String::as_str), 0..150, number_of);
    assert!(
        tally.exactly_once(),
        "{tally}\nfirst run:\n{first_run}\nsecond run:\n{second_run}"
    );
}
