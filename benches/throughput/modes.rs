//! The bench's two whole-agent modes beside the per-pipeline runs (issue 21):
//!
//! - `files1000 [SECONDS]`: 1,000 files in one directory, each appended 100 lines a second
//!   (ten lines every 100 ms) with real-derived nginx access lines, tailed through the nginx
//!   pipeline; prints whether every line was shipped (the agent's own sent counter against
//!   the lines written), the agent's CPU per line over the run and its peak RSS.
//! - `reference [MiB]`: config/agent.yaml, the reference deployment's five jobs with their
//!   presets, on real-derived lines of each job's kind (python tracebacks, JSON app records,
//!   nginx access and error, auth.log); one run per job (the other jobs' files left empty)
//!   and one with all five files at once.
//!
//! - `sources [MiB]`: the same real-derived nginx lines from a file, from `-stdin` and from
//!   a journal file (`journal:` with `path:`; journalctl measured apart).
//!
//! They read the agent's progress off its /metrics and its CPU and memory off /proc.

use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::agent_process;
use crate::real_lines;

struct Agent {
    child: Child,
    pid: u32,
    port: u16,
}

impl Agent {
    fn start(bin: &str, config: &Path) -> Agent {
        let (child, pid, port) = agent_process::start_agent(bin, config);
        Agent { child, pid, port }
    }

    /// The sum of every series of `metric` on /metrics.
    fn metric(&self, metric: &str) -> f64 {
        crate::metric_sum(self.port, metric)
    }

    fn cpu(&self) -> f64 {
        agent_process::cpu_seconds(self.pid)
    }

    fn peak_rss_mib(&self) -> f64 {
        agent_process::status_kib(self.pid, "VmHWM") as f64 / 1024.0
    }

