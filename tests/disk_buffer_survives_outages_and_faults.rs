//! The disk buffer (WAL) end to end: during a Loki outage the agent keeps reading (its
//! position moves because the entries are safe on disk), a crash then loses nothing (the WAL
//! is replayed), and faults of the WAL directory (full disk, unwritable, corrupt segment) or
//! a deleted positions file never crash the agent: a log line and a metric say what happened,
//! good data is delivered.
//!
//! The full-disk test needs a small filesystem: as root (as CI runs) it mounts a tmpfs and
//! fails loudly if it cannot. Not as root, mounting is not possible, so it fills a
//! directory that refuses writes instead (mode 0555): the write failure path is the same,
//! only the errno differs.

use std::io::Write as _;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::support::agent_process::{AgentProcess, file_job_config, write_config};
use crate::support::numbered_lines::{Tally, Writer, append, number_of, settled_lines};
use crate::support::receiver::Receiver;

fn config(dir: &Path, receiver: &Receiver, wal_dir: &Path, wal_extra: &str) -> PathBuf {
    let client_extra = format!(
        "    queue:\n      max_bytes: 4KB\n    wal:\n      enabled: true\n      dir: {}\n{wal_extra}",
        wal_dir.display()
    );
    let cfg = write_config(
        dir,
        &file_job_config(
            &receiver.url(),
            &dir.join("positions.yaml"),
            &format!("{}*", dir.join("app.log").display()),
            &client_extra,
            "      - static_labels:\n          env: test\n",
        ),
    );
    // Retry forever: outages here are longer than max_retries would allow.
    let text = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace("max_retries: 20", "max_retries: 0");
    std::fs::write(&cfg, text).unwrap();
    cfg
}

