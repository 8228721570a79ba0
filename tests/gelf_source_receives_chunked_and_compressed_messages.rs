//! The gelf source receives GELF over UDP from a client written here from the GELF spec:
//! whole messages plain, zlib and gzip; chunked ones out of order and with duplicate
//! chunks. Every message arrives once, labeled from its `__gelf_message_*` fields through
//! relabel_configs and pipeline_stages, with Promtail's line; an incomplete chunk set
//! expires and garbage is counted, and neither stops the listener. A reload moves the
//! listener to a new port, and shutdown ships what was already received.

use std::io::Write;
use std::net::UdpSocket;
use std::path::Path;
use std::time::Duration;

use crate::support::agent_process::{AgentProcess, write_config};
use crate::support::receiver::Receiver;
use crate::support::{eventually, watch_for_stragglers};

fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn config(dir: &Path, url: &str, port: u16) -> String {
    format!(
        r#"server:
  http_listen_address: 127.0.0.1
  http_listen_port: 0
positions:
  filename: {positions}
clients:
  - url: {url}
    batchwait: 100ms
scrape_configs:
  - job_name: gelf
    gelf:
      listen_address: 127.0.0.1:{port}
      use_incoming_timestamp: true
      labels:
        job: docker
    relabel_configs:
      - source_labels: [__gelf_message_host]
        target_label: host
      - source_labels: [__gelf_message_level]
        target_label: level
      - source_labels: [__gelf_message_facility]
        target_label: facility
    pipeline_stages:
      - json:
          expressions:
            container: _container_name
      - labels:
          container:
"#,
        positions = dir.join("positions.yaml").display(),
    )
}

/// A GELF UDP client as the spec describes one.
struct GelfClient {
    socket: UdpSocket,
    to: (String, u16),
}

impl GelfClient {
    fn new(port: u16) -> Self {
        GelfClient {
            socket: UdpSocket::bind("127.0.0.1:0").unwrap(),
            to: ("127.0.0.1".into(), port),
        }
    }

    fn send(&self, datagram: &[u8]) {
        self.socket
            .send_to(datagram, (self.to.0.as_str(), self.to.1))
            .unwrap();
    }

