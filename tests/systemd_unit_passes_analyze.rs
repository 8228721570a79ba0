//! The shipped unit, examples/systemd/tailward.service: `systemd-analyze verify` finds
//! nothing to say about it, `systemd-analyze security --offline=true` rates its exposure 1.5
//! or lower, and it asks for what the agent relies on (Type=notify with a watchdog, a
//! dedicated user in group adm, a state directory, the sandboxing directives).
//!
//! Both commands work without a running systemd (offline), so the test runs them for real
//! and fails, never skips, when they are missing.

use std::path::Path;
use std::process::Command;

const UNIT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/examples/systemd/tailward.service"
);
const BIN: &str = env!("CARGO_BIN_EXE_tailward");

fn unit_text() -> String {
    std::fs::read_to_string(UNIT).expect("examples/systemd/tailward.service")
}

/// The unit as shipped, with ExecStart pointing at the binary just built: verify checks
/// that the command exists, and /usr/bin/tailward is only there once the package is installed.
fn unit_for_this_build(dir: &Path) -> std::path::PathBuf {
    let text = unit_text();
    assert!(text.contains("\nExecStart=/usr/bin/tailward "), "{text}");
    let text = text.replace(
        "\nExecStart=/usr/bin/tailward ",
        &format!("\nExecStart={BIN} "),
    );
    let path = dir.join("tailward.service");
    std::fs::write(&path, text).unwrap();
    path
}

fn systemd_analyze(args: &[&str]) -> std::process::Output {
    Command::new("systemd-analyze")
        .args(args)
        .output()
        .unwrap_or_else(|e| {
            panic!("systemd-analyze must be installed (Debian package systemd): {e}")
        })
}

#[test]
fn unit_passes_systemd_analyze_verify_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let unit = unit_for_this_build(dir.path());
    let out = systemd_analyze(&["verify", &unit.display().to_string()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "verify failed:\n{stdout}\n{stderr}");
    assert!(
        stderr.trim().is_empty() && stdout.trim().is_empty(),
        "verify is not clean:\n{stdout}\n{stderr}"
    );
}

#[test]
fn unit_exposure_is_at_most_1_5() {
    let out = systemd_analyze(&["security", "--offline=true", "--no-pager", UNIT]);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    let exposure: f64 = text
        .lines()
        .find_map(|l| {
            l.split("Overall exposure level for tailward.service:")
                .nth(1)
        })
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no overall exposure in:\n{text}"));
    assert!(exposure <= 1.5, "exposure {exposure} > 1.5:\n{text}");
}

#[test]
fn unit_asks_for_notify_watchdog_user_state_and_sandboxing() {
    let text = unit_text();
    let has = |line: &str| text.lines().any(|l| l.trim() == line);
    let starts = |prefix: &str| text.lines().any(|l| l.starts_with(prefix));
    for line in [
        "Type=notify",
        "Restart=always",
        "User=tailward",
        "StateDirectory=tailward",
        "ProtectSystem=strict",
        "ProtectHome=yes",
        "PrivateTmp=yes",
        "NoNewPrivileges=yes",
        "CapabilityBoundingSet=",
        // The shell's builtin kill: the package does not pull in procps for /bin/kill.
        "ExecReload=/bin/sh -c 'kill -HUP \"$MAINPID\"'",
    ] {
        assert!(has(line), "missing {line}");
    }
    for prefix in [
        "WatchdogSec=",
        "RestrictAddressFamilies=",
        "SystemCallFilter=",
        "MemoryMax=",
    ] {
        assert!(starts(prefix), "missing {prefix}");
    }
    let groups = text
        .lines()
        .find_map(|l| l.strip_prefix("SupplementaryGroups="))
        .expect("SupplementaryGroups=");
    assert!(
        groups.split_whitespace().any(|g| g == "adm"),
        "group adm reads /var/log: {groups}"
    );
}
