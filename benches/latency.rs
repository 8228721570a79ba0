//! Latency benchmark: appends lines to a tailed file at a steady 1,000 lines per second and
//! measures, for every line, the time from its write to the moment the push holding it
//! reaches a local endpoint (which decodes the real snappy protobuf body). Prints p50, p99
//! and the maximum against the target: `batchwait` + 50 ms at p99.
//!
//! Run: `cargo bench --bench latency -- [SECONDS] [BATCHWAIT]` (default 20 s, `1s`).
//! Default batch settings otherwise (batchsize 1 MiB): at this rate a batch never fills, so
//! each is sent when its `batchwait` runs out, and a line waits at most that long plus the
//! agent's own delay (inotify wake-up, pipeline, encoding, the HTTP round trip).

mod agent_process;

use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::http::StatusCode;
use axum::routing::post;
use prost::Message as _;
use tailward::client::logproto::PushRequest;

const BIN: &str = env!("CARGO_BIN_EXE_tailward");
const LINES_PER_SECOND: u64 = 1_000;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let seconds: u64 = args.iter().find_map(|a| a.parse().ok()).unwrap_or(20);
    let batchwait = args
        .iter()
        .find(|a| a.ends_with('s'))
        .cloned()
        .unwrap_or_else(|| "1s".to_string());
    let batchwait_ms = parse_ms(&batchwait);

    // Nanoseconds since the epoch at arrival minus the line's own write time.
    let delays: Arc<Mutex<Vec<u64>>> = Arc::default();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("bind sink");
    let sink = listener.local_addr().expect("sink addr");
    let recorded = delays.clone();
    runtime.spawn(async move {
        let app = Router::new().route(
            "/loki/api/v1/push",
            post(move |body: axum::body::Bytes| {
                let recorded = recorded.clone();
                async move {
                    let arrived = epoch_nanos();
                    let Ok(raw) = snap::raw::Decoder::new().decompress_vec(&body) else {
                        return StatusCode::BAD_REQUEST;
                    };
                    let Ok(push) = PushRequest::decode(raw.as_slice()) else {
                        return StatusCode::BAD_REQUEST;
                    };
                    let mut recorded = recorded.lock().expect("delays");
                    for entry in push.streams.iter().flat_map(|s| &s.entries) {
                        if let Some(written) = written_at(&entry.line) {
                            recorded.push(arrived.saturating_sub(written));
                        }
                    }
                    StatusCode::NO_CONTENT
                }
            }),
        );
        let _ = axum::serve(listener, app).await;
    });

    let dir = tempfile::tempdir().expect("temp dir");
    let log = dir.path().join("app.log");
    std::fs::write(&log, "").expect("create log");
    let config = dir.path().join("config.yaml");
    std::fs::write(
        &config,
        format!(
            r#"server: {{http_listen_address: 127.0.0.1, http_listen_port: 0, log_level: warn}}
positions: {{filename: {dir}/positions.yaml}}
clients:
  - url: http://{sink}/loki/api/v1/push
    batchwait: {batchwait}
scrape_configs:
  - job_name: latency
    static_configs:
      - labels: {{job: latency, __path__: {log}}}
"#,
            dir = dir.path().display(),
            log = log.display(),
        ),
    )
    .expect("write config");
    let mut child = Command::new(BIN)
        .arg(format!("-config.file={}", config.display()))
        .env("TAILWARD_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start tailward");
    agent_process::listening_port(child.stderr.take().expect("stderr"));
    // Let the tailer open the file before the clock starts.
    std::thread::sleep(Duration::from_millis(500));

    let total = seconds * LINES_PER_SECOND;
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(&log)
        .expect("open log");
    let started = Instant::now();
    for n in 0..total {
        let due = started + Duration::from_micros(n * 1_000_000 / LINES_PER_SECOND);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        // One write per line, as an application logging line by line does.
        let line = format!("seq={n} written={} GET /api/orders 200\n", epoch_nanos());
        file.write_all(line.as_bytes()).expect("append");
    }
    let deadline = Instant::now() + Duration::from_millis(batchwait_ms * 3 + 5_000);
    while delays.lock().expect("delays").len() < total as usize && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();

    let mut delays = delays.lock().expect("delays").clone();
    delays.sort_unstable();
    let received = delays.len();
    let at = |q: f64| {
        let i = ((received as f64 * q).ceil() as usize).clamp(1, received.max(1)) - 1;
        delays.get(i).map_or(f64::NAN, |&ns| ns as f64 / 1e6)
    };
    let target = batchwait_ms as f64 + 50.0;
    println!(
        "{LINES_PER_SECOND} lines/s for {seconds} s, batchwait {batchwait}: {received} of {total} lines received"
    );
    println!(
        "write -> receiver: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms (target p99 <= {target:.0} ms): {}",
        at(0.50),
        at(0.99),
        at(1.0),
        if received == total as usize && at(0.99) <= target {
            "met"
        } else {
            "NOT met"
        }
    );
}

fn epoch_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

fn written_at(line: &str) -> Option<u64> {
    line.split(' ')
        .find_map(|field| field.strip_prefix("written="))?
        .parse()
        .ok()
}

fn parse_ms(duration: &str) -> u64 {
    match duration.strip_suffix("ms") {
        Some(ms) => ms.parse().expect("batchwait in ms"),
        None => {
            let secs: f64 = duration
                .strip_suffix('s')
                .and_then(|s| s.parse().ok())
                .expect("batchwait like 1s or 500ms");
            (secs * 1000.0) as u64
        }
    }
}
