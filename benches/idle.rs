//! Idle benchmark: 100 tailed files that nobody writes to. Prints the agent's share of one
//! CPU and its RSS once a minute, against the targets (under 0.5% CPU, RSS flat).
//!
//! Run: `cargo bench --bench idle -- [SECONDS]` (default 600). Default settings: inotify on,
//! Promtail's poll frequencies, the client pointed at a port nobody listens on (nothing is
//! sent while idle, after the first lines were pushed or given up on).

mod agent_process;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_tailward");
const FILES: usize = 100;

fn main() {
    let seconds: u64 = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(600);
    let dir = tempfile::tempdir().expect("temp dir");
    let logs = dir.path().join("logs");
    std::fs::create_dir(&logs).expect("logs dir");
    for i in 0..FILES {
        std::fs::write(logs.join(format!("{i}.log")), "").expect("create log");
    }
    let config = dir.path().join("config.yaml");
    std::fs::write(
        &config,
        format!(
            r#"server: {{http_listen_address: 127.0.0.1, http_listen_port: 0, log_level: warn}}
positions: {{filename: {dir}/positions.yaml}}
clients:
  - url: http://127.0.0.1:9/loki/api/v1/push
scrape_configs:
  - job_name: idle
    static_configs:
      - labels: {{job: idle, __path__: {logs}/*.log}}
"#,
            dir = dir.path().display(),
            logs = logs.display(),
        ),
    )
    .expect("write config");
    let mut child = Command::new(BIN)
        .arg(format!("-config.file={}", config.display()))
        .env("TAILWARD_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start tailward");
    let pid = child.id();
    agent_process::listening_port(child.stderr.take().expect("stderr"));
    // Startup (globbing, opening every file) is not idle time.
    std::thread::sleep(Duration::from_secs(5));

    let cpu_before = agent_process::cpu_seconds(pid);
    let started = Instant::now();
    let mut rss = vec![agent_process::status_kib(pid, "VmRSS")];
    println!("{FILES} idle files; RSS at start {} KiB", rss[0]);
    let minutes = seconds.div_ceil(60);
    for minute in 1..=minutes {
        let until = Duration::from_secs((minute * 60).min(seconds));
        std::thread::sleep(until.saturating_sub(started.elapsed()));
        rss.push(agent_process::status_kib(pid, "VmRSS"));
        println!(
            "after {:>4} s: RSS {} KiB",
            until.as_secs(),
            rss[rss.len() - 1]
        );
    }
    let cpu = agent_process::cpu_seconds(pid) - cpu_before;
    let share = 100.0 * cpu / started.elapsed().as_secs_f64();
    let _ = child.kill();
    let _ = child.wait();
    let grew = rss.iter().max().copied().unwrap_or(0) - rss[0];
    println!(
        "CPU {share:.3}% of one core over {} s (target < 0.5%: {}); RSS grew {grew} KiB",
        started.elapsed().as_secs(),
        if share < 0.5 { "met" } else { "NOT met" },
    );
}
