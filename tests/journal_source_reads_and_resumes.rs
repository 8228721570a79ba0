//! The journal source reads a journal directory the test writes with Debian's
//! systemd-journal-remote (fed export-format records), honours `matches`, `max_age`,
//! `labels` and relabeling of `__journal_*` fields, follows entries added while it runs,
//! keeps its cursor in positions under `cursor-<job>` as Promtail does, and after a restart
//! resumes after that cursor: every entry arrives exactly once.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::support::agent_process::{AgentProcess, write_config};
use crate::support::receiver::Receiver;
use crate::support::watch_for_stragglers;

const JOURNAL_REMOTE: &str = "/lib/systemd/systemd-journal-remote";
const BOOT_ID: &str = "0123456789abcdef0123456789abcdef";

/// (unit, priority, message, age in seconds)
type Record<'a> = (&'a str, u8, &'a str, u64);

fn now_micros() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_micros() as u64
}

/// Writes `records` as a new journal file `dir/<name>.journal`; returns their timestamps.
fn write_journal(dir: &Path, name: &str, records: &[Record<'_>], monotonic_base: u64) -> Vec<u64> {
    let mut export = String::new();
    let now = now_micros();
    let mut stamps = Vec::new();
    for (i, (unit, priority, message, age)) in records.iter().enumerate() {
        let t = now - age * 1_000_000 + i as u64;
        stamps.push(t);
        export.push_str(&format!(
            "__REALTIME_TIMESTAMP={t}\n__MONOTONIC_TIMESTAMP={}\n_BOOT_ID={BOOT_ID}\n\
             _HOSTNAME=testhost\n_SYSTEMD_UNIT={unit}\nPRIORITY={priority}\n\
             SYSLOG_IDENTIFIER=test\nMESSAGE={message}\n\n",
            monotonic_base + i as u64 + 1
        ));
    }
    let mut child = Command::new(JOURNAL_REMOTE)
        .arg(format!(
            "--output={}",
            dir.join(format!("{name}.journal")).display()
        ))
        .arg("-")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "{JOURNAL_REMOTE} must be installed (Debian package systemd-journal-remote): {e}"
            )
        });
    child
        .stdin
        .take()
        .unwrap()
        .write_all(export.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stamps
}

fn config(dir: &Path, url: &str, journal_dir: &Path, job_label: &str) -> String {
    format!(
        r#"server:
  http_listen_address: 127.0.0.1
  http_listen_port: 0
  graceful_shutdown_timeout: 5s
  enable_runtime_reload: true
positions:
  filename: {positions}
  sync_period: 100ms
clients:
  - url: {url}
    batchwait: 100ms
scrape_configs:
  - job_name: journal
    journal:
      path: {journal}
      max_age: 1h
      matches: _SYSTEMD_UNIT=ssh.service
      labels:
        job: {job_label}
    relabel_configs:
      - source_labels: [__journal__systemd_unit]
        target_label: unit
      - source_labels: [__journal_priority_keyword]
        target_label: level
"#,
        positions = dir.join("positions.yaml").display(),
        journal = journal_dir.display(),
    )
}

fn messages(receiver: &Receiver) -> Vec<String> {
    receiver.received().into_iter().map(|e| e.line).collect()
}

async fn settle(receiver: &Receiver, n: usize) -> Vec<String> {
    receiver.wait_for_entries(n, Duration::from_secs(20)).await;
    // Late duplicates would arrive within a few batch waits.
    watch_for_stragglers(Duration::from_millis(800)).await;
    messages(receiver)
}