    /// The payload cut into chunks of at most `size` bytes, each with the 12-byte header:
    /// magic 0x1e 0x0f, the 8-byte message ID, sequence number, count.
    fn chunks(payload: &[u8], size: usize, id: u64) -> Vec<Vec<u8>> {
        let pieces: Vec<&[u8]> = payload.chunks(size).collect();
        assert!(pieces.len() <= 128);
        pieces
            .iter()
            .enumerate()
            .map(|(seq, piece)| {
                let mut c = vec![0x1e, 0x0f];
                c.extend_from_slice(&id.to_be_bytes());
                c.push(seq as u8);
                c.push(pieces.len() as u8);
                c.extend_from_slice(piece);
                c
            })
            .collect()
    }
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn zlib(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

/// A message as Docker's gelf log driver writes one (its fields and `_` extras).
fn docker_message(name: &str, text: &str, level: u8) -> String {
    format!(
        r#"{{"version":"1.1","host":"web-1","short_message":"{text}","timestamp":1700000000.5,"level":{level},"facility":"app","_container_name":"{name}","_image_name":"busybox","_command":"sh -c"}}"#
    )
}

fn listening(agent: &AgentProcess) {
    let bound = agent.wait_until(Duration::from_secs(20), |a| {
        a.stderr_text().contains("gelf listening")
    });
    assert!(bound, "{}", agent.stderr_text());
}

#[tokio::test(flavor = "multi_thread")]
async fn every_message_arrives_once_chunked_compressed_or_plain() {
    let receiver = Receiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let port = free_udp_port();
    let agent = AgentProcess::start(
        &write_config(dir.path(), &config(dir.path(), &receiver.url(), port)),
        &[],
    );
    listening(&agent);
    let client = GelfClient::new(port);

    client.send(docker_message("plain", "plain <b>", 6).as_bytes());
    client.send(&zlib(docker_message("zlib", "zlib", 3).as_bytes()));
    client.send(&gzip(docker_message("gzip", "gzip", 4).as_bytes()));
    // Chunked and gzipped, with a long message so that it needs several chunks; sent last
    // chunk first.
    let long = format!("long {}", "x".repeat(6000));
    let payload = gzip(docker_message("chunked", &long, 5).as_bytes());
    let payload = if payload.len() < 3000 {
        // Compressed too well to need chunks: chunk the plain form instead.
        docker_message("chunked", &long, 5).into_bytes()
    } else {
        payload
    };
    let mut chunks = GelfClient::chunks(&payload, 1000, 0x0102_0304_0506_0708);
    assert!(chunks.len() >= 3, "{} chunks", chunks.len());
    chunks.reverse();
    for c in &chunks {
        client.send(c);
    }
    // Zlib-compressed chunks with every chunk sent twice (a retrying relay).
    let dup =
        zlib(docker_message("duplicated", &format!("dup {}", "y".repeat(3000)), 7).as_bytes());
    for c in GelfClient::chunks(&dup, 40, 42) {
        client.send(&c);
        client.send(&c);
    }
    // Half a set, never completed: expires after 5 s and is counted.
    let orphan = GelfClient::chunks(docker_message("orphan", "never whole", 6).as_bytes(), 50, 7);
    client.send(&orphan[0]);
    // Garbage: not JSON, a chunk shorter than its header, a bad gzip body, a JSON array.
    client.send(b"\x00\x01garbage");
    client.send(&[0x1e, 0x0f, 1, 2, 3]);
    client.send(b"\x1f\x8b\x08\x00broken");
    client.send(b"[1,2,3]");
    // The listener still receives after all that.
    client.send(docker_message("after", "after garbage", 1).as_bytes());

    let expected = ["plain", "zlib", "gzip", "chunked", "duplicated", "after"];
    let entries = receiver
        .wait_for_entries(expected.len(), Duration::from_secs(30))
        .await;
    assert_eq!(
        entries.len(),
        expected.len(),
        "{entries:?}\n{}",
        agent.stderr_text()
    );
    let malformed = "tailward_source_dropped_total{reason=\"malformed\",source=\"gelf\"}";
    let expired = "tailward_source_dropped_total{reason=\"chunks_expired\",source=\"gelf\"}";
    let counted = eventually(Duration::from_secs(20), || {
        agent.metric(expired) == 1.0 && agent.metric(malformed) == 4.0
    })
    .await;
    assert!(
        counted,
        "expired {}, malformed {}",
        agent.metric(expired),
        agent.metric(malformed)
    );
    watch_for_stragglers(Duration::from_millis(500)).await;
    let entries = receiver.received();
    assert_eq!(entries.len(), expected.len(), "duplicates: {entries:?}");
    for name in expected {
        let e = entries
            .iter()
            .find(|e| e.labels.get("container").map(String::as_str) == Some(name))
            .unwrap_or_else(|| panic!("{name} missing: {entries:?}"));
        assert_eq!(e.labels["job"], "docker");
        assert_eq!(e.labels["host"], "web-1");
        assert_eq!(e.labels["facility"], "app");
        assert!(
            !e.labels.keys().any(|k| k.starts_with("__")),
            "{:?}",
            e.labels
        );
        // use_incoming_timestamp: the message's own time (float seconds, as Promtail
        // converts them).
        assert_eq!(e.timestamp_ns, 1_700_000_000_500_000_000, "{name}");
    }
    let level = |name: &str| {
        entries
            .iter()
            .find(|e| e.labels["container"] == name)
            .map(|e| e.labels["level"].clone())
            .unwrap()
    };
    assert_eq!(level("plain"), "informational");
    assert_eq!(level("zlib"), "error");
    assert_eq!(level("gzip"), "warning");
    assert_eq!(level("chunked"), "notice");
    assert_eq!(level("duplicated"), "debug");
    assert_eq!(level("after"), "alert");
    // Promtail's line: Go's re-serialisation, extras sorted, HTML escaped.
    let plain = entries
        .iter()
        .find(|e| e.labels["container"] == "plain")
        .unwrap();
    assert_eq!(
        plain.line,
        r#"{"version":"1.1","host":"web-1","short_message":"plain \u003cb\u003e","timestamp":1700000000.5,"level":6,"facility":"app","_command":"sh -c","_container_name":"plain","_image_name":"busybox"}"#
    );
    let chunked = entries
        .iter()
        .find(|e| e.labels["container"] == "chunked")
        .unwrap();
    assert!(chunked.line.contains(&long), "chunked message cut");
    assert_eq!(agent.metric("promtail_gelf_target_entries_total"), 6.0);
    assert_eq!(
        agent.metric("promtail_gelf_target_parsing_errors_total"),
        5.0
    );
    let (status, stderr) = agent.terminate();
    assert!(status.success(), "{stderr}");
}

#[tokio::test(flavor = "multi_thread")]
async fn reload_moves_the_listener_and_shutdown_ships_what_was_received() {
    let receiver = Receiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (first, second) = (free_udp_port(), free_udp_port());
    let path = write_config(dir.path(), &config(dir.path(), &receiver.url(), first));
    let agent = AgentProcess::start(&path, &[]);
    listening(&agent);
    GelfClient::new(first).send(docker_message("before", "before reload", 6).as_bytes());
    assert_eq!(
        receiver
            .wait_for_entries(1, Duration::from_secs(20))
            .await
            .len(),
        1
    );

    std::fs::write(&path, config(dir.path(), &receiver.url(), second)).unwrap();
    agent.signal(libc::SIGHUP);
    assert!(
        agent.wait_until(Duration::from_secs(20), |a| a
            .metric("promtail_config_reload_success_total")
            == 1.0),
        "{}",
        agent.stderr_text()
    );
    // The old port is free again: the reload released it.
    let old = eventually(Duration::from_secs(10), || {
        UdpSocket::bind(("127.0.0.1", first)).is_ok()
    })
    .await;
    assert!(old, "the old listener still holds port {first}");
    let n = 300;
    let client = GelfClient::new(second);
    for i in 0..n {
        client.send(docker_message(&format!("c{i}"), "after reload", 6).as_bytes());
    }
    // Stopped at once: what reached the socket is still shipped.
    let (status, stderr) = agent.terminate();
    assert!(status.success(), "{stderr}");
    let entries = receiver.received();
    let mut names: Vec<String> = entries
        .iter()
        .map(|e| e.labels["container"].clone())
        .collect();
    names.sort();
    names.dedup();
    assert_eq!(
        entries.len(),
        n + 1,
        "{} of {} shipped",
        entries.len(),
        n + 1
    );
    assert_eq!(names.len(), n + 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn messages_beyond_a_full_queue_are_dropped_and_counted_the_rest_arrive() {
    let receiver = Receiver::start().await;
    receiver.set_down(true).await;
    let dir = tempfile::tempdir().unwrap();
    let port = free_udp_port();
    let yaml = format!(
        r#"server:
  http_listen_address: 127.0.0.1
  http_listen_port: 0
positions:
  filename: {positions}
clients:
  - url: {url}
    batchwait: 100ms
    batchsize: 64KiB
    backoff_config: {{min_period: 100ms, max_period: 200ms, max_retries: 0}}
    queue: {{max_bytes: 64KiB}}
scrape_configs:
  - job_name: gelf
    gelf:
      listen_address: 127.0.0.1:{port}
      labels: {{job: gelf}}
"#,
        positions = dir.path().join("positions.yaml").display(),
        url = receiver.url(),
    );
    let agent = AgentProcess::start(&write_config(dir.path(), &yaml), &[]);
    listening(&agent);
    let client = GelfClient::new(port);
    let n = 8000usize;
    for i in 0..n {
        client.send(docker_message(&format!("c{i}"), &"z".repeat(100), 6).as_bytes());
        if i % 100 == 0 {
            // Paced, so the kernel's buffer does not overflow before the agent reads: the
            // drops counted are the agent's own.
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    let dropped = "tailward_source_dropped_total{reason=\"queue_full\",source=\"gelf\"}";
    let dropping = agent.wait_until(Duration::from_secs(20), |a| a.metric(dropped) > 0.0);
    assert!(dropping, "{}", agent.stderr_text());
    receiver.set_down(false).await;
    // Every message is shipped once, or dropped and counted.
    let accounted = eventually(Duration::from_secs(60), || {
        receiver.received().len() + agent.metric(dropped) as usize == n
    })
    .await;
    let delivered = receiver.received();
    assert!(
        accounted,
        "delivered {} + dropped {} != sent {n}",
        delivered.len(),
        agent.metric(dropped)
    );
    let mut names: Vec<&str> = delivered.iter().map(|e| e.line.as_str()).collect();
    names.sort();
    names.dedup();
    assert_eq!(names.len(), delivered.len(), "duplicates shipped");
    assert_eq!(agent.metric("promtail_gelf_target_entries_total"), n as f64);
    let (status, stderr) = agent.terminate();
    assert!(status.success(), "{stderr}");
}
