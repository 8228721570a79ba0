//! The `metrics` stage's counters, gauges and histograms appear on the agent's `/metrics` with
//! the entry's labels as series labels, in an exposition `promtool` accepts; a series idle past
//! `max_idle_duration` disappears; two jobs may declare the same metric, and conflicting
//! declarations stop the agent at startup with the key that clashed.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::agent_process::{
    AgentProcess, BIN, file_job_config, metric_value, write_config,
};
use crate::support::receiver::Receiver;

/// Promtail's own gauges named `_total`: the only promtool findings accepted (as in
/// `metrics_and_ready_endpoints.rs`).
const PROMTAIL_GAUGES_NAMED_TOTAL: [&str; 4] = [
    "promtail_read_bytes_total",
    "promtail_file_bytes_total",
    "promtail_files_active_total",
    "promtail_targets_active_total",
];

const STAGES: &str = r#"      - regex:
          expression: '^level=(?P<level>\w+) duration=(?P<duration>\S+) queue=(?P<queue>\d+)'
      - labels:
          level:
      - metrics:
          lines_total:
            type: Counter
            description: "All lines."
            config: {match_all: true, action: inc}
          line_bytes_total:
            type: Counter
            description: "Bytes of all lines."
            config: {match_all: true, count_entry_bytes: true, action: add}
          error_lines_total:
            type: Counter
            description: "Lines at level error."
            source: level
            max_idle_duration: 4s
            config: {value: error, action: inc}
          queue_depth:
            type: Gauge
            description: "Last queue depth seen."
            source: queue
            config: {action: set}
          request_duration_seconds:
            type: histogram
            description: "Request durations."
            source: duration
            config:
              buckets: [0.1, 0.5, 1, 5]
"#;

const LINES: [&str; 4] = [
    "level=info duration=0.120 queue=3 msg=ok",
    "level=error duration=1.5 queue=7 msg=boom",
    "level=info duration=250ms queue=5 msg=ok",
    "no structured fields here",
];

/// A series name with the file job's labels plus `level` when given.
fn series(name: &str, path: &str, level: Option<&str>, extra: &str) -> String {
    let level = level.map(|l| format!(",level=\"{l}\"")).unwrap_or_default();
    format!("{name}{{filename=\"{path}\",job=\"app\"{level}{extra}}}")
}

fn bytes_of(lines: impl Iterator<Item = &'static str>) -> f64 {
    lines.map(str::len).sum::<usize>() as f64
}

