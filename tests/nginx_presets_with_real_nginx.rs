//! The `nginx_access` and `json_app` presets on logs a real nginx (Debian package `nginx`)
//! and a real Python upstream write: every request arrives once at the strict receiver with
//! its parsed fields, the derived counters on `/metrics` equal what was sent by method and
//! status (and `promtool check metrics` accepts them), and the nginx entry and the app entry
//! of one request carry the same `correlation_id` structured metadata.
//!
//! nginx runs in the foreground as a single process (`master_process off`) on a loopback
//! port, with its prefix, pid, temp paths and logs in a temp dir, so it needs no write access
//! to /var/lib/nginx and works as root (CI) or not.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::agent_process::{AgentProcess, metric_value, write_config};
use crate::support::receiver::{ReceivedEntry, Receiver};
use crate::support::{eventually, watch_for_stragglers};

const LOG_FORMAT: &str = r#"$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent "$http_referer" "$http_user_agent" $request_time "$request_id" $upstream_addr"#;

/// The reference deployment's JSON log line, written by the upstream for each request with
/// the X-Correlation-ID nginx passed.
const UPSTREAM: &str = r#"
import datetime, http.server, json, os, sys
log = open(sys.argv[1], "a", buffering=1)
class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        failed = "fail" in self.path
        record = {
            "timestamp": datetime.datetime.now(datetime.timezone.utc).isoformat(),
            "level": "ERROR" if failed else "INFO", "logger": "app.routes",
            "message": "handled " + self.path,
            "module": "routes", "function": "index", "line": 42, "thread": 1,
            "process": os.getpid(),
            "correlation_id": self.headers.get("X-Correlation-ID", ""),
        }
        if failed:
            record["exception"] = {
                "type": "sqlite3.OperationalError", "message": "database is locked",
                "traceback": "Traceback (most recent call last):\n  ...\nsqlite3.OperationalError: database is locked",
            }
        log.write(json.dumps(record) + "\n")
        body = b"app\n"
        self.send_response(500 if failed else 200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
print(server.server_address[1], flush=True)
server.serve_forever()
"#;

/// A child process killed when the test ends, however it ends.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn start_upstream(app_log: &Path) -> (Killed, u16) {
    let mut child = Command::new("python3")
        .arg("-c")
        .arg(UPSTREAM)
        .arg(app_log)
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3 is installed by scripts/test");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let port = line.trim().parse().expect("upstream prints its port");
    (Killed(child), port)
}

fn start_nginx(dir: &Path, upstream_port: u16) -> (Killed, u16) {
    let port = free_port();
    let tmp = dir.join("nginx-tmp");
    std::fs::create_dir_all(&tmp).unwrap();
    let d = dir.display();
    let conf = format!(
        r#"pid {d}/nginx.pid;
error_log {d}/error.log info;
events {{ worker_connections 64; }}
http {{
    client_body_temp_path {t}/body;
    proxy_temp_path {t}/proxy;
    fastcgi_temp_path {t}/fastcgi;
    uwsgi_temp_path {t}/uwsgi;
    scgi_temp_path {t}/scgi;
    log_format tailward '{LOG_FORMAT}';
    access_log {d}/access.log tailward;
    server {{
        listen 127.0.0.1:{port};
        root {d}/www;
        location = /ok {{ return 200 "ok\n"; }}
        location = /boom {{ return 500; }}
        location /app/ {{
            proxy_pass http://127.0.0.1:{upstream_port};
            proxy_set_header X-Correlation-ID $request_id;
        }}
    }}
}}
"#,
        t = tmp.display()
    );
    std::fs::create_dir_all(dir.join("www")).unwrap();
    std::fs::write(dir.join("www/index.html"), "home\n").unwrap();
    let conf_path = dir.join("nginx.conf");
    std::fs::write(&conf_path, conf).unwrap();
    let child = Command::new("nginx")
        .arg("-p")
        .arg(dir)
        .arg("-c")
        .arg(&conf_path)
        .arg("-e")
        .arg(dir.join("error.log"))
        .args(["-g", "daemon off; master_process off;"])
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("nginx is installed by scripts/test (Debian package nginx)");
    let nginx = Killed(child);
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "nginx did not listen on {port}: {}",
            std::fs::read_to_string(dir.join("error.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    (nginx, port)
}

/// Sends one HTTP/1.1 request and returns the status nginx answered.
fn request(port: u16, method: &str, target: &str) -> u16 {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        stream,
        "{method} {target} HTTP/1.1\r\nHost: localhost\r\nUser-Agent: tailward-test\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {response:?}"))
}

