//! Rotation by Python's `logging.handlers.RotatingFileHandler` (rename `app.log` to
//! `app.log.1` after shifting the older backups, delete the oldest, reopen `app.log`), the
//! way most Python services rotate their own logs, with the agent's glob naming only
//! `app.log`: every JSON record reaches Loki exactly once and intact.
//!
//! Two paces: one an agent polling `app.log` keeps up with while the handler deletes backups
//! (more rotations than `backupCount`, so records survive only because the agent keeps
//! rotated files open); and full speed, where the handler rotates several times between two
//! looks of the agent but deletes nothing (every record is still on disk in `app.log*`).

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::support::agent_process::{AgentProcess, file_job_config, write_config};
use crate::support::numbered_lines::{Tally, settled_lines};
use crate::support::receiver::Receiver;

const MAX_BYTES: usize = 20 * 1024;
const BACKUP_COUNT: usize = 5;

/// Logs `n` JSON records through a RotatingFileHandler, sleeping so record `i` is written no
/// earlier than `pace * i` seconds after the start (0: full speed). Prints, as JSON, the
/// sequence number of the first record of each new file.
const WRITER_PY: &str = r#"
import json, logging, logging.handlers, sys, time

path, n, max_bytes, backups, pace = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
handler = logging.handlers.RotatingFileHandler(path, maxBytes=max_bytes, backupCount=backups)
handler.setFormatter(logging.Formatter("%(message)s"))
rollovers = []
current = [0]
roll = handler.doRollover
def do_rollover():
    rollovers.append(current[0])
    roll()
handler.doRollover = do_rollover
log = logging.getLogger("app")
log.propagate = False
log.setLevel(logging.INFO)
log.addHandler(handler)
start = time.monotonic()
for i in range(n):
    current[0] = i
    log.info(json.dumps({"seq": i, "level": "info", "logger": "app.auth", "msg": "user logged in", "user": "u%06d" % i}))
    if pace > 0:
        ahead = start + pace * (i + 1) - time.monotonic()
        if ahead > 0.002:
            time.sleep(ahead)
handler.close()
print(json.dumps(rollovers))
"#;

/// Debian's interpreter when present: a pyenv shim on PATH may point anywhere.
fn python() -> &'static str {
    if Path::new("/usr/bin/python3").exists() {
        "/usr/bin/python3"
    } else {
        "python3"
    }
}

fn seq_of(line: &str) -> Option<usize> {
    let v: serde_json::Value = serde_json::from_str(line).ok()?;
    let seq = v.get("seq")?.as_u64()? as usize;
    // An intact record: every field, the user derived from the sequence number.
    (v.get("user")?.as_str()? == format!("u{seq:06}")).then_some(seq)
}

/// Runs the writer for `n` records at `pace`, with the agent tailing `app.log`; returns the
/// tally and how many times the handler rotated.
async fn log_through_handler(n: usize, pace: Duration) -> (Tally, usize, String) {
    let receiver = Receiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    // The application has started (and created its log) before the agent looks.
    std::fs::write(&log, "").unwrap();
    let cfg = write_config(
        dir.path(),
        &file_job_config(
            &receiver.url(),
            &dir.path().join("positions.yaml"),
            &log.display().to_string(),
            "",
            "      - static_labels:\n          env: test\n",
        ),
    );
    let agent = AgentProcess::start(&cfg, &[]);
    let script = dir.path().join("writer.py");
    std::fs::write(&script, WRITER_PY).unwrap();
    let log_arg = log.clone();
    let out = tokio::task::spawn_blocking(move || {
        Command::new(python())
            .arg(&script)
            .arg(&log_arg)
            .arg(n.to_string())
            .arg(MAX_BYTES.to_string())
            .arg(BACKUP_COUNT.to_string())
            .arg(pace.as_secs_f64().to_string())
            .output()
            .expect("run python3 (Debian package python3; scripts/test installs it)")
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "writer failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rollovers: Vec<usize> = serde_json::from_slice(&out.stdout).unwrap();

    let lines = settled_lines(
        &receiver,
        n,
        Duration::from_secs(20),
        Duration::from_millis(1500),
    )
    .await;
    let (_, log_text) = agent.terminate();
    let tally = Tally::of(lines.iter().map(String::as_str), 0..n, seq_of);
    let tail: Vec<&str> = log_text.lines().collect();
    let context = format!(
        "{tally}\nfirst record of each new file: {rollovers:?}\nagent log tail:\n{}",
        tail[tail.len().saturating_sub(60)..].join("\n")
    );
    (tally, rollovers.len(), context)
}

#[tokio::test(flavor = "multi_thread")]
async fn records_survive_more_rotations_than_backup_count_when_the_agent_keeps_up() {
    // 97-byte records, 211 to a file: 12 rotations, a file every ~320 ms, so backups are
    // deleted while the agent may still be reading them.
    let n = 2600;
    let (tally, rotations, context) = log_through_handler(n, Duration::from_micros(1500)).await;
    assert!(
        rotations > BACKUP_COUNT + 5,
        "backups were deleted ({rotations} rotations): {context}"
    );
    assert!(tally.exactly_once(), "{context}");
}

#[tokio::test(flavor = "multi_thread")]
async fn records_written_at_full_speed_arrive_exactly_once_while_every_backup_is_on_disk() {
    // 211 records to a file: five rotations within a few milliseconds, and no backup deleted,
    // so every record is still on disk at the end.
    let n = 1200;
    let (tally, rotations, context) = log_through_handler(n, Duration::ZERO).await;
    assert_eq!(rotations, BACKUP_COUNT, "{context}");
    assert!(tally.exactly_once(), "{context}");
}
