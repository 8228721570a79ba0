//! The docker source when the daemon is not there, restarts, refuses the agent (socket
//! permissions, a TLS daemon without a client certificate), or when Loki is slower than a
//! container's output: failures are logged once per change of state, counted, retried with
//! backoff, and the agent's other jobs keep running; a container writing faster than Loki
//! accepts is held back (memory stays bounded) while a quiet container's lines keep flowing.

use std::collections::HashSet;
use std::path::Path;
use std::time::Duration;

use crate::support::agent_process::{AgentProcess, write_config};
use crate::support::dockerd::Dockerd;
use crate::support::receiver::{Receiver, Reply};
use crate::support::unprivileged_agent::{UnprivilegedAgent, hand_over_dir};
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

#[tokio::test(flavor = "multi_thread")]
async fn docker_socket_not_permitted_is_logged_once_and_read_once_permitted() {
    use std::os::unix::fs::PermissionsExt;
    let docker = Dockerd::start();
    let socket_dir = docker.socket().parent().unwrap().to_path_buf();
    std::fs::set_permissions(&socket_dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    // As dockerd makes it: root's, 0660, for the docker group the agent is not in.
    std::fs::set_permissions(docker.socket(), std::fs::Permissions::from_mode(0o660)).unwrap();
    let receiver = Receiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    hand_over_dir(dir.path());
    let log_file = dir.path().join("app.log");
    std::fs::write(&log_file, "file line 1\n").unwrap();
    std::fs::set_permissions(&log_file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let cfg = write_config(
        dir.path(),
        &config(
            dir.path(),
            &receiver.url(),
            &docker.host(),
            &log_file.display().to_string(),
        ),
    );
    std::fs::set_permissions(&cfg, std::fs::Permissions::from_mode(0o644)).unwrap();
    let agent = UnprivilegedAgent::start(&cfg);

    receiver.wait_for_entries(1, Duration::from_secs(20)).await;
    assert!(
        wait_until(Duration::from_secs(20), || {
            agent.metric("tailward_docker_daemon_errors_total{reason=\"unreachable\"}") >= 3.0
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
        log.contains("Permission denied"),
        "the reason is given:\n{log}"
    );

    // Permitted: read without a restart.
    std::fs::set_permissions(docker.socket(), std::fs::Permissions::from_mode(0o666)).unwrap();
    let id = docker.run(
        &["--name", "late"],
        "for i in $(seq 1 10); do echo late $i; done",
    );
    docker.wait_exit(&id);
    assert!(
        wait_until(Duration::from_secs(30), || lines_of(&receiver, "late")
            .len()
            == 10),
        "{}",
        agent.stderr_text()
    );
    let (_, log) = agent.terminate_within(Duration::from_secs(10));
    assert_eq!(occurrences(&log, "docker daemon reachable"), 1, "{log}");
}

/// A CA, a server certificate for `localhost` and a client certificate, written to `dir`.
fn write_pki(dir: &Path) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let pair = |name: &str, san: &str| {
        let key = KeyPair::generate().unwrap();
        let cert = CertificateParams::new(vec![san.to_string()])
            .unwrap()
            .signed_by(&key, &issuer)
            .unwrap();
        std::fs::write(dir.join(format!("{name}.pem")), cert.pem()).unwrap();
        std::fs::write(dir.join(format!("{name}-key.pem")), key.serialize_pem()).unwrap();
    };
    pair("server", "localhost");
    pair("client", "client.test");
    std::fs::write(dir.join("ca.pem"), ca.pem()).unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn docker_tls_daemon_is_read_with_a_client_certificate_and_refuses_without() {
    let pki = tempfile::tempdir().unwrap();
    write_pki(pki.path());
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let p = |f: &str| pki.path().join(f).display().to_string();
    let daemon_dir = tempfile::Builder::new()
        .prefix("tw-dockerd")
        .tempdir()
        .unwrap();
    let socket = daemon_dir.path().join("docker.sock");
    let docker = Dockerd::start_with(
        daemon_dir,
        socket,
        vec![
            format!("--host=tcp://127.0.0.1:{port}"),
            "--tlsverify".into(),
            format!("--tlscacert={}", p("ca.pem")),
            format!("--tlscert={}", p("server.pem")),
            format!("--tlskey={}", p("server-key.pem")),
        ],
    );
    let receiver = Receiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let job = |name: &str, tls: &str| {
        format!(
            "  - job_name: {name}\n    docker_sd_configs:\n      - host: tcp://localhost:{port}\n        \
             refresh_interval: 1s\n        tls_config:\n{tls}    relabel_configs:\n      \
             - source_labels: ['__meta_docker_container_name']\n        target_label: container\n      \
             - target_label: job\n        replacement: {name}\n"
        )
    };
    let with_cert = format!(
        "          ca_file: {}\n          cert_file: {}\n          key_file: {}\n",
        p("ca.pem"),
        p("client.pem"),
        p("client-key.pem")
    );
    let without_cert = format!("          ca_file: {}\n", p("ca.pem"));
    let text = format!(
        "server:\n  http_listen_address: 127.0.0.1\n  http_listen_port: 0\npositions:\n  filename: {}\n\
         clients:\n  - url: {}\n    batchwait: 100ms\nscrape_configs:\n{}{}",
        dir.path().join("positions.yaml").display(),
        receiver.url(),
        job("certified", &with_cert),
        job("anonymous", &without_cert),
    );
    let cfg = write_config(dir.path(), &text);
    let agent = AgentProcess::start(&cfg, &[]);
    let id = docker.run(
        &["--name", "tls"],
        "for i in $(seq 1 10); do echo tls $i; done",
    );
    docker.wait_exit(&id);
    assert!(
        wait_until(Duration::from_secs(30), || receiver.received().len() >= 10),
        "{}",
        agent.stderr_text()
    );
    crate::support::watch_for_stragglers(Duration::from_millis(1500)).await;
    let received = receiver.received();
    assert_eq!(
        received.len(),
        10,
        "only the job with a client certificate reads"
    );
    assert!(
        received
            .iter()
            .all(|e| e.labels.get("job").map(String::as_str) == Some("certified"))
    );
    let log = agent.stderr_text();
    assert!(
        log.contains("job=anonymous") && log.contains("docker discovery failed"),
        "the daemon refuses the job without a certificate:\n{log}"
    );
    let (status, log) = agent.terminate();
    assert!(status.success(), "{log}");
}
