//! The shipped unit's SystemCallFilter=, RestrictAddressFamilies= and
//! MemoryDenyWriteExecute= allow everything the agent does: run under strace (following journalctl too) through start, tailing, a journal
//! job, serving pages, a reload and shutdown, every system call it makes is in the unit's
//! allow list and none in its deny list, and every socket family is allowed. (No systemd runs
//! here to enforce the filter, so this is how a too-tight filter is caught before a host
//! kills the agent with SIGSYS.)

use std::collections::BTreeSet;
use std::process::Command;
use std::time::Duration;

use crate::support::agent_process::{AgentProcess, write_config};
use crate::support::receiver::Receiver;

const UNIT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/examples/systemd/tailward.service"
);

/// The system calls of a systemd syscall set (`@system-service`), groups expanded.
fn syscall_set(name: &str) -> BTreeSet<String> {
    let out = Command::new("systemd-analyze")
        .args(["syscall-filter", name])
        .output()
        .unwrap_or_else(|e| {
            panic!("systemd-analyze must be installed (Debian package systemd): {e}")
        });
    assert!(out.status.success(), "syscall-filter {name}");
    let text = String::from_utf8_lossy(&out.stdout);
    let mut set = BTreeSet::new();
    for item in text
        .lines()
        .skip(1)
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        if item.starts_with('@') {
            set.extend(syscall_set(item));
        } else {
            set.insert(item.to_string());
        }
    }
    set
}

/// (allowed, denied) from the unit's `SystemCallFilter=` lines (`~` lines deny).
fn unit_filter() -> (BTreeSet<String>, BTreeSet<String>) {
    let unit = std::fs::read_to_string(UNIT).unwrap();
    let mut allowed = BTreeSet::new();
    let mut denied = BTreeSet::new();
    for value in unit
        .lines()
        .filter_map(|l| l.strip_prefix("SystemCallFilter="))
    {
        let (deny, list) = match value.strip_prefix('~') {
            Some(rest) => (true, rest),
            None => (false, value),
        };
        for item in list.split_whitespace() {
            let calls = if item.starts_with('@') {
                syscall_set(item)
            } else {
                BTreeSet::from([item.to_string()])
            };
            if deny { &mut denied } else { &mut allowed }.extend(calls);
        }
    }
    assert!(!allowed.is_empty(), "the unit has an allow list");
    (allowed, denied)
}

#[tokio::test(flavor = "multi_thread")]
async fn every_syscall_and_socket_family_the_agent_uses_is_allowed_by_the_unit() {
    let receiver = Receiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    std::fs::write(&log, "one\n").unwrap();
    let journal = dir.path().join("journal");
    std::fs::create_dir(&journal).unwrap();
    let yaml = format!(
        r#"server:
  http_listen_address: 127.0.0.1
  http_listen_port: 0
  enable_runtime_reload: true
positions:
  filename: {positions}
  sync_period: 100ms
clients:
  - url: {url}
    batchwait: 100ms
scrape_configs:
  - job_name: app
    static_configs:
      - labels: {{job: app, __path__: {log}}}
  - job_name: journal
    journal:
      path: {journal}
      labels: {{job: journal}}
"#,
        positions = dir.path().join("positions.yaml").display(),
        url = receiver.url(),
        log = log.display(),
        journal = journal.display(),
    );
    let config = write_config(dir.path(), &yaml);
    // Outside the tailed directory: strace writing a line for each read of an inotify event
    // would raise another event there, a loop that starves the agent.
    let trace_dir = tempfile::tempdir().unwrap();
    let trace = trace_dir.path().join("trace");
    let trace_arg = trace.display().to_string();
    let agent = AgentProcess::start_under(
        &["strace", "-f", "-qq", "-o", &trace_arg],
        &config,
        &[],
        &[],
    );
    receiver.wait_for_entries(1, Duration::from_secs(30)).await;
    std::fs::write(&log, "one\ntwo\n").unwrap();
    receiver.wait_for_entries(2, Duration::from_secs(30)).await;
    for page in [
        "/metrics",
        "/targets",
        "/service-discovery",
        "/config",
        "/ready",
    ] {
        assert_eq!(agent.get(page).0, 200, "{page}");
    }
    assert_eq!(agent.post("/reload").0, 200);
    agent.signal(libc::SIGHUP);
    assert!(agent.wait_until(Duration::from_secs(20), |a| {
        a.metric("promtail_config_reload_success_total") == 2.0
    }));
    let (status, log_text) = agent.terminate();
    assert!(status.success(), "{log_text}");

    let text = std::fs::read_to_string(&trace).unwrap();
    let mut used = BTreeSet::new();
    let mut families = BTreeSet::new();
    for line in text.lines() {
        // `PID name(args...` or `PID <... name resumed>`.
        let Some(call) = line.split_whitespace().nth(1) else {
            continue;
        };
        if let Some((name, args)) = call.split_once('(') {
            if name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
                && !name.is_empty()
            {
                used.insert(name.to_string());
            }
            if name == "socket" {
                families.insert(args.trim_end_matches(',').to_string());
            }
        }
    }
    assert!(used.contains("execve") && used.len() > 20, "{used:?}");
    let ran_journalctl = text.contains("execve(\"/usr/bin/journalctl\"")
        || text.contains("execve(\"/bin/journalctl\"");
    assert!(
        ran_journalctl,
        "the journal job ran journalctl under the trace"
    );

    let (allowed, denied) = unit_filter();
    let not_allowed: Vec<&String> = used.difference(&allowed).collect();
    assert!(
        not_allowed.is_empty(),
        "SystemCallFilter= would kill the agent for: {not_allowed:?}"
    );
    let refused: Vec<&String> = used.intersection(&denied).collect();
    assert!(
        refused.is_empty(),
        "denied by SystemCallFilter=~: {refused:?}"
    );

    // MemoryDenyWriteExecute=yes refuses writable+executable mappings and making memory
    // executable later.
    let unit = std::fs::read_to_string(UNIT).unwrap();
    assert!(unit.lines().any(|l| l == "MemoryDenyWriteExecute=yes"));
    for line in text.lines() {
        let wx = line.contains(" mmap(") && line.contains("PROT_WRITE|PROT_EXEC");
        let late_exec = (line.contains(" mprotect(") || line.contains(" pkey_mprotect("))
            && line.contains("PROT_EXEC");
        assert!(!wx && !late_exec, "MemoryDenyWriteExecute= refuses: {line}");
    }
    let allowed_families: Vec<&str> = unit
        .lines()
        .find_map(|l| l.strip_prefix("RestrictAddressFamilies="))
        .unwrap()
        .split_whitespace()
        .collect();
    for family in &families {
        assert!(
            allowed_families.contains(&family.as_str()),
            "socket({family}) is not in RestrictAddressFamilies={allowed_families:?}"
        );
    }
    assert!(families.contains("AF_INET"), "{families:?}");
}
