//! examples/docker/ works as shipped: its config passes `-check-syntax`, its compose file
//! mounts that config and the Docker socket, and the config itself (only the socket, Loki's
//! URL and the positions file pointed at the test's) ships a labelled container's lines with
//! the labels Promtail's documentation gives them.

use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

use crate::support::agent_process::{AgentProcess, BIN, write_config};
use crate::support::dockerd::Dockerd;
use crate::support::receiver::Receiver;

const EXAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/docker");

#[test]
fn docker_example_config_passes_check_syntax() {
    let out = Command::new(BIN)
        .arg(format!("-config.file={EXAMPLE}/config.yaml"))
        .arg("-check-syntax")
        .output()
        .expect("run tailward");
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let compose = std::fs::read_to_string(format!("{EXAMPLE}/compose.yaml")).unwrap();
    assert!(
        compose.contains("./config.yaml:/etc/tailward/config.yaml"),
        "{compose}"
    );
    assert!(
        compose.contains("/var/run/docker.sock:/var/run/docker.sock"),
        "{compose}"
    );
    assert!(compose.contains("logging: \"promtail\""), "{compose}");
    let dockerfile = std::fs::read_to_string(format!("{EXAMPLE}/Dockerfile")).unwrap();
    assert!(
        dockerfile.contains("target/release/tailward"),
        "{dockerfile}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn docker_example_config_ships_labelled_containers_with_promtails_labels() {
    let docker = Dockerd::start();
    let receiver = Receiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let shipped = std::fs::read_to_string(format!("{EXAMPLE}/config.yaml")).unwrap();
    let replaced = |from: &str, to: &str, text: String| {
        assert!(text.contains(from), "the example no longer has {from}");
        text.replace(from, to)
    };
    let text = replaced("unix:///var/run/docker.sock", &docker.host(), shipped);
    let text = replaced("http://loki:3100/loki/api/v1/push", &receiver.url(), text);
    let text = replaced(
        "/var/lib/tailward/positions.yaml",
        &dir.path().join("positions.yaml").display().to_string(),
        text,
    );
    let text = replaced("http_listen_port: 9080", "http_listen_port: 0", text);
    let cfg = write_config(dir.path(), &text);
    let agent = AgentProcess::start(&cfg, &[]);

    let app = docker.run(
        &[
            "--name",
            "flog",
            "--label",
            "logging=promtail",
            "--label",
            "logging_jobname=containerlogs",
        ],
        "echo hello from flog; echo oops >&2",
    );
    let unlabelled = docker.run(&["--name", "quiet"], "echo not shipped");
    docker.wait_exit(&app);
    docker.wait_exit(&unlabelled);
    let entries = receiver.wait_for_entries(2, Duration::from_secs(30)).await;
    crate::support::watch_for_stragglers(Duration::from_millis(1500)).await;
    let entries_now = receiver.received();
    assert_eq!(entries_now.len(), 2, "{entries:?}");
    let by_line: BTreeMap<&str, &BTreeMap<String, String>> = entries_now
        .iter()
        .map(|e| (e.line.as_str(), &e.labels))
        .collect();
    let label = |line: &str, name: &str| by_line[line].get(name).cloned();
    assert_eq!(
        label("hello from flog", "container").as_deref(),
        Some("flog")
    );
    assert_eq!(
        label("hello from flog", "logstream").as_deref(),
        Some("stdout")
    );
    assert_eq!(label("oops", "logstream").as_deref(), Some("stderr"));
    assert_eq!(
        label("hello from flog", "job").as_deref(),
        Some("containerlogs")
    );
    let (status, log) = agent.terminate();
    assert!(status.success(), "{log}");
}
