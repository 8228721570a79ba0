//! At-least-once delivery, checked by conservation as Vector's harness does: numbered lines
//! are written (and rotated) while the agent is SIGKILLed at random moments, or while a Loki
//! is down, and every number must arrive. Duplicates are reported; they can only come from
//! entries sent but not yet acknowledged when the agent died.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::support::agent_process::{AgentProcess, file_job_config, metric_value, write_config};
use crate::support::numbered_lines::{Tally, Writer, append, number_of, settled_lines};
use crate::support::receiver::Receiver;
use rand::{Rng as _, SeedableRng as _};

/// `app.log` becomes `app.log.<n>` and a new `app.log` is created; rotated files are kept, so
/// every line written stays readable.
fn rotate(dir: &Path, n: usize) {
    std::fs::rename(dir.join("app.log"), dir.join(format!("app.log.{n}"))).unwrap();
    std::fs::File::create(dir.join("app.log")).unwrap();
}

fn single_client_config(dir: &Path, receiver: &Receiver, client_extra: &str) -> PathBuf {
    write_config(
        dir,
        &file_job_config(
            &receiver.url(),
            &dir.join("positions.yaml"),
            &format!("{}*", dir.join("app.log").display()),
            client_extra,
            "      - static_labels:\n          env: test\n",
        ),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn sigkill_at_random_moments_while_writing_and_rotating_loses_nothing() {
    kill_repeatedly(false).await;
}

/// With the disk buffer a kill can also cut a WAL record short; what was acknowledged to
/// positions is on disk, the rest is read again.
#[tokio::test(flavor = "multi_thread")]
async fn sigkill_at_random_moments_with_a_disk_buffer_loses_nothing() {
    kill_repeatedly(true).await;
}

async fn kill_repeatedly(wal: bool) {
    const LINES: usize = 3000;
    const CHUNKS: usize = 6;
    const KILLS: usize = 8;
    let receiver = Receiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let wal_block = if wal {
        format!(
            "    wal:\n      enabled: true\n      dir: {}\n",
            dir.path().join("wal").display()
        )
    } else {
        String::new()
    };
    let cfg = single_client_config(
        dir.path(),
        &receiver,
        &format!("    timeout: 2s\n{wal_block}"),
    );
    let seed: u64 = rand::rng().random();
    eprintln!("kill schedule seed: {seed}");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);

    let mut writer = Writer::create(&dir.path().join("app.log"), true);
    let writer_dir = dir.path().to_path_buf();
    let writing = std::thread::spawn(move || {
        let per_chunk = LINES / CHUNKS;
        for c in 0..CHUNKS {
            writer.write_paced(
                c * per_chunk,
                (c + 1) * per_chunk,
                Duration::from_millis(900),
            );
            if c + 1 < CHUNKS {
                rotate(&writer_dir, c + 1);
            }
        }
    });

    for _ in 0..KILLS {
        let agent = AgentProcess::start(&cfg, &[]);
        // A random lifetime is the scenario: kills land anywhere in reading, batching,
        // sending and saving positions.
        let alive = Duration::from_millis(rng.random_range(150..900));
        tokio::time::sleep(alive).await;
        agent.kill_hard();
    }
    writing.join().unwrap();
    let agent = AgentProcess::start(&cfg, &[]);
    let lines = settled_lines(
        &receiver,
        LINES,
        Duration::from_secs(60),
        Duration::from_secs(2),
    )
    .await;
    let tally = Tally::of(lines.iter().map(String::as_str), 0..LINES, number_of);
    let duplicates: usize = tally.repeated.values().map(|n| n - 1).sum();
    eprintln!(
        "after {KILLS} SIGKILLs (WAL {wal}): {} lines received, {duplicates} duplicates ({} numbers repeated)",
        lines.len(),
        tally.repeated.len()
    );
    assert!(
        tally.missing.is_empty() && tally.unexpected.is_empty(),
        "seed {seed}: {tally}\n{}",
        agent.stderr_text()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn receiver_down_while_writing_and_rotating_loses_nothing() {
    const LINES: usize = 1200;
    let receiver = Receiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = single_client_config(dir.path(), &receiver, "");
    // Retry forever: the outage is longer than max_retries would allow.
    let text = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace("max_retries: 20", "max_retries: 0");
    std::fs::write(&cfg, text).unwrap();
    receiver.set_down(true).await;
    let agent = AgentProcess::start(&cfg, &[]);
    let mut writer = Writer::create(&dir.path().join("app.log"), true);
    for c in 0..3 {
        writer.write_paced(c * 400, (c + 1) * 400, Duration::from_millis(500));
        rotate(dir.path(), c + 1);
    }
    assert!(
        agent.metric("tailward_client_retries_total") >= 1.0,
        "the outage was noticed"
    );
    assert!(receiver.received().is_empty());
    receiver.set_down(false).await;
    let lines = settled_lines(
        &receiver,
        LINES,
        Duration::from_secs(60),
        Duration::from_secs(1),
    )
    .await;
    let tally = Tally::of(lines.iter().map(String::as_str), 0..LINES, number_of);
    assert!(tally.exactly_once(), "{tally}\n{}", agent.stderr_text());
}

#[tokio::test(flavor = "multi_thread")]
async fn two_clients_one_down_the_other_receives_everything_promptly() {
    const LINES: usize = 300;
    let up = Receiver::start().await;
    let down = Receiver::start().await;
    down.set_down(true).await;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    let positions = dir.path().join("positions.yaml");
    let client = |url: String| {
        format!(
            "  - url: {url}\n    batchwait: 100ms\n    backoff_config:\n      min_period: 50ms\n      max_period: 200ms\n      max_retries: 0\n"
        )
    };
    let cfg = write_config(
        dir.path(),
        &format!(
            "server:\n  http_listen_address: 127.0.0.1\n  http_listen_port: 0\n  graceful_shutdown_timeout: 2s\n\
             positions:\n  filename: {}\n  sync_period: 100ms\n\
             global:\n  file_watch_config:\n    min_poll_frequency: 25ms\n    max_poll_frequency: 100ms\n\
             clients:\n{}{}\
             scrape_configs:\n  - job_name: app\n    static_configs:\n      - targets: [localhost]\n        labels:\n          job: app\n          __path__: {}\n",
            positions.display(),
            client(down.url()),
            client(up.url()),
            log.display()
        ),
    );
    let mut writer = Writer::create(&log, false);
    let agent = AgentProcess::start(&cfg, &[]);
    // One write per line, spread out so the tailer hands them on in many small chunks.
    writer.write_paced(0, LINES, Duration::from_millis(1500));
    let started = Instant::now();
    let lines = settled_lines(
        &up,
        LINES,
        Duration::from_secs(15),
        Duration::from_millis(500),
    )
    .await;
    let tally = Tally::of(lines.iter().map(String::as_str), 0..LINES, number_of);
    assert!(
        tally.exactly_once(),
        "the client that is up got {tally} after {:?}\n{}",
        started.elapsed(),
        agent.stderr_text()
    );
    assert!(down.received().is_empty());
    let down_host = down.addr().to_string();
    let queued = metric_value(
        &agent.get("/metrics").1,
        &format!("tailward_client_queued_entries{{host=\"{down_host}\"}}"),
    );
    assert!(queued > 0.0, "the down client's queue holds its entries");
    assert!(
        agent.wait_until(Duration::from_secs(5), |a| a
            .metric("tailward_oldest_unacknowledged_seconds")
            >= 1.0),
        "the age of the oldest unacknowledged line shows the stall"
    );
    // Not every client acknowledged a line yet: the position must not move.
    let saved = std::fs::read_to_string(&positions).unwrap_or_default();
    assert!(
        !saved.contains(&format!("{}: \"", log.display())) || saved.contains(": \"0\""),
        "position advanced before the down client acknowledged: {saved}"
    );

    down.set_down(false).await;
    let lines = settled_lines(
        &down,
        LINES,
        Duration::from_secs(30),
        Duration::from_millis(500),
    )
    .await;
    let tally = Tally::of(lines.iter().map(String::as_str), 0..LINES, number_of);
    assert!(
        tally.exactly_once(),
        "the client that came back got {tally}"
    );
    let size = std::fs::metadata(&log).unwrap().len();
    assert!(
        agent.wait_until(Duration::from_secs(10), |_| {
            std::fs::read_to_string(&positions)
                .unwrap_or_default()
                .contains(&format!("\"{size}\""))
        }),
        "position reaches the end once both clients acknowledged: {}",
        std::fs::read_to_string(&positions).unwrap_or_default()
    );
    assert!(
        agent.wait_until(Duration::from_secs(5), |a| a
            .metric("tailward_oldest_unacknowledged_seconds")
            == 0.0),
        "nothing is unacknowledged any more"
    );
}

fn saved_offset(positions: &Path, log: &Path) -> Option<u64> {
    let text = std::fs::read_to_string(positions).ok()?;
    let rest = text.split(&format!("{}: \"", log.display())).nth(1)?;
    rest.split('"').next()?.parse().ok()
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_drains_within_the_grace_period_and_a_second_one_exits_at_once() {
    let receiver = Receiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    let positions = dir.path().join("positions.yaml");
    let cfg = write_config(
        dir.path(),
        &file_job_config(
            &receiver.url(),
            &positions,
            &log.display().to_string(),
            "",
            "      - static_labels:\n          env: test\n",
        )
        .replace(
            "graceful_shutdown_timeout: 5s",
            "graceful_shutdown_timeout: 60s",
        )
        .replace("max_retries: 20", "max_retries: 0"),
    );
    append(&log, 0, 50);
    let acknowledged = std::fs::metadata(&log).unwrap().len();

    // A first SIGTERM with Loki down waits for the grace period (60 s here)...
    let mut agent = AgentProcess::start(&cfg, &[]);
    receiver.wait_for_entries(50, Duration::from_secs(20)).await;
    receiver.set_down(true).await;
    append(&log, 50, 100);
    assert!(
        agent.wait_until(Duration::from_secs(10), |a| a
            .metric("tailward_client_retries_total")
            >= 1.0),
        "the new lines are being retried"
    );
    agent.signal_term();
    assert!(
        agent.wait_exit(Duration::from_secs(2)).is_none(),
        "one SIGTERM drains, it does not give up"
    );
    // ...a second one exits at once, keeping only what Loki acknowledged.
    let second = Instant::now();
    agent.signal_term();
    let status = agent
        .wait_exit(Duration::from_secs(10))
        .expect("exited after the second SIGTERM");
    assert!(status.success(), "{}", agent.stderr_text());
    assert!(second.elapsed() < Duration::from_secs(10));
    assert_eq!(
        saved_offset(&positions, &log),
        Some(acknowledged),
        "positions hold what was acknowledged, nothing more"
    );
    assert!(agent.stderr_text().contains("second shutdown signal"));

    // Nothing is lost: the next run sends the rest.
    receiver.set_down(false).await;
    let agent = AgentProcess::start(&cfg, &[]);
    let lines = settled_lines(
        &receiver,
        100,
        Duration::from_secs(20),
        Duration::from_millis(300),
    )
    .await;
    let tally = Tally::of(lines.iter().map(String::as_str), 0..100, number_of);
    assert!(tally.exactly_once(), "{tally}\n{}", agent.stderr_text());
    let (status, text) = agent.terminate();
    assert!(status.success(), "{text}");
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_with_loki_down_and_a_full_queue_stops_after_the_grace_period() {
    let receiver = Receiver::start().await;
    receiver.set_down(true).await;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    let positions = dir.path().join("positions.yaml");
    let cfg = write_config(
        dir.path(),
        &file_job_config(
            &receiver.url(),
            &positions,
            &log.display().to_string(),
            "    queue:\n      max_bytes: 2KB\n",
            "      - static_labels:\n          env: test\n",
        )
        .replace(
            "graceful_shutdown_timeout: 5s",
            "graceful_shutdown_timeout: 2s",
        )
        .replace("max_retries: 20", "max_retries: 0"),
    );
    // Far more than the queue holds: reading is paused, waiting for room, when SIGTERM comes.
    append(&log, 0, 2000);
    let mut agent = AgentProcess::start(&cfg, &[]);
    assert!(
        agent.wait_until(Duration::from_secs(10), |a| a
            .metric("tailward_client_retries_total")
            >= 1.0),
        "the first batch is being retried"
    );
    // Lines arriving one by one now wait in the queue until it is full.
    Writer::create(&log, false).write_paced(2000, 2100, Duration::from_millis(500));
    assert!(
        agent.wait_until(Duration::from_secs(10), |a| a
            .metric("tailward_client_queued_entries")
            >= 1.0),
        "the queue filled"
    );
    let term = Instant::now();
    agent.signal_term();
    let status = agent
        .wait_exit(Duration::from_secs(15))
        .expect("stopped after the grace period, not stuck on the full queue");
    assert!(status.success(), "{}", agent.stderr_text());
    assert!(
        term.elapsed() >= Duration::from_secs(1),
        "it did drain first"
    );
    assert_eq!(
        saved_offset(&positions, &log).unwrap_or(0),
        0,
        "nothing was acknowledged"
    );
}

/// Lines the pipeline drops on purpose (here every even number, and inside a `match` after a
/// multiline stage holds them) are finalized too: the position reaches the end of the file.
#[tokio::test(flavor = "multi_thread")]
async fn lines_dropped_on_purpose_let_the_position_reach_the_end() {
    let receiver = Receiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    let positions = dir.path().join("positions.yaml");
    let stages = "      - match:\n          selector: '{job=\"app\"}'\n          stages:\n            - multiline:\n                firstline: '^seq='\n                max_wait_time: 200ms\n            - drop:\n                expression: '^seq=[0-9]{6}[02468] '\n";
    let cfg = write_config(
        dir.path(),
        &file_job_config(
            &receiver.url(),
            &positions,
            &log.display().to_string(),
            "",
            stages,
        ),
    );
    append(&log, 0, 40);
    let agent = AgentProcess::start(&cfg, &[]);
    let lines = settled_lines(
        &receiver,
        20,
        Duration::from_secs(20),
        Duration::from_millis(500),
    )
    .await;
    let numbers: Vec<usize> = lines.iter().filter_map(|l| number_of(l)).collect();
    assert_eq!(numbers, (1..40).step_by(2).collect::<Vec<_>>());
    let size = std::fs::metadata(&log).unwrap().len();
    assert!(
        agent.wait_until(Duration::from_secs(10), |_| saved_offset(&positions, &log)
            == Some(size)),
        "position at the end of the file: {:?}",
        std::fs::read_to_string(&positions)
    );
    assert_eq!(agent.metric("logentry_dropped_lines_total"), 20.0);
}
