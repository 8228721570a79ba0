//! What the benchmarks read off the agent process they started: the HTTP port it listens on,
//! its CPU time and its memory, from its stderr and /proc. Shared by every bench target.

// Each bench target compiles this module and uses only part of it.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, Stdio};

/// Starts `bin` on `config` as the benches run it (stdout dropped, stderr read for the HTTP
/// port), under `TAILWARD_BENCH_WRAP` when set (e.g. `valgrind --tool=callgrind ...`):
/// the child, its pid and the port of its HTTP server.
pub fn start_agent(bin: &str, config: &Path) -> (Child, u32, u16) {
    let wrap = std::env::var("TAILWARD_BENCH_WRAP").unwrap_or_default();
    let mut argv: Vec<&str> = wrap.split_whitespace().collect();
    argv.push(bin);
    let mut child = Command::new(argv[0])
        .args(&argv[1..])
        .arg(format!("-config.file={}", config.display()))
        .env("TAILWARD_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start tailward");
    let pid = child.id();
    let port = listening_port(child.stderr.take().expect("stderr"));
    (child, pid, port)
}

/// Reads the agent's stderr until it reports its HTTP port, then keeps draining it on a
/// thread so the agent never blocks on a full pipe.
pub fn listening_port(stderr: std::process::ChildStderr) -> u16 {
    let mut reader = BufReader::new(stderr);
    let mut line = String::new();
    loop {
        line.clear();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            panic!("tailward exited before listening");
        }
        if let Some(addr) = line
            .split("server listening")
            .nth(1)
            .and_then(|r| r.split("address=").nth(1))
        {
            let port = addr
                .split_whitespace()
                .next()
                .and_then(|a| a.rsplit(':').next())
                .and_then(|p| p.parse().ok());
            if let Some(p) = port {
                std::thread::spawn(move || {
                    let mut sink = Vec::new();
                    let _ = reader.read_to_end(&mut sink);
                });
                return p;
            }
        }
    }
}

/// User plus system CPU time of process `pid`, in seconds.
pub fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("read stat");
    // Fields after the parenthesised command name; utime and stime are the 14th and 15th.
    let after = stat.rsplit(')').next().expect("stat format");
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 =
        fields[11].parse::<f64>().expect("utime") + fields[12].parse::<f64>().expect("stime");
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    ticks / hz
}

/// A KiB figure of /proc/PID/status: `VmHWM` (peak RSS) or `VmRSS`.
pub fn status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read status");
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}
