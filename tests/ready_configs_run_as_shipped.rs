//! The ready configs of `config/` work as shipped: the reference deployment's Promtail
//! config loads unchanged and parses the deployment's logs into the labels and counters
//! its users expect; the recommended `agent.yaml` loads; the alert rules pass `promtool
//! check rules` and their `promtool test rules` unit tests; the Grafana dashboard is JSON
//! whose every query names a metric tailward exposes or a counter `agent.yaml` derives.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::support::agent_process::{AgentProcess, BIN, metric_value, write_config};
use serde_json::Value;

const CONFIG_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/config");

fn check_syntax(file: &str) -> (bool, String) {
    let out = Command::new(BIN)
        .arg(format!("-config.file={CONFIG_DIR}/{file}"))
        .arg("-check-syntax")
        .output()
        .expect("run tailward");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn promtail_compat_config_passes_check_syntax() {
    let (ok, output) = check_syntax("promtail-compat.yaml");
    assert!(ok, "{output}");
}

/// Passes once the presets it uses (nginx_access, nginx_error, json_app) exist.
#[test]
fn agent_config_passes_check_syntax() {
    let (ok, output) = check_syntax("agent.yaml");
    assert!(ok, "{output}");
}

const APP_LOG: &str = "\
[2026-11-20 10:00:01,250] INFO in routes.index:42 - GET / served
[2026-11-20 10:00:02,500] ERROR in app.handle_exception:1891 - Exception on /orders [POST]
Traceback (most recent call last):
  File \"/srv/app/views.py\", line 88, in create_order
    order = Order.from_form(request.form)
sqlite3.IntegrityError: UNIQUE constraint failed: orders.id
[2026-11-20 10:00:03,000] WARNING in db.connect:12 - slow query
";
const JSON_LOG: &str = r#"{"timestamp": "2026-11-27T10:15:00.000000+00:00", "level": "INFO", "logger": "app.routes", "message": "Request started GET /api/orders", "correlation_id": "req-269e0d37"}
{"timestamp": "2026-11-27T10:15:07.037119+00:00", "level": "ERROR", "logger": "app.db", "message": "boom", "correlation_id": "req-a6a3a450", "exception": {"type": "OperationalError", "message": "database is locked", "traceback": "..."}}
"#;
const ACCESS_LOG: &str = r#"203.0.113.7 - - [27/Nov/2026:10:15:00 +0000] "GET /api/orders?page=2 HTTP/1.1" 200 1843 "-" "curl/8.5.0" 0.012 0.011 "req-269e0d37"
198.51.100.23 - - [27/Nov/2026:10:15:05 +0000] "POST /login HTTP/1.1" 500 0 "-" "Mozilla/5.0" 0.250 0.249 "req-a6a3a450"
198.51.100.23 - - [27/Nov/2026:10:15:06 +0000] "GET /api/orders HTTP/1.1" 200 10 "-" "Mozilla/5.0" 1.500 1.499 "-"
"#;
const NGINX_ERROR_LOG: &str = "2026/11/27 10:15:06 [error] 1234#1234: *5 connect() failed (111: Connection refused) while connecting to upstream, client: 203.0.113.7\n";
const AUTH_LOG: &str = "\
Nov 27 10:15:01 web1 sshd[2210]: Accepted publickey for deploy from 203.0.113.7 port 52144 ssh2: ED25519 SHA256:Xk3
Nov 27 10:15:03 web1 sshd[2211]: Failed password for invalid user admin from 198.51.100.9 port 40022 ssh2
Nov 27 10:15:04 web1 sshd[2211]: Failed password for root from 198.51.100.9 port 40023 ssh2
Nov 27 10:15:09 web1 sudo:   deploy : TTY=pts/0 ; PWD=/home/deploy ; USER=root ; COMMAND=/usr/bin/systemctl restart app
";

/// The shipped config with its paths moved into `dir` and the server on a free port;
/// nothing else changes.
fn relocated_promtail_compat(dir: &Path) -> String {
    let text = std::fs::read_to_string(format!("{CONFIG_DIR}/promtail-compat.yaml")).unwrap();
    let d = dir.display();
    let relocated = text
        .replace("/opt/cvd/logs/", &format!("{d}/"))
        .replace("/var/log/nginx/access.log", &format!("{d}/access.log"))
        .replace("/var/log/nginx/error.log", &format!("{d}/nginx-error.log"))
        .replace("/var/log/auth.log", &format!("{d}/auth.log"))
        .replace("/var/lib/promtail/", &format!("{d}/"))
        .replace(
            "http_listen_address: 0.0.0.0",
            "http_listen_address: 127.0.0.1",
        )
        .replace("http_listen_port: 9080", "http_listen_port: 0");
    for moved in [
        "/opt/cvd",
        "/var/log",
        "/var/lib/promtail",
        "9080",
        "0.0.0.0",
    ] {
        assert!(
            !relocated.contains(moved),
            "config/promtail-compat.yaml changed: {moved} is left after relocation"
        );
    }
    relocated
}

/// Dry-run output lines (`time \t labels \t line`) keyed by their first line of text.
fn entries_by_line(stdout: &str) -> BTreeMap<String, String> {
    stdout
        .lines()
        .filter_map(|l| {
            let labels_start = l.find('{')?;
            let labels_end = labels_start + l[labels_start..].find('}')?;
            let line = l[labels_end + 1..].trim_start_matches('\t');
            Some((line.to_string(), l[labels_start..=labels_end].to_string()))
        })
        .collect()
}

#[test]
fn promtail_compat_config_parses_the_reference_logs_and_derives_counters() {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in [
        ("app.log", APP_LOG),
        (
            "error.log",
            "[2026-11-20 10:00:04,000] ERROR in db.connect:13 - database is locked\n",
        ),
        ("app.json.log", JSON_LOG),
        ("access.log", ACCESS_LOG),
        ("nginx-error.log", NGINX_ERROR_LOG),
        ("auth.log", AUTH_LOG),
    ] {
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    let config = write_config(dir.path(), &relocated_promtail_compat(dir.path()));
    let agent = AgentProcess::start(&config, &["-dry-run"]);
    // 3 app entries (one traceback) + 1 error + 2 JSON + 3 access + 1 nginx error + 4 auth.
    let all_out = agent.wait_until(Duration::from_secs(30), |a| {
        a.stdout_text().matches("{filename=").count() >= 14
    });
    let stdout = agent.stdout_text();
    let metrics = agent.get("/metrics").1;
    agent.terminate();
    assert!(all_out, "not every entry came out:\n{stdout}");
    let entries = entries_by_line(&stdout);
    let labels_of = |line_start: &str| -> &str {
        entries
            .iter()
            .find(|(line, _)| line.starts_with(line_start))
            .map(|(_, labels)| labels.as_str())
            .unwrap_or_else(|| panic!("no entry starting {line_start:?} in:\n{stdout}"))
    };
    let d = dir.path().display();
    assert_eq!(
        labels_of("[2026-11-20 10:00:02,500] ERROR"),
        format!(r#"{{filename="{d}/app.log", job="cvd-application", level="ERROR"}}"#)
    );
    assert!(
        stdout.contains("Exception on /orders [POST]\nTraceback (most recent call last):\n"),
        "the traceback is not kept with its header:\n{stdout}"
    );
    assert_eq!(
        labels_of(r#"{"timestamp": "2026-11-27T10:15:07"#),
        format!(
            r#"{{filename="{d}/app.json.log", job="cvd-json-logs", level="ERROR", logger="app.db"}}"#
        )
    );
    assert_eq!(
        labels_of("198.51.100.23 - - [27/Nov/2026:10:15:05"),
        format!(
            r#"{{filename="{d}/access.log", job="nginx-access", method="POST", status="500"}}"#
        )
    );
    assert_eq!(
        labels_of("2026/11/27 10:15:06 [error]"),
        format!(r#"{{filename="{d}/nginx-error.log", job="nginx-error", level="error"}}"#)
    );
    assert_eq!(
        labels_of("Nov 27 10:15:03 web1 sshd"),
        format!(r#"{{filename="{d}/auth.log", job="system-auth", program="sshd"}}"#),
        "status is a label only for the counter"
    );
    for (series, want) in [
        (
            format!(
                r#"cvd_http_requests_total{{filename="{d}/access.log",job="nginx-access",method="GET",status="200"}}"#
            ),
            2.0,
        ),
        (
            format!(
                r#"cvd_http_requests_total{{filename="{d}/access.log",job="nginx-access",method="POST",status="500"}}"#
            ),
            1.0,
        ),
        (
            format!(
                r#"cvd_http_request_duration_seconds_bucket{{filename="{d}/access.log",job="nginx-access",method="GET",status="200",le="1"}}"#
            ),
            1.0,
        ),
        (
            format!(
                r#"cvd_login_attempts_total{{filename="{d}/auth.log",job="system-auth",program="sshd",status="failed"}}"#
            ),
            2.0,
        ),
        (
            format!(
                r#"cvd_login_attempts_total{{filename="{d}/auth.log",job="system-auth",program="sshd",status="success"}}"#
            ),
            1.0,
        ),
        (
            format!(
                r#"cvd_log_lines_total{{filename="{d}/app.json.log",job="cvd-json-logs",level="ERROR",logger="app.db"}}"#
            ),
            1.0,
        ),
    ] {
        assert_eq!(
            metric_value(&metrics, &series),
            want,
            "{series} in:\n{metrics}"
        );
    }
}

#[test]
fn alert_rules_pass_promtool_check_and_unit_tests() {
    for args in [
        ["check", "rules", "alerts.yml"],
        ["test", "rules", "alerts.test.yml"],
    ] {
        let out = Command::new("promtool")
            .args(args)
            .current_dir(CONFIG_DIR)
            .output()
            .expect("promtool is installed by scripts/test (Debian package prometheus)");
        assert!(
            out.status.success(),
            "promtool {}:\n{}{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// Metric names tailward registers itself (src/metrics/mod.rs).
fn agent_metric_names() -> BTreeSet<String> {
    let source =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/src/metrics/mod.rs"))
            .unwrap();
    let mut names = BTreeSet::new();
    for piece in source.split('"').skip(1).step_by(2) {
        if ["promtail_", "logentry_", "tailward_"]
            .iter()
            .any(|p| piece.starts_with(p))
            && piece.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
        {
            names.insert(piece.to_string());
        }
    }
    assert!(names.contains("promtail_read_bytes_total"), "{names:?}");
    names
}

/// Names of the counters (and histogram series) the `metrics` stages of `agent.yaml`
/// define, presets expanded.
fn derived_metric_names() -> Result<BTreeSet<String>, String> {
    let text = std::fs::read_to_string(format!("{CONFIG_DIR}/agent.yaml")).unwrap();
    let config: Value = tailward::config::yaml::from_str(&text).unwrap();
    let mut names = BTreeSet::new();
    for job in config["scrape_configs"].as_array().unwrap() {
        for stage in job["pipeline_stages"].as_array().unwrap() {
            collect_metrics(stage, &mut names)?;
        }
    }
    Ok(names)
}

fn collect_metrics(stage: &Value, names: &mut BTreeSet<String>) -> Result<(), String> {
    if let Some(preset) = stage.get("preset") {
        let (name, parameters) = match preset {
            Value::String(name) => (name.clone(), BTreeMap::new()),
            block => (
                block["name"].as_str().unwrap().to_string(),
                serde_json::from_value(block.get("parameters").cloned().unwrap_or_default())
                    .unwrap_or_default(),
            ),
        };
        let stages = tailward::pipeline::presets::expand(&name, &parameters)
            .map_err(|e| format!("preset {name}: {}: {}", e.key, e.message))?;
        for stage in stages {
            collect_metrics(&serde_json::to_value(&stage).unwrap(), names)?;
        }
    }
    if let Some(Value::Object(metrics)) = stage.get("metrics") {
        for (name, metric) in metrics {
            let prefix = metric["prefix"]
                .as_str()
                .filter(|p| !p.is_empty())
                .unwrap_or("promtail_custom_");
            let full = format!("{prefix}{name}");
            if metric["type"]
                .as_str()
                .unwrap()
                .eq_ignore_ascii_case("histogram")
            {
                for suffix in ["_bucket", "_sum", "_count"] {
                    names.insert(format!("{full}{suffix}"));
                }
            }
            names.insert(full);
        }
    }
    if let Some(Value::Array(nested)) = stage.get("match").and_then(|m| m.get("stages")) {
        for stage in nested {
            collect_metrics(stage, names)?;
        }
    }
    Ok(())
}

/// Metric names in a PromQL expression: identifiers with an `_` followed by `{` or `[`
/// (every query of the dashboard selects its metric with labels or a range), outside label
/// matchers and strings.
fn metric_names_in(expr: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let bytes = expr.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        if c.is_ascii_alphabetic() || c == b'_' {
            let start = i;
            while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
                i += 1;
            }
            let word = &expr[start..i];
            let inside_labels = expr[..start].rfind('{') > expr[..start].rfind('}');
            let next = expr[i..].trim_start().chars().next();
            if !inside_labels && word.contains('_') && matches!(next, Some('{' | '[')) {
                names.insert(word.to_string());
            }
        } else if c == b'"' {
            i += 1;
            while i < bytes.len() && bytes[i] != b'"' {
                i += 1;
            }
            i += 1;
        } else {
            i += 1;
        }
    }
    names
}

#[test]
fn dashboard_queries_only_metrics_tailward_exposes_or_agent_config_derives() {
    let text = std::fs::read_to_string(format!("{CONFIG_DIR}/dashboard.json")).unwrap();
    let dashboard: Value = serde_json::from_str(&text).expect("dashboard.json is JSON");
    let mut queried = BTreeSet::new();
    let mut exprs = 0;
    fn walk(v: &Value, f: &mut dyn FnMut(&str)) {
        match v {
            Value::Object(m) => {
                for (k, v) in m {
                    if (k == "expr" || k == "definition")
                        && let Some(s) = v.as_str()
                    {
                        f(s);
                    }
                    walk(v, f);
                }
            }
            Value::Array(a) => a.iter().for_each(|v| walk(v, f)),
            _ => {}
        }
    }
    walk(&dashboard, &mut |expr| {
        exprs += 1;
        queried.extend(metric_names_in(expr));
        // `label_values(metric, label)` names its metric without braces.
        if let Some(args) = expr.strip_prefix("label_values(") {
            queried.insert(args.split(',').next().unwrap().trim().to_string());
        }
    });
    assert!(exprs >= 10, "only {exprs} queries found");
    let known_agent = agent_metric_names();
    let derived = derived_metric_names().unwrap_or_else(|e| panic!("config/agent.yaml: {e}"));
    let unknown: Vec<&String> = queried
        .iter()
        .filter(|name| {
            let base = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| name.strip_suffix(s))
                .unwrap_or(name);
            !known_agent.contains(*name) && !known_agent.contains(base) && !derived.contains(*name)
        })
        .collect();
    assert!(
        unknown.is_empty(),
        "dashboard queries metrics neither tailward nor config/agent.yaml defines: {unknown:?}\n\
         derived: {derived:?}"
    );
    for derived_name in ["cvd_http_requests_total", "cvd_login_attempts_total"] {
        assert!(
            queried.contains(derived_name),
            "dashboard lacks {derived_name}"
        );
    }
}

#[test]
fn promql_metric_name_scan_finds_metrics_not_functions_or_labels() {
    assert_eq!(
        metric_names_in(
            r#"histogram_quantile(0.95, sum by (le) (rate(cvd_x_bucket{instance=~"a_b{"}[5m]))) / sum(up_total{job="x"})"#
        ),
        BTreeSet::from(["cvd_x_bucket".to_string(), "up_total".to_string()])
    );
}
