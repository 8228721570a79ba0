//! File names are bytes on Linux, and a log may be called `caf\xe9.log` (Latin-1) or worse.
//! Positions keep such a name by its exact bytes (`!!binary` in positions.yaml, as
//! Promtail's YAML library writes it, with the readable form in a comment), so it resumes
//! where it stopped after a restart, and two names never share an entry; the `filename`
//! label shows the bytes that are not UTF-8 as `\xNN`, so they never share a label either
//! (issue 17 item 7: `caf\xe9.log` was read again from 0 after every restart, and `\xff.log`
//! and `\xfe.log` shared one entry and one label).

use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::time::Duration;

use crate::support::agent_process::{AgentProcess, file_job_config, write_config};
use crate::support::numbered_lines::{Tally, append, number_of, settled_lines};
use crate::support::receiver::Receiver;

#[tokio::test(flavor = "multi_thread")]
async fn a_name_that_is_not_utf8_resumes_where_it_stopped_and_keeps_its_own_entry_and_label() {
    let receiver = Receiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    std::fs::create_dir(&logs).unwrap();
    let names: [&[u8]; 3] = [b"caf\xe9.log", b"\xff.log", b"\xfe.log"];
    let files: Vec<PathBuf> = names
        .iter()
        .map(|n| logs.join(OsStr::from_bytes(n)))
        .collect();
    let cfg = write_config(
        dir.path(),
        &file_job_config(
            &receiver.url(),
            &dir.path().join("positions.yaml"),
            &format!("{}/*.log", logs.display()),
            "",
            "      - static_labels:\n          env: test\n",
        ),
    );
    // File i holds lines 100 * i + 0..20 now and + 20..30 after the restart.
    for (i, f) in files.iter().enumerate() {
        append(f, 100 * i, 100 * i + 20);
    }
    let agent = AgentProcess::start(&cfg, &[]);
    receiver.wait_for_entries(60, Duration::from_secs(20)).await;
    let (status, first_run) = agent.terminate();
    assert!(status.success(), "{first_run}");
    let labels: BTreeSet<String> = receiver
        .received()
        .iter()
        .filter_map(|e| e.labels.get("filename").cloned())
        .collect();
    let want: BTreeSet<String> = ["caf\\xe9.log", "\\xff.log", "\\xfe.log"]
        .iter()
        .map(|n| format!("{}/{n}", logs.display()))
        .collect();
    assert_eq!(labels, want, "one label per name");
    let saved = std::fs::read_to_string(dir.path().join("positions.yaml")).unwrap();
    let positions_section = saved.split("\nidentities:").next().unwrap_or_default();
    assert_eq!(
        positions_section.matches("!!binary").count(),
        3,
        "one entry per name:\n{saved}"
    );
    assert!(saved.contains("# "), "readable beside the base64:\n{saved}");

    for (i, f) in files.iter().enumerate() {
        append(f, 100 * i + 20, 100 * i + 30);
    }
    let agent = AgentProcess::start(&cfg, &[]);
    let lines = settled_lines(
        &receiver,
        90,
        Duration::from_secs(20),
        Duration::from_millis(500),
    )
    .await;
    let tally = Tally::of(lines.iter().map(String::as_str), 0..230, number_of);
    let numbers: Vec<usize> = (0..3).flat_map(|i| 100 * i..100 * i + 30).collect();
    let missing: Vec<usize> = numbers
        .iter()
        .copied()
        .filter(|n| tally.missing.contains(n))
        .collect();
    assert!(
        missing.is_empty() && tally.repeated.is_empty() && tally.unexpected.is_empty(),
        "each line once: missing {missing:?}, repeated {:?}\n{saved}\n{}",
        tally.repeated,
        agent.stderr_text()
    );
}
