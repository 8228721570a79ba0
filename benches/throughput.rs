//! Throughput benchmark: ships a generated 64 MiB JSON application log (the reference
//! deployment's format) through `json` + `labels` + `timestamp` into a local endpoint that
//! answers 204, and prints MiB of log per CPU-second of the agent, wall throughput and the
//! agent's peak RSS: once with the client's disk buffer (WAL) off, once with it on.
//!
//! Run: `cargo bench --bench throughput` (optionally `-- <MiB>` for another size).
//! It measures the real binary as a user runs it: same config path, default batch settings,
//! acknowledgement-based positions on. Completion is read from the agent's own
//! `promtail_sent_entries_total`, so the sink does no decoding work of its own.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use axum::Router;
use axum::http::StatusCode;
use axum::routing::post;

const BIN: &str = env!("CARGO_BIN_EXE_tailward");

fn main() {
    let mib: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(64);
    let dir = tempfile::tempdir().expect("temp dir");
    let log = dir.path().join("app.json.log");
    let (lines, bytes) = generate_json_log(&log, mib * 1024 * 1024);

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("bind sink");
    let sink_addr = listener.local_addr().expect("sink addr");
    runtime.spawn(async move {
        let app = Router::new().route(
            "/loki/api/v1/push",
            post(|_body: axum::body::Bytes| async { StatusCode::NO_CONTENT }),
        );
        let _ = axum::serve(listener, app).await;
    });

    let mib_f = bytes as f64 / (1024.0 * 1024.0);
    println!("pipeline: json + labels + timestamp, protobuf+snappy, batchsize 1 MiB, batchwait 1s");
    println!("input: {lines} lines, {mib_f:.1} MiB");
    for wal in [false, true] {
        let run = Run {
            dir: dir.path(),
            log: &log,
            sink_addr,
            lines,
        };
        let (wall, cpu, peak_kib) = run.measure(wal);
        println!(
            "{}: wall {:.2} s ({:.1} MiB/s), cpu {cpu:.2} s ({:.1} MiB per CPU-second), peak RSS {:.1} MiB",
            if wal {
                "WAL on (fsync periodic 500ms)"
            } else {
                "WAL off"
            },
            wall.as_secs_f64(),
            mib_f / wall.as_secs_f64(),
            mib_f / cpu,
            peak_kib as f64 / 1024.0
        );
    }
}

struct Run<'a> {
    dir: &'a std::path::Path,
    log: &'a std::path::Path,
    sink_addr: std::net::SocketAddr,
    lines: usize,
}

