//! A job with `decompression` enabled: gzip, zlib and bzip2 archives (found by their magic
//! bytes when `format` is empty) are each shipped exactly once, positions hold line counts
//! as Promtail's do, a restart resumes after the saved count, archives that real logrotate
//! shifts from name to name are each read once, and a corrupt archive is counted without
//! stopping the agent or the other files.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::support::agent_process::{AgentProcess, file_job_config, write_config};
use crate::support::numbered_lines::{Tally, append, line, number_of, settled_lines};
use crate::support::receiver::Receiver;
use crate::support::watch_for_stragglers;

fn text(from: usize, to: usize) -> Vec<u8> {
    (from..to)
        .flat_map(|i| format!("{}\n", line(i)).into_bytes())
        .collect()
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

fn bzip2(data: &[u8]) -> Vec<u8> {
    let mut e = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

struct Job {
    dir: tempfile::TempDir,
    logs: PathBuf,
    positions: PathBuf,
    config: PathBuf,
}

/// One job reading `<dir>/logs/*` with `decompression` set to `block` (6-space keys).
fn job(receiver: &Receiver, block: &str) -> Job {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    std::fs::create_dir(&logs).unwrap();
    let positions = dir.path().join("positions.yaml");
    let yaml = file_job_config(
        &receiver.url(),
        &positions,
        &format!("{}/*", logs.display()),
        "",
        "      - static_labels:\n          env: test\n",
    )
    .replace(
        "    pipeline_stages:\n",
        &format!("    decompression:\n{block}    pipeline_stages:\n"),
    );
    let config = write_config(dir.path(), &yaml);
    Job {
        dir,
        logs,
        positions,
        config,
    }
}

fn lines_of(receiver: &Receiver, file: &Path) -> Vec<String> {
    let name = file.display().to_string();
    receiver
        .received()
        .into_iter()
        .filter(|e| e.labels.get("filename") == Some(&name))
        .map(|e| e.line)
        .collect()
}

fn tally(receiver: &Receiver, file: &Path, expected: std::ops::Range<usize>) -> Tally {
    let lines = lines_of(receiver, file);
    Tally::of(lines.iter().map(String::as_str), expected, number_of)
}

/// The saved position of `file`, as the positions file holds it.
fn saved(positions: &Path, file: &Path) -> Option<String> {
    let text = std::fs::read_to_string(positions).ok()?;
    let key = format!("  {}: ", file.display());
    text.lines()
        .find_map(|l| l.strip_prefix(key.as_str()))
        .map(|v| v.trim_matches('"').to_string())
}

#[tokio::test(flavor = "multi_thread")]
async fn gz_zlib_and_bz2_files_each_arrive_exactly_once_with_line_count_positions() {
    let receiver = Receiver::start().await;
    let job = job(&receiver, "      enabled: true\n");
    let gz = job.logs.join("app.log.2.gz");
    let z = job.logs.join("app.log.3.z");
    let bz2 = job.logs.join("app.log.4.bz2");
    let plain = job.logs.join("app.log");
    std::fs::write(&gz, gzip(&text(0, 300))).unwrap();
    std::fs::write(&z, zlib(&text(300, 600))).unwrap();
    std::fs::write(&bz2, bzip2(&text(600, 900))).unwrap();
    std::fs::write(&plain, text(900, 1000)).unwrap();
    let agent = AgentProcess::start(&job.config, &[]);
    // Past several re-globs (sync_period 500ms): nothing is read a second time.
    settled_lines(
        &receiver,
        1000,
        Duration::from_secs(30),
        Duration::from_millis(1500),
    )
    .await;
    for (file, range) in [(&gz, 0..300), (&z, 300..600), (&bz2, 600..900)] {
        let t = tally(&receiver, file, range);
        assert!(
            t.exactly_once(),
            "{}: {t}\n{}",
            file.display(),
            agent.stderr_text()
        );
    }
    // A file without magic bytes is tailed as a plain log, and followed.
    append(&plain, 1000, 1050);
    receiver
        .wait_for_entries(1050, Duration::from_secs(20))
        .await;
    let t = tally(&receiver, &plain, 900..1050);
    assert!(t.exactly_once(), "plain: {t}");
    let (status, log) = agent.terminate();
    assert!(status.success(), "{log}");
    // Archives: the number of lines read, as Promtail stores it; the plain file: bytes.
    assert_eq!(saved(&job.positions, &gz).as_deref(), Some("300"));
    assert_eq!(saved(&job.positions, &z).as_deref(), Some("300"));
    assert_eq!(saved(&job.positions, &bz2).as_deref(), Some("300"));
    let plain_len = std::fs::metadata(&plain).unwrap().len().to_string();
    assert_eq!(saved(&job.positions, &plain), Some(plain_len));
    drop(job.dir);
}

#[tokio::test(flavor = "multi_thread")]
async fn restart_resumes_after_the_saved_line_count_without_duplicates() {
    let receiver = Receiver::start().await;
    let job = job(&receiver, "      enabled: true\n      format: gz\n");
    let gz = job.logs.join("old.log.1.gz");
    std::fs::write(&gz, gzip(&text(0, 400))).unwrap();
    // Left by Promtail after it read 150 lines of the archive.
    std::fs::write(
        &job.positions,
        format!("positions:\n  {}: \"150\"\n", gz.display()),
    )
    .unwrap();
    let agent = AgentProcess::start(&job.config, &[]);
    settled_lines(
        &receiver,
        250,
        Duration::from_secs(30),
        Duration::from_millis(1000),
    )
    .await;
    let t = tally(&receiver, &gz, 150..400);
    assert!(t.exactly_once(), "first run: {t}\n{}", agent.stderr_text());
    let (status, log) = agent.terminate();
    assert!(status.success(), "{log}");
    assert_eq!(saved(&job.positions, &gz).as_deref(), Some("400"));

    // Restarted: the archive is decompressed again, and every line is skipped.
    let agent = AgentProcess::start(&job.config, &[]);
    assert!(
        agent.wait_until(Duration::from_secs(20), |a| a
            .stderr_text()
            .contains("archive read to its end")),
        "{}",
        agent.stderr_text()
    );
    // The lines it skipped must not come after all.
    watch_for_stragglers(Duration::from_millis(1000)).await;
    let t = tally(&receiver, &gz, 150..400);
    assert!(t.exactly_once(), "after restart: {t}");
    let (status, log) = agent.terminate();
    assert!(status.success(), "{log}");
    drop(job.dir);
}

#[tokio::test(flavor = "multi_thread")]
async fn corrupt_archive_is_counted_and_the_other_files_keep_arriving() {
    let receiver = Receiver::start().await;
    let job = job(&receiver, "      enabled: true\n");
    let good = job.logs.join("good.log.gz");
    let truncated = job.logs.join("truncated.log.gz");
    let garbage = job.logs.join("garbage.log.bz2");
    std::fs::write(&good, gzip(&text(0, 200))).unwrap();
    let whole = gzip(&text(1000, 3000));
    std::fs::write(&truncated, &whole[..whole.len() / 2]).unwrap();
    let mut bad = b"BZh9".to_vec();
    bad.extend((0..4096u32).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8));
    std::fs::write(&garbage, bad).unwrap();
    let agent = AgentProcess::start(&job.config, &[]);
    settled_lines(
        &receiver,
        200,
        Duration::from_secs(30),
        Duration::from_millis(1500),
    )
    .await;
    let t = tally(&receiver, &good, 0..200);
    assert!(t.exactly_once(), "good: {t}\n{}", agent.stderr_text());
    assert!(
        agent.wait_until(Duration::from_secs(10), |a| a
            .metric("tailward_file_errors_total{reason=\"corrupt_archive\"}")
            >= 2.0),
        "both damaged archives counted:\n{}",
        agent.stderr_text()
    );
    // The lines before the damage went out, in order, once each; nothing from the garbage.
    let got = lines_of(&receiver, &truncated);
    assert!(!got.is_empty(), "lines before the damage were shipped");
    let numbers: Vec<usize> = got.iter().filter_map(|l| number_of(l)).collect();
    assert_eq!(numbers, (1000..1000 + got.len()).collect::<Vec<_>>());
    assert!(
        got.len() < 2000,
        "the truncated archive did not read past its end"
    );
    assert!(lines_of(&receiver, &garbage).is_empty());
    // The agent keeps reading new archives.
    let later = job.logs.join("later.log.gz");
    std::fs::write(&later, gzip(&text(5000, 5100))).unwrap();
    receiver
        .wait_for_entries(200 + got.len() + 100, Duration::from_secs(20))
        .await;
    let t = tally(&receiver, &later, 5000..5100);
    assert!(t.exactly_once(), "later: {t}\n{}", agent.stderr_text());
    let (status, log) = agent.terminate();
    assert!(status.success(), "{log}");
    drop(job.dir);
}

/// Real logrotate with `compress` (no `delaycompress`) of `<dir>/app.log`, and an agent
/// job reading only the archives, `app.log.*.gz`.
struct CompressRotation {
    dir: tempfile::TempDir,
    log: PathBuf,
    conf: PathBuf,
    config: PathBuf,
}

impl CompressRotation {
    fn new(receiver: &Receiver) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("app.log");
        let conf = dir.path().join("logrotate.conf");
        std::fs::write(
            &conf,
            format!(
                "{} {{\n    rotate 20\n    missingok\n    nomail\n    create\n    compress\n}}\n",
                log.display()
            ),
        )
        .unwrap();
        let yaml = file_job_config(
            &receiver.url(),
            &dir.path().join("positions.yaml"),
            &format!("{}.*.gz", log.display()),
            "",
            "      - static_labels:\n          env: test\n",
        )
        .replace(
            "    pipeline_stages:\n",
            "    decompression:\n      enabled: true\n      format: gz\n    pipeline_stages:\n",
        );
        let config = write_config(dir.path(), &yaml);
        CompressRotation {
            dir,
            log,
            conf,
            config,
        }
    }

    /// Appends lines `from..to` to the live file, then rotates: every `app.log.N.gz` moves
    /// to `app.log.N+1.gz` and the live file is compressed to a new `app.log.1.gz`.
    fn write_and_rotate(&self, from: usize, to: usize) {
        append(&self.log, from, to);
        let out = std::process::Command::new("logrotate")
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .arg("-s")
            .arg(self.dir.path().join("logrotate.state"))
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

const PER_FILE: usize = 100;

#[tokio::test(flavor = "multi_thread")]
async fn logrotate_compress_archives_shifting_names_each_arrive_exactly_once() {
    let receiver = Receiver::start().await;
    let rotation = CompressRotation::new(&receiver);
    let agent = AgentProcess::start(&rotation.config, &[]);
    const ROTATIONS: usize = 6;
    for k in 0..ROTATIONS {
        rotation.write_and_rotate(k * PER_FILE, (k + 1) * PER_FILE);
        // Rotations paced as a schedule would run them, not waiting for the agent: an
        // archive may be shifted to its next name before or while it is read.
        std::thread::sleep(Duration::from_millis(400));
    }
    let lines = settled_lines(
        &receiver,
        ROTATIONS * PER_FILE,
        Duration::from_secs(30),
        Duration::from_millis(1500),
    )
    .await;
    let t = Tally::of(
        lines.iter().map(String::as_str),
        0..ROTATIONS * PER_FILE,
        number_of,
    );
    assert!(t.exactly_once(), "{t}\n{}", agent.stderr_text());
    let (status, log) = agent.terminate();
    assert!(status.success(), "{log}");
}

#[tokio::test(flavor = "multi_thread")]
async fn archives_rotated_while_the_agent_was_down_arrive_exactly_once() {
    let receiver = Receiver::start().await;
    let rotation = CompressRotation::new(&receiver);
    for k in 0..3 {
        rotation.write_and_rotate(k * PER_FILE, (k + 1) * PER_FILE);
    }
    let agent = AgentProcess::start(&rotation.config, &[]);
    settled_lines(
        &receiver,
        3 * PER_FILE,
        Duration::from_secs(30),
        Duration::from_millis(1000),
    )
    .await;
    let (status, log) = agent.terminate();
    assert!(status.success(), "{log}");
    // Down: every archive moves to the next name, twice, and two new ones are made.
    for k in 3..5 {
        rotation.write_and_rotate(k * PER_FILE, (k + 1) * PER_FILE);
    }
    let agent = AgentProcess::start(&rotation.config, &[]);
    let lines = settled_lines(
        &receiver,
        5 * PER_FILE,
        Duration::from_secs(30),
        Duration::from_millis(1500),
    )
    .await;
    let t = Tally::of(lines.iter().map(String::as_str), 0..5 * PER_FILE, number_of);
    assert!(t.exactly_once(), "{t}\n{}", agent.stderr_text());
    let (status, log) = agent.terminate();
    assert!(status.success(), "{log}");
}
