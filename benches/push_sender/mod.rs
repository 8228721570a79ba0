//! The `push` kind of the throughput benchmark: the `raw` kind's lines, sent by two loopback
//! senders (as two Promtails would: protobuf+snappy bodies of about 1 MiB of lines, one
//! request at a time each, resent on 429) to a `loki_push_api` job without stages, which
//! ships them on to the sink. Only the agent's CPU and memory are measured; encoding the
//! bodies is done before the agent starts.

use std::io::{BufRead, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

use prost::Message;
use tailward::client::logproto;

use crate::{Pushes, Run, agent_process, bench_bin, sent_entries};

/// Promtail's default `batchsize`.
const BODY_LINES_BYTES: usize = 1024 * 1024;
const SENDERS: usize = 2;

pub fn ship(dir: &Path, log: &Path, sink: SocketAddr, lines: usize, _pushes: &Pushes) -> Run {
    let bodies = encode(log);
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port");
    let config = dir.join("config.yaml");
    std::fs::write(
        &config,
        format!(
            r#"server: {{http_listen_address: 127.0.0.1, http_listen_port: 0, log_level: warn}}
positions: {{filename: {dir}/positions.yaml}}
clients:
  - url: http://{sink}/loki/api/v1/push
scrape_configs:
  - job_name: push
    loki_push_api:
      server: {{http_listen_address: 127.0.0.1, http_listen_port: {port}}}
      use_incoming_timestamp: true
"#,
            dir = dir.display(),
        ),
    )
    .expect("write config");
    let started = Instant::now();
    let (mut child, pid, metrics_port) = agent_process::start_agent(&bench_bin(), &config);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        std::thread::sleep(Duration::from_millis(10));
    }
    let shares: Vec<Vec<Vec<u8>>> = (0..SENDERS)
        .map(|s| bodies.iter().skip(s).step_by(SENDERS).cloned().collect())
        .collect();
    let senders: Vec<_> = shares
        .into_iter()
        .map(|share| {
            std::thread::spawn(move || {
                for body in share {
                    while post(port, &body) != 204 {
                        std::thread::sleep(Duration::from_millis(100));
                    }
                }
            })
        })
        .collect();
    for s in senders {
        s.join().expect("sender");
    }
    loop {
        let sent = sent_entries(metrics_port);
        if sent >= lines as f64 {
            break;
        }
        if started.elapsed() > Duration::from_secs(600) {
            panic!("only {sent} of {lines} entries sent after 10 minutes");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let wall = started.elapsed();
    let run = Run {
        wall,
        shipping: (wall, 1.0),
        cpu_seconds: agent_process::cpu_seconds(pid),
        peak_rss_kib: agent_process::status_kib(pid, "VmHWM"),
    };
    let _ = child.kill();
    let _ = child.wait();
    run
}

/// The log's lines as push bodies of about [`BODY_LINES_BYTES`] of lines each.
fn encode(log: &Path) -> Vec<Vec<u8>> {
    let file = std::io::BufReader::new(std::fs::File::open(log).expect("open log"));
    let mut bodies = Vec::new();
    let mut entries = Vec::new();
    let mut size = 0;
    let base: i64 = 1_700_000_000_000_000_000;
    let flush = |entries: &mut Vec<logproto::EntryAdapter>, bodies: &mut Vec<Vec<u8>>| {
        let request = logproto::PushRequest {
            streams: vec![logproto::StreamAdapter {
                labels: r#"{job="push"}"#.into(),
                entries: std::mem::take(entries),
                hash: 0,
            }],
        };
        bodies.push(
            snap::raw::Encoder::new()
                .compress_vec(&request.encode_to_vec())
                .expect("snappy"),
        );
    };
    for (n, line) in (0_i64..).zip(file.lines()) {
        let line = line.expect("read log");
        size += line.len();
        let ns = base + n;
        entries.push(logproto::EntryAdapter {
            timestamp: Some(logproto::Timestamp {
                seconds: ns / 1_000_000_000,
                nanos: (ns % 1_000_000_000) as i32,
            }),
            line,
            structured_metadata: Vec::new(),
        });
        if size >= BODY_LINES_BYTES {
            flush(&mut entries, &mut bodies);
            size = 0;
        }
    }
    if !entries.is_empty() {
        flush(&mut entries, &mut bodies);
    }
    bodies
}

fn post(port: u16, body: &[u8]) -> u16 {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return 0;
    };
    let head = format!(
        "POST /loki/api/v1/push HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-protobuf\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    if s.write_all(head.as_bytes()).is_err() || s.write_all(body).is_err() {
        return 0;
    }
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    answer
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}
