//! `/metrics` serves Promtail's metric names in a format real Prometheus tooling accepts, and
//! `/ready` means what it means in Promtail: ready once at least one file is tailed.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::support::agent_process::{AgentProcess, file_job_config, metric_value, write_config};
use crate::support::receiver::Receiver;

/// Promtail names these gauges `_total`; dashboards depend on the names, so promtool's
/// complaint about them is the one lint finding we accept.
const PROMTAIL_GAUGES_NAMED_TOTAL: [&str; 4] = [
    "promtail_read_bytes_total",
    "promtail_file_bytes_total",
    "promtail_files_active_total",
    "promtail_targets_active_total",
];

#[tokio::test(flavor = "multi_thread")]
async fn metrics_exposition_passes_promtool_and_counts_what_happened() {
    let receiver = Receiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    std::fs::write(&log, "a\nb\nc\n").unwrap();
    let cfg = file_job_config(
        &receiver.url(),
        &dir.path().join("p.yaml"),
        &log.display().to_string(),
        "",
        "      - static_labels:\n          env: test\n",
    );
    let agent = AgentProcess::start(&write_config(dir.path(), &cfg), &[]);
    receiver.wait_for_entries(3, Duration::from_secs(20)).await;
    assert!(agent.wait_until(
        Duration::from_secs(5),
        |a| a.metric("promtail_sent_entries_total") >= 3.0
    ));

    let (status, body) = agent.get("/metrics");
    assert_eq!(status, 200);
    let path = log.display().to_string();
    assert_eq!(
        metric_value(
            &body,
            &format!("promtail_read_lines_total{{path=\"{path}\"}}")
        ),
        3.0
    );
    assert_eq!(
        metric_value(
            &body,
            &format!("promtail_read_bytes_total{{path=\"{path}\"}}")
        ),
        6.0
    );
    assert_eq!(metric_value(&body, "promtail_files_active_total"), 1.0);
    for name in [
        "promtail_encoded_bytes_total",
        "promtail_sent_bytes_total",
        "promtail_request_duration_seconds_bucket",
        "promtail_dropped_bytes_total",
    ] {
        assert!(body.contains(name), "{name} missing from /metrics");
    }

    let mut promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool is installed by scripts/test (Debian package prometheus)");
    promtool
        .stdin
        .take()
        .unwrap()
        .write_all(body.as_bytes())
        .unwrap();
    let out = promtool.wait_with_output().unwrap();
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !report.contains("error while linting") && !report.contains("text format parsing error"),
        "promtool could not parse /metrics:\n{report}"
    );
    for finding in report.lines().filter(|l| !l.trim().is_empty()) {
        assert!(
            PROMTAIL_GAUGES_NAMED_TOTAL
                .iter()
                .any(|g| finding.starts_with(g))
                && finding.contains("non-counter metrics should not have \"_total\" suffix"),
            "unexpected promtool finding: {finding}\nfull report:\n{report}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn ready_only_once_a_file_is_tailed() {
    let receiver = Receiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("later.log");
    let cfg = file_job_config(
        &receiver.url(),
        &dir.path().join("p.yaml"),
        &dir.path().join("*.log").display().to_string(),
        "",
        "      - static_labels:\n          env: test\n",
    );
    let agent = AgentProcess::start(&write_config(dir.path(), &cfg), &[]);
    let (status, body) = agent.get("/ready");
    assert_eq!(status, 500);
    assert!(
        body.starts_with("Not ready: Unable to find any logs to tail."),
        "{body}"
    );
    // A file created while running is picked up and makes the agent ready.
    std::fs::write(&log, "hello\n").unwrap();
    assert!(agent.wait_until(Duration::from_secs(10), |a| a.get("/ready").0 == 200));
    assert_eq!(agent.get("/ready").1, "Ready");
    let got = receiver.wait_for_entries(1, Duration::from_secs(20)).await;
    assert_eq!(got[0].line, "hello");
}
