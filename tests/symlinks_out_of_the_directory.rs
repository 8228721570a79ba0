//! A `__path__` glob that matches a symlink follows it, as Promtail does, wherever it points:
//! as root, a `shadow.log -> /etc/shadow` link in a tailed directory ships /etc/shadow.
//! `target_config.follow_symlinks_outside: false` reads a linked file only when it lies in
//! the link's directory or below it; a link leading out is refused, logged and counted
//! (issue 17 item 6).

use std::path::Path;
use std::time::Duration;

use crate::support::agent_process::{AgentProcess, file_job_config, write_config};
use crate::support::numbered_lines::{append, number_of, settled_lines};
use crate::support::receiver::Receiver;

/// `logs/app.log` (lines 0..10), `logs/inside.log -> logs/sub/real.log` (100..110) and
/// `logs/shadow.log -> secret/shadow` (200..210), tailed as `logs/*.log`.
fn layout(dir: &Path) {
    let logs = dir.join("logs");
    std::fs::create_dir_all(logs.join("sub")).unwrap();
    std::fs::create_dir_all(dir.join("secret")).unwrap();
    append(&logs.join("app.log"), 0, 10);
    append(&logs.join("sub/real.log"), 100, 110);
    append(&dir.join("secret/shadow"), 200, 210);
    std::os::unix::fs::symlink(logs.join("sub/real.log"), logs.join("inside.log")).unwrap();
    std::os::unix::fs::symlink("../secret/shadow", logs.join("shadow.log")).unwrap();
}

async fn shipped(follow_outside: Option<bool>) -> (Vec<usize>, AgentProcess, tempfile::TempDir) {
    let receiver = Receiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    layout(dir.path());
    let mut text = file_job_config(
        &receiver.url(),
        &dir.path().join("positions.yaml"),
        &format!("{}/*.log", dir.path().join("logs").display()),
        "",
        "      - static_labels:\n          env: test\n",
    );
    if let Some(follow) = follow_outside {
        text = text.replace(
            "target_config:\n",
            &format!("target_config:\n  follow_symlinks_outside: {follow}\n"),
        );
    }
    let cfg = write_config(dir.path(), &text);
    let agent = AgentProcess::start(&cfg, &[]);
    let want = if follow_outside == Some(false) {
        20
    } else {
        30
    };
    let lines = settled_lines(
        &receiver,
        want,
        Duration::from_secs(20),
        Duration::from_millis(800),
    )
    .await;
    let mut numbers: Vec<usize> = lines.iter().filter_map(|l| number_of(l)).collect();
    numbers.sort_unstable();
    (numbers, agent, dir)
}

#[tokio::test(flavor = "multi_thread")]
async fn by_default_a_matched_symlink_is_followed_out_of_its_directory_as_promtail_does() {
    let (numbers, agent, dir) = shipped(None).await;
    let want: Vec<usize> = (0..10).chain(100..110).chain(200..210).collect();
    assert_eq!(numbers, want, "the file behind shadow.log is shipped too");
    drop(agent);
    drop(dir);
}

#[tokio::test(flavor = "multi_thread")]
async fn follow_symlinks_outside_false_reads_links_within_the_directory_only() {
    let (numbers, agent, dir) = shipped(Some(false)).await;
    let want: Vec<usize> = (0..10).chain(100..110).collect();
    assert_eq!(numbers, want, "{}", agent.stderr_text());
    assert!(
        agent.wait_until(Duration::from_secs(5), |a| a.metric(
            "tailward_file_errors_total{reason=\"symlink_outside_directory\"}"
        ) >= 1.0),
        "the refusal is counted:\n{}",
        agent.get("/metrics").1
    );
    let stderr = agent.stderr_text();
    assert!(
        stderr.contains("symlink_outside_directory") && stderr.contains("shadow.log"),
        "the refusal is logged with the link:\n{stderr}"
    );
    drop(agent);
    drop(dir);
}
