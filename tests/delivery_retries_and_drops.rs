//! How the client treats Loki's answers: server errors and an unreachable Loki are retried
//! until every entry arrives exactly once; a 400 drops the batch and counts it; a 429 waits
//! for Retry-After; a 413 splits the batch until the halves are accepted.

use std::io::Write;
use std::time::{Duration, Instant};

use crate::support::agent_process::{AgentProcess, file_job_config, write_config};
use crate::support::receiver::{ReceivedEntry, Receiver, ReceiverConfig, Reply};
use crate::support::watch_for_stragglers;

fn write_lines(path: &std::path::Path, from: usize, to: usize) {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    for i in from..to {
        writeln!(f, "line {i:04}").unwrap();
    }
}

fn lines_of(entries: &[ReceivedEntry]) -> Vec<String> {
    entries.iter().map(|e| e.line.clone()).collect()
}

fn numbered(from: usize, to: usize) -> Vec<String> {
    (from..to).map(|i| format!("line {i:04}")).collect()
}

struct Setup {
    receiver: Receiver,
    dir: tempfile::TempDir,
    log: std::path::PathBuf,
}

async fn setup() -> Setup {
    setup_with(ReceiverConfig::default()).await
}

async fn setup_with(config: ReceiverConfig) -> Setup {
    let receiver = Receiver::start_with(config).await;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    Setup { receiver, dir, log }
}

