//! Where a file with no saved position starts: Alloy's `tail_from_end` starts at its end (only
//! lines written afterwards ship), and `ignore_older_than` skips files not modified for that
//! long, while recent files are still read from the start.

use std::io::Write;
use std::time::{Duration, SystemTime};

use crate::support::agent_process::{AgentProcess, file_job_config, write_config};
use crate::support::receiver::Receiver;
use crate::support::watch_for_stragglers;

const STAGES: &str = "      - static_labels:\n          env: test\n";

fn with_target_option(cfg: String, option: &str) -> String {
    let patched = cfg.replace(
        "target_config:\n  sync_period: 500ms\n",
        &format!("target_config:\n  sync_period: 500ms\n  {option}\n"),
    );
    assert_ne!(
        patched, cfg,
        "the test config has a target_config block to extend"
    );
    patched
}

#[tokio::test(flavor = "multi_thread")]
async fn tail_from_end_ships_only_lines_written_after_start() {
    let receiver = Receiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    std::fs::write(&log, "old 1\nold 2\n").unwrap();
    let cfg = file_job_config(
        &receiver.url(),
        &dir.path().join("p.yaml"),
        &log.display().to_string(),
        "",
        STAGES,
    );
    let cfg = with_target_option(cfg, "tail_from_end: true");
    let agent = AgentProcess::start(&write_config(dir.path(), &cfg), &[]);
    assert!(agent.wait_until(Duration::from_secs(10), |a| {
        a.metric("promtail_files_active_total") >= 1.0
    }));
    std::fs::OpenOptions::new()
        .append(true)
        .open(&log)
        .unwrap()
        .write_all(b"new 1\n")
        .unwrap();
    let got = receiver.wait_for_entries(1, Duration::from_secs(10)).await;
    // The old lines, were they read, would come before or with the new one; this is for a
    // read from the start that comes later still.
    watch_for_stragglers(Duration::from_millis(300)).await;
    let lines: Vec<String> = receiver.received().into_iter().map(|e| e.line).collect();
    assert_eq!(got.len(), 1);
    assert_eq!(lines, vec!["new 1"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn ignore_older_than_skips_stale_files_and_reads_recent_ones() {
    let receiver = Receiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let stale = dir.path().join("stale.log");
    let recent = dir.path().join("recent.log");
    std::fs::write(&stale, "from last week\n").unwrap();
    std::fs::write(&recent, "from today\n").unwrap();
    let week_ago = SystemTime::now() - Duration::from_secs(7 * 86_400);
    std::fs::File::options()
        .write(true)
        .open(&stale)
        .unwrap()
        .set_modified(week_ago)
        .unwrap();
    let glob = dir.path().join("*.log").display().to_string();
    let cfg = file_job_config(
        &receiver.url(),
        &dir.path().join("p.yaml"),
        &glob,
        "",
        STAGES,
    );
    let cfg = with_target_option(cfg, "ignore_older_than: 24h");
    let _agent = AgentProcess::start(&write_config(dir.path(), &cfg), &[]);
    receiver.wait_for_entries(1, Duration::from_secs(10)).await;
    // Nothing marks the stale file as passed over; give its line the time to come.
    watch_for_stragglers(Duration::from_millis(800)).await;
    let lines: Vec<String> = receiver.received().into_iter().map(|e| e.line).collect();
    assert_eq!(lines, vec!["from today"]);
}
