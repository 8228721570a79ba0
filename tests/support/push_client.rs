//! For the push-source tests: a receiving agent's config (a `loki_push_api` or `heroku_drain`
//! job on a port of the test's choosing, one client), a free port, and a plain HTTP/1.1
//! client that sends a body with the headers a test gives and reads the whole answer.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use prost::Message;
use tailward::client::logproto;

use super::agent_process::{AgentProcess, write_config};

/// The port of the agent's `n`th push listener (from 1), as its log line `push source
/// listening ... address=HOST:PORT` says, waiting for it. Jobs listen on port 0, so no other
/// process can take their port between a test choosing it and the agent binding it.
pub fn push_port(agent: &AgentProcess, n: usize) -> u16 {
    let mut found = None;
    let logged = agent.wait_until(Duration::from_secs(20), |a| {
        found = a
            .stderr_text()
            .lines()
            .filter(|l| l.contains("push source listening"))
            .filter_map(|l| l.split("address=").nth(1)?.split_whitespace().next())
            .filter_map(|a| a.trim_matches('"').parse::<std::net::SocketAddr>().ok())
            .nth(n - 1)
            .map(|a| a.port());
        found.is_some()
    });
    assert!(
        logged,
        "push listener {n} not logged:\n{}",
        agent.stderr_text()
    );
    found.unwrap_or_default()
}

/// The config of an agent whose job `job_yaml` (indented as a scrape config's keys, at 4
/// spaces) pushes to `url`; `client_extra` are more client keys (at 4 spaces).
pub fn receiving_config(dir: &Path, url: &str, client_extra: &str, job_yaml: &str) -> PathBuf {
    write_config(
        dir,
        &format!(
            r#"server:
  http_listen_address: 127.0.0.1
  http_listen_port: 0
  graceful_shutdown_timeout: 10s
positions:
  filename: {positions}
clients:
  - url: {url}
    batchwait: 100ms
    backoff_config: {{min_period: 100ms, max_period: 500ms, max_retries: 100}}
{client_extra}scrape_configs:
  - job_name: push
{job_yaml}"#,
            positions = dir.join("positions.yaml").display(),
        ),
    )
}

/// An answer: status, headers (names in lower case) and body.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// POSTs `body` to `127.0.0.1:port` `path` with `headers`, `Connection: close`.
pub fn post(port: u16, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Answer {
    post_at("127.0.0.1", port, path, headers, body)
}

/// [`post`] to `host:port`.
pub fn post_at(host: &str, port: u16, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Answer {
    let mut s = TcpStream::connect((host, port)).expect("connect to the push source");
    s.set_read_timeout(Some(Duration::from_secs(30))).ok();
    let mut request = format!(
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for (k, v) in headers {
        request.push_str(&format!("{k}: {v}\r\n"));
    }
    request.push_str("\r\n");
    s.write_all(request.as_bytes()).expect("send headers");
    // A refusal may come before the whole body is read (413): that is an answer too.
    let _ = s.write_all(body);
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    parse_answer(&raw)
}

fn parse_answer(raw: &[u8]) -> Answer {
    let text = String::from_utf8_lossy(raw);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Answer {
        status,
        headers,
        body: body.to_string(),
    }
}

/// One entry to push: unix nanoseconds, line, structured metadata.
pub type TestEntry<'a> = (i64, &'a str, &'a [(&'a str, &'a str)]);

/// A snappy-compressed protobuf push of one stream.
pub fn protobuf_push(labels: &str, entries: &[TestEntry<'_>]) -> Vec<u8> {
    let request = logproto::PushRequest {
        streams: vec![logproto::StreamAdapter {
            labels: labels.to_string(),
            entries: entries
                .iter()
                .map(|(ns, line, metadata)| logproto::EntryAdapter {
                    timestamp: Some(logproto::Timestamp {
                        seconds: ns.div_euclid(1_000_000_000),
                        nanos: ns.rem_euclid(1_000_000_000) as i32,
                    }),
                    line: line.to_string(),
                    structured_metadata: metadata
                        .iter()
                        .map(|(k, v)| logproto::LabelPairAdapter {
                            name: k.to_string(),
                            value: v.to_string(),
                        })
                        .collect(),
                })
                .collect(),
            hash: 0,
        }],
    };
    snap::raw::Encoder::new()
        .compress_vec(&request.encode_to_vec())
        .expect("snappy")
}

pub fn gzip(body: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(body).expect("gzip");
    gz.finish().expect("gzip")
}