#[tokio::test(flavor = "multi_thread")]
async fn journal_entries_arrive_and_a_restart_resumes_from_the_cursor() {
    let receiver = Receiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let journal_dir = dir.path().join("journal");
    std::fs::create_dir(&journal_dir).unwrap();
    let stamps = write_journal(
        &journal_dir,
        "a",
        &[
            ("ssh.service", 6, "ssh ancient", 7200),
            ("ssh.service", 6, "ssh one", 5),
            ("cron.service", 6, "cron one", 5),
            ("ssh.service", 3, "ssh two", 5),
        ],
        0,
    );
    let config_path = write_config(
        dir.path(),
        &config(dir.path(), &receiver.url(), &journal_dir, "systemd-journal"),
    );
    let agent = AgentProcess::start(&config_path, &[]);

    let got = settle(&receiver, 2).await;
    assert_eq!(
        got,
        vec!["ssh one", "ssh two"],
        "matches keep only ssh.service; max_age (1h) leaves out the 2 h old entry"
    );
    let entries = receiver.received();
    let one = &entries[0];
    assert_eq!(
        one.labels.get("job").map(String::as_str),
        Some("systemd-journal")
    );
    assert_eq!(
        one.labels.get("unit").map(String::as_str),
        Some("ssh.service")
    );
    assert_eq!(one.labels.get("level").map(String::as_str), Some("info"));
    assert_eq!(
        entries[1].labels.get("level").map(String::as_str),
        Some("error")
    );
    assert!(
        one.labels.keys().all(|k| !k.starts_with("__")),
        "{:?}",
        one.labels
    );
    assert_eq!(
        one.timestamp_ns,
        stamps[1] as i128 * 1000,
        "the entry keeps its journal timestamp"
    );

    // Followed while running.
    write_journal(
        &journal_dir,
        "b",
        &[("ssh.service", 6, "ssh three", 0)],
        100,
    );
    let got = settle(&receiver, 3).await;
    assert_eq!(got, vec!["ssh one", "ssh two", "ssh three"]);

    let (status, log) = agent.terminate();
    assert!(status.success(), "{log}");
    let positions = std::fs::read_to_string(dir.path().join("positions.yaml")).unwrap();
    let cursor_line = positions
        .lines()
        .find(|l| l.trim_start().starts_with("cursor-journal:"))
        .unwrap_or_else(|| panic!("no cursor-journal in positions:\n{positions}"));
    assert!(cursor_line.contains("s="), "{cursor_line}");

    // Written while the agent was down: read after the cursor, nothing before it again.
    write_journal(
        &journal_dir,
        "c",
        &[
            ("ssh.service", 6, "ssh four", 0),
            ("ssh.service", 6, "ssh five", 0),
        ],
        200,
    );
    let agent = AgentProcess::start(&config_path, &[]);
    let got = settle(&receiver, 5).await;
    assert_eq!(
        got,
        vec!["ssh one", "ssh two", "ssh three", "ssh four", "ssh five"],
        "resumed after the saved cursor: nothing lost, nothing repeated"
    );
    let (status, log) = agent.terminate();
    assert!(status.success(), "{log}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_journal_job_changed_by_reload_continues_after_what_it_delivered() {
    let receiver = Receiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let journal_dir = dir.path().join("journal");
    std::fs::create_dir(&journal_dir).unwrap();
    write_journal(
        &journal_dir,
        "a",
        &[
            ("ssh.service", 6, "ssh one", 5),
            ("ssh.service", 6, "ssh two", 5),
        ],
        0,
    );
    let config_path = write_config(
        dir.path(),
        &config(dir.path(), &receiver.url(), &journal_dir, "before"),
    );
    let agent = AgentProcess::start(&config_path, &[]);
    settle(&receiver, 2).await;

    std::fs::write(
        &config_path,
        config(dir.path(), &receiver.url(), &journal_dir, "after"),
    )
    .unwrap();
    let (status, body) = agent.post("/reload");
    assert_eq!(status, 200, "{body}");
    write_journal(
        &journal_dir,
        "b",
        &[("ssh.service", 6, "ssh three", 0)],
        100,
    );
    let got = settle(&receiver, 3).await;
    assert_eq!(
        got,
        vec!["ssh one", "ssh two", "ssh three"],
        "nothing read twice"
    );
    let jobs: Vec<String> = receiver
        .received()
        .iter()
        .map(|e| e.labels["job"].clone())
        .collect();
    assert_eq!(jobs, vec!["before", "before", "after"]);
    let (status, log) = agent.terminate();
    assert!(status.success(), "{log}");
}
