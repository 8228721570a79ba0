//! The pages Promtail serves: `/targets` (per job: files, delivered position, size, lag; or
//! for a listener job its kind, address and labels),
//! `/service-discovery` (targets before and after relabeling, dropped ones), and `/config`,
//! which, like `-print-config-stderr`, shows the effective config with no secret in it.

use std::process::Command;
use std::time::Duration;

use crate::support::agent_process::{AgentProcess, BIN, file_job_config, write_config};
use crate::support::receiver::Receiver;

/// Every secret the config below gives; none may appear in `/config` or on stderr.
const SECRETS: [&str; 7] = [
    "urlpass-7f3a",
    "basicpass-91c2",
    "proxypass-5d6e",
    "bearertok-2b8f",
    "authcred-c4a1",
    "hdrtoken-e0d9",
    "authhdr-66b3",
];

fn secret_config(dir: &std::path::Path) -> (String, String) {
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["client.test".to_string()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let indent = |pem: &str| {
        pem.lines()
            .map(|l| format!("          {l}\n"))
            .collect::<String>()
    };
    let key_pem = key.serialize_pem();
    // The base64 body of the key: what must never be shown.
    let key_body = key_pem
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect::<String>();
    let log = dir.join("app.log");
    std::fs::write(&log, "line\n").unwrap();
    let yaml = format!(
        r#"server:
  http_listen_address: 127.0.0.1
  http_listen_port: 0
  graceful_shutdown_timeout: 1s
positions:
  filename: {positions}
clients:
  - url: http://lokiuser:urlpass-7f3a@127.0.0.1:9/loki/api/v1/push
    headers:
      X-Api-Token: hdrtoken-e0d9
      X-Scope-OrgID: tenant-visible
    tls_config:
      cert: |
{cert}      key: |
{key}
  - url: http://127.0.0.1:9/loki/api/v1/push
    basic_auth:
      username: visible-user
      password: basicpass-91c2
    proxy_url: http://proxyuser:proxypass-5d6e@127.0.0.1:3128
  - url: http://127.0.0.1:9/loki/api/v1/push
    bearer_token: bearertok-2b8f
    headers:
      Authorization-Extra: authhdr-66b3
  - url: http://127.0.0.1:9/loki/api/v1/push
    authorization:
      type: Bearer
      credentials: authcred-c4a1
scrape_configs:
  - job_name: app
    static_configs:
      - labels:
          __path__: {log}
"#,
        positions = dir.join("positions.yaml").display(),
        cert = indent(&cert.pem()),
        key = indent(&key_pem),
        log = log.display(),
    );
    (yaml, key_body)
}

fn assert_no_secret(text: &str, key_body: &str, what: &str) {
    for secret in SECRETS {
        assert!(!text.contains(secret), "{what} shows {secret}:\n{text}");
    }
    for line in key_body.as_bytes().chunks(40) {
        let piece = String::from_utf8_lossy(line);
        assert!(
            !text.contains(piece.as_ref()),
            "{what} shows key material:\n{text}"
        );
    }
    assert!(!text.contains("PRIVATE KEY"), "{what}:\n{text}");
    // What is not secret is still there, so the page is the real config.
    for visible in [
        "visible-user",
        "tenant-visible",
        "lokiuser",
        "BEGIN CERTIFICATE",
    ] {
        assert!(text.contains(visible), "{what} lost {visible}:\n{text}");
    }
    assert!(text.matches("<secret>").count() > SECRETS.len(), "{text}");
}

#[test]
fn config_page_and_print_config_stderr_show_no_secret() {
    let dir = tempfile::tempdir().unwrap();
    let (yaml, key_body) = secret_config(dir.path());
    let config = write_config(dir.path(), &yaml);

    let printed = Command::new(BIN)
        .arg(format!("-config.file={}", config.display()))
        .args(["-print-config-stderr", "-check-syntax"])
        .output()
        .unwrap();
    assert!(printed.status.success(), "{printed:?}");
    let stderr = String::from_utf8_lossy(&printed.stderr);
    assert_no_secret(&stderr, &key_body, "-print-config-stderr");

    let agent = AgentProcess::start(&config, &[]);
    let (status, body) = agent.get("/config");
    assert_eq!(status, 200);
    assert_no_secret(&body, &key_body, "/config");
    // Nor does the agent's own log mention them.
    let (_, log) = agent.terminate();
    for secret in SECRETS {
        assert!(!log.contains(secret), "log shows {secret}:\n{log}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn targets_page_shows_each_file_with_position_size_and_lag() {
    let receiver = Receiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    std::fs::create_dir(&logs).unwrap();
    std::fs::write(logs.join("a.log"), "one\ntwo\n").unwrap();
    std::fs::write(logs.join("b.log"), "three\n").unwrap();
    let cfg = file_job_config(
        &receiver.url(),
        &dir.path().join("positions.yaml"),
        &format!("{}/*.log", logs.display()),
        "",
        "      - static_labels:\n          env: test\n",
    );
    let agent = AgentProcess::start(&write_config(dir.path(), &cfg), &[]);
    receiver.wait_for_entries(3, Duration::from_secs(20)).await;

    let a = logs.join("a.log").display().to_string();
    let b = logs.join("b.log").display().to_string();
    // Target labels (pipeline labels come later); delivered a.log 8 bytes of 8, b.log 6 of 6,
    // so no lag.
    let row = |path: &str, pos: u64, size: u64, lag: u64| {
        format!(
            "<td>{path}</td><td>{{filename=&quot;{path}&quot;, job=&quot;app&quot;}}</td><td>{pos}</td><td>{size}</td><td>{lag}</td>"
        )
    };
    let caught_up = agent.wait_until(Duration::from_secs(10), |ag| {
        let (_, page) = ag.get("/targets");
        page.contains(&row(&a, 8, 8, 0)) && page.contains(&row(&b, 6, 6, 0))
    });
    assert!(caught_up, "{}", agent.get("/targets").1);
    let (status, page) = agent.get("/targets");
    assert_eq!(status, 200);
    assert!(page.contains("app (2 files)"), "{page}");

    // A file that grows shows its new size once delivered.
    std::fs::OpenOptions::new()
        .append(true)
        .open(logs.join("b.log"))
        .and_then(|mut f| std::io::Write::write_all(&mut f, b"four\n"))
        .unwrap();
    receiver.wait_for_entries(4, Duration::from_secs(20)).await;
    assert!(
        agent.wait_until(Duration::from_secs(10), |ag| ag
            .get("/targets")
            .1
            .contains(&row(&b, 11, 11, 0))),
        "{}",
        agent.get("/targets").1
    );
}

#[test]
fn targets_page_shows_undelivered_bytes_as_lag() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    std::fs::write(&log, "0123456789\nabc\n").unwrap();
    // Nothing listens on port 9: nothing is delivered, so the position stays 0.
    let cfg = file_job_config(
        "http://127.0.0.1:9/loki/api/v1/push",
        &dir.path().join("positions.yaml"),
        &log.display().to_string(),
        "",
        "      - static_labels:\n          env: test\n",
    );
    let agent = AgentProcess::start(&write_config(dir.path(), &cfg), &[]);
    let path = log.display().to_string();
    let listed = agent.wait_until(Duration::from_secs(10), |ag| {
        ag.get("/targets").1.contains(&format!("<td>{path}</td>"))
    });
    let (_, page) = agent.get("/targets");
    assert!(listed, "{page}");
    assert!(
        page.contains("</td><td>0</td><td>15</td><td>15</td></tr>"),
        "position 0, size 15, lag 15: {page}"
    );
}

#[test]
fn service_discovery_page_shows_targets_before_after_relabeling_and_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    std::fs::write(&log, "x\n").unwrap();
    let yaml = format!(
        r#"server:
  http_listen_address: 127.0.0.1
  http_listen_port: 0
positions:
  filename: {positions}
clients:
  - url: http://127.0.0.1:9/loki/api/v1/push
scrape_configs:
  - job_name: app
    static_configs:
      - targets: [kept]
        labels:
          team: core
          __path__: {log}
      - targets: [gone]
        labels:
          __path__: /nonexistent/*.log
    relabel_configs:
      - source_labels: [__address__]
        regex: gone
        action: drop
      - source_labels: [team]
        target_label: owner
"#,
        positions = dir.path().join("positions.yaml").display(),
        log = log.display(),
    );
    let agent = AgentProcess::start(&write_config(dir.path(), &yaml), &[]);
    let (status, page) = agent.get("/service-discovery");
    assert_eq!(status, 200);
    assert!(page.contains("app (1 active / 2 total)"), "{page}");
    assert!(
        page.contains("__address__=&quot;kept&quot;") && page.contains("owner=&quot;core&quot;"),
        "active target before and after relabeling: {page}"
    );
    assert!(
        page.contains("__address__=&quot;gone&quot;") && page.contains("dropped (dropped)"),
        "dropped target: {page}"
    );
}

/// Jobs that tail no files show their listeners (kind, address, labels, ready) on
/// `/targets` and `/service-discovery`; file_sd targets show their `__meta_filepath`.
#[test]
fn listener_and_file_sd_jobs_show_on_targets_and_service_discovery() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("sd.log");
    std::fs::write(&log, "x\n").unwrap();
    let targets_file = dir.path().join("targets.json");
    std::fs::write(
        &targets_file,
        format!(
            r#"[{{"targets": ["h1"], "labels": {{"__path__": "{}", "rack": "r7"}}}}]"#,
            log.display()
        ),
    )
    .unwrap();
    let yaml = format!(
        r#"server:
  http_listen_address: 127.0.0.1
  http_listen_port: 0
positions:
  filename: {positions}
clients:
  - url: http://127.0.0.1:9/loki/api/v1/push
scrape_configs:
  - job_name: syslog-in
    syslog:
      listen_address: 127.0.0.1:0
      labels: {{job: syslog, tier: edge}}
  - job_name: gelf-in
    gelf:
      listen_address: 127.0.0.1:0
      labels: {{job: docker}}
  - job_name: sd
    file_sd_configs:
      - files: [{targets}]
"#,
        positions = dir.path().join("positions.yaml").display(),
        targets = targets_file.display(),
    );
    let agent = AgentProcess::start(&write_config(dir.path(), &yaml), &[]);
    let shown = agent.wait_until(Duration::from_secs(20), |a| {
        a.get("/targets").1.contains("sd.log")
    });
    let (status, page) = agent.get("/targets");
    assert!(shown && status == 200, "{page}");
    assert!(page.contains("syslog-in (1 targets)"), "{page}");
    assert!(page.contains("<td>syslog</td><td>tcp 127.0.0.1:"), "{page}");
    assert!(
        page.contains("job=&quot;syslog&quot;, tier=&quot;edge&quot;"),
        "{page}"
    );
    assert!(page.contains("gelf-in (1 targets)"), "{page}");
    assert!(page.contains("<td>gelf</td><td>udp 127.0.0.1:"), "{page}");
    assert!(page.contains("<td>true</td>"), "{page}");
    assert!(page.contains("sd (1 files)"), "{page}");
    // The random ports are real: the page shows where the listener is bound.
    let port: u16 = page
        .split("<td>tcp 127.0.0.1:")
        .nth(1)
        .and_then(|rest| rest.split('<').next())
        .and_then(|p| p.parse().ok())
        .unwrap();
    assert_ne!(port, 0);
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_ok());

    let (status, sd) = agent.get("/service-discovery");
    assert_eq!(status, 200);
    assert!(sd.contains("syslog-in (1 active / 1 total)"), "{sd}");
    assert!(sd.contains("gelf-in (1 active / 1 total)"), "{sd}");
    assert!(
        sd.contains(&format!(
            "__meta_filepath=&quot;{}&quot;",
            targets_file.display()
        )) && sd.contains("__address__=&quot;h1&quot;")
            && sd.contains("rack=&quot;r7&quot;"),
        "{sd}"
    );
}
