//! Bad lines never stop the agent: invalid UTF-8 is shipped with the bytes replaced and
//! counted; a line longer than `limits_config.max_line_size` is dropped, or truncated when
//! configured, and counted either way.

use std::time::Duration;

use crate::support::agent_process::{AgentProcess, file_job_config, write_config};
use crate::support::receiver::Receiver;

const STAGES: &str = "      - static_labels:\n          env: test\n";

async fn run_with(limits: &str, content: &[u8]) -> (Receiver, AgentProcess, tempfile::TempDir) {
    let receiver = Receiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    std::fs::write(&log, content).unwrap();
    let cfg = file_job_config(
        &receiver.url(),
        &dir.path().join("p.yaml"),
        &log.display().to_string(),
        "",
        STAGES,
    ) + limits;
    let agent = AgentProcess::start(&write_config(dir.path(), &cfg), &[]);
    (receiver, agent, dir)
}

#[tokio::test(flavor = "multi_thread")]
async fn invalid_utf8_is_shipped_replaced_and_counted() {
    let (receiver, agent, _dir) = run_with("", b"caf\xe9 latin-1\nok line\n\xff\xfe\n").await;
    let got = receiver.wait_for_entries(3, Duration::from_secs(20)).await;
    let lines: Vec<&str> = got.iter().map(|e| e.line.as_str()).collect();
    assert_eq!(
        lines,
        vec!["caf\u{fffd} latin-1", "ok line", "\u{fffd}\u{fffd}"]
    );
    assert_eq!(agent.metric("tailward_invalid_utf8_lines_total"), 2.0);
}

#[tokio::test(flavor = "multi_thread")]
async fn overlong_line_is_dropped_and_counted() {
    let long = "x".repeat(300);
    let content = format!("short\n{long}\nafter\n");
    let (receiver, agent, _dir) =
        run_with("limits_config:\n  max_line_size: 100\n", content.as_bytes()).await;
    let got = receiver.wait_for_entries(2, Duration::from_secs(20)).await;
    assert!(agent.wait_until(
        Duration::from_secs(5),
        |a| a.metric("promtail_dropped_entries_total") >= 1.0
    ));
    let lines: Vec<&str> = got.iter().map(|e| e.line.as_str()).collect();
    assert_eq!(lines, vec!["short", "after"]);
    let series = format!(
        "promtail_dropped_entries_total{{host=\"{}\",reason=\"line_too_long\",tenant=\"\"}}",
        receiver.addr()
    );
    assert_eq!(agent.metric(&series), 1.0);
}

#[tokio::test(flavor = "multi_thread")]
async fn overlong_line_is_truncated_when_configured() {
    let long = "é".repeat(100); // 200 bytes; a cut at 101 would split a character
    let content = format!("{long}\n");
    let (receiver, agent, _dir) = run_with(
        "limits_config:\n  max_line_size: 101\n  max_line_size_truncate: true\n",
        content.as_bytes(),
    )
    .await;
    let got = receiver.wait_for_entries(1, Duration::from_secs(20)).await;
    assert_eq!(
        got[0].line,
        "é".repeat(50),
        "truncated at a character boundary"
    );
    assert!(agent.wait_until(
        Duration::from_secs(5),
        |a| a.metric("promtail_mutated_entries_total") >= 1.0
    ));
    assert_eq!(agent.metric("promtail_dropped_entries_total"), 0.0);
}