fn promtool_findings(exposition: &str) -> String {
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
        .write_all(exposition.as_bytes())
        .unwrap();
    let out = promtool.wait_with_output().unwrap();
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_stage_series_have_entry_labels_pass_promtool_and_expire_when_idle() {
    let receiver = Receiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    std::fs::write(&log, LINES.map(|l| format!("{l}\n")).concat()).unwrap();
    let path = log.display().to_string();
    let cfg = file_job_config(
        &receiver.url(),
        &dir.path().join("p.yaml"),
        &path,
        "",
        STAGES,
    );
    let agent = AgentProcess::start(&write_config(dir.path(), &cfg), &[]);
    let error_series = series(
        "promtail_custom_error_lines_total",
        &path,
        Some("error"),
        "",
    );
    assert!(
        agent.wait_until(Duration::from_secs(20), |a| {
            a.metric("promtail_custom_lines_total") >= 4.0 && a.metric(&error_series) == 1.0
        }),
        "metrics stage series never appeared:\n{}",
        agent.get("/metrics").1
    );
    let first_seen = Instant::now();
    let (status, body) = agent.get("/metrics");
    assert_eq!(status, 200);
    let value = |s: &str| metric_value(&body, s);

    let lines = "promtail_custom_lines_total";
    assert_eq!(value(&series(lines, &path, Some("info"), "")), 2.0);
    assert_eq!(value(&series(lines, &path, Some("error"), "")), 1.0);
    assert_eq!(value(&series(lines, &path, None, "")), 1.0, "{body}");

    let bytes = "promtail_custom_line_bytes_total";
    assert_eq!(
        value(&series(bytes, &path, Some("info"), "")),
        bytes_of([LINES[0], LINES[2]].into_iter())
    );
    assert_eq!(
        value(&series(bytes, &path, None, "")),
        bytes_of([LINES[3]].into_iter())
    );

    let queue = "promtail_custom_queue_depth";
    assert_eq!(value(&series(queue, &path, Some("info"), "")), 5.0);
    assert_eq!(value(&series(queue, &path, Some("error"), "")), 7.0);
    assert!(
        !body.contains(&series(queue, &path, None, "")),
        "a line without the source must not create a series"
    );

    let bucket = "promtail_custom_request_duration_seconds_bucket";
    let info_bucket = |le: &str| {
        value(&series(
            bucket,
            &path,
            Some("info"),
            &format!(",le=\"{le}\""),
        ))
    };
    assert_eq!(info_bucket("0.1"), 0.0);
    assert_eq!(
        info_bucket("0.5"),
        2.0,
        "0.120 and 250ms fall at or under 0.5"
    );
    assert_eq!(info_bucket("+Inf"), 2.0);
    let sum = value(&series(
        "promtail_custom_request_duration_seconds_sum",
        &path,
        Some("info"),
        "",
    ));
    assert!((sum - 0.37).abs() < 1e-9, "sum {sum}");
    assert_eq!(
        value(&series(
            "promtail_custom_request_duration_seconds_count",
            &path,
            Some("error"),
            ""
        )),
        1.0
    );

    let report = promtool_findings(&body);
    assert!(
        !report.contains("error while linting") && !report.contains("text format parsing error"),
        "promtool could not parse /metrics:\n{report}"
    );
    for finding in report.lines().filter(|l| !l.trim().is_empty()) {
        assert!(
            PROMTAIL_GAUGES_NAMED_TOTAL
                .iter()
                .any(|g| finding.starts_with(g))
                && finding.contains("non-counter metrics should not have \"_total\" suffix"),
            "unexpected promtool finding: {finding}\nfull report:\n{report}"
        );
    }

    // error_lines_total idles out after 4s; lines_total keeps the default 5m. Time is what
    // is tested: a second after the series appeared it must still be there.
    std::thread::sleep(Duration::from_secs(1).saturating_sub(first_seen.elapsed()));
    assert_eq!(
        agent.metric(&error_series),
        1.0,
        "expired well before max_idle_duration"
    );
    assert!(
        agent.wait_until(Duration::from_secs(15), |a| !a
            .get("/metrics")
            .1
            .contains("promtail_custom_error_lines_total")),
        "idle series was never dropped"
    );
    assert!(first_seen.elapsed() >= Duration::from_secs(2));
    assert_eq!(agent.metric(&series(lines, &path, Some("error"), "")), 1.0);
    let (status, _) = agent.terminate();
    assert!(status.success());
}

fn two_job_config(dir: &std::path::Path, second_description: &str) -> String {
    let job = |name: &str, description: &str| {
        format!(
            r#"  - job_name: {name}
    static_configs:
      - labels: {{job: {name}, __path__: {log}}}
    pipeline_stages:
      - metrics:
          lines_total:
            type: Counter
            description: "{description}"
            config: {{match_all: true, action: inc}}
"#,
            log = dir.join(format!("{name}.log")).display()
        )
    };
    format!(
        "server:\n  http_listen_address: 127.0.0.1\n  http_listen_port: 0\npositions:\n  filename: {}\nglobal:\n  file_watch_config:\n    min_poll_frequency: 25ms\n    max_poll_frequency: 100ms\nclients:\n  - url: http://127.0.0.1:9/loki/api/v1/push\nscrape_configs:\n{}{}",
        dir.join("p.yaml").display(),
        job("one", "All lines."),
        job("two", second_description),
    )
}

#[test]
fn two_jobs_declaring_the_same_metric_share_its_family() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("one.log"), "a\n").unwrap();
    std::fs::write(dir.path().join("two.log"), "b\nc\n").unwrap();
    let cfg = write_config(dir.path(), &two_job_config(dir.path(), "All lines."));
    let agent = AgentProcess::start(&cfg, &[]);
    assert!(
        agent.wait_until(Duration::from_secs(20), |a| {
            a.metric("promtail_custom_lines_total") >= 3.0
        }),
        "{}",
        agent.get("/metrics").1
    );
    let body = agent.get("/metrics").1;
    assert_eq!(
        body.matches("# TYPE promtail_custom_lines_total counter")
            .count(),
        1,
        "{body}"
    );
    let per_job = |job: &str| -> f64 {
        body.lines()
            .filter(|l| {
                l.starts_with("promtail_custom_lines_total{")
                    && l.contains(&format!("job=\"{job}\""))
            })
            .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
            .sum()
    };
    assert_eq!(per_job("one"), 1.0, "{body}");
    assert_eq!(per_job("two"), 2.0, "{body}");
}

#[test]
fn conflicting_declarations_of_one_metric_stop_the_agent() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path(), &two_job_config(dir.path(), "Other lines."));
    let out = Command::new(BIN)
        .arg(format!("-config.file={}", cfg.display()))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("scrape_configs[1].pipeline_stages[0].metrics.lines_total")
            && stderr.contains("already declared with description \"All lines.\""),
        "{stderr}"
    );
    assert!(!stderr.contains("server listening"), "{stderr}");
}
