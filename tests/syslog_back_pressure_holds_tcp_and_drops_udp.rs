//! While Loki is down and the client's queue is full, the syslog source stops reading a TCP
//! connection (the sender's writes block on the kernel's window) and loses nothing of it
//! once Loki is back; UDP messages beyond its bounded queue are dropped and counted in
//! `tailward_source_dropped_total`. Memory stays bounded either way.

use std::io::Write;
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use crate::support::agent_process::{AgentProcess, write_config};
use crate::support::receiver::Receiver;
use crate::support::{eventually, wait_until};

fn config(dir: &Path, url: &str, protocol: &str, port: u16) -> std::path::PathBuf {
    write_config(
        dir,
        &format!(
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
  - job_name: syslog
    syslog:
      listen_address: 127.0.0.1:{port}
      listen_protocol: {protocol}
      labels: {{job: syslog}}
"#,
            positions = dir.join("positions.yaml").display(),
        ),
    )
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

fn listening(agent: &AgentProcess) {
    let bound = agent.wait_until(Duration::from_secs(20), |a| {
        a.stderr_text().contains("syslog listening")
    });
    assert!(bound, "{}", agent.stderr_text());
}

#[tokio::test(flavor = "multi_thread")]
async fn tcp_sender_is_held_back_and_nothing_is_lost() {
    let receiver = Receiver::start().await;
    receiver.set_down(true).await;
    let dir = tempfile::tempdir().unwrap();
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let agent = AgentProcess::start(&config(dir.path(), &receiver.url(), "tcp", port), &[]);
    listening(&agent);
    let n = 200_000usize;
    let written = Arc::new(AtomicUsize::new(0));
    let writer = {
        let written = written.clone();
        std::thread::spawn(move || {
            let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
            let mut chunk = Vec::new();
            for i in 0..n {
                let m = format!("<14>1 - - app - - - message {i:>7} {}", "x".repeat(100));
                write!(chunk, "{} {m}", m.len()).unwrap();
                if chunk.len() >= 64 * 1024 || i == n - 1 {
                    stream.write_all(&chunk).unwrap();
                    written.store(i + 1, Ordering::SeqCst);
                    chunk.clear();
                }
            }
        })
    };
    // The writer stops making progress well short of the end: the agent stopped reading.
    let mut last = usize::MAX;
    let stalled = wait_until(Duration::from_secs(60), || {
        std::thread::sleep(Duration::from_millis(1000));
        let now = written.load(Ordering::SeqCst);
        let same = now == last;
        last = now;
        same
    });
    let held_at = written.load(Ordering::SeqCst);
    assert!(
        stalled && held_at < n,
        "the sender was never held back ({held_at} of {n} written)"
    );
    let rss = rss_kib(agent.pid());
    assert!(
        rss < 150 * 1024,
        "agent RSS {rss} KiB while holding the sender back"
    );
    receiver.set_down(false).await;
    writer.join().unwrap();
    let entries = receiver.wait_for_entries(n, Duration::from_secs(180)).await;
    assert!(entries.len() >= n, "{} of {n} arrived", entries.len());
    let mut seen = vec![0u8; n];
    for e in entries {
        let i: usize = e.line.split_whitespace().nth(1).unwrap().parse().unwrap();
        seen[i] += 1;
    }
    let wrong: Vec<usize> = (0..n).filter(|&i| seen[i] != 1).take(5).collect();
    assert!(wrong.is_empty(), "not exactly once: {wrong:?}");
    assert_eq!(
        agent.metric("tailward_source_dropped_total{reason=\"queue_full\",source=\"syslog\"}"),
        0.0
    );
    let (status, stderr) = agent.terminate();
    assert!(status.success(), "{stderr}");
}

#[tokio::test(flavor = "multi_thread")]
async fn udp_beyond_the_queue_is_dropped_and_counted() {
    let receiver = Receiver::start().await;
    receiver.set_down(true).await;
    let dir = tempfile::tempdir().unwrap();
    let port = UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let agent = AgentProcess::start(&config(dir.path(), &receiver.url(), "udp", port), &[]);
    listening(&agent);
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let n = 20_000usize;
    for i in 0..n {
        let m = format!("<14>1 - - app - - - datagram {i} {}", "y".repeat(100));
        socket.send_to(m.as_bytes(), ("127.0.0.1", port)).unwrap();
        if i % 100 == 0 {
            // Paced a little, so the kernel's buffer does not overflow before the agent
            // reads: the drops counted are the agent's own.
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    let dropped_series = "tailward_source_dropped_total{reason=\"queue_full\",source=\"syslog\"}";
    let dropping = agent.wait_until(Duration::from_secs(20), |a| a.metric(dropped_series) > 0.0);
    assert!(dropping, "{}", agent.stderr_text());
    let rss = rss_kib(agent.pid());
    assert!(rss < 150 * 1024, "agent RSS {rss} KiB with UDP queued");
    receiver.set_down(false).await;
    // Everything not dropped arrives.
    let settled = eventually(Duration::from_secs(60), || {
        let delivered = receiver.received().len() as f64;
        let dropped = agent.metric(dropped_series);
        let entries = agent.metric("promtail_syslog_target_entries_total");
        delivered > 0.0 && delivered == entries && delivered + dropped <= n as f64
    })
    .await;
    let delivered = receiver.received().len();
    let dropped = agent.metric(dropped_series) as usize;
    assert!(settled, "delivered {delivered}, dropped {dropped} of {n}");
    assert!(
        delivered < n && dropped > 0,
        "delivered {delivered}, dropped {dropped}"
    );
    // Every datagram is accounted for: shipped, or dropped and counted.
    let accounted = eventually(Duration::from_secs(30), || {
        receiver.received().len() + agent.metric(dropped_series) as usize == n
    })
    .await;
    assert!(
        accounted,
        "delivered {} + dropped {} != sent {n}",
        receiver.received().len(),
        agent.metric(dropped_series)
    );
    let (status, stderr) = agent.terminate();
    assert!(status.success(), "{stderr}");
}