fn agent_config(dir: &Path, receiver_url: &str, access_log: &Path, app_log: &Path) -> String {
    format!(
        r#"server:
  http_listen_address: 127.0.0.1
  http_listen_port: 0
positions:
  filename: {d}/positions.yaml
  sync_period: 200ms
global:
  file_watch_config:
    min_poll_frequency: 25ms
    max_poll_frequency: 100ms
target_config:
  sync_period: 500ms
clients:
  - url: {receiver_url}
    batchwait: 100ms
scrape_configs:
  - job_name: nginx
    static_configs:
      - labels:
          job: nginx
          __path__: {access}
    pipeline_stages:
      - preset:
          name: nginx_access
          parameters:
            log_format: '{LOG_FORMAT}'
      # Shows the parsed fields at the receiver.
      - structured_metadata:
          method:
          path:
          status:
          request_time:
          upstream_addr:
  - job_name: app
    static_configs:
      - labels:
          job: app
          __path__: {app}
    pipeline_stages:
      - preset: json_app
"#,
        d = dir.display(),
        access = access_log.display(),
        app = app_log.display(),
    )
}

fn metadata<'a>(e: &'a ReceivedEntry, name: &str) -> Option<&'a str> {
    e.structured_metadata
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
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

/// Promtail's own gauges named `_total`: the only promtool findings accepted.
const PROMTAIL_GAUGES_NAMED_TOTAL: [&str; 4] = [
    "promtail_read_bytes_total",
    "promtail_file_bytes_total",
    "promtail_files_active_total",
    "promtail_targets_active_total",
];

