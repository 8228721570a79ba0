//! A static target without `__path__` does not stop the config, as in Promtail: it is
//! logged, counted in `promtail_targets_failed_total{reason="no_path"}` and skipped, and the
//! other targets run. That is also what a config written as split `- targets:` /
//! `- labels:` list items means: the first item is a target without labels.

use std::time::Duration;

use crate::support::agent_process::{AgentProcess, write_config};

#[test]
fn targets_without_path_are_counted_and_the_others_tail() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    std::fs::write(&log, "").unwrap();
    let config = write_config(
        dir.path(),
        &format!(
            r#"server:
  http_listen_address: 127.0.0.1
  http_listen_port: 0
positions:
  filename: {positions}
clients:
  - url: http://127.0.0.1:9/loki/api/v1/push
scrape_configs:
  - job_name: split
    static_configs:
      - targets:
          - localhost
      - labels:
          job: app
          __path__: {log}
  - job_name: nopath
    static_configs:
      - labels: {{job: web}}
"#,
            positions = dir.path().join("positions.yaml").display(),
            log = log.display(),
        ),
    );
    let check = std::process::Command::new(crate::support::agent_process::BIN)
        .arg(format!("-config.file={}", config.display()))
        .arg("-check-syntax")
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
    let agent = AgentProcess::start(&config, &["-dry-run"]);
    std::fs::write(&log, "hello from the labelled half\n").unwrap();
    assert!(
        agent.wait_until(Duration::from_secs(10), |a| a
            .stdout_text()
            .contains("hello from the labelled half")),
        "the target with a path is tailed: {}",
        agent.stderr_text()
    );
    assert_eq!(
        agent.metric("promtail_targets_failed_total{reason=\"no_path\"}"),
        2.0
    );
    assert_eq!(agent.metric("promtail_targets_active_total"), 1.0);
    let (status, stderr) = agent.terminate();
    assert!(status.success(), "{stderr}");
    assert_eq!(
        stderr.matches("no path for target").count(),
        2,
        "each skipped target is logged once:\n{stderr}"
    );
}
