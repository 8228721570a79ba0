//! Where the positions file lives matters under systemd: in a private /tmp (PrivateTmp=) it
//! is lost at every restart, on a read-only mount (ProtectSystem=) it is never saved. The
//! agent says so once at start. A save that cannot write is told apart from a file deleted
//! while running, in the log and in the metrics. And Promtail's positions file, copied to
//! /var/lib/tailward as README's "Moving from Promtail" says, is picked up so nothing is
//! re-sent.
//!
//! The sandboxes are made for real with `unshare --mount` (root, as scripts/test runs):
//! a bind mount of a `systemd-private-*` directory over /tmp, and a read-only bind mount.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::support::agent_process::{AgentProcess, write_config};

/// A directory outside /tmp, which the private-/tmp test replaces.
fn workdir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("positions-location-")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .unwrap()
}

fn config(dir: &Path, positions: &Path, log: &Path) -> PathBuf {
    write_config(
        dir,
        &format!(
            "server:\n  http_listen_address: 127.0.0.1\n  http_listen_port: 0\n  graceful_shutdown_timeout: 1s\n\
             positions:\n  filename: {}\n  sync_period: 200ms\n\
             clients:\n  - url: http://127.0.0.1:9/loki/api/v1/push\n\
             scrape_configs:\n  - job_name: app\n    static_configs: [{{labels: {{job: app, __path__: {}}}}}]\n",
            positions.display(),
            log.display()
        ),
    )
}

/// `unshare` running `script` (with the agent as `$0` and its arguments as `$@`).
fn in_mount_namespace(script: &str) -> Vec<String> {
    [
        "unshare",
        "--mount",
        "--propagation",
        "private",
        "sh",
        "-c",
        script,
    ]
    .map(String::from)
    .to_vec()
}

#[test]
fn positions_in_a_private_tmp_are_warned_about_at_start() {
    let dir = workdir();
    let private = dir
        .path()
        .join("systemd-private-0123abcd-tailward.service-Ab12Cd/tmp");
    std::fs::create_dir_all(&private).unwrap();
    let log = dir.path().join("app.log");
    std::fs::write(&log, "").unwrap();
    let config = config(dir.path(), Path::new("/tmp/positions.yaml"), &log);
    let wrapper = in_mount_namespace(&format!(
        "mount --bind {} /tmp && exec \"$0\" \"$@\"",
        private.display()
    ));
    let wrapper: Vec<&str> = wrapper.iter().map(String::as_str).collect();
    let agent = AgentProcess::start_under(&wrapper, &config, &[], &[("INVOCATION_ID", "0123abcd")]);
    let (status, stderr) = agent.terminate();
    assert!(status.success(), "{stderr}");
    let warnings: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("private /tmp (systemd PrivateTmp=)"))
        .collect();
    assert_eq!(warnings.len(), 1, "warned once:\n{stderr}");
    assert!(warnings[0].contains("level=warn"), "{}", warnings[0]);
    assert!(
        warnings[0].contains("/var/lib/tailward/positions.yaml"),
        "{}",
        warnings[0]
    );
}

#[test]
fn read_only_positions_are_warned_about_and_write_errors_are_not_deletions() {
    let dir = workdir();
    let state = dir.path().join("state");
    std::fs::create_dir_all(&state).unwrap();
    let log = dir.path().join("app.log");
    std::fs::write(&log, "").unwrap();
    let config = config(dir.path(), &state.join("positions.yaml"), &log);
    let wrapper = in_mount_namespace(&format!(
        "mount --bind -o ro {s} {s} && exec \"$0\" \"$@\"",
        s = state.display()
    ));
    let wrapper: Vec<&str> = wrapper.iter().map(String::as_str).collect();
    let agent = AgentProcess::start_under(&wrapper, &config, &[], &[]);
    assert!(
        agent.wait_until(Duration::from_secs(10), |a| {
            a.metric("tailward_positions_write_errors_total") >= 3.0
        }),
        "{}",
        agent.stderr_text()
    );
    assert_eq!(agent.metric("tailward_positions_file_deleted_total"), 0.0);
    let (_, stderr) = agent.terminate();
    assert_eq!(
        stderr.matches("is on a read-only mount").count(),
        1,
        "warned once at start:\n{stderr}"
    );
    assert_eq!(
        stderr
            .lines()
            .filter(|l| l.contains("level=error") && l.contains("retrying every sync"))
            .count(),
        1,
        "the failing save is logged once, not at every sync:\n{stderr}"
    );
    assert!(!stderr.contains("deleted while running"), "{stderr}");
    assert!(!state.join("positions.yaml").exists());
}

#[test]
fn promtail_positions_copied_as_the_readme_says_resend_nothing() {
    let dir = workdir();
    let log = dir.path().join("app.log");
    std::fs::write(&log, "sent by promtail 1\nsent by promtail 2\n").unwrap();
    let size = std::fs::metadata(&log).unwrap().len();
    // Promtail's file, as its positions.go writes it.
    let old = dir.path().join("tmp/positions.yaml");
    std::fs::create_dir_all(old.parent().unwrap()).unwrap();
    std::fs::write(
        &old,
        format!("positions:\n  {}: \"{size}\"\n", log.display()),
    )
    .unwrap();
    // README: install -D -m 0600 -o tailward -g tailward /tmp/positions.yaml /var/lib/tailward/positions.yaml
    let new = dir.path().join("var/lib/tailward/positions.yaml");
    let copied = Command::new("install")
        .args(["-D", "-m", "0600"])
        .arg(&old)
        .arg(&new)
        .status()
        .unwrap();
    assert!(copied.success());
    let config = config(dir.path(), &new, &log);
    let agent = AgentProcess::start(&config, &["-dry-run"]);
    std::fs::OpenOptions::new()
        .append(true)
        .open(&log)
        .and_then(|mut f| std::io::Write::write_all(&mut f, b"first line for tailward\n"))
        .unwrap();
    assert!(
        agent.wait_until(Duration::from_secs(10), |a| a
            .stdout_text()
            .contains("first line for tailward")),
        "{}",
        agent.stderr_text()
    );
    // Give a re-read from the start the time to show.
    std::thread::sleep(Duration::from_millis(500));
    let printed = agent.stdout_text();
    let (status, stderr) = agent.terminate();
    assert!(status.success(), "{stderr}");
    assert!(
        !printed.contains("sent by promtail"),
        "lines Promtail already sent were sent again:\n{printed}"
    );
}