impl Setup {
    fn start(&self, client_extra: &str) -> AgentProcess {
        let cfg = file_job_config(
            &self.receiver.url(),
            &self.dir.path().join("positions.yaml"),
            &self.log.display().to_string(),
            client_extra,
            "      - static_labels:\n          env: test\n",
        );
        AgentProcess::start(&write_config(self.dir.path(), &cfg), &[])
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn server_errors_are_retried_and_every_entry_arrives_once() {
    let s = setup().await;
    s.receiver
        .script(vec![Reply::Status(500), Reply::Status(500)]);
    write_lines(&s.log, 0, 50);
    let agent = s.start("");
    let got = s
        .receiver
        .wait_for_entries(50, Duration::from_secs(20))
        .await;
    // The agent counts a push as sent once it has the 204, which the receiver recorded
    // before answering: then every status below is in.
    assert!(
        agent.wait_until(Duration::from_secs(10), |a| a
            .metric("promtail_sent_entries_total")
            >= 50.0),
        "{}",
        agent.stderr_text()
    );
    watch_for_stragglers(Duration::from_millis(500)).await;
    let got_after = s.receiver.received();
    assert_eq!(lines_of(&got), numbered(0, 50));
    assert_eq!(got_after.len(), 50, "no entry may arrive twice");
    let statuses: Vec<u16> = s.receiver.requests().iter().map(|r| r.status).collect();
    assert_eq!(&statuses[..3], &[500, 500, 204]);
    assert!(agent.metric("promtail_batch_retries_total") >= 2.0);
    assert_eq!(agent.metric("promtail_sent_entries_total"), 50.0);
    assert_eq!(agent.metric("promtail_dropped_entries_total"), 0.0);
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_request_drops_the_batch_and_counts_it() {
    let s = setup().await;
    s.receiver
        .script(vec![Reply::BadRequest("entry too far behind".into())]);
    write_lines(&s.log, 0, 10);
    let agent = s.start("");
    assert!(
        agent.wait_until(Duration::from_secs(20), |a| a
            .metric("promtail_dropped_entries_total")
            >= 10.0),
        "drop not counted:\n{}",
        agent.stderr_text()
    );
    let reason = "promtail_dropped_entries_total{host=\"".to_string()
        + &s.receiver.addr().to_string()
        + "\",reason=\"ingester_error\",tenant=\"\"}";
    assert_eq!(agent.metric(&reason), 10.0);
    assert!(
        agent.stderr_text().contains("entry too far behind"),
        "Loki's message is logged"
    );
    // The batch is not retried; later lines still flow.
    write_lines(&s.log, 10, 15);
    let got = s
        .receiver
        .wait_for_entries(5, Duration::from_secs(20))
        .await;
    assert_eq!(lines_of(&got), numbered(10, 15));
    assert_eq!(s.receiver.request_count(), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_partly_refused_batch_counts_only_what_loki_refused_by_its_reason() {
    let s = setup_with(ReceiverConfig {
        max_line_size: Some(20),
        ..ReceiverConfig::default()
    })
    .await;
    {
        let mut f = std::fs::File::create(&s.log).unwrap();
        for i in 0..10 {
            writeln!(f, "line {i:04}").unwrap();
            if i % 4 == 0 {
                writeln!(f, "a line far longer than Loki's limit {i}").unwrap();
            }
        }
    }
    let agent = s.start("");
    let got = s
        .receiver
        .wait_for_entries(10, Duration::from_secs(20))
        .await;
    assert_eq!(
        lines_of(&got),
        numbered(0, 10),
        "Loki stored the valid lines"
    );
    let metric = |name: &str, reason: &str| {
        format!(
            "{name}{{host=\"{}\",reason=\"{reason}\",tenant=\"\"}}",
            s.receiver.addr()
        )
    };
    assert!(
        agent.wait_until(Duration::from_secs(10), |a| a
            .metric(&metric("promtail_dropped_entries_total", "line_too_long"))
            == 3.0),
        "the three long lines count as line_too_long:\n{}",
        agent.metric(&metric("promtail_dropped_entries_total", "line_too_long"))
    );
    assert_eq!(
        agent.metric(&metric("promtail_dropped_entries_total", "ingester_error")),
        0.0
    );
    assert_eq!(agent.metric("promtail_sent_entries_total"), 10.0);
}

#[tokio::test(flavor = "multi_thread")]
async fn too_many_requests_waits_for_retry_after() {
    let s = setup().await;
    s.receiver.script(vec![Reply::TooManyRequests {
        retry_after_secs: Some(1),
    }]);
    write_lines(&s.log, 0, 5);
    let agent = s.start("");
    s.receiver
        .wait_for_requests(1, Duration::from_secs(20))
        .await;
    let first = Instant::now();
    let got = s
        .receiver
        .wait_for_entries(5, Duration::from_secs(20))
        .await;
    assert!(
        first.elapsed() >= Duration::from_millis(900),
        "retried before Retry-After: {:?}",
        first.elapsed()
    );
    assert_eq!(lines_of(&got), numbered(0, 5));
    assert!(agent.metric("promtail_batch_retries_total") >= 1.0);
    let statuses: Vec<u16> = s.receiver.requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, [429, 204], "one 429, then accepted");
    let retries = format!(
        "tailward_client_retries_total{{host=\"{}\",reason=\"status_429\"}}",
        s.receiver.addr()
    );
    assert_eq!(agent.metric(&retries), 1.0);
}

#[tokio::test(flavor = "multi_thread")]
async fn unreachable_loki_is_retried_with_backoff_and_never_crashes() {
    let s = setup().await;
    s.receiver.set_down(true).await;
    write_lines(&s.log, 0, 20);
    let agent = s.start("");
    // Several attempts fail while Loki is down; each is logged and counted as a transport
    // error, and the agent keeps running.
    let transport_errors = "promtail_request_duration_seconds_count{host=\"".to_string()
        + &s.receiver.addr().to_string()
        + "\",status_code=\"-1\"}";
    assert!(
        agent.wait_until(Duration::from_secs(20), |a| a.metric(&transport_errors)
            >= 3.0),
        "expected repeated attempts:\n{}",
        agent.stderr_text()
    );
    assert_eq!(
        agent.get("/ready").0,
        200,
        "agent still serving while Loki is down"
    );
    s.receiver.set_down(false).await;
    let got = s
        .receiver
        .wait_for_entries(20, Duration::from_secs(30))
        .await;
    assert_eq!(lines_of(&got), numbered(0, 20));
    let (status, _) = agent.terminate();
    assert!(status.success());
}

#[tokio::test(flavor = "multi_thread")]
async fn too_large_batch_is_split_until_loki_accepts_the_halves() {
    let s = setup_with(ReceiverConfig {
        max_body_bytes: Some(700),
        ..ReceiverConfig::default()
    })
    .await;
    // Lines that snappy cannot shrink much, so one batch of all of them is over the limit
    // and a quarter of them is under it.
    let mut f = std::fs::File::create(&s.log).unwrap();
    let expected: Vec<String> = (0..40u64)
        .map(|i| {
            let noise = i.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ (i << 17);
            format!("line {i:04} {noise:016x}{:016x}", noise.rotate_left(29))
        })
        .collect();
    for l in &expected {
        writeln!(f, "{l}").unwrap();
    }
    drop(f);
    let agent = s.start("");
    let got = s
        .receiver
        .wait_for_entries(40, Duration::from_secs(20))
        .await;
    assert!(
        agent.wait_until(Duration::from_secs(10), |a| a
            .metric("promtail_sent_entries_total")
            >= 40.0),
        "{}",
        agent.stderr_text()
    );
    watch_for_stragglers(Duration::from_millis(300)).await;
    assert_eq!(lines_of(&got), expected, "every entry, in order");
    assert_eq!(s.receiver.received().len(), 40, "none twice");
    let statuses: Vec<u16> = s.receiver.requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses[0], 413, "{statuses:?}");
    assert!(
        statuses.iter().filter(|&&c| c == 204).count() >= 2,
        "{statuses:?}"
    );
    assert!(agent.metric("tailward_client_retries_total") >= 1.0);
    assert_eq!(agent.metric("promtail_dropped_entries_total"), 0.0);
}