#[tokio::test(flavor = "multi_thread")]
async fn every_nginx_request_arrives_once_parsed_and_counters_match_what_was_sent() {
    let receiver = Receiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let app_log = dir.path().join("app.json.log");
    std::fs::write(&app_log, "").unwrap();
    let (_upstream, upstream_port) = start_upstream(&app_log);
    let (_nginx, port) = start_nginx(dir.path(), upstream_port);
    let access_log = dir.path().join("access.log");

    // (method, target, the path the parser must give, the attack types it contains)
    let probes: [(&str, &str, &str, &[&str]); 9] = [
        ("GET", "/ok", "/ok", &[]),
        ("GET", "/", "/", &[]),
        ("HEAD", "/ok", "/ok", &[]),
        ("GET", "/missing/page", "/missing/page", &[]),
        ("POST", "/boom", "/boom", &[]),
        ("GET", "/app/orders?page=2", "/app/orders", &[]),
        (
            "GET",
            "/search?q=1%27%20OR%201%3D1--",
            "/search",
            &["sql_injection"],
        ),
        (
            "GET",
            "/search?q=%3Cscript%3Ealert(1)%3C%2Fscript%3E%20union%20select",
            "/search",
            &["xss", "sql_injection"],
        ),
        (
            "GET",
            "/files?name=..%2F..%2Fetc%2Fpasswd",
            "/files",
            &["path_traversal"],
        ),
    ];
    let mut sent: Vec<(String, String, u16)> = Vec::new();
    for (method, target, _, _) in probes {
        sent.push((
            method.to_string(),
            target.to_string(),
            request(port, method, target),
        ));
    }
    let statuses: Vec<u16> = sent.iter().map(|s| s.2).collect();
    assert!(statuses.contains(&404) && statuses.contains(&500) && statuses.contains(&200));

    let agent = AgentProcess::start(
        &write_config(
            dir.path(),
            &agent_config(dir.path(), &receiver.url(), &access_log, &app_log),
        ),
        &[],
    );
    let nginx_entries = |r: &Receiver| -> Vec<ReceivedEntry> {
        r.received()
            .into_iter()
            .filter(|e| e.labels.get("job").map(String::as_str) == Some("nginx"))
            .collect()
    };
    eventually(Duration::from_secs(30), || {
        nginx_entries(&receiver).len() >= probes.len()
    })
    .await;
    // Give a duplicate the time to show up.
    watch_for_stragglers(Duration::from_millis(500)).await;
    let entries = nginx_entries(&receiver);
    assert_eq!(
        entries.len(),
        probes.len(),
        "each request once: {entries:#?}\n{}",
        agent.stderr_text()
    );

    for ((method, target, status), (_, _, path, _)) in sent.iter().zip(probes) {
        let matching: Vec<&ReceivedEntry> = entries
            .iter()
            .filter(|e| e.line.contains(&format!("\"{method} {target} HTTP/1.1\"")))
            .collect();
        assert_eq!(matching.len(), 1, "{method} {target}: {entries:#?}");
        let e = matching[0];
        assert_eq!(metadata(e, "method"), Some(method.as_str()), "{e:?}");
        assert_eq!(metadata(e, "path"), Some(path), "{e:?}");
        assert_eq!(metadata(e, "status"), Some(status.to_string().as_str()));
        let request_time: f64 = metadata(e, "request_time").unwrap().parse().unwrap();
        assert!((0.0..60.0).contains(&request_time), "{e:?}");
        let id = metadata(e, "correlation_id").expect("every request has a $request_id");
        assert!(
            id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()),
            "{id}"
        );
        assert_eq!(
            metadata(e, "upstream_addr"),
            target
                .starts_with("/app/")
                .then_some(format!("127.0.0.1:{upstream_port}"))
                .as_deref(),
        );
        assert_eq!(
            e.labels.keys().collect::<Vec<_>>(),
            ["filename", "job"],
            "no per-request labels on the stream"
        );
    }

    let mut by_series: BTreeMap<(String, u16), usize> = BTreeMap::new();
    for (method, _, status) in &sent {
        *by_series.entry((method.clone(), *status)).or_default() += 1;
    }
    let path = access_log.display().to_string();
    let (_, body) = agent.get("/metrics");
    for ((method, status), count) in &by_series {
        let series = format!(
            "tailward_http_requests_total{{filename=\"{path}\",job=\"nginx\",method=\"{method}\",status=\"{status}\"}}"
        );
        assert_eq!(
            metric_value(&body, &series),
            *count as f64,
            "{series}\n{body}"
        );
    }
    assert_eq!(
        metric_value(&body, "tailward_http_requests_total"),
        probes.len() as f64
    );
    assert_eq!(
        metric_value(
            &body,
            &format!(
                "tailward_http_request_duration_seconds_count{{filename=\"{path}\",job=\"nginx\"}}"
            )
        ),
        probes.len() as f64
    );
    for kind in ["sql_injection", "xss", "path_traversal"] {
        let expected = probes.iter().filter(|p| p.3.contains(&kind)).count();
        let series = format!(
            "tailward_security_events_total{{filename=\"{path}\",job=\"nginx\",type=\"{kind}\"}}"
        );
        assert_eq!(
            metric_value(&body, &series),
            expected as f64,
            "{series}\n{body}"
        );
    }
    assert_eq!(
        metric_value(
            &body,
            "tailward_unparsed_lines_total{job=\"nginx\",stage=\"nginx_access\"}"
        ),
        0.0
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
}

