//! The docker source when the daemon is not there, restarts, or answers too slowly for its
//! containers' output: failures are logged once per change of state, counted, retried with
//! backoff, and the agent's other jobs keep running; a container writing faster than Loki
//! accepts is held back (memory stays bounded) while a quiet container's lines keep flowing.

use std::collections::HashSet;
use std::path::Path;
use std::time::Duration;

use crate::support::agent_process::{AgentProcess, write_config};
use crate::support::dockerd::Dockerd;
use crate::support::receiver::{Receiver, Reply};
use crate::support::wait_until;

fn config(dir: &Path, url: &str, host: &str, file_glob: &str) -> String {
    format!(
        r#"server:
  http_listen_address: 127.0.0.1
  http_listen_port: 0
  graceful_shutdown_timeout: 5s
positions:
  filename: {positions}
  sync_period: 100ms
clients:
  - url: {url}
    batchwait: 100ms
    backoff_config:
      min_period: 50ms
      max_period: 200ms
      max_retries: 50
scrape_configs:
  - job_name: docker
    docker_sd_configs:
      - host: {host}
        refresh_interval: 1s
    relabel_configs:
      - source_labels: ['__meta_docker_container_name']
        regex: '/(.*)'
        target_label: 'container'
  - job_name: files
    static_configs:
      - targets: [localhost]
        labels:
          job: files
          __path__: {file_glob}
"#,
        positions = dir.join("positions.yaml").display(),
    )
}

fn lines_of(receiver: &Receiver, container: &str) -> HashSet<String> {
    receiver
        .received()
        .into_iter()
        .filter(|e| e.labels.get("container").map(String::as_str) == Some(container))
        .map(|e| e.line)
        .collect()
}

fn occurrences(text: &str, needle: &str) -> usize {
    text.matches(needle).count()
}

#[tokio::test(flavor = "multi_thread")]
async fn docker_daemon_missing_then_restarting_is_logged_once_retried_and_other_jobs_run() {
    let receiver = Receiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let daemon_dir = tempfile::Builder::new()
        .prefix("tw-dockerd")
        .tempdir()
        .unwrap();
    let socket = daemon_dir.path().join("docker.sock");
    let log_file = dir.path().join("app.log");
    std::fs::write(&log_file, "file line 1\n").unwrap();
    let cfg = write_config(
        dir.path(),
        &config(
            dir.path(),
            &receiver.url(),
            &format!("unix://{}", socket.display()),
            &log_file.display().to_string(),
        ),
    );
    let agent = AgentProcess::start(&cfg, &[]);

    // No daemon: the file job runs regardless; the failure is counted at every retry and
    // said once.
    receiver.wait_for_entries(1, Duration::from_secs(20)).await;
    assert!(
        agent.wait_until(Duration::from_secs(20), |a| {
            a.metric("tailward_docker_daemon_errors_total{reason=\"unreachable\"}") >= 3.0
        }),
        "retries counted:\n{}",
        agent.stderr_text()
    );
    let log = agent.stderr_text();
    assert_eq!(
        occurrences(&log, "docker discovery failed"),
        1,
        "said once:\n{log}"
    );
    assert!(
        log.contains("No such file or directory"),
        "the reason is given:\n{log}"
    );

    // The daemon comes up at that socket: discovered without a restart of the agent.
    let mut docker = Dockerd::start_at(daemon_dir, socket.clone());
    assert_eq!(docker.socket(), socket.as_path());
    assert!(agent.wait_until(Duration::from_secs(30), |a| {
        a.stderr_text().contains("docker daemon reachable")
    }));
    let first = docker.run(
        &["--name", "first"],
        "for i in $(seq 1 20); do echo first $i; done",
    );
    docker.wait_exit(&first);
    assert!(wait_until(Duration::from_secs(30), || lines_of(
        &receiver, "first"
    )
    .len()
        == 20));

    // The daemon restarts: one more warning for the outage, then containers are read again.
    docker.restart();
    std::fs::write(&log_file, "file line 1\nfile line 2\n").unwrap();
    let second = docker.run(
        &["--name", "second"],
        "for i in $(seq 1 20); do echo second $i; done",
    );
    docker.wait_exit(&second);
    assert!(
        wait_until(Duration::from_secs(30), || lines_of(&receiver, "second")
            .len()
            == 20),
        "read after the daemon restarted:\n{}",
        agent.stderr_text()
    );
    assert!(receiver.received().iter().any(|e| e.line == "file line 2"));
    let log = agent.stderr_text();
    assert_eq!(occurrences(&log, "docker discovery failed"), 2, "{log}");
    assert_eq!(occurrences(&log, "docker daemon reachable"), 2, "{log}");
    let received = receiver.received();
    let firsts = received
        .iter()
        .filter(|e| e.line.starts_with("first "))
        .count();
    assert_eq!(firsts, 20, "the daemon's restart sends nothing twice");
    let (status, log) = agent.terminate();
    assert!(status.success(), "{log}");
}

#[tokio::test(flavor = "multi_thread")]
async fn docker_noisy_container_is_held_back_and_a_quiet_one_keeps_flowing() {
    let docker = Dockerd::start();
    let receiver = Receiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let log_file = dir.path().join("unused.log");
    let cfg = write_config(
        dir.path(),
        &config(
            dir.path(),
            &receiver.url(),
            &docker.host(),
            &log_file.display().to_string(),
        ),
    );
    // A slow Loki: every push waits.
    receiver.script(vec![Reply::Delay(Duration::from_secs(1)); 200]);
    let agent = AgentProcess::start(&cfg, &[]);
    assert!(agent.wait_until(Duration::from_secs(20), |a| {
        a.stderr_text().contains("docker daemon reachable")
    }));
    // ~60 MB of output as fast as the container can write it.
    let noisy = docker.run(
        &["--name", "noisy"],
        "yes 'noisy line padded to about one hundred bytes with some filler text xxxxxxxxxxxxxxxxxxxxxxxxxxx' | head -c 60000000",
    );
    let quiet = docker.run(
        &["--name", "quiet"],
        "for i in $(seq 1 20); do echo quiet $i; sleep 0.2; done",
    );
    docker.wait_exit(&quiet);
    // The quiet container's lines arrive while the noisy one's backlog is still being
    // shipped: they do not wait behind it.
    assert!(
        wait_until(Duration::from_secs(30), || lines_of(&receiver, "quiet")
            .len()
            == 20),
        "quiet lines held behind the noisy container"
    );
    let noisy_lines = receiver
        .received()
        .iter()
        .filter(|e| e.labels.get("container").map(String::as_str) == Some("noisy"))
        .count();
    assert!(
        noisy_lines < 500_000,
        "the noisy container's 600k lines are not all shipped yet ({noisy_lines}): Loki is the bottleneck"
    );
    // Memory stays bounded while the daemon holds the backlog.
    let rss = agent.metric("process_resident_memory_bytes");
    assert!(
        rss < 150.0 * 1024.0 * 1024.0,
        "resident memory {rss} while 60 MB wait in the daemon"
    );
    docker.docker(&["rm", "-f", &noisy]);
    let _ = agent.kill_hard();
}
