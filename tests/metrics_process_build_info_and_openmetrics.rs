//! `/metrics` carries what Promtail's carries beyond the agent's own series: the standard
//! `process_*` series, `promtail_build_info` with client_golang's labels, and the journal
//! target series; a scraper asking for OpenMetrics (as Prometheus does) gets OpenMetrics 1.0,
//! anyone else the classic text format that promtool accepts.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::support::agent_process::{AgentProcess, metric_value, write_config};

/// Prometheus' scrape `Accept` header (2.x and 3.x).
const PROMETHEUS_ACCEPT: &str = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";

/// GET /metrics with `accept`; returns (content type, body).
fn scrape(port: u16, accept: Option<&str>) -> (String, String) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let accept = accept.map_or(String::new(), |a| format!("Accept: {a}\r\n"));
    write!(
        stream,
        "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n{accept}Connection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let content_type = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-type: ")
                .map(str::to_string)
        })
        .unwrap_or_default();
    (content_type, body.to_string())
}

fn agent(dir: &std::path::Path) -> AgentProcess {
    let log = dir.join("app.log");
    std::fs::write(&log, "one\ntwo\n").unwrap();
    let config = write_config(
        dir,
        &format!(
            "server: {{http_listen_address: 127.0.0.1, http_listen_port: 0}}\n\
             positions: {{filename: {}}}\n\
             clients: [{{url: 'http://127.0.0.1:9/loki/api/v1/push'}}]\n\
             scrape_configs:\n  - job_name: app\n    static_configs: [{{labels: {{job: app, __path__: {}}}}}]\n",
            dir.join("positions.yaml").display(),
            log.display()
        ),
    );
    let agent = AgentProcess::start(&config, &["-dry-run"]);
    assert!(agent.wait_until(Duration::from_secs(10), |a| {
        a.metric("promtail_read_lines_total") >= 2.0
    }));
    agent
}

#[test]
fn process_series_build_info_and_journal_series_are_served() {
    let dir = tempfile::tempdir().unwrap();
    let agent = agent(dir.path());
    let (content_type, body) = scrape(agent.port, None);
    assert_eq!(content_type, "text/plain; version=0.0.4; charset=utf-8");
    assert!(
        body.contains("# TYPE process_cpu_seconds_total counter"),
        "{body}"
    );
    assert!(
        metric_value(&body, "process_resident_memory_bytes") > 1e6,
        "{body}"
    );
    assert!(metric_value(&body, "process_open_fds") >= 3.0, "{body}");
    assert!(
        metric_value(&body, "process_start_time_seconds") > 1.6e9,
        "{body}"
    );
    let build_info = body
        .lines()
        .find(|l| l.starts_with("promtail_build_info{"))
        .unwrap_or_else(|| panic!("no promtail_build_info in:\n{body}"));
    for label in [
        "branch=",
        "goarch=",
        "goos=\"linux\"",
        "goversion=\"rustc ",
        "revision=",
        "tags=",
    ] {
        assert!(build_info.contains(label), "{label} in {build_info}");
    }
    assert!(
        build_info.ends_with(&format!("version=\"{}\"}} 1", env!("CARGO_PKG_VERSION"))),
        "{build_info}"
    );
    // The parsing-error counter has series only once an entry is skipped, as in Promtail.
    assert!(
        body.contains("# TYPE promtail_journal_target_lines_total counter"),
        "{body}"
    );

    // promtool's lint finds nothing but the gauges Promtail itself names `_total`.
    let mut promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool is installed by scripts/test (Debian package prometheus)");
    promtool
        .stdin
        .take()
        .unwrap()
        .write_all(body.as_bytes())
        .unwrap();
    let out = promtool.wait_with_output().unwrap();
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    for line in report.lines().filter(|l| !l.trim().is_empty()) {
        let name = line.split_whitespace().next().unwrap_or_default();
        assert!(
            [
                "promtail_read_bytes_total",
                "promtail_file_bytes_total",
                "promtail_files_active_total",
                "promtail_targets_active_total",
            ]
            .contains(&name),
            "promtool: {line}\nfull report:\n{report}"
        );
    }
    agent.terminate();
}

#[test]
fn an_openmetrics_scrape_gets_openmetrics() {
    let dir = tempfile::tempdir().unwrap();
    let agent = agent(dir.path());
    let (content_type, body) = scrape(agent.port, Some(PROMETHEUS_ACCEPT));
    assert_eq!(
        content_type,
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    );
    assert!(body.ends_with("# EOF\n"), "{body}");
    assert!(
        body.contains("# TYPE promtail_read_lines counter\n"),
        "{body}"
    );
    assert!(
        body.contains("\npromtail_read_lines_total{path=\""),
        "{body}"
    );
    assert!(
        body.contains("# TYPE process_cpu_seconds counter\n"),
        "{body}"
    );
    assert!(body.contains("\nprocess_cpu_seconds_total "), "{body}");
    assert!(
        body.contains("# TYPE promtail_build_info gauge\n"),
        "{body}"
    );
    // Every sample line belongs to a family declared before it.
    let mut families: Vec<&str> = Vec::new();
    for line in body.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            families.push(rest.split(' ').next().unwrap());
        } else if !line.starts_with('#') {
            let name = line.split(['{', ' ']).next().unwrap();
            assert!(
                families.iter().any(|f| name.starts_with(f)),
                "{name} without a # TYPE line"
            );
        }
    }
    let (content_type, _) = scrape(agent.port, Some("text/plain;version=0.0.4"));
    assert_eq!(content_type, "text/plain; version=0.0.4; charset=utf-8");
    agent.terminate();
}
