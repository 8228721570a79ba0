//! 10,000 files (over 10 directories, 3 numbered lines each) tailed by the real agent: every
//! line arrives exactly once, with a bounded number of threads and open descriptors
//! (`target_config.max_open_files`), under a descriptor limit of 1024. Prints threads,
//! descriptors, peak RSS and time for the record.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::support::agent_process::{AgentProcess, file_job_config, write_config};
use crate::support::numbered_lines::{Tally, append, number_of, settled_lines};
use crate::support::receiver::Receiver;

const DIRS: usize = 10;
const FILES_PER_DIR: usize = 1000;
const LINES_PER_FILE: usize = 3;
const MAX_OPEN_FILES: usize = 256;
/// The usual default soft limit: the agent must fit in it without raising it.
const DESCRIPTOR_LIMIT: u64 = 1024;

fn status_field(pid: u32, field: &str) -> usize {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// CPU time (user + system) the process used so far, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are the 12th and 13th.
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let field = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    field(11) + field(12)
}

fn open_descriptors(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// The soft `Max open files` of a process, from `/proc/<pid>/limits`.
fn soft_descriptor_limit(pid: u32) -> Option<u64> {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.trim_start_matches("Max open files")
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

fn write_files(root: &Path) {
    for d in 0..DIRS {
        let dir = root.join(format!("d{d}"));
        std::fs::create_dir(&dir).unwrap();
        for f in 0..FILES_PER_DIR {
            let first = (d * FILES_PER_DIR + f) * LINES_PER_FILE;
            append(
                &dir.join(format!("f{f:04}.log")),
                first,
                first + LINES_PER_FILE,
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn ten_thousand_files_are_all_tailed_with_bounded_resources() {
    let receiver = Receiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    std::fs::create_dir(&logs).unwrap();
    write_files(&logs);
    let total = DIRS * FILES_PER_DIR * LINES_PER_FILE;

    // Promtail's default polls; per-path series off, as a host with this many files would.
    let yaml = file_job_config(
        &receiver.url(),
        &dir.path().join("positions.yaml"),
        &format!("{}/*/*.log", logs.display()),
        "",
        "      - static_labels:\n          env: test\n",
    )
    .replace("min_poll_frequency: 25ms", "min_poll_frequency: 250ms")
    .replace("max_poll_frequency: 100ms", "max_poll_frequency: 250ms")
    .replace(
        "target_config:\n  sync_period: 500ms",
        &format!(
            "target_config:\n  sync_period: 10s\n  max_open_files: {MAX_OPEN_FILES}\n  per_file_metrics: false"
        ),
    );
    let cfg = write_config(dir.path(), &yaml);
    let started = Instant::now();
    let agent = AgentProcess::start_with_descriptor_limit(&cfg, &[], DESCRIPTOR_LIMIT);
    let pid = agent.pid();
    assert_eq!(
        soft_descriptor_limit(pid),
        Some(DESCRIPTOR_LIMIT),
        "the agent runs under the limit"
    );

    // Sampled while the files are read: the highest counts seen.
    let most_threads = Arc::new(AtomicUsize::new(0));
    let most_fds = Arc::new(AtomicUsize::new(0));
    let sampling = Arc::new(AtomicBool::new(true));
    let sampler = {
        let (threads, fds, on) = (most_threads.clone(), most_fds.clone(), sampling.clone());
        std::thread::spawn(move || {
            while on.load(Ordering::Relaxed) {
                threads.fetch_max(status_field(pid, "Threads:"), Ordering::Relaxed);
                fds.fetch_max(open_descriptors(pid), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(20));
            }
        })
    };

    let lines = settled_lines(
        &receiver,
        total,
        Duration::from_secs(120),
        Duration::from_secs(2),
    )
    .await;
    let elapsed = started.elapsed();
    sampling.store(false, Ordering::Relaxed);
    sampler.join().unwrap();
    let peak_rss_kib = status_field(pid, "VmHWM:");
    let (threads, fds) = (
        most_threads.load(Ordering::Relaxed),
        most_fds.load(Ordering::Relaxed),
    );
    let closes = agent.metric("tailward_idle_file_closes_total");
    // What 10,000 quiet files cost once read: polls at max_poll_frequency (a stat each).
    let before = cpu_ticks(pid);
    let idle_for = Duration::from_secs(3);
    tokio::time::sleep(idle_for).await;
    // SAFETY: sysconf has no preconditions.
    let ticks_per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    let idle_cpu = (cpu_ticks(pid) - before) as f64 / ticks_per_second / idle_for.as_secs_f64();
    let (_, stderr) = agent.terminate();
    println!(
        "10,000 files, {total} lines: all delivered in {:.1}s; agent threads at most {threads}, \
         open descriptors at most {fds} (max_open_files {MAX_OPEN_FILES}), peak RSS {} MiB, \
         {closes} idle closes; once idle, {:.0}% of a core",
        elapsed.as_secs_f64(),
        peak_rss_kib / 1024,
        idle_cpu * 100.0,
    );

    let tally = Tally::of(lines.iter().map(String::as_str), 0..total, number_of);
    let errors: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("level=warn") || l.contains("level=error"))
        .take(5)
        .collect();
    assert!(tally.exactly_once(), "{tally}\nfirst warnings: {errors:?}");
    // Runtime workers (one per core), the watcher's and the runtime's own: not one per file.
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    assert!(threads <= cores + 16, "{threads} threads");
    assert!(
        fds <= MAX_OPEN_FILES + 64,
        "{fds} descriptors open, bound {MAX_OPEN_FILES}"
    );
    assert!(errors.is_empty(), "warnings: {errors:?}");
}
