//! Rotation by the real `logrotate` (Debian package `logrotate`) while an application writes
//! numbered lines at a high rate: every line reaches Loki exactly once, for `create`,
//! `compress` + `delaycompress`, and `copytruncate`, whether the glob names only the live file
//! or also the rotated ones.
//!
//! `copytruncate` is lossy by design: logrotate copies the file and then truncates it, so
//! lines written after the agent's last read and before the truncation exist only in the copy
//! (and lines written between the copy and the truncation exist nowhere). What is provable is
//! therefore split in two: when the agent has caught up before logrotate runs, nothing is lost
//! or repeated; at full speed, nothing is ever repeated and every lost line belongs to the
//! stretch written just before a truncation. A glob that also matches the copies is not
//! tested for `copytruncate`: each copy is a new file holding lines already read from the live
//! one, so Promtail's advice (tail only the live file) holds for tailward too.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::support::agent_process::{
    AgentProcess, file_job_config, http_get, metric_value, write_config,
};
use crate::support::numbered_lines::{Tally, Writer, number_of, settled_lines};
use crate::support::receiver::Receiver;

const LINES: usize = 20_000;
const WRITE_FOR: Duration = Duration::from_secs(3);
const ROTATIONS: usize = 5;

#[derive(Clone, Copy, Debug, PartialEq)]
enum Mode {
    Create,
    CompressDelayed,
    CopyTruncate,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Glob {
    LiveFile,
    /// `app.log*`, compressed names excluded with `__path_exclude__`.
    LiveAndRotated,
}

fn logrotate_bin() -> &'static str {
    if Path::new("/usr/sbin/logrotate").exists() {
        "/usr/sbin/logrotate"
    } else {
        "logrotate"
    }
}

struct Rotator {
    conf: PathBuf,
    state: PathBuf,
}

impl Rotator {
    fn new(dir: &Path, log: &Path, mode: Mode) -> Rotator {
        let directives = match mode {
            Mode::Create => "create",
            Mode::CompressDelayed => "create\n    compress\n    delaycompress",
            Mode::CopyTruncate => "copytruncate",
        };
        let conf = dir.join("logrotate.conf");
        std::fs::write(
            &conf,
            format!(
                "{} {{\n    rotate 20\n    missingok\n    nomail\n    {directives}\n}}\n",
                log.display()
            ),
        )
        .unwrap();
        Rotator {
            conf,
            state: dir.join("logrotate.state"),
        }
    }

