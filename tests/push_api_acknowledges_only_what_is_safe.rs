//! A `loki_push_api` job answers 204 only once a request's entries are safe with every
//! client: with a disk buffer, a kill -9 right after the 204s loses none of them (the agent
//! started again sends them); without one, while Loki is down and the client's queue is
//! full, senders get 429 with `Retry-After`, memory stays bounded, and a sender that resends
//! what was refused loses nothing once Loki is back.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::support::agent_process::AgentProcess;
use crate::support::push_client::{TestEntry, post, protobuf_push, push_port, receiving_config};
use crate::support::receiver::Receiver;

fn push_job(port: u16) -> String {
    format!(
        "    loki_push_api:\n      server:\n        http_listen_address: 127.0.0.1\n        http_listen_port: {port}\n      use_incoming_timestamp: true\n"
    )
}

/// Batch `b` of `per` numbered entries, `pad` bytes of padding each.
fn batch(b: usize, per: usize, pad: usize) -> Vec<u8> {
    let lines: Vec<String> = (0..per)
        .map(|i| format!("batch {b:04} entry {i:04} {}", "p".repeat(pad)))
        .collect();
    let entries: Vec<TestEntry<'_>> = lines
        .iter()
        .enumerate()
        .map(|(i, l)| {
            (
                1_700_000_000_000_000_000 + (b * per + i) as i64,
                l.as_str(),
                &[][..],
            )
        })
        .collect();
    protobuf_push(r#"{job="pushed"}"#, &entries)
}

fn numbered(line: &str) -> (usize, usize) {
    let mut w = line.split_whitespace();
    let b = w.nth(1).unwrap().parse().unwrap();
    let i = w.nth(1).unwrap().parse().unwrap();
    (b, i)
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn entries_acknowledged_with_204_survive_kill_9_with_the_disk_buffer_on() {
    let receiver = Receiver::start().await;
    receiver.set_down(true).await;
    let dir = tempfile::tempdir().unwrap();
    let port = 0;
    let wal = format!(
        "    wal:\n      enabled: true\n      dir: {}\n",
        dir.path().join("wal").display()
    );
    let config = receiving_config(dir.path(), &receiver.url(), &wal, &push_job(port));
    let agent = AgentProcess::start(&config, &[]);
    let port = push_port(&agent, 1);
    let (batches, per) = (20, 50);
    for b in 0..batches {
        let a = post(
            port,
            "/loki/api/v1/push",
            &[("Content-Type", "application/x-protobuf")],
            &batch(b, per, 40),
        );
        assert_eq!(
            a.status, 204,
            "batch {b}: in the disk buffer while Loki is down: {a:?}"
        );
    }
    let _ = agent.kill_hard();
    assert_eq!(receiver.request_count(), 0, "Loki was down throughout");
    receiver.set_down(false).await;
    let again = AgentProcess::start(&config, &[]);
    let entries = receiver
        .wait_for_entries(batches * per, Duration::from_secs(60))
        .await;
    let got: BTreeSet<(usize, usize)> = entries.iter().map(|e| numbered(&e.line)).collect();
    let missing: Vec<(usize, usize)> = (0..batches)
        .flat_map(|b| (0..per).map(move |i| (b, i)))
        .filter(|k| !got.contains(k))
        .take(5)
        .collect();
    assert!(
        missing.is_empty(),
        "acknowledged entries lost by kill -9: {missing:?}"
    );
    let _ = again.terminate();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_full_queue_answers_429_with_retry_after_and_a_resending_sender_loses_nothing() {
    let receiver = Receiver::start().await;
    receiver.set_down(true).await;
    let dir = tempfile::tempdir().unwrap();
    let port = 0;
    let config = receiving_config(
        dir.path(),
        &receiver.url(),
        "    queue: {max_bytes: 256KiB}\n",
        &push_job(port),
    );
    let agent = AgentProcess::start(&config, &[]);
    let port = push_port(&agent, 1);
    let (senders, batches, per) = (6, 12, 200);
    let refused = Arc::new(AtomicUsize::new(0));
    let without_retry_after = Arc::new(AtomicUsize::new(0));
    let threads: Vec<_> = (0..senders)
        .map(|s| {
            let (refused, without) = (refused.clone(), without_retry_after.clone());
            std::thread::spawn(move || {
                for k in 0..batches {
                    let b = s * batches + k;
                    let body = batch(b, per, 100);
                    loop {
                        let a = post(
                            port,
                            "/loki/api/v1/push",
                            &[("Content-Type", "application/x-protobuf")],
                            &body,
                        );
                        match a.status {
                            204 => break,
                            429 => {
                                refused.fetch_add(1, Ordering::SeqCst);
                                if a.header("retry-after").is_none() {
                                    without.fetch_add(1, Ordering::SeqCst);
                                }
                                std::thread::sleep(Duration::from_millis(200));
                            }
                            other => panic!("batch {b}: unexpected {other}: {a:?}"),
                        }
                    }
                }
            })
        })
        .collect();
    // Loki stays down until the senders have been held back for a while.
    let started = Instant::now();
    let mut peak = 0;
    while started.elapsed() < Duration::from_secs(12) {
        peak = peak.max(rss_kib(agent.pid()));
        std::thread::sleep(Duration::from_millis(200));
    }
    let held_back = agent
        .metric("tailward_push_rejected_total{reason=\"back_pressure\",source=\"loki_push_api\"}");
    assert!(
        held_back > 0.0,
        "no request was held back while the queue was full"
    );
    assert!(
        peak < 150 * 1024,
        "agent RSS {peak} KiB while Loki was down"
    );
    receiver.set_down(false).await;
    for t in threads {
        t.join().unwrap();
    }
    assert!(refused.load(Ordering::SeqCst) > 0);
    assert_eq!(
        without_retry_after.load(Ordering::SeqCst),
        0,
        "every 429 says when to come back"
    );
    let n = senders * batches * per;
    let entries = receiver.wait_for_entries(n, Duration::from_secs(60)).await;
    let got: BTreeSet<(usize, usize)> = entries.iter().map(|e| numbered(&e.line)).collect();
    assert_eq!(got.len(), n, "every entry arrived (at least once)");
    let _ = agent.terminate();
}

#[tokio::test(flavor = "multi_thread")]
async fn without_a_disk_buffer_no_push_is_acknowledged_while_loki_is_down() {
    let receiver = Receiver::start().await;
    receiver.set_down(true).await;
    let dir = tempfile::tempdir().unwrap();
    let port = 0;
    let config = receiving_config(dir.path(), &receiver.url(), "", &push_job(port));
    let agent = AgentProcess::start(&config, &[]);
    let port = push_port(&agent, 1);
    let body = batch(0, 10, 10);
    let proto = [("Content-Type", "application/x-protobuf")];
    let a = post(port, "/loki/api/v1/push", &proto, &body);
    assert_eq!(
        a.status, 429,
        "entries only in memory are not acknowledged: {a:?}"
    );
    assert_eq!(a.header("retry-after"), Some("1"));
    receiver.set_down(false).await;
    let a = post(port, "/loki/api/v1/push", &proto, &body);
    assert_eq!(a.status, 204, "{a:?}");
    let entries = receiver.wait_for_entries(10, Duration::from_secs(30)).await;
    let got: BTreeSet<(usize, usize)> = entries.iter().map(|e| numbered(&e.line)).collect();
    assert_eq!(got.len(), 10);
    let _ = agent.terminate();
}
