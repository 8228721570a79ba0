//! `target_config.max_open_files`: with more files than the bound, idle files are closed and
//! reopened by identity when they change, so lines written to a closed file, and to a file
//! rotated (renamed and recreated) while closed, arrive exactly once.

use std::path::Path;
use std::time::Duration;

use crate::support::agent_process::{AgentProcess, file_job_config, write_config};
use crate::support::numbered_lines::{Tally, append, number_of, settled_lines};
use crate::support::receiver::Receiver;

const FILES: usize = 20;
const MAX_OPEN: usize = 4;
/// Numbers per file and round: file `f` writes `f * 100 + round * 10 ..`.
const PER_ROUND: usize = 5;

/// Log files of `logs` the agent holds open.
fn open_logs(pid: u32, logs: &Path) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|fds| {
            fds.flatten()
                .filter(|e| std::fs::read_link(e.path()).is_ok_and(|t| t.starts_with(logs)))
                .count()
        })
        .unwrap_or(0)
}

fn write_round(logs: &Path, round: usize) {
    for f in 0..FILES {
        let first = f * 100 + round * 10;
        append(&logs.join(format!("f{f:02}.log")), first, first + PER_ROUND);
    }
}

fn expected(rounds: usize) -> Vec<usize> {
    (0..FILES)
        .flat_map(|f| (0..rounds).flat_map(move |r| f * 100 + r * 10..f * 100 + r * 10 + PER_ROUND))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn lines_written_to_idle_files_after_they_were_closed_arrive_exactly_once() {
    let receiver = Receiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    std::fs::create_dir(&logs).unwrap();
    write_round(&logs, 0);
    let yaml = file_job_config(
        &receiver.url(),
        &dir.path().join("positions.yaml"),
        &format!("{}/*.log", logs.display()),
        "",
        "      - static_labels:\n          env: test\n",
    )
    .replace(
        "target_config:\n",
        &format!("target_config:\n  max_open_files: {MAX_OPEN}\n"),
    );
    let cfg = write_config(dir.path(), &yaml);
    let agent = AgentProcess::start(&cfg, &[]);
    let pid = agent.pid();

    receiver
        .wait_for_entries(FILES * PER_ROUND, Duration::from_secs(20))
        .await;
    let mut most_open = open_logs(pid, &logs);
    assert!(agent.wait_until(Duration::from_secs(10), |a| {
        a.metric("tailward_idle_file_closes_total") >= (FILES - MAX_OPEN) as f64
    }));

    // Round 1 goes to files that were closed; f00 and f01 are rotated while closed first:
    // the rest of the old file (round 1) must come from the renamed file, round 2 from the
    // new one.
    write_round(&logs, 1);
    for f in [0, 1] {
        let log = logs.join(format!("f{f:02}.log"));
        std::fs::rename(&log, logs.join(format!("f{f:02}.log.1"))).unwrap();
        let first = f * 100 + 20;
        append(&log, first, first + PER_ROUND);
    }
    // Sampled for a second while the closed files are reopened and the rotated ones drained:
    // the bound must hold throughout, not only once all is read.
    for _ in 0..20 {
        most_open = most_open.max(open_logs(pid, &logs));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut want = expected(2);
    want.extend((0..2).flat_map(|f| f * 100 + 20..f * 100 + 20 + PER_ROUND));
    let lines = settled_lines(
        &receiver,
        want.len(),
        Duration::from_secs(30),
        Duration::from_millis(1500),
    )
    .await;
    most_open = most_open.max(open_logs(pid, &logs));
    let (_, stderr) = agent.terminate();

    let max = FILES * 100;
    let tally = Tally::of(lines.iter().map(String::as_str), 0..max, number_of);
    let mut got: Vec<usize> = lines.iter().filter_map(|l| number_of(l)).collect();
    got.sort();
    want.sort();
    assert!(
        tally.repeated.is_empty() && got == want,
        "{} lines, expected {}; repeated {:?}; missing {:?}\n{stderr}",
        got.len(),
        want.len(),
        tally.repeated,
        want.iter().filter(|n| !got.contains(n)).collect::<Vec<_>>(),
    );
    // A tailer draining a rotated file holds it beside the new one: two rotations at once.
    assert!(
        most_open <= MAX_OPEN + 2,
        "{most_open} log files open at once, bound {MAX_OPEN}"
    );
}