    /// Waits until `done` holds, polling every 50 ms, for at most `limit`.
    fn wait_for(&self, limit: Duration, what: &str, done: impl Fn(&Agent) -> bool) {
        let started = Instant::now();
        while !done(self) {
            if started.elapsed() > limit {
                panic!("{what} not reached after {limit:?}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Real-derived lines of `kind`, `mib` MiB of them, as one string per line.
fn real_lines_of(kind: &'static str, dir: &Path, mib: usize) -> Vec<String> {
    let corpus = match real_lines::load(kind) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    let path = dir.join(format!("{kind}.lines"));
    corpus.generate(&path, mib * 1024 * 1024);
    let text = std::fs::read_to_string(&path).expect("read lines");
    let _ = std::fs::remove_file(&path);
    text.lines().map(|l| format!("{l}\n")).collect()
}

pub fn files1000(bin: &str, sink: SocketAddr, seconds: u64, stages: &str) {
    const FILES: usize = 1000;
    const PER_TICK: usize = 10;
    let dir = tempfile::tempdir().expect("temp dir");
    let logs = dir.path().join("logs");
    std::fs::create_dir(&logs).expect("logs dir");
    let mut files: Vec<std::fs::File> = (0..FILES)
        .map(|i| std::fs::File::create(logs.join(format!("app{i:04}.log"))).expect("create"))
        .collect();
    let ticks = seconds as usize * 10;
    let lines = real_lines_of("nginx", dir.path(), 32);
    let config = dir.path().join("config.yaml");
    std::fs::write(
        &config,
        format!(
            r#"server: {{http_listen_address: 127.0.0.1, http_listen_port: 0, log_level: warn}}
positions: {{filename: {d}/positions.yaml}}
clients:
  - url: http://{sink}/loki/api/v1/push
scrape_configs:
  - job_name: many
    static_configs:
      - labels: {{job: many, __path__: {d}/logs/*.log}}
    pipeline_stages: {stages}
"#,
            d = dir.path().display(),
        ),
    )
    .expect("write config");
    let agent = Agent::start(bin, &config);
    agent.wait_for(Duration::from_secs(60), "1,000 files tailed", |a| {
        a.metric("promtail_files_active_total") >= FILES as f64
    });
    let cpu_before = agent.cpu();
    let started = Instant::now();
    let mut written = 0usize;
    let mut next = 0usize;
    for tick in 0..ticks {
        for file in &mut files {
            let mut chunk = String::new();
            for _ in 0..PER_TICK {
                chunk.push_str(&lines[next % lines.len()]);
                next += 1;
            }
            file.write_all(chunk.as_bytes()).expect("append");
            written += PER_TICK;
        }
        let due = started + Duration::from_millis(100 * (tick as u64 + 1));
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
    }
    let writing = started.elapsed();
    agent.wait_for(Duration::from_secs(120), "every line sent", |a| {
        a.metric("promtail_sent_entries_total") >= written as f64
    });
    let sent = agent.metric("promtail_sent_entries_total");
    let cpu = agent.cpu() - cpu_before;
    println!(
        "files1000: {FILES} files x 100 lines/s for {:.1} s (real-derived nginx lines, nginx pipeline): \
         {written} lines written, {sent} sent ({}), {:.3} us CPU per line, {:.1}% of a core, peak RSS {:.1} MiB",
        writing.as_secs_f64(),
        if sent as usize == written {
            "every line shipped"
        } else {
            "MISMATCH"
        },
        cpu * 1e6 / written as f64,
        100.0 * cpu / started.elapsed().as_secs_f64(),
        agent.peak_rss_mib()
    );
    let bytes: usize = (0..written).map(|i| lines[i % lines.len()].len()).sum();
    crate::summary::record(
        if sent as usize == written {
            "files1000 (all shipped)"
        } else {
            "files1000 (MISMATCH)"
        },
        "real",
        written as f64,
        bytes as f64 / 1048576.0,
        cpu,
        agent.peak_rss_mib(),
    );
}

/// The reference deployment's jobs: (job name, the config's path of its files, sample kind).
const JOBS: &[(&str, &[&str], &str)] = &[
    (
        "cvd-application",
        &["/opt/cvd/logs/app.log", "/opt/cvd/logs/error.log"],
        "app",
    ),
    ("cvd-json-logs", &["/opt/cvd/logs/app.json.log"], "json"),
    ("nginx-access", &["/var/log/nginx/access.log"], "nginx"),
    ("nginx-error", &["/var/log/nginx/error.log"], "nginx_error"),
    ("system-auth", &["/var/log/auth.log"], "auth"),
];

pub fn reference(bin: &str, sink: SocketAddr, mib: usize) {
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/agent.yaml");
    let template = std::fs::read_to_string(&shipped).expect("read config/agent.yaml");
    println!(
        "reference: {} (all five jobs and presets), {mib} MiB of real-derived lines per job",
        shipped.display()
    );
    println!(
        "{:<16} {:>8} {:>6} {:>7} {:>9} {:>10} {:>7} {:>8}",
        "job", "lines", "MiB", "CPU s", "MiB/CPU-s", "lines/CPU-s", "us/line", "RSS MiB"
    );
    let dir = tempfile::tempdir().expect("temp dir");
    // Each job's input, made once and split between the job's files.
    let inputs: Vec<Vec<String>> = JOBS
        .iter()
        .map(|(_, _, kind)| real_lines_of(kind, dir.path(), mib))
        .collect();
    let runs: Vec<Option<usize>> = (0..JOBS.len()).map(Some).chain([None]).collect();
    for only in runs {
        let run = dir.path().join(format!("run-{}", only.map_or(9, |j| j)));
        std::fs::create_dir(&run).expect("run dir");
        let mut config = template
            .replace(
                "http_listen_address: 0.0.0.0",
                "http_listen_address: 127.0.0.1",
            )
            .replace("http_listen_port: 9080", "http_listen_port: 0")
            .replace(
                "/var/lib/tailward/positions.yaml",
                &format!("{}/positions.yaml", run.display()),
            )
            .replace(
                "http://localhost:3100/loki/api/v1/push",
                &format!("http://{sink}/loki/api/v1/push"),
            );
        let (mut lines, mut bytes) = (0usize, 0usize);
        let mut file_no = 0;
        for (j, (_, paths, _)) in JOBS.iter().enumerate() {
            let per_file = inputs[j].len().div_ceil(paths.len());
            for (p, path) in paths.iter().enumerate() {
                let target = run.join(format!("{j}-{p}.log"));
                let content: String = if only.is_none_or(|o| o == j) {
                    inputs[j]
                        .iter()
                        .skip(p * per_file)
                        .take(per_file)
                        .map(String::as_str)
                        .collect()
                } else {
                    String::new()
                };
                lines += content.lines().count();
                bytes += content.len();
                std::fs::write(&target, content).expect("write input");
                let before = config.len();
                config = config.replace(
                    &format!("__path__: {path}\n"),
                    &format!("__path__: {}\n", target.display()),
                );
                assert_ne!(before, config.len(), "{path} in config/agent.yaml");
                file_no += 1;
            }
        }
        assert_eq!(file_no, 6, "the reference config's six files");
        let config_path = run.join("config.yaml");
        std::fs::write(&config_path, &config).expect("write config");
        let agent = Agent::start(bin, &config_path);
        agent.wait_for(Duration::from_secs(600), "every byte read", |a| {
            a.metric("promtail_read_bytes_total") >= bytes as f64
        });
        // Multi-line jobs send fewer entries than lines: done when the count stops moving
        // past a batchwait.
        let mut last = -1.0;
        loop {
            std::thread::sleep(Duration::from_millis(1500));
            let sent = agent.metric("promtail_sent_entries_total");
            if sent == last {
                break;
            }
            last = sent;
        }
        let cpu = agent.cpu();
        let mib_f = bytes as f64 / (1024.0 * 1024.0);
        crate::summary::record(
            &format!("reference {}", only.map_or("all five", |j| JOBS[j].0)),
            "real",
            lines as f64,
            mib_f,
            cpu,
            agent.peak_rss_mib(),
        );
        println!(
            "{:<16} {lines:>8} {mib_f:>6.1} {cpu:>7.2} {:>9.1} {:>10.0} {:>7.3} {:>8.1}",
            only.map_or("all five", |j| JOBS[j].0),
            mib_f / cpu,
            lines as f64 / cpu,
            cpu * 1e6 / lines as f64,
            agent.peak_rss_mib()
        );
    }
}

/// `sources [MiB]`: the same real-derived nginx lines through the nginx pipeline from a
/// file and from `-stdin` (read to its end, then the agent exits), entries per CPU-second
/// and peak RSS each. The stdin run's CPU comes from wait4's rusage, its peak RSS from /proc.
pub fn sources(bin: &str, sink: SocketAddr, mib: usize, stages: &str) {
    let dir = tempfile::tempdir().expect("temp dir");
    let log = dir.path().join("nginx.log");
    let corpus = match real_lines::load("nginx") {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    let (lines, bytes) = corpus.generate(&log, mib * 1024 * 1024);
    let config = |path: &str| {
        let config = dir.path().join(format!("config-{}.yaml", path.len()));
        std::fs::write(
            &config,
            format!(
                r#"server: {{http_listen_address: 127.0.0.1, http_listen_port: 0, log_level: warn}}
positions: {{filename: {d}/positions.yaml}}
clients:
  - url: http://{sink}/loki/api/v1/push
scrape_configs:
  - job_name: nginx
    static_configs:
      - labels: {{job: nginx, __path__: {path}}}
    pipeline_stages: {stages}
"#,
                d = dir.path().display(),
            ),
        )
        .expect("write config");
        config
    };
    println!(
        "sources: {lines} real-derived nginx lines ({:.1} MiB), nginx pipeline",
        bytes as f64 / 1048576.0
    );
    let print = |source: &str, cpu: f64, rss_mib: f64| {
        crate::summary::record(
            &format!("source {source}"),
            "real",
            lines as f64,
            bytes as f64 / 1048576.0,
            cpu,
            rss_mib,
        );
        println!(
            "{source:<8} {:>10.0} entries/CPU-s {:>7.3} us/entry {:>7.1} MiB/CPU-s  peak RSS {rss_mib:.1} MiB",
            lines as f64 / cpu,
            cpu * 1e6 / lines as f64,
            bytes as f64 / 1048576.0 / cpu
        );
    };
    {
        let agent = Agent::start(bin, &config(&log.display().to_string()));
        agent.wait_for(Duration::from_secs(600), "every line sent", |a| {
            a.metric("promtail_sent_entries_total") >= lines as f64
        });
        print("file", agent.cpu(), agent.peak_rss_mib());
    }
    let input = std::fs::File::open(&log).expect("open log");
    // Reaped by the wait4 below, which also reports its CPU time and peak RSS.
    #[allow(clippy::zombie_processes)]
    let child = Command::new(bin)
        .arg(format!(
            "-config.file={}",
            config("/nonexistent/stdin").display()
        ))
        .arg("-stdin")
        .stdin(input)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start tailward -stdin");
    let mut status = 0;
    // SAFETY: rusage is plain data, filled by wait4 for our own child.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // rusage's ru_maxrss is no peak RSS of the agent: the child is spawned by vfork, and exec
    // records the high-water mark of the mm it leaves (the bench's own) into it. VmHWM is read
    // off /proc while the agent runs instead.
    let mut peak_kib = 0;
    loop {
        peak_kib = peak_kib.max(agent_process::status_kib(child.id(), "VmHWM"));
        // SAFETY: polls our own child's pid without blocking.
        let reaped =
            unsafe { libc::wait4(child.id() as i32, &mut status, libc::WNOHANG, &mut usage) };
        if reaped != 0 {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let seconds = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    if status != 0 {
        println!("stdin run exited with status {status}");
    }
    print(
        "stdin",
        seconds(usage.ru_utime) + seconds(usage.ru_stime),
        peak_kib as f64 / 1024.0,
    );
    journal(bin, sink, dir.path(), &log, lines, stages, &print);
}

const JOURNAL_REMOTE: &str = "/lib/systemd/systemd-journal-remote";

/// The journal source on the same lines: `log`'s lines as the MESSAGE of journal entries in a
/// journal file made by systemd-journal-remote (from export format), read by a `journal:` job
/// with `path:` at its directory. The agent's figure is printed as the others are; journalctl
/// (the agent's child, a process of its own) is measured apart and printed beside it.
fn journal(
    bin: &str,
    sink: SocketAddr,
    dir: &Path,
    log: &Path,
    lines: usize,
    stages: &str,
    print: &dyn Fn(&str, f64, f64),
) {
    let journal_dir = dir.join("journal");
    std::fs::create_dir(&journal_dir).expect("journal dir");
    let text = std::fs::read_to_string(log).expect("read log");
    let now_us = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_micros() as u64;
    let mut remote = Command::new(JOURNAL_REMOTE)
        .arg(format!(
            "--output={}",
            journal_dir.join("bench.journal").display()
        ))
        .arg("-")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| panic!("{JOURNAL_REMOTE} (Debian systemd-journal-remote): {e}"));
    {
        let mut export =
            std::io::BufWriter::new(remote.stdin.take().expect("journal-remote stdin"));
        for (i, line) in text.lines().enumerate() {
            // Entries one microsecond apart, ending now: all inside `max_age`.
            write!(
                export,
                "__REALTIME_TIMESTAMP={}\n__MONOTONIC_TIMESTAMP={}\n\
                 _BOOT_ID=0123456789abcdef0123456789abcdef\n_HOSTNAME=benchhost\n\
                 _SYSTEMD_UNIT=nginx.service\nPRIORITY=6\nSYSLOG_IDENTIFIER=nginx\n\
                 MESSAGE={line}\n\n",
                now_us - (lines - i) as u64,
                i + 1
            )
            .expect("write export");
        }
        export.flush().expect("flush export");
    }
    let status = remote.wait().expect("wait journal-remote");
    assert!(status.success(), "{JOURNAL_REMOTE} failed: {status}");
    let config = dir.join("config-journal.yaml");
    std::fs::write(
        &config,
        format!(
            r#"server: {{http_listen_address: 127.0.0.1, http_listen_port: 0, log_level: warn}}
positions: {{filename: {d}/positions-journal.yaml}}
clients:
  - url: http://{sink}/loki/api/v1/push
scrape_configs:
  - job_name: nginx
    journal:
      path: {j}
      max_age: 12h
      labels: {{job: nginx}}
    pipeline_stages: {stages}
"#,
            d = dir.display(),
            j = journal_dir.display(),
        ),
    )
    .expect("write config");
    let agent = Agent::start(bin, &config);
    let journalctl = std::cell::Cell::new(None);
    agent.wait_for(Duration::from_secs(600), "every journal entry sent", |a| {
        if journalctl.get().is_none() {
            journalctl.set(children(a.pid).into_iter().next());
        }
        a.metric("promtail_sent_entries_total") >= lines as f64
    });
    let journalctl = journalctl.get();
    print("journal", agent.cpu(), agent.peak_rss_mib());
    if let Some(child) = journalctl {
        let cpu = agent_process::cpu_seconds(child);
        let rss = agent_process::status_kib(child, "VmHWM") as f64 / 1024.0;
        crate::summary::record(
            "source journal: journalctl",
            "real",
            lines as f64,
            0.0,
            cpu,
            rss,
        );
        println!(
            "  journalctl (pid {child}, its own process): {:.0} entries/CPU-s, {:.3} us/entry, \
             peak RSS {rss:.1} MiB; agent + journalctl {:.3} us/entry",
            lines as f64 / cpu,
            cpu * 1e6 / lines as f64,
            (cpu + agent.cpu()) * 1e6 / lines as f64
        );
    } else {
        println!("  journalctl: not found among the agent's children");
    }
}

/// The child processes of `pid` (every thread's), from /proc.
fn children(pid: u32) -> Vec<u32> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    tasks
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("children")).ok())
        .flat_map(|c| {
            c.split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect::<Vec<u32>>()
        })
        .collect()
}
