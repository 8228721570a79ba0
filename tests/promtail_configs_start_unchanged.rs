//! Promtail configs written the ways users write them (tests/data/promtail_configs: Grafana
//! Cloud's snippet with a numeric username, numeric tenant ids and labels, yes/on booleans,
//! anchors and merge keys, environment variables, split `- targets:` / `- labels:` items,
//! comments, Windows line endings) pass `-check-syntax` and start unchanged. They run with
//! `-dry-run` (nothing is pushed anywhere, positions are not written) and their HTTP port
//! moved to an ephemeral one by flag, as an ExecStart line would.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use crate::support::agent_process::{AgentProcess, BIN};

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/promtail_configs");

/// The environment `*.expand-env.yaml` configs are run with.
const ENV: &[(&str, &str)] = &[
    ("LOKI_URL", "http://127.0.0.1:9/loki/api/v1/push"),
    ("LOKI_TENANT", "42"),
    ("LOKI_USER", "123456"),
    ("LOKI_PASSWORD", "glc_secret"),
    ("LOG_ROOT", "/var/log"),
];

fn configs() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(DIR)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    assert!(files.len() >= 8, "the corpus is in {DIR}");
    files
}

fn extra_args(path: &std::path::Path) -> Vec<&'static str> {
    if path.to_string_lossy().ends_with(".expand-env.yaml") {
        vec!["-config.expand-env=true"]
    } else {
        Vec::new()
    }
}

#[test]
fn every_config_passes_check_syntax() {
    let mut failures = Vec::new();
    for path in configs() {
        let out = Command::new(BIN)
            .arg(format!("-config.file={}", path.display()))
            .args(extra_args(&path))
            .arg("-check-syntax")
            .envs(ENV.iter().copied())
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        if !out.status.success() || !stdout.contains("Valid config file!") {
            failures.push(format!(
                "{}: {}",
                path.display(),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn every_config_starts_and_stops_cleanly() {
    for path in configs() {
        let mut args = extra_args(&path);
        args.extend([
            "-dry-run",
            "-server.http-listen-address=127.0.0.1",
            "-server.http-listen-port=0",
        ]);
        let agent = AgentProcess::start_with_env(&path, &args, ENV);
        assert!(
            agent.wait_until(Duration::from_secs(10), |a| a.get("/metrics").0 == 200),
            "{}: {}",
            path.display(),
            agent.stderr_text()
        );
        let (status, stderr) = agent.terminate();
        assert!(status.success(), "{}: {stderr}", path.display());
        assert!(
            !stderr.contains("level=error"),
            "{}: {stderr}",
            path.display()
        );
    }
}

#[test]
fn numbers_and_booleans_mean_what_promtail_reads() {
    let out = Command::new(BIN)
        .arg(format!("-config.file={DIR}/numbers_in_text_fields.yaml"))
        .args(["-check-syntax", "-print-config-stderr"])
        .output()
        .unwrap();
    let printed = String::from_utf8_lossy(&out.stderr);
    for expected in [
        "tenant_id: \"42\"",
        "cluster: \"01\"",
        "port: \"8080\"",
        "version: \"1.10\"",
        "X-Team-Id: \"1234\"",
        "action: replace",
    ] {
        assert!(printed.contains(expected), "{expected} in:\n{printed}");
    }
    let out = Command::new(BIN)
        .arg(format!("-config.file={DIR}/yes_on_booleans.yaml"))
        .args(["-check-syntax", "-print-config-stderr"])
        .output()
        .unwrap();
    let printed = String::from_utf8_lossy(&out.stderr);
    for expected in [
        "enable_runtime_reload: true",
        "ignore_invalid_yaml: true",
        "readline_rate_enabled: true",
        "readline_rate_drop: false",
        "max_line_size_truncate: true",
    ] {
        assert!(printed.contains(expected), "{expected} in:\n{printed}");
    }
}
