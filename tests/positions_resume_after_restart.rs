//! Positions: a restarted agent resumes where delivery stopped, with no line missed and none
//! repeated; the positions file is Promtail's format, written with mode 0600; SIGTERM flushes
//! the open batch before saving.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use crate::support::agent_process::{AgentProcess, file_job_config, write_config};
use crate::support::receiver::Receiver;
use crate::support::watch_for_stragglers;

fn append(path: &std::path::Path, from: usize, to: usize) {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    for i in from..to {
        writeln!(f, "event {i:05} payload").unwrap();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn restart_resumes_from_positions_without_loss_or_repeat() {
    let receiver = Receiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    let positions = dir.path().join("positions.yaml");
    let cfg = write_config(
        dir.path(),
        &file_job_config(
            &receiver.url(),
            &positions,
            &log.display().to_string(),
            "",
            "      - static_labels:\n          env: test\n",
        ),
    );
    append(&log, 0, 100);
    let agent = AgentProcess::start(&cfg, &[]);
    receiver
        .wait_for_entries(100, Duration::from_secs(20))
        .await;
    let (status, _) = agent.terminate();
    assert!(status.success());

    let saved = std::fs::read_to_string(&positions).unwrap();
    let size = std::fs::metadata(&log).unwrap().len();
    // Promtail's map first, byte for byte; then the file identities tailward adds.
    let ino = std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(&log).unwrap());
    assert!(
        saved.starts_with(&format!(
            "positions:\n  {}: \"{size}\"\nidentities:\n  {}: \"",
            log.display(),
            log.display()
        )),
        "{saved}"
    );
    assert!(saved.contains(&format!(":{ino}:")), "{saved}");
    let mode = std::fs::metadata(&positions).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);

    // Written while the agent is down.
    append(&log, 100, 150);
    let agent = AgentProcess::start(&cfg, &[]);
    let got = receiver
        .wait_for_entries(150, Duration::from_secs(20))
        .await;
    // For lines sent again from a position not resumed from.
    watch_for_stragglers(Duration::from_millis(500)).await;
    let all = receiver.received();
    let lines: Vec<String> = all.iter().map(|e| e.line.clone()).collect();
    let expected: Vec<String> = (0..150).map(|i| format!("event {i:05} payload")).collect();
    assert_eq!(got.len(), 150);
    assert_eq!(lines, expected, "every line once, in order");
    agent.terminate();
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_flushes_the_open_batch_and_saves_positions() {
    let receiver = Receiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    let positions = dir.path().join("positions.yaml");
    // A batch wait far longer than the test: only the shutdown flush can deliver.
    let cfg = file_job_config(
        &receiver.url(),
        &positions,
        &log.display().to_string(),
        "",
        "      - static_labels:\n          env: test\n",
    )
    .replace("batchwait: 100ms", "batchwait: 60s")
    .replace("sync_period: 200ms", "sync_period: 60s");
    let cfg = write_config(dir.path(), &cfg);
    append(&log, 0, 30);
    let agent = AgentProcess::start(&cfg, &[]);
    assert!(agent.wait_until(
        Duration::from_secs(10),
        |a| a.metric("promtail_read_lines_total") >= 30.0
    ));
    assert_eq!(
        receiver.request_count(),
        0,
        "nothing sent before the batch wait"
    );
    let (status, log_text) = agent.terminate();
    assert!(status.success(), "{log_text}");
    assert_eq!(
        receiver.received().len(),
        30,
        "open batch flushed at shutdown"
    );
    let size = std::fs::metadata(&log).unwrap().len();
    assert!(
        std::fs::read_to_string(&positions)
            .unwrap()
            .contains(&format!("\"{size}\""))
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn dry_run_never_writes_positions() {
    let receiver = Receiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    let positions = dir.path().join("positions.yaml");
    append(&log, 0, 5);
    let cfg = write_config(
        dir.path(),
        &file_job_config(
            &receiver.url(),
            &positions,
            &log.display().to_string(),
            "",
            "      - static_labels:\n          env: test\n",
        ),
    );
    let agent = AgentProcess::start(&cfg, &["-dry-run"]);
    assert!(
        agent.wait_until(Duration::from_secs(10), |a| a.stdout_text().lines().count()
            >= 5)
    );
    let (status, _) = agent.terminate();
    assert!(status.success());
    assert!(!positions.exists(), "dry run wrote positions");
    assert_eq!(receiver.request_count(), 0, "dry run pushed");
}