#[tokio::test(flavor = "multi_thread")]
async fn nginx_request_and_the_app_line_it_caused_share_one_correlation_id() {
    let receiver = Receiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let app_log = dir.path().join("app.json.log");
    // A stray non-JSON line (a print to the log) ships unchanged and is counted.
    let stray = "Segmentation fault (core dumped) in worker 7";
    std::fs::write(&app_log, format!("{stray}\n")).unwrap();
    let (_upstream, upstream_port) = start_upstream(&app_log);
    let (_nginx, port) = start_nginx(dir.path(), upstream_port);
    let access_log = dir.path().join("access.log");
    let agent = AgentProcess::start(
        &write_config(
            dir.path(),
            &agent_config(dir.path(), &receiver.url(), &access_log, &app_log),
        ),
        &[],
    );
    let targets = ["/app/orders/1", "/app/orders/2", "/app/cart", "/app/fail"];
    for target in targets {
        let want = if target.contains("fail") { 500 } else { 200 };
        assert_eq!(request(port, "GET", target), want);
    }
    // An access and an application line per request, and the stray line.
    let expected = 2 * targets.len() + 1;
    eventually(Duration::from_secs(30), || {
        receiver.received().len() >= expected
    })
    .await;
    let entries = receiver.received();
    assert_eq!(
        entries.len(),
        expected,
        "{entries:#?}\n{}",
        agent.stderr_text()
    );
    let stray_entries: Vec<&ReceivedEntry> = entries.iter().filter(|e| e.line == stray).collect();
    assert_eq!(stray_entries.len(), 1, "{entries:#?}");
    assert_eq!(
        stray_entries[0].labels.keys().collect::<Vec<_>>(),
        ["filename", "job"]
    );
    for target in targets {
        let nginx = entries
            .iter()
            .find(|e| e.labels["job"] == "nginx" && e.line.contains(&format!("GET {target} ")))
            .unwrap_or_else(|| panic!("nginx entry of {target}: {entries:#?}"));
        let app = entries
            .iter()
            .find(|e| e.labels["job"] == "app" && e.line.contains(&format!("\"handled {target}\"")))
            .unwrap_or_else(|| panic!("app entry of {target}: {entries:#?}"));
        let id = metadata(nginx, "correlation_id").expect("nginx entry has a correlation id");
        assert_eq!(
            metadata(app, "correlation_id"),
            Some(id),
            "{nginx:?}\n{app:?}"
        );
        assert!(
            nginx.line.contains(&format!("\"{id}\"")),
            "the id is nginx's $request_id"
        );
        assert!(!nginx.labels.contains_key("correlation_id"));
        let level = if target.contains("fail") {
            "ERROR"
        } else {
            "INFO"
        };
        assert_eq!(app.labels.get("level").map(String::as_str), Some(level));
        assert_eq!(
            app.labels.get("logger").map(String::as_str),
            Some("app.routes")
        );
    }
    let (_, body) = agent.get("/metrics");
    let app_path = app_log.display();
    for (level, count) in [("INFO", 3.0), ("ERROR", 1.0)] {
        let series = format!(
            "tailward_log_lines_total{{filename=\"{app_path}\",job=\"app\",level=\"{level}\"}}"
        );
        assert_eq!(metric_value(&body, &series), count, "{series}\n{body}");
    }
    assert_eq!(
        metric_value(
            &body,
            &format!(
                "tailward_exceptions_total{{filename=\"{app_path}\",job=\"app\",level=\"ERROR\",type=\"sqlite3.OperationalError\"}}"
            )
        ),
        1.0,
        "{body}"
    );
    assert_eq!(
        metric_value(&body, "tailward_exceptions_total"),
        1.0,
        "records without an exception count none: {body}"
    );
    assert_eq!(
        metric_value(
            &body,
            &format!("tailward_non_json_lines_total{{filename=\"{app_path}\",job=\"app\"}}")
        ),
        1.0,
        "the stray line is counted: {body}"
    );
}