fn saved_position(dir: &Path, log: &Path) -> Option<u64> {
    let text = std::fs::read_to_string(dir.join("positions.yaml")).ok()?;
    let key = format!("{}: \"", log.display());
    let rest = text.split(&key).nth(1)?;
    rest.split('"').next()?.parse().ok()
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

#[tokio::test(flavor = "multi_thread")]
async fn with_wal_reading_continues_during_an_outage_and_a_crash_loses_nothing() {
    const LINES: usize = 900;
    let receiver = Receiver::start().await;
    receiver.set_down(true).await;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    let cfg = config(dir.path(), &receiver, &dir.path().join("wal"), "");
    let agent = AgentProcess::start(&cfg, &[]);
    let mut writer = Writer::create(&log, true);
    for c in 0..3 {
        writer.write_paced(c * 300, (c + 1) * 300, Duration::from_millis(300));
        std::fs::rename(&log, dir.path().join(format!("app.log.{}", c + 1))).unwrap();
        std::fs::File::create(&log).unwrap();
    }
    // The queue holds 4 KB, far less than was written: without the WAL reading would have
    // paused. With it every line is written to disk and acknowledged to positions.
    let written = format!(
        "tailward_wal_records_total{{event=\"written\",host=\"{}\"}}",
        receiver.addr()
    );
    assert!(
        agent.wait_until(Duration::from_secs(20), |a| a.metric(&written)
            >= LINES as f64),
        "every line reached the WAL during the outage:\n{}",
        agent.get("/metrics").1
    );
    let rotated = dir.path().join("app.log.3");
    let size = std::fs::metadata(&rotated).unwrap().len();
    assert!(
        agent.wait_until(Duration::from_secs(10), |_| saved_position(
            dir.path(),
            &rotated
        ) == Some(size)),
        "the position moved to the end while Loki was down: {:?}",
        std::fs::read_to_string(dir.path().join("positions.yaml"))
    );
    assert!(agent.metric("tailward_wal_bytes") > 0.0);
    assert!(receiver.received().is_empty());
    // Crash; only the WAL knows these lines now.
    agent.kill_hard();
    receiver.set_down(false).await;
    let agent = AgentProcess::start(&cfg, &[]);
    let lines = settled_lines(
        &receiver,
        LINES,
        Duration::from_secs(30),
        Duration::from_millis(500),
    )
    .await;
    let tally = Tally::of(lines.iter().map(String::as_str), 0..LINES, number_of);
    assert!(
        tally.missing.is_empty() && tally.unexpected.is_empty(),
        "{tally}\n{}",
        agent.stderr_text()
    );
    let replayed = format!(
        "tailward_wal_records_total{{event=\"replayed\",host=\"{}\"}}",
        receiver.addr()
    );
    assert!(
        agent.metric(&replayed) >= LINES as f64,
        "{}",
        agent.get("/metrics").1
    );
    // Delivered: the segments are deleted.
    assert!(
        agent.wait_until(Duration::from_secs(10), |a| a.metric("tailward_wal_bytes")
            == 0.0),
        "acknowledged segments deleted"
    );
}

/// Writes `lines` numbered lines while the agent runs against `wal_dir` that cannot take
/// them; checks the agent says so, stays up, and delivers everything once `repair` ran.
async fn wal_fault_is_logged_counted_and_recovered(
    wal_dir: PathBuf,
    lines: usize,
    repair: impl FnOnce(),
) {
    let receiver = Receiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    let cfg = config(dir.path(), &receiver, &wal_dir, "      max_size: 100MB\n");
    append(&log, 0, lines);
    let agent = AgentProcess::start(&cfg, &[]);
    assert!(
        agent.wait_until(Duration::from_secs(20), |a| a
            .metric("tailward_wal_errors_total")
            >= 1.0),
        "WAL failure counted:\n{}\n{}",
        agent.get("/metrics").1,
        agent.stderr_text()
    );
    assert!(
        agent.stderr_text().contains("disk buffer (WAL) I/O failed"),
        "{}",
        agent.stderr_text()
    );
    assert_eq!(agent.get("/metrics").0, 200, "still running");
    repair();
    let got = settled_lines(
        &receiver,
        lines,
        Duration::from_secs(30),
        Duration::from_millis(500),
    )
    .await;
    let tally = Tally::of(got.iter().map(String::as_str), 0..lines, number_of);
    assert!(tally.exactly_once(), "{tally}\n{}", agent.stderr_text());
    let (status, text) = agent.terminate();
    assert!(status.success(), "{text}");
}

#[tokio::test(flavor = "multi_thread")]
async fn wal_directory_that_cannot_be_created_is_retried_until_it_can() {
    let dir = tempfile::tempdir().unwrap();
    let blocked = dir.path().join("wal");
    std::fs::write(&blocked, "a file where the WAL directory should be").unwrap();
    let remove = blocked.clone();
    wal_fault_is_logged_counted_and_recovered(blocked, 200, move || {
        std::fs::remove_file(&remove).unwrap()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn wal_on_a_full_disk_pauses_reading_and_resumes_when_space_frees() {
    let dir = tempfile::tempdir().unwrap();
    let wal_dir = dir.path().join("small");
    std::fs::create_dir(&wal_dir).unwrap();
    if is_root() {
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=64k", "tmpfs"])
            .arg(&wal_dir)
            .status()
            .expect("run mount");
        assert!(status.success(), "mounting a 64k tmpfs as root failed");
        // Fill it, leaving too little for the lines to come.
        let mut filler = std::fs::File::create(wal_dir.join("filler")).unwrap();
        let block = vec![b'x'; 4096];
        while filler.write_all(&block).is_ok() {}
        drop(filler);
        let target = wal_dir.join("wal");
        let unmount = wal_dir.clone();
        let filler = wal_dir.join("filler");
        wal_fault_is_logged_counted_and_recovered(target, 300, move || {
            std::fs::remove_file(&filler).unwrap();
        })
        .await;
        let _ = std::process::Command::new("umount").arg(&unmount).status();
    } else {
        // Not root: no mount. A directory refusing writes fails the same write path.
        let target = wal_dir.join("wal");
        std::fs::create_dir(&target).unwrap();
        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o555)).unwrap();
        let repair = target.clone();
        wal_fault_is_logged_counted_and_recovered(target, 300, move || {
            std::fs::set_permissions(&repair, std::fs::Permissions::from_mode(0o755)).unwrap();
        })
        .await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn corrupt_wal_segment_skips_the_bad_records_and_replays_the_rest() {
    const LINES: usize = 300;
    let receiver = Receiver::start().await;
    receiver.set_down(true).await;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    let wal_dir = dir.path().join("wal");
    let cfg = config(dir.path(), &receiver, &wal_dir, "");
    append(&log, 0, LINES);
    let agent = AgentProcess::start(&cfg, &[]);
    assert!(
        agent.wait_until(Duration::from_secs(20), |a| a
            .metric("tailward_wal_records_total")
            >= LINES as f64),
        "{}",
        agent.stderr_text()
    );
    // Positions at the end: after the crash the lines can only come from the WAL.
    let size = std::fs::metadata(&log).unwrap().len();
    assert!(
        agent.wait_until(Duration::from_secs(10), |_| saved_position(
            dir.path(),
            &log
        ) == Some(size))
    );
    agent.kill_hard();
    let mut segments: Vec<PathBuf> = std::fs::read_dir(&wal_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "wal"))
        .collect();
    segments.sort();
    let seg = segments.first().expect("a segment");
    let mut bytes = std::fs::read(seg).unwrap();
    assert!(bytes.len() > 2000, "{}", bytes.len());
    // A bit flip in the middle, and a tail cut short as a crash mid-write leaves it.
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x04;
    let cut = bytes.len() - 10;
    bytes.truncate(cut);
    std::fs::write(seg, &bytes).unwrap();

    receiver.set_down(false).await;
    let agent = AgentProcess::start(&cfg, &[]);
    let got = settled_lines(
        &receiver,
        LINES - 2,
        Duration::from_secs(30),
        Duration::from_millis(800),
    )
    .await;
    let tally = Tally::of(got.iter().map(String::as_str), 0..LINES, number_of);
    let corrupt = agent.metric(&format!(
        "tailward_wal_records_total{{event=\"corrupt\",host=\"{}\"}}",
        receiver.addr()
    ));
    assert!(corrupt >= 2.0, "bit flip and truncated tail counted");
    assert!(
        tally.repeated.is_empty() && tally.unexpected.is_empty(),
        "{tally}"
    );
    // Only the damaged records are missing; the records after them in later segments arrive.
    assert!(
        (1..=corrupt as usize).contains(&tally.missing.len()),
        "{tally} with {corrupt} corrupt"
    );
    assert!(
        agent.stderr_text().contains("corrupt records skipped"),
        "{}",
        agent.stderr_text()
    );
    assert_eq!(agent.get("/metrics").0, 200, "still running");
}

#[tokio::test(flavor = "multi_thread")]
async fn positions_file_deleted_while_running_is_written_again() {
    let receiver = Receiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
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
    append(&log, 0, 50);
    let agent = AgentProcess::start(&cfg, &[]);
    receiver.wait_for_entries(50, Duration::from_secs(20)).await;
    assert!(agent.wait_until(Duration::from_secs(10), |_| {
        saved_position(dir.path(), &log).is_some()
    }));
    std::fs::remove_file(dir.path().join("positions.yaml")).unwrap();
    append(&log, 50, 80);
    let size = std::fs::metadata(&log).unwrap().len();
    assert!(
        agent.wait_until(Duration::from_secs(10), |_| saved_position(
            dir.path(),
            &log
        ) == Some(size)),
        "positions written again with the new offset"
    );
    assert!(
        agent
            .stderr_text()
            .contains("positions file was deleted while running"),
        "{}",
        agent.stderr_text()
    );
    assert_eq!(agent.metric("tailward_positions_file_deleted_total"), 1.0);
    let got = settled_lines(
        &receiver,
        80,
        Duration::from_secs(10),
        Duration::from_millis(300),
    )
    .await;
    let tally = Tally::of(got.iter().map(String::as_str), 0..80, number_of);
    assert!(tally.exactly_once(), "{tally}");
}