impl Run<'_> {
    /// Ships the whole log once (fresh positions; with `wal`, through a fresh disk buffer);
    /// returns wall time, agent CPU seconds and peak RSS (KiB).
    fn measure(&self, wal: bool) -> (Duration, f64, u64) {
        let name = if wal { "wal" } else { "memory" };
        let wal_block = if wal {
            format!(
                "    wal: {{enabled: true, dir: {}/wal}}\n",
                self.dir.display()
            )
        } else {
            String::new()
        };
        let config = self.dir.join(format!("config-{name}.yaml"));
        std::fs::write(
            &config,
            format!(
                r#"server: {{http_listen_address: 127.0.0.1, http_listen_port: 0, log_level: warn}}
positions: {{filename: {dir}/positions-{name}.yaml}}
clients:
  - url: http://{sink_addr}/loki/api/v1/push
{wal_block}scrape_configs:
  - job_name: app
    static_configs:
      - labels: {{job: app, __path__: {log}}}
    pipeline_stages:
      - json:
          expressions: {{timestamp: timestamp, level: level, message: message, logger: logger}}
      - labels: {{level: "", logger: ""}}
      - timestamp: {{source: timestamp, format: RFC3339Nano}}
"#,
                dir = self.dir.display(),
                sink_addr = self.sink_addr,
                log = self.log.display()
            ),
        )
        .expect("write config");

        let started = Instant::now();
        let mut child = Command::new(BIN)
            .arg(format!("-config.file={}", config.display()))
            .env("TAILWARD_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start tailward");
        let pid = child.id();
        let port = listening_port(child.stderr.take().expect("stderr"));
        loop {
            let sent = sent_entries(port);
            if sent >= self.lines as f64 {
                break;
            }
            if started.elapsed() > Duration::from_secs(600) {
                panic!(
                    "only {sent} of {} entries sent after 10 minutes",
                    self.lines
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let wall = started.elapsed();
        let cpu = cpu_seconds(pid);
        let peak_kib = peak_rss_kib(pid);
        let _ = child.kill();
        let _ = child.wait();
        (wall, cpu, peak_kib)
    }
}

/// Writes `target` bytes of JSON records in the reference format; returns (lines, bytes).
fn generate_json_log(path: &std::path::Path, target: usize) -> (usize, usize) {
    let mut out = std::io::BufWriter::new(std::fs::File::create(path).expect("create log"));
    let levels = ["INFO", "DEBUG", "WARNING", "ERROR", "INFO", "INFO"];
    let loggers = ["app.routes", "app.db", "app.auth", "werkzeug"];
    let messages = [
        "Request started GET /api/orders",
        "SELECT id, total FROM orders WHERE user_id = ? LIMIT 50",
        "User login succeeded",
        "Request finished 200 in 23ms",
    ];
    let (mut lines, mut bytes) = (0usize, 0usize);
    let mut state: u64 = 0x9e3779b97f4a7c15;
    while bytes < target {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let i = lines;
        let secs = 36_000 + i / 100;
        let line = format!(
            "{{\"timestamp\": \"2026-11-27T{:02}:{:02}:{:02}.{:06}+00:00\", \"level\": \"{}\", \"logger\": \"{}\", \"message\": \"{}\", \"module\": \"routes\", \"function\": \"index\", \"line\": {}, \"thread\": 140245, \"process\": 4121, \"correlation_id\": \"req-{:016x}\", \"extra_user_id\": {}}}\n",
            (secs / 3600) % 24,
            (secs / 60) % 60,
            secs % 60,
            (i % 100) * 10_000,
            levels[i % levels.len()],
            loggers[i % loggers.len()],
            messages[i % messages.len()],
            40 + i % 200,
            state,
            state % 10_000
        );
        out.write_all(line.as_bytes()).expect("write log");
        lines += 1;
        bytes += line.len();
    }
    out.flush().expect("flush log");
    (lines, bytes)
}

fn listening_port(stderr: std::process::ChildStderr) -> u16 {
    let mut reader = BufReader::new(stderr);
    let mut line = String::new();
    loop {
        line.clear();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            panic!("tailward exited before listening");
        }
        if let Some(addr) = line
            .split("server listening")
            .nth(1)
            .and_then(|r| r.split("address=").nth(1))
        {
            let port = addr
                .split_whitespace()
                .next()
                .and_then(|a| a.rsplit(':').next())
                .and_then(|p| p.parse().ok());
            if let Some(p) = port {
                // Keep draining stderr so the agent never blocks on a full pipe.
                std::thread::spawn(move || {
                    let mut sink = Vec::new();
                    let _ = reader.read_to_end(&mut sink);
                });
                return p;
            }
        }
    }
}

fn sent_entries(port: u16) -> f64 {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return 0.0;
    };
    let _ = write!(
        s,
        "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    );
    let mut body = String::new();
    let _ = s.read_to_string(&mut body);
    body.lines()
        .filter(|l| l.starts_with("promtail_sent_entries_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("read stat");
    // Fields after the parenthesised command name; utime and stime are the 14th and 15th.
    let after = stat.rsplit(')').next().expect("stat format");
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 =
        fields[11].parse::<f64>().expect("utime") + fields[12].parse::<f64>().expect("stime");
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    ticks / hz
}

fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}
