//! Under journald (stderr is the stream `JOURNAL_STREAM` names) the agent leaves its own
//! timestamp out, since the journal stamps every line, and logfmt lines carry the sd-daemon
//! priority prefix. Anywhere else, including a stale `JOURNAL_STREAM` inherited by a process
//! whose stderr goes elsewhere, lines keep their timestamp.

use std::io::Read;
use std::os::fd::{FromRawFd, OwnedFd};
use std::process::{Command, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_tailward");

/// Runs `-stdin -dry-run` over empty input with stderr on a pipe; `journal_stream` is either
/// the pipe's own `<dev>:<inode>` (`None`), as systemd would set it, or the given value.
fn run_logging_to_pipe(journal_stream: Option<&str>, extra_args: &[&str]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("config.yaml");
    std::fs::write(
        &cfg,
        format!(
            "server:\n  disable: true\npositions:\n  filename: {}/positions.yaml\nclients:\n  - url: http://127.0.0.1:9/loki/api/v1/push\n",
            dir.path().display()
        ),
    )
    .unwrap();
    let mut fds = [0i32; 2];
    // SAFETY: pipe(2) fills the two-element array we own.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    // SAFETY: both descriptors were just created and are owned by nothing else.
    let (read_end, write_end) =
        unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    let mut st = std::mem::MaybeUninit::<libc::stat>::uninit();
    // SAFETY: fstat fills the buffer we own for a descriptor we own.
    assert_eq!(unsafe { libc::fstat(fds[1], st.as_mut_ptr()) }, 0);
    // SAFETY: fstat succeeded.
    let st = unsafe { st.assume_init() };
    let stream = journal_stream
        .map(str::to_string)
        .unwrap_or_else(|| format!("{}:{}", st.st_dev, st.st_ino));
    let mut child = Command::new(BIN)
        .arg(format!("-config.file={}", cfg.display()))
        .args(["-stdin", "-dry-run"])
        .args(extra_args)
        .env("JOURNAL_STREAM", stream)
        .env_remove("TAILWARD_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(write_end))
        .spawn()
        .unwrap();
    let status = child.wait().unwrap();
    let mut text = String::new();
    std::fs::File::from(read_end)
        .read_to_string(&mut text)
        .unwrap();
    assert!(status.success(), "{text}");
    assert!(text.contains("tailward started"), "{text}");
    text
}

#[test]
fn logfmt_under_journald_has_no_timestamp_and_a_priority_prefix() {
    let text = run_logging_to_pipe(None, &[]);
    for line in text.lines() {
        assert!(!line.contains(" ts="), "timestamp under journald: {line}");
        assert!(
            line.starts_with("<6>level=info caller=") || line.starts_with("<7>level=debug"),
            "expected a priority prefix: {line}"
        );
    }
}

#[test]
fn json_under_journald_has_no_timestamp() {
    let text = run_logging_to_pipe(None, &["-log.format=json"]);
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        assert!(
            v.get("timestamp").is_none(),
            "timestamp under journald: {line}"
        );
        assert!(v.get("level").is_some(), "{line}");
    }
}

#[test]
fn stale_journal_stream_keeps_timestamps() {
    let text = run_logging_to_pipe(Some("1:1"), &[]);
    for line in text.lines() {
        assert!(
            line.starts_with("level=") && line.contains(" ts="),
            "stderr is not the journal, the timestamp stays: {line}"
        );
    }
    let json = run_logging_to_pipe(Some("1:1"), &["-log.format=json"]);
    for line in json.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        assert!(v.get("timestamp").is_some(), "{line}");
    }
}