    /// `logrotate -s <state> -f <conf>`: rotates now, whatever the size or date.
    fn rotate(&self) {
        let out = Command::new(logrotate_bin())
            .arg("-s")
            .arg(&self.state)
            .arg("-f")
            .arg(&self.conf)
            .output()
            .expect("run logrotate (Debian package logrotate; scripts/test installs it)");
        assert!(
            out.status.success(),
            "logrotate failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

fn agent_config(dir: &Path, receiver: &Receiver, glob: Glob) -> PathBuf {
    let log = dir.join("app.log");
    let path = match glob {
        Glob::LiveFile => log.display().to_string(),
        Glob::LiveAndRotated => format!(
            "{}*\n          __path_exclude__: {}*.gz",
            log.display(),
            log.display()
        ),
    };
    write_config(
        dir,
        &file_job_config(
            &receiver.url(),
            &dir.join("positions.yaml"),
            &path,
            "",
            "      - static_labels:\n          env: test\n",
        ),
    )
}

fn names_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("app.log"))
        .collect();
    names.sort();
    names
}

fn stderr_tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Writes `LINES` lines over `WRITE_FOR` while logrotate rotates `ROTATIONS` times, evenly
/// spaced, the writer reopening its log as soon as the rotator has created a new one.
async fn rotate_while_writing(mode: Mode, glob: Glob) {
    let receiver = Receiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    let rotator = Rotator::new(dir.path(), &log, mode);
    let mut writer = Writer::create(&log, true);
    let agent = AgentProcess::start(&agent_config(dir.path(), &receiver, glob), &[]);

    let started = Instant::now();
    let rotations = std::thread::spawn(move || {
        for k in 1..=ROTATIONS {
            let at = started + WRITE_FOR.mul_f64(k as f64 / (ROTATIONS + 1) as f64);
            std::thread::sleep(at.saturating_duration_since(Instant::now()));
            rotator.rotate();
        }
    });
    let reopens = tokio::task::spawn_blocking(move || {
        writer.write_paced(0, LINES, WRITE_FOR);
        writer.reopens
    })
    .await
    .unwrap();
    rotations.join().unwrap();

    let lines = settled_lines(
        &receiver,
        LINES,
        Duration::from_secs(30),
        Duration::from_millis(1500),
    )
    .await;
    let (_, log_text) = agent.terminate();
    let names = names_in(dir.path());
    assert_eq!(reopens, ROTATIONS, "the writer followed every rotation");
    let mut expected_names: Vec<String> = match mode {
        Mode::CompressDelayed => ["app.log", "app.log.1"]
            .into_iter()
            .map(String::from)
            .chain((2..=ROTATIONS).map(|k| format!("app.log.{k}.gz")))
            .collect(),
        _ => std::iter::once("app.log".to_string())
            .chain((1..=ROTATIONS).map(|k| format!("app.log.{k}")))
            .collect(),
    };
    expected_names.sort();
    assert_eq!(names, expected_names, "logrotate rotated {ROTATIONS} times");
    let tally = Tally::of(lines.iter().map(String::as_str), 0..LINES, number_of);
    assert!(
        tally.exactly_once(),
        "{mode:?} rotation, {glob:?}: {tally}\nagent log tail:\n{}",
        stderr_tail(&log_text, 80)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn create_rotation_delivers_every_line_exactly_once() {
    rotate_while_writing(Mode::Create, Glob::LiveFile).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn create_rotation_with_rotated_names_in_the_glob_delivers_every_line_exactly_once() {
    rotate_while_writing(Mode::Create, Glob::LiveAndRotated).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn compress_delaycompress_rotation_delivers_every_line_exactly_once() {
    rotate_while_writing(Mode::CompressDelayed, Glob::LiveFile).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn compress_delaycompress_with_rotated_names_in_the_glob_delivers_every_line_exactly_once() {
    rotate_while_writing(Mode::CompressDelayed, Glob::LiveAndRotated).await;
}

/// Lines the agent has read, over every file it tails.
fn lines_read(port: u16) -> usize {
    let (_, body) = http_get(port, "/metrics");
    metric_value(&body, "promtail_read_lines_total") as usize
}

#[tokio::test(flavor = "multi_thread")]
async fn copytruncate_after_the_agent_caught_up_delivers_every_line_exactly_once() {
    let receiver = Receiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    let rotator = Rotator::new(dir.path(), &log, Mode::CopyTruncate);
    let mut writer = Writer::create(&log, false);
    let agent = AgentProcess::start(&agent_config(dir.path(), &receiver, Glob::LiveFile), &[]);
    let port = agent.port;

    let segment = LINES / (ROTATIONS + 1);
    tokio::task::spawn_blocking(move || {
        for k in 0..=ROTATIONS {
            let to = if k == ROTATIONS {
                LINES
            } else {
                (k + 1) * segment
            };
            writer.write_paced(k * segment, to, WRITE_FOR / (ROTATIONS + 1) as u32);
            if k < ROTATIONS {
                // The application pauses until the agent has read all it wrote, so the copy
                // holds nothing the agent has not read yet.
                let deadline = Instant::now() + Duration::from_secs(20);
                while lines_read(port) < to {
                    assert!(Instant::now() < deadline, "agent did not catch up to {to}");
                    std::thread::sleep(Duration::from_millis(20));
                }
                rotator.rotate();
            }
        }
    })
    .await
    .unwrap();

    let lines = settled_lines(
        &receiver,
        LINES,
        Duration::from_secs(30),
        Duration::from_millis(1500),
    )
    .await;
    let truncations = agent.metric("tailward_file_events_total{event=\"truncated\"}");
    let (_, log_text) = agent.terminate();
    assert_eq!(
        names_in(dir.path()).len(),
        ROTATIONS + 1,
        "logrotate copied {ROTATIONS} times"
    );
    assert_eq!(truncations as usize, ROTATIONS, "every truncation noticed");
    let tally = Tally::of(lines.iter().map(String::as_str), 0..LINES, number_of);
    assert!(
        tally.exactly_once(),
        "{tally}\nagent log tail:\n{}",
        stderr_tail(&log_text, 80)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn copytruncate_at_full_speed_never_repeats_and_loses_only_lines_written_just_before_a_truncation()
 {
    let receiver = Receiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    let rotator = Rotator::new(dir.path(), &log, Mode::CopyTruncate);
    let mut writer = Writer::create(&log, false);
    let written = writer.written.clone();
    let agent = AgentProcess::start(&agent_config(dir.path(), &receiver, Glob::LiveFile), &[]);

    let started = Instant::now();
    // For each rotation, how many lines were written when logrotate started and when it
    // finished: the truncation happened in between.
    let rotations = std::thread::spawn(move || {
        let mut windows = Vec::new();
        for k in 1..=ROTATIONS {
            let at = started + WRITE_FOR.mul_f64(k as f64 / (ROTATIONS + 1) as f64);
            std::thread::sleep(at.saturating_duration_since(Instant::now()));
            let before = written.load(Ordering::SeqCst);
            rotator.rotate();
            windows.push((before, written.load(Ordering::SeqCst)));
        }
        windows
    });
    tokio::task::spawn_blocking(move || writer.write_paced(0, LINES, WRITE_FOR))
        .await
        .unwrap();
    let windows = rotations.join().unwrap();

    let lines = settled_lines(
        &receiver,
        LINES,
        Duration::from_secs(15),
        Duration::from_millis(1500),
    )
    .await;
    let (_, log_text) = agent.terminate();
    let tally = Tally::of(lines.iter().map(String::as_str), 0..LINES, number_of);
    let context = format!(
        "{tally}\nrotation windows (lines written before, after logrotate): {windows:?}\nagent log tail:\n{}",
        stderr_tail(&log_text, 60)
    );
    eprintln!("{context}");
    assert!(tally.repeated.is_empty(), "repeated lines: {context}");
    assert!(tally.unexpected.is_empty(), "unexpected lines: {context}");
    // A lost run is the unread end of the file's content before a truncation: it ends with a
    // line written before logrotate finished, right before one written after it started,
    // and it starts after the previous truncation.
    for (first, last) in tally.missing_runs() {
        let explained = windows.iter().enumerate().any(|(k, &(before, after))| {
            let previous_start = if k == 0 { 0 } else { windows[k - 1].0 };
            last < after && last + 1 >= before && first >= previous_start
        });
        assert!(
            explained,
            "lines {first}..={last} lost away from any truncation: {context}"
        );
    }
}
